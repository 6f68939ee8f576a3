//! OrbNET credits accounting: which `seconds_since_last` to send, and when. Pure, no I/O.
//!
//! # Billing rules (decided here; the vendor docs are silent on most of them)
//! - Connected time is measured on the *awake* clock ([`crate::clock::Clock::awake`]: boot time
//!   without the time spent suspended) from the moment `start` succeeded: a suspend is neither
//!   billed (the tunnel carried nothing) nor hidden (the session is ended for it and a new one
//!   starts on resume; see [`crate::session::sleep`]). Every instant given to the meter is on
//!   that clock. Every heartbeat sends `floor(connected) - already_counted`, so a fraction of a
//!   second is carried forward and never rounded away; `end` sends `round(connected) -
//!   already_counted` (at least 1). The sum over heartbeats and `end` therefore equals the
//!   connected time within one second, whatever the length.
//! - A value is never above 300 (the API's limit). An awake gap longer than that (minutes of
//!   failed heartbeats while the tunnel kept working) is **split** into several heartbeats sent
//!   back to back instead of being clamped: the session stayed open on the server and the tunnel
//!   stayed up, so that time is connected time, and dropping it would make the meter lie. If the
//!   server meanwhile ended the session (its 300 s watchdog), it answers 404 and no more is sent.
//!   A suspend is not such a gap: the awake clock stands still while the machine sleeps.
//! - A heartbeat that certainly did not reach the server (connect error, 429, 503) is not counted:
//!   its seconds stay due and go with the next attempt, which follows a backoff.
//! - A heartbeat whose answer was lost (timeout after sending, reset, other 5xx, unreadable body)
//!   may have been billed, and the API has no idempotency key: it is counted as delivered, so a
//!   second never goes to the server twice. The risk is under-billing by one interval, never
//!   double billing.
//! - 402 was processed by the server (it deducted and ended the session): counted, then stop.
//! - 404 means the server no longer knows the session: not counted, stop.

use std::time::Duration;

use crate::clock::BootInstant;

/// The largest `seconds_since_last` the API accepts.
pub const MAX_SECONDS: u32 = 300;
/// The heartbeat cadence cap: `min(60, next_deduction_in_seconds)`.
pub const MAX_INTERVAL_SECS: u64 = 60;

/// Settings of the credits meter.
#[derive(Debug, Clone, PartialEq)]
pub struct CreditsConfig {
    /// Fixed heartbeat interval instead of `min(60, next_deduction_in_seconds)` (tests, demos).
    pub heartbeat_override: Option<Duration>,
    /// Minutes of credit left at which to warn once each (default 10 and 2).
    pub warn_minutes: Vec<f64>,
    /// First retry delay after a heartbeat that did not reach the server.
    pub backoff_base: Duration,
    /// Longest retry delay.
    pub backoff_cap: Duration,
}

impl Default for CreditsConfig {
    fn default() -> Self {
        Self {
            heartbeat_override: None,
            warn_minutes: vec![10.0, 2.0],
            backoff_base: Duration::from_secs(2),
            backoff_cap: Duration::from_secs(30),
        }
    }
}

/// What `session/start` answered.
#[derive(Debug, Clone, PartialEq)]
pub struct StartInfo {
    /// Credits when the session started.
    pub credits_at_start: f64,
    /// Credits per minute.
    pub consumption_rate: f64,
    /// Seconds to the next deduction, if the server said.
    pub next_deduction_in_seconds: Option<u64>,
    /// Whether the account is on the free plan.
    pub is_free_user: bool,
    /// The server's own id of the session (OrbNET's `tracking_id`), when it sent one.
    pub tracking_id: Option<String>,
}

/// What a successful `session/heartbeat` answered.
#[derive(Debug, Clone, PartialEq)]
pub struct HeartbeatInfo {
    /// Credits left after this deduction.
    pub credits_remaining: f64,
    /// Credits deducted by this heartbeat.
    pub credits_deducted: f64,
    /// Credits per minute.
    pub consumption_rate: f64,
    /// Seconds to the next deduction, if the server said.
    pub next_deduction_in_seconds: Option<u64>,
    /// The server's idea of the session length.
    pub session_duration_secs: Option<u64>,
}

/// How one heartbeat attempt ended, as far as billing is concerned.
#[derive(Debug, Clone, PartialEq)]
pub enum HeartbeatOutcome {
    /// The server answered 200.
    Acked(HeartbeatInfo),
    /// The request may have been processed but the answer was lost: counted as delivered.
    Unconfirmed,
    /// The request certainly did not reach the server: its seconds are carried forward.
    NotDelivered,
    /// 402 `CREDITS_DEPLETED`: processed, and the session is over.
    Depleted,
    /// 404 `SESSION_NOT_FOUND`: the server already ended the session.
    Gone,
}

/// Something the meter wants the user or the supervisor to know.
#[derive(Debug, Clone, PartialEq)]
pub enum CreditsNote {
    /// New figures from the server.
    Balance {
        /// Credits left.
        credits_remaining: f64,
        /// Credits per minute.
        consumption_rate: f64,
        /// Minutes of connection the credits still buy, if the rate is known and positive.
        minutes_left: Option<f64>,
    },
    /// Credits will run out soon; sent once per threshold.
    LowCredits {
        /// Minutes left when the warning fired.
        minutes_left: f64,
        /// The threshold crossed.
        threshold_minutes: f64,
    },
    /// The server's session length drifts from ours (logged, never repaid).
    Drift {
        /// Seconds we counted.
        ours: u64,
        /// Seconds the server counted.
        server: u64,
    },
    /// The session is over on the server: stop and tear the tunnel down.
    Stop(StopCause),
}

/// Why the meter stopped by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    /// 402 from a heartbeat.
    CreditsDepleted,
    /// 404 from a heartbeat: the server no longer knows the session.
    SessionGone,
}

/// The `end` call to make: heartbeats to flush first (gaps over 300 s), then `end` itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EndPlan {
    /// `seconds_since_last` for `end`, in 1..=300.
    pub end_secs: u32,
}

/// The accounting of one OrbNET session.
#[derive(Debug, Clone)]
pub struct CreditsMeter {
    config: CreditsConfig,
    started_at: BootInstant,
    counted_secs: u64,
    inflight: Option<u32>,
    last_send: BootInstant,
    retry_at: Option<BootInstant>,
    failures: u32,
    rate: f64,
    credits_at_ack: f64,
    ack_at: BootInstant,
    next_deduction: Option<u64>,
    warned: Vec<bool>,
    stopped: Option<StopCause>,
}

impl CreditsMeter {
    /// A meter for a session whose `start` succeeded at `now`.
    pub fn new(config: CreditsConfig, start: &StartInfo, now: BootInstant) -> Self {
        let warned = vec![false; config.warn_minutes.len()];
        Self {
            config,
            started_at: now,
            counted_secs: 0,
            inflight: None,
            last_send: now,
            retry_at: None,
            failures: 0,
            rate: start.consumption_rate,
            credits_at_ack: start.credits_at_start,
            ack_at: now,
            next_deduction: start.next_deduction_in_seconds,
            warned,
            stopped: None,
        }
    }

    /// Notes to show right after start (a low balance warns at once).
    pub fn initial_notes(&mut self) -> Vec<CreditsNote> {
        let mut notes = vec![self.balance_note(self.credits_at_ack)];
        notes.extend(self.check_warnings(self.credits_at_ack));
        notes
    }

    /// Boot-clock instant of the start.
    pub fn started_at(&self) -> BootInstant {
        self.started_at
    }

    /// Seconds sent so far and counted as delivered.
    pub fn counted_secs(&self) -> u64 {
        self.counted_secs
    }

    /// Whether the meter stopped by itself (402/404).
    pub fn stopped(&self) -> Option<StopCause> {
        self.stopped
    }

    /// Connected time so far.
    pub fn connected(&self, now: BootInstant) -> Duration {
        now.saturating_since(self.started_at)
    }

    /// Whole seconds of connected time not yet sent.
    pub fn due_secs(&self, now: BootInstant) -> u64 {
        (self.connected(now).as_millis() / 1000)
            .try_into()
            .unwrap_or(u64::MAX)
            .saturating_sub(self.counted_secs)
    }

    /// The regular heartbeat interval: the override, else `min(60, next_deduction)`, at least 1 s.
    pub fn interval(&self) -> Duration {
        if let Some(d) = self.config.heartbeat_override {
            return d.max(Duration::from_secs(1));
        }
        let secs = self
            .next_deduction
            .unwrap_or(MAX_INTERVAL_SECS)
            .clamp(1, MAX_INTERVAL_SECS);
        Duration::from_secs(secs)
    }

    /// When the next heartbeat should be attempted: a retry after a failure, at once when more
    /// than 300 s are due (catching up after a suspend), else one interval after the last one.
    pub fn next_attempt_at(&self, now: BootInstant) -> BootInstant {
        if let Some(at) = self.retry_at {
            return at;
        }
        if self.due_secs(now) >= u64::from(MAX_SECONDS) {
            return now;
        }
        self.last_send + self.interval()
    }

    /// Takes the heartbeat to send now: `Some(seconds)` in 1..=300, or `None` when nothing is
    /// due (less than a second), a heartbeat is in flight, or the meter stopped.
    pub fn take_heartbeat(&mut self, now: BootInstant) -> Option<u32> {
        if self.inflight.is_some() || self.stopped.is_some() {
            return None;
        }
        let due = self.due_secs(now);
        if due == 0 {
            return None;
        }
        let secs = u32::try_from(due.min(u64::from(MAX_SECONDS))).unwrap_or(MAX_SECONDS);
        self.inflight = Some(secs);
        self.last_send = now;
        self.retry_at = None;
        Some(secs)
    }

    /// Records how the heartbeat in flight ended. `jitter` in `[0, 1]` spreads retries.
    pub fn on_heartbeat(
        &mut self,
        outcome: HeartbeatOutcome,
        now: BootInstant,
        jitter: f64,
    ) -> Vec<CreditsNote> {
        let Some(secs) = self.inflight.take() else {
            return Vec::new();
        };
        let mut notes = Vec::new();
        match outcome {
            HeartbeatOutcome::Acked(info) => {
                self.counted_secs += u64::from(secs);
                self.failures = 0;
                self.rate = info.consumption_rate;
                self.credits_at_ack = info.credits_remaining;
                self.ack_at = now;
                if info.next_deduction_in_seconds.is_some() {
                    self.next_deduction = info.next_deduction_in_seconds;
                }
                if let Some(server) = info.session_duration_secs {
                    if server.abs_diff(self.counted_secs) > 2 {
                        notes.push(CreditsNote::Drift {
                            ours: self.counted_secs,
                            server,
                        });
                    }
                }
                notes.push(self.balance_note(info.credits_remaining));
                notes.extend(self.check_warnings(info.credits_remaining));
            }
            HeartbeatOutcome::Unconfirmed => {
                self.counted_secs += u64::from(secs);
                self.failures = 0;
            }
            HeartbeatOutcome::NotDelivered => {
                self.failures = self.failures.saturating_add(1);
                self.retry_at = Some(now + self.backoff(jitter));
            }
            HeartbeatOutcome::Depleted => {
                self.counted_secs += u64::from(secs);
                self.credits_at_ack = 0.0;
                self.stopped = Some(StopCause::CreditsDepleted);
                notes.push(CreditsNote::Stop(StopCause::CreditsDepleted));
            }
            HeartbeatOutcome::Gone => {
                self.stopped = Some(StopCause::SessionGone);
                notes.push(CreditsNote::Stop(StopCause::SessionGone));
            }
        }
        notes
    }

    /// Whether heartbeats must be flushed before `end` (more than 300 s are due).
    pub fn needs_flush_before_end(&self, now: BootInstant) -> bool {
        self.end_due(now) > u64::from(MAX_SECONDS)
    }

    /// The `end` to send now (call after flushing; see [`Self::needs_flush_before_end`]).
    pub fn plan_end(&self, now: BootInstant) -> EndPlan {
        let due = self.end_due(now).clamp(1, u64::from(MAX_SECONDS));
        EndPlan {
            end_secs: u32::try_from(due).unwrap_or(MAX_SECONDS),
        }
    }

    /// Records that `end` was (or may have been) delivered with `secs`.
    pub fn on_end_delivered(&mut self, secs: u32) {
        self.counted_secs += u64::from(secs);
    }

    /// The credits left by the server's last answer, extrapolated to `now` at the current rate.
    pub fn credits_estimate(&self, now: BootInstant) -> f64 {
        let mins = now.saturating_since(self.ack_at).as_secs_f64() / 60.0;
        (self.credits_at_ack - self.rate * mins).max(0.0)
    }

    /// Credits per minute.
    pub fn rate(&self) -> f64 {
        self.rate
    }

    fn end_due(&self, now: BootInstant) -> u64 {
        let ms = u64::try_from(self.connected(now).as_millis()).unwrap_or(u64::MAX);
        (ms.saturating_add(500) / 1000).saturating_sub(self.counted_secs)
    }

    fn backoff(&self, jitter: f64) -> Duration {
        let exp = self.failures.saturating_sub(1).min(16);
        let full = self
            .config
            .backoff_base
            .saturating_mul(1u32 << exp)
            .min(self.config.backoff_cap);
        // "Equal jitter": half fixed, half random, so retries never hammer at zero delay.
        let j = jitter.clamp(0.0, 1.0);
        (full / 2 + full.mul_f64(j / 2.0)).max(Duration::from_millis(500))
    }

    fn minutes_left(&self, credits: f64) -> Option<f64> {
        (self.rate > 0.0).then(|| credits.max(0.0) / self.rate)
    }

    fn balance_note(&self, credits: f64) -> CreditsNote {
        CreditsNote::Balance {
            credits_remaining: credits,
            consumption_rate: self.rate,
            minutes_left: self.minutes_left(credits),
        }
    }

    fn check_warnings(&mut self, credits: f64) -> Vec<CreditsNote> {
        let Some(left) = self.minutes_left(credits) else {
            return Vec::new();
        };
        // Fire only the most severe threshold crossed; mark all crossed ones as done.
        let mut lowest: Option<f64> = None;
        for (i, &t) in self.config.warn_minutes.iter().enumerate() {
            if left <= t && !self.warned[i] {
                self.warned[i] = true;
                lowest = Some(lowest.map_or(t, |l: f64| l.min(t)));
            }
        }
        lowest
            .map(|t| {
                vec![CreditsNote::LowCredits {
                    minutes_left: left,
                    threshold_minutes: t,
                }]
            })
            .unwrap_or_default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn start(credits: f64) -> StartInfo {
        StartInfo {
            credits_at_start: credits,
            consumption_rate: 1.5,
            next_deduction_in_seconds: Some(60),
            is_free_user: false,
            tracking_id: None,
        }
    }

    fn ack(remaining: f64) -> HeartbeatOutcome {
        HeartbeatOutcome::Acked(HeartbeatInfo {
            credits_remaining: remaining,
            credits_deducted: 1.5,
            consumption_rate: 1.5,
            next_deduction_in_seconds: Some(60),
            session_duration_secs: None,
        })
    }

    fn at(ms: u64) -> BootInstant {
        BootInstant::from_millis(ms)
    }

    #[test]
    fn steady_state_bills_sixty_per_tick_and_carries_fractions() {
        let mut m = CreditsMeter::new(CreditsConfig::default(), &start(5000.0), at(0));
        assert_eq!(m.next_attempt_at(at(0)), at(60_000));
        // A tick that fires 700 ms late sends 60 and carries the 0.7 s.
        assert_eq!(m.take_heartbeat(at(60_700)), Some(60));
        m.on_heartbeat(ack(4998.5), at(60_800), 0.5);
        assert_eq!(m.next_attempt_at(at(60_800)), at(120_700));
        assert_eq!(m.take_heartbeat(at(120_700)), Some(60));
        m.on_heartbeat(ack(4997.0), at(120_800), 0.5);
        // ... the carried 1.4 s show up in the next one.
        assert_eq!(m.take_heartbeat(at(180_400)), Some(60));
        m.on_heartbeat(ack(4995.5), at(180_500), 0.5);
        assert_eq!(m.counted_secs(), 180);
        assert_eq!(m.plan_end(at(200_600)).end_secs, 21);
    }

    #[test]
    fn interval_follows_next_deduction_and_override() {
        let mut s = start(100.0);
        s.next_deduction_in_seconds = Some(15);
        let m = CreditsMeter::new(CreditsConfig::default(), &s, at(0));
        assert_eq!(m.interval(), Duration::from_secs(15));
        s.next_deduction_in_seconds = Some(0);
        let m = CreditsMeter::new(CreditsConfig::default(), &s, at(0));
        assert_eq!(m.interval(), Duration::from_secs(1));
        s.next_deduction_in_seconds = Some(600);
        let m = CreditsMeter::new(CreditsConfig::default(), &s, at(0));
        assert_eq!(m.interval(), Duration::from_secs(60));
        let cfg = CreditsConfig {
            heartbeat_override: Some(Duration::from_secs(2)),
            ..CreditsConfig::default()
        };
        assert_eq!(
            CreditsMeter::new(cfg, &s, at(0)).interval(),
            Duration::from_secs(2)
        );
    }

    #[test]
    fn not_delivered_carries_seconds_and_backs_off() {
        let mut m = CreditsMeter::new(CreditsConfig::default(), &start(5000.0), at(0));
        assert_eq!(m.take_heartbeat(at(60_000)), Some(60));
        m.on_heartbeat(HeartbeatOutcome::NotDelivered, at(60_100), 0.0);
        let retry = m.next_attempt_at(at(60_100));
        assert_eq!(retry, at(61_100));
        assert_eq!(m.take_heartbeat(retry), Some(61));
        m.on_heartbeat(HeartbeatOutcome::NotDelivered, at(61_200), 1.0);
        assert_eq!(m.next_attempt_at(at(61_200)), at(65_200));
        assert_eq!(m.take_heartbeat(at(65_200)), Some(65));
        m.on_heartbeat(ack(4900.0), at(65_300), 0.0);
        assert_eq!(m.counted_secs(), 65);
    }

    #[test]
    fn lost_answer_is_never_resent() {
        let mut m = CreditsMeter::new(CreditsConfig::default(), &start(5000.0), at(0));
        assert_eq!(m.take_heartbeat(at(60_000)), Some(60));
        m.on_heartbeat(HeartbeatOutcome::Unconfirmed, at(80_000), 0.0);
        assert_eq!(m.take_heartbeat(at(120_000)), Some(60));
    }

    #[test]
    fn a_suspend_is_not_connected_time() {
        use crate::clock::{Clock, ManualClock};
        // The meter reads the awake clock: 60 s awake, a 1000 s suspend, 30 s awake.
        let clock = ManualClock::at_fixed_date();
        let mut m = CreditsMeter::new(CreditsConfig::default(), &start(5000.0), clock.awake());
        clock.advance(Duration::from_secs(60));
        assert_eq!(m.take_heartbeat(clock.awake()), Some(60));
        m.on_heartbeat(ack(4998.5), clock.awake(), 0.5);
        clock.suspend(Duration::from_secs(1000));
        // On resume nothing is due at once (no catch-up burst): the sleep is not connected time.
        assert_eq!(m.due_secs(clock.awake()), 0);
        assert!(m.next_attempt_at(clock.awake()) > clock.awake());
        assert!(!m.needs_flush_before_end(clock.awake()));
        clock.advance(Duration::from_secs(30));
        assert_eq!(m.connected(clock.awake()), Duration::from_secs(90));
        assert_eq!(m.plan_end(clock.awake()).end_secs, 30);
        m.on_end_delivered(30);
        assert_eq!(m.counted_secs(), 90);
    }

    #[test]
    fn an_awake_gap_of_failed_heartbeats_is_split_into_chunks_of_at_most_300() {
        let mut m = CreditsMeter::new(CreditsConfig::default(), &start(5000.0), at(0));
        let now = at(1_000_000); // 1000 s awake without a heartbeat getting through
        let mut sent = vec![];
        while m.next_attempt_at(now) <= now {
            let Some(s) = m.take_heartbeat(now) else {
                break;
            };
            sent.push(s);
            m.on_heartbeat(ack(4000.0), now, 0.0);
        }
        // The rest (under 300) goes with the next regular tick.
        assert_eq!(sent, vec![300, 300, 300]);
        assert_eq!(m.next_attempt_at(now), at(1_060_000));
        assert_eq!(m.take_heartbeat(at(1_060_000)), Some(160));
    }

    #[test]
    fn end_rounds_and_never_sends_zero() {
        let mut m = CreditsMeter::new(CreditsConfig::default(), &start(5000.0), at(0));
        assert_eq!(m.plan_end(at(200)).end_secs, 1);
        assert_eq!(m.plan_end(at(1_499)).end_secs, 1);
        assert_eq!(m.plan_end(at(2_500)).end_secs, 3);
        assert_eq!(m.take_heartbeat(at(60_000)), Some(60));
        m.on_heartbeat(ack(1.0), at(60_000), 0.0);
        assert_eq!(m.plan_end(at(60_300)).end_secs, 1);
        assert!(!m.needs_flush_before_end(at(360_000)));
        assert!(m.needs_flush_before_end(at(361_000)));
    }

    #[test]
    fn depleted_stops_and_counts_the_processed_heartbeat() {
        let mut m = CreditsMeter::new(CreditsConfig::default(), &start(5000.0), at(0));
        m.take_heartbeat(at(60_000));
        let notes = m.on_heartbeat(HeartbeatOutcome::Depleted, at(60_000), 0.0);
        assert_eq!(notes, vec![CreditsNote::Stop(StopCause::CreditsDepleted)]);
        assert_eq!(m.counted_secs(), 60);
        assert_eq!(m.take_heartbeat(at(120_000)), None);
    }

    #[test]
    fn warns_once_at_ten_and_two_minutes() {
        let mut m = CreditsMeter::new(CreditsConfig::default(), &start(30.0), at(0));
        assert!(m
            .initial_notes()
            .iter()
            .all(|n| !matches!(n, CreditsNote::LowCredits { .. })));
        let mut warnings = vec![];
        let mut credits = 30.0;
        for i in 1..=20u64 {
            credits -= 1.5;
            m.take_heartbeat(at(i * 60_000));
            for n in m.on_heartbeat(ack(credits), at(i * 60_000), 0.0) {
                if let CreditsNote::LowCredits {
                    threshold_minutes, ..
                } = n
                {
                    warnings.push((i, threshold_minutes));
                }
            }
        }
        // 15 credits = 10 min after 10 heartbeats, 3 credits = 2 min after 18.
        assert_eq!(warnings, vec![(10, 10.0), (18, 2.0)]);
    }

    #[test]
    fn starting_with_little_credit_warns_once_with_the_most_severe_threshold() {
        let mut m = CreditsMeter::new(CreditsConfig::default(), &start(2.0), at(0));
        let lows: Vec<_> = m
            .initial_notes()
            .into_iter()
            .filter(|n| matches!(n, CreditsNote::LowCredits { .. }))
            .collect();
        assert_eq!(
            lows,
            vec![CreditsNote::LowCredits {
                minutes_left: 2.0 / 1.5,
                threshold_minutes: 2.0
            }]
        );
        m.take_heartbeat(at(60_000));
        let again = m.on_heartbeat(ack(0.5), at(60_000), 0.0);
        assert!(again
            .iter()
            .all(|n| !matches!(n, CreditsNote::LowCredits { .. })));
    }

    #[derive(Debug, Clone)]
    enum Step {
        Wait(u64),
        Attempt(u8),
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            6 => (0u64..120_000).prop_map(Step::Wait),
            1 => (300_000u64..3_600_000).prop_map(Step::Wait), // suspend
            6 => (0u8..10).prop_map(Step::Attempt),
        ]
    }

    proptest! {
        /// Whatever the schedule, failures and lost answers: every value is in 1..=300, what was
        /// sent and counted sums to the connected time within 1 s, and the server (which
        /// processes some lost answers and none of the undelivered) never bills more.
        #[test]
        fn heartbeat_sum_matches_connected_time(
            steps in proptest::collection::vec(step(), 0..200),
            tail in 0u64..400_000,
        ) {
            let mut m = CreditsMeter::new(CreditsConfig::default(), &start(1e12), at(0));
            let mut now = 0u64;
            let mut server_billed = 0u64;
            for s in steps {
                match s {
                    Step::Wait(ms) => now += ms,
                    Step::Attempt(kind) => {
                        let t = at(now);
                        if m.next_attempt_at(t) > t { continue; }
                        let Some(secs) = m.take_heartbeat(t) else { continue };
                        prop_assert!((1..=MAX_SECONDS).contains(&secs));
                        let outcome = match kind {
                            0 => HeartbeatOutcome::NotDelivered,
                            1 => { server_billed += u64::from(secs); HeartbeatOutcome::Unconfirmed }
                            2 => HeartbeatOutcome::Unconfirmed, // lost before processing
                            _ => { server_billed += u64::from(secs); ack(1e12) }
                        };
                        m.on_heartbeat(outcome, t, 0.5);
                    }
                }
            }
            now += tail;
            let t = at(now);
            let mut sent = m.counted_secs();
            while m.needs_flush_before_end(t) {
                m.retry_at = None;
                let secs = m.take_heartbeat(t).unwrap();
                prop_assert!((1..=MAX_SECONDS).contains(&secs));
                m.on_heartbeat(ack(1e12), t, 0.5);
                server_billed += u64::from(secs);
                sent += u64::from(secs);
            }
            let end = m.plan_end(t).end_secs;
            prop_assert!((1..=MAX_SECONDS).contains(&end));
            m.on_end_delivered(end);
            server_billed += u64::from(end);
            sent += u64::from(end);
            prop_assert_eq!(sent, m.counted_secs());
            let connected = now as f64 / 1000.0;
            prop_assert!((sent as f64 - connected).abs() <= 1.0,
                "sent {} vs connected {}", sent, connected);
            prop_assert!(server_billed as f64 <= connected + 1.0);
        }
    }
}
