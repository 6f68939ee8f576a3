//! The per-IP token bucket in front of tunnelbyte's public endpoints: a burst of 10, then one
//! request per second of lab time.

use chrono::{DateTime, Utc};
use std::collections::HashMap;
use std::net::IpAddr;

/// Requests allowed at once.
pub const BURST: f64 = 10.0;
/// Tokens refilled per second.
pub const RATE_PER_S: f64 = 1.0;
/// Buckets kept before idle ones are dropped.
const MAX_BUCKETS: usize = 10_000;

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: DateTime<Utc>,
}

/// Buckets by source IP (in memory only, as the vendor's are).
#[derive(Debug, Default)]
pub struct RateLimiter {
    buckets: HashMap<Option<IpAddr>, Bucket>,
}

impl RateLimiter {
    /// Takes one request from `ip`'s bucket; `Err(retry_after_seconds)` when it is empty.
    pub fn check(&mut self, ip: Option<IpAddr>, now: DateTime<Utc>) -> Result<(), u64> {
        if self.buckets.len() >= MAX_BUCKETS && !self.buckets.contains_key(&ip) {
            self.buckets.retain(|_, b| refilled(*b, now) < BURST);
        }
        let b = self.buckets.entry(ip).or_insert(Bucket {
            tokens: BURST,
            at: now,
        });
        let tokens = refilled(*b, now);
        if tokens >= 1.0 {
            *b = Bucket {
                tokens: tokens - 1.0,
                at: now,
            };
            Ok(())
        } else {
            *b = Bucket { tokens, at: now };
            let wait = ((1.0 - tokens) / RATE_PER_S).ceil().max(1.0);
            Err(wait as u64)
        }
    }
}

fn refilled(b: Bucket, now: DateTime<Utc>) -> f64 {
    let secs = (now - b.at).num_milliseconds().max(0) as f64 / 1000.0;
    (b.tokens + secs * RATE_PER_S).min(BURST)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;

    #[test]
    fn burst_then_one_per_second() {
        let mut r = RateLimiter::default();
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        let t = Utc::now();
        for _ in 0..10 {
            assert!(r.check(ip, t).is_ok());
        }
        assert_eq!(r.check(ip, t), Err(1));
        // Another IP has its own bucket.
        assert!(r.check(Some(IpAddr::from([127, 0, 0, 2])), t).is_ok());
        assert!(r.check(ip, t + Duration::seconds(1)).is_ok());
        assert!(r.check(ip, t + Duration::seconds(1)).is_err());
        for _ in 0..10 {
            assert!(r.check(ip, t + Duration::seconds(100)).is_ok());
        }
        assert!(r.check(ip, t + Duration::seconds(100)).is_err());
    }
}
