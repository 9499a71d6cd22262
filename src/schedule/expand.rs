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

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, NaiveTime, Offset, TimeZone,
    Timelike, Utc,
};
use chrono_tz::Tz;

use super::model::*;

/// How far ahead [`first_play`] looks for an item with no end date: long enough for
/// every day-of-month/weekday/leap-year combination to come round (the Gregorian
/// calendar repeats every 400 years; 28 covers every weekday/Feb-29 pairing in
/// 1901–2099).
const NEVER_HORIZON_YEARS: i32 = 28;

/// Nothing plays before this wall-clock time: searches start here at the earliest.
const EARLIEST: NaiveDateTime = match NaiveDate::from_ymd_opt(1900, 1, 1) {
    Some(d) => d.and_time(NaiveTime::MIN),
    None => NaiveDateTime::MIN,
};

/// Where "does this item ever play?" starts looking when the item has no `from`.
const ERA_START: NaiveDateTime = match NaiveDate::from_ymd_opt(2000, 1, 1) {
    Some(d) => d.and_time(NaiveTime::MIN),
    None => NaiveDateTime::MIN,
};

/// The wall-clock time of `t` in `tz`, or `None` at the far ends of chrono's range
/// (where chrono's own conversion would panic).
pub fn local_time(t: DateTime<Utc>, tz: Tz) -> Option<NaiveDateTime> {
    let offset = tz.offset_from_utc_datetime(&t.naive_utc()).fix();
    t.naive_utc().checked_add_signed(chrono::Duration::seconds(offset.local_minus_utc().into()))
}

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
        DateTime::from_timestamp(secs, 0).and_then(|t| local_time(t, tz)).is_none_or(|l| l > naive)
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
    recurrence: &'a Recurrence,
    validity: &'a Validity,
    tz: Tz,
    /// Next wall-clock time to search from (`None`: finished).
    cursor: Option<NaiveDateTime>,
    inclusive: bool,
    /// First wall-clock time past the validity range.
    end: Option<NaiveDateTime>,
    /// Plays before this instant are not returned.
    from: Option<DateTime<Utc>>,
    last: Option<DateTime<Utc>>,
    /// For cron items: the day-by-day walk, set up on the first search.
    walk: Option<DayWalk<'a>>,
}

/// croner's last searchable year; patterns never match past it.
const LAST_YEAR: i32 = 5000;

/// Enumerates a cron pattern's wall-clock times day by day. croner decides which days
/// match (`year_match`, `month_match`, `day_match`: `L`, `W`, `#` and the crontab
/// day-of-month/weekday rule) and which times of day (its parsed hour, minute and
/// second values); this only walks the calendar. Much cheaper than one croner search
/// per play, which recounts the pattern every time; a test checks both agree.
struct DayWalk<'a> {
    /// Matching times of day, in seconds from midnight, ascending.
    times: &'a [u32],
    day: NaiveDate,
    /// Next index into `times` on `day`.
    next: usize,
    day_matches: Option<bool>,
}

/// The times of day (seconds from midnight, ascending) that croner's parsed hour,
/// minute and second fields match.
pub(crate) fn times_of_day(
    hours: &croner::CronComponent,
    minutes: &croner::CronComponent,
    seconds: &croner::CronComponent,
) -> Vec<u32> {
    let (hours, minutes, seconds) = (hours.values(), minutes.values(), seconds.values());
    let mut times = Vec::with_capacity(hours.len() * minutes.len() * seconds.len());
    for h in &hours {
        for m in &minutes {
            for s in &seconds {
                times.push(u32::from(*h) * 3600 + u32::from(*m) * 60 + u32::from(*s));
            }
        }
    }
    times.sort_unstable();
    times
}

impl<'a> DayWalk<'a> {
    /// A walk returning times at or after `start`.
    fn new(times: &'a [u32], start: NaiveDateTime) -> Self {
        let start_secs = start.num_seconds_from_midnight();
        let next = times.partition_point(|t| *t < start_secs);
        DayWalk { times, day: start.date(), next, day_matches: None }
    }

    fn next(
        &mut self,
        pattern: &croner::CronPattern,
        end: Option<NaiveDateTime>,
    ) -> Option<NaiveDateTime> {
        if self.times.is_empty() {
            return None;
        }
        loop {
            if self.day.year() > LAST_YEAR
                || end.is_some_and(|e| self.day.and_time(NaiveTime::MIN) >= e)
            {
                return None;
            }
            let day = self.day;
            let matches = *self.day_matches.get_or_insert_with(|| day_matches(pattern, day));
            if matches && let Some(&t) = self.times.get(self.next) {
                self.next += 1;
                let time = NaiveTime::from_num_seconds_from_midnight_opt(t, 0)?;
                return Some(day.and_time(time));
            }
            self.day = self.day.succ_opt()?;
            self.next = 0;
            self.day_matches = None;
        }
    }
}

fn day_matches(pattern: &croner::CronPattern, day: NaiveDate) -> bool {
    let weekday = match day.weekday().num_days_from_sunday() {
        0 => croner::Weekday::Sunday,
        1 => croner::Weekday::Monday,
        2 => croner::Weekday::Tuesday,
        3 => croner::Weekday::Wednesday,
        4 => croner::Weekday::Thursday,
        5 => croner::Weekday::Friday,
        _ => croner::Weekday::Saturday,
    };
    pattern.year_match(day.year()).unwrap_or(false)
        && pattern.month_match(day.month()).unwrap_or(false)
        && pattern.day_match(day.year(), day.month(), day.day(), weekday).unwrap_or(false)
}

impl<'a> ItemPlays<'a> {
    pub(crate) fn new(item: &'a Item, tz: Tz, from: Option<DateTime<Utc>>) -> Self {
        Self::of(&item.recurrence, &item.validity, tz, from)
    }

    fn of(
        recurrence: &'a Recurrence,
        validity: &'a Validity,
        tz: Tz,
        from: Option<DateTime<Utc>>,
    ) -> Self {
        let validity_start = validity.from.map(|d| d.and_time(NaiveTime::MIN));
        // Start from the wall-clock time of `from`, whole seconds: anything earlier on
        // the wall clock maps to an earlier instant (the mapping never goes back).
        let from_local = from.map(|f| match local_time(f, tz) {
            Some(local) => local.with_nanosecond(0).unwrap_or(local),
            // Beyond what a calendar can show: before everything, or after it.
            None if f.year() < 0 => EARLIEST,
            None => NaiveDateTime::MAX,
        });
        let start = match (validity_start, from_local) {
            (Some(a), Some(b)) => Some(a.max(b)),
            (a, b) => a.or(b),
        };
        // No bound at all (a "does it ever play" question): start in the item's own era.
        let start = start.unwrap_or(ERA_START).max(EARLIEST);
        let start = (start < NaiveDateTime::MAX).then_some(start);
        let end = validity.until.and_then(|d| d.succ_opt()).map(|d| d.and_time(NaiveTime::MIN));
        ItemPlays {
            recurrence,
            validity,
            tz,
            cursor: start,
            inclusive: true,
            end,
            from,
            last: None,
            walk: None,
        }
    }

    /// Bounds the search to wall-clock times before `end` (in addition to validity).
    fn limit(mut self, end: NaiveDateTime) -> Self {
        self.end = Some(self.end.map_or(end, |e| e.min(end)));
        self
    }

    fn next_wall_clock(&mut self) -> Option<NaiveDateTime> {
        let cursor = self.cursor?;
        let found = match self.recurrence {
            Recurrence::Cron(spec) => {
                let walk = self.walk.get_or_insert_with(|| DayWalk::new(&spec.times, cursor));
                walk.next(&spec.days.pattern, self.end)
            }
            Recurrence::AtLocal(at) => (self.inclusive && *at >= cursor).then_some(*at),
            Recurrence::AtInstant(at) => {
                local_time(*at, self.tz).filter(|local| self.inclusive && *local >= cursor)
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
            if self.validity.skip.binary_search(&wall.date()).is_ok() {
                continue;
            }
            let instant = match self.recurrence {
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
    bounded(&item.recurrence, &item.validity, tz, from).next()
}

/// Whether a recurrence with this validity plays at all. Whether a day plays does not
/// depend on the time of day (a time lost to a DST gap still plays after it), so the
/// parser asks this once per distinct date pattern and validity.
pub(crate) fn ever_plays(recurrence: &Recurrence, validity: &Validity, tz: Tz) -> bool {
    bounded(recurrence, validity, tz, None).next().is_some()
}

/// The item's plays from `from`, searched at most [`NEVER_HORIZON_YEARS`] ahead when it
/// has no end date, so a pattern that matches no real day ends the search quickly.
fn bounded<'a>(
    recurrence: &'a Recurrence,
    validity: &'a Validity,
    tz: Tz,
    from: Option<DateTime<Utc>>,
) -> ItemPlays<'a> {
    let plays = ItemPlays::of(recurrence, validity, tz, from);
    // A one-off has a single candidate, and a bounded range its own end.
    if validity.until.is_some() || !matches!(recurrence, Recurrence::Cron(_)) {
        return plays;
    }
    match plays.cursor.and_then(|c| c.with_year(c.year() + NEVER_HORIZON_YEARS)) {
        Some(horizon) => plays.limit(horizon),
        None => plays,
    }
}

/// [`Timeline::count_between`] for one item; `left` is the shared budget of day-steps.
fn count_item(
    item: &Item,
    tz: Tz,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
    left: &mut u64,
) -> (u64, bool) {
    if until <= from {
        return (0, true);
    }
    let Recurrence::Cron(spec) = &item.recurrence else {
        // A one-off: at most one play.
        let n = ItemPlays::new(item, tz, Some(from)).take_while(|p| *p < until).count();
        return (n as u64, true);
    };
    let Some(first_day) = local_time(from, tz).map(|l| l.date().pred_opt().unwrap_or(l.date()))
    else {
        return (0, true);
    };
    let first_day = item.validity.from.map_or(first_day, |f| f.max(first_day)).max(EARLIEST.date());
    let last_day =
        local_time(until, tz).map_or(NaiveDate::MAX, |l| l.date().succ_opt().unwrap_or(l.date()));
    let last_day = item.validity.until.map_or(last_day, |u| u.min(last_day));
    let pattern = &spec.days.pattern;
    let times = &spec.times;
    let (Some(&first_time), Some(&last_time)) = (times.first(), times.last()) else {
        return (0, true);
    };
    let at = |day: NaiveDate, secs: u32| {
        NaiveTime::from_num_seconds_from_midnight_opt(secs, 0)
            .map(|t| to_instant(day.and_time(t), tz))
    };
    let mut count = 0u64;
    let mut day = first_day;
    while day <= last_day && day.year() <= LAST_YEAR {
        if *left == 0 {
            return (count, false);
        }
        *left -= 1;
        if item.validity.skip.binary_search(&day).is_err() && day_matches(pattern, day) {
            let (Some(a), Some(b)) = (at(day, first_time), at(day, last_time)) else { break };
            let same_offset = tz.offset_from_utc_datetime(&a.naive_utc()).fix()
                == tz.offset_from_utc_datetime(&b.naive_utc()).fix();
            if same_offset && a >= from && b < until {
                count = count.saturating_add(times.len() as u64);
            } else if b >= from && a < until || !same_offset {
                // A range end or a DST change: this day's plays one by one, as
                // `ItemPlays` maps them (a gap's times make one play).
                let mut last: Option<DateTime<Utc>> = None;
                for &secs in times.iter() {
                    let Some(p) = at(day, secs) else { continue };
                    if last.is_some_and(|l| p <= l) {
                        continue;
                    }
                    last = Some(p);
                    if p >= from && p < until {
                        count = count.saturating_add(1);
                    }
                }
            }
        }
        match day.succ_opt() {
            Some(next) => day = next,
            None => break,
        }
    }
    (count, true)
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
        let end = until.checked_add_signed(chrono::Duration::days(1)).unwrap_or(until).naive_utc();
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
            let plays = bounded(&item.recurrence, &item.validity, s.timezone, Some(from));
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

    /// How many plays of every file fall in `[from, until)`, without listing them:
    /// counted a day at a time (a day whose plays all lie in the range under one UTC
    /// offset adds its number of times; a DST-change day or a range end is expanded),
    /// so 56 years of a busy schedule cost ~20,000 steps per item, not millions of
    /// plays. Stops after `budget` day-steps in all: `(count, false)` then means "at
    /// least `count`". Memory stays constant.
    pub fn count_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
        budget: u64,
    ) -> (u64, bool) {
        let mut left = budget;
        let mut total = 0u64;
        for s in &self.schedules {
            for item in &s.items {
                let (n, complete) = count_item(item, s.timezone, from, until, &mut left);
                total = total.saturating_add(n);
                if !complete {
                    return (total, false);
                }
            }
        }
        (total, true)
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
        let local = |p: &Play, tz: Tz| match local_time(p.planned, tz) {
            Some(l) => l.format("%a %Y-%m-%d %H:%M").to_string(),
            None => p.planned.format("%a %Y-%m-%d %H:%M UTC").to_string(),
        };
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

/// For the parser's tests: the wall-clock times of `spec` from `start`, one per call.
#[cfg(test)]
pub(crate) fn tests_walk(
    spec: &CronSpec,
    start: NaiveDateTime,
) -> impl FnMut() -> Option<NaiveDateTime> + '_ {
    let mut walk = DayWalk::new(&spec.times, start);
    move || walk.next(&spec.days.pattern, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use croner::parser::{CronParser, Seconds, Year};
    use rand::{Rng, SeedableRng};

    /// The day walk lists exactly the times croner's own search finds.
    #[test]
    fn day_walk_agrees_with_croner_search() {
        const FIELD: &[&str] = &[
            "*", "0", "1", "5", "7", "23", "29", "30", "31", "59", "*/15", "*/7", "1-5", "5-6",
            "1,3,5", "L", "5L", "1#1", "2#5", "15W", "LW", "?", "JAN", "FEB", "MON-FRI", "+1",
        ];
        let parser =
            CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build();
        let mut rng = rand::rngs::StdRng::seed_from_u64(4);
        let start = NaiveDate::from_ymd_opt(2027, 2, 27)
            .and_then(|d| d.and_hms_opt(13, 7, 0))
            .unwrap_or(ERA_START);
        let mut compared = 0;
        for _ in 0..4000 {
            let n = rng.random_range(5..7);
            let fields: Vec<&str> =
                (0..n).map(|_| FIELD[rng.random_range(0..FIELD.len())]).collect();
            let Ok(cron) = parser.parse(&fields.join(" ")) else { continue };
            let p = &cron.pattern;
            let times = times_of_day(&p.hours, &p.minutes, &p.seconds);
            let mut walk = DayWalk::new(&times, start);
            let mut cursor = start;
            let mut inclusive = true;
            for _ in 0..25 {
                let Ok(found) = cron.find_next_occurrence(&cursor, inclusive) else { break };
                if found.year() > 2040 {
                    break;
                }
                assert_eq!(
                    walk.next(&cron.pattern, None),
                    Some(found),
                    "{fields:?} after {cursor}"
                );
                cursor = found;
                inclusive = false;
                compared += 1;
            }
        }
        assert!(compared > 2000, "only {compared} plays compared");
    }

    fn timeline(text: &str) -> Timeline {
        let parsed = crate::schedule::parse(text, "t.toml", std::path::Path::new(""));
        Timeline::new(vec![parsed.schedule.expect("valid schedule")])
    }

    /// Counting a day at a time gives exactly the number of plays listed, across DST
    /// changes, skips, validity and range ends that cut a day.
    #[test]
    fn counting_agrees_with_listing() {
        for (tz, cron) in [
            ("Europe/Berlin", "*/20 * * * *"),
            ("Europe/Berlin", "30 2 * * *"),
            ("Asia/Ho_Chi_Minh", "30 5 * * 1-6"),
            ("America/Havana", "15 0,12 * * *"),
            ("Asia/Ho_Chi_Minh", "0 8 L * *"),
        ] {
            let t = timeline(&format!(
                "layer = \"local\"\ntimezone = \"{tz}\"\n[[item]]\nid = \"a\"\ntitle = \"a\"\n\
                 audio = \"a.wav\"\ncron = \"{cron}\"\nskip = [2027-03-02]\n\
                 [[item]]\nid = \"b\"\ntitle = \"b\"\naudio = \"b.wav\"\nat = 2027-03-05T10:00:00\n"
            ));
            let from = Utc.with_ymd_and_hms(2027, 2, 20, 3, 17, 0).unwrap();
            let until = Utc.with_ymd_and_hms(2027, 4, 9, 11, 2, 0).unwrap();
            let listed = t.occurrences(from, until).len() as u64;
            assert_eq!(t.count_between(from, until, u64::MAX), (listed, true), "{tz} {cron}");
        }
    }

    /// 56 years of a play every minute (29 million plays) are counted in a few thousand
    /// steps, and a budget stops the count early.
    #[test]
    fn counting_decades_is_cheap_and_bounded() {
        let t = timeline(
            "layer = \"local\"\ntimezone = \"UTC\"\n[[item]]\nid = \"a\"\ntitle = \"a\"\naudio = \"a.wav\"\ncron = \"*/20 * * * * *\"\n",
        );
        let from = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
        let until = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let days = (until - from).num_days() as u64;
        let (n, complete) = t.count_between(from, until, 100_000);
        assert!(complete);
        assert_eq!(n, days * 4320);
        let (partial, complete) = t.count_between(from, until, 10);
        assert!(!complete);
        assert!(partial <= 10 * 4320, "{partial}");
    }
}
