//! A simulated engine behind [`Backend`]: in-memory accounts, regions, a metered session that
//! ticks, NeoSC workspaces and a history. It lets the UI, the tray and the GUI tests run before
//! ferry-core's supervisor is wired in; it is not a stand-in for the vendors (that is the lab).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::backend::{validate_settings, Backend};
use crate::contract::{
    AccountView, CommandError, ConnectRequest, ConnectionView, DayTotal, ErrorView, HistoryRow,
    HistoryView, LiveView, MeterView, Phase, QuotaUnit, QuotaView, Region, RegionGroup, RegionRef,
    Sample, Service, Settings, SignInOutcome, SignInRequest, Snapshot, TunnelMode, UiEvent,
    WorkspaceSessionView, WorkspaceView, WorkspacesView,
};

/// Timing of the simulation.
#[derive(Debug, Clone, Copy)]
pub struct SimConfig {
    /// Time between live updates.
    pub tick: Duration,
    /// Time spent in Connecting and Disconnecting.
    pub transition: Duration,
    /// Credits burnt per tick.
    pub credits_per_tick: f64,
    /// Start signed in to all three services (the demo).
    pub signed_in: bool,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            tick: Duration::from_secs(1),
            transition: Duration::from_millis(700),
            credits_per_tick: 0.1,
            signed_in: false,
        }
    }
}

struct SimState {
    accounts: Vec<AccountView>,
    connection: ConnectionView,
    live: Option<LiveView>,
    last_region: Option<RegionRef>,
    settings: Settings,
    workspaces: Vec<WorkspaceView>,
    sessions: Vec<WorkspaceSessionView>,
    history: Vec<HistoryRow>,
    generation: u64,
    next_id: u64,
}

/// The simulated engine.
pub struct SimBackend {
    config: SimConfig,
    state: Arc<Mutex<SimState>>,
    events: broadcast::Sender<UiEvent>,
    demo: bool,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

fn regions() -> Vec<RegionGroup> {
    let r =
        |service, id: &str, label: &str, country: Option<&str>, nodes, note: Option<&str>| Region {
            reference: RegionRef {
                service,
                id: id.into(),
            },
            label: label.into(),
            country: country.map(Into::into),
            nodes,
            available: note.is_none(),
            note: note.map(Into::into),
        };
    vec![
        RegionGroup {
            service: Service::Orbnet,
            regions: vec![
                r(
                    Service::Orbnet,
                    "srv-par-1",
                    "Paris",
                    Some("France"),
                    None,
                    None,
                ),
                r(
                    Service::Orbnet,
                    "srv-osl-1",
                    "Oslo",
                    Some("Norway"),
                    None,
                    None,
                ),
                r(
                    Service::Orbnet,
                    "srv-tyo-1",
                    "Tokyo",
                    Some("Japan"),
                    None,
                    None,
                ),
            ],
            error: None,
        },
        RegionGroup {
            service: Service::Tunnelbyte,
            regions: vec![
                r(
                    Service::Tunnelbyte,
                    "eu-west",
                    "eu-west",
                    None,
                    Some(3),
                    None,
                ),
                r(
                    Service::Tunnelbyte,
                    "us-east",
                    "us-east",
                    None,
                    Some(2),
                    None,
                ),
                r(
                    Service::Tunnelbyte,
                    "ap-south",
                    "ap-south",
                    None,
                    Some(0),
                    Some("no active node in region ap-south; available: eu-west, us-east"),
                ),
            ],
            error: None,
        },
    ]
}

fn lock(m: &Mutex<SimState>) -> MutexGuard<'_, SimState> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl SimBackend {
    /// A simulation; `demo` marks the snapshot as the demo.
    pub fn new(config: SimConfig, demo: bool) -> Self {
        let now = now_ms();
        let accounts = Service::ALL
            .into_iter()
            .map(|service| AccountView {
                service,
                signed_in: config.signed_in,
                label: config.signed_in.then(|| match service {
                    Service::Orbnet => "alice@example.com".to_string(),
                    Service::Tunnelbyte => "paid tier".to_string(),
                    Service::Neosc => "dana@example.com".to_string(),
                }),
                credits: (config.signed_in && service == Service::Orbnet).then_some(25.0),
            })
            .collect();
        let ws = |id: &str, name: &str, state: &str| WorkspaceView {
            id: id.into(),
            name: name.into(),
            state: state.into(),
        };
        let session = |id: &str, workspace: &str, kind: &str, ago_min: i64, active: bool| {
            WorkspaceSessionView {
                id: id.into(),
                workspace: workspace.into(),
                kind: kind.into(),
                started_ms: now - ago_min * 60_000,
                ended_ms: (!active).then_some(now - (ago_min - 20) * 60_000),
                active,
                tunnel: if active { "connected" } else { "closed" }.into(),
                mfa: true,
            }
        };
        let history = vec![HistoryRow {
            id: "h-1".into(),
            service: Service::Tunnelbyte,
            region: "eu-west".into(),
            started_ms: now - 26 * 3_600_000,
            duration_s: 2_700,
            credits_used: None,
            cost_millicents: Some(12_500),
            bytes: 734_003_200,
            end_reason: Some("user".into()),
        }];
        let state = SimState {
            accounts,
            connection: ConnectionView::disconnected(TunnelMode::App, now),
            live: None,
            last_region: None,
            settings: Settings::default(),
            workspaces: vec![
                ws("ws-dev", "Dev box", "running"),
                ws("ws-design", "Design studio", "stopped"),
            ],
            sessions: vec![
                session("ns-1", "Dev box", "desktop", 42, true),
                session("ns-2", "Dev box", "browser", 5, true),
                session("ns-0", "Design studio", "desktop", 180, false),
            ],
            history: if config.signed_in { history } else { vec![] },
            generation: 0,
            next_id: 2,
        };
        let (events, _) = broadcast::channel(256);
        SimBackend {
            config,
            state: Arc::new(Mutex::new(state)),
            events,
            demo,
        }
    }

    /// Sends an event on the stream.
    pub(crate) fn emit(&self, e: UiEvent) {
        let _ = self.events.send(e);
    }

    /// Replaces one account's sign-in state (used by engines that sign in for real).
    pub(crate) fn set_account(&self, account: AccountView) {
        let mut st = lock(&self.state);
        match st
            .accounts
            .iter_mut()
            .find(|a| a.service == account.service)
        {
            Some(a) => *a = account,
            None => st.accounts.push(account),
        }
        self.emit(UiEvent::Accounts(st.accounts.clone()));
    }

    /// The current settings.
    pub(crate) fn settings(&self) -> Settings {
        lock(&self.state).settings.clone()
    }

    /// Replaces the settings without validation (start-up values).
    pub(crate) fn set_settings(&self, settings: Settings) {
        lock(&self.state).settings = settings;
    }

    /// Sets the starting OrbNET balance of the simulated account.
    pub(crate) fn set_credits(&self, credits: f64) {
        let mut st = lock(&self.state);
        if let Some(a) = st
            .accounts
            .iter_mut()
            .find(|a| a.service == Service::Orbnet)
        {
            a.credits = Some(credits);
        }
    }

    fn require(&self, service: Service) -> Result<(), CommandError> {
        if lock(&self.state)
            .accounts
            .iter()
            .any(|a| a.service == service && a.signed_in)
        {
            Ok(())
        } else {
            Err(CommandError::new(
                "not_signed_in",
                format!("Sign in to {} first.", service.display_name()),
            ))
        }
    }

    /// Starts the simulated session to `region` (already resolved by the caller).
    pub(crate) async fn connect_region(
        &self,
        request: ConnectRequest,
        region: Region,
    ) -> Result<ConnectionView, CommandError> {
        self.require(request.region.service)?;
        if !region.available {
            return Err(CommandError::new(
                "unavailable",
                region.note.unwrap_or_else(|| "Region unavailable.".into()),
            ));
        }
        let generation = {
            let mut st = lock(&self.state);
            if !matches!(st.connection.phase, Phase::Disconnected | Phase::Error) {
                return Err(CommandError::new("busy", "Disconnect first."));
            }
            if request.region.service == Service::Orbnet
                && st
                    .accounts
                    .iter()
                    .any(|a| a.service == Service::Orbnet && a.credits.unwrap_or(0.0) <= 0.0)
            {
                return Err(CommandError::new(
                    "insufficient_credits",
                    "Your OrbNET account has no credits left. Top up, then connect.",
                ));
            }
            st.generation += 1;
            st.last_region = Some(request.region.clone());
            st.connection = ConnectionView {
                phase: Phase::Connecting,
                region: Some(request.region.clone()),
                region_label: Some(region.label.clone()),
                mode: request.mode,
                error: None,
                since_ms: now_ms(),
            };
            self.emit(UiEvent::Connection(st.connection.clone()));
            st.generation
        };
        self.spawn_session(generation);
        Ok(lock(&self.state).connection.clone())
    }

    fn workspaces_view(st: &SimState) -> WorkspacesView {
        let mut sessions = st.sessions.clone();
        sessions.sort_by(|a, b| {
            b.active
                .cmp(&a.active)
                .then(b.started_ms.cmp(&a.started_ms))
        });
        WorkspacesView {
            workspaces: st.workspaces.clone(),
            sessions,
            refreshed_ms: now_ms(),
        }
    }

    fn history_view(st: &SimState) -> HistoryView {
        let mut rows = st.history.clone();
        rows.sort_by_key(|r| std::cmp::Reverse(r.started_ms));
        let mut days: Vec<DayTotal> = Vec::new();
        for r in &rows {
            let day = chrono::DateTime::from_timestamp_millis(r.started_ms)
                .map(|t| {
                    t.with_timezone(&chrono::Local)
                        .format("%Y-%m-%d")
                        .to_string()
                })
                .unwrap_or_default();
            let total = match days.iter_mut().find(|d| d.day == day) {
                Some(d) => d,
                None => {
                    days.push(DayTotal {
                        day,
                        sessions: 0,
                        duration_s: 0,
                        credits_used: 0.0,
                        cost_millicents: 0,
                        bytes: 0,
                    });
                    let last = days.len() - 1;
                    &mut days[last]
                }
            };
            total.sessions += 1;
            total.duration_s += r.duration_s;
            total.credits_used += r.credits_used.unwrap_or(0.0);
            total.cost_millicents += r.cost_millicents.unwrap_or(0);
            total.bytes += r.bytes;
        }
        HistoryView { rows, days }
    }

    /// Ends the metered session: closes the history row and sets the phase.
    fn finish(st: &mut SimState, reason: &str, error: Option<ErrorView>) -> ConnectionView {
        let now = now_ms();
        if let (Some(live), Some(region)) = (&st.live, &st.connection.region) {
            let (credits_used, cost) = match &live.meter {
                MeterView::Credits { spent, .. } => (Some(*spent), None),
                MeterView::Quota {
                    cost_millicents, ..
                } => (None, *cost_millicents),
            };
            let id = format!("h-{}", st.next_id);
            st.next_id += 1;
            st.history.push(HistoryRow {
                id,
                service: region.service,
                region: st
                    .connection
                    .region_label
                    .clone()
                    .unwrap_or_else(|| region.id.clone()),
                started_ms: live.started_ms,
                duration_s: u64::try_from((now - live.started_ms) / 1000).unwrap_or(0),
                credits_used,
                cost_millicents: cost,
                bytes: live.bytes_in + live.bytes_out,
                end_reason: Some(reason.into()),
            });
        }
        st.generation += 1;
        st.live = None;
        st.connection.phase = if error.is_some() {
            Phase::Error
        } else {
            Phase::Disconnected
        };
        st.connection.error = error;
        st.connection.since_ms = now;
        if st.connection.phase == Phase::Disconnected {
            st.connection.region = None;
            st.connection.region_label = None;
        }
        st.connection.clone()
    }

    fn spawn_session(&self, generation: u64) {
        let state = Arc::clone(&self.state);
        let events = self.events.clone();
        let cfg = self.config;
        tokio::spawn(async move {
            tokio::time::sleep(cfg.transition).await;
            let started = {
                let mut st = lock(&state);
                if st.generation != generation || st.connection.phase != Phase::Connecting {
                    return;
                }
                let now = now_ms();
                let Some(region) = st.connection.region.clone() else {
                    return;
                };
                let meter = match region.service {
                    Service::Orbnet => MeterView::Credits {
                        left: st
                            .accounts
                            .iter()
                            .find(|a| a.service == Service::Orbnet)
                            .and_then(|a| a.credits)
                            .unwrap_or(0.0),
                        burn_per_minute: cfg.credits_per_tick * 60_000.0
                            / cfg.tick.as_millis().max(1) as f64,
                        spent: 0.0,
                    },
                    _ => MeterView::Quota {
                        cost_millicents: Some(0),
                        quotas: vec![
                            QuotaView {
                                label: "Data today".into(),
                                unit: QuotaUnit::Bytes,
                                used: 6_200_000_000,
                                limit: Some(10_737_418_240),
                                resets_at_ms: Some(now + (3 * 3600 + 12 * 60) * 1000),
                            },
                            QuotaView {
                                label: "Time this month".into(),
                                unit: QuotaUnit::Seconds,
                                used: 41 * 3600,
                                limit: Some(50 * 3600),
                                resets_at_ms: Some(now + 9 * 86_400_000),
                            },
                        ],
                    },
                };
                st.connection.phase = Phase::Connected;
                st.connection.since_ms = now;
                st.live = Some(LiveView {
                    started_ms: now,
                    at_ms: now,
                    exit_ip: Some("198.51.100.23".into()),
                    bytes_in: 0,
                    bytes_out: 0,
                    rate_in: 0.0,
                    rate_out: 0.0,
                    meter,
                    samples: vec![],
                });
                (st.connection.clone(), st.live.clone())
            };
            let _ = events.send(UiEvent::Connection(started.0));
            let _ = events.send(UiEvent::Live(started.1));
            let mut n: u64 = 0;
            loop {
                tokio::time::sleep(cfg.tick).await;
                n += 1;
                let mut out = Vec::new();
                {
                    let mut st = lock(&state);
                    if st.generation != generation || st.connection.phase != Phase::Connected {
                        return;
                    }
                    let now = now_ms();
                    let secs = cfg.tick.as_secs_f64().max(0.001);
                    let (rin, rout) = (180_000 + (n % 7) * 40_000, 24_000 + (n % 5) * 6_000);
                    let mut depleted = false;
                    let mut credits_left = None;
                    if let Some(live) = st.live.as_mut() {
                        live.at_ms = now;
                        live.bytes_in += rin;
                        live.bytes_out += rout;
                        live.rate_in = rin as f64 / secs;
                        live.rate_out = rout as f64 / secs;
                        let meter_value = match &mut live.meter {
                            MeterView::Credits { left, spent, .. } => {
                                let burn = cfg.credits_per_tick.min(*left);
                                *left -= burn;
                                *spent += burn;
                                depleted = *left <= 1e-9;
                                credits_left = Some(*left);
                                *left
                            }
                            MeterView::Quota {
                                cost_millicents,
                                quotas,
                            } => {
                                let c = cost_millicents.get_or_insert(0);
                                *c += 350;
                                for q in quotas.iter_mut() {
                                    q.used += match q.unit {
                                        QuotaUnit::Bytes => rin + rout,
                                        QuotaUnit::Seconds => cfg.tick.as_secs().max(1),
                                    };
                                }
                                *c as f64
                            }
                        };
                        let total = live.bytes_in + live.bytes_out;
                        live.samples.push(Sample {
                            at_ms: now,
                            meter: meter_value,
                            bytes: total,
                        });
                        if live.samples.len() > 120 {
                            live.samples.remove(0);
                        }
                    }
                    if let Some(left) = credits_left {
                        if let Some(a) = st
                            .accounts
                            .iter_mut()
                            .find(|a| a.service == Service::Orbnet)
                        {
                            a.credits = Some(left);
                        }
                    }
                    out.push(UiEvent::Live(st.live.clone()));
                    if depleted {
                        let conn = Self::finish(
                            &mut st,
                            "credits_depleted",
                            Some(ErrorView {
                                code: "credits_depleted".into(),
                                message: "Your OrbNET credits ran out; the session was ended."
                                    .into(),
                                action: "Top up your OrbNET account, then connect again.".into(),
                            }),
                        );
                        out.push(UiEvent::Live(None));
                        out.push(UiEvent::Connection(conn));
                        out.push(UiEvent::Accounts(st.accounts.clone()));
                        out.push(UiEvent::History(Self::history_view(&st)));
                    }
                }
                let stop = out.len() > 1;
                for e in out {
                    let _ = events.send(e);
                }
                if stop {
                    return;
                }
            }
        });
    }
}

fn non_empty(field: &str, v: &str) -> Result<(), CommandError> {
    if v.trim().is_empty() {
        Err(CommandError::new(
            "invalid_input",
            format!("Enter your {field}."),
        ))
    } else if v.len() > 4096 {
        Err(CommandError::new(
            "invalid_input",
            format!("The {field} is too long."),
        ))
    } else {
        Ok(())
    }
}

#[async_trait]
impl Backend for SimBackend {
    async fn snapshot(&self) -> Snapshot {
        let st = lock(&self.state);
        Snapshot {
            accounts: st.accounts.clone(),
            connection: st.connection.clone(),
            live: st.live.clone(),
            last_region: st.last_region.clone(),
            settings: st.settings.clone(),
            demo: self.demo,
            version: env!("CARGO_PKG_VERSION").into(),
        }
    }

    async fn sign_in(&self, request: SignInRequest) -> Result<SignInOutcome, CommandError> {
        let (service, label, credits) = match &request {
            SignInRequest::Orbnet {
                email,
                password,
                totp,
            } => {
                non_empty("email", email)?;
                non_empty("password", password)?;
                if email.starts_with("2fa") && totp.as_deref().is_none_or(str::is_empty) {
                    return Ok(SignInOutcome::NeedsTwoFactor);
                }
                (Service::Orbnet, Some(email.clone()), Some(25.0))
            }
            SignInRequest::Tunnelbyte { token } => {
                let token = token.as_deref().ok_or_else(|| {
                    CommandError::new(
                        "not_found",
                        "No tunnelbyte CLI token was found on this machine.",
                    )
                })?;
                non_empty("token", token)?;
                (Service::Tunnelbyte, Some("paid tier".to_string()), None)
            }
            SignInRequest::Neosc { email, password } => {
                non_empty("email", email)?;
                non_empty("password", password)?;
                (Service::Neosc, Some(email.clone()), None)
            }
        };
        let account = {
            let mut st = lock(&self.state);
            let Some(a) = st.accounts.iter_mut().find(|a| a.service == service) else {
                return Err(CommandError::new("internal", "unknown service"));
            };
            a.signed_in = true;
            a.label = label;
            a.credits = credits;
            let account = a.clone();
            self.emit(UiEvent::Accounts(st.accounts.clone()));
            account
        };
        Ok(SignInOutcome::SignedIn { account })
    }

    async fn sign_out(&self, service: Service) -> Result<Vec<AccountView>, CommandError> {
        let mut st = lock(&self.state);
        if st.connection.region.as_ref().map(|r| r.service) == Some(service) {
            let conn = Self::finish(&mut st, "user", None);
            self.emit(UiEvent::Live(None));
            self.emit(UiEvent::Connection(conn));
        }
        if let Some(a) = st.accounts.iter_mut().find(|a| a.service == service) {
            a.signed_in = false;
            a.label = None;
            a.credits = None;
        }
        self.emit(UiEvent::Accounts(st.accounts.clone()));
        Ok(st.accounts.clone())
    }

    async fn regions(&self) -> Vec<RegionGroup> {
        regions()
    }

    async fn connect(&self, request: ConnectRequest) -> Result<ConnectionView, CommandError> {
        let region = regions()
            .into_iter()
            .flat_map(|g| g.regions)
            .find(|r| r.reference == request.region)
            .ok_or_else(|| CommandError::new("invalid_input", "Unknown region."))?;
        self.connect_region(request, region).await
    }

    async fn disconnect(&self) -> Result<ConnectionView, CommandError> {
        let conn = {
            let mut st = lock(&self.state);
            if matches!(st.connection.phase, Phase::Disconnected) {
                return Ok(st.connection.clone());
            }
            st.connection.phase = Phase::Disconnecting;
            st.generation += 1;
            self.emit(UiEvent::Connection(st.connection.clone()));
            st.connection.clone()
        };
        let state = Arc::clone(&self.state);
        let events = self.events.clone();
        let wait = self.config.transition / 2;
        tokio::spawn(async move {
            tokio::time::sleep(wait).await;
            let (conn, history) = {
                let mut st = lock(&state);
                let c = Self::finish(&mut st, "user", None);
                (c, Self::history_view(&st))
            };
            let _ = events.send(UiEvent::Live(None));
            let _ = events.send(UiEvent::Connection(conn));
            let _ = events.send(UiEvent::History(history));
        });
        Ok(conn)
    }

    async fn workspaces(&self) -> Result<WorkspacesView, CommandError> {
        self.require(Service::Neosc)?;
        Ok(Self::workspaces_view(&lock(&self.state)))
    }

    async fn launch_workspace(&self, id: &str) -> Result<WorkspacesView, CommandError> {
        self.require(Service::Neosc)?;
        let mut st = lock(&self.state);
        let Some(ws) = st.workspaces.iter_mut().find(|w| w.id == id) else {
            return Err(CommandError::new("not_found", "No such workspace."));
        };
        ws.state = "running".into();
        let name = ws.name.clone();
        let sid = format!("ns-{}", st.next_id);
        st.next_id += 1;
        st.sessions.push(WorkspaceSessionView {
            id: sid,
            workspace: name,
            kind: "desktop".into(),
            started_ms: now_ms(),
            ended_ms: None,
            active: true,
            tunnel: "connected".into(),
            mfa: true,
        });
        let v = Self::workspaces_view(&st);
        self.emit(UiEvent::Workspaces(v.clone()));
        Ok(v)
    }

    async fn stop_workspace(&self, id: &str) -> Result<WorkspacesView, CommandError> {
        self.require(Service::Neosc)?;
        let mut st = lock(&self.state);
        let Some(ws) = st.workspaces.iter_mut().find(|w| w.id == id) else {
            return Err(CommandError::new("not_found", "No such workspace."));
        };
        ws.state = "stopped".into();
        let name = ws.name.clone();
        let now = now_ms();
        for s in st
            .sessions
            .iter_mut()
            .filter(|s| s.workspace == name && s.active)
        {
            s.active = false;
            s.ended_ms = Some(now);
            s.tunnel = "closed".into();
        }
        let v = Self::workspaces_view(&st);
        self.emit(UiEvent::Workspaces(v.clone()));
        Ok(v)
    }

    async fn disconnect_workspace_session(&self, id: &str) -> Result<WorkspacesView, CommandError> {
        self.require(Service::Neosc)?;
        let mut st = lock(&self.state);
        let Some(s) = st.sessions.iter_mut().find(|s| s.id == id) else {
            return Err(CommandError::new("not_found", "No such session."));
        };
        if !s.active {
            return Err(CommandError::new(
                "invalid_input",
                "That session has already ended.",
            ));
        }
        s.active = false;
        s.ended_ms = Some(now_ms());
        s.tunnel = "closed".into();
        let v = Self::workspaces_view(&st);
        self.emit(UiEvent::Workspaces(v.clone()));
        Ok(v)
    }

    async fn history(&self) -> Result<HistoryView, CommandError> {
        Ok(Self::history_view(&lock(&self.state)))
    }

    async fn export_history_csv(&self) -> Result<String, CommandError> {
        let view = Self::history_view(&lock(&self.state));
        let csv = crate::csv::history_csv(&view.rows);
        let dir = crate::paths::data_dir()
            .map_err(|e| CommandError::new("io", format!("No data directory: {e}")))?;
        let path = dir.join("history.csv");
        std::fs::write(&path, csv).map_err(|e| {
            CommandError::new("io", format!("Could not write {}: {e}", path.display()))
        })?;
        Ok(path.display().to_string())
    }

    async fn save_settings(&self, settings: Settings) -> Result<Settings, CommandError> {
        validate_settings(&settings)?;
        let mut st = lock(&self.state);
        st.settings = settings;
        self.emit(UiEvent::Settings(st.settings.clone()));
        Ok(st.settings.clone())
    }

    fn subscribe(&self) -> broadcast::Receiver<UiEvent> {
        self.events.subscribe()
    }
}
