//! WireGuard keys: X25519 private and public keys and preshared keys.
//!
//! The types wrap boringtun's re-exported x25519 types so keys handed to the tunnel are the very
//! types `boringtun::noise::Tunn` takes. Keys are printed and parsed as standard base64 of exactly
//! 32 bytes; an all-zero key is refused. A private key's `Debug` never shows the key.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use boringtun::x25519;
use rand::rngs::OsRng;
use rand::RngCore as _;
use std::fmt;
use std::str::FromStr;

/// Why a key could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The text is not valid standard base64.
    #[error("key is not valid base64")]
    Base64,
    /// The decoded key is not 32 bytes long.
    #[error("key must be 32 bytes, got {0}")]
    Length(usize),
    /// The key is all zeros, which WireGuard never accepts.
    #[error("key must not be all zeros")]
    AllZero,
}

fn decode32(text: &str) -> Result<[u8; 32], KeyError> {
    let bytes = STANDARD.decode(text.trim()).map_err(|_| KeyError::Base64)?;
    let arr: [u8; 32] = bytes
        .as_slice()
        .try_into()
        .map_err(|_| KeyError::Length(bytes.len()))?;
    if arr.iter().all(|b| *b == 0) {
        return Err(KeyError::AllZero);
    }
    Ok(arr)
}

/// An X25519 private key (the `[Interface] PrivateKey`).
#[derive(Clone)]
pub struct PrivateKey(x25519::StaticSecret);

impl PrivateKey {
    /// Generates a fresh private key from the operating system's random source.
    pub fn generate() -> Self {
        loop {
            let mut bytes = [0u8; 32];
            OsRng.fill_bytes(&mut bytes);
            if bytes.iter().any(|b| *b != 0) {
                return Self(x25519::StaticSecret::from(bytes));
            }
        }
    }

    /// Parses a base64 private key of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode32(text).map(|b| Self(x25519::StaticSecret::from(b)))
    }

    /// Builds a key from raw bytes, refusing all zeros.
    pub fn from_bytes(bytes: [u8; 32]) -> Result<Self, KeyError> {
        if bytes.iter().all(|b| *b == 0) {
            return Err(KeyError::AllZero);
        }
        Ok(Self(x25519::StaticSecret::from(bytes)))
    }

    /// The key as base64, for writing a config file. Treat the result as a secret.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.to_bytes())
    }

    /// The matching public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(x25519::PublicKey::from(&self.0))
    }

    /// The boringtun secret, for `Tunn::new`.
    pub fn to_static_secret(&self) -> x25519::StaticSecret {
        self.0.clone()
    }
}

impl PartialEq for PrivateKey {
    fn eq(&self, other: &Self) -> bool {
        // Not constant time; keys are only compared in tests and config round trips.
        self.0.to_bytes() == other.0.to_bytes()
    }
}
impl Eq for PrivateKey {}

impl fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PrivateKey(<redacted>, public {})", self.public_key())
    }
}

impl FromStr for PrivateKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_base64(s)
    }
}

/// An X25519 public key (the `[Peer] PublicKey`).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey(x25519::PublicKey);

impl PublicKey {
    /// Parses a base64 public key of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode32(text).map(|b| Self(x25519::PublicKey::from(b)))
    }

    /// The raw 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        self.0.as_bytes()
    }

    /// The key as base64.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0.as_bytes())
    }

    /// The boringtun public key, for `Tunn::new`.
    pub fn to_x25519(&self) -> x25519::PublicKey {
        self.0
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_base64())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::from_base64(s)
    }
}

/// A 32-byte preshared key (the `[Peer] PresharedKey`), a secret.
#[derive(Clone, PartialEq, Eq)]
pub struct PresharedKey([u8; 32]);

impl PresharedKey {
    /// Generates a random preshared key.
    pub fn generate() -> Self {
        let mut bytes = [0u8; 32];
        OsRng.fill_bytes(&mut bytes);
        bytes[0] |= 1;
        Self(bytes)
    }

    /// Parses a base64 preshared key of 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, KeyError> {
        decode32(text).map(Self)
    }

    /// The key as base64. Treat the result as a secret.
    pub fn to_base64(&self) -> String {
        STANDARD.encode(self.0)
    }

    /// The raw bytes, for `Tunn::new`.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.0
    }
}

impl fmt::Debug for PresharedKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PresharedKey(<redacted>)")
    }
}

impl Drop for PresharedKey {
    fn drop(&mut self) {
        // Best effort wipe; volatile writes so the compiler keeps them.
        for b in self.0.iter_mut() {
            // SAFETY: `b` is a valid, aligned, exclusive reference to a byte.
            unsafe { std::ptr::write_volatile(b, 0) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_key_round_trips_through_base64() {
        let k = PrivateKey::generate();
        let text = k.to_base64();
        assert_eq!(text.len(), 44);
        let back = PrivateKey::from_base64(&text).unwrap();
        assert_eq!(back, k);
        assert_eq!(back.public_key(), k.public_key());
        let p = PublicKey::from_base64(&k.public_key().to_base64()).unwrap();
        assert_eq!(p, k.public_key());
    }

    #[test]
    fn public_key_matches_wg_pubkey() {
        // Vector produced by `wg pubkey` for this private key.
        let k = PrivateKey::from_base64("yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=").unwrap();
        assert_eq!(
            k.public_key().to_base64(),
            "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="
        );
    }

    #[test]
    fn rejects_bad_keys() {
        assert_eq!(
            PrivateKey::from_base64("not base64!").unwrap_err(),
            KeyError::Base64
        );
        assert_eq!(
            PublicKey::from_base64("AAAA").unwrap_err(),
            KeyError::Length(3)
        );
        let zero = STANDARD.encode([0u8; 32]);
        assert_eq!(
            PublicKey::from_base64(&zero).unwrap_err(),
            KeyError::AllZero
        );
        assert_eq!(
            PrivateKey::from_base64(&zero).unwrap_err(),
            KeyError::AllZero
        );
        assert_eq!(
            PresharedKey::from_base64(&zero).unwrap_err(),
            KeyError::AllZero
        );
        assert_eq!(
            PrivateKey::from_bytes([0; 32]).unwrap_err(),
            KeyError::AllZero
        );
        let long = STANDARD.encode([1u8; 33]);
        assert_eq!(
            PrivateKey::from_base64(&long).unwrap_err(),
            KeyError::Length(33)
        );
    }

    #[test]
    fn debug_of_secrets_is_redacted() {
        let k = PrivateKey::generate();
        let dbg = format!("{k:?}");
        assert!(!dbg.contains(&k.to_base64()), "{dbg}");
        assert!(dbg.contains("redacted"));
        let psk = PresharedKey::generate();
        let dbg = format!("{psk:?}");
        assert!(!dbg.contains(&psk.to_base64()));
    }
}
