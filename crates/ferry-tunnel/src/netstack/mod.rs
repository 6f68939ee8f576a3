//! A userspace TCP/IP stack over a packet [pipe](crate::pipe), built on smoltcp.
//!
//! [`Netstack::start`] runs a smoltcp `Interface` (medium-ip) on a device fed from a
//! [`PipeEnd`]; one tokio task drives it, sleeping until a packet arrives, a socket handle asks for
//! work, or a smoltcp timer is due (no busy loop). Each TCP connection has a socket set (a
//! [lane](lanes)) of its own, so idle connections cost the busy ones nothing. [`TcpStream`] implements tokio's
//! `AsyncRead`/`AsyncWrite` directly on smoltcp's socket buffers (one copy each way), and
//! [`UdpSocket`] sends and receives datagrams.
//!
//! In any-IP mode ([`Netstack::start_any_ip`], used by the exit node) the stack terminates TCP and
//! UDP for every destination address: a new TCP SYN or UDP datagram to an endpoint nobody bound is
//! checked against a [`FlowPolicy`]; when allowed, a socket is created for exactly that endpoint and
//! handed out through [`Incoming`] (TCP as a [`PendingTcp`] whose SYN-ACK waits until the relay
//! has connected upstream). Refused flows never get a socket: the stack answers with a TCP RST or
//! an ICMP port unreachable.

mod any_ip;
mod device;
mod flow;
mod lanes;
mod relay;
mod tcp;
mod udp;

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::Bytes;
/// The address-with-prefix type of [`NetstackConfig::addrs`] (re-exported from `ipnet`).
pub use ipnet::IpNet;
use smoltcp::iface::{Config, Interface, PollResult};
use smoltcp::socket::tcp as stcp;
use smoltcp::time::Instant as SmolInstant;
use smoltcp::wire::{HardwareAddress, IpAddress, IpCidr};
use tokio::sync::{mpsc, Notify};
use tokio::task::JoinHandle;

use crate::pipe::PipeEnd;

pub use any_ip::{FlowPolicy, FlowProto, Incoming};
pub use relay::Relayed;
pub use tcp::{PendingTcp, TcpStream};
pub use udp::UdpSocket;

use any_ip::AnyIpState;
use device::PipeDevice;
use lanes::{LaneId, Lanes};

/// Errors of the userspace stack.
#[derive(Debug, thiserror::Error)]
pub enum NetstackError {
    /// The stack's task has stopped (shut down, or the pipe's other end went away).
    #[error("the userspace network stack has stopped")]
    Closed,
    /// The configuration cannot be used.
    #[error("invalid stack configuration: {0}")]
    Config(String),
    /// The stack has no address of the destination's family.
    #[error("no local address to reach {0}")]
    Unaddressable(SocketAddr),
    /// The remote refused or reset the connection.
    #[error("connection to {0} refused or reset")]
    Refused(SocketAddr),
    /// The connection was not established in time.
    #[error("connection to {0} timed out")]
    TimedOut(SocketAddr),
    /// A UDP port is already bound.
    #[error("address {0} is already bound")]
    AddrInUse(SocketAddr),
}

/// How to build a stack.
#[derive(Debug, Clone)]
pub struct NetstackConfig {
    /// The stack's own addresses (the tunnel addresses; at most two, e.g. one IPv4, one IPv6).
    pub addrs: Vec<IpNet>,
    /// Largest IP packet, in bytes (the tunnel MTU).
    pub mtu: usize,
    /// Receive and send buffer size of each TCP socket, in bytes.
    pub tcp_buffer: usize,
    /// How long a TCP connect may take.
    pub connect_timeout: Duration,
}

impl NetstackConfig {
    /// A configuration with the given addresses, MTU 1420 and 256 KiB TCP buffers.
    pub fn new(addrs: Vec<IpNet>) -> Self {
        Self {
            addrs,
            mtu: 1420,
            tcp_buffer: 256 * 1024,
            connect_timeout: Duration::from_secs(10),
        }
    }
}

/// Capacity of the any-IP hand-off channels.
const INCOMING_CAPACITY: usize = 256;
/// Packets taken from the pipe per lock of the stack.
const INGEST_BATCH: usize = 256;
/// Longest sleep while dropped sockets or any-IP listeners wait for a deadline.
const HOUSEKEEPING: Duration = Duration::from_secs(1);
/// How long a dropped TCP socket may linger while closing before it is aborted.
const ORPHAN_LINGER: Duration = Duration::from_secs(30);

/// State shared by the driver task and the socket handles.
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    /// Wakes the driver: a handle read, wrote, closed or created something.
    wake: Notify,
}

impl Shared {
    pub(crate) fn lock(&self) -> MutexGuard<'_, Inner> {
        // A poisoned lock only means another thread panicked mid-update; smoltcp state stays
        // memory-safe, so keep serving rather than cascading the panic.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn kick(&self) {
        self.wake.notify_one();
    }
}

/// The stack proper, behind the shared lock.
pub(crate) struct Inner {
    pub(crate) iface: Interface,
    pub(crate) lanes: Lanes,
    pub(crate) device: PipeDevice,
    pub(crate) tcp_buffer: usize,
    next_port: u16,
    /// Dropped TCP sockets still closing, with the time they are aborted.
    pub(crate) orphans: Vec<(LaneId, std::time::Instant)>,
    pub(crate) any_ip: Option<AnyIpState>,
    pub(crate) closed: bool,
    /// Sockets the driver has polled, in all (see [`Netstack::socket_visits`]).
    visits: u64,
}

/// Socket buffers at least this large come straight from the kernel (glibc `M_MMAP_THRESHOLD`).
const MMAP_THRESHOLD: usize = 128 * 1024;

/// Pins glibc's mmap threshold so every socket buffer is its own mapping: pages an idle
/// connection never touched cost nothing, and a closed connection's buffers go back to the
/// kernel at once. (By default glibc raises the threshold after the first such buffer is freed,
/// and later buffers come from the heap, zeroed by hand, touched in full and kept after free.)
fn pin_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        static ONCE: std::sync::Once = std::sync::Once::new();
        ONCE.call_once(|| {
            // SAFETY: mallopt only adjusts allocator parameters; any value is valid to pass.
            let ok =
                unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD as libc::c_int) };
            if ok != 1 {
                tracing::debug!("mallopt(M_MMAP_THRESHOLD) refused");
            }
        });
    }
}

/// A TCP socket with `buffer` bytes each way, Nagle off, CUBIC, keep-alive and a dead-peer timeout.
pub(crate) fn new_tcp_socket(buffer: usize) -> stcp::Socket<'static> {
    let mut socket = stcp::Socket::new(
        stcp::SocketBuffer::new(vec![0; buffer]),
        stcp::SocketBuffer::new(vec![0; buffer]),
    );
    socket.set_nagle_enabled(false);
    socket.set_congestion_control(stcp::CongestionControl::Cubic);
    socket.set_keep_alive(Some(smoltcp::time::Duration::from_secs(60)));
    socket.set_timeout(Some(smoltcp::time::Duration::from_secs(180)));
    socket
}

impl Inner {
    fn ephemeral_port(&mut self) -> u16 {
        let used: std::collections::HashSet<u16> = self
            .lanes
            .sockets()
            .filter_map(|s| match s {
                smoltcp::socket::Socket::Tcp(t) => t.local_endpoint().map(|e| e.port),
                smoltcp::socket::Socket::Udp(u) => Some(u.endpoint().port),
                #[allow(unreachable_patterns)]
                _ => None,
            })
            .collect();
        for _ in 0..16384 {
            let port = self.next_port;
            self.next_port = if self.next_port == u16::MAX {
                49152
            } else {
                self.next_port + 1
            };
            if !used.contains(&port) {
                return port;
            }
        }
        self.next_port
    }

    /// Drops a TCP socket whose handle went away: closes it gracefully (or aborts it when
    /// unread data would be lost) and removes it once closed.
    pub(crate) fn orphan_tcp(&mut self, lane: LaneId) {
        let Some(socket) = self.lanes.tcp(lane) else {
            return;
        };
        if socket.can_recv() {
            socket.abort();
        } else {
            socket.close();
        }
        self.orphans
            .push((lane, std::time::Instant::now() + ORPHAN_LINGER));
    }

    fn reap_orphans(&mut self) {
        let now = std::time::Instant::now();
        let mut i = 0;
        while i < self.orphans.len() {
            let (lane, deadline) = self.orphans[i];
            let done = self.lanes.tcp_ref(lane).is_none_or(|socket| {
                matches!(socket.state(), stcp::State::Closed | stcp::State::TimeWait)
            });
            if done || now >= deadline {
                // One still open at its deadline goes without a reset; the peer's timeout ends it.
                self.lanes.remove(lane);
                self.orphans.swap_remove(i);
            } else {
                i += 1;
            }
        }
    }

    fn stop(&mut self) {
        self.closed = true;
        for socket in self.lanes.sockets_mut_all() {
            match socket {
                smoltcp::socket::Socket::Tcp(t) => t.abort(),
                smoltcp::socket::Socket::Udp(u) => u.close(),
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }
}

/// A running userspace stack. Dropping it (or [`Netstack::shutdown`]) stops the driver task.
pub struct Netstack {
    shared: Arc<Shared>,
    task: JoinHandle<()>,
    connect_timeout: Duration,
}

impl std::fmt::Debug for Netstack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Netstack").finish_non_exhaustive()
    }
}

impl Netstack {
    /// Starts a stack with `config`'s addresses over `pipe` (must run inside a tokio runtime).
    pub fn start(pipe: PipeEnd, config: NetstackConfig) -> Result<Self, NetstackError> {
        Self::start_inner(pipe, config, None)
    }

    /// Starts a stack that terminates TCP and UDP for any destination address `policy` allows,
    /// handing new flows out through the returned [`Incoming`].
    pub fn start_any_ip(
        pipe: PipeEnd,
        config: NetstackConfig,
        policy: FlowPolicy,
    ) -> Result<(Self, Incoming), NetstackError> {
        let (tcp_tx, tcp_rx) = mpsc::channel(INCOMING_CAPACITY);
        let (udp_tx, udp_rx) = mpsc::channel(INCOMING_CAPACITY);
        let own = config.addrs.iter().map(ipnet::IpNet::addr).collect();
        let state = AnyIpState::new(policy, tcp_tx, udp_tx, own);
        let stack = Self::start_inner(pipe, config, Some(state))?;
        Ok((
            stack,
            Incoming {
                tcp: tcp_rx,
                udp: udp_rx,
            },
        ))
    }

    fn start_inner(
        pipe: PipeEnd,
        config: NetstackConfig,
        any_ip: Option<AnyIpState>,
    ) -> Result<Self, NetstackError> {
        if config.addrs.is_empty() || config.addrs.len() > 2 {
            return Err(NetstackError::Config(format!(
                "need one or two addresses, got {}",
                config.addrs.len()
            )));
        }
        if !(576..=65535).contains(&config.mtu) {
            return Err(NetstackError::Config(format!(
                "MTU {} out of range",
                config.mtu
            )));
        }
        pin_mmap_threshold();
        let mut device = PipeDevice::new(config.mtu);
        let mut iface_config = Config::new(HardwareAddress::Ip);
        iface_config.random_seed = rand::random();
        let mut iface = Interface::new(iface_config, &mut device, SmolInstant::now());
        let mut cidrs = Vec::new();
        for net in &config.addrs {
            let addr = IpAddress::from(net.addr());
            if addr.is_unspecified() || !addr.is_unicast() {
                return Err(NetstackError::Config(format!(
                    "{net} is not a unicast address"
                )));
            }
            cidrs.push(IpCidr::new(addr, net.prefix_len()));
        }
        iface.update_ip_addrs(|addrs| {
            for cidr in &cidrs {
                // Capacity is two and we checked the count above.
                let _ = addrs.push(*cidr);
            }
        });
        // Everything not on-link goes "via" our own address: on medium-ip the gateway is
        // irrelevant, but smoltcp only transmits to destinations it has a route for.
        for net in &config.addrs {
            let routed = match net.addr() {
                IpAddr::V4(v4) => iface.routes_mut().add_default_ipv4_route(v4).is_ok(),
                IpAddr::V6(v6) => iface.routes_mut().add_default_ipv6_route(v6).is_ok(),
            };
            if !routed {
                return Err(NetstackError::Config("route table full".into()));
            }
        }
        if any_ip.is_some() {
            iface.set_any_ip(true);
        }
        let shared = Arc::new(Shared {
            inner: Mutex::new(Inner {
                iface,
                lanes: Lanes::new(),
                device,
                tcp_buffer: config.tcp_buffer.max(4096),
                next_port: 49152 + rand::random::<u16>() % 16000,
                orphans: Vec::new(),
                any_ip,
                closed: false,
                visits: 0,
            }),
            wake: Notify::new(),
        });
        let task = tokio::spawn(drive(shared.clone(), pipe));
        Ok(Self {
            shared,
            task,
            connect_timeout: config.connect_timeout,
        })
    }

    /// Opens a TCP connection to `remote` and waits until it is established.
    pub async fn tcp_connect(&self, remote: SocketAddr) -> Result<TcpStream, NetstackError> {
        let (lane, local) = {
            let mut inner = self.shared.lock();
            if inner.closed {
                return Err(NetstackError::Closed);
            }
            let port = inner.ephemeral_port();
            let socket = new_tcp_socket(inner.tcp_buffer);
            let Inner { iface, lanes, .. } = &mut *inner;
            let lane = lanes.add_tcp(socket, None);
            let Some(socket) = lanes.tcp(lane) else {
                return Err(NetstackError::Closed);
            };
            if socket.connect(iface.context(), remote, port).is_err() {
                lanes.remove(lane);
                return Err(NetstackError::Unaddressable(remote));
            }
            let local = socket
                .local_endpoint()
                .map(endpoint_to_socket_addr)
                .unwrap_or_else(|| SocketAddr::new(remote.ip(), port));
            lanes.set_key(lane, (remote, local));
            (lane, local)
        };
        self.shared.kick();
        let stream = TcpStream::new(self.shared.clone(), lane, local, remote);
        match tokio::time::timeout(self.connect_timeout, stream.established()).await {
            Ok(Ok(())) => Ok(stream),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(NetstackError::TimedOut(remote)),
        }
    }

    /// Binds a UDP socket to `local` (port 0 picks an ephemeral port; an unspecified address
    /// accepts datagrams to any of the stack's addresses).
    pub fn udp_bind(&self, local: SocketAddr) -> Result<UdpSocket, NetstackError> {
        let mut inner = self.shared.lock();
        if inner.closed {
            return Err(NetstackError::Closed);
        }
        let port = if local.port() == 0 {
            inner.ephemeral_port()
        } else {
            local.port()
        };
        let local = SocketAddr::new(local.ip(), port);
        udp::bind(&self.shared, &mut inner, local)
    }

    /// How many sockets (TCP, closing ones included, and UDP) the stack holds right now.
    pub fn socket_count(&self) -> usize {
        self.shared.lock().lanes.sockets().count()
    }

    /// How many times, in all, the driver has polled a socket for output. Idle connections add
    /// nothing to it: only sockets with work are polled.
    pub fn socket_visits(&self) -> u64 {
        self.shared.lock().visits
    }

    /// Stops the driver task; open sockets see end-of-stream or errors.
    pub fn shutdown(&self) {
        self.shared.lock().stop();
        self.task.abort();
    }
}

impl Drop for Netstack {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub(crate) fn endpoint_to_socket_addr(endpoint: smoltcp::wire::IpEndpoint) -> SocketAddr {
    SocketAddr::new(endpoint.addr.into(), endpoint.port)
}

/// The driver: feeds each packet from the pipe to its lane, polls the lanes that have work,
/// sends what they produced, and sleeps until the next event or smoltcp timer.
async fn drive(shared: Arc<Shared>, pipe: PipeEnd) {
    let PipeEnd { tx, mut rx } = pipe;
    let mut outbox: VecDeque<Bytes> = VecDeque::new();
    let mut work: Vec<LaneId> = Vec::new();
    loop {
        let delay = {
            let mut guard = shared.lock();
            let inner = &mut *guard;
            if inner.closed {
                break;
            }
            let now = SmolInstant::now();
            inner.iface.poll_maintenance(now);
            work.clear();
            inner.lanes.take_work(now, &mut work);
            for &lane in &work {
                poll_lane(inner, lane, now);
            }
            if let Some(any) = inner.any_ip.as_mut() {
                any.after_poll(&shared, &mut inner.lanes);
            }
            if !inner.orphans.is_empty() {
                inner.reap_orphans();
            }
            outbox.append(&mut inner.device.tx);
            let delay = if inner.lanes.has_dirty() {
                Some(Duration::ZERO)
            } else {
                inner.lanes.next_deadline().map(|at| {
                    if at > now {
                        Duration::from_micros((at - now).total_micros())
                    } else {
                        Duration::ZERO
                    }
                })
            };
            // Dropped sockets and any-IP listeners have deadlines of their own that smoltcp
            // does not know about: look again at least once a second while any are waiting.
            let waiting =
                !inner.orphans.is_empty() || inner.any_ip.as_ref().is_some_and(|a| a.has_waiting());
            if waiting {
                Some(delay.map_or(HOUSEKEEPING, |d| d.min(HOUSEKEEPING)))
            } else {
                delay
            }
        };
        // Hand packets to the peer loop without ever blocking on a full pipe: what does not fit
        // waits for `reserve` below while we keep receiving.
        while let Some(packet) = outbox.pop_front() {
            match tx.try_send(packet) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(packet)) => {
                    outbox.push_front(packet);
                    break;
                }
                Err(mpsc::error::TrySendError::Closed(_)) => {
                    shared.lock().stop();
                    return;
                }
            }
        }
        let sleep = async {
            match delay {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            received = rx.recv() => {
                let Some(first) = received else { break };
                let mut guard = shared.lock();
                let inner = &mut *guard;
                let now = SmolInstant::now();
                ingest(&shared, inner, first, now);
                for _ in 1..INGEST_BATCH {
                    match rx.try_recv() {
                        Ok(packet) => ingest(&shared, inner, packet, now),
                        Err(_) => break,
                    }
                }
            }
            permit = tx.reserve(), if !outbox.is_empty() => {
                match permit {
                    Ok(permit) => {
                        if let Some(packet) = outbox.pop_front() {
                            permit.send(packet);
                        }
                    }
                    Err(_) => break,
                }
            }
            () = shared.wake.notified() => {}
            () = sleep => {}
        }
    }
    shared.lock().stop();
    tracing::debug!("userspace stack stopped");
}

/// Sends what lane `lane` has to send and asks smoltcp when it wants the lane again.
fn poll_lane(inner: &mut Inner, lane: LaneId, now: SmolInstant) {
    let Inner {
        iface,
        lanes,
        device,
        visits,
        ..
    } = inner;
    let Some(sockets) = lanes.sockets_mut(lane) else {
        return;
    };
    *visits += sockets.iter().count() as u64;
    while iface.poll_egress(now, device, sockets) == PollResult::SocketStateChanged {}
    let at = iface.poll_at(now, sockets);
    lanes.schedule(lane, at);
}

/// Hands one received packet to the interface with its lane's sockets.
fn ingest(shared: &Arc<Shared>, inner: &mut Inner, packet: Bytes, now: SmolInstant) {
    if let Some(any) = inner.any_ip.as_mut() {
        if !any.admit(shared, &packet, &mut inner.lanes, inner.tcp_buffer) {
            return;
        }
    }
    let lane = inner.lanes.route(&packet);
    inner.lanes.mark(lane);
    let Inner {
        iface,
        lanes,
        device,
        ..
    } = inner;
    let Some(sockets) = lanes.sockets_mut(lane) else {
        return;
    };
    device.rx.push_back(packet);
    iface.poll_ingress_single(now, device, sockets);
    // The interface takes the packet it is offered; never let one wait for another lane.
    device.rx.clear();
}

#[cfg(test)]
mod tests;
