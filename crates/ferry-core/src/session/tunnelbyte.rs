//! The tunnelbyte provider: create the session with a key made on this device, bring the tunnel
//! up, poll status every 10 s for bytes, cost and quota, and stop when the server terminates it.

use ferry_tunnel::wgconf::WgConfig;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::warn;

use super::event::{cap_cause, cap_event, SessionEvent};
use super::machine::ErrorCause;
use super::ports::{Ledger, NewRow, TunnelFactory, TunnelHandle, UsageRow};
use super::supervisor::{Cancel, EventSink, MeterEnd, Provider};
use crate::clock::SharedClock;
use crate::meter::caps::{tunnelbyte_next_charge, tunnelbyte_rate, Cap, CapNote, CapTracker};
use crate::meter::credits_driver::DisconnectReason;
use crate::meter::quota::{
    run_quota, QuotaApi, QuotaApiError, QuotaExit, QuotaMeter, QuotaNote, POLL_INTERVAL,
};

/// How often local traffic figures are published while connected.
pub const TRAFFIC_EVERY: Duration = Duration::from_secs(1);

/// A created tunnelbyte session.
#[derive(Debug, Clone)]
pub struct Created {
    /// The server's session id.
    pub id: String,
    /// The region code.
    pub region: String,
    /// The WireGuard config, typed, with the private key generated on this device.
    pub config: WgConfig,
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
    /// Spend caps in millicents of the service's currency (empty: none).
    pub caps: CapTracker,
}

impl Default for TunnelbyteSettings {
    fn default() -> Self {
        Self {
            region: None,
            poll: POLL_INTERVAL,
            handshake_timeout: Duration::from_secs(15),
            caps: CapTracker::default(),
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

impl<A: TunnelbyteApi, T: TunnelFactory, L: Ledger> TunnelbyteProvider<A, T, L> {
    /// `DELETE /v1/sessions/{id}`; a failure is logged (the server's idle reaper ends a session
    /// without handshakes after 5 minutes).
    async fn delete_session(&self, id: &str) {
        match self.api.delete(id).await {
            Ok(()) | Err(QuotaApiError::NotFound) => {}
            Err(e) => warn!(error = %e, session = id, "could not delete the tunnelbyte session"),
        }
    }

    /// Ends a session that was created but never metered: the tunnel down (so the request
    /// takes the direct route), the session deleted, the row closed with `reason`.
    async fn give_up(&self, id: &str, row: i64, tunnel: Option<&T::Tunnel>, reason: &str) {
        let mut usage = UsageRow::default();
        if let Some(t) = tunnel {
            t.down().await;
            let (rx_bytes, tx_bytes) = t.traffic();
            usage.bytes_in = Some(rx_bytes);
            usage.bytes_out = Some(tx_bytes);
        }
        self.delete_session(id).await;
        self.ledger.close(row, reason.into(), usage).await;
    }
}

impl<A: TunnelbyteApi, T: TunnelFactory, L: Ledger> Provider for TunnelbyteProvider<A, T, L> {
    type Live = TunnelbyteLive<T::Tunnel>;

    async fn establish(
        &self,
        events: EventSink,
        mut cancel: Cancel,
    ) -> Result<Self::Live, ErrorCause> {
        // Never cut short: once the request is out, only its answer names the session to delete.
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
                self.delete_session(&created.id).await;
                return Err(ErrorCause::Service(format!(
                    "cannot record the session: {e}"
                )));
            }
        };
        self.ledger
            .set_server_session(row, created.id.clone(), created.exit_ip.clone())
            .await;
        if cancel.is_cancelled() {
            self.give_up(&created.id, row, None, "user_initiated").await;
            return Err(Cancel::error());
        }
        // Bringing the tunnel up is not cut short either (system mode changes routes and DNS).
        let tunnel = match self.tunnels.up(created.config.clone()).await {
            Ok(t) => t,
            Err(e) => {
                self.give_up(&created.id, row, None, "error").await;
                return Err(e);
            }
        };
        let handshake = tokio::select! {
            r = tunnel.first_handshake(self.settings.handshake_timeout) => Some(r),
            () = cancel.cancelled() => None,
        };
        match handshake {
            Some(Ok(())) if !cancel.is_cancelled() => {}
            Some(Ok(())) | None => {
                self.give_up(&created.id, row, Some(&tunnel), "user_initiated")
                    .await;
                return Err(Cancel::error());
            }
            Some(Err(e)) => {
                self.give_up(&created.id, row, Some(&tunnel), "error").await;
                return Err(ErrorCause::Tunnel(format!(
                    "no WireGuard handshake in {}: {e}",
                    created.region
                )));
            }
        }
        self.ledger.connected(row).await;
        let _ = events.send(SessionEvent::Connected {
            service: "tunnelbyte".into(),
            location: created.region.clone(),
            session_id: created.id.clone(),
            exit_ip: created.exit_ip.clone(),
            proxy: tunnel.proxy(),
            http_proxy: tunnel.http_proxy(),
        });
        Ok(TunnelbyteLive {
            tunnel,
            id: created.id,
            row,
        })
    }

    async fn abandon(&self, live: Arc<Self::Live>, events: EventSink) {
        self.give_up(&live.id, live.row, Some(&live.tunnel), "user_initiated")
            .await;
        // Never metered: no connected time is counted.
        let _ = events.send(SessionEvent::SessionEnded {
            reason: "user_initiated".into(),
            billed_secs: None,
            connected_secs: 0.0,
            credits_used: None,
        });
    }

    async fn meter(
        &self,
        live: Arc<Self::Live>,
        mut stop: watch::Receiver<Option<DisconnectReason>>,
        events: EventSink,
    ) -> MeterEnd {
        let (stop_tx, stop_rx) = watch::channel(false);
        let stop_tx = &stop_tx;
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
        let started = self.clock.now();
        let mut caps = self.settings.caps.clone();
        let mut cap_hit: Option<(Cap, Option<String>)> = None;
        let mut prev: Option<(f64, u64)> = None;
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
                        let latency_ms = crate::session::event::latency_ms(live.tunnel.latency());
                        let _ = events.send(SessionEvent::Traffic { rx_bytes, tx_bytes, latency_ms });
                        continue;
                    }
                };
                if let (QuotaNote::Sample(s), true, true) =
                    (&n, cap_hit.is_none(), !caps.is_empty())
                {
                    if let Some(cost) = s.cost_millicents {
                        let secs = self.clock.now().saturating_since(started).as_secs_f64();
                        let rate = tunnelbyte_rate(prev, secs, cost);
                        prev = Some((secs, cost));
                        let next = tunnelbyte_next_charge(rate, self.settings.poll);
                        let currency = s.currency.as_deref();
                        for note in caps.check(cost as f64, next) {
                            if let CapNote::Stop { cap } = note {
                                let _ = events.send(SessionEvent::Notice {
                                    message: format!(
                                        "the cost would pass the {} before the next status \
                                         poll; disconnecting",
                                        cap.describe(currency)
                                    ),
                                });
                                cap_hit = Some((cap, s.currency.clone()));
                                let _ = stop_tx.send(true);
                            } else if let Some(ev) = cap_event(&note, currency) {
                                let _ = events.send(ev);
                            }
                        }
                    }
                }
                let ev = match n {
                    QuotaNote::Sample(s) | QuotaNote::Final(s) => {
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
        let (exit, reason) = {
            let work = async { tokio::join!(poll, forward).0 };
            tokio::pin!(work);
            tokio::select! {
                exit = &mut work => (exit, None),
                // Stopped by us: the poll loop sees the flag, deletes the session and returns.
                r = relay => (work.await, Some(r)),
            }
        };
        let (rx_bytes, tx_bytes) = live.tunnel.traffic();
        let cap_hit = cap_hit.filter(|_| exit == QuotaExit::Stopped);
        let reason_text = match (&exit, reason) {
            (QuotaExit::Stopped, _) if cap_hit.is_some() => "cap_reached".to_string(),
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
        if let Some((cap, currency)) = cap_hit {
            return MeterEnd::Ended(cap_cause(&cap, currency.as_deref(), false));
        }
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
        // The row was closed by the meter while the tunnel ran: now the final counts.
        let (rx_bytes, tx_bytes) = live.tunnel.traffic();
        self.ledger.traffic(live.row, rx_bytes, tx_bytes).await;
    }
}

#[cfg(test)]
mod tests {
    //! Against the in-process lab with an exit node that never answers WireGuard, so a
    //! connection stays in its handshake wait until cancelled or timed out.
    use super::*;
    use crate::clock::SystemClock;
    use crate::http::HttpSettings;
    use crate::secrets::Secret;
    use crate::services::tunnelbyte::TunnelbyteClient;
    use crate::session::machine::State;
    use crate::session::supervisor::{spawn, wait_for_state};
    use crate::session::wg_tunnels::{WgTunnel, WgTunnels};
    use crate::store::{EndReason, SessionState, Store};
    use serde_json::Value;
    use std::net::SocketAddr;
    use tokio::sync::Notify;

    const WAIT: Duration = Duration::from_secs(30);

    /// The real tunnels, telling the test when one is up (the attempt then waits for its
    /// first handshake).
    struct Announcing {
        inner: WgTunnels,
        up: Arc<Notify>,
    }

    impl TunnelFactory for Announcing {
        type Tunnel = WgTunnel;
        async fn up(&self, config: WgConfig) -> Result<WgTunnel, ErrorCause> {
            let t = self.inner.up(config).await;
            self.up.notify_one();
            t
        }
    }

    struct Setup {
        lab: ferry_lab::Lab,
        token: String,
        store: Arc<Store>,
        _dir: tempfile::TempDir,
    }

    async fn setup() -> Setup {
        let lab = ferry_lab::Lab::start_without_data_plane(ferry_lab::LabConfig::default())
            .await
            .unwrap();
        let accounts: Value = reqwest::get(format!("{}/accounts", lab.urls().control))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let token = accounts["tunnelbyte"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["tier"] == "paid")
            .unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string();
        let dir = tempfile::tempdir().unwrap();
        let store = Arc::new(Store::open_in(dir.path()).await.unwrap());
        Setup {
            lab,
            token,
            store,
            _dir: dir,
        }
    }

    fn tunnels(proxy: SocketAddr) -> WgTunnels {
        WgTunnels {
            system: false,
            proxy,
            any_port_if_taken: false,
            access: Default::default(),
            helper: Default::default(),
        }
    }

    fn provider<T: TunnelFactory>(
        s: &Setup,
        tunnels: T,
        handshake_timeout: Duration,
    ) -> TunnelbyteProvider<TunnelbyteClient, T, Store> {
        let client = TunnelbyteClient::new(&s.lab.urls().tunnelbyte, HttpSettings::default())
            .unwrap()
            .with_token(Some(Secret::new(s.token.clone())));
        TunnelbyteProvider::new(
            Arc::new(client),
            tunnels,
            s.store.clone(),
            SystemClock::shared(),
            TunnelbyteSettings {
                region: Some("fsn".into()),
                handshake_timeout,
                ..TunnelbyteSettings::default()
            },
        )
    }

    async fn lab_requests(s: &Setup) -> Vec<Value> {
        let v: Value = reqwest::get(format!("{}/requests", s.lab.urls().control))
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["requests"].as_array().cloned().unwrap_or_default()
    }

    /// The one session this test created: its row is closed with `reason`, the lab saw
    /// `POST /v1/sessions` then `DELETE /v1/sessions/{id}`, and the lab has ended it.
    async fn assert_created_then_deleted(s: &Setup, reason: EndReason) {
        let rows = s.store.open_sessions().await.unwrap();
        assert!(rows.is_empty(), "rows left open: {rows:?}");
        let row = s
            .store
            .history(&crate::store::HistoryQuery::default())
            .await
            .unwrap()
            .pop()
            .expect("a history row");
        assert_eq!(row.state, SessionState::Ended, "{row:?}");
        assert_eq!(row.end_reason, Some(reason), "{row:?}");
        let id = row.server_session_id.clone().expect("server session id");
        assert_eq!(row.exit_ip.as_deref(), Some("127.0.0.1"), "{row:?}");
        let base = "/tunnelbyte/v1/sessions";
        let calls: Vec<(String, String)> = lab_requests(s)
            .await
            .iter()
            .filter(|r| r["path"].as_str().unwrap_or("").starts_with(base))
            .map(|r| {
                (
                    r["method"].as_str().unwrap_or("").to_string(),
                    r["path"].as_str().unwrap_or("").to_string(),
                )
            })
            .collect();
        assert_eq!(
            calls,
            vec![
                ("POST".to_string(), base.to_string()),
                ("DELETE".to_string(), format!("{base}/{id}")),
            ]
        );
        let status: Value = reqwest::Client::new()
            .get(format!("{}/sessions/{id}", s.lab.urls().tunnelbyte))
            .bearer_auth(&s.token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert!(!status["terminated_at"].is_null(), "{status}");
        assert_eq!(status["terminated_reason"], "client", "{status}");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn disconnect_while_waiting_for_the_handshake_deletes_the_created_session() {
        let s = setup().await;
        let up = Arc::new(Notify::new());
        let p = provider(
            &s,
            Announcing {
                inner: tunnels("127.0.0.1:0".parse().unwrap()),
                up: up.clone(),
            },
            // Far longer than the test: only the cancel can end the wait.
            Duration::from_secs(600),
        );
        let (h, _task) = spawn(p, SystemClock::shared());
        let mut state = h.state();
        h.connect();
        tokio::time::timeout(WAIT, up.notified()).await.unwrap();
        assert_eq!(*state.borrow(), State::Connecting);
        h.disconnect();
        let end = wait_for_state(&mut state, WAIT, |s| {
            matches!(s, State::Disconnected | State::Error { .. })
        })
        .await;
        assert_eq!(end, Some(State::Disconnected));
        assert_created_then_deleted(&s, EndReason::UserInitiated).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_handshake_timeout_deletes_the_created_session() {
        let s = setup().await;
        let p = provider(
            &s,
            tunnels("127.0.0.1:0".parse().unwrap()),
            Duration::from_millis(300),
        );
        let (h, _task) = spawn(p, SystemClock::shared());
        let mut state = h.state();
        h.connect();
        let end = wait_for_state(&mut state, WAIT, |s| matches!(s, State::Error { .. })).await;
        assert!(
            matches!(
                &end,
                Some(State::Error {
                    cause: ErrorCause::Tunnel(_)
                })
            ),
            "{end:?}"
        );
        assert_created_then_deleted(&s, EndReason::Error).await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_tunnel_that_cannot_come_up_deletes_the_created_session() {
        let s = setup().await;
        // The proxy port is taken, so the tunnel cannot come up.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let p = provider(
            &s,
            tunnels(taken.local_addr().unwrap()),
            Duration::from_secs(600),
        );
        let (h, _task) = spawn(p, SystemClock::shared());
        let mut state = h.state();
        h.connect();
        let end = wait_for_state(&mut state, WAIT, |s| matches!(s, State::Error { .. })).await;
        assert!(
            matches!(
                &end,
                Some(State::Error {
                    cause: ErrorCause::Tunnel(_)
                })
            ),
            "{end:?}"
        );
        assert_created_then_deleted(&s, EndReason::Error).await;
    }
}
