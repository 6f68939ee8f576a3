//! Service clients against bad answers injected by the lab (`POST /_lab/faults`): malformed
//! JSON, oversized bodies, 5xx with retries, Retry-After, dropped connections, slow answers,
//! and calls that must never be repeated automatically.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use ferry_core::http::{HttpSettings, RetryPolicy};
use ferry_core::secrets::Secret;
use ferry_core::services::orbnet::{LoginRequest, OrbnetClient, Protocol, StartSession};
use ferry_core::services::tunnelbyte::TunnelbyteClient;
use ferry_core::services::{ApiError, Delivery};
use ferry_tests::lab::LabProcess;
use serde_json::json;

fn fast() -> HttpSettings {
    HttpSettings {
        request_timeout: Duration::from_secs(3),
        retry: RetryPolicy {
            max_attempts: 4,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
            max_retry_after: Duration::from_secs(5),
        },
        ..HttpSettings::default()
    }
}

fn path(base: &str, tail: &str) -> String {
    let url = reqwest::Url::parse(base).unwrap();
    format!("{}{tail}", url.path())
}

async fn count(lab: &LabProcess, method: &str, p: &str) -> usize {
    lab.requests()
        .await
        .iter()
        .filter(|r| r["method"] == method && r["path"] == p)
        .count()
}

/// A signed-in OrbNET client (login is not retried, so faults armed afterwards hit only the
/// call under test).
async fn orb(lab: &LabProcess, settings: HttpSettings) -> OrbnetClient {
    let c = OrbnetClient::new(&lab.urls.orbnet, settings).unwrap();
    c.login(&LoginRequest {
        email: "demo@orbnet.lab".into(),
        password: Secret::new("orbnet-demo-pass"),
        totp_code: None,
        device_id: None,
    })
    .await
    .unwrap();
    c
}

#[tokio::test]
async fn get_retries_5xx_then_succeeds() {
    let lab = LabProcess::start().unwrap();
    let p = path(&lab.urls.orbnet, "/vpn/servers");
    lab.fault(json!({"method": "GET", "path": p, "status": 503, "body": "{\"error\":\"busy\"}", "times": 2}))
        .await
        .unwrap();
    let servers = orb(&lab, fast()).await.servers().await.unwrap();
    assert!(!servers.is_empty());
    assert_eq!(
        count(&lab, "GET", &p).await,
        3,
        "two 503s then the real answer"
    );
}

#[tokio::test]
async fn get_gives_up_after_the_retry_budget() {
    let lab = LabProcess::start().unwrap();
    let p = path(&lab.urls.orbnet, "/vpn/servers");
    lab.fault(json!({"path": p, "status": 500, "body": "<html>oops</html>", "content_type": "text/html", "times": 50}))
        .await
        .unwrap();
    let e = orb(&lab, fast()).await.servers().await.unwrap_err();
    assert_eq!(e.status(), Some(500), "{e:?}");
    assert!(e.is_transient());
    assert_eq!(
        count(&lab, "GET", &p).await,
        4,
        "exactly max_attempts requests"
    );
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let lab = LabProcess::start().unwrap();
    let p = path(&lab.urls.orbnet, "/vpn/servers");
    lab.fault(json!({"path": p, "status": 429, "body": "{\"error\":\"rate-limited\"}", "headers": {"Retry-After": "1"}}))
        .await
        .unwrap();
    let t0 = Instant::now();
    orb(&lab, fast()).await.servers().await.unwrap();
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(950),
        "retried after only {waited:?}"
    );
    assert!(waited < Duration::from_secs(4), "{waited:?}");

    // A Retry-After longer than the policy allows ends with a typed RateLimited error.
    lab.fault(json!({"path": p, "status": 429, "body": "{\"error\":\"rate-limited\"}", "headers": {"Retry-After": "120"}}))
        .await
        .unwrap();
    let t0 = Instant::now();
    let e = orb(&lab, fast()).await.servers().await.unwrap_err();
    assert!(t0.elapsed() < Duration::from_secs(2));
    assert!(matches!(e, ApiError::RateLimited { .. }), "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(120)));
}

#[tokio::test]
async fn malformed_json_is_a_typed_error() {
    let lab = LabProcess::start().unwrap();
    let p = path(&lab.urls.orbnet, "/vpn/servers");
    for body in [
        "{\"success\":true,\"data\":{",
        "not json at all",
        "{\"success\":true,\"data\":{\"servers\":[{\"id\":\"x\"}]}}",
        "{\"success\":true}",
    ] {
        lab.fault(json!({"path": p, "status": 200, "body": body}))
            .await
            .unwrap();
        let e = orb(&lab, fast()).await.servers().await.unwrap_err();
        assert!(
            matches!(e, ApiError::Malformed { status: 200, .. }),
            "{body}: {e:?}"
        );
        assert!(!e.to_string().contains(body), "the body is not echoed: {e}");
    }
}

#[tokio::test]
async fn oversized_body_is_cut_off() {
    let lab = LabProcess::start().unwrap();
    let p = path(&lab.urls.orbnet, "/vpn/servers");
    // 4 MiB of JSON-looking text against a 1 MiB cap.
    lab.fault(json!({"path": p, "status": 200, "body": "{\"success\":true,\"data\":[]}            ", "repeat": 131072}))
        .await
        .unwrap();
    let t0 = Instant::now();
    let e = orb(&lab, fast()).await.servers().await.unwrap_err();
    assert!(
        matches!(
            e,
            ApiError::BodyTooLarge {
                limit: 1_048_576,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(t0.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn dropped_and_slow_answers_are_answer_lost_and_posts_are_not_repeated() {
    let lab = LabProcess::start().unwrap();
    let orb_client = orb(&lab, fast()).await;
    let start = StartSession {
        session_id: "0d2b5e8e-5a43-4d2e-9d4b-2f7f7a1c0001".into(),
        server_id: 101,
        protocol: Protocol::Wireguard,
    };

    // A 503 on session/start is reported, not retried (a start is never repeated blindly).
    let p = path(&lab.urls.orbnet, "/vpn/session/start");
    lab.fault(json!({"method": "POST", "path": p, "status": 503, "body": "{\"success\":false,\"error\":{\"code\":\"MAINTENANCE\",\"message\":\"down for maintenance\"}}"}))
        .await
        .unwrap();
    let e = orb_client.start_session(&start).await.unwrap_err();
    assert_eq!(e.status(), Some(503));
    assert_eq!(e.delivery(), Delivery::Answered);
    assert!(e.to_string().contains("down for maintenance"), "{e}");
    assert_eq!(count(&lab, "POST", &p).await, 1);
    assert!(
        !orb_client
            .active_session()
            .await
            .unwrap()
            .has_active_session
    );

    // The lab starts the session, then drops the connection: the answer is lost, the client
    // says so (Unknown delivery) and does not send the start again.
    lab.fault(json!({"method": "POST", "path": p, "drop": true, "after": true}))
        .await
        .unwrap();
    let e = orb_client.start_session(&start).await.unwrap_err();
    assert!(matches!(e, ApiError::AnswerLost { .. }), "{e:?}");
    assert_eq!(e.delivery(), Delivery::Unknown);
    assert_eq!(count(&lab, "POST", &p).await, 2, "a POST is never retried");
    let active = orb_client.active_session().await.unwrap();
    assert!(active.has_active_session, "the server did act");
    assert_eq!(active.session.unwrap().session_id, start.session_id);

    // A server that stays silent past the request timeout: AnswerLost within the timeout.
    let slow = HttpSettings {
        request_timeout: Duration::from_millis(400),
        retry: RetryPolicy::none(),
        ..fast()
    };
    let sp = path(&lab.urls.orbnet, "/vpn/servers");
    lab.fault(json!({"path": sp, "status": 200, "body": "{\"success\":true,\"data\":[]}", "delay_ms": 3000}))
        .await
        .unwrap();
    let t0 = Instant::now();
    let e = orb(&lab, slow).await.servers().await.unwrap_err();
    assert!(matches!(e, ApiError::AnswerLost { .. }), "{e:?}");
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
}

#[tokio::test]
async fn unreachable_server_is_not_sent() {
    // A port nobody listens on (bound then released), on loopback only.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let client = TunnelbyteClient::new(
        &format!("http://127.0.0.1:{port}/tunnelbyte/v1"),
        HttpSettings {
            retry: RetryPolicy::none(),
            ..fast()
        },
    )
    .unwrap()
    .with_token(Some(ferry_core::secrets::Secret::new("tb_x")));
    let key = ferry_core::services::keys::WgKeypair::generate();
    let e = client.create_session("fsn", &key).await.unwrap_err();
    assert!(matches!(e, ApiError::NotSent { .. }), "{e:?}");
    assert_eq!(e.delivery(), Delivery::NotSent);
    let e = TunnelbyteClient::new("not a url", fast()).unwrap_err();
    assert!(matches!(e, ApiError::BadUrl { .. }), "{e:?}");
}
