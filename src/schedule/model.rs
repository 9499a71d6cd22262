//! The schedule model: what a parsed schedule file means, independent of its TOML.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Which programme layer a schedule belongs to. At equal priority, provincial wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Layer {
    Local,
    Provincial,
}

/// How urgently an item must air. Ordered: a higher priority pre-empts a lower one.
/// `Emergency` is never written in a schedule file; only pushed bulletins carry it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Priority {
    Normal,
    Priority,
    Emergency,
}

/// Where an item's audio comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum AudioRef {
    /// A file path, already resolved against the schedule file's directory.
    Path(PathBuf),
    /// Content address: lowercase hex sha256 of the file's bytes.
    Sha256(String),
    /// A live HTTP/Icecast stream relayed for the item's `duration` (`stream = "…"`).
    Stream(StreamRef),
}

/// A stream to relay: where it is, how long the slot lasts, and what plays while the
/// stream is down.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct StreamRef {
    /// `http://` or `https://`, at most [`limits::MAX_STREAM_URL_BYTES`].
    ///
    /// [`limits::MAX_STREAM_URL_BYTES`]: super::limits::MAX_STREAM_URL_BYTES
    pub url: String,
    /// The slot's length: the relay ends this long after its planned instant.
    pub duration: Duration,
    /// Played (from its start, looped) while the stream is down; silence without one.
    pub fallback: Option<Box<AudioRef>>,
}

impl AudioRef {
    /// The file this reference plays from: itself, or a stream's fallback.
    pub fn file(&self) -> Option<&AudioRef> {
        match self {
            AudioRef::Path(_) | AudioRef::Sha256(_) => Some(self),
            AudioRef::Stream(s) => s.fallback.as_deref(),
        }
    }
}

/// The host of an `http(s)://` URL (lowercase, without port or user), if it has one:
/// what central's `relay_hosts` allow-list is checked against.
pub fn url_host(url: &str) -> Option<String> {
    let rest = url.strip_prefix("https://").or_else(|| url.strip_prefix("http://"))?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let host_port = authority.rsplit('@').next()?;
    let host = if let Some(v6) = host_port.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        host_port.split(':').next()?
    };
    (!host.is_empty()).then(|| host.to_ascii_lowercase())
}

/// One planned play of one item: the unit the station arms, the ledger records and the
/// compliance report counts. Everything needed to play and to judge it is here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Occurrence {
    /// The item's id, unique within its schedule file.
    pub item_id: String,
    pub title: String,
    pub layer: Layer,
    pub priority: Priority,
    /// The instant the first sample must reach the speaker.
    pub planned: DateTime<Utc>,
    /// The schedule file's time zone, for showing `planned` as local time.
    pub timezone: Tz,
    pub audio: AudioRef,
    /// A later start than `planned + max_delay` counts as missed.
    pub max_delay: Duration,
    /// Declared duration (`duration = "15m"`), used for overlap checks when the audio's
    /// own length is not known.
    pub duration: Option<Duration>,
    /// Gain to apply when playing, in dB (0 unless the item or central says otherwise).
    pub gain_db: f32,
}

/// How bad a diagnostic is: errors reject the file, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Warning,
    Error,
}

/// One problem in a schedule file, located by 1-based line and column. Displayed as
/// `file:line:column: error|warning: message`, the form staff and editors understand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Diagnostic {
    /// The file name as the user gave it.
    pub origin: String,
    pub line: usize,
    pub column: usize,
    pub severity: Severity,
    pub message: String,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let severity = match self.severity {
            Severity::Warning => "warning",
            Severity::Error => "error",
        };
        write!(f, "{}:{}:{}: {}: {}", self.origin, self.line, self.column, severity, self.message)
    }
}

/// Validity window and holidays of an item, in the file's time zone.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Validity {
    pub from: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
    pub skip: Vec<NaiveDate>,
}

/// A 1-based line and column (in characters) inside a schedule file, kept on parsed
/// items so that later checks (missing audio, overlaps) can point at the right place.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Pos {
    pub line: usize,
    pub column: usize,
}

/// When an item plays.
#[derive(Debug, Clone)]
pub enum Recurrence {
    /// A crontab expression (`expr` as written), in the file's time zone. Day-of-month
    /// and weekday follow POSIX cron: when both are restricted, either one matching is
    /// enough.
    Cron(CronSpec),
    /// A one-off play at a wall-clock time in the file's time zone.
    AtLocal(NaiveDateTime),
    /// A one-off play at an absolute instant (`at` written with an offset or `Z`).
    AtInstant(DateTime<Utc>),
}

/// A parsed cron expression, split the way expansion uses it: which days (croner's
/// matchers) and which times of day. Both halves are shared between the items of a file
/// that have the same date fields or the same time fields.
#[derive(Debug, Clone)]
pub struct CronSpec {
    /// The expression as written in the file.
    pub expr: String,
    /// croner's parse of the expression; only its date fields (day of month, month,
    /// weekday, year) are used: the time fields may be left at 00:00:00.
    pub days: Arc<croner::Cron>,
    /// The matching times of day, in seconds from midnight, ascending, never empty.
    pub times: Arc<[u32]>,
}

/// One programme item of a schedule file, fully validated.
#[derive(Debug, Clone)]
pub struct Item {
    /// Unique within its file; letters, digits, `-` and `_`.
    pub id: String,
    pub title: String,
    pub audio: AudioRef,
    /// `Normal` or `Priority`; never `Emergency`.
    pub priority: Priority,
    pub recurrence: Recurrence,
    pub validity: Validity,
    /// A later start than planned + `max_delay` counts as missed (default 5 minutes).
    pub max_delay: Duration,
    /// Declared length, used for overlap checks when the audio's own length is unknown.
    pub duration: Option<Duration>,
    pub gain_db: f32,
    /// Where the item's `[[item]]` header (or inline table) starts.
    pub pos: Pos,
    /// Where the item's `audio` value is written.
    pub audio_pos: Pos,
}

/// A parsed, error-free schedule file.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The file name as the user gave it; used in diagnostics.
    pub origin: String,
    pub layer: Layer,
    pub timezone: Tz,
    pub items: Vec<Item>,
}

/// The result of [`parse`](super::parse): a schedule only when no diagnostic is an
/// error, and every diagnostic found (errors and warnings), sorted by position.
#[derive(Debug, Clone)]
pub struct Parsed {
    pub schedule: Option<Schedule>,
    pub diagnostics: Vec<Diagnostic>,
    /// Every audio reference that parsed, with where it is written, even when other
    /// keys have errors: lets [`check_files`](super::check_files) report a missing
    /// file alongside everything else.
    pub audio: Vec<(AudioRef, Pos)>,
}

impl Diagnostic {
    /// An error at `pos` in `origin`.
    pub fn error(origin: &str, pos: Pos, message: impl Into<String>) -> Self {
        Self::new(origin, pos, Severity::Error, message)
    }

    /// A warning at `pos` in `origin`.
    pub fn warning(origin: &str, pos: Pos, message: impl Into<String>) -> Self {
        Self::new(origin, pos, Severity::Warning, message)
    }

    fn new(origin: &str, pos: Pos, severity: Severity, message: impl Into<String>) -> Self {
        Diagnostic {
            origin: origin.to_string(),
            line: pos.line,
            column: pos.column,
            severity,
            message: message.into(),
        }
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}
