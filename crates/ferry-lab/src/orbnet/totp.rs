//! TOTP codes (RFC 6238: HMAC-SHA1, 30 s steps, 6 digits) for the seeded 2FA account, on the
//! lab's clock.

use hmac::{Hmac, Mac};
use sha1::Sha1;

/// Seconds per TOTP step.
const STEP: i64 = 30;

/// The 6-digit code for `secret` at unix time `unix_secs`.
pub fn code_at(secret: &[u8], unix_secs: i64) -> String {
    let counter = unix_secs.div_euclid(STEP) as u64;
    let Ok(mut mac) = Hmac::<Sha1>::new_from_slice(secret) else {
        return String::new();
    };
    mac.update(&counter.to_be_bytes());
    let digest = mac.finalize().into_bytes();
    let offset = usize::from(digest[19] & 0x0f);
    let bin = (u32::from(digest[offset] & 0x7f) << 24)
        | (u32::from(digest[offset + 1]) << 16)
        | (u32::from(digest[offset + 2]) << 8)
        | u32::from(digest[offset + 3]);
    format!("{:06}", bin % 1_000_000)
}

/// Whether `code` is valid at `unix_secs`, allowing one step of drift either way.
pub fn verify(secret: &[u8], code: &str, unix_secs: i64) -> bool {
    let code = code.trim();
    code.len() == 6
        && [-STEP, 0, STEP]
            .iter()
            .any(|d| code_at(secret, unix_secs + d) == code)
}

/// RFC 4648 base32 without padding, as authenticator apps take secrets.
pub fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors_truncated_to_six_digits() {
        let secret = b"12345678901234567890";
        assert_eq!(code_at(secret, 59), "287082");
        assert_eq!(code_at(secret, 1_111_111_109), "081804");
        assert_eq!(code_at(secret, 2_000_000_000), "279037");
        assert!(verify(secret, "287082", 59 + 30));
        assert!(!verify(secret, "287082", 59 + 90));
        assert!(!verify(secret, "28708", 59));
    }

    #[test]
    fn base32_rfc4648() {
        assert_eq!(base32(b"foobar"), "MZXW6YTBOI");
        assert_eq!(base32(b"f"), "MY");
    }
}
