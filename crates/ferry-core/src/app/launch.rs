//! Starting a metered session, the same way for every front end: take the per-user instance
//! lock (so two front ends never both meter, and recovery never ends a session another one is
//! billing), close what a crash left open, then spawn the supervisor with the service's provider.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;

use crate::clock::SharedClock;
use crate::meter::caps::{self, Budget, CapTracker, CapUnit, BUDGET_KEY};
use crate::meter::credits::CreditsConfig;
use crate::meter::quota::POLL_INTERVAL;
use crate::services::ServiceKind;
use crate::session::instance::{InstanceLock, InstanceLockError};
use crate::session::machine::{State, TunnelMode};
use crate::session::orbnet::{OrbnetProvider, OrbnetSettings};
use crate::session::recover::{reconcile_orbnet, reconcile_tunnelbyte, Recovered};
use crate::session::supervisor::{self, SupervisorHandle};
use crate::session::tunnelbyte::{TunnelbyteProvider, TunnelbyteSettings};
use crate::session::wg_tunnels::{HelperLink, WgTunnels};
use crate::session::{network, sleep};
use crate::store::Store;

use super::error::AppError;
use super::services::Services;

/// What to start.
#[derive(Debug, Clone)]
pub struct LaunchSpec {
    /// OrbNET or tunnelbyte.
    pub service: ServiceKind,
    /// OrbNET server id or tunnelbyte region code; `None`: the service picks.
    pub target: Option<String>,
    /// App mode (local proxy) or system mode.
    pub tunnels: WgTunnels,
    /// Fixed heartbeat interval (a test knob: honoured only against a loopback service).
    pub heartbeat: Option<Duration>,
    /// tunnelbyte status poll interval (a test knob below 10 s: loopback only).
    pub status_poll: Option<Duration>,
    /// How long to wait for the tunnel's first handshake.
    pub handshake_timeout: Duration,
    /// How often local traffic figures are published.
    pub traffic_every: Duration,
    /// Minutes of credit left at which OrbNET sessions warn (default 10 and 2).
    pub warn_minutes: Vec<f64>,
    /// Who is starting it, for the "already connected in …" message (e.g. "`ferry connect`").
    pub front_end: String,
    /// One-off per-session caps (they replace the budget's session cap for this session).
    pub caps: SessionCaps,
}

/// Per-session caps given for one connection (`ferry connect --cap-credits/--cap-eur`).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct SessionCaps {
    /// OrbNET credits for this session.
    pub credits: Option<f64>,
    /// tunnelbyte money for this session, in millicents of the service's currency.
    pub millicents: Option<u64>,
}

/// Reads the budget from the store's settings (none set: an empty budget).
pub async fn load_budget(store: &Store) -> Result<Budget, AppError> {
    let raw = store.setting(BUDGET_KEY).await?;
    Budget::from_setting(raw.as_deref()).map_err(|e| AppError::Io(e.to_string()))
}

/// Checks and stores the budget.
pub async fn save_budget(store: &Store, budget: &Budget) -> Result<(), AppError> {
    budget
        .validate()
        .map_err(|e| AppError::invalid(e.to_string()))?;
    if budget.is_empty() {
        store.delete_setting(BUDGET_KEY).await?;
    } else {
        store.set_setting(BUDGET_KEY, &budget.to_setting()).await?;
    }
    Ok(())
}

/// The caps of a session about to start: the budget's (the session cap replaced by a one-off
/// one), with the day and month totals from the history (local time, on the store's clock).
/// Refuses with [`AppError::CapReached`] when one is already reached.
pub async fn session_caps(
    store: &Store,
    service: ServiceKind,
    one_off: SessionCaps,
) -> Result<CapTracker, AppError> {
    let budget = load_budget(store).await?;
    let (unit, limits) = match service {
        ServiceKind::Orbnet => (
            CapUnit::Credits,
            [
                one_off.credits.or(budget.session_credits),
                budget.day_credits,
                budget.month_credits,
            ],
        ),
        ServiceKind::Tunnelbyte => {
            let mc = |v: Option<u64>| v.map(|v| v as f64);
            (
                CapUnit::Millicents,
                [
                    mc(one_off.millicents.or(budget.session_millicents)),
                    mc(budget.day_millicents),
                    mc(budget.month_millicents),
                ],
            )
        }
        ServiceKind::Neosc => return Ok(CapTracker::default()),
    };
    if limits.iter().all(Option::is_none) {
        return Ok(CapTracker::default());
    }
    if let Some(v) = limits[0] {
        if !(v.is_finite() && v > 0.0) {
            return Err(AppError::invalid("A session cap must be more than zero."));
        }
    }
    let now = store.wall_now();
    let w = caps::windows(now, &chrono::Local);
    let day = store.spent_between(service, w.day_start, w.day_end).await?;
    let month = store
        .spent_between(service, w.month_start, w.month_end)
        .await?;
    let (d, m) = match unit {
        CapUnit::Credits => (day.credits, month.credits),
        CapUnit::Millicents => (day.millicents as f64, month.millicents as f64),
    };
    let list = caps::caps_for(unit, limits, d, m, &w);
    if let Some(c) = caps::reached(&list) {
        return Err(AppError::CapReached {
            cap: c.describe(None),
            resets: c.resets_text(),
        });
    }
    Ok(CapTracker::new(list))
}

/// A running session: its supervisor and the instance lock held while it runs.
pub struct Launched {
    /// The supervisor (commands, events, state).
    pub handle: SupervisorHandle,
    /// The supervisor task; it ends once the last handle is gone.
    pub task: JoinHandle<()>,
    /// Sessions a crash had left open, now closed.
    pub recovered: Recovered,
    /// Held until the session is over.
    pub lock: InstanceLock,
    /// System mode's link to the privileged helper: the front end disconnects when
    /// [`HelperLink::disconnect_requested`] fires (`ferry disconnect` from another process).
    pub helper: HelperLink,
}

impl std::fmt::Debug for Launched {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Launched")
            .field("recovered", &self.recovered)
            .finish_non_exhaustive()
    }
}

/// Takes the instance lock in `lock_dir` for `front_end`.
pub fn take_lock(lock_dir: &Path, front_end: &str) -> Result<InstanceLock, AppError> {
    match InstanceLock::acquire_as(lock_dir, front_end) {
        Ok(l) => Ok(l),
        Err(InstanceLockError::Busy { holder }) => Err(AppError::AlreadyConnected {
            holder: holder.unwrap_or_else(|| "another Ferry window or `ferry connect`".into()),
        }),
        Err(e) => Err(AppError::Io(e.to_string())),
    }
}

/// Locks, recovers, and spawns the supervisor (not yet connecting: call `handle.connect()`).
pub async fn launch(
    services: &Services,
    store: Arc<Store>,
    lock_dir: &Path,
    clock: SharedClock,
    spec: LaunchSpec,
) -> Result<Launched, AppError> {
    let lock = take_lock(lock_dir, &spec.front_end)?;
    let caps = session_caps(&store, spec.service, spec.caps).await?;
    let knobs = services.is_loopback(spec.service);
    if !knobs && (spec.heartbeat.is_some() || spec.status_poll.is_some_and(|p| p < POLL_INTERVAL)) {
        tracing::warn!(
            service = %spec.service,
            "test timing knobs ignored: they apply only to a service on loopback"
        );
    }
    let helper = spec.tunnels.helper.clone();
    helper.set_label(ferry_helper::proto::Label {
        service: spec.service.as_str().to_string(),
        region: spec.target.clone().unwrap_or_default(),
    });
    let system = spec.tunnels.system;
    if system {
        if let Ok(url) = services.base_url(spec.service) {
            helper.set_api(crate::helper::api_servers(url).await);
        }
    }
    let (handle, task, recovered) = match spec.service {
        ServiceKind::Orbnet => {
            let server = match spec.target.as_deref() {
                None => None,
                Some(t) => Some(t.parse::<i64>().map_err(|_| {
                    AppError::invalid(format!("{t:?} is not an OrbNET server id."))
                })?),
            };
            let client = Arc::new(services.orbnet().await?);
            let recovered = reconcile_orbnet(&*client, &*store, &*clock).await;
            let settings = OrbnetSettings {
                server,
                credits: CreditsConfig {
                    heartbeat_override: spec.heartbeat.filter(|_| knobs),
                    warn_minutes: spec.warn_minutes,
                    ..CreditsConfig::default()
                },
                handshake_timeout: spec.handshake_timeout,
                traffic_every: spec.traffic_every,
                caps,
                ..OrbnetSettings::default()
            };
            let provider =
                OrbnetProvider::new(client, spec.tunnels, store, clock.clone(), settings);
            let sleep = sleep::system_signals(clock.clone()).await;
            let (handle, task) =
                supervisor::spawn_watching(provider, clock, Some(sleep), network::system_changes());
            (handle, task, recovered)
        }
        ServiceKind::Tunnelbyte => {
            let client = Arc::new(services.tunnelbyte().await?);
            let recovered = reconcile_tunnelbyte(&*client, &*store).await;
            let poll = spec
                .status_poll
                .filter(|p| knobs || *p >= POLL_INTERVAL)
                .unwrap_or(POLL_INTERVAL);
            let settings = TunnelbyteSettings {
                region: spec.target,
                poll,
                handshake_timeout: spec.handshake_timeout,
                caps,
            };
            let provider =
                TunnelbyteProvider::new(client, spec.tunnels, store, clock.clone(), settings);
            let sleep = sleep::system_signals(clock.clone()).await;
            let (handle, task) =
                supervisor::spawn_watching(provider, clock, Some(sleep), network::system_changes());
            (handle, task, recovered)
        }
        ServiceKind::Neosc => {
            return Err(AppError::invalid(
                "NeoSC has no tunnel; pick an OrbNET server or a tunnelbyte region.",
            ))
        }
    };
    if system {
        spawn_policy_port(&handle, helper.clone());
    }
    Ok(Launched {
        handle,
        task,
        recovered,
        lock,
        helper,
    })
}

/// The supervisor's state, as network policy, to the helper: the tunnel's own life moves the
/// helper's block between endpoint-only and tunnel-only; reaching `Disconnected` (the user's
/// disconnect, policy `Open`) clears it. Ends with the supervisor.
fn spawn_policy_port(handle: &SupervisorHandle, link: HelperLink) {
    let mut state = handle.state();
    tokio::spawn(async move {
        loop {
            let s = state.borrow_and_update().clone();
            if matches!(s, State::Disconnected) {
                link.apply(s.network_policy(TunnelMode::System { endpoint: None }))
                    .await;
            }
            if state.changed().await.is_err() {
                break;
            }
        }
    });
}
