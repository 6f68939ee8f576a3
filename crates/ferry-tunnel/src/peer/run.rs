//! The async peer loop for packet pipes: one UDP socket, one pipe to a userspace stack, timers
//! every 250 ms. Also the stats snapshot both this loop and system mode's data plane publish.

use super::engine::{Engine, Output, BUF_SIZE, MAX_DATAGRAM};
use crate::pipe::PipeEnd;
use bytes::Bytes;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::net::UdpSocket;
use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{oneshot, watch};

/// How often boringtun's timers run.
pub const TICK: Duration = Duration::from_millis(250);

/// Errors that stop the peer loop.
#[derive(Debug, thiserror::Error)]
pub enum PeerError {
    /// The UDP socket failed.
    #[error("UDP socket: {0}")]
    Socket(#[source] io::Error),
    /// The TUN device failed.
    #[error("TUN device: {0}")]
    Tun(#[source] io::Error),
    /// A data-plane thread could not be started.
    #[error("starting a data-plane thread: {0}")]
    Thread(#[source] io::Error),
    /// The inside end (userspace stack) went away.
    #[error("the inside packet pipe closed")]
    InsideClosed,
}

/// A snapshot of the peer's state, published about every 250 ms and on each handshake.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// IP bytes received through the tunnel.
    pub rx_bytes: u64,
    /// IP bytes sent through the tunnel.
    pub tx_bytes: u64,
    /// When the current session's handshake completed (`None`: no session yet or expired).
    pub last_handshake: Option<Instant>,
    /// Number of handshakes completed since the loop started.
    pub handshakes: u64,
    /// Where datagrams go (learned from the peer if the config had no endpoint).
    pub endpoint: Option<SocketAddr>,
    /// Datagrams or packets dropped (invalid, replayed, not allowed, pipe full).
    pub dropped: u64,
    /// Round trip of the last handshake we initiated (the latency to the peer).
    pub handshake_rtt: Option<Duration>,
}

impl PeerStats {
    /// Age of the last handshake now, if any.
    pub fn last_handshake_age(&self) -> Option<Duration> {
        self.last_handshake.map(|t| t.elapsed())
    }
}

/// Reads one packet from the pipe into `buf`; `None` when the other end closed.
async fn pipe_recv(p: &mut PipeEnd, buf: &mut [u8]) -> Option<usize> {
    p.rx.recv().await.map(|b| {
        let n = b.len().min(buf.len());
        buf[..n].copy_from_slice(&b[..n]);
        n
    })
}

/// Delivers one packet to the pipe; false if it was dropped because the pipe is full.
fn pipe_send(p: &PipeEnd, pkt: &[u8]) -> Result<bool, PeerError> {
    match p.tx.try_send(Bytes::copy_from_slice(pkt)) {
        Ok(()) => Ok(true),
        Err(TrySendError::Full(_)) => Ok(false),
        Err(TrySendError::Closed(_)) => Err(PeerError::InsideClosed),
    }
}

/// Everything the loop owns.
#[derive(Debug)]
pub struct PeerLoop {
    /// The WireGuard engine.
    pub engine: Engine,
    /// The UDP socket (bound, possibly fwmarked).
    pub socket: UdpSocket,
    /// Where to send; `None` until the peer contacts us.
    pub endpoint: Option<SocketAddr>,
    /// The inside end: a packet pipe to a userspace stack (app mode, exit node, tests). System
    /// mode uses [`super::dataplane::SystemLoop`] instead.
    pub inside: PipeEnd,
    /// Stats are published here.
    pub stats: watch::Sender<PeerStats>,
}

struct State {
    net_in: Vec<u8>,
    out: Vec<u8>,
    inside_in: Vec<u8>,
    stats: StatsPublisher,
    pipe_drops: u64,
}

impl PeerLoop {
    /// Runs until `shutdown` fires (or its sender is dropped) or a fatal I/O error.
    pub async fn run(mut self, mut shutdown: oneshot::Receiver<()>) -> Result<(), PeerError> {
        let mut st = State {
            net_in: vec![0u8; MAX_DATAGRAM],
            out: vec![0u8; BUF_SIZE],
            inside_in: vec![0u8; MAX_DATAGRAM],
            stats: StatsPublisher::new(self.endpoint),
            pipe_drops: 0,
        };
        // Start the handshake right away when we know where the peer is.
        if let Some(ep) = self.endpoint {
            if let Output::Network(d) = self.engine.initiate(&mut st.out) {
                send_udp(&self.socket, d, ep).await?;
            }
        }
        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => {
                    // The final figures: up to a tick of traffic is not published yet.
                    self.publish(&mut st);
                    return Ok(());
                }
                r = self.socket.recv_from(&mut st.net_in) => {
                    let (n, from) = r.map_err(PeerError::Socket)?;
                    self.on_datagram(&mut st, n, from).await?;
                }
                r = pipe_recv(&mut self.inside, &mut st.inside_in) => {
                    let Some(n) = r else { return Err(PeerError::InsideClosed) };
                    if let Output::Network(d) = self.engine.encapsulate(&st.inside_in[..n], &mut st.out) {
                        if let Some(ep) = self.endpoint {
                            send_udp(&self.socket, d, ep).await?;
                        }
                    }
                }
                _ = ticker.tick() => {
                    match self.engine.tick(&mut st.out) {
                        Output::Network(d) => {
                            if let Some(ep) = self.endpoint {
                                send_udp(&self.socket, d, ep).await?;
                            }
                        }
                        Output::Expired => tracing::info!("session expired; a new handshake starts with the next packet"),
                        _ => {}
                    }
                    self.publish(&mut st);
                }
            }
        }
    }

    async fn on_datagram(
        &mut self,
        st: &mut State,
        n: usize,
        from: SocketAddr,
    ) -> Result<(), PeerError> {
        let is_handshake = matches!(st.net_in.first(), Some(1 | 2));
        let accepted = match self
            .engine
            .decapsulate(from.ip(), &st.net_in[..n], &mut st.out)
        {
            Output::Network(d) => {
                send_udp(&self.socket, d, from).await?;
                while let Some(q) = self.engine.next_queued(&mut st.out) {
                    send_udp(&self.socket, q, from).await?;
                }
                true
            }
            Output::Inside(p) => {
                if !pipe_send(&self.inside, p)? {
                    st.pipe_drops += 1;
                }
                true
            }
            Output::Nothing => true,
            Output::Dropped(_) | Output::Expired => false,
        };
        if accepted && self.endpoint != Some(from) {
            tracing::debug!(endpoint = %from, "peer endpoint");
            self.endpoint = Some(from);
        }
        if is_handshake && accepted {
            self.publish(st);
        }
        Ok(())
    }

    fn publish(&mut self, st: &mut State) {
        st.stats
            .publish(&self.stats, &self.engine, self.endpoint, st.pipe_drops);
    }
}

/// Keeps the last published [`PeerStats`], counts handshakes between snapshots, and publishes
/// a new snapshot when anything changed.
#[derive(Debug, Default)]
pub struct StatsPublisher {
    cur: PeerStats,
}

impl StatsPublisher {
    /// Starts with the configured endpoint (if any).
    pub fn new(endpoint: Option<SocketAddr>) -> Self {
        Self {
            cur: PeerStats {
                endpoint,
                ..PeerStats::default()
            },
        }
    }

    /// Reads the engine's counters and session age; sends a snapshot if it changed.
    /// `extra_drops` counts drops outside the engine (full pipe or TUN, failed sends).
    pub fn publish(
        &mut self,
        tx: &watch::Sender<PeerStats>,
        engine: &Engine,
        endpoint: Option<SocketAddr>,
        extra_drops: u64,
    ) {
        let c = engine.counters();
        let age = engine.last_handshake_age();
        let now = Instant::now();
        let hs = age.and_then(|a| now.checked_sub(a));
        let new_session = match (hs, self.cur.last_handshake) {
            (Some(t), Some(old)) => t > old + Duration::from_secs(1),
            (Some(_), None) => true,
            _ => false,
        };
        if new_session {
            self.cur.handshakes += 1;
            self.cur.last_handshake = hs;
        } else if hs.is_none() {
            self.cur.last_handshake = None;
        }
        self.cur.rx_bytes = c.rx_bytes;
        self.cur.tx_bytes = c.tx_bytes;
        self.cur.dropped = c.dropped + extra_drops;
        self.cur.handshake_rtt = c.handshake_rtt;
        self.cur.endpoint = endpoint;
        tx.send_if_modified(|s| {
            if *s != self.cur {
                *s = self.cur.clone();
                true
            } else {
                false
            }
        });
    }
}

async fn send_udp(sock: &UdpSocket, d: &[u8], to: SocketAddr) -> Result<(), PeerError> {
    match sock.send_to(d, to).await {
        Ok(_) => Ok(()),
        // Transient conditions (no route yet, buffer full, ICMP unreachable): drop the datagram.
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(
                    libc::ENETUNREACH
                        | libc::EHOSTUNREACH
                        | libc::ENOBUFS
                        | libc::ECONNREFUSED
                        | libc::EPERM
                        | libc::EAGAIN
                )
            ) =>
        {
            tracing::debug!(error = %e, "UDP send dropped");
            Ok(())
        }
        Err(e) => Err(PeerError::Socket(e)),
    }
}
