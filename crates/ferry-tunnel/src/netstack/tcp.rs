//! TCP handles on the userspace stack: [`TcpStream`] (tokio `AsyncRead`/`AsyncWrite` straight
//! on smoltcp's socket buffers) and [`PendingTcp`] (an any-IP connection awaiting its relay).

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use smoltcp::socket::tcp as stcp;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::lanes::LaneId;
use super::{NetstackError, Shared};

/// A TCP connection on the userspace stack.
pub struct TcpStream {
    pub(super) shared: Arc<Shared>,
    pub(super) lane: LaneId,
    local: SocketAddr,
    peer: SocketAddr,
    armed: bool,
}

impl std::fmt::Debug for TcpStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TcpStream")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .finish()
    }
}

impl TcpStream {
    pub(crate) fn new(
        shared: Arc<Shared>,
        lane: LaneId,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Self {
        Self {
            shared,
            lane,
            local,
            peer,
            armed: true,
        }
    }

    /// The stack-side address of this connection (for an any-IP flow: the original destination).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The other end's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }

    /// Waits until the connection is established (or fails).
    pub(crate) async fn established(&self) -> Result<(), NetstackError> {
        poll_fn(|cx| {
            let mut inner = self.shared.lock();
            if inner.closed {
                return Poll::Ready(Err(NetstackError::Closed));
            }
            let Some(socket) = inner.lanes.tcp(self.lane) else {
                return Poll::Ready(Err(NetstackError::Refused(self.peer)));
            };
            match socket.state() {
                stcp::State::SynSent | stcp::State::SynReceived => {
                    socket.register_send_waker(cx.waker());
                    Poll::Pending
                }
                stcp::State::Closed | stcp::State::Listen | stcp::State::TimeWait => {
                    Poll::Ready(Err(NetstackError::Refused(self.peer)))
                }
                _ => Poll::Ready(Ok(())),
            }
        })
        .await
    }
}

impl AsyncRead for TcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut inner = this.shared.lock();
        let Some(socket) = inner.lanes.tcp(this.lane) else {
            return Poll::Ready(Ok(()));
        };
        if socket.can_recv() {
            let mut copied = 0;
            while buf.remaining() > 0 {
                let n = socket
                    .recv(|data| {
                        let n = data.len().min(buf.remaining());
                        buf.put_slice(&data[..n]);
                        (n, n)
                    })
                    .unwrap_or(0);
                if n == 0 {
                    break;
                }
                copied += n;
            }
            drop(inner);
            if copied > 0 {
                // The window opened: let the driver advertise it.
                this.shared.kick();
            }
            return Poll::Ready(Ok(()));
        }
        if !socket.may_recv() {
            // FIN received, or the connection closed or was reset: end of stream.
            return Poll::Ready(Ok(()));
        }
        socket.register_recv_waker(cx.waker());
        Poll::Pending
    }
}

impl AsyncWrite for TcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut inner = this.shared.lock();
        let Some(socket) = inner.lanes.tcp(this.lane).filter(|s| s.may_send()) else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "connection closed for sending",
            )));
        };
        if data.is_empty() {
            return Poll::Ready(Ok(0));
        }
        if socket.can_send() {
            let n = socket.send_slice(data).unwrap_or(0);
            drop(inner);
            this.shared.kick();
            if n > 0 {
                return Poll::Ready(Ok(n));
            }
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        socket.register_send_waker(cx.waker());
        Poll::Pending
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        if let Some(socket) = this.shared.lock().lanes.tcp(this.lane) {
            socket.close();
        }
        this.shared.kick();
        Poll::Ready(Ok(()))
    }
}

impl Drop for TcpStream {
    fn drop(&mut self) {
        if self.armed {
            self.shared.lock().orphan_tcp(self.lane);
            self.shared.kick();
        }
    }
}

/// An any-IP TCP connection whose SYN arrived but whose SYN-ACK is held back until the relay
/// decides: [`PendingTcp::accept`] completes the handshake, [`PendingTcp::reject`] (or dropping
/// it) answers with a reset.
pub struct PendingTcp {
    stream: TcpStream,
}

impl std::fmt::Debug for PendingTcp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingTcp")
            .field("destination", &self.stream.local)
            .field("source", &self.stream.peer)
            .finish()
    }
}

impl PendingTcp {
    pub(crate) fn new(
        shared: Arc<Shared>,
        lane: LaneId,
        local: SocketAddr,
        peer: SocketAddr,
    ) -> Self {
        Self {
            stream: TcpStream::new(shared, lane, local, peer),
        }
    }

    /// The address the client connected to.
    pub fn destination(&self) -> SocketAddr {
        self.stream.local
    }

    /// The client's address.
    pub fn source(&self) -> SocketAddr {
        self.stream.peer
    }

    /// Sends the SYN-ACK and returns the connection once established.
    pub async fn accept(self) -> Result<TcpStream, NetstackError> {
        {
            if let Some(socket) = self.stream.shared.lock().lanes.tcp(self.stream.lane) {
                socket.pause_synack(false);
            }
        }
        self.stream.shared.kick();
        let timeout = std::time::Duration::from_secs(10);
        match tokio::time::timeout(timeout, self.stream.established()).await {
            Ok(Ok(())) => Ok(self.stream),
            Ok(Err(e)) => Err(e),
            Err(_) => Err(NetstackError::TimedOut(self.stream.peer)),
        }
    }

    /// Refuses the connection with a reset.
    pub fn reject(self) {
        {
            if let Some(socket) = self.stream.shared.lock().lanes.tcp(self.stream.lane) {
                socket.abort();
            }
        }
        // Dropping `self.stream` orphans the (now closed) socket for removal.
    }

    /// Gives up the socket without touching the stack (the caller holds the lock).
    pub(crate) fn disarm(mut self) -> LaneId {
        self.stream.armed = false;
        self.stream.lane
    }
}
