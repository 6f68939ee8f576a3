//! NeoSC active workspace sessions, watched: every 30 s (and on demand after a launch, stop or
//! disconnect) the active list is fetched, every session seen is recorded in the history store,
//! and changes (a session started, a session ended) are published as [`WorkspaceEvent`]s. A
//! failed refresh is published too and retried with exponential backoff (never faster than the
//! interval, at most [`WatchConfig::max_backoff`], longer when the server asks with
//! `Retry-After`); the watcher never stops on errors, only when asked.
//!
//! The bookkeeping is the pure [`ActiveSessions`]; [`WorkspaceWatcher`] runs it on a task with an
//! injected [`Clock`](crate::clock::Clock).
//!
//! Usage (e.g. from the desktop app's backend):
//!
//! ```no_run
//! # async fn demo(client: ferry_core::services::neosc::NeoscClient, store: ferry_core::store::Store) {
//! use std::sync::Arc;
//! use ferry_core::clock::SystemClock;
//! use ferry_core::workspaces::{WatchConfig, WorkspaceEvent, WorkspaceWatcher};
//!
//! let (watcher, mut events) = WorkspaceWatcher::spawn(
//!     Arc::new(client),
//!     Some(store),
//!     SystemClock::shared(),
//!     WatchConfig::default(),
//! );
//! let active = watcher.active(); // watch::Receiver<Vec<WorkspaceSession>>: the latest list
//! tokio::spawn(async move {
//!     while let Ok(ev) = events.recv().await {
//!         match ev {
//!             WorkspaceEvent::Started { session } => println!("started {}", session.id),
//!             WorkspaceEvent::Ended { session } => println!("ended {}", session.id),
//!             WorkspaceEvent::RefreshFailed { message, .. } => println!("{message}"),
//!             WorkspaceEvent::Recovered => {}
//!         }
//!     }
//! });
//! // After launching, stopping or disconnecting a session:
//! watcher.refresh_now();
//! // On sign-out or exit:
//! watcher.stop().await;
//! # drop(active);
//! # }
//! ```

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use futures::FutureExt as _;
use serde::Serialize;
use tokio::sync::{broadcast, watch, Notify};
use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::services::error::ApiError;
use crate::services::neosc::{NeoscClient, WorkspaceSession};
use crate::store::{Store, WorkspaceSessionSeen};

/// The documented refresh cadence of active sessions.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(30);
/// The longest wait between refreshes while they fail.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Watcher settings.
#[derive(Debug, Clone)]
pub struct WatchConfig {
    /// Time between refreshes while they succeed (default 30 s).
    pub interval: Duration,
    /// Cap of the backoff while refreshes fail (default 5 min).
    pub max_backoff: Duration,
}

impl Default for WatchConfig {
    fn default() -> Self {
        Self {
            interval: REFRESH_INTERVAL,
            max_backoff: MAX_BACKOFF,
        }
    }
}

/// What the watcher publishes.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum WorkspaceEvent {
    /// A session appeared in the active list (on the first refresh: every active session).
    Started {
        /// The session as listed.
        session: WorkspaceSession,
    },
    /// A session left the active list; its status and end are the server's when it could
    /// tell, else `ended` and the time it was noticed.
    Ended {
        /// The session as last known.
        session: WorkspaceSession,
    },
    /// A refresh failed; the watcher tries again after `retry_in_secs`.
    RefreshFailed {
        /// What went wrong, for a person.
        message: String,
        /// Failures in a row.
        failures: u32,
        /// Seconds until the next try.
        retry_in_secs: u64,
    },
    /// A refresh worked again after failures.
    Recovered,
}

/// Where active sessions come from ([`NeoscClient`]; a stand-in in tests).
pub trait SessionSource: Send + Sync + 'static {
    /// The caller's active sessions (`GET /sessions/active`).
    fn active(&self) -> BoxFuture<'_, Result<Vec<WorkspaceSession>, ApiError>>;
    /// One session (`GET /sessions/{id}`), to learn how an ended one ended.
    fn one<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<WorkspaceSession, ApiError>>;
}

impl SessionSource for NeoscClient {
    fn active(&self) -> BoxFuture<'_, Result<Vec<WorkspaceSession>, ApiError>> {
        self.active_sessions().boxed()
    }
    fn one<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<WorkspaceSession, ApiError>> {
        self.session(id).boxed()
    }
}

/// The store record of a session as seen now.
pub fn seen_record(s: &WorkspaceSession, launched_here: bool) -> WorkspaceSessionSeen {
    let opt = |v: &str| (!v.is_empty()).then(|| v.to_string());
    WorkspaceSessionSeen {
        id: s.id.clone(),
        account: opt(&s.user_email),
        workspace_id: s.workspace_id.clone(),
        workspace_name: opt(&s.workspace_name),
        workspace_type: opt(&s.workspace_type),
        status: s.status.clone(),
        started_at: s.started_at,
        ended_at: s.ended_at,
        launched_here,
    }
}

/// The pure bookkeeping: which sessions are active, what changed, how long to wait next.
#[derive(Debug, Default)]
pub struct ActiveSessions {
    active: BTreeMap<String, WorkspaceSession>,
    failures: u32,
}

/// What one successful refresh changed.
#[derive(Debug, Default)]
pub struct Changes {
    /// Sessions not active before.
    pub started: Vec<WorkspaceSession>,
    /// Sessions active before and no longer listed (as last listed).
    pub ended: Vec<WorkspaceSession>,
    /// True when this refresh ended a run of failures.
    pub recovered: bool,
}

impl ActiveSessions {
    /// Applies a fetched active list (sessions whose status is not `active` are left out).
    pub fn refreshed(&mut self, list: Vec<WorkspaceSession>) -> Changes {
        let now: BTreeMap<String, WorkspaceSession> = list
            .into_iter()
            .filter(WorkspaceSession::is_active)
            .map(|s| (s.id.clone(), s))
            .collect();
        let started = now
            .values()
            .filter(|s| !self.active.contains_key(&s.id))
            .cloned()
            .collect();
        let ended = self
            .active
            .values()
            .filter(|s| !now.contains_key(&s.id))
            .cloned()
            .collect();
        self.active = now;
        let recovered = self.failures > 0;
        self.failures = 0;
        Changes {
            started,
            ended,
            recovered,
        }
    }

    /// Records a failed refresh; returns the failures in a row.
    pub fn failed(&mut self) -> u32 {
        self.failures = self.failures.saturating_add(1);
        self.failures
    }

    /// The active sessions, by id.
    pub fn active(&self) -> Vec<WorkspaceSession> {
        self.active.values().cloned().collect()
    }

    /// The wait before the next refresh: the interval while refreshes work; after `n` failures
    /// in a row `interval · 2^(n-1)`, capped at `max_backoff`, and never less than the server's
    /// `Retry-After`.
    pub fn next_wait(&self, cfg: &WatchConfig, retry_after: Option<Duration>) -> Duration {
        if self.failures == 0 {
            return cfg.interval;
        }
        let factor = 1u32 << (self.failures - 1).min(16);
        let backoff = cfg
            .interval
            .saturating_mul(factor)
            .min(cfg.max_backoff.max(cfg.interval));
        retry_after.map_or(backoff, |r| backoff.max(r))
    }
}

/// A running watcher. Dropping it stops the task too; [`WorkspaceWatcher::stop`] also waits
/// for it.
#[derive(Debug)]
pub struct WorkspaceWatcher {
    events: broadcast::Sender<WorkspaceEvent>,
    active: watch::Receiver<Vec<WorkspaceSession>>,
    refresh: Arc<Notify>,
    stop: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl WorkspaceWatcher {
    /// Starts watching: the first refresh runs at once. Returns the watcher and a receiver that
    /// sees every event from the first refresh on (more with [`WorkspaceWatcher::subscribe`]).
    /// `store`, when given, gets every session seen (`Store::upsert_workspace_session`).
    pub fn spawn<S: SessionSource>(
        source: Arc<S>,
        store: Option<Store>,
        clock: SharedClock,
        config: WatchConfig,
    ) -> (Self, broadcast::Receiver<WorkspaceEvent>) {
        let (events, first_rx) = broadcast::channel(64);
        let (active_tx, active) = watch::channel(Vec::new());
        let refresh = Arc::new(Notify::new());
        let (stop, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run(
            source,
            store,
            clock,
            config,
            events.clone(),
            active_tx,
            refresh.clone(),
            stop_rx,
        ));
        let w = Self {
            events,
            active,
            refresh,
            stop,
            task: Some(task),
        };
        (w, first_rx)
    }

    /// A new receiver of events from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<WorkspaceEvent> {
        self.events.subscribe()
    }

    /// The latest active list (updated after every successful refresh).
    pub fn active(&self) -> watch::Receiver<Vec<WorkspaceSession>> {
        self.active.clone()
    }

    /// Refreshes at once (after a launch, stop or disconnect), then on the interval again.
    pub fn refresh_now(&self) {
        self.refresh.notify_one();
    }

    /// Stops the watcher and waits for its task to end.
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        if let Some(t) = self.task.take() {
            let _ = t.await;
        }
    }
}

impl Drop for WorkspaceWatcher {
    fn drop(&mut self) {
        self.stop.send_replace(true);
    }
}

#[allow(clippy::too_many_arguments)]
async fn run<S: SessionSource>(
    source: Arc<S>,
    store: Option<Store>,
    clock: SharedClock,
    config: WatchConfig,
    events: broadcast::Sender<WorkspaceEvent>,
    active: watch::Sender<Vec<WorkspaceSession>>,
    refresh: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tracker = ActiveSessions::default();
    loop {
        if *stop.borrow_and_update() {
            return;
        }
        let retry_after = match source.active().await {
            Ok(list) => {
                let changes = tracker.refreshed(list);
                let seen_at = clock.wall();
                let current = tracker.active();
                let mut ended = Vec::with_capacity(changes.ended.len());
                for last in changes.ended {
                    ended.push(how_it_ended(&*source, last, seen_at).await);
                }
                record(store.as_ref(), &current, seen_at).await;
                record(store.as_ref(), &ended, seen_at).await;
                // Publish only once everything is recorded: a listener that sees an event can
                // read the store and find it there.
                if changes.recovered {
                    let _ = events.send(WorkspaceEvent::Recovered);
                }
                for session in changes.started {
                    let _ = events.send(WorkspaceEvent::Started { session });
                }
                for session in ended {
                    let _ = events.send(WorkspaceEvent::Ended { session });
                }
                active.send_replace(current);
                None
            }
            Err(e) => {
                let failures = tracker.failed();
                let retry_after = match &e {
                    ApiError::RateLimited { retry_after, .. } => *retry_after,
                    _ => None,
                };
                let wait = tracker.next_wait(&config, retry_after);
                tracing::warn!(error = %e, failures, wait_secs = wait.as_secs(), "NeoSC sessions refresh failed");
                let _ = events.send(WorkspaceEvent::RefreshFailed {
                    message: e.to_string(),
                    failures,
                    retry_in_secs: wait.as_secs(),
                });
                retry_after
            }
        };
        let next = clock.now() + tracker.next_wait(&config, retry_after);
        tokio::select! {
            _ = clock.sleep_until(next) => {}
            _ = refresh.notified() => {}
            changed = stop.changed() => if changed.is_err() { return },
        }
    }
}

/// The server's view of a session that left the active list, or the last listing marked
/// `ended` at `noticed` when the server cannot tell.
async fn how_it_ended<S: SessionSource + ?Sized>(
    source: &S,
    last: WorkspaceSession,
    noticed: DateTime<Utc>,
) -> WorkspaceSession {
    match source.one(&last.id).await {
        Ok(s) if !s.is_active() => s,
        Ok(_) | Err(_) => WorkspaceSession {
            status: "ended".into(),
            ended_at: last.ended_at.or(Some(noticed)),
            ..last
        },
    }
}

async fn record(store: Option<&Store>, sessions: &[WorkspaceSession], seen_at: DateTime<Utc>) {
    let Some(store) = store else { return };
    for s in sessions {
        if let Err(e) = store
            .upsert_workspace_session(&seen_record(s, false), seen_at)
            .await
        {
            tracing::warn!(error = %e, session = %s.id, "could not record a workspace session");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;
    use crate::http::{HttpSettings, RetryPolicy};
    use crate::secrets::Secret;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn ws(id: &str, status: &str) -> WorkspaceSession {
        serde_json::from_value(serde_json::json!({
            "id": id, "workspace_id": "ws-linux-desktop", "status": status,
            "user_email": "john.doe@acme.com"
        }))
        .unwrap()
    }

    #[test]
    fn tracker_reports_started_and_ended_and_backs_off() {
        let cfg = WatchConfig::default();
        let mut t = ActiveSessions::default();
        let c = t.refreshed(vec![ws("a", "active"), ws("x", "terminated")]);
        assert_eq!(c.started.iter().map(|s| &s.id).collect::<Vec<_>>(), ["a"]);
        assert!(c.ended.is_empty() && !c.recovered);
        let c = t.refreshed(vec![ws("a", "active"), ws("b", "active")]);
        assert_eq!(c.started.iter().map(|s| &s.id).collect::<Vec<_>>(), ["b"]);
        assert!(c.ended.is_empty());
        assert_eq!(t.next_wait(&cfg, None), Duration::from_secs(30));
        let waits: Vec<u64> = (0..6)
            .map(|_| {
                t.failed();
                t.next_wait(&cfg, None).as_secs()
            })
            .collect();
        assert_eq!(waits, [30, 60, 120, 240, 300, 300]);
        assert_eq!(
            t.next_wait(&cfg, Some(Duration::from_secs(900))),
            Duration::from_secs(900),
            "Retry-After wins when longer"
        );
        // Failures keep what was active; the next success compares with it.
        let c = t.refreshed(vec![ws("b", "active")]);
        assert!(c.recovered);
        assert_eq!(c.ended.iter().map(|s| &s.id).collect::<Vec<_>>(), ["a"]);
        assert!(c.started.is_empty());
        assert_eq!(t.next_wait(&cfg, None), Duration::from_secs(30));
    }

    /// The real client, counting refreshes.
    struct Counting {
        client: NeoscClient,
        calls: AtomicUsize,
    }

    impl SessionSource for Counting {
        fn active(&self) -> BoxFuture<'_, Result<Vec<WorkspaceSession>, ApiError>> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            self.client.active()
        }
        fn one<'a>(&'a self, id: &'a str) -> BoxFuture<'a, Result<WorkspaceSession, ApiError>> {
            self.client.one(id)
        }
    }

    const WAIT: Duration = Duration::from_secs(10);

    async fn next_event(rx: &mut broadcast::Receiver<WorkspaceEvent>) -> WorkspaceEvent {
        tokio::time::timeout(WAIT, rx.recv())
            .await
            .expect("an event in time")
            .expect("channel open")
    }

    /// Lets the watcher task run until it waits again (current-thread runtime).
    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    // Current-thread runtime: when the test sees an event, the watcher has already computed
    // its next deadline and waits on the clock, so advancing the clock is never lost.
    #[tokio::test]
    async fn watches_the_lab_every_30_s_records_changes_and_backs_off_on_errors() {
        let lab = ferry_lab::Lab::start(ferry_lab::LabConfig::default())
            .await
            .unwrap();
        let urls = lab.urls().clone();
        let settings = HttpSettings {
            retry: RetryPolicy {
                max_attempts: 1,
                ..RetryPolicy::default()
            },
            ..HttpSettings::default()
        };
        let mut client = NeoscClient::new(&urls.neosc, settings).unwrap();
        client
            .login("john.doe@acme.com", &Secret::new("neosc-demo-john"))
            .await
            .unwrap();
        let source = Arc::new(Counting {
            client,
            calls: AtomicUsize::new(0),
        });
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open_in(tmp.path()).await.unwrap();
        let clock = ManualClock::at_fixed_date();
        let (watcher, mut rx) = WorkspaceWatcher::spawn(
            source.clone(),
            Some(store.clone()),
            clock.shared(),
            WatchConfig::default(),
        );
        // The first refresh: john has only an ended session, so nothing is active.
        let mut active = watcher.active();
        tokio::time::timeout(WAIT, active.changed())
            .await
            .unwrap()
            .unwrap();
        assert!(active.borrow_and_update().is_empty());
        assert_eq!(source.calls.load(Ordering::SeqCst), 1);

        let sid = source
            .client
            .launch("ws-linux-desktop")
            .await
            .unwrap()
            .session_id;
        clock.advance(Duration::from_secs(29));
        settle().await;
        assert_eq!(source.calls.load(Ordering::SeqCst), 1, "not before 30 s");
        clock.advance(Duration::from_secs(1));
        match next_event(&mut rx).await {
            WorkspaceEvent::Started { session } => assert_eq!(session.id, sid),
            other => panic!("{other:?}"),
        }
        assert_eq!(source.calls.load(Ordering::SeqCst), 2);
        let rows = store.workspace_sessions().await.unwrap();
        assert!(
            rows.iter().any(|r| r.id == sid && r.status == "active"),
            "{rows:?}"
        );
        assert_eq!(active.borrow_and_update().len(), 1);

        // Ended: disconnected on the server, noticed on the next (immediate) refresh.
        source.client.disconnect(&sid).await.unwrap();
        watcher.refresh_now();
        let ended = match next_event(&mut rx).await {
            WorkspaceEvent::Ended { session } => session,
            other => panic!("{other:?}"),
        };
        assert_eq!(ended.id, sid);
        assert_ne!(ended.status, "active");
        assert!(ended.ended_at.is_some());
        let rows = store.workspace_sessions().await.unwrap();
        let row = rows.iter().find(|r| r.id == sid).unwrap();
        assert_eq!(row.status, ended.status);
        // The store keeps milliseconds.
        assert_eq!(
            row.ended_at.map(|t| t.timestamp_millis()),
            ended.ended_at.map(|t| t.timestamp_millis())
        );

        // Three failures in a row: waits of 30, 60, 120 s, then it recovers.
        let http = reqwest::Client::new();
        let path = format!(
            "{}/sessions/active",
            reqwest::Url::parse(&urls.neosc).unwrap().path()
        );
        http.post(format!("{}/faults", urls.control))
            .json(&serde_json::json!({"method": "GET", "path": path, "status": 503, "times": 3}))
            .send()
            .await
            .unwrap()
            .error_for_status()
            .unwrap();
        let calls = source.calls.load(Ordering::SeqCst);
        let mut waits = Vec::new();
        clock.advance(Duration::from_secs(30));
        for n in 1..=3u32 {
            match next_event(&mut rx).await {
                WorkspaceEvent::RefreshFailed {
                    failures,
                    retry_in_secs,
                    message,
                } => {
                    assert_eq!(failures, n, "{message}");
                    waits.push(retry_in_secs);
                    let wait = Duration::from_secs(retry_in_secs);
                    clock.advance(wait - Duration::from_secs(1));
                    settle().await;
                    assert_eq!(
                        source.calls.load(Ordering::SeqCst),
                        calls + n as usize,
                        "no refresh before the backoff ends"
                    );
                    clock.advance(Duration::from_secs(1));
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(waits, [30, 60, 120]);
        assert!(matches!(
            next_event(&mut rx).await,
            WorkspaceEvent::Recovered
        ));
        tokio::time::timeout(WAIT, watcher.stop()).await.unwrap();
        lab.shutdown().await;
    }
}
