//! The lab's WireGuard exit node: boringtun peers on one UDP socket, whose decrypted traffic is
//! terminated by an any-IP userspace stack and relayed to the host.
//!
//! - One UDP socket serves every peer. A handshake initiation is matched to a peer by the public
//!   key it carries (`parse_handshake_anon`); every later message by its receiver index; outgoing
//!   packets by the destination tunnel IP. Timers run every 250 ms.
//! - A peer may only send from its own tunnel IP; anything else is dropped.
//! - Decrypted packets go through a [pipe](crate::pipe) into a [`Netstack`] in any-IP mode: TCP
//!   and UDP to any destination are terminated there and relayed to the real destination on the
//!   host, subject to the [`Egress`] policy. A refused flow never reaches a host socket: the stack
//!   answers with a TCP reset or an ICMP port unreachable.
//! - The node answers DNS itself at [`TUNNEL_DNS_V4`] / [`TUNNEL_DNS_V6`] port 53 (see `dns`).
//! - It answers ICMP echo (ping) to those two addresses and to loopback destinations the egress
//!   policy allows (they are this host). Other destinations get no reply: ICMP is not relayed,
//!   and a reply made up by the node would hide a dead destination.
//! - [`PeerStats`] counts the bytes of IP packets through the tunnel (plaintext, excluding
//!   WireGuard overhead and keepalives), received from (`rx`) and sent to (`tx`) each peer.

mod dns;
mod net;
mod peers;
mod relay;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use boringtun::x25519::{PublicKey, StaticSecret};
use tokio::task::JoinHandle;

use crate::netstack::{FlowPolicy, Netstack, NetstackConfig, NetstackError};
use crate::pipe::pipe;

pub use peers::PeerStats;

use peers::PeerTable;

/// The DNS server address the exit node answers inside the tunnel (IPv4). Client configs put it
/// in `DNS =`; client tunnel addresses must not use it.
pub const TUNNEL_DNS_V4: Ipv4Addr = Ipv4Addr::new(10, 64, 0, 1);
/// The DNS server address the exit node answers inside the tunnel (IPv6).
pub const TUNNEL_DNS_V6: Ipv6Addr = Ipv6Addr::new(0xfd00, 0x64, 0, 0, 0, 0, 0, 1);

/// Where decrypted traffic may go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Egress {
    /// Only loopback destinations (127.0.0.0/8 and ::1); what tests use.
    Loopback,
    /// Any unicast destination.
    Any,
}

impl Egress {
    /// Whether a flow to `ip` may leave the exit node.
    pub fn allows(self, ip: IpAddr) -> bool {
        if ip.is_unspecified() || ip.is_multicast() {
            return false;
        }
        match self {
            Egress::Loopback => ip.is_loopback(),
            Egress::Any => match ip {
                IpAddr::V4(v4) => !v4.is_broadcast(),
                IpAddr::V6(_) => true,
            },
        }
    }
}

impl FromStr for Egress {
    type Err = ExitError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "loopback" => Ok(Egress::Loopback),
            "any" => Ok(Egress::Any),
            other => Err(ExitError::BadEgress(other.to_string())),
        }
    }
}

/// Errors of the exit node.
#[derive(Debug, thiserror::Error)]
pub enum ExitError {
    /// The UDP socket could not be bound.
    #[error("cannot bind the exit node's UDP socket on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The userspace stack could not start.
    #[error("exit node stack: {0}")]
    Stack(#[from] NetstackError),
    /// An egress policy name other than `loopback` or `any`.
    #[error("unknown egress policy {0:?} (expected loopback or any)")]
    BadEgress(String),
}

/// Packets queued between the WireGuard side and the stack, each way.
const PIPE_CAPACITY: usize = 4096;

/// A running exit node. Dropping it (or [`ExitNode::shutdown`]) stops it.
pub struct ExitNode {
    local_addr: SocketAddr,
    public_key: PublicKey,
    private_key: StaticSecret,
    peers: Arc<Mutex<PeerTable>>,
    refused: Arc<AtomicU64>,
    stack: Netstack,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for ExitNode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExitNode")
            .field("local_addr", &self.local_addr)
            .finish_non_exhaustive()
    }
}

pub(crate) fn lock_peers(peers: &Mutex<PeerTable>) -> std::sync::MutexGuard<'_, PeerTable> {
    peers.lock().unwrap_or_else(|e| e.into_inner())
}

impl ExitNode {
    /// Binds the UDP socket on `listen` (port 0 picks one) and starts serving with
    /// `private_key`, relaying decrypted traffic as `egress` allows.
    pub async fn bind(
        listen: SocketAddr,
        private_key: StaticSecret,
        egress: Egress,
    ) -> Result<ExitNode, ExitError> {
        let socket = tokio::net::UdpSocket::bind(listen)
            .await
            .map_err(|source| ExitError::Bind {
                addr: listen,
                source,
            })?;
        let local_addr = socket.local_addr().map_err(|source| ExitError::Bind {
            addr: listen,
            source,
        })?;
        let public_key = PublicKey::from(&private_key);
        let (wg_end, stack_end) = pipe(PIPE_CAPACITY);
        let refused = Arc::new(AtomicU64::new(0));
        let counter = refused.clone();
        let own: [IpAddr; 2] = [TUNNEL_DNS_V4.into(), TUNNEL_DNS_V6.into()];
        let policy: FlowPolicy = Arc::new(move |_proto, dst: SocketAddr| {
            let allowed = !own.contains(&dst.ip()) && egress.allows(dst.ip());
            if !allowed {
                counter.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(%dst, ?egress, "exit node refused a flow");
            }
            allowed
        });
        let config = NetstackConfig::new(vec![
            ipnet::IpNet::new(TUNNEL_DNS_V4.into(), 32)
                .map_err(|e| ExitError::Stack(NetstackError::Config(e.to_string())))?,
            ipnet::IpNet::new(TUNNEL_DNS_V6.into(), 128)
                .map_err(|e| ExitError::Stack(NetstackError::Config(e.to_string())))?,
        ]);
        let (stack, incoming) = Netstack::start_any_ip(stack_end, config, policy)?;
        let dns_v4 = stack.udp_bind(SocketAddr::new(TUNNEL_DNS_V4.into(), 53))?;
        let dns_v6 = stack.udp_bind(SocketAddr::new(TUNNEL_DNS_V6.into(), 53))?;
        let peers = Arc::new(Mutex::new(PeerTable::new()));
        let tasks = vec![
            tokio::spawn(net::run(
                socket,
                private_key.clone(),
                public_key,
                peers.clone(),
                wg_end,
            )),
            tokio::spawn(relay::tcp_acceptor(incoming.tcp, egress)),
            tokio::spawn(relay::udp_acceptor(incoming.udp, egress)),
            tokio::spawn(dns::serve(dns_v4, egress)),
            tokio::spawn(dns::serve(dns_v6, egress)),
        ];
        tracing::info!(%local_addr, ?egress, "exit node listening");
        Ok(ExitNode {
            local_addr,
            public_key,
            private_key,
            peers,
            refused,
            stack,
            tasks: Mutex::new(tasks),
        })
    }

    /// The UDP address peers send to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The exit node's WireGuard public key.
    pub fn public_key(&self) -> PublicKey {
        self.public_key
    }

    /// Accepts `public_key` as a peer whose tunnel address is `tunnel_ip` (updates the address
    /// of a known peer; a tunnel IP belongs to the peer added last).
    pub fn add_peer(&self, public_key: PublicKey, tunnel_ip: IpAddr) {
        lock_peers(&self.peers).add(&self.private_key, public_key, tunnel_ip);
    }

    /// Forgets a peer: its sessions end at once.
    pub fn remove_peer(&self, public_key: &PublicKey) {
        lock_peers(&self.peers).remove(public_key);
    }

    /// Byte counters and last handshake of a peer, if it is known.
    pub fn peer_stats(&self, public_key: &PublicKey) -> Option<PeerStats> {
        lock_peers(&self.peers)
            .by_key_mut(public_key.as_bytes())
            .map(|p| p.stats())
    }

    /// Number of known peers.
    pub fn peer_count(&self) -> usize {
        lock_peers(&self.peers).len()
    }

    /// How many new flows the egress policy refused so far.
    pub fn refused_flows(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Stops serving: the UDP socket closes and relayed connections end.
    pub fn shutdown(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            task.abort();
        }
        self.stack.shutdown();
    }
}

impl Drop for ExitNode {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_egress_refuses_everything_else() {
        let allowed = ["127.0.0.1", "127.1.2.3", "::1"];
        let refused = [
            "192.0.2.1",
            "10.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "8.8.8.8",
            "fd00::1",
        ];
        for ip in allowed {
            assert!(Egress::Loopback.allows(ip.parse().unwrap()), "{ip}");
        }
        for ip in refused {
            assert!(!Egress::Loopback.allows(ip.parse().unwrap()), "{ip}");
        }
        assert!(Egress::Any.allows("192.0.2.1".parse().unwrap()));
        assert!(!Egress::Any.allows("255.255.255.255".parse().unwrap()));
        assert!(!Egress::Any.allows("::".parse().unwrap()));
    }

    #[test]
    fn egress_parses() {
        assert_eq!("loopback".parse::<Egress>().unwrap(), Egress::Loopback);
        assert_eq!("any".parse::<Egress>().unwrap(), Egress::Any);
        assert!(matches!(
            "all".parse::<Egress>(),
            Err(ExitError::BadEgress(_))
        ));
    }
}
