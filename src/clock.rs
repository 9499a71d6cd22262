//! The one notion of "now" shared by the station's scheduler and the clocked sink.
//!
//! Production code uses [`SystemClock`]. Tests use [`ManualClock`] and move time
//! forward themselves, so a day of schedule plays in milliseconds and nothing depends
//! on the wall clock's mercy. Both async tasks (`sleep_until`) and plain threads
//! (`block_until`, used by the audio thread's clocked sink) wait on the same clock.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A boxed future returned by [`Clock::sleep_until`].
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send>>;

/// A source of wall-clock time that can also be waited on.
pub trait Clock: Send + Sync + 'static {
    /// The current instant, UTC.
    fn now(&self) -> DateTime<Utc>;
    /// Resolves once `now() >= deadline`.
    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep;
    /// Blocks the calling (non-async) thread until `now() >= deadline`.
    fn block_until(&self, deadline: DateTime<Utc>);
}

/// A shared clock handle.
pub type SharedClock = Arc<dyn Clock>;

/// The real clock: the system's UTC time.
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep {
        Box::pin(async move {
            // Re-check after each wake: the system clock may be stepped (NTP) while we
            // sleep, and a monotonic sleep alone would then fire early or late.
            loop {
                let left = deadline - Utc::now();
                let Ok(left) = left.to_std() else { return };
                if left.is_zero() {
                    return;
                }
                tokio::time::sleep(left.min(Duration::from_secs(60))).await;
            }
        })
    }

    fn block_until(&self, deadline: DateTime<Utc>) {
        loop {
            let Ok(left) = (deadline - Utc::now()).to_std() else { return };
            if left.is_zero() {
                return;
            }
            std::thread::sleep(left.min(Duration::from_secs(60)));
        }
    }
}

/// A clock that only moves when told to. Waiters (async or blocking) wake as soon as
/// the time they wait for is reached by [`ManualClock::advance`] or [`ManualClock::set`].
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
    moved: Condvar,
    watch: tokio::sync::watch::Sender<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock standing still at `start`.
    pub fn new(start: DateTime<Utc>) -> Arc<Self> {
        let (watch, _) = tokio::sync::watch::channel(start);
        Arc::new(Self { now: Mutex::new(start), moved: Condvar::new(), watch })
    }

    /// Moves time forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        let mut now = self.lock();
        *now += by;
        self.publish(&mut now);
    }

    /// Sets time to `to` (never backwards: a clock that runs backwards is a different
    /// test, done by constructing a new clock).
    pub fn set(&self, to: DateTime<Utc>) {
        let mut now = self.lock();
        if to > *now {
            *now = to;
        }
        self.publish(&mut now);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, DateTime<Utc>> {
        self.now.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, now: &mut std::sync::MutexGuard<'_, DateTime<Utc>>) {
        let value = **now;
        self.watch.send_replace(value);
        self.moved.notify_all();
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.lock()
    }

    fn sleep_until(&self, deadline: DateTime<Utc>) -> Sleep {
        let mut rx = self.watch.subscribe();
        Box::pin(async move {
            // `wait_for` checks the current value first, then every change.
            let _ = rx.wait_for(|now| *now >= deadline).await;
        })
    }

    fn block_until(&self, deadline: DateTime<Utc>) {
        let mut now = self.lock();
        while *now < deadline {
            now = self.moved.wait(now).unwrap_or_else(|poisoned| poisoned.into_inner());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[tokio::test]
    async fn manual_clock_wakes_async_and_blocking_waiters_only_when_reached() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 5, 0, 0).unwrap();
        let clock = ManualClock::new(t0);
        let deadline = t0 + chrono::Duration::seconds(10);

        let blocking = {
            let clock = clock.clone();
            std::thread::spawn(move || {
                clock.block_until(deadline);
                clock.now()
            })
        };
        let sleeper = tokio::spawn(clock.sleep_until(deadline));

        clock.advance(Duration::from_secs(9));
        tokio::task::yield_now().await;
        assert!(!sleeper.is_finished(), "woke one second early");
        assert!(!blocking.is_finished(), "blocking waiter woke one second early");

        clock.advance(Duration::from_secs(1));
        sleeper.await.expect("sleeper task");
        assert_eq!(blocking.join().expect("blocking thread"), deadline);
    }

    #[test]
    fn manual_clock_never_runs_backwards() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 5, 0, 0).unwrap();
        let clock = ManualClock::new(t0);
        clock.set(t0 - chrono::Duration::hours(1));
        assert_eq!(clock.now(), t0);
    }
}
