//! OrbNET (credits) as documented: auth, servers, authorize, WireGuard config, sessions.
//!
//! Built from seed page 000 (the sessions page) and the vendor reference §1. Every answer under
//! `/orbnet/api/v1` uses the `{success, data}` / `{success, error:{code, message}}` envelope and
//! carries `X-RateLimit-*` headers. Time is the lab's clock: access tokens expire after
//! [`tokens::ACCESS_TTL_SECS`], silent sessions end after [`sessions::WATCHDOG_SECS`].

mod accounts;
mod auth;
mod envelope;
mod ratelimit;
mod routes;
mod servers;
mod sessions;
mod tokens;
mod totp;
mod validate;
mod vpn;

pub use accounts::Account;
pub use ratelimit::{AUTH_PER_MIN, GLOBAL_PER_MIN, USER_PER_MIN};
pub use routes::router;
pub use sessions::{EndedSession, Session, DISCONNECT_REASONS, PROTOCOLS, WATCHDOG_SECS};
pub use tokens::{ACCESS_TTL_SECS, REFRESH_TTL_SECS};

use crate::exit::ExitPeers;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, VecDeque};

/// How often expired tokens and rate-limit windows are swept, in lab seconds.
const SWEEP_SECS: i64 = 60;

/// OrbNET's accounts, tokens and sessions.
#[derive(Default, Serialize, Deserialize)]
pub struct OrbState {
    accounts: BTreeMap<u64, Account>,
    tokens: tokens::Tokens,
    /// Active sessions by account id (one per account).
    active: HashMap<u64, sessions::Session>,
    history: VecDeque<sessions::EndedSession>,
    next_tracking: u64,
    #[serde(skip)]
    limiter: ratelimit::RateLimiter,
    /// Lab time of the last tick (for the control API's TOTP code).
    #[serde(skip)]
    now: Option<DateTime<Utc>>,
    #[serde(skip)]
    next_sweep: Option<DateTime<Utc>>,
}

impl std::fmt::Debug for OrbState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OrbState")
            .field("accounts", &self.accounts.len())
            .field("tokens", &self.tokens.counts())
            .field("active_sessions", &self.active.len())
            .finish_non_exhaustive()
    }
}

impl OrbState {
    /// The seeded accounts (see [`accounts::seed`]) with empty token tables.
    pub fn seeded() -> Self {
        Self {
            accounts: accounts::seed().into_iter().map(|a| (a.id, a)).collect(),
            tokens: tokens::Tokens::new(),
            ..Self::default()
        }
    }

    /// Seeded accounts for `GET /_lab/accounts`: `[{email, password, credits, ...}]`; the 2FA
    /// account also lists `totp_secret` (base32) and the `totp_code` valid now.
    pub fn accounts(&self) -> serde_json::Value {
        let now = self.now.unwrap_or_else(Utc::now);
        self.accounts
            .values()
            .map(|a| a.control_json(now))
            .collect()
    }

    /// Sessions ended so far (client, watchdog, depletion, control API), oldest first.
    pub fn ended_sessions(&self) -> Vec<sessions::EndedSession> {
        self.history.iter().cloned().collect()
    }

    /// Sessions running now.
    pub fn active_sessions(&self) -> Vec<sessions::Session> {
        self.active.values().cloned().collect()
    }

    /// Applies timing rules (heartbeat watchdog, token and window sweeps) at `now`.
    pub fn tick(&mut self, now: DateTime<Utc>, exit: &dyn ExitPeers) {
        self.now = Some(now);
        self.watchdog(now, exit);
        if self.next_sweep.is_none_or(|t| now >= t) {
            self.tokens.sweep(now);
            self.limiter.sweep(now.timestamp_millis());
            self.next_sweep = Some(now + Duration::seconds(SWEEP_SECS));
        }
    }

    /// Sets an account's credits (control API).
    pub fn set_credits(&mut self, email: &str, credits: f64) -> Result<(), String> {
        let account = self
            .accounts
            .values_mut()
            .find(|a| a.email.eq_ignore_ascii_case(email))
            .ok_or_else(|| format!("no OrbNET account {email}"))?;
        account.credits = credits;
        Ok(())
    }

    /// Ends a session server-side with `reason`, one of the documented disconnect reasons
    /// (control API). Its heartbeats and end then get 404 `SESSION_NOT_FOUND`.
    pub fn terminate(
        &mut self,
        id: &str,
        reason: &str,
        now: DateTime<Utc>,
        exit: &dyn ExitPeers,
    ) -> Result<(), String> {
        if !DISCONNECT_REASONS.contains(&reason) {
            return Err(format!(
                "unknown disconnect_reason {reason}; use one of {}",
                DISCONNECT_REASONS.join(", ")
            ));
        }
        let user_id = self
            .active
            .values()
            .find(|s| s.session_id == id)
            .map(|s| s.user_id)
            .ok_or_else(|| format!("no OrbNET session {id}"))?;
        self.finish(user_id, reason, now, exit);
        Ok(())
    }
}
