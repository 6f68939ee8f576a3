//! One module per subcommand. Each exposes `Args` and an async `run` returning the exit code.

pub mod budget;
pub mod connect;
pub mod context;
pub mod diagnostics;
pub mod helper;
pub mod history;
pub mod lab;
pub mod login;
pub mod regions;
pub mod up;
pub mod usage;
pub mod workspaces;

/// Who may use the app-mode proxies listening on `listen`: only the UID running Ferry (on a
/// loopback address), or, with `--proxy-auth FILE`, every client presenting the file's
/// `user:password` (the file must not be readable by group or others). A non-loopback address
/// without `--proxy-auth` is refused, before anything starts.
pub fn proxy_access(
    listen: std::net::SocketAddr,
    auth: Option<&std::path::Path>,
) -> anyhow::Result<ferry_tunnel::proxy::Access> {
    use ferry_tunnel::proxy::{Access, Credentials};
    match auth {
        Some(path) => Ok(Access::Credentials(Credentials::load(path)?)),
        None if listen.ip().to_canonical().is_loopback() => Ok(Access::default()),
        None => anyhow::bail!(
            "--proxy {listen} is not a loopback address, so other machines could use your tunnel: \
             give --proxy-auth FILE (one line `user:password`, chmod 600) or listen on 127.0.0.1"
        ),
    }
}

/// `s` percent-encoded for the user-info part of a URL (RFC 3986 unreserved characters kept).
pub fn url_userinfo(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Logs go to stderr, filtered by `FERRY_LOG` (default `warn`); stdout stays for command output.
/// When the data dir exists, `info` and above also go to its `ferry.log` (for `ferry diagnostics`).
pub fn init_tracing() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    use tracing_subscriber::Layer as _;
    let filter = tracing_subscriber::EnvFilter::try_from_env("FERRY_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let stderr = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_filter(filter);
    let file = ferry_core::paths::data_dir(None)
        .ok()
        .filter(|d| d.is_dir())
        .map(|d| {
            tracing_subscriber::fmt::layer()
                .with_ansi(false)
                .with_writer(ferry_core::diagnostics::LogFile::new(&d))
                .with_filter(tracing_subscriber::EnvFilter::new("info"))
        });
    let _ = tracing_subscriber::registry()
        .with(stderr)
        .with(file)
        .try_init();
}

/// The answer of a subcommand that is not built yet.
#[allow(dead_code)]
pub fn not_yet(name: &str) -> anyhow::Result<u8> {
    anyhow::bail!("`ferry {name}` is not available in this build yet")
}
