//! The OS keyring through the `keyring` crate, every call on a blocking thread under a timeout.

use std::time::Duration;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::{keyring_user, Secret, SecretStore, SecretsError, KEYRING_SERVICE};
use crate::services::ServiceKind;

/// Which keyring backend to use; chosen explicitly, never keyring's compile-time default.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyringBackend {
    /// The platform's persistent store: the freedesktop Secret Service on Linux/BSD (GNOME
    /// Keyring, KWallet), the Keychain on macOS, Credential Manager on Windows (when the build
    /// enables those features).
    Platform,
    /// Linux kernel keyutils: the user's persistent keyring (the user keyring where the kernel
    /// has no persistent keyrings), which every process of the user finds, with or without a
    /// session keyring. No daemon needed; kept across logouts until the persistent keyring
    /// expires unused (`/proc/sys/kernel/keys/persistent_keyring_expiry`, 3 days by default),
    /// forgotten at reboot. Only on request.
    KernelKeyutils,
}

/// Tokens in the OS keyring under service `ferry`, user `<service>-token`.
#[derive(Debug, Clone)]
pub struct KeyringStore {
    backend: KeyringBackend,
    timeout: Duration,
    service_name: String,
}

impl KeyringStore {
    /// A store on `backend` whose calls give up after `timeout` (5 s is a good default).
    pub fn new(backend: KeyringBackend, timeout: Duration) -> Self {
        Self {
            backend,
            timeout,
            service_name: KEYRING_SERVICE.to_string(),
        }
    }

    /// Uses another keyring service name (tests use a unique one so they never touch real entries).
    pub fn with_service_name(mut self, name: impl Into<String>) -> Self {
        self.service_name = name.into();
        self
    }

    fn store_name(&self) -> &'static str {
        match self.backend {
            KeyringBackend::Platform => platform_name(),
            KeyringBackend::KernelKeyutils => "kernel persistent keyring (keyutils)",
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        service: ServiceKind,
        op: impl FnOnce(&keyring::Entry) -> Result<T, keyring::Error> + Send + 'static,
    ) -> Result<T, SecretsError> {
        let store = self.store_name();
        let backend = self.backend;
        let svc = self.service_name.clone();
        let user = keyring_user(service);
        let task = tokio::task::spawn_blocking(move || {
            let entry = make_entry(backend, &svc, &user)?;
            op(&entry)
        });
        match tokio::time::timeout(self.timeout, task).await {
            Err(_) => Err(SecretsError::Timeout {
                store,
                secs: u64::try_from(self.timeout.as_millis().div_ceil(1000))
                    .unwrap_or(u64::MAX)
                    .max(1),
            }),
            Ok(Err(join)) => Err(SecretsError::Failed {
                store,
                message: format!("keyring task failed: {join}"),
            }),
            Ok(Ok(r)) => r.map_err(|e| map_error(store, e)),
        }
    }
}

fn platform_name() -> &'static str {
    if cfg!(any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd"
    )) {
        "Secret Service keyring"
    } else if cfg!(target_os = "macos") {
        "macOS Keychain"
    } else if cfg!(target_os = "windows") {
        "Windows Credential Manager"
    } else {
        "platform keyring"
    }
}

#[cfg(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd"))]
fn platform_entry(service: &str, user: &str) -> Result<keyring::Entry, keyring::Error> {
    let cred = keyring::secret_service::SsCredential::new_with_target(None, service, user)?;
    Ok(keyring::Entry::new_with_credential(Box::new(cred)))
}

#[cfg(not(any(target_os = "linux", target_os = "freebsd", target_os = "openbsd")))]
fn platform_entry(service: &str, user: &str) -> Result<keyring::Entry, keyring::Error> {
    keyring::Entry::new(service, user)
}

/// A keyutils entry kept in the user's persistent keyring.
///
/// keyring's own keyutils credential adds the key to the *session* keyring and searches there.
/// A process without a session keyring (a shell that never ran `pam_keyinit`, a container
/// exec) gets a new, private one on the first add, which dies with the process: `ferry login`
/// said "Signed in" and the next command found nothing. So the key goes into the persistent
/// keyring (per user, shared by all the user's processes) and is searched there. Keys are
/// possessor-only; linking the persistent keyring into this thread's keyring makes this thread
/// a possessor (the link also resets the keyring's expiry). The description is the one keyring
/// uses (`keyring-rs:USER@SERVICE`), so tokens stored by earlier versions are still found when
/// they were linked to the persistent keyring.
#[cfg(target_os = "linux")]
fn keyutils_entry(service: &str, user: &str) -> Result<keyring::Entry, keyring::Error> {
    use keyring::keyutils::{decode_error, KeyutilsCredential};
    use linux_keyutils::{KeyRing, KeyRingIdentifier};

    let home = match KeyRing::get_persistent(KeyRingIdentifier::Thread) {
        Ok(persistent) => persistent,
        Err(e) => {
            // No persistent keyrings in this kernel: the user keyring lives as long as any
            // process of the user does.
            tracing::debug!(error = ?e, "no persistent keyring; using the user keyring");
            let thread =
                KeyRing::from_special_id(KeyRingIdentifier::Thread, true).map_err(decode_error)?;
            let user_ring =
                KeyRing::from_special_id(KeyRingIdentifier::User, true).map_err(decode_error)?;
            thread.link_keyring(user_ring).map_err(decode_error)?;
            user_ring
        }
    };
    let cred = KeyutilsCredential {
        session: home,
        persistent: None,
        description: format!("keyring-rs:{user}@{service}"),
    };
    Ok(keyring::Entry::new_with_credential(Box::new(cred)))
}

#[cfg(not(target_os = "linux"))]
fn keyutils_entry(_service: &str, _user: &str) -> Result<keyring::Entry, keyring::Error> {
    Err(keyring::Error::NoStorageAccess(
        "kernel keyutils exists only on Linux".into(),
    ))
}

fn make_entry(
    backend: KeyringBackend,
    service: &str,
    user: &str,
) -> Result<keyring::Entry, keyring::Error> {
    match backend {
        KeyringBackend::Platform => platform_entry(service, user),
        KeyringBackend::KernelKeyutils => keyutils_entry(service, user),
    }
}

fn map_error(store: &'static str, e: keyring::Error) -> SecretsError {
    match e {
        keyring::Error::NoStorageAccess(inner) => SecretsError::Unavailable {
            store,
            message: inner.to_string(),
        },
        keyring::Error::PlatformFailure(inner) => SecretsError::Unavailable {
            store,
            message: inner.to_string(),
        },
        keyring::Error::TooLong(attr, limit) => SecretsError::Rejected {
            store,
            message: format!("{attr} longer than {limit}"),
        },
        keyring::Error::Invalid(attr, why) => SecretsError::Rejected {
            store,
            message: format!("{attr}: {why}"),
        },
        keyring::Error::BadEncoding(_) => SecretsError::Failed {
            store,
            message: "stored value is not UTF-8".into(),
        },
        other => SecretsError::Failed {
            store,
            message: other.to_string(),
        },
    }
}

impl SecretStore for KeyringStore {
    fn name(&self) -> &'static str {
        self.store_name()
    }

    fn get(&self, service: ServiceKind) -> BoxFuture<'_, Result<Option<Secret>, SecretsError>> {
        async move {
            self.run(service, |e| match e.get_password() {
                Ok(v) => Ok(Some(Secret::new(v))),
                Err(keyring::Error::NoEntry) => Ok(None),
                Err(e) => Err(e),
            })
            .await
        }
        .boxed()
    }

    fn set(&self, service: ServiceKind, value: Secret) -> BoxFuture<'_, Result<(), SecretsError>> {
        async move {
            // gnome-keyring drops collections whose secrets contain raw newlines: refuse them.
            if value.expose().contains(['\n', '\r']) {
                return Err(SecretsError::Rejected {
                    store: self.store_name(),
                    message: "a token must be a single line".into(),
                });
            }
            self.run(service, move |e| e.set_password(value.expose()))
                .await
        }
        .boxed()
    }

    fn delete(&self, service: ServiceKind) -> BoxFuture<'_, Result<bool, SecretsError>> {
        async move {
            self.run(service, |e| match e.delete_credential() {
                Ok(()) => Ok(true),
                Err(keyring::Error::NoEntry) => Ok(false),
                Err(e) => Err(e),
            })
            .await
        }
        .boxed()
    }

    fn persistent(&self) -> bool {
        self.backend == KeyringBackend::Platform
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unique(tag: &str) -> String {
        format!("ferry-test-{tag}-{}", std::process::id())
    }

    async fn round_trip(store: KeyringStore) -> Result<(), String> {
        let svc = ServiceKind::Tunnelbyte;
        // Probe: reading a missing entry tells whether the store is reachable at all.
        match store.get(svc).await {
            Ok(None) => {}
            Ok(Some(_)) => return Err("fresh test entry unexpectedly present".into()),
            Err(e @ (SecretsError::Unavailable { .. } | SecretsError::Timeout { .. })) => {
                eprintln!("SKIP: {} not reachable here: {e}", store.name());
                return Ok(());
            }
            Err(e) => return Err(format!("probe failed: {e}")),
        }
        let token = Secret::new(format!("tb_roundtrip_{}", "x".repeat(4000)));
        store
            .set(svc, token.clone())
            .await
            .map_err(|e| e.to_string())?;
        // A fresh store object must read it back: proves it left the process (not a mock).
        let again = store.clone();
        let got = again.get(svc).await.map_err(|e| e.to_string())?;
        if got.as_ref() != Some(&token) {
            return Err("value did not round-trip".into());
        }
        if !again.delete(svc).await.map_err(|e| e.to_string())? {
            return Err("delete found nothing".into());
        }
        if again.get(svc).await.map_err(|e| e.to_string())?.is_some() {
            return Err("value still there after delete".into());
        }
        let multi = store.set(svc, Secret::new("a\nb")).await;
        if !matches!(multi, Err(SecretsError::Rejected { .. })) {
            return Err(format!("a multi-line value was not rejected: {multi:?}"));
        }
        Ok(())
    }

    #[tokio::test]
    async fn secret_service_round_trip() {
        if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() {
            eprintln!("SKIP: no D-Bus session bus (CI runs this under dbus-run-session with gnome-keyring)");
            return;
        }
        let store = KeyringStore::new(KeyringBackend::Platform, Duration::from_secs(10))
            .with_service_name(unique("ss"));
        round_trip(store).await.unwrap();
    }

    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn kernel_keyutils_round_trip() {
        // The user's persistent keyring needs no session keyring: this runs in any shell (the
        // probe in `round_trip` skips where the kernel keyrings are not reachable at all).
        let store = KeyringStore::new(KeyringBackend::KernelKeyutils, Duration::from_secs(5))
            .with_service_name(unique("ku"));
        round_trip(store).await.unwrap();
    }
}
