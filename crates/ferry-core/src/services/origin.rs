//! The origin (scheme, host, port) of a vendor base URL, and the one check every base URL passes
//! before a client is built: https anywhere, plain http only to loopback, nothing else.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

use reqwest::Url;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::{ApiError, ServiceKind};

/// The scheme, host and port of a URL in normalised form (`https://api.orbai.world`,
/// `http://127.0.0.1:8080`): lowercase, IDNA host, default port left out. Tokens remember the
/// origin that issued them and are only sent back to the same one.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Origin(String);

impl Origin {
    /// The origin of a URL (`null` for URLs without a host, which no client accepts).
    pub fn of(url: &Url) -> Self {
        Self(url.origin().ascii_serialization())
    }

    /// The normalised text, e.g. `https://api.tunnelbyte.dev`.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Reads an origin from a stored value. A value that is not an http(s) URL is kept verbatim
    /// (trimmed): it then equals no real origin, so a token bound to it is never sent anywhere.
    fn from_stored(text: &str) -> Self {
        text.parse()
            .unwrap_or_else(|_| Self(text.trim().to_string()))
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A text that is not an http(s) URL with a host.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{0:?} is not an http(s) address")]
pub struct NotAnOrigin(pub String);

impl FromStr for Origin {
    type Err = NotAnOrigin;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match Url::parse(s.trim()) {
            Ok(url) if matches!(url.scheme(), "http" | "https") && url.host().is_some() => {
                Ok(Self::of(&url))
            }
            _ => Err(NotAnOrigin(s.to_string())),
        }
    }
}

impl Serialize for Origin {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Origin {
    /// Lenient on purpose: any JSON value is accepted, and one that is not an http(s) URL
    /// becomes an origin that matches nothing (see [`Origin::from_stored`]), so a damaged stored
    /// value can never make its token fall back to "send anywhere".
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v = serde_json::Value::deserialize(d)?;
        Ok(match v {
            serde_json::Value::String(s) => Self::from_stored(&s),
            other => Self(other.to_string()),
        })
    }
}

/// Checks a base URL before any request is built from it and returns its origin. `https` is
/// allowed to any host; plain `http` only to loopback (`127.0.0.0/8`, `::1`, `localhost`), since
/// every client sends credentials (passwords, bearer and refresh tokens); other schemes, and URLs
/// without a host, are refused.
pub fn check_base_url(service: ServiceKind, url: &Url) -> Result<Origin, ApiError> {
    let host = url.host_str().filter(|h| !h.is_empty());
    let Some(host) = host.filter(|_| !url.cannot_be_a_base()) else {
        return Err(ApiError::BadUrl {
            service,
            reason: format!("{:?} has no host", url.as_str()),
        });
    };
    match url.scheme() {
        "https" => Ok(Origin::of(url)),
        "http" if is_loopback_host(host) => Ok(Origin::of(url)),
        "http" => Err(ApiError::InsecureUrl {
            service,
            url: Origin::of(url).to_string(),
            host: host.to_string(),
        }),
        _ => Err(ApiError::BadUrl {
            service,
            reason: format!("{:?} is not an http(s) URL", url.as_str()),
        }),
    }
}

/// True for `localhost`, `127.0.0.0/8`, `::1` and IPv4-mapped loopback, as `Url::host_str`
/// writes them (IPv6 in brackets, IPv4 already in dotted form).
pub fn is_loopback_host(host: &str) -> bool {
    if host.eq_ignore_ascii_case("localhost") {
        return true;
    }
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    match bare.parse::<IpAddr>() {
        Ok(IpAddr::V4(a)) => a.is_loopback(),
        Ok(IpAddr::V6(a)) => a.is_loopback() || a.to_ipv4_mapped().is_some_and(|m| m.is_loopback()),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(url: &str) -> Result<Origin, ApiError> {
        check_base_url(ServiceKind::Orbnet, &Url::parse(url).unwrap())
    }

    #[test]
    fn https_anywhere_and_http_only_to_loopback() {
        for ok in [
            "https://api.orbai.world/api/v1",
            "https://192.0.2.1/x",
            "http://127.0.0.1:8080/orbnet/api/v1",
            "http://127.9.8.7/",
            "http://localhost:8000/api",
            "http://LOCALHOST/api",
            "http://[::1]:9000/v1",
            "http://[::ffff:127.0.0.1]/v1",
            "http://2130706433/",
        ] {
            assert!(check(ok).is_ok(), "{ok}: {:?}", check(ok));
        }
        for bad in [
            "http://192.0.2.1/api",
            "http://api.orbai.world/api/v1",
            "http://10.0.0.1:8080/",
            "http://[2001:db8::1]/",
            "http://localhost.evil.example/",
            "http://127.0.0.1.nip.io/",
            "http://0.0.0.0/",
        ] {
            match check(bad) {
                Err(ApiError::InsecureUrl { host, .. }) => {
                    assert!(bad.contains(host.as_str()), "{bad}: {host}")
                }
                other => panic!("{bad}: {other:?}"),
            }
        }
        for other in [
            "ftp://127.0.0.1/",
            "file:///etc/passwd",
            "data:text/plain,x",
        ] {
            assert!(
                matches!(check(other), Err(ApiError::BadUrl { .. })),
                "{other}"
            );
        }
    }

    #[test]
    fn insecure_message_names_the_host_and_the_fix() {
        let e = check("http://192.0.2.1/api/v1").unwrap_err();
        assert_eq!(
            e.to_string(),
            "refusing to send credentials over plain http to 192.0.2.1; use https \
             (plain http is allowed only to loopback)"
        );
        assert_eq!(e.delivery(), crate::services::Delivery::NotSent);
    }

    #[test]
    fn origins_are_normalised() {
        let o = |s: &str| s.parse::<Origin>().unwrap().to_string();
        assert_eq!(
            o("HTTPS://API.Orbai.World:443/api/v1"),
            "https://api.orbai.world"
        );
        assert_eq!(o("http://127.0.0.1:80/x"), "http://127.0.0.1");
        assert_eq!(o("http://127.0.0.1:8080/x?y#z"), "http://127.0.0.1:8080");
        assert_eq!(o("http://[::1]:9/"), "http://[::1]:9");
        assert_ne!(o("http://127.0.0.1:1/"), o("http://127.0.0.1:2/"));
        assert_ne!(o("http://localhost/"), o("https://localhost/"));
        assert!("ftp://x/".parse::<Origin>().is_err());
    }

    #[test]
    fn stored_origins_round_trip_and_damaged_ones_match_nothing() {
        let o: Origin = "https://api.tunnelbyte.dev/v1".parse().unwrap();
        let json = serde_json::to_string(&o).unwrap();
        assert_eq!(json, r#""https://api.tunnelbyte.dev""#);
        assert_eq!(serde_json::from_str::<Origin>(&json).unwrap(), o);
        let odd: Origin = serde_json::from_str("42").unwrap();
        assert_eq!(odd.as_str(), "42");
        let junk: Origin = serde_json::from_str(r#""not a url""#).unwrap();
        assert_eq!(junk.as_str(), "not a url");
    }
}
