//! UDP sockets on the userspace stack.

use std::collections::HashMap;
use std::future::poll_fn;
use std::net::SocketAddr;
use std::sync::Arc;
use std::task::Poll;

use smoltcp::iface::{SocketHandle, SocketSet};
use smoltcp::socket::udp as sudp;
use smoltcp::wire::{IpEndpoint, IpListenEndpoint};

use super::{endpoint_to_socket_addr, Inner, NetstackError, Shared};

/// Datagrams queued per direction.
const UDP_PACKETS: usize = 256;
/// Payload bytes queued per direction.
const UDP_BYTES: usize = 256 * 1024;

/// A UDP socket on the userspace stack. Sending never waits: like a real UDP socket, a datagram
/// that does not fit in the send queue is dropped.
pub struct UdpSocket {
    shared: Arc<Shared>,
    handle: SocketHandle,
    local: SocketAddr,
    armed: bool,
}

impl std::fmt::Debug for UdpSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UdpSocket")
            .field("local", &self.local)
            .finish()
    }
}

pub(crate) fn bind(
    shared: &Arc<Shared>,
    inner: &mut Inner,
    local: SocketAddr,
) -> Result<UdpSocket, NetstackError> {
    let Inner { lanes, any_ip, .. } = inner;
    bind_parts(
        shared,
        lanes.default_sockets(),
        any_ip.as_mut().map(|a| &mut a.udp_binds),
        local,
    )
}

pub(crate) fn bind_parts(
    shared: &Arc<Shared>,
    sockets: &mut SocketSet<'static>,
    binds: Option<&mut HashMap<SocketAddr, SocketHandle>>,
    local: SocketAddr,
) -> Result<UdpSocket, NetstackError> {
    let in_use = sockets.iter().any(|(_, s)| match s {
        smoltcp::socket::Socket::Udp(u) => {
            let e = u.endpoint();
            e.port == local.port()
                && (e.addr.is_none()
                    || local.ip().is_unspecified()
                    || e.addr == Some(local.ip().into()))
        }
        #[allow(unreachable_patterns)]
        _ => false,
    });
    if in_use {
        return Err(NetstackError::AddrInUse(local));
    }
    let mut socket = sudp::Socket::new(
        sudp::PacketBuffer::new(
            vec![sudp::PacketMetadata::EMPTY; UDP_PACKETS],
            vec![0; UDP_BYTES],
        ),
        sudp::PacketBuffer::new(
            vec![sudp::PacketMetadata::EMPTY; UDP_PACKETS],
            vec![0; UDP_BYTES],
        ),
    );
    let endpoint = IpListenEndpoint {
        addr: (!local.ip().is_unspecified()).then(|| local.ip().into()),
        port: local.port(),
    };
    socket
        .bind(endpoint)
        .map_err(|_| NetstackError::Config(format!("cannot bind UDP to {local}")))?;
    let handle = sockets.add(socket);
    if let Some(binds) = binds {
        binds.insert(local, handle);
    }
    Ok(UdpSocket {
        shared: shared.clone(),
        handle,
        local,
        armed: true,
    })
}

impl UdpSocket {
    /// The address this socket is bound to.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Queues one datagram to `to`. Returns `Ok(false)` when the queue was full and the datagram
    /// was dropped.
    pub fn send_to(&self, data: &[u8], to: SocketAddr) -> Result<bool, NetstackError> {
        let mut inner = self.shared.lock();
        if inner.closed {
            return Err(NetstackError::Closed);
        }
        let socket = inner
            .lanes
            .default_sockets()
            .get_mut::<sudp::Socket>(self.handle);
        let sent = match socket.send_slice(data, IpEndpoint::from(to)) {
            Ok(()) => true,
            Err(sudp::SendError::BufferFull) => false,
            Err(sudp::SendError::Unaddressable) => return Err(NetstackError::Unaddressable(to)),
        };
        drop(inner);
        if sent {
            self.shared.kick();
        }
        Ok(sent)
    }

    /// Receives one datagram into `buf` (truncated if longer), with its source.
    pub async fn recv_from(&self, buf: &mut [u8]) -> Result<(usize, SocketAddr), NetstackError> {
        poll_fn(|cx| {
            let mut inner = self.shared.lock();
            if inner.closed {
                return Poll::Ready(Err(NetstackError::Closed));
            }
            let socket = inner
                .lanes
                .default_sockets()
                .get_mut::<sudp::Socket>(self.handle);
            match socket.recv() {
                Ok((data, meta)) => {
                    let n = data.len().min(buf.len());
                    buf[..n].copy_from_slice(&data[..n]);
                    Poll::Ready(Ok((n, endpoint_to_socket_addr(meta.endpoint))))
                }
                Err(_) => {
                    socket.register_recv_waker(cx.waker());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// Gives up the socket without touching the stack (the caller holds the lock).
    pub(crate) fn disarm(mut self) -> SocketHandle {
        self.armed = false;
        self.handle
    }
}

impl Drop for UdpSocket {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut inner = self.shared.lock();
        inner.lanes.default_sockets().remove(self.handle);
        if let Some(any) = inner.any_ip.as_mut() {
            if any.udp_binds.get(&self.local) == Some(&self.handle) {
                any.udp_binds.remove(&self.local);
            }
        }
    }
}
