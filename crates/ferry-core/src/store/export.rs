//! CSV export of the history.

use super::{SessionRecord, StoreError};
use crate::timefmt::format_rfc3339;

const HEADER: [&str; 18] = [
    "id",
    "service",
    "account",
    "location",
    "server_session_id",
    "client_session_id",
    "started_at",
    "connected_at",
    "ended_at",
    "connected_secs",
    "end_reason",
    "credits_used",
    "cost_millicents",
    "cost",
    "currency",
    "bytes_in",
    "bytes_out",
    "exit_ip",
];

/// Writes the records with a header row; returns the number of records written.
pub(super) fn write_csv<W: std::io::Write>(
    out: W,
    records: &[SessionRecord],
) -> Result<u64, StoreError> {
    let err = |e: csv::Error| StoreError::Export(e.to_string());
    let mut w = csv::Writer::from_writer(out);
    w.write_record(HEADER).map_err(err)?;
    let opt = |s: &Option<String>| s.clone().unwrap_or_default();
    let t = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(format_rfc3339).unwrap_or_default();
    for r in records {
        let secs = match (r.connected_at, r.ended_at) {
            (Some(_), Some(end)) => r.connected_secs(end).map(|s| s.to_string()),
            _ => None,
        };
        let cost = r.cost_millicents.map(|m| {
            // millicents are 1/100,000 of the unit: five decimals, exact.
            format!("{}.{:05}", m / 100_000, m % 100_000)
        });
        w.write_record([
            r.id.to_string(),
            r.service.as_str().to_string(),
            opt(&r.account),
            opt(&r.location),
            opt(&r.server_session_id),
            r.client_session_id.clone(),
            format_rfc3339(r.started_at),
            t(r.connected_at),
            t(r.ended_at),
            secs.unwrap_or_default(),
            r.end_reason
                .as_ref()
                .map(|e| e.as_str().to_string())
                .unwrap_or_default(),
            r.credits_used.map(|c| c.to_string()).unwrap_or_default(),
            r.cost_millicents.map(|c| c.to_string()).unwrap_or_default(),
            cost.unwrap_or_default(),
            opt(&r.cost_currency),
            r.bytes_in.to_string(),
            r.bytes_out.to_string(),
            opt(&r.exit_ip),
        ])
        .map_err(err)?;
    }
    w.flush().map_err(|e| StoreError::Export(e.to_string()))?;
    Ok(records.len() as u64)
}
