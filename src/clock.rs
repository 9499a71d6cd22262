//! The one notion of "now" shared by the station's scheduler, the player and the sinks:
//! two readings, never confused.
//!
//! - **Wall time** ([`Clock::now`]) says *what* is due: a schedule's 05:30 is a wall-clock
//!   instant. It can be stepped at any moment (NTP, a person setting the date, a board
//!   without a battery-backed clock booting in 1970).
//! - **Monotonic time** ([`Clock::monotonic`]) says *how long* to wait: every timer and
//!   wait ([`Clock::sleep`], [`Clock::block_until_monotonic`]) runs on it, so a stepped
//!   wall clock never makes a wait fire a year early or an hour late. A sound card is
//!   paced by its own crystal, which is monotonic time too.
//!
//! Comparing the two is how a step is detected ([`StepDetector`]): between two readings
//! the wall clock should move as far as the monotonic one (NTP slews by at most 0.5 ms
//! per second); more than a second apart is a step.
//!
//! Production code uses [`SystemClock`], wrapped in an [`OffsetClock`] by the station
//! so it can plan by central's time while its own clock is known to be wrong. Tests use
//! [`ManualClock`]: `advance` moves both readings, `step` moves only the wall clock (as
//! NTP does), so a day of schedule plays in milliseconds and nothing depends on the wall
//! clock's mercy.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

/// A boxed future returned by [`Clock::sleep`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source of wall-clock and monotonic time that can also be waited on.
pub trait Clock: Send + Sync + 'static {
    /// The current wall-clock instant, UTC. May jump either way between two calls.
    fn now(&self) -> DateTime<Utc>;
    /// Time since an arbitrary origin; never jumps and never goes back.
    fn monotonic(&self) -> Duration;
    /// Resolves once [`Clock::monotonic`] has advanced by `by`.
    fn sleep(&self, by: Duration) -> Sleep;
    /// Blocks the calling (non-async) thread until [`Clock::monotonic`] reaches `deadline`.
    fn block_until_monotonic(&self, deadline: Duration);
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The wall instant `by` after `t`, saturating at chrono's far end instead of panicking.
pub fn add(t: DateTime<Utc>, by: chrono::Duration) -> DateTime<Utc> {
    t.checked_add_signed(by).unwrap_or(if by < chrono::Duration::zero() {
        DateTime::<Utc>::MIN_UTC
    } else {
        DateTime::<Utc>::MAX_UTC
    })
}

/// The wall instant `by` before `t`, saturating (see [`add`]).
pub fn sub(t: DateTime<Utc>, by: chrono::Duration) -> DateTime<Utc> {
    t.checked_sub_signed(by).unwrap_or(if by < chrono::Duration::zero() {
        DateTime::<Utc>::MAX_UTC
    } else {
        DateTime::<Utc>::MIN_UTC
    })
}

/// `a - b` as a std duration, zero when `b` is later.
pub fn until(a: DateTime<Utc>, b: DateTime<Utc>) -> Duration {
    (a - b).to_std().unwrap_or_default()
}

/// A duration as people read it: "1d 0h 0m 0s", "1h 0m 0s", "3m 12s", "2s", with a
/// minus sign when negative. Never panics.
pub fn human(d: chrono::Duration) -> String {
    let sign = if d < chrono::Duration::zero() { "-" } else { "" };
    let secs = d.num_seconds().unsigned_abs();
    let (days, h, m, s) = (secs / 86_400, secs / 3600 % 24, secs / 60 % 60, secs % 60);
    match (days, h, m) {
        (0, 0, 0) => format!("{sign}{s}s"),
        (0, 0, _) => format!("{sign}{m}m {s}s"),
        (0, _, _) => format!("{sign}{h}h {m}m {s}s"),
        _ => format!("{sign}{days}d {h}h {m}m {s}s"),
    }
}

/// A wall-clock step: the wall clock moved `by` more (or less) than the monotonic clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ClockStep {
    /// The wall-clock time just after the step.
    pub at: DateTime<Utc>,
    /// The wall time that would have been read without the step.
    pub expected: DateTime<Utc>,
    /// Positive: stepped forward; negative: back. Milliseconds.
    pub by_ms: i64,
}

impl ClockStep {
    /// The step as a signed duration.
    pub fn by(&self) -> chrono::Duration {
        chrono::Duration::try_milliseconds(self.by_ms).unwrap_or(if self.by_ms < 0 {
            chrono::Duration::MIN
        } else {
            chrono::Duration::MAX
        })
    }

    /// Whether the clock jumped ahead.
    pub fn forward(&self) -> bool {
        self.by_ms > 0
    }
}

/// How far apart the wall and monotonic clocks may drift between two readings before it
/// counts as a step.
pub const STEP_THRESHOLD: chrono::Duration = chrono::Duration::seconds(1);

/// Compares successive (wall, monotonic) readings and reports steps of the wall clock.
#[derive(Debug, Clone)]
pub struct StepDetector {
    last: (DateTime<Utc>, Duration),
}

impl StepDetector {
    /// Starts from the clock's current readings.
    pub fn new(clock: &dyn Clock) -> Self {
        Self { last: (clock.now(), clock.monotonic()) }
    }

    /// Takes a new reading; `Some` when the wall clock moved more than
    /// [`STEP_THRESHOLD`] away from where the monotonic clock says it should be.
    pub fn observe(&mut self, wall: DateTime<Utc>, mono: Duration) -> Option<ClockStep> {
        let (last_wall, last_mono) = self.last;
        self.last = (wall, mono);
        let elapsed = chrono::Duration::from_std(mono.saturating_sub(last_mono))
            .unwrap_or(chrono::Duration::MAX);
        let expected = add(last_wall, elapsed);
        let drift = wall - expected;
        (drift.abs() > STEP_THRESHOLD).then(|| ClockStep {
            at: wall,
            expected,
            by_ms: drift.num_milliseconds(),
        })
    }
}

/// The real clock: the system's UTC time and `CLOCK_MONOTONIC`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

fn process_origin() -> Instant {
    static ORIGIN: OnceLock<Instant> = OnceLock::new();
    *ORIGIN.get_or_init(Instant::now)
}

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn monotonic(&self) -> Duration {
        process_origin().elapsed()
    }

    fn sleep(&self, by: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(by))
    }

    fn block_until_monotonic(&self, deadline: Duration) {
        let left = deadline.saturating_sub(self.monotonic());
        if !left.is_zero() {
            std::thread::sleep(left);
        }
    }
}

/// A clock that reads another one's wall time shifted by a correction (central's offset,
/// while the station's own clock is known to be wrong). Monotonic time and waits are the
/// inner clock's. Changing the correction is a step of this clock's wall time, seen as
/// such by whoever watches it ([`StepDetector`]).
pub struct OffsetClock {
    inner: SharedClock,
    correction_ms: std::sync::atomic::AtomicI64,
}

impl OffsetClock {
    pub fn new(inner: SharedClock) -> Arc<Self> {
        Arc::new(Self { inner, correction_ms: std::sync::atomic::AtomicI64::new(0) })
    }

    /// The uncorrected wall time (what the box's own clock says).
    pub fn raw_now(&self) -> DateTime<Utc> {
        self.inner.now()
    }

    /// Added to the inner clock's wall time from now on (zero: none).
    pub fn set_correction(&self, by: chrono::Duration) {
        self.correction_ms.store(by.num_milliseconds(), std::sync::atomic::Ordering::SeqCst);
    }

    /// The correction in force.
    pub fn correction(&self) -> chrono::Duration {
        let ms = self.correction_ms.load(std::sync::atomic::Ordering::SeqCst);
        chrono::Duration::try_milliseconds(ms).unwrap_or_default()
    }
}

impl Clock for OffsetClock {
    fn now(&self) -> DateTime<Utc> {
        add(self.inner.now(), self.correction())
    }

    fn monotonic(&self) -> Duration {
        self.inner.monotonic()
    }

    fn sleep(&self, by: Duration) -> Sleep {
        self.inner.sleep(by)
    }

    fn block_until_monotonic(&self, deadline: Duration) {
        self.inner.block_until_monotonic(deadline)
    }
}

#[derive(Debug, Clone, Copy)]
struct Readings {
    wall: DateTime<Utc>,
    mono: Duration,
}

/// A clock that only moves when told to. Waiters (async or blocking) wake as soon as
/// the monotonic time they wait for is reached by [`ManualClock::advance`] or
/// [`ManualClock::set`]; [`ManualClock::step`] moves the wall clock alone, either way.
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<Readings>,
    moved: Condvar,
    watch: tokio::sync::watch::Sender<Duration>,
}

impl ManualClock {
    /// A clock standing still at `start` (monotonic time zero).
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        let (watch, _) = tokio::sync::watch::channel(Duration::ZERO);
        Arc::new(Self {
            now: Mutex::new(Readings { wall: start, mono: Duration::ZERO }),
            moved: Condvar::new(),
            watch,
        })
    }

    /// Moves both clocks forward by `by`.
    pub fn advance(&self, by: Duration) {
        let mut now = self.lock();
        now.mono = now.mono.saturating_add(by);
        now.wall = add(now.wall, chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX));
        self.publish(&mut now);
    }

    /// Moves both clocks forward until the wall clock reads `to` (never backwards: that
    /// is [`ManualClock::step`]).
    pub fn set(&self, to: DateTime<Utc>) {
        let by = {
            let now = self.lock();
            (to - now.wall).to_std().unwrap_or_default()
        };
        self.advance(by);
    }

    /// Steps the wall clock by `by` (forward or back) and leaves the monotonic clock
    /// alone, as NTP or a person setting the date does.
    pub fn step(&self, by: chrono::Duration) {
        let mut now = self.lock();
        now.wall = add(now.wall, by);
        self.publish(&mut now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Readings> {
        self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, now: &mut std::sync::MutexGuard<'_, Readings>) {
        let value = now.mono;
        self.watch.send_replace(value);
        self.moved.notify_all();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        self.lock().wall
    }

    fn monotonic(&self) -> Duration {
        self.lock().mono
    }

    fn sleep(&self, by: Duration) -> Sleep {
        let mut rx = self.watch.subscribe();
        let deadline = self.monotonic().saturating_add(by);
        Box::pin(async move {
            // `wait_for` checks the current value first, then every change.
            let _ = rx.wait_for(|mono| *mono >= deadline).await;
        })
    }

    fn block_until_monotonic(&self, deadline: Duration) {
        let mut now = self.lock();
        while now.mono < deadline {
            now = self.moved.wait(now).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, 5, 0, 0).unwrap()
    }

    #[tokio::test]
    async fn manual_clock_wakes_async_and_blocking_waiters_only_when_reached() {
        let clock = ManualClock::new(t0());
        let blocking = {
            let clock = clock.clone();
            std::thread::spawn(move || {
                clock.block_until_monotonic(Duration::from_secs(10));
                clock.now()
            })
        };
        let sleeper = tokio::spawn(clock.sleep(Duration::from_secs(10)));

        clock.advance(Duration::from_secs(9));
        // A wall-clock step a year ahead wakes nobody: waits run on monotonic time.
        clock.step(chrono::Duration::days(365));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke one second early");
        assert!(!blocking.is_finished(), "blocking waiter woke one second early");

        clock.advance(Duration::from_secs(1));
        sleeper.await.expect("sleeper task");
        let woke_at = blocking.join().expect("blocking thread");
        assert_eq!(woke_at, t0() + chrono::Duration::days(365) + chrono::Duration::seconds(10));
        assert_eq!(clock.monotonic(), Duration::from_secs(10));
    }

    #[test]
    fn durations_read_as_people_write_them() {
        assert_eq!(human(chrono::Duration::days(1)), "1d 0h 0m 0s");
        assert_eq!(human(-chrono::Duration::hours(1)), "-1h 0m 0s");
        assert_eq!(human(chrono::Duration::seconds(192)), "3m 12s");
        assert_eq!(human(chrono::Duration::MIN).chars().next(), Some('-'));
    }

    #[test]
    fn set_never_runs_backwards_but_step_does() {
        let clock = ManualClock::new(t0());
        clock.set(t0() - chrono::Duration::hours(1));
        assert_eq!(clock.now(), t0());
        clock.step(-chrono::Duration::hours(1));
        assert_eq!(clock.now(), t0() - chrono::Duration::hours(1));
        assert_eq!(clock.monotonic(), Duration::ZERO);
    }

    #[test]
    fn steps_are_detected_with_their_size_and_slewing_is_not() {
        let clock = ManualClock::new(t0());
        let mut detector = StepDetector::new(clock.as_ref());
        clock.advance(Duration::from_secs(2));
        assert_eq!(detector.observe(clock.now(), clock.monotonic()), None);
        // NTP slewing: 0.5 ms per second, far under the threshold.
        clock.step(chrono::Duration::milliseconds(1));
        assert_eq!(detector.observe(clock.now(), clock.monotonic()), None);
        clock.step(-chrono::Duration::hours(1));
        let step = detector.observe(clock.now(), clock.monotonic()).expect("a step back");
        assert_eq!(step.by_ms, -3_600_000);
        assert!(!step.forward());
        // 56 years forward (1970 → 2026): sized, never a panic.
        clock.step(chrono::Duration::days(56 * 365));
        let step = detector.observe(clock.now(), clock.monotonic()).expect("a step forward");
        assert_eq!(step.by(), chrono::Duration::days(56 * 365));
        assert_eq!(detector.observe(clock.now(), clock.monotonic()), None, "reported once");
    }

    #[test]
    fn the_offset_clock_shifts_wall_time_only_and_saturates() {
        let inner = ManualClock::new(t0());
        let clock = OffsetClock::new(inner.clone());
        clock.set_correction(chrono::Duration::seconds(-30));
        assert_eq!(clock.now(), t0() - chrono::Duration::seconds(30));
        assert_eq!(clock.raw_now(), t0());
        inner.advance(Duration::from_secs(5));
        assert_eq!(clock.monotonic(), Duration::from_secs(5));
        // A correction past chrono's range (a hostile server time) saturates.
        clock.set_correction(chrono::Duration::milliseconds(i64::MAX));
        assert_eq!(clock.now(), DateTime::<Utc>::MAX_UTC);
        assert_eq!(
            add(DateTime::<Utc>::MIN_UTC, -chrono::Duration::days(1)),
            DateTime::<Utc>::MIN_UTC
        );
        assert_eq!(
            sub(DateTime::<Utc>::MIN_UTC, chrono::Duration::days(1)),
            DateTime::<Utc>::MIN_UTC
        );
    }
}
