//! Network changes: a NETLINK_ROUTE watcher that reports a new (or removed) default route of the
//! main table as a [`NetworkChange`] for [`super::supervisor::spawn_watching`]. Which routes
//! count is decided by the pure [`default_route_changed`]; the socket is the edge.
//!
//! Only the main table counts: Ferry's own full tunnel (system mode) puts its default route in a
//! table of its own behind a fwmark rule, so bringing the tunnel up does not look like a new
//! network.

use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;

pub use super::supervisor::NetworkChange;

/// Route changes closer together than this are reported once (a DHCP renewal deletes and adds).
pub const SETTLE: Duration = Duration::from_secs(1);

const NLMSG_HDR: usize = 16;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RT_TABLE_MAIN: u8 = 254;

/// Why the route watcher could not start.
#[derive(Debug, thiserror::Error)]
pub enum NetworkWatchError {
    /// The netlink socket could not be opened or bound.
    #[error("cannot watch routes: {0}")]
    Socket(String),
    /// Not on this platform.
    #[error("route changes are watched on Linux only")]
    Unsupported,
}

/// Whether a NETLINK_ROUTE datagram (one or more messages) adds or removes a default route
/// (destination length 0) of the main table. Malformed input is no change.
pub fn default_route_changed(datagram: &[u8]) -> bool {
    let mut rest = datagram;
    while rest.len() >= NLMSG_HDR {
        let len = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
        let kind = u16::from_ne_bytes([rest[4], rest[5]]);
        if len < NLMSG_HDR || len > rest.len() {
            return false;
        }
        let payload = &rest[NLMSG_HDR..len];
        // struct rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
        if matches!(kind, RTM_NEWROUTE | RTM_DELROUTE)
            && payload.len() >= 12
            && payload[1] == 0
            && payload[4] == RT_TABLE_MAIN
        {
            return true;
        }
        // Messages are 4-byte aligned.
        let next = (len + 3) & !3;
        rest = rest.get(next..).unwrap_or(&[]);
    }
    false
}

/// Watches the kernel's IPv4 and IPv6 routes and sends a [`NetworkChange`] on `tx` when the main
/// table's default route changes (once per burst, see [`SETTLE`]); ends when the receiver is gone.
#[cfg(target_os = "linux")]
pub fn spawn_route_watcher(
    tx: mpsc::UnboundedSender<NetworkChange>,
) -> Result<JoinHandle<()>, NetworkWatchError> {
    use netlink_sys::{protocols::NETLINK_ROUTE, AsyncSocket, AsyncSocketExt, TokioSocket};
    const RTMGRP_IPV4_ROUTE: u32 = 0x40;
    const RTMGRP_IPV6_ROUTE: u32 = 0x400;
    let mut socket =
        TokioSocket::new(NETLINK_ROUTE).map_err(|e| NetworkWatchError::Socket(e.to_string()))?;
    socket
        .socket_mut()
        .bind(&netlink_sys::SocketAddr::new(
            0,
            RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE,
        ))
        .map_err(|e| NetworkWatchError::Socket(e.to_string()))?;
    Ok(tokio::spawn(async move {
        loop {
            let got = tokio::select! {
                r = socket.recv_from_full() => r,
                () = tx.closed() => return,
            };
            match got {
                Ok((datagram, _)) if default_route_changed(&datagram) => {
                    // Let the burst settle, dropping what it adds, then report it once.
                    let settle = tokio::time::sleep(SETTLE);
                    tokio::pin!(settle);
                    loop {
                        tokio::select! {
                            () = &mut settle => break,
                            _ = socket.recv_from_full() => {}
                        }
                    }
                    tracing::info!("the default route changed");
                    if tx.send(NetworkChange).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "route watcher stops");
                    return;
                }
            }
        }
    }))
}

/// Watches the kernel's routes (Linux only).
#[cfg(not(target_os = "linux"))]
pub fn spawn_route_watcher(
    _tx: mpsc::UnboundedSender<NetworkChange>,
) -> Result<JoinHandle<()>, NetworkWatchError> {
    Err(NetworkWatchError::Unsupported)
}

/// The network changes of this machine, or `None` (logged once) where routes cannot be watched.
pub fn system_changes() -> Option<mpsc::UnboundedReceiver<NetworkChange>> {
    let (tx, rx) = mpsc::unbounded_channel();
    match spawn_route_watcher(tx) {
        Ok(_task) => Some(rx),
        Err(e) => {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| tracing::info!(error = %e, "network changes are not watched"));
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One netlink route message: header, then `struct rtmsg`, then `extra` attribute bytes.
    fn route_msg(kind: u16, family: u8, dst_len: u8, table: u8, extra: usize) -> Vec<u8> {
        let len = NLMSG_HDR + 12 + extra;
        let mut m = Vec::new();
        m.extend_from_slice(&u32::try_from(len).unwrap().to_ne_bytes());
        m.extend_from_slice(&kind.to_ne_bytes());
        m.extend_from_slice(&0u16.to_ne_bytes()); // flags
        m.extend_from_slice(&1u32.to_ne_bytes()); // seq
        m.extend_from_slice(&0u32.to_ne_bytes()); // pid
        m.extend_from_slice(&[family, dst_len, 0, 0, table, 3, 0, 1]);
        m.extend_from_slice(&0u32.to_ne_bytes());
        m.extend(std::iter::repeat_n(0u8, extra));
        m
    }

    #[test]
    fn a_default_route_of_the_main_table_is_a_change() {
        assert!(default_route_changed(&route_msg(
            RTM_NEWROUTE,
            2,
            0,
            254,
            0
        )));
        assert!(default_route_changed(&route_msg(
            RTM_DELROUTE,
            10,
            0,
            254,
            8
        )));
    }

    #[test]
    fn other_routes_tables_and_messages_are_not() {
        // A /24 on the LAN, the tunnel's own table (compat id for tables over 255), an address.
        assert!(!default_route_changed(&route_msg(
            RTM_NEWROUTE,
            2,
            24,
            254,
            0
        )));
        assert!(!default_route_changed(&route_msg(
            RTM_NEWROUTE,
            2,
            0,
            252,
            0
        )));
        assert!(!default_route_changed(&route_msg(20, 2, 0, 254, 0)));
        assert!(!default_route_changed(&[]));
    }

    #[test]
    fn every_message_of_a_datagram_is_read_and_bad_lengths_are_no_change() {
        let mut d = route_msg(RTM_NEWROUTE, 2, 24, 254, 6); // 34 bytes: padded to 36
        d.extend_from_slice(&[0, 0]);
        d.extend(route_msg(RTM_NEWROUTE, 2, 0, 254, 0));
        assert!(default_route_changed(&d));
        let mut bad = route_msg(RTM_NEWROUTE, 2, 0, 254, 0);
        bad[0] = 200; // longer than the datagram
        assert!(!default_route_changed(&bad));
        let mut tiny = route_msg(RTM_NEWROUTE, 2, 0, 254, 0);
        tiny[..4].copy_from_slice(&4u32.to_ne_bytes());
        assert!(!default_route_changed(&tiny));
    }

    #[tokio::test]
    async fn the_watcher_opens_a_route_socket_and_stops_with_its_receiver() {
        let (tx, rx) = mpsc::unbounded_channel();
        match spawn_route_watcher(tx) {
            Ok(task) => {
                drop(rx);
                tokio::time::timeout(Duration::from_secs(5), task)
                    .await
                    .unwrap()
                    .unwrap();
            }
            // Some sandboxes forbid netlink sockets: nothing to watch there.
            Err(e) => eprintln!("SKIP: {e}"),
        }
    }
}
