//! Reading request fields with OrbNET's 400 `VALIDATION_ERROR` (and `details`) for anything
//! missing, mistyped or out of range.

use super::envelope::ApiError;
use serde_json::{Map, Value};

/// A request's fields: a JSON object body, or a query string turned into one.
#[derive(Debug, Default)]
pub struct Fields(Map<String, Value>);

impl Fields {
    /// Parses a JSON body. An empty body counts as `{}` (so missing fields are reported by name).
    pub fn from_body(bytes: &[u8]) -> Result<Self, ApiError> {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(Self::default());
        }
        match serde_json::from_slice::<Value>(bytes) {
            Ok(Value::Object(map)) => Ok(Self(map)),
            Ok(other) => Err(ApiError::validation(
                "body",
                "type:object",
                kind(&other),
                "Request body must be a JSON object".into(),
            )),
            Err(e) => Err(ApiError::validation(
                "body",
                "json",
                Value::Null,
                format!("Request body is not valid JSON: {e}"),
            )),
        }
    }

    /// Turns query parameters into fields; values that look like integers become numbers.
    pub fn from_query(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        let map = pairs
            .into_iter()
            .map(|(k, v)| {
                let value = v
                    .parse::<i64>()
                    .map(Value::from)
                    .unwrap_or(Value::String(v));
                (k, value)
            })
            .collect();
        Self(map)
    }

    fn get(&self, field: &str) -> Option<&Value> {
        self.0.get(field).filter(|v| !v.is_null())
    }

    /// A required string, not blank, of at most `max_len` characters, returned as sent (a
    /// client's `session_id` is echoed back exactly).
    pub fn string(&self, field: &str, max_len: usize) -> Result<String, ApiError> {
        let v = self.get(field).ok_or_else(|| missing(field))?;
        let s = v.as_str().ok_or_else(|| {
            ApiError::validation(
                field,
                "type:string",
                v.clone(),
                format!("{field} must be a string"),
            )
        })?;
        if s.trim().is_empty() {
            return Err(ApiError::validation(
                field,
                "required",
                v.clone(),
                format!("{field} must not be empty"),
            ));
        }
        if s.chars().count() > max_len {
            return Err(ApiError::validation(
                field,
                &format!("max_length:{max_len}"),
                v.clone(),
                format!("{field} must be at most {max_len} characters"),
            ));
        }
        Ok(s.to_owned())
    }

    /// An optional string (absent or null gives `None`).
    pub fn opt_string(&self, field: &str, max_len: usize) -> Result<Option<String>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(_) => self.string(field, max_len).map(Some),
        }
    }

    /// A required integer within `min..=max` (floats such as `1.5` are rejected).
    pub fn int(&self, field: &str, min: i64, max: i64) -> Result<i64, ApiError> {
        let v = self.get(field).ok_or_else(|| missing(field))?;
        let n = v.as_i64().ok_or_else(|| {
            ApiError::validation(
                field,
                "type:integer",
                v.clone(),
                format!("{field} must be an integer"),
            )
        })?;
        if n < min || n > max {
            return Err(ApiError::validation(
                field,
                &format!("range:{min}-{max}"),
                v.clone(),
                format!("{field} must be between {min} and {max}"),
            ));
        }
        Ok(n)
    }

    /// An optional integer within `min..=max`.
    pub fn opt_int(&self, field: &str, min: i64, max: i64) -> Result<Option<i64>, ApiError> {
        match self.get(field) {
            None => Ok(None),
            Some(_) => self.int(field, min, max).map(Some),
        }
    }

    /// A required string that must be one of `allowed`.
    pub fn one_of(&self, field: &str, allowed: &[&'static str]) -> Result<&'static str, ApiError> {
        let v = self.get(field).ok_or_else(|| missing(field))?;
        let s = v.as_str().unwrap_or_default();
        allowed.iter().copied().find(|a| *a == s).ok_or_else(|| {
            ApiError::validation(
                field,
                &format!("one_of:{}", allowed.join(",")),
                v.clone(),
                format!("{field} must be one of: {}", allowed.join(", ")),
            )
        })
    }
}

fn missing(field: &str) -> ApiError {
    ApiError::validation(
        field,
        "required",
        Value::Null,
        format!("{field} is required"),
    )
}

fn kind(v: &Value) -> Value {
    let k = match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    Value::String(k.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn seconds_range_and_types() {
        let f = Fields::from_body(br#"{"a": 0, "b": 301, "c": 1.5, "d": "60", "e": 300}"#).unwrap();
        for field in ["a", "b", "c", "d", "x"] {
            let e = f.int(field, 1, 300).unwrap_err();
            assert_eq!(e.code, "VALIDATION_ERROR");
            assert_eq!(e.details.as_ref().unwrap()["field"], field);
        }
        assert_eq!(f.int("e", 1, 300).unwrap(), 300);
    }

    #[test]
    fn bad_json_and_enums() {
        assert!(Fields::from_body(b"{nope").is_err());
        assert!(Fields::from_body(b"[1]").is_err());
        let f = Fields::from_body(br#"{"p": "vless", "q": "ipsec"}"#).unwrap();
        assert_eq!(f.one_of("p", &["wireguard", "vless"]).unwrap(), "vless");
        let e = f.one_of("q", &["wireguard", "vless"]).unwrap_err();
        assert_eq!(e.details.unwrap()["received"], json!("ipsec"));
    }
}
