//! The commands and events through Tauri's mock runtime (real IPC, real ACL, no display needed),
//! driving the simulated engine; and the contract's command list against what is registered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry_desktop::contract::{Phase, Snapshot, COMMANDS};
use ferry_desktop::shell::{setup_app, Shell, ShellOptions};
use ferry_desktop::sim::{SimBackend, SimConfig};
use serde_json::{json, Value};
use tauri::test::{get_ipc_response, mock_builder, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::{Manager, WebviewWindow};

struct App {
    app: tauri::App<MockRuntime>,
    window: WebviewWindow<MockRuntime>,
}

fn app(config: SimConfig) -> App {
    let backend = Arc::new(SimBackend::new(config, false));
    let mut app = setup_app(
        mock_builder(),
        backend,
        ShellOptions {
            tray: false,
            notify: false,
            minimized: false,
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
    App { app, window }
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

    fn wait_for(&self, what: &str, pred: impl Fn(&Snapshot) -> bool) -> Snapshot {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let s = self.snapshot();
            if pred(&s) {
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "waited 10 s for {what}; last {s:?}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn notices(&self) -> Vec<String> {
        self.app.state::<Arc<Shell>>().notice_summaries()
    }
}

fn fast(signed_in: bool) -> SimConfig {
    SimConfig {
        tick: Duration::from_millis(40),
        transition: Duration::from_millis(40),
        credits_per_tick: 5.0,
        signed_in,
    }
}

#[test]
fn every_contract_command_is_registered_and_nothing_else_answers() {
    let a = app(fast(false));
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
    let a = app(fast(false));
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
            json!({"request": {"region": {"service": "orbnet", "id": "srv-par-1"}, "mode": "app"}}),
        )
        .unwrap_err();
    assert_eq!(err["code"], "not_signed_in");

    let out = a.ok(
        "sign_in",
        json!({"request": {"service": "orbnet", "email": "alice@example.com", "password": "pw", "totp": null}}),
    );
    assert_eq!(out["outcome"], "signed_in");
    assert_eq!(out["account"]["service"], "orbnet");

    let regions = a.ok("list_regions", json!({}));
    assert!(regions
        .as_array()
        .unwrap()
        .iter()
        .any(|g| g["service"] == "orbnet"));

    let c = a.ok(
        "connect",
        json!({"request": {"region": {"service": "orbnet", "id": "srv-par-1"}, "mode": "app"}}),
    );
    assert_eq!(c["phase"], "connecting");
    let s = a.wait_for("credits to fall", |s| {
        matches!(&s.live, Some(l) if matches!(l.meter, ferry_desktop::contract::MeterView::Credits { spent, .. } if spent > 0.0))
    });
    assert_eq!(s.connection.phase, Phase::Connected);
    assert_eq!(
        s.last_region.as_ref().map(|r| r.id.as_str()),
        Some("srv-par-1")
    );

    a.ok("disconnect", json!({}));
    a.wait_for("disconnected", |s| {
        s.connection.phase == Phase::Disconnected
    });
    let h = a.ok("get_history", json!({}));
    let rows = h["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["end_reason"], "user");
    assert!(rows[0]["credits_used"].as_f64().unwrap() > 0.0);
}

#[test]
fn credits_run_out_into_the_error_state_with_one_notification() {
    let a = app(fast(true)); // 25 credits, 5 per tick
    a.ok(
        "connect",
        json!({"request": {"region": {"service": "orbnet", "id": "srv-osl-1"}, "mode": "app"}}),
    );
    let s = a.wait_for("error", |s| s.connection.phase == Phase::Error);
    let e = s.connection.error.unwrap();
    assert_eq!(e.code, "credits_depleted");
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
    // No credits left: connecting again is refused with a clear error.
    let err = a
        .call(
            "connect",
            json!({"request": {"region": {"service": "orbnet", "id": "srv-osl-1"}, "mode": "app"}}),
        )
        .unwrap_err();
    assert_eq!(err["code"], "insufficient_credits");
}

#[test]
fn workspace_session_disconnect_leaves_the_active_list() {
    let a = app(fast(true));
    let w = a.ok("list_workspaces", json!({}));
    let active: Vec<String> = w["sessions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["active"] == true)
        .map(|s| s["id"].as_str().unwrap().to_string())
        .collect();
    assert!(!active.is_empty());
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
        .call("disconnect_workspace_session", json!({"id": active[0]}))
        .unwrap_err();
    assert_eq!(err["code"], "invalid_input");
    let err = a
        .call("launch_workspace", json!({"id": "nope"}))
        .unwrap_err();
    assert_eq!(err["code"], "not_found");
}

#[test]
fn settings_are_validated() {
    let a = app(fast(false));
    let mut s = serde_json::to_value(a.snapshot().settings).unwrap();
    s["base_urls"]["orbnet"] = json!("javascript:alert(1)");
    let err = a
        .call("save_settings", json!({"settings": s.clone()}))
        .unwrap_err();
    assert_eq!(err["code"], "invalid_input");
    s["base_urls"]["orbnet"] = json!("http://127.0.0.1:9/orbnet/api/v1");
    s["close_to_tray"] = json!(false);
    let saved = a.ok("save_settings", json!({"settings": s}));
    assert_eq!(saved["close_to_tray"], false);
    assert!(!a.snapshot().settings.close_to_tray);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn demo_engine_signs_in_to_the_in_process_lab() {
    use ferry_desktop::backend::Backend;
    let sim = SimBackend::new(fast(false), true);
    let secrets: ferry_core::secrets::SharedSecretStore =
        Arc::new(ferry_core::secrets::MemoryStore::new());
    let live = ferry_desktop::live::demo(sim, secrets.clone())
        .await
        .expect("demo engine");
    let snap = live.snapshot().await;
    assert!(snap.demo);
    assert!(snap
        .settings
        .base_urls
        .orbnet
        .starts_with("http://127.0.0.1:"));
    for a in &snap.accounts {
        assert!(a.signed_in, "{a:?}");
    }
    // OrbNET's lab is real: its token went to the secret store, and its servers are listed.
    let orb = snap
        .accounts
        .iter()
        .find(|a| a.service == ferry_desktop::contract::Service::Orbnet)
        .unwrap();
    if !orb.label.as_deref().unwrap_or("").contains("simulated") {
        assert!(secrets
            .get(ferry_core::services::ServiceKind::Orbnet)
            .await
            .unwrap()
            .is_some());
    }
    let groups = live.regions().await;
    let first = groups
        .iter()
        .flat_map(|g| g.regions.iter())
        .find(|r| r.available)
        .expect("a region")
        .clone();
    assert!(live.workspaces().await.is_ok());
    live.connect(ferry_desktop::contract::ConnectRequest {
        region: first.reference,
        mode: ferry_desktop::contract::TunnelMode::App,
    })
    .await
    .expect("connect");
    live.disconnect().await.expect("disconnect");
}
