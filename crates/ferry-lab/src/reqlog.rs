//! The record of requests the lab received, for tests to inspect (`GET /_lab/requests`).

use serde::Serialize;
use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

/// How many requests are kept; older ones are dropped first.
const CAPACITY: usize = 20_000;

/// One received request. Authorization values are never recorded.
#[derive(Debug, Clone, Serialize)]
pub struct RecordedRequest {
    /// HTTP method.
    pub method: String,
    /// Path without the query string.
    pub path: String,
    /// Query string, if any.
    pub query: Option<String>,
    /// Header names and values, with credentials replaced by `<redacted>`.
    pub headers: BTreeMap<String, String>,
    /// The body parsed as JSON, when it was JSON.
    pub body: Option<serde_json::Value>,
    /// Lab time of arrival, unix milliseconds.
    pub at_ms: i64,
}

/// A bounded log of recorded requests.
#[derive(Debug, Default)]
pub struct RequestLog {
    entries: Mutex<VecDeque<RecordedRequest>>,
}

impl RequestLog {
    /// Appends a request, dropping the oldest beyond capacity.
    pub fn push(&self, r: RecordedRequest) {
        if let Ok(mut e) = self.entries.lock() {
            if e.len() >= CAPACITY {
                e.pop_front();
            }
            e.push_back(r);
        }
    }

    /// All recorded requests, oldest first.
    pub fn all(&self) -> Vec<RecordedRequest> {
        self.entries
            .lock()
            .map(|e| e.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Forgets every recorded request.
    pub fn clear(&self) {
        if let Ok(mut e) = self.entries.lock() {
            e.clear();
        }
    }
}

/// JSON body fields whose values are secrets and are never recorded.
const SECRET_FIELDS: &[&str] = &[
    "password",
    "refresh_token",
    "access_token",
    "token",
    "totp_code",
    "private_key",
];

/// Replaces secret fields (at any depth) of a recorded JSON body by `<redacted>`.
pub fn redact_body(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, val) in map.iter_mut() {
                if SECRET_FIELDS.contains(&k.to_ascii_lowercase().as_str()) {
                    *val = serde_json::Value::String("<redacted>".into());
                } else {
                    redact_body(val);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_body),
        _ => {}
    }
}

/// Header names whose values are secrets and are never recorded.
pub fn is_secret_header(name: &str) -> bool {
    matches!(
        name.to_ascii_lowercase().as_str(),
        "authorization" | "cookie" | "set-cookie" | "x-api-key" | "proxy-authorization"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_fields_are_redacted_at_any_depth() {
        let mut v = serde_json::json!({"email": "a@b", "password": "pw",
            "nested": [{"refresh_token": "rt"}], "session_id": "s1"});
        redact_body(&mut v);
        assert_eq!(v["password"], "<redacted>");
        assert_eq!(v["nested"][0]["refresh_token"], "<redacted>");
        assert_eq!(v["email"], "a@b");
        assert_eq!(v["session_id"], "s1");
    }
}
