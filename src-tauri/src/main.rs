//! The `ferry-desktop` binary: parses the command line and starts the Tauri app.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

use clap::Parser;

/// Ferry's desktop app.
#[derive(Debug, Parser)]
#[command(name = "ferry-desktop", version, about)]
struct Args {
    /// Start a local lab in-process and sign in to its seeded accounts.
    #[arg(long)]
    demo: bool,
    /// Start hidden in the tray.
    #[arg(long)]
    minimized: bool,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();
    let args = Args::parse();
    ferry_desktop::run(ferry_desktop::LaunchOptions {
        demo: args.demo,
        minimized: args.minimized,
    })
}
