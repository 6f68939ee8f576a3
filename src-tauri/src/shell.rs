//! Builds and runs the Tauri app: commands, the event pump (window events, tray, notifications),
//! window behaviour and quitting cleanly.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tauri::{AppHandle, Emitter, Manager, Runtime, WindowEvent};

use crate::commands::BackendState;
use crate::contract::{
    AccountView, AppEvent, ConnectRequest, ConnectionView, LiveView, NotifySettings, Phase,
    RegionGroup, RegionRef, Settings,
};
use crate::notify_policy::{self, Notice, NoticeAction, PolicyState};
use crate::observe::{observe, Seen};
use crate::tray_model::{self, TrayAction, TrayInput};
use ferry_core::app::{App, AppOptions, SecretsMode};

/// How the app was started (from the command line).
#[derive(Debug, Clone, Copy, Default)]
pub struct LaunchOptions {
    /// Start the lab in-process and sign in to its seeded accounts.
    pub demo: bool,
    /// Start hidden in the tray.
    pub minimized: bool,
}

/// Label of the one main window, as declared in tauri.conf.json.
pub const MAIN_WINDOW: &str = "main";

/// Sent to the window when closing it would leave a metered session unseen: the UI asks.
pub const CLOSE_ASKED: &str = "ferry:close-asked";

/// What the shell keeps to redraw the tray and judge notifications.
pub struct ShellState {
    connection: Option<ConnectionView>,
    live: Option<LiveView>,
    accounts: Vec<AccountView>,
    regions: Vec<RegionGroup>,
    last_region: Option<RegionRef>,
    settings: Settings,
    policy: PolicyState,
    seen: Seen,
    /// Every notification decided so far (newest last; bounded), for tests and diagnostics.
    pub notices: Vec<Notice>,
}

/// Shared between the event pump, the tray and window handlers.
pub struct Shell {
    /// The state.
    pub state: Mutex<ShellState>,
    close_to_tray: AtomicBool,
    quitting: AtomicBool,
    send_notifications: bool,
    /// The tray item, once it runs.
    tray: Mutex<Option<crate::tray::TrayHandle>>,
}

impl Shell {
    fn lock(&self) -> std::sync::MutexGuard<'_, ShellState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Summaries of the notifications decided so far.
    pub fn notice_summaries(&self) -> Vec<String> {
        self.lock()
            .notices
            .iter()
            .map(|n| n.summary.clone())
            .collect()
    }

    /// True while a session is being set up or meters (closing must not hide it unseen).
    pub fn metering(&self) -> bool {
        self.lock().connection.as_ref().is_some_and(|c| {
            matches!(
                c.phase,
                Phase::Connecting | Phase::Connected | Phase::Reconnecting
            )
        })
    }

    /// Records that this app asked to end a workspace session (no "ended elsewhere" notice).
    pub fn ended_here(&self, id: &str) {
        self.lock().seen.ended_here.insert(id.to_string());
    }
}

/// Shows, unminimizes and focuses the main window, creating it again when it was closed to the
/// tray (closing to the tray destroys the window and its webview, so WebKit's page process
/// exits and Ferry in the tray holds no page).
pub fn show_main_window<R: Runtime>(app: &AppHandle<R>) {
    let window = match app.get_webview_window(MAIN_WINDOW) {
        Some(window) => window,
        None => match open_main_window(app) {
            Ok(window) => window,
            Err(err) => {
                tracing::warn!(%err, "could not open the main window");
                return;
            }
        },
    };
    if let Err(err) = window.show().and_then(|()| window.unminimize()) {
        tracing::warn!(%err, "could not show the main window");
    }
    let _ = window.set_focus();
}

/// Builds the main window from its declaration in tauri.conf.json (`"create": false`: it is
/// built here, at start unless started in the tray, and again each time it is opened from it).
fn open_main_window<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<tauri::WebviewWindow<R>> {
    let config = app
        .config()
        .app
        .windows
        .iter()
        .find(|w| w.label == MAIN_WINDOW)
        .cloned()
        .unwrap_or_default();
    let window = tauri::WebviewWindowBuilder::from_config(app, &config)?.build()?;
    lighten_webview(&window);
    Ok(window)
}

/// Closes the main window to the tray: its place is saved, then the window and its webview are
/// destroyed (the tray item and the core keep running; [`show_main_window`] builds it again).
fn close_to_tray<R: Runtime>(window: &tauri::Window<R>) {
    use tauri_plugin_window_state::AppHandleExt as _;
    let app = window.app_handle();
    if let Err(err) = app.save_window_state(WINDOW_STATE_FLAGS) {
        tracing::warn!(%err, "could not save the window's place");
    }
    if let Err(err) = window.destroy() {
        tracing::warn!(%err, "could not close the window to the tray; hiding it");
        let _ = window.hide();
    }
}

/// What of the window's place is remembered across closes and starts.
const WINDOW_STATE_FLAGS: tauri_plugin_window_state::StateFlags =
    tauri_plugin_window_state::StateFlags::SIZE
        .union(tauri_plugin_window_state::StateFlags::POSITION)
        .union(tauri_plugin_window_state::StateFlags::MAXIMIZED);

/// Whether the app keeps running when its last window is gone: only while the tray item runs
/// and nothing asked to quit (an `exit` call carries a code and is never held back).
fn keeps_running_without_windows<R: Runtime>(app: &AppHandle<R>) -> bool {
    app.try_state::<Arc<Shell>>().is_some_and(|s| {
        !s.quitting.load(Ordering::SeqCst)
            && s.tray.lock().unwrap_or_else(|p| p.into_inner()).is_some()
    })
}

fn tray_model(st: &ShellState) -> Option<tray_model::TrayModel> {
    let connection = st.connection.as_ref()?;
    Some(tray_model::build(TrayInput {
        connection,
        live: st.live.as_ref(),
        regions: &st.regions,
        last_region: st.last_region.as_ref(),
        accounts: &st.accounts,
    }))
}

/// Shows `notice` with its buttons; a click opens the window, "Disconnect" ends the session.
fn show_notice<R: Runtime>(app: &AppHandle<R>, notice: &Notice) {
    let (summary, body) = (notice.summary.clone(), notice.body.clone());
    let actions = notice.kind.actions();
    let app = app.clone();
    tauri::async_runtime::spawn_blocking(move || {
        let mut n = notify_rust::Notification::new();
        n.appname("Ferry").summary(&summary).body(&body);
        for a in actions {
            n.action(a.key(), a.label());
        }
        match n.show() {
            // Waits (on this blocking thread) until the notification is clicked or closed.
            Ok(handle) => handle.wait_for_action(|key| match NoticeAction::from_key(key) {
                Some(NoticeAction::Open) => show_main_window(&app),
                Some(NoticeAction::Disconnect) => on_tray_action(&app, TrayAction::Disconnect),
                None => {}
            }),
            Err(err) => tracing::warn!(%err, "notification not shown"),
        }
    });
}

/// Applies one backend event: forwards it to the window, redraws the tray, maybe notifies.
fn handle_event<R: Runtime>(app: &AppHandle<R>, shell: &Shell, event: AppEvent) {
    if let Err(err) = app.emit(event.name(), event.payload()) {
        tracing::warn!(%err, event = event.name(), "could not emit");
    }
    let now = chrono::Utc::now().timestamp_millis();
    let (model, notices) = {
        let mut st = shell.lock();
        let mut tray_changed = true;
        match &event {
            AppEvent::Connection(c) => {
                if c.region.is_some() {
                    st.last_region = c.region.clone();
                }
                st.connection = Some(c.clone());
            }
            AppEvent::Live(l) => st.live = l.clone(),
            AppEvent::Accounts(a) => st.accounts = a.clone(),
            AppEvent::Settings(s) => {
                shell
                    .close_to_tray
                    .store(s.close_to_tray, Ordering::Relaxed);
                st.settings = s.clone();
                tray_changed = false;
            }
            AppEvent::Regions(r) => st.regions = r.clone(),
            AppEvent::Workspaces(_) | AppEvent::History(_) | AppEvent::Warning(_) => {
                tray_changed = false
            }
        }
        let observations = observe(&mut st.seen, &event);
        let mut notices = Vec::new();
        let notify: NotifySettings = st.settings.notify.clone();
        for obs in observations {
            let (next, notice) = notify_policy::decide(&st.policy, &notify, &obs, now);
            st.policy = next;
            if let Some(n) = notice {
                notices.push(n.clone());
                st.notices.push(n);
                if st.notices.len() > 100 {
                    st.notices.remove(0);
                }
            }
        }
        (tray_changed.then(|| tray_model(&st)).flatten(), notices)
    };
    if let Some(model) = model {
        let tray = shell.tray.lock().unwrap_or_else(|p| p.into_inner()).clone();
        if let Some(tray) = tray {
            tauri::async_runtime::spawn(async move { crate::tray::apply(&tray, model).await });
        }
    }
    if shell.send_notifications {
        for n in &notices {
            show_notice(app, n);
        }
    }
}

async fn wait_disconnected(app: &App) {
    app.wait_settled(Duration::from_secs(5)).await;
}

/// Ends the metered session (bounded), then exits.
pub fn quit<R: Runtime>(app: &AppHandle<R>) {
    let Some(shell) = app.try_state::<Arc<Shell>>() else {
        app.exit(0);
        return;
    };
    if shell.quitting.swap(true, Ordering::SeqCst) {
        return;
    }
    let backend = app.state::<BackendState>().inner().clone();
    let app = app.clone();
    tauri::async_runtime::spawn(async move {
        if let Err(err) = backend.disconnect().await {
            tracing::warn!(%err, "could not end the session before quitting");
        }
        wait_disconnected(&backend).await;
        app.exit(0);
    });
}

/// SIGTERM (logout, `systemctl stop`, `kill`), SIGINT and SIGHUP quit like the Quit item: the
/// metered session ends (and a system-mode kill switch is lifted) before the process exits.
fn quit_on_signals<R: Runtime>(app: AppHandle<R>) {
    use tokio::signal::unix::{signal, SignalKind};
    tauri::async_runtime::spawn(async move {
        let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
            signal(SignalKind::hangup()),
        ) else {
            tracing::warn!("could not install signal handlers; SIGTERM will not end the session");
            return;
        };
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "SIGINT",
            _ = hup.recv() => "SIGHUP",
        };
        tracing::info!(signal = name, "ending the session before exiting");
        quit(&app);
    });
}

fn on_tray_action<R: Runtime>(app: &AppHandle<R>, action: TrayAction) {
    let backend = app.state::<BackendState>().inner().clone();
    match action {
        TrayAction::ShowWindow => show_main_window(app),
        TrayAction::Quit => quit(app),
        TrayAction::Disconnect => {
            tauri::async_runtime::spawn(async move {
                if let Err(err) = backend.disconnect().await {
                    tracing::warn!(%err, "tray disconnect failed");
                }
            });
        }
        TrayAction::Connect | TrayAction::SwitchRegion(_) => {
            tauri::async_runtime::spawn(async move {
                let snap = backend.snapshot().await;
                let region = match action {
                    TrayAction::SwitchRegion(r) => Some(r),
                    _ => snap.last_region.clone(),
                };
                let Some(region) = region else { return };
                let mode = snap.settings.default_mode;
                if let Err(err) = backend.switch(ConnectRequest { region, mode }).await {
                    tracing::warn!(%err, "tray connect failed");
                }
            });
        }
    }
}

/// What [`setup_app`] wires in.
#[derive(Debug, Clone, Copy)]
pub struct ShellOptions {
    /// Create the tray icon (false on the mock runtime, which has no tray host).
    pub tray: bool,
    /// Send real desktop notifications (else only record them).
    pub notify: bool,
    /// Start in the tray: no window (and no WebKit page) until it is opened.
    pub minimized: bool,
    /// Quit cleanly on SIGTERM, SIGINT and SIGHUP (the real app; not in-process tests).
    pub quit_on_signals: bool,
}

/// Adds Ferry's commands, state, event pump and window behaviour to a builder.
pub fn setup_app<R: Runtime>(
    builder: tauri::Builder<R>,
    backend: App,
    options: ShellOptions,
) -> tauri::Builder<R> {
    let with_tray = options.tray;
    let notify = options.notify;
    let shell = Arc::new(Shell {
        state: Mutex::new(ShellState {
            connection: None,
            live: None,
            accounts: vec![],
            regions: vec![],
            last_region: None,
            settings: Settings::default(),
            policy: PolicyState::default(),
            seen: Seen::default(),
            notices: vec![],
        }),
        close_to_tray: AtomicBool::new(true),
        quitting: AtomicBool::new(false),
        send_notifications: notify,
        tray: Mutex::new(None),
    });
    let state: BackendState = backend;
    crate::commands::register(builder.manage(state.clone()).manage(shell.clone()))
        .setup(move |app| {
            // Started in the tray, there is no window (and no WebKit page) until it is opened.
            if !options.minimized {
                open_main_window(app.handle())?;
            }
            let handle = app.handle().clone();
            if options.quit_on_signals {
                quit_on_signals(handle.clone());
            }
            let mut rx = state.subscribe();
            let backend = state.clone();
            let shell = shell.clone();
            tauri::async_runtime::spawn(async move {
                let snap = backend.snapshot().await;
                let regions = backend.regions().await;
                let model = {
                    let mut st = shell.lock();
                    st.connection = Some(snap.connection);
                    st.live = snap.live;
                    st.accounts = snap.accounts;
                    st.last_region = snap.last_region;
                    shell
                        .close_to_tray
                        .store(snap.settings.close_to_tray, Ordering::Relaxed);
                    st.settings = snap.settings;
                    st.regions = regions;
                    tray_model(&st)
                };
                if let Some(model) = model {
                    if with_tray {
                        let h2 = handle.clone();
                        let on_action: crate::tray::OnAction =
                            Arc::new(move |a| on_tray_action(&h2, a));
                        match crate::tray::spawn(model, on_action).await {
                            Ok(t) => {
                                *shell.tray.lock().unwrap_or_else(|p| p.into_inner()) = Some(t);
                            }
                            Err(err) => {
                                tracing::warn!(%err, "no tray item; the window stays the only way in");
                            }
                        }
                    }
                }
                // Started in the tray where no tray shows icons: the window is the only way in.
                if options.minimized {
                    let tray = shell.tray.lock().unwrap_or_else(|p| p.into_inner()).is_some();
                    if !(tray && crate::tray_host::host_present().await) {
                        tracing::info!("no tray icon can be shown here: opening the window");
                        show_main_window(&handle);
                    }
                }
                loop {
                    match rx.recv().await {
                        Ok(event) => handle_event(&handle, &shell, event),
                        Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                            tracing::warn!(n, "event pump lagged");
                        }
                        Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
                    }
                }
            });
            Ok(())
        })
        .on_window_event(|window, event| {
            if matches!(event, WindowEvent::Destroyed) && window.label() == MAIN_WINDOW {
                return_freed_memory();
            }
            if let WindowEvent::CloseRequested { api, .. } = event {
                if window.label() != MAIN_WINDOW {
                    return;
                }
                let app = window.app_handle();
                let to_tray = app
                    .try_state::<Arc<Shell>>()
                    .map(|s| s.close_to_tray.load(Ordering::Relaxed))
                    .unwrap_or(false);
                api.prevent_close();
                let tray_exists = app.try_state::<Arc<Shell>>().is_some_and(|s| {
                    s.tray.lock().unwrap_or_else(|p| p.into_inner()).is_some()
                });
                let metering = app.try_state::<Arc<Shell>>().is_some_and(|s| s.metering());
                let (window, app) = (window.clone(), app.clone());
                tauri::async_runtime::spawn(async move {
                    let host = to_tray && tray_exists && crate::tray_host::host_present().await;
                    let action = crate::tray_host::close_action(to_tray, tray_exists, host, metering);
                    tracing::info!(?action, host, metering, "the window was asked to close");
                    match action {
                        crate::tray_host::CloseAction::Hide => close_to_tray(&window),
                        crate::tray_host::CloseAction::Quit => quit(&app),
                        crate::tray_host::CloseAction::Ask => {
                            let _ = window.set_focus();
                            if let Err(err) = window.emit(CLOSE_ASKED, ()) {
                                tracing::warn!(%err, "could not ask before closing; quitting");
                                quit(&app);
                            }
                        }
                    }
                });
            }
        })
}

/// A lighter WebKit for one small, static page: the web context's cache model for a document
/// viewer (no page cache, small memory caches) and no accelerated compositing, which costs the
/// web process about 75 MB and buys nothing here. `FERRY_WEBKIT_COMPOSITING=1` keeps WebKit's
/// default compositing (for comparison, or a driver that needs it).
fn lighten_webview<R: Runtime>(window: &tauri::WebviewWindow<R>) {
    let compositing = std::env::var("FERRY_WEBKIT_COMPOSITING").is_ok_and(|v| v == "1");
    #[cfg(target_os = "linux")]
    if let Err(err) = window.with_webview(move |pw| {
        use webkit2gtk::{CacheModel, SettingsExt, WebContextExt, WebViewExt};
        if let Some(ctx) = pw.inner().context() {
            ctx.set_cache_model(CacheModel::DocumentViewer);
        }
        if !compositing {
            if let Some(settings) = WebViewExt::settings(&pw.inner()) {
                settings.set_hardware_acceleration_policy(
                    webkit2gtk::HardwareAccelerationPolicy::Never,
                );
            }
        }
    }) {
        tracing::warn!(%err, "could not set WebKit's cache model");
    }
}

/// Run first in `main`, before any thread exists (it sets environment variables WebKit reads):
/// WebKit's DMABUF renderer is turned off unless `FERRY_WEBKIT_COMPOSITING=1` or the user set
/// `WEBKIT_DISABLE_DMABUF_RENDERER` themselves. Its buffers carry accelerated compositing, which
/// the window does not use (see [`lighten_webview`]); the page's bitmaps then travel through
/// shared memory, and the web process keeps about 4 MiB less, the app 3 MiB.
pub fn prepare_webkit_env() {
    let compositing = std::env::var("FERRY_WEBKIT_COMPOSITING").is_ok_and(|v| v == "1");
    if !compositing && std::env::var_os("WEBKIT_DISABLE_DMABUF_RENDERER").is_none() {
        std::env::set_var("WEBKIT_DISABLE_DMABUF_RENDERER", "1");
    }
}

/// Gives the heap the closed window's webview used back to the system (glibc keeps freed
/// memory in its arenas otherwise).
fn return_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks glibc's own arenas and releases free pages; it takes
        // no pointers and is safe to call from any thread.
        let released = unsafe { libc::malloc_trim(0) };
        tracing::debug!(released, "returned the closed window's freed memory");
    }
}

/// Set by "Try the demo": the instance that started this one, which this one waits out so the
/// single-instance check does not find it still quitting.
pub const WAIT_FOR_PID: &str = "FERRY_WAIT_FOR_PID";

fn wait_for_predecessor() {
    let Some(pid) = std::env::var(WAIT_FOR_PID)
        .ok()
        .and_then(|p| p.parse::<u32>().ok())
    else {
        return;
    };
    std::env::remove_var(WAIT_FOR_PID);
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::path::Path::new(&format!("/proc/{pid}")).exists()
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Starts the app and blocks until it quits.
pub fn run(options: LaunchOptions) -> anyhow::Result<()> {
    wait_for_predecessor();
    let data_dir = ferry_core::paths::data_dir(None)?;
    // The window's size and position, kept beside the rest of this data dir (an absolute file
    // name: the plugin joins it onto its config dir, which keeps it as is).
    let window_state_file = data_dir.join("window-state.json").display().to_string();
    let mut opts = AppOptions::from_env(data_dir);
    let mut autostart_args = vec!["--minimized".to_string()];
    if options.demo {
        autostart_args.push("--demo".into());
    }
    opts.autostart_command = std::env::current_exe()
        .ok()
        .map(|exe| (exe, autostart_args));
    // In the demo the lab lives as long as the app (this function returns when it quits).
    let (backend, _lab) = tauri::async_runtime::block_on(async {
        if options.demo {
            let (app, lab) = crate::demo::start(
                opts,
                std::env::var_os("FERRY_DEMO_URLS_FILE").map(std::path::PathBuf::from),
            )
            .await?;
            Ok::<_, anyhow::Error>((app, Some(lab)))
        } else {
            let app = App::open(opts, SecretsMode::Keyring.open(), false).await?;
            Ok::<_, anyhow::Error>((app, None))
        }
    })?;
    let start_minimized = tauri::async_runtime::block_on(backend.snapshot())
        .settings
        .start_minimized;
    let builder = tauri::Builder::default()
        .plugin(tauri_plugin_single_instance::init(|app, _argv, _cwd| {
            tracing::info!("a second launch: showing this window instead");
            show_main_window(app)
        }))
        .plugin(tauri_plugin_opener::init())
        .plugin(
            tauri_plugin_window_state::Builder::new()
                .with_filename(window_state_file)
                .with_state_flags(WINDOW_STATE_FLAGS)
                .build(),
        );
    tracing::info!(demo = options.demo, "ferry desktop starting");
    setup_app(
        builder,
        backend,
        ShellOptions {
            tray: true,
            notify: true,
            minimized: options.minimized || start_minimized,
            quit_on_signals: true,
        },
    )
    .build(tauri::generate_context!())?
    .run(|app, event| {
        // The window closed to the tray: Ferry goes on there.
        if let tauri::RunEvent::ExitRequested {
            code: None, api, ..
        } = &event
        {
            if keeps_running_without_windows(app) {
                api.prevent_exit();
            }
        }
    });
    Ok(())
}
