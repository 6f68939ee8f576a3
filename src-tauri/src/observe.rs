//! Turns the event stream into the observations the notification policy judges (pure: it only
//! compares each event with what it saw before).

use std::collections::BTreeSet;

use crate::contract::{AppEvent, MeterView, Phase};
use crate::notify_policy::Observation;

/// What the observer remembers.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Seen {
    phase: Option<Phase>,
    active_sessions: Option<BTreeSet<String>>,
    /// Workspace sessions this app asked to end (no "ended elsewhere" notice for those).
    pub ended_here: BTreeSet<String>,
}

/// The observations an event implies; updates `seen`.
pub fn observe(seen: &mut Seen, event: &AppEvent) -> Vec<Observation> {
    let mut out = Vec::new();
    match event {
        AppEvent::Connection(c) => {
            let before = seen.phase.replace(c.phase);
            match (before, c.phase) {
                (Some(Phase::Connecting), Phase::Connected) => {
                    out.push(Observation::SessionStarted)
                }
                (Some(Phase::Connected), Phase::Reconnecting) => {
                    out.push(Observation::ConnectionLost)
                }
                (Some(Phase::Reconnecting), Phase::Connected) => {
                    out.push(Observation::ConnectionRestored)
                }
                (Some(p), Phase::Error) if p != Phase::Error => {
                    if let Some(e) = &c.error {
                        if e.code == "credits_depleted" {
                            out.push(Observation::CreditsDepleted);
                        } else if let Some(reason) = e.code.strip_prefix("server_ended:") {
                            out.push(Observation::SessionEnded {
                                reason: reason.to_string(),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        AppEvent::Warning(w) => out.push(Observation::Warning(w.clone())),
        AppEvent::Live(Some(live)) => match &live.meter {
            MeterView::Credits { .. } => {}
            MeterView::Quota { quotas, .. } => {
                for q in quotas {
                    if let Some(limit) = q.limit.filter(|l| *l > 0) {
                        out.push(Observation::Quota {
                            label: q.label.clone(),
                            fraction: q.used as f64 / limit as f64,
                            resets_at_ms: q.resets_at_ms,
                        });
                    }
                }
            }
        },
        AppEvent::Workspaces(w) => {
            let now: BTreeSet<String> = w
                .sessions
                .iter()
                .filter(|s| s.active)
                .map(|s| s.id.clone())
                .collect();
            if let Some(before) = seen.active_sessions.replace(now.clone()) {
                for id in before.difference(&now) {
                    if seen.ended_here.remove(id) {
                        continue;
                    }
                    let workspace = w
                        .sessions
                        .iter()
                        .find(|s| &s.id == id)
                        .map(|s| s.workspace.clone())
                        .unwrap_or_else(|| "a workspace".into());
                    out.push(Observation::WorkspaceSessionEnded {
                        id: id.clone(),
                        workspace,
                    });
                }
            }
        }
        AppEvent::Live(None)
        | AppEvent::Accounts(_)
        | AppEvent::History(_)
        | AppEvent::Settings(_)
        | AppEvent::Regions(_) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{
        ConnectionView, ErrorView, LiveView, QuotaUnit, QuotaView, TunnelMode, WarningKind,
        WarningView, WorkspaceSessionView, WorkspacesView,
    };

    fn conn(phase: Phase, code: Option<&str>) -> AppEvent {
        let mut c = ConnectionView::disconnected(TunnelMode::App, 0);
        c.phase = phase;
        c.error = code.map(|code| ErrorView {
            code: code.into(),
            message: String::new(),
            action: String::new(),
            alternatives: Vec::new(),
        });
        AppEvent::Connection(c)
    }

    fn live(meter: MeterView) -> AppEvent {
        AppEvent::Live(Some(LiveView {
            started_ms: 0,
            at_ms: 0,
            exit_ip: None,
            proxy: None,
            http_proxy: None,
            latency_ms: None,
            bytes_in: 0,
            bytes_out: 0,
            rate_in: 0.0,
            rate_out: 0.0,
            meter,
            samples: vec![],
            cap: None,
        }))
    }

    fn credits(left: f64) -> AppEvent {
        live(MeterView::Credits {
            left,
            burn_per_minute: 1.0,
            spent: 0.0,
        })
    }

    #[test]
    fn connection_transitions() {
        let mut s = Seen::default();
        let table = [
            (conn(Phase::Connecting, None), vec![]),
            (
                conn(Phase::Connected, None),
                vec![Observation::SessionStarted],
            ),
            (
                conn(Phase::Reconnecting, None),
                vec![Observation::ConnectionLost],
            ),
            (
                conn(Phase::Connected, None),
                vec![Observation::ConnectionRestored],
            ),
            (
                conn(Phase::Error, Some("credits_depleted")),
                vec![Observation::CreditsDepleted],
            ),
            (conn(Phase::Error, Some("credits_depleted")), vec![]),
            (conn(Phase::Connecting, None), vec![]),
            (
                conn(Phase::Error, Some("server_ended:idle")),
                vec![Observation::SessionEnded {
                    reason: "idle".into(),
                }],
            ),
        ];
        for (i, (ev, want)) in table.into_iter().enumerate() {
            assert_eq!(observe(&mut s, &ev), want, "step {i}");
        }
    }

    #[test]
    fn warnings_pass_through_credits_do_not_and_quota_fraction() {
        let mut s = Seen::default();
        assert!(observe(&mut s, &credits(60.0)).is_empty());
        assert!(
            observe(&mut s, &credits(49.0)).is_empty(),
            "credit levels are the core's to judge, not the window's"
        );
        let w = WarningView {
            kind: WarningKind::CreditsLow,
            threshold: 10.0,
            message: "soon".into(),
            resets_at_ms: None,
        };
        assert_eq!(
            observe(&mut s, &AppEvent::Warning(w.clone())),
            vec![Observation::Warning(w)]
        );
        let q = live(MeterView::Quota {
            cost_millicents: None,
            currency: None,
            quotas: vec![
                QuotaView {
                    label: "Data".into(),
                    unit: QuotaUnit::Bytes,
                    used: 81,
                    limit: Some(100),
                    resets_at_ms: Some(5),
                },
                QuotaView {
                    label: "Unlimited".into(),
                    unit: QuotaUnit::Bytes,
                    used: 81,
                    limit: None,
                    resets_at_ms: None,
                },
            ],
        });
        assert_eq!(
            observe(&mut s, &q),
            vec![Observation::Quota {
                label: "Data".into(),
                fraction: 0.81,
                resets_at_ms: Some(5)
            }]
        );
    }

    #[test]
    fn workspace_sessions_ended_elsewhere_but_not_here() {
        let ws = |active: &[&str]| {
            AppEvent::Workspaces(WorkspacesView {
                workspaces: vec![],
                sessions: ["a", "b", "c"]
                    .iter()
                    .map(|id| WorkspaceSessionView {
                        id: (*id).into(),
                        workspace: "Dev".into(),
                        kind: "desktop".into(),
                        started_ms: 0,
                        ended_ms: None,
                        active: active.contains(id),
                        tunnel: String::new(),
                        mfa: false,
                    })
                    .collect(),
                refreshed_ms: 0,
            })
        };
        let mut s = Seen::default();
        assert!(
            observe(&mut s, &ws(&["a", "b", "c"])).is_empty(),
            "first sight says nothing"
        );
        s.ended_here.insert("a".into());
        assert!(observe(&mut s, &ws(&["b", "c"])).is_empty(), "ended by us");
        assert_eq!(
            observe(&mut s, &ws(&["c"])),
            vec![Observation::WorkspaceSessionEnded {
                id: "b".into(),
                workspace: "Dev".into()
            }]
        );
    }
}
