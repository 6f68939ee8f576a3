//! The Tauri commands: thin adapters from IPC to the core's [`App`]; its typed errors become
//! the wire [`CommandError`] here. Names and argument names are the ones in
//! [`crate::contract::COMMANDS`] (a test checks every one is registered).

use std::sync::Arc;

use ferry_core::app::{App, AppError};
use tauri::State;

use crate::contract::{
    AccountView, Budget, CommandError, ConnectRequest, ConnectionView, HistoryView, InsightView,
    RegionGroup, Service, Settings, SignInOutcome, SignInRequest, Snapshot, WorkspaceLaunchView,
    WorkspacesView,
};
use crate::shell::Shell;

/// The app as Tauri managed state.
pub type BackendState = App;

type Res<T> = Result<T, CommandError>;

fn wire<T>(r: Result<T, AppError>) -> Res<T> {
    r.map_err(CommandError::from)
}

/// Everything the window needs at start.
#[tauri::command]
pub async fn get_snapshot(backend: State<'_, BackendState>) -> Res<Snapshot> {
    Ok(backend.snapshot().await)
}

/// Signs in to one service.
#[tauri::command]
pub async fn sign_in(
    backend: State<'_, BackendState>,
    request: SignInRequest,
) -> Res<SignInOutcome> {
    wire(backend.sign_in(request).await)
}

/// Signs out of one service.
#[tauri::command]
pub async fn sign_out(backend: State<'_, BackendState>, service: Service) -> Res<Vec<AccountView>> {
    wire(backend.sign_out(service).await)
}

/// Regions per signed-in service.
#[tauri::command]
pub async fn list_regions(backend: State<'_, BackendState>) -> Res<Vec<RegionGroup>> {
    Ok(backend.regions().await)
}

/// Starts a connection.
#[tauri::command]
pub async fn connect(
    backend: State<'_, BackendState>,
    request: ConnectRequest,
) -> Res<ConnectionView> {
    wire(backend.connect(request).await)
}

/// Ends the connection.
#[tauri::command]
pub async fn disconnect(backend: State<'_, BackendState>) -> Res<ConnectionView> {
    wire(backend.disconnect().await)
}

/// NeoSC workspaces and sessions.
#[tauri::command]
pub async fn list_workspaces(backend: State<'_, BackendState>) -> Res<WorkspacesView> {
    wire(backend.workspaces().await)
}

/// Launches a workspace and opens its viewer in the default browser (`xdg-open` through the
/// opener plugin, from Rust: the webview itself may open nothing).
#[tauri::command]
pub async fn launch_workspace<R: tauri::Runtime>(
    app: tauri::AppHandle<R>,
    backend: State<'_, BackendState>,
    id: String,
) -> Res<WorkspaceLaunchView> {
    let view = wire(backend.launch_workspace(&id).await)?;
    // The opener plugin is registered by the real shell (not by in-process tests).
    let opener = tauri::Manager::try_state::<tauri_plugin_opener::Opener<R>>(&app);
    if let (Some(url), Some(opener)) = (&view.open_url, opener) {
        if let Err(err) = opener.open_url(url, None::<&str>) {
            tracing::warn!(%err, "could not open the workspace viewer");
            return Err(CommandError::new(
                "open_failed",
                format!(
                    "The workspace is running, but no browser opened ({err}). Its address: {url}"
                ),
            ));
        }
    }
    Ok(view)
}

/// Stops a workspace.
#[tauri::command]
pub async fn stop_workspace(
    backend: State<'_, BackendState>,
    shell: State<'_, Arc<Shell>>,
    id: String,
) -> Res<WorkspacesView> {
    // Its sessions end because of us: no "ended elsewhere" notice for them.
    let before = wire(backend.workspaces().await)?;
    if let Some(ws) = before.workspaces.iter().find(|w| w.id == id) {
        for s in before
            .sessions
            .iter()
            .filter(|s| s.active && s.workspace == ws.name)
        {
            shell.ended_here(&s.id);
        }
    }
    wire(backend.stop_workspace(&id).await)
}

/// Disconnects one NeoSC session.
#[tauri::command]
pub async fn disconnect_workspace_session(
    backend: State<'_, BackendState>,
    shell: State<'_, Arc<Shell>>,
    id: String,
) -> Res<WorkspacesView> {
    shell.ended_here(&id);
    wire(backend.disconnect_workspace_session(&id).await)
}

/// Past sessions and daily totals.
#[tauri::command]
pub async fn get_history(backend: State<'_, BackendState>) -> Res<HistoryView> {
    wire(backend.history().await)
}

/// Spend per day and region, rates, the cheapest regions, the month's projection.
#[tauri::command]
pub async fn get_insight(backend: State<'_, BackendState>) -> Res<InsightView> {
    wire(backend.insight().await)
}

/// Quits this instance (ending any session) and starts the app again on the embedded demo.
#[tauri::command]
pub async fn restart_in_demo<R: tauri::Runtime>(app: tauri::AppHandle<R>) -> Res<()> {
    let exe = std::env::current_exe()
        .map_err(|e| CommandError::new("io", format!("cannot find Ferry's program: {e}")))?;
    std::process::Command::new(exe)
        .arg("--demo")
        .env(crate::shell::WAIT_FOR_PID, std::process::id().to_string())
        .spawn()
        .map_err(|e| CommandError::new("io", format!("cannot start the demo: {e}")))?;
    crate::shell::quit(&app);
    Ok(())
}

/// Starts a browser through the app-mode proxy; returns its name.
#[tauri::command]
pub async fn open_browser(backend: State<'_, BackendState>) -> Res<String> {
    wire(backend.open_browser().await)
}

/// The redacted diagnostics report (what "Copy diagnostics" copies).
#[tauri::command]
pub async fn get_diagnostics(backend: State<'_, BackendState>) -> Res<String> {
    Ok(backend.diagnostics().await)
}

/// The spend caps in force.
#[tauri::command]
pub async fn get_budget(backend: State<'_, BackendState>) -> Res<Budget> {
    wire(backend.budget().await)
}

/// Checks and stores the spend caps; returns them.
#[tauri::command]
pub async fn save_budget(backend: State<'_, BackendState>, budget: Budget) -> Res<Budget> {
    wire(backend.save_budget(budget).await)
}

/// Writes the history as CSV; returns the path.
#[tauri::command]
pub async fn export_history_csv(backend: State<'_, BackendState>) -> Res<String> {
    wire(backend.export_history_csv().await)
}

/// Stores settings.
#[tauri::command]
pub async fn save_settings(backend: State<'_, BackendState>, settings: Settings) -> Res<Settings> {
    wire(backend.save_settings(settings).await)
}

/// Ends any session, then quits (the close dialog's "Disconnect and quit").
#[tauri::command]
pub async fn quit_app<R: tauri::Runtime>(app: tauri::AppHandle<R>) -> Res<()> {
    crate::shell::quit(&app);
    Ok(())
}

/// Minimizes the main window (the close dialog's "Minimize": still in the task bar).
#[tauri::command]
pub async fn minimize_window<R: tauri::Runtime>(app: tauri::AppHandle<R>) -> Res<()> {
    use tauri::Manager;
    if let Some(w) = app.get_webview_window(crate::shell::MAIN_WINDOW) {
        w.minimize()
            .map_err(|e| CommandError::new("window", format!("cannot minimize: {e}")))?;
    }
    Ok(())
}

/// Registers exactly the contract's commands on a builder.
pub fn register<R: tauri::Runtime>(builder: tauri::Builder<R>) -> tauri::Builder<R> {
    builder.invoke_handler(tauri::generate_handler![
        get_snapshot,
        sign_in,
        sign_out,
        list_regions,
        connect,
        disconnect,
        list_workspaces,
        launch_workspace,
        stop_workspace,
        disconnect_workspace_session,
        get_history,
        get_insight,
        open_browser,
        restart_in_demo,
        get_diagnostics,
        get_budget,
        save_budget,
        export_history_csv,
        save_settings,
        quit_app,
        minimize_window,
    ])
}
