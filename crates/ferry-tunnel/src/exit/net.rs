//! The exit node's WireGuard side: one UDP socket, every peer's `Tunn`, the timers, and the
//! pipe to the userspace stack.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::noise::{Packet, Tunn, TunnResult};
use boringtun::x25519::{PublicKey, StaticSecret};
use bytes::{Bytes, BytesMut};
use tokio::net::UdpSocket;

use super::lock_peers;
use super::peers::{Peer, PeerTable};
use crate::pipe::PipeEnd;

/// Largest UDP datagram we read, and room for the largest packet plus WireGuard overhead.
const BUF: usize = 65_535 + 64;
/// Handshake initiations from not-yet-known sessions per second before cookies are demanded.
const HANDSHAKE_RATE_LIMIT: u64 = 100;
/// Packets from the stack handled per lock of the peer table.
const OUT_BATCH: usize = 64;
/// Arena chunk decrypted packets are cut from.
const ARENA_CHUNK: usize = 256 * 1024;

/// Copies packets into a shared arena so that each one is not its own allocation.
struct Arena(BytesMut);

impl Arena {
    fn copy(&mut self, data: &[u8]) -> Bytes {
        if self.0.capacity() < data.len() {
            self.0.reserve(ARENA_CHUNK.max(data.len()));
        }
        self.0.extend_from_slice(data);
        self.0.split().freeze()
    }
}

pub(crate) async fn run(
    socket: UdpSocket,
    private_key: StaticSecret,
    public_key: PublicKey,
    peers: Arc<Mutex<PeerTable>>,
    pipe: PipeEnd,
) {
    let PipeEnd {
        tx: to_stack,
        rx: mut from_stack,
    } = pipe;
    let limiter = RateLimiter::new(&public_key, HANDSHAKE_RATE_LIMIT);
    let mut recv_buf = vec![0u8; BUF];
    let mut out_buf = vec![0u8; BUF];
    let mut arena = Arena(BytesMut::with_capacity(ARENA_CHUNK));
    let mut inbound: Vec<Bytes> = Vec::new();
    let mut timers = tokio::time::interval(Duration::from_millis(250));
    timers.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ticks: u32 = 0;
    loop {
        tokio::select! {
            received = socket.recv_from(&mut recv_buf) => {
                let (n, src) = match received {
                    Ok(r) => r,
                    Err(e) => {
                        // ICMP errors surface here on Linux; they are not fatal.
                        tracing::debug!(error = %e, "exit node UDP receive error");
                        continue;
                    }
                };
                {
                    let mut table = lock_peers(&peers);
                    handle_datagram(
                        &socket, &mut table, &limiter, &private_key, &public_key,
                        src, &recv_buf[..n], &mut out_buf, &mut arena, &mut inbound,
                    );
                    // Drain what else is already waiting, without blocking.
                    for _ in 0..OUT_BATCH {
                        match socket.try_recv_from(&mut recv_buf) {
                            Ok((n, src)) => handle_datagram(
                                &socket, &mut table, &limiter, &private_key, &public_key,
                                src, &recv_buf[..n], &mut out_buf, &mut arena, &mut inbound,
                            ),
                            Err(_) => break,
                        }
                    }
                }
                for packet in inbound.drain(..) {
                    if to_stack.send(packet).await.is_err() {
                        return;
                    }
                }
            }
            packet = from_stack.recv() => {
                let Some(packet) = packet else { return };
                let mut table = lock_peers(&peers);
                send_to_peer(&socket, &mut table, &packet, &mut out_buf);
                for _ in 1..OUT_BATCH {
                    match from_stack.try_recv() {
                        Ok(packet) => send_to_peer(&socket, &mut table, &packet, &mut out_buf),
                        Err(_) => break,
                    }
                }
            }
            _ = timers.tick() => {
                ticks = ticks.wrapping_add(1);
                if ticks % 4 == 0 {
                    limiter.reset_count();
                }
                let mut table = lock_peers(&peers);
                for peer in table.iter_mut() {
                    if let TunnResult::WriteToNetwork(data) = peer.tunn.update_timers(&mut out_buf) {
                        if let Some(endpoint) = peer.endpoint {
                            let _ = socket.try_send_to(data, endpoint);
                        }
                    }
                }
            }
        }
    }
}

/// Finds the peer a datagram belongs to and runs it through that peer's `Tunn`.
#[allow(clippy::too_many_arguments)]
fn handle_datagram(
    socket: &UdpSocket,
    table: &mut PeerTable,
    limiter: &RateLimiter,
    private_key: &StaticSecret,
    public_key: &PublicKey,
    src: SocketAddr,
    datagram: &[u8],
    out: &mut [u8],
    arena: &mut Arena,
    inbound: &mut Vec<Bytes>,
) {
    let peer = match Tunn::parse_incoming_packet(datagram) {
        Ok(Packet::HandshakeInit(_)) => {
            // Check mac1 and the handshake rate before the expensive anonymous parse.
            let init = match limiter.verify_packet(Some(src.ip()), datagram, out) {
                Ok(Packet::HandshakeInit(init)) => init,
                Ok(_) => return,
                Err(TunnResult::WriteToNetwork(cookie)) => {
                    let _ = socket.try_send_to(cookie, src);
                    return;
                }
                Err(_) => return,
            };
            let Ok(half) = parse_handshake_anon(private_key, public_key, &init) else {
                return;
            };
            table.by_key_mut(&half.peer_static_public)
        }
        Ok(Packet::HandshakeResponse(p)) => table.by_receiver_mut(p.receiver_idx),
        Ok(Packet::PacketCookieReply(p)) => table.by_receiver_mut(p.receiver_idx),
        Ok(Packet::PacketData(p)) => table.by_receiver_mut(p.receiver_idx),
        Err(_) => return,
    };
    let Some(peer) = peer else {
        return;
    };
    decapsulate(socket, peer, src, datagram, out, arena, inbound);
}

/// The decapsulate-until-done rule, with the source-address check on decrypted packets.
fn decapsulate(
    socket: &UdpSocket,
    peer: &mut Peer,
    src: SocketAddr,
    datagram: &[u8],
    out: &mut [u8],
    arena: &mut Arena,
    inbound: &mut Vec<Bytes>,
) {
    let mut input = datagram;
    loop {
        match peer.tunn.decapsulate(Some(src.ip()), input, out) {
            TunnResult::Done => break,
            TunnResult::Err(e) => {
                tracing::trace!(error = ?e, %src, "dropped datagram");
                break;
            }
            TunnResult::WriteToNetwork(data) => {
                peer.endpoint = Some(src);
                let _ = socket.try_send_to(data, src);
                peer.note_handshake();
                input = &[];
            }
            TunnResult::WriteToTunnelV4(packet, source) => {
                accept(peer, src, IpAddr::V4(source), packet, arena, inbound);
                break;
            }
            TunnResult::WriteToTunnelV6(packet, source) => {
                accept(peer, src, IpAddr::V6(source), packet, arena, inbound);
                break;
            }
        }
    }
}

fn accept(
    peer: &mut Peer,
    src: SocketAddr,
    source: IpAddr,
    packet: &[u8],
    arena: &mut Arena,
    inbound: &mut Vec<Bytes>,
) {
    peer.endpoint = Some(src);
    if packet.is_empty() {
        return;
    }
    if source != peer.tunnel_ip {
        tracing::debug!(%source, tunnel_ip = %peer.tunnel_ip, "dropped packet from a foreign source address");
        return;
    }
    peer.rx_bytes += packet.len() as u64;
    inbound.push(arena.copy(packet));
}

/// Encrypts a packet from the stack for the peer owning its destination address.
fn send_to_peer(socket: &UdpSocket, table: &mut PeerTable, packet: &[u8], out: &mut [u8]) {
    let Some(dst) = Tunn::dst_address(packet) else {
        return;
    };
    let Some(peer) = table.by_ip_mut(&dst) else {
        return;
    };
    if packet.len() + 32 > out.len() {
        return;
    }
    match peer.tunn.encapsulate(packet, out) {
        TunnResult::WriteToNetwork(data) => {
            // Without a session boringtun queues the packet and asks for a handshake instead.
            if data.first() == Some(&4) {
                peer.tx_bytes += packet.len() as u64;
            }
            if let Some(endpoint) = peer.endpoint {
                let _ = socket.try_send_to(data, endpoint);
            }
        }
        TunnResult::Err(e) => tracing::trace!(error = ?e, "encapsulate failed"),
        _ => {}
    }
}
