//! What every service subcommand shares: base URLs, the data directory, the secret store and the
//! clients built from them.
//!
//! - Base URLs: `--api-url URL` (for the one service a command targets) or `--api-url SERVICE=URL`
//!   (repeatable), else `FERRY_ORBNET_URL` / `FERRY_TUNNELBYTE_URL` / `FERRY_NEOSC_URL`, else the
//!   vendor's production URL (NeoSC is self-hosted and has none).
//! - Data directory: `--data-dir`, else `FERRY_DATA_DIR`, else `$XDG_DATA_HOME/ferry`.
//! - Secret store: `FERRY_SECRETS=keyring` (default: the Secret Service on Linux, Keychain,
//!   Credential Manager), `keyutils` (the Linux kernel's persistent keyring of the user:
//!   headless, shared by the user's processes, forgotten at reboot) or `memory` (this process
//!   only: for tests and one-shot use with `FERRY_*_TOKEN`). There is deliberately no
//!   plaintext-file store. `FERRY_ORBNET_TOKEN`, `FERRY_TUNNELBYTE_TOKEN` and
//!   `FERRY_NEOSC_TOKEN` override whichever store is chosen. `FERRY_KEYRING_SERVICE` names the
//!   keyring entries' service (default `ferry`; tests use their own).

use std::path::PathBuf;

use anyhow::{anyhow, bail, Context as _};
pub use ferry_core::app::SecretsMode;
use ferry_core::app::{AppError, Services};
use ferry_core::secrets::{Secret, SecretsError, SharedSecretStore};
use ferry_core::services::neosc::NeoscClient;
use ferry_core::services::orbnet::OrbnetClient;
use ferry_core::services::tunnelbyte::TunnelbyteClient;
use ferry_core::services::ServiceKind;
use ferry_core::store::Store;

/// Options shared by the service subcommands.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct Common {
    /// Base URL of the service this command talks to, or SERVICE=URL (repeatable).
    #[arg(long = "api-url", value_name = "URL|SERVICE=URL")]
    pub api_url: Vec<String>,
    /// Data directory (history database); default $FERRY_DATA_DIR or $XDG_DATA_HOME/ferry.
    #[arg(long = "data-dir", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// The variables that give tokens without any store.
const TOKEN_VARS: &str = "FERRY_ORBNET_TOKEN, FERRY_TUNNELBYTE_TOKEN or FERRY_NEOSC_TOKEN";

/// The resolved environment of one command: the core's [`Services`] and the data directory.
#[derive(Debug, Clone)]
pub struct Context {
    services: Services,
    data_dir: PathBuf,
    mode: SecretsMode,
}

impl Context {
    /// Resolves URLs, data dir and secret store. `target` is the service a bare `--api-url URL`
    /// applies to (`None` when the command spans services).
    pub fn new(common: &Common, target: Option<ServiceKind>) -> anyhow::Result<Self> {
        let mut urls = Services::urls_from_env();
        for spec in &common.api_url {
            let (service, url) = match spec.split_once('=') {
                Some((name, url)) if !name.contains("://") => (
                    name.parse::<ServiceKind>()
                        .map_err(|e| anyhow!("--api-url {spec}: {e}"))?,
                    url,
                ),
                _ => (
                    target.ok_or_else(|| {
                        anyhow!(
                            "--api-url {spec}: this command talks to several services; \
                             write SERVICE=URL (e.g. tunnelbyte={spec}) or pick one with --service"
                        )
                    })?,
                    spec.as_str(),
                ),
            };
            urls.insert(service, url.trim().to_string());
        }
        let data_dir = ferry_core::paths::data_dir(common.data_dir.as_deref())?;
        let mode = SecretsMode::from_env()?;
        Ok(Self {
            services: Services::new(urls, mode.open()),
            data_dir,
            mode,
        })
    }

    /// The core's services (clients, tokens) for this command.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The data directory (history, instance lock).
    pub fn data_dir(&self) -> &std::path::Path {
        &self.data_dir
    }

    /// The secret store in use.
    pub fn secrets(&self) -> &SharedSecretStore {
        self.services.secrets()
    }

    /// The secret store mode.
    pub fn secrets_mode(&self) -> SecretsMode {
        self.mode
    }

    /// Opens the history store.
    pub async fn store(&self) -> anyhow::Result<Store> {
        let store = ferry_core::app::open_store(&self.data_dir)
            .await
            .with_context(|| format!("opening the history in {}", self.data_dir.display()))?;
        if let Some(old) = store.quarantined() {
            eprintln!(
                "ferry: the history database was damaged; it was moved to {} and a new one started",
                old.display()
            );
        }
        Ok(store)
    }

    /// The stored (or env-overridden) token of a service.
    pub async fn token(&self, service: ServiceKind) -> anyhow::Result<Option<Secret>> {
        self.services
            .token(service)
            .await
            .map_err(|e| self.app_error(e))
    }

    /// An OrbNET client with the stored tokens; refreshed tokens are written back.
    pub async fn orbnet(&self) -> anyhow::Result<OrbnetClient> {
        self.services.orbnet().await.map_err(|e| self.app_error(e))
    }

    /// A tunnelbyte client with the stored token.
    pub async fn tunnelbyte(&self) -> anyhow::Result<TunnelbyteClient> {
        self.services
            .tunnelbyte()
            .await
            .map_err(|e| self.app_error(e))
    }

    /// A NeoSC client with the stored token.
    pub async fn neosc(&self) -> anyhow::Result<NeoscClient> {
        self.services.neosc().await.map_err(|e| self.app_error(e))
    }

    /// An app error for the terminal: a keyring failure names what to use instead.
    pub fn app_error(&self, e: AppError) -> anyhow::Error {
        match e {
            AppError::Keyring(e) => self.secrets_error(e),
            other => other.into(),
        }
    }

    /// A secret store error, naming what to use instead when the store is not there.
    pub fn secrets_error(&self, e: SecretsError) -> anyhow::Error {
        let unusable = matches!(
            e,
            SecretsError::Unavailable { .. }
                | SecretsError::Timeout { .. }
                | SecretsError::NotKept { .. }
        );
        match self.mode {
            SecretsMode::Keyring if unusable => anyhow!(
                "{e}\n  No Secret Service (GNOME Keyring, KWallet) answers here. Instead: set \
                 FERRY_SECRETS=keyutils to keep tokens in the kernel keyring (until reboot), or \
                 pass tokens in {TOKEN_VARS}."
            ),
            SecretsMode::Keyutils if unusable => {
                anyhow!("{e}\n  Instead: pass tokens in {TOKEN_VARS}.")
            }
            _ => e.into(),
        }
    }
}

/// Prints a JSON value on one line.
pub fn print_json(v: &serde_json::Value) {
    println!("{v}");
}

/// Human-readable byte count (binary units).
pub fn human_bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut i = 0;
    while v >= 1024.0 && i < UNITS.len() - 1 {
        v /= 1024.0;
        i += 1;
    }
    if i == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[i])
    }
}

/// Human-readable duration, e.g. `1h 02m 03s`.
pub fn human_secs(s: u64) -> String {
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    if h > 0 {
        format!("{h}h {m:02}m {sec:02}s")
    } else if m > 0 {
        format!("{m}m {sec:02}s")
    } else {
        format!("{sec}s")
    }
}

/// Reads one secret line from stdin (for `--password-stdin` / `--token-stdin`).
pub fn read_stdin_secret(what: &str) -> anyhow::Result<Secret> {
    use std::io::Read;
    let mut buf = String::new();
    std::io::stdin()
        .take(16 * 1024)
        .read_to_string(&mut buf)
        .with_context(|| format!("reading the {what} from stdin"))?;
    let line = buf.lines().next().unwrap_or("").trim_end_matches('\r');
    if line.trim().is_empty() {
        bail!("no {what} on stdin");
    }
    Ok(Secret::new(line))
}
