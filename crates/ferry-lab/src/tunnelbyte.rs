//! tunnelbyte (quota and cost) as documented: regions, usage, sessions.

use crate::clock::LabClock;
use crate::ctx::LabCtx;
use crate::exit::ExitPeers;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// tunnelbyte's tokens, regions and sessions.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct TbState {}

impl TbState {
    /// The seeded tokens (one per tier) and regions.
    pub fn seeded() -> Self {
        Self::default()
    }

    /// Seeded tokens for `GET /_lab/accounts`: `[{token, tier}]`.
    pub fn accounts(&self) -> serde_json::Value {
        serde_json::json!([])
    }

    /// Applies timing rules (byte counters from the exit node, quota windows, idle reaper,
    /// expiry) at `now`.
    pub fn tick(&mut self, _now: DateTime<Utc>, _clock: &LabClock, _exit: &dyn ExitPeers) {}

    /// Sets a token's usage in the current windows (control API).
    pub fn set_usage(
        &mut self,
        token: &str,
        _bytes_used: Option<u64>,
        _session_seconds: Option<u64>,
        _now: DateTime<Utc>,
    ) -> Result<(), String> {
        Err(format!("no tunnelbyte token {token}"))
    }

    /// Ends a session server-side with `reason` (control API).
    pub fn terminate(
        &mut self,
        id: &str,
        _reason: &str,
        _now: DateTime<Utc>,
        _exit: &dyn ExitPeers,
    ) -> Result<(), String> {
        Err(format!("no tunnelbyte session {id}"))
    }

    /// Takes a region offline or brings it back (control API).
    pub fn set_region_online(&mut self, code: &str, _online: bool) -> Result<(), String> {
        Err(format!("no tunnelbyte region {code}"))
    }
}

/// tunnelbyte's routes, nested under `/tunnelbyte/v1`.
pub fn router() -> Router<Arc<LabCtx>> {
    Router::new()
}
