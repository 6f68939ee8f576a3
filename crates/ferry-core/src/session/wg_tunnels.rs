//! The real [`TunnelFactory`]: `ferry-tunnel` in app mode (userspace stack behind local SOCKS5 and
//! HTTP CONNECT proxies) or system mode (TUN, routes, DNS). The CLI and the desktop app share it.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_tunnel::proxy::AppProxy;
use ferry_tunnel::tunnel::{Mode, SystemOptions, Tunnel, TunnelEnd};
use ferry_tunnel::wgconf::WgConfig;
use tokio::sync::watch;

use super::machine::ErrorCause;
use super::ports::{TunnelFactory, TunnelHandle};
use ferry_tunnel::error::TunnelError;
use ferry_tunnel::system::SystemError;

/// How tunnels are brought up.
#[derive(Debug, Clone, Copy)]
pub struct WgTunnels {
    /// System mode (route everything through a TUN device; needs CAP_NET_ADMIN).
    pub system: bool,
    /// App mode: where the SOCKS5 proxy listens; the HTTP CONNECT proxy takes the next port
    /// (none when the port is 0).
    pub proxy: SocketAddr,
    /// App mode: when `proxy` is taken, listen on any free port instead of failing.
    pub any_port_if_taken: bool,
}

/// A running tunnel and, in app mode, its proxies. The tunnel sits behind an `Arc` so waits on
/// it (handshake, end) never block `down`, which first tells those waits to let go.
pub struct WgTunnel {
    slot: Mutex<Option<Arc<Tunnel>>>,
    going_down: watch::Sender<bool>,
    proxy: Option<AppProxy>,
    last: Mutex<(u64, u64)>,
}

async fn start_proxy(
    config: &WgConfig,
    listen: SocketAddr,
) -> Result<(ferry_tunnel::pipe::PipeEnd, AppProxy), String> {
    let (ours, stack) = ferry_tunnel::pipe::pipe(1024);
    let http = SocketAddr::new(listen.ip(), listen.port().saturating_add(1));
    let http = (listen.port() != 0).then_some(http);
    let proxy = AppProxy::start(
        stack,
        config.interface.addresses.clone(),
        config.interface.dns.clone(),
        listen,
        http,
    )
    .await
    .map_err(|e| format!("cannot start the local proxy on {listen}: {e}"))?;
    Ok((ours, proxy))
}

impl TunnelFactory for WgTunnels {
    type Tunnel = WgTunnel;

    async fn up(&self, config: WgConfig) -> Result<WgTunnel, ErrorCause> {
        let (mode, proxy) = if self.system {
            (Mode::System(SystemOptions::default()), None)
        } else {
            let started = match start_proxy(&config, self.proxy).await {
                Err(e) if self.any_port_if_taken && self.proxy.port() != 0 => {
                    tracing::info!(error = %e, "proxy port taken; using a free port");
                    start_proxy(&config, SocketAddr::new(self.proxy.ip(), 0))
                        .await
                        .map_err(ErrorCause::Tunnel)?
                }
                other => other.map_err(ErrorCause::Tunnel)?,
            };
            (Mode::Pipe(started.0), Some(started.1))
        };
        let tunnel = match Tunnel::up(config, mode).await {
            Ok(t) => t,
            Err(e) => {
                if let Some(p) = &proxy {
                    p.shutdown();
                }
                return Err(classify(&e));
            }
        };
        Ok(WgTunnel {
            slot: Mutex::new(Some(Arc::new(tunnel))),
            going_down: watch::channel(false).0,
            proxy,
            last: Mutex::new((0, 0)),
        })
    }
}

/// A tunnel that would not come up, typed: missing rights are told apart from other failures.
fn classify(e: &TunnelError) -> ErrorCause {
    let denied = |io: &std::io::Error| io.kind() == std::io::ErrorKind::PermissionDenied;
    let no_rights = match e {
        TunnelError::Io { source, .. } => denied(source),
        TunnelError::System(SystemError::Io { source, .. }) => denied(source),
        // `ip` and friends report it in words on stderr: read at this edge only.
        TunnelError::System(SystemError::Command { stderr, .. }) => {
            stderr.contains("Operation not permitted")
        }
        _ => false,
    };
    if no_rights {
        ErrorCause::NoPrivileges(e.to_string())
    } else {
        ErrorCause::Tunnel(format!("cannot bring the tunnel up: {e}"))
    }
}

impl WgTunnel {
    fn get(&self) -> Option<Arc<Tunnel>> {
        self.slot.lock().ok().and_then(|s| s.clone())
    }

    async fn until_down(&self) {
        let mut rx = self.going_down.subscribe();
        let _ = rx.wait_for(|d| *d).await;
    }
}

impl TunnelHandle for WgTunnel {
    async fn first_handshake(&self, timeout: Duration) -> Result<(), String> {
        let Some(t) = self.get() else {
            return Err("the tunnel is down".into());
        };
        tokio::select! {
            r = t.wait_first_handshake(timeout) => r.map(|_| ()).map_err(|e| e.to_string()),
            _ = self.until_down() => Err("the tunnel was taken down".into()),
        }
    }

    fn traffic(&self) -> (u64, u64) {
        match self.get() {
            Some(t) => {
                let s = t.stats();
                if let Ok(mut last) = self.last.lock() {
                    *last = (s.rx_bytes, s.tx_bytes);
                }
                (s.rx_bytes, s.tx_bytes)
            }
            None => self.last.lock().map(|s| *s).unwrap_or((0, 0)),
        }
    }

    fn proxy(&self) -> Option<String> {
        self.proxy.as_ref().map(|p| p.socks_addr().to_string())
    }

    async fn closed(&self) -> String {
        let Some(t) = self.get() else {
            return "the tunnel went down".into();
        };
        tokio::select! {
            end = t.closed() => match end {
                TunnelEnd::Down => "the tunnel went down".into(),
                TunnelEnd::Failed(why) => why,
            },
            _ = self.until_down() => "the tunnel was taken down".into(),
        }
    }

    async fn down(&self) {
        // Figures so far, in case the teardown cannot report the final ones.
        let _ = self.traffic();
        self.going_down.send_replace(true);
        if let Some(p) = &self.proxy {
            p.shutdown();
        }
        let taken = self.slot.lock().ok().and_then(|mut s| s.take());
        let Some(mut t) = taken else { return };
        // Waits that hold a clone let go at once (they watch `going_down`).
        for _ in 0..500 {
            match Arc::try_unwrap(t) {
                Ok(tunnel) => {
                    match tunnel.down_with_stats().await {
                        // The final figures, for `traffic` from now on.
                        Ok((_, s)) => {
                            if let Ok(mut last) = self.last.lock() {
                                *last = (s.rx_bytes, s.tx_bytes);
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "tunnel teardown"),
                    }
                    return;
                }
                Err(back) => {
                    t = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        tracing::warn!("tunnel still in use after 5 s; it closes when released");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_rights_are_told_apart_from_other_failures() {
        let denied = TunnelError::Io {
            what: "TUN device",
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        };
        assert!(matches!(classify(&denied), ErrorCause::NoPrivileges(_)));
        let ip = TunnelError::System(SystemError::Command {
            cmd: "ip link add".into(),
            stderr: "RTNETLINK answers: Operation not permitted".into(),
        });
        assert!(matches!(classify(&ip), ErrorCause::NoPrivileges(_)));
        let other = TunnelError::Config("no PrivateKey".into());
        let cause = classify(&other);
        assert!(matches!(cause, ErrorCause::Tunnel(_)), "{cause:?}");
        assert!(cause.is_transient() && !classify(&denied).is_transient());
    }
}
