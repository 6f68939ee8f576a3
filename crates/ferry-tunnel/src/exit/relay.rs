//! Relays flows terminated by the exit node's stack to their real destinations on the host.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use super::Egress;
use crate::netstack::{PendingTcp, UdpSocket};

/// How long connecting to the real destination may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A UDP flow with no datagram either way for this long is closed.
const UDP_IDLE: Duration = Duration::from_secs(60);

pub(crate) async fn tcp_acceptor(mut incoming: mpsc::Receiver<PendingTcp>, egress: Egress) {
    while let Some(pending) = incoming.recv().await {
        tokio::spawn(relay_tcp(pending, egress));
    }
}

async fn relay_tcp(pending: PendingTcp, egress: Egress) {
    let dst = pending.destination();
    // The stack's policy already checked this; never connect anywhere it would not allow.
    if !egress.allows(dst.ip()) {
        pending.reject();
        return;
    }
    let host =
        match tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(dst)).await {
            Ok(Ok(host)) => host,
            Ok(Err(e)) => {
                tracing::debug!(%dst, error = %e, "upstream connect failed");
                pending.reject();
                return;
            }
            Err(_) => {
                tracing::debug!(%dst, "upstream connect timed out");
                pending.reject();
                return;
            }
        };
    let _ = host.set_nodelay(true);
    let mut tunnel = match pending.accept().await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(%dst, error = %e, "client went away during the handshake");
            return;
        }
    };
    let mut host = host;
    let result = tunnel.relay(&mut host).await;
    if let Err(e) = result {
        tracing::debug!(%dst, error = %e, "relayed connection ended with an error");
    }
}

pub(crate) async fn udp_acceptor(mut incoming: mpsc::Receiver<UdpSocket>, egress: Egress) {
    while let Some(socket) = incoming.recv().await {
        tokio::spawn(relay_udp(socket, egress));
    }
}

struct UdpFlow {
    host: Arc<tokio::net::UdpSocket>,
    replies: tokio::task::JoinHandle<()>,
    last: Instant,
}

/// Serves one destination endpoint: each client source gets its own connected host socket.
async fn relay_udp(socket: UdpSocket, egress: Egress) {
    let dst = socket.local_addr();
    if !egress.allows(dst.ip()) {
        return;
    }
    let socket = Arc::new(socket);
    let mut flows: HashMap<SocketAddr, UdpFlow> = HashMap::new();
    let mut buf = vec![0u8; 65_535];
    let mut sweep = tokio::time::interval(UDP_IDLE / 4);
    let mut idle_since = Instant::now();
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => {
                let Ok((n, src)) = received else { break };
                let flow = match flows.get_mut(&src) {
                    Some(flow) => flow,
                    None => match open_flow(socket.clone(), src, dst).await {
                        Some(flow) => flows.entry(src).or_insert(flow),
                        None => continue,
                    },
                };
                flow.last = Instant::now();
                let _ = flow.host.send(&buf[..n]).await;
            }
            _ = sweep.tick() => {
                let now = Instant::now();
                flows.retain(|_, flow| {
                    let keep = now.duration_since(flow.last) < UDP_IDLE && !flow.replies.is_finished();
                    if !keep {
                        flow.replies.abort();
                    }
                    keep
                });
                if !flows.is_empty() {
                    idle_since = now;
                } else if now.duration_since(idle_since) >= UDP_IDLE {
                    break;
                }
            }
        }
    }
    for flow in flows.values() {
        flow.replies.abort();
    }
}

async fn open_flow(socket: Arc<UdpSocket>, src: SocketAddr, dst: SocketAddr) -> Option<UdpFlow> {
    let bind_ip: IpAddr = match (dst.ip().is_loopback(), dst) {
        (true, SocketAddr::V4(_)) => Ipv4Addr::LOCALHOST.into(),
        (true, SocketAddr::V6(_)) => Ipv6Addr::LOCALHOST.into(),
        (false, SocketAddr::V4(_)) => Ipv4Addr::UNSPECIFIED.into(),
        (false, SocketAddr::V6(_)) => Ipv6Addr::UNSPECIFIED.into(),
    };
    let host = match tokio::net::UdpSocket::bind(SocketAddr::new(bind_ip, 0)).await {
        Ok(h) => h,
        Err(e) => {
            tracing::debug!(error = %e, "cannot open a host UDP socket");
            return None;
        }
    };
    if let Err(e) = host.connect(dst).await {
        tracing::debug!(%dst, error = %e, "cannot connect host UDP socket");
        return None;
    }
    let host = Arc::new(host);
    let reader = host.clone();
    let replies = tokio::spawn(async move {
        let mut buf = vec![0u8; 65_535];
        loop {
            match reader.recv(&mut buf).await {
                Ok(n) => {
                    if socket.send_to(&buf[..n], src).is_err() {
                        break;
                    }
                }
                // ICMP port unreachable from the destination: keep the flow; it may come up.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
                Err(_) => break,
            }
        }
    });
    Some(UdpFlow {
        host,
        replies,
        last: Instant::now(),
    })
}
