//! NeoSC (self-hosted, `https://<domain>/api`): login/logout/me, workspaces (list, launch, stop)
//! and workspace sessions (list, active, one, disconnect). Errors are FastAPI `{"detail": ...}`.
//! Tokens are opaque and have no refresh: a 401 means "log in again".

use std::fmt;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::origin::Origin;
use super::token::StoredToken;
use super::{de, ApiError, Endpoint, Repeat, ServiceKind};
use crate::http::{HttpSettings, RawResponse};
use crate::secrets::Secret;

const SERVICE: ServiceKind = ServiceKind::Neosc;

/// A NeoSC user.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct NeoscUser {
    /// User id (UUID).
    #[serde(default, deserialize_with = "de::string")]
    pub id: String,
    /// Email.
    #[serde(default, deserialize_with = "de::string")]
    pub email: String,
    /// Name.
    #[serde(default, deserialize_with = "de::string")]
    pub name: String,
    /// Organization.
    #[serde(default, deserialize_with = "de::string")]
    pub organization: String,
    /// `user` or `admin`.
    #[serde(default, deserialize_with = "de::string")]
    pub role: String,
}

/// Login answer.
#[derive(Clone, Serialize, Deserialize)]
pub struct NeoscAuth {
    /// The opaque bearer token.
    pub access_token: Secret,
    /// `bearer`.
    #[serde(default, deserialize_with = "de::string")]
    pub token_type: String,
    /// The user.
    #[serde(default)]
    pub user: NeoscUser,
}

impl fmt::Debug for NeoscAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NeoscAuth")
            .field("access_token", &"[redacted]")
            .field("user", &self.user)
            .finish()
    }
}

/// A workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workspace {
    /// Id, e.g. `ws-linux-desktop`.
    #[serde(deserialize_with = "de::string")]
    pub id: String,
    /// Name.
    #[serde(default, deserialize_with = "de::string")]
    pub name: String,
    /// Description.
    #[serde(default, deserialize_with = "de::string")]
    pub description: String,
    /// `html5`, `rdp`, `web`, `linux`, ...
    #[serde(default, rename = "type", deserialize_with = "de::string")]
    pub kind: String,
    /// `available`, `running`, `stopped`, `error`, `coming_soon`.
    #[serde(default, deserialize_with = "de::string")]
    pub status: String,
    /// CPU text ("2 vCPU").
    #[serde(default, deserialize_with = "de::string")]
    pub cpu: String,
    /// Memory text.
    #[serde(default, deserialize_with = "de::string")]
    pub memory: String,
    /// Connection type.
    #[serde(default, deserialize_with = "de::string")]
    pub connection_type: String,
    /// Needs the NetBird mesh.
    #[serde(default, deserialize_with = "de::boolean")]
    pub requires_netbird: bool,
}

/// A workspace session.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WorkspaceSession {
    /// Session id (UUID).
    #[serde(deserialize_with = "de::string")]
    pub id: String,
    /// Owner id.
    #[serde(default, deserialize_with = "de::string")]
    pub user_id: String,
    /// Owner email.
    #[serde(default, deserialize_with = "de::string")]
    pub user_email: String,
    /// Workspace id.
    #[serde(default, deserialize_with = "de::string")]
    pub workspace_id: String,
    /// Workspace name.
    #[serde(default, deserialize_with = "de::string")]
    pub workspace_name: String,
    /// Workspace type.
    #[serde(default, deserialize_with = "de::string")]
    pub workspace_type: String,
    /// `active`, `disconnected`, `terminated`.
    #[serde(default, deserialize_with = "de::string")]
    pub status: String,
    /// Start.
    #[serde(default, with = "crate::timefmt::lenient_opt")]
    pub started_at: Option<DateTime<Utc>>,
    /// End (None while active).
    #[serde(default, with = "crate::timefmt::lenient_opt")]
    pub ended_at: Option<DateTime<Utc>>,
    /// Session IP.
    #[serde(default, deserialize_with = "de::string")]
    pub ip_address: String,
    /// Tunnel status text (static on the server side; not proof of a tunnel).
    #[serde(default, deserialize_with = "de::string")]
    pub tunnel_status: String,
    /// MFA verified.
    #[serde(default, deserialize_with = "de::boolean")]
    pub mfa_verified: bool,
}

impl WorkspaceSession {
    /// True when `status == "active"`.
    pub fn is_active(&self) -> bool {
        self.status.eq_ignore_ascii_case("active")
    }
}

/// `POST /workspaces/{id}/launch` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Launched {
    /// The new session's id.
    #[serde(deserialize_with = "de::string")]
    pub session_id: String,
    /// The workspace.
    #[serde(default)]
    pub workspace: Option<Workspace>,
    /// Viewer path, e.g. `/viewer/<id>` (may be null).
    #[serde(default)]
    pub stream_url: Option<String>,
    /// Tunnel status text.
    #[serde(default, deserialize_with = "de::string")]
    pub tunnel_status: String,
    /// Direct connection URL, when given.
    #[serde(default)]
    pub connection_url: Option<String>,
}

impl Launched {
    /// Where a browser shows the launched workspace: the server's direct `connection_url`
    /// when it is https (or http to loopback), else `stream_url` (a viewer path such as
    /// `/viewer/<id>`, or a URL) resolved against the NeoSC server at `base_url`, kept only on
    /// that server's origin. `None` when neither gives a safe address.
    pub fn viewer_url(&self, base_url: &str) -> Option<String> {
        let base = reqwest::Url::parse(base_url).ok()?;
        let web = |u: &reqwest::Url| {
            u.scheme() == "https"
                || (u.scheme() == "http"
                    && u.host_str().is_some_and(|h| {
                        h == "localhost"
                            || h.trim_matches(['[', ']'])
                                .parse::<std::net::IpAddr>()
                                .is_ok_and(|ip| ip.is_loopback())
                    }))
        };
        if let Some(u) = self
            .connection_url
            .as_deref()
            .and_then(|c| reqwest::Url::parse(c.trim()).ok())
        {
            if web(&u) {
                return Some(u.to_string());
            }
        }
        let path = self.stream_url.as_deref()?.trim();
        if path.is_empty() {
            return None;
        }
        let u = base.join(path).ok()?;
        (u.origin() == base.origin() && web(&u)).then(|| u.to_string())
    }
}

/// A `{"message": ...}` answer (stop, disconnect, logout).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MessageAnswer {
    /// The server's message.
    #[serde(default, deserialize_with = "de::string")]
    pub message: String,
    /// Sessions ended (logout only).
    #[serde(default, deserialize_with = "de::opt_count")]
    pub sessions_terminated: Option<u64>,
}

/// The NeoSC client.
#[derive(Clone)]
pub struct NeoscClient {
    ep: Endpoint,
    token: Option<StoredToken>,
}

impl fmt::Debug for NeoscClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NeoscClient")
            .field("base", &self.ep.base().as_str())
            .field("has_token", &self.token.is_some())
            .finish()
    }
}

impl NeoscClient {
    /// A client for `base_url` (`https://<domain>/api`).
    /// Plain http is refused unless the host is loopback ([`ApiError::InsecureUrl`]).
    pub fn new(base_url: &str, settings: HttpSettings) -> Result<Self, ApiError> {
        Ok(Self {
            ep: Endpoint::new(SERVICE, base_url, settings)?,
            token: None,
        })
    }

    /// Uses this token: a stored value ([`StoredToken::to_secret`], bound to its issuer) or a
    /// bare token (from `FERRY_*_TOKEN`, pasted, or stored before origins were recorded: sent to
    /// whatever this client's base URL is). A token issued by another origin is never sent:
    /// calls fail with [`ApiError::TokenOriginMismatch`].
    pub fn with_token(self, token: Option<Secret>) -> Self {
        self.with_stored_token(token.as_ref().map(StoredToken::parse))
    }

    /// Uses this token, sent only if it is unbound or was issued by this client's origin.
    pub fn with_stored_token(mut self, token: Option<StoredToken>) -> Self {
        self.token = token;
        self
    }

    /// The origin this client sends to.
    pub fn origin(&self) -> &Origin {
        self.ep.origin()
    }

    /// The held token in its stored form, recorded as issued by this client's origin when its
    /// issuer was unknown (keep it after checking the token against this origin).
    pub fn stored_token(&self) -> Option<Secret> {
        self.token
            .clone()
            .map(|t| t.or_bound_to(self.ep.origin()).to_secret())
    }

    fn token(&self) -> Result<&StoredToken, ApiError> {
        self.token
            .as_ref()
            .ok_or(ApiError::NoToken { service: SERVICE })
    }

    /// `POST /auth/login`; the client then uses the returned token.
    pub async fn login(&mut self, email: &str, password: &Secret) -> Result<NeoscAuth, ApiError> {
        let body = json!({ "email": email, "password": password.expose() });
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
        let auth: NeoscAuth = self.ok(resp)?;
        if auth.access_token.is_blank() {
            return Err(ApiError::Malformed {
                service: SERVICE,
                status: 200,
                detail: "login answer has an empty token".into(),
            });
        }
        self.token = Some(StoredToken::new(
            self.ep.origin().clone(),
            auth.access_token.clone(),
        ));
        Ok(auth)
    }

    /// `POST /auth/logout`: the server ends every active session of the user.
    pub async fn logout(&self) -> Result<MessageAnswer, ApiError> {
        self.call(Method::POST, &["auth", "logout"], Repeat::Once)
            .await
    }

    /// `GET /auth/me`.
    pub async fn me(&self) -> Result<NeoscUser, ApiError> {
        self.call(Method::GET, &["auth", "me"], Repeat::Safe).await
    }

    /// `GET /workspaces`.
    pub async fn workspaces(&self) -> Result<Vec<Workspace>, ApiError> {
        self.call(Method::GET, &["workspaces"], Repeat::Safe).await
    }

    /// `POST /workspaces/{id}/launch`: creates an active session. Sent once.
    pub async fn launch(&self, workspace_id: &str) -> Result<Launched, ApiError> {
        self.call(
            Method::POST,
            &["workspaces", workspace_id, "launch"],
            Repeat::Once,
        )
        .await
    }

    /// `POST /workspaces/{id}/stop`: terminates the caller's active session there (200 even if
    /// there was none).
    pub async fn stop(&self, workspace_id: &str) -> Result<MessageAnswer, ApiError> {
        self.call(
            Method::POST,
            &["workspaces", workspace_id, "stop"],
            Repeat::Once,
        )
        .await
    }

    /// `GET /sessions`: the caller's sessions.
    pub async fn sessions(&self) -> Result<Vec<WorkspaceSession>, ApiError> {
        self.call(Method::GET, &["sessions"], Repeat::Safe).await
    }

    /// `GET /sessions/active`.
    pub async fn active_sessions(&self) -> Result<Vec<WorkspaceSession>, ApiError> {
        self.call(Method::GET, &["sessions", "active"], Repeat::Safe)
            .await
    }

    /// `GET /sessions/{id}`.
    pub async fn session(&self, id: &str) -> Result<WorkspaceSession, ApiError> {
        self.call(Method::GET, &["sessions", id], Repeat::Safe)
            .await
    }

    /// `POST /sessions/{id}/disconnect`. 404 when missing or someone else's.
    pub async fn disconnect(&self, id: &str) -> Result<MessageAnswer, ApiError> {
        self.call(Method::POST, &["sessions", id, "disconnect"], Repeat::Once)
            .await
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        method: Method,
        segments: &[&str],
        repeat: Repeat,
    ) -> Result<T, ApiError> {
        let resp = self
            .ep
            .send(method, segments, Some(self.token()?), None, repeat)
            .await?;
        self.ok(resp)
    }

    fn ok<T: serde::de::DeserializeOwned>(&self, resp: RawResponse) -> Result<T, ApiError> {
        if !resp.status.is_success() {
            return Err(map_error(&resp));
        }
        self.ep.parse(&resp)
    }
}

/// Maps a NeoSC (FastAPI) error answer.
pub(crate) fn map_error(resp: &RawResponse) -> ApiError {
    let status = resp.status.as_u16();
    let v: Option<Value> = serde_json::from_slice(&resp.body).ok();
    let message = super::answer_message(resp, v.as_ref());
    match status {
        401 => ApiError::Unauthorized {
            service: SERVICE,
            message,
        },
        429 => ApiError::RateLimited {
            service: SERVICE,
            message,
            retry_after: resp.retry_after(),
        },
        _ => ApiError::Vendor {
            service: SERVICE,
            status,
            code: None,
            message,
            retry_after: resp.retry_after(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launched(stream: Option<&str>, direct: Option<&str>) -> Launched {
        Launched {
            session_id: "s1".into(),
            workspace: None,
            stream_url: stream.map(str::to_string),
            tunnel_status: String::new(),
            connection_url: direct.map(str::to_string),
        }
    }

    #[test]
    fn the_viewer_opens_on_the_servers_origin_or_a_direct_https_url() {
        let base = "https://neosc.example.org/api";
        let v = |s, d| launched(s, d).viewer_url(base);
        assert_eq!(
            v(Some("/viewer/s1"), None).as_deref(),
            Some("https://neosc.example.org/viewer/s1")
        );
        assert_eq!(
            v(Some("/viewer/s1"), Some("https://rdp.example.net/c/1")).as_deref(),
            Some("https://rdp.example.net/c/1"),
            "a direct https URL wins"
        );
        // Nothing that leaves the server's origin through the viewer path, nor plain http
        // elsewhere, nor other schemes.
        assert_eq!(v(Some("https://evil.example/x"), None), None);
        assert_eq!(v(Some("//evil.example/x"), None), None);
        assert_eq!(
            v(Some("/viewer/s1"), Some("http://rdp.example.net/")).as_deref(),
            Some("https://neosc.example.org/viewer/s1")
        );
        assert_eq!(v(None, Some("javascript:alert(1)")), None);
        assert_eq!(v(Some(""), None), None);
        assert_eq!(
            launched(Some("/viewer/s1"), None)
                .viewer_url("http://127.0.0.1:8080/api")
                .as_deref(),
            Some("http://127.0.0.1:8080/viewer/s1"),
            "the lab on loopback"
        );
    }
    use reqwest::header::HeaderMap;
    use reqwest::StatusCode;

    #[test]
    fn seed_sessions_parse() {
        let list: Vec<WorkspaceSession> = serde_json::from_str(
            r#"[{"id":"f47ac10b-58cc-4372-a567-0e02b2c3d479","user_id":"a3d2","user_email":"john.doe@acme.com","workspace_id":"ws-sap-neogenesys","workspace_name":"SAP Neogénesys","workspace_type":"html5","status":"active","started_at":"2026-03-05T14:30:00.000Z","ended_at":null,"ip_address":"10.0.0.1","tunnel_status":"encrypted","mfa_verified":true},
                {"id":"b2c3","workspace_id":"ws-linux-desktop","status":"terminated","started_at":"2026-03-04T09:15:00.123456+00:00","ended_at":"2026-03-04T17:45:00+00:00","clientless":true}]"#,
        )
        .unwrap();
        assert!(list[0].is_active());
        assert_eq!(list[0].workspace_name, "SAP Neogénesys");
        assert!(!list[1].is_active());
        assert!(list[1].ended_at.is_some());
    }

    #[test]
    fn detail_errors() {
        let r = |s: u16, b: &str| RawResponse {
            status: StatusCode::from_u16(s).unwrap(),
            headers: HeaderMap::new(),
            body: b.as_bytes().to_vec(),
        };
        let e = map_error(&r(404, r#"{"detail":"Session not found"}"#));
        assert_eq!(e.status(), Some(404));
        assert!(e.to_string().contains("Session not found"));
        let e = map_error(&r(401, r#"{"detail":"Invalid token"}"#));
        assert!(matches!(e, ApiError::Unauthorized { .. }));
        let e = map_error(&r(
            422,
            r#"{"detail":[{"loc":["body","email"],"msg":"field required","type":"missing"}]}"#,
        ));
        assert!(e.to_string().contains("body.email: field required"), "{e}");
        let e = map_error(&r(502, "<html>bad gateway</html>"));
        assert!(e.to_string().contains("Bad Gateway"), "{e}");
    }
}
