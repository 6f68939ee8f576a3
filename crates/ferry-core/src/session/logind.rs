//! The logind sleep source: a systemd-logind *delay* inhibitor for `sleep`, and its
//! `PrepareForSleep` signal turned into [`SleepSignal`]s.
//!
//! On `PrepareForSleep(true)` the inhibitor's file descriptor goes to the supervisor inside a
//! [`SleepGuard`]; the supervisor drops it once the session is ended and the tunnel down, and
//! logind then lets the machine sleep (or stops waiting after its `InhibitDelayMaxSec`). On
//! `PrepareForSleep(false)` a new inhibitor is taken for the next sleep.

use futures::StreamExt;
use tokio::task::JoinHandle;
use tracing::{debug, info, warn};

use super::sleep::{SleepGuard, SleepSender, SleepSignal};

/// What the inhibitor says to whoever lists them (`systemd-inhibit --list`).
pub const WHY: &str = "end the metered session before sleep";

/// Why the logind source could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogindError {
    /// No bus to talk to (no system bus in containers, CI).
    #[error("cannot reach the D-Bus bus: {0}")]
    Bus(String),
    /// logind refused or is not there.
    #[error("logind did not grant a sleep inhibitor: {0}")]
    Inhibit(String),
    /// The `PrepareForSleep` subscription failed.
    #[error("cannot watch logind's PrepareForSleep: {0}")]
    Subscribe(String),
}

#[zbus::proxy(
    interface = "org.freedesktop.login1.Manager",
    default_service = "org.freedesktop.login1",
    default_path = "/org/freedesktop/login1",
    gen_blocking = false
)]
trait Manager {
    /// `Inhibit(what, who, why, mode) -> fd`.
    fn inhibit(
        &self,
        what: &str,
        who: &str,
        why: &str,
        mode: &str,
    ) -> zbus::Result<zbus::zvariant::OwnedFd>;

    /// Sent with `true` before sleep and `false` after resume.
    #[zbus(signal)]
    fn prepare_for_sleep(&self, start: bool) -> zbus::Result<()>;
}

async fn inhibit(proxy: &ManagerProxy<'_>) -> Result<zbus::zvariant::OwnedFd, LogindError> {
    proxy
        .inhibit("sleep", "Ferry", WHY, "delay")
        .await
        .map_err(|e| LogindError::Inhibit(e.to_string()))
}

/// Watches logind on `conn`: takes the delay inhibitor and subscribes to `PrepareForSleep`
/// before returning (so a failure is the caller's to log and fall back from), then reports on
/// `tx` until the bus or the receiver goes away.
pub async fn watch(conn: zbus::Connection, tx: SleepSender) -> Result<JoinHandle<()>, LogindError> {
    let proxy = ManagerProxy::new(&conn)
        .await
        .map_err(|e| LogindError::Subscribe(e.to_string()))?;
    // Subscribe first: a sleep that starts right after the inhibitor is taken is not missed.
    let mut signals = proxy
        .receive_prepare_for_sleep()
        .await
        .map_err(|e| LogindError::Subscribe(e.to_string()))?;
    let mut lock = Some(inhibit(&proxy).await?);
    info!("holding a logind delay inhibitor for sleep");
    Ok(tokio::spawn(async move {
        loop {
            let signal = tokio::select! {
                s = signals.next() => s,
                () = tx.closed() => None,
            };
            let Some(signal) = signal else {
                debug!("logind watcher stops");
                return;
            };
            let start = match signal.args() {
                Ok(a) => a.start,
                Err(e) => {
                    warn!(error = %e, "unreadable PrepareForSleep");
                    continue;
                }
            };
            let sent = if start {
                info!("logind: the machine is about to sleep");
                let guard = match lock.take() {
                    Some(fd) => SleepGuard::holding(fd),
                    None => SleepGuard::none(),
                };
                tx.send(SleepSignal::Preparing(guard))
            } else {
                info!("logind: the machine resumed");
                if lock.is_none() {
                    match inhibit(&proxy).await {
                        Ok(fd) => lock = Some(fd),
                        Err(e) => warn!(error = %e, "no inhibitor for the next sleep"),
                    }
                }
                tx.send(SleepSignal::Resumed)
            };
            if sent.is_err() {
                return;
            }
        }
    }))
}

/// [`watch`] on the system bus, bounded so a bus that hangs does not hold up a connection.
pub async fn system_watcher(tx: SleepSender) -> Result<JoinHandle<()>, LogindError> {
    let bound = std::time::Duration::from_secs(2);
    let conn = tokio::time::timeout(bound, zbus::Connection::system())
        .await
        .map_err(|_| LogindError::Bus("the system bus did not answer within 2 s".into()))?
        .map_err(|e| LogindError::Bus(e.to_string()))?;
    tokio::time::timeout(bound, watch(conn, tx))
        .await
        .map_err(|_| LogindError::Inhibit("logind did not answer within 2 s".into()))?
}
