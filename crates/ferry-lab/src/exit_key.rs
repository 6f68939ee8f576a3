//! WireGuard keypairs made by the lab (the exit node's, and OrbNET's server-generated ones).

use base64::Engine;
use boringtun::x25519::{PublicKey, StaticSecret};
use rand::RngCore;

/// A generated X25519 keypair as raw bytes.
#[derive(Clone)]
pub struct KeyPair {
    /// The private half.
    pub private: [u8; 32],
    /// The public half.
    pub public: [u8; 32],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyPair")
            .field("public", &b64(&self.public))
            .finish_non_exhaustive()
    }
}

/// Makes a fresh keypair from the OS random source.
pub fn generate() -> KeyPair {
    let mut bytes = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let secret = StaticSecret::from(bytes);
    let public = PublicKey::from(&secret);
    KeyPair {
        private: secret.to_bytes(),
        public: public.to_bytes(),
    }
}

/// Standard base64, as WireGuard configs use.
pub fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// Parses a base64 WireGuard key of exactly 32 bytes.
pub fn parse_key(s: &str) -> Option<[u8; 32]> {
    let v = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .ok()?;
    v.try_into().ok()
}
