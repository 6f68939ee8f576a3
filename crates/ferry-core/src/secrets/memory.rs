//! A process-local secret store for tests and `FERRY_SECRETS=memory`.

use std::collections::HashMap;
use std::sync::Mutex;

use futures::future::BoxFuture;
use futures::FutureExt;

use super::{Secret, SecretStore, SecretsError};
use crate::services::ServiceKind;

/// Keeps tokens in memory only; lost when the process ends.
#[derive(Debug, Default)]
pub struct MemoryStore {
    map: Mutex<HashMap<ServiceKind, Secret>>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn with<T>(&self, f: impl FnOnce(&mut HashMap<ServiceKind, Secret>) -> T) -> T {
        let mut guard = match self.map.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        f(&mut guard)
    }
}

impl SecretStore for MemoryStore {
    fn name(&self) -> &'static str {
        "in-memory store"
    }

    fn get(&self, service: ServiceKind) -> BoxFuture<'_, Result<Option<Secret>, SecretsError>> {
        let v = self.with(|m| m.get(&service).cloned());
        async move { Ok(v) }.boxed()
    }

    fn set(&self, service: ServiceKind, value: Secret) -> BoxFuture<'_, Result<(), SecretsError>> {
        self.with(|m| m.insert(service, value));
        async { Ok(()) }.boxed()
    }

    fn delete(&self, service: ServiceKind) -> BoxFuture<'_, Result<bool, SecretsError>> {
        let had = self.with(|m| m.remove(&service).is_some());
        async move { Ok(had) }.boxed()
    }

    fn persistent(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn round_trip() {
        let s = MemoryStore::new();
        assert!(s.get(ServiceKind::Neosc).await.unwrap().is_none());
        s.set(ServiceKind::Neosc, Secret::new("a")).await.unwrap();
        assert_eq!(
            s.get(ServiceKind::Neosc).await.unwrap().unwrap().expose(),
            "a"
        );
        assert!(s.get(ServiceKind::Orbnet).await.unwrap().is_none());
        assert!(s.delete(ServiceKind::Neosc).await.unwrap());
        assert!(!s.delete(ServiceKind::Neosc).await.unwrap());
    }
}
