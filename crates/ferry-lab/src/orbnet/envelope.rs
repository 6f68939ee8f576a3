//! OrbNET's response envelope: `{"success":true,"data":...}` and
//! `{"success":false,"error":{"code","message","details"?}}`, used by every answer under
//! `/orbnet/api/v1`, including unknown routes.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::{json, Value};

/// A successful answer: `{"success": true, "data": data}` with status 200.
pub fn ok(data: Value) -> Response {
    Json(json!({"success": true, "data": data})).into_response()
}

/// An error answer in OrbNET's envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct ApiError {
    /// HTTP status.
    pub status: StatusCode,
    /// `error.code`, UPPER_SNAKE.
    pub code: &'static str,
    /// `error.message`, human text.
    pub message: String,
    /// `error.details`, when there is something to point at (validation).
    pub details: Option<Value>,
    /// `Retry-After` seconds (429 only).
    pub retry_after: Option<u64>,
}

impl ApiError {
    /// An error with a status, code and message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// Adds `error.details`.
    pub fn with_details(mut self, details: Value) -> Self {
        self.details = Some(details);
        self
    }

    /// 401 `UNAUTHORIZED`, the wording of the WireGuard and connection pages.
    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "Invalid or expired access token",
        )
    }

    /// 400 `VALIDATION_ERROR` about one field, with details shaped like the errors page's
    /// sample: `{"field","constraint","received"}`.
    pub fn validation(field: &str, constraint: &str, received: Value, message: String) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "VALIDATION_ERROR", message).with_details(json!({
            "field": field,
            "constraint": constraint,
            "received": received,
        }))
    }

    /// 404 `NOT_FOUND` for a route OrbNET does not have.
    pub fn no_route() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NOT_FOUND",
            "The requested resource was not found",
        )
    }

    /// 405 `METHOD_NOT_ALLOWED` for a known route and the wrong method.
    pub fn wrong_method() -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "METHOD_NOT_ALLOWED",
            "This method is not allowed on this resource",
        )
    }

    /// 429 `RATE_LIMIT_EXCEEDED` (the body shape is our assumption: the docs cut it off).
    pub fn rate_limited(retry_after: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "RATE_LIMIT_EXCEEDED",
            "Too many requests. Please try again later.",
        )
        .with_details(json!({ "retry_after": retry_after }));
        e.retry_after = Some(retry_after);
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut error = json!({"code": self.code, "message": self.message});
        if let (Some(d), Some(obj)) = (self.details, error.as_object_mut()) {
            obj.insert("details".into(), d);
        }
        let mut response =
            (self.status, Json(json!({"success": false, "error": error}))).into_response();
        if let Some(secs) = self.retry_after {
            if let Ok(v) = HeaderValue::from_str(&secs.to_string()) {
                response.headers_mut().insert("retry-after", v);
            }
        }
        response
    }
}

/// A credit amount as JSON: an integer when whole (`4910`), else a float (`4998.5`), as the
/// docs' examples print balances.
pub fn credits(x: f64) -> Value {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        json!(x as i64)
    } else {
        json!(x)
    }
}
