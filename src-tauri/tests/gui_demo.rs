//! End to end in the real app window (tauri-driver + WebKitWebDriver under Xvfb): the demo signed
//! in to all three services; connect and watch credits fall; disconnect a workspace session; see
//! the history row; run the credits out and see the Error state and the desktop notification.
//! Saves a screenshot of each main screen to artifacts/.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

fn dunst_history() -> Option<String> {
    let _ = std::process::Command::new("dunstctl")
        .arg("close-all")
        .status()
        .ok()?;
    let out = std::process::Command::new("dunstctl")
        .arg("history")
        .output()
        .ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_walkthrough_in_the_real_window() {
    if let Some(reason) = common::skip_reason() {
        eprintln!("skipping GUI test: {reason}");
        return;
    }
    // The demo runs the lab in-process and signs in to its seeded accounts. The connection is still
    // simulated: 25 credits burning 1 per 100 ms tick, so a session lasts about 2.5 s.
    let app = common::AppSession::start(
        &["--demo"],
        &[
            ("FERRY_SIM_TICK_MS", "100"),
            ("FERRY_SIM_BURN", "1"),
            ("FERRY_SIM_CREDITS", "25"),
        ],
    )
    .await;
    app.wait_css("#demo-badge").await;

    // Accounts: all three signed in.
    app.click_css("#nav-accounts").await;
    for s in ["orbnet", "tunnelbyte", "neosc"] {
        app.wait_text(&format!("#account-{s} .signed-in"), "signed in", |t| {
            t.starts_with("Signed in")
        })
        .await;
    }
    app.screenshot("screen-accounts").await;

    // Connect: pick Paris, connect, see the live panel and credits fall.
    app.click_css("#nav-connect").await;
    app.click_css("#region optgroup option:not([disabled])")
        .await;
    app.wait_text("#connect-btn", "Connect enabled", |t| t == "Connect")
        .await;
    app.click_css("#connect-btn").await;
    app.wait_text("#connect-btn", "Disconnect", |t| t == "Disconnect")
        .await;
    let first = app
        .wait_text("#live-credits-left dd", "credits", |t| !t.is_empty())
        .await;
    let first: f64 = first.parse().unwrap();
    app.wait_text("#live-credits-left dd", "credits to fall", |t| {
        t.parse::<f64>().map(|v| v < first).unwrap_or(false)
    })
    .await;
    app.screenshot("screen-connected").await;

    // Run out: the window shows the Error state with the cause; a notification went out.
    app.wait_text("#connect-btn", "Error state", |t| t == "Try again")
        .await;
    let error = app
        .wait_text("#error", "error text", |t| t.contains("credits ran out"))
        .await;
    assert!(error.contains("Top up"), "{error}");
    app.screenshot("screen-error").await;
    if dunst_history().is_some() {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let h = dunst_history().unwrap_or_default();
            if h.contains("OrbNET credits depleted") {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "no depleted notification in dunst: {h}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    } else {
        eprintln!("dunstctl unavailable: notification not checked over D-Bus");
    }

    // Workspaces: disconnect an active session; it leaves the active list.
    app.click_css("#nav-workspaces").await;
    // Launch a workspace on the lab's NeoSC: that starts a session with a Disconnect button.
    app.click_css("#workspaces button[data-launch]:not([disabled])")
        .await;
    let id = app
        .attr_css("#ws-sessions button[data-disconnect]", "data-disconnect")
        .await;
    app.screenshot("screen-workspaces").await;
    app.click_css(&format!("button[data-disconnect='{id}']"))
        .await;
    let sel = format!("#ws-sessions tr[data-session='{id}']");
    app.wait_text(&sel, "session ended", |t| t.contains("ended"))
        .await;

    // History: the session just ended is there with its end reason.
    app.click_css("#nav-history").await;
    app.wait_text("#history-rows tbody", "history row", |t| {
        t.contains("credits_depleted")
    })
    .await;
    app.screenshot("screen-history").await;

    app.click_css("#nav-settings").await;
    app.wait_css("#save-settings").await;
    app.screenshot("screen-settings").await;
    app.close().await;
}
