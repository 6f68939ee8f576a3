//! The WireGuard state machine for one peer, without I/O: boringtun's `Tunn` plus the rules its
//! callers must follow (buffer sizes, decapsulate-until-done, allowed-IPs filtering, counters).

use crate::keys::{PresharedKey, PrivateKey, PublicKey};
use boringtun::noise::errors::WireGuardError;
use boringtun::noise::{Tunn, TunnResult};
use ipnet::IpNet;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Largest UDP payload we ever receive; datagram buffers are this large.
pub const MAX_DATAGRAM: usize = 65_536;
/// WireGuard data-message overhead (header 16 + tag 16).
pub const OVERHEAD: usize = 32;
/// Size of every buffer `Engine` writes into: room for the largest datagram plus overhead and
/// never below boringtun's 148-byte minimum.
pub const BUF_SIZE: usize = MAX_DATAGRAM + OVERHEAD + 64;

/// What the engine needs to know about the peer.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// Our private key.
    pub private_key: PrivateKey,
    /// The peer's public key.
    pub peer_public_key: PublicKey,
    /// Optional preshared key.
    pub preshared_key: Option<PresharedKey>,
    /// Persistent keepalive in seconds (0 or `None`: off).
    pub persistent_keepalive: Option<u16>,
    /// Networks the peer may send from; decrypted packets from elsewhere are dropped.
    pub allowed_ips: Vec<IpNet>,
}

/// The result of handing a datagram or a tick to the engine.
#[derive(Debug)]
pub enum Output<'a> {
    /// Nothing to do.
    Nothing,
    /// Send this datagram to the peer; then call [`Engine::next_queued`] until it returns `None`.
    Network(&'a [u8]),
    /// Deliver this decrypted IP packet inside the tunnel.
    Inside(&'a [u8]),
    /// The input was dropped (bad, replayed, not allowed, ...).
    Dropped(DropReason),
    /// The session expired and boringtun gave up (no handshake for a long time).
    Expired,
}

/// Why a packet was dropped; for counters and debug logs only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// boringtun rejected the datagram (garbage, truncated, replayed, wrong key, ...).
    Invalid,
    /// A decrypted packet whose source is outside the peer's allowed IPs.
    NotAllowed,
    /// The inside packet is too large to encrypt into our buffers.
    TooLarge,
    /// No session and the handshake could not be started.
    NoSession,
}

/// Counters kept by the engine.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// IP bytes received from the peer and delivered inside.
    pub rx_bytes: u64,
    /// IP bytes taken from inside and sent to the peer.
    pub tx_bytes: u64,
    /// Datagrams or packets dropped.
    pub dropped: u64,
    /// Round trip of the last handshake we initiated (initiation sent to response in): the
    /// latency to the peer, measured without sending anything extra.
    pub handshake_rtt: Option<Duration>,
}

/// One peer's WireGuard state machine.
pub struct Engine {
    tunn: Tunn,
    allowed: Vec<IpNet>,
    counters: Counters,
    /// When the newest handshake initiation left (cleared when its response arrives).
    initiated_at: Option<Instant>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

/// Wall-clock microseconds since the Unix epoch, for handshake log lines that other processes
/// (benchmarks, tests) compare with their own clock; 0 if the clock is before 1970.
fn unix_micros() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX))
}

/// Logs a handshake message we send (initiation = type 1, response = type 2).
fn log_handshake_out(d: &[u8]) {
    match d.first() {
        Some(1) => tracing::debug!(unix_us = unix_micros(), "handshake initiation sent"),
        Some(2) => tracing::debug!(unix_us = unix_micros(), "handshake response sent"),
        _ => {}
    }
}

fn drop_reason(e: &WireGuardError) -> DropReason {
    match e {
        WireGuardError::NoCurrentSession => DropReason::NoSession,
        WireGuardError::DestinationBufferTooSmall => DropReason::TooLarge,
        _ => DropReason::Invalid,
    }
}

impl Engine {
    /// Builds the engine; `index` distinguishes peers sharing a socket (any value for one peer).
    pub fn new(cfg: &EngineConfig, index: u32) -> Self {
        let keepalive = cfg.persistent_keepalive.filter(|k| *k > 0);
        let tunn = Tunn::new(
            cfg.private_key.to_static_secret(),
            cfg.peer_public_key.to_x25519(),
            cfg.preshared_key.as_ref().map(PresharedKey::to_bytes),
            keepalive,
            index & 0x00FF_FFFF,
            None,
        );
        Self {
            tunn,
            allowed: cfg.allowed_ips.clone(),
            counters: Counters::default(),
            initiated_at: None,
        }
    }

    /// Encrypts an IP packet from inside. `buf` must be [`BUF_SIZE`] long.
    pub fn encapsulate<'a>(&mut self, packet: &[u8], buf: &'a mut [u8]) -> Output<'a> {
        // boringtun panics if dst < src + 32 or < 148: refuse instead.
        if packet.len() + OVERHEAD > buf.len() || buf.len() < 148 {
            self.counters.dropped += 1;
            return Output::Dropped(DropReason::TooLarge);
        }
        match self.tunn.encapsulate(packet, buf) {
            TunnResult::WriteToNetwork(d) => {
                if d.first() == Some(&4) {
                    self.counters.tx_bytes += packet.len() as u64;
                } else {
                    self.handshake_out(d);
                }
                Output::Network(d)
            }
            TunnResult::Err(e) => {
                self.counters.dropped += 1;
                Output::Dropped(drop_reason(&e))
            }
            _ => Output::Nothing,
        }
    }

    /// Handles a datagram from the network sent by `src`. After an [`Output::Network`], call
    /// [`Engine::next_queued`] until it returns `None` (the decapsulate-until-done rule).
    pub fn decapsulate<'a>(
        &mut self,
        src: IpAddr,
        datagram: &[u8],
        buf: &'a mut [u8],
    ) -> Output<'a> {
        if datagram.is_empty()
            || datagram.len() > MAX_DATAGRAM
            || buf.len() < datagram.len().max(148)
        {
            self.counters.dropped += 1;
            return Output::Dropped(DropReason::Invalid);
        }
        let response = datagram.first() == Some(&2);
        match self.tunn.decapsulate(Some(src), datagram, buf) {
            TunnResult::Done => Output::Nothing,
            TunnResult::WriteToNetwork(d) => {
                if response {
                    // The initiator's side of a handshake is complete: the session exists and
                    // queued packets leave next (see `next_queued`).
                    tracing::info!(unix_us = unix_micros(), "handshake completed");
                    if let Some(sent) = self.initiated_at.take() {
                        self.counters.handshake_rtt = Some(sent.elapsed());
                    }
                } else {
                    self.handshake_out(d);
                }
                Output::Network(d)
            }
            TunnResult::WriteToTunnelV4(p, from) => self.inside(p, IpAddr::V4(from)),
            TunnResult::WriteToTunnelV6(p, from) => self.inside(p, IpAddr::V6(from)),
            TunnResult::Err(WireGuardError::ConnectionExpired) => Output::Expired,
            TunnResult::Err(e) => {
                tracing::trace!(error = ?e, "datagram dropped");
                self.counters.dropped += 1;
                Output::Dropped(drop_reason(&e))
            }
        }
    }

    fn inside<'a>(&mut self, packet: &'a mut [u8], from: IpAddr) -> Output<'a> {
        if !self.allowed.iter().any(|n| n.contains(&from)) {
            self.counters.dropped += 1;
            return Output::Dropped(DropReason::NotAllowed);
        }
        self.counters.rx_bytes += packet.len() as u64;
        Output::Inside(packet)
    }

    /// The next packet boringtun queued while it had no session, encrypted; `None` when done.
    pub fn next_queued<'a>(&mut self, buf: &'a mut [u8]) -> Option<&'a [u8]> {
        match self.tunn.decapsulate(None, &[], buf) {
            TunnResult::WriteToNetwork(d) => Some(d),
            _ => None,
        }
    }

    /// Runs boringtun's timers (call every 250 ms): handshake retries, rekey, keepalive, expiry.
    pub fn tick<'a>(&mut self, buf: &'a mut [u8]) -> Output<'a> {
        match self.tunn.update_timers(buf) {
            TunnResult::WriteToNetwork(d) => {
                self.handshake_out(d);
                Output::Network(d)
            }
            TunnResult::Err(WireGuardError::ConnectionExpired) => Output::Expired,
            _ => Output::Nothing,
        }
    }

    /// Starts a handshake now unless one is in progress (used when the tunnel comes up).
    pub fn initiate<'a>(&mut self, buf: &'a mut [u8]) -> Output<'a> {
        match self.tunn.format_handshake_initiation(buf, false) {
            TunnResult::WriteToNetwork(d) => {
                self.handshake_out(d);
                Output::Network(d)
            }
            _ => Output::Nothing,
        }
    }

    /// Notes a handshake message we send: an initiation starts the round-trip clock.
    fn handshake_out(&mut self, d: &[u8]) {
        if d.first() == Some(&1) {
            self.initiated_at = Some(Instant::now());
        }
        log_handshake_out(d);
    }

    /// Time since the current session's handshake, if there is a session.
    pub fn last_handshake_age(&self) -> Option<Duration> {
        self.tunn.time_since_last_handshake()
    }

    /// The engine's counters.
    pub fn counters(&self) -> Counters {
        self.counters
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use proptest::prelude::*;

    pub(crate) fn pair() -> (Engine, Engine) {
        let a = PrivateKey::generate();
        let b = PrivateKey::generate();
        let all: Vec<IpNet> = vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()];
        let ea = Engine::new(
            &EngineConfig {
                private_key: a.clone(),
                peer_public_key: b.public_key(),
                preshared_key: None,
                persistent_keepalive: None,
                allowed_ips: all.clone(),
            },
            1,
        );
        let eb = Engine::new(
            &EngineConfig {
                private_key: b,
                peer_public_key: a.public_key(),
                preshared_key: None,
                persistent_keepalive: None,
                allowed_ips: vec!["10.0.0.1/32".parse().unwrap()],
            },
            2,
        );
        (ea, eb)
    }

    /// A minimal IPv4/UDP packet from `src` to `dst` carrying `payload`.
    pub(crate) fn ipv4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Vec<u8> {
        let total = 20 + 8 + payload.len();
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 17;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[24..26].copy_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        p[28..].copy_from_slice(payload);
        p
    }

    fn net(o: Output<'_>) -> Vec<u8> {
        match o {
            Output::Network(d) => d.to_vec(),
            other => panic!("expected network output, got {other:?}"),
        }
    }

    pub(crate) fn handshake(a: &mut Engine, b: &mut Engine) {
        let src: IpAddr = "192.0.2.1".parse().unwrap();
        let mut buf = vec![0u8; BUF_SIZE];
        let init = net(a.initiate(&mut buf));
        let resp = net(b.decapsulate(src, &init, &mut buf));
        let keepalive = net(a.decapsulate(src, &resp, &mut buf));
        assert!(matches!(
            b.decapsulate(src, &keepalive, &mut buf),
            Output::Nothing
        ));
    }

    #[test]
    fn handshake_then_data_both_ways() {
        let (mut a, mut b) = pair();
        let src: IpAddr = "192.0.2.1".parse().unwrap();
        let mut buf = vec![0u8; BUF_SIZE];
        // A packet sent before the handshake is queued and flushed after it.
        let early = ipv4([10, 0, 0, 2], [10, 0, 0, 1], b"early");
        let init = net(a.encapsulate(&early, &mut buf));
        let resp = net(b.decapsulate(src, &init, &mut buf));
        let keepalive = net(a.decapsulate(src, &resp, &mut buf));
        let queued = a
            .next_queued(&mut buf)
            .map(<[u8]>::to_vec)
            .expect("queued packet");
        assert!(a.next_queued(&mut buf).is_none());
        assert!(matches!(
            b.decapsulate(src, &keepalive, &mut buf),
            Output::Nothing
        ));
        match b.decapsulate(src, &queued, &mut buf) {
            Output::Dropped(DropReason::NotAllowed) => {}
            o => panic!("b only allows 10.0.0.1 as source: {o:?}"),
        }
        // a -> b from an allowed source.
        let p = ipv4([10, 0, 0, 1], [10, 0, 0, 2], b"hello b");
        let d = net(a.encapsulate(&p, &mut buf));
        match b.decapsulate(src, &d, &mut buf) {
            Output::Inside(got) => assert_eq!(got, &p[..]),
            o => panic!("{o:?}"),
        }
        // b -> a.
        let p = ipv4([10, 0, 0, 9], [10, 0, 0, 1], b"hello a");
        let d = net(b.encapsulate(&p, &mut buf));
        match a.decapsulate(src, &d, &mut buf) {
            Output::Inside(got) => assert_eq!(got, &p[..]),
            o => panic!("{o:?}"),
        }
        // Replay of the same datagram is dropped.
        assert!(matches!(
            a.decapsulate(src, &d, &mut buf),
            Output::Dropped(DropReason::Invalid)
        ));
        assert!(a.last_handshake_age().is_some());
        assert_eq!(a.counters().rx_bytes, p.len() as u64);
        assert!(b.counters().tx_bytes >= p.len() as u64);
    }

    #[test]
    fn oversized_packet_is_refused_not_panicking() {
        let (mut a, mut b) = pair();
        handshake(&mut a, &mut b);
        let mut small = vec![0u8; 200];
        let p = ipv4([10, 0, 0, 1], [10, 0, 0, 2], &[7u8; 400]);
        assert!(matches!(
            a.encapsulate(&p, &mut small),
            Output::Dropped(DropReason::TooLarge)
        ));
        let mut buf = vec![0u8; BUF_SIZE];
        let huge = vec![0u8; MAX_DATAGRAM];
        assert!(matches!(a.encapsulate(&huge, &mut buf), Output::Network(_)));
    }

    proptest! {
        #[test]
        fn arbitrary_datagrams_never_panic(
            dgrams in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..20),
            kinds in proptest::collection::vec(0u8..5, 20),
        ) {
            let (mut a, mut b) = pair();
            handshake(&mut a, &mut b);
            let src: IpAddr = "192.0.2.7".parse().unwrap();
            let mut buf = vec![0u8; BUF_SIZE];
            for (i, mut d) in dgrams.into_iter().enumerate() {
                // Make some inputs look like real message types so the deeper paths run.
                if d.len() >= 4 && kinds[i] > 0 {
                    d[0] = kinds[i];
                    d[1] = 0; d[2] = 0; d[3] = 0;
                }
                let _ = a.decapsulate(src, &d, &mut buf);
                while a.next_queued(&mut buf).is_some() {}
            }
            // The session still works afterwards.
            let p = ipv4([10, 0, 0, 1], [10, 0, 0, 2], b"still alive");
            let d = match a.encapsulate(&p, &mut buf) { Output::Network(d) => d.to_vec(), o => panic!("{o:?}") };
            prop_assert!(matches!(b.decapsulate(src, &d, &mut buf), Output::Inside(_)));
        }

        #[test]
        fn truncated_and_flipped_real_datagrams_never_panic(cut in 0usize..200, flip in 0usize..200, bit in 0u8..8) {
            let (mut a, mut b) = pair();
            handshake(&mut a, &mut b);
            let src: IpAddr = "192.0.2.7".parse().unwrap();
            let mut buf = vec![0u8; BUF_SIZE];
            let p = ipv4([10, 0, 0, 1], [10, 0, 0, 2], &[1u8; 100]);
            let mut d = match a.encapsulate(&p, &mut buf) { Output::Network(d) => d.to_vec(), o => panic!("{o:?}") };
            let mut t = d.clone();
            t.truncate(cut.min(t.len()));
            let _ = b.decapsulate(src, &t, &mut buf);
            let i = flip % d.len();
            d[i] ^= 1 << bit;
            prop_assert!(!matches!(b.decapsulate(src, &d, &mut buf), Output::Inside(_)));
        }
    }
}
