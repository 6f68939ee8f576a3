//! OrbNET (credits) as documented: auth, servers, authorize, WireGuard config, sessions.

use crate::ctx::LabCtx;
use crate::exit::ExitPeers;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// OrbNET's accounts, tokens and sessions.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct OrbState {}

impl OrbState {
    /// The seeded accounts and servers.
    pub fn seeded() -> Self {
        Self::default()
    }

    /// Seeded accounts for `GET /_lab/accounts`: `[{email, password, credits}]`.
    pub fn accounts(&self) -> serde_json::Value {
        serde_json::json!([])
    }

    /// Applies timing rules (heartbeat watchdog, token expiry) at `now`.
    pub fn tick(&mut self, _now: DateTime<Utc>, _exit: &dyn ExitPeers) {}

    /// Sets an account's credits (control API).
    pub fn set_credits(&mut self, email: &str, _credits: f64) -> Result<(), String> {
        Err(format!("no OrbNET account {email}"))
    }

    /// Ends a session server-side with `reason` (control API).
    pub fn terminate(
        &mut self,
        id: &str,
        _reason: &str,
        _now: DateTime<Utc>,
        _exit: &dyn ExitPeers,
    ) -> Result<(), String> {
        Err(format!("no OrbNET session {id}"))
    }
}

/// OrbNET's routes, nested under `/orbnet/api/v1`.
pub fn router() -> Router<Arc<LabCtx>> {
    Router::new()
}
