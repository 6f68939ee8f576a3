//! `ferry diagnostics`: the redacted report for support (versions, state, service addresses,
//! spend caps, which services are signed in, the log's last 200 lines). No token, key, email
//! or id is in it.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::PathBuf;

use anyhow::Context as _;
use ferry_core::diagnostics::{report, ReportInputs};
use ferry_core::services::ServiceKind;

use super::context::{Common, Context};

/// Arguments of `ferry diagnostics`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write the report to FILE (mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub common: Common,
}

/// Runs `ferry diagnostics`.
pub async fn run(args: Args) -> anyhow::Result<u8> {
    let ctx = Context::new(&args.common, None)?;
    let store = ctx.store().await?;
    let open = store.open_sessions().await?;
    let state = match open.first() {
        Some(s) => format!(
            "a session is open: {} {}",
            s.service,
            s.location.as_deref().unwrap_or("")
        ),
        None => "disconnected".to_string(),
    };
    let mut accounts = Vec::new();
    let mut secrets = Vec::new();
    let mut urls = serde_json::Map::new();
    for s in ServiceKind::ALL {
        let token = ctx.token(s).await.ok().flatten();
        accounts.push((s.to_string(), token.is_some()));
        if let Some(t) = token {
            secrets.push(t.expose().to_string());
        }
        if let Ok(u) = ctx.services().base_url(s) {
            urls.insert(s.to_string(), u.into());
        }
    }
    let budget = ferry_core::app::load_budget(&store)
        .await
        .unwrap_or_default();
    let text = report(&ReportInputs {
        front_end: "cli".into(),
        version: env!("CARGO_PKG_VERSION").into(),
        state,
        accounts,
        settings: serde_json::to_string_pretty(&serde_json::json!({
            "base_urls": urls,
            "secrets": format!("{:?}", ctx.secrets_mode()),
        }))?,
        budget: serde_json::to_string_pretty(&budget)?,
        data_dir: ctx.data_dir().to_path_buf(),
        secrets,
    });
    match args.output {
        Some(path) => {
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&path)
                .with_context(|| format!("writing {}", path.display()))?;
            f.write_all(text.as_bytes())?;
            eprintln!("Wrote the diagnostics to {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(0)
}
