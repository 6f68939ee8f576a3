//! The OrbNET provider: authorize and fetch the WireGuard config, bring the tunnel up, start the
//! credits session only after the first handshake (row written first, fresh UUID), meter it by
//! heartbeats, end it.

use ferry_tunnel::wgconf::WgConfig;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use super::event::{cap_cause, cap_event, SessionEvent};
use super::machine::ErrorCause;
use super::ports::{Ledger, NewRow, TunnelFactory, TunnelHandle, UsageRow};
use super::supervisor::{Cancel, EventSink, MeterEnd, Provider};
use crate::clock::{BootInstant, SharedClock};
use crate::meter::caps::{orbnet_next_charge, Cap, CapNote, CapTracker};
use crate::meter::credits::{
    CreditsConfig, CreditsMeter, CreditsNote, StartInfo, StopCause, MAX_INTERVAL_SECS,
};
use crate::meter::credits_driver::{
    run_credits, CreditsApi, CreditsApiError, CreditsEvent, DisconnectReason, DriverTimeouts,
    HeartbeatDelivery,
};

/// What is needed to bring a tunnel up to an OrbNET server.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The server.
    pub server_id: i64,
    /// Its name for display and history.
    pub location: String,
    /// The WireGuard config, typed, with the (server-generated) private key.
    pub config: WgConfig,
    /// The exit IP: the server's address as its WireGuard endpoint gives it (`None` when the
    /// endpoint is a host name).
    pub exit_ip: Option<String>,
    /// Credits per minute as authorize reported them, when it did.
    pub consumption_rate: Option<f64>,
}

/// OrbNET calls beyond the session ones: authorize and the WireGuard config.
pub trait OrbnetApi: CreditsApi {
    /// Authorizes `server` (or lets the server pick) and fetches its WireGuard config.
    /// 403 `INSUFFICIENT_CREDITS` maps to [`ErrorCause::CreditsExhausted`].
    fn prepare(
        &self,
        server: Option<i64>,
    ) -> impl Future<Output = Result<Prepared, ErrorCause>> + Send;
}

/// Settings of an OrbNET connection.
#[derive(Debug, Clone)]
pub struct OrbnetSettings {
    /// The server to use; `None` lets OrbNET pick.
    pub server: Option<i64>,
    /// Meter settings (heartbeat override, warnings).
    pub credits: CreditsConfig,
    /// Request and end timeouts.
    pub timeouts: DriverTimeouts,
    /// How long to wait for the tunnel's first handshake.
    pub handshake_timeout: Duration,
    /// How often to publish local traffic figures.
    pub traffic_every: Duration,
    /// Spend caps in credits (empty: none).
    pub caps: CapTracker,
}

impl Default for OrbnetSettings {
    fn default() -> Self {
        Self {
            server: None,
            credits: CreditsConfig::default(),
            timeouts: DriverTimeouts::default(),
            handshake_timeout: Duration::from_secs(15),
            traffic_every: Duration::from_secs(2),
            caps: CapTracker::default(),
        }
    }
}

/// The OrbNET side of the supervisor.
pub struct OrbnetProvider<A, T, L> {
    api: Arc<A>,
    tunnels: T,
    ledger: Arc<L>,
    clock: SharedClock,
    settings: OrbnetSettings,
}

impl<A, T, L> OrbnetProvider<A, T, L> {
    /// A provider over these parts.
    pub fn new(
        api: Arc<A>,
        tunnels: T,
        ledger: Arc<L>,
        clock: SharedClock,
        settings: OrbnetSettings,
    ) -> Self {
        Self {
            api,
            tunnels,
            ledger,
            clock,
            settings,
        }
    }
}

/// A live OrbNET connection.
pub struct OrbnetLive<H> {
    /// The tunnel running now (replaced by [`Provider::renew_tunnel`] after a network change).
    tunnel: std::sync::Mutex<Arc<H>>,
    /// Bytes (in, out) of the tunnels replaced so far.
    replaced_traffic: std::sync::Mutex<(u64, u64)>,
    /// The config the tunnel was brought up with (a renewal reuses it: same peer, same session).
    config: WgConfig,
    session_id: String,
    row: i64,
    start: StartInfo,
    /// Awake-clock instant of the start.
    started_at: BootInstant,
}

impl<H: TunnelHandle> OrbnetLive<H> {
    /// The tunnel running now.
    fn tunnel(&self) -> Arc<H> {
        match self.tunnel.lock() {
            Ok(t) => t.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Bytes received and sent over every tunnel of this session.
    fn traffic(&self) -> (u64, u64) {
        let (rx, tx) = self.tunnel().traffic();
        let (old_rx, old_tx) = self.replaced_traffic.lock().map(|t| *t).unwrap_or((0, 0));
        (rx.saturating_add(old_rx), tx.saturating_add(old_tx))
    }
}

impl<H> OrbnetLive<H> {
    /// The client-chosen session id.
    pub fn session_id(&self) -> &str {
        &self.session_id
    }
}

fn service_error(e: CreditsApiError) -> ErrorCause {
    match e {
        CreditsApiError::CreditsDepleted => ErrorCause::CreditsExhausted(
            "your OrbNET credits are used up; top up to connect".into(),
        ),
        other => ErrorCause::Service(other.to_string()),
    }
}

impl<A: OrbnetApi, T: TunnelFactory, L: Ledger> OrbnetProvider<A, T, L> {
    /// Starts the server session: writes the row, then `start`; on 409 ends a stale session of
    /// ours (none of our tunnels is up: we are the one connecting) and tries once more.
    async fn start_session(
        &self,
        prep: &Prepared,
    ) -> Result<(String, i64, StartInfo, BootInstant), ErrorCause> {
        for attempt in 0..2 {
            let session_id = uuid::Uuid::new_v4().to_string();
            let row = self
                .ledger
                .open(NewRow {
                    client_session_id: session_id.clone(),
                    service: "orbnet",
                    location: prep.location.clone(),
                    started_at: self.clock.wall(),
                })
                .await
                .map_err(|e| ErrorCause::Service(format!("cannot record the session: {e}")))?;
            let res = self
                .api
                .start(&session_id, prep.server_id, "wireguard")
                .await;
            // Billed durations run on the awake clock (a suspend is not connected time).
            let now = self.clock.awake();
            match res {
                Ok(info) => return Ok((session_id, row, info, now)),
                Err(CreditsApiError::SessionAlreadyActive) if attempt == 0 => {
                    self.ledger
                        .close(row, "not_started".into(), UsageRow::default())
                        .await;
                    self.end_stale_session().await?;
                }
                Err(CreditsApiError::Unconfirmed(e)) => {
                    // It may have started: end it so it does not bill in the background.
                    let _ = self.api.end(&session_id, 1, DisconnectReason::Error).await;
                    self.ledger
                        .close(row, "error".into(), UsageRow::default())
                        .await;
                    return Err(ErrorCause::Service(format!(
                        "OrbNET did not answer the session start: {e}"
                    )));
                }
                Err(e) => {
                    let reason = if e == CreditsApiError::CreditsDepleted {
                        "credits_depleted"
                    } else {
                        "error"
                    };
                    self.ledger
                        .close(row, reason.into(), UsageRow::default())
                        .await;
                    return Err(service_error(e));
                }
            }
        }
        Err(ErrorCause::SessionConflict(
            "OrbNET still reports an active session after ending ours; try again in a minute"
                .into(),
        ))
    }

    /// Ends a started session that was never metered (given up on as it came up): the tunnel
    /// down, `end` with the seconds since the start and `user_initiated`, the row closed.
    /// Ends a session that was never metered; returns the seconds reported and the credits the
    /// server says it used.
    async fn end_unmetered(
        &self,
        session_id: &str,
        row: i64,
        started_at: BootInstant,
        tunnel: &T::Tunnel,
    ) -> (u32, Option<f64>) {
        tunnel.down().await;
        let (rx_bytes, tx_bytes) = tunnel.traffic();
        let secs = self.clock.awake().saturating_since(started_at).as_secs();
        let secs = u32::try_from(secs.clamp(1, 300)).unwrap_or(1);
        let summary = match self
            .api
            .end(session_id, secs, DisconnectReason::UserInitiated)
            .await
        {
            Ok(s) => Some(s),
            Err(CreditsApiError::SessionNotFound) => None,
            Err(e) => {
                warn!(error = %e, session = session_id, "could not end the OrbNET session");
                None
            }
        };
        self.ledger
            .close(
                row,
                "user_initiated".into(),
                UsageRow {
                    bytes_in: Some(rx_bytes),
                    bytes_out: Some(tx_bytes),
                    credits_used: summary.as_ref().and_then(|s| s.total_credits_used),
                    credits_remaining: summary.as_ref().and_then(|s| s.credits_remaining),
                    ..UsageRow::default()
                },
            )
            .await;
        (secs, summary.and_then(|s| s.total_credits_used))
    }

    /// After a 409: ends the active session if it is ours, else explains whose it may be.
    async fn end_stale_session(&self) -> Result<(), ErrorCause> {
        let active = self.api.active().await.map_err(service_error)?;
        let Some(active) = active else {
            return Ok(()); // it ended in the meantime
        };
        // Not in this history: it may be another device's, or another Ferry's on this device
        // (another data directory or user), which this history cannot tell apart.
        let Some(ours) = self.ledger.find(active.session_id.clone()).await else {
            return Err(ErrorCause::SessionConflict(format!(
                "an OrbNET session ({}) is already active for this account, on another device \
                 or by another Ferry on this device (another data directory or user); end it \
                 where it runs, or wait until OrbNET times it out (5 minutes without heartbeats)",
                active.session_id
            )));
        };
        let downtime = downtime_secs(ours.last_ack_at, self.clock.wall());
        info!(
            session = %active.session_id,
            downtime_secs = downtime,
            "ending a stale session of ours (its downtime is not billed)"
        );
        match self
            .api
            .end(&active.session_id, LEFTOVER_SECS, DisconnectReason::Error)
            .await
        {
            Ok(_) | Err(CreditsApiError::SessionNotFound) => {}
            Err(e) => warn!(error = %e, "could not end the stale session"),
        }
        self.ledger
            .close(ours.id, "recovered".into(), UsageRow::default())
            .await;
        Ok(())
    }
}

/// `seconds_since_last` to report when ending a session left over from an earlier run (a crash,
/// a kill): the API's minimum. The time since its last acknowledged heartbeat is mostly downtime
/// (Ferry was not running, nothing was metered); the part that was not (at most one heartbeat
/// interval before the crash) cannot be told apart from it, and billing downtime is worse than
/// under-reporting those few seconds. The wall time is logged, never billed.
pub const LEFTOVER_SECS: u32 = 1;

/// Wall time since a leftover session's last acknowledged heartbeat (for logs), in seconds.
pub fn downtime_secs(
    last_ack: Option<chrono::DateTime<chrono::Utc>>,
    now: chrono::DateTime<chrono::Utc>,
) -> i64 {
    last_ack.map_or(0, |t| (now - t).num_seconds().max(0))
}

impl<A: OrbnetApi, T: TunnelFactory, L: Ledger> Provider for OrbnetProvider<A, T, L> {
    type Live = OrbnetLive<T::Tunnel>;

    async fn establish(
        &self,
        events: EventSink,
        mut cancel: Cancel,
    ) -> Result<Self::Live, ErrorCause> {
        // Not cut short: a token refresh inside may rotate the refresh token.
        let prep = self.api.prepare(self.settings.server).await?;
        if cancel.is_cancelled() {
            return Err(Cancel::error());
        }
        // `end` charges at least a second: a cap with less than the end's margin left refuses.
        if let Some(rate) = prep.consumption_rate {
            if let Some(cap) = self
                .settings
                .caps
                .too_tight(orbnet_next_charge(rate, Duration::ZERO))
            {
                return Err(cap_cause(cap, None, true));
            }
        }
        let tunnel = self.tunnels.up(prep.config.clone()).await?;
        let handshake = tokio::select! {
            r = tunnel.first_handshake(self.settings.handshake_timeout) => Some(r),
            () = cancel.cancelled() => None,
        };
        match handshake {
            Some(Ok(())) if !cancel.is_cancelled() => {}
            Some(Ok(())) | None => {
                tunnel.down().await;
                return Err(Cancel::error());
            }
            Some(Err(e)) => {
                tunnel.down().await;
                return Err(ErrorCause::Tunnel(format!(
                    "no WireGuard handshake with {}: {e}",
                    prep.location
                )));
            }
        }
        // Not cut short: a start that went out must be ended, which needs its outcome.
        let (session_id, row, start, started_at) = match self.start_session(&prep).await {
            Ok(v) => v,
            Err(cause) => {
                tunnel.down().await;
                return Err(cause);
            }
        };
        // OrbNET's own id of the session (else the echo of ours) and the exit IP, right away.
        self.ledger
            .set_server_session(
                row,
                start
                    .tracking_id
                    .clone()
                    .unwrap_or_else(|| session_id.clone()),
                prep.exit_ip.clone(),
            )
            .await;
        if cancel.is_cancelled() {
            self.end_unmetered(&session_id, row, started_at, &tunnel)
                .await;
            return Err(Cancel::error());
        }
        self.ledger.connected(row).await;
        let _ = events.send(SessionEvent::Connected {
            service: "orbnet".into(),
            location: prep.location.clone(),
            session_id: session_id.clone(),
            exit_ip: prep.exit_ip.clone(),
            proxy: tunnel.proxy(),
            http_proxy: tunnel.http_proxy(),
        });
        Ok(OrbnetLive {
            tunnel: std::sync::Mutex::new(Arc::new(tunnel)),
            replaced_traffic: std::sync::Mutex::new((0, 0)),
            config: prep.config,
            session_id,
            row,
            start,
            started_at,
        })
    }

    async fn abandon(&self, live: Arc<Self::Live>, events: EventSink) {
        let connected = self.clock.awake().saturating_since(live.started_at);
        let (secs, credits_used) = self
            .end_unmetered(&live.session_id, live.row, live.started_at, &*live.tunnel())
            .await;
        let _ = events.send(SessionEvent::SessionEnded {
            reason: DisconnectReason::UserInitiated.as_str().into(),
            billed_secs: Some(u64::from(secs)),
            connected_secs: connected.as_secs_f64(),
            credits_used,
        });
    }

    async fn meter(
        &self,
        live: Arc<Self::Live>,
        mut stop: watch::Receiver<Option<DisconnectReason>>,
        events: EventSink,
    ) -> MeterEnd {
        let meter = CreditsMeter::new(self.settings.credits.clone(), &live.start, live.started_at);
        let (tx, mut rx) = mpsc::unbounded_channel();
        // The driver's stop: the supervisor's, relayed, or ours when a cap is reached.
        let (driver_stop, driver_stop_rx) = watch::channel(None);
        let driver = run_credits(
            self.api.clone(),
            self.clock.clone(),
            live.session_id.clone(),
            meter,
            self.settings.timeouts.clone(),
            driver_stop_rx,
            tx,
        );
        let ledger = self.ledger.clone();
        let row = live.row;
        let start_credits = live.start.credits_at_start;
        let mut caps = self.settings.caps.clone();
        // The cap checks assume a heartbeat at most this far apart (the cadence's upper bound).
        let interval = self
            .settings
            .credits
            .heartbeat_override
            .unwrap_or(Duration::from_secs(MAX_INTERVAL_SECS))
            .max(Duration::from_secs(1));
        let mut cap_hit: Option<Cap> = None;
        if let Some(r) = *stop.borrow_and_update() {
            let _ = driver_stop.send(Some(r));
        }
        let forward = async {
            let mut ticker = tokio::time::interval(self.settings.traffic_every);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut relayed = false;
            let mut rate = live.start.consumption_rate;
            // Credits charged by the seconds counted so far (the balance may rise on a top-up).
            let mut charged = 0.0_f64;
            loop {
                tokio::select! {
                    e = rx.recv() => match e {
                        Some(e) => {
                            match &e {
                                CreditsEvent::Heartbeat { seconds, delivery }
                                    if *delivery != HeartbeatDelivery::NotDelivered =>
                                {
                                    charged += rate * f64::from(*seconds) / 60.0;
                                }
                                CreditsEvent::Note(CreditsNote::Balance {
                                    credits_remaining,
                                    consumption_rate,
                                    ..
                                }) if cap_hit.is_none() && !caps.is_empty() => {
                                    rate = *consumption_rate;
                                    let spent = (start_credits - credits_remaining).max(charged);
                                    let next = orbnet_next_charge(rate, interval);
                                    for n in caps.check(spent, next) {
                                        if let CapNote::Stop { cap } = n {
                                            let _ = events.send(SessionEvent::Notice {
                                                message: format!(
                                                    "the next heartbeat would pass the {}; \
                                                     disconnecting",
                                                    cap.describe(None)
                                                ),
                                            });
                                            cap_hit = Some(cap);
                                            let _ = driver_stop
                                                .send(Some(DisconnectReason::UserInitiated));
                                        } else if let Some(ev) = cap_event(&n, None) {
                                            let _ = events.send(ev);
                                        }
                                    }
                                }
                                _ => {}
                            }
                            forward_credits(&*ledger, row, start_credits, &events, e).await;
                        }
                        None => break,
                    },
                    changed = stop.changed(), if !relayed => {
                        let reason = match changed {
                            Err(_) => Some(DisconnectReason::Error),
                            Ok(()) => *stop.borrow_and_update(),
                        };
                        if reason.is_some() {
                            relayed = true;
                            let _ = driver_stop.send(reason);
                        }
                    }
                    _ = ticker.tick() => {
                        let (rx_bytes, tx_bytes) = live.traffic();
                        let latency_ms = crate::session::event::latency_ms(live.tunnel().latency());
                        let _ = events.send(SessionEvent::Traffic { rx_bytes, tx_bytes, latency_ms });
                    }
                }
            }
        };
        let (exit, ()) = tokio::join!(driver, forward);
        let cap_hit = cap_hit.filter(|_| exit.stop_cause.is_none());
        let reason_text = if cap_hit.is_some() {
            "cap_reached".to_string()
        } else {
            exit.reason.as_str().to_string()
        };
        let (rx_bytes, tx_bytes) = live.traffic();
        let summary = exit.end.as_ref().ok();
        self.ledger
            .close(
                row,
                reason_text.clone(),
                UsageRow {
                    bytes_in: Some(rx_bytes),
                    bytes_out: Some(tx_bytes),
                    credits_used: summary.and_then(|s| s.total_credits_used),
                    credits_remaining: summary.and_then(|s| s.credits_remaining),
                    ..UsageRow::default()
                },
            )
            .await;
        let _ = events.send(SessionEvent::SessionEnded {
            reason: reason_text,
            billed_secs: Some(exit.counted_secs),
            connected_secs: exit.connected.as_secs_f64(),
            credits_used: summary.and_then(|s| s.total_credits_used),
        });
        if let Some(cap) = cap_hit {
            return MeterEnd::Ended(cap_cause(&cap, None, false));
        }
        match exit.stop_cause {
            Some(StopCause::CreditsDepleted) => MeterEnd::Ended(ErrorCause::CreditsDepleted),
            Some(StopCause::SessionGone) => {
                MeterEnd::Lost("OrbNET no longer knows the session (timed out)".into())
            }
            None => MeterEnd::Stopped,
        }
    }

    async fn tunnel_closed(&self, live: Arc<Self::Live>) -> String {
        live.tunnel().closed().await
    }

    async fn tear_down(&self, live: Arc<Self::Live>) {
        live.tunnel().down().await;
        // The row was closed by the meter while the tunnel ran: now the final counts.
        let (rx_bytes, tx_bytes) = live.traffic();
        self.ledger.traffic(live.row, rx_bytes, tx_bytes).await;
    }

    /// OrbNET's session is the account's, not the tunnel's (heartbeats carry only its id): a new
    /// tunnel to the same server with the same config continues it, and nothing new is billed.
    async fn renew_tunnel(&self, live: Arc<Self::Live>) -> Result<(), String> {
        let old = live.tunnel();
        let renewed = self.tunnels.renew(&old, live.config.clone()).await;
        // The old tunnel is down now: its final figures join the session's.
        let (rx, tx) = old.traffic();
        if let Ok(mut t) = live.replaced_traffic.lock() {
            *t = (t.0.saturating_add(rx), t.1.saturating_add(tx));
        }
        let new = renewed.map_err(|e| e.to_string())?;
        if let Err(e) = new.first_handshake(self.settings.handshake_timeout).await {
            new.down().await;
            return Err(format!(
                "no WireGuard handshake after the network change: {e}"
            ));
        }
        info!(session = %live.session_id, "tunnel renewed after a network change; same session");
        match live.tunnel.lock() {
            Ok(mut t) => *t = Arc::new(new),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(new),
        }
        Ok(())
    }
}

async fn forward_credits<L: Ledger>(
    ledger: &L,
    row: i64,
    start_credits: f64,
    events: &EventSink,
    e: CreditsEvent,
) {
    let ev = match e {
        CreditsEvent::Heartbeat { seconds, delivery } => {
            if delivery == HeartbeatDelivery::Acked {
                ledger.acked(row).await;
            }
            SessionEvent::Heartbeat {
                seconds,
                delivery: match delivery {
                    HeartbeatDelivery::Acked => "acked",
                    HeartbeatDelivery::Unconfirmed => "unconfirmed",
                    HeartbeatDelivery::NotDelivered => "not_delivered",
                },
            }
        }
        CreditsEvent::Note(CreditsNote::Balance {
            credits_remaining,
            consumption_rate,
            minutes_left,
        }) => {
            ledger
                .usage(
                    row,
                    UsageRow {
                        credits_remaining: Some(credits_remaining),
                        credits_used: Some((start_credits - credits_remaining).max(0.0)),
                        ..UsageRow::default()
                    },
                )
                .await;
            SessionEvent::Credits {
                credits_remaining,
                consumption_rate,
                minutes_left,
            }
        }
        CreditsEvent::Note(CreditsNote::LowCredits {
            minutes_left,
            threshold_minutes,
        }) => SessionEvent::LowCredits {
            minutes_left,
            threshold_minutes,
        },
        CreditsEvent::Note(CreditsNote::Drift { ours, server }) => {
            warn!(ours, server, "server session length drifts from ours");
            return;
        }
        CreditsEvent::Note(CreditsNote::Stop(cause)) => SessionEvent::Notice {
            message: match cause {
                StopCause::CreditsDepleted => "OrbNET credits depleted; disconnecting".into(),
                StopCause::SessionGone => "OrbNET no longer knows the session".into(),
            },
        },
    };
    let _ = events.send(ev);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::meter::credits::HeartbeatInfo;
    use crate::meter::credits_driver::{ActiveSession, EndSummary};
    use crate::session::machine::State;
    use crate::session::ports::MemoryLedger;
    use crate::session::recover::reconcile_orbnet;
    use crate::session::supervisor::{spawn, wait_for_state};
    use std::sync::Mutex;

    type Log = Arc<Mutex<Vec<String>>>;

    fn log(l: &Log, s: impl Into<String>) {
        l.lock().unwrap().push(s.into());
    }

    struct FakeOrb {
        log: Log,
        ledger: Arc<MemoryLedger>,
        start_409_once: Mutex<bool>,
        active: Mutex<Option<String>>,
        /// Fired while `start` is in flight (the user gives up at that moment).
        cancel_during_start: Mutex<Option<tokio::sync::watch::Sender<bool>>>,
    }

    impl CreditsApi for FakeOrb {
        async fn start(&self, id: &str, _: i64, _: &str) -> Result<StartInfo, CreditsApiError> {
            // The row must exist before the request.
            let known = self.ledger.find(id.to_string()).await.is_some();
            log(&self.log, format!("start known={known}"));
            if let Some(c) = self.cancel_during_start.lock().unwrap().take() {
                let _ = c.send(true);
            }
            let mut first = self.start_409_once.lock().unwrap();
            if *first {
                *first = false;
                return Err(CreditsApiError::SessionAlreadyActive);
            }
            Ok(StartInfo {
                credits_at_start: 100.0,
                consumption_rate: 1.0,
                next_deduction_in_seconds: Some(60),
                is_free_user: false,
                tracking_id: Some("trk_1".into()),
            })
        }
        async fn heartbeat(&self, _: &str, s: u32) -> Result<HeartbeatInfo, CreditsApiError> {
            log(&self.log, format!("heartbeat {s}"));
            Ok(HeartbeatInfo {
                credits_remaining: 99.0,
                credits_deducted: 1.0,
                consumption_rate: 1.0,
                next_deduction_in_seconds: Some(60),
                session_duration_secs: None,
            })
        }
        async fn end(
            &self,
            id: &str,
            s: u32,
            r: DisconnectReason,
        ) -> Result<EndSummary, CreditsApiError> {
            log(&self.log, format!("end {id} {s} {}", r.as_str()));
            Ok(EndSummary::default())
        }
        async fn active(&self) -> Result<Option<ActiveSession>, CreditsApiError> {
            log(&self.log, "active");
            Ok(self
                .active
                .lock()
                .unwrap()
                .clone()
                .map(|session_id| ActiveSession {
                    session_id,
                    server_id: Some(1),
                }))
        }
    }

    impl OrbnetApi for FakeOrb {
        async fn prepare(&self, _: Option<i64>) -> Result<Prepared, ErrorCause> {
            log(&self.log, "prepare");
            Ok(Prepared {
                server_id: 1,
                location: "lab-1".into(),
                config: WgConfig::default(),
                exit_ip: Some("198.51.100.7".into()),
                consumption_rate: Some(1.0),
            })
        }
    }

    struct FakeTunnels(Log);
    struct FakeTunnel(Log);

    impl TunnelFactory for FakeTunnels {
        type Tunnel = FakeTunnel;
        async fn up(&self, _: WgConfig) -> Result<FakeTunnel, ErrorCause> {
            log(&self.0, "tunnel up");
            Ok(FakeTunnel(self.0.clone()))
        }
    }

    impl TunnelHandle for FakeTunnel {
        async fn first_handshake(&self, _: Duration) -> Result<(), String> {
            log(&self.0, "handshake");
            Ok(())
        }
        fn traffic(&self) -> (u64, u64) {
            // Like the real tunnel: the final figures are known once it is down.
            if self.0.lock().unwrap().iter().any(|l| l == "tunnel down") {
                (1234, 567)
            } else {
                (0, 0)
            }
        }
        fn proxy(&self) -> Option<String> {
            None
        }
        async fn closed(&self) -> String {
            std::future::pending().await
        }
        async fn down(&self) {
            log(&self.0, "tunnel down");
        }
    }

    fn setup(
        start_409: bool,
        active: Option<String>,
    ) -> (
        Arc<FakeOrb>,
        Arc<MemoryLedger>,
        ManualClock,
        OrbnetProvider<FakeOrb, FakeTunnels, MemoryLedger>,
    ) {
        let l: Log = Arc::default();
        let ledger = Arc::new(MemoryLedger::default());
        let api = Arc::new(FakeOrb {
            log: l.clone(),
            ledger: ledger.clone(),
            start_409_once: Mutex::new(start_409),
            active: Mutex::new(active),
            cancel_during_start: Mutex::new(None),
        });
        let clock = ManualClock::at_fixed_date();
        let p = OrbnetProvider::new(
            api.clone(),
            FakeTunnels(l),
            ledger.clone(),
            clock.shared(),
            OrbnetSettings::default(),
        );
        (api, ledger, clock, p)
    }

    fn lines(api: &FakeOrb) -> Vec<String> {
        api.log.lock().unwrap().clone()
    }

    const WAIT: Duration = Duration::from_secs(5);

    #[tokio::test]
    async fn start_follows_the_handshake_and_the_row_and_end_follows_disconnect() {
        let (api, ledger, clock, p) = setup(false, None);
        let (h, _t) = spawn(p, clock.shared());
        h.connect();
        wait_for_state(&mut h.state(), WAIT, State::meters)
            .await
            .unwrap();
        clock.advance(Duration::from_secs(60));
        for _ in 0..500 {
            if lines(&api).iter().any(|l| l.starts_with("heartbeat")) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        clock.advance(Duration::from_secs(5));
        h.disconnect();
        wait_for_state(&mut h.state(), WAIT, |s| *s == State::Disconnected)
            .await
            .unwrap();
        let l = lines(&api);
        let id = ledger.rows()[0].new.client_session_id.clone();
        assert_eq!(
            l,
            vec![
                "prepare".to_string(),
                "tunnel up".into(),
                "handshake".into(),
                "start known=true".into(),
                "heartbeat 60".into(),
                format!("end {id} 5 user_initiated"),
                "tunnel down".into(),
            ]
        );
        assert!(uuid::Uuid::parse_str(&id).is_ok());
        let rows = ledger.rows();
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].closed.as_deref(), Some("user_initiated"));
        assert_eq!(rows[0].acks, 1);
        assert_eq!(rows[0].server_session_id.as_deref(), Some("trk_1"));
        assert_eq!(rows[0].exit_ip.as_deref(), Some("198.51.100.7"));
        // The final counts, taken once the tunnel is down.
        assert_eq!(rows[0].usage.bytes_in, Some(1234));
        assert_eq!(rows[0].usage.bytes_out, Some(567));
    }

    #[tokio::test]
    async fn a_start_that_finishes_after_the_user_gave_up_is_ended_at_once() {
        let (api, ledger, _clock, p) = setup(false, None);
        let (trigger, cancel) = Cancel::pair();
        *api.cancel_during_start.lock().unwrap() = Some(trigger);
        let (tx, mut rx) = tokio::sync::broadcast::channel(16);
        assert!(p.establish(tx, cancel).await.is_err());
        let id = ledger.rows()[0].new.client_session_id.clone();
        assert_eq!(
            lines(&api),
            vec![
                "prepare".to_string(),
                "tunnel up".into(),
                "handshake".into(),
                "start known=true".into(),
                "tunnel down".into(),
                format!("end {id} 1 user_initiated"),
            ]
        );
        let rows = ledger.rows();
        assert_eq!(rows[0].closed.as_deref(), Some("user_initiated"));
        assert!(!rows[0].connected);
        assert_eq!(rows[0].server_session_id.as_deref(), Some("trk_1"));
        assert_eq!(rows[0].usage.bytes_in, Some(1234));
        // Never announced as connected (the CLI would start its command).
        assert!(rx.try_recv().is_err());
    }

    #[tokio::test]
    async fn conflict_with_a_known_session_ends_it_and_starts_again() {
        let (api, ledger, _clock, p) = setup(true, None);
        let stale = ledger
            .open(NewRow {
                client_session_id: "old-session".into(),
                service: "orbnet",
                location: "lab-1".into(),
                started_at: chrono::Utc::now(),
            })
            .await
            .unwrap();
        *api.active.lock().unwrap() = Some("old-session".into());
        let (tx, _rx) = tokio::sync::broadcast::channel(16);
        let live = p.establish(tx, Cancel::never()).await.unwrap();
        let l = lines(&api);
        assert_eq!(l[3], "start known=true");
        assert_eq!(l[4], "active");
        assert!(l[5].starts_with("end old-session ") && l[5].ends_with(" error"));
        assert_eq!(l[6], "start known=true");
        let rows = ledger.rows();
        assert_eq!(rows[stale as usize].closed.as_deref(), Some("recovered"));
        assert_eq!(rows[1].closed.as_deref(), Some("not_started"));
        assert_eq!(rows[2].new.client_session_id, live.session_id());
        assert_ne!(rows[1].new.client_session_id, rows[2].new.client_session_id);
    }

    #[tokio::test]
    async fn conflict_with_a_foreign_session_stops_with_a_clear_message() {
        let (api, _ledger, _clock, p) = setup(true, Some("someone-else".into()));
        let (tx, _rx) = tokio::sync::broadcast::channel(16);
        let err = p.establish(tx, Cancel::never()).await.err().unwrap();
        let ErrorCause::SessionConflict(msg) = err else {
            panic!("wrong cause {err:?}")
        };
        assert!(msg.contains("someone-else"), "{msg}");
        // What the history can tell: not in it, which does not mean not Ferry's.
        assert!(msg.contains("already active for this account"), "{msg}");
        assert!(msg.contains("another data directory or user"), "{msg}");
        assert!(!msg.contains("not started by Ferry"), "{msg}");
        let l = lines(&api);
        assert!(!l.iter().any(|l| l.starts_with("end")), "{l:?}");
        assert_eq!(l.last().unwrap(), "tunnel down");
    }

    #[tokio::test]
    async fn recovery_ends_our_active_session_and_closes_rows() {
        let (api, ledger, clock, _p) = setup(false, Some("crashed".into()));
        for id in ["crashed", "older"] {
            ledger
                .open(NewRow {
                    client_session_id: id.into(),
                    service: "orbnet",
                    location: "lab-1".into(),
                    started_at: clock.wall() - chrono::Duration::seconds(42),
                })
                .await
                .unwrap();
        }
        let r = reconcile_orbnet(&*api, &*ledger, &clock).await;
        assert_eq!(r.closed, 2);
        assert_eq!(r.ended_on_server, 1);
        // Ended at once, reporting none of the 42 s it was orphaned (1 s is the API's minimum).
        assert!(lines(&api).contains(&"end crashed 1 error".to_string()));
        assert!(!lines(&api).iter().any(|l| l.starts_with("heartbeat")));
        assert!(ledger
            .rows()
            .iter()
            .all(|r| r.closed.as_deref() == Some("recovered")));
    }
}
