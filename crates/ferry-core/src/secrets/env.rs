//! `FERRY_ORBNET_TOKEN`, `FERRY_TUNNELBYTE_TOKEN`, `FERRY_NEOSC_TOKEN` override a store.

use std::fmt;
use std::sync::Arc;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Secret, SecretStore, SecretsError};
use crate::services::ServiceKind;

type Lookup = Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Reads a service's token from its env var when set and non-empty, else from the inner store.
/// Writes and deletes go to the inner store.
pub struct EnvOverride<S> {
    inner: S,
    lookup: Lookup,
}

impl<S> fmt::Debug for EnvOverride<S>
where
    S: fmt::Debug,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EnvOverride")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl<S: SecretStore> EnvOverride<S> {
    /// Overrides `inner` with the process environment.
    pub fn new(inner: S) -> Self {
        Self::with_lookup(inner, |k| std::env::var(k).ok())
    }

    /// Overrides `inner` with a custom variable lookup (for tests).
    pub fn with_lookup(
        inner: S,
        lookup: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
    ) -> Self {
        Self {
            inner,
            lookup: Arc::new(lookup),
        }
    }

    /// The env override of a service, if set.
    pub fn from_env(&self, service: ServiceKind) -> Option<Secret> {
        (self.lookup)(service.token_env_var())
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(Secret::new)
    }
}

impl<S: SecretStore> SecretStore for EnvOverride<S> {
    fn name(&self) -> &'static str {
        self.inner.name()
    }

    fn get(&self, service: ServiceKind) -> BoxFuture<'_, Result<Option<Secret>, SecretsError>> {
        if let Some(v) = self.from_env(service) {
            return async move { Ok(Some(v)) }.boxed();
        }
        self.inner.get(service)
    }

    fn set(&self, service: ServiceKind, value: Secret) -> BoxFuture<'_, Result<(), SecretsError>> {
        self.inner.set(service, value)
    }

    fn delete(&self, service: ServiceKind) -> BoxFuture<'_, Result<bool, SecretsError>> {
        self.inner.delete(service)
    }

    fn persistent(&self) -> bool {
        self.inner.persistent()
    }

    fn stored(&self, service: ServiceKind) -> BoxFuture<'_, Result<Option<Secret>, SecretsError>> {
        self.inner.stored(service)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::secrets::MemoryStore;

    #[tokio::test]
    async fn env_wins_over_store() {
        let store = EnvOverride::with_lookup(MemoryStore::new(), |k| {
            (k == "FERRY_TUNNELBYTE_TOKEN").then(|| " tb_env \n".to_string())
        });
        store
            .set(ServiceKind::Tunnelbyte, Secret::new("stored"))
            .await
            .unwrap();
        store
            .set(ServiceKind::Neosc, Secret::new("neo"))
            .await
            .unwrap();
        let tb = store.get(ServiceKind::Tunnelbyte).await.unwrap().unwrap();
        assert_eq!(tb.expose(), "tb_env");
        let neo = store.get(ServiceKind::Neosc).await.unwrap().unwrap();
        assert_eq!(neo.expose(), "neo");
        assert!(store.get(ServiceKind::Orbnet).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn empty_env_is_ignored() {
        let store = EnvOverride::with_lookup(MemoryStore::new(), |_| Some("  ".into()));
        assert!(store.get(ServiceKind::Orbnet).await.unwrap().is_none());
    }
}
