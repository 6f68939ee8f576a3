//! The user's settings: checked before they are stored.

use super::contract::Settings;
use super::error::AppError;
use crate::services::{origin, ServiceKind};

/// Checks one base URL as the clients will (https anywhere, plain http only to loopback).
pub fn check_base_url(service: ServiceKind, url: &str) -> Result<(), AppError> {
    let name = service.display_name();
    let parsed = reqwest::Url::parse(url.trim())
        .ok()
        .filter(|_| url.len() <= 2048)
        .ok_or_else(|| AppError::invalid(format!("The {name} address is not a valid URL.")))?;
    origin::check_base_url(service, &parsed)
        .map(|_| ())
        .map_err(|_| {
            AppError::invalid(format!(
                "The {name} address must start with https:// (plain http:// only to this machine)."
            ))
        })
}

/// Checks settings before they are stored.
pub fn validate_settings(s: &Settings) -> Result<(), AppError> {
    check_base_url(ServiceKind::Orbnet, &s.base_urls.orbnet)?;
    check_base_url(ServiceKind::Tunnelbyte, &s.base_urls.tunnelbyte)?;
    if !s.base_urls.neosc.trim().is_empty() {
        check_base_url(ServiceKind::Neosc, &s.base_urls.neosc)?;
    }
    let m = &s.notify.credit_warn_minutes;
    if m.len() > 8
        || m.iter()
            .any(|t| !t.is_finite() || *t <= 0.0 || *t > 24.0 * 60.0)
    {
        return Err(AppError::invalid(
            "Credit warnings must be up to 8 positive numbers of minutes (at most a day).",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_validation() {
        let ok = Settings::default();
        assert!(validate_settings(&ok).is_ok(), "defaults are valid");
        assert!(ok.base_urls.orbnet.starts_with("https://api.orbai.world"));
        assert!(ok.base_urls.neosc.is_empty(), "NeoSC is asked at sign-in");
        let mut bad = Settings::default();
        bad.base_urls.neosc = "ftp://x".into();
        assert_eq!(validate_settings(&bad).unwrap_err().code(), "invalid_input");
        let mut plain = Settings::default();
        plain.base_urls.orbnet = "http://api.orbai.world/api/v1".into();
        assert!(
            validate_settings(&plain).is_err(),
            "plain http off loopback"
        );
        plain.base_urls.orbnet = "http://127.0.0.1:8080/orbnet/api/v1".into();
        assert!(validate_settings(&plain).is_ok(), "plain http to the lab");
        let mut bad = Settings::default();
        bad.notify.credit_warn_minutes = vec![f64::NAN];
        assert!(validate_settings(&bad).is_err());
    }
}
