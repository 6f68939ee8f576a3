//! The real `ferry` binary against the lab process: login, regions, usage, workspaces,
//! sessions and history, with a temp data dir and the in-memory secret store
//! (`FERRY_SECRETS=memory`, tokens from `FERRY_*_TOKEN`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;

use ferry_tests::cli::{text, Cli};
use ferry_tests::lab::LabProcess;
use serde_json::{json, Value};

async fn orbnet_token(lab: &LabProcess) -> String {
    let v: Value = lab
        .http()
        .post(format!("{}/auth/login", lab.urls.orbnet))
        .json(&json!({"email": "demo@orbnet.lab", "password": "orbnet-demo-pass"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"]["tokens"]["access_token"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn orbnet_login_servers_and_credits() {
    let lab = LabProcess::start().unwrap();
    let cli = Cli::new(&lab);
    let out = cli.run(
        &[
            "login",
            "orbnet",
            "--email",
            "demo@orbnet.lab",
            "--password-stdin",
        ],
        Some("orbnet-demo-pass\n"),
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Signed in to orbnet as demo@orbnet.lab"));
    // The device id is kept in the settings table, the password nowhere.
    let db = std::fs::read(cli.data.path().join("ferry/history.db")).unwrap();
    assert!(!String::from_utf8_lossy(&db).contains("orbnet-demo-pass"));

    let out = cli.run(
        &[
            "login",
            "orbnet",
            "--email",
            "demo@orbnet.lab",
            "--password-stdin",
        ],
        Some("wrong\n"),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("orbnet"),
        "{}",
        text(&out.stderr)
    );

    let cli = cli.with("FERRY_ORBNET_TOKEN", &orbnet_token(&lab).await);
    let v = cli.ok_json(&["regions", "--service", "orbnet", "--json"]);
    let servers = v["orbnet"].as_array().unwrap();
    assert!(servers.iter().any(|s| s["id"] == 101), "{v}");
    let out = cli.run(&["regions", "--service", "orbnet"], None);
    assert!(text(&out.stdout).contains("OrbNET servers"));

    let v = cli.ok_json(&["usage", "--service", "orbnet", "--json"]);
    assert_eq!(v["orbnet"]["credits"], 5000.0, "{v}");
    assert_eq!(v["orbnet"]["consumption_rate"], 1.5);
    let out = cli.run(&["usage", "--service", "orbnet"], None);
    assert!(
        text(&out.stdout).contains("credits      5000.00"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test]
async fn not_signed_in_and_bad_answers_are_clear_errors() {
    let lab = LabProcess::start().unwrap();
    let cli = Cli::new(&lab);
    let out = cli.run(&["usage", "--service", "orbnet"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("ferry login orbnet"),
        "{}",
        text(&out.stderr)
    );
    let cli = cli.with("FERRY_ORBNET_TOKEN", &orbnet_token(&lab).await);
    let p = format!(
        "{}/vpn/servers",
        reqwest::Url::parse(&lab.urls.orbnet).unwrap().path()
    );
    lab.fault(json!({"path": p, "status": 200, "body": "{\"success\":true,\"data\":{\"servers\":[{\"name\":\"no id\"}]}}"}))
        .await
        .unwrap();
    let out = cli.run(&["regions", "--service", "orbnet"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("cannot read"),
        "{}",
        text(&out.stderr)
    );
    let out = cli.run(&["regions", "--service", "neosc"], None);
    assert_eq!(out.status.code(), Some(1));
    let out = cli.run(&["login", "bogus"], None);
    assert_ne!(out.status.code(), Some(0));
}

#[tokio::test]
async fn history_lists_totals_and_exports_private_csv() {
    use chrono::{TimeZone, Utc};
    use ferry_core::services::ServiceKind;
    use ferry_core::store::{EndReason, NewSession, SessionClose, Store, UsageUpdate};

    let lab = LabProcess::start().unwrap();
    let cli = Cli::new(&lab);
    let dir = cli.data.path().join("ferry");
    {
        let store = Store::open_in(&dir).await.unwrap();
        let t = |m: u32| Utc.with_ymd_and_hms(2026, 2, 8, 10, m, 0).unwrap();
        let id = store
            .insert_session(&NewSession {
                client_session_id: "c-1".into(),
                service: ServiceKind::Tunnelbyte,
                account: Some("paid".into()),
                location: Some("fsn".into()),
                started_at: t(0),
            })
            .await
            .unwrap();
        store.mark_connected(id, t(1)).await.unwrap();
        let mut u = UsageUpdate::at(t(11));
        u.bytes_in = Some(2048);
        u.bytes_out = Some(1024);
        u.cost_millicents = Some(21_000);
        u.cost_currency = Some("eur".into());
        store.update_usage(id, &u).await.unwrap();
        store
            .close_session(id, &SessionClose::new(t(22), EndReason::UserInitiated))
            .await
            .unwrap();
        store.close().await;
    }
    let v = cli.ok_json(&["history", "--json"]);
    let rows = v["sessions"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["location"], "fsn");
    assert_eq!(v["totals_per_service"][0]["cost_millicents"], 21000);
    assert_eq!(v["totals_per_service"][0]["connected_secs"], 1260);
    let out = cli.run(&["history", "--totals"], None);
    let s = text(&out.stdout);
    assert!(s.contains("€0.210") && s.contains("21m 00s"), "{s}");

    let csv = cli.data.path().join("out.csv");
    let out = cli.run(&["history", "export", "--csv", csv.to_str().unwrap()], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let body = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(body.lines().count(), 2, "{body}");
    assert!(body.contains(",fsn,"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&csv), 0o600);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("history.db")), 0o600);
    }
}
