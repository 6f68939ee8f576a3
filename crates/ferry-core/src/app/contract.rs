//! The app's typed contract with every front end: the views it publishes, the requests it takes
//! and its one event stream ([`AppEvent`]). The desktop generates `ui/src/contract.gen.ts` from
//! these types (ts-rs), so the UI and Rust cannot drift.

use serde::{Deserialize, Serialize};
use ts_rs::TS;

use crate::services::ServiceKind;

/// One of the three vendor services (the core's [`ServiceKind`], named `Service` in TypeScript).
pub use crate::services::ServiceKind as Service;

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
pub struct RegionView {
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
    pub regions: Vec<RegionView>,
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
    /// Regions the service suggests instead (a 503 with `available`), to offer as buttons.
    pub alternatives: Vec<RegionRef>,
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
        /// The cost's currency as the service names it (e.g. `eur`), when known.
        currency: Option<String>,
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
    /// App mode: the local HTTP proxy (CONNECT and plain `http://`), when it runs.
    pub http_proxy: Option<String>,
    /// Latency to the exit in ms (the last WireGuard handshake's round trip), once measured.
    pub latency_ms: Option<u32>,
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
    /// The spend cap closest to its limit for this session, if any is set.
    pub cap: Option<CapView>,
}

/// The spend cap nearest to its limit when the session started: the UI counts down from it
/// with the session's spend and burn rate ("time to cap").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct CapView {
    /// `session`, `day` or `month`.
    pub scope: String,
    /// Its limit (credits, or millicents of the service's currency).
    pub limit: f64,
    /// What was left of it when the session started.
    pub left_at_start: f64,
    /// `credits` or `millicents`.
    pub unit: String,
    /// When its window resets (unix ms): day and month caps.
    pub resets_at_ms: Option<i64>,
}

impl CapView {
    /// The cap with the least left among `caps`.
    pub fn tightest(caps: &[crate::meter::caps::Cap]) -> Option<CapView> {
        caps.iter()
            .min_by(|a, b| (a.limit - a.before).total_cmp(&(b.limit - b.before)))
            .map(|c| CapView {
                scope: c.scope.as_str().to_string(),
                limit: c.limit,
                left_at_start: (c.limit - c.before).max(0.0),
                unit: match c.unit {
                    crate::meter::caps::CapUnit::Credits => "credits".into(),
                    crate::meter::caps::CapUnit::Millicents => "millicents".into(),
                },
                resets_at_ms: c.resets_at.map(|t| t.timestamp_millis()),
            })
    }
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
    /// NeoSC server, email and password.
    Neosc {
        /// The NeoSC server's API address (self-hosted); `None` keeps the one in settings.
        server: Option<String>,
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
    /// The region it names, so the window can show the region's current name.
    pub region_ref: Option<RegionRef>,
    /// Start (unix ms).
    pub started_ms: i64,
    /// Duration in seconds (so far, if still open).
    pub duration_s: u64,
    /// OrbNET credits used.
    pub credits_used: Option<f64>,
    /// tunnelbyte cost in millicents.
    pub cost_millicents: Option<u64>,
    /// The cost's currency as the service names it (e.g. `eur`), when known.
    pub currency: Option<String>,
    /// Bytes in + out.
    pub bytes: u64,
    /// Why it ended, as a code (`user_initiated`, `credits_depleted`, ...); `None` while open.
    pub end_reason: Option<String>,
    /// Why it ended, in words ("Credits ran out", "Ended by the server"); `None` while open.
    pub end_label: Option<String>,
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

/// What launching a workspace gave: the refreshed lists and where to view it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct WorkspaceLaunchView {
    /// The workspaces and sessions after the launch.
    pub workspaces: WorkspacesView,
    /// The address the front end opens in the default browser (`None`: the server gave no
    /// viewer the client may open).
    pub open_url: Option<String>,
}

/// The history screen.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct HistoryView {
    /// Sessions, newest first.
    pub rows: Vec<HistoryRow>,
    /// Totals per day, newest first.
    pub days: Vec<DayTotal>,
    /// The currency of the costs (the newest row's), when known.
    pub currency: Option<String>,
}

/// Which notifications are on, and their thresholds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct NotifySettings {
    /// Credits low (the core's warnings, at each of `credit_warn_minutes`).
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
    /// Minutes of OrbNET credit left at which to warn, e.g. `[10, 2]` (the same in the CLI).
    pub credit_warn_minutes: Vec<f64>,
}

/// Base URLs of the three services (the lab's in the demo).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, TS)]
pub struct BaseUrls {
    /// OrbNET API base.
    pub orbnet: String,
    /// tunnelbyte API base.
    pub tunnelbyte: String,
    /// NeoSC API base (self-hosted: asked at sign-in; empty until then).
    pub neosc: String,
}

impl BaseUrls {
    /// The vendors' production URLs; NeoSC has none.
    pub fn production() -> Self {
        let url = |k: ServiceKind| k.default_base_url().unwrap_or_default().to_string();
        BaseUrls {
            orbnet: url(ServiceKind::Orbnet),
            tunnelbyte: url(ServiceKind::Tunnelbyte),
            neosc: url(ServiceKind::Neosc),
        }
    }

    /// The URL of one service.
    pub fn get(&self, s: ServiceKind) -> &str {
        match s {
            ServiceKind::Orbnet => &self.orbnet,
            ServiceKind::Tunnelbyte => &self.tunnelbyte,
            ServiceKind::Neosc => &self.neosc,
        }
    }

    /// As a map (services without an address left out).
    pub fn to_map(&self) -> std::collections::BTreeMap<ServiceKind, String> {
        ServiceKind::ALL
            .into_iter()
            .map(|k| (k, self.get(k).trim().to_string()))
            .filter(|(_, v)| !v.is_empty())
            .collect()
    }
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
    /// While connected in app mode, point the desktop's proxy settings (GNOME) at Ferry.
    #[serde(default)]
    pub desktop_proxy: bool,
    /// In system mode, let the local network (printers, file shares) through the kill switch.
    #[serde(default)]
    pub allow_lan: bool,
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
                credit_warn_minutes: vec![10.0, 2.0],
            },
            start_minimized: false,
            launch_at_login: false,
            close_to_tray: true,
            default_mode: TunnelMode::App,
            base_urls: BaseUrls::production(),
            desktop_proxy: false,
            allow_lan: false,
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

/// What a warning is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, TS)]
#[serde(rename_all = "snake_case")]
pub enum WarningKind {
    /// OrbNET credits run out soon.
    CreditsLow,
    /// A tunnelbyte quota window is nearly used up.
    QuotaHigh,
    /// A spend cap (budget) is 80 % used.
    CapNear,
    /// Ferry stops the session for a spend cap at the next heartbeat or status poll.
    CapStop,
}

/// A warning computed once by the core (the same in the CLI, the window and notifications).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct WarningView {
    /// What it is about.
    pub kind: WarningKind,
    /// The threshold crossed: minutes left (credits) or percent used (quota).
    pub threshold: f64,
    /// What it says, in words.
    pub message: String,
    /// When the quota window resets (unix ms), when known.
    pub resets_at_ms: Option<i64>,
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

/// Events from Rust to the UI. The event name is [`AppEvent::name`]; the payload is the inner value.
#[derive(Debug, Clone, PartialEq)]
pub enum AppEvent {
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
    /// Regions were (re)loaded.
    Regions(Vec<RegionGroup>),
    /// A warning from the meter (once per threshold).
    Warning(WarningView),
}

/// Names of the events, with the TypeScript type of each payload (the source of truth).
pub const EVENTS: &[(&str, &str)] = &[
    ("ferry:connection", "ConnectionView"),
    ("ferry:live", "LiveView | null"),
    ("ferry:accounts", "Array<AccountView>"),
    ("ferry:workspaces", "WorkspacesView"),
    ("ferry:history", "HistoryView"),
    ("ferry:settings", "Settings"),
    ("ferry:regions", "Array<RegionGroup>"),
    ("ferry:warning", "WarningView"),
];

impl AppEvent {
    /// The Tauri event name.
    pub fn name(&self) -> &'static str {
        let i = match self {
            AppEvent::Connection(_) => 0,
            AppEvent::Live(_) => 1,
            AppEvent::Accounts(_) => 2,
            AppEvent::Workspaces(_) => 3,
            AppEvent::History(_) => 4,
            AppEvent::Settings(_) => 5,
            AppEvent::Regions(_) => 6,
            AppEvent::Warning(_) => 7,
        };
        EVENTS[i].0
    }

    /// The payload as JSON.
    pub fn payload(&self) -> serde_json::Value {
        let v = match self {
            AppEvent::Connection(x) => serde_json::to_value(x),
            AppEvent::Live(x) => serde_json::to_value(x),
            AppEvent::Accounts(x) => serde_json::to_value(x),
            AppEvent::Workspaces(x) => serde_json::to_value(x),
            AppEvent::History(x) => serde_json::to_value(x),
            AppEvent::Settings(x) => serde_json::to_value(x),
            AppEvent::Regions(x) => serde_json::to_value(x),
            AppEvent::Warning(x) => serde_json::to_value(x),
        };
        v.unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_names_follow_the_enum() {
        let now = 0;
        let ev = AppEvent::Connection(ConnectionView::disconnected(TunnelMode::App, now));
        assert_eq!(ev.name(), "ferry:connection");
        assert_eq!(AppEvent::Live(None).name(), "ferry:live");
        assert_eq!(AppEvent::Live(None).payload(), serde_json::Value::Null);
        assert_eq!(
            AppEvent::Settings(Settings::default()).name(),
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
        let region = RegionView {
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
