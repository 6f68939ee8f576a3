//! Drives the real app binary through tauri-driver and WebKitWebDriver (shared by the GUI tests).
#![allow(dead_code)]

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};

pub mod watcher;

/// The app under test: this build's, or `FERRY_DESKTOP_BIN` (e.g. the release build, for
/// `scripts/footprint.sh`'s figures).
pub fn app_binary() -> PathBuf {
    std::env::var_os("FERRY_DESKTOP_BIN")
        .map(PathBuf::from)
        .and_then(|p| p.canonicalize().ok())
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_ferry-desktop")))
}

/// Why a GUI test cannot run here, if it cannot.
pub fn skip_reason() -> Option<String> {
    if std::env::var_os("DISPLAY").is_none() {
        return Some("DISPLAY is not set (run under xvfb-run, as scripts/test.sh does)".into());
    }
    for tool in ["tauri-driver", "WebKitWebDriver"] {
        if which(tool).is_none() {
            return Some(format!(
                "{tool} is not on PATH (scripts/deps.sh installs it)"
            ));
        }
    }
    None
}

fn which(tool: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|dir| dir.join(tool))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind a free port");
    listener.local_addr().expect("local addr").port()
}

/// Where tests put screenshots (gitignored).
pub fn artifacts_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../artifacts");
    std::fs::create_dir_all(&dir).expect("create artifacts/");
    dir
}

/// WebKit's page process as `/proc/PID/status` names it (15 characters).
pub const PAGE_PROCESS: &str = "WebKitWebProces";
/// WebKit's network process, likewise.
pub const NETWORK_PROCESS: &str = "WebKitNetworkPr";

/// A running tauri-driver plus one WebDriver session on the app.
pub struct AppSession {
    driver: Child,
    /// The WebDriver client; `None` once closed.
    pub client: Option<Client>,
    /// Private data directory given to the app.
    pub data_dir: PathBuf,
    /// Keep the data dir when the session ends (for a later session on it).
    pub keep_data_dir: bool,
}

impl AppSession {
    /// Starts tauri-driver and the app binary with `args`; waits for the session (bounded).
    pub async fn start(args: &[&str], envs: &[(&str, &str)]) -> AppSession {
        let data_dir =
            std::env::temp_dir().join(format!("ferry-gui-{}-{}", std::process::id(), free_port()));
        Self::start_in(data_dir, args, envs).await
    }

    /// Like [`AppSession::start`], on a given data dir (e.g. one an earlier session used).
    pub async fn start_in(data_dir: PathBuf, args: &[&str], envs: &[(&str, &str)]) -> AppSession {
        let port = free_port();
        let native_port = free_port();
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let mut cmd = Command::new("tauri-driver");
        cmd.args([
            "--port",
            &port.to_string(),
            "--native-port",
            &native_port.to_string(),
        ])
        .env("FERRY_DATA_DIR", &data_dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::inherit());
        for (k, v) in envs {
            cmd.env(k, v);
        }
        let driver = cmd.spawn().expect("spawn tauri-driver");
        let mut session = AppSession {
            driver,
            client: None,
            data_dir,
            keep_data_dir: false,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "tauri-driver did not listen on {port}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let caps = serde_json::json!({
            "browserName": "wry",
            "tauri:options": {
                "application": app_binary().display().to_string(),
                "args": args,
            }
        });
        let caps = match caps {
            serde_json::Value::Object(map) => map,
            _ => unreachable!(),
        };
        let mut builder = ClientBuilder::native();
        builder.capabilities(caps);
        let url = format!("http://127.0.0.1:{port}");
        let client = tokio::time::timeout(Duration::from_secs(60), builder.connect(&url))
            .await
            .expect("WebDriver session within 60 s")
            .expect("WebDriver session");
        session.client = Some(client);
        session
    }

    /// Starts the app binary itself with `args` and no WebDriver (for starts without a window,
    /// as in the tray); the session's helpers that look at processes and X windows still work.
    pub fn launch(args: &[&str]) -> AppSession {
        let data_dir =
            std::env::temp_dir().join(format!("ferry-gui-{}-{}", std::process::id(), free_port()));
        std::fs::create_dir_all(&data_dir).expect("data dir");
        let app = Command::new(app_binary())
            .args(args)
            .env("FERRY_DATA_DIR", &data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn the app");
        AppSession {
            driver: app,
            client: None,
            data_dir,
            keep_data_dir: false,
        }
    }

    /// Launches the app a second time on this session's data dir and waits (30 s at most) for
    /// it to exit, which it does once it has shown the first instance's window; asserts success.
    pub async fn second_launch(&self) {
        let second = Command::new(app_binary())
            .env("FERRY_DATA_DIR", &self.data_dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("spawn a second instance");
        let second_pid = second.id();
        let status = tokio::task::spawn_blocking(move || {
            let mut second = second;
            second.wait()
        });
        let status = tokio::time::timeout(Duration::from_secs(30), status)
            .await
            .unwrap_or_else(|_| {
                let _ = Command::new("kill")
                    .args(["-TERM", &second_pid.to_string()])
                    .status();
                panic!("the second launch did not exit within 30 s")
            })
            .expect("join")
            .expect("wait");
        assert!(
            status.success(),
            "the second launch exits cleanly: {status}"
        );
    }

    /// True while one of WebKit's processes (page or network) runs for this session.
    pub fn webkit_running(&self, which: &str) -> bool {
        self.app_memory()
            .iter()
            .any(|(name, _, _)| name.starts_with(which))
    }

    /// Waits (20 s at most) until a WebKit process of this kind runs (`true`) or none does.
    pub async fn wait_webkit(&self, which: &str, running: bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.webkit_running(which) != running {
            assert!(
                Instant::now() < deadline,
                "{which} {}: {:?}",
                if running {
                    "never started"
                } else {
                    "outlived the window"
                },
                self.app_memory()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The WebDriver client.
    pub fn c(&self) -> &Client {
        self.client.as_ref().expect("session open")
    }

    /// Waits (bounded) for an element matching a CSS selector.
    pub async fn wait_css(&self, css: &str) -> fantoccini::elements::Element {
        self.c()
            .wait()
            .at_most(Duration::from_secs(20))
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("element {css} did not appear: {e}"))
    }

    /// Fills form fields (`css`, text) and clicks `submit`; fills again if a re-render replaced
    /// the form before the click (bounded).
    pub async fn fill_and_submit(&self, fields: &[(&str, &str)], submit: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        'again: loop {
            assert!(Instant::now() < deadline, "could not fill {fields:?}");
            for (css, text) in fields {
                let el = self.wait_css(css).await;
                let _ = el.clear().await;
                if el.send_keys(text).await.is_err() {
                    continue 'again;
                }
            }
            for (css, text) in fields {
                let value = match self.c().find(Locator::Css(css)).await {
                    Ok(el) => el.prop("value").await.ok().flatten(),
                    Err(_) => None,
                };
                if value.as_deref() != Some(*text) {
                    continue 'again;
                }
            }
            self.click_css(submit).await;
            return;
        }
    }

    /// Clicks the element matching `css`, finding it again if a re-render replaced it (bounded).
    pub async fn click_css(&self, css: &str) {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let err = match self.c().find(Locator::Css(css)).await {
                Ok(el) => match el.click().await {
                    Ok(()) => return,
                    Err(e) => e.to_string(),
                },
                Err(e) => e.to_string(),
            };
            assert!(Instant::now() < deadline, "could not click {css}: {err}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reads an attribute of the element matching `css` (bounded; survives re-renders).
    pub async fn attr_css(&self, css: &str, name: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(el) = self.c().find(Locator::Css(css)).await {
                if let Ok(Some(v)) = el.attr(name).await {
                    return v;
                }
            }
            assert!(Instant::now() < deadline, "no {name} on {css}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls the text of `css` until `pred` holds (bounded); returns the last text.
    pub async fn wait_text(&self, css: &str, what: &str, pred: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut last = String::new();
        loop {
            if let Ok(el) = self.c().find(Locator::Css(css)).await {
                if let Ok(text) = el.text().await {
                    if pred(&text) {
                        return text;
                    }
                    last = text;
                }
            }
            assert!(
                Instant::now() < deadline,
                "{css}: waited 20 s for {what}; last text {last:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves a WebDriver screenshot as artifacts/NAME.png.
    /// The window as the X server shows it (what the user sees), after two animation frames
    /// have painted. Taken with ImageMagick's `import` rather than WebDriver's screenshot,
    /// which stalls for a minute when WebKit composites nothing (as the app ships).
    /// A tooltip left over from an earlier hover (a chart bar's) is not part of the view: the
    /// app's tooltip windows are unmapped first.
    pub async fn screenshot(&self, name: &str) -> PathBuf {
        self.unmap_tooltips();
        let painted = self
            .c()
            .execute_async(
                "const done = arguments[arguments.length - 1];\n\
                 requestAnimationFrame(() => requestAnimationFrame(() => done(1)));",
                vec![],
            )
            .await;
        assert!(painted.is_ok(), "the page did not paint: {painted:?}");
        let path = artifacts_dir().join(format!("{name}.png"));
        let (_, windows) = self.x_windows();
        let (w, _) = windows
            .into_iter()
            .find(|(_, v)| *v)
            .expect("a shown window to photograph");
        let status = Command::new("import")
            .args(["-window", &format!("{w:#x}")])
            .arg(format!("png:{}", path.display()))
            .stdin(Stdio::null())
            .status()
            .expect("ImageMagick's import (scripts/deps.sh installs it)");
        assert!(status.success(), "import failed: {status}");
        path
    }

    /// Ends the WebDriver session and stops tauri-driver with SIGTERM (so WebKitWebDriver exits too).
    pub async fn close(mut self) {
        if let Some(client) = self.client.take() {
            let _ = tokio::time::timeout(Duration::from_secs(10), client.close()).await;
        }
        self.stop_driver();
    }

    /// Ends app processes started for this session that outlived it (e.g. after a failed test),
    /// so the next test's single-instance check does not find them.
    fn kill_leftover_apps(&self) {
        let binary = app_binary();
        let marker = format!("FERRY_DATA_DIR={}", self.data_dir.display());
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return;
        };
        for entry in entries.flatten() {
            let pid = entry.file_name().to_string_lossy().into_owned();
            if !pid.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let exe = std::fs::read_link(entry.path().join("exe")).ok();
            if exe.as_deref() != Some(binary.as_path()) {
                continue;
            }
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            if environ.split(|b| *b == 0).any(|v| v == marker.as_bytes()) {
                let _ = Command::new("kill").args(["-TERM", &pid]).status();
            }
        }
    }

    /// PID of the app binary started for this session (found by its data dir), if running.
    pub fn app_pid(&self) -> Option<u32> {
        let binary = app_binary();
        let marker = format!("FERRY_DATA_DIR={}", self.data_dir.display());
        for entry in std::fs::read_dir("/proc").ok()?.flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
                continue;
            };
            if std::fs::read_link(entry.path().join("exe")).ok().as_deref()
                != Some(binary.as_path())
            {
                continue;
            }
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            if environ.split(|b| *b == 0).any(|v| v == marker.as_bytes()) {
                return Some(pid);
            }
        }
        None
    }

    /// The app's top-level X windows (Xvfb runs no window manager, so they are the root's
    /// children), each with whether it is mapped and viewable; none while the app is not running.
    fn x_windows(&self) -> (x11rb::rust_connection::RustConnection, Vec<(u32, bool)>) {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{AtomEnum, ConnectionExt, MapState};
        let (conn, screen) = x11rb::connect(None).expect("the X display");
        // Right after the spawn, the process may not have become the app yet: no windows.
        let Some(pid) = self.app_pid() else {
            return (conn, Vec::new());
        };
        let root = conn.setup().roots[screen].root;
        let pid_atom = conn
            .intern_atom(false, b"_NET_WM_PID")
            .unwrap()
            .reply()
            .unwrap()
            .atom;
        let mut found = Vec::new();
        for w in conn.query_tree(root).unwrap().reply().unwrap().children {
            let Ok(Ok(p)) = conn
                .get_property(false, w, pid_atom, AtomEnum::CARDINAL, 0, 1)
                .map(|c| c.reply())
            else {
                continue;
            };
            if p.value32().and_then(|mut v| v.next()) != Some(pid) {
                continue;
            }
            let attrs = conn
                .get_window_attributes(w)
                .ok()
                .and_then(|c| c.reply().ok());
            // GTK's own helper windows are override-redirect; a top-level window is not.
            if attrs.as_ref().is_some_and(|a| a.override_redirect) {
                continue;
            }
            found.push((w, attrs.is_some_and(|a| a.map_state == MapState::VIEWABLE)));
        }
        (conn, found)
    }

    /// Unmaps the app's tooltip windows (override-redirect, so not among [`Self::x_windows`];
    /// GTK gives them the app's WM_CLASS but no _NET_WM_PID).
    fn unmap_tooltips(&self) {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{AtomEnum, ConnectionExt, MapState};
        let (conn, screen) = x11rb::connect(None).expect("the X display");
        let root = conn.setup().roots[screen].root;
        let atom = |name: &[u8]| conn.intern_atom(false, name).unwrap().reply().unwrap().atom;
        let (type_atom, tooltip) = (
            atom(b"_NET_WM_WINDOW_TYPE"),
            atom(b"_NET_WM_WINDOW_TYPE_TOOLTIP"),
        );
        for w in conn.query_tree(root).unwrap().reply().unwrap().children {
            let prop = |p, ty| {
                conn.get_property(false, w, p, ty, 0, 16)
                    .ok()
                    .and_then(|c| c.reply().ok())
            };
            let ours = prop(AtomEnum::WM_CLASS.into(), AtomEnum::STRING)
                .is_some_and(|p| p.value.starts_with(b"ferry-desktop\0"));
            let is_tooltip = prop(type_atom, AtomEnum::ATOM)
                .is_some_and(|p| p.value32().is_some_and(|mut v| v.any(|a| a == tooltip)));
            let viewable = conn
                .get_window_attributes(w)
                .ok()
                .and_then(|c| c.reply().ok())
                .is_some_and(|a| a.map_state == MapState::VIEWABLE);
            if ours && is_tooltip && viewable {
                let _ = conn.unmap_window(w);
            }
        }
        let _ = conn.flush();
        let _ = conn.get_input_focus().map(|c| c.reply());
    }

    /// Sends SIGTERM to the app (it ends any session and quits cleanly) and waits until it
    /// has exited (bounded).
    pub async fn terminate_app(&self) {
        let pid = self.app_pid().expect("the app's process");
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let state = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            let alive = state
                .lines()
                .find_map(|l| l.strip_prefix("State:"))
                .is_some_and(|s| !s.trim_start().starts_with('Z'));
            if !alive {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the app outlived SIGTERM by 15 s"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// True while one of the app's top-level windows is shown.
    pub fn window_shown(&self) -> bool {
        self.x_windows().1.iter().any(|(_, v)| *v)
    }

    /// Waits (bounded) until the app's window is shown (`true`) or hidden (`false`).
    pub async fn wait_window_shown(&self, shown: bool) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.window_shown() != shown {
            assert!(
                Instant::now() < deadline,
                "the window was not {} within 20 s",
                if shown { "shown" } else { "hidden" }
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Asks the app's shown windows to close as a window manager does (a WM_DELETE_WINDOW
    /// client message). Returns how many windows were asked.
    pub fn request_close(&self) -> usize {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{ClientMessageEvent, ConnectionExt, EventMask};
        let (conn, windows) = self.x_windows();
        let atom = |name: &str| {
            conn.intern_atom(false, name.as_bytes())
                .unwrap()
                .reply()
                .unwrap()
                .atom
        };
        let (protocols, delete) = (atom("WM_PROTOCOLS"), atom("WM_DELETE_WINDOW"));
        let mut asked = 0;
        for (w, _) in windows.into_iter().filter(|(_, v)| *v) {
            let event = ClientMessageEvent::new(32, w, protocols, [delete, 0, 0, 0, 0]);
            conn.send_event(false, w, EventMask::NO_EVENT, event)
                .unwrap();
            asked += 1;
        }
        conn.flush().unwrap();
        asked
    }

    /// Asks the window to close (like [`AppSession::request_close`]) until `done` holds, up to
    /// four times 5 s apart: with no window manager to repeat it, a close message sent while
    /// the window is busy is sometimes not acted on here. Returns the attempts it took.
    #[allow(clippy::print_stderr)]
    pub async fn close_until<F, Fut>(&self, mut done: F) -> usize
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        for attempt in 1..=4 {
            assert!(self.request_close() > 0, "no window of the app to close");
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if done().await {
                    if attempt > 1 {
                        eprintln!("the close request took {attempt} attempts");
                    }
                    return attempt;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        panic!("closing the window had no effect after 4 requests");
    }

    /// Moves and resizes the app's shown window (what a user dragging it does, here without a
    /// window manager).
    pub fn place_window(&self, x: i32, y: i32, width: u32, height: u32) {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::{ConfigureWindowAux, ConnectionExt};
        let (conn, windows) = self.x_windows();
        let (w, _) = windows
            .into_iter()
            .find(|(_, v)| *v)
            .expect("a shown window");
        let aux = ConfigureWindowAux::new()
            .x(x)
            .y(y)
            .width(width)
            .height(height);
        conn.configure_window(w, &aux).unwrap();
        conn.flush().unwrap();
    }

    /// Waits (10 s at most) until the app's window has this place and size.
    pub async fn wait_geometry(&self, want: (i32, i32, u32, u32), what: &str) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while self.window_geometry() != Some(want) {
            assert!(
                std::time::Instant::now() < deadline,
                "{what}: {:?}, not {want:?}",
                self.window_geometry()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Position and size of the app's shown window on the screen: (x, y, width, height).
    pub fn window_geometry(&self) -> Option<(i32, i32, u32, u32)> {
        use x11rb::connection::Connection;
        use x11rb::protocol::xproto::ConnectionExt;
        let (conn, windows) = self.x_windows();
        let (w, _) = windows.into_iter().find(|(_, v)| *v)?;
        let g = conn.get_geometry(w).ok()?.reply().ok()?;
        let root = conn.setup().roots[0].root;
        let t = conn
            .translate_coordinates(w, root, 0, 0)
            .ok()?
            .reply()
            .ok()?;
        Some((
            i32::from(t.dst_x),
            i32::from(t.dst_y),
            u32::from(g.width),
            u32::from(g.height),
        ))
    }

    /// Memory of the app and every process it started (WebKit's web and network processes):
    /// the processes whose environment carries this session's data dir, minus the driver's
    /// own. Each as (name, RSS KiB, PSS KiB from `smaps_rollup`).
    pub fn app_memory(&self) -> Vec<(String, u64, u64)> {
        let marker = format!("FERRY_DATA_DIR={}", self.data_dir.display());
        let skip = ["tauri-driver", "WebKitWebDriver"];
        let Ok(entries) = std::fs::read_dir("/proc") else {
            return Vec::new();
        };
        let kib = |text: &str, key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .unwrap_or(0)
        };
        let mut out = Vec::new();
        for entry in entries.flatten() {
            let environ = std::fs::read(entry.path().join("environ")).unwrap_or_default();
            if !environ.split(|b| *b == 0).any(|v| v == marker.as_bytes()) {
                continue;
            }
            let status = std::fs::read_to_string(entry.path().join("status")).unwrap_or_default();
            let name = status
                .lines()
                .find_map(|l| l.strip_prefix("Name:"))
                .unwrap_or("")
                .trim()
                .to_string();
            if skip.iter().any(|s| name.starts_with(&s[..s.len().min(15)])) {
                continue;
            }
            let rollup =
                std::fs::read_to_string(entry.path().join("smaps_rollup")).unwrap_or_default();
            out.push((name, kib(&status, "VmRSS:"), kib(&rollup, "Pss:")));
        }
        out
    }

    /// [`AppSession::footprint_line`] once the tree's PSS has settled: three readings half a
    /// second apart within 512 KiB of each other (30 s at most; a measure, never asserted).
    pub async fn settled_footprint_line(&self) -> String {
        let total = || self.app_memory().iter().map(|m| m.2).sum::<u64>();
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut last = vec![total()];
        while Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(500)).await;
            last.push(total());
            if last.len() >= 3 {
                let recent = &last[last.len() - 3..];
                let (lo, hi) = (recent.iter().min(), recent.iter().max());
                if let (Some(lo), Some(hi)) = (lo, hi) {
                    if hi - lo < 512 {
                        break;
                    }
                }
            }
        }
        self.footprint_line()
    }

    /// One line for the notes: the app tree's PSS and RSS in MiB, and each process's PSS.
    pub fn footprint_line(&self) -> String {
        let m = self.app_memory();
        let (rss, pss) = m.iter().fold((0, 0), |(r, p), x| (r + x.1, p + x.2));
        let each: Vec<String> = m
            .iter()
            .map(|(n, _, p)| format!("{n} {} MiB", p / 1024))
            .collect();
        format!(
            "PSS {} MiB, RSS {} MiB ({})",
            pss / 1024,
            rss / 1024,
            each.join(", ")
        )
    }

    fn stop_driver(&mut self) {
        self.kill_leftover_apps();
        // tauri-driver kills WebKitWebDriver only on TERM/INT/QUIT, never on SIGKILL.
        let _ = Command::new("kill")
            .args(["-TERM", &self.driver.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.driver.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        if !matches!(self.driver.try_wait(), Ok(Some(_))) {
            let _ = self.driver.kill();
            let _ = self.driver.wait();
        }
        if !self.keep_data_dir {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

impl Drop for AppSession {
    fn drop(&mut self) {
        if self.client.is_some() || matches!(self.driver.try_wait(), Ok(None)) {
            self.client = None;
            self.stop_driver();
        }
    }
}

/// A one-shot-per-connection HTTP server on 127.0.0.1 answering `body`; returns its port.
pub fn http_server(body: Vec<u8>) -> u16 {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let mut req = [0u8; 1024];
            let _ = conn.read(&mut req);
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = conn.write_all(head.as_bytes());
            let _ = conn.write_all(&body);
        }
    });
    port
}

/// GET `url` with curl through the SOCKS5 proxy `proxy` (names resolved at the far end).
pub async fn curl_via(proxy: &str, url: &str) -> Vec<u8> {
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "20", "--socks5-hostname", proxy, url])
        .output()
        .await
        .expect("run curl");
    assert!(
        out.status.success(),
        "curl via {proxy}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}
