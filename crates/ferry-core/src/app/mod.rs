//! The one facade every front end uses: accounts (tokens in the keyring), regions, connect /
//! switch / disconnect under the session supervisor, the NeoSC workspace watcher, history,
//! settings and crash recovery, with one typed event stream ([`AppEvent`]) out.
//!
//! The desktop shell and the `ferry` CLI reach services, the supervisor, the store and recovery
//! only through this module: the [`App`] for the window and tray, [`launch`] and [`Services`] for
//! the CLI's one-shot commands. Connecting takes the per-user instance lock first
//! ([`launch::take_lock`]), so two front ends never both meter.

pub mod autostart;
pub mod browser;
pub mod contract;
pub mod desktop_proxy;
pub mod error;
pub mod insight;
pub mod launch;
pub mod services;
pub mod settings;
pub mod tracker;
pub mod views;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::clock::{SharedClock, SystemClock};
use crate::meter::quota::POLL_INTERVAL;
use crate::secrets::{Secret, SharedSecretStore};
use crate::services::neosc::NeoscClient;
use crate::services::orbnet::{LoginOutcome, LoginRequest};
use crate::services::tunnelbyte::read_cli_token;
use crate::services::StoredToken;
use crate::session::event::SessionEvent;
use crate::session::supervisor::SupervisorHandle;
use crate::session::wg_tunnels::WgTunnels;
use crate::store::{HistoryQuery, Store, StoreError};
use crate::workspaces::{WatchConfig, WorkspaceEvent, WorkspaceWatcher};

pub use contract::AppEvent;
pub use error::AppError;
pub use launch::{
    launch, load_budget, save_budget, session_caps, LaunchSpec, Launched, SessionCaps,
};
pub use services::{SecretsMode, Services};

use contract::{
    AccountView, BaseUrls, CapView, ConnectRequest, ConnectionView, HistoryView, Phase,
    RegionGroup, RegionRef, RegionView, Service, Settings, SignInOutcome, SignInRequest, Snapshot,
    TunnelMode, WorkspaceLaunchView, WorkspacesView,
};
use settings::{check_base_url, validate_settings};
use tracker::ConnectionTracker;

const SETTINGS_KEY: &str = "desktop.settings";
const LAST_REGION_KEY: &str = "desktop.last_region";

fn account_key(s: Service) -> String {
    format!("desktop.account.{}", s.as_str())
}

/// How the app runs.
#[derive(Debug, Clone)]
pub struct AppOptions {
    /// The private data directory (history database, instance lock).
    pub data_dir: PathBuf,
    /// Fixed heartbeat interval instead of OrbNET's schedule (loopback services only).
    pub heartbeat: Option<Duration>,
    /// tunnelbyte status poll interval (below 10 s: loopback services only).
    pub status_poll: Duration,
    /// App mode: where the SOCKS5 proxy listens (any free port when taken).
    pub proxy: SocketAddr,
    /// How often NeoSC sessions are refreshed (below 30 s: loopback services only).
    pub workspace_refresh: Duration,
    /// How long to wait for the tunnel's first handshake.
    pub handshake_timeout: Duration,
    /// Where the launch-at-login entry goes (`None`: no home, the setting is refused).
    pub autostart_dir: Option<PathBuf>,
    /// The program and arguments the launch-at-login entry starts.
    pub autostart_command: Option<(PathBuf, Vec<String>)>,
    /// This front end's name, for "already connected in …" (e.g. "the Ferry window").
    pub front_end: String,
    /// The clock of the meter, the watcher and the history rows (injected in tests).
    pub clock: SharedClock,
    /// Where the front end's log file is (`ferry.log`; the data dir unless the demo moved it).
    pub log_dir: PathBuf,
}

impl AppOptions {
    /// Defaults, with test and demo overrides from the environment: `FERRY_HEARTBEAT_SECS`,
    /// `FERRY_STATUS_POLL_SECS`, `FERRY_PROXY`, `FERRY_WORKSPACE_REFRESH_SECS`.
    pub fn from_env(data_dir: PathBuf) -> Self {
        let secs = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.clamp(1, 3600)))
        };
        AppOptions {
            log_dir: data_dir.clone(),
            data_dir,
            heartbeat: secs("FERRY_HEARTBEAT_SECS"),
            status_poll: secs("FERRY_STATUS_POLL_SECS").unwrap_or(POLL_INTERVAL),
            proxy: std::env::var("FERRY_PROXY")
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 1080))),
            workspace_refresh: secs("FERRY_WORKSPACE_REFRESH_SECS")
                .unwrap_or(crate::workspaces::REFRESH_INTERVAL),
            handshake_timeout: Duration::from_secs(15),
            autostart_dir: autostart::dir_from(|k| std::env::var(k).ok()),
            autostart_command: None,
            front_end: "the Ferry window".into(),
            clock: SystemClock::shared(),
        }
    }
}

struct Running {
    handle: SupervisorHandle,
    /// The supervisor task; it ends by itself once its last handle is gone.
    _task: JoinHandle<()>,
    pump: JoinHandle<()>,
    /// System mode through the helper: `ferry disconnect` from another process disconnects.
    helper_watch: JoinHandle<()>,
    /// The per-user instance lock, released (synchronously) when the session is dropped.
    _lock: crate::session::instance::InstanceLock,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.pump.abort();
        self.helper_watch.abort();
    }
}

struct State {
    accounts: Vec<AccountView>,
    tracker: Option<ConnectionTracker>,
    last_region: Option<RegionRef>,
    settings: Settings,
    regions: Vec<RegionGroup>,
    mode: TunnelMode,
    services: Services,
}

struct Inner {
    opts: AppOptions,
    demo: bool,
    secrets: SharedSecretStore,
    store: Arc<Store>,
    clock: SharedClock,
    events: broadcast::Sender<AppEvent>,
    state: Mutex<State>,
    running: tokio::sync::Mutex<Option<Running>>,
    watcher: tokio::sync::Mutex<Option<(WorkspaceWatcher, JoinHandle<()>)>>,
    generation: std::sync::atomic::AtomicU64,
}

/// The app (cheap to clone).
#[derive(Clone)]
pub struct App {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for App {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("App")
            .field("demo", &self.inner.demo)
            .finish_non_exhaustive()
    }
}

impl App {
    /// Opens the app: the history store in the data dir (a broken one is set aside; an
    /// unusable one is replaced by a temporary one, so the app still works), saved settings,
    /// signed-in services, and the workspace watcher when NeoSC is signed in.
    pub async fn open(
        opts: AppOptions,
        secrets: SharedSecretStore,
        demo: bool,
    ) -> Result<App, AppError> {
        crate::paths::ensure_private_dir(&opts.data_dir)
            .map_err(|e| AppError::Io(e.to_string()))?;
        let store = match Store::open_in(&opts.data_dir).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(error = %e, "history database unavailable; using a temporary one");
                let dir =
                    std::env::temp_dir().join(format!("ferry-history-{}", std::process::id()));
                Store::open_in(&dir).await?
            }
        };
        if let Some(old) = store.quarantined() {
            tracing::warn!(moved_to = %old.display(), "the history database was damaged; a new one started");
        }
        let clock = opts.clock.clone();
        let store = store.with_clock(clock.clone());
        let settings = match store.setting(SETTINGS_KEY).await {
            Ok(Some(json)) => serde_json::from_str::<Settings>(&json)
                .ok()
                .filter(|s| validate_settings(s).is_ok())
                .unwrap_or_default(),
            _ => Settings::default(),
        };
        let last_region = store
            .setting(LAST_REGION_KEY)
            .await
            .ok()
            .flatten()
            .and_then(|j| serde_json::from_str::<RegionRef>(&j).ok());
        let mut accounts = Vec::new();
        for service in Service::ALL {
            let signed_in = match secrets.get(service).await {
                Ok(t) => t.is_some(),
                Err(err) => {
                    tracing::warn!(%err, ?service, "could not read the keyring");
                    false
                }
            };
            let label = if signed_in {
                store.setting(&account_key(service)).await.ok().flatten()
            } else {
                None
            };
            accounts.push(AccountView {
                service,
                signed_in,
                label,
                credits: None,
            });
        }
        let mode = settings.default_mode;
        let services = Services::new(settings.base_urls.to_map(), secrets.clone());
        let app = App {
            inner: Arc::new(Inner {
                opts,
                demo,
                secrets,
                store: Arc::new(store),
                clock,
                events: broadcast::channel(256).0,
                state: Mutex::new(State {
                    accounts,
                    tracker: None,
                    last_region,
                    settings,
                    regions: vec![],
                    mode,
                    services,
                }),
                running: tokio::sync::Mutex::new(None),
                watcher: tokio::sync::Mutex::new(None),
                generation: std::sync::atomic::AtomicU64::new(0),
            }),
        };
        if app.signed_in(Service::Neosc) {
            app.start_watcher().await;
        }
        // A desktop proxy left pointing at a Ferry that crashed goes back to the user's values.
        app.restore_desktop_proxy().await;
        Ok(app)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, e: AppEvent) {
        let _ = self.inner.events.send(e);
    }

    fn services(&self) -> Services {
        self.lock().services.clone()
    }

    /// The one event stream (state, meter, warnings, regions, workspaces, history, settings).
    pub fn subscribe(&self) -> broadcast::Receiver<AppEvent> {
        self.inner.events.subscribe()
    }

    /// Uses these base URLs (the lab's, in the demo).
    pub async fn set_base_urls(&self, urls: BaseUrls) -> Result<(), AppError> {
        let mut s = self.lock().settings.clone();
        s.base_urls = urls;
        self.save_settings(s).await.map(|_| ())
    }

    /// Shows a known balance on the OrbNET account (the demo knows the lab's).
    pub fn set_credits(&self, credits: f64) {
        let accounts = {
            let mut st = self.lock();
            for a in st.accounts.iter_mut() {
                if a.service == Service::Orbnet {
                    a.credits = Some(credits);
                }
            }
            st.accounts.clone()
        };
        self.emit(AppEvent::Accounts(accounts));
    }

    async fn store_settings(&self, s: &Settings) {
        match serde_json::to_string(s) {
            Ok(json) => {
                if let Err(e) = self.inner.store.set_setting(SETTINGS_KEY, &json).await {
                    tracing::warn!(error = %e, "settings not saved");
                }
            }
            Err(e) => tracing::warn!(error = %e, "settings not serialisable"),
        }
    }

    fn connection(&self) -> ConnectionView {
        let st = self.lock();
        match &st.tracker {
            Some(t) => t.connection.clone(),
            None => ConnectionView::disconnected(st.mode, now_ms()),
        }
    }

    fn signed_in(&self, service: Service) -> bool {
        self.lock()
            .accounts
            .iter()
            .any(|a| a.service == service && a.signed_in)
    }

    fn set_account(&self, account: AccountView) {
        let accounts = {
            let mut st = self.lock();
            match st
                .accounts
                .iter_mut()
                .find(|a| a.service == account.service)
            {
                Some(a) => *a = account,
                None => st.accounts.push(account),
            }
            st.accounts.clone()
        };
        self.emit(AppEvent::Accounts(accounts));
    }

    async fn neosc(&self) -> Result<NeoscClient, AppError> {
        let services = self.services();
        services.require_token(Service::Neosc).await?;
        services.neosc().await
    }

    async fn list_workspaces(&self) -> Result<WorkspacesView, AppError> {
        let client = self.neosc().await?;
        let workspaces = client.workspaces().await?;
        let sessions = client.sessions().await?;
        let view = WorkspacesView {
            workspaces: views::workspaces(workspaces),
            sessions: views::workspace_sessions(sessions),
            refreshed_ms: now_ms(),
        };
        self.emit(AppEvent::Workspaces(view.clone()));
        Ok(view)
    }

    /// Starts (or restarts) the core's NeoSC watcher; each change it sees refreshes the view.
    async fn start_watcher(&self) {
        let Ok(client) = self.neosc().await else {
            return;
        };
        let mut interval = self.inner.opts.workspace_refresh;
        if interval < crate::workspaces::REFRESH_INTERVAL
            && !self.services().is_loopback(Service::Neosc)
        {
            interval = crate::workspaces::REFRESH_INTERVAL;
        }
        let config = WatchConfig {
            interval,
            ..WatchConfig::default()
        };
        let (watcher, mut rx) = WorkspaceWatcher::spawn(
            Arc::new(client),
            Some((*self.inner.store).clone()),
            self.inner.clock.clone(),
            config,
        );
        let weak = Arc::downgrade(&self.inner);
        let task = tokio::spawn(async move {
            loop {
                let ev = match rx.recv().await {
                    Ok(ev) => ev,
                    Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => break,
                };
                let Some(inner) = weak.upgrade() else { break };
                let app = App { inner };
                match ev {
                    WorkspaceEvent::RefreshFailed { message, .. } => {
                        tracing::debug!(%message, "workspace refresh failed");
                    }
                    _ => {
                        // Coalesce a burst (every session on the first refresh) into one fetch.
                        while rx.try_recv().is_ok() {}
                        if let Err(e) = app.list_workspaces().await {
                            tracing::debug!(error = %e, "workspace list not refreshed");
                        }
                    }
                }
            }
        });
        if let Some((old, t)) = self.inner.watcher.lock().await.replace((watcher, task)) {
            t.abort();
            old.stop().await;
        }
    }

    async fn stop_watcher(&self) {
        if let Some((w, t)) = self.inner.watcher.lock().await.take() {
            t.abort();
            w.stop().await;
        }
    }

    async fn refresh_watcher(&self) {
        if let Some((w, _)) = self.inner.watcher.lock().await.as_ref() {
            w.refresh_now();
        }
    }

    async fn history_view(&self) -> Result<HistoryView, AppError> {
        let store = &self.inner.store;
        let rows = store
            .history(&HistoryQuery {
                limit: 500,
                ..HistoryQuery::default()
            })
            .await?;
        let days = store.totals_per_day().await?;
        let now = chrono::Utc::now();
        Ok(HistoryView {
            currency: rows.iter().find_map(|r| r.cost_currency.clone()),
            rows: rows.iter().map(|r| views::history_row(r, now)).collect(),
            days: views::day_totals(&days),
        })
    }

    async fn emit_history(&self) {
        match self.history_view().await {
            Ok(h) => self.emit(AppEvent::History(h)),
            Err(e) => tracing::warn!(error = %e, "history not refreshed"),
        }
    }

    /// Writes or removes the launch-at-login entry.
    fn apply_autostart(&self, enabled: bool) -> Result<(), AppError> {
        let o = &self.inner.opts;
        let dir = o
            .autostart_dir
            .clone()
            .ok_or_else(|| AppError::Autostart("no home directory".into()))?;
        let (exe, args) = match &o.autostart_command {
            Some((exe, args)) => (exe.clone(), args.clone()),
            None => (
                std::env::current_exe().map_err(|e| AppError::Autostart(e.to_string()))?,
                vec!["--minimized".to_string()],
            ),
        };
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        autostart::apply(&dir, enabled, &exe, &args).map_err(|e| AppError::Autostart(e.to_string()))
    }

    fn find_region(&self, r: &RegionRef) -> Option<RegionView> {
        self.lock()
            .regions
            .iter()
            .flat_map(|g| g.regions.iter())
            .find(|x| &x.reference == r)
            .cloned()
    }

    /// Waits (bounded) until the connection has settled in Disconnected or Error.
    pub async fn wait_settled(&self, bound: Duration) {
        let mut rx = self.inner.events.subscribe();
        let deadline = tokio::time::Instant::now() + bound;
        while !matches!(self.connection().phase, Phase::Disconnected | Phase::Error) {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Err(_) => return,
                Ok(Err(broadcast::error::RecvError::Closed)) => return,
                Ok(_) => {}
            }
        }
    }

    /// Follows one connection's events until the app moves on to another.
    async fn pump(self, mut rx: broadcast::Receiver<SessionEvent>, generation: u64) {
        use std::sync::atomic::Ordering;
        loop {
            let ev = match rx.recv().await {
                Ok(ev) => ev,
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(n, "session events lagged");
                    continue;
                }
                Err(broadcast::error::RecvError::Closed) => break,
            };
            if self.inner.generation.load(Ordering::SeqCst) != generation {
                break;
            }
            let now = now_ms();
            let (out, settled, credits) = {
                let mut st = self.lock();
                let Some(t) = st.tracker.as_mut() else { break };
                let out = t.apply(&ev, now);
                let settled = matches!(ev, SessionEvent::State { .. })
                    && matches!(t.connection.phase, Phase::Disconnected | Phase::Error);
                let credits = match ev {
                    SessionEvent::Credits {
                        credits_remaining, ..
                    } => Some(credits_remaining),
                    _ => None,
                };
                (out, settled, credits)
            };
            for e in out {
                self.emit(e);
            }
            if let Some(c) = credits {
                self.set_credits(c);
            }
            self.desktop_proxy_follow(&ev, settled).await;
            if matches!(ev, SessionEvent::Connected { .. })
                || settled
                || matches!(ev, SessionEvent::SessionEnded { .. })
            {
                self.emit_history().await;
            }
            if settled {
                // The session is over: release the instance lock for other front ends.
                if let Ok(mut running) = self.inner.running.try_lock() {
                    running.take();
                }
            }
        }
    }

    /// Everything a front end needs at start.
    pub async fn snapshot(&self) -> Snapshot {
        let connection = self.connection();
        let st = self.lock();
        Snapshot {
            accounts: st.accounts.clone(),
            connection,
            live: st.tracker.as_ref().and_then(|t| t.live.clone()),
            last_region: st.last_region.clone(),
            settings: st.settings.clone(),
            demo: self.inner.demo,
            version: env!("CARGO_PKG_VERSION").to_string(),
        }
    }

    /// Signs in to one service; the token goes to the secret store and is read back.
    pub async fn sign_in(&self, request: SignInRequest) -> Result<SignInOutcome, AppError> {
        let services = self.services();
        let (service, secret, label, services) = match request {
            SignInRequest::Orbnet {
                email,
                password,
                totp,
            } => {
                if email.trim().is_empty() || password.is_empty() {
                    return Err(AppError::invalid("Enter your email and password."));
                }
                let client = services.orbnet().await?;
                let req = LoginRequest {
                    email: email.trim().to_string(),
                    password: Secret::new(password),
                    totp_code: totp.filter(|t| !t.trim().is_empty()),
                    device_id: None,
                };
                match client.login(&req).await? {
                    LoginOutcome::TwoFactorRequired => return Ok(SignInOutcome::NeedsTwoFactor),
                    LoginOutcome::SignedIn { tokens, user } => {
                        let label = if user.email.is_empty() {
                            req.email
                        } else {
                            user.email
                        };
                        (Service::Orbnet, tokens.to_stored(), label, services)
                    }
                }
            }
            SignInRequest::Tunnelbyte { token } => {
                let secret = match token {
                    Some(t) if !t.trim().is_empty() => Secret::new(t.trim().to_string()),
                    Some(_) => return Err(AppError::invalid("Paste your API token.")),
                    None => {
                        let path =
                            crate::paths::tunnelbyte_cli_token_from(|k| std::env::var(k).ok())
                                .ok_or_else(|| {
                                    AppError::NotFound("No home directory to look in.".into())
                                })?;
                        read_cli_token(&path).map_err(|e| AppError::NotFound(e.to_string()))?
                    }
                };
                let client = services.tunnelbyte_with(secret.clone())?;
                let usage = client.usage().await?;
                // Kept bound to the origin that accepted it: it is never sent anywhere else.
                let stored = StoredToken::new(client.origin().clone(), secret).to_secret();
                (
                    Service::Tunnelbyte,
                    stored,
                    format!("{} tier", usage.tier),
                    services,
                )
            }
            SignInRequest::Neosc {
                server,
                email,
                password,
            } => {
                if email.trim().is_empty() || password.is_empty() {
                    return Err(AppError::invalid("Enter your email and password."));
                }
                let services = match server
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                {
                    Some(url) => {
                        check_base_url(Service::Neosc, &url)?;
                        let mut urls = self.lock().settings.base_urls.clone();
                        urls.neosc = url;
                        services.with_urls(urls.to_map())
                    }
                    None => services,
                };
                let mut client = services.neosc().await?;
                let auth = client.login(email.trim(), &Secret::new(password)).await?;
                let label = if auth.user.email.is_empty() {
                    email.trim().to_string()
                } else {
                    auth.user.email.clone()
                };
                let stored =
                    StoredToken::new(client.origin().clone(), auth.access_token).to_secret();
                (Service::Neosc, stored, label, services)
            }
        };
        // Read back before the window says "signed in": a keyring that drops it is an error.
        crate::secrets::keep(&*self.inner.secrets, service, secret).await?;
        if let Err(e) = self
            .inner
            .store
            .set_setting(&account_key(service), &label)
            .await
        {
            tracing::warn!(error = %e, "account label not saved");
        }
        if service == Service::Neosc {
            let url = services.base_url(Service::Neosc)?.to_string();
            let mut s = self.lock().settings.clone();
            if s.base_urls.neosc != url {
                s.base_urls.neosc = url;
                self.save_settings(s).await?;
            }
        }
        let credits = self
            .lock()
            .accounts
            .iter()
            .find(|a| a.service == service)
            .and_then(|a| a.credits);
        let account = AccountView {
            service,
            signed_in: true,
            label: Some(label),
            credits,
        };
        self.set_account(account.clone());
        if service == Service::Neosc {
            self.start_watcher().await;
            let _ = self.list_workspaces().await;
        } else {
            self.refresh_regions_later();
        }
        Ok(SignInOutcome::SignedIn { account })
    }

    /// Signs out of one service, ending its metered session first.
    pub async fn sign_out(&self, service: Service) -> Result<Vec<AccountView>, AppError> {
        let current = self.connection();
        if current.region.as_ref().map(|r| r.service) == Some(service)
            && !matches!(current.phase, Phase::Disconnected | Phase::Error)
        {
            self.disconnect().await?;
            self.wait_settled(Duration::from_secs(10)).await;
        }
        let services = self.services();
        match service {
            Service::Orbnet => {
                if services.token(service).await?.is_some() {
                    if let Ok(c) = services.orbnet().await {
                        if let Err(err) = c.logout().await {
                            tracing::warn!(%err, "OrbNET logout failed; forgetting the token anyway");
                        }
                    }
                }
            }
            Service::Neosc => {
                self.stop_watcher().await;
                if let Ok(c) = self.neosc().await {
                    if let Err(err) = c.logout().await {
                        tracing::warn!(%err, "NeoSC logout failed; forgetting the token anyway");
                    }
                }
            }
            Service::Tunnelbyte => {}
        }
        self.inner.secrets.delete(service).await?;
        let _ = self.inner.store.delete_setting(&account_key(service)).await;
        self.set_account(AccountView {
            service,
            signed_in: false,
            label: None,
            credits: None,
        });
        if service != Service::Neosc {
            self.refresh_regions_later();
        }
        Ok(self.lock().accounts.clone())
    }

    /// Reloads the regions in the background after a sign-in change (published as an event).
    fn refresh_regions_later(&self) {
        let app = self.clone();
        tokio::spawn(async move {
            app.regions().await;
        });
    }

    /// Regions of the signed-in services (published as [`AppEvent::Regions`] too).
    pub async fn regions(&self) -> Vec<RegionGroup> {
        let services = self.services();
        let mut groups = Vec::new();
        if self.signed_in(Service::Orbnet) {
            let listed = match services.orbnet().await {
                Ok(c) => c.servers().await.map_err(AppError::from),
                Err(e) => Err(e),
            };
            groups.push(match listed {
                Ok(servers) => RegionGroup {
                    service: Service::Orbnet,
                    regions: views::orbnet_regions(servers),
                    error: None,
                },
                Err(e) => RegionGroup {
                    service: Service::Orbnet,
                    regions: vec![],
                    error: Some(e.to_string()),
                },
            });
        }
        if self.signed_in(Service::Tunnelbyte) {
            let listed = match services.tunnelbyte().await {
                Ok(c) => c.regions().await.map_err(AppError::from),
                Err(e) => Err(e),
            };
            groups.push(match listed {
                Ok(regions) => RegionGroup {
                    service: Service::Tunnelbyte,
                    regions: views::tunnelbyte_regions(regions),
                    error: None,
                },
                Err(e) => RegionGroup {
                    service: Service::Tunnelbyte,
                    regions: vec![],
                    error: Some(e.to_string()),
                },
            });
        }
        self.lock().regions = groups.clone();
        self.emit(AppEvent::Regions(groups.clone()));
        groups
    }

    /// Starts a connection (returns at once, in the Connecting phase). Takes the per-user
    /// instance lock first: while another front end meters, this one is told where.
    pub async fn connect(&self, request: ConnectRequest) -> Result<ConnectionView, AppError> {
        use std::sync::atomic::Ordering;
        let mut running = self.inner.running.lock().await;
        let phase = self.connection().phase;
        if !matches!(phase, Phase::Disconnected | Phase::Error) {
            return Err(AppError::Busy);
        }
        // The previous session (if any) has ended: its lock goes before a new one is taken.
        running.take();
        let services = self.services();
        services.require_token(request.region.service).await?;
        if self.find_region(&request.region).is_none() {
            self.regions().await;
        }
        let region = self
            .find_region(&request.region)
            .ok_or_else(|| AppError::invalid("Unknown region."))?;
        if !region.available {
            return Err(AppError::Unavailable(
                region
                    .note
                    .unwrap_or_else(|| "That region is unavailable.".into()),
            ));
        }
        let o = &self.inner.opts;
        let (warn_minutes, allow_lan) = {
            let state = self.lock();
            (
                state.settings.notify.credit_warn_minutes.clone(),
                state.settings.allow_lan,
            )
        };
        let helper = crate::session::wg_tunnels::HelperLink::default();
        helper.set_allow_lan(allow_lan);
        let spec = LaunchSpec {
            service: request.region.service,
            target: Some(request.region.id.clone()),
            tunnels: WgTunnels {
                system: request.mode == TunnelMode::AllTraffic,
                proxy: o.proxy,
                any_port_if_taken: true,
                access: Default::default(),
                helper,
            },
            heartbeat: o.heartbeat,
            status_poll: Some(o.status_poll),
            handshake_timeout: o.handshake_timeout,
            traffic_every: Duration::from_secs(1),
            warn_minutes,
            front_end: o.front_end.clone(),
            // The budget (day, month and session caps) is read from the store by `launch`.
            caps: SessionCaps::default(),
        };
        let launched = launch(
            &services,
            self.inner.store.clone(),
            &o.data_dir,
            self.inner.clock.clone(),
            spec,
        )
        .await?;
        if launched.recovered.closed > 0 {
            tracing::info!(
                closed = launched.recovered.closed,
                "closed sessions left open by a crash"
            );
        }
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let credits = self
            .lock()
            .accounts
            .iter()
            .find(|a| a.service == request.region.service)
            .and_then(|a| a.credits);
        let mut tracker = ConnectionTracker::new(
            request.region.clone(),
            Some(region.label.clone()),
            request.mode,
            credits,
            now_ms(),
        );
        // For the live panel only: the launch checks the caps itself (and refuses a reached one).
        tracker.cap = session_caps(
            &self.inner.store,
            request.region.service,
            SessionCaps::default(),
        )
        .await
        .ok()
        .and_then(|t| CapView::tightest(t.caps()));
        let view = tracker.connection.clone();
        {
            let mut st = self.lock();
            st.tracker = Some(tracker);
            st.last_region = Some(request.region.clone());
            st.mode = request.mode;
        }
        if let Ok(json) = serde_json::to_string(&request.region) {
            let _ = self.inner.store.set_setting(LAST_REGION_KEY, &json).await;
        }
        self.emit(AppEvent::Connection(view.clone()));
        self.emit(AppEvent::Live(None));
        let Launched {
            handle,
            task,
            lock,
            helper,
            ..
        } = launched;
        let rx = handle.subscribe();
        handle.connect();
        let pump = tokio::spawn(self.clone().pump(rx, generation));
        let watched = handle.clone();
        let helper_watch = tokio::spawn(async move {
            helper.disconnect_requested().await;
            watched.disconnect();
        });
        *running = Some(Running {
            handle,
            _task: task,
            pump,
            helper_watch,
            _lock: lock,
        });
        Ok(view)
    }

    /// Moves to another region: ends the running session (billed to its last second), waits
    /// until it has settled, then connects to `request`. From idle it just connects.
    pub async fn switch(&self, request: ConnectRequest) -> Result<ConnectionView, AppError> {
        if !matches!(self.connection().phase, Phase::Disconnected | Phase::Error) {
            self.disconnect().await?;
            self.wait_settled(Duration::from_secs(15)).await;
        }
        self.connect(request).await
    }

    /// Ends the connection and its metered session.
    pub async fn disconnect(&self) -> Result<ConnectionView, AppError> {
        if let Some(r) = self.inner.running.lock().await.as_ref() {
            r.handle.disconnect();
        }
        Ok(self.connection())
    }

    /// NeoSC workspaces and sessions.
    pub async fn workspaces(&self) -> Result<WorkspacesView, AppError> {
        self.list_workspaces().await
    }

    /// Launches a workspace.
    pub async fn launch_workspace(&self, id: &str) -> Result<WorkspaceLaunchView, AppError> {
        let launched = self.neosc().await?.launch(id).await?;
        let base = self.services().base_url(Service::Neosc)?.to_string();
        self.refresh_watcher().await;
        Ok(WorkspaceLaunchView {
            open_url: launched.viewer_url(&base),
            workspaces: self.list_workspaces().await?,
        })
    }

    /// Stops a workspace.
    pub async fn stop_workspace(&self, id: &str) -> Result<WorkspacesView, AppError> {
        self.neosc().await?.stop(id).await?;
        self.refresh_watcher().await;
        self.list_workspaces().await
    }

    /// Disconnects one NeoSC session.
    pub async fn disconnect_workspace_session(&self, id: &str) -> Result<WorkspacesView, AppError> {
        self.neosc().await?.disconnect(id).await?;
        self.refresh_watcher().await;
        self.list_workspaces().await
    }

    /// Past sessions and daily totals.
    pub async fn history(&self) -> Result<HistoryView, AppError> {
        self.history_view().await
    }

    /// Points the desktop proxy at Ferry when an app-mode session connects (if the user asked
    /// for it) and gives the user's values back when the session settles.
    async fn desktop_proxy_follow(&self, ev: &SessionEvent, settled: bool) {
        let dir = self.inner.opts.data_dir.clone();
        if let SessionEvent::Connected {
            proxy: Some(socks),
            http_proxy,
            ..
        } = ev
        {
            if !self.lock().settings.desktop_proxy {
                return;
            }
            let (Ok(socks), http) = (
                socks.parse::<std::net::SocketAddr>(),
                http_proxy.as_deref().and_then(|h| h.parse().ok()),
            ) else {
                return;
            };
            use desktop_proxy::Desktop;
            match desktop_proxy::apply(Desktop::Gnome, &desktop_proxy::Gsettings, &dir, socks, http)
                .await
            {
                Ok(()) => tracing::info!(%socks, "GNOME's desktop proxy points at Ferry"),
                Err(e) => tracing::warn!(error = %e, "GNOME's desktop proxy not set"),
            }
            if let Some(kde) = desktop_proxy::Kconfig::find() {
                match desktop_proxy::apply(Desktop::Kde, &kde, &dir, socks, http).await {
                    Ok(()) => tracing::info!(%socks, "KDE's proxy points at Ferry"),
                    Err(e) => tracing::warn!(error = %e, "KDE's proxy not set"),
                }
                desktop_proxy::kde_reload().await;
            }
        } else if settled {
            self.restore_desktop_proxy().await;
        }
    }

    async fn restore_desktop_proxy(&self) {
        use desktop_proxy::Desktop;
        let dir = &self.inner.opts.data_dir;
        match desktop_proxy::restore(Desktop::Gnome, &desktop_proxy::Gsettings, dir).await {
            Ok(true) => tracing::info!("GNOME's desktop proxy restored"),
            Ok(false) => {}
            Err(e) => tracing::warn!(error = %e, "GNOME's desktop proxy not restored"),
        }
        // A KDE journal without the tools now (uninstalled since) cannot be undone; it stays.
        if let Some(kde) = desktop_proxy::Kconfig::find() {
            match desktop_proxy::restore(Desktop::Kde, &kde, dir).await {
                Ok(true) => {
                    tracing::info!("KDE's proxy restored");
                    desktop_proxy::kde_reload().await;
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "KDE's proxy not restored"),
            }
        }
    }

    /// Starts a browser in its own profile that browses through this app-mode session's SOCKS5
    /// proxy (DNS included); returns the program's name.
    pub async fn open_browser(&self) -> Result<String, AppError> {
        let proxy = self
            .lock()
            .tracker
            .as_ref()
            .and_then(|t| t.live.as_ref())
            .and_then(|l| l.proxy.clone());
        let socks: std::net::SocketAddr = proxy.and_then(|p| p.parse().ok()).ok_or_else(|| {
            AppError::invalid("Connect in app mode first: the browser goes through its proxy.")
        })?;
        let program = browser::launch(&self.inner.opts.data_dir, socks)
            .map_err(|e| AppError::Io(e.to_string()))?;
        Ok(program
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default())
    }

    /// The redacted diagnostics report (versions, state, settings, caps, the log's tail):
    /// no token, key, email or id in it.
    pub async fn diagnostics(&self) -> String {
        let snap = self.snapshot().await;
        let c = &snap.connection;
        let state = match (&c.region_label, &c.region) {
            (Some(label), Some(r)) => format!(
                "{:?} · {} {label} · {:?}",
                c.phase,
                r.service.as_str(),
                c.mode
            ),
            _ => format!("{:?}", c.phase),
        };
        let mut secrets = Vec::new();
        for s in Service::ALL {
            if let Ok(Some(t)) = self.services().token(s).await {
                secrets.push(t.expose().to_string());
            }
        }
        let budget = self.budget().await.unwrap_or_default();
        crate::diagnostics::report(&crate::diagnostics::ReportInputs {
            front_end: self.inner.opts.front_end.clone(),
            version: snap.version.clone(),
            state,
            accounts: snap
                .accounts
                .iter()
                .map(|a| (a.service.as_str().to_string(), a.signed_in))
                .collect(),
            settings: serde_json::to_string_pretty(&snap.settings).unwrap_or_default(),
            budget: serde_json::to_string_pretty(&budget).unwrap_or_default(),
            data_dir: self.inner.opts.log_dir.clone(),
            secrets,
        })
    }

    /// Spend per local day and per region, measured rates, the cheapest region per service
    /// and this month's projection, from the whole history.
    pub async fn insight(&self) -> Result<insight::InsightView, AppError> {
        let rows = self
            .inner
            .store
            .history(&HistoryQuery {
                limit: 10_000,
                ..HistoryQuery::default()
            })
            .await?;
        Ok(insight::insight(
            &rows,
            self.inner.clock.wall(),
            &chrono::Local,
        ))
    }

    /// The spend caps in force (empty: none).
    pub async fn budget(&self) -> Result<crate::meter::caps::Budget, AppError> {
        load_budget(&self.inner.store).await
    }

    /// Checks and stores the spend caps (the next session honours them); returns them.
    pub async fn save_budget(
        &self,
        budget: crate::meter::caps::Budget,
    ) -> Result<crate::meter::caps::Budget, AppError> {
        save_budget(&self.inner.store, &budget).await?;
        load_budget(&self.inner.store).await
    }

    /// Writes the history as CSV into the data dir; returns the file's path.
    pub async fn export_history_csv(&self) -> Result<String, AppError> {
        let name = format!(
            "ferry-history-{}.csv",
            chrono::Utc::now().format("%Y%m%d-%H%M%S")
        );
        let path = self.inner.opts.data_dir.join(name);
        self.inner
            .store
            .export_csv_file(&path)
            .await
            .map_err(|e: StoreError| AppError::Store(e))?;
        Ok(path.display().to_string())
    }

    /// Validates and stores settings (published as [`AppEvent::Settings`]).
    pub async fn save_settings(&self, settings: Settings) -> Result<Settings, AppError> {
        validate_settings(&settings)?;
        let before = self.lock().settings.clone();
        if settings.launch_at_login != before.launch_at_login {
            self.apply_autostart(settings.launch_at_login)?;
        }
        let urls_changed = before.base_urls != settings.base_urls;
        if before.desktop_proxy && !settings.desktop_proxy {
            self.restore_desktop_proxy().await;
        }
        self.store_settings(&settings).await;
        {
            let mut st = self.lock();
            st.settings = settings.clone();
            if urls_changed {
                st.regions.clear();
                st.services = st.services.with_urls(settings.base_urls.to_map());
            }
            if st.tracker.is_none() {
                st.mode = settings.default_mode;
            }
        }
        self.emit(AppEvent::Settings(settings.clone()));
        Ok(settings)
    }
}

/// Opens the history store in `data_dir` (0700, the file 0600) for a one-shot front end (the
/// CLI's commands); [`Store::quarantined`] tells whether a damaged one was set aside.
pub async fn open_store(data_dir: &std::path::Path) -> Result<Store, AppError> {
    Ok(Store::open_in(data_dir).await?)
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}
