//! `auth/login` (with the TOTP branch), `auth/refresh` (rotating refresh tokens) and
//! `auth/logout`.
//!
//! Undocumented details and the lab's choice: wrong email or password → 401
//! `INVALID_CREDENTIALS`; a 2FA account without `totp_code` → 200 with
//! `data.requires_2fa: true` and no tokens; a wrong code → 401 `INVALID_2FA_CODE`; an unknown,
//! expired or already used refresh token → 401 `UNAUTHORIZED`.

use super::envelope::ApiError;
use super::tokens::{Claims, ACCESS_TTL_SECS};
use super::validate::Fields;
use super::{totp, Account, OrbState};
use axum::http::StatusCode;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

fn tokens_json(pair: &super::tokens::Pair) -> Value {
    json!({
        "access_token": pair.access,
        "refresh_token": pair.refresh,
        "token_type": "Bearer",
        "expires_in": ACCESS_TTL_SECS,
    })
}

fn claims(a: &Account) -> Claims<'_> {
    Claims {
        user_id: a.id,
        email: &a.email,
        free: a.is_free_user,
    }
}

impl OrbState {
    /// `POST /auth/login`.
    pub fn login(&mut self, f: &Fields, now: DateTime<Utc>) -> Result<Value, ApiError> {
        let email = f.string("email", 254)?;
        let password = f.string("password", 1024)?;
        let code = f.opt_string("totp_code", 16)?;
        let _device_id = f.opt_string("device_id", 128)?;
        let account = self
            .accounts
            .values()
            .find(|a| a.email.eq_ignore_ascii_case(&email) && a.password == password)
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "INVALID_CREDENTIALS",
                    "Invalid email or password",
                )
            })?;
        if let Some(secret) = &account.totp_secret {
            match code {
                None => {
                    return Ok(json!({
                        "requires_2fa": true,
                        "message": "Two-factor authentication code required",
                    }))
                }
                Some(c) if !totp::verify(secret, &c, now.timestamp()) => {
                    return Err(ApiError::new(
                        StatusCode::UNAUTHORIZED,
                        "INVALID_2FA_CODE",
                        "Invalid two-factor authentication code",
                    ))
                }
                Some(_) => {}
            }
        }
        let pair = self.tokens.issue(&claims(account), now);
        tracing::info!(user_id = account.id, "orbnet login");
        Ok(json!({
            "requires_2fa": false,
            "user": account.user_json(now),
            "tokens": tokens_json(&pair),
            "subscription": account.subscription_json(now),
        }))
    }

    /// `POST /auth/refresh`: a new pair for a live, unused refresh token.
    pub fn refresh(&mut self, f: &Fields, now: DateTime<Utc>) -> Result<Value, ApiError> {
        let token = f.string("refresh_token", 512)?;
        let account = self
            .tokens
            .take_refresh(&token, now)
            .and_then(|id| self.accounts.get(&id))
            .ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNAUTHORIZED,
                    "UNAUTHORIZED",
                    "Invalid or expired refresh token",
                )
            })?;
        let pair = self.tokens.issue(&claims(account), now);
        Ok(json!({
            "tokens": tokens_json(&pair),
            "user": account.user_json(now),
        }))
    }

    /// `POST /auth/logout`: revokes the bearer token and the given refresh token.
    pub fn logout(&mut self, access: &str, f: &Fields) -> Result<Value, ApiError> {
        let refresh = f.opt_string("refresh_token", 512)?;
        self.tokens.revoke(access, refresh.as_deref());
        Ok(json!({"message": "Logged out successfully"}))
    }
}
