//! OrbNET accounts: credentials, credits, plan, optional TOTP, and the tunnel address the lab
//! gives each account's WireGuard peer.

use super::totp;
use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::net::Ipv4Addr;

/// One OrbNET account.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Account {
    /// Integer user id (the JWT `sub`).
    pub id: u64,
    /// The account's UUID.
    pub uuid: String,
    /// Login email.
    pub email: String,
    /// Login password (lab accounts only; listed by the control API).
    pub password: String,
    /// Credit balance (1 credit = 1 VPN minute at rate 1.0).
    pub credits: f64,
    /// Credits per minute while connected.
    pub consumption_rate: f64,
    /// Free plan (ad credits) rather than a paid one.
    pub is_free_user: bool,
    /// TOTP secret when 2FA is on.
    pub totp_secret: Option<Vec<u8>>,
    /// First name, for the profile.
    pub first_name: String,
    /// Address of this account's WireGuard peer on the exit node (one per account).
    pub tunnel_ip: Ipv4Addr,
    /// Public key (raw) of the peer last handed out by the WireGuard endpoint.
    pub peer_key: Option<[u8; 32]>,
    /// Devices the plan allows.
    pub max_devices: u32,
}

impl Account {
    /// `data.user` of login and refresh answers.
    pub fn user_json(&self, now: DateTime<Utc>) -> Value {
        json!({
            "id": self.id,
            "uuid": self.uuid,
            "username": self.email.split('@').next().unwrap_or_default(),
            "email": self.email,
            "role": "user",
            "active": true,
            "enabled": true,
            "first_name": self.first_name,
            "is_free_user": self.is_free_user,
            "two_factor_enabled": self.totp_secret.is_some(),
            "created_at": crate::clock::rfc3339_z(now - Duration::days(90)),
        })
    }

    /// `data.subscription` of login answers.
    pub fn subscription_json(&self, now: DateTime<Utc>) -> Value {
        if self.is_free_user {
            json!({
                "plan_name": "Free",
                "status": "active",
                "expires_at": null,
                "max_devices": self.max_devices,
                "days_remaining": null,
            })
        } else {
            json!({
                "plan_name": "Premium",
                "status": "active",
                "expires_at": crate::clock::rfc3339_z(now + Duration::days(365)),
                "max_devices": self.max_devices,
                "days_remaining": 365,
            })
        }
    }

    /// The control API's view: credentials, balance, and for 2FA accounts the TOTP secret
    /// (base32) and the code valid at `now`.
    pub fn control_json(&self, now: DateTime<Utc>) -> Value {
        let mut v = json!({
            "email": self.email,
            "password": self.password,
            "credits": self.credits,
            "consumption_rate": self.consumption_rate,
            "is_free_user": self.is_free_user,
            "two_factor": self.totp_secret.is_some(),
        });
        if let (Some(secret), Some(obj)) = (&self.totp_secret, v.as_object_mut()) {
            obj.insert("totp_secret".into(), json!(totp::base32(secret)));
            obj.insert(
                "totp_code".into(),
                json!(totp::code_at(secret, now.timestamp())),
            );
        }
        v
    }
}

/// The seeded accounts: one paid with credits, one with none, one with 2FA, one free user, and
/// one paid account about to run out (3 credits = 2 minutes).
pub fn seed() -> Vec<Account> {
    let mk = |n: u8, email: &str, password: &str, credits: f64, rate: f64, free: bool| Account {
        id: 1000 + u64::from(n),
        uuid: uuid::Uuid::new_v4().to_string(),
        email: email.into(),
        password: password.into(),
        credits,
        consumption_rate: rate,
        is_free_user: free,
        totp_secret: None,
        first_name: email.split('@').next().unwrap_or_default().into(),
        tunnel_ip: Ipv4Addr::new(10, 66, 66, 1 + n),
        peer_key: None,
        max_devices: if free { 1 } else { 7 },
    };
    let mut twofa = mk(3, "2fa@orbnet.lab", "orbnet-2fa-pass", 5000.0, 1.5, false);
    twofa.totp_secret = Some(b"ferry-lab-totp-secret-1".to_vec());
    vec![
        mk(1, "demo@orbnet.lab", "orbnet-demo-pass", 5000.0, 1.5, false),
        mk(2, "empty@orbnet.lab", "orbnet-empty-pass", 0.0, 1.5, false),
        twofa,
        mk(4, "free@orbnet.lab", "orbnet-free-pass", 60.0, 1.0, true),
        mk(5, "low@orbnet.lab", "orbnet-low-pass", 3.0, 1.5, false),
    ]
}
