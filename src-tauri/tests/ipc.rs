//! The commands and events through Tauri's mock runtime (real IPC, real ACL, no display needed),
//! driving the real engine against an in-process lab: sign-in, a real app-mode WireGuard tunnel
//! to the lab's exit node, credits metered by heartbeats, history in SQLite; and the contract's
//! command list against what is registered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_core::app::{App as CoreApp, AppOptions};
use ferry_core::secrets::{MemoryStore, SharedSecretStore};
use ferry_desktop::contract::{MeterView, Phase, Snapshot, COMMANDS};
use ferry_desktop::demo;
use ferry_desktop::shell::{setup_app, Shell, ShellOptions};
use serde_json::{json, Value};
use tauri::test::{get_ipc_response, mock_builder, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::{Manager, WebviewWindow};

struct App {
    app: tauri::App<MockRuntime>,
    window: WebviewWindow<MockRuntime>,
    control: String,
    _lab: ferry_lab::Lab,
    _dir: tempfile::TempDir,
}

fn options(dir: &std::path::Path) -> AppOptions {
    let mut o = AppOptions::from_env(dir.to_path_buf());
    o.heartbeat = Some(Duration::from_secs(1));
    o.status_poll = Duration::from_secs(1);
    o.proxy = "127.0.0.1:0".parse().unwrap();
    o.autostart_dir = Some(dir.join("autostart"));
    o
}

/// An app on a fresh engine; `demo` signs in to the lab's seeded accounts, else the engine only
/// points at a lab and nobody is signed in.
fn app(demo_mode: bool) -> App {
    let dir = tempfile::tempdir().unwrap();
    let opts = options(dir.path());
    let (engine, control, lab) = tauri::async_runtime::block_on(async {
        if demo_mode {
            let urls_file = dir.path().join("urls.json");
            let (engine, lab) = demo::start(opts, Some(urls_file.clone()))
                .await
                .expect("demo engine");
            let urls: Value =
                serde_json::from_str(&std::fs::read_to_string(&urls_file).unwrap()).unwrap();
            (engine, urls["control"].as_str().unwrap().to_string(), lab)
        } else {
            let lab = ferry_lab::Lab::start(ferry_lab::LabConfig::default())
                .await
                .unwrap();
            let urls = lab.urls().clone();
            let secrets: SharedSecretStore = Arc::new(MemoryStore::new());
            let engine = CoreApp::open(opts, secrets, false).await.unwrap();
            engine
                .set_base_urls(ferry_desktop::contract::BaseUrls {
                    orbnet: urls.orbnet,
                    tunnelbyte: urls.tunnelbyte,
                    neosc: urls.neosc,
                })
                .await
                .unwrap();
            (engine, urls.control, lab)
        }
    });
    let mut app = setup_app(
        mock_builder(),
        engine,
        ShellOptions {
            tray: false,
            notify: false,
            minimized: false,
            quit_on_signals: false,
        },
    )
    .build(tauri::generate_context!())
    .expect("mock app");
    // Runs the app's setup (the event pump) without an event loop; a no-op on the mock runtime.
    #[allow(deprecated)]
    app.run_iteration(|_, _| {});
    let window = match app.get_webview_window("main") {
        Some(w) => w,
        None => tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
            .build()
            .unwrap(),
    };
    App {
        app,
        window,
        control,
        _lab: lab,
        _dir: dir,
    }
}

impl App {
    fn call(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        get_ipc_response(
            &self.window,
            InvokeRequest {
                cmd: cmd.into(),
                callback: tauri::ipc::CallbackFn(0),
                error: tauri::ipc::CallbackFn(1),
                url: "tauri://localhost".parse().unwrap(),
                body: tauri::ipc::InvokeBody::Json(args),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
        .map(|b| b.deserialize::<Value>().unwrap())
    }

    fn ok(&self, cmd: &str, args: Value) -> Value {
        self.call(cmd, args)
            .unwrap_or_else(|e| panic!("{cmd} failed: {e}"))
    }

    fn snapshot(&self) -> Snapshot {
        serde_json::from_value(self.ok("get_snapshot", json!({}))).unwrap()
    }

    /// Polls the snapshot until `pred` holds (bounded; the lab's heartbeats come every second).
    fn wait_for(&self, what: &str, pred: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let s = self.snapshot();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "waited 20 s for {what}; last {s:?}"
            );
            std::thread::sleep(Duration::from_millis(25));
        }
    }

    fn notices(&self) -> Vec<String> {
        self.app.state::<Arc<Shell>>().notice_summaries()
    }

    fn lab(&self, path: &str, body: Value) {
        let url = format!("{}/{path}", self.control);
        tauri::async_runtime::block_on(async move {
            reqwest::Client::new()
                .post(url)
                .json(&body)
                .send()
                .await
                .unwrap()
                .error_for_status()
                .unwrap();
        });
    }

    fn first_region(&self, service: &str) -> Value {
        let groups = self.ok("list_regions", json!({}));
        groups
            .as_array()
            .unwrap()
            .iter()
            .filter(|g| g["service"] == service)
            .flat_map(|g| g["regions"].as_array().unwrap().clone())
            .find(|r| r["available"] == true)
            .unwrap_or_else(|| panic!("no {service} region in {groups}"))
    }

    fn connect(&self, region: &Value) -> Value {
        self.ok(
            "connect",
            json!({"request": {"region": region["ref"].clone(), "mode": "app"}}),
        )
    }
}

fn spent(s: &Snapshot) -> f64 {
    match &s.live {
        Some(l) => match l.meter {
            MeterView::Credits { spent, .. } => spent,
            _ => 0.0,
        },
        None => 0.0,
    }
}

#[test]
fn every_contract_command_is_registered_and_nothing_else_answers() {
    let a = app(false);
    let unknown = a
        .call("no_such_command", json!({}))
        .unwrap_err()
        .to_string();
    assert!(!unknown.is_empty());
    for (name, _, _) in COMMANDS {
        if let Err(e) = a.call(name, json!({})) {
            let e = e.to_string();
            assert_ne!(
                e,
                unknown.replace("no_such_command", name),
                "{name} is in the contract but not registered"
            );
            assert!(!e.contains("not allowed"), "{name}: {e}");
        }
    }
}

#[test]
fn sign_in_connect_meter_disconnect_and_history() {
    let a = app(false);
    let s = a.snapshot();
    assert!(s.accounts.iter().all(|x| !x.signed_in));
    assert_eq!(s.connection.phase, Phase::Disconnected);

    // Bad input is a typed error, not a panic.
    let err = a
        .call(
            "sign_in",
            json!({"request": {"service": "orbnet", "email": " ", "password": "x", "totp": null}}),
        )
        .unwrap_err();
    assert_eq!(err["code"], "invalid_input");
    let err = a
        .call(
            "connect",
            json!({"request": {"region": {"service": "orbnet", "id": "1"}, "mode": "app"}}),
        )
        .unwrap_err();
    assert_eq!(err["code"], "not_signed_in");
    let err = a
        .call(
            "sign_in",
            json!({"request": {"service": "orbnet", "email": "demo@orbnet.lab", "password": "wrong", "totp": null}}),
        )
        .unwrap_err();
    assert_eq!(err["code"], "not_signed_in", "{err}");

    let out = a.ok(
        "sign_in",
        json!({"request": {"service": "orbnet", "email": "demo@orbnet.lab", "password": "orbnet-demo-pass", "totp": null}}),
    );
    assert_eq!(out["outcome"], "signed_in");
    assert_eq!(out["account"]["label"], "demo@orbnet.lab");

    let region = a.first_region("orbnet");
    let c = a.connect(&region);
    assert_eq!(c["phase"], "connecting");
    // A real tunnel to the lab's exit node: Connected only after its first handshake, then the
    // credits session's heartbeats (every second here) make the balance fall.
    let s = a.wait_for("credits to fall", |s| spent(s) > 0.0);
    assert_eq!(s.connection.phase, Phase::Connected);
    let live = s.live.clone().unwrap();
    assert!(live.proxy.is_some(), "app mode shows its proxy");
    assert_eq!(s.last_region.as_ref().unwrap().id, region["ref"]["id"]);
    let orb = s
        .accounts
        .iter()
        .find(|x| x.service == ferry_desktop::contract::Service::Orbnet)
        .unwrap();
    assert!(orb.credits.is_some(), "the balance follows the heartbeats");

    a.ok("disconnect", json!({}));
    a.wait_for("disconnected", |s| {
        s.connection.phase == Phase::Disconnected
    });
    let h = a.ok("get_history", json!({}));
    let rows = h["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{h}");
    assert_eq!(rows[0]["end_reason"], "user_initiated");
    assert_eq!(rows[0]["service"], "orbnet");
    assert!(rows[0]["credits_used"].as_f64().unwrap() > 0.0, "{h}");
    assert_eq!(h["days"].as_array().unwrap().len(), 1);
    let csv = a.ok("export_history_csv", json!({}));
    let text = std::fs::read_to_string(csv.as_str().unwrap()).unwrap();
    assert!(text.lines().count() >= 2, "{text}");
}

#[test]
fn credits_run_out_into_the_error_state_with_one_notification() {
    let a = app(true);
    // Warn with a minute left; the account holds 0.03 credits and loses 0.025 a second.
    let mut settings = serde_json::to_value(a.snapshot().settings).unwrap();
    settings["notify"]["credit_warn_minutes"] = json!([1.0]);
    a.ok("save_settings", json!({ "settings": settings }));
    let email = a
        .snapshot()
        .accounts
        .iter()
        .find(|x| x.service == ferry_desktop::contract::Service::Orbnet)
        .and_then(|x| x.label.clone())
        .unwrap();
    let region = a.first_region("orbnet");
    a.lab("orbnet/credits", json!({"email": email, "credits": 0.03}));
    a.connect(&region);
    let s = a.wait_for("error", |s| s.connection.phase == Phase::Error);
    let e = s.connection.error.unwrap();
    assert_eq!(e.code, "credits_depleted", "{e:?}");
    assert!(e.action.contains("Top up"));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !a.notices().contains(&"OrbNET credits depleted".to_string()) {
        assert!(
            Instant::now() < deadline,
            "no depleted notice: {:?}",
            a.notices()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let n = a.notices();
    assert_eq!(
        n.iter().filter(|x| *x == "OrbNET credits depleted").count(),
        1
    );
    assert!(n.contains(&"OrbNET credits low".to_string()), "{n:?}");
    let h = a.ok("get_history", json!({}));
    assert_eq!(h["rows"][0]["end_reason"], "credits_depleted", "{h}");
    // No credits left: connecting again ends in a clear error, not a session.
    a.connect(&region);
    let s = a.wait_for("refused", |s| {
        s.connection.phase == Phase::Error
            && s.connection.error.as_ref().map(|e| e.code.as_str()) == Some("insufficient_credits")
    });
    assert!(s.live.is_none());
}

#[test]
fn tunnelbyte_cost_and_quota_update_while_connected() {
    let a = app(true);
    let region = a.first_region("tunnelbyte");
    a.connect(&region);
    let s = a.wait_for("cost and quota", |s| {
        matches!(&s.live, Some(l) if matches!(&l.meter, MeterView::Quota { cost_millicents: Some(_), quotas, .. } if !quotas.is_empty()))
    });
    let MeterView::Quota { quotas, .. } = s.live.unwrap().meter else {
        unreachable!()
    };
    // The demo's paid token: cost per use, both windows unmetered but counted, with resets.
    assert_eq!(quotas.len(), 2);
    assert!(
        quotas.iter().all(|q| q.resets_at_ms.is_some()),
        "{quotas:?}"
    );
    a.ok("disconnect", json!({}));
    a.wait_for("disconnected", |s| {
        s.connection.phase == Phase::Disconnected
    });
    let h = a.ok("get_history", json!({}));
    assert_eq!(h["rows"][0]["service"], "tunnelbyte", "{h}");
}

#[test]
fn workspace_session_disconnect_leaves_the_active_list() {
    let a = app(true);
    let w = a.ok("list_workspaces", json!({}));
    let ws = w["workspaces"][0]["id"].as_str().unwrap().to_string();
    let _ = a.call("launch_workspace", json!({ "id": ws }));
    let w = a.ok("list_workspaces", json!({}));
    let active: Vec<String> = w["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["active"] == true)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!active.is_empty(), "{w}");
    let w = a.ok("disconnect_workspace_session", json!({"id": active[0]}));
    let still: Vec<&Value> = w["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["active"] == true)
        .collect();
    assert_eq!(still.len(), active.len() - 1);
    assert!(still.iter().all(|s| s["id"] != active[0].as_str()));
    let err = a
        .call("launch_workspace", json!({"id": "nope"}))
        .unwrap_err();
    assert_eq!(err["code"], "not_found", "{err}");
}

#[test]
fn settings_are_validated_and_kept() {
    let a = app(false);
    let mut s = serde_json::to_value(a.snapshot().settings).unwrap();
    s["base_urls"]["orbnet"] = json!("javascript:alert(1)");
    let err = a
        .call("save_settings", json!({"settings": s.clone()}))
        .unwrap_err();
    assert_eq!(err["code"], "invalid_input");
    // Plain http only to loopback: a token must never cross the network in clear.
    s["base_urls"]["orbnet"] = json!("http://api.orbai.world/api/v1");
    let err = a
        .call("save_settings", json!({"settings": s.clone()}))
        .unwrap_err();
    assert!(
        err["message"].as_str().unwrap().contains("https://"),
        "{err}"
    );
    s["base_urls"]["orbnet"] = json!("http://127.0.0.1:9/orbnet/api/v1");
    s["close_to_tray"] = json!(false);
    s["launch_at_login"] = json!(true);
    let saved = a.ok("save_settings", json!({"settings": s.clone()}));
    assert_eq!(saved["close_to_tray"], false);
    // Launch at login writes an XDG autostart entry that starts this binary minimized.
    let entry = a._dir.path().join("autostart/ferry.desktop");
    let text = std::fs::read_to_string(&entry).unwrap();
    assert!(text.contains("--minimized"), "{text}");
    s["launch_at_login"] = json!(false);
    a.ok("save_settings", json!({"settings": s}));
    assert!(!entry.exists());
    assert!(!a.snapshot().settings.close_to_tray);
    // Kept in the data dir's database: a new engine on it reads them back.
    let again = tauri::async_runtime::block_on(CoreApp::open(
        options(a._dir.path()),
        Arc::new(MemoryStore::new()),
        false,
    ))
    .unwrap();
    let snap = tauri::async_runtime::block_on(again.snapshot());
    assert!(!snap.settings.close_to_tray);
    assert_eq!(
        snap.settings.base_urls.orbnet,
        "http://127.0.0.1:9/orbnet/api/v1"
    );
}

#[test]
fn demo_engine_signs_in_to_the_in_process_lab() {
    let a = app(true);
    let snap = a.snapshot();
    assert!(snap.demo);
    assert!(snap
        .settings
        .base_urls
        .orbnet
        .starts_with("http://127.0.0.1:"));
    for acc in &snap.accounts {
        assert!(acc.signed_in, "{acc:?}");
    }
    let groups = a.ok("list_regions", json!({}));
    assert_eq!(groups.as_array().unwrap().len(), 2, "{groups}");
}
