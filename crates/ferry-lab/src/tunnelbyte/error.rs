//! tunnelbyte's error answers: `{"error": "<short message>"}` plus the HTTP status, with the
//! texts from the vendor's sessions page.

use axum::http::StatusCode;
use serde_json::{json, Value};

/// Everything a tunnelbyte endpoint can refuse with.
#[derive(Debug, thiserror::Error)]
pub enum TbError {
    /// No `Authorization: Bearer` header.
    #[error("missing token")]
    MissingToken,
    /// A bearer token the server does not know (expired or revoked).
    #[error("invalid token")]
    InvalidToken,
    /// The body is not the JSON object the endpoint expects.
    #[error("invalid json")]
    InvalidJson,
    /// Any other 400, with its reason.
    #[error("{0}")]
    BadRequest(String),
    /// A quota window is at its cap; carries the breakdown.
    #[error("quota exceeded")]
    QuotaExceeded(Box<Value>),
    /// No region has a healthy node.
    #[error("no active nodes")]
    NoActiveNodes,
    /// The asked-for region has no healthy node; others do.
    #[error("no active node in region {region}")]
    RegionDown {
        /// The region asked for.
        region: String,
        /// Regions that do have nodes.
        available: Vec<String>,
    },
    /// Every client address of the region's /24 is leased.
    #[error("subnet exhausted")]
    SubnetExhausted,
    /// The region's node did not take the peer in time.
    #[error("peer apply failed; node may be disconnected")]
    PeerApplyFailed,
    /// Unknown session id, or one that belongs to another token.
    #[error("session not found")]
    SessionNotFound,
    /// The public rate limit is hit.
    #[error("rate-limited")]
    RateLimited {
        /// Seconds until a request will be accepted again.
        retry_after: u64,
    },
    /// `GET /v1/ip/{addr}` with something that is not an IP address.
    #[error("invalid IP address")]
    InvalidIp,
    /// `GET /v1/ip/{addr}` with a loopback, private, link-local or multicast address.
    #[error("address is not publicly routable")]
    NotRoutable,
    /// No such route.
    #[error("not found")]
    NotFound,
    /// The route exists with another method.
    #[error("method not allowed")]
    MethodNotAllowed,
}

impl TbError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            TbError::MissingToken | TbError::InvalidToken => StatusCode::UNAUTHORIZED,
            TbError::InvalidJson
            | TbError::BadRequest(_)
            | TbError::InvalidIp
            | TbError::NotRoutable => StatusCode::BAD_REQUEST,
            TbError::QuotaExceeded(_) => StatusCode::PAYMENT_REQUIRED,
            TbError::NoActiveNodes
            | TbError::RegionDown { .. }
            | TbError::SubnetExhausted
            | TbError::PeerApplyFailed => StatusCode::SERVICE_UNAVAILABLE,
            TbError::SessionNotFound | TbError::NotFound => StatusCode::NOT_FOUND,
            TbError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            TbError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The JSON body: `{"error": text}` plus any extra fields the error carries.
    pub fn body(&self) -> Value {
        let mut body = match self {
            TbError::QuotaExceeded(breakdown) => (**breakdown).clone(),
            TbError::RegionDown { available, .. } => json!({ "available": available }),
            _ => json!({}),
        };
        if let Some(obj) = body.as_object_mut() {
            obj.insert("error".to_owned(), Value::String(self.to_string()));
        }
        body
    }
}
