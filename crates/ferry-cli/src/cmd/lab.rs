//! `ferry lab`: serve the local OrbNET, tunnelbyte and NeoSC until interrupted.

use anyhow::Context;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;

/// Where the exit node may relay traffic.
#[derive(clap::ValueEnum, Clone, Copy, Debug, Default)]
pub enum EgressArg {
    /// Only 127.0.0.0/8 (what tests use).
    #[default]
    Loopback,
    /// Any destination.
    Any,
}

/// Arguments of `ferry lab`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// HTTP listen address; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:0")]
    pub listen: SocketAddr,
    /// Where the exit node may relay decrypted traffic.
    #[arg(long, value_enum, default_value_t = EgressArg::Loopback)]
    pub egress: EgressArg,
    /// Save state to FILE after every change and restore it at start.
    #[arg(long, value_name = "FILE")]
    pub state: Option<PathBuf>,
}

/// Runs `ferry lab`: prints one JSON line of base URLs once ready, then serves until SIGINT or
/// SIGTERM.
pub async fn run(args: Args) -> anyhow::Result<u8> {
    let config = ferry_lab::LabConfig {
        listen: args.listen,
        egress: match args.egress {
            EgressArg::Loopback => ferry_lab::Egress::Loopback,
            EgressArg::Any => ferry_lab::Egress::Any,
        },
        state_file: args.state,
    };
    let lab = ferry_lab::Lab::start(config)
        .await
        .context("starting the lab")?;
    let line = serde_json::to_string(lab.urls())?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()?;
    }
    wait_for_stop().await?;
    lab.shutdown().await;
    Ok(0)
}

async fn wait_for_stop() -> anyhow::Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = signal(SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r?,
        _ = term.recv() => {}
    }
    Ok(())
}
