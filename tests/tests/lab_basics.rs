//! The lab as a separate process: startup line, control API, faults, request log.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use ferry_tests::lab::LabProcess;
use serde_json::json;
use std::time::Instant;

#[tokio::test]
async fn prints_one_json_line_of_base_urls_and_starts_fast() {
    let t0 = Instant::now();
    let lab = LabProcess::start().unwrap();
    let started = t0.elapsed();
    let v: serde_json::Value = serde_json::from_str(&lab.line).unwrap();
    let obj = v.as_object().unwrap();
    assert_eq!(obj.len(), 4, "exactly the four base URLs: {}", lab.line);
    assert!(lab.urls.orbnet.ends_with("/orbnet/api/v1"));
    assert!(lab.urls.tunnelbyte.ends_with("/tunnelbyte/v1"));
    assert!(lab.urls.neosc.ends_with("/neosc/api"));
    assert!(lab.urls.control.ends_with("/_lab"));
    assert!(lab.urls.orbnet.starts_with("http://127.0.0.1:"));
    let health = lab.control_get("/health").await.unwrap();
    assert_eq!(health["ok"], true);
    // Startup is reported for information: the under-a-second figure is measured by the bench.
    eprintln!("lab started in {started:?}");
}

#[tokio::test]
async fn clock_advances_on_request() {
    let lab = LabProcess::start().unwrap();
    let before = lab.control_get("/clock").await.unwrap()["now_ms"]
        .as_i64()
        .unwrap();
    let after = lab.advance(3600.0).await.unwrap()["now_ms"]
        .as_i64()
        .unwrap();
    assert!(after - before >= 3_600_000, "{before} -> {after}");
    let bad = lab
        .control_post("/clock/advance", json!({"seconds": -1}))
        .await;
    assert!(bad.is_err());
}

#[tokio::test]
async fn faults_answer_then_disarm_and_requests_are_logged_without_tokens() {
    let lab = LabProcess::start().unwrap();
    let url = format!("{}/vpn/session/active", lab.urls.orbnet);
    lab.fault(
        json!({"method": "GET", "path": "/orbnet/api/v1/vpn/session/active",
        "status": 503, "body": "not json{", "times": 1, "headers": {"Retry-After": "3"}}),
    )
    .await
    .unwrap();
    let r = lab
        .http()
        .get(&url)
        .bearer_auth("secret-token-123")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "3");
    assert_eq!(r.text().await.unwrap(), "not json{");
    let r = lab
        .http()
        .get(&url)
        .bearer_auth("secret-token-123")
        .send()
        .await
        .unwrap();
    assert_ne!(r.status(), 503, "the fault applies only once");

    let reqs = lab.requests().await;
    let hits: Vec<_> = reqs
        .iter()
        .filter(|r| r["path"] == "/orbnet/api/v1/vpn/session/active")
        .collect();
    assert_eq!(hits.len(), 2);
    let dump = serde_json::to_string(&reqs).unwrap();
    assert!(!dump.contains("secret-token-123"), "tokens never recorded");
    assert_eq!(hits[0]["headers"]["authorization"], "<redacted>");
    lab.control_delete("/requests").await.unwrap();
    assert!(lab.requests().await.is_empty());
}

#[tokio::test]
async fn a_dropped_connection_gets_no_answer_at_all() {
    let lab = LabProcess::start().unwrap();
    lab.fault(json!({"path": "/neosc/api/workspaces", "drop": true}))
        .await
        .unwrap();
    let err = lab
        .http()
        .get(format!("{}/workspaces", lab.urls.neosc))
        .send()
        .await
        .expect_err("the connection is closed without a response");
    assert!(!err.is_status());
}

#[tokio::test]
async fn huge_bodies_are_expressible() {
    let lab = LabProcess::start().unwrap();
    lab.fault(
        json!({"path": "/tunnelbyte/v1/regions", "status": 200, "body": "x", "repeat": 5_000_000}),
    )
    .await
    .unwrap();
    let r = lab
        .http()
        .get(format!("{}/regions", lab.urls.tunnelbyte))
        .send()
        .await
        .unwrap();
    assert_eq!(r.bytes().await.unwrap().len(), 5_000_000);
}
