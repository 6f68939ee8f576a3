//! A minimal StatusNotifierWatcher, as a panel's would be, served on the session bus: tray
//! items register with it, and its name tells apps that a tray host shows icons.

use std::sync::{Arc, Mutex};

/// The watcher's state: the items registered so far.
#[derive(Default, Clone)]
pub struct Watcher {
    /// Bus names of the registered items.
    pub items: Arc<Mutex<Vec<String>>>,
}

impl Watcher {
    /// Owns `org.kde.StatusNotifierWatcher` on the session bus and serves it (while the
    /// returned connection lives).
    pub async fn serve() -> (Watcher, zbus::Connection) {
        let watcher = Watcher::default();
        let conn = zbus::connection::Builder::session()
            .unwrap()
            .name("org.kde.StatusNotifierWatcher")
            .unwrap()
            .serve_at("/StatusNotifierWatcher", watcher.clone())
            .unwrap()
            .build()
            .await
            .unwrap();
        (watcher, conn)
    }
}

#[zbus::interface(name = "org.kde.StatusNotifierWatcher")]
impl Watcher {
    async fn register_status_notifier_item(
        &self,
        service: &str,
        #[zbus(header)] hdr: zbus::message::Header<'_>,
    ) {
        // An item may register by bus name or by object path (then its sender is the name).
        let name = if service.starts_with('/') {
            hdr.sender().map(|s| s.to_string()).unwrap_or_default()
        } else {
            service.to_string()
        };
        self.items.lock().unwrap().push(name);
    }

    async fn register_status_notifier_host(&self, _service: &str) {}

    #[zbus(property)]
    async fn is_status_notifier_host_registered(&self) -> bool {
        true
    }

    #[zbus(property)]
    async fn protocol_version(&self) -> i32 {
        0
    }

    #[zbus(property)]
    async fn registered_status_notifier_items(&self) -> Vec<String> {
        self.items.lock().unwrap().clone()
    }
}
