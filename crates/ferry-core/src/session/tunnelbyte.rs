//! The tunnelbyte provider: create the session with a key made on this device, bring the tunnel
//! up, poll status every 10 s for bytes, cost and quota, and stop when the server terminates it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::event::SessionEvent;
use super::machine::ErrorCause;
use super::ports::{Ledger, NewRow, TunnelFactory, TunnelHandle, UsageRow};
use super::supervisor::{EventSink, MeterEnd, Provider};
use crate::clock::SharedClock;
use crate::meter::credits_driver::DisconnectReason;
use crate::meter::quota::{run_quota, QuotaApi, QuotaExit, QuotaMeter, QuotaNote, POLL_INTERVAL};

/// How often local traffic figures are published while connected.
pub const TRAFFIC_EVERY: Duration = Duration::from_secs(1);

/// A created tunnelbyte session.
#[derive(Debug, Clone)]
pub struct Created {
    /// The server's session id.
    pub id: String,
    /// The region code.
    pub region: String,
    /// A wg-quick config including the locally generated private key.
    pub wg_quick: String,
    /// The exit IP.
    pub exit_ip: Option<String>,
}

/// tunnelbyte calls beyond the status poll.
pub trait TunnelbyteApi: QuotaApi {
    /// `POST /v1/sessions` with a key generated on this device. 402 maps to
    /// [`ErrorCause::QuotaExhausted`], 503 with `available` to [`ErrorCause::RegionUnavailable`].
    fn create(
        &self,
        region: Option<String>,
    ) -> impl Future<Output = Result<Created, ErrorCause>> + Send;
}

/// Settings of a tunnelbyte connection.
#[derive(Debug, Clone)]
pub struct TunnelbyteSettings {
    /// The region; `None` for the account's default.
    pub region: Option<String>,
    /// Status poll interval (10 s by default).
    pub poll: Duration,
    /// How long to wait for the first handshake.
    pub handshake_timeout: Duration,
}

impl Default for TunnelbyteSettings {
    fn default() -> Self {
        Self {
            region: None,
            poll: POLL_INTERVAL,
            handshake_timeout: Duration::from_secs(15),
        }
    }
}

/// The tunnelbyte side of the supervisor.
pub struct TunnelbyteProvider<A, T, L> {
    api: Arc<A>,
    tunnels: T,
    ledger: Arc<L>,
    clock: SharedClock,
    settings: TunnelbyteSettings,
}

impl<A, T, L> TunnelbyteProvider<A, T, L> {
    /// A provider over these parts.
    pub fn new(
        api: Arc<A>,
        tunnels: T,
        ledger: Arc<L>,
        clock: SharedClock,
        settings: TunnelbyteSettings,
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

/// A live tunnelbyte connection.
pub struct TunnelbyteLive<H> {
    tunnel: H,
    id: String,
    row: i64,
}

impl<A: TunnelbyteApi, T: TunnelFactory, L: Ledger> Provider for TunnelbyteProvider<A, T, L> {
    type Live = TunnelbyteLive<T::Tunnel>;

    async fn establish(&self, events: EventSink) -> Result<Self::Live, ErrorCause> {
        let created = self.api.create(self.settings.region.clone()).await?;
        let row = match self
            .ledger
            .open(NewRow {
                client_session_id: uuid::Uuid::new_v4().to_string(),
                service: "tunnelbyte",
                location: created.region.clone(),
                started_at: self.clock.wall(),
            })
            .await
        {
            Ok(row) => row,
            Err(e) => {
                let _ = self.api.delete(&created.id).await;
                return Err(ErrorCause::Service(format!(
                    "cannot record the session: {e}"
                )));
            }
        };
        self.ledger
            .set_server_session(row, created.id.clone(), created.exit_ip.clone())
            .await;
        let fail = |cause: ErrorCause| async {
            let _ = self.api.delete(&created.id).await;
            self.ledger
                .close(row, "error".into(), UsageRow::default())
                .await;
            cause
        };
        let tunnel = match self.tunnels.up(created.wg_quick.clone()).await {
            Ok(t) => t,
            Err(e) => return Err(fail(ErrorCause::Tunnel(e)).await),
        };
        if let Err(e) = tunnel
            .first_handshake(self.settings.handshake_timeout)
            .await
        {
            tunnel.down().await;
            return Err(fail(ErrorCause::Tunnel(format!(
                "no WireGuard handshake in {}: {e}",
                created.region
            )))
            .await);
        }
        self.ledger.connected(row).await;
        let _ = events.send(SessionEvent::Connected {
            service: "tunnelbyte".into(),
            location: created.region.clone(),
            session_id: created.id.clone(),
            exit_ip: created.exit_ip.clone(),
            proxy: tunnel.proxy(),
        });
        Ok(TunnelbyteLive {
            tunnel,
            id: created.id,
            row,
        })
    }

    async fn meter(
        &self,
        live: Arc<Self::Live>,
        mut stop: watch::Receiver<Option<DisconnectReason>>,
        events: EventSink,
    ) -> MeterEnd {
        let (stop_tx, stop_rx) = watch::channel(false);
        let relay = async move {
            let _ = stop.wait_for(|s| s.is_some()).await;
            let _ = stop_tx.send(true);
            stop.borrow().unwrap_or(DisconnectReason::UserInitiated)
        };
        let (tx, mut rx) = mpsc::unbounded_channel();
        let poll = run_quota(
            self.api.clone(),
            self.clock.clone(),
            live.id.clone(),
            QuotaMeter::default(),
            self.settings.poll,
            stop_rx,
            tx,
        );
        let ledger = self.ledger.clone();
        let row = live.row;
        let forward = async {
            // Local traffic figures between status polls (the window's bytes and rates).
            let mut ticker = tokio::time::interval(TRAFFIC_EVERY);
            ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            loop {
                let n = tokio::select! {
                    n = rx.recv() => match n {
                        Some(n) => n,
                        None => break,
                    },
                    _ = ticker.tick() => {
                        let (rx_bytes, tx_bytes) = live.tunnel.traffic();
                        let _ = events.send(SessionEvent::Traffic { rx_bytes, tx_bytes });
                        continue;
                    }
                };
                let ev = match n {
                    QuotaNote::Sample(s) => {
                        ledger
                            .usage(
                                row,
                                UsageRow {
                                    bytes_in: Some(s.bytes_in),
                                    bytes_out: Some(s.bytes_out),
                                    cost_millicents: s.cost_millicents,
                                    cost_currency: s.currency.clone(),
                                    quota_bytes: Some((s.bytes_window.used, s.bytes_window.limit)),
                                    quota_seconds: Some((
                                        s.seconds_window.used,
                                        s.seconds_window.limit,
                                    )),
                                    ..UsageRow::default()
                                },
                            )
                            .await;
                        SessionEvent::Quota(s)
                    }
                    QuotaNote::Warn {
                        window,
                        threshold_percent,
                        usage,
                    } => SessionEvent::QuotaWarning {
                        window,
                        threshold_percent,
                        usage,
                    },
                    QuotaNote::Terminated { reason } => SessionEvent::Notice {
                        message: format!("tunnelbyte ended the session: {reason}"),
                    },
                };
                let _ = events.send(ev);
            }
        };
        let started = self.clock.now();
        let work = async { tokio::join!(poll, forward).0 };
        tokio::pin!(work);
        let (exit, reason) = tokio::select! {
            exit = &mut work => (exit, None),
            // Stopped by us: the poll loop sees the flag, deletes the session and returns.
            r = relay => (work.await, Some(r)),
        };
        let (rx_bytes, tx_bytes) = live.tunnel.traffic();
        let reason_text = match (&exit, reason) {
            (QuotaExit::Terminated(r), _) => r.clone(),
            (QuotaExit::Stopped, Some(r)) => r.as_str().to_string(),
            (QuotaExit::Stopped, None) => "user_initiated".into(),
        };
        self.ledger
            .close(
                row,
                reason_text.clone(),
                UsageRow {
                    bytes_in: Some(rx_bytes),
                    bytes_out: Some(tx_bytes),
                    ..UsageRow::default()
                },
            )
            .await;
        let _ = events.send(SessionEvent::SessionEnded {
            reason: reason_text,
            billed_secs: None,
            connected_secs: self.clock.now().saturating_since(started).as_secs_f64(),
            credits_used: None,
        });
        match exit {
            QuotaExit::Terminated(r) => MeterEnd::Ended(ErrorCause::TerminatedByServer(r)),
            QuotaExit::Stopped => MeterEnd::Stopped,
        }
    }

    async fn tunnel_closed(&self, live: Arc<Self::Live>) -> String {
        live.tunnel.closed().await
    }

    async fn tear_down(&self, live: Arc<Self::Live>) {
        live.tunnel.down().await;
    }
}
