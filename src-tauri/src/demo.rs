//! The demo: the lab started in-process (the three services and a real WireGuard exit node on
//! loopback) and the core's app signed in to its seeded accounts, with tokens kept in memory only.

use std::sync::Arc;

use ferry_core::app::{App, AppOptions};
use ferry_core::secrets::{MemoryStore, SharedSecretStore};

use crate::contract::{BaseUrls, SignInOutcome, SignInRequest};

/// Why the demo did not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// The lab did not start or answer.
    #[error("the demo lab did not start: {0}")]
    Lab(String),
    /// The app did not open.
    #[error(transparent)]
    App(#[from] ferry_core::app::AppError),
}

/// The lab's seeded accounts, as `GET {control}/accounts` lists them.
#[derive(Debug, serde::Deserialize)]
struct LabAccounts {
    #[serde(default)]
    orbnet: Vec<LabOrbnet>,
    #[serde(default)]
    tunnelbyte: Vec<LabTunnelbyte>,
    #[serde(default)]
    neosc: Vec<LabNeosc>,
}

#[derive(Debug, serde::Deserialize)]
struct LabOrbnet {
    email: String,
    password: String,
    #[serde(default)]
    credits: f64,
}

#[derive(Debug, serde::Deserialize)]
struct LabTunnelbyte {
    token: String,
    tier: String,
}

#[derive(Debug, serde::Deserialize)]
struct LabNeosc {
    email: String,
    password: String,
}

async fn accounts(control: &str) -> Result<LabAccounts, DemoError> {
    let lab = |e: reqwest::Error| DemoError::Lab(e.to_string());
    reqwest::get(format!("{control}/accounts"))
        .await
        .map_err(lab)?
        .error_for_status()
        .map_err(lab)?
        .json()
        .await
        .map_err(lab)
}

/// Starts the lab and an app signed in to its seeded accounts; the lab runs until dropped. The
/// demo's history lives in `<data dir>/demo`, apart from the user's. With `urls_file` (the
/// shell passes `FERRY_DEMO_URLS_FILE`), the lab's URLs (control API included) are written there
/// as JSON, for tests that drive the lab.
pub async fn start(
    mut opts: AppOptions,
    urls_file: Option<std::path::PathBuf>,
) -> Result<(App, ferry_lab::Lab), DemoError> {
    let lab = ferry_lab::Lab::start(ferry_lab::LabConfig::default())
        .await
        .map_err(|e| DemoError::Lab(e.to_string()))?;
    let urls = lab.urls().clone();
    tracing::info!(?urls, "demo lab started");
    if let Some(path) = urls_file {
        let json = serde_json::json!({
            "orbnet": urls.orbnet, "tunnelbyte": urls.tunnelbyte,
            "neosc": urls.neosc, "control": urls.control,
        });
        if let Err(e) = std::fs::write(&path, json.to_string()) {
            tracing::warn!(error = %e, "demo URLs not written");
        }
    }
    let seeded = accounts(&urls.control).await?;
    opts.data_dir = opts.data_dir.join("demo");
    ferry_core::paths::ensure_private_dir(&opts.data_dir)
        .map_err(|e| DemoError::Lab(e.to_string()))?;
    // The demo's tokens belong to the throwaway lab: memory only, never the user's keyring.
    let secrets: SharedSecretStore = Arc::new(MemoryStore::new());
    let engine = App::open(opts, secrets, true).await?;
    engine
        .set_base_urls(BaseUrls {
            orbnet: urls.orbnet,
            tunnelbyte: urls.tunnelbyte,
            neosc: urls.neosc,
        })
        .await?;
    // The richest OrbNET account without 2FA, the paid tunnelbyte token, the first NeoSC user.
    let mut orb: Vec<&LabOrbnet> = seeded.orbnet.iter().collect();
    orb.sort_by(|a, b| b.credits.total_cmp(&a.credits));
    for a in orb {
        let req = SignInRequest::Orbnet {
            email: a.email.clone(),
            password: a.password.clone(),
            totp: None,
        };
        if let Ok(SignInOutcome::SignedIn { .. }) = engine.sign_in(req).await {
            engine.set_credits(a.credits);
            break;
        }
    }
    let tb = seeded
        .tunnelbyte
        .iter()
        .find(|t| t.tier == "paid")
        .or_else(|| seeded.tunnelbyte.first());
    if let Some(t) = tb {
        let req = SignInRequest::Tunnelbyte {
            token: Some(t.token.clone()),
        };
        if let Err(err) = engine.sign_in(req).await {
            tracing::warn!(%err, "demo: tunnelbyte sign-in failed");
        }
    }
    if let Some(n) = seeded.neosc.first() {
        let req = SignInRequest::Neosc {
            server: None,
            email: n.email.clone(),
            password: n.password.clone(),
        };
        if let Err(err) = engine.sign_in(req).await {
            tracing::warn!(%err, "demo: NeoSC sign-in failed");
        }
    }
    Ok((engine, lab))
}
