//! Access and refresh tokens. Access tokens are HS256 JWTs (`iss: "orbnet"`, integer `sub` and
//! `user_id`, `exp`) that expire on the lab clock after [`ACCESS_TTL_SECS`]; refresh tokens are
//! opaque, live [`REFRESH_TTL_SECS`], and rotate: each works once, reuse gives 401.
//! Lookups are by hash map; signatures are made at issue time only.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::Sha256;
use std::collections::HashMap;

/// Access-token lifetime on the lab clock: 15 minutes. The docs say 24 h and the vendor's notes
/// 1 h; a short lab TTL makes clients exercise their refresh path.
pub const ACCESS_TTL_SECS: i64 = 15 * 60;
/// Refresh-token lifetime on the lab clock: 30 days.
pub const REFRESH_TTL_SECS: i64 = 30 * 24 * 3600;

/// Who a token belongs to and until when.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Grant {
    /// The account's id.
    pub user_id: u64,
    /// When the token stops working.
    pub expires_at: DateTime<Utc>,
}

/// A freshly issued pair.
#[derive(Clone)]
pub struct Pair {
    /// The bearer JWT.
    pub access: String,
    /// The one-time refresh token.
    pub refresh: String,
}

/// Claims the lab puts in an access token (besides `iat`, `exp`, `jti`).
#[derive(Debug, Clone)]
pub struct Claims<'a> {
    /// Account id.
    pub user_id: u64,
    /// Account email.
    pub email: &'a str,
    /// Whether the account is on the free plan.
    pub free: bool,
}

/// The token tables.
#[derive(Default, Serialize, Deserialize)]
pub struct Tokens {
    secret: Vec<u8>,
    access: HashMap<String, Grant>,
    refresh: HashMap<String, Grant>,
}

impl Tokens {
    /// Empty tables with a fresh signing secret.
    pub fn new() -> Self {
        Self {
            secret: random_bytes(32),
            ..Self::default()
        }
    }

    /// Number of live (not yet swept) access and refresh tokens.
    pub fn counts(&self) -> (usize, usize) {
        (self.access.len(), self.refresh.len())
    }

    /// Issues an access/refresh pair.
    pub fn issue(&mut self, claims: &Claims<'_>, now: DateTime<Utc>) -> Pair {
        if self.secret.is_empty() {
            self.secret = random_bytes(32);
        }
        let exp = now + Duration::seconds(ACCESS_TTL_SECS);
        let access = self.jwt(claims, now, exp);
        let refresh = URL_SAFE_NO_PAD.encode(random_bytes(32));
        self.access.insert(
            access.clone(),
            Grant {
                user_id: claims.user_id,
                expires_at: exp,
            },
        );
        self.refresh.insert(
            refresh.clone(),
            Grant {
                user_id: claims.user_id,
                expires_at: now + Duration::seconds(REFRESH_TTL_SECS),
            },
        );
        Pair { access, refresh }
    }

    /// The account behind a live access token.
    pub fn user_for_access(&self, token: &str, now: DateTime<Utc>) -> Option<u64> {
        self.access
            .get(token)
            .filter(|g| g.expires_at > now)
            .map(|g| g.user_id)
    }

    /// Consumes a refresh token: the account it was for, if it was live and unused.
    pub fn take_refresh(&mut self, token: &str, now: DateTime<Utc>) -> Option<u64> {
        self.refresh
            .remove(token)
            .filter(|g| g.expires_at > now)
            .map(|g| g.user_id)
    }

    /// Revokes an access token and, if given, a refresh token of the same account.
    pub fn revoke(&mut self, access: &str, refresh: Option<&str>) {
        let Some(grant) = self.access.remove(access) else {
            return;
        };
        if let Some(r) = refresh {
            if self.refresh.get(r).map(|g| g.user_id) == Some(grant.user_id) {
                self.refresh.remove(r);
            }
        }
    }

    /// Drops expired tokens.
    pub fn sweep(&mut self, now: DateTime<Utc>) {
        self.access.retain(|_, g| g.expires_at > now);
        self.refresh.retain(|_, g| g.expires_at > now);
    }

    fn jwt(&self, c: &Claims<'_>, now: DateTime<Utc>, exp: DateTime<Utc>) -> String {
        let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
        let payload = json!({
            "iss": "orbnet",
            "sub": c.user_id,
            "user_id": c.user_id,
            "email": c.email,
            "role": "user",
            "subscription_valid": !c.free,
            "subscription_tier": if c.free { "free" } else { "premium" },
            "subscription_status": "ACTIVE",
            "iat": now.timestamp(),
            "exp": exp.timestamp(),
            "jti": URL_SAFE_NO_PAD.encode(random_bytes(12)),
        });
        let payload = URL_SAFE_NO_PAD.encode(payload.to_string());
        let signing_input = format!("{header}.{payload}");
        let signature = match Hmac::<Sha256>::new_from_slice(&self.secret) {
            Ok(mut mac) => {
                mac.update(signing_input.as_bytes());
                URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes())
            }
            Err(_) => String::new(),
        };
        format!("{signing_input}.{signature}")
    }
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut v = vec![0u8; n];
    rand::rngs::OsRng.fill_bytes(&mut v);
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims<'static> {
        Claims {
            user_id: 7,
            email: "a@b.c",
            free: false,
        }
    }

    #[test]
    fn access_expires_and_refresh_rotates() {
        let mut t = Tokens::new();
        let now = Utc::now();
        let p = t.issue(&claims(), now);
        assert_eq!(p.access.split('.').count(), 3);
        assert_eq!(t.user_for_access(&p.access, now), Some(7));
        let later = now + Duration::seconds(ACCESS_TTL_SECS);
        assert_eq!(t.user_for_access(&p.access, later), None);
        assert_eq!(t.take_refresh(&p.refresh, later), Some(7));
        assert_eq!(t.take_refresh(&p.refresh, later), None, "one use only");
        t.sweep(later);
        assert_eq!(t.counts(), (0, 0));
    }

    #[test]
    fn jwt_payload_carries_integer_sub_and_exp() {
        let mut t = Tokens::new();
        let now = Utc::now();
        let p = t.issue(&claims(), now);
        let payload = p.access.split('.').nth(1).unwrap();
        let v: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).unwrap()).unwrap();
        assert_eq!(v["sub"], 7);
        assert_eq!(v["iss"], "orbnet");
        assert_eq!(v["exp"], now.timestamp() + ACCESS_TTL_SECS);
    }
}
