//! The client side, for `ferry` and the desktop app: connect, say hello, ask, and receive the
//! tunnel's descriptors. A reader thread takes every frame off the socket, so events pushed by
//! the helper ([`Event::DisconnectRequested`]) arrive while the client waits for nothing.

use crate::proto::{self, Event, OpenRequest, ProtoError, Reader, Request, Response, Status};
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use tokio::sync::{mpsc, watch, Mutex};

/// Environment variable naming the helper's socket.
pub const SOCKET_ENV: &str = "FERRY_HELPER_SOCKET";
/// The socket's default path.
pub const DEFAULT_SOCKET: &str = "/run/ferry/helper.sock";
/// The group whose members may use the helper.
pub const DEFAULT_GROUP: &str = "ferry";

/// The socket to use: `$FERRY_HELPER_SOCKET`, else [`DEFAULT_SOCKET`].
pub fn socket_path() -> PathBuf {
    std::env::var_os(SOCKET_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_SOCKET))
}

/// Errors talking to the helper.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// Nothing listens at the socket.
    #[error("the Ferry helper is not running at {path} ({source}). System mode without root needs it: install Ferry's package (`sudo apt install ./ferry_*.deb`), enable the helper (`sudo systemctl enable --now ferry-helper`) and be in group `{DEFAULT_GROUP}` (`sudo usermod -aG {DEFAULT_GROUP} $USER`, then log in again); or use app mode (leave out --all)")]
    NotRunning {
        /// The socket.
        path: PathBuf,
        /// Why connecting failed.
        source: std::io::Error,
    },
    /// The socket's permissions keep us out.
    #[error("no permission to use the Ferry helper at {path}: be in group `{DEFAULT_GROUP}` (`sudo usermod -aG {DEFAULT_GROUP} $USER`, then log in again)")]
    NoPermission {
        /// The socket.
        path: PathBuf,
    },
    /// The helper said no.
    #[error("the Ferry helper refused: {0}")]
    Refused(String),
    /// Framing or I/O.
    #[error(transparent)]
    Proto(#[from] ProtoError),
    /// An answer that does not fit the question.
    #[error("unexpected answer from the Ferry helper: {0:?}")]
    Unexpected(Box<Response>),
}

/// What [`Helper::open`] hands back.
#[derive(Debug)]
pub struct Opened {
    /// The TUN device.
    pub tun: OwnedFd,
    /// It carries virtio-net headers.
    pub vnet: bool,
    /// Interface name.
    pub ifname: String,
    /// The marked UDP socket.
    pub socket: std::net::UdpSocket,
    /// MTU.
    pub mtu: u16,
}

type Frame = Result<(Response, Vec<OwnedFd>), ProtoError>;

struct Conn {
    writer: UnixStream,
    answers: mpsc::UnboundedReceiver<Frame>,
}

/// A control connection to the helper.
pub struct Helper {
    conn: Mutex<Conn>,
    events: watch::Receiver<Option<Event>>,
    gone: watch::Receiver<bool>,
}

impl std::fmt::Debug for Helper {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Helper").finish_non_exhaustive()
    }
}

impl Helper {
    /// Connects to the helper at `path` and says hello.
    pub async fn connect(path: &Path) -> Result<Self, ClientError> {
        let stream = match UnixStream::connect(path) {
            Ok(s) => s,
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(ClientError::NoPermission {
                    path: path.to_path_buf(),
                })
            }
            Err(source) => {
                return Err(ClientError::NotRunning {
                    path: path.to_path_buf(),
                    source,
                })
            }
        };
        let reader_side = stream.try_clone().map_err(ProtoError::Io)?;
        let (tx, rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = watch::channel(None);
        let (gone_tx, gone_rx) = watch::channel(false);
        std::thread::Builder::new()
            .name("ferry-helper-rx".into())
            .spawn(move || {
                let mut reader = Reader::new();
                loop {
                    match reader.read_msg::<Response>(&reader_side) {
                        Ok(Response::Event { event }) => {
                            ev_tx.send_replace(Some(event));
                        }
                        Ok(r) => {
                            let fds = reader.take_fds();
                            if tx.send(Ok((r, fds))).is_err() {
                                break;
                            }
                        }
                        Err(e) => {
                            let _ = tx.send(Err(e));
                            break;
                        }
                    }
                }
                gone_tx.send_replace(true);
            })
            .map_err(ProtoError::Io)?;
        let h = Self {
            conn: Mutex::new(Conn {
                writer: stream,
                answers: rx,
            }),
            events: ev_rx,
            gone: gone_rx,
        };
        match h
            .ask(Request::Hello {
                version: proto::VERSION,
            })
            .await?
        {
            (Response::Hello { .. }, _) => Ok(h),
            (other, _) => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// Sends one request and waits for its answer (an `Error` answer becomes
    /// [`ClientError::Refused`]).
    pub async fn ask(&self, req: Request) -> Result<(Response, Vec<OwnedFd>), ClientError> {
        let mut conn = self.conn.lock().await;
        // A helper that refuses us says why and closes: the write may fail, the answer is
        // still there to read.
        let sent = proto::write_msg(&conn.writer, &req, &[]);
        match conn.answers.recv().await {
            Some(Ok((Response::Error { message }, _))) => Err(ClientError::Refused(message)),
            Some(Ok(answer)) => sent.map(|()| answer).map_err(Into::into),
            Some(Err(e)) => Err(sent.err().unwrap_or(e).into()),
            None => Err(sent.err().unwrap_or(ProtoError::Closed).into()),
        }
    }

    async fn ok(&self, req: Request) -> Result<(), ClientError> {
        match self.ask(req).await? {
            (Response::Ok, _) => Ok(()),
            (other, _) => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// Asks for a tunnel: the block goes up first, then TUN, socket, routes and DNS.
    pub async fn open(&self, req: OpenRequest) -> Result<Opened, ClientError> {
        match self.ask(Request::Open(req)).await? {
            (Response::Opened { ifname, vnet, mtu }, fds) => {
                let mut fds = fds.into_iter();
                match (fds.next(), fds.next()) {
                    (Some(tun), Some(sock)) => Ok(Opened {
                        tun,
                        vnet,
                        ifname,
                        socket: std::net::UdpSocket::from(sock),
                        mtu,
                    }),
                    _ => Err(ClientError::Unexpected(Box::new(Response::Opened {
                        ifname,
                        vnet,
                        mtu,
                    }))),
                }
            }
            (other, _) => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// Reports the first handshake; once this returns, the block allows only the tunnel.
    pub async fn handshake(&self) -> Result<(), ClientError> {
        self.ok(Request::Handshake).await
    }

    /// The tunnel is down for a reconnect (the block returns to the endpoint).
    pub async fn close(&self) -> Result<(), ClientError> {
        self.ok(Request::Close).await
    }

    /// The user disconnected: routes, DNS and the block go (idempotent).
    pub async fn disconnect(&self) -> Result<(), ClientError> {
        self.ok(Request::Disconnect).await
    }

    /// Ends whatever session runs and clears the block.
    pub async fn disconnect_all(&self) -> Result<(), ClientError> {
        self.ok(Request::DisconnectAll).await
    }

    /// The helper's state.
    pub async fn status(&self) -> Result<Status, ClientError> {
        match self.ask(Request::Status).await? {
            (Response::Status(s), _) => Ok(s),
            (other, _) => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// Resolves when the helper pushes an event.
    pub async fn event(&self) -> Event {
        let mut rx = self.events.clone();
        loop {
            if let Some(e) = *rx.borrow_and_update() {
                return e;
            }
            if rx.changed().await.is_err() {
                std::future::pending::<()>().await;
            }
        }
    }

    /// True once the connection to the helper is lost.
    pub fn is_lost(&self) -> bool {
        *self.gone.borrow()
    }

    /// Resolves when the connection to the helper is lost.
    pub async fn lost(&self) {
        let mut rx = self.gone.clone();
        let _ = rx.wait_for(|g| *g).await;
    }
}
