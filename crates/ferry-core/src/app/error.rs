//! What can go wrong in the app facade, as one typed enum. Front ends render it (the desktop
//! turns it into the wire [`CommandError`], the CLI prints it once).

use crate::secrets::SecretsError;
use crate::services::{ApiError, ServiceKind};
use crate::store::StoreError;

use super::contract::CommandError;

/// An error of the app facade.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// The service needs a sign-in first.
    #[error("Sign in to {} first.", .0.display_name())]
    NotSignedIn(ServiceKind),
    /// The request itself is wrong (empty field, unknown region, bad URL).
    #[error("{0}")]
    InvalidInput(String),
    /// The service answered with an error, or could not be reached.
    #[error(transparent)]
    Api(#[from] ApiError),
    /// The keyring failed.
    #[error("The keyring did not answer: {0}")]
    Keyring(#[from] SecretsError),
    /// The history database failed.
    #[error("The history database failed: {0}")]
    Store(#[from] StoreError),
    /// This app already runs a connection.
    #[error("A connection is already running; disconnect it first.")]
    Busy,
    /// Another Ferry front end of this user holds the instance lock and may be metering.
    #[error("Already connected in {holder}; disconnect there first.")]
    AlreadyConnected {
        /// Who holds it, e.g. "`ferry connect` (pid 4242)".
        holder: String,
    },
    /// The region or server cannot be used now.
    #[error("{0}")]
    Unavailable(String),
    /// Something asked for does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Launch at login could not be changed.
    #[error("Could not change launch at login: {0}")]
    Autostart(String),
    /// A local file (lock, data dir) failed.
    #[error("{0}")]
    Io(String),
    /// A spend cap is already reached: the session is refused (the message names the cap and
    /// when it resets).
    #[error("Not connecting: the {cap} is reached; {resets}.")]
    CapReached {
        /// Which cap, in words.
        cap: String,
        /// When it resets, in words.
        resets: String,
    },
}

impl AppError {
    /// A short machine-readable kind (`not_signed_in`, `network`, `already_connected`, ...).
    pub fn code(&self) -> &'static str {
        match self {
            AppError::NotSignedIn(_) => "not_signed_in",
            AppError::InvalidInput(_) => "invalid_input",
            AppError::Api(e) => match e {
                ApiError::Unauthorized { .. }
                | ApiError::NoToken { .. }
                | ApiError::TokenOriginMismatch { .. } => "not_signed_in",
                ApiError::NotSent { .. } | ApiError::AnswerLost { .. } => "network",
                ApiError::RateLimited { .. } => "rate_limited",
                ApiError::RegionUnavailable { .. } => "unavailable",
                _ if e.status() == Some(404) => "not_found",
                _ if e.status() == Some(409) => "conflict",
                _ => "service",
            },
            AppError::Keyring(_) => "keyring",
            AppError::Store(_) => "history",
            AppError::Busy => "busy",
            AppError::AlreadyConnected { .. } => "already_connected",
            AppError::Unavailable(_) => "unavailable",
            AppError::NotFound(_) => "not_found",
            AppError::Autostart(_) => "autostart",
            AppError::Io(_) => "io",
            AppError::CapReached { .. } => "cap_reached",
        }
    }

    /// Shorthand for [`AppError::InvalidInput`].
    pub fn invalid(msg: impl Into<String>) -> Self {
        AppError::InvalidInput(msg.into())
    }
}

impl From<AppError> for CommandError {
    fn from(e: AppError) -> Self {
        CommandError::new(e.code(), e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_and_messages_for_front_ends() {
        let e = AppError::NotSignedIn(ServiceKind::Tunnelbyte);
        assert_eq!(e.code(), "not_signed_in");
        assert_eq!(e.to_string(), "Sign in to tunnelbyte first.");
        let wire: CommandError = AppError::AlreadyConnected {
            holder: "`ferry connect` (pid 7)".into(),
        }
        .into();
        assert_eq!(wire.code, "already_connected");
        assert!(wire.message.contains("ferry connect"), "{}", wire.message);
    }
}
