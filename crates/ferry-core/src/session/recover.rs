//! Crash reconciliation at startup: rows left open by a process that died are ended on the
//! server when they are still ours and active, and closed locally with reason `recovered`.
//! The downtime is never billed: OrbNET sessions are ended reporting the API's minimum of 1 s
//! ([`super::orbnet::LEFTOVER_SECS`]); tunnelbyte sessions are deleted at once.
//! Run it only when no other Ferry process owns a session (the CLI holds a lock file).

use tracing::{info, warn};

use super::orbnet::{downtime_secs, LEFTOVER_SECS};
use super::ports::{Ledger, UsageRow};
use crate::clock::Clock;
use crate::meter::credits_driver::{CreditsApi, CreditsApiError, DisconnectReason};
use crate::meter::quota::{QuotaApi, QuotaApiError};

/// What reconciliation did, for a notice.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Rows closed locally.
    pub closed: usize,
    /// Sessions ended on the server.
    pub ended_on_server: usize,
}

/// Reconciles open OrbNET rows. If the server cannot be asked, rows stay open for next time.
pub async fn reconcile_orbnet<A: CreditsApi, L: Ledger>(
    api: &A,
    ledger: &L,
    clock: &dyn Clock,
) -> Recovered {
    let mut out = Recovered::default();
    let rows = ledger.open_rows("orbnet").await;
    if rows.is_empty() {
        return out;
    }
    let active = match api.active().await {
        Ok(a) => a,
        Err(e) => {
            warn!(error = %e, "cannot check OrbNET's active session; will reconcile later");
            return out;
        }
    };
    for row in rows {
        if active
            .as_ref()
            .is_some_and(|a| a.session_id == row.client_session_id)
        {
            // At once, and without the downtime: the API's minimum (see [`LEFTOVER_SECS`]).
            info!(
                session = %row.client_session_id,
                downtime_secs = downtime_secs(row.last_ack_at, clock.wall()),
                "ending a session a crash left running (its downtime is not billed)"
            );
            match api
                .end(
                    &row.client_session_id,
                    LEFTOVER_SECS,
                    DisconnectReason::Error,
                )
                .await
            {
                Ok(_) | Err(CreditsApiError::SessionNotFound) => out.ended_on_server += 1,
                Err(e) => warn!(error = %e, "could not end a leftover session"),
            }
        }
        info!(session = %row.client_session_id, "closing a session left open");
        ledger
            .close(row.id, "recovered".into(), UsageRow::default())
            .await;
        out.closed += 1;
    }
    out
}

/// Reconciles open tunnelbyte rows: a session not yet terminated is deleted on the server.
pub async fn reconcile_tunnelbyte<A: QuotaApi, L: Ledger>(api: &A, ledger: &L) -> Recovered {
    let mut out = Recovered::default();
    for row in ledger.open_rows("tunnelbyte").await {
        if let Some(id) = &row.server_session_id {
            match api.status(id).await {
                Ok(st) if st.terminated_at.is_none() => {
                    if api.delete(id).await.is_ok() {
                        out.ended_on_server += 1;
                    }
                }
                Ok(_) | Err(QuotaApiError::NotFound) => {}
                Err(e) => {
                    warn!(error = %e, "cannot check a leftover tunnelbyte session; later");
                    continue;
                }
            }
        }
        ledger
            .close(row.id, "recovered".into(), UsageRow::default())
            .await;
        out.closed += 1;
    }
    out
}
