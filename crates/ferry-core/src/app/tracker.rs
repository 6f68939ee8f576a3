//! Turns the supervisor's [`SessionEvent`]s into what the window shows (pure: no I/O, the time
//! is passed in). One tracker per connection attempt.

use crate::meter::quota::{Window, WindowUse};
use crate::session::event::SessionEvent;
use crate::session::machine::{ErrorCause, State};

use super::contract::{
    AppEvent, ConnectionView, ErrorView, LiveView, MeterView, Phase, QuotaUnit, QuotaView,
    RegionRef, Sample, Service, TunnelMode, WarningKind, WarningView,
};

/// Samples kept for the charts (one per update; the oldest drop off).
pub const MAX_SAMPLES: usize = 600;

/// The views of one connection, updated event by event.
#[derive(Debug, Clone)]
pub struct ConnectionTracker {
    /// The connection as shown.
    pub connection: ConnectionView,
    /// The live panel while connected.
    pub live: Option<LiveView>,
    service: Service,
    credits_at_start: Option<f64>,
    last_traffic: Option<(i64, u64, u64)>,
    last_credits: Option<(f64, f64)>,
    /// The spend cap nearest to its limit, shown in the live panel.
    pub cap: Option<super::contract::CapView>,
}

/// What the window says for an error cause of `service`: a code, the cause in words, what to
/// do, and the regions to try instead.
pub fn error_view(service: Service, cause: &ErrorCause) -> ErrorView {
    let alternatives = match cause {
        ErrorCause::RegionUnavailable { alternatives, .. } => alternatives
            .iter()
            .filter(|id| !id.is_empty())
            .map(|id| RegionRef {
                service,
                id: id.clone(),
            })
            .collect(),
        _ => Vec::new(),
    };
    let (code, message, action) = match cause {
        ErrorCause::CreditsExhausted(m) => (
            "insufficient_credits".to_string(),
            format!("Not enough OrbNET credits to connect ({m})."),
            "Top up your OrbNET account, then connect again.",
        ),
        ErrorCause::QuotaExhausted(m) => (
            "quota_exhausted".to_string(),
            format!("Your tunnelbyte quota is used up: {m}."),
            "Wait until the window resets, or upgrade your tunnelbyte plan.",
        ),
        ErrorCause::RegionUnavailable { message, .. } => (
            "region_unavailable".to_string(),
            format!("That region is unavailable: {message}."),
            if alternatives.is_empty() {
                "Pick another region."
            } else {
                "Pick one of the regions the service suggests."
            },
        ),
        ErrorCause::SessionConflict(m) => (
            "session_conflict".to_string(),
            m.clone(),
            "End the session on your other device, then connect again.",
        ),
        ErrorCause::CreditsDepleted => (
            "credits_depleted".to_string(),
            "Your OrbNET credits ran out and the server ended the session.".to_string(),
            "Top up your OrbNET account, then connect again.",
        ),
        ErrorCause::TerminatedByServer(reason) => (
            format!("server_ended:{reason}"),
            format!("The server ended the session ({reason})."),
            "Connect again when you are ready.",
        ),
        ErrorCause::NoPrivileges(m) => (
            "no_privileges".to_string(),
            format!("The tunnel could not start: {m}."),
            "Routing all traffic needs administrator rights; use app mode, or run Ferry with \
             the rights to create a network device.",
        ),
        ErrorCause::Tunnel(m) => (
            "tunnel".to_string(),
            format!("The tunnel failed: {m}."),
            "Check your network connection and try again.",
        ),
        ErrorCause::Service(m) => (
            "service".to_string(),
            format!("The service did not answer as expected: {m}."),
            "Try again in a moment.",
        ),
        ErrorCause::CapReached {
            cap,
            resets,
            at_start,
            ..
        } => (
            "cap_reached".to_string(),
            if *at_start {
                format!("Not connecting: the {cap} has less left than a session costs ({resets}).")
            } else {
                format!("Ferry ended the session: the {cap} would have been passed ({resets}).")
            },
            "Raise or clear the budget, or wait until the cap resets.",
        ),
    };
    ErrorView {
        code,
        message,
        action: action.to_string(),
        alternatives,
    }
}

fn quota_view(label: &str, unit: QuotaUnit, w: &WindowUse) -> QuotaView {
    QuotaView {
        label: label.to_string(),
        unit,
        used: w.used,
        limit: (w.limit > 0).then_some(w.limit),
        resets_at_ms: w.resets_at.map(|t| t.timestamp_millis()),
    }
}

impl ConnectionTracker {
    /// A connection starting now to `region`; `credits` is the account's balance if known.
    pub fn new(
        region: RegionRef,
        label: Option<String>,
        mode: TunnelMode,
        credits: Option<f64>,
        now_ms: i64,
    ) -> Self {
        ConnectionTracker {
            service: region.service,
            connection: ConnectionView {
                phase: Phase::Connecting,
                region: Some(region),
                region_label: label,
                mode,
                error: None,
                since_ms: now_ms,
            },
            live: None,
            credits_at_start: credits,
            last_traffic: None,
            last_credits: None,
            cap: None,
        }
    }

    /// Credits left after the last heartbeat, and the burn rate per minute.
    pub fn credits(&self) -> Option<(f64, f64)> {
        self.last_credits
    }

    fn set_phase(&mut self, phase: Phase, now_ms: i64) {
        if self.connection.phase != phase {
            self.connection.since_ms = now_ms;
        }
        self.connection.phase = phase;
    }

    fn push_sample(live: &mut LiveView, now_ms: i64, meter: f64) {
        live.samples.push(Sample {
            at_ms: now_ms,
            meter,
            bytes: live.bytes_in.saturating_add(live.bytes_out),
        });
        if live.samples.len() > MAX_SAMPLES {
            let extra = live.samples.len() - MAX_SAMPLES;
            live.samples.drain(..extra);
        }
    }

    fn meter_value(meter: &MeterView) -> f64 {
        match meter {
            MeterView::Credits { left, .. } => *left,
            MeterView::Quota {
                cost_millicents, ..
            } => cost_millicents.unwrap_or(0) as f64,
        }
    }

    /// Applies one event; returns the UI events to publish.
    pub fn apply(&mut self, event: &SessionEvent, now_ms: i64) -> Vec<AppEvent> {
        match event {
            SessionEvent::State { state } => {
                let phase = match state {
                    State::Disconnected => Phase::Disconnected,
                    State::Connecting => Phase::Connecting,
                    State::Connected { .. } => Phase::Connected,
                    State::Reconnecting { .. } => Phase::Reconnecting,
                    State::Disconnecting { .. } | State::Suspending { .. } => Phase::Disconnecting,
                    // The session ended for sleep; a new one starts on resume.
                    State::Asleep => Phase::Reconnecting,
                    State::Error { .. } => Phase::Error,
                };
                if let State::Error { cause } = state {
                    self.connection.error = Some(error_view(self.service, cause));
                } else if phase != Phase::Disconnecting {
                    self.connection.error = None;
                }
                self.set_phase(phase, now_ms);
                let mut out = Vec::new();
                if matches!(phase, Phase::Disconnected | Phase::Error) && self.live.is_some() {
                    self.live = None;
                    out.push(AppEvent::Live(None));
                }
                out.insert(0, AppEvent::Connection(self.connection.clone()));
                out
            }
            SessionEvent::Connected {
                exit_ip,
                proxy,
                http_proxy,
                ..
            } => {
                let meter = match self.service {
                    Service::Orbnet => MeterView::Credits {
                        left: self.credits_at_start.unwrap_or(0.0),
                        burn_per_minute: 0.0,
                        spent: 0.0,
                    },
                    _ => MeterView::Quota {
                        cost_millicents: None,
                        currency: None,
                        quotas: vec![],
                    },
                };
                self.last_traffic = Some((now_ms, 0, 0));
                self.live = Some(LiveView {
                    started_ms: now_ms,
                    at_ms: now_ms,
                    exit_ip: exit_ip.clone(),
                    proxy: proxy.clone(),
                    http_proxy: http_proxy.clone(),
                    latency_ms: None,
                    bytes_in: 0,
                    bytes_out: 0,
                    rate_in: 0.0,
                    rate_out: 0.0,
                    meter,
                    samples: vec![],
                    cap: self.cap.clone(),
                });
                vec![AppEvent::Live(self.live.clone())]
            }
            SessionEvent::Credits {
                credits_remaining,
                consumption_rate,
                ..
            } => {
                self.last_credits = Some((*credits_remaining, *consumption_rate));
                let start = *self.credits_at_start.get_or_insert(*credits_remaining);
                let Some(live) = self.live.as_mut() else {
                    return vec![];
                };
                live.meter = MeterView::Credits {
                    left: *credits_remaining,
                    burn_per_minute: *consumption_rate,
                    spent: (start - credits_remaining).max(0.0),
                };
                live.at_ms = now_ms;
                Self::push_sample(live, now_ms, *credits_remaining);
                vec![AppEvent::Live(Some(live.clone()))]
            }
            SessionEvent::Quota(q) => {
                let Some(live) = self.live.as_mut() else {
                    return vec![];
                };
                // Both windows always: an unmetered one (paid tier) shows its use without a cap.
                let quotas = vec![
                    quota_view("Data this week", QuotaUnit::Bytes, &q.bytes_window),
                    quota_view("Time today", QuotaUnit::Seconds, &q.seconds_window),
                ];
                live.meter = MeterView::Quota {
                    cost_millicents: q.cost_millicents,
                    currency: q.currency.clone(),
                    quotas,
                };
                live.at_ms = now_ms;
                let value = Self::meter_value(&live.meter);
                Self::push_sample(live, now_ms, value);
                vec![AppEvent::Live(Some(live.clone()))]
            }
            SessionEvent::Traffic {
                rx_bytes,
                tx_bytes,
                latency_ms,
            } => {
                let Some(live) = self.live.as_mut() else {
                    return vec![];
                };
                if latency_ms.is_some() {
                    live.latency_ms = *latency_ms;
                }
                if let Some((t, rx, tx)) = self.last_traffic {
                    let dt = (now_ms - t) as f64 / 1000.0;
                    if dt > 0.0 {
                        live.rate_in = rx_bytes.saturating_sub(rx) as f64 / dt;
                        live.rate_out = tx_bytes.saturating_sub(tx) as f64 / dt;
                    }
                }
                self.last_traffic = Some((now_ms, *rx_bytes, *tx_bytes));
                live.bytes_in = *rx_bytes;
                live.bytes_out = *tx_bytes;
                live.at_ms = now_ms;
                let value = Self::meter_value(&live.meter);
                Self::push_sample(live, now_ms, value);
                vec![AppEvent::Live(Some(live.clone()))]
            }
            SessionEvent::Failed { cause, .. } => {
                self.connection.error = Some(error_view(self.service, cause));
                vec![]
            }
            SessionEvent::LowCredits {
                minutes_left,
                threshold_minutes,
            } => vec![AppEvent::Warning(WarningView {
                kind: WarningKind::CreditsLow,
                threshold: *threshold_minutes,
                message: format!(
                    "OrbNET credits run out in about {:.0} min at this rate.",
                    minutes_left.max(0.0).ceil()
                ),
                resets_at_ms: None,
            })],
            SessionEvent::QuotaWarning {
                window,
                threshold_percent,
                usage,
            } => {
                let what = match window {
                    Window::Bytes => "data",
                    Window::Seconds => "time",
                };
                vec![AppEvent::Warning(WarningView {
                    kind: WarningKind::QuotaHigh,
                    threshold: f64::from(*threshold_percent),
                    message: format!(
                        "{threshold_percent}% of the tunnelbyte {what} quota is used."
                    ),
                    resets_at_ms: usage.resets_at.map(|t| t.timestamp_millis()),
                })]
            }
            SessionEvent::CapWarning {
                cap,
                percent,
                resets_at,
                ..
            } => vec![AppEvent::Warning(WarningView {
                kind: WarningKind::CapNear,
                threshold: 80.0,
                message: format!("{percent:.0}% of the {cap} is spent."),
                resets_at_ms: resets_at.map(|t| t.timestamp_millis()),
            })],
            SessionEvent::CapStopNear { cap, resets_at, .. } => {
                vec![AppEvent::Warning(WarningView {
                    kind: WarningKind::CapStop,
                    threshold: 100.0,
                    message: format!(
                        "Ferry disconnects at the next check to stay within the {cap}."
                    ),
                    resets_at_ms: resets_at.map(|t| t.timestamp_millis()),
                })]
            }
            SessionEvent::SessionEnded { .. }
            | SessionEvent::Heartbeat { .. }
            | SessionEvent::Notice { .. } => vec![],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::BootInstant;
    use crate::meter::quota::QuotaSample;

    fn orb() -> ConnectionTracker {
        ConnectionTracker::new(
            RegionRef {
                service: Service::Orbnet,
                id: "1".into(),
            },
            Some("Paris".into()),
            TunnelMode::App,
            Some(100.0),
            0,
        )
    }

    fn state(s: State) -> SessionEvent {
        SessionEvent::State { state: s }
    }

    fn connected() -> SessionEvent {
        SessionEvent::Connected {
            service: "orbnet".into(),
            location: "Paris".into(),
            session_id: "s".into(),
            exit_ip: Some("10.64.0.1".into()),
            proxy: Some("127.0.0.1:1080".into()),
            http_proxy: Some("127.0.0.1:1081".into()),
        }
    }

    #[test]
    fn phases_follow_the_supervisor_and_errors_carry_words() {
        let mut t = orb();
        assert_eq!(t.connection.phase, Phase::Connecting);
        t.apply(
            &state(State::Connected {
                since: BootInstant::from_millis(0),
            }),
            10,
        );
        assert_eq!(t.connection.phase, Phase::Connected);
        assert_eq!(t.connection.since_ms, 10);
        t.apply(&connected(), 10);
        assert!(t.live.is_some());
        let out = t.apply(
            &state(State::Error {
                cause: ErrorCause::CreditsDepleted,
            }),
            20,
        );
        assert_eq!(t.connection.phase, Phase::Error);
        let e = t.connection.error.clone().unwrap();
        assert_eq!(e.code, "credits_depleted");
        assert!(e.message.contains("credits ran out") && e.action.contains("Top up"));
        assert!(t.live.is_none());
        assert!(matches!(
            out.as_slice(),
            [AppEvent::Connection(_), AppEvent::Live(None)]
        ));
        let e = error_view(
            Service::Orbnet,
            &ErrorCause::TerminatedByServer("idle".into()),
        );
        assert_eq!(e.code, "server_ended:idle");
    }

    #[test]
    fn credits_fall_and_spent_grows() {
        let mut t = orb();
        t.apply(&connected(), 0);
        let out = t.apply(
            &SessionEvent::Credits {
                credits_remaining: 98.5,
                consumption_rate: 1.5,
                minutes_left: Some(65.0),
            },
            60_000,
        );
        let Some(AppEvent::Live(Some(l))) = out.first() else {
            panic!("{out:?}")
        };
        assert_eq!(
            l.meter,
            MeterView::Credits {
                left: 98.5,
                burn_per_minute: 1.5,
                spent: 1.5
            }
        );
        assert_eq!(l.samples.len(), 1);
        assert_eq!(t.credits(), Some((98.5, 1.5)));
    }

    #[test]
    fn traffic_gives_rates_and_quota_gives_bars_with_resets() {
        let mut t = ConnectionTracker::new(
            RegionRef {
                service: Service::Tunnelbyte,
                id: "eu".into(),
            },
            None,
            TunnelMode::App,
            None,
            0,
        );
        t.apply(&connected(), 0);
        t.apply(
            &SessionEvent::Traffic {
                rx_bytes: 2_000,
                tx_bytes: 1_000,
                latency_ms: Some(12),
            },
            2_000,
        );
        let l = t.live.clone().unwrap();
        assert_eq!((l.rate_in, l.rate_out), (1_000.0, 500.0));
        assert_eq!(l.latency_ms, Some(12), "the measured latency is shown");
        let resets = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
        t.apply(
            &SessionEvent::Quota(QuotaSample {
                bytes_in: 2_000,
                bytes_out: 1_000,
                cost_millicents: Some(1234),
                currency: Some("EUR".into()),
                bytes_window: WindowUse {
                    used: 10,
                    limit: 100,
                    resets_at: Some(resets),
                },
                seconds_window: WindowUse {
                    used: 0,
                    limit: 0,
                    resets_at: None,
                },
            }),
            3_000,
        );
        let MeterView::Quota {
            cost_millicents,
            quotas,
            ..
        } = t.live.clone().unwrap().meter
        else {
            panic!()
        };
        assert_eq!(cost_millicents, Some(1234));
        assert_eq!(quotas.len(), 2);
        assert_eq!(quotas[0].limit, Some(100));
        assert_eq!(quotas[0].resets_at_ms, Some(1_800_000_000_000));
        assert_eq!(quotas[1].limit, None, "an unmetered window has no cap");
        // Rates never go negative when a counter restarts.
        t.apply(
            &SessionEvent::Traffic {
                rx_bytes: 0,
                tx_bytes: 0,
                latency_ms: None,
            },
            4_000,
        );
        assert_eq!(t.live.unwrap().rate_in, 0.0);
    }
}
