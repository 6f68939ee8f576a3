//! The vendor clients, built in one place for every front end: base URLs per service, the secret
//! store holding the tokens, and the HTTP settings. Nothing outside `app` constructs a client.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use crate::http::HttpSettings;
use crate::secrets::{
    EnvOverride, KeyringBackend, KeyringStore, MemoryStore, Secret, SharedSecretStore,
};
use crate::services::neosc::NeoscClient;
use crate::services::orbnet::{OrbnetClient, OrbnetTokens, StoreTokenSink};
use crate::services::origin::is_loopback_host;
use crate::services::tunnelbyte::TunnelbyteClient;
use crate::services::ServiceKind;

use super::error::AppError;

/// Keyring calls give up after this long (a locked keyring must not hang a front end).
pub const KEYRING_TIMEOUT: Duration = Duration::from_secs(5);

/// Which secret store holds the tokens (`FERRY_SECRETS`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretsMode {
    /// The platform keyring (Secret Service on Linux).
    Keyring,
    /// The Linux kernel keyring.
    Keyutils,
    /// Process memory only (tests, the demo, one-shot use with `FERRY_*_TOKEN`).
    Memory,
}

impl SecretsMode {
    /// Parses a `FERRY_SECRETS` value (empty: the keyring).
    pub fn parse(value: &str) -> Result<Self, AppError> {
        match value.trim().to_ascii_lowercase().as_str() {
            "" | "keyring" => Ok(SecretsMode::Keyring),
            "keyutils" => Ok(SecretsMode::Keyutils),
            "memory" => Ok(SecretsMode::Memory),
            other => Err(AppError::invalid(format!(
                "FERRY_SECRETS={other:?}: expected keyring, keyutils or memory"
            ))),
        }
    }

    /// Reads `FERRY_SECRETS` from the environment.
    pub fn from_env() -> Result<Self, AppError> {
        Self::parse(&std::env::var("FERRY_SECRETS").unwrap_or_default())
    }

    /// Opens the store; `FERRY_*_TOKEN` variables override it, and `FERRY_KEYRING_SERVICE`
    /// names the keyring entries' service (default `ferry`; tests use their own).
    pub fn open(self) -> SharedSecretStore {
        let keyring = |backend| {
            let store = KeyringStore::new(backend, KEYRING_TIMEOUT);
            match std::env::var("FERRY_KEYRING_SERVICE") {
                Ok(name) if !name.trim().is_empty() => store.with_service_name(name.trim()),
                _ => store,
            }
        };
        match self {
            SecretsMode::Keyring => Arc::new(EnvOverride::new(keyring(KeyringBackend::Platform))),
            SecretsMode::Keyutils => {
                Arc::new(EnvOverride::new(keyring(KeyringBackend::KernelKeyutils)))
            }
            SecretsMode::Memory => Arc::new(EnvOverride::new(MemoryStore::new())),
        }
    }
}

/// True when `url` points at this machine (127.0.0.0/8, `::1`, `localhost`): the lab.
pub fn is_loopback_url(url: &str) -> bool {
    reqwest::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(is_loopback_host))
        .unwrap_or(false)
}

/// Base URLs, tokens and HTTP settings: the clients of the three services.
#[derive(Debug, Clone)]
pub struct Services {
    urls: BTreeMap<ServiceKind, String>,
    secrets: SharedSecretStore,
    http: HttpSettings,
}

impl Services {
    /// Services at these base URLs (a service without one, e.g. NeoSC before it is set, is
    /// refused when used) with tokens in `secrets`.
    pub fn new(urls: BTreeMap<ServiceKind, String>, secrets: SharedSecretStore) -> Self {
        Services {
            urls: urls
                .into_iter()
                .map(|(k, v)| (k, v.trim().to_string()))
                .filter(|(_, v)| !v.is_empty())
                .collect(),
            secrets,
            http: HttpSettings::default(),
        }
    }

    /// The vendors' production URLs (NeoSC is self-hosted and has none), then `FERRY_*_URL`.
    pub fn urls_from_env() -> BTreeMap<ServiceKind, String> {
        let mut urls = BTreeMap::new();
        for s in ServiceKind::ALL {
            if let Some(u) = std::env::var(s.url_env_var())
                .ok()
                .filter(|u| !u.trim().is_empty())
            {
                urls.insert(s, u.trim().to_string());
            } else if let Some(d) = s.default_base_url() {
                urls.insert(s, d.to_string());
            }
        }
        urls
    }

    /// The same services at another set of URLs (settings changed).
    pub fn with_urls(&self, urls: BTreeMap<ServiceKind, String>) -> Self {
        Services::new(urls, self.secrets.clone())
    }

    /// The base URL of a service.
    pub fn base_url(&self, service: ServiceKind) -> Result<&str, AppError> {
        self.urls.get(&service).map(String::as_str).ok_or_else(|| {
            AppError::invalid(format!(
                "No {} address is set: enter it when you sign in, or set {} \
                 ({} is self-hosted).",
                service.display_name(),
                service.url_env_var(),
                ServiceKind::Neosc.display_name()
            ))
        })
    }

    /// True when the service's base URL is on loopback (the lab), where test knobs apply.
    pub fn is_loopback(&self, service: ServiceKind) -> bool {
        self.urls.get(&service).is_some_and(|u| is_loopback_url(u))
    }

    /// The secret store in use.
    pub fn secrets(&self) -> &SharedSecretStore {
        &self.secrets
    }

    /// The stored (or env-overridden) token of a service.
    pub async fn token(&self, service: ServiceKind) -> Result<Option<Secret>, AppError> {
        Ok(self.secrets.get(service).await?)
    }

    /// The token of a service, or [`AppError::NotSignedIn`].
    pub async fn require_token(&self, service: ServiceKind) -> Result<Secret, AppError> {
        self.token(service)
            .await?
            .ok_or(AppError::NotSignedIn(service))
    }

    /// An OrbNET client with the stored tokens (if any); refreshed tokens are written back.
    pub async fn orbnet(&self) -> Result<OrbnetClient, AppError> {
        let tokens = self
            .token(ServiceKind::Orbnet)
            .await?
            .map(|s| OrbnetTokens::from_stored(&s));
        Ok(
            OrbnetClient::new(self.base_url(ServiceKind::Orbnet)?, self.http.clone())?
                .with_tokens(tokens)
                .with_token_sink(Arc::new(StoreTokenSink(self.secrets.clone()))),
        )
    }

    /// A tunnelbyte client with the stored token (if any).
    pub async fn tunnelbyte(&self) -> Result<TunnelbyteClient, AppError> {
        let token = self.token(ServiceKind::Tunnelbyte).await?;
        Ok(
            TunnelbyteClient::new(self.base_url(ServiceKind::Tunnelbyte)?, self.http.clone())?
                .with_token(token),
        )
    }

    /// A tunnelbyte client holding `token` (to check a token before it is kept).
    pub fn tunnelbyte_with(&self, token: Secret) -> Result<TunnelbyteClient, AppError> {
        Ok(
            TunnelbyteClient::new(self.base_url(ServiceKind::Tunnelbyte)?, self.http.clone())?
                .with_token(Some(token)),
        )
    }

    /// A NeoSC client with the stored token (if any).
    pub async fn neosc(&self) -> Result<NeoscClient, AppError> {
        let token = self.token(ServiceKind::Neosc).await?;
        Ok(
            NeoscClient::new(self.base_url(ServiceKind::Neosc)?, self.http.clone())?
                .with_token(token),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_urls() {
        for u in [
            "http://127.0.0.1:9/x",
            "http://127.8.0.1/",
            "http://[::1]:80/",
            "http://localhost:1/",
            "http://LOCALHOST/",
        ] {
            assert!(is_loopback_url(u), "{u}");
        }
        for u in [
            "https://api.orbai.world/api/v1",
            "http://10.0.0.1/",
            "http://localhost.example.com/",
            "not a url",
        ] {
            assert!(!is_loopback_url(u), "{u}");
        }
    }

    #[test]
    fn secrets_mode_parses() {
        assert_eq!(SecretsMode::parse("").unwrap(), SecretsMode::Keyring);
        assert_eq!(
            SecretsMode::parse(" KeyUtils ").unwrap(),
            SecretsMode::Keyutils
        );
        assert!(SecretsMode::parse("file").is_err());
    }

    #[tokio::test]
    async fn a_service_without_address_says_how_to_set_it() {
        let s = Services::new(BTreeMap::new(), SecretsMode::Memory.open());
        let e = s.neosc().await.unwrap_err();
        assert!(e.to_string().contains("FERRY_NEOSC_URL"), "{e}");
    }
}
