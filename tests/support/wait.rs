//! The one bounded wait every test uses: poll an observable condition until it holds,
//! and fail after a deadline with a message naming what was awaited (and what was last
//! seen, when the check says). Never a fixed sleep that hopes the thing has happened.
//!
//! A check returns `bool`, `Option<T>` (`Some` = done, with the value) or
//! `Result<T, String>` (`Err` = not yet, with what it saw: it ends the panic message).
//! Polls start a few hundred microseconds apart and back off to [`MAX_INTERVAL`], so a
//! quick condition is seen at once and a slow one (a child process per check) costs little.

use std::fmt::Display;
use std::future::Future;
use std::time::{Duration, Instant};

/// The longest pause between two checks.
pub const MAX_INTERVAL: Duration = Duration::from_millis(100);
const FIRST_INTERVAL: Duration = Duration::from_micros(200);

/// What a check says: done (with a value) or not yet (maybe with what it saw).
pub trait Check {
    type Value;
    fn done(self) -> Result<Self::Value, Option<String>>;
}

impl Check for bool {
    type Value = ();
    fn done(self) -> Result<(), Option<String>> {
        if self { Ok(()) } else { Err(None) }
    }
}

impl<T> Check for Option<T> {
    type Value = T;
    fn done(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T> Check for Result<T, String> {
    type Value = T;
    fn done(self) -> Result<T, Option<String>> {
        self.map_err(Some)
    }
}

impl<T> Check for Result<T, Option<String>> {
    type Value = T;
    fn done(self) -> Result<T, Option<String>> {
        self
    }
}

struct Deadline {
    at: Instant,
    within: Duration,
    interval: Duration,
    /// What the last check saw, once the deadline has passed.
    seen: Option<String>,
}

impl Deadline {
    fn new(within: Duration) -> Self {
        Self { at: Instant::now() + within, within, interval: FIRST_INTERVAL, seen: None }
    }

    /// The pause before the next check; `None` once the deadline has passed.
    fn next(&mut self) -> Option<Duration> {
        if Instant::now() >= self.at {
            return None;
        }
        let pause = self.interval;
        self.interval = (self.interval * 2).min(MAX_INTERVAL);
        Some(pause)
    }

    fn seen(mut self, seen: Option<String>) -> Self {
        self.seen = seen;
        self
    }

    #[track_caller]
    fn expired(self, what: &dyn Display) -> ! {
        match self.seen {
            Some(seen) => panic!("timed out after {:?} waiting for {what}: {seen}", self.within),
            None => panic!("timed out after {:?} waiting for {what}", self.within),
        }
    }
}

/// Checks until done; on timeout, what the last check saw.
fn poll<C: Check>(within: Duration, mut check: impl FnMut() -> C) -> Result<C::Value, Deadline> {
    let mut deadline = Deadline::new(within);
    loop {
        match check().done() {
            Ok(value) => return Ok(value),
            Err(seen) => match deadline.next() {
                Some(pause) => std::thread::sleep(pause),
                None => return Err(deadline.seen(seen)),
            },
        }
    }
}

async fn poll_async<C: Check, F: Future<Output = C>>(
    within: Duration,
    mut check: impl FnMut() -> F,
) -> Result<C::Value, Deadline> {
    let mut deadline = Deadline::new(within);
    loop {
        match check().await.done() {
            Ok(value) => return Ok(value),
            Err(seen) => match deadline.next() {
                Some(pause) => {
                    // Let the tasks under test run, then pause without blocking them.
                    tokio::task::yield_now().await;
                    tokio::time::sleep(pause).await;
                }
                None => return Err(deadline.seen(seen)),
            },
        }
    }
}

/// Calls `check` until it is done and returns its value; panics after `within`.
#[track_caller]
pub fn until<C: Check>(what: impl Display, within: Duration, check: impl FnMut() -> C) -> C::Value {
    match poll(within, check) {
        Ok(value) => value,
        Err(d) => d.expired(&what),
    }
}

/// Like [`until`], but `None` once `within` has passed instead of a panic: for a wait
/// whose end is an outcome the test handles (a child killed after 10 s).
pub fn within<C: Check>(within: Duration, check: impl FnMut() -> C) -> Option<C::Value> {
    poll(within, check).ok()
}

/// [`until`] for a check that awaits; pauses with the runtime's sleep, so other tasks
/// (the daemon under test) run meanwhile.
pub async fn until_async<C: Check, F: Future<Output = C>>(
    what: impl Display,
    within: Duration,
    check: impl FnMut() -> F,
) -> C::Value {
    match poll_async(within, check).await {
        Ok(value) => value,
        Err(d) => d.expired(&what),
    }
}

/// [`within`] for a check that awaits.
pub async fn within_async<C: Check, F: Future<Output = C>>(
    within: Duration,
    check: impl FnMut() -> F,
) -> Option<C::Value> {
    poll_async(within, check).await.ok()
}

/// Waits until the wall clock has passed `t` (a time a child process acts on).
#[track_caller]
pub fn until_past(what: impl Display, t: chrono::DateTime<chrono::Utc>, within: Duration) {
    until(what, within, || chrono::Utc::now() > t);
}
