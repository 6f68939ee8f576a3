//! A bearer token bound to the origin that issued it, and its stored form (tunnelbyte, NeoSC).
//!
//! Stored form: `{"origin":"https://api.tunnelbyte.dev","token":"tb_..."}` (compact JSON, one
//! line). A bare token with no JSON around it (the format before origins were recorded, and
//! every `FERRY_*_TOKEN` variable) is unbound: it is accepted for whatever base URL it is used
//! with. A bound token is only ever sent to its own origin.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::origin::Origin;
use super::{ApiError, ServiceKind};
use crate::secrets::Secret;

/// A bearer token and, when known, the origin that issued it.
#[derive(Clone, PartialEq, Eq)]
pub struct StoredToken {
    origin: Option<Origin>,
    token: Secret,
}

impl fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("origin", &self.origin)
            .field("token", &"[redacted]")
            .finish()
    }
}

#[derive(Serialize, Deserialize)]
struct Envelope {
    #[serde(default)]
    origin: Option<Origin>,
    token: Secret,
}

impl StoredToken {
    /// A token issued by `origin`.
    pub fn new(origin: Origin, token: Secret) -> Self {
        Self {
            origin: Some(origin),
            token,
        }
    }

    /// A token whose issuer is not known (an env variable, a value stored before origins were
    /// recorded): accepted for any base URL.
    pub fn unbound(token: Secret) -> Self {
        Self {
            origin: None,
            token,
        }
    }

    /// Reads a stored value: the JSON envelope, or a bare (unbound) token.
    pub fn parse(stored: &Secret) -> Self {
        let raw = stored.expose().trim();
        if raw.starts_with('{') {
            if let Ok(e) = serde_json::from_str::<Envelope>(raw) {
                return Self {
                    origin: e.origin,
                    token: e.token,
                };
            }
        }
        Self::unbound(Secret::new(raw))
    }

    /// The single-line value for the secret store: the envelope when bound, else the bare
    /// token (today's format).
    pub fn to_secret(&self) -> Secret {
        match &self.origin {
            None => self.token.clone(),
            Some(origin) => {
                let e = Envelope {
                    origin: Some(origin.clone()),
                    token: self.token.clone(),
                };
                // A struct of two strings always serialises; the fallback is never taken.
                Secret::new(serde_json::to_string(&e).unwrap_or_default())
            }
        }
    }

    /// The same token bound to `origin` if it was unbound; a bound one keeps its issuer.
    pub fn or_bound_to(self, origin: &Origin) -> Self {
        match self.origin {
            Some(_) => self,
            None => Self::new(origin.clone(), self.token),
        }
    }

    /// The token itself.
    pub fn token(&self) -> &Secret {
        &self.token
    }

    /// The issuing origin, when recorded.
    pub fn origin(&self) -> Option<&Origin> {
        self.origin.as_ref()
    }

    /// The token, if it may be sent to `requested`: unbound, or issued by that very origin.
    pub fn for_origin(
        &self,
        service: ServiceKind,
        requested: &Origin,
    ) -> Result<&Secret, ApiError> {
        check_issuer(service, self.origin.as_ref(), requested)?;
        Ok(&self.token)
    }
}

/// `Ok` when a credential issued by `issued_by` (`None`: unknown) may go to `requested`.
pub(crate) fn check_issuer(
    service: ServiceKind,
    issued_by: Option<&Origin>,
    requested: &Origin,
) -> Result<(), ApiError> {
    match issued_by {
        Some(i) if i != requested => Err(ApiError::TokenOriginMismatch {
            service,
            issued_by: i.clone(),
            requested: requested.clone(),
        }),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn origin(s: &str) -> Origin {
        s.parse().unwrap()
    }

    #[test]
    fn stored_form_round_trips_and_bare_tokens_stay_bare() {
        let t = StoredToken::new(origin("https://api.tunnelbyte.dev/v1"), Secret::new("tb_1"));
        let s = t.to_secret();
        assert_eq!(
            s.expose(),
            r#"{"origin":"https://api.tunnelbyte.dev","token":"tb_1"}"#
        );
        assert_eq!(StoredToken::parse(&s), t);
        let bare = StoredToken::parse(&Secret::new(" tb_legacy \n"));
        assert_eq!(bare, StoredToken::unbound(Secret::new("tb_legacy")));
        assert_eq!(bare.to_secret().expose(), "tb_legacy");
        let no_origin = StoredToken::parse(&Secret::new(r#"{"token":"x"}"#));
        assert_eq!(no_origin.origin(), None);
        assert_eq!(no_origin.token().expose(), "x");
        assert!(!format!("{t:?}").contains("tb_1"));
    }

    #[test]
    fn bound_tokens_go_only_to_their_origin() {
        let a = origin("http://127.0.0.1:1000");
        let b = origin("http://127.0.0.1:2000");
        let t = StoredToken::new(a.clone(), Secret::new("tok"));
        assert_eq!(
            t.for_origin(ServiceKind::Neosc, &a).unwrap().expose(),
            "tok"
        );
        let e = t.for_origin(ServiceKind::Neosc, &b).unwrap_err();
        assert!(
            matches!(&e, ApiError::TokenOriginMismatch { issued_by, requested, .. }
                if *issued_by == a && *requested == b),
            "{e:?}"
        );
        let msg = e.to_string();
        assert!(
            msg.contains("sign in again for http://127.0.0.1:2000"),
            "{msg}"
        );
        let unbound = StoredToken::unbound(Secret::new("env"));
        assert!(unbound.for_origin(ServiceKind::Neosc, &b).is_ok());
        assert_eq!(unbound.clone().or_bound_to(&b).origin(), Some(&b));
        assert_eq!(t.or_bound_to(&b).origin(), Some(&a), "never rebinds");
    }

    #[test]
    fn a_damaged_origin_matches_nothing() {
        let t = StoredToken::parse(&Secret::new(r#"{"origin":7,"token":"x"}"#));
        let any = origin("https://api.tunnelbyte.dev");
        assert!(t.for_origin(ServiceKind::Tunnelbyte, &any).is_err());
    }
}
