//! The typed error every service client returns, with a message a person understands.

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::origin::Origin;
use super::ServiceKind;

/// Whether a failed request reached the server. Billing code uses it to decide whether a
/// heartbeat's seconds were counted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    /// The request never left (connect/DNS/TLS failure): safe to send again.
    NotSent,
    /// It was sent, but no answer arrived (timeout, dropped connection, cut body): the server may
    /// have acted on it. Count it as delivered to never bill twice.
    Unknown,
    /// The server answered (with an error status or an unreadable body).
    Answered,
}

/// tunnelbyte's 402 answer at session create: which window tripped and when it resets.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuotaExceeded {
    /// The vendor's short message, e.g. "quota exceeded".
    #[serde(default, rename = "error")]
    pub message: String,
    /// The account tier.
    #[serde(default)]
    pub tier: String,
    /// Bytes used in the bytes window.
    #[serde(default)]
    pub bytes_used: u64,
    /// Byte cap of the window (0 = none).
    #[serde(default)]
    pub bytes_limit: u64,
    /// Session seconds used in the time window.
    #[serde(default)]
    pub session_seconds: u64,
    /// Time cap of the window in seconds (0 = none).
    #[serde(default)]
    pub session_limit: u64,
    /// When the bytes window resets.
    #[serde(default, with = "crate::timefmt::lenient_opt")]
    pub bytes_window_resets_at: Option<DateTime<Utc>>,
    /// When the time window resets.
    #[serde(default, with = "crate::timefmt::lenient_opt")]
    pub seconds_window_resets_at: Option<DateTime<Utc>>,
    /// The reset time of whichever window tripped.
    #[serde(default, with = "crate::timefmt::lenient_opt")]
    pub resets_at: Option<DateTime<Utc>>,
    /// The vendor's hint, e.g. how to upgrade.
    #[serde(default)]
    pub hint: Option<String>,
}

impl std::fmt::Display for QuotaExceeded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "tunnelbyte quota exceeded on the {} tier", self.tier)?;
        if self.bytes_limit > 0 {
            write!(
                f,
                "; data {} of {} bytes",
                self.bytes_used, self.bytes_limit
            )?;
        }
        if self.session_limit > 0 {
            write!(
                f,
                "; time {} of {} seconds",
                self.session_seconds, self.session_limit
            )?;
        }
        if let Some(r) = self.resets_at {
            write!(f, "; resets at {}", crate::timefmt::format_rfc3339(r))?;
        }
        if let Some(h) = self.hint.as_deref().filter(|h| !h.is_empty()) {
            write!(f, " ({h})")?;
        }
        Ok(())
    }
}

/// What a service call can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ApiError {
    /// The configured base URL or a path built from it is not a valid URL.
    #[error("the {service} address is not usable: {reason}")]
    BadUrl {
        /// Which service.
        service: ServiceKind,
        /// Why.
        reason: String,
    },
    /// The base URL is plain http to a host that is not loopback: credentials would cross the
    /// network in clear. Nothing is sent.
    #[error(
        "refusing to send credentials over plain http to {host}; use https \
         (plain http is allowed only to loopback)"
    )]
    InsecureUrl {
        /// Which service.
        service: ServiceKind,
        /// The refused origin, e.g. `http://192.0.2.1`.
        url: String,
        /// Its host.
        host: String,
    },
    /// The stored token was issued by another address than the one this client talks to; it is
    /// not sent (it would hand one server's credential to another).
    #[error(
        "the saved {service} sign-in belongs to {issued_by}, not {requested}: \
         sign in again for {requested} (`ferry login {service}`)"
    )]
    TokenOriginMismatch {
        /// Which service.
        service: ServiceKind,
        /// The origin that issued the token.
        issued_by: Origin,
        /// The origin the client was built for.
        requested: Origin,
    },
    /// No token is stored for the service.
    #[error("not signed in to {service}: run `ferry login {service}`")]
    NoToken {
        /// Which service.
        service: ServiceKind,
    },
    /// The request never reached the server.
    #[error("could not reach {service}: {message}")]
    NotSent {
        /// Which service.
        service: ServiceKind,
        /// Transport detail.
        message: String,
    },
    /// The request was sent but the answer was lost (timeout or dropped connection).
    #[error("{service} did not answer in time (the request may have reached it): {message}")]
    AnswerLost {
        /// Which service.
        service: ServiceKind,
        /// Transport detail.
        message: String,
    },
    /// The answer was larger than the cap.
    #[error("{service} sent an answer larger than {limit} bytes; ignored")]
    BodyTooLarge {
        /// Which service.
        service: ServiceKind,
        /// The cap in bytes.
        limit: usize,
    },
    /// The answer could not be read (bad JSON, wrong shape, wrong envelope).
    #[error("{service} sent an answer Ferry cannot read (HTTP {status}): {detail}")]
    Malformed {
        /// Which service.
        service: ServiceKind,
        /// HTTP status of the answer.
        status: u16,
        /// What was wrong (never the body itself, which may hold secrets).
        detail: String,
    },
    /// 401 (after one refresh for OrbNET): the token is missing, expired or revoked.
    #[error("{service} rejected the sign-in ({message}): run `ferry login {service}`")]
    Unauthorized {
        /// Which service.
        service: ServiceKind,
        /// The vendor's message.
        message: String,
    },
    /// 429 without a quota body.
    #[error("{service} is limiting requests ({message}){}", retry_hint(*.retry_after))]
    RateLimited {
        /// Which service.
        service: ServiceKind,
        /// The vendor's message.
        message: String,
        /// How long the server asked to wait.
        retry_after: Option<Duration>,
    },
    /// tunnelbyte: a quota window is exhausted (402, or 429 with a quota body).
    #[error("{0}")]
    QuotaExceeded(Box<QuotaExceeded>),
    /// tunnelbyte: the region has no active node; `available` lists other regions.
    #[error("{message}{}", available_hint(.available))]
    RegionUnavailable {
        /// The vendor's message.
        message: String,
        /// Other region codes the server suggests.
        available: Vec<String>,
    },
    /// Any other error answer, with the vendor's code and message.
    #[error("{service}: {message} (HTTP {status}{})", code_hint(.code))]
    Vendor {
        /// Which service.
        service: ServiceKind,
        /// HTTP status.
        status: u16,
        /// The vendor's error code when it has one (OrbNET `error.code`).
        code: Option<String>,
        /// The vendor's human message.
        message: String,
        /// `Retry-After`, if sent.
        retry_after: Option<Duration>,
    },
}

fn retry_hint(d: Option<Duration>) -> String {
    d.map(|d| format!("; try again in {} s", d.as_secs().max(1)))
        .unwrap_or_default()
}

fn available_hint(a: &[String]) -> String {
    if a.is_empty() {
        String::new()
    } else {
        format!("; regions with capacity: {}", a.join(", "))
    }
}

fn code_hint(c: &Option<String>) -> String {
    c.as_deref().map(|c| format!(", {c}")).unwrap_or_default()
}

impl ApiError {
    /// Whether the request reached the server.
    pub fn delivery(&self) -> Delivery {
        match self {
            ApiError::BadUrl { .. }
            | ApiError::InsecureUrl { .. }
            | ApiError::TokenOriginMismatch { .. }
            | ApiError::NoToken { .. }
            | ApiError::NotSent { .. } => Delivery::NotSent,
            ApiError::AnswerLost { .. } => Delivery::Unknown,
            _ => Delivery::Answered,
        }
    }

    /// The HTTP status of the answer, if there was one.
    pub fn status(&self) -> Option<u16> {
        match self {
            ApiError::Malformed { status, .. } | ApiError::Vendor { status, .. } => Some(*status),
            ApiError::Unauthorized { .. } => Some(401),
            ApiError::RateLimited { .. } => Some(429),
            ApiError::QuotaExceeded(_) => Some(402),
            ApiError::RegionUnavailable { .. } => Some(503),
            _ => None,
        }
    }

    /// The vendor's error code (OrbNET `error.code`, e.g. `CREDITS_DEPLETED`).
    pub fn code(&self) -> Option<&str> {
        match self {
            ApiError::Vendor { code, .. } => code.as_deref(),
            _ => None,
        }
    }

    /// True when the answer carried this vendor code.
    pub fn has_code(&self, code: &str) -> bool {
        self.code() == Some(code)
    }

    /// The wait the server asked for, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            ApiError::RateLimited { retry_after, .. } | ApiError::Vendor { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }

    /// True for failures worth retrying later (transport, 429, 5xx): not for 4xx answers.
    pub fn is_transient(&self) -> bool {
        match self {
            ApiError::NotSent { .. } | ApiError::AnswerLost { .. } => true,
            ApiError::RateLimited { .. } => true,
            ApiError::Vendor { status, .. } => *status >= 500,
            ApiError::Malformed { status, .. } => *status >= 500,
            _ => false,
        }
    }
}
