//! NeoSC's error answers, FastAPI style: `{"detail": "..."}` (or a list for validation).

use axum::http::StatusCode;
use serde_json::{json, Value};

/// Everything a NeoSC endpoint can refuse with.
#[derive(Debug, thiserror::Error)]
pub enum NeoError {
    /// No `Authorization: Bearer` header.
    #[error("Not authenticated")]
    NotAuthenticated,
    /// A bearer token the server does not know (or one that logged out).
    #[error("Invalid token")]
    InvalidToken,
    /// Wrong email or password.
    #[error("Invalid credentials")]
    InvalidCredentials,
    /// Register with a taken email.
    #[error("Email already registered")]
    EmailRegistered,
    /// Missing, or someone else's.
    #[error("Session not found")]
    SessionNotFound,
    /// Unknown workspace id.
    #[error("Workspace not found")]
    WorkspaceNotFound,
    /// Launch of a workspace whose status is `coming_soon`.
    #[error("Workspace not available yet")]
    WorkspaceNotAvailable,
    /// Admin-only route called by a user.
    #[error("Admin access required")]
    AdminRequired,
    /// Request body failed validation (FastAPI's 422 list).
    #[error("validation error")]
    Validation(Vec<Value>),
    /// No such route.
    #[error("Not Found")]
    NotFound,
    /// The route exists with another method.
    #[error("Method Not Allowed")]
    MethodNotAllowed,
}

impl NeoError {
    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            NeoError::NotAuthenticated | NeoError::InvalidToken | NeoError::InvalidCredentials => {
                StatusCode::UNAUTHORIZED
            }
            NeoError::EmailRegistered | NeoError::WorkspaceNotAvailable => StatusCode::BAD_REQUEST,
            NeoError::SessionNotFound | NeoError::WorkspaceNotFound | NeoError::NotFound => {
                StatusCode::NOT_FOUND
            }
            NeoError::AdminRequired => StatusCode::FORBIDDEN,
            NeoError::Validation(_) => StatusCode::UNPROCESSABLE_ENTITY,
            NeoError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
        }
    }

    /// The JSON body.
    pub fn body(&self) -> Value {
        match self {
            NeoError::Validation(items) => json!({ "detail": items }),
            other => json!({ "detail": other.to_string() }),
        }
    }
}
