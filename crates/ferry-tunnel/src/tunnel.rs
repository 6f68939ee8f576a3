//! [`Tunnel`]: one WireGuard tunnel to one peer, in system mode (TUN device, routes, DNS) or app
//! mode (userspace stack behind a local proxy), with stats and a clean `down`.
//!
//! ```no_run
//! # async fn f(cfg: ferry_tunnel::wgconf::WgConfig) -> Result<(), ferry_tunnel::error::TunnelError> {
//! use ferry_tunnel::tunnel::{Mode, SystemOptions, Tunnel};
//! let t = Tunnel::up(cfg, Mode::System(SystemOptions::default())).await?;
//! t.wait_first_handshake(std::time::Duration::from_secs(5)).await?;
//! println!("{:?}", t.stats());
//! t.down().await?;
//! # Ok(()) }
//! ```

use crate::error::TunnelError;
use crate::peer::dataplane::SystemLoop;
use crate::peer::engine::{Engine, EngineConfig};
use crate::peer::run::{PeerLoop, PeerStats};
use crate::pipe::PipeEnd;
use crate::system::tun::{valid_ifname, TunDevice};
use crate::system::{self, SystemPlan};
use crate::wgconf::{Endpoint, WgConfig};
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::time::Duration;
use tokio::sync::{oneshot, watch};

/// Default MTU when the config has none (as wg-quick on a 1500-byte link).
pub const DEFAULT_MTU: u16 = 1420;

/// System-mode settings.
#[derive(Debug, Clone)]
pub struct SystemOptions {
    /// TUN interface name (default `ferry0`).
    pub ifname: String,
    /// Where the undo journal lives (default `/run/ferry`).
    pub state_dir: PathBuf,
    /// resolv.conf to edit when systemd-resolved is absent (default `/etc/resolv.conf`).
    pub resolv_conf: PathBuf,
    /// fwmark of the tunnel's UDP socket and routing table for full tunnels (default 51820).
    pub fwmark: u32,
}

impl Default for SystemOptions {
    fn default() -> Self {
        Self {
            ifname: "ferry0".into(),
            state_dir: PathBuf::from("/run/ferry"),
            resolv_conf: PathBuf::from("/etc/resolv.conf"),
            fwmark: 51820,
        }
    }
}

/// A TUN device and UDP socket set up by someone else (the privileged helper, which also
/// applied addresses, routes, DNS and the kill switch): the tunnel only runs the data plane.
#[derive(Debug)]
pub struct HandedDevice {
    /// The TUN descriptor.
    pub tun: std::os::fd::OwnedFd,
    /// It was opened with `IFF_VNET_HDR` and offloads.
    pub vnet: bool,
    /// The interface name.
    pub ifname: String,
    /// The UDP socket (bound, with the fwmark).
    pub socket: std::net::UdpSocket,
    /// The interface MTU.
    pub mtu: u16,
}

/// How the tunnel reaches applications.
#[derive(Debug)]
pub enum Mode {
    /// Whole-system: a TUN device with routes for AllowedIPs and the config's DNS (root).
    System(SystemOptions),
    /// Decrypted packets go to, and encrypted ones come from, a packet pipe: for a userspace
    /// stack (app mode's proxy, tests). Needs no privileges.
    Pipe(PipeEnd),
    /// System mode with descriptors handed over by the helper: no system setup here at all.
    Handed(HandedDevice),
}

/// Why a tunnel ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TunnelEnd {
    /// `down()` was called or the handle dropped.
    Down,
    /// The packet loop failed (message says why).
    Failed(String),
}

/// A stats snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelStats {
    /// Decrypted IP bytes received.
    pub rx_bytes: u64,
    /// IP bytes sent into the tunnel.
    pub tx_bytes: u64,
    /// Age of the current session's handshake (`None`: none yet, or expired).
    pub last_handshake_age: Option<Duration>,
    /// Handshakes completed so far.
    pub handshakes: u64,
    /// The peer's UDP endpoint.
    pub endpoint: Option<SocketAddr>,
    /// Datagrams and packets dropped.
    pub dropped: u64,
    /// Round trip of the last handshake Ferry initiated: the latency to the peer.
    pub handshake_rtt: Option<Duration>,
}

impl From<&PeerStats> for TunnelStats {
    fn from(s: &PeerStats) -> Self {
        Self {
            rx_bytes: s.rx_bytes,
            tx_bytes: s.tx_bytes,
            last_handshake_age: s.last_handshake_age(),
            handshakes: s.handshakes,
            endpoint: s.endpoint,
            dropped: s.dropped,
            handshake_rtt: s.handshake_rtt,
        }
    }
}

/// A running tunnel. Dropping it stops the tunnel (system changes are reverted by the task,
/// or at the next start if the process dies first); prefer [`Tunnel::down`].
#[derive(Debug)]
pub struct Tunnel {
    stats: watch::Receiver<PeerStats>,
    ended: watch::Receiver<Option<TunnelEnd>>,
    shutdown: Option<oneshot::Sender<()>>,
    /// Ends with the inside pipe in [`Mode::Pipe`] (for [`Tunnel::down_keeping_pipe`]).
    task: Option<tokio::task::JoinHandle<Option<PipeEnd>>>,
    interface: Option<String>,
    local_addr: SocketAddr,
}

async fn resolve(ep: &Endpoint) -> Result<SocketAddr, TunnelError> {
    match ep {
        Endpoint::Addr(a) => Ok(*a),
        Endpoint::Host(h, p) => tokio::net::lookup_host((h.as_str(), *p))
            .await
            .map_err(|e| TunnelError::Resolve {
                host: h.clone(),
                reason: e.to_string(),
            })?
            .next()
            .ok_or_else(|| TunnelError::Resolve {
                host: h.clone(),
                reason: "no addresses".into(),
            }),
    }
}

/// The tunnel's UDP socket: non-blocking, large buffers (forced when allowed), bound to
/// `listen_port` (any when `None`) in the endpoint's family, with `fwmark` when given.
pub fn udp_socket(
    endpoint: Option<SocketAddr>,
    listen_port: Option<u16>,
    fwmark: Option<u32>,
) -> Result<std::net::UdpSocket, TunnelError> {
    use socket2::{Domain, Protocol, Socket, Type};
    let io = |source| TunnelError::Io {
        what: "UDP socket",
        source,
    };
    let v6 = endpoint.is_some_and(|e| e.is_ipv6());
    let (domain, bind) = if v6 {
        (
            Domain::IPV6,
            SocketAddr::from((Ipv6Addr::UNSPECIFIED, listen_port.unwrap_or(0))),
        )
    } else {
        (
            Domain::IPV4,
            SocketAddr::from((Ipv4Addr::UNSPECIFIED, listen_port.unwrap_or(0))),
        )
    };
    let s = Socket::new(
        domain,
        Type::DGRAM.nonblocking().cloexec(),
        Some(Protocol::UDP),
    )
    .map_err(io)?;
    if let Some(m) = fwmark {
        s.set_mark(m).map_err(io)?;
    }
    // Large socket buffers absorb bursts; forcing needs CAP_NET_ADMIN, so fall back quietly.
    const BUF: usize = 4 << 20;
    if !set_sockopt_int(&s, libc::SO_RCVBUFFORCE, BUF) {
        let _ = s.set_recv_buffer_size(BUF);
    }
    if !set_sockopt_int(&s, libc::SO_SNDBUFFORCE, BUF) {
        let _ = s.set_send_buffer_size(BUF);
    }
    s.bind(&bind.into()).map_err(io)?;
    Ok(s.into())
}

fn local_addr_of(s: &std::net::UdpSocket) -> Result<SocketAddr, TunnelError> {
    s.local_addr().map_err(|source| TunnelError::Io {
        what: "UDP socket",
        source,
    })
}

/// The packet loop a tunnel runs: over a pipe (async) or a TUN device (threads).
enum DataPlane {
    Pipe(PeerLoop),
    System(SystemLoop),
}

fn set_sockopt_int(s: &socket2::Socket, opt: libc::c_int, value: usize) -> bool {
    use std::os::fd::AsRawFd as _;
    let v = libc::c_int::try_from(value).unwrap_or(libc::c_int::MAX);
    // SAFETY: a plain SOL_SOCKET integer option on a socket we own; `v` outlives the call.
    let rc = unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            opt,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    rc == 0
}

impl Tunnel {
    /// Brings the tunnel up: validates the config (a private key, exactly one peer), resolves
    /// the endpoint, opens the socket (and in system mode the TUN device, routes and DNS after
    /// reverting leftovers of a crashed run), then starts the packet loop, which begins the
    /// handshake at once. Returns before the handshake completes: see
    /// [`Tunnel::wait_first_handshake`].
    pub async fn up(config: WgConfig, mode: Mode) -> Result<Self, TunnelError> {
        let key = config
            .interface
            .private_key
            .clone()
            .ok_or_else(|| TunnelError::Config("no PrivateKey".into()))?;
        let [peer] = config.peers.as_slice() else {
            return Err(TunnelError::Config(format!(
                "need exactly one [Peer], got {}",
                config.peers.len()
            )));
        };
        let endpoint = match &peer.endpoint {
            Some(e) => Some(resolve(e).await?),
            None => None,
        };
        let engine = Engine::new(
            &EngineConfig {
                private_key: key,
                peer_public_key: peer.public_key,
                preshared_key: peer.preshared_key.clone(),
                persistent_keepalive: peer.persistent_keepalive,
                allowed_ips: peer.allowed_ips.clone(),
            },
            rand::random::<u32>(),
        );
        let (stats_tx, stats_rx) = watch::channel(PeerStats::default());
        let (ended_tx, ended_rx) = watch::channel(None);
        let (shutdown_tx, shutdown_rx) = oneshot::channel();

        let (data_plane, guard, interface, local_addr) = match mode {
            Mode::Pipe(pipe) => {
                let socket = udp_socket(endpoint, config.interface.listen_port, None)?;
                let local_addr = local_addr_of(&socket)?;
                let socket =
                    tokio::net::UdpSocket::from_std(socket).map_err(|source| TunnelError::Io {
                        what: "UDP socket",
                        source,
                    })?;
                let lp = PeerLoop {
                    engine,
                    socket,
                    endpoint,
                    inside: pipe,
                    stats: stats_tx,
                };
                (DataPlane::Pipe(lp), None, None, local_addr)
            }
            Mode::System(opts) => {
                if !valid_ifname(&opts.ifname) {
                    return Err(TunnelError::Config(format!(
                        "bad interface name {:?}",
                        opts.ifname
                    )));
                }
                let recovered = system::recover_stale(&opts.state_dir).await?;
                if recovered > 0 {
                    tracing::info!(recovered, "reverted system changes left by a crashed run");
                }
                let mtu = config.interface.mtu.unwrap_or(DEFAULT_MTU);
                let plan = SystemPlan {
                    ifname: opts.ifname.clone(),
                    addresses: config.interface.addresses.clone(),
                    mtu,
                    allowed_ips: peer.allowed_ips.clone(),
                    dns: config.interface.dns.clone(),
                    dns_search: config.interface.dns_search.clone(),
                    fwmark: opts.fwmark,
                    state_dir: opts.state_dir.clone(),
                    resolv_conf: opts.resolv_conf.clone(),
                };
                let full = plan.full_tunnel(false) || plan.full_tunnel(true);
                let tun = TunDevice::open(&opts.ifname).map_err(|source| TunnelError::Io {
                    what: "TUN device",
                    source,
                })?;
                let socket = udp_socket(
                    endpoint,
                    config.interface.listen_port,
                    full.then_some(opts.fwmark),
                )?;
                let local_addr = local_addr_of(&socket)?;
                let guard = system::apply(&plan).await?;
                let name = tun.name().to_string();
                let sl = SystemLoop {
                    engine,
                    socket,
                    endpoint,
                    tun,
                    mtu,
                    stats: stats_tx,
                };
                (DataPlane::System(sl), Some(guard), Some(name), local_addr)
            }
            Mode::Handed(dev) => {
                let io = |what| move |source| TunnelError::Io { what, source };
                dev.socket.set_nonblocking(true).map_err(io("UDP socket"))?;
                let local_addr = local_addr_of(&dev.socket)?;
                let tun = TunDevice::from_fd(dev.tun, dev.ifname.clone(), dev.vnet)
                    .map_err(io("TUN device"))?;
                let sl = SystemLoop {
                    engine,
                    socket: dev.socket,
                    endpoint,
                    tun,
                    mtu: dev.mtu,
                    stats: stats_tx,
                };
                (DataPlane::System(sl), None, Some(dev.ifname), local_addr)
            }
        };
        let task = tokio::spawn(async move {
            let (res, pipe) = match data_plane {
                DataPlane::Pipe(mut lp) => {
                    let res = lp.run(shutdown_rx).await;
                    (res, Some(lp.inside))
                }
                DataPlane::System(sl) => (sl.run(shutdown_rx).await, None),
            };
            // The loop (and with it the TUN device) is gone; now revert the system.
            let mut end = match res {
                Ok(()) => TunnelEnd::Down,
                Err(e) => {
                    tracing::warn!(error = %e, "tunnel failed");
                    TunnelEnd::Failed(e.to_string())
                }
            };
            if let Some(g) = guard {
                if let Err(e) = g.teardown().await {
                    tracing::warn!(error = %e, "teardown");
                    if end == TunnelEnd::Down {
                        end = TunnelEnd::Failed(format!("teardown: {e}"));
                    }
                }
            }
            let _ = ended_tx.send(Some(end));
            pipe
        });
        Ok(Self {
            stats: stats_rx,
            ended: ended_rx,
            shutdown: Some(shutdown_tx),
            task: Some(task),
            interface,
            local_addr,
        })
    }

    /// The current stats (refreshed every 250 ms and on each handshake).
    pub fn stats(&self) -> TunnelStats {
        TunnelStats::from(&*self.stats.borrow())
    }

    /// The TUN interface name in system mode.
    pub fn interface(&self) -> Option<&str> {
        self.interface.as_deref()
    }

    /// The local UDP address of the tunnel's socket.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Waits until the first handshake completes, the tunnel ends, or `timeout` passes.
    pub async fn wait_first_handshake(
        &self,
        timeout: Duration,
    ) -> Result<TunnelStats, TunnelError> {
        let mut stats = self.stats.clone();
        let mut ended = self.ended.clone();
        let wait = async {
            tokio::select! {
                r = stats.wait_for(|s| s.handshakes > 0) => match r {
                    Ok(s) => Ok(TunnelStats::from(&*s)),
                    Err(_) => Err(TunnelError::Closed("stopped".into())),
                },
                e = ended.wait_for(Option::is_some) => Err(TunnelError::Closed(
                    e.ok().and_then(|e| e.clone()).map(|e| format!("{e:?}")).unwrap_or_default(),
                )),
            }
        };
        tokio::time::timeout(timeout, wait)
            .await
            .map_err(|_| TunnelError::HandshakeTimeout(timeout))?
    }

    /// Resolves when the tunnel has ended (after teardown), telling why.
    pub async fn closed(&self) -> TunnelEnd {
        let mut ended = self.ended.clone();
        let r = ended.wait_for(Option::is_some).await;
        r.ok()
            .and_then(|e| e.clone())
            .unwrap_or(TunnelEnd::Failed("task lost".into()))
    }

    /// Stops the packet loop and reverts every system change. Returns how the tunnel ended.
    pub async fn down(self) -> Result<TunnelEnd, TunnelError> {
        self.down_with_stats().await.map(|(end, _)| end)
    }

    /// Like [`Tunnel::down`], also returning the final stats (the loop publishes them as it
    /// stops, so they include the traffic since the last periodic refresh).
    pub async fn down_with_stats(self) -> Result<(TunnelEnd, TunnelStats), TunnelError> {
        self.down_keeping_pipe()
            .await
            .map(|(end, stats, _)| (end, stats))
    }

    /// Like [`Tunnel::down_with_stats`], also giving back the inside pipe of a [`Mode::Pipe`]
    /// tunnel: a new tunnel (a new UDP socket and WireGuard session, e.g. after a network
    /// change) can take it over, and the userspace stack behind it, its connections and its
    /// listeners go on as they were.
    pub async fn down_keeping_pipe(
        mut self,
    ) -> Result<(TunnelEnd, TunnelStats, Option<PipeEnd>), TunnelError> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        let mut pipe = None;
        if let Some(task) = self.task.take() {
            pipe = task.await.map_err(|e| TunnelError::Closed(e.to_string()))?;
        }
        let end = self.ended.borrow().clone().unwrap_or(TunnelEnd::Down);
        Ok((end, self.stats(), pipe))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::PrivateKey;
    use crate::pipe::pipe;
    use bytes::Bytes;

    fn ipv4(src: [u8; 4], dst: [u8; 4], payload: &[u8]) -> Bytes {
        let total = 20 + payload.len();
        let mut p = vec![0u8; total];
        p[0] = 0x45;
        p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
        p[8] = 64;
        p[9] = 253;
        p[12..16].copy_from_slice(&src);
        p[16..20].copy_from_slice(&dst);
        p[20..].copy_from_slice(payload);
        Bytes::from(p)
    }

    fn configs() -> (WgConfig, WgConfig) {
        let server = PrivateKey::generate();
        let client = PrivateKey::generate();
        let s = format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.9.0.1/24\nListenPort = 0\n[Peer]\nPublicKey = {}\nAllowedIPs = 10.9.0.2/32\n",
            server.to_base64(),
            client.public_key()
        );
        let c = format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.9.0.2/32\n[Peer]\nPublicKey = {}\nEndpoint = 127.0.0.1:1\nAllowedIPs = 0.0.0.0/0\nPersistentKeepalive = 25\n",
            client.to_base64(),
            server.public_key()
        );
        (WgConfig::parse(&s).unwrap(), WgConfig::parse(&c).unwrap())
    }

    #[tokio::test]
    async fn two_tunnels_over_loopback_carry_packets_both_ways() {
        let (server_cfg, mut client_cfg) = configs();
        let (server_side, mut server_app) = pipe(64);
        let server = Tunnel::up(server_cfg, Mode::Pipe(server_side))
            .await
            .unwrap();
        let port = server.local_addr().port();
        client_cfg.peers[0].endpoint =
            Some(Endpoint::Addr(SocketAddr::from(([127, 0, 0, 1], port))));
        let (client_side, mut client_app) = pipe(64);
        let client = Tunnel::up(client_cfg, Mode::Pipe(client_side))
            .await
            .unwrap();

        // Garbage at the server's port is ignored.
        let junk = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
        for d in [&[4u8, 0, 0, 0, 1, 2, 3][..], &[1u8; 148][..], &[0u8; 3][..]] {
            junk.send_to(d, ("127.0.0.1", port)).await.unwrap();
        }

        let hs = client
            .wait_first_handshake(Duration::from_secs(5))
            .await
            .unwrap();
        assert_eq!(hs.handshakes, 1);
        assert!(hs.last_handshake_age.unwrap() < Duration::from_secs(5));
        // The initiator measured the handshake's round trip (its latency to the peer); the
        // responder initiated nothing, so it has none.
        let rtt = hs.handshake_rtt.expect("a measured round trip");
        assert!(
            rtt < Duration::from_secs(5),
            "within the handshake timeout: {rtt:?}"
        );
        assert_eq!(server.stats().handshake_rtt, None);

        let up = ipv4([10, 9, 0, 2], [10, 9, 0, 1], b"ping from client");
        client_app.tx.send(up.clone()).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), server_app.rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, up);
        let down = ipv4([10, 9, 0, 1], [10, 9, 0, 2], b"pong from server");
        server_app.tx.send(down.clone()).await.unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), client_app.rx.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(got, down);

        // A packet from a source outside the server's AllowedIPs for the client is dropped.
        let spoof = ipv4([10, 9, 0, 77], [10, 9, 0, 1], b"spoofed");
        client_app.tx.send(spoof).await.unwrap();
        let none = tokio::time::timeout(Duration::from_millis(300), server_app.rx.recv()).await;
        assert!(none.is_err(), "spoofed source must not arrive");

        // Stats are published within a tick.
        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            let s = client.stats();
            if s.tx_bytes >= up.len() as u64 && s.rx_bytes == down.len() as u64 {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "stats never updated: {s:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            server.stats().endpoint,
            Some(SocketAddr::from((
                [127, 0, 0, 1],
                client.local_addr().port()
            )))
        );

        assert_eq!(client.down().await.unwrap(), TunnelEnd::Down);
        assert_eq!(server.down().await.unwrap(), TunnelEnd::Down);
    }

    #[tokio::test]
    async fn down_with_stats_counts_traffic_since_the_last_refresh() {
        let (server_cfg, mut client_cfg) = configs();
        let (server_side, mut server_app) = pipe(64);
        let server = Tunnel::up(server_cfg, Mode::Pipe(server_side))
            .await
            .unwrap();
        client_cfg.peers[0].endpoint = Some(Endpoint::Addr(SocketAddr::from((
            [127, 0, 0, 1],
            server.local_addr().port(),
        ))));
        let (client_side, client_app) = pipe(64);
        let client = Tunnel::up(client_cfg, Mode::Pipe(client_side))
            .await
            .unwrap();
        client
            .wait_first_handshake(Duration::from_secs(5))
            .await
            .unwrap();
        let up = ipv4([10, 9, 0, 2], [10, 9, 0, 1], b"a short session");
        client_app.tx.send(up.clone()).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), server_app.rx.recv())
            .await
            .unwrap()
            .unwrap();
        // Straight away, well within the 250 ms refresh: the final figures still count it.
        let (end, s) = server.down_with_stats().await.unwrap();
        assert_eq!(end, TunnelEnd::Down);
        assert_eq!(s.rx_bytes, up.len() as u64, "{s:?}");
        let (_, c) = client.down_with_stats().await.unwrap();
        assert_eq!(c.tx_bytes, up.len() as u64, "{c:?}");
    }

    #[tokio::test]
    async fn closed_reports_a_dead_inside() {
        let (server_cfg, _) = configs();
        let (side, app) = pipe(4);
        let t = Tunnel::up(server_cfg, Mode::Pipe(side)).await.unwrap();
        drop(app);
        // The loop notices the closed pipe only when it next reads from it.
        let end = tokio::time::timeout(Duration::from_secs(5), t.closed())
            .await
            .unwrap();
        assert!(matches!(end, TunnelEnd::Failed(_)), "{end:?}");
    }

    #[tokio::test]
    async fn up_refuses_unusable_configs() {
        let (mut cfg, _) = configs();
        cfg.interface.private_key = None;
        let (side, _app) = pipe(4);
        assert!(matches!(
            Tunnel::up(cfg, Mode::Pipe(side)).await,
            Err(TunnelError::Config(_))
        ));
        let (mut cfg, _) = configs();
        cfg.peers.clear();
        let (side, _app) = pipe(4);
        assert!(matches!(
            Tunnel::up(cfg, Mode::Pipe(side)).await,
            Err(TunnelError::Config(_))
        ));
    }
}
