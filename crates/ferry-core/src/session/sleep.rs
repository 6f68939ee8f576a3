//! Honest time across sleep: where the supervisor learns that the machine is about to sleep or
//! has resumed. The port is a channel of [`SleepSignal`]s; two sources feed it:
//!
//! - [`logind`](super::logind): systemd-logind's `PrepareForSleep`, behind a *delay* inhibitor,
//!   so the session is ended (its awake seconds reported) and the tunnel taken down before the
//!   machine sleeps; the inhibitor is released through the [`SleepGuard`] once that is done.
//! - [`spawn_gap_watcher`]: the clock. When [`Clock::asleep`](crate::clock::Clock::asleep) grew, the machine slept, whether or
//!   not anybody told Ferry first (no logind, or the inhibitor was not honoured).
//!
//! On [`SleepSignal::Resumed`] the supervisor asks [`slept_through`] whether the running session
//! slept unprepared: then it is ended with its awake seconds and a new one starts
//! ([`crate::session::machine::Input::Slept`]); otherwise a session ended for sleep is started
//! again ([`crate::session::machine::Input::Wake`]). The meters count the awake clock, so sleep is
//! never billed either way.

use std::fmt;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tracing::{debug, info};

use crate::clock::SharedClock;

/// Growth of [`Clock::asleep`](crate::clock::Clock::asleep) below which no sleep is assumed (clock read jitter).
pub const SLEEP_THRESHOLD: Duration = Duration::from_secs(1);

/// How often the gap watcher reads the clock: a sleep is noticed at most this long after resume.
pub const GAP_POLL: Duration = Duration::from_secs(5);

/// Held while Ferry prepares for sleep; dropping it lets the machine go to sleep (for logind it
/// holds the delay inhibitor's file descriptor).
pub struct SleepGuard(Option<Box<dyn Send + Sync>>);

impl SleepGuard {
    /// A guard that holds `inner` (an inhibitor lock) until dropped.
    pub fn holding(inner: impl Send + Sync + 'static) -> Self {
        Self(Some(Box::new(inner)))
    }

    /// A guard that holds nothing (a source without a lock, tests).
    pub fn none() -> Self {
        Self(None)
    }

    /// Releases what the guard holds now.
    pub fn release(mut self) {
        self.0.take();
    }
}

impl fmt::Debug for SleepGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("SleepGuard")
            .field(&self.0.as_ref().map(|_| "held"))
            .finish()
    }
}

/// What a sleep source reports.
#[derive(Debug)]
pub enum SleepSignal {
    /// The machine is about to sleep; drop the guard once the session is ended and the tunnel
    /// down.
    Preparing(SleepGuard),
    /// The machine resumed (or a sleep was found after the fact).
    Resumed,
}

/// The sending half of the sleep port.
pub type SleepSender = mpsc::UnboundedSender<SleepSignal>;
/// The receiving half, given to the supervisor.
pub type SleepSignals = mpsc::UnboundedReceiver<SleepSignal>;

/// A new sleep port.
pub fn channel() -> (SleepSender, SleepSignals) {
    mpsc::unbounded_channel()
}

/// Whether the session that was connected when [`Clock::asleep`](crate::clock::Clock::asleep) read `asleep_at_connect` slept
/// since, given the reading `asleep_now`.
pub fn slept_through(asleep_at_connect: Duration, asleep_now: Duration) -> bool {
    asleep_now.saturating_sub(asleep_at_connect) >= SLEEP_THRESHOLD
}

/// Watches the clock: sends [`SleepSignal::Resumed`] each time [`Clock::asleep`](crate::clock::Clock::asleep) grew by at
/// least [`SLEEP_THRESHOLD`] between two readings `poll` apart. Ends when the receiver is gone.
pub fn spawn_gap_watcher(clock: SharedClock, poll: Duration, tx: SleepSender) -> JoinHandle<()> {
    // The first reading and deadline are taken now, not when the task first runs: a sleep right
    // after the call is then still seen.
    let poll = poll.max(Duration::from_millis(100));
    let mut last = clock.asleep();
    let mut next = clock.now() + poll;
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = clock.sleep_until(next) => {}
                () = tx.closed() => return,
            }
            next = clock.now() + poll;
            let now = clock.asleep();
            if slept_through(last, now) {
                info!(
                    slept_secs = now.saturating_sub(last).as_secs(),
                    "the machine slept (found on resume)"
                );
                if tx.send(SleepSignal::Resumed).is_err() {
                    return;
                }
            }
            last = now;
        }
    })
}

/// The sleep sources of this machine: logind on the system bus when it is there (else logged
/// once, and left out), and always the gap watcher on `clock`.
pub async fn system_signals(clock: SharedClock) -> SleepSignals {
    let (tx, rx) = channel();
    match super::logind::system_watcher(tx.clone()).await {
        Ok(_task) => debug!("watching logind for sleep"),
        Err(e) => {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| {
                info!(
                    error = %e,
                    "logind is not available: sleep is found on resume (the clock's suspend gap)"
                );
            });
        }
    }
    spawn_gap_watcher(clock, GAP_POLL, tx);
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    #[test]
    fn slept_through_needs_a_second_of_growth() {
        let s = Duration::from_secs;
        assert!(!slept_through(s(10), s(10)));
        assert!(!slept_through(s(10), Duration::from_millis(10_900)));
        assert!(slept_through(s(10), s(11)));
        assert!(!slept_through(s(11), s(10)));
    }

    #[tokio::test]
    async fn gap_watcher_reports_a_suspend_once_and_nothing_while_awake() {
        let clock = ManualClock::at_fixed_date();
        let (tx, mut rx) = channel();
        let task = spawn_gap_watcher(clock.shared(), Duration::from_secs(5), tx);
        for _ in 0..10 {
            clock.advance(Duration::from_secs(5));
            tokio::task::yield_now().await;
        }
        assert!(rx.try_recv().is_err(), "no sleep yet");
        clock.suspend(Duration::from_secs(1000));
        let got = tokio::time::timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap();
        assert!(matches!(got, Some(SleepSignal::Resumed)), "{got:?}");
        for _ in 0..10 {
            clock.advance(Duration::from_secs(5));
            tokio::task::yield_now().await;
        }
        assert!(rx.try_recv().is_err(), "one sleep, one signal");
        drop(rx);
        clock.advance(Duration::from_secs(5));
        tokio::time::timeout(Duration::from_secs(5), task)
            .await
            .unwrap()
            .unwrap();
    }
}
