//! Errors of [`crate::tunnel::Tunnel`].

use crate::peer::run::PeerError;
use crate::system::SystemError;

/// Why a tunnel could not come up or stopped.
#[derive(Debug, thiserror::Error)]
pub enum TunnelError {
    /// The config cannot be used as given (no private key, not exactly one peer, ...).
    #[error("config: {0}")]
    Config(String),
    /// The peer's endpoint host name did not resolve.
    #[error("endpoint {host}: {reason}")]
    Resolve {
        /// The host.
        host: String,
        /// Why.
        reason: String,
    },
    /// Opening the UDP socket or TUN device failed (system mode needs CAP_NET_ADMIN).
    #[error("{what}: {source}")]
    Io {
        /// What was being opened.
        what: &'static str,
        /// The error.
        source: std::io::Error,
    },
    /// Routes, addresses or DNS could not be set up or reverted.
    #[error(transparent)]
    System(#[from] SystemError),
    /// The packet loop failed.
    #[error(transparent)]
    Peer(#[from] PeerError),
    /// App mode's local proxy failed.
    #[error("app mode: {0}")]
    App(String),
    /// No handshake completed within the timeout.
    #[error("no handshake within {0:?}")]
    HandshakeTimeout(std::time::Duration),
    /// The tunnel stopped.
    #[error("the tunnel is down: {0}")]
    Closed(String),
}
