//! `ferry up CONFIG.conf [--all] [--proxy ADDR]`: brings up a plain WireGuard config, prints the
//! handshake and stats, and tears down on SIGINT/SIGTERM.

use anyhow::Context as _;
use ferry_tunnel::proxy::AppProxy;
use ferry_tunnel::tunnel::{Mode, SystemOptions, Tunnel, TunnelEnd, TunnelStats};
use ferry_tunnel::wgconf::WgConfig;
use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::signal::unix::{signal, SignalKind};

/// Arguments of `ferry up`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A wg-quick config file (hook keys such as PostUp are refused).
    pub config: PathBuf,
    /// System mode: a TUN device with routes for AllowedIPs and the config's DNS (needs root
    /// or CAP_NET_ADMIN). Without it, app mode: a local SOCKS5/HTTP proxy, no privileges.
    #[arg(long)]
    pub all: bool,
    /// System mode through the helper: let the local network (printers, file shares; RFC 1918,
    /// link-local and ULA addresses, never DNS) through the kill switch.
    #[arg(long, requires = "all")]
    pub allow_lan: bool,
    /// App mode: where the SOCKS5 proxy listens (HTTP CONNECT on the next port). A non-loopback
    /// address needs --proxy-auth.
    #[arg(long, default_value = "127.0.0.1:1080")]
    pub proxy: SocketAddr,
    /// App mode: a file holding `user:password` (not readable by group or others) that every
    /// client of the proxies must present; without it only your UID may use them, on loopback.
    #[arg(long, value_name = "FILE")]
    pub proxy_auth: Option<PathBuf>,
    /// System mode: the TUN interface name.
    #[arg(long, default_value = "ferry0")]
    pub interface: String,
    /// System mode: where the undo journal lives.
    #[arg(long, env = "FERRY_SYSTEM_STATE_DIR", default_value = "/run/ferry")]
    pub state_dir: PathBuf,
    /// Seconds between stats lines (0: only at handshake and exit).
    #[arg(long, default_value_t = 5)]
    pub stats_interval: u64,
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = bytes as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{bytes} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

fn stats_line(s: &TunnelStats) -> String {
    let hs = s
        .last_handshake_age
        .map(|a| format!("{}s ago", a.as_secs()))
        .unwrap_or_else(|| "none".into());
    let ep = s
        .endpoint
        .map(|e| e.to_string())
        .unwrap_or_else(|| "unknown".into());
    format!(
        "rx {} tx {} | last handshake {hs} | endpoint {ep} | dropped {}",
        human(s.rx_bytes),
        human(s.tx_bytes),
        s.dropped
    )
}

/// Runs `ferry up`.
pub async fn run(args: Args) -> anyhow::Result<u8> {
    super::init_tracing();
    let access = match args.all {
        true => ferry_tunnel::proxy::Access::default(),
        false => super::proxy_access(args.proxy, args.proxy_auth.as_deref())?,
    };
    let meta = std::fs::metadata(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    if meta.permissions().mode() & 0o077 != 0 {
        eprintln!(
            "warning: {} is readable by others and holds a private key (chmod 600 it)",
            args.config.display()
        );
    }
    let text = std::fs::read_to_string(&args.config)
        .with_context(|| format!("cannot read {}", args.config.display()))?;
    let config = WgConfig::parse(&text).with_context(|| format!("{}", args.config.display()))?;

    let mut sigint = signal(SignalKind::interrupt())?;
    let mut sigterm = signal(SignalKind::terminate())?;
    let started = Instant::now();
    if args.all && ferry_core::helper::use_helper() {
        return run_via_helper(args, config, started, sigint, sigterm).await;
    }
    let (mode, proxy) = if args.all {
        let mode = Mode::System(SystemOptions {
            ifname: args.interface.clone(),
            state_dir: args.state_dir.clone(),
            ..SystemOptions::default()
        });
        (mode, None)
    } else {
        // App mode: the userspace stack and its proxies on one end of a pipe, the tunnel on
        // the other. HTTP CONNECT listens on the SOCKS port + 1.
        let (ours, stack) = ferry_tunnel::pipe::pipe(1024);
        let http = (args.proxy.port() != 0)
            .then(|| SocketAddr::new(args.proxy.ip(), args.proxy.port().saturating_add(1)));
        let proxy = AppProxy::start_with(
            stack,
            ferry_tunnel::proxy::ProxyOptions {
                tunnel_addrs: config.interface.addresses.clone(),
                dns: config.interface.dns.clone(),
                socks_listen: args.proxy,
                http_listen: http,
                mtu: 1420,
                access,
            },
        )
        .await
        .context("starting the local proxy")?;
        (Mode::Pipe(ours), Some(proxy))
    };
    let tunnel = Tunnel::up(config, mode)
        .await
        .context("bringing the tunnel up")?;
    match (tunnel.interface(), &proxy) {
        (Some(ifname), _) => println!("up: system mode on {ifname}, UDP {}", tunnel.local_addr()),
        (None, Some(p)) => println!(
            "up: app mode, SOCKS5 {}{}, UDP {}",
            p.socks_addr(),
            p.http_addr()
                .map(|h| format!(", HTTP CONNECT {h}"))
                .unwrap_or_default(),
            tunnel.local_addr()
        ),
        (None, None) => println!("up: UDP {}", tunnel.local_addr()),
    }

    let mut handshake_reported = false;
    let interval = Duration::from_secs(args.stats_interval.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let end = loop {
        tokio::select! {
            _ = sigint.recv() => break None,
            _ = sigterm.recv() => break None,
            end = tunnel.closed() => break Some(end),
            r = tunnel.wait_first_handshake(Duration::from_secs(3600)), if !handshake_reported => {
                handshake_reported = true;
                if let Ok(s) = r {
                    println!("handshake: completed {} ms after start | {}", started.elapsed().as_millis(), stats_line(&s));
                }
            }
            _ = ticker.tick(), if args.stats_interval > 0 => println!("{}", stats_line(&tunnel.stats())),
        }
    };
    let last = tunnel.stats();
    let end = match end {
        Some(end) => end,
        None => tunnel.down().await.context("tearing down")?,
    };
    if let Some(p) = proxy {
        p.shutdown();
    }
    println!("down: {}", stats_line(&last));
    match end {
        TunnelEnd::Down => Ok(0),
        TunnelEnd::Failed(why) => {
            eprintln!("ferry up: tunnel failed: {why}");
            Ok(1)
        }
    }
}

/// `ferry up --all` without CAP_NET_ADMIN: the helper sets up the system and the kill switch,
/// this process runs the data plane. SIGINT/SIGTERM and `ferry disconnect` are the user's
/// disconnect (the block is cleared); a failure keeps the block until then.
async fn run_via_helper(
    args: Args,
    config: WgConfig,
    started: Instant,
    mut sigint: tokio::signal::unix::Signal,
    mut sigterm: tokio::signal::unix::Signal,
) -> anyhow::Result<u8> {
    let helper = ferry_core::helper::connect().await?;
    let label = ferry_helper::proto::Label {
        service: "wireguard".into(),
        region: args
            .config
            .file_stem()
            .map(|s| s.to_string_lossy().chars().take(64).collect())
            .unwrap_or_default(),
    };
    let info = ferry_core::helper::SessionInfo {
        label,
        allow_lan: args.allow_lan,
        ..Default::default()
    };
    let tunnel = ferry_core::helper::tunnel_via_helper(&helper, config, &args.interface, info)
        .await
        .context("bringing the tunnel up through the Ferry helper")?;
    println!(
        "up: system mode through ferry-helper on {}, UDP {}",
        tunnel.interface().unwrap_or("?"),
        tunnel.local_addr()
    );
    enum End {
        User,
        Tunnel(TunnelEnd),
        HelperLost,
    }
    let mut handshake_reported = false;
    let interval = Duration::from_secs(args.stats_interval.max(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
    let end = loop {
        tokio::select! {
            _ = sigint.recv() => break End::User,
            _ = sigterm.recv() => break End::User,
            _ = helper.event() => break End::User,
            _ = helper.lost() => break End::HelperLost,
            end = tunnel.closed() => break End::Tunnel(end),
            r = tunnel.wait_first_handshake(Duration::from_secs(3600)), if !handshake_reported => {
                handshake_reported = true;
                if let Ok(s) = r {
                    // Only the tunnel may carry traffic from here on.
                    helper.handshake().await.context("reporting the handshake to the helper")?;
                    println!("handshake: completed {} ms after start | {}", started.elapsed().as_millis(), stats_line(&s));
                }
            }
            _ = ticker.tick(), if args.stats_interval > 0 => println!("{}", stats_line(&tunnel.stats())),
        }
    };
    let last = tunnel.stats();
    match end {
        End::User => {
            let _ = tunnel.down().await;
            helper
                .disconnect()
                .await
                .context("clearing the kill switch")?;
            println!("down: {}", stats_line(&last));
            Ok(0)
        }
        End::Tunnel(e) => {
            println!("down: {}", stats_line(&last));
            eprintln!(
                "ferry up: tunnel ended ({e:?}); traffic stays blocked until `ferry disconnect`"
            );
            Ok(1)
        }
        End::HelperLost => {
            let _ = tunnel.down().await;
            eprintln!(
                "ferry up: lost the Ferry helper; traffic stays blocked until `ferry disconnect`"
            );
            Ok(1)
        }
    }
}
