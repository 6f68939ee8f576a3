//! The Tauri commands: thin adapters from IPC to the [`Backend`]. Names and argument names are
//! the ones in [`crate::contract::COMMANDS`] (a test checks every one is registered).

use std::sync::Arc;

use tauri::State;

use crate::backend::Backend;
use crate::contract::{
    AccountView, CommandError, ConnectRequest, ConnectionView, HistoryView, RegionGroup, Service,
    Settings, SignInOutcome, SignInRequest, Snapshot, WorkspacesView,
};
use crate::shell::Shell;

/// The backend as Tauri managed state.
pub type BackendState = Arc<dyn Backend>;

type Res<T> = Result<T, CommandError>;

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
    backend.sign_in(request).await
}

/// Signs out of one service.
#[tauri::command]
pub async fn sign_out(backend: State<'_, BackendState>, service: Service) -> Res<Vec<AccountView>> {
    backend.sign_out(service).await
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
    backend.connect(request).await
}

/// Ends the connection.
#[tauri::command]
pub async fn disconnect(backend: State<'_, BackendState>) -> Res<ConnectionView> {
    backend.disconnect().await
}

/// NeoSC workspaces and sessions.
#[tauri::command]
pub async fn list_workspaces(backend: State<'_, BackendState>) -> Res<WorkspacesView> {
    backend.workspaces().await
}

/// Launches a workspace.
#[tauri::command]
pub async fn launch_workspace(backend: State<'_, BackendState>, id: String) -> Res<WorkspacesView> {
    backend.launch_workspace(&id).await
}

/// Stops a workspace.
#[tauri::command]
pub async fn stop_workspace(
    backend: State<'_, BackendState>,
    shell: State<'_, Arc<Shell>>,
    id: String,
) -> Res<WorkspacesView> {
    // Its sessions end because of us: no "ended elsewhere" notice for them.
    let before = backend.workspaces().await?;
    if let Some(ws) = before.workspaces.iter().find(|w| w.id == id) {
        for s in before
            .sessions
            .iter()
            .filter(|s| s.active && s.workspace == ws.name)
        {
            shell.ended_here(&s.id);
        }
    }
    backend.stop_workspace(&id).await
}

/// Disconnects one NeoSC session.
#[tauri::command]
pub async fn disconnect_workspace_session(
    backend: State<'_, BackendState>,
    shell: State<'_, Arc<Shell>>,
    id: String,
) -> Res<WorkspacesView> {
    shell.ended_here(&id);
    backend.disconnect_workspace_session(&id).await
}

/// Past sessions and daily totals.
#[tauri::command]
pub async fn get_history(backend: State<'_, BackendState>) -> Res<HistoryView> {
    backend.history().await
}

/// Writes the history as CSV; returns the path.
#[tauri::command]
pub async fn export_history_csv(backend: State<'_, BackendState>) -> Res<String> {
    backend.export_history_csv().await
}

/// Stores settings.
#[tauri::command]
pub async fn save_settings(backend: State<'_, BackendState>, settings: Settings) -> Res<Settings> {
    backend.save_settings(settings).await
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
        export_history_csv,
        save_settings,
    ])
}
