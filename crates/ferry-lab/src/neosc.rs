//! NeoSC (workspaces) as documented: auth, workspaces, sessions.

use crate::ctx::LabCtx;
use axum::Router;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use std::sync::Arc;

/// NeoSC's users, tokens, workspaces and sessions.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct NeoState {}

impl NeoState {
    /// The seeded users and default workspaces.
    pub fn seeded() -> Self {
        Self::default()
    }

    /// Seeded users for `GET /_lab/accounts`: `[{email, password}]`.
    pub fn accounts(&self) -> serde_json::Value {
        serde_json::json!([])
    }

    /// Applies timing rules at `now` (none are documented for NeoSC).
    pub fn tick(&mut self, _now: DateTime<Utc>) {}

    /// Ends a session server-side (control API).
    pub fn terminate(
        &mut self,
        id: &str,
        _reason: &str,
        _now: DateTime<Utc>,
    ) -> Result<(), String> {
        Err(format!("no NeoSC session {id}"))
    }
}

/// NeoSC's routes, nested under `/neosc/api`.
pub fn router() -> Router<Arc<LabCtx>> {
    Router::new()
}
