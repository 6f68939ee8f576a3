//! The real [`TunnelFactory`]: `ferry-tunnel` in app mode (userspace stack behind local SOCKS5 and
//! HTTP CONNECT proxies) or system mode (TUN, routes, DNS). The CLI and the desktop app share it.
//!
//! System mode without CAP_NET_ADMIN goes through the privileged helper ([`HelperLink`]): one
//! control connection per user-level session (kept across reconnects), the helper's kill
//! switch following the tunnel's life (endpoint only until the first handshake is acked, only
//! the tunnel after, endpoint only again while reconnecting or after an error), cleared only by
//! [`HelperLink::apply`] with [`NetworkPolicy::Open`] (the user's disconnect).

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_tunnel::proxy::{Access, AppProxy, ProxyError, ProxyOptions};
use ferry_tunnel::tunnel::{Mode, SystemOptions, Tunnel, TunnelEnd};
use ferry_tunnel::wgconf::WgConfig;
use tokio::sync::watch;

use super::machine::{ErrorCause, NetworkPolicy};
use super::ports::{TunnelFactory, TunnelHandle};
use ferry_helper::client::Helper;
use ferry_helper::proto::{Event, Label};
use ferry_tunnel::error::TunnelError;
use ferry_tunnel::system::SystemError;

/// How tunnels are brought up.
#[derive(Debug, Clone)]
pub struct WgTunnels {
    /// System mode (route everything through a TUN device; needs CAP_NET_ADMIN).
    pub system: bool,
    /// App mode: where the SOCKS5 proxy listens; the HTTP CONNECT proxy takes the next port
    /// (none when the port is 0).
    pub proxy: SocketAddr,
    /// App mode: when `proxy` (or the port after it) is taken, listen on the next free pair of
    /// ports (up to 16 pairs above), else on any free ports, instead of failing.
    pub any_port_if_taken: bool,
    /// App mode: who may use the proxies (the default: only this process's UID, on loopback;
    /// a non-loopback `proxy` needs credentials).
    pub access: Access,
    /// System mode through the privileged helper (used when this process lacks CAP_NET_ADMIN).
    pub helper: HelperLink,
}

/// The user-level session's control connection to the privileged helper, shared by the tunnel
/// factory (which opens tunnels through it) and the front end (which passes on the user's
/// disconnect and hears `ferry disconnect` from other processes).
#[derive(Debug, Clone, Default)]
pub struct HelperLink {
    conn: Arc<tokio::sync::Mutex<Option<Arc<Helper>>>>,
    label: Arc<Mutex<Label>>,
    api: Arc<Mutex<Vec<SocketAddr>>>,
    allow_lan: Arc<std::sync::atomic::AtomicBool>,
    held: Arc<std::sync::atomic::AtomicBool>,
    requested: Arc<tokio::sync::Notify>,
}

impl HelperLink {
    /// A link whose sessions `ferry status` shows as `label`.
    pub fn new(label: Label) -> Self {
        let link = Self::default();
        if let Ok(mut l) = link.label.lock() {
            *l = label;
        }
        link
    }

    /// Sets what `ferry status` shows for the sessions opened from now on.
    pub fn set_label(&self, label: Label) {
        if let Ok(mut l) = self.label.lock() {
            *l = label;
        }
    }

    /// Lets the local network (RFC 1918, link-local, ULA; never DNS) through the kill switch
    /// for the sessions opened from now on.
    pub fn set_allow_lan(&self, allow: bool) {
        self.allow_lan
            .store(allow, std::sync::atomic::Ordering::Relaxed);
    }

    /// Sets the services' API servers, let through the block while reconnecting.
    pub fn set_api(&self, api: Vec<SocketAddr>) {
        if let Ok(mut a) = self.api.lock() {
            *a = api;
        }
    }

    fn info(&self) -> crate::helper::SessionInfo {
        crate::helper::SessionInfo {
            label: self.label(),
            allow_lan: self.allow_lan.load(std::sync::atomic::Ordering::Relaxed),
            api: self.api.lock().map(|a| a.clone()).unwrap_or_default(),
        }
    }

    fn label(&self) -> Label {
        self.label.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// The live connection, or a new one (after a first use or a lost helper).
    async fn get(&self) -> Result<Arc<Helper>, crate::helper::ClientError> {
        let mut slot = self.conn.lock().await;
        if let Some(h) = slot.as_ref().filter(|h| !h.is_lost()) {
            return Ok(h.clone());
        }
        let h = Arc::new(crate::helper::connect().await?);
        let (h2, requested) = (h.clone(), self.requested.clone());
        tokio::spawn(async move {
            tokio::select! {
                Event::DisconnectRequested = h2.event() => requested.notify_waiters(),
                _ = h2.lost() => {}
            }
        });
        *slot = Some(h.clone());
        Ok(h)
    }

    /// The session ended in an error and this front end is leaving: from now on
    /// [`HelperLink::apply`] keeps the block (the supervisor's shutdown passes through
    /// `Disconnected`, which is not the user's disconnect). Only `ferry disconnect` clears it.
    pub fn keep_blocking(&self) {
        self.held.store(true, std::sync::atomic::Ordering::SeqCst);
    }

    /// True while a control connection to the helper is open (a system-mode session through it
    /// that the user has not disconnected).
    pub async fn is_active(&self) -> bool {
        self.conn
            .lock()
            .await
            .as_ref()
            .is_some_and(|h| !h.is_lost())
    }

    /// Resolves when another process (`ferry disconnect`) asked the helper to end the session:
    /// the front end then disconnects as the user would.
    pub async fn disconnect_requested(&self) {
        self.requested.notified().await;
    }

    /// Passes the supervisor's network policy on. The tunnel's own life already moves the
    /// helper between endpoint-only and tunnel-only; [`NetworkPolicy::Open`] (the user's
    /// disconnect) is the one that clears the block, and only it: a front end that exits in an
    /// error without it leaves the block in place until `ferry disconnect`.
    pub async fn apply(&self, policy: NetworkPolicy) {
        if policy != NetworkPolicy::Open {
            return;
        }
        if self.held.load(std::sync::atomic::Ordering::SeqCst) {
            tracing::info!("the session ended in an error: the helper keeps blocking");
            return;
        }
        let taken = self.conn.lock().await.take();
        if let Some(h) = taken {
            if let Err(e) = h.disconnect().await {
                tracing::warn!(error = %e, "clearing the helper's block");
            }
        }
    }
}

/// A running tunnel and, in app mode, its proxies. The tunnel sits behind an `Arc` so waits on
/// it (handshake, end) never block `down`, which first tells those waits to let go.
pub struct WgTunnel {
    slot: Mutex<Option<Arc<Tunnel>>>,
    going_down: watch::Sender<bool>,
    /// App mode's proxies, shared with the tunnel that renews this one (see `renew`).
    proxy: Option<Arc<AppProxy>>,
    /// Whether this tunnel still owns `proxy` (a renewal hands it over: `down` then leaves the
    /// proxies running for the new tunnel).
    owns_proxy: std::sync::atomic::AtomicBool,
    /// The tunnel's inside addresses (a renewal keeps the proxies only for the same ones).
    addresses: Vec<ipnet::IpNet>,
    last: Mutex<(u64, u64)>,
    helper: Option<Arc<Helper>>,
}

async fn start_proxy(
    config: &WgConfig,
    listen: SocketAddr,
    http: Option<SocketAddr>,
    access: &Access,
) -> Result<(ferry_tunnel::pipe::PipeEnd, AppProxy), ProxyError> {
    let (ours, stack) = ferry_tunnel::pipe::pipe(1024);
    let proxy = AppProxy::start_with(
        stack,
        ProxyOptions {
            tunnel_addrs: config.interface.addresses.clone(),
            dns: config.interface.dns.clone(),
            socks_listen: listen,
            http_listen: http,
            mtu: 1420,
            access: access.clone(),
        },
    )
    .await?;
    Ok((ours, proxy))
}

/// Port pairs tried after the one asked for is taken (SOCKS5 on P + 2k, HTTP on P + 2k + 1).
const NEXT_PAIRS: u16 = 16;

/// The HTTP proxy's address for a SOCKS5 address: the next port (any free one for port 0).
fn http_next_to(socks: SocketAddr) -> Option<SocketAddr> {
    let port = match socks.port() {
        0 => 0,
        p => p.checked_add(1)?,
    };
    Some(SocketAddr::new(socks.ip(), port))
}

fn is_taken(e: &ProxyError) -> bool {
    matches!(e, ProxyError::Listen { source, .. } if source.kind() == std::io::ErrorKind::AddrInUse)
}

impl WgTunnels {
    /// Starts the proxies on `proxy` (HTTP on the next port); when that is taken and
    /// `any_port_if_taken`, on the next free pair above it, else on any free ports.
    async fn start_proxies(
        &self,
        config: &WgConfig,
    ) -> Result<(ferry_tunnel::pipe::PipeEnd, AppProxy), String> {
        let asked = self.proxy;
        let message = |e: ProxyError| format!("cannot start the local proxy on {asked}: {e}");
        let mut last = match start_proxy(config, asked, http_next_to(asked), &self.access).await {
            Ok(started) => return Ok(started),
            Err(e) if self.any_port_if_taken && asked.port() != 0 && is_taken(&e) => e,
            Err(e) => return Err(message(e)),
        };
        for k in 1..=NEXT_PAIRS {
            let Some(port) = asked.port().checked_add(2 * k).filter(|p| *p < u16::MAX) else {
                break;
            };
            let socks = SocketAddr::new(asked.ip(), port);
            match start_proxy(config, socks, http_next_to(socks), &self.access).await {
                Ok(started) => {
                    tracing::info!(%asked, %socks, "proxy port taken; using the next free one");
                    return Ok(started);
                }
                Err(e) if is_taken(&e) => last = e,
                Err(e) => return Err(message(e)),
            }
        }
        tracing::info!(error = %last, "proxy ports taken; using any free ports");
        let any = SocketAddr::new(asked.ip(), 0);
        start_proxy(config, any, Some(any), &self.access)
            .await
            .map_err(message)
    }
}

impl TunnelFactory for WgTunnels {
    type Tunnel = WgTunnel;

    async fn up(&self, config: WgConfig) -> Result<WgTunnel, ErrorCause> {
        if self.system && crate::helper::use_helper() {
            return self.up_via_helper(config).await;
        }
        let addresses = config.interface.addresses.clone();
        let (mode, proxy) = if self.system {
            (Mode::System(SystemOptions::default()), None)
        } else {
            let started = self
                .start_proxies(&config)
                .await
                .map_err(ErrorCause::Tunnel)?;
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
        Ok(WgTunnel::new(tunnel, proxy.map(Arc::new), addresses, None))
    }

    /// App mode keeps its proxies, and with them every open connection and the listening
    /// ports, when the new config has the same inside addresses (OrbNET's renewal reuses the
    /// config): the old WireGuard loop stops, hands its end of the stack's packet pipe back, and
    /// a new loop (a new UDP socket, a new handshake) takes it over. Otherwise, down and up.
    async fn renew(&self, old: &WgTunnel, config: WgConfig) -> Result<WgTunnel, ErrorCause> {
        let keep = old.proxy.clone().filter(|_| {
            old.addresses == config.interface.addresses
                && old.owns_proxy.load(std::sync::atomic::Ordering::SeqCst)
        });
        let Some(proxy) = keep else {
            old.down().await;
            return self.up(config).await;
        };
        let Some(pipe) = old.hand_over().await else {
            tracing::info!("the old tunnel kept its pipe; the proxies start again");
            old.shut_proxy();
            return self.up(config).await;
        };
        let addresses = config.interface.addresses.clone();
        match Tunnel::up(config, Mode::Pipe(pipe)).await {
            Ok(tunnel) => {
                tracing::info!("tunnel renewed under the same proxies; open connections go on");
                Ok(WgTunnel::new(tunnel, Some(proxy), addresses, None))
            }
            Err(e) => {
                proxy.shutdown();
                Err(classify(&e))
            }
        }
    }
}

impl WgTunnels {
    async fn up_via_helper(&self, config: WgConfig) -> Result<WgTunnel, ErrorCause> {
        use crate::helper::{ClientError, HelperTunnelError};
        let no_helper = |e: &ClientError| {
            matches!(
                e,
                ClientError::NotRunning { .. } | ClientError::NoPermission { .. }
            )
        };
        let helper = match self.helper.get().await {
            Ok(h) => h,
            Err(e) if no_helper(&e) => return Err(ErrorCause::NoPrivileges(e.to_string())),
            Err(e) => return Err(ErrorCause::Tunnel(e.to_string())),
        };
        let info = self.helper.info();
        match crate::helper::tunnel_via_helper(&helper, config, "ferry0", info).await {
            Ok(tunnel) => Ok(WgTunnel::new(tunnel, None, Vec::new(), Some(helper))),
            Err(HelperTunnelError::Helper(ClientError::Refused(m))) if m.contains("group") => {
                Err(ErrorCause::NoPrivileges(m))
            }
            Err(e) => Err(ErrorCause::Tunnel(format!(
                "cannot bring the tunnel up through the helper: {e}"
            ))),
        }
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
    fn new(
        tunnel: Tunnel,
        proxy: Option<Arc<AppProxy>>,
        addresses: Vec<ipnet::IpNet>,
        helper: Option<Arc<Helper>>,
    ) -> Self {
        WgTunnel {
            slot: Mutex::new(Some(Arc::new(tunnel))),
            going_down: watch::channel(false).0,
            proxy,
            owns_proxy: std::sync::atomic::AtomicBool::new(true),
            addresses,
            last: Mutex::new((0, 0)),
            helper,
        }
    }

    /// Stops the proxies, unless a renewal handed them to another tunnel.
    fn shut_proxy(&self) {
        if self
            .owns_proxy
            .swap(false, std::sync::atomic::Ordering::SeqCst)
        {
            if let Some(p) = &self.proxy {
                p.shutdown();
            }
        }
    }

    /// Brings this tunnel down for a renewal, leaving the proxies running, and gives back the
    /// WireGuard loop's end of their packet pipe (`None` if the loop could not be released).
    async fn hand_over(&self) -> Option<ferry_tunnel::pipe::PipeEnd> {
        let _ = self.traffic();
        self.going_down.send_replace(true);
        self.owns_proxy
            .store(false, std::sync::atomic::Ordering::SeqCst);
        let taken = self.slot.lock().ok().and_then(|mut s| s.take())?;
        self.release(taken).await
    }

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
            r = t.wait_first_handshake(timeout) => r.map(|_| ()).map_err(|e| e.to_string())?,
            _ = self.until_down() => return Err("the tunnel was taken down".into()),
        }
        // Through the helper: only once it has switched the block to the tunnel may the
        // session (and its meter) start.
        if let Some(h) = &self.helper {
            h.handshake()
                .await
                .map_err(|e| format!("the helper did not take the handshake: {e}"))?;
        }
        Ok(())
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

    fn latency(&self) -> Option<Duration> {
        self.get().and_then(|t| t.stats().handshake_rtt)
    }

    fn http_proxy(&self) -> Option<String> {
        self.proxy
            .as_ref()
            .and_then(|p| p.http_addr())
            .map(|a| a.to_string())
    }

    async fn closed(&self) -> String {
        let Some(t) = self.get() else {
            return "the tunnel went down".into();
        };
        let helper_lost = async {
            match &self.helper {
                Some(h) => h.lost().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            end = t.closed() => match end {
                TunnelEnd::Down => "the tunnel went down".into(),
                TunnelEnd::Failed(why) => why,
            },
            _ = helper_lost => "lost the connection to the Ferry helper".into(),
            _ = self.until_down() => "the tunnel was taken down".into(),
        }
    }

    async fn down(&self) {
        // Figures so far, in case the teardown cannot report the final ones.
        let _ = self.traffic();
        self.going_down.send_replace(true);
        self.shut_proxy();
        let taken = self.slot.lock().ok().and_then(|mut s| s.take());
        let Some(t) = taken else { return };
        let _ = self.release(t).await;
        // Through the helper: routes and DNS go, the block returns to the endpoint.
        if let Some(h) = &self.helper {
            if let Err(e) = h.close().await {
                tracing::debug!(error = %e, "helper close (session already ended?)");
            }
        }
    }
}

impl WgTunnel {
    /// Stops the tunnel once no wait holds it; gives back its inside pipe (app mode).
    async fn release(&self, mut t: Arc<Tunnel>) -> Option<ferry_tunnel::pipe::PipeEnd> {
        // Waits that hold a clone let go at once (they watch `going_down`).
        for _ in 0..500 {
            match Arc::try_unwrap(t) {
                Ok(tunnel) => {
                    return match tunnel.down_keeping_pipe().await {
                        // The final figures, for `traffic` from now on.
                        Ok((_, s, pipe)) => {
                            if let Ok(mut last) = self.last.lock() {
                                *last = (s.rx_bytes, s.tx_bytes);
                            }
                            pipe
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "tunnel teardown");
                            None
                        }
                    };
                }
                Err(back) => {
                    t = back;
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
        tracing::warn!("tunnel still in use after 5 s; it closes when released");
        None
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn allow_lan_reaches_what_the_helper_is_asked_for() {
        let link = HelperLink::default();
        assert!(
            !link.info().allow_lan,
            "the LAN is blocked unless the user allows it"
        );
        let clone = link.clone();
        clone.set_allow_lan(true);
        assert!(link.info().allow_lan, "clones share the setting");
        link.set_allow_lan(false);
        assert!(!clone.info().allow_lan);
    }

    #[test]
    fn settings_saved_before_allow_lan_existed_still_load() {
        let mut json = serde_json::to_value(crate::app::contract::Settings::default()).unwrap();
        json.as_object_mut().unwrap().remove("allow_lan");
        let back: crate::app::contract::Settings = serde_json::from_value(json).unwrap();
        assert!(!back.allow_lan);
    }

    fn config() -> WgConfig {
        WgConfig::parse(
            "[Interface]\nPrivateKey = yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=\n\
             Address = 10.64.0.2/32\n\n[Peer]\n\
             PublicKey = xTIBA5rboUvnH4htodjb6e697QjLERt1NAB4mZqp8Dg=\n\
             Endpoint = 127.0.0.1:9\nAllowedIPs = 0.0.0.0/0\n",
        )
        .unwrap()
    }

    fn tunnels(proxy: SocketAddr, any_port_if_taken: bool) -> WgTunnels {
        WgTunnels {
            system: false,
            proxy,
            any_port_if_taken,
            access: Access::default(),
            helper: HelperLink::default(),
        }
    }

    #[tokio::test]
    async fn a_taken_port_moves_both_proxies_to_the_next_free_pair() {
        // The port asked for is taken.
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let asked = taken.local_addr().unwrap();
        let (_, proxy) = tunnels(asked, true).start_proxies(&config()).await.unwrap();
        let (socks, http) = (proxy.socks_addr(), proxy.http_addr().unwrap());
        assert_ne!(socks.port(), asked.port());
        assert_eq!(socks.ip(), asked.ip());
        if socks.port() > asked.port() && socks.port() <= asked.port() + 2 * NEXT_PAIRS {
            assert_eq!(http.port(), socks.port() + 1);
            assert_eq!((socks.port() - asked.port()) % 2, 0);
        }
        proxy.shutdown();
    }

    #[tokio::test]
    async fn a_taken_port_fails_when_it_was_asked_for_exactly() {
        let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let asked = taken.local_addr().unwrap();
        let e = tunnels(asked, false)
            .start_proxies(&config())
            .await
            .unwrap_err();
        assert!(e.contains(&asked.to_string()), "{e}");
    }

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
