//! The async peer loop for packet pipes: one UDP socket, one pipe to a userspace stack, timers
//! every 250 ms. Packets move in batches: what the stack queued is encrypted into one
//! `sendmmsg`/UDP GSO send, and datagrams come in by `recvmmsg` (with GRO where the kernel has
//! it). Also the stats snapshot both this loop and system mode's data plane publish.

use super::batch::{self, RecvBatch, SendBatch, MAX_BATCH};
use super::engine::{Engine, Output, BUF_SIZE, MAX_DATAGRAM, OVERHEAD};
use crate::pipe::PipeEnd;
use bytes::Bytes;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsFd;
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

/// Slot of one encrypted datagram in the send batch: inside packets up to 1968 bytes (any
/// usual tunnel MTU) are batched, larger ones go out on their own.
const SEND_SLOT: usize = 2048;
/// Datagrams (or GRO messages) taken from the UDP socket per `recvmmsg`.
const RECV_BATCH: usize = 16;

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
    out: Vec<u8>,
    /// Encrypted datagrams waiting for one `sendmmsg`/GSO send.
    send: SendBatch,
    /// Received datagrams of one `recvmmsg` (GRO-coalesced when the kernel can).
    recv: RecvBatch,
    stats: StatsPublisher,
    pipe_drops: u64,
}

impl PeerLoop {
    /// Runs until `shutdown` fires (or its sender is dropped) or a fatal I/O error. The loop is
    /// borrowed, so its inside pipe can be taken back afterwards (see `Tunnel::down_keeping_pipe`).
    pub async fn run(&mut self, mut shutdown: oneshot::Receiver<()>) -> Result<(), PeerError> {
        let offload = super::dataplane::udp_offload_wanted();
        let gso = offload && batch::gso_supported(self.socket.as_fd());
        let gro = offload && batch::enable_gro(self.socket.as_fd());
        tracing::debug!(gro, gso, "pipe data plane");
        let mut st = State {
            out: vec![0u8; BUF_SIZE],
            send: SendBatch::new(MAX_BATCH, SEND_SLOT, gso),
            recv: RecvBatch::new(RECV_BATCH, MAX_DATAGRAM),
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
                r = self.socket.readable() => {
                    r.map_err(PeerError::Socket)?;
                    self.on_readable(&mut st).await?;
                }
                r = self.inside.rx.recv() => {
                    let Some(first) = r else { return Err(PeerError::InsideClosed) };
                    // Everything the stack has queued goes out in as few sends as possible.
                    self.encrypt_inside(&mut st, &first).await?;
                    for _ in 1..MAX_BATCH {
                        let Ok(packet) = self.inside.rx.try_recv() else { break };
                        self.encrypt_inside(&mut st, &packet).await?;
                    }
                    self.flush(&mut st)?;
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

    /// Encrypts one inside packet into the send batch (sent when full or the endpoint
    /// changed); without an endpoint yet it only feeds the engine (which queues it).
    async fn encrypt_inside(&mut self, st: &mut State, packet: &[u8]) -> Result<(), PeerError> {
        let Some(ep) = self.endpoint else {
            let _ = self.engine.encapsulate(packet, &mut st.out);
            return Ok(());
        };
        if st.send.dest().is_some_and(|d| d != ep) {
            self.flush(st)?;
        }
        if packet.len() + OVERHEAD + 64 > SEND_SLOT {
            self.flush(st)?;
            if let Output::Network(d) = self.engine.encapsulate(packet, &mut st.out) {
                send_udp(&self.socket, d, ep).await?;
            }
            return Ok(());
        }
        let Some(slot) = st.send.slot() else {
            return Ok(());
        };
        let start = slot.as_ptr();
        let len = match self.engine.encapsulate(packet, slot) {
            Output::Network(d) if d.as_ptr() == start => Some(d.len()),
            _ => None,
        };
        if let Some(len) = len {
            st.send.commit(len, ep);
            if st.send.is_full() {
                self.flush(st)?;
            }
        }
        Ok(())
    }

    /// Sends the batched datagrams.
    fn flush(&mut self, st: &mut State) -> Result<(), PeerError> {
        st.send
            .flush(self.socket.as_fd())
            .map_err(PeerError::Socket)?;
        st.pipe_drops += std::mem::take(&mut st.send.dropped);
        Ok(())
    }

    /// Takes every queued datagram off the socket (`recvmmsg` batches) and handles each.
    async fn on_readable(&mut self, st: &mut State) -> Result<(), PeerError> {
        loop {
            let recv = &mut st.recv;
            let got = self.socket.try_io(tokio::io::Interest::READABLE, || {
                recv.recv(self.socket.as_fd())
            });
            match got {
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors for earlier sends surface here; they do not break the socket.
                Err(e)
                    if matches!(
                        e.raw_os_error(),
                        Some(libc::ECONNREFUSED | libc::EHOSTUNREACH | libc::ENETUNREACH)
                    ) =>
                {
                    continue
                }
                Err(e) => return Err(PeerError::Socket(e)),
            }
            let mut datagrams = Vec::new();
            let mut handled = Ok(());
            // Data packets go straight to the pipe; anything needing an answer (handshakes,
            // cookies) is collected and handled with the async sends below.
            st.recv.for_each(|d, from| {
                if handled.is_err() {
                    return;
                }
                if matches!(d.first(), Some(4)) {
                    let accepted = match self.engine.decapsulate(from.ip(), d, &mut st.out) {
                        Output::Inside(p) => {
                            match pipe_send(&self.inside, p) {
                                Ok(true) => {}
                                Ok(false) => st.pipe_drops += 1,
                                Err(e) => handled = Err(e),
                            }
                            true
                        }
                        Output::Network(d) => {
                            // Rare (packets queued while a session was confirmed): sent
                            // without waiting; a full socket drops them like any UDP loss.
                            let _ = self.socket.try_send_to(d, from);
                            while let Some(q) = self.engine.next_queued(&mut st.out) {
                                let _ = self.socket.try_send_to(q, from);
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
                } else {
                    datagrams.push((d.to_vec(), from));
                }
            });
            handled?;
            for (d, from) in datagrams {
                self.on_datagram(st, &d, from).await?;
            }
        }
    }

    async fn on_datagram(
        &mut self,
        st: &mut State,
        datagram: &[u8],
        from: SocketAddr,
    ) -> Result<(), PeerError> {
        let is_handshake = matches!(datagram.first(), Some(1 | 2));
        let accepted = match self.engine.decapsulate(from.ip(), datagram, &mut st.out) {
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
