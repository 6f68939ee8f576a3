//! Row types of the history store.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::services::ServiceKind;

/// The `sessions.id` of a row.
pub type SessionRowId = i64;

/// A session about to start.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Our id for it (a UUID; OrbNET's `session_id`).
    pub client_session_id: String,
    /// Which service.
    pub service: ServiceKind,
    /// Account shown to the user (email or tier), never a token.
    pub account: Option<String>,
    /// Region code or server id/name.
    pub location: Option<String>,
    /// When the attempt began (wall clock).
    pub started_at: DateTime<Utc>,
}

/// Lifecycle of a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SessionState {
    /// Inserted; start requested, tunnel not (yet) up.
    Starting,
    /// The tunnel works and the meter runs.
    Connected,
    /// Closed with a reason.
    Ended,
}

impl SessionState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Starting => "starting",
            SessionState::Connected => "connected",
            SessionState::Ended => "ended",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "starting" => Some(SessionState::Starting),
            "connected" => Some(SessionState::Connected),
            "ended" => Some(SessionState::Ended),
            _ => None,
        }
    }
}

/// Why a session ended, as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub enum EndReason {
    /// The user disconnected.
    UserInitiated,
    /// OrbNET credits ran out.
    CreditsDepleted,
    /// A network or client error.
    Error,
    /// Heartbeats stopped / the server timed it out.
    Timeout,
    /// A tunnelbyte quota window ran out.
    QuotaExceeded,
    /// The server ended it (tunnelbyte `terminated_reason` other than quota).
    ServerEnded,
    /// Closed at startup after a crash left it open.
    Recovered,
    /// Ferry ended it because a spend cap would have been passed.
    CapReached,
    /// Ferry ended it because the machine went to sleep (a new session starts on resume).
    Sleep,
    /// Anything else (kept verbatim).
    Other(String),
}

impl EndReason {
    /// The stored text.
    pub fn as_str(&self) -> &str {
        match self {
            EndReason::UserInitiated => "user_initiated",
            EndReason::CreditsDepleted => "credits_depleted",
            EndReason::Error => "error",
            EndReason::Timeout => "timeout",
            EndReason::QuotaExceeded => "quota_exceeded",
            EndReason::ServerEnded => "server_ended",
            EndReason::Recovered => "recovered",
            EndReason::CapReached => "cap_reached",
            EndReason::Sleep => "sleep",
            EndReason::Other(s) => s,
        }
    }

    /// Reads the stored text.
    pub fn parse(s: &str) -> Self {
        match s {
            "user_initiated" => EndReason::UserInitiated,
            "credits_depleted" => EndReason::CreditsDepleted,
            "error" => EndReason::Error,
            "timeout" => EndReason::Timeout,
            "quota_exceeded" => EndReason::QuotaExceeded,
            "server_ended" => EndReason::ServerEnded,
            "recovered" => EndReason::Recovered,
            "cap_reached" => EndReason::CapReached,
            "sleep" => EndReason::Sleep,
            other => EndReason::Other(other.to_string()),
        }
    }
}

impl From<EndReason> for String {
    fn from(r: EndReason) -> String {
        r.as_str().to_string()
    }
}

impl From<String> for EndReason {
    fn from(s: String) -> Self {
        EndReason::parse(&s)
    }
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What sessions spent in a window (see `Store::spent_between`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct Spent {
    /// OrbNET credits used.
    pub credits: f64,
    /// tunnelbyte cost in millicents.
    pub millicents: u64,
}

/// A session row.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionRecord {
    /// Row id.
    pub id: SessionRowId,
    /// Our id (OrbNET `session_id`).
    pub client_session_id: String,
    /// Service.
    pub service: ServiceKind,
    /// Account label.
    pub account: Option<String>,
    /// Region or server.
    pub location: Option<String>,
    /// The server's session id.
    pub server_session_id: Option<String>,
    /// Lifecycle state.
    pub state: SessionState,
    /// Attempt start.
    pub started_at: DateTime<Utc>,
    /// Tunnel up / meter start.
    pub connected_at: Option<DateTime<Utc>>,
    /// Last acknowledged heartbeat (wall clock).
    pub last_ack_at: Option<DateTime<Utc>>,
    /// End.
    pub ended_at: Option<DateTime<Utc>>,
    /// Why it ended.
    pub end_reason: Option<EndReason>,
    /// OrbNET credits used.
    pub credits_used: Option<f64>,
    /// OrbNET credits left at last report.
    pub credits_remaining: Option<f64>,
    /// tunnelbyte cost in millicents.
    pub cost_millicents: Option<u64>,
    /// Currency of the cost.
    pub cost_currency: Option<String>,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Exit IP.
    pub exit_ip: Option<String>,
}

impl SessionRecord {
    /// Connected seconds: from `connected_at` to `ended_at` (or `now` while open).
    pub fn connected_secs(&self, now: DateTime<Utc>) -> Option<u64> {
        let from = self.connected_at?;
        let to = self.ended_at.unwrap_or(now);
        u64::try_from((to - from).num_seconds()).ok()
    }
}

/// New running totals plus one sample (fields `None` are left unchanged).
#[derive(Debug, Clone)]
pub struct UsageUpdate {
    /// Sample time.
    pub at: DateTime<Utc>,
    /// Cumulative bytes received.
    pub bytes_in: Option<u64>,
    /// Cumulative bytes sent.
    pub bytes_out: Option<u64>,
    /// Credits left.
    pub credits_remaining: Option<f64>,
    /// Credits used so far.
    pub credits_used: Option<f64>,
    /// Cost so far in millicents.
    pub cost_millicents: Option<u64>,
    /// Currency.
    pub cost_currency: Option<String>,
    /// Quota bytes used.
    pub quota_bytes_used: Option<u64>,
    /// Quota bytes limit.
    pub quota_bytes_limit: Option<u64>,
    /// Quota seconds used.
    pub quota_seconds_used: Option<u64>,
    /// Quota seconds limit.
    pub quota_seconds_limit: Option<u64>,
}

impl UsageUpdate {
    /// An empty update at `at`.
    pub fn at(at: DateTime<Utc>) -> Self {
        Self {
            at,
            bytes_in: None,
            bytes_out: None,
            credits_remaining: None,
            credits_used: None,
            cost_millicents: None,
            cost_currency: None,
            quota_bytes_used: None,
            quota_bytes_limit: None,
            quota_seconds_used: None,
            quota_seconds_limit: None,
        }
    }
}

/// One stored usage sample.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UsageSample {
    /// When.
    pub at: DateTime<Utc>,
    /// Bytes received.
    pub bytes_in: Option<u64>,
    /// Bytes sent.
    pub bytes_out: Option<u64>,
    /// Credits left.
    pub credits_remaining: Option<f64>,
    /// Credits used.
    pub credits_used: Option<f64>,
    /// Cost.
    pub cost_millicents: Option<u64>,
    /// Quota bytes used.
    pub quota_bytes_used: Option<u64>,
    /// Quota bytes limit.
    pub quota_bytes_limit: Option<u64>,
    /// Quota seconds used.
    pub quota_seconds_used: Option<u64>,
    /// Quota seconds limit.
    pub quota_seconds_limit: Option<u64>,
}

/// How a session ended.
#[derive(Debug, Clone)]
pub struct SessionClose {
    /// End time.
    pub ended_at: DateTime<Utc>,
    /// Reason.
    pub reason: EndReason,
    /// Final credits used.
    pub credits_used: Option<f64>,
    /// Final credits left.
    pub credits_remaining: Option<f64>,
    /// Final cost.
    pub cost_millicents: Option<u64>,
    /// Final bytes received.
    pub bytes_in: Option<u64>,
    /// Final bytes sent.
    pub bytes_out: Option<u64>,
}

impl SessionClose {
    /// A close with only time and reason.
    pub fn new(ended_at: DateTime<Utc>, reason: EndReason) -> Self {
        Self {
            ended_at,
            reason,
            credits_used: None,
            credits_remaining: None,
            cost_millicents: None,
            bytes_in: None,
            bytes_out: None,
        }
    }
}

/// A history page request.
#[derive(Debug, Clone)]
pub struct HistoryQuery {
    /// Rows per page (1..=10000).
    pub limit: u32,
    /// Rows to skip.
    pub offset: u64,
    /// Only this service.
    pub service: Option<ServiceKind>,
}

impl Default for HistoryQuery {
    fn default() -> Self {
        Self {
            limit: 50,
            offset: 0,
            service: None,
        }
    }
}

/// Sums over a set of sessions of one service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Totals {
    /// Service.
    pub service: ServiceKind,
    /// Session rows.
    pub sessions: u64,
    /// Connected seconds of ended sessions.
    pub connected_secs: u64,
    /// Credits used.
    pub credits_used: f64,
    /// Cost in millicents.
    pub cost_millicents: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
}

/// Totals of one UTC day and service.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DailyTotal {
    /// `YYYY-MM-DD` (UTC, by session start).
    pub day: String,
    /// The sums.
    #[serde(flatten)]
    pub totals: Totals,
}

/// A NeoSC workspace session as last seen.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkspaceSessionSeen {
    /// NeoSC session id.
    pub id: String,
    /// Account label.
    pub account: Option<String>,
    /// Workspace id.
    pub workspace_id: String,
    /// Workspace name.
    pub workspace_name: Option<String>,
    /// Workspace type.
    pub workspace_type: Option<String>,
    /// Status text.
    pub status: String,
    /// Start.
    pub started_at: Option<DateTime<Utc>>,
    /// End.
    pub ended_at: Option<DateTime<Utc>>,
    /// True when Ferry launched it (so Ferry may disconnect it on recovery).
    pub launched_here: bool,
}
