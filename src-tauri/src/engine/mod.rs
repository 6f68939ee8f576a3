//! The engine behind the window and the tray: ferry-core's service clients (tokens in the
//! keyring), the session supervisor driving a real `ferry-tunnel` tunnel (app mode behind a local
//! proxy, or all traffic), history in the SQLite store, NeoSC workspaces refreshed every 30 s.
//! In the demo it also owns an in-process lab (see [`demo`]).

pub mod demo;
pub mod tracker;
pub mod views;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use ferry_core::clock::SystemClock;
use ferry_core::http::HttpSettings;
use ferry_core::meter::credits::CreditsConfig;
use ferry_core::meter::quota::POLL_INTERVAL;
use ferry_core::secrets::{Secret, SharedSecretStore};
use ferry_core::services::neosc::NeoscClient;
use ferry_core::services::orbnet::{
    LoginOutcome, LoginRequest, OrbnetClient, OrbnetTokens, StoreTokenSink,
};
use ferry_core::services::tunnelbyte::{read_cli_token, TunnelbyteClient};
use ferry_core::services::{ApiError, StoredToken};
use ferry_core::session::event::SessionEvent;
use ferry_core::session::orbnet::{OrbnetProvider, OrbnetSettings};
use ferry_core::session::recover::{reconcile_orbnet, reconcile_tunnelbyte};
use ferry_core::session::supervisor::{self, SupervisorHandle};
use ferry_core::session::tunnelbyte::{TunnelbyteProvider, TunnelbyteSettings};
use ferry_core::session::wg_tunnels::WgTunnels;
use ferry_core::store::{HistoryQuery, Store, StoreError};
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::backend::{validate_settings, Backend};
use crate::contract::{
    AccountView, BaseUrls, CommandError, ConnectRequest, ConnectionView, HistoryView, Phase,
    Region, RegionGroup, RegionRef, Service, Settings, SignInOutcome, SignInRequest, Snapshot,
    TunnelMode, UiEvent, WorkspacesView,
};
use tracker::Tracker;
use views::kind;

const SETTINGS_KEY: &str = "desktop.settings";
const LAST_REGION_KEY: &str = "desktop.last_region";

fn account_key(s: Service) -> String {
    format!("desktop.account.{}", kind(s).as_str())
}

/// How the engine runs.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// The app's private data directory (history database).
    pub data_dir: PathBuf,
    /// Fixed heartbeat interval instead of OrbNET's schedule (tests, demos).
    pub heartbeat: Option<Duration>,
    /// tunnelbyte status poll interval.
    pub status_poll: Duration,
    /// App mode: where the SOCKS5 proxy listens (any free port when taken).
    pub proxy: SocketAddr,
    /// How often NeoSC sessions are refreshed.
    pub workspace_refresh: Duration,
    /// Seconds to wait for the tunnel's first handshake.
    pub handshake_timeout: Duration,
    /// The demo writes its lab's URLs (control API included) here, for tests that drive the lab.
    pub demo_urls_file: Option<PathBuf>,
    /// Where the launch-at-login entry goes (`None`: no home, the setting is refused).
    pub autostart_dir: Option<PathBuf>,
}

impl EngineOptions {
    /// Defaults, with test and demo overrides from the environment: `FERRY_HEARTBEAT_SECS`,
    /// `FERRY_STATUS_POLL_SECS`, `FERRY_PROXY`, `FERRY_WORKSPACE_REFRESH_SECS`,
    /// `FERRY_DEMO_URLS_FILE`.
    pub fn from_env(data_dir: PathBuf) -> Self {
        let secs = |name: &str| {
            std::env::var(name)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(|s| Duration::from_secs(s.clamp(1, 3600)))
        };
        EngineOptions {
            data_dir,
            heartbeat: secs("FERRY_HEARTBEAT_SECS"),
            status_poll: secs("FERRY_STATUS_POLL_SECS").unwrap_or(POLL_INTERVAL),
            proxy: std::env::var("FERRY_PROXY")
                .ok()
                .and_then(|p| p.parse().ok())
                .unwrap_or(SocketAddr::from(([127, 0, 0, 1], 1080))),
            workspace_refresh: secs("FERRY_WORKSPACE_REFRESH_SECS")
                .unwrap_or(Duration::from_secs(30)),
            handshake_timeout: Duration::from_secs(15),
            demo_urls_file: std::env::var_os("FERRY_DEMO_URLS_FILE").map(PathBuf::from),
            autostart_dir: crate::autostart::dir_from(|k| std::env::var(k).ok()),
        }
    }
}

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The history database could not be opened.
    #[error("cannot open the history database: {0}")]
    Store(#[from] StoreError),
    /// The demo lab did not start.
    #[error("the demo lab did not start: {0}")]
    Lab(String),
}

struct Running {
    handle: SupervisorHandle,
    /// The supervisor task; it ends by itself once its last handle is gone.
    _task: JoinHandle<()>,
    pump: JoinHandle<()>,
}

impl Drop for Running {
    fn drop(&mut self) {
        self.pump.abort();
    }
}

struct State {
    accounts: Vec<AccountView>,
    tracker: Option<Tracker>,
    last_region: Option<RegionRef>,
    settings: Settings,
    regions: Vec<RegionGroup>,
    mode: TunnelMode,
}

struct Inner {
    opts: EngineOptions,
    demo: bool,
    secrets: SharedSecretStore,
    store: Arc<Store>,
    http: HttpSettings,
    events: broadcast::Sender<UiEvent>,
    state: Mutex<State>,
    running: tokio::sync::Mutex<Option<Running>>,
    generation: AtomicU64,
    _lab: Option<ferry_lab::Lab>,
}

/// The engine (cheap to clone).
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn api_error(e: ApiError) -> CommandError {
    let code = match &e {
        ApiError::Unauthorized { .. }
        | ApiError::NoToken { .. }
        | ApiError::TokenOriginMismatch { .. } => "not_signed_in",
        ApiError::NotSent { .. } | ApiError::AnswerLost { .. } => "network",
        ApiError::RateLimited { .. } => "rate_limited",
        ApiError::RegionUnavailable { .. } => "unavailable",
        _ if e.status() == Some(404) => "not_found",
        _ if e.status() == Some(409) => "conflict",
        _ => "service",
    };
    CommandError::new(code, e.to_string())
}

fn secrets_error(e: impl std::fmt::Display) -> CommandError {
    CommandError::new("keyring", format!("The keyring did not answer: {e}"))
}

fn store_error(e: StoreError) -> CommandError {
    CommandError::new("history", format!("The history database failed: {e}"))
}

impl Engine {
    /// Opens the engine: the history store in the data dir (a broken one is set aside and a
    /// temporary one used, so the app still works), saved settings, signed-in services.
    pub async fn open(
        opts: EngineOptions,
        secrets: SharedSecretStore,
        demo: bool,
        lab: Option<ferry_lab::Lab>,
    ) -> Result<Engine, EngineError> {
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
            let signed_in = match secrets.get(kind(service)).await {
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
        let engine = Engine {
            inner: Arc::new(Inner {
                opts,
                demo,
                secrets,
                store: Arc::new(store),
                http: HttpSettings::default(),
                events: broadcast::channel(256).0,
                state: Mutex::new(State {
                    accounts,
                    tracker: None,
                    last_region,
                    settings,
                    regions: vec![],
                    mode,
                }),
                running: tokio::sync::Mutex::new(None),
                generation: AtomicU64::new(0),
                _lab: lab,
            }),
        };
        engine.spawn_workspace_refresh();
        Ok(engine)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn emit(&self, e: UiEvent) {
        let _ = self.inner.events.send(e);
    }

    /// Uses these base URLs (the lab's, in the demo); not validated beyond the scheme.
    pub async fn set_base_urls(&self, urls: BaseUrls) {
        let mut s = self.lock().settings.clone();
        s.base_urls = urls;
        self.store_settings(&s).await;
        self.lock().settings = s;
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
        self.emit(UiEvent::Accounts(accounts));
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

    fn urls(&self) -> BaseUrls {
        self.lock().settings.base_urls.clone()
    }

    fn connection(&self) -> ConnectionView {
        let st = self.lock();
        match &st.tracker {
            Some(t) => t.connection.clone(),
            None => ConnectionView::disconnected(st.mode, now_ms()),
        }
    }

    async fn token(&self, service: Service) -> Result<Secret, CommandError> {
        self.inner
            .secrets
            .get(kind(service))
            .await
            .map_err(secrets_error)?
            .ok_or_else(|| {
                CommandError::new(
                    "not_signed_in",
                    format!("Sign in to {} first.", service.display_name()),
                )
            })
    }

    async fn orbnet(&self) -> Result<OrbnetClient, CommandError> {
        let token = self.token(Service::Orbnet).await?;
        Ok(
            OrbnetClient::new(&self.urls().orbnet, self.inner.http.clone())
                .map_err(api_error)?
                .with_tokens(Some(OrbnetTokens::from_stored(&token)))
                .with_token_sink(Arc::new(StoreTokenSink(self.inner.secrets.clone()))),
        )
    }

    async fn tunnelbyte(&self) -> Result<TunnelbyteClient, CommandError> {
        let token = self.token(Service::Tunnelbyte).await?;
        Ok(
            TunnelbyteClient::new(&self.urls().tunnelbyte, self.inner.http.clone())
                .map_err(api_error)?
                .with_token(Some(token)),
        )
    }

    async fn neosc(&self) -> Result<NeoscClient, CommandError> {
        let token = self.token(Service::Neosc).await?;
        Ok(
            NeoscClient::new(&self.urls().neosc, self.inner.http.clone())
                .map_err(api_error)?
                .with_token(Some(token)),
        )
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
        self.emit(UiEvent::Accounts(accounts));
    }

    async fn list_workspaces(&self) -> Result<WorkspacesView, CommandError> {
        let client = self.neosc().await?;
        let workspaces = client.workspaces().await.map_err(api_error)?;
        let sessions = client.sessions().await.map_err(api_error)?;
        let view = WorkspacesView {
            workspaces: views::workspaces(workspaces),
            sessions: views::workspace_sessions(sessions),
            refreshed_ms: now_ms(),
        };
        self.emit(UiEvent::Workspaces(view.clone()));
        Ok(view)
    }

    fn spawn_workspace_refresh(&self) {
        let weak = Arc::downgrade(&self.inner);
        let every = self.inner.opts.workspace_refresh;
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            tick.tick().await;
            loop {
                tick.tick().await;
                let Some(inner) = weak.upgrade() else { break };
                let engine = Engine { inner };
                if engine.signed_in(Service::Neosc) {
                    if let Err(e) = engine.list_workspaces().await {
                        tracing::debug!(error = %e, "workspace refresh failed");
                    }
                }
            }
        });
    }

    async fn history_view(&self) -> Result<HistoryView, CommandError> {
        let store = &self.inner.store;
        let rows = store
            .history(&HistoryQuery {
                limit: 500,
                ..HistoryQuery::default()
            })
            .await
            .map_err(store_error)?;
        let days = store.totals_per_day().await.map_err(store_error)?;
        let now = chrono::Utc::now();
        Ok(HistoryView {
            rows: rows.iter().map(|r| views::history_row(r, now)).collect(),
            days: views::day_totals(&days),
        })
    }

    async fn emit_history(&self) {
        match self.history_view().await {
            Ok(h) => self.emit(UiEvent::History(h)),
            Err(e) => tracing::warn!(error = %e, "history not refreshed"),
        }
    }

    /// Writes or removes the launch-at-login entry (starting this binary minimized).
    fn apply_autostart(&self, enabled: bool) -> Result<(), CommandError> {
        let fail = |e: String| {
            CommandError::new(
                "autostart",
                format!("Could not change launch at login: {e}"),
            )
        };
        let dir = self
            .inner
            .opts
            .autostart_dir
            .clone()
            .ok_or_else(|| fail("no home directory".into()))?;
        let exe = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
        let args: &[&str] = if self.inner.demo {
            &["--minimized", "--demo"]
        } else {
            &["--minimized"]
        };
        crate::autostart::apply(&dir, enabled, &exe, args).map_err(|e| fail(e.to_string()))
    }

    fn find_region(&self, r: &RegionRef) -> Option<Region> {
        self.lock()
            .regions
            .iter()
            .flat_map(|g| g.regions.iter())
            .find(|x| &x.reference == r)
            .cloned()
    }

    /// Waits (bounded) until the connection has settled in Disconnected or Error.
    async fn wait_settled(&self, bound: Duration) {
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

    async fn start_supervisor(
        &self,
        request: &ConnectRequest,
    ) -> Result<(SupervisorHandle, JoinHandle<()>), CommandError> {
        let tunnels = WgTunnels {
            system: request.mode == TunnelMode::AllTraffic,
            proxy: self.inner.opts.proxy,
            any_port_if_taken: true,
        };
        let clock = SystemClock::shared();
        let store = self.inner.store.clone();
        let o = &self.inner.opts;
        match request.region.service {
            Service::Orbnet => {
                let server = request.region.id.parse::<i64>().map_err(|_| {
                    CommandError::new("invalid_input", "That is not an OrbNET server.")
                })?;
                let client = Arc::new(self.orbnet().await?);
                let r = reconcile_orbnet(&*client, &*store, &*clock).await;
                if r.closed > 0 {
                    tracing::info!(closed = r.closed, "closed sessions left open by a crash");
                }
                let settings = OrbnetSettings {
                    server: Some(server),
                    credits: CreditsConfig {
                        heartbeat_override: o.heartbeat,
                        ..CreditsConfig::default()
                    },
                    handshake_timeout: o.handshake_timeout,
                    traffic_every: Duration::from_secs(1),
                    ..OrbnetSettings::default()
                };
                let provider = OrbnetProvider::new(client, tunnels, store, clock.clone(), settings);
                Ok(supervisor::spawn(provider, clock))
            }
            Service::Tunnelbyte => {
                let client = Arc::new(self.tunnelbyte().await?);
                let r = reconcile_tunnelbyte(&*client, &*store).await;
                if r.closed > 0 {
                    tracing::info!(closed = r.closed, "closed sessions left open by a crash");
                }
                let settings = TunnelbyteSettings {
                    region: Some(request.region.id.clone()),
                    poll: o.status_poll,
                    handshake_timeout: o.handshake_timeout,
                };
                let provider =
                    TunnelbyteProvider::new(client, tunnels, store, clock.clone(), settings);
                Ok(supervisor::spawn(provider, clock))
            }
            Service::Neosc => Err(CommandError::new(
                "invalid_input",
                "NeoSC has no tunnel; pick an OrbNET server or a tunnelbyte region.",
            )),
        }
    }

    /// Follows one connection's events until the engine moves on to another.
    async fn pump(self, mut rx: broadcast::Receiver<SessionEvent>, generation: u64) {
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
            if settled || matches!(ev, SessionEvent::SessionEnded { .. }) {
                self.emit_history().await;
            }
        }
    }
}

#[async_trait]
impl Backend for Engine {
    async fn snapshot(&self) -> Snapshot {
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

    async fn sign_in(&self, request: SignInRequest) -> Result<SignInOutcome, CommandError> {
        let urls = self.urls();
        let http = self.inner.http.clone();
        let (service, secret, label) = match request {
            SignInRequest::Orbnet {
                email,
                password,
                totp,
            } => {
                if email.trim().is_empty() || password.is_empty() {
                    return Err(CommandError::new(
                        "invalid_input",
                        "Enter your email and password.",
                    ));
                }
                let client = OrbnetClient::new(&urls.orbnet, http).map_err(api_error)?;
                let req = LoginRequest {
                    email: email.trim().to_string(),
                    password: Secret::new(password),
                    totp_code: totp.filter(|t| !t.trim().is_empty()),
                    device_id: None,
                };
                match client.login(&req).await.map_err(api_error)? {
                    LoginOutcome::TwoFactorRequired => return Ok(SignInOutcome::NeedsTwoFactor),
                    LoginOutcome::SignedIn { tokens, user } => {
                        let label = if user.email.is_empty() {
                            req.email
                        } else {
                            user.email
                        };
                        (Service::Orbnet, tokens.to_stored(), label)
                    }
                }
            }
            SignInRequest::Tunnelbyte { token } => {
                let secret = match token {
                    Some(t) if !t.trim().is_empty() => Secret::new(t.trim().to_string()),
                    Some(_) => {
                        return Err(CommandError::new("invalid_input", "Paste your API token."))
                    }
                    None => {
                        let path =
                            ferry_core::paths::tunnelbyte_cli_token_from(|k| std::env::var(k).ok())
                                .ok_or_else(|| {
                                    CommandError::new("not_found", "No home directory to look in.")
                                })?;
                        read_cli_token(&path)
                            .map_err(|e| CommandError::new("not_found", e.to_string()))?
                    }
                };
                let client = TunnelbyteClient::new(&urls.tunnelbyte, http)
                    .map_err(api_error)?
                    .with_token(Some(secret.clone()));
                let usage = client.usage().await.map_err(api_error)?;
                let stored = StoredToken::new(client.origin().clone(), secret).to_secret();
                (Service::Tunnelbyte, stored, format!("{} tier", usage.tier))
            }
            SignInRequest::Neosc { email, password } => {
                if email.trim().is_empty() || password.is_empty() {
                    return Err(CommandError::new(
                        "invalid_input",
                        "Enter your email and password.",
                    ));
                }
                let mut client = NeoscClient::new(&urls.neosc, http).map_err(api_error)?;
                let auth = client
                    .login(email.trim(), &Secret::new(password))
                    .await
                    .map_err(api_error)?;
                let label = if auth.user.email.is_empty() {
                    email.trim().to_string()
                } else {
                    auth.user.email.clone()
                };
                let stored =
                    StoredToken::new(client.origin().clone(), auth.access_token).to_secret();
                (Service::Neosc, stored, label)
            }
        };
        self.inner
            .secrets
            .set(kind(service), secret)
            .await
            .map_err(secrets_error)?;
        if let Err(e) = self
            .inner
            .store
            .set_setting(&account_key(service), &label)
            .await
        {
            tracing::warn!(error = %e, "account label not saved");
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
            let _ = self.list_workspaces().await;
        }
        Ok(SignInOutcome::SignedIn { account })
    }

    async fn sign_out(&self, service: Service) -> Result<Vec<AccountView>, CommandError> {
        // End the metered session of that service first.
        let current = self.connection();
        if current.region.as_ref().map(|r| r.service) == Some(service)
            && !matches!(current.phase, Phase::Disconnected | Phase::Error)
        {
            self.disconnect().await?;
            self.wait_settled(Duration::from_secs(10)).await;
        }
        match service {
            Service::Orbnet => {
                if let Ok(c) = self.orbnet().await {
                    if let Err(err) = c.logout().await {
                        tracing::warn!(%err, "OrbNET logout failed; forgetting the token anyway");
                    }
                }
            }
            Service::Neosc => {
                if let Ok(c) = self.neosc().await {
                    if let Err(err) = c.logout().await {
                        tracing::warn!(%err, "NeoSC logout failed; forgetting the token anyway");
                    }
                }
            }
            Service::Tunnelbyte => {}
        }
        self.inner
            .secrets
            .delete(kind(service))
            .await
            .map_err(secrets_error)?;
        let _ = self.inner.store.delete_setting(&account_key(service)).await;
        self.set_account(AccountView {
            service,
            signed_in: false,
            label: None,
            credits: None,
        });
        Ok(self.lock().accounts.clone())
    }

    async fn regions(&self) -> Vec<RegionGroup> {
        let mut groups = Vec::new();
        if self.signed_in(Service::Orbnet) {
            let listed = match self.orbnet().await {
                Ok(c) => c.servers().await.map_err(api_error),
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
                    error: Some(e.message),
                },
            });
        }
        if self.signed_in(Service::Tunnelbyte) {
            let listed =
                match TunnelbyteClient::new(&self.urls().tunnelbyte, self.inner.http.clone()) {
                    Ok(c) => c.regions().await.map_err(api_error),
                    Err(e) => Err(api_error(e)),
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
                    error: Some(e.message),
                },
            });
        }
        self.lock().regions = groups.clone();
        groups
    }

    async fn connect(&self, request: ConnectRequest) -> Result<ConnectionView, CommandError> {
        let mut running = self.inner.running.lock().await;
        let phase = self.connection().phase;
        if !matches!(phase, Phase::Disconnected | Phase::Error) {
            return Err(CommandError::new(
                "busy",
                "A connection is already running; disconnect it first.",
            ));
        }
        self.token(request.region.service).await?;
        if self.find_region(&request.region).is_none() {
            self.regions().await;
        }
        let region = self
            .find_region(&request.region)
            .ok_or_else(|| CommandError::new("invalid_input", "Unknown region."))?;
        if !region.available {
            return Err(CommandError::new(
                "unavailable",
                region
                    .note
                    .unwrap_or_else(|| "That region is unavailable.".into()),
            ));
        }
        let (handle, task) = self.start_supervisor(&request).await?;
        let generation = self.inner.generation.fetch_add(1, Ordering::SeqCst) + 1;
        let credits = self
            .lock()
            .accounts
            .iter()
            .find(|a| a.service == request.region.service)
            .and_then(|a| a.credits);
        let tracker = Tracker::new(
            request.region.clone(),
            Some(region.label.clone()),
            request.mode,
            credits,
            now_ms(),
        );
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
        self.emit(UiEvent::Connection(view.clone()));
        self.emit(UiEvent::Live(None));
        let rx = handle.subscribe();
        handle.connect();
        let pump = tokio::spawn(self.clone().pump(rx, generation));
        *running = Some(Running {
            handle,
            _task: task,
            pump,
        });
        Ok(view)
    }

    async fn disconnect(&self) -> Result<ConnectionView, CommandError> {
        if let Some(r) = self.inner.running.lock().await.as_ref() {
            r.handle.disconnect();
        }
        Ok(self.connection())
    }

    async fn workspaces(&self) -> Result<WorkspacesView, CommandError> {
        self.list_workspaces().await
    }

    async fn launch_workspace(&self, id: &str) -> Result<WorkspacesView, CommandError> {
        self.neosc().await?.launch(id).await.map_err(api_error)?;
        self.list_workspaces().await
    }

    async fn stop_workspace(&self, id: &str) -> Result<WorkspacesView, CommandError> {
        self.neosc().await?.stop(id).await.map_err(api_error)?;
        self.list_workspaces().await
    }

    async fn disconnect_workspace_session(&self, id: &str) -> Result<WorkspacesView, CommandError> {
        self.neosc()
            .await?
            .disconnect(id)
            .await
            .map_err(api_error)?;
        self.list_workspaces().await
    }

    async fn history(&self) -> Result<HistoryView, CommandError> {
        self.history_view().await
    }

    async fn export_history_csv(&self) -> Result<String, CommandError> {
        let name = format!(
            "ferry-history-{}.csv",
            chrono::Utc::now().format("%Y%m%d-%H%M%S")
        );
        let path = self.inner.opts.data_dir.join(name);
        self.inner
            .store
            .export_csv_file(&path)
            .await
            .map_err(store_error)?;
        Ok(path.display().to_string())
    }

    async fn save_settings(&self, settings: Settings) -> Result<Settings, CommandError> {
        validate_settings(&settings)?;
        let before = self.lock().settings.launch_at_login;
        if settings.launch_at_login != before {
            self.apply_autostart(settings.launch_at_login)?;
        }
        let urls_changed = self.urls() != settings.base_urls;
        self.store_settings(&settings).await;
        {
            let mut st = self.lock();
            st.settings = settings.clone();
            if urls_changed {
                st.regions.clear();
            }
            if st.tracker.is_none() {
                st.mode = settings.default_mode;
            }
        }
        self.emit(UiEvent::Settings(settings.clone()));
        Ok(settings)
    }

    fn subscribe(&self) -> broadcast::Receiver<UiEvent> {
        self.inner.events.subscribe()
    }
}
