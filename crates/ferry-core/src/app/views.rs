//! Maps ferry-core's service and store types to the window's views (pure).

use crate::services::neosc::{Workspace, WorkspaceSession};
use crate::services::orbnet::Server;
use crate::services::tunnelbyte::Region as TbRegion;
use crate::store::{DailyTotal, EndReason, SessionRecord};
use chrono::{DateTime, Utc};

use super::contract::{
    DayTotal, HistoryRow, RegionRef, RegionView, Service, WorkspaceSessionView, WorkspaceView,
};

fn ms(t: Option<DateTime<Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp_millis())
}

/// OrbNET servers as regions (hidden ones left out).
pub fn orbnet_regions(servers: Vec<Server>) -> Vec<RegionView> {
    servers
        .into_iter()
        .filter(|s| !s.hidden)
        .map(|s| RegionView {
            reference: RegionRef {
                service: Service::Orbnet,
                id: s.id.to_string(),
            },
            label: if s.city.is_empty() {
                s.display_name().to_string()
            } else {
                s.city.clone()
            },
            country: (!s.country.is_empty()).then(|| s.country.clone()),
            nodes: None,
            available: true,
            note: None,
        })
        .collect()
}

/// The place behind a tunnelbyte region code: its codes are the hosting provider's location
/// codes (Hetzner's), which the API does not spell out. Unknown codes have none.
pub fn tunnelbyte_place(code: &str) -> Option<(&'static str, &'static str)> {
    Some(match code {
        "fsn" => ("Falkenstein", "Germany"),
        "nbg" => ("Nuremberg", "Germany"),
        "hel" => ("Helsinki", "Finland"),
        "ash" => ("Ashburn", "United States"),
        "hil" => ("Hillsboro", "United States"),
        "sin" => ("Singapore", "Singapore"),
        _ => return None,
    })
}

/// tunnelbyte regions; one without nodes is listed but unavailable, with the reason. Known
/// codes are named by their city; others by their code.
pub fn tunnelbyte_regions(regions: Vec<TbRegion>) -> Vec<RegionView> {
    regions
        .into_iter()
        .map(|r| RegionView {
            reference: RegionRef {
                service: Service::Tunnelbyte,
                id: r.code.clone(),
            },
            label: tunnelbyte_place(&r.code).map_or_else(|| r.code.clone(), |p| p.0.to_string()),
            country: tunnelbyte_place(&r.code).map(|p| p.1.to_string()),
            nodes: Some(u32::try_from(r.node_count).unwrap_or(u32::MAX)),
            available: r.node_count > 0,
            note: (r.node_count == 0).then(|| format!("no active node in region {}", r.code)),
        })
        .collect()
}

/// NeoSC workspaces.
pub fn workspaces(list: Vec<Workspace>) -> Vec<WorkspaceView> {
    list.into_iter()
        .map(|w| WorkspaceView {
            name: if w.name.is_empty() {
                w.id.clone()
            } else {
                w.name
            },
            id: w.id,
            state: w.status,
        })
        .collect()
}

/// NeoSC sessions, active first, newest first.
pub fn workspace_sessions(list: Vec<WorkspaceSession>) -> Vec<WorkspaceSessionView> {
    let mut out: Vec<WorkspaceSessionView> = list
        .into_iter()
        .map(|s| WorkspaceSessionView {
            active: s.is_active(),
            id: s.id,
            workspace: if s.workspace_name.is_empty() {
                s.workspace_id
            } else {
                s.workspace_name
            },
            kind: s.workspace_type,
            started_ms: ms(s.started_at).unwrap_or(0),
            ended_ms: ms(s.ended_at),
            tunnel: s.tunnel_status,
            mfa: s.mfa_verified,
        })
        .collect();
    out.sort_by(|a, b| {
        b.active
            .cmp(&a.active)
            .then(b.started_ms.cmp(&a.started_ms))
    });
    out
}

/// One history row as the window lists it.
pub fn history_row(r: &SessionRecord, now: DateTime<Utc>) -> HistoryRow {
    HistoryRow {
        id: r.id.to_string(),
        service: r.service,
        region: r.location.clone().unwrap_or_default(),
        region_ref: r
            .location
            .as_deref()
            .and_then(|l| super::insight::region_ref(r.service, l)),
        started_ms: r.connected_at.unwrap_or(r.started_at).timestamp_millis(),
        duration_s: r.connected_secs(now).unwrap_or(0),
        credits_used: r.credits_used,
        cost_millicents: r.cost_millicents,
        currency: r.cost_currency.clone(),
        bytes: r.bytes_in.saturating_add(r.bytes_out),
        end_reason: r
            .end_reason
            .as_ref()
            .map(|e| e.as_str().to_string())
            .or_else(|| Some("connected".into()).filter(|_| r.ended_at.is_none())),
        end_label: match &r.end_reason {
            Some(e) => Some(end_label(e)),
            None => r.ended_at.is_none().then(|| "Connected now".to_string()),
        },
    }
}

/// Why a session ended, in words.
pub fn end_label(reason: &EndReason) -> String {
    match reason {
        EndReason::UserInitiated => "You disconnected".into(),
        EndReason::CreditsDepleted => "Credits ran out".into(),
        EndReason::Error => "Stopped on an error".into(),
        EndReason::Timeout => "Timed out (no heartbeat reached the server)".into(),
        EndReason::QuotaExceeded => "Quota used up".into(),
        EndReason::ServerEnded => "Ended by the server".into(),
        EndReason::Recovered => "Closed after Ferry stopped unexpectedly".into(),
        EndReason::CapReached => "Stopped at your spend cap".into(),
        EndReason::Sleep => "Ended for sleep".into(),
        EndReason::Other(code) => format!("Ended by the server ({})", code.replace('_', " ")),
    }
}

/// Totals per day across services (the store keeps them per day and service), newest first.
pub fn day_totals(per_service: &[DailyTotal]) -> Vec<DayTotal> {
    let mut days: Vec<DayTotal> = Vec::new();
    for t in per_service {
        let day = match days.iter_mut().find(|d| d.day == t.day) {
            Some(d) => d,
            None => {
                days.push(DayTotal {
                    day: t.day.clone(),
                    sessions: 0,
                    duration_s: 0,
                    credits_used: 0.0,
                    cost_millicents: 0,
                    bytes: 0,
                });
                let last = days.len() - 1;
                &mut days[last]
            }
        };
        day.sessions = day
            .sessions
            .saturating_add(u32::try_from(t.totals.sessions).unwrap_or(u32::MAX));
        day.duration_s = day.duration_s.saturating_add(t.totals.connected_secs);
        day.credits_used += t.totals.credits_used;
        day.cost_millicents = day.cost_millicents.saturating_add(t.totals.cost_millicents);
        day.bytes = day
            .bytes
            .saturating_add(t.totals.bytes_in.saturating_add(t.totals.bytes_out));
    }
    days.sort_by(|a, b| b.day.cmp(&a.day));
    days
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::ServiceKind;
    use crate::store::Totals;

    fn total(day: &str, service: ServiceKind, credits: f64, cost: u64) -> DailyTotal {
        DailyTotal {
            day: day.into(),
            totals: Totals {
                service,
                sessions: 1,
                connected_secs: 60,
                credits_used: credits,
                cost_millicents: cost,
                bytes_in: 10,
                bytes_out: 5,
            },
        }
    }

    #[test]
    fn days_merge_services_newest_first() {
        let d = day_totals(&[
            total("2026-11-28", ServiceKind::Orbnet, 1.5, 0),
            total("2026-11-29", ServiceKind::Orbnet, 2.0, 0),
            total("2026-11-29", ServiceKind::Tunnelbyte, 0.0, 700),
        ]);
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].day, "2026-11-29");
        assert_eq!(d[0].sessions, 2);
        assert_eq!(d[0].duration_s, 120);
        assert_eq!(d[0].cost_millicents, 700);
        assert_eq!(d[0].bytes, 30);
        assert_eq!(d[1].credits_used, 1.5);
    }

    #[test]
    fn tunnelbyte_regions_are_named_by_city_and_unknown_codes_stay_codes() {
        let r = tunnelbyte_regions(vec![
            TbRegion {
                code: "fsn".into(),
                node_count: 2,
            },
            TbRegion {
                code: "xyz".into(),
                node_count: 0,
            },
        ]);
        assert_eq!(r[0].label, "Falkenstein");
        assert_eq!(r[0].country.as_deref(), Some("Germany"));
        assert_eq!(r[0].reference.id, "fsn");
        assert_eq!(r[1].label, "xyz");
        assert_eq!(r[1].country, None);
        assert!(!r[1].available);
    }
}
