//! OrbNET (`api.orbai.world/api/v1`): login with a rotating refresh token, servers, authorize,
//! WireGuard config, and the credit-metered session (start, heartbeat, end, active).
//!
//! Envelope: `{"success":true,"data":{..}}` / `{"success":false,"error":{"code","message"}}`.
//! The server list (`GET /vpn/servers`) is not in the public docs; we read `data.servers[]` or a
//! bare array in `data`, with items shaped like `/vpn/connection`'s `server` object.

use std::fmt;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use reqwest::{Method, StatusCode};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::Mutex;

use super::origin::Origin;
use super::refresh_flight::{self, Outcome};
use super::token::StoredToken;
use super::{body_excerpt, de, lenient_message, ApiError, Endpoint, Repeat, ServiceKind};
use crate::http::{HttpSettings, RawResponse};
use crate::secrets::{Secret, SharedSecretStore};

const SERVICE: ServiceKind = ServiceKind::Orbnet;

/// Error codes OrbNET documents.
pub mod codes {
    /// 409 at start: the user already has an active session.
    pub const SESSION_ALREADY_ACTIVE: &str = "SESSION_ALREADY_ACTIVE";
    /// 402 at heartbeat: credits ran out; the server ends the session.
    pub const CREDITS_DEPLETED: &str = "CREDITS_DEPLETED";
    /// 404 at heartbeat/end: unknown or already ended (e.g. by the 300 s watchdog).
    pub const SESSION_NOT_FOUND: &str = "SESSION_NOT_FOUND";
    /// 403 at authorize: no credits.
    pub const INSUFFICIENT_CREDITS: &str = "INSUFFICIENT_CREDITS";
    /// 400/422: a field was rejected.
    pub const VALIDATION_ERROR: &str = "VALIDATION_ERROR";
    /// 403 at login: too many devices for the plan.
    pub const DEVICE_LIMIT_EXCEEDED: &str = "DEVICE_LIMIT_EXCEEDED";
}

/// An access token, its rotating refresh token, and the origin that issued them.
///
/// Stored form (one line of compact JSON):
/// `{"access_token":"..","refresh_token":"..","origin":"https://api.orbai.world"}`;
/// `refresh_token` and `origin` may be absent (values stored before origins were recorded, or
/// a bare access token from `FERRY_ORBNET_TOKEN`): such tokens are accepted for any base URL.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrbnetTokens {
    /// The bearer token.
    pub access_token: Secret,
    /// The single-use refresh token, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<Secret>,
    /// The origin that issued the pair; `None` when unknown. Neither token is ever sent to
    /// another origin.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Origin>,
}

impl fmt::Debug for OrbnetTokens {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrbnetTokens")
            .field("access_token", &"[redacted]")
            .field("has_refresh_token", &self.refresh_token.is_some())
            .field("origin", &self.origin)
            .finish()
    }
}

impl OrbnetTokens {
    /// Tokens from an access token only (e.g. `FERRY_ORBNET_TOKEN`): no refresh possible, issuer
    /// unknown.
    pub fn access_only(access: Secret) -> Self {
        Self {
            access_token: access,
            refresh_token: None,
            origin: None,
        }
    }

    /// The same tokens recorded as issued by `origin`, unless an issuer is already recorded.
    pub fn or_bound_to(mut self, origin: &Origin) -> Self {
        if self.origin.is_none() {
            self.origin = Some(origin.clone());
        }
        self
    }

    /// The access token as a bearer bound to the issuing origin.
    fn bearer(&self) -> StoredToken {
        match &self.origin {
            Some(o) => StoredToken::new(o.clone(), self.access_token.clone()),
            None => StoredToken::unbound(self.access_token.clone()),
        }
    }

    /// The single-line value kept in the secret store (compact JSON).
    pub fn to_stored(&self) -> Secret {
        Secret::new(serde_json::to_string(self).unwrap_or_default())
    }

    /// Reads a stored value: the JSON pair, or a bare access token (env override).
    pub fn from_stored(stored: &Secret) -> Self {
        let raw = stored.expose().trim();
        if raw.starts_with('{') {
            if let Ok(t) = serde_json::from_str::<OrbnetTokens>(raw) {
                return t;
            }
        }
        Self::access_only(Secret::new(raw))
    }
}

/// Told about every new token pair after a refresh, so it can be persisted (the old refresh
/// token is now spent).
pub trait TokenSink: Send + Sync {
    /// Persist the new pair. Errors are the sink's to log; the client goes on with the new pair.
    fn tokens_rotated(&self, tokens: OrbnetTokens) -> BoxFuture<'static, ()>;
}

/// A [`TokenSink`] that writes the pair to a secret store (the keyring).
#[derive(Debug, Clone)]
pub struct StoreTokenSink(pub SharedSecretStore);

impl TokenSink for StoreTokenSink {
    fn tokens_rotated(&self, tokens: OrbnetTokens) -> BoxFuture<'static, ()> {
        let store = self.0.clone();
        Box::pin(async move {
            if let Err(e) = store.set(SERVICE, tokens.to_stored()).await {
                tracing::warn!(error = %e, "could not save the refreshed OrbNET tokens");
            }
        })
    }
}

/// Login form.
#[derive(Clone, Serialize)]
pub struct LoginRequest {
    /// Account email.
    pub email: String,
    /// Password (redacted in Debug).
    pub password: Secret,
    /// TOTP code when 2FA is on.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub totp_code: Option<String>,
    /// This device's UUID.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub device_id: Option<String>,
}

impl fmt::Debug for LoginRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LoginRequest")
            .field("email", &self.email)
            .field("password", &"[redacted]")
            .field("has_totp", &self.totp_code.is_some())
            .finish()
    }
}

/// The account as login returns it (fields vary; unknown ones are ignored).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct OrbnetUser {
    /// Integer user id.
    #[serde(default, deserialize_with = "de::opt_id")]
    pub id: Option<i64>,
    /// Email.
    #[serde(default, deserialize_with = "de::string")]
    pub email: String,
}

/// What login led to.
#[derive(Debug, Clone)]
pub enum LoginOutcome {
    /// Signed in; the client now holds these tokens (already passed to the sink).
    SignedIn {
        /// The new pair.
        tokens: OrbnetTokens,
        /// The account.
        user: OrbnetUser,
    },
    /// The account has 2FA: ask for a TOTP code and log in again with it.
    TwoFactorRequired,
}

/// A VPN server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Server {
    /// Server id (used by authorize, wireguard and start).
    #[serde(deserialize_with = "de::id")]
    pub id: i64,
    /// Display name (falls back to `host_name`).
    #[serde(default, deserialize_with = "de::string")]
    pub name: String,
    /// Host name.
    #[serde(default, deserialize_with = "de::string")]
    pub host_name: String,
    /// City.
    #[serde(default, deserialize_with = "de::string")]
    pub city: String,
    /// ISO country code.
    #[serde(default, deserialize_with = "de::string")]
    pub country: String,
    /// Continent code.
    #[serde(default, deserialize_with = "de::string")]
    pub continent: String,
    /// Server type ("premium").
    #[serde(default, rename = "type", deserialize_with = "de::string")]
    pub kind: String,
    /// Hidden servers are not offered.
    #[serde(default, deserialize_with = "de::boolean")]
    pub hidden: bool,
}

impl Server {
    /// The best name to show.
    pub fn display_name(&self) -> &str {
        if !self.name.is_empty() {
            &self.name
        } else if !self.host_name.is_empty() {
            &self.host_name
        } else {
            ""
        }
    }
}

/// VPN protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    /// WireGuard (the only one Ferry carries).
    Wireguard,
    /// VLESS.
    Vless,
    /// OrbConnect.
    Orbconnect,
}

impl Protocol {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Wireguard => "wireguard",
            Protocol::Vless => "vless",
            Protocol::Orbconnect => "orbconnect",
        }
    }
}

/// Why a session ended (OrbNET's `disconnect_reason`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DisconnectReason {
    /// The user disconnected.
    UserInitiated,
    /// Credits ran out.
    CreditsDepleted,
    /// A network or client error.
    Error,
    /// No heartbeats were received.
    Timeout,
    /// Ferry's own reason, not OrbNET's: ended because the machine went (or is going) to sleep.
    /// Sent as `user_initiated` (Ferry chose to end it; OrbNET has no closer value) and recorded
    /// as `sleep` in the history.
    Sleep,
}

impl DisconnectReason {
    /// The name Ferry records (the wire name for OrbNET's own four values).
    pub fn as_str(self) -> &'static str {
        match self {
            DisconnectReason::UserInitiated => "user_initiated",
            DisconnectReason::CreditsDepleted => "credits_depleted",
            DisconnectReason::Error => "error",
            DisconnectReason::Timeout => "timeout",
            DisconnectReason::Sleep => "sleep",
        }
    }

    /// The value sent as `disconnect_reason` (one of OrbNET's four).
    pub fn wire(self) -> &'static str {
        match self {
            DisconnectReason::Sleep => "user_initiated",
            other => other.as_str(),
        }
    }
}

/// Credits as authorize reports them.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct AuthorizeCredits {
    /// Credits available.
    #[serde(default, deserialize_with = "de::credits")]
    pub available: f64,
    /// Credits per minute.
    #[serde(default, deserialize_with = "de::credits")]
    pub consumption_rate: f64,
    /// Hours left at that rate.
    #[serde(default, deserialize_with = "de::credits")]
    pub estimated_hours: f64,
}

/// `POST /vpn/authorize` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Authorization {
    /// True when the user may connect.
    #[serde(default, deserialize_with = "de::boolean")]
    pub authorized: bool,
    /// The server chosen (by us or by the server).
    #[serde(default, deserialize_with = "de::opt_id")]
    pub server_id: Option<i64>,
    /// Protocol.
    #[serde(default, deserialize_with = "de::string")]
    pub protocol: String,
    /// Credit figures.
    #[serde(default)]
    pub credits: AuthorizeCredits,
}

/// `[Interface]` part of the WireGuard answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WgInterface {
    /// The server-generated private key (secret).
    pub private_key: Secret,
    /// Tunnel addresses, e.g. `10.66.66.2/32`.
    #[serde(default, deserialize_with = "de::strings")]
    pub address: Vec<String>,
    /// DNS servers.
    #[serde(default, deserialize_with = "de::strings")]
    pub dns: Vec<String>,
    /// MTU.
    #[serde(default, deserialize_with = "de::opt_count")]
    pub mtu: Option<u64>,
}

/// `[Peer]` part of the WireGuard answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WgPeer {
    /// The server's public key.
    #[serde(deserialize_with = "de::string")]
    pub public_key: String,
    /// `host:port`.
    #[serde(deserialize_with = "de::string")]
    pub endpoint: String,
    /// Routed networks.
    #[serde(default, deserialize_with = "de::strings")]
    pub allowed_ips: Vec<String>,
    /// Keepalive seconds.
    #[serde(default, deserialize_with = "de::opt_count")]
    pub persistent_keepalive: Option<u64>,
}

/// `GET /vpn/servers/{id}/wireguard` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WireguardConfig {
    /// Interface part.
    pub interface: WgInterface,
    /// Peer part.
    pub peer: WgPeer,
    /// The same as a wg-quick config text (holds the private key: secret).
    #[serde(default)]
    pub config: Option<Secret>,
}

/// `POST /vpn/session/start` body.
#[derive(Debug, Clone, Serialize)]
pub struct StartSession {
    /// Client-generated id (a UUID), written to the store before this call.
    pub session_id: String,
    /// The server connected to.
    pub server_id: i64,
    /// Protocol in use.
    pub protocol: Protocol,
}

/// `POST /vpn/session/start` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionStarted {
    /// Echo of our id.
    #[serde(default, deserialize_with = "de::string")]
    pub session_id: String,
    /// Server tracking id.
    #[serde(default, deserialize_with = "de::string")]
    pub tracking_id: String,
    /// Free user flag.
    #[serde(default, deserialize_with = "de::boolean")]
    pub is_free_user: bool,
    /// Credits at start.
    #[serde(default, deserialize_with = "de::credits")]
    pub credits_at_start: f64,
    /// Credits per minute.
    #[serde(default, deserialize_with = "de::credits")]
    pub consumption_rate: f64,
    /// Seconds to the next deduction.
    #[serde(default, deserialize_with = "de::opt_count")]
    pub next_deduction_in_seconds: Option<u64>,
}

/// `POST /vpn/session/heartbeat` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HeartbeatAck {
    /// Echo of the id.
    #[serde(default, deserialize_with = "de::string")]
    pub session_id: String,
    /// Credits left.
    #[serde(default, deserialize_with = "de::credits")]
    pub credits_remaining: f64,
    /// Credits taken by this heartbeat.
    #[serde(default, deserialize_with = "de::credits")]
    pub credits_deducted: f64,
    /// Credits per minute.
    #[serde(default, deserialize_with = "de::credits")]
    pub consumption_rate: f64,
    /// Seconds to the next deduction.
    #[serde(default, deserialize_with = "de::opt_count")]
    pub next_deduction_in_seconds: Option<u64>,
    /// Server's view of the session length.
    #[serde(default, deserialize_with = "de::opt_count")]
    pub session_duration_secs: Option<u64>,
}

/// `POST /vpn/session/end` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionEnded {
    /// Echo of the id.
    #[serde(default, deserialize_with = "de::string")]
    pub session_id: String,
    /// Total seconds.
    #[serde(default, deserialize_with = "de::opt_count")]
    pub total_duration_secs: Option<u64>,
    /// Total credits used.
    #[serde(default, deserialize_with = "de::credits")]
    pub total_credits_used: f64,
    /// Credits left.
    #[serde(default, deserialize_with = "de::credits")]
    pub credits_remaining: f64,
    /// Echo of the reason.
    #[serde(default, deserialize_with = "de::string")]
    pub disconnect_reason: String,
    /// End time.
    #[serde(default, with = "crate::timefmt::lenient_opt")]
    pub ended_at: Option<DateTime<Utc>>,
}

/// The active session, as `GET /vpn/session/active` describes it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActiveSessionInfo {
    /// Its id.
    #[serde(default, deserialize_with = "de::string")]
    pub session_id: String,
    /// Server id.
    #[serde(default, deserialize_with = "de::opt_id")]
    pub server_id: Option<i64>,
    /// Protocol.
    #[serde(default, deserialize_with = "de::string")]
    pub protocol: String,
    /// Start time.
    #[serde(default, with = "crate::timefmt::lenient_opt")]
    pub started_at: Option<DateTime<Utc>>,
    /// Seconds so far.
    #[serde(default, deserialize_with = "de::opt_count")]
    pub duration_secs: Option<u64>,
    /// Credits left.
    #[serde(default, deserialize_with = "de::opt_credits")]
    pub credits_remaining: Option<f64>,
}

/// `GET /vpn/session/active` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ActiveSession {
    /// True when one is active.
    #[serde(default, deserialize_with = "de::boolean")]
    pub has_active_session: bool,
    /// The session, when active.
    #[serde(default)]
    pub session: Option<ActiveSessionInfo>,
}

#[derive(Debug)]
struct AuthState {
    tokens: Option<OrbnetTokens>,
    generation: u64,
}

/// The OrbNET client. Cheap to clone; clones share tokens.
#[derive(Clone)]
pub struct OrbnetClient {
    ep: Endpoint,
    auth: Arc<Mutex<AuthState>>,
    sink: Option<Arc<dyn TokenSink>>,
}

impl fmt::Debug for OrbnetClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("OrbnetClient")
            .field("base", &self.ep.base().as_str())
            .finish_non_exhaustive()
    }
}

impl OrbnetClient {
    /// A client for `base_url` (e.g. `https://api.orbai.world/api/v1` or the lab's URL). Plain
    /// http is refused unless the host is loopback ([`ApiError::InsecureUrl`]).
    pub fn new(base_url: &str, settings: HttpSettings) -> Result<Self, ApiError> {
        Ok(Self {
            ep: Endpoint::new(SERVICE, base_url, settings)?,
            auth: Arc::new(Mutex::new(AuthState {
                tokens: None,
                generation: 0,
            })),
            sink: None,
        })
    }

    /// Starts with these tokens (e.g. [`OrbnetTokens::from_stored`] of the keyring's value).
    /// Tokens recorded as issued by another origin are kept but never sent: calls fail with
    /// [`ApiError::TokenOriginMismatch`].
    pub fn with_tokens(self, tokens: Option<OrbnetTokens>) -> Self {
        if let Ok(mut a) = self.auth.try_lock() {
            a.tokens = tokens;
            a.generation += 1;
        }
        self
    }

    /// Persists rotated tokens through `sink`.
    pub fn with_token_sink(mut self, sink: Arc<dyn TokenSink>) -> Self {
        self.sink = Some(sink);
        self
    }

    /// Replaces the tokens.
    pub async fn set_tokens(&self, tokens: Option<OrbnetTokens>) {
        let mut a = self.auth.lock().await;
        a.tokens = tokens;
        a.generation += 1;
    }

    /// The tokens held now.
    pub async fn tokens(&self) -> Option<OrbnetTokens> {
        self.auth.lock().await.tokens.clone()
    }

    /// The origin this client sends to (and records in the tokens it obtains).
    pub fn origin(&self) -> &Origin {
        self.ep.origin()
    }

    /// `POST /auth/login`. On success the client holds the tokens and the sink is told.
    pub async fn login(&self, req: &LoginRequest) -> Result<LoginOutcome, ApiError> {
        let body = serde_json::to_value(req).map_err(|e| ApiError::BadUrl {
            service: SERVICE,
            reason: e.to_string(),
        })?;
        let resp = self
            .ep
            .send(
                Method::POST,
                &["auth", "login"],
                None,
                Some(&body),
                Repeat::Once,
            )
            .await?;
        let data: Value = self.data(resp)?;
        let requires_2fa = data
            .get("requires_2fa")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        let tokens = parse_tokens(&data, self.ep.origin());
        match tokens {
            Some(t) if !requires_2fa => {
                let user: OrbnetUser = data
                    .get("user")
                    .cloned()
                    .and_then(|u| serde_json::from_value(u).ok())
                    .unwrap_or_default();
                self.adopt(t.clone()).await;
                Ok(LoginOutcome::SignedIn { tokens: t, user })
            }
            _ if requires_2fa || data.get("tokens").is_some() => {
                Ok(LoginOutcome::TwoFactorRequired)
            }
            _ => Err(ApiError::Malformed {
                service: SERVICE,
                status: 200,
                detail: "login answer has no tokens".into(),
            }),
        }
    }

    async fn adopt(&self, tokens: OrbnetTokens) {
        {
            let mut a = self.auth.lock().await;
            a.tokens = Some(tokens.clone());
            a.generation += 1;
        }
        if let Some(sink) = &self.sink {
            sink.tokens_rotated(tokens).await;
        }
    }

    /// `POST /auth/refresh` with the held refresh token; the new pair replaces the old one and
    /// goes to the sink. A 401/403 means the sign-in is over (`Unauthorized`).
    pub async fn refresh(&self) -> Result<OrbnetTokens, ApiError> {
        let gen = self.auth.lock().await.generation;
        self.refresh_after(gen).await?;
        self.tokens()
            .await
            .ok_or(ApiError::NoToken { service: SERVICE })
    }

    /// Refreshes unless another task already did since `gen` (clones share the lock held here;
    /// separate clients share [`refresh_flight`]); returns the bearer to use.
    async fn refresh_after(&self, gen: u64) -> Result<StoredToken, ApiError> {
        let mut a = self.auth.lock().await;
        let current = a
            .tokens
            .clone()
            .ok_or(ApiError::NoToken { service: SERVICE })?;
        if a.generation != gen {
            return Ok(current.bearer());
        }
        self.ep.check_issuer(current.origin.as_ref())?;
        let Some(refresh) = current.refresh_token.clone() else {
            return Err(ApiError::Unauthorized {
                service: SERVICE,
                message: "access token expired and no refresh token is held".into(),
            });
        };
        // One refresh per refresh token in the whole process, not only across clones.
        let (tokens, outcome) = refresh_flight::refresh_once(self.ep.origin(), &refresh, || {
            self.send_refresh(refresh.clone())
        })
        .await?;
        a.tokens = Some(tokens.clone());
        a.generation += 1;
        drop(a);
        if outcome == Outcome::Refreshed {
            tracing::debug!("OrbNET tokens refreshed");
            if let Some(sink) = &self.sink {
                sink.tokens_rotated(tokens.clone()).await;
            }
        } else {
            tracing::debug!("OrbNET tokens already refreshed by another client of this process");
        }
        Ok(tokens.bearer())
    }

    /// `POST /auth/refresh` itself; the answer's pair, issued by this client's origin.
    async fn send_refresh(&self, refresh: Secret) -> Result<OrbnetTokens, ApiError> {
        let body = json!({ "refresh_token": refresh.expose() });
        let resp = self
            .ep
            .send(
                Method::POST,
                &["auth", "refresh"],
                None,
                Some(&body),
                Repeat::Once,
            )
            .await?;
        let status = resp.status;
        let data: Value = match self.data(resp) {
            Ok(d) => d,
            Err(e) if matches!(status, StatusCode::FORBIDDEN) => {
                return Err(ApiError::Unauthorized {
                    service: SERVICE,
                    message: e.to_string(),
                })
            }
            Err(e) => return Err(e),
        };
        let Some(mut tokens) = parse_tokens(&data, self.ep.origin()) else {
            return Err(ApiError::Malformed {
                service: SERVICE,
                status: status.as_u16(),
                detail: "refresh answer has no tokens".into(),
            });
        };
        if tokens.refresh_token.is_none() {
            // Not rotated by this server: keep the old one.
            tokens.refresh_token = Some(refresh);
        }
        Ok(tokens)
    }

    /// `POST /auth/logout` (best effort); forgets the tokens either way.
    pub async fn logout(&self) -> Result<(), ApiError> {
        let tokens = self.tokens().await;
        let result = match &tokens {
            Some(t) => {
                let body = match &t.refresh_token {
                    Some(r) => json!({ "refresh_token": r.expose() }),
                    None => json!({}),
                };
                self.ep
                    .send(
                        Method::POST,
                        &["auth", "logout"],
                        Some(&t.bearer()),
                        Some(&body),
                        Repeat::Once,
                    )
                    .await
                    .and_then(|r| self.data::<Value>(r).map(|_| ()))
            }
            None => Ok(()),
        };
        self.set_tokens(None).await;
        result
    }

    /// `GET /vpn/servers`: `data.servers[]` or a bare array.
    pub async fn servers(&self) -> Result<Vec<Server>, ApiError> {
        let resp = self
            .authed(Method::GET, &["vpn", "servers"], None, Repeat::Safe)
            .await?;
        let status = resp.status.as_u16();
        let data: Value = self.data(resp)?;
        let list = match data {
            Value::Array(_) => data,
            Value::Object(mut o) => o.remove("servers").unwrap_or(Value::Null),
            _ => Value::Null,
        };
        serde_json::from_value(list).map_err(|e| ApiError::Malformed {
            service: SERVICE,
            status,
            detail: format!("server list: {e}"),
        })
    }

    /// `POST /vpn/authorize`; `server_id` `None` lets the server pick.
    pub async fn authorize(
        &self,
        server_id: Option<i64>,
        protocol: Protocol,
    ) -> Result<Authorization, ApiError> {
        let mut body = json!({ "protocol": protocol.as_str() });
        if let Some(id) = server_id {
            body["server_id"] = json!(id);
        }
        let resp = self
            .authed(
                Method::POST,
                &["vpn", "authorize"],
                Some(&body),
                Repeat::Once,
            )
            .await?;
        self.data(resp)
    }

    /// `GET /vpn/servers/{id}/wireguard`: a server-generated keypair and config.
    pub async fn wireguard_config(&self, server_id: i64) -> Result<WireguardConfig, ApiError> {
        let id = server_id.to_string();
        let resp = self
            .authed(
                Method::GET,
                &["vpn", "servers", &id, "wireguard"],
                None,
                Repeat::Safe,
            )
            .await?;
        self.data(resp)
    }

    /// `POST /vpn/session/start`. Sent once; a failure's [`ApiError::delivery`] tells whether it
    /// may have reached the server.
    pub async fn start_session(&self, req: &StartSession) -> Result<SessionStarted, ApiError> {
        let body = json!({
            "session_id": req.session_id,
            "server_id": req.server_id,
            "protocol": req.protocol.as_str(),
        });
        let resp = self
            .authed(
                Method::POST,
                &["vpn", "session", "start"],
                Some(&body),
                Repeat::Once,
            )
            .await?;
        self.data(resp)
    }

    /// `POST /vpn/session/heartbeat`. Sent once (never retried here: a repeat could bill twice).
    pub async fn heartbeat(
        &self,
        session_id: &str,
        seconds_since_last: u32,
    ) -> Result<HeartbeatAck, ApiError> {
        let body = json!({ "session_id": session_id, "seconds_since_last": seconds_since_last });
        let resp = self
            .authed(
                Method::POST,
                &["vpn", "session", "heartbeat"],
                Some(&body),
                Repeat::Once,
            )
            .await?;
        self.data(resp)
    }

    /// `POST /vpn/session/end`. Sent once.
    pub async fn end_session(
        &self,
        session_id: &str,
        seconds_since_last: u32,
        reason: DisconnectReason,
    ) -> Result<SessionEnded, ApiError> {
        let body = json!({
            "session_id": session_id,
            "seconds_since_last": seconds_since_last,
            "disconnect_reason": reason.wire(),
        });
        let resp = self
            .authed(
                Method::POST,
                &["vpn", "session", "end"],
                Some(&body),
                Repeat::Once,
            )
            .await?;
        self.data(resp)
    }

    /// `GET /vpn/session/active`.
    pub async fn active_session(&self) -> Result<ActiveSession, ApiError> {
        let resp = self
            .authed(
                Method::GET,
                &["vpn", "session", "active"],
                None,
                Repeat::Safe,
            )
            .await?;
        self.data(resp)
    }

    /// Sends with the access token; on 401 refreshes once (serialised across clones) and resends.
    /// A 401 means the server refused before acting, so the resend cannot double anything.
    async fn authed(
        &self,
        method: Method,
        segments: &[&str],
        body: Option<&Value>,
        repeat: Repeat,
    ) -> Result<RawResponse, ApiError> {
        let (token, gen) = {
            let a = self.auth.lock().await;
            let t = a
                .tokens
                .as_ref()
                .map(OrbnetTokens::bearer)
                .ok_or(ApiError::NoToken { service: SERVICE })?;
            (t, a.generation)
        };
        let resp = self
            .ep
            .send(method.clone(), segments, Some(&token), body, repeat)
            .await?;
        if resp.status != StatusCode::UNAUTHORIZED {
            return Ok(resp);
        }
        tracing::debug!("401 from OrbNET: refreshing the access token once");
        let token = self.refresh_after(gen).await?;
        self.ep
            .send(method, segments, Some(&token), body, repeat)
            .await
    }

    /// Unwraps the envelope's `data`, or maps the error envelope.
    fn data<T: serde::de::DeserializeOwned>(&self, resp: RawResponse) -> Result<T, ApiError> {
        if !resp.status.is_success() {
            return Err(map_error(&resp));
        }
        let v: Value = self.ep.parse(&resp)?;
        if v.get("success").and_then(Value::as_bool) == Some(false) {
            return Err(map_error(&resp));
        }
        let data = match v {
            Value::Object(mut o) if o.contains_key("data") => {
                o.remove("data").unwrap_or(Value::Null)
            }
            _ => return Err(self.ep.malformed(&resp, "no `data` in the envelope")),
        };
        serde_json::from_value(data).map_err(|e| self.ep.malformed(&resp, e.to_string()))
    }
}

fn parse_tokens(data: &Value, issuer: &Origin) -> Option<OrbnetTokens> {
    let holder = data.get("tokens").unwrap_or(data);
    let access = holder
        .get("access_token")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty())?;
    let refresh = holder
        .get("refresh_token")
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty());
    Some(OrbnetTokens {
        access_token: Secret::new(access),
        refresh_token: refresh.map(Secret::new),
        origin: Some(issuer.clone()),
    })
}

/// Maps an OrbNET error answer: the envelope's `error.code`/`error.message`, or any of
/// `detail`/`message`/`title`/`error` text, or the HTTP reason.
pub(crate) fn map_error(resp: &RawResponse) -> ApiError {
    let status = resp.status.as_u16();
    let v: Option<Value> = serde_json::from_slice(&resp.body).ok();
    let code = v
        .as_ref()
        .and_then(|v| v.get("error"))
        .and_then(|e| e.get("code"))
        .and_then(Value::as_str)
        .map(str::to_string);
    let message = v
        .as_ref()
        .and_then(lenient_message)
        .or_else(|| {
            let e = body_excerpt(&resp.body);
            (!e.is_empty() && v.is_some()).then_some(e)
        })
        .unwrap_or_else(|| {
            resp.status
                .canonical_reason()
                .unwrap_or("error")
                .to_string()
        });
    let retry_after = resp.retry_after();
    match status {
        401 => ApiError::Unauthorized {
            service: SERVICE,
            message,
        },
        429 => ApiError::RateLimited {
            service: SERVICE,
            message,
            retry_after,
        },
        _ if v.is_none() && resp.status.is_success() => ApiError::Malformed {
            service: SERVICE,
            status,
            detail: "answer is not JSON".into(),
        },
        _ => ApiError::Vendor {
            service: SERVICE,
            status,
            code,
            message,
            retry_after,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderMap;

    fn raw(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn seed_bodies_parse() {
        let start: SessionStarted = serde_json::from_str(
            r#"{"session_id":"sess_a1b2c3d4-e5f6-7890-abcd-ef1234567890","tracking_id":"trk_98765432","is_free_user":false,"credits_at_start":5000,"consumption_rate":1.5,"next_deduction_in_seconds":60}"#,
        )
        .unwrap();
        assert_eq!(start.credits_at_start, 5000.0);
        assert_eq!(start.next_deduction_in_seconds, Some(60));
        let hb: HeartbeatAck = serde_json::from_str(
            r#"{"session_id":"s","credits_remaining":4910,"credits_deducted":1.5,"consumption_rate":1.5,"next_deduction_in_seconds":60,"session_duration_secs":120,"new_field":[1,2]}"#,
        )
        .unwrap();
        assert_eq!(hb.credits_deducted, 1.5);
        assert_eq!(hb.session_duration_secs, Some(120));
        let end: SessionEnded = serde_json::from_str(
            r#"{"session_id":"s","total_duration_secs":3600,"total_credits_used":90.0,"credits_remaining":4910,"disconnect_reason":"user_initiated","ended_at":"2026-02-08T10:30:00Z"}"#,
        )
        .unwrap();
        assert_eq!(end.total_credits_used, 90.0);
        assert!(end.ended_at.is_some());
        let act: ActiveSession = serde_json::from_str(
            r#"{"has_active_session":true,"session":{"session_id":"s","server_id":101,"protocol":"wireguard","started_at":"2026-02-08T09:30:00Z","duration_secs":3600,"credits_remaining":4910}}"#,
        )
        .unwrap();
        assert_eq!(act.session.unwrap().server_id, Some(101));
        let none: ActiveSession =
            serde_json::from_str(r#"{"has_active_session":false,"session":null}"#).unwrap();
        assert!(none.session.is_none());
    }

    #[test]
    fn error_envelope_maps_to_code_and_message() {
        let e = map_error(&raw(
            409,
            r#"{"success":false,"error":{"code":"SESSION_ALREADY_ACTIVE","message":"An active VPN session already exists."}}"#,
        ));
        assert!(e.has_code(codes::SESSION_ALREADY_ACTIVE));
        assert_eq!(e.status(), Some(409));
        assert!(
            e.to_string()
                .contains("An active VPN session already exists."),
            "{e}"
        );
        let e = map_error(&raw(
            402,
            r#"{"success":false,"error":{"code":"CREDITS_DEPLETED","message":"Your credits have been depleted."}}"#,
        ));
        assert!(e.has_code(codes::CREDITS_DEPLETED));
        let e = map_error(&raw(500, "<html>oops</html>"));
        assert_eq!(e.status(), Some(500));
        assert!(e.is_transient());
        let e = map_error(&raw(401, r#"{"detail":"expired"}"#));
        assert!(matches!(e, ApiError::Unauthorized { .. }));
        let e = map_error(&raw(422, r#"{"title":"Validation failed","status":422}"#));
        assert!(e.to_string().contains("Validation failed"));
    }

    #[test]
    fn tokens_stored_form_and_redaction() {
        let t = OrbnetTokens {
            access_token: Secret::new("tokA1"),
            refresh_token: Some(Secret::new("tokR1")),
            origin: Some("https://api.orbai.world/api/v1".parse().unwrap()),
        };
        let stored = t.to_stored();
        assert!(!stored.expose().contains('\n'));
        assert_eq!(OrbnetTokens::from_stored(&stored), t);
        assert!(
            stored
                .expose()
                .contains(r#""origin":"https://api.orbai.world""#),
            "the issuer is recorded"
        );
        let legacy = OrbnetTokens::from_stored(&Secret::new(
            r#"{"access_token":"tokA1","refresh_token":"tokR1"}"#,
        ));
        assert_eq!(
            legacy.origin, None,
            "values stored before origins stay usable"
        );
        assert_eq!(legacy.refresh_token, t.refresh_token);
        let raw = OrbnetTokens::from_stored(&Secret::new("bare-token"));
        assert_eq!(raw.access_token.expose(), "bare-token");
        assert!(raw.refresh_token.is_none());
        assert!(raw.origin.is_none());
        let dbg = format!("{t:?}");
        assert!(!dbg.contains("tokA1") && !dbg.contains("tokR1"), "{dbg}");
    }

    #[test]
    fn servers_and_wireguard_parse() {
        let s: Vec<Server> = serde_json::from_str(
            r#"[{"id":101,"name":"Frankfurt 1","city":"Frankfurt","country":"DE"},{"id":"102","host_name":"nyc.example","hidden":null}]"#,
        )
        .unwrap();
        assert_eq!(s[1].id, 102);
        assert_eq!(s[1].display_name(), "nyc.example");
        let wg: WireguardConfig = serde_json::from_str(
            r#"{"interface":{"private_key":"cHJpdg==","address":"10.66.66.2/32","dns":["1.1.1.1","1.0.0.1"],"mtu":1420},"peer":{"public_key":"cHVi","endpoint":"203.0.113.10:51820","allowed_ips":["0.0.0.0/0","::/0"],"persistent_keepalive":25},"config":"[Interface]\nPrivateKey = cHJpdg=="}"#,
        )
        .unwrap();
        assert_eq!(wg.interface.address, vec!["10.66.66.2/32"]);
        assert_eq!(wg.peer.persistent_keepalive, Some(25));
        let dbg = format!("{wg:?}");
        assert!(!dbg.contains("cHJpdg=="), "{dbg}");
    }
}
