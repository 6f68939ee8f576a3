//! The typed contract between the UI and Rust: every command's arguments and result, every event's
//! payload. `ui/src/contract.gen.ts` is generated from this module (see [`typescript`]) and a test
//! fails when the two differ, so neither side can drift.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

/// One of the three vendor services.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, TS)]
#[serde(rename_all = "lowercase")]
pub enum Service {
    /// OrbNET: prepaid credits, metered per minute by heartbeats.
    Orbnet,
    /// tunnelbyte: byte and time quotas; paid tier billed in millicents.
    Tunnelbyte,
    /// NeoSC: workspaces and their sessions.
    Neosc,
}

impl Service {
    /// All services, in display order.
    pub const ALL: [Service; 3] = [Service::Orbnet, Service::Tunnelbyte, Service::Neosc];

    /// The product name as shown to users.
    pub fn display_name(self) -> &'static str {
        match self {
            Service::Orbnet => "OrbNET",
            Service::Tunnelbyte => "tunnelbyte",
            Service::Neosc => "NeoSC",
        }
    }
}

/// The phase of the one VPN connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum Phase {
    /// Nothing running.
    Disconnected,
    /// Asking the service and bringing the tunnel up.
    Connecting,
    /// Tunnel up, session metered.
    Connected,
    /// Lost the tunnel or the service; trying again.
    Reconnecting,
    /// Ending the session and taking the tunnel down.
    Disconnecting,
    /// Stopped because of an error (see [`ErrorView`]).
    Error,
}

/// How traffic goes through the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum TunnelMode {
    /// Only apps pointed at Ferry's local proxy (no privileges needed).
    App,
    /// Every packet of the machine ("route all traffic").
    AllTraffic,
}

/// A region (OrbNET server or tunnelbyte region) chosen for a connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct RegionRef {
    /// The service the region belongs to.
    pub service: Service,
    /// The service's identifier (OrbNET server id, tunnelbyte region code).
    pub id: String,
}

/// One selectable region.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Region {
    /// Where it is.
    #[serde(rename = "ref")]
    #[ts(rename = "ref")]
    pub reference: RegionRef,
    /// Shown name: the city (OrbNET) or the region code (tunnelbyte).
    pub label: String,
    /// Country, when the service says.
    pub country: Option<String>,
    /// Number of exit nodes, when the service says (tunnelbyte).
    pub nodes: Option<u32>,
    /// False when the service reported it unavailable.
    pub available: bool,
    /// Why it is unavailable and what to pick instead, in words.
    pub note: Option<String>,
}

/// The regions of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct RegionGroup {
    /// The service.
    pub service: Service,
    /// Its regions, in the service's order.
    pub regions: Vec<Region>,
    /// Set when the list could not be loaded.
    pub error: Option<String>,
}

/// An error explained for people: what happened and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct ErrorView {
    /// Machine-readable kind (e.g. `credits_depleted`).
    pub code: String,
    /// What happened, in words.
    pub message: String,
    /// What the user can do about it.
    pub action: String,
}

/// The connection as the UI and tray show it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ConnectionView {
    /// Current phase.
    pub phase: Phase,
    /// The region in use or being connected to.
    pub region: Option<RegionRef>,
    /// Shown name of that region.
    pub region_label: Option<String>,
    /// Tunnel mode in use.
    pub mode: TunnelMode,
    /// Set in the Error phase (and kept while reconnecting).
    pub error: Option<ErrorView>,
    /// When the current phase began (unix ms).
    pub since_ms: i64,
}

impl ConnectionView {
    /// The idle, disconnected view.
    pub fn disconnected(mode: TunnelMode, now_ms: i64) -> Self {
        ConnectionView {
            phase: Phase::Disconnected,
            region: None,
            region_label: None,
            mode,
            error: None,
            since_ms: now_ms,
        }
    }
}

/// A quota window (tunnelbyte): bytes or seconds used against a limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct QuotaView {
    /// What is counted, e.g. "Data this month" or "Time today".
    pub label: String,
    /// `bytes` or `seconds`.
    pub unit: QuotaUnit,
    /// Used so far.
    pub used: u64,
    /// The limit; `None` when unlimited.
    pub limit: Option<u64>,
    /// When the window resets (unix ms), when known.
    pub resets_at_ms: Option<i64>,
}

/// Unit of a quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum QuotaUnit {
    /// Bytes transferred.
    Bytes,
    /// Seconds of session time.
    Seconds,
}

/// What the current session costs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum MeterView {
    /// OrbNET credits.
    Credits {
        /// Credits left on the account.
        left: f64,
        /// Credits per minute while connected.
        burn_per_minute: f64,
        /// Credits spent in this session.
        spent: f64,
    },
    /// tunnelbyte quota and (paid tier) cost.
    Quota {
        /// Cost so far in millicents (paid tier), `None` when free.
        cost_millicents: Option<u64>,
        /// The quota windows.
        quotas: Vec<QuotaView>,
    },
}

/// One point of the session charts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Sample {
    /// Time (unix ms).
    pub at_ms: i64,
    /// Credits left (OrbNET) or cost in millicents (tunnelbyte).
    pub meter: f64,
    /// Total bytes in + out so far.
    pub bytes: u64,
}

/// Live figures while connected.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct LiveView {
    /// Session start (unix ms).
    pub started_ms: i64,
    /// Time of these figures (unix ms).
    pub at_ms: i64,
    /// Exit IP as seen by the service, when known.
    pub exit_ip: Option<String>,
    /// App mode: the local SOCKS5 proxy (`host:port`) that apps point at; `None` when all
    /// traffic is routed.
    pub proxy: Option<String>,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Current receive rate, bytes per second.
    pub rate_in: f64,
    /// Current send rate, bytes per second.
    pub rate_out: f64,
    /// Credits or quota/cost.
    pub meter: MeterView,
    /// Chart points over the session (bounded).
    pub samples: Vec<Sample>,
}

/// Sign-in state of one service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct AccountView {
    /// The service.
    pub service: Service,
    /// True when a token is in the keyring.
    pub signed_in: bool,
    /// Who: the email, or the tunnelbyte tier.
    pub label: Option<String>,
    /// OrbNET credits on the account, when known.
    pub credits: Option<f64>,
}

/// Sign-in details for one service (tokens and passwords never come back to the UI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "service", rename_all = "lowercase")]
pub enum SignInRequest {
    /// OrbNET email and password, plus the 2FA code when the service asked for one.
    Orbnet {
        /// Account email.
        email: String,
        /// Password (sent once, never stored).
        password: String,
        /// Six-digit code, on the second step.
        totp: Option<String>,
    },
    /// A pasted tunnelbyte token, or `None` to import the tunnelbyte CLI's token.
    Tunnelbyte {
        /// The API token.
        token: Option<String>,
    },
    /// NeoSC email and password.
    Neosc {
        /// Account email.
        email: String,
        /// Password (sent once, never stored).
        password: String,
    },
}

/// Result of a sign-in attempt.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SignInOutcome {
    /// Signed in; the account as now shown.
    SignedIn {
        /// The account.
        account: AccountView,
    },
    /// The service wants a 2FA code: send the request again with `totp`.
    NeedsTwoFactor,
}

/// Start a connection.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct ConnectRequest {
    /// Where to.
    pub region: RegionRef,
    /// App mode or all traffic.
    pub mode: TunnelMode,
}

/// A NeoSC workspace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct WorkspaceView {
    /// NeoSC id.
    pub id: String,
    /// Shown name.
    pub name: String,
    /// State as NeoSC reports it (e.g. `running`, `stopped`).
    pub state: String,
}

/// A NeoSC session (one of the user's, on any device).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct WorkspaceSessionView {
    /// NeoSC id.
    pub id: String,
    /// Name of its workspace.
    pub workspace: String,
    /// Session type (e.g. `desktop`, `browser`).
    pub kind: String,
    /// Start (unix ms).
    pub started_ms: i64,
    /// End (unix ms) when ended.
    pub ended_ms: Option<i64>,
    /// True while active.
    pub active: bool,
    /// Tunnel status as reported.
    pub tunnel: String,
    /// Whether MFA was satisfied.
    pub mfa: bool,
}

/// The workspaces screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct WorkspacesView {
    /// Workspaces.
    pub workspaces: Vec<WorkspaceView>,
    /// Sessions, active first, then most recent first.
    pub sessions: Vec<WorkspaceSessionView>,
    /// When this was fetched (unix ms).
    pub refreshed_ms: i64,
}

/// One past VPN session.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct HistoryRow {
    /// Local id.
    pub id: String,
    /// The service.
    pub service: Service,
    /// Region shown name.
    pub region: String,
    /// Start (unix ms).
    pub started_ms: i64,
    /// Duration in seconds (so far, if still open).
    pub duration_s: u64,
    /// OrbNET credits used.
    pub credits_used: Option<f64>,
    /// tunnelbyte cost in millicents.
    pub cost_millicents: Option<u64>,
    /// Bytes in + out.
    pub bytes: u64,
    /// Why it ended (`user`, `credits_depleted`, ...); `None` while open.
    pub end_reason: Option<String>,
}

/// Totals for one day (local time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct DayTotal {
    /// `YYYY-MM-DD`.
    pub day: String,
    /// Number of sessions.
    pub sessions: u32,
    /// Seconds connected.
    pub duration_s: u64,
    /// Credits used.
    pub credits_used: f64,
    /// Cost in millicents.
    pub cost_millicents: u64,
    /// Bytes.
    pub bytes: u64,
}

/// The history screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct HistoryView {
    /// Sessions, newest first.
    pub rows: Vec<HistoryRow>,
    /// Totals per day, newest first.
    pub days: Vec<DayTotal>,
}

/// Which notifications are on, and their thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct NotifySettings {
    /// Credits low, at each threshold.
    pub credits_low: bool,
    /// Credits depleted.
    pub credits_depleted: bool,
    /// Quota at 80 %, 95 % and exceeded.
    pub quota: bool,
    /// Session ended by the server.
    pub session_ended: bool,
    /// Connection lost and restored.
    pub connection: bool,
    /// A workspace session ended elsewhere.
    pub workspace_ended: bool,
    /// Credit levels that trigger "credits low", e.g. `[50, 10]`.
    pub credit_thresholds: Vec<f64>,
}

/// Base URLs of the three services (the lab's in the demo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct BaseUrls {
    /// OrbNET API base.
    pub orbnet: String,
    /// tunnelbyte API base.
    pub tunnelbyte: String,
    /// NeoSC API base.
    pub neosc: String,
}

/// User settings.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Settings {
    /// Notifications.
    pub notify: NotifySettings,
    /// Start hidden in the tray.
    pub start_minimized: bool,
    /// Start with the desktop session.
    pub launch_at_login: bool,
    /// Closing the window hides it to the tray instead of quitting.
    pub close_to_tray: bool,
    /// Mode preselected for Connect.
    pub default_mode: TunnelMode,
    /// Service base URLs.
    pub base_urls: BaseUrls,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            notify: NotifySettings {
                credits_low: true,
                credits_depleted: true,
                quota: true,
                session_ended: true,
                connection: true,
                workspace_ended: true,
                credit_thresholds: vec![50.0, 10.0],
            },
            start_minimized: false,
            launch_at_login: false,
            close_to_tray: true,
            default_mode: TunnelMode::App,
            base_urls: BaseUrls {
                orbnet: "https://api.orbnet.example/api/v1".into(),
                tunnelbyte: "https://api.tunnelbyte.example/v1".into(),
                neosc: "https://api.neosc.example/api".into(),
            },
        }
    }
}

/// Everything the window needs at start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct Snapshot {
    /// Sign-in state per service.
    pub accounts: Vec<AccountView>,
    /// The connection.
    pub connection: ConnectionView,
    /// Live figures while connected.
    pub live: Option<LiveView>,
    /// The last region chosen (remembered).
    pub last_region: Option<RegionRef>,
    /// Settings.
    pub settings: Settings,
    /// True when running on the in-process lab.
    pub demo: bool,
    /// App version.
    pub version: String,
}

/// The error every command returns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    /// Machine-readable kind (`invalid_input`, `not_signed_in`, `service`, `network`, ...).
    pub code: String,
    /// Explanation in words, safe to show.
    pub message: String,
}

impl CommandError {
    /// An error with a code and a message.
    pub fn new(code: &str, message: impl Into<String>) -> Self {
        CommandError {
            code: code.into(),
            message: message.into(),
        }
    }
}

/// Events from Rust to the UI. The event name is [`UiEvent::name`]; the payload is the inner value.
#[derive(Debug, Clone, PartialEq)]
pub enum UiEvent {
    /// The connection changed.
    Connection(ConnectionView),
    /// New live figures (about once a second while connected; `None` when it ends).
    Live(Option<LiveView>),
    /// Sign-in state changed.
    Accounts(Vec<AccountView>),
    /// Workspaces refreshed.
    Workspaces(WorkspacesView),
    /// History changed (a session was added or closed).
    History(HistoryView),
    /// Settings changed.
    Settings(Settings),
}

/// Names of the events, with the TypeScript type of each payload (the source of truth).
pub const EVENTS: &[(&str, &str)] = &[
    ("ferry:connection", "ConnectionView"),
    ("ferry:live", "LiveView | null"),
    ("ferry:accounts", "Array<AccountView>"),
    ("ferry:workspaces", "WorkspacesView"),
    ("ferry:history", "HistoryView"),
    ("ferry:settings", "Settings"),
];

impl UiEvent {
    /// The Tauri event name.
    pub fn name(&self) -> &'static str {
        let i = match self {
            UiEvent::Connection(_) => 0,
            UiEvent::Live(_) => 1,
            UiEvent::Accounts(_) => 2,
            UiEvent::Workspaces(_) => 3,
            UiEvent::History(_) => 4,
            UiEvent::Settings(_) => 5,
        };
        EVENTS[i].0
    }

    /// The payload as JSON.
    pub fn payload(&self) -> serde_json::Value {
        let v = match self {
            UiEvent::Connection(x) => serde_json::to_value(x),
            UiEvent::Live(x) => serde_json::to_value(x),
            UiEvent::Accounts(x) => serde_json::to_value(x),
            UiEvent::Workspaces(x) => serde_json::to_value(x),
            UiEvent::History(x) => serde_json::to_value(x),
            UiEvent::Settings(x) => serde_json::to_value(x),
        };
        v.unwrap_or(serde_json::Value::Null)
    }
}

/// One command: name, arguments (name and TypeScript type), TypeScript result type.
pub type CommandSig = (
    &'static str,
    &'static [(&'static str, &'static str)],
    &'static str,
);

/// Commands: name, arguments (name and TypeScript type), TypeScript result type.
pub const COMMANDS: &[CommandSig] = &[
    ("get_snapshot", &[], "Snapshot"),
    ("sign_in", &[("request", "SignInRequest")], "SignInOutcome"),
    ("sign_out", &[("service", "Service")], "Array<AccountView>"),
    ("list_regions", &[], "Array<RegionGroup>"),
    (
        "connect",
        &[("request", "ConnectRequest")],
        "ConnectionView",
    ),
    ("disconnect", &[], "ConnectionView"),
    ("list_workspaces", &[], "WorkspacesView"),
    ("launch_workspace", &[("id", "string")], "WorkspacesView"),
    ("stop_workspace", &[("id", "string")], "WorkspacesView"),
    (
        "disconnect_workspace_session",
        &[("id", "string")],
        "WorkspacesView",
    ),
    ("get_history", &[], "HistoryView"),
    ("export_history_csv", &[], "string"),
    ("save_settings", &[("settings", "Settings")], "Settings"),
];

/// The TypeScript module `ui/src/contract.gen.ts`, generated from the types and tables above.
pub fn typescript() -> String {
    let cfg = ts_rs::Config::new().with_large_int("number");
    let decls = [
        Service::decl(&cfg),
        Phase::decl(&cfg),
        TunnelMode::decl(&cfg),
        RegionRef::decl(&cfg),
        Region::decl(&cfg),
        RegionGroup::decl(&cfg),
        ErrorView::decl(&cfg),
        ConnectionView::decl(&cfg),
        QuotaUnit::decl(&cfg),
        QuotaView::decl(&cfg),
        MeterView::decl(&cfg),
        Sample::decl(&cfg),
        LiveView::decl(&cfg),
        AccountView::decl(&cfg),
        SignInRequest::decl(&cfg),
        SignInOutcome::decl(&cfg),
        ConnectRequest::decl(&cfg),
        WorkspaceView::decl(&cfg),
        WorkspaceSessionView::decl(&cfg),
        WorkspacesView::decl(&cfg),
        HistoryRow::decl(&cfg),
        DayTotal::decl(&cfg),
        HistoryView::decl(&cfg),
        NotifySettings::decl(&cfg),
        BaseUrls::decl(&cfg),
        Settings::decl(&cfg),
        Snapshot::decl(&cfg),
        CommandError::decl(&cfg),
    ];
    let mut out = String::from(
        "// Generated from src-tauri/src/contract.rs by its contract test; do not edit.\n\
         // Regenerate: FERRY_UPDATE_CONTRACT=1 cargo test -p ferry-desktop contract\n\n",
    );
    for d in decls {
        out.push_str("export ");
        out.push_str(&d);
        out.push_str("\n\n");
    }
    out.push_str(
        "/** Every command: its arguments and its result. */\nexport interface Commands {\n",
    );
    for (name, args, ret) in COMMANDS {
        let args: Vec<String> = args.iter().map(|(a, t)| format!("{a}: {t}")).collect();
        let args = if args.is_empty() {
            "Record<string, never>".to_string()
        } else {
            format!("{{ {} }}", args.join("; "))
        };
        out.push_str(&format!("  {name}: {{ args: {args}; result: {ret} }};\n"));
    }
    out.push_str("}\n\n/** Every event: its payload. */\nexport interface Events {\n");
    for (name, payload) in EVENTS {
        out.push_str(&format!("  \"{name}\": {payload};\n"));
    }
    out.push_str(
        "}\n\n/** Command names, as registered in Rust. */\nexport const COMMAND_NAMES = [\n",
    );
    for (name, _, _) in COMMANDS {
        out.push_str(&format!("  \"{name}\",\n"));
    }
    out.push_str(
        "] as const;\n\n/** Event names, as emitted by Rust. */\nexport const EVENT_NAMES = [\n",
    );
    for (name, _) in EVENTS {
        out.push_str(&format!("  \"{name}\",\n"));
    }
    out.push_str("] as const;\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contract_typescript_matches_committed_file() {
        let path =
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../ui/src/contract.gen.ts");
        let generated = typescript();
        if std::env::var_os("FERRY_UPDATE_CONTRACT").is_some() {
            std::fs::write(&path, &generated).unwrap();
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == generated,
            "ui/src/contract.gen.ts is out of date with src-tauri/src/contract.rs; \
             run FERRY_UPDATE_CONTRACT=1 cargo test -p ferry-desktop contract"
        );
    }

    #[test]
    fn event_names_follow_the_enum() {
        let now = 0;
        let ev = UiEvent::Connection(ConnectionView::disconnected(TunnelMode::App, now));
        assert_eq!(ev.name(), "ferry:connection");
        assert_eq!(UiEvent::Live(None).name(), "ferry:live");
        assert_eq!(UiEvent::Live(None).payload(), serde_json::Value::Null);
        assert_eq!(
            UiEvent::Settings(Settings::default()).name(),
            "ferry:settings"
        );
    }

    #[test]
    fn wire_shapes_are_what_the_ui_expects() {
        let req: SignInRequest = serde_json::from_value(serde_json::json!({
            "service": "orbnet", "email": "a@b", "password": "p", "totp": null
        }))
        .unwrap();
        assert!(matches!(req, SignInRequest::Orbnet { .. }));
        let meter = serde_json::to_value(MeterView::Credits {
            left: 1.0,
            burn_per_minute: 0.5,
            spent: 0.0,
        })
        .unwrap();
        assert_eq!(meter["kind"], "credits");
        let region = Region {
            reference: RegionRef {
                service: Service::Tunnelbyte,
                id: "eu-1".into(),
            },
            label: "eu-1".into(),
            country: None,
            nodes: Some(2),
            available: true,
            note: None,
        };
        assert_eq!(
            serde_json::to_value(region).unwrap()["ref"]["service"],
            "tunnelbyte"
        );
    }
}
