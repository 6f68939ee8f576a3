//! `ferry usage --by day|region` over a seeded history: local-day totals, per-region rates, the
//! cheapest region, this month's projection, as tables and JSON (no network needed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use chrono::{Duration, Utc};
use ferry_core::services::ServiceKind;
use ferry_tests::history::{seed, Seed};
use ferry_tests::lab::ferry_bin;
use serde_json::Value;

fn usage(data: &std::path::Path, args: &[&str]) -> (String, bool) {
    let out = std::process::Command::new(ferry_bin())
        .arg("usage")
        .args(args)
        .env("FERRY_DATA_DIR", data)
        .env("FERRY_SECRETS", "memory")
        .env("TZ", "UTC")
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        out.status.success(),
    )
}

#[tokio::test]
async fn usage_by_day_and_region_from_the_history() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ferry");
    let (text, ok) = usage(&data, &["--by", "day"]);
    assert!(ok);
    assert!(text.contains("No sessions"), "{text}");

    // Two days ago and today (UTC, as TZ says), across both metered services.
    let today = Utc::now() - Duration::minutes(30);
    let before = today - Duration::days(2);
    let s = |service, location, started_at, secs, credits, millicents, bytes| Seed {
        service,
        location,
        started_at,
        secs,
        credits,
        millicents,
        bytes,
    };
    seed(
        &data,
        &[
            s(
                ServiceKind::Orbnet,
                "New York",
                before,
                600,
                Some(15.0),
                None,
                0,
            ),
            s(
                ServiceKind::Orbnet,
                "Frankfurt",
                today,
                600,
                Some(10.0),
                None,
                0,
            ),
            s(
                ServiceKind::Tunnelbyte,
                "fsn",
                today,
                1200,
                None,
                Some(20_000),
                1 << 30,
            ),
            s(
                ServiceKind::Tunnelbyte,
                "hel",
                before,
                1200,
                None,
                Some(30_000),
                1 << 30,
            ),
        ],
    )
    .await;

    let (out, ok) = usage(&data, &["--by", "day", "--json"]);
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2, "{v}");
    assert_eq!(rows[0]["key"], before.format("%Y-%m-%d").to_string());
    assert_eq!(rows[0]["credits"], 15.0);
    assert_eq!(rows[0]["cost_millicents"], 30_000);
    assert_eq!(rows[1]["sessions"], 2);
    assert_eq!(rows[1]["credits"], 10.0);

    let (out, ok) = usage(&data, &["--by", "region", "--json"]);
    assert!(ok, "{out}");
    let v: Value = serde_json::from_str(&out).unwrap();
    let rows = v["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "{v}");
    let row = |k: &str| rows.iter().find(|r| r["key"] == k).unwrap().clone();
    assert_eq!(row("orbnet:New York")["credits_per_minute"], 1.5);
    assert_eq!(row("orbnet:Frankfurt")["credits_per_minute"], 1.0);
    let cheapest: Vec<&str> = v["cheapest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap())
        .collect();
    assert_eq!(cheapest, ["orbnet:Frankfurt", "tunnelbyte:fsn"]);
    let month = v["month"].as_array().unwrap();
    assert!(!month.is_empty(), "{v}");
    assert!(
        month[0]["projected_credits"].as_f64().unwrap()
            >= month[0]["spent_credits"].as_f64().unwrap(),
        "{v}"
    );

    let (text, ok) = usage(&data, &["--by", "region"]);
    assert!(ok);
    let fra = text.lines().find(|l| l.contains("Frankfurt")).unwrap();
    assert!(
        fra.contains("1.00 credits/min") && fra.contains("(cheapest)"),
        "{text}"
    );
    let fsn = text.lines().find(|l| l.contains("fsn")).unwrap();
    assert!(fsn.contains("/GiB") && fsn.contains("€"), "{text}");
    assert!(text.contains("This month"), "{text}");
}

#[tokio::test]
async fn diagnostics_carry_state_and_logs_but_no_token_key_email_or_id() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ferry");
    std::fs::create_dir_all(&data).unwrap();
    let token = "orb_live_9f8e7d6c5b4a39281706";
    let key = "yAnz5TF+lXXJte14tji3zlMNq+hd2rYUIgJBgB3fBmk=";
    // What a careless log line could hold: the report must not pass it on.
    std::fs::write(
        data.join("ferry.log"),
        format!(
            "INFO signed in as ana@example.org with {token}\nINFO key {key} session 5f0c3b8e-2d4a-4c1e-9a7b-1234567890ab\nINFO tunnel up in 42 ms\n"
        ),
    )
    .unwrap();
    seed(
        &data,
        &[Seed {
            service: ServiceKind::Orbnet,
            location: "server 101",
            started_at: Utc::now() - Duration::hours(1),
            secs: 60,
            credits: Some(1.5),
            millicents: None,
            bytes: 0,
        }],
    )
    .await;
    let out_file = dir.path().join("diag.txt");
    let out = std::process::Command::new(ferry_bin())
        .args(["diagnostics", "--output"])
        .arg(&out_file)
        .env("FERRY_DATA_DIR", &data)
        .env("FERRY_SECRETS", "memory")
        .env("FERRY_ORBNET_TOKEN", token)
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&out_file).unwrap().permissions().mode() & 0o077,
        0
    );
    let text = std::fs::read_to_string(&out_file).unwrap();
    for leak in [token, key, "ana@example.org", "5f0c3b8e"] {
        assert!(!text.contains(leak), "{leak} leaked:\n{text}");
    }
    assert!(text.contains("account orbnet: signed in"), "{text}");
    assert!(text.contains("account tunnelbyte: signed out"), "{text}");
    assert!(
        text.contains("tunnel up in 42 ms"),
        "the log's tail: {text}"
    );
    assert!(
        text.contains("https://api.orbai.world"),
        "the service addresses: {text}"
    );
    assert!(text.contains("ferry 0."), "{text}");
}
