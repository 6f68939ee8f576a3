//! The `ferry` command: a headless client over `ferry-core`, plus the lab.
#![allow(clippy::print_stdout, clippy::print_stderr)]

mod cmd;

use clap::{Parser, Subcommand};

/// Ferry: a WireGuard VPN client with live metering.
#[derive(Parser)]
#[command(name = "ferry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the lab: a local OrbNET, tunnelbyte and NeoSC with a WireGuard exit node.
    Lab(cmd::lab::Args),
    /// Bring up a plain WireGuard config (app mode by default, system mode with --all).
    Up(cmd::up::Args),
    /// Sign in to a service and keep its token in the keyring.
    Login(cmd::login::Args),
    /// Sign out of a service and forget its token.
    Logout(cmd::login::LogoutArgs),
    /// List OrbNET servers and tunnelbyte regions.
    Regions(cmd::regions::Args),
    /// Connect through a service and meter the session live.
    Connect(cmd::connect::Args),
    /// Show credits, quota windows and their resets.
    Usage(cmd::usage::Args),
    /// List, launch and stop NeoSC workspaces.
    Workspaces(cmd::workspaces::Args),
    /// List NeoSC sessions and disconnect them.
    Sessions(cmd::workspaces::SessionsArgs),
    /// Show or export the local session history.
    History(cmd::history::Args),
    /// Set, show or clear spend caps (per session, day and month).
    Budget(cmd::budget::Args),
    /// Show what system mode's helper is doing: state, service, region, whether traffic is blocked.
    Status(cmd::helper::StatusArgs),
    /// End whatever system-mode session runs and clear the block.
    Disconnect(cmd::helper::DisconnectArgs),
    /// Print a redacted report for support (no tokens, keys, emails or ids).
    Diagnostics(cmd::diagnostics::Args),
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    cmd::init_tracing();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("ferry: cannot start the async runtime: {e}");
            return std::process::ExitCode::from(1);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Lab(a) => cmd::lab::run(a).await,
            Command::Up(a) => cmd::up::run(a).await,
            Command::Login(a) => cmd::login::run(a).await,
            Command::Logout(a) => cmd::login::logout(a).await,
            Command::Regions(a) => cmd::regions::run(a).await,
            Command::Connect(a) => cmd::connect::run(a).await,
            Command::Usage(a) => cmd::usage::run(a).await,
            Command::Workspaces(a) => cmd::workspaces::run(a).await,
            Command::Sessions(a) => cmd::workspaces::sessions(a).await,
            Command::History(a) => cmd::history::run(a).await,
            Command::Budget(a) => cmd::budget::run(a).await,
            Command::Status(a) => cmd::helper::status(a).await,
            Command::Disconnect(a) => cmd::helper::disconnect(a).await,
            Command::Diagnostics(a) => cmd::diagnostics::run(a).await,
        }
    });
    match result {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("ferry: {e:#}");
            std::process::ExitCode::from(1)
        }
    }
}
