//! Whether a tray icon can be seen: a StatusNotifierItem host (GNOME's AppIndicator extension,
//! KDE, most panels) owns `org.kde.StatusNotifierWatcher` on the session bus. Without one, a
//! tray object exists but shows nothing, so closing the window must not hide a metered session.

/// The well-known name of the StatusNotifierItem watcher.
pub const WATCHER: &str = "org.kde.StatusNotifierWatcher";

/// What closing the main window does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseAction {
    /// Hide to the tray (the icon is visible and brings the window back).
    Hide,
    /// Quit at once: nothing runs that closing could end unseen.
    Quit,
    /// A session is metering and no icon would show it: ask whether to disconnect and quit,
    /// minimize, or keep the window.
    Ask,
}

/// Decides what closing does (pure): hide only when asked to and an icon is really shown;
/// otherwise ask while a session meters, and quit when nothing runs.
pub fn close_action(
    close_to_tray: bool,
    tray_exists: bool,
    host_present: bool,
    metering: bool,
) -> CloseAction {
    if close_to_tray && tray_exists && host_present {
        CloseAction::Hide
    } else if metering {
        CloseAction::Ask
    } else {
        CloseAction::Quit
    }
}

/// True when a tray host watches the session bus (false without a bus, or when it does not answer).
pub async fn host_present() -> bool {
    let probe = async {
        let conn = zbus::Connection::session().await.ok()?;
        let dbus = zbus::fdo::DBusProxy::new(&conn).await.ok()?;
        let name = zbus::names::BusName::try_from(WATCHER).ok()?;
        dbus.name_has_owner(name).await.ok()
    };
    tokio::time::timeout(std::time::Duration::from_secs(2), probe)
        .await
        .ok()
        .flatten()
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hide_only_when_an_icon_is_shown() {
        for metering in [false, true] {
            assert_eq!(close_action(true, true, true, metering), CloseAction::Hide);
        }
        assert_eq!(
            close_action(true, true, false, false),
            CloseAction::Quit,
            "no host, nothing running"
        );
        assert_eq!(
            close_action(true, false, true, false),
            CloseAction::Quit,
            "no tray"
        );
        assert_eq!(
            close_action(false, true, true, false),
            CloseAction::Quit,
            "setting off"
        );
    }

    #[test]
    fn a_metered_session_is_never_hidden_without_an_icon() {
        assert_eq!(close_action(true, true, false, true), CloseAction::Ask);
        assert_eq!(close_action(true, false, true, true), CloseAction::Ask);
        assert_eq!(close_action(false, true, true, true), CloseAction::Ask);
    }

    #[tokio::test]
    async fn a_watcher_on_the_session_bus_is_seen() {
        let Ok(conn) = zbus::Connection::session().await else {
            eprintln!("skipping: no D-Bus session bus (scripts/desktop-env.sh provides one)");
            return;
        };
        if host_present().await {
            eprintln!("skipping: this session already has a tray host");
            return;
        }
        conn.request_name(WATCHER).await.unwrap();
        assert!(host_present().await, "a host owning {WATCHER} is seen");
        conn.release_name(WATCHER).await.unwrap();
        assert!(!host_present().await, "and its leaving too");
    }
}
