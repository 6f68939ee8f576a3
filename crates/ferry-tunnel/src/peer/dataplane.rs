//! System mode's data plane: two OS threads around one WireGuard engine, so encryption and
//! decryption run on both cores at once and each packet costs as few system calls as possible.
//!
//! - `ferry-tx`: TUN → encrypt → UDP. Reads the TUN device until it is empty (a TSO
//!   super-packet is cut into segments first, see [`offload`]), encrypts each packet into a
//!   slot of a [`SendBatch`], and sends the batch with one `sendmmsg` (runs of equal-sized
//!   datagrams as one UDP GSO message).
//! - `ferry-rx`: UDP → decrypt → TUN. `recvmmsg` (with UDP GRO, many datagrams per message),
//!   decrypts each datagram, merges consecutive TCP segments into super-packets when the TUN
//!   device has offloads ([`Coalescer`]), and writes them to the TUN device.
//! - The async task runs boringtun's timers every 250 ms, publishes stats, and stops the threads.
//!
//! The engine sits behind one mutex, taken once per packet; crypto for one packet is about a
//! microsecond, so the two threads rarely wait for each other. Idle threads sleep in `poll(2)`.

use super::batch::{self, RecvBatch, SendBatch, MAX_BATCH};
use super::engine::{Engine, Output, BUF_SIZE, MAX_DATAGRAM, OVERHEAD};
use super::run::{PeerError, PeerStats, StatsPublisher, TICK};
use super::wake::{Stop, Woken};
use crate::system::offload::{self, Coalescer, TsoSegments, VnetHdr, VNET_HDR_LEN};
use crate::system::tun::TunDevice;
use std::io;
use std::net::{SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{mpsc, oneshot, watch, Notify};

/// Environment variable that turns UDP GSO/GRO off when set to `0` (for comparisons and for
/// kernels or paths where they misbehave).
pub const UDP_OFFLOAD_ENV: &str = "FERRY_UDP_OFFLOAD";

/// Everything system mode's data plane owns.
#[derive(Debug)]
pub struct SystemLoop {
    /// The WireGuard engine.
    pub engine: Engine,
    /// The UDP socket (bound, non-blocking, possibly fwmarked).
    pub socket: UdpSocket,
    /// Where to send; `None` until the peer contacts us.
    pub endpoint: Option<SocketAddr>,
    /// The TUN device (non-blocking).
    pub tun: TunDevice,
    /// The TUN device's MTU: sizes the send slots.
    pub mtu: u16,
    /// Stats are published here.
    pub stats: watch::Sender<PeerStats>,
}

struct Locked {
    engine: Engine,
    endpoint: Option<SocketAddr>,
}

struct Shared {
    state: Mutex<Locked>,
    socket: UdpSocket,
    tun: TunDevice,
    /// Packets the TUN device refused and datagrams the socket could not send.
    drops: AtomicU64,
    /// Set by the receive thread when a handshake message was accepted.
    handshake: Notify,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Locked> {
        // A panicking thread cannot leave the engine half-updated in a way that matters more
        // than stopping the tunnel would; keep going with the inner value.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

pub(super) fn udp_offload_wanted() -> bool {
    std::env::var(UDP_OFFLOAD_ENV).map_or(true, |v| v != "0")
}

/// Size of one send slot: the largest packet the TUN device hands us, encrypted.
fn send_slot(mtu: u16) -> usize {
    (usize::from(mtu).max(1280) + OVERHEAD + 64).next_multiple_of(64)
}

impl SystemLoop {
    /// Runs until `shutdown` fires (or its sender is dropped) or a thread fails.
    pub async fn run(self, mut shutdown: oneshot::Receiver<()>) -> Result<(), PeerError> {
        let SystemLoop {
            engine,
            socket,
            endpoint,
            tun,
            mtu,
            stats,
        } = self;
        let shared = Arc::new(Shared {
            state: Mutex::new(Locked { engine, endpoint }),
            socket,
            tun,
            drops: AtomicU64::new(0),
            handshake: Notify::new(),
        });
        let mut buf = vec![0u8; BUF_SIZE];
        let mut publisher = StatsPublisher::new(endpoint);
        // Start the handshake right away when we know where the peer is.
        if let Some(ep) = endpoint {
            let mut g = shared.lock();
            if let Output::Network(d) = g.engine.initiate(&mut buf) {
                send_one(&shared, d, ep)?;
            }
        }
        let offload = udp_offload_wanted();
        let gro = offload && batch::enable_gro(shared.socket.as_fd());
        let gso = offload && batch::gso_supported(shared.socket.as_fd());
        tracing::debug!(gro, gso, "system data plane");

        let stop = Arc::new(Stop::new().map_err(PeerError::Thread)?);
        let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Result<(), PeerError>>();
        let mut threads = Vec::new();
        let spawn = |name: &str, f: Box<dyn FnOnce() -> Result<(), PeerError> + Send>| {
            let done = done_tx.clone();
            let stop = Arc::clone(&stop);
            std::thread::Builder::new()
                .name(name.into())
                .spawn(move || {
                    let r = f();
                    if r.is_err() {
                        // Bring the other thread down too.
                        stop.signal();
                    }
                    let _ = done.send(r);
                })
                .map_err(PeerError::Thread)
        };
        let (sh, st) = (Arc::clone(&shared), Arc::clone(&stop));
        let slot = send_slot(mtu);
        let tx = spawn("ferry-tx", Box::new(move || tx_loop(&sh, &st, slot, gso)));
        match tx {
            Ok(h) => threads.push(h),
            Err(e) => return Err(e),
        }
        let (sh, st) = (Arc::clone(&shared), Arc::clone(&stop));
        match spawn("ferry-rx", Box::new(move || rx_loop(&sh, &st, gro))) {
            Ok(h) => threads.push(h),
            Err(e) => {
                stop.signal();
                join(threads).await;
                return Err(e);
            }
        }
        drop(done_tx);

        let mut ticker = tokio::time::interval(TICK);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let res = loop {
            tokio::select! {
                biased;
                _ = &mut shutdown => break Ok(()),
                r = done_rx.recv() => break r.unwrap_or(Ok(())),
                _ = shared.handshake.notified() => {
                    let g = shared.lock();
                    publisher.publish(&stats, &g.engine, g.endpoint, shared.drops.load(Ordering::Relaxed));
                }
                _ = ticker.tick() => {
                    let mut g = shared.lock();
                    let ep = g.endpoint;
                    match g.engine.tick(&mut buf) {
                        Output::Network(d) => {
                            if let Some(ep) = ep {
                                if let Err(e) = send_one(&shared, d, ep) {
                                    break Err(e);
                                }
                            }
                        }
                        Output::Expired => tracing::info!("session expired; a new handshake starts with the next packet"),
                        _ => {}
                    }
                    publisher.publish(&stats, &g.engine, g.endpoint, shared.drops.load(Ordering::Relaxed));
                }
            }
        };
        stop.signal();
        join(threads).await;
        // The final figures: up to a tick of traffic is not published yet.
        {
            let g = shared.lock();
            publisher.publish(
                &stats,
                &g.engine,
                g.endpoint,
                shared.drops.load(Ordering::Relaxed),
            );
        }
        res
    }
}

async fn join(threads: Vec<std::thread::JoinHandle<()>>) {
    let _ = tokio::task::spawn_blocking(move || {
        for t in threads {
            let _ = t.join();
        }
    })
    .await;
}

/// Sends one datagram now (handshakes, keepalives); transient errors drop it.
fn send_one(sh: &Shared, d: &[u8], to: SocketAddr) -> Result<(), PeerError> {
    match sh.socket.send_to(d, to) {
        Ok(_) => Ok(()),
        Err(e) if transient_send_error(&e) => {
            tracing::debug!(error = %e, "UDP send dropped");
            sh.drops.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(PeerError::Socket(e)),
    }
}

fn transient_send_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(
            libc::ENETUNREACH
                | libc::EHOSTUNREACH
                | libc::ENOBUFS
                | libc::ECONNREFUSED
                | libc::EPERM
                | libc::EAGAIN
                | libc::EMSGSIZE
                | libc::EADDRNOTAVAIL
        )
    )
}

/// TUN → encrypt → UDP.
fn tx_loop(sh: &Shared, stop: &Stop, slot: usize, gso: bool) -> Result<(), PeerError> {
    let mut pkt = vec![0u8; MAX_DATAGRAM + VNET_HDR_LEN];
    let mut seg = vec![0u8; slot];
    let mut out = SendBatch::new(MAX_BATCH, slot, gso);
    let vnet = sh.tun.vnet();
    loop {
        if stop
            .wait(sh.tun.as_fd(), libc::POLLIN)
            .map_err(PeerError::Tun)?
            == Woken::Stop
        {
            return Ok(());
        }
        loop {
            let n = match sh.tun.read(&mut pkt) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(PeerError::Tun(e)),
            };
            if !vnet {
                encrypt(sh, &mut out, &pkt[..n])?;
                continue;
            }
            let Ok(hdr) = VnetHdr::parse(&pkt[..n]) else {
                continue;
            };
            let body = &mut pkt[VNET_HDR_LEN..n];
            if offload::is_gso(&hdr) {
                match TsoSegments::new(body, &hdr) {
                    Ok(mut segs) => {
                        while let Some(len) = segs.next_into(&mut seg) {
                            encrypt(sh, &mut out, &seg[..len])?;
                        }
                    }
                    Err(e) => {
                        tracing::debug!(error = %e, "TSO packet dropped");
                        sh.drops.fetch_add(1, Ordering::Relaxed);
                    }
                }
            } else if offload::complete_checksum(body, &hdr).is_ok() {
                encrypt(sh, &mut out, body)?;
            }
        }
        out.flush(sh.socket.as_fd()).map_err(PeerError::Socket)?;
        let dropped = std::mem::take(&mut out.dropped);
        if dropped > 0 {
            sh.drops.fetch_add(dropped, Ordering::Relaxed);
        }
    }
}

/// Encrypts one inside packet into the next slot of `out`, sending the batch when it is full
/// or the peer's endpoint changed.
fn encrypt(sh: &Shared, out: &mut SendBatch, packet: &[u8]) -> Result<(), PeerError> {
    let sock = sh.socket.as_fd();
    let mut g = sh.lock();
    let Some(ep) = g.endpoint else {
        // No peer address yet (we are the listening side): nowhere to send.
        return Ok(());
    };
    if out.dest().is_some_and(|d| d != ep) {
        out.flush(sock).map_err(PeerError::Socket)?;
    }
    let Some(dst) = out.slot() else {
        return Ok(());
    };
    let start = dst.as_ptr();
    let len = match g.engine.encapsulate(packet, dst) {
        Output::Network(d) if d.as_ptr() == start => Some(d.len()),
        _ => None,
    };
    drop(g);
    if let Some(len) = len {
        out.commit(len, ep);
        if out.is_full() {
            out.flush(sock).map_err(PeerError::Socket)?;
        }
    }
    Ok(())
}

/// UDP → decrypt → TUN.
fn rx_loop(sh: &Shared, stop: &Stop, gro: bool) -> Result<(), PeerError> {
    // With GRO one message holds up to 64 KiB of datagrams; fewer, larger messages then.
    let count = if gro { 16 } else { MAX_BATCH };
    let mut inb = RecvBatch::new(count, MAX_DATAGRAM);
    let mut plain = vec![0u8; BUF_SIZE];
    let mut gro = sh.tun.vnet().then(Coalescer::new);
    let sock = sh.socket.as_fd();
    loop {
        if stop.wait(sock, libc::POLLIN).map_err(PeerError::Socket)? == Woken::Stop {
            return Ok(());
        }
        loop {
            let n = match inb.recv(sock) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // ICMP errors for earlier sends surface here; they do not break the socket.
                Err(e) if transient_send_error(&e) => continue,
                Err(e) => return Err(PeerError::Socket(e)),
            };
            let mut failed = None;
            inb.for_each(|d, from| {
                if failed.is_none() {
                    if let Err(e) = on_datagram(sh, d, from, &mut plain, &mut gro) {
                        failed = Some(e);
                    }
                }
            });
            if let Some(e) = failed {
                return Err(e);
            }
            if let Some(c) = gro.as_mut() {
                c.flush(|h, p| write_tun_vnet(sh, h, p))?;
            }
            if n < inb.capacity() {
                break;
            }
        }
    }
}

fn on_datagram(
    sh: &Shared,
    d: &[u8],
    from: SocketAddr,
    plain: &mut [u8],
    gro: &mut Option<Coalescer>,
) -> Result<(), PeerError> {
    let is_handshake = matches!(d.first(), Some(1 | 2));
    let mut g = sh.lock();
    let accepted = match g.engine.decapsulate(from.ip(), d, plain) {
        Output::Inside(p) => {
            learn_endpoint(&mut g, from);
            drop(g);
            return match gro {
                Some(c) => c.push(p, |h, p| write_tun_vnet(sh, h, p)),
                None => tun_result(sh, sh.tun.write(p)),
            };
        }
        Output::Network(r) => {
            send_one(sh, r, from)?;
            while let Some(q) = g.engine.next_queued(plain) {
                send_one(sh, q, from)?;
            }
            true
        }
        Output::Nothing => true,
        Output::Dropped(_) | Output::Expired => false,
    };
    if accepted {
        learn_endpoint(&mut g, from);
    }
    drop(g);
    if accepted && is_handshake {
        sh.handshake.notify_one();
    }
    Ok(())
}

fn learn_endpoint(g: &mut Locked, from: SocketAddr) {
    if g.endpoint != Some(from) {
        tracing::debug!(endpoint = %from, "peer endpoint");
        g.endpoint = Some(from);
    }
}

fn write_tun_vnet(sh: &Shared, hdr: &[u8; VNET_HDR_LEN], p: &[u8]) -> Result<(), PeerError> {
    tun_result(sh, sh.tun.write_vnet(hdr, p))
}

/// A TUN write's result: refused packets are counted drops, a broken device is an error.
fn tun_result(sh: &Shared, r: io::Result<usize>) -> Result<(), PeerError> {
    match r {
        Ok(_) => Ok(()),
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::EAGAIN | libc::ENOBUFS | libc::EINVAL | libc::EIO | libc::ENOMEM)
            ) =>
        {
            tracing::trace!(error = %e, "TUN write dropped");
            sh.drops.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
        Err(e) => Err(PeerError::Tun(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_slots_fit_the_largest_encrypted_packet() {
        for mtu in [576u16, 1280, 1420, 1500, 9000, u16::MAX] {
            let s = send_slot(mtu);
            assert!(s >= usize::from(mtu) + OVERHEAD, "{mtu}");
            assert!(s >= 148);
            assert_eq!(s % 64, 0);
        }
    }
}
