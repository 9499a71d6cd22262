//! TOML text → [`Schedule`] + every [`Diagnostic`] found. Pure: the caller passes the
//! text, the name to report it under and the folder relative audio paths start from.
//!
//! The parser never stops at the first problem: it reports all TOML syntax errors (and
//! then stops, since a broken document's meaning is guesswork), or else every semantic
//! problem of every key of every item, each located by line and column.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

use chrono::{NaiveDate, NaiveDateTime, NaiveTime, TimeZone};
use chrono_tz::Tz;

use toml::Spanned;
use toml::de::{DeTable, DeValue};
use toml::value::{Datetime, Offset};

use super::model::*;

mod cron;
mod stream;
use cron::CronCache;

type Value<'i> = Spanned<DeValue<'i>>;

/// The time zone a file gets when it does not say.
pub const DEFAULT_TIMEZONE: Tz = chrono_tz::Asia::Ho_Chi_Minh;
/// How late an item may start before it counts as missed, when the file does not say.
pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(5 * 60);

/// What one schedule file may cost whoever reads it: a station, central (which plans
/// every station's manifest and report from it), `loa schedule check`. A district's file
/// arrives over the network, so each is a bound, refused at its `file:line:column`.
pub mod limits {
    use std::time::Duration;

    /// Largest file, in bytes.
    pub const MAX_SOURCE_BYTES: usize = 1024 * 1024;
    /// Most `[[item]]`s in one file.
    pub const MAX_ITEMS: usize = 1000;
    /// Most plays of one item on one day: one every 20 seconds, finer than any real
    /// programme (the bound caps cost, not taste).
    pub const MAX_PLAYS_PER_ITEM_PER_DAY: usize = 4320;
    /// Most plays of all the file's items on one day.
    pub const MAX_PLAYS_PER_DAY: usize = 5000;
    /// Longest title, in characters.
    pub const MAX_TITLE_CHARS: usize = 200;
    /// Longest item id, in characters.
    pub const MAX_ID_CHARS: usize = 64;
    /// Longest `max_delay` or `duration`.
    pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);
    /// Longest `stream` URL, in bytes.
    pub const MAX_STREAM_URL_BYTES: usize = 2048;
    /// Longest relay slot (`duration` of a `stream` item): a programme, not a day.
    pub const MAX_STREAM_DURATION: Duration = Duration::from_secs(6 * 3600);
}

const TOP_KEYS: &[&str] = &["layer", "timezone", "item"];
const ITEM_KEYS: &[&str] = &[
    "id",
    "title",
    "audio",
    "cron",
    "at",
    "priority",
    "from",
    "until",
    "skip",
    "max_delay",
    "duration",
    "gain_db",
    "stream",
    "fallback",
];

/// Parses one schedule file. `origin` is the name diagnostics carry (as the user typed
/// it); relative audio paths are joined to `base_dir`. Never panics, never touches the
/// file system.
pub fn parse(source: &str, origin: &str, base_dir: &Path) -> Parsed {
    if source.len() > limits::MAX_SOURCE_BYTES {
        let message = format!(
            "the file has {} bytes: a schedule file holds at most {} (1 MiB); split it into several files",
            source.len(),
            limits::MAX_SOURCE_BYTES
        );
        let at = Pos { line: 1, column: 1 };
        return Parsed {
            schedule: None,
            diagnostics: vec![Diagnostic::error(origin, at, message)],
            audio: Vec::new(),
        };
    }
    let mut cx = Cx {
        origin,
        source,
        lines: LineIndex::new(source),
        diagnostics: Vec::new(),
        audio: Vec::new(),
        crons: CronCache::default(),
    };
    let schedule = cx.document(base_dir);
    let mut diagnostics = cx.diagnostics;
    diagnostics.sort_by_key(|d| (d.line, d.column));
    let has_error = diagnostics.iter().any(Diagnostic::is_error);
    Parsed { schedule: if has_error { None } else { schedule }, diagnostics, audio: cx.audio }
}

/// Byte offset → 1-based line and character column.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(source: &str) -> Self {
        let mut starts = vec![0];
        starts.extend(source.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn pos(&self, source: &str, offset: usize) -> Pos {
        let offset = offset.min(source.len());
        let line = self.starts.partition_point(|&s| s <= offset).max(1);
        let start = self.starts[line - 1];
        let column = source.get(start..offset).map_or(offset - start, |s| s.chars().count()) + 1;
        Pos { line, column }
    }
}

struct Cx<'a> {
    origin: &'a str,
    source: &'a str,
    lines: LineIndex,
    diagnostics: Vec<Diagnostic>,
    audio: Vec<(AudioRef, Pos)>,
    crons: CronCache,
}

impl<'a> Cx<'a> {
    fn pos(&self, offset: usize) -> Pos {
        self.lines.pos(self.source, offset)
    }

    fn error(&mut self, offset: usize, message: impl Into<String>) {
        let d = Diagnostic::error(self.origin, self.pos(offset), message);
        self.diagnostics.push(d);
    }

    fn warning(&mut self, offset: usize, message: impl Into<String>) {
        let d = Diagnostic::warning(self.origin, self.pos(offset), message);
        self.diagnostics.push(d);
    }

    fn document(&mut self, base_dir: &Path) -> Option<Schedule> {
        let (root, errors) = DeTable::parse_recoverable(self.source);
        if !errors.is_empty() {
            for e in errors {
                let offset = e.span().map_or(0, |s| s.start);
                self.error(offset, format!("invalid TOML: {}", tidy(e.message())));
            }
            return None;
        }
        let root = root.get_ref();
        self.unknown_keys(root, TOP_KEYS, "at the top of a schedule file");

        let layer = match root.get("layer") {
            None => {
                self.error(0, "missing `layer`: add layer = \"provincial\" or layer = \"local\"");
                None
            }
            Some(v) => match self.string(v, "layer") {
                Some("provincial") => Some(Layer::Provincial),
                Some("local") => Some(Layer::Local),
                Some(other) => {
                    let other = other.to_string();
                    self.error(
                        v.span().start,
                        format!("unknown layer \"{other}\": use \"provincial\" or \"local\""),
                    );
                    None
                }
                None => None,
            },
        };

        let timezone = match root.get("timezone") {
            None => Some(DEFAULT_TIMEZONE),
            Some(v) => match self.string(v, "timezone") {
                Some(name) => match name.parse::<Tz>() {
                    Ok(tz) => Some(tz),
                    Err(_) => {
                        let name = name.to_string();
                        self.error(
                            v.span().start,
                            format!(
                                "unknown time zone \"{name}\": use an IANA name such as \
                                 \"Asia/Ho_Chi_Minh\""
                            ),
                        );
                        None
                    }
                },
                None => None,
            },
        };

        let mut items = Vec::new();
        match root.get("item") {
            None => self.warning(0, "no `[[item]]` in this file: it plays nothing"),
            Some(v) => match v.get_ref() {
                DeValue::Array(array) => {
                    let mut seen: HashMap<String, Pos> = HashMap::new();
                    let mut plays_per_day = 0usize;
                    for (index, entry) in array.iter().enumerate() {
                        if index == limits::MAX_ITEMS {
                            self.error(
                                entry.span().start,
                                format!(
                                    "more than {} items in one file: split it into several files",
                                    limits::MAX_ITEMS
                                ),
                            );
                            break;
                        }
                        let DeValue::Table(table) = entry.get_ref() else {
                            self.error(
                                entry.span().start,
                                format!(
                                    "each item must be a table, found {}: write [[item]] \
                                     followed by its keys",
                                    entry.get_ref().type_str()
                                ),
                            );
                            continue;
                        };
                        // Duplicate ids are found from the raw table, so they are
                        // reported even when the item has other problems.
                        let start = entry.span().start;
                        if let Some(DeValue::String(id)) = table.get("id").map(|v| v.get_ref()) {
                            let pos = self.pos(start);
                            if let Some(first) = seen.get(id.as_ref()) {
                                let message = format!(
                                    "duplicate item id \"{id}\": already used at line {}; \
                                     give each item its own id",
                                    first.line
                                );
                                self.diagnostics.push(Diagnostic::error(self.origin, pos, message));
                            } else {
                                seen.insert(id.to_string(), pos);
                            }
                        }
                        if let Some(item) = self.item(table, start, base_dir, timezone) {
                            let before = plays_per_day;
                            plays_per_day += match &item.recurrence {
                                Recurrence::Cron(spec) => spec.times.len(),
                                _ => 1,
                            };
                            if before <= limits::MAX_PLAYS_PER_DAY
                                && plays_per_day > limits::MAX_PLAYS_PER_DAY
                            {
                                self.error(
                                    start,
                                    format!(
                                        "with item \"{}\" the file plays up to {plays_per_day} \
                                         times a day: a file plays at most {} times a day; \
                                         split it into several files",
                                        item.id,
                                        limits::MAX_PLAYS_PER_DAY
                                    ),
                                );
                            }
                            items.push(item);
                        }
                    }
                }
                other => self.error(
                    v.span().start,
                    format!(
                        "`item` must be a list of tables, found a {}: write [[item]] (double \
                         brackets) before each item",
                        other.type_str()
                    ),
                ),
            },
        }

        Some(Schedule {
            origin: self.origin.to_string(),
            layer: layer?,
            timezone: timezone?,
            items,
        })
    }

    fn unknown_keys(&mut self, table: &DeTable<'_>, known: &[&str], place: &str) {
        for key in table.keys() {
            let name: &str = key.get_ref();
            if known.contains(&name) {
                continue;
            }
            let hint = match closest(name, known) {
                Some(k) => format!("; did you mean `{k}`?"),
                None => format!("; known keys are: {}", known.join(", ")),
            };
            self.error(key.span().start, format!("unknown key `{name}` {place}{hint}"));
        }
    }

    fn string<'v>(&mut self, v: &'v Value<'_>, key: &str) -> Option<&'v str> {
        match v.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            other => {
                self.error(
                    v.span().start,
                    format!("`{key}` must be a string in quotes, found a {}", other.type_str()),
                );
                None
            }
        }
    }

    fn date(&mut self, v: &Value<'_>, key: &str) -> Option<NaiveDate> {
        let example = format!("write it as a bare date such as {key} = 2027-01-01");
        match v.get_ref() {
            DeValue::Datetime(Datetime { date: Some(d), time: None, offset: None }) => {
                match NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into()) {
                    Some(date) => Some(date),
                    None => {
                        self.error(v.span().start, format!("`{key}` is not a real date"));
                        None
                    }
                }
            }
            DeValue::Datetime(_) => {
                self.error(
                    v.span().start,
                    format!("`{key}` must be a date without a time: {example}"),
                );
                None
            }
            DeValue::String(_) => {
                self.error(
                    v.span().start,
                    format!("`{key}` must be a date, not a string: {example} (no quotes)"),
                );
                None
            }
            other => {
                let t = other.type_str();
                self.error(
                    v.span().start,
                    format!("`{key}` must be a date, found a {t}: {example}"),
                );
                None
            }
        }
    }

    fn duration(&mut self, v: &Value<'_>, key: &str) -> Option<Duration> {
        let text = self.string(v, key)?;
        match parse_duration(text) {
            Ok(d) if d > limits::MAX_DURATION => {
                let text = text.to_string();
                self.error(v.span().start, format!("`{key}` \"{text}\" is longer than 24h"));
                None
            }
            Ok(d) => Some(d),
            Err(why) => {
                let text = text.to_string();
                self.error(
                    v.span().start,
                    format!(
                        "`{key}` \"{text}\" is not a duration ({why}): write it like \"90s\", \
                         \"10m\" or \"1h30m\""
                    ),
                );
                None
            }
        }
    }

    /// Validates one `[[item]]`; returns it only when all of its keys are valid.
    fn item(
        &mut self,
        t: &DeTable<'_>,
        start: usize,
        base_dir: &Path,
        tz: Option<Tz>,
    ) -> Option<Item> {
        let errors_before = self.error_count();
        let pos = self.pos(start);
        self.unknown_keys(t, ITEM_KEYS, "in an item");

        let id = match t.get("id") {
            None => {
                self.error(start, "item has no `id`: add a short name such as id = \"ban-tin-sang\"");
                None
            }
            Some(v) => self.string(v, "id").and_then(|id| {
                let ok = !id.is_empty()
                    && id.len() <= limits::MAX_ID_CHARS
                    && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
                if ok {
                    Some(id.to_string())
                } else {
                    let id = id.to_string();
                    self.error(
                        v.span().start,
                        format!(
                            "item id \"{id}\" must be non-empty and use only ASCII letters, digits, \
                             `-` and `_`"
                        ),
                    );
                    None
                }
            }),
        };
        let named = match &id {
            Some(id) => format!("item \"{id}\""),
            None => "this item".to_string(),
        };

        let title = match t.get("title") {
            None => {
                self.error(start, format!("{named} has no `title`: add title = \"...\""));
                None
            }
            Some(v) => self.string(v, "title").and_then(|s| {
                let chars = s.chars().count();
                if s.trim().is_empty() {
                    self.error(v.span().start, "`title` is empty: say what the programme is");
                    None
                } else if chars > limits::MAX_TITLE_CHARS {
                    self.error(
                        v.span().start,
                        format!(
                            "`title` has {chars} characters: at most {}",
                            limits::MAX_TITLE_CHARS
                        ),
                    );
                    None
                } else if s.chars().any(char::is_control) {
                    self.error(
                        v.span().start,
                        "`title` holds control characters (a line break, a tab, an escape): write it on one line",
                    );
                    None
                } else {
                    Some(s.to_string())
                }
            }),
        };

        let mut stream = None;
        let (audio, audio_pos) = match (t.get("audio"), t.get("stream")) {
            (None, None) => {
                self.error(
                    start,
                    format!(
                        "{named} has no `audio`: add a path relative to this file or \
                         \"sha256:<hex>\""
                    ),
                );
                (None, pos)
            }
            (Some(_), Some(s)) => {
                self.error(
                    s.span().start,
                    format!("{named} has both `audio` and `stream`: keep one (a file, or a stream to relay)"),
                );
                (None, pos)
            }
            (Some(v), None) => {
                if let Some(f) = t.get("fallback") {
                    self.error(
                        f.span().start,
                        "`fallback` is only for `stream` items (what plays while the stream is down)",
                    );
                }
                let audio_pos = self.pos(v.span().start);
                let audio =
                    self.string(v, "audio").and_then(|s| self.audio(s, v, base_dir, "audio"));
                if let Some(a) = &audio {
                    self.audio.push((a.clone(), audio_pos));
                }
                (audio, audio_pos)
            }
            (None, Some(v)) => {
                stream = Some(self.stream_parts(t, v, base_dir));
                (None, self.pos(v.span().start))
            }
        };

        let priority = match t.get("priority") {
            None => Some(Priority::Normal),
            Some(v) => match self.string(v, "priority") {
                Some("normal") => Some(Priority::Normal),
                Some("priority") => Some(Priority::Priority),
                Some("emergency") => {
                    self.error(
                        v.span().start,
                        "priority \"emergency\" is only for pushed bulletins (`loa bulletin push`), \
                         not schedules: use \"normal\" or \"priority\"",
                    );
                    None
                }
                Some(other) => {
                    let other = other.to_string();
                    self.error(
                        v.span().start,
                        format!("unknown priority \"{other}\": use \"normal\" or \"priority\""),
                    );
                    None
                }
                None => None,
            },
        };

        let recurrence = match (t.get("cron"), t.get("at")) {
            (Some(c), Some(a)) => {
                self.error(
                    a.span().start,
                    format!("{named} has both `cron` and `at`: keep `cron` for a repeating item or `at` for a one-off"),
                );
                let _ = (self.cron(c), self.at(a));
                None
            }
            (Some(c), None) => self.cron(c),
            (None, Some(a)) => self.at(a),
            (None, None) => {
                self.error(
                    start,
                    format!(
                        "{named} has no `cron` or `at`: add cron = \"30 5 * * 1-6\" (repeating) or \
                         at = 2027-09-02T06:00:00 (once)"
                    ),
                );
                None
            }
        };

        let from = t.get("from").map(|v| (self.date(v, "from"), v.span().start));
        let until = t.get("until").map(|v| (self.date(v, "until"), v.span().start));
        let from_date = from.and_then(|f| f.0);
        let until_date = until.and_then(|u| u.0);
        if let (Some(f), Some((Some(u), at))) = (from_date, until)
            && u < f
        {
            self.error(at, format!("`until` {u} is before `from` {f}: the item would never play"));
        }
        let mut skip = Vec::new();
        if let Some(v) = t.get("skip") {
            match v.get_ref() {
                DeValue::Array(dates) => {
                    for d in dates.iter() {
                        if let Some(date) = self.date(d, "skip") {
                            let outside = from_date.is_some_and(|f| date < f)
                                || until_date.is_some_and(|u| date > u);
                            if outside {
                                self.warning(
                                    d.span().start,
                                    format!(
                                        "skip date {date} is outside the item's validity range"
                                    ),
                                );
                            }
                            skip.push(date);
                        }
                    }
                }
                other => {
                    let t = other.type_str();
                    self.error(
                        v.span().start,
                        format!("`skip` must be a list of dates, found a {t}: skip = [2027-01-01, 2027-02-16]"),
                    );
                }
            }
        }
        skip.sort_unstable();
        skip.dedup();

        let max_delay = match t.get("max_delay") {
            None => Some(DEFAULT_MAX_DELAY),
            Some(v) => self.duration(v, "max_delay"),
        };
        let duration = match t.get("duration") {
            None => Some(None),
            Some(v) => match self.duration(v, "duration") {
                Some(d) if d.is_zero() => {
                    self.error(v.span().start, "`duration` must be longer than zero");
                    None
                }
                Some(d) => Some(Some(d)),
                None => None,
            },
        };
        let gain_db = match t.get("gain_db") {
            None => Some(0.0),
            Some(v) => {
                let g = match v.get_ref() {
                    DeValue::Float(f) => f.as_str().replace('_', "").parse::<f64>().ok(),
                    DeValue::Integer(i) if i.radix() == 10 => {
                        i.as_str().replace('_', "").parse::<f64>().ok()
                    }
                    _ => None,
                };
                match g {
                    Some(g) if g.is_finite() && (-40.0..=20.0).contains(&g) => Some(g as f32),
                    _ => {
                        self.error(
                            v.span().start,
                            "`gain_db` must be a number of decibels from -40 to 20, such as -3.5",
                        );
                        None
                    }
                }
            }
        };

        let audio = match stream {
            None => audio,
            Some(parts) => self.stream_item(t, parts, &duration, &named),
        };
        if self.error_count() > errors_before {
            return None;
        }
        let item = Item {
            id: id?,
            title: title?,
            audio: audio?,
            priority: priority?,
            recurrence: recurrence?,
            validity: Validity { from: from_date, until: until_date, skip },
            max_delay: max_delay?,
            duration: duration?,
            gain_db: gain_db?,
            pos,
            audio_pos,
        };
        if let Some(tz) = tz
            && !self.crons.ever_plays(&item, tz)
        {
            let why = match &item.recurrence {
                Recurrence::Cron(CronSpec { expr, .. }) => format!(
                    "cron \"{expr}\" matches no day within its validity range and skip dates"
                ),
                _ => "its `at` falls outside its validity range or on a skip date".to_string(),
            };
            self.error(start, format!("{named} never plays: {why}"));
            return None;
        }
        Some(item)
    }

    fn error_count(&self) -> usize {
        self.diagnostics.iter().filter(|d| d.is_error()).count()
    }

    fn audio(&mut self, s: &str, v: &Value<'_>, base_dir: &Path, key: &str) -> Option<AudioRef> {
        if let Some(hex) = s.strip_prefix("sha256:") {
            let ok = hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit());
            if ok {
                return Some(AudioRef::Sha256(hex.to_ascii_lowercase()));
            }
            self.error(
                v.span().start,
                format!("`{key}` \"sha256:...\" must be followed by 64 hexadecimal digits"),
            );
            return None;
        }
        if s.trim().is_empty() {
            self.error(
                v.span().start,
                format!("`{key}` is empty: give a file path or \"sha256:<hex>\""),
            );
            return None;
        }
        Some(AudioRef::Path(base_dir.join(s)))
    }

    fn at(&mut self, v: &Value<'_>) -> Option<Recurrence> {
        let DeValue::Datetime(dt) = v.get_ref() else {
            let hint = "write a date and time without quotes, such as at = 2027-09-02T06:00:00";
            let found = v.get_ref().type_str();
            self.error(
                v.span().start,
                format!("`at` must be a date-time, found a {found}: {hint}"),
            );
            return None;
        };
        let (Some(d), Some(t)) = (dt.date, dt.time) else {
            self.error(
                v.span().start,
                "`at` needs both a date and a time, such as at = 2027-09-02T06:00:00",
            );
            return None;
        };
        let date = NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into());
        let time = NaiveTime::from_hms_nano_opt(
            t.hour.into(),
            t.minute.into(),
            t.second.unwrap_or(0).into(),
            t.nanosecond.unwrap_or(0),
        );
        let (Some(date), Some(time)) = (date, time) else {
            self.error(v.span().start, "`at` is not a real date and time");
            return None;
        };
        let naive = NaiveDateTime::new(date, time);
        match dt.offset {
            None => Some(Recurrence::AtLocal(naive)),
            Some(offset) => {
                let minutes = match offset {
                    Offset::Z => 0,
                    Offset::Custom { minutes } => i32::from(minutes),
                };
                let fixed = chrono::FixedOffset::east_opt(minutes * 60);
                match fixed.and_then(|f| f.from_local_datetime(&naive).single()) {
                    Some(instant) => Some(Recurrence::AtInstant(instant.to_utc())),
                    None => {
                        self.error(v.span().start, "`at` has an impossible UTC offset");
                        None
                    }
                }
            }
        }
    }
}

/// One line, lowercase first letter, no trailing period.
pub(super) fn tidy(message: &str) -> String {
    let joined = message.lines().map(str::trim).filter(|l| !l.is_empty()).collect::<Vec<_>>();
    let mut s = joined.join("; ");
    while s.ends_with('.') {
        s.pop();
    }
    let mut chars = s.chars();
    match chars.next() {
        Some(first) => first.to_lowercase().chain(chars).collect(),
        None => "unknown problem".to_string(),
    }
}

/// Parses "90s", "10m", "1h30m", "2h": whole numbers with units h, m, s, in that order.
pub fn parse_duration(text: &str) -> Result<Duration, &'static str> {
    let text = text.trim();
    if text.is_empty() {
        return Err("it is empty");
    }
    if !text.chars().all(|c| c.is_ascii_digit() || matches!(c, 'h' | 'm' | 's')) {
        return Err("use only digits and the units h, m and s");
    }
    let mut total: u64 = 0;
    let mut number: Option<u64> = None;
    let mut last_unit = 0;
    for c in text.chars() {
        if let Some(digit) = c.to_digit(10) {
            let n = number.unwrap_or(0);
            let n = n.checked_mul(10).and_then(|n| n.checked_add(digit.into()));
            number = Some(n.ok_or("the number is too large")?);
            continue;
        }
        let (rank, seconds) = match c {
            'h' => (1, 3600),
            'm' => (2, 60),
            's' => (3, 1),
            _ => return Err("use only digits and the units h, m and s"),
        };
        if rank <= last_unit {
            return Err("write units in the order h, m, s, each at most once");
        }
        last_unit = rank;
        let n = number.take().ok_or("a unit needs a number before it")?;
        let add = n.checked_mul(seconds).ok_or("the number is too large")?;
        total = total.checked_add(add).ok_or("the number is too large")?;
    }
    if number.is_some() {
        return Err("the last number has no unit");
    }
    if total > 7 * 24 * 3600 {
        return Err("it is longer than a week");
    }
    Ok(Duration::from_secs(total))
}

/// The known key closest to a misspelt one, when it is close enough to be a typo.
fn closest<'k>(name: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (edit_distance(name, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1; b.len() + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        prev = cur;
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("10m"), Ok(Duration::from_secs(600)));
        assert!(parse_duration("10").is_err());
        assert!(parse_duration("m").is_err());
        assert!(parse_duration("5m1h").is_err());
        assert!(parse_duration("99999999999999999999h").is_err());
        assert!(parse_duration("").is_err());
    }

    #[test]
    fn a_file_past_its_size_or_item_count_is_refused_at_the_place() {
        let item = |n: usize| {
            format!(
                "[[item]]\nid = \"i{n}\"\ntitle = \"t\"\naudio = \"a.mp3\"\nat = 2027-01-01T{:02}:{:02}:{:02}\n",
                n / 3600 % 24,
                n / 60 % 60,
                n % 60
            )
        };
        let file = |items: usize| {
            let mut text = String::from("layer = \"local\"\n");
            for n in 0..items {
                text.push_str(&item(n));
            }
            text
        };
        let at_limit = parse(&file(limits::MAX_ITEMS), "f.toml", Path::new(""));
        assert!(at_limit.schedule.is_some(), "{:?}", at_limit.diagnostics.first());
        let past = parse(&file(limits::MAX_ITEMS + 1), "f.toml", Path::new(""));
        let errors: Vec<String> = past.diagnostics.iter().map(ToString::to_string).collect();
        let line = 2 + 5 * limits::MAX_ITEMS;
        assert_eq!(
            errors,
            [format!(
                "f.toml:{line}:1: error: more than 1000 items in one file: split it into several files"
            )]
        );
        // One byte past the size limit: refused before the TOML is even read.
        let mut big = String::from("layer = \"local\"\n#");
        big.push_str(&"x".repeat(limits::MAX_SOURCE_BYTES - big.len()));
        assert!(parse(&big, "f.toml", Path::new("")).diagnostics.iter().all(|d| !d.is_error()));
        big.push('x');
        let refused = parse(&big, "f.toml", Path::new(""));
        assert!(refused.schedule.is_none());
        assert!(
            refused.diagnostics[0]
                .to_string()
                .starts_with("f.toml:1:1: error: the file has 1048577 bytes")
        );
    }

    #[test]
    fn an_item_at_its_limits_parses_and_one_past_is_refused() {
        let one = |cron: &str, title: &str, max_delay: &str| {
            let text = format!(
                "layer = \"local\"\n[[item]]\nid = \"a\"\ntitle = \"{title}\"\naudio = \"a.mp3\"\ncron = \"{cron}\"\nmax_delay = \"{max_delay}\"\n"
            );
            parse(&text, "f.toml", Path::new("")).schedule.is_some()
        };
        assert!(one("*/20 * * * * *", &"t".repeat(200), "24h"));
        assert!(!one("*/15 * * * * *", "t", "24h"), "5760 plays a day");
        assert!(!one("*/5 * * * *", &"t".repeat(201), "24h"));
        assert!(!one("*/5 * * * *", "t", "24h1m"));
        assert!(!one("*/5 * * * *", "t\\u001b[2J", "1m"), "an escape in a title");
    }

    #[test]
    fn columns_count_characters_not_bytes() {
        let src = "a = \"Bản tin\"\nbb = 1";
        let idx = LineIndex::new(src);
        assert_eq!(idx.pos(src, 0), Pos { line: 1, column: 1 });
        let after = src.find("\"\n").unwrap_or(0) + 1;
        assert_eq!(idx.pos(src, after), Pos { line: 1, column: 14 });
        assert_eq!(idx.pos(src, src.len()), Pos { line: 2, column: 7 });
    }

    #[test]
    fn typo_suggestions() {
        assert_eq!(closest("max_dealy", ITEM_KEYS), Some("max_delay"));
        assert_eq!(closest("tittle", ITEM_KEYS), Some("title"));
        assert_eq!(closest("colour", ITEM_KEYS), None);
    }
}
