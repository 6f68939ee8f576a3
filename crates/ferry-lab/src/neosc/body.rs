//! Request bodies checked the way FastAPI/pydantic reports problems: 422 with a `detail` list of
//! `{type, loc, msg, input}` items. Password values are never echoed back.

use super::NeoError;
use serde_json::{json, Map, Value};
use std::collections::HashMap;

/// String fields read from a JSON object body.
#[derive(Debug)]
pub struct Fields(HashMap<String, String>);

impl Fields {
    /// A required field (present by construction).
    pub fn get(&self, k: &str) -> &str {
        self.0.get(k).map(String::as_str).unwrap_or_default()
    }

    /// An optional field.
    pub fn opt(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str)
    }
}

fn redacted(v: &Map<String, Value>) -> Value {
    let mut v = v.clone();
    if v.contains_key("password") {
        v.insert("password".to_owned(), json!("<redacted>"));
    }
    Value::Object(v)
}

/// Parses `body` as a JSON object.
pub fn object(body: &[u8]) -> Result<Map<String, Value>, NeoError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(NeoError::Validation(vec![
            json!({"type": "missing", "loc": ["body"], "msg": "Field required", "input": null}),
        ]));
    }
    let v: Value = serde_json::from_slice(body).map_err(|e| {
        NeoError::Validation(vec![json!({
            "type": "json_invalid",
            "loc": ["body", e.column().saturating_sub(1)],
            "msg": "JSON decode error",
            "input": {},
            "ctx": {"error": e.to_string()},
        })])
    })?;
    match v {
        Value::Object(m) => Ok(m),
        other => Err(NeoError::Validation(vec![json!({
            "type": "model_attributes_type",
            "loc": ["body"],
            "msg": "Input should be a valid dictionary or object to extract fields from",
            "input": other,
        })])),
    }
}

fn check_str(
    m: &Map<String, Value>,
    k: &str,
    required: bool,
    errors: &mut Vec<Value>,
) -> Option<String> {
    match m.get(k) {
        Some(Value::String(s)) => Some(s.clone()),
        None | Some(Value::Null) if !required => None,
        None => {
            errors.push(json!({"type": "missing", "loc": ["body", k], "msg": "Field required", "input": redacted(m)}));
            None
        }
        Some(other) => {
            let input = if k == "password" {
                json!("<redacted>")
            } else {
                other.clone()
            };
            errors.push(json!({"type": "string_type", "loc": ["body", k], "msg": "Input should be a valid string", "input": input}));
            None
        }
    }
}

/// One required string field of an object.
pub fn required_str(m: &Map<String, Value>, k: &str) -> Result<String, NeoError> {
    let mut errors = Vec::new();
    check_str(m, k, true, &mut errors).ok_or(NeoError::Validation(errors))
}

/// Reads `required` and `optional` string fields of a JSON object body, reporting every problem
/// at once as pydantic does.
pub fn fields(body: &[u8], required: &[&str], optional: &[&str]) -> Result<Fields, NeoError> {
    let m = object(body)?;
    let mut errors = Vec::new();
    let mut out = HashMap::new();
    for (k, req) in required
        .iter()
        .map(|k| (k, true))
        .chain(optional.iter().map(|k| (k, false)))
    {
        if let Some(v) = check_str(&m, k, req, &mut errors) {
            out.insert((*k).to_owned(), v);
        }
    }
    if errors.is_empty() {
        Ok(Fields(out))
    } else {
        Err(NeoError::Validation(errors))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_like_pydantic() {
        let e = fields(br#"{"email": 5}"#, &["email", "password"], &[]).unwrap_err();
        let NeoError::Validation(items) = e else {
            panic!()
        };
        assert_eq!(items.len(), 2);
        assert_eq!(items[0]["type"], "string_type");
        assert_eq!(items[1]["type"], "missing");
        assert_eq!(items[1]["loc"], json!(["body", "password"]));
        assert!(matches!(
            fields(b"{nope", &["a"], &[]),
            Err(NeoError::Validation(_))
        ));
        assert!(matches!(
            fields(b"", &["a"], &[]),
            Err(NeoError::Validation(_))
        ));
        let f = fields(br#"{"a":"x","password":"p"}"#, &["a"], &["b"]).unwrap();
        assert_eq!(f.get("a"), "x");
        assert_eq!(f.opt("b"), None);
    }

    #[test]
    fn passwords_are_not_echoed() {
        let e = fields(br#"{"password":"hunter2"}"#, &["email", "password"], &[]).unwrap_err();
        assert!(!e.body().to_string().contains("hunter2"));
    }
}
