//! Spend insight from the session history: totals per local day and per region, measured rates
//! (OrbNET credits per minute, tunnelbyte cost per GiB and per hour), the cheapest region of
//! each service, and this month's projected total. Pure functions over store rows; the window
//! (`App::insight`) and `ferry usage --by day|region` render the same figures.

use chrono::{DateTime, Datelike, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};
use ts_rs::TS;

use super::contract::{RegionRef, Service};
use crate::services::ServiceKind;
use crate::store::SessionRecord;

const GIB: f64 = (1u64 << 30) as f64;
/// Less than this connected time says nothing about a region's rate.
const MIN_RATE_SECS: u64 = 60;
/// Less than this traffic says nothing about a region's cost per GiB.
const MIN_RATE_BYTES: u64 = 1 << 20;

/// Totals of one group of sessions (a local day, or a service's region).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct SpendRow {
    /// `YYYY-MM-DD` for a day; `service:region` for a region.
    pub key: String,
    /// What to show: the day, or the region's name.
    pub label: String,
    /// The service, for a region row (`None` for a day, which sums every service).
    pub service: Option<Service>,
    /// The region to connect to again, for a region row whose location names one.
    pub region: Option<RegionRef>,
    /// Sessions started in the group.
    pub sessions: u32,
    /// Seconds connected.
    pub duration_s: u64,
    /// OrbNET credits used.
    pub credits: f64,
    /// tunnelbyte cost in millicents of `currency`.
    pub cost_millicents: u64,
    /// The cost's currency as the service names it (e.g. `eur`), when known.
    pub currency: Option<String>,
    /// Bytes in + out.
    pub bytes: u64,
    /// Measured OrbNET rate: credits per connected minute (a region row with ≥ 1 min of data).
    pub credits_per_minute: Option<f64>,
    /// Measured tunnelbyte cost per GiB moved, in millicents (≥ 1 MiB of data).
    pub millicents_per_gib: Option<f64>,
    /// Measured tunnelbyte cost per connected hour, in millicents (≥ 1 min of data).
    pub millicents_per_hour: Option<f64>,
}

/// This month's spend of one service and where it is heading at this month's pace.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct MonthForecast {
    /// The service.
    pub service: Service,
    /// `YYYY-MM` (local time).
    pub month: String,
    /// Credits used so far this month (OrbNET).
    pub spent_credits: f64,
    /// Money spent so far this month, in millicents (tunnelbyte).
    pub spent_millicents: u64,
    /// The money's currency, when known.
    pub currency: Option<String>,
    /// Projected month total in credits: spent so far ÷ elapsed share of the month.
    pub projected_credits: f64,
    /// Projected month total in millicents.
    pub projected_millicents: u64,
    /// Days of the month elapsed (fractional, local time).
    pub days_elapsed: f64,
    /// Days in the month.
    pub days_in_month: u32,
}

/// The spend figures the window charts and `ferry usage --by` prints.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, TS)]
pub struct InsightView {
    /// Per local day, oldest first (chart order).
    pub by_day: Vec<SpendRow>,
    /// Per service and region, most spent first.
    pub by_region: Vec<SpendRow>,
    /// Per service with spend this month.
    pub month: Vec<MonthForecast>,
    /// Per service, the region with the lowest measured rate (OrbNET: credits per minute;
    /// tunnelbyte: cost per GiB, else per hour), as a `by_region` key.
    pub cheapest: Vec<String>,
    /// The same regions as references the region picker can mark.
    pub cheapest_regions: Vec<RegionRef>,
}

fn empty_row(key: String, label: String, service: Option<Service>) -> SpendRow {
    SpendRow {
        key,
        label,
        service,
        region: None,
        sessions: 0,
        duration_s: 0,
        credits: 0.0,
        cost_millicents: 0,
        currency: None,
        bytes: 0,
        credits_per_minute: None,
        millicents_per_gib: None,
        millicents_per_hour: None,
    }
}

fn add(row: &mut SpendRow, r: &SessionRecord, now: DateTime<Utc>) {
    row.sessions = row.sessions.saturating_add(1);
    row.duration_s = row
        .duration_s
        .saturating_add(r.connected_secs(now).unwrap_or(0));
    row.credits += r.credits_used.unwrap_or(0.0).max(0.0);
    row.cost_millicents = row
        .cost_millicents
        .saturating_add(r.cost_millicents.unwrap_or(0));
    if row.currency.is_none() {
        row.currency = r.cost_currency.clone();
    }
    row.bytes = row
        .bytes
        .saturating_add(r.bytes_in.saturating_add(r.bytes_out));
}

fn with_rates(mut row: SpendRow) -> SpendRow {
    let minutes = row.duration_s as f64 / 60.0;
    if row.duration_s >= MIN_RATE_SECS {
        if row.credits > 0.0 {
            row.credits_per_minute = Some(row.credits / minutes);
        }
        if row.cost_millicents > 0 {
            row.millicents_per_hour = Some(row.cost_millicents as f64 / (minutes / 60.0));
        }
    }
    if row.bytes >= MIN_RATE_BYTES && row.cost_millicents > 0 {
        row.millicents_per_gib = Some(row.cost_millicents as f64 / (row.bytes as f64 / GIB));
    }
    row
}

/// The local day a session counts on: the day it started (as the spend caps count it).
fn local_day<Tz: TimeZone>(r: &SessionRecord, tz: &Tz) -> NaiveDate {
    r.started_at.with_timezone(tz).date_naive()
}

/// Totals per local day, oldest first.
pub fn by_day<Tz: TimeZone>(
    records: &[SessionRecord],
    now: DateTime<Utc>,
    tz: &Tz,
) -> Vec<SpendRow> {
    let mut rows: Vec<(NaiveDate, SpendRow)> = Vec::new();
    for r in records {
        let day = local_day(r, tz);
        let i = match rows.iter().position(|(d, _)| *d == day) {
            Some(i) => i,
            None => {
                let key = day.format("%Y-%m-%d").to_string();
                rows.push((day, empty_row(key.clone(), key, None)));
                rows.len() - 1
            }
        };
        add(&mut rows[i].1, r, now);
    }
    rows.sort_by_key(|(d, _)| *d);
    rows.into_iter().map(|(_, r)| r).collect()
}

/// Totals per service and region with measured rates, most spent first (credits and money
/// are not comparable: OrbNET rows by credits, then tunnelbyte rows by money).
pub fn by_region(records: &[SessionRecord], now: DateTime<Utc>) -> Vec<SpendRow> {
    let mut rows: Vec<SpendRow> = Vec::new();
    for r in records {
        let region = r.location.clone().unwrap_or_else(|| "unknown".into());
        let key = format!("{}:{region}", r.service.as_str());
        let i = match rows.iter().position(|x| x.key == key) {
            Some(i) => i,
            None => {
                let mut row = empty_row(key, region.clone(), Some(r.service));
                row.region = region_ref(r.service, &region);
                rows.push(row);
                rows.len() - 1
            }
        };
        add(&mut rows[i], r, now);
    }
    let mut rows: Vec<SpendRow> = rows.into_iter().map(with_rates).collect();
    rows.sort_by(|a, b| {
        a.service
            .map(ServiceKind::as_str)
            .cmp(&b.service.map(ServiceKind::as_str))
            .then(b.credits.total_cmp(&a.credits))
            .then(b.cost_millicents.cmp(&a.cost_millicents))
            .then(a.key.cmp(&b.key))
    });
    rows
}

/// The region a history location names: OrbNET sessions are stored as `server N`,
/// tunnelbyte ones by region code.
pub fn region_ref(service: ServiceKind, location: &str) -> Option<RegionRef> {
    let id = match service {
        ServiceKind::Orbnet => location.strip_prefix("server ")?.trim(),
        ServiceKind::Tunnelbyte => location.trim(),
        ServiceKind::Neosc => return None,
    };
    (!id.is_empty() && id != "unknown").then(|| RegionRef {
        service,
        id: id.to_string(),
    })
}

/// Per service, the key of the region with the lowest measured rate.
pub fn cheapest(by_region: &[SpendRow]) -> Vec<String> {
    let mut out = Vec::new();
    for s in ServiceKind::ALL {
        let rate = |r: &SpendRow| match s {
            ServiceKind::Orbnet => r.credits_per_minute,
            _ => r.millicents_per_gib.or(r.millicents_per_hour),
        };
        let best = by_region
            .iter()
            .filter(|r| r.service == Some(s))
            .filter_map(|r| rate(r).map(|v| (v, r)))
            .min_by(|a, b| a.0.total_cmp(&b.0));
        // One measured region is no comparison.
        let measured = by_region
            .iter()
            .filter(|r| r.service == Some(s) && rate(r).is_some())
            .count();
        if let (Some((_, r)), true) = (best, measured > 1) {
            out.push(r.key.clone());
        }
    }
    out
}

fn days_in_month(year: i32, month: u32) -> u32 {
    let (ny, nm) = if month == 12 {
        (year + 1, 1)
    } else {
        (year, month + 1)
    };
    match (
        NaiveDate::from_ymd_opt(year, month, 1),
        NaiveDate::from_ymd_opt(ny, nm, 1),
    ) {
        (Some(a), Some(b)) => u32::try_from((b - a).num_days()).unwrap_or(30),
        _ => 30,
    }
}

/// This month's spend per service (local calendar month, sessions counted where they
/// started) and the linear projection to the month's end.
pub fn month_forecast<Tz: TimeZone>(
    records: &[SessionRecord],
    now: DateTime<Utc>,
    tz: &Tz,
) -> Vec<MonthForecast> {
    let local = now.with_timezone(tz);
    let (year, month) = (local.year(), local.month());
    let days = days_in_month(year, month);
    let start = local.date_naive().with_day(1).unwrap_or(local.date_naive());
    let elapsed_secs = (local.naive_local() - start.and_hms_opt(0, 0, 0).unwrap_or_default())
        .num_seconds()
        .max(1) as f64;
    let days_elapsed = elapsed_secs / 86_400.0;
    let scale = f64::from(days) / days_elapsed.max(1.0 / 24.0);
    let mut out = Vec::new();
    for s in ServiceKind::ALL {
        let mut row = empty_row(String::new(), String::new(), Some(s));
        for r in records.iter().filter(|r| r.service == s) {
            let d = local_day(r, tz);
            if d.year() == year && d.month() == month {
                add(&mut row, r, now);
            }
        }
        if row.sessions == 0 || (row.credits <= 0.0 && row.cost_millicents == 0) {
            continue;
        }
        out.push(MonthForecast {
            service: s,
            month: format!("{year:04}-{month:02}"),
            spent_credits: row.credits,
            spent_millicents: row.cost_millicents,
            currency: row.currency.clone(),
            projected_credits: row.credits * scale,
            projected_millicents: (row.cost_millicents as f64 * scale).round() as u64,
            days_elapsed,
            days_in_month: days,
        });
    }
    out
}

/// Every insight figure at `now` in `tz`.
pub fn insight<Tz: TimeZone>(
    records: &[SessionRecord],
    now: DateTime<Utc>,
    tz: &Tz,
) -> InsightView {
    let by_region = by_region(records, now);
    let cheapest = cheapest(&by_region);
    InsightView {
        by_day: by_day(records, now, tz),
        cheapest_regions: by_region
            .iter()
            .filter(|r| cheapest.contains(&r.key))
            .filter_map(|r| r.region.clone())
            .collect(),
        cheapest,
        by_region,
        month: month_forecast(records, now, tz),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::SessionState;
    use chrono::FixedOffset;

    fn rec(
        service: ServiceKind,
        loc: &str,
        start: &str,
        secs: i64,
        credits: Option<f64>,
        cost: Option<u64>,
        bytes: u64,
    ) -> SessionRecord {
        let started: DateTime<Utc> = start.parse().unwrap();
        SessionRecord {
            id: 1,
            client_session_id: "c".into(),
            service,
            account: None,
            location: Some(loc.into()),
            server_session_id: None,
            state: SessionState::Ended,
            started_at: started,
            connected_at: Some(started),
            last_ack_at: None,
            ended_at: Some(started + chrono::Duration::seconds(secs)),
            end_reason: None,
            credits_used: credits,
            credits_remaining: None,
            cost_millicents: cost,
            cost_currency: cost.map(|_| "eur".to_string()),
            bytes_in: bytes / 2,
            bytes_out: bytes - bytes / 2,
            exit_ip: None,
        }
    }

    fn now() -> DateTime<Utc> {
        "2026-12-10T12:00:00Z".parse().unwrap()
    }

    #[test]
    fn days_are_local_and_sum_every_service() {
        // 23:30 UTC on the 8th is the 9th at UTC+1.
        let rs = vec![
            rec(
                ServiceKind::Orbnet,
                "101",
                "2026-12-08T23:30:00Z",
                600,
                Some(15.0),
                None,
                0,
            ),
            rec(
                ServiceKind::Tunnelbyte,
                "fsn",
                "2026-12-09T10:00:00Z",
                1200,
                None,
                Some(20_000),
                1 << 30,
            ),
            rec(
                ServiceKind::Orbnet,
                "101",
                "2026-12-08T10:00:00Z",
                60,
                Some(1.5),
                None,
                0,
            ),
        ];
        let plus1 = FixedOffset::east_opt(3600).unwrap();
        let days = by_day(&rs, now(), &plus1);
        let keys: Vec<&str> = days.iter().map(|d| d.key.as_str()).collect();
        assert_eq!(keys, ["2026-12-08", "2026-12-09"]);
        assert_eq!(days[1].sessions, 2);
        assert_eq!(days[1].credits, 15.0);
        assert_eq!(days[1].cost_millicents, 20_000);
        assert_eq!(days[1].duration_s, 1800);
        assert_eq!(days[0].credits, 1.5);
        let utc = by_day(&rs, now(), &Utc);
        assert_eq!(
            utc.iter().find(|d| d.key == "2026-12-08").unwrap().sessions,
            2
        );
    }

    #[test]
    fn regions_carry_measured_rates_and_the_cheapest_is_named() {
        let rs = vec![
            rec(
                ServiceKind::Orbnet,
                "server 101",
                "2026-12-09T10:00:00Z",
                600,
                Some(15.0),
                None,
                0,
            ),
            rec(
                ServiceKind::Orbnet,
                "server 102",
                "2026-12-09T11:00:00Z",
                600,
                Some(10.0),
                None,
                0,
            ),
            rec(
                ServiceKind::Orbnet,
                "server 103",
                "2026-12-09T12:00:00Z",
                30,
                Some(0.5),
                None,
                0,
            ),
            rec(
                ServiceKind::Tunnelbyte,
                "fsn",
                "2026-12-09T10:00:00Z",
                3600,
                None,
                Some(60_000),
                2 << 30,
            ),
            rec(
                ServiceKind::Tunnelbyte,
                "hel",
                "2026-12-09T10:00:00Z",
                3600,
                None,
                Some(60_000),
                3 << 30,
            ),
        ];
        let rows = by_region(&rs, now());
        let get = |k: &str| rows.iter().find(|r| r.key == k).unwrap();
        assert_eq!(get("orbnet:server 101").credits_per_minute, Some(1.5));
        assert_eq!(get("orbnet:server 102").credits_per_minute, Some(1.0));
        assert_eq!(
            get("orbnet:server 103").credits_per_minute,
            None,
            "30 s is no measurement"
        );
        assert_eq!(get("tunnelbyte:fsn").millicents_per_gib, Some(30_000.0));
        assert_eq!(get("tunnelbyte:fsn").millicents_per_hour, Some(60_000.0));
        assert_eq!(rows[0].key, "orbnet:server 101", "most credits first");
        assert_eq!(get("orbnet:server 101").region.as_ref().unwrap().id, "101");
        assert_eq!(cheapest(&rows), ["orbnet:server 102", "tunnelbyte:hel"]);
        // A single measured region is no comparison.
        assert!(cheapest(&rows[..1]).is_empty());
        let v = insight(&rs, now(), &Utc);
        assert_eq!(
            v.cheapest_regions,
            [
                RegionRef {
                    service: ServiceKind::Orbnet,
                    id: "102".into()
                },
                RegionRef {
                    service: ServiceKind::Tunnelbyte,
                    id: "hel".into()
                }
            ]
        );
    }

    #[test]
    fn month_projection_scales_by_the_elapsed_share() {
        let rs = vec![
            rec(
                ServiceKind::Orbnet,
                "101",
                "2026-12-02T10:00:00Z",
                600,
                Some(30.0),
                None,
                0,
            ),
            rec(
                ServiceKind::Orbnet,
                "101",
                "2026-11-30T10:00:00Z",
                600,
                Some(99.0),
                None,
                0,
            ),
            rec(
                ServiceKind::Tunnelbyte,
                "fsn",
                "2026-12-05T10:00:00Z",
                600,
                None,
                Some(10_000),
                0,
            ),
        ];
        // Noon on the 10th: 9.5 of 31 days elapsed.
        let m = month_forecast(&rs, now(), &Utc);
        assert_eq!(m.len(), 2);
        let orb = &m[0];
        assert_eq!(orb.month, "2026-12");
        assert_eq!(orb.spent_credits, 30.0, "November is not this month");
        assert_eq!(orb.days_in_month, 31);
        assert!((orb.days_elapsed - 9.5).abs() < 1e-9);
        assert!((orb.projected_credits - 30.0 * 31.0 / 9.5).abs() < 1e-9);
        let tb = &m[1];
        assert_eq!(tb.spent_millicents, 10_000);
        assert_eq!(
            tb.projected_millicents,
            (10_000.0_f64 * 31.0 / 9.5).round() as u64
        );
        assert_eq!(tb.currency.as_deref(), Some("eur"));
        assert_eq!(days_in_month(2028, 2), 29);
        assert_eq!(days_in_month(2026, 12), 31);
    }

    #[test]
    fn nothing_spent_gives_empty_figures() {
        let v = insight(&[], now(), &Utc);
        assert!(v.by_day.is_empty() && v.by_region.is_empty());
        assert!(v.month.is_empty() && v.cheapest.is_empty());
    }
}
