//! [`TcpStream::relay`]: bytes both ways between a stack connection and any tokio stream, read
//! and written straight in smoltcp's socket buffers (no copy buffer per connection, one copy
//! fewer each way than `tokio::io::copy_bidirectional`).

use std::future::poll_fn;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use smoltcp::socket::tcp as stcp;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::TcpStream;

/// Bytes a relay carried: `up` from the client into the tunnel, `down` back.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Relayed {
    /// Client to tunnel.
    pub up: u64,
    /// Tunnel to client.
    pub down: u64,
}

/// Where one direction of a relay stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leg {
    Open,
    /// End of stream seen; the other side's shutdown is pending.
    Closing,
    Done,
}

impl TcpStream {
    /// Relays until both directions reached end of stream: what `client` sends goes into this
    /// connection, what arrives on it goes to `client`, each half closed when its source ends.
    pub async fn relay<C>(&mut self, client: &mut C) -> io::Result<Relayed>
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let mut total = Relayed::default();
        let (mut up, mut down) = (Leg::Open, Leg::Open);
        poll_fn(|cx| self.poll_relay(cx, client, &mut up, &mut down, &mut total)).await?;
        Ok(total)
    }

    fn poll_relay<C>(
        &mut self,
        cx: &mut Context<'_>,
        client: &mut C,
        up: &mut Leg,
        down: &mut Leg,
        total: &mut Relayed,
    ) -> Poll<io::Result<()>>
    where
        C: AsyncRead + AsyncWrite + Unpin,
    {
        let mut inner = self.shared.lock();
        if inner.closed {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the userspace network stack has stopped",
            )));
        }
        let Some(socket) = inner.lanes.tcp(self.lane) else {
            return Poll::Ready(Err(io::Error::new(
                io::ErrorKind::ConnectionAborted,
                "the connection is gone",
            )));
        };
        let mut moved = false;
        let result = (|| {
            if *up == Leg::Open {
                *up = client_to_socket(cx, client, socket, &mut total.up, &mut moved)?;
            }
            if *up == Leg::Closing {
                socket.close();
                moved = true;
                *up = Leg::Done;
            }
            if *down == Leg::Open {
                *down = socket_to_client(cx, client, socket, &mut total.down, &mut moved)?;
            }
            if *down == Leg::Closing {
                match Pin::new(&mut *client).poll_shutdown(cx) {
                    // The client may already be gone; its side of the stream is over either way.
                    Poll::Ready(_) => *down = Leg::Done,
                    Poll::Pending => {}
                }
            }
            Ok::<(), io::Error>(())
        })();
        drop(inner);
        if moved {
            // Data went in, or the window opened: let the driver transmit or advertise it.
            self.shared.kick();
        }
        result?;
        if *up == Leg::Done && *down == Leg::Done {
            Poll::Ready(Ok(()))
        } else {
            Poll::Pending
        }
    }
}

/// Reads from the client straight into the socket's send buffer while both have room and data.
fn client_to_socket<C: AsyncRead + Unpin>(
    cx: &mut Context<'_>,
    client: &mut C,
    socket: &mut stcp::Socket<'static>,
    count: &mut u64,
    moved: &mut bool,
) -> io::Result<Leg> {
    loop {
        if !socket.may_send() {
            // Closed or reset under us: nothing more can go this way.
            return Ok(Leg::Done);
        }
        if !socket.can_send() {
            socket.register_send_waker(cx.waker());
            return Ok(Leg::Open);
        }
        let step = socket.send(|buf| {
            let mut read = ReadBuf::new(buf);
            match Pin::new(&mut *client).poll_read(cx, &mut read) {
                Poll::Ready(Ok(())) => {
                    let n = read.filled().len();
                    (n, Poll::Ready(Ok(n)))
                }
                Poll::Ready(Err(e)) => (0, Poll::Ready(Err(e))),
                Poll::Pending => (0, Poll::Pending),
            }
        });
        match step {
            Ok(Poll::Ready(Ok(0))) => return Ok(Leg::Closing),
            Ok(Poll::Ready(Ok(n))) => {
                *count += n as u64;
                *moved = true;
            }
            Ok(Poll::Ready(Err(e))) => return Err(e),
            Ok(Poll::Pending) => return Ok(Leg::Open),
            Err(_) => return Ok(Leg::Done),
        }
    }
}

/// Writes what the socket received straight from its receive buffer to the client.
fn socket_to_client<C: AsyncWrite + Unpin>(
    cx: &mut Context<'_>,
    client: &mut C,
    socket: &mut stcp::Socket<'static>,
    count: &mut u64,
    moved: &mut bool,
) -> io::Result<Leg> {
    loop {
        if !socket.can_recv() {
            if !socket.may_recv() {
                // FIN received, or closed or reset: end of stream.
                return Ok(Leg::Closing);
            }
            socket.register_recv_waker(cx.waker());
            return Ok(Leg::Open);
        }
        let step = socket.recv(|data| match Pin::new(&mut *client).poll_write(cx, data) {
            Poll::Ready(Ok(n)) => (n, Poll::Ready(Ok(n))),
            Poll::Ready(Err(e)) => (0, Poll::Ready(Err(e))),
            Poll::Pending => (0, Poll::Pending),
        });
        match step {
            Ok(Poll::Ready(Ok(0))) => {
                return Err(io::Error::new(
                    io::ErrorKind::WriteZero,
                    "the client accepts no more data",
                ))
            }
            Ok(Poll::Ready(Ok(n))) => {
                *count += n as u64;
                *moved = true;
            }
            Ok(Poll::Ready(Err(e))) => return Err(e),
            Ok(Poll::Pending) => return Ok(Leg::Open),
            Err(_) => return Ok(Leg::Closing),
        }
    }
}
