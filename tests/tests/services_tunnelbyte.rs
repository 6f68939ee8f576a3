//! The tunnelbyte client against the lab process: regions, usage, a session created with our
//! own X25519 key, status, delete, 402 quota and 503 with alternatives.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stderr
)]

use ferry_core::http::HttpSettings;
use ferry_core::secrets::Secret;
use ferry_core::services::keys::WgKeypair;
use ferry_core::services::tunnelbyte::TunnelbyteClient;
use ferry_core::services::ApiError;
use ferry_tests::lab::LabProcess;
use serde_json::json;

async fn token(lab: &LabProcess, tier: &str) -> String {
    let acc = lab.accounts().await;
    acc["tunnelbyte"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["tier"] == tier)
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

async fn client(lab: &LabProcess, tier: &str) -> TunnelbyteClient {
    TunnelbyteClient::new(&lab.urls.tunnelbyte, HttpSettings::default())
        .unwrap()
        .with_token(Some(Secret::new(token(lab, tier).await)))
}

/// True when this lab build serves tunnelbyte (skips with a printed reason otherwise, e.g. while
/// the lab's tunnelbyte routes are still being built).
async fn serves(lab: &LabProcess) -> bool {
    let status = lab
        .http()
        .get(format!("{}/regions", lab.urls.tunnelbyte))
        .send()
        .await
        .map(|r| r.status().as_u16());
    if matches!(status, Ok(404) | Err(_)) {
        eprintln!("SKIP: this lab build does not serve tunnelbyte yet ({status:?})");
        return false;
    }
    true
}

#[tokio::test]
async fn session_with_client_key_status_and_delete() {
    let lab = LabProcess::start().unwrap();
    if !serves(&lab).await {
        return;
    }
    let c = client(&lab, "paid").await;
    let regions = c.regions().await.unwrap();
    assert!(regions.iter().any(|r| r.code == "fsn" && r.node_count >= 1));
    let usage = c.usage().await.unwrap();
    assert_eq!(usage.tier, "paid");
    assert_eq!((usage.bytes_limit, usage.session_seconds_limit), (0, 0));

    let key = WgKeypair::generate();
    let s = c.create_session("fsn", &key).await.unwrap();
    assert!(!s.id.is_empty());
    assert_eq!(s.tier, "paid");
    assert!(s.wg_config.contains("[Peer]"), "a wg-quick config");
    assert!(
        !s.wg_config.contains("PrivateKey"),
        "we sent our public key, so no private key comes back"
    );
    assert!(
        !format!("{s:?}").contains("[Peer]"),
        "config redacted in Debug"
    );
    // Only the public half left the device.
    let sent = lab
        .requests()
        .await
        .into_iter()
        .find(|r| r["method"] == "POST" && r["path"].as_str().unwrap().ends_with("/sessions"))
        .unwrap();
    assert_eq!(sent["body"]["client_public_key"], key.public_base64());
    assert!(!sent.to_string().contains(key.private_base64().expose()));

    lab.advance(60.0).await.unwrap();
    let st = c.session_status(&s.id).await.unwrap();
    assert_eq!(st.id, s.id);
    assert!(!st.is_terminated());
    assert!(st.created_at.is_some());
    assert!(st.cost_millicents().is_some(), "paid tier reports cost");

    assert!(c.delete_session(&s.id).await.unwrap());
    let st = c.session_status(&s.id).await.unwrap();
    assert!(st.is_terminated());

    let e = c.session_status("no-such-session").await.unwrap_err();
    assert_eq!(e.status(), Some(404), "{e:?}");
}

#[tokio::test]
async fn quota_exceeded_at_create_is_typed_with_resets() {
    let lab = LabProcess::start().unwrap();
    if !serves(&lab).await {
        return;
    }
    let tok = token(&lab, "anonymous").await;
    lab.control_post(
        "/tunnelbyte/usage",
        json!({"token": tok, "bytes_used": 1_073_741_824u64, "session_seconds": 0}),
    )
    .await
    .unwrap();
    let c = client(&lab, "anonymous").await;
    let e = c
        .create_session("fsn", &WgKeypair::generate())
        .await
        .unwrap_err();
    let ApiError::QuotaExceeded(q) = &e else {
        panic!("{e:?}")
    };
    assert_eq!(q.tier, "anonymous");
    assert!(q.bytes_used >= q.bytes_limit && q.bytes_limit > 0);
    assert!(q.resets_at.is_some());
    assert!(e.to_string().contains("resets at"), "{e}");
}

#[tokio::test]
async fn offline_region_lists_alternatives_and_bad_token_is_unauthorized() {
    let lab = LabProcess::start().unwrap();
    if !serves(&lab).await {
        return;
    }
    lab.control_post("/regions/offline", json!({"code": "sin"}))
        .await
        .unwrap();
    let c = client(&lab, "free").await;
    let e = c
        .create_session("sin", &WgKeypair::generate())
        .await
        .unwrap_err();
    let ApiError::RegionUnavailable { available, .. } = &e else {
        panic!("{e:?}")
    };
    assert!(available.iter().any(|r| r == "fsn"), "{available:?}");
    assert!(!available.iter().any(|r| r == "sin"));
    assert!(!c.regions().await.unwrap().iter().any(|r| r.code == "sin"));

    let bad = TunnelbyteClient::new(&lab.urls.tunnelbyte, HttpSettings::default())
        .unwrap()
        .with_token(Some(Secret::new("tb_bogus")));
    let e = bad.usage().await.unwrap_err();
    assert!(matches!(e, ApiError::Unauthorized { .. }), "{e:?}");
    let none = TunnelbyteClient::new(&lab.urls.tunnelbyte, HttpSettings::default()).unwrap();
    assert!(matches!(
        none.usage().await.unwrap_err(),
        ApiError::NoToken { .. }
    ));
}
