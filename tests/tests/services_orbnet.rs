//! The OrbNET client against the lab process: login, servers, authorize, WireGuard config, the
//! metered session, error envelopes, and token refresh on 401 with a rotating refresh token.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::{Arc, Mutex};

use ferry_core::http::HttpSettings;
use ferry_core::secrets::Secret;
use ferry_core::services::orbnet::{
    codes, DisconnectReason, LoginOutcome, LoginRequest, OrbnetClient, OrbnetTokens, Protocol,
    StartSession, TokenSink,
};
use ferry_core::services::{ApiError, Delivery};
use ferry_tests::lab::LabProcess;
use futures::future::BoxFuture;

#[derive(Default)]
struct Recorder(Mutex<Vec<OrbnetTokens>>);

impl TokenSink for Recorder {
    fn tokens_rotated(&self, tokens: OrbnetTokens) -> BoxFuture<'static, ()> {
        self.0.lock().unwrap().push(tokens);
        Box::pin(async {})
    }
}

async fn login(lab: &LabProcess, email: &str, password: &str) -> (OrbnetClient, Arc<Recorder>) {
    let sink = Arc::new(Recorder::default());
    let client = OrbnetClient::new(&lab.urls.orbnet, HttpSettings::default())
        .unwrap()
        .with_token_sink(sink.clone());
    let out = client
        .login(&LoginRequest {
            email: email.into(),
            password: Secret::new(password),
            totp_code: None,
            device_id: Some("2b0c7c1e-3f7a-4c43-9d0a-6f1f7e0f9a11".into()),
        })
        .await
        .unwrap();
    assert!(matches!(out, LoginOutcome::SignedIn { .. }), "{out:?}");
    (client, sink)
}

#[tokio::test]
async fn full_session_and_error_envelopes() {
    let lab = LabProcess::start().unwrap();
    let (client, sink) = login(&lab, "demo@orbnet.lab", "orbnet-demo-pass").await;
    assert_eq!(
        sink.0.lock().unwrap().len(),
        1,
        "login tokens go to the sink"
    );

    let servers = client.servers().await.unwrap();
    assert!(!servers.is_empty());
    let server = servers[0].id;
    let auth = client
        .authorize(Some(server), Protocol::Wireguard)
        .await
        .unwrap();
    assert!(auth.authorized);
    assert!(auth.credits.available > 0.0);
    assert!(auth.credits.consumption_rate > 0.0);
    let wg = client.wireguard_config(server).await.unwrap();
    assert_eq!(wg.interface.private_key.expose().len(), 44);
    assert!(wg.peer.endpoint.contains(':'));
    assert!(!format!("{wg:?}").contains(wg.interface.private_key.expose()));

    let sid = uuid::Uuid::new_v4().to_string();
    let start = StartSession {
        session_id: sid.clone(),
        server_id: server,
        protocol: Protocol::Wireguard,
    };
    let started = client.start_session(&start).await.unwrap();
    assert_eq!(started.session_id, sid);
    assert!(started.next_deduction_in_seconds.unwrap() >= 1);

    // A second start is refused with the documented code and a readable message.
    let other = StartSession {
        session_id: uuid::Uuid::new_v4().to_string(),
        ..start.clone()
    };
    let e = client.start_session(&other).await.unwrap_err();
    assert!(e.has_code(codes::SESSION_ALREADY_ACTIVE), "{e:?}");
    assert_eq!(e.status(), Some(409));
    assert_eq!(e.delivery(), Delivery::Answered);
    assert!(e.to_string().to_lowercase().contains("active"), "{e}");

    let active = client.active_session().await.unwrap();
    assert!(active.has_active_session);
    assert_eq!(active.session.unwrap().session_id, sid);

    lab.advance(60.0).await.unwrap();
    let hb = client.heartbeat(&sid, 60).await.unwrap();
    assert!(
        (hb.credits_deducted - started.consumption_rate).abs() < 1e-9,
        "{hb:?}"
    );
    let e = client.heartbeat(&sid, 301).await.unwrap_err();
    assert!(e.has_code(codes::VALIDATION_ERROR), "{e:?}");

    let ended = client
        .end_session(&sid, 30, DisconnectReason::UserInitiated)
        .await
        .unwrap();
    assert_eq!(ended.disconnect_reason, "user_initiated");
    assert!(ended.total_credits_used > 0.0);
    let e = client
        .end_session(&sid, 1, DisconnectReason::UserInitiated)
        .await
        .unwrap_err();
    assert!(e.has_code(codes::SESSION_NOT_FOUND), "{e:?}");
    assert!(!client.active_session().await.unwrap().has_active_session);
}

#[tokio::test]
async fn no_credits_and_bad_password_are_typed() {
    let lab = LabProcess::start().unwrap();
    let client = OrbnetClient::new(&lab.urls.orbnet, HttpSettings::default()).unwrap();
    let e = client
        .login(&LoginRequest {
            email: "demo@orbnet.lab".into(),
            password: Secret::new("wrong"),
            totp_code: None,
            device_id: None,
        })
        .await
        .unwrap_err();
    assert!(matches!(e, ApiError::Unauthorized { .. }), "{e:?}");
    let two = client
        .login(&LoginRequest {
            email: "2fa@orbnet.lab".into(),
            password: Secret::new("orbnet-2fa-pass"),
            totp_code: None,
            device_id: None,
        })
        .await
        .unwrap();
    assert!(matches!(two, LoginOutcome::TwoFactorRequired), "{two:?}");

    let (empty, _) = login(&lab, "empty@orbnet.lab", "orbnet-empty-pass").await;
    let e = empty
        .authorize(None, Protocol::Wireguard)
        .await
        .unwrap_err();
    assert!(e.has_code(codes::INSUFFICIENT_CREDITS), "{e:?}");
    assert_eq!(e.status(), Some(403));
}

#[tokio::test]
async fn expired_access_token_is_refreshed_once_and_rotated() {
    let lab = LabProcess::start().unwrap();
    let (client, sink) = login(&lab, "demo@orbnet.lab", "orbnet-demo-pass").await;
    let first = client.tokens().await.unwrap();
    // Past the lab's access-token lifetime (15 min).
    lab.advance(16.0 * 60.0).await.unwrap();
    lab.control_delete("/requests").await.unwrap();

    let servers = client.servers().await.unwrap();
    assert!(!servers.is_empty());
    let now = client.tokens().await.unwrap();
    assert_ne!(now.access_token, first.access_token);
    assert_ne!(
        now.refresh_token, first.refresh_token,
        "refresh token rotates"
    );
    let rotated = sink.0.lock().unwrap().clone();
    assert_eq!(rotated.len(), 2, "login + one refresh reached the sink");
    assert_eq!(rotated[1], now);

    let paths: Vec<String> = lab
        .requests()
        .await
        .iter()
        .map(|r| r["path"].as_str().unwrap_or("").to_string())
        .collect();
    let refreshes = paths
        .iter()
        .filter(|p| p.ends_with("/auth/refresh"))
        .count();
    let lists = paths.iter().filter(|p| p.ends_with("/vpn/servers")).count();
    assert_eq!((refreshes, lists), (1, 2), "{paths:?}");

    // The spent refresh token no longer works: a client still holding it must give up
    // with Unauthorized after one refresh attempt, not loop.
    lab.advance(16.0 * 60.0).await.unwrap();
    let stale = OrbnetClient::new(&lab.urls.orbnet, HttpSettings::default())
        .unwrap()
        .with_tokens(Some(first));
    let e = stale.servers().await.unwrap_err();
    assert!(matches!(e, ApiError::Unauthorized { .. }), "{e:?}");

    // Access-only tokens (FERRY_ORBNET_TOKEN) cannot refresh: a clear Unauthorized.
    let access_only = OrbnetClient::new(&lab.urls.orbnet, HttpSettings::default())
        .unwrap()
        .with_tokens(Some(OrbnetTokens::access_only(now.access_token.clone())));
    let e = access_only.servers().await.unwrap_err();
    assert!(matches!(e, ApiError::Unauthorized { .. }), "{e:?}");
}
