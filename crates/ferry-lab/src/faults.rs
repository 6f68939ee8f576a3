//! Fault injection: the next N requests matching a rule get a chosen answer, a delay, or a
//! dropped connection.

use serde::Deserialize;
use std::sync::Mutex;

/// One fault rule, as posted to `POST /_lab/faults`.
#[derive(Debug, Clone, Deserialize)]
pub struct FaultRule {
    /// HTTP method to match (any when absent).
    #[serde(default)]
    pub method: Option<String>,
    /// Full request path to match, e.g. `/orbnet/api/v1/vpn/session/heartbeat`; a trailing `*`
    /// matches any path with that prefix.
    pub path: String,
    /// Status of the injected answer (default 500).
    #[serde(default)]
    pub status: Option<u16>,
    /// Body of the injected answer, sent as is (need not be valid JSON).
    #[serde(default)]
    pub body: Option<String>,
    /// Repeat `body` this many times (for huge bodies).
    #[serde(default)]
    pub repeat: Option<usize>,
    /// Content type of the injected answer (default `application/json`).
    #[serde(default)]
    pub content_type: Option<String>,
    /// Wait this long before answering (or dropping).
    #[serde(default)]
    pub delay_ms: u64,
    /// Close the connection without any answer.
    #[serde(default)]
    pub drop: bool,
    /// Let the lab process the request first, then apply the fault to its answer
    /// (a lost answer when combined with `drop`). Default: the request never reaches the service.
    #[serde(default)]
    pub after: bool,
    /// Number of requests this rule applies to (default 1).
    #[serde(default = "one")]
    pub times: u32,
    /// Extra headers for the injected answer, e.g. `{"Retry-After": "2"}`.
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
}

fn one() -> u32 {
    1
}

impl FaultRule {
    fn matches(&self, method: &str, path: &str) -> bool {
        let method_ok = self
            .method
            .as_deref()
            .is_none_or(|m| m.eq_ignore_ascii_case(method));
        let path_ok = match self.path.strip_suffix('*') {
            Some(prefix) => path.starts_with(prefix),
            None => self.path == path,
        };
        method_ok && path_ok
    }

    /// The injected body, repeated as asked.
    pub fn body_bytes(&self) -> Vec<u8> {
        let body = self.body.clone().unwrap_or_default();
        body.repeat(self.repeat.unwrap_or(1).max(1)).into_bytes()
    }
}

/// The active fault rules, first match wins.
#[derive(Debug, Default)]
pub struct Faults {
    rules: Mutex<Vec<FaultRule>>,
}

impl Faults {
    /// Adds a rule after the existing ones.
    pub fn add(&self, rule: FaultRule) {
        if rule.times == 0 {
            return;
        }
        if let Ok(mut r) = self.rules.lock() {
            r.push(rule);
        }
    }

    /// Removes every rule.
    pub fn clear(&self) {
        if let Ok(mut r) = self.rules.lock() {
            r.clear();
        }
    }

    /// Number of rules still armed.
    pub fn len(&self) -> usize {
        self.rules.lock().map(|r| r.len()).unwrap_or(0)
    }

    /// True when no rule is armed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Takes one use of the first rule matching this request, if any.
    pub fn take(&self, method: &str, path: &str) -> Option<FaultRule> {
        let mut rules = self.rules.lock().ok()?;
        let idx = rules.iter().position(|r| r.matches(method, path))?;
        let rule = rules[idx].clone();
        rules[idx].times -= 1;
        if rules[idx].times == 0 {
            rules.remove(idx);
        }
        Some(rule)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rule(json: &str) -> FaultRule {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn a_rule_applies_times_then_disarms() {
        let f = Faults::default();
        f.add(rule(
            r#"{"method":"POST","path":"/a","status":503,"times":2}"#,
        ));
        assert!(f.take("GET", "/a").is_none());
        assert_eq!(f.take("post", "/a").unwrap().status, Some(503));
        assert!(f.take("POST", "/a").is_some());
        assert!(f.take("POST", "/a").is_none());
        assert!(f.is_empty());
    }

    #[test]
    fn prefix_rules_and_repeat() {
        let f = Faults::default();
        f.add(rule(r#"{"path":"/orbnet/*","body":"ab","repeat":3}"#));
        let r = f.take("GET", "/orbnet/api/v1/x").unwrap();
        assert_eq!(r.body_bytes(), b"ababab");
        assert_eq!(r.status, None);
    }
}
