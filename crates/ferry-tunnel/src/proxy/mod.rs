//! App mode's local proxies: SOCKS5 (CONNECT and UDP ASSOCIATE) and HTTP (CONNECT, and plain
//! `http://` in absolute form) on 127.0.0.1, carried by a userspace [`Netstack`] whose packets
//! go through the tunnel. Host
//! names are resolved by the tunnel's DNS servers (a DNS query over UDP through the tunnel),
//! never by the host's resolver, so name lookups do not leak outside the tunnel.
//!
//! Only the owner uses them ([`Access`]): on loopback without credentials, a connection is
//! served only when the client socket belongs to the UID that runs Ferry (see `peer.rs`);
//! anyone else gets SOCKS5 reply 2 ("not allowed by ruleset") or HTTP 403, and nothing of the
//! request reaches the tunnel. A proxy on any other address needs [`Credentials`] (it does not
//! start without), and then every client must present them (RFC 1929 for SOCKS5,
//! `Proxy-Authorization: Basic` for HTTP); the UID rule does not apply to it.

mod auth;
mod http;
mod peer;
mod resolve;
mod socks;

pub use auth::{Credentials, CredentialsError};
pub use peer::PeerUidError;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::task::JoinHandle;

use crate::netstack::{IpNet, Netstack, NetstackConfig, NetstackError, TcpStream};
use crate::pipe::PipeEnd;

use resolve::Resolver;

/// Errors of the app-mode proxies.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// A listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The userspace stack failed.
    #[error(transparent)]
    Stack(#[from] NetstackError),
    /// A host name did not resolve.
    #[error("cannot resolve {name}: {reason}")]
    Resolve {
        /// The name.
        name: String,
        /// Why.
        reason: String,
    },
    /// The client spoke the proxy protocol wrongly.
    #[error("proxy protocol error: {0}")]
    Protocol(String),
    /// I/O with the local client failed.
    #[error("client I/O: {0}")]
    Io(#[from] std::io::Error),
    /// A client that may not use the proxy was refused.
    #[error("client refused: {0}")]
    Refused(String),
    /// A listen address other machines may reach, without credentials.
    #[error(
        "{addr} is not a loopback address: a proxy that other machines can reach needs credentials"
    )]
    NeedsCredentials {
        /// The address asked for.
        addr: SocketAddr,
    },
}

/// Who may use the proxies.
#[derive(Debug, Clone)]
pub enum Access {
    /// Only connections from loopback sockets owned by this UID (the default: the effective UID
    /// of this process, so root is the owner only when Ferry runs as root). Loopback listen
    /// addresses only.
    Owner(u32),
    /// Any client presenting these credentials, from anywhere (no UID check).
    Credentials(Credentials),
}

impl Default for Access {
    fn default() -> Self {
        Access::Owner(peer::own_uid())
    }
}

/// Settings of [`AppProxy::start_with`] beyond the essentials.
#[derive(Debug, Clone)]
pub struct ProxyOptions {
    /// The tunnel's addresses (the stack's own addresses; one IPv4 and/or one IPv6).
    pub tunnel_addrs: Vec<IpNet>,
    /// DNS servers inside the tunnel, tried in order.
    pub dns: Vec<IpAddr>,
    /// Where the SOCKS5 proxy listens (port 0 picks one).
    pub socks_listen: SocketAddr,
    /// Where the HTTP proxy (CONNECT and plain `http://`) listens, if at all.
    pub http_listen: Option<SocketAddr>,
    /// Tunnel MTU (the largest IP packet the stack sends).
    pub mtu: usize,
    /// Who may use the proxies.
    pub access: Access,
}

/// Receive and send buffer of each tunneled TCP connection: a window big enough for one stream
/// to fill the tunnel (an idle connection costs only the pages it touched).
const TCP_BUFFER: usize = 1024 * 1024;

/// How long a client may take to send its proxy request.
pub(crate) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);

/// What the proxies share: the stack and the resolver.
pub(crate) struct Context {
    pub(crate) stack: Netstack,
    pub(crate) resolver: Resolver,
    /// The tunnel has IPv6 but no IPv4 address.
    v6_only: bool,
    access: Access,
}

impl Context {
    /// Whether the client at `peer`, accepted on `local`, may use the proxies.
    pub(crate) fn admit(&self, local: SocketAddr, peer: SocketAddr) -> peer::Admission {
        match &self.access {
            Access::Owner(owner) => {
                let uid = peer::peer_uid(local, peer);
                peer::admit_owner(*owner, peer, &uid)
            }
            // Checked in each protocol's authentication.
            Access::Credentials(_) => peer::Admission::Allowed,
        }
    }

    /// The credentials clients must present, if any.
    pub(crate) fn credentials(&self) -> Option<&Credentials> {
        match &self.access {
            Access::Credentials(c) => Some(c),
            Access::Owner(_) => None,
        }
    }

    pub(crate) fn stack_prefers_v6(&self) -> bool {
        self.v6_only
    }

    /// Connects through the tunnel to `host:port`, trying each address `host` resolves to.
    pub(crate) async fn connect(&self, host: &Host, port: u16) -> Result<TcpStream, ProxyError> {
        let addrs = match host {
            Host::Ip(ip) => vec![*ip],
            Host::Name(name) => self.resolver.resolve(&self.stack, name).await?,
        };
        let mut last = None;
        for ip in addrs {
            match self.stack.tcp_connect(SocketAddr::new(ip, port)).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = Some(e),
            }
        }
        Err(last
            .map(ProxyError::Stack)
            .unwrap_or_else(|| ProxyError::Resolve {
                name: host.to_string(),
                reason: "no usable address".into(),
            }))
    }
}

/// A destination host as a client named it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Host {
    Ip(IpAddr),
    Name(String),
}

impl std::fmt::Display for Host {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Host::Ip(ip) => ip.fmt(f),
            Host::Name(n) => f.write_str(n),
        }
    }
}

impl Host {
    pub(crate) fn parse(s: &str) -> Host {
        let bare = s.trim_start_matches('[').trim_end_matches(']');
        match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(s.to_string()),
        }
    }
}

/// The running app-mode proxies. Dropping it (or [`AppProxy::shutdown`]) stops them.
pub struct AppProxy {
    socks_addr: SocketAddr,
    http_addr: Option<SocketAddr>,
    context: Arc<Context>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

impl std::fmt::Debug for AppProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppProxy")
            .field("socks_addr", &self.socks_addr)
            .field("http_addr", &self.http_addr)
            .finish_non_exhaustive()
    }
}

async fn listen(addr: SocketAddr) -> Result<TcpListener, ProxyError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ProxyError::Listen { addr, source })
}

impl AppProxy {
    /// Starts the stack on `pipe_end` with the tunnel addresses, and the SOCKS5 (and optionally
    /// HTTP CONNECT) proxy; names resolve through `dns` inside the tunnel. MTU 1420; only the
    /// UID running this process may use them ([`Access::default`]).
    pub async fn start(
        pipe_end: PipeEnd,
        tunnel_addrs: Vec<IpNet>,
        dns: Vec<IpAddr>,
        socks_listen: SocketAddr,
        http_listen: Option<SocketAddr>,
    ) -> Result<AppProxy, ProxyError> {
        Self::start_with(
            pipe_end,
            ProxyOptions {
                tunnel_addrs,
                dns,
                socks_listen,
                http_listen,
                mtu: 1420,
                access: Access::default(),
            },
        )
        .await
    }

    /// Like [`AppProxy::start`], with every option. A listen address that is not loopback
    /// needs [`Access::Credentials`] ([`ProxyError::NeedsCredentials`] otherwise, before
    /// anything is bound).
    pub async fn start_with(
        pipe_end: PipeEnd,
        options: ProxyOptions,
    ) -> Result<AppProxy, ProxyError> {
        if let Access::Owner(_) = options.access {
            let open = std::iter::once(options.socks_listen)
                .chain(options.http_listen)
                .find(|a| !peer::is_loopback(a.ip()));
            if let Some(addr) = open {
                return Err(ProxyError::NeedsCredentials { addr });
            }
        }
        let socks = listen(options.socks_listen).await?;
        let http = match options.http_listen {
            Some(addr) => Some(listen(addr).await?),
            None => None,
        };
        let socks_addr = socks.local_addr()?;
        let http_addr = match &http {
            Some(l) => Some(l.local_addr()?),
            None => None,
        };
        let mut config = NetstackConfig::new(options.tunnel_addrs.clone());
        config.mtu = options.mtu;
        config.tcp_buffer = TCP_BUFFER;
        let stack = Netstack::start(pipe_end, config)?;
        let has_v6 = options.tunnel_addrs.iter().any(|n| n.addr().is_ipv6());
        let has_v4 = options.tunnel_addrs.iter().any(|n| n.addr().is_ipv4());
        let context = Arc::new(Context {
            stack,
            resolver: Resolver::new(options.dns.clone(), has_v4, has_v6),
            v6_only: has_v6 && !has_v4,
            access: options.access.clone(),
        });
        let mut tasks = vec![tokio::spawn(socks::serve(socks, context.clone()))];
        if let Some(http) = http {
            tasks.push(tokio::spawn(http::serve(http, context.clone())));
        }
        tracing::info!(%socks_addr, ?http_addr, "app-mode proxies listening");
        Ok(AppProxy {
            socks_addr,
            http_addr,
            context,
            tasks: Mutex::new(tasks),
        })
    }

    /// Where the SOCKS5 proxy listens.
    pub fn socks_addr(&self) -> SocketAddr {
        self.socks_addr
    }

    /// Where the HTTP CONNECT proxy listens, if it runs.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr
    }

    /// Stops listening and stops the stack; open proxied connections end.
    pub fn shutdown(&self) {
        let tasks = std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|e| e.into_inner()));
        for task in tasks {
            task.abort();
        }
        self.context.stack.shutdown();
    }
}

impl Drop for AppProxy {
    fn drop(&mut self) {
        self.shutdown();
    }
}
