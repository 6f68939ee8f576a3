//! What the commands drive: one small trait, so the shell, the UI and the tests do not depend on
//! which engine sits behind it ([`crate::engine::Engine`] in the app).
//! is wired in).

use async_trait::async_trait;
use tokio::sync::broadcast;

use crate::contract::{
    AccountView, CommandError, ConnectRequest, ConnectionView, HistoryView, RegionGroup, Service,
    Settings, SignInOutcome, SignInRequest, Snapshot, UiEvent, WorkspacesView,
};

/// The engine behind the window and the tray.
#[async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Everything the window needs at start.
    async fn snapshot(&self) -> Snapshot;
    /// Signs in to one service (the token goes to the keyring).
    async fn sign_in(&self, request: SignInRequest) -> Result<SignInOutcome, CommandError>;
    /// Signs out of one service, ending its metered session first.
    async fn sign_out(&self, service: Service) -> Result<Vec<AccountView>, CommandError>;
    /// Regions of the signed-in services.
    async fn regions(&self) -> Vec<RegionGroup>;
    /// Starts a connection; returns at once in the Connecting phase.
    async fn connect(&self, request: ConnectRequest) -> Result<ConnectionView, CommandError>;
    /// Ends the connection and its metered session.
    async fn disconnect(&self) -> Result<ConnectionView, CommandError>;
    /// NeoSC workspaces and sessions.
    async fn workspaces(&self) -> Result<WorkspacesView, CommandError>;
    /// Launches a workspace.
    async fn launch_workspace(&self, id: &str) -> Result<WorkspacesView, CommandError>;
    /// Stops a workspace.
    async fn stop_workspace(&self, id: &str) -> Result<WorkspacesView, CommandError>;
    /// Disconnects one NeoSC session.
    async fn disconnect_workspace_session(&self, id: &str) -> Result<WorkspacesView, CommandError>;
    /// Past sessions and daily totals.
    async fn history(&self) -> Result<HistoryView, CommandError>;
    /// Writes the history as CSV; returns the file's path.
    async fn export_history_csv(&self) -> Result<String, CommandError>;
    /// Validates and stores settings.
    async fn save_settings(&self, settings: Settings) -> Result<Settings, CommandError>;
    /// The event stream (every change, for the window, the tray and notifications).
    fn subscribe(&self) -> broadcast::Receiver<UiEvent>;
}

/// Checks settings before they are stored.
pub fn validate_settings(s: &Settings) -> Result<(), CommandError> {
    for (name, url) in [
        ("OrbNET", &s.base_urls.orbnet),
        ("tunnelbyte", &s.base_urls.tunnelbyte),
        ("NeoSC", &s.base_urls.neosc),
    ] {
        if !(url.starts_with("http://") || url.starts_with("https://")) || url.len() > 2048 {
            return Err(CommandError::new(
                "invalid_input",
                format!("The {name} address must start with http:// or https://."),
            ));
        }
    }
    if s.notify.credit_thresholds.len() > 8
        || s.notify
            .credit_thresholds
            .iter()
            .any(|t| !t.is_finite() || *t <= 0.0)
    {
        return Err(CommandError::new(
            "invalid_input",
            "Credit thresholds must be up to 8 positive numbers.",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_validation() {
        let ok = Settings::default();
        assert!(validate_settings(&ok).is_ok());
        let mut bad = Settings::default();
        bad.base_urls.neosc = "ftp://x".into();
        assert_eq!(validate_settings(&bad).unwrap_err().code, "invalid_input");
        let mut bad = Settings::default();
        bad.notify.credit_thresholds = vec![f64::NAN];
        assert!(validate_settings(&bad).is_err());
    }
}
