//! History export as CSV (RFC 4180 quoting; times as UTC RFC 3339).

use crate::contract::HistoryRow;

fn field(v: &str) -> String {
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v.to_string()
    }
}

/// The rows as CSV text with a header line.
pub fn history_csv(rows: &[HistoryRow]) -> String {
    let mut out = String::from(
        "service,region,started_utc,duration_s,credits_used,cost_eur,bytes,end_reason\n",
    );
    for r in rows {
        let started = chrono::DateTime::from_timestamp_millis(r.started_ms)
            .map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
            .unwrap_or_default();
        let cost = r
            .cost_millicents
            .map(|mc| format!("{}.{:05}", mc / 100_000, mc % 100_000))
            .unwrap_or_default();
        let line = [
            r.service.display_name().to_string(),
            r.region.clone(),
            started,
            r.duration_s.to_string(),
            r.credits_used
                .map(|c| format!("{c:.2}"))
                .unwrap_or_default(),
            cost,
            r.bytes.to_string(),
            r.end_reason.clone().unwrap_or_default(),
        ]
        .iter()
        .map(|v| field(v))
        .collect::<Vec<_>>()
        .join(",");
        out.push_str(&line);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::Service;

    #[test]
    fn quotes_and_formats() {
        let rows = [HistoryRow {
            id: "1".into(),
            service: Service::Tunnelbyte,
            region: "eu, \"west\"".into(),
            started_ms: 0,
            duration_s: 60,
            credits_used: None,
            cost_millicents: Some(12_345),
            bytes: 10,
            end_reason: Some("quota_exceeded".into()),
        }];
        let csv = history_csv(&rows);
        let line = csv.lines().nth(1).unwrap();
        assert_eq!(
            line,
            "tunnelbyte,\"eu, \"\"west\"\"\",1970-01-01T00:00:00Z,60,,0.12345,10,quota_exceeded"
        );
    }
}
