//! tunnelbyte (`api.tunnelbyte.dev/v1`): regions, usage, sessions created with a client-generated
//! X25519 key (only the public half is sent), status polling and teardown.
//!
//! Errors are `{"error":"..."}`; 402 carries the quota breakdown; 503 may carry `available`.
//! `DELETE /v1/sessions/{id}` is not documented by the vendor; the lab implements it (our
//! assumption), and a 404/405 from it is treated as "nothing to delete".

use std::fmt;
use std::path::Path;

use chrono::{DateTime, Utc};
use reqwest::Method;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::keys::WgKeypair;
use super::origin::Origin;
use super::token::StoredToken;
use super::{de, ApiError, Endpoint, QuotaExceeded, Repeat, ServiceKind};
use crate::http::{HttpSettings, RawResponse};
use crate::secrets::Secret;

const SERVICE: ServiceKind = ServiceKind::Tunnelbyte;

/// An exit region.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Region {
    /// Region code (`fsn`, `ash`, `sin`).
    #[serde(deserialize_with = "de::string")]
    pub code: String,
    /// Healthy nodes (≥ 1 for listed regions).
    #[serde(default, deserialize_with = "de::count")]
    pub node_count: u64,
}

/// `GET /v1/usage`: tier, both windows and their resets. A limit of 0 means "no cap".
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Usage {
    /// `anonymous`, `free` or `paid`.
    #[serde(default, deserialize_with = "de::string")]
    pub tier: String,
    /// Bytes in the bytes window.
    #[serde(default, deserialize_with = "de::count")]
    pub bytes_used: u64,
    /// Byte cap (0 = none).
    #[serde(default, deserialize_with = "de::count")]
    pub bytes_limit: u64,
    /// Seconds in the time window.
    #[serde(default, deserialize_with = "de::count")]
    pub session_seconds: u64,
    /// Time cap (0 = none).
    #[serde(default, deserialize_with = "de::count")]
    pub session_seconds_limit: u64,
    /// Per-session cap (0 = none).
    #[serde(default, deserialize_with = "de::count")]
    pub max_session_seconds: u64,
    /// Bytes window reset.
    #[serde(default, with = "crate::timefmt::lenient_opt")]
    pub bytes_window_resets_at: Option<DateTime<Utc>>,
    /// Time window reset.
    #[serde(default, with = "crate::timefmt::lenient_opt")]
    pub seconds_window_resets_at: Option<DateTime<Utc>>,
    /// The account's default region.
    #[serde(default)]
    pub default_region: Option<String>,
}

/// `POST /v1/sessions` answer.
#[derive(Clone, Serialize, Deserialize)]
pub struct CreatedSession {
    /// Session id.
    #[serde(deserialize_with = "de::string")]
    pub id: String,
    /// Exit IP.
    #[serde(default, deserialize_with = "de::string")]
    pub public_ip: String,
    /// wg-quick config (without `PrivateKey` since we sent our public key).
    #[serde(default, deserialize_with = "de::string")]
    pub wg_config: String,
    /// Hard cutoff.
    #[serde(default, with = "crate::timefmt::lenient_opt")]
    pub expires_at: Option<DateTime<Utc>>,
    /// Resolved tier.
    #[serde(default, deserialize_with = "de::string")]
    pub tier: String,
}

impl fmt::Debug for CreatedSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // wg_config may hold a PrivateKey if a server ignores our key: never print it.
        f.debug_struct("CreatedSession")
            .field("id", &self.id)
            .field("public_ip", &self.public_ip)
            .field("wg_config", &"[redacted]")
            .field("expires_at", &self.expires_at)
            .field("tier", &self.tier)
            .finish()
    }
}

/// `GET /v1/sessions/{id}` answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SessionStatus {
    /// Echo of the id.
    #[serde(default, deserialize_with = "de::string")]
    pub id: String,
    /// Set once the server ended the session.
    #[serde(default, with = "crate::timefmt::lenient_opt")]
    pub terminated_at: Option<DateTime<Utc>>,
    /// `quota_exceeded`, `expired`, `idle` or free text.
    #[serde(default)]
    pub terminated_reason: Option<String>,
    /// Bytes received through the tunnel.
    #[serde(default, deserialize_with = "de::count")]
    pub bytes_in: u64,
    /// Bytes sent through the tunnel.
    #[serde(default, deserialize_with = "de::count")]
    pub bytes_out: u64,
    /// Session start (server clock).
    #[serde(default, with = "crate::timefmt::lenient_opt")]
    pub created_at: Option<DateTime<Utc>>,
    /// Tier.
    #[serde(default, deserialize_with = "de::string")]
    pub tier: String,
    /// Time-leg cost in millicents (paid tier only).
    #[serde(default, deserialize_with = "de::opt_count")]
    pub cost_time_millicents: Option<u64>,
    /// Byte-leg cost in millicents (paid tier only).
    #[serde(default, deserialize_with = "de::opt_count")]
    pub cost_bytes_millicents: Option<u64>,
    /// Currency (`eur`).
    #[serde(default)]
    pub cost_currency: Option<String>,
    /// Bytes in the current bytes window.
    #[serde(default, deserialize_with = "de::count")]
    pub quota_bytes_used: u64,
    /// Byte cap (0 = none).
    #[serde(default, deserialize_with = "de::count")]
    pub quota_bytes_limit: u64,
    /// Seconds in the time window.
    #[serde(default, deserialize_with = "de::count")]
    pub quota_seconds_used: u64,
    /// Time cap (0 = none).
    #[serde(default, deserialize_with = "de::count")]
    pub quota_seconds_limit: u64,
    /// Bytes window reset, if the server includes it.
    #[serde(default, with = "crate::timefmt::lenient_opt")]
    pub bytes_window_resets_at: Option<DateTime<Utc>>,
    /// Time window reset, if the server includes it.
    #[serde(default, with = "crate::timefmt::lenient_opt")]
    pub seconds_window_resets_at: Option<DateTime<Utc>>,
}

impl SessionStatus {
    /// True once the server ended it.
    pub fn is_terminated(&self) -> bool {
        self.terminated_at.is_some()
    }

    /// Total cost in millicents, when the server reports cost.
    pub fn cost_millicents(&self) -> Option<u64> {
        match (self.cost_time_millicents, self.cost_bytes_millicents) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0).saturating_add(b.unwrap_or(0))),
        }
    }
}

/// Formats millicents (1/100,000 of the currency unit) as e.g. `€0.210` (three decimals).
pub fn format_cost(millicents: u64, currency: Option<&str>) -> String {
    let symbol = match currency.map(str::to_ascii_lowercase).as_deref() {
        None | Some("eur") => "€".to_string(),
        Some("usd") => "$".to_string(),
        Some(other) => format!("{} ", other.to_ascii_uppercase()),
    };
    let tenths_of_cent = (millicents + 50) / 100; // round to 1/1000 unit
    format!(
        "{symbol}{}.{:03}",
        tenths_of_cent / 1000,
        tenths_of_cent % 1000
    )
}

/// The tunnelbyte client.
#[derive(Clone)]
pub struct TunnelbyteClient {
    ep: Endpoint,
    token: Option<StoredToken>,
}

impl fmt::Debug for TunnelbyteClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TunnelbyteClient")
            .field("base", &self.ep.base().as_str())
            .field("has_token", &self.token.is_some())
            .finish()
    }
}

/// Problems reading the tunnelbyte CLI's token file.
#[derive(Debug, thiserror::Error)]
pub enum TokenFileError {
    /// No file there.
    #[error("no tunnelbyte CLI token at {0}")]
    Missing(String),
    /// Unreadable.
    #[error("cannot read {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Empty, too long or not one line.
    #[error("{0} does not hold a single-line token")]
    Invalid(String),
}

/// Reads the tunnelbyte CLI's raw token file (`$XDG_CONFIG_HOME/tunnelbyte/token`).
pub fn read_cli_token(path: &Path) -> Result<Secret, TokenFileError> {
    use std::io::Read;
    let shown = path.display().to_string();
    let file = match std::fs::File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(TokenFileError::Missing(shown))
        }
        Err(source) => {
            return Err(TokenFileError::Io {
                path: shown,
                source,
            })
        }
    };
    let mut buf = String::new();
    file.take(8193)
        .read_to_string(&mut buf)
        .map_err(|source| TokenFileError::Io {
            path: shown.clone(),
            source,
        })?;
    let token = buf.trim();
    if token.is_empty() || buf.len() > 8192 || token.contains(['\n', '\r']) {
        return Err(TokenFileError::Invalid(shown));
    }
    Ok(Secret::new(token))
}

impl TunnelbyteClient {
    /// A client for `base_url` (e.g. `https://api.tunnelbyte.dev/v1`).
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

    /// `GET /v1/regions` (public).
    pub async fn regions(&self) -> Result<Vec<Region>, ApiError> {
        let resp = self
            .ep
            .send(Method::GET, &["regions"], None, None, Repeat::Safe)
            .await?;
        #[derive(Deserialize)]
        struct Regions {
            regions: Vec<Region>,
        }
        let v: Regions = self.ok(resp)?;
        Ok(v.regions)
    }

    /// `GET /v1/usage`.
    pub async fn usage(&self) -> Result<Usage, ApiError> {
        let resp = self
            .ep
            .send(
                Method::GET,
                &["usage"],
                Some(self.token()?),
                None,
                Repeat::Safe,
            )
            .await?;
        self.ok(resp)
    }

    /// `POST /v1/sessions` with our public key; sent once. 402 → [`ApiError::QuotaExceeded`];
    /// 503 with alternatives → [`ApiError::RegionUnavailable`].
    pub async fn create_session(
        &self,
        region: &str,
        key: &WgKeypair,
    ) -> Result<CreatedSession, ApiError> {
        let body = json!({ "region": region, "client_public_key": key.public_base64() });
        let resp = self
            .ep
            .send(
                Method::POST,
                &["sessions"],
                Some(self.token()?),
                Some(&body),
                Repeat::Once,
            )
            .await?;
        self.ok(resp)
    }

    /// `GET /v1/sessions/{id}`.
    pub async fn session_status(&self, id: &str) -> Result<SessionStatus, ApiError> {
        let resp = self
            .ep
            .send(
                Method::GET,
                &["sessions", id],
                Some(self.token()?),
                None,
                Repeat::Safe,
            )
            .await?;
        self.ok(resp)
    }

    /// `DELETE /v1/sessions/{id}` (our assumption). True when the server ended it; false when
    /// it did not know it (404) or has no such route (405).
    pub async fn delete_session(&self, id: &str) -> Result<bool, ApiError> {
        let resp = self
            .ep
            .send(
                Method::DELETE,
                &["sessions", id],
                Some(self.token()?),
                None,
                Repeat::Safe,
            )
            .await?;
        match resp.status.as_u16() {
            200..=299 => Ok(true),
            404 | 405 => Ok(false),
            _ => Err(map_error(&resp)),
        }
    }

    fn ok<T: serde::de::DeserializeOwned>(&self, resp: RawResponse) -> Result<T, ApiError> {
        if !resp.status.is_success() {
            return Err(map_error(&resp));
        }
        self.ep.parse(&resp)
    }
}

/// Maps a tunnelbyte error answer.
pub(crate) fn map_error(resp: &RawResponse) -> ApiError {
    let status = resp.status.as_u16();
    let v: Option<Value> = serde_json::from_slice(&resp.body).ok();
    let message = super::answer_message(resp, v.as_ref());
    let looks_like_quota = v
        .as_ref()
        .map(|v| v.get("tier").is_some() || v.get("bytes_limit").is_some())
        .unwrap_or(false);
    let retry_after = resp.retry_after();
    match status {
        401 => ApiError::Unauthorized {
            service: SERVICE,
            message,
        },
        402 | 429 if status == 402 || looks_like_quota => {
            let parsed = v
                .clone()
                .and_then(|v| serde_json::from_value::<QuotaExceeded>(v).ok());
            match parsed {
                Some(mut q) => {
                    if q.message.is_empty() {
                        q.message = message;
                    }
                    ApiError::QuotaExceeded(Box::new(q))
                }
                None => ApiError::Malformed {
                    service: SERVICE,
                    status,
                    detail: format!("quota answer without a readable breakdown: {message}"),
                },
            }
        }
        429 => ApiError::RateLimited {
            service: SERVICE,
            message,
            retry_after,
        },
        503 if v.as_ref().and_then(|v| v.get("available")).is_some() => {
            let available = v
                .as_ref()
                .and_then(|v| v.get("available"))
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|x| x.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            ApiError::RegionUnavailable { message, available }
        }
        _ => ApiError::Vendor {
            service: SERVICE,
            status,
            code: None,
            message,
            retry_after,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::{HeaderMap, HeaderValue};
    use reqwest::StatusCode;

    fn raw(status: u16, body: &str) -> RawResponse {
        RawResponse {
            status: StatusCode::from_u16(status).unwrap(),
            headers: HeaderMap::new(),
            body: body.as_bytes().to_vec(),
        }
    }

    #[test]
    fn quota_402_is_typed() {
        let e = map_error(&raw(
            402,
            r#"{"error":"quota exceeded","tier":"anonymous","bytes_used":1073741824,"bytes_limit":1073741824,"session_seconds":120,"session_limit":1800,"bytes_window_resets_at":"2026-03-01T00:00:00Z","seconds_window_resets_at":"2026-02-25T10:00:00.5+00:00","resets_at":"2026-03-01T00:00:00Z","hint":"sign up for 5 GiB"}"#,
        ));
        let ApiError::QuotaExceeded(q) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(q.tier, "anonymous");
        assert_eq!(q.bytes_limit, 1_073_741_824);
        assert!(q.resets_at.is_some());
        let text = e.to_string();
        assert!(
            text.contains("anonymous") && text.contains("resets at 2026-03-01"),
            "{text}"
        );
    }

    #[test]
    fn quota_as_429_and_plain_429() {
        let e = map_error(&raw(
            429,
            r#"{"error":"quota exceeded","tier":"free","bytes_limit":5}"#,
        ));
        assert!(matches!(e, ApiError::QuotaExceeded(_)));
        let mut r = raw(429, r#"{"error":"rate-limited"}"#);
        r.headers
            .insert("retry-after", HeaderValue::from_static("3"));
        let e = map_error(&r);
        assert_eq!(e.retry_after(), Some(std::time::Duration::from_secs(3)));
        assert!(matches!(e, ApiError::RateLimited { .. }));
    }

    #[test]
    fn region_unavailable_lists_alternatives() {
        let e = map_error(&raw(
            503,
            r#"{"error":"no active node in region sin","available":["fsn","ash"]}"#,
        ));
        let ApiError::RegionUnavailable { available, .. } = &e else {
            panic!("{e:?}")
        };
        assert_eq!(available, &["fsn", "ash"]);
        assert!(e.to_string().contains("fsn, ash"));
        let e = map_error(&raw(503, r#"{"error":"subnet exhausted"}"#));
        assert_eq!(e.status(), Some(503));
        assert!(e.to_string().contains("subnet exhausted"));
        let e = map_error(&raw(401, r#"{"error":"invalid token"}"#));
        assert!(matches!(e, ApiError::Unauthorized { .. }));
    }

    #[test]
    fn status_and_cost() {
        let s: SessionStatus = serde_json::from_str(
            r#"{"id":"s1","bytes_in":1000,"bytes_out":200,"created_at":"2026-02-08T10:00:00Z","tier":"paid","cost_time_millicents":21000,"cost_bytes_millicents":37,"cost_currency":"eur","quota_bytes_used":0,"quota_bytes_limit":0,"quota_seconds_used":0,"quota_seconds_limit":0,"terminated_at":""}"#,
        )
        .unwrap();
        assert!(!s.is_terminated());
        assert_eq!(s.cost_millicents(), Some(21037));
        assert_eq!(format_cost(21000, Some("eur")), "€0.210");
        assert_eq!(format_cost(123_456_789, None), "€1234.568");
        let t: SessionStatus = serde_json::from_str(
            r#"{"id":"s1","terminated_at":"2026-02-08T10:30:00Z","terminated_reason":"idle","bytes_in":1,"bytes_out":2,"tier":"free"}"#,
        )
        .unwrap();
        assert!(t.is_terminated());
        assert_eq!(t.cost_millicents(), None);
    }

    #[test]
    fn cli_token_file() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        assert!(matches!(
            read_cli_token(&p),
            Err(TokenFileError::Missing(_))
        ));
        std::fs::write(&p, "tb_abc123\n").unwrap();
        assert_eq!(read_cli_token(&p).unwrap().expose(), "tb_abc123");
        std::fs::write(&p, "a\nb\n").unwrap();
        assert!(matches!(
            read_cli_token(&p),
            Err(TokenFileError::Invalid(_))
        ));
        std::fs::write(&p, "   \n").unwrap();
        assert!(matches!(
            read_cli_token(&p),
            Err(TokenFileError::Invalid(_))
        ));
    }
}
