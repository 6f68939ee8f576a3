//! The async side of OrbNET metering: sends the heartbeats [`CreditsMeter`] asks for, on the
//! injected clock, and always attempts `end` when told to stop.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};
use tracing::{debug, info, warn};

use super::credits::{
    CreditsMeter, CreditsNote, HeartbeatInfo, HeartbeatOutcome, StartInfo, StopCause,
};
use crate::clock::SharedClock;

/// OrbNET's `disconnect_reason` (the service client's type; one definition).
pub use crate::services::orbnet::DisconnectReason;

/// A failed OrbNET session call, classified by what it means for billing.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CreditsApiError {
    /// The request certainly never reached the server (connect error, 429, 503).
    #[error("not delivered: {0}")]
    NotSent(String),
    /// The request may have been processed but the answer was lost (timeout, reset, 5xx).
    #[error("answer lost: {0}")]
    Unconfirmed(String),
    /// 402 `CREDITS_DEPLETED`.
    #[error("your OrbNET credits are depleted")]
    CreditsDepleted,
    /// 409 `SESSION_ALREADY_ACTIVE`.
    #[error("an OrbNET session is already active on this account")]
    SessionAlreadyActive,
    /// 404 `SESSION_NOT_FOUND`.
    #[error("the OrbNET session is no longer known to the server")]
    SessionNotFound,
    /// Any other answer from the server.
    #[error("OrbNET refused ({status} {code}): {message}")]
    Rejected {
        /// HTTP status.
        status: u16,
        /// The envelope's error code.
        code: String,
        /// The envelope's message.
        message: String,
    },
}

/// The summary `session/end` returns.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct EndSummary {
    /// Server-side length of the session.
    pub total_duration_secs: Option<u64>,
    /// Credits the session used.
    pub total_credits_used: Option<f64>,
    /// Credits left.
    pub credits_remaining: Option<f64>,
}

/// An active session as `session/active` reports it.
#[derive(Debug, Clone, PartialEq)]
pub struct ActiveSession {
    /// The client-chosen session id.
    pub session_id: String,
    /// The server the session runs on.
    pub server_id: Option<i64>,
}

/// The four OrbNET session calls the meter needs; the real client is adapted to this.
pub trait CreditsApi: Send + Sync + 'static {
    /// `POST vpn/session/start`.
    fn start(
        &self,
        session_id: &str,
        server_id: i64,
        protocol: &str,
    ) -> impl Future<Output = Result<StartInfo, CreditsApiError>> + Send;
    /// `POST vpn/session/heartbeat`.
    fn heartbeat(
        &self,
        session_id: &str,
        seconds_since_last: u32,
    ) -> impl Future<Output = Result<HeartbeatInfo, CreditsApiError>> + Send;
    /// `POST vpn/session/end`.
    fn end(
        &self,
        session_id: &str,
        seconds_since_last: u32,
        reason: DisconnectReason,
    ) -> impl Future<Output = Result<EndSummary, CreditsApiError>> + Send;
    /// `GET vpn/session/active`.
    fn active(&self)
        -> impl Future<Output = Result<Option<ActiveSession>, CreditsApiError>> + Send;
}

/// What the credits driver reports while it runs.
#[derive(Debug, Clone, PartialEq)]
pub enum CreditsEvent {
    /// A note from the accounting (balance, low credits, drift, stop).
    Note(CreditsNote),
    /// A heartbeat went out.
    Heartbeat {
        /// `seconds_since_last` sent.
        seconds: u32,
        /// How it ended.
        delivery: HeartbeatDelivery,
    },
}

/// How a heartbeat ended, for listeners and the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeartbeatDelivery {
    /// Acknowledged by the server.
    Acked,
    /// Maybe processed (counted, never resent).
    Unconfirmed,
    /// Not delivered (carried into the next one).
    NotDelivered,
}

/// How a metered session ended.
#[derive(Debug, Clone, PartialEq)]
pub struct CreditsExit {
    /// The reason sent with `end`.
    pub reason: DisconnectReason,
    /// Why the meter stopped by itself, if it did.
    pub stop_cause: Option<StopCause>,
    /// The `end` answer, or why there is none.
    pub end: Result<EndSummary, CreditsApiError>,
    /// All seconds sent and counted (heartbeats and end).
    pub counted_secs: u64,
    /// Connected time by the awake clock (a suspend is not connected time).
    pub connected: Duration,
}

/// Timeouts of the driver.
#[derive(Debug, Clone)]
pub struct DriverTimeouts {
    /// Bound on one heartbeat or end call (a timeout counts as a lost answer).
    pub request: Duration,
    /// How long to keep retrying `end` (the server's watchdog is the backstop).
    pub end_deadline: Duration,
}

impl Default for DriverTimeouts {
    fn default() -> Self {
        Self {
            request: Duration::from_secs(15),
            end_deadline: Duration::from_secs(30),
        }
    }
}

/// Runs the heartbeat loop of one started session until `stop` carries a reason or the server
/// ends the session, then attempts `end`. Events go to `events` (a closed receiver is fine).
pub async fn run_credits<A: CreditsApi>(
    api: Arc<A>,
    clock: SharedClock,
    session_id: String,
    mut meter: CreditsMeter,
    timeouts: DriverTimeouts,
    mut stop: watch::Receiver<Option<DisconnectReason>>,
    events: mpsc::UnboundedSender<CreditsEvent>,
) -> CreditsExit {
    let emit = |e: CreditsEvent| {
        let _ = events.send(e);
    };
    for n in meter.initial_notes() {
        emit(CreditsEvent::Note(n));
    }
    let reason = loop {
        if let Some(r) = *stop.borrow_and_update() {
            break r;
        }
        // The meter counts on the awake clock; timers run on the boot clock. A wait that spans a
        // suspend therefore ends early in awake time, and is simply taken again.
        let now = clock.awake();
        let at = meter.next_attempt_at(now);
        if at > now {
            tokio::select! {
                _ = clock.sleep_until(clock.now() + at.saturating_since(now)) => {}
                changed = stop.changed() => {
                    if changed.is_err() { break DisconnectReason::Error; }
                    continue;
                }
            }
            if clock.awake() < at {
                continue;
            }
        }
        let now = clock.awake();
        let Some(secs) = meter.take_heartbeat(now) else {
            // Less than a second due: wait for the next regular tick.
            tokio::select! {
                _ = clock.sleep_until(clock.now() + Duration::from_secs(1)) => {}
                changed = stop.changed() => {
                    if changed.is_err() { break DisconnectReason::Error; }
                }
            }
            continue;
        };
        let mut stopped_midway = None;
        let outcome = tokio::select! {
            r = tokio::time::timeout(timeouts.request, api.heartbeat(&session_id, secs)) => classify(r),
            changed = stop.changed() => {
                stopped_midway = Some(if changed.is_err() { DisconnectReason::Error } else { (*stop.borrow()).unwrap_or(DisconnectReason::Error) });
                // The request may already be on the wire: count it, never resend it.
                HeartbeatOutcome::Unconfirmed
            }
        };
        let delivery = match &outcome {
            HeartbeatOutcome::Acked(_) | HeartbeatOutcome::Depleted => HeartbeatDelivery::Acked,
            HeartbeatOutcome::Unconfirmed => HeartbeatDelivery::Unconfirmed,
            HeartbeatOutcome::NotDelivered | HeartbeatOutcome::Gone => {
                HeartbeatDelivery::NotDelivered
            }
        };
        debug!(secs, ?delivery, "heartbeat");
        emit(CreditsEvent::Heartbeat {
            seconds: secs,
            delivery,
        });
        let jitter: f64 = rand::random();
        for n in meter.on_heartbeat(outcome, clock.awake(), jitter) {
            emit(CreditsEvent::Note(n));
        }
        if let Some(r) = stopped_midway {
            break r;
        }
        match meter.stopped() {
            Some(StopCause::CreditsDepleted) => break DisconnectReason::CreditsDepleted,
            Some(StopCause::SessionGone) => break DisconnectReason::Timeout,
            None => {}
        }
    };
    let end = finish(
        &*api,
        &*clock,
        &session_id,
        &mut meter,
        reason,
        &timeouts,
        &emit,
    )
    .await;
    let connected = meter.connected(clock.awake());
    info!(
        reason = reason.as_str(),
        counted = meter.counted_secs(),
        "session ended"
    );
    CreditsExit {
        reason,
        stop_cause: meter.stopped(),
        end,
        counted_secs: meter.counted_secs(),
        connected,
    }
}

/// Tries for a heartbeat that must go out before `end` and did not reach the server.
const FLUSH_ATTEMPTS: u32 = 5;

/// Flushes gaps over 300 s as heartbeats, then sends `end` with retries on failures that
/// certainly did not reach the server. Re-sending `end` is safe: a second one answers 404.
async fn finish<A: CreditsApi>(
    api: &A,
    clock: &dyn crate::clock::Clock,
    session_id: &str,
    meter: &mut CreditsMeter,
    reason: DisconnectReason,
    timeouts: &DriverTimeouts,
    emit: &impl Fn(CreditsEvent),
) -> Result<EndSummary, CreditsApiError> {
    // Connected (awake) time ends here; the deadline runs on the boot clock.
    let stop_at = clock.awake();
    let deadline = clock.now() + timeouts.end_deadline;
    if meter.stopped() != Some(StopCause::SessionGone) {
        // Connected time ends at stop_at: flush what is over 300 s, as heartbeats. One that
        // certainly did not reach the server is retried a few times (its seconds carried),
        // else those seconds would be lost to the `end` cap of 300.
        let mut failures = 0u32;
        while meter.needs_flush_before_end(stop_at) {
            let Some(secs) = meter.take_heartbeat(stop_at) else {
                break;
            };
            let outcome = classify(
                tokio::time::timeout(timeouts.request, api.heartbeat(session_id, secs)).await,
            );
            let failed = matches!(outcome, HeartbeatOutcome::NotDelivered);
            for n in meter.on_heartbeat(outcome, clock.awake(), 0.5) {
                emit(CreditsEvent::Note(n));
            }
            if meter.stopped().is_some() || clock.now() >= deadline {
                break;
            }
            if failed {
                failures += 1;
                if failures >= FLUSH_ATTEMPTS {
                    warn!("heartbeats before end did not reach the server; ending anyway");
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100 * u64::from(failures))).await;
            } else {
                failures = 0;
            }
        }
    }
    let secs = meter.plan_end(stop_at).end_secs;
    let mut attempt = 0u32;
    let mut counted = false;
    loop {
        attempt += 1;
        let r = tokio::time::timeout(timeouts.request, api.end(session_id, secs, reason)).await;
        let r = match r {
            Ok(r) => r,
            Err(_) => Err(CreditsApiError::Unconfirmed("end timed out".into())),
        };
        match r {
            Ok(summary) => {
                if !counted {
                    meter.on_end_delivered(secs);
                }
                return Ok(summary);
            }
            Err(CreditsApiError::SessionNotFound) if counted => {
                // An earlier attempt whose answer was lost did end it.
                return Ok(EndSummary::default());
            }
            Err(CreditsApiError::SessionNotFound) => {
                // Already ended on the server (402 ends it; so does its watchdog).
                return Err(CreditsApiError::SessionNotFound);
            }
            Err(e @ (CreditsApiError::NotSent(_) | CreditsApiError::Unconfirmed(_))) => {
                if matches!(e, CreditsApiError::Unconfirmed(_)) && !counted {
                    meter.on_end_delivered(secs);
                    counted = true;
                }
                let wait = Duration::from_millis(500u64.saturating_mul(1 << attempt.min(5)));
                if clock.now() + wait >= deadline {
                    warn!(error = %e, "giving up on session end; the server's watchdog ends it");
                    return Err(e);
                }
                warn!(error = %e, attempt, "session end failed, retrying");
                clock.sleep_until(clock.now() + wait).await;
            }
            Err(e) => return Err(e),
        }
    }
}

fn classify(
    r: Result<Result<HeartbeatInfo, CreditsApiError>, tokio::time::error::Elapsed>,
) -> HeartbeatOutcome {
    match r {
        Err(_) => HeartbeatOutcome::Unconfirmed,
        Ok(Ok(info)) => HeartbeatOutcome::Acked(info),
        Ok(Err(e)) => match e {
            CreditsApiError::NotSent(_) => HeartbeatOutcome::NotDelivered,
            CreditsApiError::Unconfirmed(_) => HeartbeatOutcome::Unconfirmed,
            CreditsApiError::CreditsDepleted => HeartbeatOutcome::Depleted,
            CreditsApiError::SessionNotFound => HeartbeatOutcome::Gone,
            // A definitive refusal (400, 401 after refresh, 409...) was not billed: retry later.
            CreditsApiError::SessionAlreadyActive | CreditsApiError::Rejected { .. } => {
                HeartbeatOutcome::NotDelivered
            }
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use crate::meter::credits::CreditsConfig;
    use std::collections::VecDeque;
    use std::sync::Mutex;

    #[derive(Debug, Clone, PartialEq)]
    enum Call {
        Heartbeat(u32),
        End(u32, DisconnectReason),
    }

    /// A scripted OrbNET: answers heartbeats from a queue (default: 200), records every call.
    #[derive(Default)]
    struct FakeApi {
        calls: Mutex<Vec<Call>>,
        heartbeat_script: Mutex<VecDeque<Result<(), CreditsApiError>>>,
        hang_heartbeats: std::sync::atomic::AtomicBool,
    }

    impl FakeApi {
        fn calls(&self) -> Vec<Call> {
            self.calls.lock().unwrap().clone()
        }
        fn script(&self, r: Result<(), CreditsApiError>) {
            self.heartbeat_script.lock().unwrap().push_back(r);
        }
    }

    impl CreditsApi for FakeApi {
        async fn start(&self, _: &str, _: i64, _: &str) -> Result<StartInfo, CreditsApiError> {
            unreachable!("the driver never starts")
        }
        async fn heartbeat(&self, _: &str, secs: u32) -> Result<HeartbeatInfo, CreditsApiError> {
            self.calls.lock().unwrap().push(Call::Heartbeat(secs));
            if self
                .hang_heartbeats
                .load(std::sync::atomic::Ordering::SeqCst)
            {
                std::future::pending::<()>().await;
            }
            let scripted = self.heartbeat_script.lock().unwrap().pop_front();
            scripted.unwrap_or(Ok(())).map(|()| HeartbeatInfo {
                credits_remaining: 100.0,
                credits_deducted: 1.5,
                consumption_rate: 1.5,
                next_deduction_in_seconds: Some(60),
                session_duration_secs: None,
            })
        }
        async fn end(
            &self,
            _: &str,
            secs: u32,
            reason: DisconnectReason,
        ) -> Result<EndSummary, CreditsApiError> {
            self.calls.lock().unwrap().push(Call::End(secs, reason));
            Ok(EndSummary::default())
        }
        async fn active(&self) -> Result<Option<ActiveSession>, CreditsApiError> {
            Ok(None)
        }
    }

    struct Harness {
        api: Arc<FakeApi>,
        clock: ManualClock,
        stop: watch::Sender<Option<DisconnectReason>>,
        events: mpsc::UnboundedReceiver<CreditsEvent>,
        task: tokio::task::JoinHandle<CreditsExit>,
    }

    fn harness(credits: f64) -> Harness {
        let api = Arc::new(FakeApi::default());
        let clock = ManualClock::at_fixed_date();
        let start = StartInfo {
            credits_at_start: credits,
            consumption_rate: 1.5,
            next_deduction_in_seconds: Some(60),
            is_free_user: false,
            tracking_id: None,
        };
        let meter = CreditsMeter::new(CreditsConfig::default(), &start, clock.awake());
        let (stop, stop_rx) = watch::channel(None);
        let (tx, events) = mpsc::unbounded_channel();
        let task = tokio::spawn(run_credits(
            api.clone(),
            clock.shared(),
            "sess-1".into(),
            meter,
            DriverTimeouts::default(),
            stop_rx,
            tx,
        ));
        Harness {
            api,
            clock,
            stop,
            events,
            task,
        }
    }

    async fn wait_calls(api: &FakeApi, n: usize) -> Vec<Call> {
        for _ in 0..500 {
            let c = api.calls();
            if c.len() >= n {
                return c;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        panic!("expected {n} calls, got {:?}", api.calls());
    }

    async fn finish(h: Harness) -> (CreditsExit, Vec<CreditsEvent>) {
        let mut events = h.events;
        let exit = tokio::time::timeout(Duration::from_secs(5), h.task)
            .await
            .unwrap()
            .unwrap();
        let mut all = vec![];
        while let Ok(e) = events.try_recv() {
            all.push(e);
        }
        (exit, all)
    }

    fn sum(calls: &[Call]) -> u64 {
        calls
            .iter()
            .map(|c| match c {
                Call::Heartbeat(s) | Call::End(s, _) => u64::from(*s),
            })
            .sum()
    }

    #[tokio::test]
    async fn full_session_heartbeats_add_up_to_connected_time() {
        let h = harness(5000.0);
        for i in 1..=5 {
            h.clock.advance(Duration::from_secs(60));
            wait_calls(&h.api, i).await;
        }
        h.clock.advance(Duration::from_millis(30_400));
        h.stop.send(Some(DisconnectReason::UserInitiated)).unwrap();
        let api = h.api.clone();
        let (exit, _) = finish(h).await;
        let calls = api.calls();
        assert_eq!(
            calls,
            vec![
                Call::Heartbeat(60),
                Call::Heartbeat(60),
                Call::Heartbeat(60),
                Call::Heartbeat(60),
                Call::Heartbeat(60),
                Call::End(30, DisconnectReason::UserInitiated),
            ]
        );
        assert_eq!(exit.counted_secs, 330);
        assert_eq!(exit.connected, Duration::from_millis(330_400));
        assert_eq!(exit.reason, DisconnectReason::UserInitiated);
    }

    #[tokio::test]
    async fn depleted_mid_session_stops_and_ends_with_credits_depleted() {
        let h = harness(5000.0);
        h.api.script(Ok(()));
        h.api.script(Err(CreditsApiError::CreditsDepleted));
        h.clock.advance(Duration::from_secs(60));
        wait_calls(&h.api, 1).await;
        h.clock.advance(Duration::from_secs(60));
        let api = h.api.clone();
        let (exit, events) = finish(h).await;
        assert_eq!(exit.reason, DisconnectReason::CreditsDepleted);
        assert_eq!(exit.stop_cause, Some(StopCause::CreditsDepleted));
        assert_eq!(
            api.calls(),
            vec![
                Call::Heartbeat(60),
                Call::Heartbeat(60),
                Call::End(1, DisconnectReason::CreditsDepleted)
            ]
        );
        assert!(events.contains(&CreditsEvent::Note(CreditsNote::Stop(
            StopCause::CreditsDepleted
        ))));
    }

    #[tokio::test]
    async fn undelivered_heartbeat_is_retried_with_its_seconds_and_lost_answers_are_not() {
        let h = harness(5000.0);
        h.api
            .script(Err(CreditsApiError::NotSent("connection refused".into())));
        h.api
            .script(Err(CreditsApiError::Unconfirmed("reset".into())));
        h.clock.advance(Duration::from_secs(60));
        wait_calls(&h.api, 1).await;
        // Backoff is 1-2 s after the first failure.
        h.clock.advance(Duration::from_secs(2));
        wait_calls(&h.api, 2).await;
        h.clock.advance(Duration::from_secs(60));
        wait_calls(&h.api, 3).await;
        h.stop.send(Some(DisconnectReason::UserInitiated)).unwrap();
        let api = h.api.clone();
        let (exit, _) = finish(h).await;
        let calls = api.calls();
        assert_eq!(
            calls,
            vec![
                Call::Heartbeat(60),
                Call::Heartbeat(62),
                Call::Heartbeat(60),
                Call::End(1, DisconnectReason::UserInitiated)
            ]
        );
        // Delivered-or-maybe seconds: 62 + 60 + 1 for 122 s connected.
        assert_eq!(exit.counted_secs, 123);
        assert_eq!(sum(&calls) - 60, exit.counted_secs);
    }

    #[tokio::test]
    async fn stop_during_a_hanging_heartbeat_counts_it_and_ends_at_once() {
        let h = harness(5000.0);
        h.api
            .hang_heartbeats
            .store(true, std::sync::atomic::Ordering::SeqCst);
        h.clock.advance(Duration::from_secs(60));
        wait_calls(&h.api, 1).await;
        h.clock.advance(Duration::from_millis(10_600));
        h.stop.send(Some(DisconnectReason::UserInitiated)).unwrap();
        let api = h.api.clone();
        let (exit, _) = finish(h).await;
        assert_eq!(
            api.calls(),
            vec![
                Call::Heartbeat(60),
                Call::End(11, DisconnectReason::UserInitiated)
            ]
        );
        assert_eq!(exit.counted_secs, 71);
    }

    #[tokio::test]
    async fn low_credit_warnings_reach_listeners() {
        let h = harness(16.0); // 10.67 min
        h.clock.advance(Duration::from_secs(60));
        wait_calls(&h.api, 1).await; // fake answers 100 credits left: no warning
        h.stop.send(Some(DisconnectReason::UserInitiated)).unwrap();
        let (_, events) = finish(h).await;
        assert!(!events
            .iter()
            .any(|e| matches!(e, CreditsEvent::Note(CreditsNote::LowCredits { .. }))));
        let h = harness(14.0); // 9.3 min at start
        h.stop.send(Some(DisconnectReason::UserInitiated)).unwrap();
        let (_, events) = finish(h).await;
        assert!(events.iter().any(|e| matches!(
            e,
            CreditsEvent::Note(CreditsNote::LowCredits {
                threshold_minutes, ..
            }) if *threshold_minutes == 10.0
        )));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]
        /// The driver on the manual clock, with random waits, a suspend, failures that never
        /// reached the server and lost answers: every value in 1..=300, what it counted (never
        /// resent) sums to the connected (awake) time within 1 s, and the suspend is not in it.
        #[test]
        fn driver_counts_connected_time_whatever_fails(
            steps in proptest::collection::vec((0u64..90_000, 0u8..6), 1..40),
            suspend_at in proptest::option::of(0usize..40),
        ) {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let h = harness(1e9);
                for (_, kind) in &steps {
                    h.api.script(match kind {
                        0 => Err(CreditsApiError::NotSent("refused".into())),
                        1 => Err(CreditsApiError::Unconfirmed("reset".into())),
                        _ => Ok(()),
                    });
                }
                let mut awake_ms = 0u64;
                for (i, (ms, _)) in steps.iter().enumerate() {
                    if suspend_at == Some(i) {
                        // A suspend: not connected time.
                        h.clock.suspend(Duration::from_millis(1_000_000));
                    } else {
                        h.clock.advance(Duration::from_millis(*ms));
                        awake_ms += ms;
                    }
                    for _ in 0..200 {
                        tokio::task::yield_now().await;
                    }
                }
                h.stop.send(Some(DisconnectReason::UserInitiated)).unwrap();
                let api = h.api.clone();
                let (exit, _) = finish(h).await;
                let calls = api.calls();
                for c in &calls {
                    let (Call::Heartbeat(s) | Call::End(s, _)) = c;
                    assert!((1..=300).contains(s), "{calls:?}");
                }
                let connected = exit.connected.as_secs_f64();
                assert_eq!(exit.connected, Duration::from_millis(awake_ms), "sleep is not billed");
                let counted = exit.counted_secs as f64;
                assert!((counted - connected).abs() <= 1.0, "{counted} vs {connected}: {calls:?}");
            });
        }
    }
}
