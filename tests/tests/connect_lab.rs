//! `ferry connect` as a separate process against `ferry lab` as a separate process: metering to
//! the second, server-side billing checked through the lab's request log and balances, failures,
//! conflicts, tunnelbyte quota and cost, crash recovery. App mode only (no root needed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::PathBuf;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_tests::lab::{ferry_bin, LabProcess};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::mpsc;

const WAIT: Duration = Duration::from_secs(30);

struct Dir(PathBuf);

impl Dir {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!(
            "ferry-connect-{tag}-{}-{}",
            std::process::id(),
            rand::random::<u32>()
        ));
        std::fs::create_dir_all(&p).unwrap();
        Dir(p)
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

async fn lab() -> LabProcess {
    tokio::task::spawn_blocking(LabProcess::start)
        .await
        .unwrap()
        .expect("lab starts")
}

async fn orbnet_token(lab: &LabProcess, email: &str, password: &str) -> String {
    let v: Value = lab
        .http()
        .post(format!("{}/auth/login", lab.urls.orbnet))
        .json(&json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    v["data"]["tokens"]["access_token"]
        .as_str()
        .expect("access token")
        .to_string()
}

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

async fn orbnet_credits(lab: &LabProcess, email: &str) -> f64 {
    let acc = lab.accounts().await;
    acc["orbnet"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == email)
        .unwrap()["credits"]
        .as_f64()
        .unwrap()
}

/// A running `ferry connect --json`.
struct Cli {
    child: Child,
    events: mpsc::UnboundedReceiver<Value>,
    seen: Vec<Value>,
    stderr: Arc<Mutex<String>>,
}

fn connect(lab: &LabProcess, dir: &Dir, env: &[(&str, &str)], args: &[&str]) -> Cli {
    let mut cmd = Command::new(ferry_bin());
    cmd.arg("connect").arg("--json");
    if !args.contains(&"--proxy") {
        cmd.args(["--proxy", "127.0.0.1:0"]);
    }
    cmd.args(args)
        .env("FERRY_SECRETS", "memory")
        .env("FERRY_DATA_DIR", dir.0.join("data"))
        .env("FERRY_ORBNET_URL", &lab.urls.orbnet)
        .env("FERRY_TUNNELBYTE_URL", &lab.urls.tunnelbyte)
        .env("FERRY_HEARTBEAT_SECS", "1")
        .env("FERRY_STATUS_POLL_SECS", "1")
        .env_remove("FERRY_ORBNET_TOKEN")
        .env_remove("FERRY_TUNNELBYTE_TOKEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().expect("ferry connect starts");
    let stdout = child.stdout.take().unwrap();
    let mut stderr_pipe = child.stderr.take().unwrap();
    let (tx, events) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        let mut lines = BufReader::new(stdout).lines();
        while let Ok(Some(l)) = lines.next_line().await {
            let v: Value = serde_json::from_str(&l)
                .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {l}"));
            let _ = tx.send(v);
        }
    });
    let stderr = Arc::new(Mutex::new(String::new()));
    let s2 = stderr.clone();
    tokio::spawn(async move {
        let mut buf = String::new();
        let _ = stderr_pipe.read_to_string(&mut buf).await;
        s2.lock().unwrap().push_str(&buf);
    });
    Cli {
        child,
        events,
        seen: Vec::new(),
        stderr,
    }
}

impl Cli {
    /// Waits for an event matching `pred` (all events are kept in `seen`).
    async fn wait_event(&mut self, what: &str, pred: impl Fn(&Value) -> bool) -> Value {
        let deadline = tokio::time::Instant::now() + WAIT;
        loop {
            match tokio::time::timeout_at(deadline, self.events.recv()).await {
                Ok(Some(v)) => {
                    self.seen.push(v.clone());
                    if pred(&v) {
                        return v;
                    }
                }
                _ => panic!(
                    "no {what} event; seen {:?}; stderr {}",
                    self.seen,
                    self.stderr.lock().unwrap()
                ),
            }
        }
    }

    fn signal(&self, sig: i32) {
        let pid = self.child.id().expect("running") as i32;
        // SAFETY: sending a signal to our own child process.
        unsafe {
            libc::kill(pid, sig);
        }
    }

    /// Waits for the exit; returns the code and every event.
    async fn exit(mut self) -> (i32, Vec<Value>, String) {
        let status = tokio::time::timeout(WAIT, self.child.wait())
            .await
            .expect("ferry connect exits")
            .unwrap();
        // Drain the rest of stdout.
        while let Ok(Some(v)) =
            tokio::time::timeout(Duration::from_secs(2), self.events.recv()).await
        {
            self.seen.push(v);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let stderr = self.stderr.lock().unwrap().clone();
        (status.code().unwrap_or(-1), self.seen, stderr)
    }
}

fn session_calls(reqs: &[Value], kind: &str) -> Vec<Value> {
    reqs.iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap_or("")
                .ends_with(&format!("/vpn/session/{kind}"))
        })
        .cloned()
        .collect()
}

fn secs(r: &Value) -> f64 {
    r["body"]["seconds_since_last"].as_f64().unwrap()
}

fn ended(events: &[Value]) -> Value {
    events
        .iter()
        .find(|e| e["event"] == "session_ended")
        .cloned()
        .unwrap_or_else(|| panic!("no session_ended in {events:?}"))
}

/// A tiny HTTP server on loopback for traffic through the tunnel.
async fn http_server(body: &'static str) -> u16 {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = l.accept().await {
            tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut buf = [0u8; 2048];
                let _ = s.read(&mut buf).await;
                let resp = format!(
                    "HTTP/1.1 200 OK\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = s.write_all(resp.as_bytes()).await;
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn orbnet_session_bills_its_connected_time_and_carries_real_bytes() {
    let lab = lab().await;
    let dir = Dir::new("full");
    let token = orbnet_token(&lab, "demo@orbnet.lab", "orbnet-demo-pass").await;
    let before = orbnet_credits(&lab, "demo@orbnet.lab").await;
    let port = http_server("hello through the tunnel").await;
    let out = dir.0.join("body");
    let script = format!(
        "curl -s -m 10 -o {} http://127.0.0.1:{port}/ && sleep 4",
        out.display()
    );
    let cli = connect(
        &lab,
        &dir,
        &[("FERRY_ORBNET_TOKEN", &token)],
        &["--service", "orbnet", "--", "sh", "-c", &script],
    );
    let (code, events, stderr) = cli.exit().await;
    assert_eq!(code, 0, "stderr: {stderr}; events {events:?}");
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "hello through the tunnel"
    );
    let end = ended(&events);
    assert_eq!(end["reason"], "user_initiated");
    let connected = end["connected_secs"].as_f64().unwrap();
    assert!(connected >= 4.0, "{end}");

    let reqs = lab.requests().await;
    let starts = session_calls(&reqs, "start");
    assert_eq!(starts.len(), 1);
    let id = starts[0]["body"]["session_id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(uuid::Uuid::parse_str(&id).is_ok(), "{id}");
    let beats = session_calls(&reqs, "heartbeat");
    let ends = session_calls(&reqs, "end");
    assert!(beats.len() >= 3, "{beats:?}");
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0]["body"]["disconnect_reason"], "user_initiated");
    let sent: f64 = beats.iter().chain(&ends).map(secs).sum();
    assert!(
        (sent - connected).abs() <= 1.0,
        "sent {sent} s for {connected} s connected"
    );
    assert_eq!(end["billed_secs"].as_f64().unwrap(), sent);
    // The lab billed exactly what was sent: 1.5 credits per minute.
    let used = before - orbnet_credits(&lab, "demo@orbnet.lab").await;
    assert!(
        (used - 1.5 * sent / 60.0).abs() < 1e-6,
        "used {used} for {sent} s"
    );
    // History has the row, closed, with the tunnel's bytes.
    let out = std::process::Command::new(ferry_bin())
        .args(["history", "--json"])
        .env("FERRY_SECRETS", "memory")
        .env("FERRY_DATA_DIR", dir.0.join("data"))
        .output()
        .unwrap();
    let hist: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = hist["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["client_session_id"] == id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["end_reason"], "user_initiated", "{row}");
    assert!(row["bytes_in"].as_u64().unwrap() > 0, "{row}");
}

#[tokio::test(flavor = "multi_thread")]
async fn orbnet_low_credits_warn_once_at_the_most_severe_threshold() {
    let lab = lab().await;
    let dir = Dir::new("low");
    // 3 credits at 1.5 per minute: 2 minutes left.
    let token = orbnet_token(&lab, "low@orbnet.lab", "orbnet-low-pass").await;
    let mut cli = connect(&lab, &dir, &[("FERRY_ORBNET_TOKEN", &token)], &[]);
    cli.wait_event("heartbeat", |e| e["event"] == "heartbeat")
        .await;
    cli.wait_event("heartbeat", |e| e["event"] == "heartbeat")
        .await;
    cli.signal(libc::SIGINT);
    let (code, events, stderr) = cli.exit().await;
    assert_eq!(code, 0, "{stderr} {events:?}");
    let lows: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "low_credits")
        .collect();
    assert_eq!(lows.len(), 1, "{lows:?}");
    assert_eq!(lows[0]["threshold_minutes"], 2.0);
}

#[tokio::test(flavor = "multi_thread")]
async fn orbnet_credits_depleted_mid_session_exits_3_and_ends_with_credits_depleted() {
    let lab = lab().await;
    let dir = Dir::new("402");
    let token = orbnet_token(&lab, "demo@orbnet.lab", "orbnet-demo-pass").await;
    let mut cli = connect(&lab, &dir, &[("FERRY_ORBNET_TOKEN", &token)], &[]);
    cli.wait_event("heartbeat", |e| e["event"] == "heartbeat")
        .await;
    lab.control_post(
        "/orbnet/credits",
        json!({"email": "demo@orbnet.lab", "credits": 0.0}),
    )
    .await
    .unwrap();
    let (code, events, stderr) = cli.exit().await;
    assert_eq!(code, 3, "stderr {stderr}; events {events:?}");
    assert!(events
        .iter()
        .any(|e| e["event"] == "failed" && e["cause"]["kind"] == "credits_depleted"));
    let reqs = lab.requests().await;
    let ends = session_calls(&reqs, "end");
    assert_eq!(ends.len(), 1, "{ends:?}");
    assert_eq!(ends[0]["body"]["disconnect_reason"], "credits_depleted");
}

#[tokio::test(flavor = "multi_thread")]
async fn orbnet_foreign_active_session_stops_with_a_clear_message() {
    let lab = lab().await;
    let dir = Dir::new("409");
    let token = orbnet_token(&lab, "demo@orbnet.lab", "orbnet-demo-pass").await;
    let r = lab
        .http()
        .post(format!("{}/vpn/session/start", lab.urls.orbnet))
        .bearer_auth(&token)
        .json(&json!({"session_id": "other-device-session", "server_id": 101, "protocol": "wireguard"}))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let cli = connect(&lab, &dir, &[("FERRY_ORBNET_TOKEN", &token)], &[]);
    let (code, events, stderr) = cli.exit().await;
    assert_eq!(code, 1, "{stderr} {events:?}");
    let failed = events.iter().find(|e| e["event"] == "failed").unwrap();
    assert_eq!(failed["cause"]["kind"], "session_conflict");
    assert!(failed["message"]
        .as_str()
        .unwrap()
        .contains("other-device-session"));
    // Never ended someone else's session.
    assert!(session_calls(&lab.requests().await, "end").is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn orbnet_heartbeat_failures_never_bill_twice() {
    let lab = lab().await;
    let dir = Dir::new("faults");
    let token = orbnet_token(&lab, "demo@orbnet.lab", "orbnet-demo-pass").await;
    let before = orbnet_credits(&lab, "demo@orbnet.lab").await;
    let path = "/orbnet/api/v1/vpn/session/heartbeat";
    // Not processed (503), processed with the answer lost (500 after), processed and the
    // connection dropped before the answer.
    for rule in [
        json!({"method": "POST", "path": path, "status": 503, "times": 1}),
        json!({"method": "POST", "path": path, "status": 500, "after": true, "times": 1}),
        json!({"method": "POST", "path": path, "drop": true, "after": true, "times": 1}),
    ] {
        lab.fault(rule).await.unwrap();
    }
    let mut cli = connect(&lab, &dir, &[("FERRY_ORBNET_TOKEN", &token)], &[]);
    // Wait past the three faults and a few clean heartbeats.
    let mut beats = 0;
    while beats < 6 {
        cli.wait_event("heartbeat", |e| e["event"] == "heartbeat")
            .await;
        beats += 1;
    }
    cli.signal(libc::SIGINT);
    let (code, events, stderr) = cli.exit().await;
    assert_eq!(code, 0, "{stderr} {events:?}");
    let deliveries: Vec<_> = events
        .iter()
        .filter(|e| e["event"] == "heartbeat")
        .map(|e| e["delivery"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        &deliveries[..3],
        ["not_delivered", "unconfirmed", "unconfirmed"],
        "{deliveries:?}"
    );
    let connected = ended(&events)["connected_secs"].as_f64().unwrap();
    let used = before - orbnet_credits(&lab, "demo@orbnet.lab").await;
    let billed_secs = used / 1.5 * 60.0;
    assert!(
        (billed_secs - connected).abs() <= 1.0 + 1e-6,
        "the lab billed {billed_secs} s for {connected} s connected"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn orbnet_crash_is_recovered_on_the_next_run() {
    let lab = lab().await;
    let dir = Dir::new("crash");
    let token = orbnet_token(&lab, "demo@orbnet.lab", "orbnet-demo-pass").await;
    let mut cli = connect(&lab, &dir, &[("FERRY_ORBNET_TOKEN", &token)], &[]);
    let connected = cli
        .wait_event("connected", |e| e["event"] == "connected")
        .await;
    let crashed_id = connected["session_id"].as_str().unwrap().to_string();
    cli.wait_event("heartbeat", |e| e["event"] == "heartbeat")
        .await;
    cli.signal(libc::SIGKILL);
    let (code, _, _) = cli.exit().await;
    assert_eq!(code, -1);
    // The server still has our session.
    let active: Value = lab
        .http()
        .get(format!("{}/vpn/session/active", lab.urls.orbnet))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(active["data"]["session"]["session_id"], crashed_id.as_str());

    let cli = connect(
        &lab,
        &dir,
        &[("FERRY_ORBNET_TOKEN", &token)],
        &["--", "true"],
    );
    let (code, events, stderr) = cli.exit().await;
    assert_eq!(code, 0, "{stderr} {events:?}");
    let reqs = lab.requests().await;
    let ends = session_calls(&reqs, "end");
    let crashed_end = ends
        .iter()
        .find(|r| r["body"]["session_id"] == crashed_id.as_str())
        .expect("the crashed session was ended on the server");
    assert_eq!(crashed_end["body"]["disconnect_reason"], "error");
    // Ended at once without billing the downtime: the API's minimum, whatever the gap was.
    assert_eq!(secs(crashed_end), 1.0, "{crashed_end}");
    let out = std::process::Command::new(ferry_bin())
        .args(["history", "--json"])
        .env("FERRY_SECRETS", "memory")
        .env("FERRY_DATA_DIR", dir.0.join("data"))
        .output()
        .unwrap();
    let hist: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = hist["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["client_session_id"] == crashed_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(row["end_reason"], "recovered", "{row}");
}

#[tokio::test(flavor = "multi_thread")]
async fn tunnelbyte_paid_session_shows_live_cost_and_deletes_on_sigterm() {
    let lab = lab().await;
    let dir = Dir::new("tbpaid");
    let token = tb_token(&lab, "paid").await;
    let mut cli = connect(
        &lab,
        &dir,
        &[("FERRY_TUNNELBYTE_TOKEN", &token)],
        &["fsn", "--service", "tunnelbyte"],
    );
    cli.wait_event("connected", |e| e["event"] == "connected")
        .await;
    lab.advance(120.0).await.unwrap();
    let q = cli
        .wait_event("quota with cost", |e| {
            e["event"] == "quota" && e["cost_millicents"].as_u64().unwrap_or(0) > 0
        })
        .await;
    assert_eq!(q["currency"], "eur");
    cli.signal(libc::SIGTERM);
    let (code, events, stderr) = cli.exit().await;
    assert_eq!(code, 0, "{stderr} {events:?}");
    let reqs = lab.requests().await;
    assert!(reqs.iter().any(|r| r["method"] == "DELETE"
        && r["path"]
            .as_str()
            .unwrap()
            .contains("/tunnelbyte/v1/sessions/")));
}

#[tokio::test(flavor = "multi_thread")]
async fn tunnelbyte_quota_exceeded_at_create_exits_2_with_the_breakdown() {
    let lab = lab().await;
    let dir = Dir::new("tbquota");
    let token = tb_token(&lab, "free").await;
    lab.control_post(
        "/tunnelbyte/usage",
        json!({"token": token, "session_seconds": 7200}),
    )
    .await
    .unwrap();
    let cli = connect(
        &lab,
        &dir,
        &[("FERRY_TUNNELBYTE_TOKEN", &token)],
        &["fsn", "--service", "tunnelbyte"],
    );
    let (code, events, stderr) = cli.exit().await;
    assert_eq!(code, 2, "{stderr} {events:?}");
    let failed = events.iter().find(|e| e["event"] == "failed").unwrap();
    assert_eq!(failed["cause"]["kind"], "quota_exhausted");
    let msg = failed["message"].as_str().unwrap();
    assert!(
        msg.contains("7200 of 7200") && msg.contains("resets at"),
        "{msg}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn tunnelbyte_termination_mid_session_exits_3() {
    let lab = lab().await;
    let dir = Dir::new("tbterm");
    let token = tb_token(&lab, "free").await;
    let mut cli = connect(
        &lab,
        &dir,
        &[("FERRY_TUNNELBYTE_TOKEN", &token)],
        &["fsn", "--service", "tunnelbyte"],
    );
    let c = cli
        .wait_event("connected", |e| e["event"] == "connected")
        .await;
    cli.wait_event("quota", |e| e["event"] == "quota").await;
    lab.control_post(
        "/sessions/terminate",
        json!({"service": "tunnelbyte", "id": c["session_id"], "reason": "quota_exceeded"}),
    )
    .await
    .unwrap();
    let (code, events, stderr) = cli.exit().await;
    assert_eq!(code, 3, "{stderr} {events:?}");
    assert_eq!(ended(&events)["reason"], "quota_exceeded");
}

#[tokio::test(flavor = "multi_thread")]
async fn tunnelbyte_region_without_nodes_lists_the_alternatives() {
    let lab = lab().await;
    let dir = Dir::new("tb503");
    let token = tb_token(&lab, "free").await;
    lab.control_post("/regions/offline", json!({"code": "sin"}))
        .await
        .unwrap();
    let cli = connect(
        &lab,
        &dir,
        &[("FERRY_TUNNELBYTE_TOKEN", &token)],
        &["sin", "--service", "tunnelbyte"],
    );
    let (code, events, stderr) = cli.exit().await;
    assert_eq!(code, 1, "{stderr} {events:?}");
    let failed = events.iter().find(|e| e["event"] == "failed").unwrap();
    assert_eq!(failed["cause"]["kind"], "region_unavailable");
    let msg = failed["message"].as_str().unwrap();
    assert!(msg.contains("fsn") && msg.contains("ash"), "{msg}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_window_starting_while_the_cli_meters_is_refused_and_touches_nothing() {
    use ferry_core::app::contract::{BaseUrls, ConnectRequest, TunnelMode};
    use ferry_core::app::{App, AppError, AppOptions};
    use ferry_core::secrets::{MemoryStore, Secret, SharedSecretStore};
    use ferry_core::services::ServiceKind;

    let lab = lab().await;
    let dir = Dir::new("both");
    let token = orbnet_token(&lab, "demo@orbnet.lab", "orbnet-demo-pass").await;
    let mut cli = connect(&lab, &dir, &[("FERRY_ORBNET_TOKEN", &token)], &[]);
    cli.wait_event("connected", |e| e["event"] == "connected")
        .await;
    // The window opens on the same data directory, signed in to the same account.
    let secrets: SharedSecretStore = Arc::new(MemoryStore::new());
    secrets
        .set(ServiceKind::Orbnet, Secret::new(token.as_str()))
        .await
        .unwrap();
    let mut opts = AppOptions::from_env(dir.0.join("data"));
    opts.proxy = "127.0.0.1:0".parse().unwrap();
    let app = App::open(opts, secrets, false).await.unwrap();
    app.set_base_urls(BaseUrls {
        orbnet: lab.urls.orbnet.clone(),
        tunnelbyte: lab.urls.tunnelbyte.clone(),
        neosc: String::new(),
    })
    .await
    .unwrap();
    let regions = app.regions().await;
    let region = regions[0].regions[0].reference.clone();
    let before = session_calls(&lab.requests().await, "end").len();
    match app
        .connect(ConnectRequest {
            region,
            mode: TunnelMode::App,
        })
        .await
    {
        Err(AppError::AlreadyConnected { holder }) => {
            assert!(holder.contains("`ferry connect`"), "{holder}");
            assert!(
                holder.contains(&format!("pid {}", cli.child.id().unwrap())),
                "{holder}"
            );
        }
        other => panic!("expected already connected, got {other:?}"),
    }
    // Nothing was recovered or ended behind the CLI's back: it keeps billing its session.
    let seen = cli.seen.len();
    cli.wait_event("a later heartbeat", |e| e["event"] == "heartbeat")
        .await;
    assert!(cli.seen.len() > seen);
    assert_eq!(session_calls(&lab.requests().await, "end").len(), before);
    cli.signal(libc::SIGINT);
    let (code, _, _) = cli.exit().await;
    assert_eq!(code, 0);
}

fn history(dir: &Dir) -> Value {
    let out = std::process::Command::new(ferry_bin())
        .args(["history", "--json"])
        .env("FERRY_SECRETS", "memory")
        .env("FERRY_DATA_DIR", dir.0.join("data"))
        .output()
        .unwrap();
    serde_json::from_slice(&out.stdout).unwrap()
}

/// A session as short as one request (`connect -- curl`) still gets its bytes, its exit IP and
/// the server's id of the session in the history row, for both services.
#[tokio::test(flavor = "multi_thread")]
async fn a_short_command_session_records_bytes_exit_ip_and_server_session_id() {
    let lab = lab().await;
    let port = http_server("one short request").await;
    let tb = tb_token(&lab, "paid").await;
    let orb = orbnet_token(&lab, "demo@orbnet.lab", "orbnet-demo-pass").await;
    let cases = [
        ("tunnelbyte", "FERRY_TUNNELBYTE_TOKEN", tb, vec!["fsn"]),
        ("orbnet", "FERRY_ORBNET_TOKEN", orb, vec![]),
    ];
    for (service, var, token, target) in cases {
        let dir = Dir::new(&format!("short-{service}"));
        let body = dir.0.join("body");
        let url = format!("http://127.0.0.1:{port}/");
        let mut args: Vec<&str> = target;
        let body_s = body.display().to_string();
        args.extend(["--service", service, "--", "curl", "-s", "-m", "10", "-o"]);
        args.extend([body_s.as_str(), url.as_str()]);
        let cli = connect(&lab, &dir, &[(var, &token)], &args);
        let (code, events, stderr) = cli.exit().await;
        assert_eq!(code, 0, "{service}: {stderr} {events:?}");
        assert_eq!(std::fs::read_to_string(&body).unwrap(), "one short request");
        let connected = events
            .iter()
            .find(|e| e["event"] == "connected")
            .unwrap()
            .clone();
        let hist = history(&dir);
        let rows = hist["sessions"].as_array().unwrap();
        assert_eq!(rows.len(), 1, "{service}: {hist}");
        let row = &rows[0];
        assert_eq!(row["end_reason"], "user_initiated", "{service}: {row}");
        // The request and its answer went through the tunnel (IP bytes, so more than the body).
        assert!(row["bytes_in"].as_u64().unwrap() > 0, "{service}: {row}");
        assert!(row["bytes_out"].as_u64().unwrap() > 0, "{service}: {row}");
        assert_eq!(row["exit_ip"], "127.0.0.1", "{service}: {row}");
        assert_eq!(connected["exit_ip"], "127.0.0.1", "{service}: {connected}");
        let server_id = row["server_session_id"].as_str().unwrap_or("");
        match service {
            "tunnelbyte" => assert_eq!(server_id, connected["session_id"], "{row}"),
            _ => assert!(server_id.starts_with("trk_"), "{row}"),
        }
    }
}

/// A second `connect` from another data directory meets the first one's OrbNET session (409):
/// Ferry says what it knows (not in this history: another device, or another Ferry on this
/// device), never that the session was "not started by Ferry on this device", and ends neither.
#[tokio::test(flavor = "multi_thread")]
async fn orbnet_second_connect_from_another_data_dir_is_told_what_is_true() {
    let lab = lab().await;
    let (a, b) = (Dir::new("409a"), Dir::new("409b"));
    let token = orbnet_token(&lab, "demo@orbnet.lab", "orbnet-demo-pass").await;
    let mut first = connect(&lab, &a, &[("FERRY_ORBNET_TOKEN", &token)], &[]);
    let c = first
        .wait_event("connected", |e| e["event"] == "connected")
        .await;
    let first_id = c["session_id"].as_str().unwrap().to_string();
    let second = connect(&lab, &b, &[("FERRY_ORBNET_TOKEN", &token)], &[]);
    let (code, events, stderr) = second.exit().await;
    assert_eq!(code, 1, "{stderr} {events:?}");
    let failed = events.iter().find(|e| e["event"] == "failed").unwrap();
    assert_eq!(failed["cause"]["kind"], "session_conflict", "{failed}");
    let msg = failed["message"].as_str().unwrap();
    assert!(msg.contains(&first_id), "{msg}");
    assert!(msg.contains("another Ferry on this device"), "{msg}");
    assert!(!msg.contains("not started by Ferry"), "{msg}");
    // The first session was left alone and still runs.
    assert!(session_calls(&lab.requests().await, "end").is_empty());
    first
        .wait_event("heartbeat", |e| e["event"] == "heartbeat")
        .await;
    first.signal(libc::SIGINT);
    let (code, _, stderr) = first.exit().await;
    assert_eq!(code, 0, "{stderr}");
}

/// `--proxy` on an address other machines can reach is refused before any session starts, with
/// an error naming `--proxy-auth`; so is a `--proxy-auth` file that others can read.
#[tokio::test(flavor = "multi_thread")]
async fn an_open_proxy_without_private_credentials_is_refused_at_start() {
    use std::os::unix::fs::PermissionsExt as _;
    let lab = lab().await;
    let token = tb_token(&lab, "paid").await;
    let dir = Dir::new("open-proxy");
    let env = [("FERRY_TUNNELBYTE_TOKEN", token.as_str())];
    let cli = connect(
        &lab,
        &dir,
        &env,
        &["--service", "tunnelbyte", "--proxy", "0.0.0.0:0"],
    );
    let (code, events, stderr) = cli.exit().await;
    assert_eq!(code, 1, "{stderr} {events:?}");
    assert!(stderr.contains("--proxy-auth"), "{stderr}");
    assert!(stderr.contains("0.0.0.0:0"), "{stderr}");

    let auth = dir.0.join("auth");
    std::fs::write(&auth, "alice:pw\n").unwrap();
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o644)).unwrap();
    let auth_s = auth.display().to_string();
    let cli = connect(
        &lab,
        &dir,
        &env,
        &[
            "--service",
            "tunnelbyte",
            "--proxy",
            "0.0.0.0:0",
            "--proxy-auth",
            &auth_s,
        ],
    );
    let (code, events, stderr) = cli.exit().await;
    assert_eq!(code, 1, "{stderr} {events:?}");
    assert!(stderr.contains("readable by group or others"), "{stderr}");
    assert!(stderr.contains("chmod 600"), "{stderr}");
    // Neither run asked the service for anything.
    let reqs = lab.requests().await;
    assert!(
        !reqs
            .iter()
            .any(|r| r["path"].as_str().unwrap_or("").contains("/sessions")),
        "{reqs:?}"
    );
}

/// With `--proxy-auth`, the command's proxy URLs carry the credentials, so it gets through the
/// proxy that now requires them.
#[tokio::test(flavor = "multi_thread")]
async fn with_proxy_auth_the_command_gets_through_with_the_credentials() {
    use std::os::unix::fs::PermissionsExt as _;
    let lab = lab().await;
    let token = tb_token(&lab, "paid").await;
    let dir = Dir::new("proxy-auth");
    let port = http_server("through an authenticated proxy").await;
    let auth = dir.0.join("auth");
    std::fs::write(&auth, "alice:p@ss:w0rd\n").unwrap();
    std::fs::set_permissions(&auth, std::fs::Permissions::from_mode(0o600)).unwrap();
    let body = dir.0.join("body");
    let script = format!(
        "case \"$ALL_PROXY\" in socks5h://alice:p%40ss%3Aw0rd@127.0.0.1:*) ;; *) exit 9;; esac; \
         curl -s -m 10 -o {} http://127.0.0.1:{port}/",
        body.display()
    );
    let auth_s = auth.display().to_string();
    let cli = connect(
        &lab,
        &dir,
        &[("FERRY_TUNNELBYTE_TOKEN", &token)],
        &[
            "--service",
            "tunnelbyte",
            "--proxy-auth",
            &auth_s,
            "--",
            "sh",
            "-c",
            &script,
        ],
    );
    let (code, events, stderr) = cli.exit().await;
    assert_eq!(code, 0, "{stderr} {events:?}");
    assert_eq!(
        std::fs::read_to_string(&body).unwrap(),
        "through an authenticated proxy"
    );
}

/// `connect -- CMD`: CMD's environment is ours minus every `FERRY_*_TOKEN` (a token given in our
/// environment is not passed on, other variables are), no token shows in our output even with
/// debug logs, and `connect` exits with CMD's status (7; 128 + 15 when a signal ended it).
#[tokio::test(flavor = "multi_thread")]
async fn the_command_gets_no_token_and_its_exit_status_comes_back() {
    let lab = lab().await;
    let token = tb_token(&lab, "paid").await;
    for (script, want) in [
        ("env > \"$OUT\"; exit 7", 7),
        ("env > \"$OUT\"; kill -TERM $$", 128 + 15),
    ] {
        let dir = Dir::new("child-env");
        let out = dir.0.join("env");
        let out_s = out.display().to_string();
        let env = [
            ("FERRY_TUNNELBYTE_TOKEN", token.as_str()),
            ("FERRY_ORBNET_TOKEN", "orbnet-secret-that-must-not-leak"),
            ("FERRY_NEOSC_TOKEN", "neosc-secret-that-must-not-leak"),
            ("FERRY_TEST_KEPT", "kept"),
            ("FERRY_LOG", "debug"),
            ("OUT", out_s.as_str()),
        ];
        let cli = connect(
            &lab,
            &dir,
            &env,
            &["--service", "tunnelbyte", "fsn", "--", "sh", "-c", script],
        );
        let (code, events, stderr) = cli.exit().await;
        assert_eq!(code, want, "{script}: {stderr} {events:?}");
        let child_env = std::fs::read_to_string(&out).unwrap();
        for secret in [
            token.as_str(),
            "orbnet-secret-that-must-not-leak",
            "neosc-secret-that-must-not-leak",
        ] {
            assert!(!child_env.contains(secret), "{child_env}");
            assert!(!stderr.contains(secret), "a token in the logs: {stderr}");
            assert!(
                !events.iter().any(|e| e.to_string().contains(secret)),
                "{events:?}"
            );
        }
        assert!(
            !child_env.lines().any(
                |l| l.starts_with("FERRY_") && l.split('=').next().unwrap().ends_with("_TOKEN")
            ),
            "{child_env}"
        );
        assert!(child_env.contains("FERRY_TEST_KEPT=kept"), "{child_env}");
        assert!(
            child_env.contains("ALL_PROXY=socks5h://127.0.0.1:"),
            "{child_env}"
        );
        let end = ended(&events);
        assert_eq!(end["reason"], "user_initiated", "{end}");
    }
}

/// When the session ends first (credits depleted while CMD still runs), `connect` exits 3,
/// not with the status of the CMD it then stops.
#[tokio::test(flavor = "multi_thread")]
async fn a_metering_outcome_before_the_command_exits_keeps_its_code() {
    let lab = lab().await;
    let dir = Dir::new("402-cmd");
    let token = orbnet_token(&lab, "demo@orbnet.lab", "orbnet-demo-pass").await;
    let mut cli = connect(
        &lab,
        &dir,
        &[("FERRY_ORBNET_TOKEN", &token)],
        &["--", "sh", "-c", "exec sleep 60"],
    );
    cli.wait_event("heartbeat", |e| e["event"] == "heartbeat")
        .await;
    lab.control_post(
        "/orbnet/credits",
        json!({"email": "demo@orbnet.lab", "credits": 0.0}),
    )
    .await
    .unwrap();
    let (code, events, stderr) = cli.exit().await;
    assert_eq!(code, 3, "stderr {stderr}; events {events:?}");
}

/// Without `--proxy`, when 127.0.0.1:1080 is taken the proxies move to the next free pair of
/// ports; the start line names both, and CMD's proxy variables point at them (CMD reaches the
/// server through the HTTP proxy, with CONNECT).
#[tokio::test(flavor = "multi_thread")]
async fn a_taken_default_port_moves_to_the_next_free_one_and_both_proxies_are_named() {
    let lab = lab().await;
    let token = tb_token(&lab, "paid").await;
    // Taken by us, or already by someone else: taken either way.
    let _held = std::net::TcpListener::bind("127.0.0.1:1080");
    let port = http_server("through the HTTP proxy").await;
    let dir = Dir::new("default-port");
    let vars = dir.0.join("vars");
    let body = dir.0.join("body");
    let script = format!(
        "echo \"$ALL_PROXY $http_proxy\" > {} && curl -s -m 10 -p -o {} http://127.0.0.1:{port}/",
        vars.display(),
        body.display()
    );
    let out = tokio::process::Command::new(ferry_bin())
        .args([
            "connect",
            "--service",
            "tunnelbyte",
            "fsn",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .env("FERRY_SECRETS", "memory")
        .env("FERRY_DATA_DIR", dir.0.join("data"))
        .env("FERRY_TUNNELBYTE_URL", &lab.urls.tunnelbyte)
        .env("FERRY_TUNNELBYTE_TOKEN", &token)
        .env_remove("http_proxy")
        .env_remove("ALL_PROXY")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(WAIT, out).await.unwrap().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let line = stderr
        .lines()
        .find(|l| l.starts_with("connected via"))
        .unwrap_or_else(|| panic!("no start line: {stderr}"));
    let (socks, http) = line
        .split_once("SOCKS5 proxy on ")
        .and_then(|(_, rest)| rest.split_once(", HTTP proxy on "))
        .unwrap_or_else(|| panic!("the start line names both proxies: {line}"));
    let socks: std::net::SocketAddr = socks.trim().parse().unwrap();
    let http: std::net::SocketAddr = http.trim().parse().unwrap();
    assert_ne!(socks.port(), 1080, "{line}");
    assert_eq!(socks.ip().to_string(), "127.0.0.1");
    assert_eq!(http.port(), socks.port() + 1, "{line}");
    assert_eq!(
        std::fs::read_to_string(&vars).unwrap().trim(),
        format!("socks5h://{socks} http://{http}")
    );
    assert_eq!(
        std::fs::read_to_string(&body).unwrap(),
        "through the HTTP proxy"
    );
}

/// Runs `ferry budget ARGS` on the test's data dir; returns (code, stdout, stderr).
fn budget(dir: &Dir, args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(ferry_bin())
        .arg("budget")
        .args(args)
        .env("FERRY_SECRETS", "memory")
        .env("FERRY_DATA_DIR", dir.0.join("data"))
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn count(events: &[Value], kind: &str) -> usize {
    events.iter().filter(|e| e["event"] == kind).count()
}

/// Asserts a cap ended the session: exit 4, a clean `user_initiated` end on the server, the
/// typed cause, `cap_reached` in the history.
fn assert_cap_end(code: i32, events: &[Value], stderr: &str, scope: &str) {
    assert_eq!(code, 4, "{stderr} {events:?}");
    let failed = events
        .iter()
        .find(|e| e["event"] == "failed")
        .unwrap_or_else(|| panic!("no failed event in {events:?}"));
    assert_eq!(failed["cause"]["kind"], "cap_reached", "{failed}");
    assert!(
        failed["cause"]["detail"]["cap"]
            .as_str()
            .unwrap()
            .starts_with(&format!("{scope} cap of ")),
        "{failed}"
    );
    assert_eq!(ended(events)["reason"], "cap_reached");
}

#[tokio::test(flavor = "multi_thread")]
async fn orbnet_session_cap_warns_once_stops_within_the_cap_and_exits_4() {
    let lab = lab().await;
    let dir = Dir::new("capsess");
    let token = orbnet_token(&lab, "demo@orbnet.lab", "orbnet-demo-pass").await;
    let before = orbnet_credits(&lab, "demo@orbnet.lab").await;
    // 1.5 credits/min, 1 s heartbeats: 0.025 a heartbeat; the margin is 3 s (0.075). Near
    // (one heartbeat away) after 0.375, 80 % at 0.416, stop after 0.45.
    let cli = connect(
        &lab,
        &dir,
        &[("FERRY_ORBNET_TOKEN", &token)],
        &["--service", "orbnet", "--cap-credits", "0.52"],
    );
    let (code, events, stderr) = cli.exit().await;
    assert_cap_end(code, &events, &stderr, "session");
    let used = before - orbnet_credits(&lab, "demo@orbnet.lab").await;
    assert!(used <= 0.52 + 1e-9, "the service charged {used} > 0.52");
    assert!(used >= 0.52 - 0.15, "stopped too early: {used}");
    let ends = session_calls(&lab.requests().await, "end");
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0]["body"]["disconnect_reason"], "user_initiated");
    assert_eq!(count(&events, "cap_warning"), 1, "{events:?}");
    assert_eq!(count(&events, "cap_stop_near"), 1, "{events:?}");
    let warn = events.iter().find(|e| e["event"] == "cap_warning").unwrap();
    assert!(warn["percent"].as_f64().unwrap() >= 80.0, "{warn}");
    assert_eq!(warn["scope"], "session");
}

#[tokio::test(flavor = "multi_thread")]
async fn orbnet_month_cap_counts_two_sessions_across_a_restart_and_refuses_once_reached() {
    let lab = lab().await;
    let dir = Dir::new("capmonth");
    let token = orbnet_token(&lab, "demo@orbnet.lab", "orbnet-demo-pass").await;
    let env = [("FERRY_ORBNET_TOKEN", token.as_str())];
    let c0 = orbnet_credits(&lab, "demo@orbnet.lab").await;
    // A first session, ended by a one-off session cap: its spend is in the history.
    let (code, events, stderr) = connect(
        &lab,
        &dir,
        &env,
        &["--service", "orbnet", "--cap-credits", "0.11"],
    )
    .exit()
    .await;
    assert_cap_end(code, &events, &stderr, "session");
    let used1 = c0 - orbnet_credits(&lab, "demo@orbnet.lab").await;
    // A month cap 0.09 above it: a new process (a restart) counts the first session, and the
    // second stops at the month cap, not at a day or session one.
    let month = used1 + 0.09;
    let (code, _, err) = budget(&dir, &["set", "--month-credits", &format!("{month:.6}")]);
    assert_eq!(code, 0, "{err}");
    let (code, events, stderr) = connect(&lab, &dir, &env, &["--service", "orbnet"])
        .exit()
        .await;
    assert_cap_end(code, &events, &stderr, "month");
    let used = c0 - orbnet_credits(&lab, "demo@orbnet.lab").await;
    assert!(used <= month + 1e-6, "{used} > the month cap {month}");
    // Reached: the next connect is refused before any start, naming the cap and its reset.
    let (code, _, err) = budget(
        &dir,
        &["set", "--month-credits", &format!("{:.6}", used - 0.001)],
    );
    assert_eq!(code, 0, "{err}");
    let starts = session_calls(&lab.requests().await, "start").len();
    let (code, events, stderr) = connect(&lab, &dir, &env, &["--service", "orbnet"])
        .exit()
        .await;
    assert_eq!(code, 2, "{stderr} {events:?}");
    assert!(stderr.contains("month cap of"), "{stderr}");
    assert!(stderr.contains("resets at"), "{stderr}");
    assert_eq!(session_calls(&lab.requests().await, "start").len(), starts);
}

#[tokio::test(flavor = "multi_thread")]
async fn orbnet_day_cap_counts_the_history_across_restarts_and_refuses_once_reached() {
    let lab = lab().await;
    let dir = Dir::new("capday");
    let token = orbnet_token(&lab, "demo@orbnet.lab", "orbnet-demo-pass").await;
    let env = [("FERRY_ORBNET_TOKEN", token.as_str())];
    let c0 = orbnet_credits(&lab, "demo@orbnet.lab").await;
    // A first session, ended by its own cap (its row is in the store).
    let (code, events, stderr) = connect(
        &lab,
        &dir,
        &env,
        &["--service", "orbnet", "--cap-credits", "0.11"],
    )
    .exit()
    .await;
    assert_cap_end(code, &events, &stderr, "session");
    let c1 = orbnet_credits(&lab, "demo@orbnet.lab").await;
    let used1 = c0 - c1;
    assert!(used1 > 0.0 && used1 <= 0.11 + 1e-9, "{used1}");
    // A day cap 0.09 above what the first session spent: a new process (a restart) reads the
    // first session from the history; without it the second could spend the whole day cap.
    let day = used1 + 0.09;
    let (code, _, err) = budget(&dir, &["set", "--day-credits", &format!("{day:.6}")]);
    assert_eq!(code, 0, "{err}");
    let (code, events, stderr) = connect(&lab, &dir, &env, &["--service", "orbnet"])
        .exit()
        .await;
    assert_cap_end(code, &events, &stderr, "day");
    let used2 = c1 - orbnet_credits(&lab, "demo@orbnet.lab").await;
    assert!(used2 > 0.0 && used2 <= 0.09 + 1e-6, "{used2}");
    assert!(used1 + used2 <= day + 1e-6, "{used1} + {used2} > {day}");
    let (code, show, _) = budget(&dir, &["show", "--json"]);
    assert_eq!(code, 0);
    let show: Value = serde_json::from_str(&show).unwrap();
    assert!((show["orbnet"]["day"].as_f64().unwrap() - day).abs() < 1e-6);
    let spent = used1 + used2;
    // Less left than the end's margin (2 s at 1.5/min = 0.05): refused after authorize, no start.
    let (code, _, err) = budget(
        &dir,
        &["set", "--day-credits", &format!("{:.6}", spent + 0.02)],
    );
    assert_eq!(code, 0, "{err}");
    let starts = session_calls(&lab.requests().await, "start").len();
    let (code, events, stderr) = connect(&lab, &dir, &env, &["--service", "orbnet"])
        .exit()
        .await;
    assert_eq!(code, 2, "{stderr} {events:?}");
    let failed = events.iter().find(|e| e["event"] == "failed").unwrap();
    assert_eq!(failed["cause"]["detail"]["at_start"], true, "{failed}");
    assert!(
        failed["message"].as_str().unwrap().contains("day cap of"),
        "{failed}"
    );
    assert_eq!(session_calls(&lab.requests().await, "start").len(), starts);
    // Lower the day cap to what was spent: the next connect is refused before any start.
    let (code, _, err) = budget(
        &dir,
        &["set", "--day-credits", &format!("{:.6}", spent - 0.001)],
    );
    assert_eq!(code, 0, "{err}");
    let starts = session_calls(&lab.requests().await, "start").len();
    let (code, events, stderr) = connect(&lab, &dir, &env, &["--service", "orbnet"])
        .exit()
        .await;
    assert_eq!(code, 2, "{stderr} {events:?}");
    assert!(stderr.contains("day cap of"), "{stderr}");
    assert!(stderr.contains("resets at"), "{stderr}");
    assert_eq!(session_calls(&lab.requests().await, "start").len(), starts);
    // Cleared: connecting works again (and is ended by a one-off session cap).
    assert_eq!(budget(&dir, &["clear"]).0, 0);
    let (code, events, stderr) = connect(
        &lab,
        &dir,
        &env,
        &["--service", "orbnet", "--cap-credits", "0.11"],
    )
    .exit()
    .await;
    assert_cap_end(code, &events, &stderr, "session");
}

#[tokio::test(flavor = "multi_thread")]
async fn tunnelbyte_session_cap_stops_before_the_cost_passes_it_and_exits_4() {
    let lab = lab().await;
    let dir = Dir::new("captb");
    let token = tb_token(&lab, "paid").await;
    // 0.002 EUR = 200 millicents; the time leg is 1000 millicents/min (16.7/s); 1 s polls with a
    // 2 s lag margin: the stop comes once the cost passes about 150.
    let mut cli = connect(
        &lab,
        &dir,
        &[("FERRY_TUNNELBYTE_TOKEN", &token)],
        &["fsn", "--service", "tunnelbyte", "--cap-eur", "0.002"],
    );
    let c = cli
        .wait_event("connected", |e| e["event"] == "connected")
        .await;
    let id = c["session_id"].as_str().unwrap().to_string();
    let (code, events, stderr) = cli.exit().await;
    assert_cap_end(code, &events, &stderr, "session");
    assert_eq!(count(&events, "cap_stop_near"), 1, "{events:?}");
    let reqs = lab.requests().await;
    assert!(reqs.iter().any(|r| r["method"] == "DELETE"
        && r["path"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/sessions/{id}"))));
    // What the service charged, after the DELETE.
    let s: Value = lab
        .http()
        .get(format!("{}/sessions/{id}", lab.urls.tunnelbyte))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(s["terminated_at"].is_string(), "{s}");
    let cost =
        s["cost_time_millicents"].as_u64().unwrap() + s["cost_bytes_millicents"].as_u64().unwrap();
    assert!(
        cost <= 200,
        "the service charged {cost} > 200 millicents: {s}"
    );
    assert!(cost >= 100, "stopped too early: {cost}");
    // The history keeps the final cost (read after the DELETE): the day and month totals.
    let out = std::process::Command::new(ferry_bin())
        .args(["history", "--json"])
        .env("FERRY_SECRETS", "memory")
        .env("FERRY_DATA_DIR", dir.0.join("data"))
        .output()
        .unwrap();
    let hist: Value = serde_json::from_slice(&out.stdout).unwrap();
    let row = &hist["sessions"][0];
    assert_eq!(row["end_reason"], "cap_reached", "{row}");
    assert_eq!(row["cost_millicents"].as_u64(), Some(cost), "{row}");
}

#[tokio::test(flavor = "multi_thread")]
async fn cap_flags_are_checked_against_the_service() {
    let lab = lab().await;
    let dir = Dir::new("capflags");
    let (code, _, stderr) = connect(&lab, &dir, &[], &["--service", "orbnet", "--cap-eur", "1"])
        .exit()
        .await;
    assert_eq!(code, 1);
    assert!(stderr.contains("--cap-eur is for tunnelbyte"), "{stderr}");
    let (code, _, err) = budget(&dir, &["set", "--day-eur", "0"]);
    assert_ne!(code, 0);
    assert!(
        err.contains("more than zero") || err.contains("not an amount"),
        "{err}"
    );
    let (code, out, _) = budget(&dir, &["set", "--month-eur", "2.5"]);
    assert_eq!(code, 0);
    assert!(out.contains("2.50 (service currency)"), "{out}");
}
