//! Any-IP mode: sockets created on demand for each new flow's destination, behind a policy.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::tcp as stcp;
use smoltcp::wire::{IpListenEndpoint, IpProtocol, Ipv4Packet, Ipv6Packet, TcpPacket, UdpPacket};
use tokio::sync::mpsc;

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

/// A flow key: (remote endpoint, local endpoint) as seen by the stack.
type FlowKey = (SocketAddr, SocketAddr);

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
    tcp_flows: HashMap<FlowKey, SocketHandle>,
    tcp_keys: HashMap<SocketHandle, FlowKey>,
    listeners: Vec<(SocketHandle, Instant)>,
    pub(crate) udp_binds: HashMap<SocketAddr, SocketHandle>,
    /// The stack's own addresses: echo requests to them are always answered.
    own: Vec<IpAddr>,
}

/// What `parse` found in an IP packet.
struct Flow {
    proto: IpProtocol,
    src: SocketAddr,
    dst: SocketAddr,
    /// A TCP SYN without ACK: the start of a connection.
    syn: bool,
    /// An ICMP(v6) echo request (ports are 0).
    echo: bool,
}

/// IPv6's Fragment extension header.
const IPV6_FRAGMENT: u8 = 44;

fn parse(packet: &[u8]) -> Option<Flow> {
    // A datagram larger than the MTU arrives in fragments, reassembled by the interface: its
    // flow is known from the first fragment (offset 0), which carries the transport header;
    // the later ones go straight on.
    let (src_ip, dst_ip, proto, payload, first_fragment): (
        IpAddr,
        IpAddr,
        IpProtocol,
        &[u8],
        bool,
    ) = match packet.first()? >> 4 {
        4 => {
            let ip = Ipv4Packet::new_checked(packet).ok()?;
            if ip.frag_offset() != 0 {
                return None;
            }
            let header = usize::from(ip.header_len());
            let total = usize::from(ip.total_len()).min(packet.len());
            (
                ip.src_addr().into(),
                ip.dst_addr().into(),
                ip.next_header(),
                packet.get(header..total)?,
                ip.more_frags(),
            )
        }
        6 => {
            let ip = Ipv6Packet::new_checked(packet).ok()?;
            let payload = packet.get(40..40 + usize::from(ip.payload_len()))?;
            if u8::from(ip.next_header()) == IPV6_FRAGMENT {
                // next header (1), reserved (1), offset (13 bits) + flags, id (4).
                let offset = u16::from_be_bytes([*payload.get(2)?, *payload.get(3)?]) >> 3;
                if offset != 0 {
                    return None;
                }
                (
                    ip.src_addr().into(),
                    ip.dst_addr().into(),
                    IpProtocol::from(*payload.first()?),
                    payload.get(8..)?,
                    true,
                )
            } else {
                (
                    ip.src_addr().into(),
                    ip.dst_addr().into(),
                    ip.next_header(),
                    payload,
                    false,
                )
            }
        }
        _ => return None,
    };
    if first_fragment {
        // Only the ports are whole in a first fragment (the lengths and checksums cover the
        // reassembled datagram).
        let port = |i: usize| Some(u16::from_be_bytes([*payload.get(i)?, *payload.get(i + 1)?]));
        return match proto {
            IpProtocol::Udp | IpProtocol::Tcp => Some(Flow {
                proto,
                src: SocketAddr::new(src_ip, port(0)?),
                dst: SocketAddr::new(dst_ip, port(2)?),
                syn: proto == IpProtocol::Tcp && payload.get(13).is_some_and(|f| f & 0x12 == 0x02),
                echo: false,
            }),
            _ => None,
        };
    }
    match proto {
        IpProtocol::Tcp => {
            let tcp = TcpPacket::new_checked(payload).ok()?;
            Some(Flow {
                proto,
                src: SocketAddr::new(src_ip, tcp.src_port()),
                dst: SocketAddr::new(dst_ip, tcp.dst_port()),
                syn: tcp.syn() && !tcp.ack(),
                echo: false,
            })
        }
        IpProtocol::Udp => {
            let udp = UdpPacket::new_checked(payload).ok()?;
            Some(Flow {
                proto,
                src: SocketAddr::new(src_ip, udp.src_port()),
                dst: SocketAddr::new(dst_ip, udp.dst_port()),
                syn: false,
                echo: false,
            })
        }
        // Echo request: type 8 (ICMP) or 128 (ICMPv6); smoltcp checks the rest.
        IpProtocol::Icmp | IpProtocol::Icmpv6 => {
            let request = if proto == IpProtocol::Icmp { 8 } else { 128 };
            (payload.first() == Some(&request)).then(|| Flow {
                proto,
                src: SocketAddr::new(src_ip, 0),
                dst: SocketAddr::new(dst_ip, 0),
                syn: false,
                echo: true,
            })
        }
        _ => None,
    }
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
            tcp_flows: HashMap::new(),
            tcp_keys: HashMap::new(),
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
        sockets: &mut SocketSet<'static>,
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
                if self.tcp_flows.contains_key(&key) {
                    // A retransmitted SYN.
                    return true;
                }
                if self.tcp_keys.len() >= MAX_TCP_FLOWS || self.listeners.len() >= MAX_PENDING_TCP {
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
                let handle = sockets.add(socket);
                self.tcp_flows.insert(key, handle);
                self.tcp_keys.insert(handle, key);
                self.listeners.push((handle, Instant::now()));
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
    pub(crate) fn after_poll(&mut self, shared: &Arc<Shared>, sockets: &mut SocketSet<'static>) {
        if self.listeners.is_empty() {
            return;
        }
        let now = Instant::now();
        let mut i = 0;
        while i < self.listeners.len() {
            let (handle, created) = self.listeners[i];
            let socket = sockets.get_mut::<stcp::Socket>(handle);
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
                    // Identical listeners may have picked up each other's SYN: key by what
                    // the socket actually holds.
                    if let Some(old) = self.tcp_keys.insert(handle, key) {
                        if self.tcp_flows.get(&old) == Some(&handle) {
                            self.tcp_flows.remove(&old);
                        }
                    }
                    self.tcp_flows.insert(key, handle);
                    let pending = PendingTcp::new(shared.clone(), handle, key.1, key.0);
                    if let Err(e) = self.tcp_tx.try_send(pending) {
                        let pending = match e {
                            mpsc::error::TrySendError::Full(p)
                            | mpsc::error::TrySendError::Closed(p) => p,
                        };
                        let handle = pending.disarm();
                        self.drop_tcp(sockets, handle);
                    }
                }
                _ => {
                    self.drop_tcp(sockets, handle);
                }
            }
            self.listeners.swap_remove(i);
        }
    }

    fn drop_tcp(&mut self, sockets: &mut SocketSet<'static>, handle: SocketHandle) {
        sockets.get_mut::<stcp::Socket>(handle).abort();
        sockets.remove(handle);
        self.forget_tcp(handle);
    }

    /// Forgets a removed TCP socket's flow.
    pub(crate) fn forget_tcp(&mut self, handle: SocketHandle) {
        if let Some(key) = self.tcp_keys.remove(&handle) {
            if self.tcp_flows.get(&key) == Some(&handle) {
                self.tcp_flows.remove(&key);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn a_first_fragment_names_its_flow_and_later_ones_pass() {
        // IPv6: Fragment header (offset 0, more fragments) then the UDP header.
        let mut p = vec![0x60, 0, 0, 0, 0, 16, IPV6_FRAGMENT, 64];
        p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
        p.extend_from_slice(&[0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
        p.extend_from_slice(&[17, 0, 0, 1, 0, 0, 0, 7]);
        p.extend_from_slice(&[0x03, 0xe8, 0, 53, 0x1f, 0x40, 0, 0]);
        let f = parse(&p).unwrap();
        assert_eq!(f.proto, IpProtocol::Udp);
        assert_eq!((f.src.port(), f.dst.port()), (1000, 53));
        // A later fragment (offset 1448 / 8 = 181): no flow of its own.
        p[42..44].copy_from_slice(&((181u16 << 3) | 1).to_be_bytes());
        assert!(parse(&p).is_none());
    }

    proptest! {
        #[test]
        fn parse_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = parse(&bytes);
        }
    }
}
