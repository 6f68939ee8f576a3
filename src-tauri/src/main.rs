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
    // First, while this is the only thread.
    ferry_desktop::prepare_webkit_env();
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    // stderr as FERRY_LOG says; the data dir's ferry.log (0600) at info for diagnostics.
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(
            tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        );
    let file = ferry_core::paths::data_dir(None)
        .ok()
        .filter(|d| ferry_core::paths::ensure_private_dir(d).is_ok())
        .map(|d| {
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(ferry_core::diagnostics::LogFile::new(&d))
                .with_filter(tracing_subscriber::EnvFilter::new("info"))
        });
    tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .init();
    let args = Args::parse();
    ferry_desktop::run(ferry_desktop::LaunchOptions {
        demo: args.demo,
        minimized: args.minimized,
    })
}
