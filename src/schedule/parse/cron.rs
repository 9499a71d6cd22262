//! Cron expressions in a schedule: each field checked (a bad one is named), the date and
//! time parts parsed once per file and shared, and the plays-per-day bound.

use std::collections::HashMap;
use std::sync::Arc;

use chrono_tz::Tz;

use croner::parser::{CronParser, Seconds, Year};

use super::{Cx, Value, limits, tidy};
use crate::schedule::expand::{ever_plays, first_play, times_of_day};
use crate::schedule::model::*;

/// Parsed cron parts shared between the items of one file.
///
/// croner's parser fills a bit per possible year (1-5000) for every expression, which
/// makes a parse cost ~15 us and each parsed pattern ~5 kB; a province-sized file has
/// thousands of items but far fewer distinct date parts (`day month weekday`) and time
/// parts (`second minute hour`). Each date part is parsed once by croner (as
/// `0 0 0 day month weekday`) and shared; each time part is parsed once, field by field,
/// with croner's own component parser (plain numeric fields only), into the list of
/// times of day. croner parses each field independently, so this equals a full parse
/// (checked by tests); anything else (nicknames, names or letters in time fields, a
/// half that does not parse) takes the full parse, which also names a bad field.
#[derive(Default)]
pub(super) struct CronCache {
    times: HashMap<String, Option<Arc<[u32]>>>,
    dates: HashMap<String, Option<Arc<croner::Cron>>>,
    /// Whether a date part plays at all within a validity (see [`ever_plays`]).
    plays: HashMap<(String, Validity), bool>,
}

/// One time field parsed the way croner's parser does it (same range, no special
/// features), for plain numeric fields only; anything else takes the full parse.
pub(super) fn time_component(field: &str, max: u16) -> Option<croner::CronComponent> {
    if field.is_empty() || !field.bytes().all(|b| b.is_ascii_digit() || b"*/,-".contains(&b)) {
        return None;
    }
    let mut c = croner::CronComponent::new(0, max, 0, 0);
    c.parse(field).ok()?;
    Some(c)
}

/// The date fields of a 5- or 6-field expression, as one string.
pub(super) fn date_fields(expr: &str) -> Option<String> {
    let fields: Vec<&str> = expr.split_whitespace().collect();
    match fields.as_slice() {
        [_, _, dom, mon, dow] | [_, _, _, dom, mon, dow] => Some(format!("{dom} {mon} {dow}")),
        _ => None,
    }
}

impl CronCache {
    pub(super) fn compose(
        &mut self,
        parser: &CronParser,
        expr: &str,
        fields: &[&str],
    ) -> Option<CronSpec> {
        let ([s, m, h], date) = match fields {
            [m, h, dom, mon, dow] => (["0", m, h], format!("{dom} {mon} {dow}")),
            [s, m, h, dom, mon, dow] => ([*s, m, h], format!("{dom} {mon} {dow}")),
            _ => return None,
        };
        let times = self
            .times
            .entry(format!("{s} {m} {h}"))
            .or_insert_with(|| {
                let (s, m, h) =
                    (time_component(s, 59)?, time_component(m, 59)?, time_component(h, 23)?);
                Some(times_of_day(&h, &m, &s).into())
            })
            .clone()?;
        let days = self
            .dates
            .entry(date)
            .or_insert_with_key(|d| parser.parse(&format!("0 0 0 {d}")).ok().map(Arc::new))
            .clone()?;
        Some(CronSpec { expr: expr.to_string(), days, times })
    }

    /// Whether `item` plays at all: whether a day plays does not depend on the time of
    /// day, so this is answered once per date part and validity.
    pub(super) fn ever_plays(&mut self, item: &Item, tz: Tz) -> bool {
        let Recurrence::Cron(spec) = &item.recurrence else {
            return first_play(item, tz, None).is_some();
        };
        let Some(date) = date_fields(&spec.expr) else {
            return first_play(item, tz, None).is_some();
        };
        let key = (date, item.validity.clone());
        if let Some(known) = self.plays.get(&key) {
            return *known;
        }
        let plays = ever_plays(&item.recurrence, &item.validity, tz);
        self.plays.insert(key, plays);
        plays
    }
}

/// A full croner parse as a [`CronSpec`].
pub(super) fn spec_of(expr: &str, cron: croner::Cron) -> CronSpec {
    let p = &cron.pattern;
    let times = times_of_day(&p.hours, &p.minutes, &p.seconds).into();
    CronSpec { expr: expr.to_string(), days: Arc::new(cron), times }
}

pub(super) fn cron_parser() -> CronParser {
    CronParser::builder().seconds(Seconds::Optional).year(Year::Disallowed).build()
}

impl Cx<'_> {
    pub(super) fn cron(&mut self, v: &Value<'_>) -> Option<Recurrence> {
        let expr = self.string(v, "cron")?;
        // Where the expression's text starts in the file, when it is written verbatim
        // (no escapes): lets a bad field be pointed at exactly.
        let quoted = self.source.get(v.span()).unwrap_or("");
        let text_start = (quoted.len() == expr.len() + 2).then(|| v.span().start + 1);
        let at = |offset: usize| text_start.map_or(v.span().start, |s| s + offset);

        let fields: Vec<(usize, &str)> = expr
            .split_whitespace()
            .map(|f| (f.as_ptr() as usize - expr.as_ptr() as usize, f))
            .collect();
        let nickname = fields.len() == 1 && fields[0].1.starts_with('@');
        let names: &[&str] = match fields.len() {
            5 => &["minute", "hour", "day of month", "month", "weekday"],
            6 => &["second", "minute", "hour", "day of month", "month", "weekday"],
            _ if nickname => &[],
            n => {
                self.error(
                    v.span().start,
                    format!(
                        "cron \"{expr}\" has {n} fields: write 5 (minute hour day month weekday, \
                         e.g. \"30 5 * * 1-6\") or 6 with seconds first"
                    ),
                );
                return None;
            }
        };
        let parser = cron_parser();
        let bounded = |cx: &mut Self, spec: CronSpec| {
            let n = spec.times.len();
            if n > limits::MAX_PLAYS_PER_ITEM_PER_DAY {
                cx.error(
                    v.span().start,
                    format!(
                        "cron \"{expr}\" plays {n} times a day: an item plays at most {} times \
                         a day (every 20 seconds)",
                        limits::MAX_PLAYS_PER_ITEM_PER_DAY
                    ),
                );
                return None;
            }
            Some(Recurrence::Cron(spec))
        };
        if !nickname {
            let texts: Vec<&str> = fields.iter().map(|(_, f)| *f).collect();
            if let Some(spec) = self.crons.compose(&parser, expr, &texts) {
                return bounded(self, spec);
            }
        }
        match parser.parse(expr) {
            Ok(cron) => bounded(self, spec_of(expr, cron)),
            Err(whole) => {
                // Find the fields that are wrong on their own, to name them.
                let mut named = false;
                for (i, (offset, field)) in fields.iter().enumerate() {
                    if nickname {
                        break;
                    }
                    let probe: Vec<&str> =
                        (0..fields.len()).map(|j| if j == i { *field } else { "*" }).collect();
                    if let Err(e) = parser.parse(&probe.join(" ")) {
                        named = true;
                        let (range, extra) = match names[i] {
                            "second" | "minute" => ("0-59", ""),
                            "hour" => ("0-23", ""),
                            "day of month" => ("1-31", ", L (last day), W (nearest weekday)"),
                            "month" => ("1-12", ", JAN-DEC"),
                            _ => (
                                "0-7, 1 = Monday, 0 and 7 = Sunday",
                                ", MON-SUN, 5#1 (first Friday)",
                            ),
                        };
                        let why = match e {
                            croner::errors::CronError::IllegalCharacters(_) => {
                                format!("unexpected characters; use numbers with * , - /{extra}")
                            }
                            other => cron_message(&other),
                        };
                        self.error(
                            at(*offset),
                            format!(
                                "cron field {} ({}, {range}) \"{field}\" is invalid: {why}",
                                i + 1,
                                names[i],
                            ),
                        );
                    }
                }
                if !named {
                    let message = format!("cron \"{expr}\" is invalid: {}", cron_message(&whole));
                    self.error(v.span().start, message);
                }
                None
            }
        }
    }
}

/// A croner error as a lowercase clause without a trailing period.
fn cron_message(e: &croner::errors::CronError) -> String {
    use croner::errors::CronError as E;
    let raw = match e {
        E::InvalidPattern(m) | E::IllegalCharacters(m) | E::ComponentError(m) => m.clone(),
        other => other.to_string(),
    };
    tidy(&raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, NaiveDateTime, NaiveTime};

    /// A composed spec means what croner's full parse of the same text means.
    fn assert_same(full: &croner::Cron, composed: &CronSpec, expr: &str) {
        let p = &full.pattern;
        assert_eq!(
            &times_of_day(&p.hours, &p.minutes, &p.seconds)[..],
            &composed.times[..],
            "times of {expr}"
        );
        let mut dates_only = full.clone();
        dates_only.pattern.seconds = composed.days.pattern.seconds.clone();
        dates_only.pattern.minutes = composed.days.pattern.minutes.clone();
        dates_only.pattern.hours = composed.days.pattern.hours.clone();
        assert_eq!(dates_only.pattern, composed.days.pattern, "days of {expr}");
    }

    #[test]
    fn composed_crons_equal_full_parses() {
        let exprs = [
            "30 5 * * 1-6",
            "0 17 * * MON-SAT",
            "0 8 L * *",
            "0 8 15W * *",
            "0 18 * * 1#1",
            "0 18 * * 5L",
            "*/15 6-9 * * 0,7",
            "15 30 5 * * *",
            "0 0 29 2 *",
            "0 8 1 * 1",
            "0 8 1 * +1",
            "0 8 ? * 3",
            "5-10/2 */3 1,15 JAN,jul sun",
        ];
        let parser = cron_parser();
        let mut cache = CronCache::default();
        let start = NaiveDate::from_ymd_opt(2027, 1, 1)
            .map(|d| d.and_time(NaiveTime::MIN))
            .unwrap_or_default();
        for expr in exprs {
            let fields: Vec<&str> = expr.split_whitespace().collect();
            let full = parser.parse(expr).map_err(|e| format!("{expr}: {e}"));
            let composed = cache.compose(&parser, expr, &fields);
            match (full, composed) {
                (Ok(full), Some(composed)) => {
                    assert_same(&full, &composed, expr);
                    let a: Vec<NaiveDateTime> = full.iter_after(start).take(20).collect();
                    let mut walk = crate::schedule::expand::tests_walk(&composed, start);
                    let b: Vec<NaiveDateTime> = (0..20).map_while(|_| walk()).collect();
                    assert_eq!(a, b, "{expr}");
                }
                (full, composed) => panic!("{expr}: full {full:?}, composed {composed:?}"),
            }
        }
        for bad in ["0 25 * * *", "0 6 * * 8", "0 sáu * * *", "0 6 32 * *"] {
            let fields: Vec<&str> = bad.split_whitespace().collect();
            assert!(cache.compose(&parser, bad, &fields).is_none(), "{bad}");
        }
    }

    #[test]
    fn composed_crons_agree_with_full_parses_on_random_fields() {
        use rand::{Rng, SeedableRng};
        const FIELD: &[&str] = &[
            "*", "0", "1", "5", "7", "8", "23", "24", "29", "31", "59", "60", "*/15", "*/0", "1-5",
            "5-1", "1,3,5", "L", "5L", "1#1", "1#6", "15W", "?", "JAN", "MON-FRI", "+1", "-", "x",
        ];
        let parser = cron_parser();
        let mut cache = CronCache::default();
        let mut rng = rand::rngs::StdRng::seed_from_u64(99);
        let mut agreed_ok = 0;
        for _ in 0..3000 {
            let n = rng.random_range(5..7);
            let fields: Vec<&str> =
                (0..n).map(|_| FIELD[rng.random_range(0..FIELD.len())]).collect();
            let expr = fields.join(" ");
            let full = parser.parse(&expr);
            let composed = cache.compose(&parser, &expr, &fields);
            match (full, composed) {
                (Ok(f), Some(c)) => {
                    assert_same(&f, &c, &expr);
                    agreed_ok += 1;
                }
                // Not composed: the full parse decides, as in `Cx::cron`.
                (_, None) => {}
                (Err(e), Some(_)) => panic!("{fields:?}: composed, but croner says {e}"),
            }
        }
        assert!(agreed_ok > 30, "only {agreed_ok} random expressions parsed");
    }
}
