//! `ferry-helper`: the privileged half of Ferry's system mode (see the crate docs).

use anyhow::Context as _;
use clap::Parser;
use ferry_helper::firewall::Nft;
use ferry_helper::server::{Config, Helper};
use std::os::unix::fs::PermissionsExt as _;
use std::os::unix::net::UnixListener;
use std::path::PathBuf;

/// Ferry's privileged helper: TUN, routes, DNS and the kill switch for members of a group.
#[derive(Parser, Debug)]
#[command(name = "ferry-helper", version, about)]
struct Args {
    /// The Unix socket to listen on (mode 0660, root:GROUP).
    #[arg(long, default_value = ferry_helper::client::DEFAULT_SOCKET)]
    socket: PathBuf,
    /// The group whose members may use the helper.
    #[arg(long, default_value = ferry_helper::client::DEFAULT_GROUP)]
    group: String,
    /// Runtime state directory.
    #[arg(long, default_value = "/run/ferry")]
    state_dir: PathBuf,
    /// Reboot-surviving journal (the block in force, routes' and DNS's undo steps).
    #[arg(long, default_value = "/var/lib/ferry-helper")]
    journal_dir: PathBuf,
    /// Block everything but loopback, DHCP and the LAN also while no session runs.
    #[arg(long)]
    always_require_vpn: bool,
    /// fwmark of the tunnel's socket (and routing table of full tunnels).
    #[arg(long, default_value_t = 51820)]
    fwmark: u32,
    /// The nft binary.
    #[arg(long)]
    nft: Option<PathBuf>,
    /// resolv.conf to edit when systemd-resolved is not in charge.
    #[arg(long, default_value = "/etc/resolv.conf")]
    resolv_conf: PathBuf,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_HELPER_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let gid = ferry_helper::peer::group_gid(&args.group).with_context(|| {
        format!(
            "group {:?} (create it: `sudo groupadd --system {}`)",
            args.group, args.group
        )
    })?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .context("async runtime")?;
    std::fs::create_dir_all(&args.state_dir)
        .with_context(|| format!("creating {}", args.state_dir.display()))?;
    let cfg = Config {
        group: args.group.clone(),
        gid,
        state_dir: args.state_dir,
        journal_dir: args.journal_dir,
        always_require_vpn: args.always_require_vpn,
        fwmark: args.fwmark,
        resolv_conf: args.resolv_conf,
        nft: args.nft.map(|bin| Nft { bin }).unwrap_or_default(),
        max_clients: 32,
    };
    let helper = Helper::start(cfg, rt.handle().clone()).context("starting")?;

    if let Some(dir) = args.socket.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    match std::fs::remove_file(&args.socket) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(e).with_context(|| format!("removing {}", args.socket.display())),
    }
    let listener = UnixListener::bind(&args.socket)
        .with_context(|| format!("binding {}", args.socket.display()))?;
    std::os::unix::fs::chown(&args.socket, Some(0), Some(gid))
        .with_context(|| format!("chown {}", args.socket.display()))?;
    std::fs::set_permissions(&args.socket, std::fs::Permissions::from_mode(0o660))
        .with_context(|| format!("chmod {}", args.socket.display()))?;
    tracing::info!(socket = %args.socket.display(), group = %args.group, "ferry-helper ready");
    for conn in listener.incoming() {
        match conn {
            Ok(stream) => {
                let h = helper.clone();
                if let Err(e) = std::thread::Builder::new()
                    .name("ferry-helper-conn".into())
                    .spawn(move || h.serve(stream))
                {
                    tracing::warn!(error = %e, "cannot serve a connection");
                }
            }
            Err(e) => tracing::warn!(error = %e, "accept"),
        }
    }
    Ok(())
}
