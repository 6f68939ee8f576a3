//! The HTTP layer under every service client: timeouts on every request, bounded bodies,
//! `Retry-After`, jittered exponential backoff, and a clear split between "never sent" and
//! "sent, answer lost".

use std::time::Duration;

use rand::Rng;
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::StatusCode;

/// Timeouts, body cap and retry policy of a client.
#[derive(Debug, Clone)]
pub struct HttpSettings {
    /// Time allowed to open the TCP/TLS connection.
    pub connect_timeout: Duration,
    /// Time allowed for the whole exchange (request, headers and body).
    pub request_timeout: Duration,
    /// Largest response body read; a larger one is a typed error.
    pub max_body_bytes: usize,
    /// Retries for calls that are safe to repeat (GET, DELETE).
    pub retry: RetryPolicy,
    /// The `User-Agent` header.
    pub user_agent: String,
}

impl Default for HttpSettings {
    fn default() -> Self {
        Self {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(20),
            max_body_bytes: 1024 * 1024,
            retry: RetryPolicy::default(),
            user_agent: format!("ferry/{}", env!("CARGO_PKG_VERSION")),
        }
    }
}

/// Jittered exponential backoff ("full jitter") with a cap, honouring `Retry-After`.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    /// Attempts in all, the first included (1 = no retry).
    pub max_attempts: u32,
    /// Backoff base: attempt `n` waits a random time in `0..=min(max_delay, base·2^n)`.
    pub base_delay: Duration,
    /// Backoff cap.
    pub max_delay: Duration,
    /// The longest `Retry-After` honoured; a longer one ends the retries with the error.
    pub max_retry_after: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            max_attempts: 4,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(8),
            max_retry_after: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// No retries at all.
    pub fn none() -> Self {
        Self {
            max_attempts: 1,
            ..Self::default()
        }
    }

    /// The random wait before retry number `retry` (0-based).
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self
            .base_delay
            .saturating_mul(1u32.checked_shl(retry.min(20)).unwrap_or(u32::MAX));
        let ceiling = exp.min(self.max_delay);
        let ms = u64::try_from(ceiling.as_millis()).unwrap_or(u64::MAX);
        Duration::from_millis(rand::thread_rng().gen_range(0..=ms))
    }
}

/// What went wrong below HTTP status level.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TransportError {
    /// The request never reached the server (DNS, connect, TLS, or a request that could not be
    /// built). Repeating it cannot double anything.
    #[error("request not sent: {0}")]
    NotSent(String),
    /// The request was (or may have been) sent but no complete answer came back: a timeout, a
    /// reset connection, a body cut short. The server may have acted on it.
    #[error("answer lost: {0}")]
    AnswerLost(String),
    /// The answer's body was larger than the cap.
    #[error("answer larger than {limit} bytes")]
    BodyTooLarge {
        /// The cap in bytes.
        limit: usize,
    },
}

/// A complete, size-bounded HTTP answer.
#[derive(Debug, Clone)]
pub struct RawResponse {
    /// The status code.
    pub status: StatusCode,
    /// The headers.
    pub headers: HeaderMap,
    /// The body, at most the configured cap.
    pub body: Vec<u8>,
}

impl RawResponse {
    /// `Retry-After` as a duration (delta-seconds or HTTP-date), if present and readable.
    pub fn retry_after(&self) -> Option<Duration> {
        parse_retry_after(&self.headers, std::time::SystemTime::now())
    }
}

/// Reads `Retry-After` (delta-seconds or an HTTP-date relative to `now`); falls back to
/// OrbNET's `X-RateLimit-Reset` (unix seconds) when the status asked for a wait.
pub fn parse_retry_after(headers: &HeaderMap, now: std::time::SystemTime) -> Option<Duration> {
    if let Some(v) = headers.get(RETRY_AFTER).and_then(|v| v.to_str().ok()) {
        let v = v.trim();
        if let Ok(secs) = v.parse::<u64>() {
            return Some(Duration::from_secs(secs));
        }
        if let Ok(secs) = v.parse::<f64>() {
            if secs.is_finite() && secs >= 0.0 {
                return Some(Duration::from_secs_f64(secs.min(86_400.0)));
            }
        }
        if let Ok(at) = httpdate::parse_http_date(v) {
            return Some(at.duration_since(now).unwrap_or(Duration::ZERO));
        }
    }
    let reset = headers
        .get("x-ratelimit-reset")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())?;
    let now_s = now.duration_since(std::time::UNIX_EPOCH).ok()?.as_secs();
    Some(Duration::from_secs(reset.saturating_sub(now_s)))
}

/// A configured reqwest client (no redirects, rustls, timeouts) plus the body cap.
#[derive(Debug, Clone)]
pub struct HttpClient {
    inner: reqwest::Client,
    settings: HttpSettings,
}

impl HttpClient {
    /// Builds a client from settings.
    pub fn new(settings: HttpSettings) -> Result<Self, TransportError> {
        let inner = reqwest::Client::builder()
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout)
            // Redirects are never followed. Every request carries a credential (bearer token,
            // password or refresh token in the body), and the vendor APIs do not redirect.
            // reqwest's default policy (0.12) would follow up to 10 hops; it strips
            // `Authorization` only when the host or port changes (`remove_sensitive_headers`),
            // so a scheme downgrade on the same host and port keeps it, and a 307/308 replays a
            // body holding a password or refresh token to any new target.
            // So a 3xx is returned as is and ends up a typed error of the service; a token can
            // only reach the origin the client was built for (see `services::origin`).
            .redirect(reqwest::redirect::Policy::none())
            .user_agent(settings.user_agent.clone())
            .build()
            .map_err(|e| TransportError::NotSent(format!("cannot build HTTP client: {e}")))?;
        Ok(Self { inner, settings })
    }

    /// The settings in force.
    pub fn settings(&self) -> &HttpSettings {
        &self.settings
    }

    /// Starts a request on the underlying client.
    pub fn request(&self, method: reqwest::Method, url: reqwest::Url) -> reqwest::RequestBuilder {
        self.inner.request(method, url)
    }

    /// Sends once and reads the body within the cap. Never retries.
    pub async fn execute_once(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<RawResponse, TransportError> {
        let mut resp = req.send().await.map_err(classify)?;
        let limit = self.settings.max_body_bytes;
        if let Some(len) = resp.content_length() {
            if len > limit as u64 {
                return Err(TransportError::BodyTooLarge { limit });
            }
        }
        let status = resp.status();
        let headers = resp.headers().clone();
        let mut body = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(classify_body)? {
            if body.len() + chunk.len() > limit {
                return Err(TransportError::BodyTooLarge { limit });
            }
            body.extend_from_slice(&chunk);
        }
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }
}

fn classify(e: reqwest::Error) -> TransportError {
    let msg = error_chain(&e);
    if e.is_builder() || e.is_connect() {
        TransportError::NotSent(msg)
    } else {
        TransportError::AnswerLost(msg)
    }
}

fn classify_body(e: reqwest::Error) -> TransportError {
    TransportError::AnswerLost(error_chain(&e))
}

/// The error and its sources on one line, without the URL's query (tokens never go in URLs here).
fn error_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !out.contains(&t) {
            out.push_str(": ");
            out.push_str(&t);
        }
        src = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;
    use std::time::{SystemTime, UNIX_EPOCH};

    #[test]
    fn retry_after_forms() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut h = HeaderMap::new();
        h.insert(RETRY_AFTER, HeaderValue::from_static("7"));
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(7)));
        let date = httpdate::fmt_http_date(now + Duration::from_secs(30));
        h.insert(RETRY_AFTER, HeaderValue::from_str(&date).unwrap());
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(30)));
        h.insert(RETRY_AFTER, HeaderValue::from_static("soon"));
        assert_eq!(parse_retry_after(&h, now), None);
        let mut h = HeaderMap::new();
        h.insert("x-ratelimit-reset", HeaderValue::from_static("1700000012"));
        assert_eq!(parse_retry_after(&h, now), Some(Duration::from_secs(12)));
        assert_eq!(
            parse_retry_after(&HeaderMap::new(), SystemTime::now()),
            None
        );
    }

    #[test]
    fn backoff_is_bounded_and_jittered() {
        let p = RetryPolicy {
            max_attempts: 10,
            base_delay: Duration::from_millis(100),
            max_delay: Duration::from_millis(800),
            max_retry_after: Duration::from_secs(1),
        };
        for retry in 0..40 {
            let d = p.backoff(retry);
            let cap = (100u64 << retry.min(20)).min(800);
            assert!(d <= Duration::from_millis(cap), "{retry}: {d:?}");
        }
        let samples: std::collections::HashSet<_> = (0..50).map(|_| p.backoff(5)).collect();
        assert!(samples.len() > 5, "backoff should be jittered");
    }
}
