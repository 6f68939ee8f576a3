//! Honest time against the in-process lab, on an injected clock: a 1000 s suspend bills none of
//! it and ends the old session with its awake seconds, then a new session starts — once found on
//! resume by the clock's suspend gap, once announced by a fake logind on a private D-Bus bus
//! (delay inhibitor, `PrepareForSleep`) — a tunnelbyte session is deleted before sleep, and crash
//! recovery bills no downtime.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::os::unix::net::UnixStream as StdUnixStream;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ferry_core::clock::{Clock, ManualClock};
use ferry_core::http::HttpSettings;
use ferry_core::meter::credits_driver::CreditsApi;
use ferry_core::services::orbnet::{LoginOutcome, LoginRequest, OrbnetClient};
use ferry_core::services::tunnelbyte::TunnelbyteClient;
use ferry_core::session::event::SessionEvent;
use ferry_core::session::logind;
use ferry_core::session::machine::{ErrorCause, State};
use ferry_core::session::orbnet::{OrbnetApi, OrbnetProvider, OrbnetSettings};
use ferry_core::session::ports::{Ledger, MemoryLedger, NewRow, TunnelFactory, TunnelHandle};
use ferry_core::session::recover::reconcile_orbnet;
use ferry_core::session::sleep::{self, SleepSender, GAP_POLL};
use ferry_core::session::supervisor::{
    spawn_watching, spawn_with_sleep, wait_for_state, NetworkChange, SupervisorHandle,
};
use ferry_core::session::tunnelbyte::{TunnelbyteProvider, TunnelbyteSettings};
use ferry_lab::ctx::lock;
use ferry_lab::orbnet::EndedSession;
use ferry_tunnel::wgconf::WgConfig;
use tokio::sync::broadcast;

const WAIT: Duration = Duration::from_secs(20);

/// A tunnel that is up at once (billing is what is tested here, not WireGuard).
#[derive(Clone, Default)]
struct Tunnels {
    ups: Arc<AtomicUsize>,
    downs: Arc<AtomicUsize>,
    /// Kills the running tunnel (a network change that breaks it).
    die: Arc<tokio::sync::Notify>,
}

struct Tunnel(Arc<AtomicUsize>, Arc<tokio::sync::Notify>);

impl TunnelFactory for Tunnels {
    type Tunnel = Tunnel;
    async fn up(&self, _: WgConfig) -> Result<Tunnel, ErrorCause> {
        self.ups.fetch_add(1, Ordering::SeqCst);
        Ok(Tunnel(self.downs.clone(), self.die.clone()))
    }
}

impl TunnelHandle for Tunnel {
    async fn first_handshake(&self, _: Duration) -> Result<(), String> {
        Ok(())
    }
    fn traffic(&self) -> (u64, u64) {
        (0, 0)
    }
    fn proxy(&self) -> Option<String> {
        None
    }
    async fn closed(&self) -> String {
        self.1.notified().await;
        "the default route changed".into()
    }
    async fn down(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

struct Rig {
    lab: ferry_lab::Lab,
    client: Arc<OrbnetClient>,
    clock: ManualClock,
    ledger: Arc<MemoryLedger>,
    tunnels: Tunnels,
}

impl Rig {
    async fn new() -> Rig {
        let lab = ferry_lab::Lab::start_without_data_plane(ferry_lab::LabConfig::default())
            .await
            .unwrap();
        let accounts = lock(&lab.ctx().orbnet).accounts();
        let account = accounts
            .as_array()
            .unwrap()
            .iter()
            .find(|a| a["two_factor"] == false && a["credits"].as_f64().unwrap() > 100.0)
            .unwrap()
            .clone();
        let client = OrbnetClient::new(&lab.urls().orbnet, HttpSettings::default()).unwrap();
        let out = client
            .login(&LoginRequest {
                email: account["email"].as_str().unwrap().into(),
                password: ferry_core::secrets::Secret::new(account["password"].as_str().unwrap()),
                totp_code: None,
                device_id: None,
            })
            .await
            .unwrap();
        assert!(matches!(out, LoginOutcome::SignedIn { .. }));
        Rig {
            lab,
            client: Arc::new(client),
            clock: ManualClock::at_fixed_date(),
            ledger: Arc::new(MemoryLedger::default()),
            tunnels: Tunnels::default(),
        }
    }

    fn spawn(
        &self,
        sleep: sleep::SleepSignals,
    ) -> (SupervisorHandle, broadcast::Receiver<SessionEvent>) {
        self.spawn_watching(sleep, None)
    }

    fn spawn_watching(
        &self,
        sleep: sleep::SleepSignals,
        network: Option<tokio::sync::mpsc::UnboundedReceiver<NetworkChange>>,
    ) -> (SupervisorHandle, broadcast::Receiver<SessionEvent>) {
        let (h, _task) = spawn_watching(self.provider(), self.clock.shared(), Some(sleep), network);
        let events = h.subscribe();
        (h, events)
    }

    /// The OrbNET provider the supervisor runs (on the lab, the fake tunnels and the clock).
    fn provider(&self) -> OrbnetProvider<OrbnetClient, Tunnels, MemoryLedger> {
        OrbnetProvider::new(
            self.client.clone(),
            self.tunnels.clone(),
            self.ledger.clone(),
            self.clock.shared(),
            OrbnetSettings::default(),
        )
    }

    fn ended(&self) -> Vec<EndedSession> {
        lock(&self.lab.ctx().orbnet).ended_sessions()
    }

    fn active_ids(&self) -> Vec<String> {
        lock(&self.lab.ctx().orbnet)
            .active_sessions()
            .into_iter()
            .map(|s| s.session_id)
            .collect()
    }

    /// `seconds_since_last` of every heartbeat and end the lab received for `session`.
    fn reported(&self, session: &str) -> Vec<(String, u64)> {
        self.lab
            .ctx()
            .requests
            .all()
            .into_iter()
            .filter(|r| r.body.as_ref().is_some_and(|b| b["session_id"] == session))
            .filter_map(|r| {
                let secs = r.body.as_ref()?.get("seconds_since_last")?.as_u64()?;
                Some((r.path.rsplit('/').next()?.to_string(), secs))
            })
            .collect()
    }
}

async fn next_event(
    events: &mut broadcast::Receiver<SessionEvent>,
    what: impl Fn(&SessionEvent) -> bool,
) -> SessionEvent {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = events.recv().await.unwrap();
            if what(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event not seen")
}

/// The next `SessionEnded`: its reason, billed seconds and connected seconds.
async fn next_session_ended(
    events: &mut broadcast::Receiver<SessionEvent>,
) -> (String, Option<u64>, f64) {
    match next_event(events, |e| matches!(e, SessionEvent::SessionEnded { .. })).await {
        SessionEvent::SessionEnded {
            reason,
            billed_secs,
            connected_secs,
            ..
        } => (reason, billed_secs, connected_secs),
        other => unreachable!("{other:?}"),
    }
}

/// Lets the reconnect's first back-off (2 s on the injected clock) pass, once its wait has
/// started (it starts right after its notice, with no await in between).
async fn after_reconnect_backoff(
    events: &mut broadcast::Receiver<SessionEvent>,
    clock: &ManualClock,
) {
    next_event(
        events,
        |e| matches!(e, SessionEvent::Notice { message } if message.contains("reconnecting")),
    )
    .await;
    clock.advance(Duration::from_secs(2));
}

async fn settle(h: &SupervisorHandle, f: impl Fn(&State) -> bool) -> State {
    wait_for_state(&mut h.state(), WAIT, f)
        .await
        .expect("state not reached")
}

fn connected_id(e: &SessionEvent) -> String {
    match e {
        SessionEvent::Connected { session_id, .. } => session_id.clone(),
        other => panic!("not a connection: {other:?}"),
    }
}

/// Connects and meters 90 awake seconds: one 60 s heartbeat acknowledged, 30 s since.
async fn connect_and_stay_awake_90s(
    rig: &Rig,
    h: &SupervisorHandle,
    events: &mut broadcast::Receiver<SessionEvent>,
) -> String {
    h.connect();
    let first =
        connected_id(&next_event(events, |e| matches!(e, SessionEvent::Connected { .. })).await);
    settle(h, State::meters).await;
    rig.clock.advance(Duration::from_secs(60));
    let beat = next_event(events, |e| matches!(e, SessionEvent::Heartbeat { .. })).await;
    assert_eq!(
        beat,
        SessionEvent::Heartbeat {
            seconds: 60,
            delivery: "acked"
        }
    );
    rig.clock.advance(Duration::from_secs(30));
    first
}

/// What both sleep paths must show: the old session ended with its 90 awake seconds (none of
/// the 1000 asleep), recorded as ended for sleep; exactly one new session billing.
fn assert_old_session_billed_awake_time_only(rig: &Rig, old: &str, new: &str) {
    assert_ne!(old, new, "a new session after the sleep");
    let reported = rig.reported(old);
    assert_eq!(
        reported,
        vec![("heartbeat".to_string(), 60), ("end".to_string(), 30)],
        "{reported:?}"
    );
    let ended = rig.ended();
    assert_eq!(ended.len(), 1, "one session ended");
    assert_eq!(ended[0].session.session_id, old);
    assert_eq!(ended[0].session.reported_secs, 90, "the awake seconds only");
    // Ferry's own reason goes out as OrbNET's nearest value.
    assert_eq!(ended[0].disconnect_reason, "user_initiated");
    assert_eq!(
        rig.active_ids(),
        vec![new.to_string()],
        "one session billing"
    );
    let rows = rig.ledger.rows();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[0].new.client_session_id, old);
    assert_eq!(rows[0].closed.as_deref(), Some("sleep"));
    assert_eq!(rows[1].new.client_session_id, new);
    assert!(rows[1].connected && rows[1].closed.is_none());
    assert_eq!(
        ferry_core::app::views::end_label(&ferry_core::store::EndReason::parse("sleep")),
        "Ended for sleep"
    );
}

#[tokio::test]
async fn a_suspend_found_on_resume_bills_none_of_it_and_starts_a_new_session() {
    let rig = Rig::new().await;
    let (tx, rx) = sleep::channel();
    let _gap = sleep::spawn_gap_watcher(rig.clock.shared(), GAP_POLL, tx);
    let (h, mut events) = rig.spawn(rx);
    let old = connect_and_stay_awake_90s(&rig, &h, &mut events).await;

    // Nobody said the machine would sleep: the gap is found on resume.
    rig.clock.suspend(Duration::from_secs(1000));
    let (reason, billed_secs, connected_secs) = next_session_ended(&mut events).await;
    assert_eq!(reason, "sleep");
    assert_eq!(billed_secs, Some(90));
    assert_eq!(connected_secs, 90.0);
    // The new session follows the reconnect's first back-off (2 s).
    after_reconnect_backoff(&mut events, &rig.clock).await;
    let new = connected_id(
        &next_event(&mut events, |e| matches!(e, SessionEvent::Connected { .. })).await,
    );
    settle(&h, State::meters).await;
    assert_old_session_billed_awake_time_only(&rig, &old, &new);
    assert_eq!(rig.tunnels.ups.load(Ordering::SeqCst), 2);
    assert_eq!(rig.tunnels.downs.load(Ordering::SeqCst), 1);

    h.disconnect();
    settle(&h, |s| *s == State::Disconnected).await;
    assert!(rig.active_ids().is_empty());
}

/// A private session bus (no service activation), killed on drop. (Its policy needs the
/// `eavesdrop` allowances: without them this dbus-daemon never completes a client's handshake.)
struct Bus {
    child: Child,
    address: String,
    _dir: tempfile::TempDir,
}

impl Bus {
    fn start() -> Option<Bus> {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("bus.conf");
        std::fs::write(
            &config,
            format!(
                "<!DOCTYPE busconfig PUBLIC \"-//freedesktop//DTD D-Bus Bus Configuration 1.0//EN\" \
                 \"http://www.freedesktop.org/standards/dbus/1.0/busconfig.dtd\">\n\
                 <busconfig><type>session</type><listen>unix:path={}</listen>\
                 <auth>EXTERNAL</auth><policy context=\"default\">\
                 <allow send_destination=\"*\" eavesdrop=\"true\"/><allow eavesdrop=\"true\"/>\
                 <allow own=\"*\"/></policy></busconfig>\n",
                dir.path().join("bus").display()
            ),
        )
        .unwrap();
        let mut child = Command::new("dbus-daemon")
            .args(["--nofork", "--nopidfile", "--print-address=1"])
            .arg(format!("--config-file={}", config.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let mut line = String::new();
        BufReader::new(child.stdout.take()?)
            .read_line(&mut line)
            .ok()?;
        Some(Bus {
            child,
            address: line.trim().to_string(),
            _dir: dir,
        })
    }
}

impl Drop for Bus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// logind as far as Ferry uses it: `Inhibit` hands out one end of a socket pair (the test keeps
/// the other, which reads EOF once every copy of the handed-out end is closed: the release).
#[derive(Default, Clone)]
struct FakeLogind {
    calls: Arc<Mutex<Vec<[String; 4]>>>,
    kept: Arc<Mutex<Vec<StdUnixStream>>>,
    granted: Arc<tokio::sync::Notify>,
}

#[zbus::interface(name = "org.freedesktop.login1.Manager")]
impl FakeLogind {
    fn inhibit(
        &self,
        what: String,
        who: String,
        why: String,
        mode: String,
    ) -> zbus::fdo::Result<zbus::zvariant::OwnedFd> {
        self.calls.lock().unwrap().push([what, who, why, mode]);
        let (ours, theirs) =
            StdUnixStream::pair().map_err(|e| zbus::fdo::Error::Failed(e.to_string()))?;
        self.kept.lock().unwrap().push(ours);
        self.granted.notify_one();
        Ok(zbus::zvariant::OwnedFd::from(std::os::fd::OwnedFd::from(
            theirs,
        )))
    }

    #[zbus(signal)]
    async fn prepare_for_sleep(ctxt: &zbus::SignalContext<'_>, start: bool) -> zbus::Result<()>;
}

impl FakeLogind {
    /// Waits until the `n`-th inhibitor handed out is released (its peer reads EOF).
    async fn released(&self, n: usize) {
        let ours = self.kept.lock().unwrap()[n].try_clone().unwrap();
        ours.set_nonblocking(true).unwrap();
        let mut s = tokio::net::UnixStream::from_std(ours).unwrap();
        let mut buf = [0u8; 8];
        let read = tokio::time::timeout(WAIT, tokio::io::AsyncReadExt::read(&mut s, &mut buf))
            .await
            .expect("the inhibitor was not released")
            .unwrap();
        assert_eq!(read, 0, "EOF: every copy of the inhibitor fd is closed");
    }

    async fn wait_calls(&self, n: usize) {
        tokio::time::timeout(WAIT, async {
            while self.calls.lock().unwrap().len() < n {
                self.granted.notified().await;
            }
        })
        .await
        .expect("Inhibit not called");
    }
}

async fn emit(server: &zbus::Connection, start: bool) {
    let iface = server
        .object_server()
        .interface::<_, FakeLogind>("/org/freedesktop/login1")
        .await
        .unwrap();
    FakeLogind::prepare_for_sleep(iface.signal_context(), start)
        .await
        .unwrap();
}

async fn fake_logind(bus: &Bus) -> (zbus::Connection, FakeLogind) {
    let fake = FakeLogind::default();
    let server = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .name("org.freedesktop.login1")
        .unwrap()
        .serve_at("/org/freedesktop/login1", fake.clone())
        .unwrap()
        .build()
        .await
        .unwrap();
    (server, fake)
}

async fn watch_logind(bus: &Bus, tx: SleepSender) {
    let conn = zbus::connection::Builder::address(bus.address.as_str())
        .unwrap()
        .build()
        .await
        .unwrap();
    logind::watch(conn, tx).await.unwrap();
}

#[tokio::test]
async fn logind_sleep_ends_the_session_before_sleeping_and_resume_starts_a_new_one() {
    let Some(bus) = Bus::start() else {
        eprintln!("SKIP: dbus-daemon is not installed (no D-Bus to test against)");
        return;
    };
    let rig = Rig::new().await;
    let (server, fake) = fake_logind(&bus).await;
    let (tx, rx) = sleep::channel();
    watch_logind(&bus, tx.clone()).await;
    // The gap watcher runs too, as in the app: a prepared sleep must not be handled twice.
    let _gap = sleep::spawn_gap_watcher(rig.clock.shared(), GAP_POLL, tx);
    fake.wait_calls(1).await;
    assert_eq!(
        fake.calls.lock().unwrap()[0],
        [
            "sleep".to_string(),
            "Ferry".into(),
            logind::WHY.into(),
            "delay".into()
        ]
    );
    let (h, mut events) = rig.spawn(rx);
    let old = connect_and_stay_awake_90s(&rig, &h, &mut events).await;

    emit(&server, true).await;
    // logind may let the machine sleep once the inhibitor is released: by then the session is
    // ended with its awake seconds and the tunnel is down.
    fake.released(0).await;
    let ended = rig.ended();
    assert_eq!(ended.len(), 1, "ended before the inhibitor was released");
    assert_eq!(ended[0].session.reported_secs, 90);
    assert_eq!(rig.tunnels.downs.load(Ordering::SeqCst), 1);
    assert!(rig.active_ids().is_empty(), "nothing bills while asleep");
    assert_eq!(*h.state().borrow(), State::Asleep);

    rig.clock.suspend(Duration::from_secs(1000));
    emit(&server, false).await;
    let new = connected_id(
        &next_event(&mut events, |e| matches!(e, SessionEvent::Connected { .. })).await,
    );
    settle(&h, State::meters).await;
    // The gap watcher's look at the clock (5 s polls) must not end the new session.
    for _ in 0..3 {
        rig.clock.advance(GAP_POLL);
        tokio::task::yield_now().await;
    }
    assert_old_session_billed_awake_time_only(&rig, &old, &new);
    // A new inhibitor for the next sleep.
    fake.wait_calls(2).await;

    h.disconnect();
    settle(&h, |s| *s == State::Disconnected).await;
    let reported = rig.reported(&new);
    assert_eq!(
        reported.iter().map(|(_, s)| s).sum::<u64>(),
        15,
        "{reported:?}"
    );
}

#[tokio::test]
async fn without_logind_the_system_source_falls_back_to_the_gap_watcher() {
    // No system bus here (or one without logind): the sources still report a suspend.
    let clock = ManualClock::at_fixed_date();
    let mut rx = sleep::system_signals(clock.shared()).await;
    clock.suspend(Duration::from_secs(1000));
    let got = tokio::time::timeout(WAIT, async {
        loop {
            match rx.recv().await {
                Some(sleep::SleepSignal::Resumed) => return,
                Some(_) => {}
                None => panic!("no source"),
            }
        }
    })
    .await;
    assert!(got.is_ok(), "the suspend was not reported");
}

#[tokio::test]
async fn crash_recovery_ends_the_orphan_at_once_and_bills_no_downtime() {
    let rig = Rig::new().await;
    let api = &*rig.client;
    // A run that started a session, had one heartbeat acknowledged, and died.
    let id = uuid::Uuid::new_v4().to_string();
    let row = rig
        .ledger
        .open(NewRow {
            client_session_id: id.clone(),
            service: "orbnet",
            location: "lab".into(),
            started_at: rig.clock.wall(),
        })
        .await
        .unwrap();
    let server = api.prepare(None).await.unwrap().server_id;
    api.start(&id, server, "wireguard").await.unwrap();
    api.heartbeat(&id, 60).await.unwrap();
    rig.ledger.acked(row).await;
    // Two minutes of downtime (under the lab's 300 s watchdog: the session still bills).
    rig.lab.ctx().clock.advance(120.0);
    rig.clock.advance(Duration::from_secs(120));

    let r = reconcile_orbnet(api, &*rig.ledger, &rig.clock).await;
    assert_eq!((r.closed, r.ended_on_server), (1, 1));
    assert_eq!(
        rig.reported(&id),
        vec![("heartbeat".to_string(), 60), ("end".to_string(), 1)],
        "the API's minimum, none of the downtime"
    );
    let ended = rig.ended();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].session.reported_secs, 61);
    assert_eq!(ended[0].disconnect_reason, "error");
    assert!(rig.active_ids().is_empty());
    assert_eq!(rig.ledger.rows()[0].closed.as_deref(), Some("recovered"));
}

#[tokio::test]
async fn tunnelbyte_sleep_deletes_the_session_before_the_guard_is_released_and_resume_creates_one()
{
    let lab = ferry_lab::Lab::start_without_data_plane(ferry_lab::LabConfig::default())
        .await
        .unwrap();
    let accounts = lock(&lab.ctx().tunnelbyte).accounts();
    let token = accounts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["tier"] == "paid")
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let client = TunnelbyteClient::new(&lab.urls().tunnelbyte, HttpSettings::default())
        .unwrap()
        .with_token(Some(ferry_core::secrets::Secret::new(token)));
    let clock = ManualClock::at_fixed_date();
    let ledger = Arc::new(MemoryLedger::default());
    let tunnels = Tunnels::default();
    let provider = TunnelbyteProvider::new(
        Arc::new(client),
        tunnels.clone(),
        ledger.clone(),
        clock.shared(),
        TunnelbyteSettings {
            region: Some("fsn".into()),
            ..TunnelbyteSettings::default()
        },
    );
    let (tx, rx) = sleep::channel();
    let (h, _task) = spawn_with_sleep(provider, clock.shared(), Some(rx));
    h.connect();
    settle(&h, State::meters).await;
    clock.advance(Duration::from_secs(60));

    // The port without D-Bus: a guard whose release the test can await.
    let (held, released) = tokio::sync::oneshot::channel::<()>();
    tx.send(sleep::SleepSignal::Preparing(sleep::SleepGuard::holding(
        held,
    )))
    .unwrap();
    let _ = tokio::time::timeout(WAIT, released)
        .await
        .expect("the guard was not released");
    let calls = |lab: &ferry_lab::Lab| -> Vec<String> {
        lab.ctx()
            .requests
            .all()
            .into_iter()
            .filter(|r| r.path.contains("/v1/sessions") && r.method != "GET")
            .map(|r| r.method)
            .collect()
    };
    // Deleted before the machine may sleep.
    assert_eq!(calls(&lab), vec!["POST", "DELETE"]);
    assert_eq!(*h.state().borrow(), State::Asleep);
    assert_eq!(tunnels.downs.load(Ordering::SeqCst), 1);
    assert_eq!(ledger.rows()[0].closed.as_deref(), Some("sleep"));

    clock.suspend(Duration::from_secs(1000));
    tx.send(sleep::SleepSignal::Resumed).unwrap();
    settle(&h, State::meters).await;
    assert_eq!(calls(&lab), vec!["POST", "DELETE", "POST"]);
    let rows = ledger.rows();
    assert_eq!(rows.len(), 2);
    assert!(rows[1].connected && rows[1].closed.is_none());
    assert_ne!(rows[0].server_session_id, rows[1].server_session_id);
    h.disconnect();
    settle(&h, |s| *s == State::Disconnected).await;
}

#[tokio::test]
async fn a_network_change_that_breaks_the_tunnel_leaves_exactly_one_billing_session() {
    let rig = Rig::new().await;
    let (_tx, rx) = sleep::channel();
    let (h, mut events) = rig.spawn(rx);
    let old = connect_and_stay_awake_90s(&rig, &h, &mut events).await;
    // The route changes under the tunnel and it dies: the old session is ended (its 90 s)
    // before the new one starts, never both at once.
    rig.tunnels.die.notify_one();
    let ended = next_event(&mut events, |e| {
        matches!(e, SessionEvent::SessionEnded { .. })
    })
    .await;
    assert!(
        matches!(
            &ended,
            SessionEvent::SessionEnded {
                billed_secs: Some(90),
                ..
            }
        ),
        "{ended:?}"
    );
    assert!(rig.active_ids().is_empty(), "nothing bills between the two");
    after_reconnect_backoff(&mut events, &rig.clock).await;
    let new = connected_id(
        &next_event(&mut events, |e| matches!(e, SessionEvent::Connected { .. })).await,
    );
    settle(&h, State::meters).await;
    assert_ne!(old, new);
    assert_eq!(
        rig.active_ids(),
        vec![new.clone()],
        "exactly one session billing"
    );
    let ended = rig.ended();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].session.session_id, old);
    assert_eq!(ended[0].session.reported_secs, 90);
    assert_eq!(ended[0].disconnect_reason, "error");
    h.disconnect();
    settle(&h, |s| *s == State::Disconnected).await;
}

#[tokio::test]
async fn a_network_change_moves_the_orbnet_session_to_a_new_tunnel_without_a_new_session() {
    let rig = Rig::new().await;
    let (_tx, rx) = sleep::channel();
    let (net_tx, net_rx) = tokio::sync::mpsc::unbounded_channel();
    let (h, mut events) = rig.spawn_watching(rx, Some(net_rx));
    let id = connect_and_stay_awake_90s(&rig, &h, &mut events).await;
    net_tx.send(NetworkChange).unwrap();
    next_event(
        &mut events,
        |e| matches!(e, SessionEvent::Notice { message } if message.contains("new tunnel")),
    )
    .await;
    // The renewal is done once the new tunnel is up; nothing was ended or started on the server.
    tokio::time::timeout(WAIT, async {
        while rig.tunnels.ups.load(Ordering::SeqCst) < 2 {
            tokio::task::yield_now().await;
        }
    })
    .await
    .unwrap();
    assert_eq!(rig.tunnels.downs.load(Ordering::SeqCst), 1);
    assert_eq!(
        rig.active_ids(),
        vec![id.clone()],
        "the same session, billing once"
    );
    assert!(rig.ended().is_empty());
    assert!(h.state().borrow().meters());
    // The meter goes on: the next heartbeat carries the awake seconds since the last one.
    rig.clock.advance(Duration::from_secs(30));
    let beat = next_event(&mut events, |e| matches!(e, SessionEvent::Heartbeat { .. })).await;
    assert_eq!(
        beat,
        SessionEvent::Heartbeat {
            seconds: 60,
            delivery: "acked"
        }
    );
    // The new tunnel is watched: its death is a loss (the old one's, on purpose, was not).
    h.disconnect();
    settle(&h, |s| *s == State::Disconnected).await;
    assert_eq!(rig.tunnels.downs.load(Ordering::SeqCst), 2);
    let ended = rig.ended();
    assert_eq!(ended.len(), 1);
    assert_eq!(ended[0].session.session_id, id);
    assert_eq!(rig.ledger.rows().len(), 1, "one session in the history");
    // 120 awake seconds, each once (`end` reports at least 1 s, the API's minimum).
    assert_eq!(
        rig.reported(&id),
        vec![
            ("heartbeat".to_string(), 60),
            ("heartbeat".to_string(), 60),
            ("end".to_string(), 1)
        ]
    );
}

#[tokio::test]
async fn a_network_change_on_tunnelbyte_ends_the_session_before_a_new_one_starts() {
    let lab = ferry_lab::Lab::start_without_data_plane(ferry_lab::LabConfig::default())
        .await
        .unwrap();
    let accounts = lock(&lab.ctx().tunnelbyte).accounts();
    let token = accounts
        .as_array()
        .unwrap()
        .iter()
        .find(|a| a["tier"] == "paid")
        .unwrap()["token"]
        .as_str()
        .unwrap()
        .to_string();
    let client = TunnelbyteClient::new(&lab.urls().tunnelbyte, HttpSettings::default())
        .unwrap()
        .with_token(Some(ferry_core::secrets::Secret::new(token)));
    let clock = ManualClock::at_fixed_date();
    let ledger = Arc::new(MemoryLedger::default());
    let provider = TunnelbyteProvider::new(
        Arc::new(client),
        Tunnels::default(),
        ledger.clone(),
        clock.shared(),
        TunnelbyteSettings {
            region: Some("fsn".into()),
            ..TunnelbyteSettings::default()
        },
    );
    let (net_tx, net_rx) = tokio::sync::mpsc::unbounded_channel();
    let (h, _task) = spawn_watching(provider, clock.shared(), None, Some(net_rx));
    h.connect();
    settle(&h, State::meters).await;
    let mut events = h.subscribe();
    net_tx.send(NetworkChange).unwrap();
    after_reconnect_backoff(&mut events, &clock).await;
    settle(&h, State::meters).await;
    let calls: Vec<String> = lab
        .ctx()
        .requests
        .all()
        .into_iter()
        .filter(|r| r.path.contains("/v1/sessions") && r.method != "GET")
        .map(|r| r.method)
        .collect();
    // Deleted before the new one was created: never two billing at once.
    assert_eq!(calls, vec!["POST", "DELETE", "POST"]);
    let rows = ledger.rows();
    assert_eq!(rows.len(), 2);
    assert!(rows[0].closed.is_some() && rows[1].closed.is_none());
    h.disconnect();
    settle(&h, |s| *s == State::Disconnected).await;
}

#[tokio::test]
async fn an_orbnet_session_given_up_just_as_it_came_up_is_ended_once_and_says_so() {
    use ferry_core::session::supervisor::{Cancel, Provider};
    let rig = Rig::new().await;
    let provider = rig.provider();
    let (events_tx, mut events) = broadcast::channel(64);
    let (_keep, cancel) = Cancel::pair();
    let live = provider.establish(events_tx.clone(), cancel).await.unwrap();
    let id = rig.active_ids().pop().expect("a session on the server");
    // The user gave up as it came up: 7 awake seconds later it is ended, never metered.
    rig.clock.advance(Duration::from_secs(7));
    provider.abandon(Arc::new(live), events_tx.clone()).await;
    let (reason, billed_secs, connected_secs) = next_session_ended(&mut events).await;
    assert_eq!(reason, "user_initiated");
    assert_eq!(billed_secs, Some(7));
    assert!((connected_secs - 7.0).abs() < 0.5, "{connected_secs}");
    assert!(rig.active_ids().is_empty(), "nothing left active");
    assert_eq!(rig.reported(&id), vec![("end".to_string(), 7)]);
    assert_eq!(rig.tunnels.downs.load(Ordering::SeqCst), 1);
    let rows = rig.ledger.rows();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].closed.as_deref(), Some("user_initiated"));
}
