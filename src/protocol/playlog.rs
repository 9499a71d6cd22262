//! The playlog: what a station's ledger records about each planned item ([`Entry`],
//! [`Outcome`], [`Reason`]), the hash chain that proves it ([`Record`], [`chain_hash`]),
//! and how records travel and are read back. Serde only, no IO: the station's ledger and
//! central's store compute the same hashes from these types.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::bounds;
use crate::schedule::{Layer, Priority};

/// How a planned item ended. Every planned item ends as exactly one of these.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Outcome {
    /// Started on time (within a few milliseconds) and played to the end.
    Played,
    /// Started after its planned instant but within its `max_delay`, and played to the end.
    Late,
    /// Started, then faded out for something more urgent or for shutdown (`reason`).
    Preempted,
    /// Could not be played or stopped abnormally (`reason`: audio missing, corrupt, sink error,
    /// interrupted).
    Failed,
    /// Never started (`reason`: yielded to another item, too late, station was not running).
    Missed,
    /// A stream relayed for its slot (a scheduled `stream` item) or a live broadcast
    /// aired to its end: [`Entry::relay`] says how much came from the stream and how
    /// much was fallback or silence. Stations older than this outcome never write it.
    Relayed,
}

impl Outcome {
    pub const ALL: [Outcome; 6] = [
        Outcome::Played,
        Outcome::Late,
        Outcome::Preempted,
        Outcome::Failed,
        Outcome::Missed,
        Outcome::Relayed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Played => "played",
            Outcome::Late => "late",
            Outcome::Preempted => "preempted",
            Outcome::Failed => "failed",
            Outcome::Missed => "missed",
            Outcome::Relayed => "relayed",
        }
    }
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Outcome {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == s).ok_or_else(|| {
            format!(
                "unknown outcome {s:?}: choose one of {}",
                Outcome::ALL.map(|o| o.as_str()).join(", ")
            )
        })
    }
}

/// Proof-of-play levels measured on what actually reached the sink.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Levels {
    pub peak_dbfs: f64,
    pub rms_dbfs: f64,
    /// True when the level never rose above the station's silence threshold.
    pub silent: bool,
}

/// What came from a stream: a relayed programme's or a live broadcast's proof of play.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct RelayFacts {
    /// Seconds of the stream's own audio that reached the speaker.
    pub relayed_secs: f64,
    /// Stretches where the stream had nothing and the fallback (or silence) played.
    pub dropouts: u32,
    /// Their total length, seconds.
    pub dropout_secs: f64,
    /// The longest one, seconds.
    pub longest_dropout_secs: f64,
}

impl RelayFacts {
    /// `relayed 58.0 s, 1 drop-out (5.0 s)` — for logs and tables.
    pub fn summary(&self) -> String {
        let drops = match self.dropouts {
            0 => "no drop-out".to_string(),
            1 => format!("1 drop-out ({:.1} s)", self.dropout_secs),
            n => format!(
                "{n} drop-outs ({:.1} s, longest {:.1} s)",
                self.dropout_secs, self.longest_dropout_secs
            ),
        };
        format!("relayed {:.1} s, {drops}", self.relayed_secs)
    }
}

/// The facts about one planned item's end, as the daemon knows them. The ledger adds
/// the sequence number and the chain hashes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub item_id: String,
    pub title: String,
    pub layer: Layer,
    pub priority: Priority,
    /// When the first sample was due at the speaker.
    pub planned: DateTime<Utc>,
    pub outcome: Outcome,
    /// When the first sample reached the sink (absent when it never started).
    pub started: Option<DateTime<Utc>>,
    /// When playing stopped (absent when it never started).
    pub ended: Option<DateTime<Utc>>,
    /// `started - planned`, in milliseconds.
    pub delay_ms: Option<i64>,
    /// Seconds of audio that reached the sink.
    pub played_secs: Option<f64>,
    /// Why it was pre-empted, failed or missed, in words (empty for played/late). Set it
    /// with [`Entry::set_reason`] and read it with [`Entry::reason`]: the text is for
    /// people, [`Entry::reason_code`] for programs.
    pub reason: Option<String>,
    /// sha256 (lowercase hex) of the audio file that was (or should have been) played.
    pub audio_sha256: Option<String>,
    pub levels: Option<Levels>,
    /// The [`Reason::code`] of `reason`. Absent in records written before codes existed
    /// (their text is classified when read) — and then absent from the hashed JSON too,
    /// so their chain hashes stay valid.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
    /// For a relayed stream or a live broadcast: what came from the stream and its
    /// drop-outs. Absent (and then absent from the hashed JSON) for everything else, so
    /// every older record hashes exactly as before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relay: Option<RelayFacts>,
}

/// Why a planned item did not simply play: the meaning of an [`Entry`]'s reason, as a
/// type. On the wire and in the hash chain it is today's text (`reason`) plus a stable
/// code (`reason_code`), so the report classifies by code while people read the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reason {
    /// The province cancelled the bulletin.
    Cancelled,
    /// Faded out because the station was shutting down (SIGTERM).
    Shutdown,
    /// Cut by the station stopping abruptly (kill, power cut): found at the next start.
    Interrupted,
    /// A bulletin play that could no longer start: its bulletin expired. The detail is
    /// set when a start found it expired meanwhile.
    Expired(Option<String>),
    /// Faded out for the item or bulletin with this id.
    PreemptedBy(String),
    /// Another item (this id) held the loudspeaker until its `max_delay` passed.
    YieldedTo(String),
    /// Could not start within its `max_delay` (nothing else was playing).
    TooLate,
    /// The station was not running when it was due (a summary record says how many
    /// plays and when).
    NotRunning(Option<String>),
    /// The station stopped (its last sign of life was after the planned instant) before
    /// the item could start.
    StoppedBeforeStart,
    /// The station's clock jumped over it; the text says by how much (for a summary
    /// record, how many plays were not attempted and between which instants).
    ClockStepped(String),
    /// The audio, the sound output or a bulletin's download failed: what happened.
    Failure(String),
}

impl Reason {
    /// The stable code stored beside the text.
    pub fn code(&self) -> &'static str {
        match self {
            Reason::Cancelled => "cancelled",
            Reason::Shutdown => "shutdown",
            Reason::Interrupted => "interrupted",
            Reason::Expired(_) => "expired",
            Reason::PreemptedBy(_) => "preempted-by",
            Reason::YieldedTo(_) => "yielded-to",
            Reason::TooLate => "too-late",
            Reason::NotRunning(_) => "not-running",
            Reason::StoppedBeforeStart => "stopped-before-start",
            Reason::ClockStepped(_) => "clock-stepped",
            Reason::Failure(_) => "failure",
        }
    }

    /// Builds a reason from what was stored: its code and text, or — for a record
    /// written before codes existed — its text alone, read the way those versions wrote
    /// it. The one place a reason's text is interpreted.
    pub fn from_stored(code: Option<&str>, text: &str) -> Reason {
        let after = |prefix: &str| text.strip_prefix(prefix).unwrap_or(text).to_string();
        let by_code = match code {
            Some("cancelled") => Some(Reason::Cancelled),
            Some("shutdown") => Some(Reason::Shutdown),
            Some("interrupted") => Some(Reason::Interrupted),
            Some("expired") if text == EXPIRED_TEXT => Some(Reason::Expired(None)),
            Some("expired") => Some(Reason::Expired(Some(text.to_string()))),
            Some("preempted-by") => Some(Reason::PreemptedBy(after(PREEMPTED_BY))),
            Some("yielded-to") => Some(Reason::YieldedTo(after(YIELDED_TO))),
            Some("too-late") => Some(Reason::TooLate),
            Some("not-running") if text == NOT_RUNNING_TEXT => Some(Reason::NotRunning(None)),
            Some("not-running") => Some(Reason::NotRunning(Some(text.to_string()))),
            Some("stopped-before-start") => Some(Reason::StoppedBeforeStart),
            Some("clock-stepped") => Some(Reason::ClockStepped(text.to_string())),
            Some("failure") => Some(Reason::Failure(text.to_string())),
            _ => None,
        };
        if let Some(reason) = by_code {
            return reason;
        }
        match text {
            CANCELLED_TEXT => Reason::Cancelled,
            SHUTDOWN_TEXT => Reason::Shutdown,
            INTERRUPTED_TEXT => Reason::Interrupted,
            EXPIRED_TEXT => Reason::Expired(None),
            TOO_LATE_TEXT => Reason::TooLate,
            NOT_RUNNING_TEXT => Reason::NotRunning(None),
            STOPPED_BEFORE_START_TEXT => Reason::StoppedBeforeStart,
            t if t.starts_with(PREEMPTED_BY) => Reason::PreemptedBy(after(PREEMPTED_BY)),
            t if t.starts_with(YIELDED_TO) => Reason::YieldedTo(after(YIELDED_TO)),
            // A bulletin found expired: at a start, or (a delivery report of an older
            // station) when it arrived: "bulletin b-… expired at … (now …): refused".
            t if t.starts_with(EXPIRED_WHILE_STOPPED) || t.contains(" expired at ") => {
                Reason::Expired(Some(t.to_string()))
            }
            t if t.starts_with(CLOCK_STEPPED) || t.contains(&format!(": {CLOCK_STEPPED}")) => {
                Reason::ClockStepped(t.to_string())
            }
            t if t.ends_with(&format!(": {NOT_RUNNING_TEXT}")) => {
                Reason::NotRunning(Some(t.to_string()))
            }
            t => Reason::Failure(t.to_string()),
        }
    }
}

const CANCELLED_TEXT: &str = "cancelled by the province";
const SHUTDOWN_TEXT: &str = "station shutdown";
const INTERRUPTED_TEXT: &str = "interrupted: station stopped";
const EXPIRED_TEXT: &str = "expired before it could play";
const TOO_LATE_TEXT: &str = "could not start within max_delay";
const NOT_RUNNING_TEXT: &str = "station was not running";
const STOPPED_BEFORE_START_TEXT: &str = "station stopped before it could start";
const PREEMPTED_BY: &str = "pre-empted by ";
const YIELDED_TO: &str = "yielded to ";
/// How the text of a bulletin found expired at a start begins.
pub const EXPIRED_WHILE_STOPPED: &str = "expired while the station was stopped";
/// How the text of a clock step's miss begins ("clock stepped forward by 1d 0h 0m 0s").
pub const CLOCK_STEPPED: &str = "clock stepped forward by";

impl Reason {
    /// A summary of `count`-style plays that were not recorded one by one (`detail`
    /// says how many and when) for the same reason as `self`.
    pub fn summary(&self, detail: String) -> Reason {
        match self {
            Reason::ClockStepped(_) => Reason::ClockStepped(detail),
            Reason::NotRunning(_) | Reason::StoppedBeforeStart => Reason::NotRunning(Some(detail)),
            _ => Reason::Failure(detail),
        }
    }
}

impl std::fmt::Display for Reason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reason::Cancelled => f.write_str(CANCELLED_TEXT),
            Reason::Shutdown => f.write_str(SHUTDOWN_TEXT),
            Reason::Interrupted => f.write_str(INTERRUPTED_TEXT),
            Reason::Expired(None) => f.write_str(EXPIRED_TEXT),
            Reason::Expired(Some(text))
            | Reason::NotRunning(Some(text))
            | Reason::ClockStepped(text)
            | Reason::Failure(text) => f.write_str(text),
            Reason::PreemptedBy(id) => write!(f, "{PREEMPTED_BY}{id}"),
            Reason::YieldedTo(id) => write!(f, "{YIELDED_TO}{id}"),
            Reason::TooLate => f.write_str(TOO_LATE_TEXT),
            Reason::NotRunning(None) => f.write_str(NOT_RUNNING_TEXT),
            Reason::StoppedBeforeStart => f.write_str(STOPPED_BEFORE_START_TEXT),
        }
    }
}

impl Entry {
    /// An entry for an item that never started.
    pub fn missed(
        item_id: &str,
        title: &str,
        layer: Layer,
        priority: Priority,
        planned: DateTime<Utc>,
        reason: Reason,
    ) -> Self {
        Self {
            item_id: item_id.to_string(),
            title: title.to_string(),
            layer,
            priority,
            planned,
            outcome: Outcome::Missed,
            started: None,
            ended: None,
            delay_ms: None,
            played_secs: None,
            reason: Some(reason.to_string()),
            audio_sha256: None,
            levels: None,
            reason_code: Some(reason.code().to_string()),
            relay: None,
        }
    }

    /// Why it did not simply play, as a type (see [`Reason::from_stored`]).
    pub fn reason(&self) -> Option<Reason> {
        self.reason.as_deref().map(|text| Reason::from_stored(self.reason_code.as_deref(), text))
    }

    /// Sets the reason: its text and its code.
    pub fn set_reason(&mut self, reason: Option<Reason>) {
        self.reason_code = reason.as_ref().map(|r| r.code().to_string());
        self.reason = reason.map(|r| r.to_string());
    }

    /// This entry with `reason`.
    pub fn with_reason(mut self, reason: Reason) -> Self {
        self.set_reason(Some(reason));
        self
    }

    /// Rounds instants to microseconds, the precision the ledger stores, so the hash
    /// computed before storing equals the one recomputed after reading back.
    pub fn normalized(mut self) -> Self {
        self.planned = self.planned.trunc_subsecs(6);
        self.started = self.started.map(|t| t.trunc_subsecs(6));
        self.ended = self.ended.map(|t| t.trunc_subsecs(6));
        self
    }
}

/// One ledger record: an [`Entry`] placed in the station's tamper-evident chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub station: String,
    /// 1, 2, 3… per station, without gaps.
    pub seq: u64,
    #[serde(flatten)]
    pub entry: Entry,
    /// `hash` of record `seq - 1` ([`GENESIS`] for the first).
    pub prev_hash: String,
    /// sha256 over `prev_hash` and this record's content (see [`chain_hash`]).
    pub hash: String,
    /// Central has acknowledged this record. Not part of the hash: it changes later.
    pub acked: bool,
}

/// The `prev_hash` of a station's first record.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// The chain hash: sha256 of `prev_hash`, a newline, and the canonical JSON of
/// `[station, seq, entry]`. Central recomputes it to check what it receives.
pub fn chain_hash(prev_hash: &str, station: &str, seq: u64, entry: &Entry) -> String {
    let canonical = serde_json::to_string(&(station, seq, entry)).unwrap_or_default();
    let mut hasher = Sha256::new();
    hasher.update(prev_hash.as_bytes());
    hasher.update(b"\n");
    hasher.update(canonical.as_bytes());
    hex::encode(hasher.finalize())
}

impl Record {
    /// `entries` as `station`'s records `first_seq`, `first_seq + 1`, …, each linked to
    /// the one before and the first to `prev_hash` (`GENESIS` for a station's first): the
    /// chain a ledger builds one append at a time, built at once (tests, benchmarks,
    /// imports). Entries past `u64::MAX` are left out.
    pub fn chain(
        station: &str,
        first_seq: u64,
        prev_hash: &str,
        entries: impl IntoIterator<Item = Entry>,
    ) -> Vec<Record> {
        let mut prev = prev_hash.to_string();
        // Stops at the last sequence number rather than wrapping.
        (first_seq..=u64::MAX)
            .zip(entries)
            .map(|(seq, entry)| {
                let hash = chain_hash(&prev, station, seq, &entry);
                Record {
                    station: station.into(),
                    seq,
                    entry,
                    prev_hash: std::mem::replace(&mut prev, hash.clone()),
                    hash,
                    acked: false,
                }
            })
            .collect()
    }

    /// Whether `hash` matches the content (ignores the link to the previous record).
    pub fn hash_is_valid(&self) -> bool {
        chain_hash(&self.prev_hash, &self.station, self.seq, &self.entry) == self.hash
    }
}

/// Instants are stored as fixed-width UTC text, so text order is time order.
pub fn time_text(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Station → central: ledger records in sequence order, sent as soon as they are
/// written and again until acknowledged. Central stores them idempotently on
/// `(station, seq)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaylogBatch {
    pub records: Vec<Record>,
}

/// Central → station: everything up to `acked_through` (contiguous from 1) is stored
/// durably; the station may mark those records acknowledged. Records after a gap are
/// stored but not acknowledged until the gap is filled, so the station sends them again.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaylogAck {
    pub acked_through: u64,
    /// Records of this batch stored for the first time.
    pub stored: u64,
    /// Records of this batch central already held.
    pub duplicates: u64,
}

/// Where the next page of `GET /api/v1/playlog` starts: after this record in the
/// log's order (planned time, station, sequence). Central sends it in the
/// [`PLAYLOG_NEXT_HEADER`] header when a page is full; the client passes it back as
/// `after`. Text form: `PLANNED|STATION|SEQ`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlaylogCursor {
    pub planned: DateTime<Utc>,
    pub station: String,
    pub seq: u64,
}

/// The response header that carries the next page's [`PlaylogCursor`].
pub const PLAYLOG_NEXT_HEADER: &str = super::api::header::PLAYLOG_NEXT;
/// Records per playlog page when the request does not say.
pub const PLAYLOG_PAGE_DEFAULT: u64 = 1000;
/// Most records one playlog page may ask for.
pub const PLAYLOG_PAGE_MAX: u64 = 10_000;

impl std::fmt::Display for PlaylogCursor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let planned = self.planned.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        write!(f, "{planned}|{}|{}", self.station, self.seq)
    }
}

impl std::str::FromStr for PlaylogCursor {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("cursor {:?} is not PLANNED|STATION|SEQ", bounds::clip(text));
        let mut parts = text.splitn(3, '|');
        let (Some(planned), Some(station), Some(seq)) = (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let planned = DateTime::parse_from_rfc3339(planned).map_err(|_| bad())?.to_utc();
        let seq: u64 = seq.parse().map_err(|_| bad())?;
        if station.is_empty() || station.len() > 64 || seq > bounds::MAX_EVENT_SEQ {
            return Err(bad());
        }
        Ok(Self { planned, station: station.to_string(), seq })
    }
}

/// A problem central found in a station's hash chain.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChainIssue {
    pub seq: u64,
    /// `break` (hash or link does not match), `conflict` (a second, different record
    /// under a sequence already stored), `gap` (records missing before this one).
    pub kind: String,
    pub detail: String,
}

/// What central holds of one station's playlog.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct PlaylogSummary {
    /// Every record up to here is stored (contiguous from 1).
    pub acked_through: u64,
    /// Highest sequence stored; above `acked_through` means a gap.
    pub max_seq: u64,
    pub records: u64,
    pub last_received: Option<DateTime<Utc>>,
    pub issues: Vec<ChainIssue>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::schedule::{Layer, Priority};

    fn entry(n: i64) -> Entry {
        Entry::missed(
            &format!("item-{n}"),
            "Bản tin",
            Layer::Provincial,
            Priority::Normal,
            DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(n),
            Reason::NotRunning(None),
        )
    }

    #[test]
    fn a_chain_links_each_record_to_the_one_before() {
        let records = Record::chain("tri-ton", 5, GENESIS, (0..3).map(entry));
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![5, 6, 7]);
        assert_eq!(records[0].prev_hash, GENESIS);
        for pair in records.windows(2) {
            assert_eq!(pair[1].prev_hash, pair[0].hash);
        }
        assert!(records.iter().all(Record::hash_is_valid));
    }

    #[test]
    fn a_chain_stops_at_the_last_sequence_number_instead_of_wrapping() {
        let records = Record::chain("tri-ton", u64::MAX - 1, GENESIS, (0..5).map(entry));
        assert_eq!(records.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![u64::MAX - 1, u64::MAX]);
    }
}
