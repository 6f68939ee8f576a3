//! The session lifecycle of the seed page: start, heartbeat, end, active, plus the server-side
//! watchdog and the `/vpn/connection` view.
//!
//! Rules the seed leaves open, and what the lab does:
//! - Deduction per heartbeat (and at `end`) = `consumption_rate` × `seconds_since_last` ÷ 60,
//!   credited per the client's reported seconds (not per whole minute), rounded to 1e-6.
//! - The heartbeat that crosses zero deducts only what is left (balances never go negative),
//!   ends the session with reason `credits_depleted`, and answers 402 `CREDITS_DEPLETED`
//!   (the envelope's `details` carries the final `credits_remaining` and `credits_deducted`).
//!   A balance set to 0 by the control API is caught the same way by the next heartbeat.
//! - `end` that crosses zero still answers 200 (the session is ending anyway) with 0 left.
//! - `start` with a balance ≤ 0 answers 403 `INSUFFICIENT_CREDITS`, like `authorize`.
//! - `session_duration_secs` / `total_duration_secs` are the sum of reported seconds (which is
//!   what credits are charged on: 3600 s at 1.5/min = 90.0, as in the seed); `active`'s
//!   `duration_secs` is lab time since `started_at`.
//! - `next_deduction_in_seconds` is always 60: the recommended heartbeat cadence.
//! - The watchdog ends a session when more than 300 s of lab time pass after its start or last
//!   heartbeat, with reason `timeout`, and charges nothing for the unreported time. Later
//!   heartbeats or ends for it get 404 `SESSION_NOT_FOUND`.
//! - Any end (client, watchdog, depletion, control API) removes the account's WireGuard peer
//!   from the exit node: a new connection fetches a new config first, as the documented flow
//!   does.

use super::envelope::{credits, ApiError};
use super::servers;
use super::OrbState;
use crate::clock::rfc3339_z;
use crate::exit::ExitPeers;
use axum::http::StatusCode;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::net::IpAddr;

/// `protocol` values.
pub const PROTOCOLS: &[&str] = &["wireguard", "vless", "orbconnect"];
/// `disconnect_reason` values.
pub const DISCONNECT_REASONS: &[&str] = &["user_initiated", "credits_depleted", "error", "timeout"];
/// Lab seconds without a heartbeat after which the server ends a session.
pub const WATCHDOG_SECS: i64 = 300;
/// `next_deduction_in_seconds` in start and heartbeat answers.
pub const NEXT_DEDUCTION_SECS: u64 = 60;
/// Ended sessions kept for inspection.
const HISTORY: usize = 1000;

/// An active session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    /// Client-chosen id, echoed back as given.
    pub session_id: String,
    /// Owner.
    pub user_id: u64,
    /// Server connected to.
    pub server_id: u64,
    /// Protocol in use.
    pub protocol: String,
    /// Server-side tracking id.
    pub tracking_id: String,
    /// Lab time of `start`.
    pub started_at: DateTime<Utc>,
    /// Lab time of `start` or the last heartbeat (the watchdog's reference).
    pub last_seen: DateTime<Utc>,
    /// Sum of reported `seconds_since_last`.
    pub reported_secs: u64,
    /// Balance at start.
    pub credits_at_start: f64,
    /// Credits deducted so far.
    pub credits_used: f64,
}

/// A finished session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EndedSession {
    /// The session as it was when it ended.
    pub session: Session,
    /// Lab time of the end.
    pub ended_at: DateTime<Utc>,
    /// Why it ended.
    pub disconnect_reason: String,
}

/// `POST /vpn/session/start` fields.
#[derive(Debug, Clone)]
pub struct StartReq {
    /// `session_id`.
    pub session_id: String,
    /// `server_id`.
    pub server_id: u64,
    /// `protocol`.
    pub protocol: &'static str,
}

/// `POST /vpn/session/heartbeat` fields.
#[derive(Debug, Clone)]
pub struct BeatReq {
    /// `session_id`.
    pub session_id: String,
    /// `seconds_since_last`, 1..=300.
    pub seconds: u64,
}

/// `POST /vpn/session/end` fields.
#[derive(Debug, Clone)]
pub struct EndReq {
    /// `session_id`.
    pub session_id: String,
    /// `seconds_since_last`, 1..=300.
    pub seconds: u64,
    /// `disconnect_reason`.
    pub reason: &'static str,
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// Credits for `seconds` at `rate` per minute, capped at what `balance` holds.
pub fn deduction(balance: f64, rate: f64, seconds: u64) -> f64 {
    let want = round6(rate * seconds as f64 / 60.0);
    want.min(balance.max(0.0))
}

fn not_found() -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "SESSION_NOT_FOUND",
        "No active session found with the specified ID",
    )
}

/// 403 `INSUFFICIENT_CREDITS` (authorize, and start with no balance).
pub fn insufficient_credits() -> ApiError {
    ApiError::new(
        StatusCode::FORBIDDEN,
        "INSUFFICIENT_CREDITS",
        "You do not have enough credits for a VPN connection. Please top up your balance or upgrade your plan.",
    )
}

impl OrbState {
    /// `POST /vpn/session/start`.
    pub fn start_session(
        &mut self,
        user_id: u64,
        req: StartReq,
        now: DateTime<Utc>,
    ) -> Result<Value, ApiError> {
        if self.active.contains_key(&user_id) {
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                "SESSION_ALREADY_ACTIVE",
                "An active VPN session already exists. End the current session before starting a new one.",
            ));
        }
        let account = self
            .accounts
            .get(&user_id)
            .ok_or_else(ApiError::unauthorized)?;
        if account.credits <= 0.0 {
            return Err(insufficient_credits());
        }
        let (balance, rate, free) = (
            account.credits,
            account.consumption_rate,
            account.is_free_user,
        );
        self.next_tracking += 1;
        let session = Session {
            session_id: req.session_id,
            user_id,
            server_id: req.server_id,
            protocol: req.protocol.into(),
            tracking_id: format!("trk_{}", 10_000_000 + self.next_tracking),
            started_at: now,
            last_seen: now,
            reported_secs: 0,
            credits_at_start: balance,
            credits_used: 0.0,
        };
        let data = json!({
            "session_id": session.session_id,
            "tracking_id": session.tracking_id,
            "is_free_user": free,
            "credits_at_start": credits(balance),
            "consumption_rate": rate,
            "next_deduction_in_seconds": NEXT_DEDUCTION_SECS,
        });
        tracing::info!(user_id, tracking_id = %session.tracking_id, "orbnet session started");
        self.active.insert(user_id, session);
        Ok(data)
    }

    /// `POST /vpn/session/heartbeat`.
    pub fn heartbeat(
        &mut self,
        user_id: u64,
        req: BeatReq,
        now: DateTime<Utc>,
        exit: &dyn ExitPeers,
    ) -> Result<Value, ApiError> {
        let (Some(session), Some(account)) = (
            self.active.get_mut(&user_id),
            self.accounts.get_mut(&user_id),
        ) else {
            return Err(not_found());
        };
        if session.session_id != req.session_id {
            return Err(not_found());
        }
        let deducted = deduction(account.credits, account.consumption_rate, req.seconds);
        account.credits = round6(account.credits - deducted);
        session.credits_used = round6(session.credits_used + deducted);
        session.reported_secs += req.seconds;
        session.last_seen = now;
        let (remaining, rate) = (account.credits, account.consumption_rate);
        let (sid, duration) = (session.session_id.clone(), session.reported_secs);
        if remaining <= 0.0 {
            self.finish(user_id, "credits_depleted", now, exit);
            return Err(ApiError::new(
                StatusCode::PAYMENT_REQUIRED,
                "CREDITS_DEPLETED",
                "Your credits have been depleted. The session will be terminated.",
            )
            .with_details(json!({
                "session_id": sid,
                "credits_remaining": credits(remaining),
                "credits_deducted": deducted,
                "disconnect_reason": "credits_depleted",
            })));
        }
        Ok(json!({
            "session_id": sid,
            "credits_remaining": credits(remaining),
            "credits_deducted": deducted,
            "consumption_rate": rate,
            "next_deduction_in_seconds": NEXT_DEDUCTION_SECS,
            "session_duration_secs": duration,
        }))
    }

    /// `POST /vpn/session/end`.
    pub fn end_session(
        &mut self,
        user_id: u64,
        req: EndReq,
        now: DateTime<Utc>,
        exit: &dyn ExitPeers,
    ) -> Result<Value, ApiError> {
        let (Some(session), Some(account)) = (
            self.active.get_mut(&user_id),
            self.accounts.get_mut(&user_id),
        ) else {
            return Err(not_found());
        };
        if session.session_id != req.session_id {
            return Err(not_found());
        }
        let deducted = deduction(account.credits, account.consumption_rate, req.seconds);
        account.credits = round6(account.credits - deducted);
        session.credits_used = round6(session.credits_used + deducted);
        session.reported_secs += req.seconds;
        let remaining = account.credits;
        let ended = self
            .finish(user_id, req.reason, now, exit)
            .ok_or_else(not_found)?;
        Ok(json!({
            "session_id": ended.session.session_id,
            "total_duration_secs": ended.session.reported_secs,
            "total_credits_used": ended.session.credits_used,
            "credits_remaining": credits(remaining),
            "disconnect_reason": ended.disconnect_reason,
            "ended_at": rfc3339_z(ended.ended_at),
        }))
    }

    /// `GET /vpn/session/active`.
    pub fn active_json(&self, user_id: u64, now: DateTime<Utc>) -> Value {
        let Some(s) = self.active.get(&user_id) else {
            return json!({"has_active_session": false, "session": null});
        };
        let balance = self.accounts.get(&user_id).map_or(0.0, |a| a.credits);
        json!({
            "has_active_session": true,
            "session": {
                "session_id": s.session_id,
                "server_id": s.server_id,
                "protocol": s.protocol,
                "started_at": rfc3339_z(s.started_at),
                "duration_secs": (now - s.started_at).num_seconds().max(0),
                "credits_remaining": credits(balance),
            }
        })
    }

    /// `GET /vpn/connection`: the active session seen as a connection, with the bytes the exit
    /// node counted for the account's peer.
    pub fn connection_json(
        &self,
        user_id: u64,
        now: DateTime<Utc>,
        exit: &dyn ExitPeers,
        client_ip: IpAddr,
    ) -> Value {
        let Some(s) = self.active.get(&user_id) else {
            return json!({"is_connected": false, "connection": null});
        };
        let bytes = self
            .accounts
            .get(&user_id)
            .and_then(|a| a.peer_key)
            .and_then(|k| exit.peer_stats(&k))
            .map_or(0, |st| st.rx_bytes + st.tx_bytes);
        let server =
            servers::find(s.server_id).map_or(Value::Null, |srv| srv.json(exit.endpoint().ip()));
        json!({
            "is_connected": true,
            "connection": {
                "stats_id": s.tracking_id,
                "server": server,
                "protocol": s.protocol,
                "connected_at": rfc3339_z(s.started_at),
                "duration_secs": (now - s.started_at).num_seconds().max(0),
                "data_transferred": bytes,
                "tokens_earned": 0.0,
                "client_ip": client_ip.to_string(),
            }
        })
    }

    /// Ends the account's active session with `reason`, records it, and removes its peer.
    pub(crate) fn finish(
        &mut self,
        user_id: u64,
        reason: &str,
        now: DateTime<Utc>,
        exit: &dyn ExitPeers,
    ) -> Option<EndedSession> {
        let session = self.active.remove(&user_id)?;
        if let Some(key) = self
            .accounts
            .get_mut(&user_id)
            .and_then(|a| a.peer_key.take())
        {
            exit.remove_peer(&key);
        }
        tracing::info!(user_id, tracking_id = %session.tracking_id, reason, "orbnet session ended");
        let ended = EndedSession {
            session,
            ended_at: now,
            disconnect_reason: reason.into(),
        };
        if self.history.len() >= HISTORY {
            self.history.pop_front();
        }
        self.history.push_back(ended.clone());
        Some(ended)
    }

    /// Ends every session silent for more than [`WATCHDOG_SECS`] with reason `timeout`.
    pub(crate) fn watchdog(&mut self, now: DateTime<Utc>, exit: &dyn ExitPeers) {
        let limit = Duration::seconds(WATCHDOG_SECS);
        let stale: Vec<u64> = self
            .active
            .values()
            .filter(|s| now - s.last_seen > limit)
            .map(|s| s.user_id)
            .collect();
        for user_id in stale {
            self.finish(user_id, "timeout", now, exit);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deduction_is_rate_times_seconds_over_sixty_capped_at_balance() {
        assert_eq!(deduction(5000.0, 1.5, 60), 1.5);
        assert_eq!(deduction(5000.0, 1.5, 3600), 90.0);
        assert_eq!(deduction(5000.0, 1.5, 45), 1.125);
        assert_eq!(deduction(1.0, 1.5, 60), 1.0);
        assert_eq!(deduction(0.0, 1.5, 60), 0.0);
        assert_eq!(deduction(-3.0, 1.5, 60), 0.0);
    }
}
