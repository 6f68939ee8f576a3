//! One module per subcommand. Each exposes `Args` and an async `run` returning the exit code.

pub mod budget;
pub mod connect;
pub mod context;
pub mod history;
pub mod lab;
pub mod login;
pub mod regions;
pub mod up;
pub mod usage;
pub mod workspaces;

/// Logs go to stderr, filtered by `FERRY_LOG` (default `warn`); stdout stays for command output.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// The answer of a subcommand that is not built yet.
#[allow(dead_code)]
pub fn not_yet(name: &str) -> anyhow::Result<u8> {
    anyhow::bail!("`ferry {name}` is not available in this build yet")
}
