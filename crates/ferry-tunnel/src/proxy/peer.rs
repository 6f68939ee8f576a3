//! Who may use the proxies: on a loopback address without authentication, only the UID that
//! runs Ferry (any other account on the machine, root included unless Ferry itself runs as
//! root, is refused before a byte of its request reaches the tunnel).
//!
//! The decision ([`admit_owner`]) is pure; the lookup of the client socket's owner
//! ([`peer_uid`]) is at the edge. It asks the kernel with one netlink `sock_diag` request
//! (`SOCK_DIAG_BY_FAMILY` with the connection's exact 4-tuple, no dump) through the
//! `netlink-packet-sock-diag` and `netlink-sys` crates of the rust-netlink project: the kernel
//! finds the one socket (O(1), atomic, in the network namespace of the calling thread) and
//! reports its `idiag_uid`. Scanning `/proc/net/tcp{,6}` (e.g. with the `procfs` crate) would
//! read and parse every socket of the namespace for each accepted connection, and
//! `/proc/self/net` follows the process's main thread rather than the calling thread's
//! namespace.

use std::net::{IpAddr, SocketAddr};

use netlink_packet_core::{NetlinkHeader, NetlinkMessage, NetlinkPayload, NLM_F_REQUEST};
use netlink_packet_sock_diag::constants::{AF_INET, AF_INET6, IPPROTO_TCP};
use netlink_packet_sock_diag::inet::{ExtensionFlags, InetRequest, SocketId, StateFlags};
use netlink_packet_sock_diag::SockDiagMessage;
use netlink_sys::protocols::NETLINK_SOCK_DIAG;

/// Why the owner of a client socket could not be found.
#[derive(Debug, thiserror::Error)]
pub enum PeerUidError {
    /// The netlink socket could not be opened or used.
    #[error("sock_diag: {0}")]
    Netlink(#[from] std::io::Error),
    /// The kernel knows no such socket (the client already closed it, or it is not local).
    #[error("no local socket {peer} connected to {local}")]
    NotFound {
        /// The client's address.
        peer: SocketAddr,
        /// The proxy's address.
        local: SocketAddr,
    },
    /// The kernel's answer did not parse or was not the expected one.
    #[error("sock_diag answer: {0}")]
    Answer(String),
}

/// Whether a client may use the proxy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Admission {
    /// Serve it.
    Allowed,
    /// Refuse it (SOCKS5 reply 2, HTTP 403), for this reason (logged, never sent).
    Refused(String),
}

/// The owner-only rule: a client is served only from a loopback address and from a socket owned
/// by `owner`, the UID that runs Ferry. Root is no exception unless it is the owner; a socket
/// whose owner is unknown is refused.
pub(crate) fn admit_owner(
    owner: u32,
    peer: SocketAddr,
    uid: &Result<u32, PeerUidError>,
) -> Admission {
    if !is_loopback(peer.ip()) {
        return Admission::Refused(format!("{peer} is not a loopback address"));
    }
    match uid {
        Ok(uid) if *uid == owner => Admission::Allowed,
        Ok(uid) => Admission::Refused(format!("UID {uid} is not the owner (UID {owner})")),
        Err(e) => Admission::Refused(format!("owner of {peer} unknown: {e}")),
    }
}

/// Loopback, IPv4-mapped IPv6 included.
pub(crate) fn is_loopback(ip: IpAddr) -> bool {
    ip.to_canonical().is_loopback()
}

/// The effective UID of this process: the owner of the proxies.
pub(crate) fn own_uid() -> u32 {
    // SAFETY: geteuid has no preconditions and cannot fail.
    unsafe { libc::geteuid() }
}

/// The UID owning the local TCP socket at `peer` that is connected to `local` (the proxy's
/// side of an accepted connection: `local` is its local address, `peer` its peer address).
pub(crate) fn peer_uid(local: SocketAddr, peer: SocketAddr) -> Result<u32, PeerUidError> {
    // The kernel looks the socket up as if a packet came from `destination` to `source`: the
    // client's socket has the client's address as source.
    let (peer_ip, local_ip) = (peer.ip().to_canonical(), local.ip().to_canonical());
    let family = match (peer_ip, local_ip) {
        (IpAddr::V4(_), IpAddr::V4(_)) => AF_INET,
        (IpAddr::V6(_), IpAddr::V6(_)) => AF_INET6,
        _ => {
            return Err(PeerUidError::Answer(format!(
                "mixed address families {peer} / {local}"
            )))
        }
    };
    let socket_id = SocketId {
        source_port: peer.port(),
        destination_port: local.port(),
        source_address: peer_ip,
        destination_address: local_ip,
        interface_id: 0,
        // INET_DIAG_NOCOOKIE: match by the 4-tuple alone.
        cookie: [0xff; 8],
    };
    let mut header = NetlinkHeader::default();
    header.flags = NLM_F_REQUEST;
    let mut request = NetlinkMessage::new(
        header,
        SockDiagMessage::InetRequest(InetRequest {
            family,
            protocol: IPPROTO_TCP,
            extensions: ExtensionFlags::empty(),
            states: StateFlags::all(),
            socket_id,
        })
        .into(),
    );
    request.finalize();
    let mut out = vec![0u8; request.buffer_len()];
    request.serialize(&mut out);

    let mut socket = netlink_sys::Socket::new(NETLINK_SOCK_DIAG)?;
    socket.bind_auto()?;
    socket.connect(&netlink_sys::SocketAddr::new(0, 0))?;
    socket.send(&out, 0)?;
    // The kernel answers an exact lookup while handling `send`, so the answer is queued by now:
    // a non-blocking read never waits (and an absent answer is an error, not a hang).
    socket.set_non_blocking(true)?;
    let mut answer = Vec::with_capacity(8192);
    let n = socket.recv(&mut answer, 0)?;
    let answer = answer.get(..n).unwrap_or(&answer);
    let message = NetlinkMessage::<SockDiagMessage>::deserialize(answer)
        .map_err(|e| PeerUidError::Answer(e.to_string()))?;
    match message.payload {
        NetlinkPayload::InnerMessage(SockDiagMessage::InetResponse(response)) => {
            Ok(response.header.uid)
        }
        NetlinkPayload::Error(e) if e.code.map(|c| c.get()) == Some(-libc::ENOENT) => {
            Err(PeerUidError::NotFound { peer, local })
        }
        NetlinkPayload::Error(e) => Err(PeerUidError::Answer(format!(
            "error {}",
            e.code.map(|c| c.get()).unwrap_or(0)
        ))),
        other => Err(PeerUidError::Answer(format!(
            "unexpected message type {}",
            other.message_type()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lo(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn only_the_owner_is_admitted() {
        assert_eq!(admit_owner(1000, lo(5), &Ok(1000)), Admission::Allowed);
        assert!(matches!(
            admit_owner(1000, lo(5), &Ok(1001)),
            Admission::Refused(_)
        ));
        // Root is another user when Ferry does not run as root...
        assert!(matches!(
            admit_owner(1000, lo(5), &Ok(0)),
            Admission::Refused(_)
        ));
        // ...and the owner when it does.
        assert_eq!(admit_owner(0, lo(5), &Ok(0)), Admission::Allowed);
        assert!(matches!(
            admit_owner(0, lo(5), &Ok(65534)),
            Admission::Refused(_)
        ));
    }

    #[test]
    fn unknown_owners_and_remote_peers_are_refused() {
        let unknown = Err(PeerUidError::NotFound {
            peer: lo(5),
            local: lo(6),
        });
        assert!(matches!(
            admit_owner(1000, lo(5), &unknown),
            Admission::Refused(_)
        ));
        let remote: SocketAddr = "192.0.2.7:4000".parse().unwrap();
        assert!(matches!(
            admit_owner(1000, remote, &Ok(1000)),
            Admission::Refused(_)
        ));
        let mapped: SocketAddr = "[::ffff:127.0.0.1]:4000".parse().unwrap();
        assert_eq!(admit_owner(7, mapped, &Ok(7)), Admission::Allowed);
        let v6: SocketAddr = "[::1]:4000".parse().unwrap();
        assert_eq!(admit_owner(7, v6, &Ok(7)), Admission::Allowed);
    }

    /// The real lookup finds the test's own client socket, and nothing for a closed one.
    #[test]
    fn the_kernel_names_the_owner_of_a_loopback_client() {
        for bind in ["127.0.0.1:0", "[::1]:0"] {
            let Ok(listener) = std::net::TcpListener::bind(bind) else {
                continue; // no IPv6 loopback here
            };
            let addr = listener.local_addr().unwrap();
            let client = std::net::TcpStream::connect(addr).unwrap();
            let (accepted, peer) = listener.accept().unwrap();
            let local = accepted.local_addr().unwrap();
            assert_eq!(peer, client.local_addr().unwrap());
            assert_eq!(peer_uid(local, peer).unwrap(), own_uid(), "{bind}");
            // A port nobody uses: no such socket.
            let nobody = SocketAddr::new(peer.ip(), 1);
            assert!(
                matches!(peer_uid(local, nobody), Err(PeerUidError::NotFound { .. })),
                "{bind}"
            );
        }
    }

    #[test]
    fn a_v4_client_of_a_dual_stack_listener_is_found() {
        let Ok(listener) = std::net::TcpListener::bind("[::]:0") else {
            return;
        };
        let port = listener.local_addr().unwrap().port();
        let _client = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        // Seen as ::ffff:127.0.0.1 by the dual-stack listener.
        assert_eq!(
            peer_uid(accepted.local_addr().unwrap(), peer).unwrap(),
            own_uid()
        );
    }
}
