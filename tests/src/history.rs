//! Seeds a Ferry data dir's history with ended sessions, through the store's own API.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use chrono::{DateTime, Duration, Utc};
use ferry_core::services::ServiceKind;
use ferry_core::store::{EndReason, NewSession, SessionClose, Store, UsageUpdate};

/// One ended session to seed.
#[derive(Debug, Clone)]
pub struct Seed {
    /// Service.
    pub service: ServiceKind,
    /// Region or server name.
    pub location: &'static str,
    /// Start.
    pub started_at: DateTime<Utc>,
    /// Connected seconds.
    pub secs: i64,
    /// OrbNET credits used.
    pub credits: Option<f64>,
    /// tunnelbyte cost in millicents (currency `eur`).
    pub millicents: Option<u64>,
    /// Bytes in (out is a tenth of it).
    pub bytes: u64,
}

/// Writes `seeds` as ended sessions into the store of `data_dir`.
pub async fn seed(data_dir: &std::path::Path, seeds: &[Seed]) {
    let store = Store::open_in(data_dir).await.unwrap();
    for s in seeds {
        let id = store
            .insert_session(&NewSession {
                client_session_id: uuid::Uuid::new_v4().to_string(),
                service: s.service,
                account: Some("seeded".into()),
                location: Some(s.location.into()),
                started_at: s.started_at,
            })
            .await
            .unwrap();
        store.mark_connected(id, s.started_at).await.unwrap();
        let end = s.started_at + Duration::seconds(s.secs);
        store
            .update_usage(
                id,
                &UsageUpdate {
                    at: end,
                    bytes_in: Some(s.bytes),
                    bytes_out: Some(s.bytes / 10),
                    credits_remaining: None,
                    credits_used: s.credits,
                    cost_millicents: s.millicents,
                    cost_currency: s.millicents.map(|_| "eur".to_string()),
                    quota_bytes_used: None,
                    quota_bytes_limit: None,
                    quota_seconds_used: None,
                    quota_seconds_limit: None,
                },
            )
            .await
            .unwrap();
        store
            .close_session(id, &SessionClose::new(end, EndReason::UserInitiated))
            .await
            .unwrap();
    }
    store.close().await;
}
