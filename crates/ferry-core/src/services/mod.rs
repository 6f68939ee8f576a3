//! Typed clients for the three vendor APIs: OrbNET (credits), tunnelbyte (quota and cost) and
//! NeoSC (workspaces). Each maps its vendor's error envelope to [`ApiError`].

#[cfg(test)]
mod credential_tests;
mod de;
pub mod error;
pub mod keys;
pub mod neosc;
pub mod orbnet;
pub mod origin;
mod refresh_flight;
pub mod token;
pub mod tunnelbyte;

use std::fmt;
use std::str::FromStr;

use reqwest::{Method, Url};
use serde::{Deserialize, Serialize};
use tracing::Instrument;

pub use error::{ApiError, Delivery, QuotaExceeded};
pub use origin::Origin;
pub use token::StoredToken;

use crate::http::{HttpClient, HttpSettings, RawResponse, TransportError};
use crate::secrets::Secret;

/// One of the vendors Ferry talks to.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize, ts_rs::TS,
)]
#[serde(rename_all = "lowercase")]
#[ts(rename = "Service")]
pub enum ServiceKind {
    /// OrbNET (OrbVPN's account and VPN API): credits per minute.
    Orbnet,
    /// tunnelbyte: WireGuard exits with quota windows and per-use cost.
    Tunnelbyte,
    /// NeoSC: remote workspaces behind NetBird.
    Neosc,
}

impl ServiceKind {
    /// All services, in display order.
    pub const ALL: [ServiceKind; 3] = [
        ServiceKind::Orbnet,
        ServiceKind::Tunnelbyte,
        ServiceKind::Neosc,
    ];

    /// The product name as shown to users.
    pub fn display_name(self) -> &'static str {
        match self {
            ServiceKind::Orbnet => "OrbNET",
            ServiceKind::Tunnelbyte => "tunnelbyte",
            ServiceKind::Neosc => "NeoSC",
        }
    }

    /// The lowercase name used on the command line, in the store and in env vars.
    pub fn as_str(self) -> &'static str {
        match self {
            ServiceKind::Orbnet => "orbnet",
            ServiceKind::Tunnelbyte => "tunnelbyte",
            ServiceKind::Neosc => "neosc",
        }
    }

    /// The env var that overrides the stored token (`FERRY_ORBNET_TOKEN` etc.).
    pub fn token_env_var(self) -> &'static str {
        match self {
            ServiceKind::Orbnet => "FERRY_ORBNET_TOKEN",
            ServiceKind::Tunnelbyte => "FERRY_TUNNELBYTE_TOKEN",
            ServiceKind::Neosc => "FERRY_NEOSC_TOKEN",
        }
    }

    /// The env var that sets the base URL (`FERRY_ORBNET_URL` etc.).
    pub fn url_env_var(self) -> &'static str {
        match self {
            ServiceKind::Orbnet => "FERRY_ORBNET_URL",
            ServiceKind::Tunnelbyte => "FERRY_TUNNELBYTE_URL",
            ServiceKind::Neosc => "FERRY_NEOSC_URL",
        }
    }

    /// The vendor's production base URL; NeoSC is self-hosted and has none.
    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            ServiceKind::Orbnet => Some("https://api.orbai.world/api/v1"),
            ServiceKind::Tunnelbyte => Some("https://api.tunnelbyte.dev/v1"),
            ServiceKind::Neosc => None,
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An unknown service name.
#[derive(Debug, Clone, thiserror::Error)]
#[error("unknown service {0:?}: expected orbnet, tunnelbyte or neosc")]
pub struct UnknownService(pub String);

impl FromStr for ServiceKind {
    type Err = UnknownService;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "orbnet" | "orbai" | "orbvpn" => Ok(ServiceKind::Orbnet),
            "tunnelbyte" | "tb" => Ok(ServiceKind::Tunnelbyte),
            "neosc" => Ok(ServiceKind::Neosc),
            _ => Err(UnknownService(s.to_string())),
        }
    }
}

/// Whether a call may be repeated automatically.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Repeat {
    /// Safe to repeat (GET, DELETE): retried with backoff on transport errors, 429 and 5xx.
    Safe,
    /// Sent exactly once; the caller learns from [`ApiError::delivery`] whether it arrived.
    Once,
}

/// A base URL plus the HTTP client; builds URLs from path segments and sends with retries.
/// Every request goes to the base URL's origin, and a bearer token is attached only when it
/// was issued by that origin (or its issuer is unknown).
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    service: ServiceKind,
    base: Url,
    origin: Origin,
    http: HttpClient,
}

impl Endpoint {
    pub(crate) fn new(
        service: ServiceKind,
        base_url: &str,
        settings: HttpSettings,
    ) -> Result<Self, ApiError> {
        let base = Url::parse(base_url.trim()).map_err(|e| ApiError::BadUrl {
            service,
            reason: format!("{base_url:?}: {e}"),
        })?;
        let origin = origin::check_base_url(service, &base)?;
        let http = HttpClient::new(settings).map_err(|e| ApiError::BadUrl {
            service,
            reason: e.to_string(),
        })?;
        Ok(Self {
            service,
            base,
            origin,
            http,
        })
    }

    pub(crate) fn base(&self) -> &Url {
        &self.base
    }

    /// The origin every request of this endpoint goes to.
    pub(crate) fn origin(&self) -> &Origin {
        &self.origin
    }

    /// `Ok` when a credential issued by `issued_by` may be sent here.
    pub(crate) fn check_issuer(&self, issued_by: Option<&Origin>) -> Result<(), ApiError> {
        token::check_issuer(self.service, issued_by, &self.origin)
    }

    fn url(&self, segments: &[&str]) -> Result<Url, ApiError> {
        let mut url = self.base.clone();
        {
            let mut segs = url.path_segments_mut().map_err(|()| ApiError::BadUrl {
                service: self.service,
                reason: "base URL cannot take a path".into(),
            })?;
            segs.pop_if_empty();
            segs.extend(segments);
        }
        Ok(url)
    }

    /// Sends a request and returns the raw answer of the last attempt. Transport failures become
    /// `NotSent`/`AnswerLost`/`BodyTooLarge`; statuses are left to the vendor mapping. A bearer
    /// issued by another origin is refused (`TokenOriginMismatch`) before anything is sent.
    pub(crate) async fn send(
        &self,
        method: Method,
        segments: &[&str],
        bearer: Option<&StoredToken>,
        body: Option<&serde_json::Value>,
        repeat: Repeat,
    ) -> Result<RawResponse, ApiError> {
        let bearer: Option<&Secret> = match bearer {
            Some(t) => Some(t.for_origin(self.service, &self.origin)?),
            None => None,
        };
        let url = self.url(segments)?;
        let path = url.path().to_string();
        let span = tracing::debug_span!("api", service = %self.service, %method, %path);
        async {
            let policy = &self.http.settings().retry;
            let attempts = match repeat {
                Repeat::Safe => policy.max_attempts.max(1),
                Repeat::Once => 1,
            };
            let mut attempt = 0u32;
            loop {
                attempt += 1;
                let mut req = self.http.request(method.clone(), url.clone());
                if let Some(token) = bearer {
                    req = req.bearer_auth(token.expose());
                }
                if let Some(b) = body {
                    req = req.json(b);
                }
                let result = self.http.execute_once(req).await;
                let last = attempt >= attempts;
                let wait = match &result {
                    Ok(r) if r.status.as_u16() == 429 || r.status.is_server_error() => {
                        match r.retry_after() {
                            Some(ra) if ra > policy.max_retry_after => None,
                            Some(ra) => Some(ra),
                            None => Some(policy.backoff(attempt - 1)),
                        }
                    }
                    Ok(_) => None,
                    Err(TransportError::BodyTooLarge { .. }) => None,
                    Err(_) => Some(policy.backoff(attempt - 1)),
                };
                match (&result, wait) {
                    (Ok(r), _) => tracing::debug!(status = r.status.as_u16(), attempt, "answer"),
                    (Err(e), _) => tracing::debug!(error = %e, attempt, "transport failure"),
                }
                match wait {
                    Some(d) if !last => {
                        tracing::debug!(wait_ms = d.as_millis() as u64, "retrying");
                        tokio::time::sleep(d).await;
                    }
                    _ => return result.map_err(|e| self.transport_error(e)),
                }
            }
        }
        .instrument(span)
        .await
    }

    fn transport_error(&self, e: TransportError) -> ApiError {
        let service = self.service;
        match e {
            TransportError::NotSent(message) => ApiError::NotSent { service, message },
            TransportError::AnswerLost(message) => ApiError::AnswerLost { service, message },
            TransportError::BodyTooLarge { limit } => ApiError::BodyTooLarge { service, limit },
        }
    }

    /// Deserializes a successful body, mapping failure to `Malformed`.
    pub(crate) fn parse<T: serde::de::DeserializeOwned>(
        &self,
        resp: &RawResponse,
    ) -> Result<T, ApiError> {
        serde_json::from_slice(&resp.body).map_err(|e| ApiError::Malformed {
            service: self.service,
            status: resp.status.as_u16(),
            detail: e.to_string(),
        })
    }

    /// A `Malformed` error for this service.
    pub(crate) fn malformed(&self, resp: &RawResponse, detail: impl Into<String>) -> ApiError {
        ApiError::Malformed {
            service: self.service,
            status: resp.status.as_u16(),
            detail: detail.into(),
        }
    }
}

/// A short, printable excerpt of an error body for messages when no field could be read.
pub(crate) fn body_excerpt(body: &[u8]) -> String {
    let text = String::from_utf8_lossy(body);
    let one_line: String = text.chars().filter(|c| !c.is_control()).take(160).collect();
    one_line.trim().to_string()
}

/// The message of an error answer: a known field of its JSON body, else a printable excerpt of
/// the body, else (empty or HTML) the HTTP reason phrase.
pub(crate) fn answer_message(resp: &RawResponse, v: Option<&serde_json::Value>) -> String {
    v.and_then(lenient_message).unwrap_or_else(|| {
        let e = body_excerpt(&resp.body);
        if e.is_empty() || e.starts_with('<') {
            resp.status
                .canonical_reason()
                .unwrap_or("error")
                .to_string()
        } else {
            e
        }
    })
}

/// Reads a human message out of an unknown error body: `message`, `detail`, `title`, `error`
/// (string or object with `message`), falling back to the HTTP reason phrase.
pub(crate) fn lenient_message(v: &serde_json::Value) -> Option<String> {
    let pick = |v: &serde_json::Value| -> Option<String> {
        match v {
            serde_json::Value::String(s) if !s.trim().is_empty() => Some(s.clone()),
            serde_json::Value::Object(o) => o
                .get("message")
                .and_then(|m| m.as_str())
                .map(str::to_string),
            serde_json::Value::Array(items) => {
                // FastAPI validation: [{loc, msg, type}]
                let msgs: Vec<String> = items
                    .iter()
                    .filter_map(|i| {
                        let msg = i.get("msg").and_then(|m| m.as_str())?;
                        let loc = i
                            .get("loc")
                            .and_then(|l| l.as_array())
                            .map(|l| {
                                l.iter()
                                    .map(|p| match p {
                                        serde_json::Value::String(s) => s.clone(),
                                        other => other.to_string(),
                                    })
                                    .collect::<Vec<_>>()
                                    .join(".")
                            })
                            .unwrap_or_default();
                        Some(if loc.is_empty() {
                            msg.to_string()
                        } else {
                            format!("{loc}: {msg}")
                        })
                    })
                    .collect();
                (!msgs.is_empty()).then(|| msgs.join("; "))
            }
            _ => None,
        }
    };
    for key in ["error", "detail", "message", "title"] {
        if let Some(m) = v.get(key).and_then(pick) {
            return Some(m);
        }
    }
    None
}
