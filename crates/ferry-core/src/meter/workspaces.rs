//! NeoSC: refresh the list of active workspace sessions every 30 s and publish it on a watch
//! channel (window, tray and CLI read the latest list). Launch, stop and disconnect are single
//! calls on the NeoSC client; after each, call [`RefreshHandle::refresh_now`].

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tracing::debug;

use crate::clock::SharedClock;

/// The documented refresh cadence of active sessions.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);

/// The latest refresh: the list, or the error text of the last failed refresh.
#[derive(Debug, Clone, PartialEq)]
pub enum Snapshot<T> {
    /// Nothing fetched yet.
    Pending,
    /// The active sessions.
    Ready(Vec<T>),
    /// The last refresh failed (the list before it is dropped: it may be stale).
    Failed(String),
}

/// Asks a running refresh loop to refresh at once (after launch, stop or disconnect).
#[derive(Debug, Clone, Default)]
pub struct RefreshHandle(Arc<Notify>);

impl RefreshHandle {
    /// Wakes the loop for an immediate refresh.
    pub fn refresh_now(&self) {
        self.0.notify_one();
    }
}

/// Runs `fetch` every `interval` (and on [`RefreshHandle::refresh_now`]) until `stop` is set,
/// publishing each result on `out`.
pub async fn run_refresh<T, E, F, Fut>(
    clock: SharedClock,
    interval: Duration,
    fetch: F,
    out: watch::Sender<Snapshot<T>>,
    handle: RefreshHandle,
    mut stop: watch::Receiver<bool>,
) where
    T: Send + Sync + 'static,
    E: std::fmt::Display,
    F: Fn() -> Fut + Send,
    Fut: Future<Output = Result<Vec<T>, E>> + Send,
{
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        let snap = match fetch().await {
            Ok(list) => Snapshot::Ready(list),
            Err(e) => {
                debug!(error = %e, "workspace sessions refresh failed");
                Snapshot::Failed(e.to_string())
            }
        };
        out.send_replace(snap);
        let next = clock.now() + interval;
        tokio::select! {
            _ = clock.sleep_until(next) => {}
            _ = handle.0.notified() => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[tokio::test]
    async fn refreshes_on_the_interval_and_on_demand() {
        let clock = ManualClock::at_fixed_date();
        let calls = Arc::new(AtomicUsize::new(0));
        let (tx, mut rx) = watch::channel(Snapshot::<usize>::Pending);
        let (stop_tx, stop_rx) = watch::channel(false);
        let handle = RefreshHandle::default();
        let c = calls.clone();
        let task = tokio::spawn(run_refresh(
            clock.shared(),
            REFRESH_INTERVAL,
            move || {
                let n = c.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 1 {
                        Err("503".to_string())
                    } else {
                        Ok(vec![n])
                    }
                }
            },
            tx,
            handle.clone(),
            stop_rx,
        ));
        let next = |rx: &mut watch::Receiver<Snapshot<usize>>| {
            let mut rx = rx.clone();
            async move {
                tokio::time::timeout(Duration::from_secs(5), rx.changed())
                    .await
                    .unwrap()
                    .unwrap();
                let v = rx.borrow_and_update().clone();
                v
            }
        };
        assert_eq!(next(&mut rx).await, Snapshot::Ready(vec![0]));
        rx.borrow_and_update();
        clock.advance(Duration::from_secs(29));
        tokio::task::yield_now().await;
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        clock.advance(Duration::from_secs(1));
        assert_eq!(next(&mut rx).await, Snapshot::Failed("503".into()));
        rx.borrow_and_update();
        handle.refresh_now();
        assert_eq!(next(&mut rx).await, Snapshot::Ready(vec![2]));
        stop_tx.send(true).unwrap();
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
