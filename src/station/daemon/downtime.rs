//! What the station does about time it did not see: the previous run's downtime, and a
//! wall-clock step while it runs.
//!
//! Recovery on start-up (what a crash or power cut leaves behind):
//! - an item that was sounding is recorded `failed`, reason "interrupted: station
//!   stopped", with what is known of its start and the last instant the daemon was alive
//!   (it did not play to its end, and nothing chose to stop it, so it is not `preempted`);
//! - every occurrence planned from the saved horizon on that has no record and whose
//!   `max_delay` has passed is recorded `missed`, reason "station was not running" (or
//!   "station stopped before it could start" when it was due while the daemon still ran);
//! - occurrences still within their `max_delay` are played, late.
//!
//! Both that recovery and a wall-clock step are bounded ([`Station::account`]): plays of
//! the last [`ACCOUNT_WINDOW`] get one record each (written in batches, one fsync per
//! batch), anything older one summary record that counts them without listing them
//! ([`crate::schedule::Timeline::count_between`]), whatever the gap — a ledger last
//! written 56 years from now, or a clock that jumps from 1970 to today.
//!
//! Time: the wall clock says what is due, the monotonic clock how long to wait. Every
//! turn compares the two ([`crate::clock::StepDetector`]); a step (more than a second apart) is logged
//! once with its size, shown in the status (and so in heartbeats) until the station has
//! run an hour without one, and handled at once:
//! - **forward**: what was armed and has not started is withdrawn; every play whose
//!   `max_delay` passed inside the step is recorded `missed` "clock stepped forward by
//!   …" (bounded as above); what is still within its `max_delay` starts late;
//! - **back**: what was armed is withdrawn and the station plans again from the new now;
//!   the ledger's `(item_id, planned)` key means nothing already recorded airs twice.
//! - A start-up clock earlier than the previous run's horizon (a board without a
//!   battery-backed clock, in 1970) is not trusted to account for the previous run's
//!   downtime: that waits until the clock has passed the horizon again (NTP), and then
//!   plays before this run's corrected start are "station was not running".
//!

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{Station, StationError};
use crate::clock::{self, ClockStep};
use crate::protocol::Reason;
use crate::protocol::playlog::CLOCK_STEPPED;
use crate::schedule::{Layer, Priority};
use crate::station::core::{Item, PlayingNow};
use crate::station::ledger::{Entry, Outcome, state};

/// Plays this far back from now get one `missed` record each after downtime or a clock
/// step; older ones are counted into one summary record.
pub const ACCOUNT_WINDOW: chrono::Duration = chrono::Duration::days(7);
/// Plays are listed and written this many hours at a time (bounded memory, one fsync
/// per batch).
const ACCOUNT_CHUNK: chrono::Duration = chrono::Duration::hours(6);
/// Day-steps a summary count may take in all (~0.1 s); past it the count is "at least".
const COUNT_BUDGET: u64 = 2_000_000;
/// The item id of a summary record (a colon never appears in a schedule's ids).
pub const SUMMARY_ITEM: &str = "loa:missed-summary";
/// A clock step is shown in the status until the station has run this long without one.
pub const STEP_SHOWN_FOR: Duration = Duration::from_secs(3600);
/// What [`Station::account`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub struct Accounted {
    /// Plays recorded one by one.
    pub recorded: usize,
    /// Plays counted into a summary record.
    pub summarised: u64,
    /// The earliest play left alone because it may still start late.
    pub late_from: Option<DateTime<Utc>>,
}

impl Station {
    /// Records what the previous run left undecided (see the module docs).
    pub(super) fn recover(&mut self, now: DateTime<Utc>) -> Result<(), StationError> {
        let alive = self.ledger.state_time(state::ALIVE)?;
        let horizon = self.ledger.state_time(state::HORIZON)?;
        if let Some(playing) = self.ledger.state(state::PLAYING)? {
            let items: Vec<PlayingNow> = serde_json::from_str(&playing).unwrap_or_else(|e| {
                tracing::error!(
                    "cannot read the interrupted item's state ({e}); it goes unrecorded"
                );
                Vec::new()
            });
            for p in items {
                let ended = alive.unwrap_or(p.started).max(p.started);
                let entry = Entry {
                    item_id: p.item_id,
                    title: p.title,
                    layer: p.layer,
                    priority: p.priority,
                    planned: p.planned,
                    outcome: Outcome::Failed,
                    started: Some(p.started),
                    ended: Some(ended),
                    delay_ms: Some((p.started - p.planned).num_milliseconds()),
                    played_secs: Some((ended - p.started).num_milliseconds() as f64 / 1000.0),
                    reason: None,
                    audio_sha256: p.audio_sha256,
                    levels: None,
                    reason_code: None,
                    relay: None,
                }
                .with_reason(Reason::Interrupted);
                tracing::warn!(item = %entry.item_id, "failed: interrupted: station stopped");
                self.record(entry);
            }
            self.ledger.clear_state(state::PLAYING)?;
        }
        let Some(horizon) = horizon else {
            // First start: nothing was planned for this station before now.
            self.horizon = now;
            return Ok(());
        };
        if horizon > now {
            // The clock reads earlier than the previous run got to (a board without a
            // battery-backed clock, back in 1970): it cannot say how long the station was
            // down. Accounted once the clock has passed the horizon again.
            tracing::warn!(
                clock = %now,
                previous_run_until = %horizon,
                "the clock reads earlier than the previous run: it is probably wrong (install an NTP client and fake-hwclock); downtime is accounted once it is set"
            );
            self.prior = Some((horizon, alive));
            self.horizon = now;
            return Ok(());
        }
        self.recovered = Some((horizon, alive));
        let done = self.account(horizon, now, &|planned| not_running(planned, alive));
        self.horizon = done.late_from.unwrap_or(now).min(now);
        tracing::info!(
            down_since = ?alive,
            missed = done.recorded,
            summarised = done.summarised,
            "recovered from the previous run"
        );
        Ok(())
    }
    /// Reads the wall clock, noticing (and handling) a step since the last reading.
    /// Everything the daemon decides goes through here, so no decision is made on a
    /// stepped clock before the step is handled.
    pub(super) fn now(&mut self) -> DateTime<Utc> {
        let now = self.clock.now();
        let mono = self.clock.monotonic();
        if let Some(step) = self.steps.observe(now, mono) {
            self.on_clock_step(step, now, mono);
        }
        if let Some((step, seen)) = self.last_step
            && mono.saturating_sub(seen) > STEP_SHOWN_FOR
        {
            tracing::info!(
                by = %clock::human(step.by()),
                "the clock has run an hour without a step since the last one"
            );
            self.last_step = None;
        }
        if self.prior.is_some_and(|(horizon, _)| now >= horizon) && self.last_step.is_none() {
            // The clock caught up with the previous run without a step: nothing to account.
            self.prior = None;
        }
        now
    }
    /// Handles a wall-clock step (see the module docs).
    pub(super) fn on_clock_step(&mut self, step: ClockStep, now: DateTime<Utc>, mono: Duration) {
        let by = clock::human(step.by());
        if step.forward() {
            tracing::warn!(%by, from = %step.expected, to = %now, "the wall clock stepped forward: plays in between are recorded missed; planning from the new time");
        } else {
            tracing::warn!(%by, from = %step.expected, to = %now, "the wall clock stepped back: planning again from the new time; nothing already recorded airs twice");
        }
        self.last_step = Some((step, mono));
        let actions = self.core.replan();
        self.execute(actions);
        let mut late_from = None;
        if step.forward() {
            let stepped = Reason::ClockStepped(format!("{CLOCK_STEPPED} {by}"));
            // Before this run's corrected start the station was not running at all.
            let (run_start, alive) = match self.prior {
                Some((horizon, alive)) if now >= horizon => {
                    let ran = chrono::Duration::from_std(mono.saturating_sub(self.run_start))
                        .unwrap_or(chrono::Duration::MAX);
                    (Some(clock::sub(now, ran)), alive)
                }
                _ => (None, None),
            };
            let reason = move |planned: DateTime<Utc>| match run_start {
                Some(start) if planned < start => not_running(planned, alive),
                _ => stepped.clone(),
            };
            let overdue = self.core.take_overdue(now);
            let entries = overdue
                .iter()
                .map(|i| i.entry(Outcome::Missed, Some(reason(i.planned))))
                .collect::<Vec<_>>();
            let taken = entries.len();
            self.record_batch(entries);
            let mut from = self.expanded_until;
            match self.prior {
                Some((horizon, _)) if now >= horizon => {
                    from = from.max(horizon);
                    self.prior = None;
                }
                // Still before the previous run's horizon: that time was accounted then.
                Some(_) => from = now,
                None => {}
            }
            let done = self.account(from, now, &reason);
            late_from = done.late_from;
            tracing::warn!(
                missed = taken + done.recorded,
                summarised = done.summarised,
                "recorded the plays the clock step skipped"
            );
        }
        self.horizon = self.core.horizon(now).min(late_from.unwrap_or(now));
        self.refresh(now, true);
    }
    /// Records `missed` every play in `[from, now)` with no record whose `max_delay` has
    /// passed, with `reason(planned)`: one record each for plays in the last
    /// [`ACCOUNT_WINDOW`], one summary record counting the older ones. Bounded in time
    /// and memory whatever the span (see the module docs).
    pub fn account(
        &mut self,
        from: DateTime<Utc>,
        now: DateTime<Utc>,
        reason: &dyn Fn(DateTime<Utc>) -> Reason,
    ) -> Accounted {
        let mut out = Accounted::default();
        if from >= now {
            return out;
        }
        let timeline = self.schedules.timeline();
        let window = clock::sub(now, ACCOUNT_WINDOW).max(from);
        if from < window {
            let (count, complete) = timeline.count_between(from, window, COUNT_BUDGET);
            if count > 0 {
                let why = reason(window);
                let detail = format!(
                    "{}{count} plays between {} and {} not recorded one by one: {why}",
                    if complete { "" } else { "at least " },
                    from.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                    window.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                );
                tracing::warn!("missed: {detail}");
                let entry = Entry::missed(
                    SUMMARY_ITEM,
                    "plays not attempted (summary)",
                    Layer::Provincial,
                    Priority::Normal,
                    from,
                    why.summary(detail),
                );
                self.record(entry);
                out.summarised = count;
            }
        }
        let mut chunk = window;
        while chunk < now {
            let chunk_end = clock::add(chunk, ACCOUNT_CHUNK).min(now);
            let mut entries = Vec::new();
            for occ in timeline.occurrences(chunk, chunk_end) {
                let item = Item::from_occurrence(&occ);
                if item.deadline() >= now {
                    out.late_from =
                        Some(out.late_from.map_or(item.planned, |l| l.min(item.planned)));
                    continue;
                }
                // An unreadable ledger: better a duplicate refused by the ledger's
                // (item, planned) key than a gap.
                if self.ledger.contains(&item.item_id, item.planned).unwrap_or(false) {
                    continue;
                }
                tracing::debug!(item = %item.item_id, planned = %item.planned, "missed");
                entries.push(item.entry(Outcome::Missed, Some(reason(item.planned))));
            }
            out.recorded += entries.len();
            self.record_batch(entries);
            chunk = chunk_end;
        }
        out
    }
    /// Writes many records in one transaction (or keeps them to retry).
    pub(super) fn record_batch(&mut self, entries: Vec<Entry>) {
        if entries.is_empty() {
            return;
        }
        match self.ledger.append_batch(entries.clone()) {
            Ok(stored) => {
                if let Some(last) = stored.last() {
                    tracing::info!(records = stored.len(), last_seq = last.seq, "recorded");
                }
            }
            Err(e) => {
                tracing::error!(
                    records = entries.len(),
                    "cannot write the ledger, will retry: {e}"
                );
                self.unwritten.extend(entries);
            }
        }
    }
}

/// Why a play of the previous run's downtime was missed.
pub(super) fn not_running(planned: DateTime<Utc>, alive: Option<DateTime<Utc>>) -> Reason {
    match alive {
        Some(alive) if planned <= alive => Reason::StoppedBeforeStart,
        _ => Reason::NotRunning(None),
    }
}
