//! Tokens: a redacted [`Secret`] string, the [`SecretStore`] trait, the OS keyring store, an
//! in-memory store for tests, and the `FERRY_*_TOKEN` environment override.
//!
//! Backend choice (keyring 3.x features `linux-native`, `async-secret-service`, `tokio`,
//! `crypto-rust`): the default Linux store is the freedesktop **Secret Service** (GNOME Keyring,
//! KWallet) over zbus, which persists across reboots and needs no C library (`crypto-rust`, no
//! libdbus). `linux-native` adds the kernel keyutils store, offered only when asked for
//! (`FERRY_SECRETS=keyutils`) because it forgets tokens at logout/reboot. Ferry never relies on
//! keyring's compile-time default: each entry is built from an explicit credential type, so a
//! feature change elsewhere in the build can never turn it into the silent mock store.

mod env;
#[cfg(test)]
mod hang_tests;
mod keyring_store;
mod memory;

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};

pub use env::EnvOverride;
pub use keyring_store::{KeyringBackend, KeyringStore};
pub use memory::MemoryStore;

use crate::services::ServiceKind;

/// A secret string (token, password). `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The secret itself; call only where it is sent or stored.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// True when empty (or only whitespace).
    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self(s.to_string())
    }
}

/// What a secret store can fail with.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SecretsError {
    /// The store did not answer within the time limit (e.g. a locked keyring waiting on a prompt).
    #[error("the {store} did not answer within {secs} s")]
    Timeout {
        /// Which store.
        store: &'static str,
        /// The limit in seconds.
        secs: u64,
    },
    /// The store is not available here (no Secret Service on the bus, keyring locked, ...).
    #[error("the {store} is not available: {message}")]
    Unavailable {
        /// Which store.
        store: &'static str,
        /// Why.
        message: String,
    },
    /// The store rejected the value (too long, bad characters).
    #[error("the {store} refused the value: {message}")]
    Rejected {
        /// Which store.
        store: &'static str,
        /// Why.
        message: String,
    },
    /// Any other failure of the store.
    #[error("the {store} failed: {message}")]
    Failed {
        /// Which store.
        store: &'static str,
        /// Why.
        message: String,
    },
}

/// Where tokens live. Every call is bounded in time by the implementation.
pub trait SecretStore: Send + Sync + fmt::Debug {
    /// A short name for messages ("Secret Service keyring", "memory").
    fn name(&self) -> &'static str;
    /// The stored token of a service, if any.
    fn get(&self, service: ServiceKind) -> BoxFuture<'_, Result<Option<Secret>, SecretsError>>;
    /// Stores (replaces) the token of a service.
    fn set(&self, service: ServiceKind, value: Secret) -> BoxFuture<'_, Result<(), SecretsError>>;
    /// Forgets the token of a service; true when one was stored.
    fn delete(&self, service: ServiceKind) -> BoxFuture<'_, Result<bool, SecretsError>>;
    /// True when values survive the process (false for memory and env).
    fn persistent(&self) -> bool;
}

/// A shared store handle.
pub type SharedSecretStore = Arc<dyn SecretStore>;

/// The keyring "user" (account) name of a service's token entry; the keyring "service" is
/// [`KEYRING_SERVICE`].
pub fn keyring_user(service: ServiceKind) -> String {
    format!("{}-token", service.as_str())
}

/// The keyring service name of Ferry's entries.
pub const KEYRING_SERVICE: &str = "ferry";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted() {
        let s = Secret::new("tok_live_123");
        assert_eq!(format!("{s:?}"), "Secret([redacted])");
        assert_eq!(format!("{s}"), "[redacted]");
        assert_eq!(s.expose(), "tok_live_123");
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Holder {
            token: Secret,
        }
        let h = format!("{:?}", Holder { token: s });
        assert!(!h.contains("tok_live"), "{h}");
    }
}
