//! Tokens: a redacted [`Secret`] string, the [`SecretStore`] trait, the OS keyring store, an
//! in-memory store for tests, and the `FERRY_*_TOKEN` environment override.
//!
//! Backend choice (keyring 3.x features `linux-native`, `async-secret-service`, `tokio`,
//! `crypto-rust`): the default Linux store is the freedesktop **Secret Service** (GNOME Keyring,
//! KWallet) over zbus, which persists across reboots and needs no C library (`crypto-rust`, no
//! libdbus). `linux-native` adds the kernel keyutils store (the user's persistent keyring),
//! offered only when asked for (`FERRY_SECRETS=keyutils`) because it forgets tokens at reboot.
//! [`keep`] stores a token and reads it back before anyone says it is kept. Ferry never relies on
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
    /// The store took the value but does not give it back, so the next command would not
    /// find it.
    #[error("the {store} took the token but {message}; it would not be found by the next command")]
    NotKept {
        /// Which store.
        store: &'static str,
        /// What the read-back saw.
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
    /// True when values survive a reboot (the platform keyring; false for memory and the kernel
    /// keyring).
    fn persistent(&self) -> bool;
    /// The token as stored, ignoring any override (what the next process reads from the store).
    fn stored(&self, service: ServiceKind) -> BoxFuture<'_, Result<Option<Secret>, SecretsError>> {
        self.get(service)
    }
}

/// Stores a token, then reads it back from the store: `Ok` only when the store gives back
/// exactly this value, so "kept" is never said of a token the next command will not find.
pub async fn keep(
    store: &dyn SecretStore,
    service: ServiceKind,
    value: Secret,
) -> Result<(), SecretsError> {
    store.set(service, value.clone()).await?;
    let not_kept = |message: String| SecretsError::NotKept {
        store: store.name(),
        message,
    };
    match store.stored(service).await {
        Ok(Some(v)) if v == value => Ok(()),
        Ok(Some(_)) => Err(not_kept("gives back another value".into())),
        Ok(None) => Err(not_kept("finds no token right after storing it".into())),
        Err(e) => Err(not_kept(format!("reading it back failed ({e})"))),
    }
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

    /// Takes values and forgets them at once (a session keyring that dies with the process).
    #[derive(Debug)]
    struct Forgetful;

    impl SecretStore for Forgetful {
        fn name(&self) -> &'static str {
            "forgetful store"
        }
        fn get(&self, _: ServiceKind) -> BoxFuture<'_, Result<Option<Secret>, SecretsError>> {
            Box::pin(async { Ok(None) })
        }
        fn set(&self, _: ServiceKind, _: Secret) -> BoxFuture<'_, Result<(), SecretsError>> {
            Box::pin(async { Ok(()) })
        }
        fn delete(&self, _: ServiceKind) -> BoxFuture<'_, Result<bool, SecretsError>> {
            Box::pin(async { Ok(false) })
        }
        fn persistent(&self) -> bool {
            true
        }
    }

    #[tokio::test]
    async fn keep_reads_the_token_back_before_saying_it_is_kept() {
        let s = ServiceKind::Tunnelbyte;
        let err = keep(&Forgetful, s, Secret::new("tb_x")).await.unwrap_err();
        assert!(matches!(err, SecretsError::NotKept { .. }), "{err:?}");
        assert!(err.to_string().contains("next command"), "{err}");
        let mem = MemoryStore::new();
        keep(&mem, s, Secret::new("tb_x")).await.unwrap();
        // The read-back is the store's, not an environment override's.
        let env = EnvOverride::with_lookup(Forgetful, |_| Some("tb_env".into()));
        assert!(matches!(
            keep(&env, s, Secret::new("tb_x")).await,
            Err(SecretsError::NotKept { .. })
        ));
    }

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
