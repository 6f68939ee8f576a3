//! Tiers and their quota windows: bytes in a 7-day window, session time in a 24-hour window.
//!
//! The vendor calls both windows "rolling" and publishes a single reset time per window. The lab
//! reads that as a window that opens at the first use after the previous one closed and resets
//! completely `length` later (so `*_window_resets_at` is one well-defined instant).

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

/// Length of the bytes window (rolling 7 days).
pub fn bytes_window() -> Duration {
    Duration::days(7)
}

/// Length of the session-time window (rolling 24 hours, every tier).
pub fn seconds_window() -> Duration {
    Duration::hours(24)
}

/// An account tier.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// Device-bound install token: 1 GiB / 7 d, 30 min / 24 h.
    Anonymous,
    /// Email-verified account: 5 GiB / 7 d, 2 h / 24 h.
    Free,
    /// Card on file: unmetered, billed per use.
    Paid,
}

impl Tier {
    /// The name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Tier::Anonymous => "anonymous",
            Tier::Free => "free",
            Tier::Paid => "paid",
        }
    }

    /// Byte cap per 7-day window; 0 means unmetered.
    pub fn bytes_limit(self) -> u64 {
        match self {
            Tier::Anonymous => 1_073_741_824,
            Tier::Free => 5_368_709_120,
            Tier::Paid => 0,
        }
    }

    /// Session-time cap per 24-hour window in seconds; 0 means unmetered.
    pub fn seconds_limit(self) -> u64 {
        match self {
            Tier::Anonymous => 1800,
            Tier::Free => 7200,
            Tier::Paid => 0,
        }
    }

    /// The `hint` sent with a 402.
    pub fn quota_hint(self) -> &'static str {
        match self {
            Tier::Anonymous => {
                "anonymous tier limit reached: run `tunnelbyte signup` for 5 GiB per week and 2 h per day, or wait for the window to reset"
            }
            Tier::Free => {
                "free tier limit reached: run `tunnelbyte upgrade` for unmetered use, or wait for the window to reset"
            }
            Tier::Paid => "paid tier is unmetered",
        }
    }
}

/// One quota window: when it opened and how much was used in it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Window {
    /// When the window opened; `None` until first use.
    pub started_at: Option<DateTime<Utc>>,
    /// Units used (bytes, or milliseconds of session time).
    pub used: u64,
}

impl Window {
    /// Closes the window if `len` has passed since it opened.
    pub fn roll(&mut self, now: DateTime<Utc>, len: Duration) {
        if let Some(start) = self.started_at {
            if now >= start + len {
                *self = Window::default();
            }
        }
    }

    /// Opens the window at `at` if it is not open.
    pub fn open(&mut self, at: DateTime<Utc>) -> DateTime<Utc> {
        *self.started_at.get_or_insert(at)
    }

    /// When the window resets: `len` after it opened, or `len` from `now` if it is not open.
    pub fn resets_at(&self, now: DateTime<Utc>, len: Duration) -> DateTime<Utc> {
        self.started_at.unwrap_or(now) + len
    }
}

/// Usage of one token across both windows.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Bytes through the tunnel (both directions) in the 7-day window.
    pub bytes: Window,
    /// Session time in milliseconds in the 24-hour window.
    pub seconds_ms: Window,
}

impl Usage {
    /// Closes whichever window has run out at `now`.
    pub fn roll(&mut self, now: DateTime<Utc>) {
        self.bytes.roll(now, bytes_window());
        self.seconds_ms.roll(now, seconds_window());
    }

    /// Session seconds used in the current window (whole seconds).
    pub fn seconds_used(&self) -> u64 {
        self.seconds_ms.used / 1000
    }

    /// Adds `bytes` at `at`, opening the window if needed.
    pub fn add_bytes(&mut self, at: DateTime<Utc>, bytes: u64) {
        if bytes == 0 {
            return;
        }
        self.bytes.roll(at, bytes_window());
        self.bytes.open(at);
        self.bytes.used = self.bytes.used.saturating_add(bytes);
    }

    /// Accrues session time from `from` to `to` for a tier with `limit_s` seconds (0 = none),
    /// crossing window resets as they fall. Counts whole milliseconds and returns how far it
    /// counted, plus when the cap was reached, if it was.
    pub fn accrue_time(&mut self, from: DateTime<Utc>, to: DateTime<Utc>, limit_s: u64) -> Accrual {
        let limit_ms = limit_s.saturating_mul(1000);
        let mut t = from;
        while t < to {
            self.seconds_ms.roll(t, seconds_window());
            let reset = self.seconds_ms.open(t) + seconds_window();
            let seg_end = to.min(reset);
            let seg = ms(seg_end - t);
            if limit_ms > 0 {
                let room = limit_ms.saturating_sub(self.seconds_ms.used);
                if seg >= room {
                    self.seconds_ms.used = limit_ms;
                    let at = t + millis(room);
                    return Accrual {
                        until: at,
                        quota_at: Some(at),
                    };
                }
            }
            self.seconds_ms.used = self.seconds_ms.used.saturating_add(seg);
            if seg_end == reset {
                t = seg_end;
            } else if seg == 0 {
                break;
            } else {
                // Sub-millisecond remainders are carried to the next call, not dropped.
                t += millis(seg);
            }
        }
        let quota_at = (limit_ms > 0 && self.seconds_ms.used >= limit_ms).then_some(t);
        Accrual { until: t, quota_at }
    }

    /// Whether either window is at or over the tier's cap.
    pub fn exhausted(&self, tier: Tier) -> (bool, bool) {
        let bytes = tier.bytes_limit() > 0 && self.bytes.used >= tier.bytes_limit();
        let secs = tier.seconds_limit() > 0 && self.seconds_ms.used >= tier.seconds_limit() * 1000;
        (bytes, secs)
    }
}

/// What [`Usage::accrue_time`] counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Accrual {
    /// Time is accounted up to here.
    pub until: DateTime<Utc>,
    /// When the cap was reached, if it was.
    pub quota_at: Option<DateTime<Utc>>,
}

fn millis(ms: u64) -> Duration {
    Duration::milliseconds(i64::try_from(ms).unwrap_or(i64::MAX / 2))
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.num_milliseconds()).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-01T00:00:00Z")
            .unwrap()
            .to_utc()
    }

    #[test]
    fn time_accrues_and_stops_at_the_cap() {
        let mut u = Usage::default();
        let t = t0();
        let a = u.accrue_time(t, t + Duration::seconds(600), 1800);
        assert_eq!(a.quota_at, None);
        assert_eq!(a.until, t + Duration::seconds(600));
        assert_eq!(u.seconds_used(), 600);
        let hit = u.accrue_time(t + Duration::seconds(600), t + Duration::hours(1), 1800);
        assert_eq!(hit.quota_at, Some(t + Duration::seconds(1800)));
        assert_eq!(u.seconds_used(), 1800);
    }

    #[test]
    fn unmetered_time_crosses_window_resets() {
        let mut u = Usage::default();
        let t = t0();
        assert_eq!(u.accrue_time(t, t + Duration::hours(30), 0).quota_at, None);
        // The first 24 h fell into a window that has since reset.
        assert_eq!(u.seconds_used(), 6 * 3600);
        assert_eq!(u.seconds_ms.started_at, Some(t + Duration::hours(24)));
    }

    #[test]
    fn sub_millisecond_steps_are_not_lost() {
        let mut u = Usage::default();
        let mut until = t0();
        let mut real = t0();
        for _ in 0..1000 {
            real += Duration::microseconds(1500);
            until = u.accrue_time(until, real, 0).until;
        }
        assert_eq!(u.seconds_ms.used, 1500);
        assert_eq!(until, real);
    }

    #[test]
    fn windows_reset_after_their_length() {
        let mut u = Usage::default();
        let t = t0();
        u.add_bytes(t, 10);
        u.roll(t + Duration::days(7) - Duration::seconds(1));
        assert_eq!(u.bytes.used, 10);
        u.roll(t + Duration::days(7));
        assert_eq!(u.bytes.used, 0);
        assert_eq!(u.bytes.started_at, None);
    }

    #[test]
    fn exhausted_reports_each_window() {
        let mut u = Usage::default();
        u.bytes.used = Tier::Free.bytes_limit();
        assert_eq!(u.exhausted(Tier::Free), (true, false));
        assert_eq!(u.exhausted(Tier::Paid), (false, false));
    }
}
