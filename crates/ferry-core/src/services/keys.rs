//! A client-generated WireGuard (X25519) keypair. The private half never leaves the device and
//! never appears in `Debug` output. A small local wrapper over boringtun's x25519 types; swap for
//! `ferry_tunnel::keys` once that lands.

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use boringtun::x25519::{PublicKey, StaticSecret};

/// An X25519 keypair for one tunnel.
#[derive(Clone)]
pub struct WgKeypair {
    secret: StaticSecret,
    public: PublicKey,
}

impl std::fmt::Debug for WgKeypair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WgKeypair")
            .field("public", &self.public_base64())
            .field("private", &"[redacted]")
            .finish()
    }
}

impl WgKeypair {
    /// A fresh keypair from the OS random source.
    pub fn generate() -> Self {
        let secret = StaticSecret::random_from_rng(rand::rngs::OsRng);
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }

    /// A keypair from 32 private-key bytes.
    pub fn from_private_bytes(bytes: [u8; 32]) -> Self {
        let secret = StaticSecret::from(bytes);
        let public = PublicKey::from(&secret);
        Self { secret, public }
    }

    /// The public key, standard base64 (44 characters), as WireGuard configs write it.
    pub fn public_base64(&self) -> String {
        STANDARD.encode(self.public.as_bytes())
    }

    /// The public key bytes.
    pub fn public_bytes(&self) -> [u8; 32] {
        self.public.to_bytes()
    }

    /// The private key bytes; for the tunnel only.
    pub fn private_bytes(&self) -> [u8; 32] {
        self.secret.to_bytes()
    }

    /// The private key as standard base64, redacted in `Debug`; for writing a config in memory.
    pub fn private_base64(&self) -> crate::secrets::Secret {
        crate::secrets::Secret::new(STANDARD.encode(self.secret.to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_fresh_valid_and_redacted() {
        let a = WgKeypair::generate();
        let b = WgKeypair::generate();
        assert_ne!(a.public_bytes(), b.public_bytes());
        assert_eq!(a.public_base64().len(), 44);
        let again = WgKeypair::from_private_bytes(a.private_bytes());
        assert_eq!(again.public_bytes(), a.public_bytes());
        let dbg = format!("{a:?}");
        assert!(dbg.contains(&a.public_base64()));
        assert!(!dbg.contains(a.private_base64().expose()));
        assert_ne!(a.public_bytes(), [0u8; 32]);
    }
}
