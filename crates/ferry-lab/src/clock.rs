//! The lab's clock: wall time that tests can advance without waiting.

use chrono::{DateTime, Duration, Utc};
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Instant, SystemTime};

/// Wall-clock time as the lab sees it: real elapsed time plus an offset moved by `advance`.
#[derive(Debug)]
pub struct LabClock {
    start_wall: DateTime<Utc>,
    start: Instant,
    offset_ms: AtomicI64,
}

impl LabClock {
    /// A clock starting at the real current time with no offset.
    pub fn new() -> Self {
        Self::with_offset_ms(0)
    }

    /// A clock starting at the real current time plus `offset_ms` (used when state is restored).
    pub fn with_offset_ms(offset_ms: i64) -> Self {
        Self {
            start_wall: Utc::now(),
            start: Instant::now(),
            offset_ms: AtomicI64::new(offset_ms),
        }
    }

    /// The lab's current time.
    pub fn now(&self) -> DateTime<Utc> {
        let elapsed = Duration::from_std(self.start.elapsed()).unwrap_or(Duration::zero());
        self.start_wall + elapsed + Duration::milliseconds(self.offset_ms.load(Ordering::SeqCst))
    }

    /// The lab's current time in unix milliseconds.
    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }

    /// Moves the lab's time forward by `seconds` (negative values are ignored).
    pub fn advance(&self, seconds: f64) {
        if seconds.is_finite() && seconds > 0.0 {
            let ms = (seconds * 1000.0).round() as i64;
            self.offset_ms.fetch_add(ms, Ordering::SeqCst);
        }
    }

    /// How far the lab's time is ahead of real time, in milliseconds.
    pub fn offset_ms(&self) -> i64 {
        self.offset_ms.load(Ordering::SeqCst)
    }

    /// Converts a real (host) timestamp into lab time, e.g. a WireGuard handshake time.
    pub fn from_system(&self, t: SystemTime) -> DateTime<Utc> {
        DateTime::<Utc>::from(t) + Duration::milliseconds(self.offset_ms())
    }
}

impl Default for LabClock {
    fn default() -> Self {
        Self::new()
    }
}

/// Formats a lab time as RFC 3339 UTC with a `Z` suffix and whole seconds, as OrbNET does.
pub fn rfc3339_z(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// Formats a lab time as RFC 3339 UTC with milliseconds and `Z` (NeoSC and tunnelbyte style).
pub fn rfc3339_ms(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advance_moves_time_forward_only() {
        let c = LabClock::new();
        let t0 = c.now();
        c.advance(300.0);
        assert!(c.now() - t0 >= Duration::seconds(300));
        c.advance(-50.0);
        assert!(c.now() - t0 >= Duration::seconds(300));
        assert_eq!(c.offset_ms(), 300_000);
    }

    #[test]
    fn formats() {
        let t = DateTime::parse_from_rfc3339("2026-02-08T10:30:00.123Z")
            .unwrap()
            .to_utc();
        assert_eq!(rfc3339_z(t), "2026-02-08T10:30:00Z");
        assert_eq!(rfc3339_ms(t), "2026-02-08T10:30:00.123Z");
    }
}
