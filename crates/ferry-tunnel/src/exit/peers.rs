//! The exit node's peer table: one boringtun `Tunn` per peer, found by public key (handshake
//! initiations), by session index (every other message) or by tunnel IP (outgoing packets).

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::time::SystemTime;

use boringtun::noise::Tunn;
use boringtun::x25519::{PublicKey, StaticSecret};

/// Byte counters and handshake time of one peer, as seen by the exit node.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PeerStats {
    /// Bytes of IP packets received from the peer through the tunnel (the peer's upload).
    pub rx_bytes: u64,
    /// Bytes of IP packets sent to the peer through the tunnel (the peer's download).
    pub tx_bytes: u64,
    /// When the current (or last) session's handshake completed, if one ever did.
    pub last_handshake: Option<SystemTime>,
}

pub(crate) struct Peer {
    pub(crate) tunn: Tunn,
    pub(crate) tunnel_ip: IpAddr,
    pub(crate) endpoint: Option<SocketAddr>,
    pub(crate) rx_bytes: u64,
    pub(crate) tx_bytes: u64,
    last_handshake: Option<SystemTime>,
}

impl Peer {
    /// Refreshes the remembered handshake time from the tunnel's current session.
    pub(crate) fn note_handshake(&mut self) {
        if let (Some(age), _, _, _, _) = self.tunn.stats() {
            self.last_handshake = SystemTime::now().checked_sub(age);
        }
    }

    pub(crate) fn stats(&mut self) -> PeerStats {
        self.note_handshake();
        PeerStats {
            rx_bytes: self.rx_bytes,
            tx_bytes: self.tx_bytes,
            last_handshake: self.last_handshake,
        }
    }
}

/// Session indices are 24 bits: boringtun shifts them left by 8 for its own session counter.
const INDEX_MASK: u32 = 0x00ff_ffff;

#[derive(Default)]
pub(crate) struct PeerTable {
    by_index: HashMap<u32, Peer>,
    by_key: HashMap<[u8; 32], u32>,
    by_ip: HashMap<IpAddr, u32>,
    next_index: u32,
}

impl PeerTable {
    pub(crate) fn new() -> Self {
        Self {
            next_index: rand::random::<u32>() & INDEX_MASK,
            ..Self::default()
        }
    }

    /// Adds a peer, or updates the tunnel IP of a known one. A tunnel IP belongs to the peer
    /// added last.
    pub(crate) fn add(&mut self, private: &StaticSecret, key: PublicKey, tunnel_ip: IpAddr) {
        if let Some(&index) = self.by_key.get(key.as_bytes()) {
            if let Some(peer) = self.by_index.get_mut(&index) {
                if self.by_ip.get(&peer.tunnel_ip) == Some(&index) {
                    self.by_ip.remove(&peer.tunnel_ip);
                }
                peer.tunnel_ip = tunnel_ip;
            }
            self.by_ip.insert(tunnel_ip, index);
            return;
        }
        let mut index = self.next_index;
        while self.by_index.contains_key(&index) {
            index = (index + 1) & INDEX_MASK;
        }
        self.next_index = (index + 1) & INDEX_MASK;
        let tunn = Tunn::new(private.clone(), key, None, None, index, None);
        if let Some(old) = self.by_ip.insert(tunnel_ip, index) {
            tracing::warn!(%tunnel_ip, old_index = old, "tunnel IP reassigned to a new peer");
        }
        self.by_key.insert(*key.as_bytes(), index);
        self.by_index.insert(
            index,
            Peer {
                tunn,
                tunnel_ip,
                endpoint: None,
                rx_bytes: 0,
                tx_bytes: 0,
                last_handshake: None,
            },
        );
    }

    pub(crate) fn remove(&mut self, key: &PublicKey) {
        if let Some(index) = self.by_key.remove(key.as_bytes()) {
            if let Some(peer) = self.by_index.remove(&index) {
                if self.by_ip.get(&peer.tunnel_ip) == Some(&index) {
                    self.by_ip.remove(&peer.tunnel_ip);
                }
            }
        }
    }

    pub(crate) fn by_key_mut(&mut self, key: &[u8; 32]) -> Option<&mut Peer> {
        let index = self.by_key.get(key)?;
        self.by_index.get_mut(index)
    }

    /// The peer owning a receiver index from a handshake response, cookie or data message.
    pub(crate) fn by_receiver_mut(&mut self, receiver_idx: u32) -> Option<&mut Peer> {
        self.by_index.get_mut(&(receiver_idx >> 8))
    }

    pub(crate) fn by_ip_mut(&mut self, ip: &IpAddr) -> Option<&mut Peer> {
        let index = self.by_ip.get(ip)?;
        self.by_index.get_mut(index)
    }

    pub(crate) fn iter_mut(&mut self) -> impl Iterator<Item = &mut Peer> {
        self.by_index.values_mut()
    }

    pub(crate) fn len(&self) -> usize {
        self.by_index.len()
    }
}
