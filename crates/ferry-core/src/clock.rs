//! Injected clocks: a suspend-aware monotonic clock for timers, the time spent asleep, and wall
//! time for display.
//!
//! [`Clock::now`] reads `CLOCK_BOOTTIME` on Linux, which keeps running during suspend, so a timer
//! that spans a suspend fires on time after it. Billing must *not* count the suspend (the tunnel
//! carried nothing): [`Clock::asleep`] is the time spent suspended since boot (`CLOCK_BOOTTIME` −
//! `CLOCK_MONOTONIC`), and [`Clock::awake`] the boot clock without it, which meters read. When
//! `asleep` grows, the machine slept. [`ManualClock`] is a clock tests step (and suspend) by hand.

use std::fmt;
use std::future::Future;
use std::ops::Add;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::watch;

/// A point on the suspend-aware monotonic clock, in milliseconds from an arbitrary origin.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BootInstant(u64);

impl BootInstant {
    /// The instant `ms` milliseconds after the clock's origin.
    pub const fn from_millis(ms: u64) -> Self {
        Self(ms)
    }

    /// Milliseconds since the clock's origin.
    pub const fn as_millis(self) -> u64 {
        self.0
    }

    /// Time from `earlier` to `self`, zero if `earlier` is later.
    pub fn saturating_since(self, earlier: BootInstant) -> Duration {
        Duration::from_millis(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for BootInstant {
    type Output = BootInstant;
    fn add(self, rhs: Duration) -> BootInstant {
        let ms = u64::try_from(rhs.as_millis()).unwrap_or(u64::MAX);
        BootInstant(self.0.saturating_add(ms))
    }
}

/// A future returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// The time source every meter and the supervisor use; injected so tests control time.
pub trait Clock: Send + Sync + fmt::Debug {
    /// Now on the suspend-aware monotonic clock (use for every duration that is billed).
    fn now(&self) -> BootInstant;
    /// Now on the wall clock (display and crash recovery across reboots only).
    fn wall(&self) -> DateTime<Utc>;
    /// Resolves once [`Clock::now`] has reached `deadline`.
    fn sleep_until(&self, deadline: BootInstant) -> Sleep;
    /// Total time the machine spent suspended since boot (zero where it cannot be told).
    fn asleep(&self) -> Duration {
        Duration::ZERO
    }
    /// Now on the awake clock: [`Clock::now`] minus [`Clock::asleep`] (what meters bill on).
    fn awake(&self) -> BootInstant {
        let asleep = u64::try_from(self.asleep().as_millis()).unwrap_or(u64::MAX);
        BootInstant(self.now().0.saturating_sub(asleep))
    }
}

/// A clock shared between tasks.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock: `CLOCK_BOOTTIME` on Linux (counts suspend), `std::time::Instant` elsewhere.
#[derive(Debug, Clone)]
pub struct SystemClock {
    #[cfg(not(target_os = "linux"))]
    origin: std::time::Instant,
}

impl SystemClock {
    /// The longest single timer wait; after it the boot clock is read again, so a wait that
    /// spans a suspend ends at most this long after its deadline.
    pub const MAX_WAIT: Duration = Duration::from_secs(5);

    /// A new system clock.
    pub fn new() -> Self {
        Self {
            #[cfg(not(target_os = "linux"))]
            origin: std::time::Instant::now(),
        }
    }

    /// The clock as a [`SharedClock`].
    pub fn shared() -> SharedClock {
        Arc::new(Self::new())
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for SystemClock {
    #[cfg(target_os = "linux")]
    fn now(&self) -> BootInstant {
        let ts = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        let secs = u64::try_from(ts.tv_sec).unwrap_or(0);
        let nanos = u64::try_from(ts.tv_nsec).unwrap_or(0);
        BootInstant(secs.saturating_mul(1000).saturating_add(nanos / 1_000_000))
    }

    #[cfg(not(target_os = "linux"))]
    fn now(&self) -> BootInstant {
        let ms = u64::try_from(self.origin.elapsed().as_millis()).unwrap_or(u64::MAX);
        BootInstant(ms)
    }

    #[cfg(target_os = "linux")]
    fn asleep(&self) -> Duration {
        // Read MONOTONIC first: a suspend between the two reads then shows up (late) in the next
        // reading, never as a negative value.
        let mono = rustix::time::clock_gettime(rustix::time::ClockId::Monotonic);
        let boot = rustix::time::clock_gettime(rustix::time::ClockId::Boottime);
        let ns = |t: rustix::time::Timespec| {
            i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
        };
        let diff = (ns(boot) - ns(mono)).max(0);
        Duration::from_nanos(u64::try_from(diff).unwrap_or(u64::MAX))
    }

    fn wall(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: BootInstant) -> Sleep {
        let clock = self.clone();
        Box::pin(async move {
            loop {
                let now = clock.now();
                if now >= deadline {
                    return;
                }
                let left = deadline.saturating_since(now).min(Self::MAX_WAIT);
                tokio::time::sleep(left).await;
            }
        })
    }
}

/// A clock that moves only when a test calls [`ManualClock::advance`]; wall time follows it
/// and can be made to jump on its own with [`ManualClock::jump_wall`].
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<watch::Sender<u64>>,
    asleep_ms: Arc<std::sync::atomic::AtomicU64>,
    wall_offset_ms: Arc<Mutex<i64>>,
    wall_origin: DateTime<Utc>,
}

impl ManualClock {
    /// A manual clock at boot time zero, whose wall time starts at `wall_origin`.
    pub fn new(wall_origin: DateTime<Utc>) -> Self {
        let (tx, _rx) = watch::channel(0);
        Self {
            now: Arc::new(tx),
            asleep_ms: Arc::default(),
            wall_offset_ms: Arc::new(Mutex::new(0)),
            wall_origin,
        }
    }

    /// A manual clock starting at the Unix epoch plus 1.8e9 s (a fixed, realistic date).
    pub fn at_fixed_date() -> Self {
        Self::new(DateTime::<Utc>::from_timestamp(1_800_000_000, 0).unwrap_or_default())
    }

    /// Moves both clocks forward by `by` and wakes every sleeper whose deadline passed.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.now.send_modify(|now| *now = now.saturating_add(ms));
    }

    /// Simulates a suspend of `by`: boot and wall time move on, the awake clock does not
    /// ([`Clock::asleep`] grows by `by`), and sleepers whose deadline passed wake up (resume).
    pub fn suspend(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        // The sleep is recorded before time moves, so a woken sleeper sees both at once.
        self.asleep_ms
            .fetch_add(ms, std::sync::atomic::Ordering::SeqCst);
        self.advance(by);
    }

    /// Moves the wall clock only (an NTP step or a user changing the time).
    pub fn jump_wall(&self, by_ms: i64) {
        if let Ok(mut off) = self.wall_offset_ms.lock() {
            *off = off.saturating_add(by_ms);
        }
    }

    /// This clock as a [`SharedClock`].
    pub fn shared(&self) -> SharedClock {
        Arc::new(self.clone())
    }
}

impl Clock for ManualClock {
    fn now(&self) -> BootInstant {
        BootInstant(*self.now.borrow())
    }

    fn wall(&self) -> DateTime<Utc> {
        let off = self.wall_offset_ms.lock().map(|o| *o).unwrap_or(0);
        let ms = i64::try_from(*self.now.borrow())
            .unwrap_or(i64::MAX)
            .saturating_add(off);
        self.wall_origin + chrono::Duration::milliseconds(ms)
    }

    fn asleep(&self) -> Duration {
        Duration::from_millis(self.asleep_ms.load(std::sync::atomic::Ordering::SeqCst))
    }

    fn sleep_until(&self, deadline: BootInstant) -> Sleep {
        let mut rx = self.now.subscribe();
        Box::pin(async move {
            loop {
                if *rx.borrow_and_update() >= deadline.0 {
                    return;
                }
                if rx.changed().await.is_err() {
                    // The clock is gone: nothing will ever advance it again.
                    std::future::pending::<()>().await;
                }
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn system_clock_is_monotonic_and_advances() {
        let c = SystemClock::new();
        let a = c.now();
        std::thread::sleep(Duration::from_millis(20));
        let b = c.now();
        assert!(b > a, "{b:?} should be after {a:?}");
        assert!(b.saturating_since(a) >= Duration::from_millis(15));
    }

    #[tokio::test]
    async fn manual_clock_wakes_sleepers_only_when_advanced() {
        let c = ManualClock::at_fixed_date();
        let deadline = c.now() + Duration::from_secs(60);
        let sleeper = tokio::spawn(c.sleep_until(deadline));
        c.advance(Duration::from_secs(59));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished());
        c.advance(Duration::from_secs(1));
        tokio::time::timeout(Duration::from_secs(5), sleeper)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(c.now().as_millis(), 60_000);
    }

    #[test]
    fn system_clock_asleep_is_steady_while_awake() {
        let c = SystemClock::new();
        let a = c.asleep();
        std::thread::sleep(Duration::from_millis(20));
        let b = c.asleep();
        // No suspend happens during a test: the difference only jitters by a few microseconds.
        assert!(b.abs_diff(a) < Duration::from_millis(5), "{a:?} {b:?}");
        assert!(c.awake() <= c.now());
    }

    #[test]
    fn manual_suspend_moves_boot_time_but_not_awake_time() {
        let c = ManualClock::at_fixed_date();
        c.advance(Duration::from_secs(10));
        c.suspend(Duration::from_secs(1000));
        c.advance(Duration::from_secs(5));
        assert_eq!(c.now().as_millis(), 1_015_000);
        assert_eq!(c.asleep(), Duration::from_secs(1000));
        assert_eq!(c.awake().as_millis(), 15_000);
    }

    #[test]
    fn wall_jumps_do_not_move_boot_time() {
        let c = ManualClock::at_fixed_date();
        let w0 = c.wall();
        c.jump_wall(-3_600_000);
        assert_eq!(c.now().as_millis(), 0);
        assert_eq!((w0 - c.wall()).num_seconds(), 3600);
    }
}
