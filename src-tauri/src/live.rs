//! The engine that talks to the real services (or the lab) through ferry-core's clients: sign-in
//! with tokens in the keyring, OrbNET servers and tunnelbyte regions, NeoSC workspaces and
//! sessions. The VPN connection and its metering still run on the simulation ([`SimBackend`])
//! until ferry-core's supervisor and an app-mode tunnel factory are wired in here. In the demo, a
//! service the lab cannot sign in to (not implemented there yet) is served by the simulation and
//! labelled "(simulated)".

use std::sync::Mutex;

use async_trait::async_trait;
use ferry_core::http::HttpSettings;
use ferry_core::secrets::{Secret, SharedSecretStore};
use ferry_core::services::neosc::NeoscClient;
use ferry_core::services::orbnet::{LoginOutcome, LoginRequest, OrbnetClient, OrbnetTokens};
use ferry_core::services::tunnelbyte::{read_cli_token, TunnelbyteClient};
use ferry_core::services::{ApiError, ServiceKind};
use tokio::sync::broadcast;

use crate::backend::Backend;
use crate::contract::{
    AccountView, BaseUrls, CommandError, ConnectRequest, ConnectionView, HistoryView, Region,
    RegionGroup, RegionRef, Service, Settings, SignInOutcome, SignInRequest, Snapshot, UiEvent,
    WorkspaceSessionView, WorkspaceView, WorkspacesView,
};
use crate::sim::SimBackend;

/// Real service clients in front of the simulated connection.
pub struct LiveBackend {
    sim: SimBackend,
    secrets: SharedSecretStore,
    http: HttpSettings,
    /// Regions as last listed (to resolve a chosen region's name and availability).
    regions: Mutex<Vec<RegionGroup>>,
    /// Services served by the simulation instead (the demo, when the lab could not sign in).
    simulated: Mutex<Vec<Service>>,
    /// Keeps an in-process lab alive (the demo).
    _lab: Option<ferry_lab::Lab>,
}

fn kind(s: Service) -> ServiceKind {
    match s {
        Service::Orbnet => ServiceKind::Orbnet,
        Service::Tunnelbyte => ServiceKind::Tunnelbyte,
        Service::Neosc => ServiceKind::Neosc,
    }
}

fn api_error(e: ApiError) -> CommandError {
    let code = match &e {
        ApiError::Unauthorized { .. } | ApiError::NoToken { .. } => "not_signed_in",
        ApiError::NotSent { .. } | ApiError::AnswerLost { .. } => "network",
        ApiError::RateLimited { .. } => "rate_limited",
        ApiError::RegionUnavailable { .. } => "unavailable",
        _ => "service",
    };
    CommandError::new(code, e.to_string())
}

fn secrets_error(e: impl std::fmt::Display) -> CommandError {
    CommandError::new("keyring", format!("The keyring refused the token: {e}"))
}

fn ms(t: Option<chrono::DateTime<chrono::Utc>>) -> Option<i64> {
    t.map(|t| t.timestamp_millis())
}

impl LiveBackend {
    /// An engine on `sim` (connection, history) with tokens in `secrets`; `lab` is kept alive.
    pub fn new(sim: SimBackend, secrets: SharedSecretStore, lab: Option<ferry_lab::Lab>) -> Self {
        LiveBackend {
            sim,
            secrets,
            http: HttpSettings::default(),
            regions: Mutex::new(Vec::new()),
            simulated: Mutex::new(Vec::new()),
            _lab: lab,
        }
    }

    /// Uses these base URLs (the lab's, in the demo).
    pub fn set_base_urls(&self, urls: BaseUrls) {
        let mut s = self.sim.settings();
        s.base_urls = urls;
        self.sim.set_settings(s);
    }

    /// Sets the simulated session's starting OrbNET balance (the lab account's credits).
    pub fn set_credits(&self, credits: f64) {
        self.sim.set_credits(credits);
    }

    /// Marks services whose token is already in the keyring as signed in.
    pub async fn restore(&self) {
        for service in Service::ALL {
            match self.secrets.get(kind(service)).await {
                Ok(Some(_)) => self.sim.set_account(AccountView {
                    service,
                    signed_in: true,
                    label: None,
                    credits: None,
                }),
                Ok(None) => {}
                Err(err) => tracing::warn!(%err, ?service, "could not read the keyring"),
            }
        }
    }

    /// Serves `service` from the simulation (signed in there, with a "(simulated)" label).
    pub async fn simulate(&self, service: Service) {
        if let Ok(mut s) = self.simulated.lock() {
            if !s.contains(&service) {
                s.push(service);
            }
        }
        let label = match service {
            Service::Orbnet => "alice@example.com (simulated)",
            Service::Tunnelbyte => "paid tier (simulated)",
            Service::Neosc => "dana@example.com (simulated)",
        };
        self.sim.set_account(AccountView {
            service,
            signed_in: true,
            label: Some(label.into()),
            credits: (service == Service::Orbnet).then_some(25.0),
        });
    }

    fn is_simulated(&self, service: Service) -> bool {
        self.simulated
            .lock()
            .map(|s| s.contains(&service))
            .unwrap_or(false)
    }

    async fn urls(&self) -> BaseUrls {
        self.sim.snapshot().await.settings.base_urls
    }

    async fn token(&self, service: Service) -> Result<Secret, CommandError> {
        self.secrets
            .get(kind(service))
            .await
            .map_err(secrets_error)?
            .ok_or_else(|| {
                CommandError::new(
                    "not_signed_in",
                    format!("Sign in to {} first.", service.display_name()),
                )
            })
    }

    async fn orbnet(&self) -> Result<OrbnetClient, CommandError> {
        let token = self.token(Service::Orbnet).await?;
        Ok(
            OrbnetClient::new(&self.urls().await.orbnet, self.http.clone())
                .map_err(api_error)?
                .with_tokens(Some(OrbnetTokens::from_stored(&token))),
        )
    }

    async fn neosc(&self) -> Result<NeoscClient, CommandError> {
        let token = self.token(Service::Neosc).await?;
        Ok(
            NeoscClient::new(&self.urls().await.neosc, self.http.clone())
                .map_err(api_error)?
                .with_token(Some(token)),
        )
    }

    async fn signed_in(&self, service: Service) -> bool {
        self.sim
            .snapshot()
            .await
            .accounts
            .iter()
            .any(|a| a.service == service && a.signed_in)
    }

    async fn list_workspaces(&self) -> Result<WorkspacesView, CommandError> {
        let client = self.neosc().await?;
        let workspaces = client.workspaces().await.map_err(api_error)?;
        let sessions = client.sessions().await.map_err(api_error)?;
        let mut sessions: Vec<WorkspaceSessionView> = sessions
            .into_iter()
            .map(|s| WorkspaceSessionView {
                active: s.is_active(),
                id: s.id,
                workspace: if s.workspace_name.is_empty() {
                    s.workspace_id
                } else {
                    s.workspace_name
                },
                kind: s.workspace_type,
                started_ms: ms(s.started_at).unwrap_or(0),
                ended_ms: ms(s.ended_at),
                tunnel: s.tunnel_status,
                mfa: s.mfa_verified,
            })
            .collect();
        sessions.sort_by(|a, b| {
            b.active
                .cmp(&a.active)
                .then(b.started_ms.cmp(&a.started_ms))
        });
        let view = WorkspacesView {
            workspaces: workspaces
                .into_iter()
                .map(|w| WorkspaceView {
                    name: if w.name.is_empty() {
                        w.id.clone()
                    } else {
                        w.name
                    },
                    id: w.id,
                    state: w.status,
                })
                .collect(),
            sessions,
            refreshed_ms: chrono::Utc::now().timestamp_millis(),
        };
        self.sim.emit(UiEvent::Workspaces(view.clone()));
        Ok(view)
    }
}

#[async_trait]
impl Backend for LiveBackend {
    async fn snapshot(&self) -> Snapshot {
        self.sim.snapshot().await
    }

    async fn sign_in(&self, request: SignInRequest) -> Result<SignInOutcome, CommandError> {
        let urls = self.urls().await;
        let (service, secret, label) = match request {
            SignInRequest::Orbnet {
                email,
                password,
                totp,
            } => {
                if email.trim().is_empty() || password.is_empty() {
                    return Err(CommandError::new(
                        "invalid_input",
                        "Enter your email and password.",
                    ));
                }
                let client =
                    OrbnetClient::new(&urls.orbnet, self.http.clone()).map_err(api_error)?;
                let req = LoginRequest {
                    email: email.trim().to_string(),
                    password: Secret::new(password),
                    totp_code: totp.filter(|t| !t.trim().is_empty()),
                    device_id: None,
                };
                match client.login(&req).await.map_err(api_error)? {
                    LoginOutcome::TwoFactorRequired => return Ok(SignInOutcome::NeedsTwoFactor),
                    LoginOutcome::SignedIn { tokens, user } => {
                        let label = if user.email.is_empty() {
                            req.email
                        } else {
                            user.email
                        };
                        (Service::Orbnet, tokens.to_stored(), label)
                    }
                }
            }
            SignInRequest::Tunnelbyte { token } => {
                let secret = match token {
                    Some(t) if !t.trim().is_empty() => Secret::new(t.trim().to_string()),
                    Some(_) => {
                        return Err(CommandError::new("invalid_input", "Paste your API token."))
                    }
                    None => {
                        let path =
                            ferry_core::paths::tunnelbyte_cli_token_from(|k| std::env::var(k).ok())
                                .ok_or_else(|| {
                                    CommandError::new("not_found", "No home directory to look in.")
                                })?;
                        read_cli_token(&path)
                            .map_err(|e| CommandError::new("not_found", e.to_string()))?
                    }
                };
                let client = TunnelbyteClient::new(&urls.tunnelbyte, self.http.clone())
                    .map_err(api_error)?
                    .with_token(Some(secret.clone()));
                let usage = client.usage().await.map_err(api_error)?;
                (Service::Tunnelbyte, secret, format!("{} tier", usage.tier))
            }
            SignInRequest::Neosc { email, password } => {
                if email.trim().is_empty() || password.is_empty() {
                    return Err(CommandError::new(
                        "invalid_input",
                        "Enter your email and password.",
                    ));
                }
                let mut client =
                    NeoscClient::new(&urls.neosc, self.http.clone()).map_err(api_error)?;
                let auth = client
                    .login(email.trim(), &Secret::new(password))
                    .await
                    .map_err(api_error)?;
                let label = if auth.user.email.is_empty() {
                    email.trim().to_string()
                } else {
                    auth.user.email.clone()
                };
                (Service::Neosc, auth.access_token, label)
            }
        };
        self.secrets
            .set(kind(service), secret)
            .await
            .map_err(secrets_error)?;
        let previous = self.sim.snapshot().await;
        let credits = previous
            .accounts
            .iter()
            .find(|a| a.service == service)
            .and_then(|a| a.credits);
        let account = AccountView {
            service,
            signed_in: true,
            label: Some(label),
            credits,
        };
        self.sim.set_account(account.clone());
        if service == Service::Neosc {
            let _ = self.list_workspaces().await;
        }
        Ok(SignInOutcome::SignedIn { account })
    }

    async fn sign_out(&self, service: Service) -> Result<Vec<AccountView>, CommandError> {
        // End the metered session of that service first.
        let snap = self.sim.snapshot().await;
        if snap.connection.region.as_ref().map(|r| r.service) == Some(service) {
            let _ = self.sim.disconnect().await;
        }
        match service {
            Service::Orbnet => {
                if let Ok(c) = self.orbnet().await {
                    if let Err(err) = c.logout().await {
                        tracing::warn!(%err, "OrbNET logout failed; forgetting the token anyway");
                    }
                }
            }
            Service::Neosc => {
                if let Ok(c) = self.neosc().await {
                    if let Err(err) = c.logout().await {
                        tracing::warn!(%err, "NeoSC logout failed; forgetting the token anyway");
                    }
                }
            }
            Service::Tunnelbyte => {}
        }
        self.secrets
            .delete(kind(service))
            .await
            .map_err(secrets_error)?;
        self.sim.sign_out(service).await
    }

    async fn regions(&self) -> Vec<RegionGroup> {
        let simulated: Vec<RegionGroup> = self
            .sim
            .regions()
            .await
            .into_iter()
            .filter(|g| self.is_simulated(g.service))
            .collect();
        let mut groups = Vec::new();
        if !self.is_simulated(Service::Orbnet) && self.signed_in(Service::Orbnet).await {
            let listed = match self.orbnet().await {
                Ok(c) => c.servers().await.map_err(api_error),
                Err(e) => Err(e),
            };
            groups.push(match listed {
                Ok(servers) => RegionGroup {
                    service: Service::Orbnet,
                    regions: servers
                        .into_iter()
                        .filter(|s| !s.hidden)
                        .map(|s| Region {
                            reference: RegionRef {
                                service: Service::Orbnet,
                                id: s.id.to_string(),
                            },
                            label: if s.city.is_empty() {
                                s.display_name().to_string()
                            } else {
                                s.city.clone()
                            },
                            country: (!s.country.is_empty()).then(|| s.country.clone()),
                            nodes: None,
                            available: true,
                            note: None,
                        })
                        .collect(),
                    error: None,
                },
                Err(e) => RegionGroup {
                    service: Service::Orbnet,
                    regions: vec![],
                    error: Some(e.message),
                },
            });
        }
        let tb = match TunnelbyteClient::new(&self.urls().await.tunnelbyte, self.http.clone()) {
            Ok(_) if self.is_simulated(Service::Tunnelbyte) => Ok(Vec::new()),
            Ok(c) => c.regions().await.map_err(api_error),
            Err(e) => Err(api_error(e)),
        };
        groups.push(match tb {
            Ok(regions) => RegionGroup {
                service: Service::Tunnelbyte,
                regions: regions
                    .into_iter()
                    .map(|r| Region {
                        reference: RegionRef {
                            service: Service::Tunnelbyte,
                            id: r.code.clone(),
                        },
                        label: r.code.clone(),
                        country: None,
                        nodes: Some(u32::try_from(r.node_count).unwrap_or(u32::MAX)),
                        available: r.node_count > 0,
                        note: (r.node_count == 0)
                            .then(|| format!("no active node in region {}", r.code)),
                    })
                    .collect(),
                error: None,
            },
            Err(e) => RegionGroup {
                service: Service::Tunnelbyte,
                regions: vec![],
                error: Some(e.message),
            },
        });
        groups.retain(|g| !self.is_simulated(g.service));
        groups.extend(simulated);
        groups.sort_by_key(|g| g.service != Service::Orbnet);
        if let Ok(mut r) = self.regions.lock() {
            *r = groups.clone();
        }
        groups
    }

    async fn connect(&self, request: ConnectRequest) -> Result<ConnectionView, CommandError> {
        let known = self.regions.lock().ok().and_then(|g| {
            g.iter()
                .flat_map(|g| g.regions.iter())
                .find(|r| r.reference == request.region)
                .cloned()
        });
        let region = match known {
            Some(r) => r,
            None => self
                .regions()
                .await
                .into_iter()
                .flat_map(|g| g.regions)
                .find(|r| r.reference == request.region)
                .ok_or_else(|| CommandError::new("invalid_input", "Unknown region."))?,
        };
        self.sim.connect_region(request, region).await
    }

    async fn disconnect(&self) -> Result<ConnectionView, CommandError> {
        self.sim.disconnect().await
    }

    async fn workspaces(&self) -> Result<WorkspacesView, CommandError> {
        if self.is_simulated(Service::Neosc) {
            return self.sim.workspaces().await;
        }
        self.list_workspaces().await
    }

    async fn launch_workspace(&self, id: &str) -> Result<WorkspacesView, CommandError> {
        if self.is_simulated(Service::Neosc) {
            return self.sim.launch_workspace(id).await;
        }
        self.neosc().await?.launch(id).await.map_err(api_error)?;
        self.list_workspaces().await
    }

    async fn stop_workspace(&self, id: &str) -> Result<WorkspacesView, CommandError> {
        if self.is_simulated(Service::Neosc) {
            return self.sim.stop_workspace(id).await;
        }
        self.neosc().await?.stop(id).await.map_err(api_error)?;
        self.list_workspaces().await
    }

    async fn disconnect_workspace_session(&self, id: &str) -> Result<WorkspacesView, CommandError> {
        self.neosc()
            .await?
            .disconnect(id)
            .await
            .map_err(api_error)?;
        self.list_workspaces().await
    }

    async fn history(&self) -> Result<HistoryView, CommandError> {
        self.sim.history().await
    }

    async fn export_history_csv(&self) -> Result<String, CommandError> {
        self.sim.export_history_csv().await
    }

    async fn save_settings(&self, settings: Settings) -> Result<Settings, CommandError> {
        self.sim.save_settings(settings).await
    }

    fn subscribe(&self) -> broadcast::Receiver<UiEvent> {
        self.sim.subscribe()
    }
}

/// The lab's seeded accounts, as `GET {control}/accounts` lists them.
#[derive(Debug, serde::Deserialize)]
pub struct LabAccounts {
    /// OrbNET accounts.
    #[serde(default)]
    pub orbnet: Vec<LabOrbnet>,
    /// tunnelbyte tokens.
    #[serde(default)]
    pub tunnelbyte: Vec<LabTunnelbyte>,
    /// NeoSC users.
    #[serde(default)]
    pub neosc: Vec<LabNeosc>,
}

/// A seeded OrbNET account.
#[derive(Debug, serde::Deserialize)]
pub struct LabOrbnet {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
    /// Credits.
    #[serde(default)]
    pub credits: f64,
}

/// A seeded tunnelbyte token.
#[derive(Debug, serde::Deserialize)]
pub struct LabTunnelbyte {
    /// Token.
    pub token: String,
    /// Tier.
    pub tier: String,
}

/// A seeded NeoSC user.
#[derive(Debug, serde::Deserialize)]
pub struct LabNeosc {
    /// Email.
    pub email: String,
    /// Password.
    pub password: String,
}

/// Starts the lab in-process and returns an engine signed in to its seeded accounts.
pub async fn demo(sim: SimBackend, secrets: SharedSecretStore) -> anyhow::Result<LiveBackend> {
    let lab = ferry_lab::Lab::start(ferry_lab::LabConfig::default()).await?;
    let urls = lab.urls().clone();
    tracing::info!(?urls, "demo lab started");
    let accounts: LabAccounts = reqwest::get(format!("{}/accounts", urls.control))
        .await?
        .error_for_status()?
        .json()
        .await?;
    let backend = LiveBackend::new(sim, secrets, Some(lab));
    backend.set_base_urls(BaseUrls {
        orbnet: urls.orbnet,
        tunnelbyte: urls.tunnelbyte,
        neosc: urls.neosc,
    });
    // The richest OrbNET account without 2FA, the paid tunnelbyte token, the first NeoSC user.
    let mut orb: Vec<&LabOrbnet> = accounts.orbnet.iter().collect();
    orb.sort_by(|a, b| b.credits.total_cmp(&a.credits));
    let mut orbnet_ok = false;
    for a in orb {
        let req = SignInRequest::Orbnet {
            email: a.email.clone(),
            password: a.password.clone(),
            totp: None,
        };
        if let Ok(SignInOutcome::SignedIn { .. }) = backend.sign_in(req).await {
            backend.set_credits(a.credits);
            let snap = backend.snapshot().await;
            if let Some(mut acc) = snap
                .accounts
                .into_iter()
                .find(|x| x.service == Service::Orbnet)
            {
                acc.credits = Some(a.credits);
                backend.sim.set_account(acc);
            }
            orbnet_ok = true;
            break;
        }
    }
    let tb = accounts
        .tunnelbyte
        .iter()
        .find(|t| t.tier == "paid")
        .or_else(|| accounts.tunnelbyte.first());
    if let Some(t) = tb {
        if let Err(err) = backend
            .sign_in(SignInRequest::Tunnelbyte {
                token: Some(t.token.clone()),
            })
            .await
        {
            tracing::warn!(%err, "demo: tunnelbyte sign-in failed; simulating tunnelbyte");
            backend.simulate(Service::Tunnelbyte).await;
        }
    } else {
        backend.simulate(Service::Tunnelbyte).await;
    }
    if let Some(n) = accounts.neosc.first() {
        if let Err(err) = backend
            .sign_in(SignInRequest::Neosc {
                email: n.email.clone(),
                password: n.password.clone(),
            })
            .await
        {
            tracing::warn!(%err, "demo: NeoSC sign-in failed; simulating NeoSC");
            backend.simulate(Service::Neosc).await;
        }
    } else {
        backend.simulate(Service::Neosc).await;
    }
    if !orbnet_ok {
        tracing::warn!("demo: no OrbNET lab account signed in; simulating OrbNET");
        backend.simulate(Service::Orbnet).await;
    }
    Ok(backend)
}
