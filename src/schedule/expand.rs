//! Expansion: items → planned plays ([`Occurrence`]s) in UTC, and the [`Timeline`] that
//! merges several schedule files and finds overlaps. Pure: instants come in as
//! arguments, never from a clock.
//!
//! # Wall-clock rules
//! Cron expressions and `at` times are wall-clock times in the file's time zone. They
//! are expanded on the wall clock first (croner over `NaiveDateTime`), then mapped to
//! instants by one rule, whatever the recurrence:
//! - a wall-clock time that exists once plays at that instant;
//! - a time in a DST **gap** (it does not exist, e.g. 02:30 on the spring-forward night
//!   in Europe/Berlin) plays at the first instant after the gap (03:00 local), once:
//!   several gap times of one item, or a gap time and the time right after the gap,
//!   make a single play;
//! - a time in a DST **overlap** (it happens twice, e.g. 02:30 on the fall-back night)
//!   plays once, at its first occurrence (the earlier offset).
//!
//! Validity (`from`/`until`, inclusive) and `skip` dates apply to the wall-clock date
//! the item was written for.

use std::cmp::Reverse;
use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Datelike, LocalResult, NaiveDateTime, NaiveTime, TimeZone, Timelike, Utc};
use chrono_tz::Tz;

use super::model::*;

/// How far ahead [`first_play`] looks for an item with no end date: long enough for
/// every day-of-month/weekday/leap-year combination to come round (the Gregorian
/// calendar repeats every 400 years; 28 covers every weekday/Feb-29 pairing in
/// 1901–2099).
const NEVER_HORIZON_YEARS: i32 = 28;

/// The instant a wall-clock time in `tz` plays at, by the rules in the module docs.
pub fn to_instant(naive: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&naive) {
        LocalResult::Single(t) => t.to_utc(),
        LocalResult::Ambiguous(earlier, _) => earlier.to_utc(),
        LocalResult::None => after_gap(naive, tz),
    }
}

/// The first instant whose wall-clock time in `tz` is later than `naive`, which lies in
/// a gap: that is the instant the gap ends.
fn after_gap(naive: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    // Any zone's offset is within ±15 h, so `lo` shows earlier and `hi` later than
    // `naive`; bisect on whole seconds between them.
    let shows_later = |secs: i64| {
        DateTime::from_timestamp(secs, 0).is_none_or(|t| t.with_timezone(&tz).naive_local() > naive)
    };
    let centre = naive.and_utc().timestamp();
    let (mut lo, mut hi) = (centre - 15 * 3600, centre + 15 * 3600);
    // Invariant: `lo` shows no later than `naive`, `hi` shows later.
    while hi - lo > 1 {
        let mid = lo + (hi - lo) / 2;
        if shows_later(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    DateTime::from_timestamp(hi, 0).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// The plays of one item, in order, from a starting instant on.
pub(crate) struct ItemPlays<'a> {
    item: &'a Item,
    tz: Tz,
    /// Next wall-clock time to search from (`None`: finished).
    cursor: Option<NaiveDateTime>,
    inclusive: bool,
    /// First wall-clock time past the validity range.
    end: Option<NaiveDateTime>,
    /// Plays before this instant are not returned.
    from: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
}

impl<'a> ItemPlays<'a> {
    pub(crate) fn new(item: &'a Item, tz: Tz, from: Option<DateTime<Utc>>) -> Self {
        let validity_start = item.validity.from.map(|d| d.and_time(NaiveTime::MIN));
        // Start from the wall-clock time of `from`, whole seconds: anything earlier on
        // the wall clock maps to an earlier instant (the mapping never goes back).
        let from_local = from.map(|f| {
            let local = f.with_timezone(&tz).naive_local();
            local.with_nanosecond(0).unwrap_or(local)
        });
        let start = match (validity_start, from_local) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        let start = start.or_else(|| {
            // No bound at all (a "does it ever play" question): start with the calendar
            // of the item's own era.
            chrono::NaiveDate::from_ymd_opt(2000, 1, 1).map(|d| d.and_time(NaiveTime::MIN))
        });
        let end =
            item.validity.until.and_then(|d| d.succ_opt()).map(|d| d.and_time(NaiveTime::MIN));
        ItemPlays { item, tz, cursor: start, inclusive: true, end, from, last: None }
    }

    /// Bounds the search to wall-clock times before `end` (in addition to validity).
    fn limit(mut self, end: NaiveDateTime) -> Self {
        self.end = Some(self.end.map_or(end, |e| e.min(end)));
        self
    }

    fn next_wall_clock(&mut self) -> Option<NaiveDateTime> {
        let cursor = self.cursor?;
        let found = match &self.item.recurrence {
            Recurrence::Cron { cron, .. } => {
                cron.find_next_occurrence(&cursor, self.inclusive).ok()
            }
            Recurrence::AtLocal(at) => (self.inclusive && *at >= cursor).then_some(*at),
            Recurrence::AtInstant(at) => {
                let local = at.with_timezone(&self.tz).naive_local();
                (self.inclusive && local >= cursor).then_some(local)
            }
        };
        self.inclusive = false;
        self.cursor = found;
        match (found, self.end) {
            (Some(f), Some(end)) if f >= end => {
                self.cursor = None;
                None
            }
            _ => found,
        }
    }
}

impl Iterator for ItemPlays<'_> {
    type Item = DateTime<Utc>;

    fn next(&mut self) -> Option<DateTime<Utc>> {
        loop {
            let wall = self.next_wall_clock()?;
            if self.item.validity.skip.binary_search(&wall.date()).is_ok() {
                continue;
            }
            let instant = match &self.item.recurrence {
                Recurrence::AtInstant(at) => *at,
                _ => to_instant(wall, self.tz),
            };
            if self.last.is_some_and(|last| instant <= last) {
                continue;
            }
            self.last = Some(instant);
            if self.from.is_some_and(|from| instant < from) {
                continue;
            }
            return Some(instant);
        }
    }
}

/// The item's first play at or after `from` (or ever, when `from` is `None`), if any:
/// `None` means it never plays.
pub fn first_play(item: &Item, tz: Tz, from: Option<DateTime<Utc>>) -> Option<DateTime<Utc>> {
    bounded(item, tz, from).next()
}

/// The item's plays from `from`, searched at most [`NEVER_HORIZON_YEARS`] ahead when it
/// has no end date, so a pattern that matches no real day ends the search quickly.
fn bounded(item: &Item, tz: Tz, from: Option<DateTime<Utc>>) -> ItemPlays<'_> {
    let plays = ItemPlays::new(item, tz, from);
    if item.validity.until.is_some() {
        return plays;
    }
    match plays.cursor.and_then(|c| c.with_year(c.year() + NEVER_HORIZON_YEARS)) {
        Some(horizon) => plays.limit(horizon),
        None => plays,
    }
}

impl Item {
    fn occurrence(&self, schedule: &Schedule, planned: DateTime<Utc>) -> Occurrence {
        Occurrence {
            item_id: self.id.clone(),
            title: self.title.clone(),
            layer: schedule.layer,
            priority: self.priority,
            planned,
            timezone: schedule.timezone,
            audio: self.audio.clone(),
            max_delay: self.max_delay,
            duration: self.duration,
            gain_db: self.gain_db,
        }
    }
}

/// A play found during expansion, by index, before it becomes an [`Occurrence`].
#[derive(Debug, Clone, Copy)]
struct Play {
    planned: DateTime<Utc>,
    schedule: usize,
    item: usize,
}

fn plays_between(schedules: &[Schedule], from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Play> {
    let mut out = Vec::new();
    if until <= from {
        return out;
    }
    for (si, s) in schedules.iter().enumerate() {
        // Wall-clock bound a little past `until` in any offset; instants decide.
        let end = (until + chrono::Duration::days(1)).naive_utc();
        for (ii, item) in s.items.iter().enumerate() {
            let plays = ItemPlays::new(item, s.timezone, Some(from)).limit(end);
            for planned in plays.take_while(|p| *p < until) {
                out.push(Play { planned, schedule: si, item: ii });
            }
        }
    }
    sort_plays(schedules, &mut out);
    out
}

fn plays_next(schedules: &[Schedule], from: DateTime<Utc>, n: usize) -> Vec<Play> {
    let mut out = Vec::new();
    for (si, s) in schedules.iter().enumerate() {
        for (ii, item) in s.items.iter().enumerate() {
            let plays = bounded(item, s.timezone, Some(from));
            for planned in plays.take(n) {
                out.push(Play { planned, schedule: si, item: ii });
            }
        }
    }
    sort_plays(schedules, &mut out);
    out.truncate(n);
    out
}

/// Planned time, then higher priority first, then provincial before local; file and
/// item order break the remaining ties so output is stable.
fn sort_plays(schedules: &[Schedule], plays: &mut [Play]) {
    plays.sort_by_key(|p| {
        let s = &schedules[p.schedule];
        let item = &s.items[p.item];
        (p.planned, Reverse(item.priority), Reverse(s.layer), p.schedule, p.item)
    });
}

fn to_occurrences(schedules: &[Schedule], plays: &[Play]) -> Vec<Occurrence> {
    plays
        .iter()
        .map(|p| {
            let s = &schedules[p.schedule];
            s.items[p.item].occurrence(s, p.planned)
        })
        .collect()
}

impl Schedule {
    /// Every play in the half-open range `[from, until)`, sorted as in [`Timeline`].
    pub fn occurrences(&self, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Occurrence> {
        let one = std::slice::from_ref(self);
        to_occurrences(one, &plays_between(one, from, until))
    }

    /// The next `n` plays at or after `from`.
    pub fn next(&self, from: DateTime<Utc>, n: usize) -> Vec<Occurrence> {
        let one = std::slice::from_ref(self);
        to_occurrences(one, &plays_next(one, from, n))
    }
}

/// Several schedule files merged: what a station plays. Sorted by planned time, then
/// priority (highest first), then layer (provincial before local).
#[derive(Debug, Clone, Default)]
pub struct Timeline {
    schedules: Vec<Schedule>,
}

impl Timeline {
    pub fn new(schedules: Vec<Schedule>) -> Self {
        Timeline { schedules }
    }

    pub fn schedules(&self) -> &[Schedule] {
        &self.schedules
    }

    /// Every play of every file in `[from, until)`.
    pub fn occurrences(&self, from: DateTime<Utc>, until: DateTime<Utc>) -> Vec<Occurrence> {
        to_occurrences(&self.schedules, &plays_between(&self.schedules, from, until))
    }

    /// The next `n` plays across all files, at or after `from`.
    pub fn next(&self, from: DateTime<Utc>, n: usize) -> Vec<Occurrence> {
        to_occurrences(&self.schedules, &plays_next(&self.schedules, from, n))
    }

    /// Pairs of items at the same layer and priority whose plays overlap in time, for
    /// plays starting in `[from, until)`. A play lasts `duration_of(audio)` when known,
    /// else the item's declared `duration`, else one second (so two items starting at
    /// the same instant always clash). Each clashing pair is reported once per item,
    /// at the item's own line and column, naming the first clash.
    pub fn conflicts(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        duration_of: &dyn Fn(&AudioRef) -> Option<Duration>,
    ) -> Vec<Diagnostic> {
        let plays = plays_between(&self.schedules, from, until);
        let mut lengths = Vec::with_capacity(self.schedules.len());
        for s in &self.schedules {
            let per_item: Vec<chrono::Duration> = s
                .items
                .iter()
                .map(|i| {
                    let d = duration_of(&i.audio).or(i.duration).unwrap_or(Duration::from_secs(1));
                    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
                })
                .collect();
            lengths.push(per_item);
        }
        let key = |p: &Play| {
            let s = &self.schedules[p.schedule];
            (s.layer, s.items[p.item].priority)
        };
        let mut seen: HashSet<((usize, usize), (usize, usize))> = HashSet::new();
        let mut out = Vec::new();
        // Sweep line per (layer, priority): plays are sorted by start; keep those still
        // running.
        let mut running: Vec<(DateTime<Utc>, Play)> = Vec::new();
        let mut groups: Vec<(Layer, Priority)> = plays.iter().map(key).collect();
        groups.sort();
        groups.dedup();
        for group in groups {
            running.clear();
            for p in plays.iter().filter(|p| key(p) == group) {
                let len = lengths[p.schedule][p.item];
                let end = p.planned.checked_add_signed(len).unwrap_or(DateTime::<Utc>::MAX_UTC);
                running.retain(|(e, _)| *e > p.planned);
                for (_, q) in &running {
                    let a = (q.schedule, q.item);
                    let b = (p.schedule, p.item);
                    let pair = (a.min(b), a.max(b));
                    if seen.insert(pair) {
                        self.clash(q, p, group, &mut out);
                    }
                }
                running.push((end, *p));
            }
        }
        out.sort_by(|a, b| (&a.origin, a.line, a.column).cmp(&(&b.origin, b.line, b.column)));
        out
    }

    fn clash(
        &self,
        first: &Play,
        second: &Play,
        group: (Layer, Priority),
        out: &mut Vec<Diagnostic>,
    ) {
        let (sa, sb) = (&self.schedules[first.schedule], &self.schedules[second.schedule]);
        let (a, b) = (&sa.items[first.item], &sb.items[second.item]);
        let layer = match group.0 {
            Layer::Provincial => "provincial",
            Layer::Local => "local",
        };
        let priority = match group.1 {
            Priority::Normal => "normal",
            Priority::Priority => "priority",
            Priority::Emergency => "emergency",
        };
        let local =
            |p: &Play, tz: Tz| p.planned.with_timezone(&tz).format("%a %Y-%m-%d %H:%M").to_string();
        let (at_a, at_b) = (local(first, sa.timezone), local(second, sb.timezone));
        if std::ptr::eq(a, b) {
            let message = format!(
                "item \"{}\" overlaps itself: the play at {at_b} starts before the one at {at_a} \
                 ends; make it shorter or play it less often",
                a.id
            );
            out.push(Diagnostic::error(&sa.origin, a.pos, message));
            return;
        }
        let both = format!("both are {layer} items at priority \"{priority}\"");
        out.push(Diagnostic::error(
            &sa.origin,
            a.pos,
            format!(
                "item \"{}\" (at {at_a}) overlaps item \"{}\" ({}:{}, at {at_b}); {both}: move one \
                 or shorten it",
                a.id, b.id, sb.origin, b.pos.line
            ),
        ));
        out.push(Diagnostic::error(
            &sb.origin,
            b.pos,
            format!(
                "item \"{}\" (at {at_b}) overlaps item \"{}\" ({}:{}, at {at_a}); {both}: move one \
                 or shorten it",
                b.id, a.id, sa.origin, a.pos.line
            ),
        ));
    }
}
