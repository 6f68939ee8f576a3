//! `ferry_core::app::App` driven against the in-process lab, as every front end drives it: sign
//! in, regions, connect / switch / disconnect with a real app-mode WireGuard tunnel to the lab's
//! exit node, a refused start (402), a session ended by the server, and the one event stream.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::Arc;
use std::time::Duration;

use ferry_core::app::contract::{
    AppEvent, BaseUrls, ConnectRequest, MeterView, Phase, RegionRef, SignInOutcome, SignInRequest,
    TunnelMode, WarningKind,
};
use ferry_core::app::{save_budget, App, AppOptions};
use ferry_core::meter::caps::Budget;
use ferry_core::secrets::{MemoryStore, SharedSecretStore};
use ferry_core::services::ServiceKind;
use ferry_core::store::Store;
use serde_json::{json, Value};
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(30);

struct Rig {
    app: App,
    lab: ferry_lab::Lab,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

impl Rig {
    async fn new() -> Rig {
        let lab = ferry_lab::Lab::start(ferry_lab::LabConfig::default())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let mut opts = AppOptions::from_env(dir.path().join("data"));
        opts.heartbeat = Some(Duration::from_secs(1));
        opts.status_poll = Duration::from_secs(1);
        opts.workspace_refresh = Duration::from_secs(1);
        opts.proxy = "127.0.0.1:0".parse().unwrap();
        opts.autostart_dir = Some(dir.path().join("autostart"));
        let secrets: SharedSecretStore = Arc::new(MemoryStore::new());
        let app = App::open(opts, secrets, false).await.unwrap();
        let urls = lab.urls().clone();
        app.set_base_urls(BaseUrls {
            orbnet: urls.orbnet,
            tunnelbyte: urls.tunnelbyte,
            neosc: urls.neosc,
        })
        .await
        .unwrap();
        Rig {
            app,
            lab,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    async fn control(&self, path: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.lab.urls().control);
        let req = match body {
            Some(b) => self.http.post(url).json(&b),
            None => self.http.get(url),
        };
        req.send().await.unwrap().json().await.unwrap()
    }

    async fn accounts(&self) -> Value {
        self.control("/accounts", None).await
    }

    async fn sign_in_orbnet(&self, email: &str) {
        let acc = self.accounts().await;
        let a = acc["orbnet"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["email"] == email)
            .unwrap()
            .clone();
        let out = self
            .app
            .sign_in(SignInRequest::Orbnet {
                email: email.into(),
                password: a["password"].as_str().unwrap().into(),
                totp: None,
            })
            .await
            .unwrap();
        assert!(matches!(out, SignInOutcome::SignedIn { .. }), "{out:?}");
    }

    async fn sign_in_tunnelbyte(&self, tier: &str) {
        let acc = self.accounts().await;
        let token = acc["tunnelbyte"]
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["tier"] == tier)
            .unwrap()["token"]
            .as_str()
            .unwrap()
            .to_string();
        self.app
            .sign_in(SignInRequest::Tunnelbyte { token: Some(token) })
            .await
            .unwrap();
    }

    async fn region(&self, service: ServiceKind, nth: usize) -> RegionRef {
        let groups = self.app.regions().await;
        let g = groups.iter().find(|g| g.service == service).unwrap();
        g.regions
            .iter()
            .filter(|r| r.available)
            .nth(nth)
            .unwrap()
            .reference
            .clone()
    }

    async fn connect(&self, region: RegionRef) {
        self.app
            .connect(ConnectRequest {
                region,
                mode: TunnelMode::App,
            })
            .await
            .unwrap();
    }

    async fn requests(&self) -> Vec<Value> {
        self.control("/requests", None).await["requests"]
            .as_array()
            .cloned()
            .unwrap_or_default()
    }
}

/// Reads events until one satisfies `pred` (bounded).
async fn until(
    rx: &mut broadcast::Receiver<AppEvent>,
    what: &str,
    pred: impl Fn(&AppEvent) -> bool,
) -> AppEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Ok(e) if pred(&e) => return e,
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => panic!("stream closed before {what}"),
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no {what} within {WAIT:?}"))
}

fn phase(p: Phase) -> impl Fn(&AppEvent) -> bool {
    move |e| matches!(e, AppEvent::Connection(c) if c.phase == p)
}

#[tokio::test(flavor = "multi_thread")]
async fn orbnet_connect_switch_disconnect_bills_each_session_once() {
    let rig = Rig::new().await;
    let mut rx = rig.app.subscribe();
    rig.sign_in_orbnet("demo@orbnet.lab").await;
    let first = rig.region(ServiceKind::Orbnet, 0).await;
    let second = rig.region(ServiceKind::Orbnet, 1).await;
    rig.connect(first.clone()).await;
    until(&mut rx, "connected", phase(Phase::Connected)).await;
    until(&mut rx, "a credits tick", |e| {
        matches!(e, AppEvent::Live(Some(l)) if matches!(l.meter, MeterView::Credits { spent, .. } if spent > 0.0))
    })
    .await;
    // Switch: the first session ends, the second starts, on the same subscription.
    let view = rig
        .app
        .switch(ConnectRequest {
            region: second.clone(),
            mode: TunnelMode::App,
        })
        .await
        .unwrap();
    assert_eq!(view.region.as_ref(), Some(&second));
    until(&mut rx, "connected again", |e| {
        matches!(e, AppEvent::Connection(c) if c.phase == Phase::Connected && c.region.as_ref() == Some(&second))
    })
    .await;
    rig.app.disconnect().await.unwrap();
    until(&mut rx, "disconnected", phase(Phase::Disconnected)).await;
    let h = rig.app.history().await.unwrap();
    assert_eq!(h.rows.len(), 2, "{:?}", h.rows);
    for r in &h.rows {
        assert_eq!(r.end_reason.as_deref(), Some("user_initiated"), "{r:?}");
    }
    let reqs = rig.requests().await;
    let count = |p: &str| {
        reqs.iter()
            .filter(|r| r["path"].as_str().unwrap_or("").ends_with(p))
            .count()
    };
    assert_eq!(count("/vpn/session/start"), 2);
    assert_eq!(
        count("/vpn/session/end"),
        2,
        "each session ended exactly once"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn orbnet_without_credits_is_refused_with_a_typed_cause() {
    let rig = Rig::new().await;
    rig.sign_in_orbnet("empty@orbnet.lab").await;
    let mut rx = rig.app.subscribe();
    rig.connect(rig.region(ServiceKind::Orbnet, 0).await).await;
    let e = until(&mut rx, "the error", phase(Phase::Error)).await;
    let AppEvent::Connection(c) = e else {
        unreachable!()
    };
    let err = c.error.unwrap();
    assert_eq!(err.code, "insufficient_credits", "{err:?}");
    assert!(err.action.contains("Top up"), "{err:?}");
    assert!(rig.app.snapshot().await.live.is_none());
}

#[tokio::test(flavor = "multi_thread")]
async fn tunnelbyte_session_ended_by_the_server_lands_in_error_and_history() {
    let rig = Rig::new().await;
    rig.sign_in_tunnelbyte("paid").await;
    let mut rx = rig.app.subscribe();
    rig.connect(rig.region(ServiceKind::Tunnelbyte, 0).await)
        .await;
    until(&mut rx, "connected", phase(Phase::Connected)).await;
    until(&mut rx, "a cost tick", |e| {
        matches!(e, AppEvent::Live(Some(l)) if matches!(l.meter, MeterView::Quota { cost_millicents: Some(_), .. }))
    })
    .await;
    // The session id from the status polls the client made.
    let id = rig
        .requests()
        .await
        .iter()
        .filter(|r| r["method"] == "GET")
        .filter_map(|r| {
            r["path"]
                .as_str()
                .and_then(|p| p.rsplit_once("/v1/sessions/"))
                .map(|(_, id)| id.to_string())
        })
        .next()
        .expect("a status poll");
    rig.control(
        "/sessions/terminate",
        Some(json!({"service": "tunnelbyte", "id": id, "reason": "admin_terminated"})),
    )
    .await;
    let e = until(&mut rx, "the error", phase(Phase::Error)).await;
    let AppEvent::Connection(c) = e else {
        unreachable!()
    };
    assert_eq!(c.error.unwrap().code, "server_ended:admin_terminated");
    let h = until(&mut rx, "history", |e| matches!(e, AppEvent::History(_))).await;
    let AppEvent::History(h) = h else {
        unreachable!()
    };
    assert!(h.rows[0].end_reason.is_some(), "{:?}", h.rows[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn one_subscription_sees_regions_meter_warnings_and_workspaces() {
    let rig = Rig::new().await;
    let mut rx = rig.app.subscribe();
    // 3 credits at 1.5 a minute: the core warns at its 2-minute threshold.
    rig.sign_in_orbnet("low@orbnet.lab").await;
    let acc = rig.accounts().await;
    let neosc = acc["neosc"][0].clone();
    rig.app
        .sign_in(SignInRequest::Neosc {
            server: Some(rig.lab.urls().neosc.clone()),
            email: neosc["email"].as_str().unwrap().into(),
            password: neosc["password"].as_str().unwrap().into(),
        })
        .await
        .unwrap();
    let region = rig.region(ServiceKind::Orbnet, 0).await;
    rig.connect(region).await;
    let (mut regions, mut meter, mut warning, mut workspaces) = (false, false, false, false);
    tokio::time::timeout(WAIT, async {
        while !(regions && meter && warning && workspaces) {
            match rx.recv().await {
                Ok(AppEvent::Regions(g)) => regions |= !g.is_empty(),
                Ok(AppEvent::Live(Some(l))) => {
                    meter |= matches!(l.meter, MeterView::Credits { left, .. } if left < 3.0)
                }
                Ok(AppEvent::Warning(w)) => {
                    assert_eq!(w.kind, WarningKind::CreditsLow);
                    assert_eq!(w.threshold, 2.0, "the most severe threshold crossed");
                    warning = true;
                }
                Ok(AppEvent::Workspaces(w)) => workspaces |= !w.workspaces.is_empty(),
                Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => {}
                Err(broadcast::error::RecvError::Closed) => break,
            }
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!("regions {regions} meter {meter} warning {warning} workspaces {workspaces}")
    });
    // The NeoSC address asked at sign-in is kept in settings.
    assert_eq!(
        rig.app.snapshot().await.settings.base_urls.neosc,
        rig.lab.urls().neosc
    );
    rig.app.disconnect().await.unwrap();
    rig.app.wait_settled(WAIT).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_window_honours_the_stored_budget_and_refuses_a_reached_cap() {
    let rig = Rig::new().await;
    rig.sign_in_orbnet("demo@orbnet.lab").await;
    // The budget as `ferry budget set --session-credits 0.11` stores it (the same data dir).
    let store = Store::open_in(&rig._dir.path().join("data")).await.unwrap();
    let session_cap = Budget {
        session_credits: Some(0.11),
        ..Budget::default()
    };
    save_budget(&store, &session_cap).await.unwrap();
    let before = demo_credits(&rig).await;
    let mut rx = rig.app.subscribe();
    let region = rig.region(ServiceKind::Orbnet, 0).await;
    rig.connect(region.clone()).await;
    // The live panel counts down from the cap in force.
    let live = until(&mut rx, "the live panel", |e| {
        matches!(e, AppEvent::Live(Some(_)))
    })
    .await;
    let AppEvent::Live(Some(live)) = live else {
        unreachable!()
    };
    let cap = live.cap.expect("the session cap is shown");
    assert_eq!(
        (cap.scope.as_str(), cap.unit.as_str()),
        ("session", "credits")
    );
    assert!((cap.left_at_start - 0.11).abs() < 1e-9, "{cap:?}");
    let w = until(
        &mut rx,
        "the cap warning",
        |e| matches!(e, AppEvent::Warning(w) if w.kind == WarningKind::CapStop),
    )
    .await;
    let AppEvent::Warning(w) = w else {
        unreachable!()
    };
    assert!(w.message.contains("session cap of 0.11 credits"), "{w:?}");
    let e = until(&mut rx, "the error", phase(Phase::Error)).await;
    let AppEvent::Connection(c) = e else {
        unreachable!()
    };
    let err = c.error.unwrap();
    assert_eq!(err.code, "cap_reached", "{err:?}");
    let after = demo_credits(&rig).await;
    assert!(before - after <= 0.11 + 1e-9, "charged {}", before - after);
    let ends: Vec<_> = rig
        .requests()
        .await
        .into_iter()
        .filter(|r| {
            r["path"]
                .as_str()
                .unwrap_or("")
                .ends_with("/vpn/session/end")
        })
        .collect();
    assert_eq!(ends.len(), 1);
    assert_eq!(ends[0]["body"]["disconnect_reason"], "user_initiated");
    // A day cap below what that session spent: the next connect is refused, naming it.
    let day_cap = Budget {
        day_credits: Some(0.001),
        ..Budget::default()
    };
    save_budget(&store, &day_cap).await.unwrap();
    let err = rig
        .app
        .connect(ConnectRequest {
            region,
            mode: TunnelMode::App,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), "cap_reached", "{err}");
    assert!(
        err.to_string().contains("day cap of 0.001 credits"),
        "{err}"
    );
    assert!(err.to_string().contains("resets at"), "{err}");
}

async fn demo_credits(rig: &Rig) -> f64 {
    rig.accounts().await["orbnet"]
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["email"] == "demo@orbnet.lab")
        .unwrap()["credits"]
        .as_f64()
        .unwrap()
}

/// A `kioslaverc` value through KDE's own tool ("<absent>" when the key is not there).
fn kde(key: &str) -> String {
    let out = std::process::Command::new("kreadconfig5")
        .args([
            "--file",
            "kioslaverc",
            "--group",
            "Proxy Settings",
            "--key",
            key,
            "--default",
            "<absent>",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn gsettings(schema: &str, key: &str) -> String {
    let out = std::process::Command::new("gsettings")
        .args(["get", schema, key])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test]
async fn the_desktop_proxy_points_at_ferry_while_connected_and_comes_back_after() {
    // gsettings keeps values across processes only through dconf on a session bus (the test
    // environment's private one): without it there is nothing real to check.
    let has_gsettings = std::process::Command::new("gsettings")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if std::env::var_os("DBUS_SESSION_BUS_ADDRESS").is_none() || !has_gsettings {
        eprintln!("skipping the desktop proxy test: needs gsettings and a D-Bus session (scripts/desktop-env.sh)");
        return;
    }
    let before_mode = gsettings("org.gnome.system.proxy", "mode");
    let before_port = gsettings("org.gnome.system.proxy.socks", "port");
    // KDE where its tools are (scripts/deps.sh installs them): the user's own proxy type.
    let with_kde = ferry_core::app::desktop_proxy::Kconfig::find().is_some();
    if with_kde {
        let status = std::process::Command::new("kwriteconfig5")
            .args([
                "--file",
                "kioslaverc",
                "--group",
                "Proxy Settings",
                "--key",
                "ProxyType",
                "4",
            ])
            .status()
            .unwrap();
        assert!(status.success());
        assert_eq!(kde("socksProxy"), "<absent>");
    } else {
        eprintln!(
            "KDE part skipped: no kreadconfig5/kwriteconfig5 (scripts/deps.sh installs them)"
        );
    }
    let rig = Rig::new().await;
    rig.sign_in_tunnelbyte("free").await;
    let mut settings = rig.app.snapshot().await.settings;
    settings.desktop_proxy = true;
    rig.app.save_settings(settings).await.unwrap();
    let mut rx = rig.app.subscribe();
    rig.connect(rig.region(ServiceKind::Tunnelbyte, 0).await)
        .await;
    let live = until(
        &mut rx,
        "the proxy address",
        |e| matches!(e, AppEvent::Live(Some(l)) if l.proxy.is_some()),
    )
    .await;
    let AppEvent::Live(Some(live)) = live else {
        unreachable!()
    };
    let socks: std::net::SocketAddr = live.proxy.unwrap().parse().unwrap();
    // Applied right after the Connected event: await it rather than guess a delay.
    let deadline = std::time::Instant::now() + WAIT;
    // The mode is switched last, once the addresses are in.
    while gsettings("org.gnome.system.proxy.socks", "port") != socks.port().to_string()
        || gsettings("org.gnome.system.proxy", "mode") != "'manual'"
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the desktop proxy was never set"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(gsettings("org.gnome.system.proxy", "mode"), "'manual'");
    assert_eq!(
        gsettings("org.gnome.system.proxy.socks", "host"),
        "'127.0.0.1'"
    );
    let http_port: u16 = gsettings("org.gnome.system.proxy.http", "port")
        .parse()
        .unwrap();
    assert_ne!(http_port, 0, "the HTTP proxy is set too");
    if with_kde {
        // Set right after GNOME's, the proxy type last.
        let deadline = std::time::Instant::now() + WAIT;
        while kde("ProxyType") != "1" {
            assert!(
                std::time::Instant::now() < deadline,
                "KDE's proxy never set"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(
            kde("socksProxy"),
            format!("socks://127.0.0.1 {}", socks.port())
        );
        assert_eq!(kde("httpProxy"), format!("http://127.0.0.1 {http_port}"));
    }
    rig.app.disconnect().await.unwrap();
    rig.app.wait_settled(WAIT).await;
    let deadline = std::time::Instant::now() + WAIT;
    while gsettings("org.gnome.system.proxy", "mode") != before_mode {
        assert!(
            std::time::Instant::now() < deadline,
            "the desktop proxy was never restored"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        gsettings("org.gnome.system.proxy.socks", "port"),
        before_port
    );
    if with_kde {
        let deadline = std::time::Instant::now() + WAIT;
        while kde("ProxyType") != "4" {
            assert!(
                std::time::Instant::now() < deadline,
                "KDE: the user's proxy type never came back"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(kde("socksProxy"), "<absent>", "and Ferry's keys are gone");
        assert_eq!(kde("httpProxy"), "<absent>");
    }
}
