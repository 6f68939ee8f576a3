//! The one event stream every listener (window, tray, CLI) reads.

use serde::Serialize;

use super::machine::{ErrorCause, State};
use crate::meter::caps::{Cap, CapNote, CapScope};
use crate::meter::quota::{QuotaSample, Window, WindowUse};

/// Something that happened to the session, in the order it happened.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum SessionEvent {
    /// The state changed.
    State {
        /// The new state.
        #[serde(flatten)]
        state: State,
    },
    /// A tunnel is up and metered.
    Connected {
        /// `orbnet` or `tunnelbyte`.
        service: String,
        /// Server name or region code.
        location: String,
        /// Our id of the session (OrbNET: the client UUID; tunnelbyte: the server id).
        session_id: String,
        /// The exit IP, when the service tells.
        exit_ip: Option<String>,
        /// The local proxy address in app mode (SOCKS5).
        proxy: Option<String>,
        /// The local HTTP proxy address in app mode, when it runs.
        http_proxy: Option<String>,
    },
    /// OrbNET balance after a heartbeat.
    Credits {
        /// Credits left.
        credits_remaining: f64,
        /// Credits per minute.
        consumption_rate: f64,
        /// Minutes of connection left at this rate.
        minutes_left: Option<f64>,
    },
    /// OrbNET credits are running low (once per threshold).
    LowCredits {
        /// Minutes left.
        minutes_left: f64,
        /// The threshold crossed, in minutes.
        threshold_minutes: f64,
    },
    /// A heartbeat went out.
    Heartbeat {
        /// `seconds_since_last` sent.
        seconds: u32,
        /// `acked`, `unconfirmed` or `not_delivered`.
        delivery: &'static str,
    },
    /// tunnelbyte figures from a status poll.
    Quota(QuotaSample),
    /// A tunnelbyte window crossed a threshold.
    QuotaWarning {
        /// Which window.
        window: Window,
        /// Threshold in percent.
        threshold_percent: u8,
        /// Its use.
        usage: WindowUse,
    },
    /// Bytes through the tunnel, from the local data plane.
    Traffic {
        /// Bytes received.
        rx_bytes: u64,
        /// Bytes sent.
        tx_bytes: u64,
        /// Latency to the exit (the last handshake's round trip), in ms, when measured.
        latency_ms: Option<u32>,
    },
    /// The server session ended.
    SessionEnded {
        /// The reason sent or received (`user_initiated`, `credits_depleted`, `quota_exceeded`…).
        reason: String,
        /// Seconds reported to the server (OrbNET), when metered by heartbeats.
        billed_secs: Option<u64>,
        /// Connected time measured locally.
        connected_secs: f64,
        /// Credits the session used, per the server.
        credits_used: Option<f64>,
    },
    /// The session stopped because of this cause.
    Failed {
        /// The cause.
        cause: ErrorCause,
        /// Its message.
        message: String,
    },
    /// A spend cap is 80 % used (once per cap and session).
    CapWarning {
        /// Which window.
        scope: CapScope,
        /// The cap in words ("day cap of 5 credits").
        cap: String,
        /// Percent of it spent (window total).
        percent: f64,
        /// When it resets (`None` for a session cap).
        resets_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// The stop for a cap is one heartbeat or status poll away (once per session).
    CapStopNear {
        /// Which window.
        scope: CapScope,
        /// The cap in words.
        cap: String,
        /// When it resets (`None` for a session cap).
        resets_at: Option<chrono::DateTime<chrono::Utc>>,
    },
    /// Something worth telling the user that is not an error.
    Notice {
        /// The text.
        message: String,
    },
}

/// The cause a cap stop ends the session with (`at_start`: it refused the start).
pub fn cap_cause(cap: &Cap, currency: Option<&str>, at_start: bool) -> ErrorCause {
    ErrorCause::CapReached {
        cap: cap.describe(currency),
        resets: cap.resets_text(),
        resets_at: cap.resets_at,
        at_start,
    }
}

/// The event for a cap warning (`None` for a stop: that ends the session with
/// [`cap_cause`]).
pub fn cap_event(note: &CapNote, currency: Option<&str>) -> Option<SessionEvent> {
    match note {
        CapNote::Warn { cap, percent } => Some(SessionEvent::CapWarning {
            scope: cap.scope,
            cap: cap.describe(currency),
            percent: *percent,
            resets_at: cap.resets_at,
        }),
        CapNote::Near { cap } => Some(SessionEvent::CapStopNear {
            scope: cap.scope,
            cap: cap.describe(currency),
            resets_at: cap.resets_at,
        }),
        CapNote::Stop { .. } => None,
    }
}

/// A latency in whole milliseconds (at least 1 when measured), for [`SessionEvent::Traffic`].
pub fn latency_ms(d: Option<std::time::Duration>) -> Option<u32> {
    d.map(|d| u32::try_from(d.as_millis()).unwrap_or(u32::MAX).max(1))
}
