//! The lab's view of its WireGuard exit node: per-session peers and their counters.
//!
//! Services add a peer when they hand out a config and read its byte counters and last
//! handshake for quotas and idle reaping. [`UdpOnlyExit`] only holds the UDP port (no data
//! plane); the real node from `ferry-tunnel` plugs in behind the same [`ExitPeers`] trait.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// Counters of one exit-node peer.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PeerStats {
    /// Bytes received from the client through the tunnel.
    pub rx_bytes: u64,
    /// Bytes sent to the client through the tunnel.
    pub tx_bytes: u64,
    /// Host time of the last completed WireGuard handshake.
    pub last_handshake: Option<SystemTime>,
}

/// What the services need from the exit node.
pub trait ExitPeers: Send + Sync {
    /// The UDP endpoint clients should put in `Endpoint =`.
    fn endpoint(&self) -> SocketAddr;
    /// The exit node's WireGuard public key.
    fn public_key(&self) -> [u8; 32];
    /// Accepts a client key, routing `tunnel_ip` to it.
    fn add_peer(&self, public_key: [u8; 32], tunnel_ip: IpAddr);
    /// Forgets a client key; its tunnel stops at once.
    fn remove_peer(&self, public_key: &[u8; 32]);
    /// Counters of a peer, if it is known.
    fn peer_stats(&self, public_key: &[u8; 32]) -> Option<PeerStats>;
}

/// An exit node that owns its UDP port and peer table but carries no traffic.
#[derive(Debug)]
pub struct UdpOnlyExit {
    endpoint: SocketAddr,
    public_key: [u8; 32],
    peers: Mutex<HashMap<[u8; 32], IpAddr>>,
    _socket: Arc<std::net::UdpSocket>,
}

impl UdpOnlyExit {
    /// Binds the UDP port at `addr` (port 0 picks one).
    pub fn bind(addr: SocketAddr, public_key: [u8; 32]) -> std::io::Result<Self> {
        let socket = std::net::UdpSocket::bind(addr)?;
        let endpoint = socket.local_addr()?;
        Ok(Self {
            endpoint,
            public_key,
            peers: Mutex::new(HashMap::new()),
            _socket: Arc::new(socket),
        })
    }
}

impl ExitPeers for UdpOnlyExit {
    fn endpoint(&self) -> SocketAddr {
        self.endpoint
    }
    fn public_key(&self) -> [u8; 32] {
        self.public_key
    }
    fn add_peer(&self, public_key: [u8; 32], tunnel_ip: IpAddr) {
        if let Ok(mut p) = self.peers.lock() {
            p.insert(public_key, tunnel_ip);
        }
    }
    fn remove_peer(&self, public_key: &[u8; 32]) {
        if let Ok(mut p) = self.peers.lock() {
            p.remove(public_key);
        }
    }
    fn peer_stats(&self, public_key: &[u8; 32]) -> Option<PeerStats> {
        let p = self.peers.lock().ok()?;
        p.contains_key(public_key).then(PeerStats::default)
    }
}

/// The DNS server clients put in `DNS =`: the exit node answers it inside the tunnel.
pub const TUNNEL_DNS: std::net::Ipv4Addr = ferry_tunnel::exit::TUNNEL_DNS_V4;

/// The real data plane: boringtun peers on the lab's UDP port relaying to the host.
impl ExitPeers for ferry_tunnel::exit::ExitNode {
    fn endpoint(&self) -> SocketAddr {
        self.local_addr()
    }
    fn public_key(&self) -> [u8; 32] {
        ferry_tunnel::exit::ExitNode::public_key(self).to_bytes()
    }
    fn add_peer(&self, public_key: [u8; 32], tunnel_ip: IpAddr) {
        ferry_tunnel::exit::ExitNode::add_peer(self, public_key.into(), tunnel_ip);
    }
    fn remove_peer(&self, public_key: &[u8; 32]) {
        ferry_tunnel::exit::ExitNode::remove_peer(self, &(*public_key).into());
    }
    fn peer_stats(&self, public_key: &[u8; 32]) -> Option<PeerStats> {
        let s = ferry_tunnel::exit::ExitNode::peer_stats(self, &(*public_key).into())?;
        Some(PeerStats {
            rx_bytes: s.rx_bytes,
            tx_bytes: s.tx_bytes,
            last_handshake: s.last_handshake,
        })
    }
}
