//! tunnelbyte quota and cost metering: pure accounting of `GET /v1/sessions/{id}` answers plus
//! a driver that polls every 10 s. Cost is never computed locally: the server's millicents are
//! shown as they are (1 millicent = 1/100,000 EUR).

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::{mpsc, watch};
use tracing::{debug, warn};

use crate::clock::SharedClock;

/// The CLI's documented status poll cadence.
pub const POLL_INTERVAL: Duration = Duration::from_secs(10);

/// One status answer, as the meter needs it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct SessionStatus {
    /// Bytes received through the tunnel since creation.
    pub bytes_in: u64,
    /// Bytes sent through the tunnel since creation.
    pub bytes_out: u64,
    /// Account tier.
    pub tier: String,
    /// Time-leg cost in millicents (paid tier only).
    pub cost_time_millicents: Option<u64>,
    /// Byte-leg cost in millicents (paid tier only).
    pub cost_bytes_millicents: Option<u64>,
    /// ISO 4217 code, lowercase.
    pub cost_currency: Option<String>,
    /// Bytes used in the bytes window.
    pub quota_bytes_used: u64,
    /// Bytes window cap (0 = unmetered).
    pub quota_bytes_limit: u64,
    /// Seconds used in the time window.
    pub quota_seconds_used: u64,
    /// Time window cap (0 = unmetered).
    pub quota_seconds_limit: u64,
    /// Set once the server ended the session.
    pub terminated_at: Option<DateTime<Utc>>,
    /// Why the server ended it.
    pub terminated_reason: Option<String>,
}

/// When the two quota windows reset (from `GET /v1/usage`).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WindowResets {
    /// Reset of the bytes window.
    pub bytes: Option<DateTime<Utc>>,
    /// Reset of the time window.
    pub seconds: Option<DateTime<Utc>>,
}

/// Which quota window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Window {
    /// Bytes, rolling 7 days on anonymous and free.
    Bytes,
    /// Session seconds, rolling 24 h.
    Seconds,
}

/// Use of one window.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct WindowUse {
    /// Used so far.
    pub used: u64,
    /// Cap; 0 means unmetered.
    pub limit: u64,
    /// When it resets, if known.
    pub resets_at: Option<DateTime<Utc>>,
}

impl WindowUse {
    /// Fraction used, `None` when unmetered.
    pub fn fraction(&self) -> Option<f64> {
        (self.limit > 0).then(|| self.used as f64 / self.limit as f64)
    }
}

/// A snapshot for the status line, window and history.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct QuotaSample {
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Total cost in millicents, when the tier is paid.
    pub cost_millicents: Option<u64>,
    /// Currency of the cost.
    pub currency: Option<String>,
    /// The bytes window.
    pub bytes_window: WindowUse,
    /// The time window.
    pub seconds_window: WindowUse,
}

/// What the quota meter tells listeners.
#[derive(Debug, Clone, PartialEq)]
pub enum QuotaNote {
    /// New figures.
    Sample(QuotaSample),
    /// A window crossed a threshold (once per window and threshold).
    Warn {
        /// The window.
        window: Window,
        /// The threshold crossed, in percent.
        threshold_percent: u8,
        /// Its use now.
        usage: WindowUse,
    },
    /// The figures once the session was deleted (the final cost).
    Final(QuotaSample),
    /// The server ended the session.
    Terminated {
        /// `terminated_reason`, or "unknown".
        reason: String,
    },
}

/// Accounting of one tunnelbyte session.
#[derive(Debug, Clone)]
pub struct QuotaMeter {
    thresholds: Vec<u8>,
    warned: Vec<(Window, u8)>,
    resets: WindowResets,
    terminated: bool,
}

impl Default for QuotaMeter {
    fn default() -> Self {
        Self::new(vec![80, 95])
    }
}

impl QuotaMeter {
    /// A meter warning at the given percentages of either window.
    pub fn new(thresholds: Vec<u8>) -> Self {
        Self {
            thresholds,
            warned: Vec::new(),
            resets: WindowResets::default(),
            terminated: false,
        }
    }

    /// Records the windows' reset times.
    pub fn set_resets(&mut self, resets: WindowResets) {
        self.resets = resets;
    }

    /// Whether the server ended the session.
    pub fn terminated(&self) -> bool {
        self.terminated
    }

    /// Digests one status answer.
    pub fn on_status(&mut self, st: &SessionStatus) -> Vec<QuotaNote> {
        let cost = match (st.cost_time_millicents, st.cost_bytes_millicents) {
            (None, None) => None,
            (t, b) => Some(t.unwrap_or(0).saturating_add(b.unwrap_or(0))),
        };
        let sample = QuotaSample {
            bytes_in: st.bytes_in,
            bytes_out: st.bytes_out,
            cost_millicents: cost,
            currency: st.cost_currency.clone(),
            bytes_window: WindowUse {
                used: st.quota_bytes_used,
                limit: st.quota_bytes_limit,
                resets_at: self.resets.bytes,
            },
            seconds_window: WindowUse {
                used: st.quota_seconds_used,
                limit: st.quota_seconds_limit,
                resets_at: self.resets.seconds,
            },
        };
        let mut notes = Vec::new();
        for (window, usage) in [
            (Window::Bytes, &sample.bytes_window),
            (Window::Seconds, &sample.seconds_window),
        ] {
            let Some(frac) = usage.fraction() else {
                continue;
            };
            let mut worst = None;
            for &t in &self.thresholds {
                if frac * 100.0 >= f64::from(t) && !self.warned.contains(&(window, t)) {
                    self.warned.push((window, t));
                    worst = Some(worst.map_or(t, |w: u8| w.max(t)));
                }
            }
            if let Some(t) = worst {
                notes.push(QuotaNote::Warn {
                    window,
                    threshold_percent: t,
                    usage: usage.clone(),
                });
            }
        }
        notes.insert(0, QuotaNote::Sample(sample));
        if st.terminated_at.is_some() && !self.terminated {
            self.terminated = true;
            notes.push(QuotaNote::Terminated {
                reason: st
                    .terminated_reason
                    .clone()
                    .filter(|r| !r.is_empty())
                    .unwrap_or_else(|| "unknown".into()),
            });
        }
        notes
    }
}

/// Formats millicents of `currency` (lowercase ISO code, default EUR) to a tenth of a cent.
pub fn format_cost(millicents: u64, currency: Option<&str>) -> String {
    let tenth_mills = millicents.saturating_add(5) / 10; // units of 1/10,000
    let whole = tenth_mills / 10_000;
    let frac = tenth_mills % 10_000;
    match currency.unwrap_or("eur") {
        "eur" => format!("€{whole}.{frac:04}"),
        other => format!("{whole}.{frac:04} {}", other.to_uppercase()),
    }
}

/// A failed tunnelbyte status or usage call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QuotaApiError {
    /// 404: the server does not know the session.
    #[error("tunnelbyte does not know this session")]
    NotFound,
    /// Anything else (network, 5xx, unreadable answer).
    #[error("tunnelbyte status failed: {0}")]
    Failed(String),
}

/// The tunnelbyte calls the quota meter needs; the real client is adapted to this.
pub trait QuotaApi: Send + Sync + 'static {
    /// `GET /v1/sessions/{id}`.
    fn status(&self, id: &str)
        -> impl Future<Output = Result<SessionStatus, QuotaApiError>> + Send;
    /// The reset times from `GET /v1/usage`.
    fn resets(&self) -> impl Future<Output = Result<WindowResets, QuotaApiError>> + Send;
    /// Ends the session on the server (`DELETE /v1/sessions/{id}`, best effort).
    fn delete(&self, id: &str) -> impl Future<Output = Result<(), QuotaApiError>> + Send;
}

/// How a tunnelbyte session ended.
#[derive(Debug, Clone, PartialEq)]
pub enum QuotaExit {
    /// We were told to stop; the session was deleted on the server (or tried).
    Stopped,
    /// The server terminated the session with this reason.
    Terminated(String),
}

/// Polls status every `interval` (skipping missed ticks) until stopped or terminated.
pub async fn run_quota<A: QuotaApi>(
    api: Arc<A>,
    clock: SharedClock,
    id: String,
    mut meter: QuotaMeter,
    interval: Duration,
    mut stop: watch::Receiver<bool>,
    events: mpsc::UnboundedSender<QuotaNote>,
) -> QuotaExit {
    let mut polls = 0u64;
    let mut next = clock.now();
    loop {
        if *stop.borrow_and_update() {
            break;
        }
        tokio::select! {
            _ = clock.sleep_until(next) => {}
            changed = stop.changed() => {
                if changed.is_err() { break; }
                continue;
            }
        }
        // Refresh reset times now and then: they move only when a window rolls.
        if polls % 30 == 0 {
            match api.resets().await {
                Ok(r) => meter.set_resets(r),
                Err(e) => debug!(error = %e, "usage (reset times) unavailable"),
            }
        }
        polls += 1;
        match api.status(&id).await {
            Ok(st) => {
                for n in meter.on_status(&st) {
                    let _ = events.send(n);
                }
                if let Some(reason) = meter.terminated().then(|| st.terminated_reason.clone()) {
                    return QuotaExit::Terminated(
                        reason
                            .filter(|r| !r.is_empty())
                            .unwrap_or_else(|| "unknown".into()),
                    );
                }
            }
            Err(QuotaApiError::NotFound) => {
                let reason = "session not found".to_string();
                let _ = events.send(QuotaNote::Terminated {
                    reason: reason.clone(),
                });
                return QuotaExit::Terminated(reason);
            }
            Err(e) => warn!(error = %e, "status poll failed; trying again next tick"),
        }
        // Skip missed ticks: the next poll is one interval from now, never a burst.
        let now = clock.now();
        next = (next + interval).max(now);
    }
    match api.delete(&id).await {
        Err(e) => debug!(error = %e, "tunnelbyte session delete failed (the idle reaper ends it)"),
        Ok(()) => {
            // The final figures, cost up to the DELETE, for the history (the caps' day and
            // month totals read them).
            match api.status(&id).await {
                Ok(st) => {
                    if let Some(QuotaNote::Sample(s)) = meter.on_status(&st).into_iter().next() {
                        let _ = events.send(QuotaNote::Final(s));
                    }
                }
                Err(e) => debug!(error = %e, "no final tunnelbyte status"),
            }
        }
    }
    QuotaExit::Stopped
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(bytes: u64, secs: u64) -> SessionStatus {
        SessionStatus {
            tier: "free".into(),
            quota_bytes_used: bytes,
            quota_bytes_limit: 1000,
            quota_seconds_used: secs,
            quota_seconds_limit: 7200,
            ..SessionStatus::default()
        }
    }

    fn warns(notes: &[QuotaNote]) -> Vec<(Window, u8)> {
        notes
            .iter()
            .filter_map(|n| match n {
                QuotaNote::Warn {
                    window,
                    threshold_percent,
                    ..
                } => Some((*window, *threshold_percent)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn warns_once_per_window_and_threshold() {
        let mut m = QuotaMeter::default();
        assert!(warns(&m.on_status(&status(790, 0))).is_empty());
        assert_eq!(
            warns(&m.on_status(&status(800, 0))),
            vec![(Window::Bytes, 80)]
        );
        assert!(warns(&m.on_status(&status(900, 0))).is_empty());
        assert_eq!(
            warns(&m.on_status(&status(950, 5760))),
            vec![(Window::Bytes, 95), (Window::Seconds, 80)]
        );
        assert!(warns(&m.on_status(&status(999, 5800))).is_empty());
    }

    #[test]
    fn jumping_past_both_thresholds_warns_once_with_the_higher() {
        let mut m = QuotaMeter::default();
        assert_eq!(
            warns(&m.on_status(&status(0, 7000))),
            vec![(Window::Seconds, 95)]
        );
        assert!(warns(&m.on_status(&status(0, 7100))).is_empty());
    }

    #[test]
    fn unmetered_paid_tier_never_warns_and_reports_cost() {
        let mut m = QuotaMeter::default();
        let st = SessionStatus {
            tier: "paid".into(),
            quota_bytes_used: 10_000_000,
            cost_time_millicents: Some(21_000),
            cost_bytes_millicents: Some(37),
            cost_currency: Some("eur".into()),
            ..SessionStatus::default()
        };
        let notes = m.on_status(&st);
        assert!(warns(&notes).is_empty());
        let QuotaNote::Sample(s) = &notes[0] else {
            panic!("no sample")
        };
        assert_eq!(s.cost_millicents, Some(21_037));
        assert_eq!(format_cost(21_037, Some("eur")), "€0.2104");
    }

    #[test]
    fn cost_formatting() {
        assert_eq!(format_cost(0, None), "€0.0000");
        assert_eq!(format_cost(100_000, Some("eur")), "€1.0000");
        assert_eq!(format_cost(123_456_789, Some("eur")), "€1234.5679");
        assert_eq!(format_cost(4, Some("usd")), "0.0000 USD");
    }

    #[test]
    fn termination_is_reported_once() {
        let mut m = QuotaMeter::default();
        let mut st = status(10, 10);
        st.terminated_at = Some(Utc::now());
        st.terminated_reason = Some("quota_exceeded".into());
        let notes = m.on_status(&st);
        assert!(notes.contains(&QuotaNote::Terminated {
            reason: "quota_exceeded".into()
        }));
        assert!(m.terminated());
        assert!(!m
            .on_status(&st)
            .iter()
            .any(|n| matches!(n, QuotaNote::Terminated { .. })));
    }
}
