//! The supervisor's boundaries: the tunnel and the history store, as small traits that the real
//! `ferry-tunnel` handle and `store::Store` are adapted to (and tests fake).

use std::future::Future;
use std::time::Duration;

use chrono::{DateTime, Utc};
use ferry_tunnel::wgconf::WgConfig;

use super::machine::ErrorCause;

/// Brings tunnels up.
pub trait TunnelFactory: Send + Sync + 'static {
    /// The running tunnel.
    type Tunnel: TunnelHandle;
    /// Brings a tunnel up from a typed WireGuard config (with its private key); fails with
    /// [`ErrorCause::Tunnel`] or, when system mode lacks the rights, [`ErrorCause::NoPrivileges`].
    fn up(&self, config: WgConfig)
        -> impl Future<Output = Result<Self::Tunnel, ErrorCause>> + Send;
    /// Replaces `old` (after a network change) with a tunnel from `config`; `old` is down
    /// afterwards, whatever the outcome. The default brings it down and a new one up; a factory
    /// may keep what the change did not touch (app mode keeps its proxies and their open
    /// connections).
    fn renew(
        &self,
        old: &Self::Tunnel,
        config: WgConfig,
    ) -> impl Future<Output = Result<Self::Tunnel, ErrorCause>> + Send {
        async move {
            old.down().await;
            self.up(config).await
        }
    }
}

/// A running tunnel.
pub trait TunnelHandle: Send + Sync + 'static {
    /// Resolves after the first completed WireGuard handshake, or fails after `timeout`.
    fn first_handshake(&self, timeout: Duration)
        -> impl Future<Output = Result<(), String>> + Send;
    /// Bytes received and sent so far; after `down`, the final figures.
    fn traffic(&self) -> (u64, u64);
    /// The local (SOCKS5) proxy address in app mode.
    fn proxy(&self) -> Option<String>;
    /// The local HTTP proxy address in app mode, when it runs.
    fn http_proxy(&self) -> Option<String> {
        None
    }
    /// Latency to the WireGuard peer: the round trip of the last handshake, when known.
    fn latency(&self) -> Option<Duration> {
        None
    }
    /// Resolves when the tunnel dies on its own, with a reason.
    fn closed(&self) -> impl Future<Output = String> + Send;
    /// Brings the tunnel down (idempotent).
    fn down(&self) -> impl Future<Output = ()> + Send;
}

/// A new history row, written before the server is asked to start.
#[derive(Debug, Clone, PartialEq)]
pub struct NewRow {
    /// Our id (OrbNET: the UUID sent as `session_id`).
    pub client_session_id: String,
    /// `orbnet` or `tunnelbyte`.
    pub service: &'static str,
    /// Server name or region.
    pub location: String,
    /// Wall time.
    pub started_at: DateTime<Utc>,
}

/// Figures to record on a row and as a usage sample.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UsageRow {
    /// Bytes in.
    pub bytes_in: Option<u64>,
    /// Bytes out.
    pub bytes_out: Option<u64>,
    /// Credits left.
    pub credits_remaining: Option<f64>,
    /// Credits used.
    pub credits_used: Option<f64>,
    /// Cost so far in millicents.
    pub cost_millicents: Option<u64>,
    /// Currency of the cost.
    pub cost_currency: Option<String>,
    /// Bytes window used / limit.
    pub quota_bytes: Option<(u64, u64)>,
    /// Time window used / limit.
    pub quota_seconds: Option<(u64, u64)>,
}

/// A row left open (by a crash, or still running).
#[derive(Debug, Clone, PartialEq)]
pub struct OpenRow {
    /// Row id.
    pub id: i64,
    /// Our id.
    pub client_session_id: String,
    /// The server's id (tunnelbyte).
    pub server_session_id: Option<String>,
    /// Service name.
    pub service: String,
    /// Last acknowledged heartbeat, or the start, in wall time.
    pub last_ack_at: Option<DateTime<Utc>>,
}

/// The history store as the supervisor writes it. Failures are logged by implementations and
/// never stop a connection, except opening the row (without it a crash is unrecoverable).
pub trait Ledger: Send + Sync + 'static {
    /// Inserts a row in state `starting`; returns its id.
    fn open(&self, row: NewRow) -> impl Future<Output = Result<i64, String>> + Send;
    /// Records the server's id for the session and the exit IP.
    fn set_server_session(
        &self,
        row: i64,
        id: String,
        exit_ip: Option<String>,
    ) -> impl Future<Output = ()> + Send;
    /// Marks the row connected.
    fn connected(&self, row: i64) -> impl Future<Output = ()> + Send;
    /// Records an acknowledged heartbeat (for crash recovery across reboots).
    fn acked(&self, row: i64) -> impl Future<Output = ()> + Send;
    /// Records figures and a usage sample.
    fn usage(&self, row: i64, u: UsageRow) -> impl Future<Output = ()> + Send;
    /// Closes the row with a reason (`user_initiated`, `credits_depleted`, `recovered`, …).
    fn close(&self, row: i64, reason: String, u: UsageRow) -> impl Future<Output = ()> + Send;
    /// Records the tunnel's final byte counts once it is down (also on a closed row: the
    /// row is closed while the tunnel still runs).
    fn traffic(&self, row: i64, bytes_in: u64, bytes_out: u64) -> impl Future<Output = ()> + Send;
    /// The row of a client session id (open or closed), if ours.
    fn find(&self, client_session_id: String) -> impl Future<Output = Option<OpenRow>> + Send;
    /// Rows not closed, for one service.
    fn open_rows(&self, service: &'static str) -> impl Future<Output = Vec<OpenRow>> + Send;
}

/// A history kept in memory (tests, and front ends that run without a data dir).
#[derive(Debug, Default)]
pub struct MemoryLedger {
    rows: std::sync::Mutex<Vec<MemoryRow>>,
}

/// One row of a [`MemoryLedger`].
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryRow {
    /// What was opened.
    pub new: NewRow,
    /// Server id.
    pub server_session_id: Option<String>,
    /// Exit IP.
    pub exit_ip: Option<String>,
    /// Whether it was marked connected.
    pub connected: bool,
    /// Acknowledged heartbeats.
    pub acks: u32,
    /// Last figures.
    pub usage: UsageRow,
    /// Close reason, once closed.
    pub closed: Option<String>,
    /// Wall time of the last ack (or the start).
    pub last_ack_at: Option<DateTime<Utc>>,
}

impl MemoryLedger {
    /// A copy of every row.
    pub fn rows(&self) -> Vec<MemoryRow> {
        self.rows.lock().map(|r| r.clone()).unwrap_or_default()
    }

    fn with<R>(&self, f: impl FnOnce(&mut Vec<MemoryRow>) -> R) -> Option<R> {
        self.rows.lock().ok().map(|mut r| f(&mut r))
    }

    fn with_row(&self, row: i64, f: impl FnOnce(&mut MemoryRow)) {
        self.with(|rows| {
            if let Some(r) = usize::try_from(row).ok().and_then(|i| rows.get_mut(i)) {
                f(r);
            }
        });
    }

    fn open_row(id: usize, r: &MemoryRow) -> OpenRow {
        OpenRow {
            id: i64::try_from(id).unwrap_or(i64::MAX),
            client_session_id: r.new.client_session_id.clone(),
            server_session_id: r.server_session_id.clone(),
            service: r.new.service.to_string(),
            last_ack_at: r.last_ack_at,
        }
    }
}

impl Ledger for MemoryLedger {
    async fn open(&self, row: NewRow) -> Result<i64, String> {
        self.with(|rows| {
            rows.push(MemoryRow {
                last_ack_at: Some(row.started_at),
                new: row,
                server_session_id: None,
                exit_ip: None,
                connected: false,
                acks: 0,
                usage: UsageRow::default(),
                closed: None,
            });
            i64::try_from(rows.len() - 1).unwrap_or(i64::MAX)
        })
        .ok_or_else(|| "ledger poisoned".to_string())
    }
    async fn set_server_session(&self, row: i64, id: String, exit_ip: Option<String>) {
        self.with_row(row, |r| {
            r.server_session_id = Some(id);
            if exit_ip.is_some() {
                r.exit_ip = exit_ip;
            }
        });
    }
    async fn connected(&self, row: i64) {
        self.with_row(row, |r| r.connected = true);
    }
    async fn acked(&self, row: i64) {
        self.with_row(row, |r| {
            r.acks += 1;
            r.last_ack_at = Some(Utc::now());
        });
    }
    async fn usage(&self, row: i64, u: UsageRow) {
        self.with_row(row, |r| r.usage = u);
    }
    async fn close(&self, row: i64, reason: String, u: UsageRow) {
        self.with_row(row, |r| {
            if r.closed.is_none() {
                r.closed = Some(reason);
                r.usage.bytes_in = u.bytes_in.or(r.usage.bytes_in);
                r.usage.bytes_out = u.bytes_out.or(r.usage.bytes_out);
            }
        });
    }
    async fn traffic(&self, row: i64, bytes_in: u64, bytes_out: u64) {
        self.with_row(row, |r| {
            r.usage.bytes_in = Some(bytes_in);
            r.usage.bytes_out = Some(bytes_out);
        });
    }
    async fn find(&self, client_session_id: String) -> Option<OpenRow> {
        self.with(|rows| {
            rows.iter()
                .enumerate()
                .find(|(_, r)| r.new.client_session_id == client_session_id)
                .map(|(i, r)| Self::open_row(i, r))
        })
        .flatten()
    }
    async fn open_rows(&self, service: &'static str) -> Vec<OpenRow> {
        self.with(|rows| {
            rows.iter()
                .enumerate()
                .filter(|(_, r)| r.closed.is_none() && r.new.service == service)
                .map(|(i, r)| Self::open_row(i, r))
                .collect()
        })
        .unwrap_or_default()
    }
}
