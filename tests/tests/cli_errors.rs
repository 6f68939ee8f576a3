//! The `ferry` binary's secret-store edges and error output, against the lab process: a token
//! kept in the kernel keyring is found by the next command (whatever its session keyring), a
//! missing Secret Service names the alternatives, and a failure is printed once.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use ferry_tests::cli::{text, Cli};
use ferry_tests::lab::{ferry_bin, LabProcess};
use serde_json::Value;

async fn tb_token(lab: &LabProcess, tier: &str) -> String {
    let acc = lab.accounts().await;
    acc["tunnelbyte"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["tier"] == tier)
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string()
}

/// `ferry login` with `FERRY_SECRETS=keyutils` keeps the token where the next command finds
/// it: the user's persistent keyring, not a session keyring that may die with the process. Each
/// command is its own process; one runs in a session keyring of its own (`keyctl session -`).
/// Entries use a keyring service name of this test only, and are removed at the end.
#[tokio::test]
async fn keyutils_login_is_found_by_the_next_commands() {
    let lab = LabProcess::start().unwrap();
    let token = tb_token(&lab, "paid").await;
    let service = format!("ferry-test-cli-{}", std::process::id());
    let cli = Cli::new(&lab)
        .with("FERRY_SECRETS", "keyutils")
        .with("FERRY_KEYRING_SERVICE", &service);
    let out = cli.run(
        &["login", "tunnelbyte", "--token-stdin"],
        Some(&format!("{token}\n")),
    );
    let err = text(&out.stderr);
    if !out.status.success() && err.contains("is not available") {
        eprintln!("SKIP: no kernel keyrings here: {err}");
        return;
    }
    assert!(out.status.success(), "{err}");
    assert!(
        text(&out.stdout).contains("Token kept in the kernel persistent keyring"),
        "{}",
        text(&out.stdout)
    );

    let usage = cli.ok_json(&["usage", "--service", "tunnelbyte", "--json"]);
    assert_eq!(usage["tunnelbyte"]["tier"], "paid", "{usage}");

    if Command::new("keyctl").arg("--version").output().is_ok() {
        let out = Command::new("keyctl")
            .args(["session", "-"])
            .arg(ferry_bin())
            .args(["usage", "--service", "tunnelbyte", "--json"])
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", cli.data.path())
            .env("FERRY_DATA_DIR", cli.data.path().join("ferry"))
            .env("FERRY_SECRETS", "keyutils")
            .env("FERRY_KEYRING_SERVICE", &service)
            .env("FERRY_TUNNELBYTE_URL", &lab.urls.tunnelbyte)
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", text(&out.stderr));
        let v: Value = serde_json::from_str(
            text(&out.stdout)
                .lines()
                .find(|l| l.starts_with('{'))
                .unwrap_or(""),
        )
        .unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)));
        assert_eq!(v["tunnelbyte"]["tier"], "paid", "{v}");
    } else {
        eprintln!("note: no keyctl here; the run in a separate session keyring is skipped");
    }

    let out = cli.run(&["logout", "tunnelbyte"], None);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("Signed out of tunnelbyte"));
    let out = cli.run(&["usage", "--service", "tunnelbyte"], None);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("not signed in to tunnelbyte"),
        "{}",
        text(&out.stderr)
    );
}

/// With no Secret Service on the bus, the error says so once and names the alternatives.
#[tokio::test]
async fn a_missing_secret_service_names_the_alternatives() {
    let lab = LabProcess::start().unwrap();
    let cli = Cli::new(&lab).with("FERRY_SECRETS", "keyring").with(
        "DBUS_SESSION_BUS_ADDRESS",
        "unix:path=/nonexistent/ferry-test/bus",
    );
    for args in [
        &["usage", "--service", "tunnelbyte"][..],
        &["login", "tunnelbyte", "--token-stdin"][..],
    ] {
        let out = cli.run(args, Some("tb_whatever\n"));
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        let err = text(&out.stderr);
        for needle in [
            "Secret Service",
            "FERRY_SECRETS=keyutils",
            "FERRY_ORBNET_TOKEN",
            "FERRY_TUNNELBYTE_TOKEN",
            "FERRY_NEOSC_TOKEN",
        ] {
            assert!(err.contains(needle), "{args:?}: no {needle} in {err}");
        }
        assert_eq!(
            err.matches("is not available").count(),
            1,
            "{args:?}: {err}"
        );
        assert!(!text(&out.stdout).contains("Signed in"), "{args:?}");
    }
}

/// A connect that fails prints its error once (it used to come as `error: …` and `ferry: …`).
#[tokio::test]
async fn a_failed_connect_prints_its_error_once() {
    let lab = LabProcess::start().unwrap();
    let token = tb_token(&lab, "free").await;
    lab.control_post("/regions/offline", serde_json::json!({"code": "sin"}))
        .await
        .unwrap();
    let cli = Cli::new(&lab).with("FERRY_TUNNELBYTE_TOKEN", &token);
    let out = cli.run(
        &[
            "connect",
            "sin",
            "--service",
            "tunnelbyte",
            "--proxy",
            "127.0.0.1:0",
        ],
        None,
    );
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(
        err.matches("region unavailable").count(),
        1,
        "printed more than once: {err}"
    );
    assert!(err.contains("ferry: region unavailable"), "{err}");
    assert!(!err.contains("error: "), "{err}");

    // An error from the command itself (not the session) is printed once as well.
    let out = cli.run(&["connect", "--service", "neosc"], None);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert_eq!(err.matches("NeoSC has no tunnel").count(), 1, "{err}");
}
