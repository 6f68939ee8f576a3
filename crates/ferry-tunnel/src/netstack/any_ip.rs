//! Any-IP mode: sockets created on demand for each new flow's destination, behind a policy.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smoltcp::iface::SocketHandle;
use smoltcp::socket::tcp as stcp;
use smoltcp::wire::{IpListenEndpoint, IpProtocol};
use tokio::sync::mpsc;

use super::flow::parse;
use super::lanes::{LaneId, Lanes};
use super::{endpoint_to_socket_addr, new_tcp_socket, udp, PendingTcp, Shared, UdpSocket};

/// Transport protocol of a new flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowProto {
    /// A TCP connection (its first SYN).
    Tcp,
    /// A UDP datagram to an endpoint with no socket yet.
    Udp,
    /// An ICMP or ICMPv6 echo request (port 0) to a loopback address: the stack answers it
    /// itself when the policy allows the destination (see [`AnyIpState::admit`]).
    Icmp,
}

/// Decides whether a new flow to a destination may be terminated and relayed. It runs inside
/// the stack's lock: keep it cheap and never block.
pub type FlowPolicy = Arc<dyn Fn(FlowProto, SocketAddr) -> bool + Send + Sync>;

/// New flows of an any-IP stack.
#[derive(Debug)]
pub struct Incoming {
    /// TCP connections whose SYN arrived; accept or reject each.
    pub tcp: mpsc::Receiver<PendingTcp>,
    /// UDP sockets bound to a destination endpoint that just received its first datagram.
    pub udp: mpsc::Receiver<UdpSocket>,
}

/// How long a listener created for a SYN may wait for it before it is dropped.
const LISTENER_WAIT: Duration = Duration::from_secs(10);
/// Most TCP flows (each holds two socket buffers) an any-IP stack keeps at once; SYNs beyond
/// are answered with a reset.
const MAX_TCP_FLOWS: usize = 2048;
/// Most connections waiting for their relay to decide.
const MAX_PENDING_TCP: usize = 256;
/// Most UDP destination endpoints with a socket at once.
const MAX_UDP_BINDS: usize = 1024;

pub(crate) struct AnyIpState {
    policy: FlowPolicy,
    tcp_tx: mpsc::Sender<PendingTcp>,
    udp_tx: mpsc::Sender<UdpSocket>,
    /// Lanes of connections whose SYN is expected, with when each was made.
    listeners: Vec<(LaneId, Instant)>,
    pub(crate) udp_binds: HashMap<SocketAddr, SocketHandle>,
    /// The stack's own addresses: echo requests to them are always answered.
    own: Vec<IpAddr>,
}

impl AnyIpState {
    pub(crate) fn new(
        policy: FlowPolicy,
        tcp_tx: mpsc::Sender<PendingTcp>,
        udp_tx: mpsc::Sender<UdpSocket>,
        own: Vec<IpAddr>,
    ) -> Self {
        Self {
            own,
            policy,
            tcp_tx,
            udp_tx,
            listeners: Vec::new(),
            udp_binds: HashMap::new(),
        }
    }

    /// Whether listeners wait for their SYN (they expire on a deadline).
    pub(crate) fn has_waiting(&self) -> bool {
        !self.listeners.is_empty()
    }

    /// Whether an echo request to `dst` is answered (by smoltcp's automatic echo reply, which
    /// in any-IP mode would otherwise answer every address): the stack's own addresses always,
    /// loopback addresses when the policy allows them (they are this host, which is up), and
    /// nothing else: the stack relays no ICMP, and answering for a remote host it never asked
    /// would hide a dead destination.
    fn answers_echo(&self, dst: SocketAddr) -> bool {
        self.own.contains(&dst.ip())
            || (dst.ip().is_loopback() && (self.policy)(FlowProto::Icmp, dst))
    }

    /// Looks at a packet before the interface does; creates a socket for a new allowed flow.
    /// Returns whether the packet goes on to the interface.
    pub(crate) fn admit(
        &mut self,
        shared: &Arc<Shared>,
        packet: &[u8],
        lanes: &mut Lanes,
        tcp_buffer: usize,
    ) -> bool {
        let Some(flow) = parse(packet) else {
            return true;
        };
        if flow.echo {
            return self.answers_echo(flow.dst);
        }
        if flow.dst.port() == 0 || flow.src.port() == 0 {
            return false;
        }
        match flow.proto {
            IpProtocol::Tcp if flow.syn => {
                let key = (flow.src, flow.dst);
                if lanes.has_flow(&key) {
                    // A retransmitted SYN.
                    return true;
                }
                if lanes.tcp_count() >= MAX_TCP_FLOWS || self.listeners.len() >= MAX_PENDING_TCP {
                    tracing::debug!(dst = %flow.dst, "too many TCP flows; resetting");
                    return true;
                }
                if !(self.policy)(FlowProto::Tcp, flow.dst) {
                    // Refused: with no socket, the interface answers with a reset.
                    return true;
                }
                let mut socket = new_tcp_socket(tcp_buffer);
                socket.pause_synack(true);
                let endpoint = IpListenEndpoint {
                    addr: Some(flow.dst.ip().into()),
                    port: flow.dst.port(),
                };
                if socket.listen(endpoint).is_err() {
                    return true;
                }
                let lane = lanes.add_tcp(socket, Some(key));
                self.listeners.push((lane, Instant::now()));
                true
            }
            IpProtocol::Udp => {
                let wildcard = SocketAddr::new(
                    match flow.dst {
                        SocketAddr::V4(_) => IpAddr::from([0u8; 4]),
                        SocketAddr::V6(_) => IpAddr::from([0u16; 8]),
                    },
                    flow.dst.port(),
                );
                if self.udp_binds.contains_key(&flow.dst) || self.udp_binds.contains_key(&wildcard)
                {
                    return true;
                }
                if self.udp_binds.len() >= MAX_UDP_BINDS {
                    tracing::debug!(dst = %flow.dst, "too many UDP endpoints; dropping");
                    return false;
                }
                if !(self.policy)(FlowProto::Udp, flow.dst) {
                    return true;
                }
                let sockets = lanes.default_sockets();
                match udp::bind_parts(shared, sockets, Some(&mut self.udp_binds), flow.dst) {
                    Ok(socket) => {
                        if let Err(e) = self.udp_tx.try_send(socket) {
                            let socket = match e {
                                mpsc::error::TrySendError::Full(s)
                                | mpsc::error::TrySendError::Closed(s) => s,
                            };
                            let handle = socket.disarm();
                            sockets.remove(handle);
                            self.udp_binds.remove(&flow.dst);
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "no UDP socket for new flow"),
                }
                true
            }
            _ => true,
        }
    }

    /// Hands out listeners that received their SYN; drops those that waited too long.
    pub(crate) fn after_poll(&mut self, shared: &Arc<Shared>, lanes: &mut Lanes) {
        if self.listeners.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut i = 0;
        while i < self.listeners.len() {
            let (lane, created) = self.listeners[i];
            let Some(socket) = lanes.tcp_ref(lane) else {
                self.listeners.swap_remove(i);
                continue;
            };
            match socket.state() {
                stcp::State::Listen if now.duration_since(created) < LISTENER_WAIT => {
                    i += 1;
                    continue;
                }
                stcp::State::SynReceived => {
                    let (Some(remote), Some(local)) =
                        (socket.remote_endpoint(), socket.local_endpoint())
                    else {
                        i += 1;
                        continue;
                    };
                    let key = (
                        endpoint_to_socket_addr(remote),
                        endpoint_to_socket_addr(local),
                    );
                    // Key by what the socket actually holds (the same flow it was made for).
                    lanes.set_key(lane, key);
                    let pending = PendingTcp::new(shared.clone(), lane, key.1, key.0);
                    if let Err(e) = self.tcp_tx.try_send(pending) {
                        let pending = match e {
                            mpsc::error::TrySendError::Full(p)
                            | mpsc::error::TrySendError::Closed(p) => p,
                        };
                        lanes.remove(pending.disarm());
                    }
                }
                _ => {
                    lanes.remove(lane);
                }
            }
            self.listeners.swap_remove(i);
        }
    }
}
