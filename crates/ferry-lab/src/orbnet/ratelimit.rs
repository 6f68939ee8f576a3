//! OrbNET's documented rate limits, counted in fixed 60-second windows of lab time.
//!
//! Tiers (rate-limiting page): auth endpoints 10/min per IP, protected endpoints 300/min per
//! user, global 100/min per IP. The lab applies one tier per request: the auth tier to `/auth/*`
//! calls without a bearer, the user tier to requests with a valid access token, and the global
//! tier to everything else (unauthenticated calls, unknown routes). Applying the global tier to
//! authenticated calls too would make the documented 300/min per user unreachable from one IP.

use std::collections::HashMap;

/// Auth endpoints: requests per minute per IP.
pub const AUTH_PER_MIN: u32 = 10;
/// Protected endpoints: requests per minute per user.
pub const USER_PER_MIN: u32 = 300;
/// Everything else: requests per minute per IP.
pub const GLOBAL_PER_MIN: u32 = 100;
/// Window length in milliseconds.
const WINDOW_MS: i64 = 60_000;

/// Which bucket a request counts against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Bucket {
    /// Auth endpoints, by client IP.
    Auth(String),
    /// Protected endpoints, by account id.
    User(u64),
    /// Anything else, by client IP.
    Global(String),
}

impl Bucket {
    fn limit(&self) -> u32 {
        match self {
            Bucket::Auth(_) => AUTH_PER_MIN,
            Bucket::User(_) => USER_PER_MIN,
            Bucket::Global(_) => GLOBAL_PER_MIN,
        }
    }
}

/// The outcome for one request: what goes in the `X-RateLimit-*` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// Whether the request may proceed.
    pub allowed: bool,
    /// `X-RateLimit-Limit`.
    pub limit: u32,
    /// `X-RateLimit-Remaining`, after this request.
    pub remaining: u32,
    /// `X-RateLimit-Reset`: unix seconds (lab time) when the window ends.
    pub reset_unix: i64,
    /// Seconds until the window ends, rounded up (`Retry-After` on 429).
    pub retry_after: u64,
}

#[derive(Debug, Clone, Copy)]
struct Window {
    start_ms: i64,
    count: u32,
}

/// Per-bucket windows.
#[derive(Debug, Default)]
pub struct RateLimiter {
    windows: HashMap<Bucket, Window>,
}

impl RateLimiter {
    /// Counts a request in `bucket` at lab time `now_ms` and says whether it is allowed.
    /// Refused requests do not count.
    pub fn check(&mut self, bucket: Bucket, now_ms: i64) -> Verdict {
        let limit = bucket.limit();
        let w = self.windows.entry(bucket).or_insert(Window {
            start_ms: now_ms,
            count: 0,
        });
        if now_ms >= w.start_ms + WINDOW_MS || now_ms < w.start_ms {
            *w = Window {
                start_ms: now_ms,
                count: 0,
            };
        }
        let allowed = w.count < limit;
        if allowed {
            w.count += 1;
        }
        let end_ms = w.start_ms + WINDOW_MS;
        Verdict {
            allowed,
            limit,
            remaining: limit - w.count,
            reset_unix: (end_ms + 999).div_euclid(1000),
            retry_after: ((end_ms - now_ms).max(0) as u64).div_ceil(1000),
        }
    }

    /// Forgets windows that ended before `now_ms`.
    pub fn sweep(&mut self, now_ms: i64) {
        self.windows.retain(|_, w| now_ms < w.start_ms + WINDOW_MS);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn auth_allows_ten_per_window_then_refuses_until_reset() {
        let mut r = RateLimiter::default();
        let ip = || Bucket::Auth("127.0.0.1".into());
        for i in 0..10 {
            let v = r.check(ip(), 1_000 + i);
            assert!(v.allowed);
            assert_eq!(v.remaining, 9 - i as u32);
        }
        let v = r.check(ip(), 30_000);
        assert!(!v.allowed);
        assert_eq!(v.remaining, 0);
        assert_eq!(v.retry_after, 31);
        assert_eq!(v.reset_unix, 61);
        assert!(r.check(ip(), 61_000).allowed);
        assert!(r.check(Bucket::Auth("10.0.0.1".into()), 30_000).allowed);
    }

    #[test]
    fn user_tier_is_300() {
        let mut r = RateLimiter::default();
        let v = r.check(Bucket::User(1), 0);
        assert_eq!((v.limit, v.remaining), (300, 299));
    }
}
