//! The wire format shared by station, central and the command line: serde types only.
//!
//! Nothing here does IO, and no other module derives a wire type of its own. Signed
//! documents travel as a [`SignedEnvelope`]: the exact JSON bytes that were signed plus
//! the signature, so the verifier checks the very bytes it then parses and no
//! canonicalisation can differ between signer and verifier.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::schedule::Layer;

/// Version of the HTTP API; every path starts with `/api/v1`.
pub const API_PREFIX: &str = "/api/v1";

/// What a signature covers: the signed message is `kind`, a zero byte, then the payload
/// bytes. A manifest signature can therefore never be replayed as a bulletin's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentKind {
    Manifest,
    Bulletin,
    /// The province's order to stop a bulletin (its own tag: a bulletin's signature can
    /// never pass as a cancel's, nor the other way round).
    BulletinCancel,
}

impl DocumentKind {
    /// The domain-separation tag placed before the payload when signing.
    pub fn tag(self) -> &'static str {
        match self {
            DocumentKind::Manifest => "loa-manifest-v1",
            DocumentKind::Bulletin => "loa-bulletin-v1",
            DocumentKind::BulletinCancel => "loa-bulletin-cancel-v1",
        }
    }
}

/// A signed document as it travels: payload bytes (base64 of the exact JSON that was
/// signed) and an Ed25519 signature (hex) over `kind.tag() || 0x00 || payload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedEnvelope {
    pub kind: DocumentKind,
    /// Standard base64 of the signed JSON bytes.
    pub payload: String,
    /// Hex of the 64-byte Ed25519 signature.
    pub signature: String,
}

/// Everything one station needs to play its programmes, signed by the province.
/// Versions grow by one each time central issues a new manifest for this station; a
/// station refuses any version lower than the last one it accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub station_id: String,
    pub version: u64,
    pub issued_at: DateTime<Utc>,
    /// A manifest fetched after this instant is refused (it may be a stale replay).
    pub valid_until: DateTime<Utc>,
    pub schedules: Vec<ManifestSchedule>,
    /// Every audio file the schedules need, once each.
    pub audio: Vec<ManifestAudio>,
}

/// One schedule file as staff wrote it: its TOML text, parsed at the station with the
/// same parser central used to check it, so diagnostics point at the original lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestSchedule {
    /// The file name it was loaded from (e.g. `provincial.toml`), used in diagnostics.
    pub origin: String,
    pub layer: Layer,
    /// The schedule file's text, unchanged.
    pub source: String,
    /// Each `audio = "..."` value exactly as written in the file → lowercase hex sha256.
    /// `sha256:<hex>` values need no entry.
    pub audio: BTreeMap<String, String>,
}

impl ManifestSchedule {
    /// The content address for an `audio = "..."` value as written in the file.
    pub fn audio_sha256<'a>(&'a self, written: &'a str) -> Option<&'a str> {
        if let Some(hex) = written.strip_prefix("sha256:") {
            return Some(hex);
        }
        self.audio.get(written).map(String::as_str)
    }
}

/// One audio file a station must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestAudio {
    /// Lowercase hex sha256 of the file's bytes: its name in every cache.
    pub sha256: String,
    pub size: u64,
    /// Gain in dB that brings the file to the province's loudness target.
    pub gain_db: f32,
    /// The first planned play within central's planning horizon, if any: downloads go
    /// earliest-needed first.
    pub earliest_needed: Option<DateTime<Utc>>,
}

/// Where a schedule goes when loaded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "kind", content = "value")]
pub enum Target {
    All,
    Stations(Vec<String>),
    District(String),
}

impl std::str::FromStr for Target {
    type Err = String;

    /// Parses `all`, `district:NAME` or a comma-separated list of station ids.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text == "all" {
            return Ok(Target::All);
        }
        if let Some(name) = text.strip_prefix("district:") {
            if name.trim().is_empty() {
                return Err("district name is empty: write --to district:NAME".into());
            }
            return Ok(Target::District(name.trim().to_string()));
        }
        let ids: Vec<String> =
            text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(String::from).collect();
        if ids.is_empty() {
            return Err("no target: write --to all, --to ID,ID or --to district:NAME".into());
        }
        Ok(Target::Stations(ids))
    }
}

/// Operator → central: assign a schedule file to stations.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadScheduleRequest {
    /// The file name as the operator gave it, for diagnostics.
    pub origin: String,
    pub source: String,
    /// `audio = "..."` values as written → sha256 (the CLI uploads missing files first).
    pub audio: BTreeMap<String, String>,
    pub to: Target,
}

/// Central → operator: what a successful load changed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LoadScheduleResponse {
    pub schedule_id: i64,
    /// Station id → its new manifest version.
    pub stations: BTreeMap<String, u64>,
}

/// Central → operator: an uploaded audio file as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AudioInfo {
    pub sha256: String,
    pub title: String,
    pub size: u64,
    pub duration_ms: u64,
    /// Integrated loudness (EBU R128), LUFS.
    pub loudness_lufs: f64,
    /// Gain towards central's target, dB.
    pub gain_db: f32,
    /// What is wrong with a damaged file stored anyway (`loa audio add --accept-damaged`),
    /// as `loa audio probe` notes it: `truncated`, `3 corrupt packets skipped`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damage: Option<String>,
}

/// Every error body central sends: one message, plus file:line:column diagnostics when
/// a schedule was refused.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub error: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<String>,
}

/// Station → central, every minute or so: how the station is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Last manifest version the station verified and holds.
    pub manifest_version: Option<u64>,
    /// Station clock minus central clock, milliseconds (positive: station is ahead).
    pub clock_offset_ms: Option<i64>,
    /// Everything needed up to this instant is cached.
    pub ready_until: Option<DateTime<Utc>>,
    /// Bytes of audio still to download.
    pub missing_bytes: u64,
    pub disk_free_bytes: Option<u64>,
    /// Item id or bulletin id now on air, if any.
    pub now_playing: Option<String>,
    /// `ok`, or what is wrong with the sound output.
    pub sink_health: String,
    /// The station's own clock when it sent this.
    pub sent_at: DateTime<Utc>,
    /// The latest step of the station's wall clock, until it has run an hour without
    /// one (absent from older stations).
    #[serde(default)]
    pub clock_step: Option<ClockStepReport>,
    /// What `timedatectl` says: is the system clock synchronised (NTP)? Absent where it
    /// cannot tell.
    #[serde(default)]
    pub clock_synchronized: Option<bool>,
    /// The station plans by central's time, its own clock being more than 5 s off.
    #[serde(default)]
    pub central_time: bool,
    /// The sound output failed at `since` and has not played since (being reopened).
    #[serde(default)]
    pub output_failed: Option<OutputFailure>,
}

/// A step of a station's wall clock (NTP, a person setting the date).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockStepReport {
    /// The station's clock just after the step.
    pub at: DateTime<Utc>,
    /// Positive: forward; negative: back. Milliseconds.
    pub by_ms: i64,
}

/// Why a station's sound output is down, since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFailure {
    pub since: DateTime<Utc>,
    /// At most [`OutputFailure::MAX_REASON`] characters.
    pub reason: String,
}

impl OutputFailure {
    /// The longest reason a station sends (longer ones are cut).
    pub const MAX_REASON: usize = 300;

    pub fn new(since: DateTime<Utc>, reason: &str) -> Self {
        Self { since, reason: reason.chars().take(Self::MAX_REASON).collect() }
    }
}

impl Heartbeat {
    /// The station's free texts made safe to store and show: control characters
    /// replaced, each cut at [`bounds::MAX_REASON_CHARS`].
    pub fn sanitise(&mut self) {
        bounds::sanitise(&mut self.now_playing);
        let mut health = Some(std::mem::take(&mut self.sink_health));
        bounds::sanitise(&mut health);
        self.sink_health = health.unwrap_or_default();
        if let Some(failure) = self.output_failed.as_mut() {
            let mut reason = Some(std::mem::take(&mut failure.reason));
            bounds::sanitise(&mut reason);
            failure.reason =
                reason.unwrap_or_default().chars().take(OutputFailure::MAX_REASON).collect();
        }
    }
}

/// Central → station: the heartbeat was stored; `server_time` lets the station estimate
/// its clock offset (midpoint of send and receive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    pub server_time: DateTime<Utc>,
}

/// One line of `loa status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationStatus {
    pub id: String,
    pub name: String,
    pub district: String,
    /// Latest manifest version central issued for this station.
    pub issued_version: Option<u64>,
    pub last_seen: Option<DateTime<Utc>>,
    pub heartbeat: Option<Heartbeat>,
    /// What central holds of this station's playlog (absent from older servers).
    #[serde(default)]
    pub playlog: PlaylogSummary,
}

/// Central → operator: the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetStatus {
    pub server_time: DateTime<Utc>,
    pub stations: Vec<StationStatus>,
}

/// Station → central: ledger records in sequence order, sent as soon as they are
/// written and again until acknowledged. Central stores them idempotently on
/// `(station, seq)`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlaylogBatch {
    pub records: Vec<crate::ledger::Record>,
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
pub const PLAYLOG_NEXT_HEADER: &str = "x-loa-next-cursor";
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

/// What one planned provincial item came to, in `loa report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportStatus {
    /// Played, on time.
    Aired,
    Late,
    Preempted,
    Failed,
    Missed,
    /// Its deadline passed and central has no record yet (station offline or behind).
    NotReported,
    /// Its deadline has not passed yet.
    Upcoming,
}

impl ReportStatus {
    pub const ALL: [ReportStatus; 7] = [
        ReportStatus::Aired,
        ReportStatus::Late,
        ReportStatus::Preempted,
        ReportStatus::Failed,
        ReportStatus::Missed,
        ReportStatus::NotReported,
        ReportStatus::Upcoming,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Aired => "aired",
            ReportStatus::Late => "late",
            ReportStatus::Preempted => "preempted",
            ReportStatus::Failed => "failed",
            ReportStatus::Missed => "missed",
            ReportStatus::NotReported => "not-reported",
            ReportStatus::Upcoming => "upcoming",
        }
    }
}

/// One planned provincial item at one station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    pub station: String,
    pub district: String,
    pub item_id: String,
    pub title: String,
    pub planned: DateTime<Utc>,
    pub status: ReportStatus,
    pub delay_ms: Option<i64>,
    /// Why (pre-empted, failed, missed), or "station last seen …" when not reported.
    pub detail: String,
}

/// Counts per status for one district.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistrictTotals {
    pub district: String,
    pub stations: u64,
    pub planned: u64,
    /// Status name → count.
    pub counts: BTreeMap<String, u64>,
}

/// `loa report DATE`: every station's planned provincial items that day, against what
/// the stations reported; then every bulletin pushed that day, per target station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyReport {
    pub date: chrono::NaiveDate,
    pub timezone: String,
    pub generated_at: DateTime<Utc>,
    pub rows: Vec<ReportRow>,
    pub districts: Vec<DistrictTotals>,
    /// One row per bulletin issued that day and target station the caller may see.
    /// Absent in reports from a central older than bulletin reporting.
    #[serde(default)]
    pub bulletins: Vec<BulletinReportRow>,
    #[serde(default)]
    pub bulletin_districts: Vec<BulletinTotals>,
}

/// What one pushed bulletin came to at one target station, in `loa report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BulletinStatus {
    /// At least one play started (how many of the planned plays: `plays_aired`).
    Aired,
    /// A `test` bulletin went through the whole chain short of airing.
    TestOk,
    /// The province cancelled it before it aired here.
    Cancelled,
    /// Refused or could not play (the reason).
    Failed,
    /// It expired before it reached the station or before it could start there.
    Expired,
    /// Not delivered, the station is offline, and it has not expired yet: it airs if the
    /// station comes back in time.
    NotReached,
    /// Still valid and the station is online, but nothing final is known yet.
    Pending,
}

impl BulletinStatus {
    pub const ALL: [BulletinStatus; 7] = [
        BulletinStatus::Aired,
        BulletinStatus::TestOk,
        BulletinStatus::Cancelled,
        BulletinStatus::Failed,
        BulletinStatus::Expired,
        BulletinStatus::NotReached,
        BulletinStatus::Pending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BulletinStatus::Aired => "aired",
            BulletinStatus::TestOk => "test-ok",
            BulletinStatus::Cancelled => "cancelled",
            BulletinStatus::Failed => "failed",
            BulletinStatus::Expired => "expired",
            BulletinStatus::NotReached => "not-reached",
            BulletinStatus::Pending => "pending",
        }
    }
}

/// One bulletin at one target station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulletinReportRow {
    pub station: String,
    pub district: String,
    pub bulletin_id: String,
    pub title: String,
    pub priority: BulletinPriority,
    /// When central pushed it.
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub status: BulletinStatus,
    /// First sample at this station minus the push, milliseconds.
    pub latency_ms: Option<i64>,
    /// Plays that started here (the first and each repeat).
    pub plays_aired: u32,
    /// Plays the bulletin asked for: 1 + repeats (0 for a `test` bulletin).
    pub plays_planned: u32,
    /// Why (failed, expired, cancelled, cut short), or "station offline since …".
    pub detail: String,
}

/// Bulletin counts per status for one district.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulletinTotals {
    pub district: String,
    /// Stations of the district targeted by at least one of the day's bulletins.
    pub stations: u64,
    /// (bulletin, station) pairs: one per row.
    pub targets: u64,
    /// Status name → count.
    pub counts: BTreeMap<String, u64>,
}

/// How urgent a pushed bulletin is: `emergency` airs at once; `test` travels the whole
/// chain (delivery, verification, download) but is never aired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BulletinPriority {
    Emergency,
    Test,
}

impl std::fmt::Display for BulletinPriority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            BulletinPriority::Emergency => "emergency",
            BulletinPriority::Test => "test",
        })
    }
}

/// A bulletin as the province signs it ([`DocumentKind::Bulletin`]). Stations act only on
/// a verified copy, only if it is `to_all` or their id is in `targets`, and never after
/// `expires_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulletinDoc {
    /// Unique, random: stations refuse an id they have seen (replay).
    pub id: String,
    pub title: String,
    /// The station ids it is for (a district is resolved at central); empty with `to_all`.
    pub targets: Vec<String>,
    /// For every station of the province (`--to all`). Then `targets` is empty in the
    /// signed document: listing every station id in every station's copy made a
    /// province-wide push cost stations² to send, parse and verify. Central keeps the
    /// resolved list (and reports on it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub to_all: bool,
    pub audio_sha256: String,
    pub audio_size: u64,
    pub gain_db: f32,
    pub priority: BulletinPriority,
    /// Extra plays after the first.
    pub repeat: u32,
    /// From the end of one play to the start of the next, seconds.
    pub interval_secs: u64,
    /// Play the attention tone first.
    pub tone: bool,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    /// The number of the event that carries this document on the stations' stream,
    /// under the signature: a station moves its resume point only to a number the
    /// province signed, so nobody on the path can make it skip events. Absent from
    /// documents signed by an older central.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_seq: Option<u64>,
}

/// The province's signed order to stop a bulletin ([`DocumentKind::BulletinCancel`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulletinCancelDoc {
    pub id: String,
    pub targets: Vec<String>,
    /// For every station of the province (`--to all`). Then `targets` is empty in the
    /// signed document: listing every station id in every station's copy made a
    /// province-wide push cost stations² to send, parse and verify. Central keeps the
    /// resolved list (and reports on it).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub to_all: bool,
    pub issued_at: DateTime<Utc>,
    /// The cancelled bulletin's expiry: after it the order has nothing left to stop.
    pub expires_at: DateTime<Utc>,
    /// As [`BulletinDoc::event_seq`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_seq: Option<u64>,
}

impl BulletinDoc {
    /// Whether the signed bulletin is addressed to `station`.
    pub fn is_for(&self, station: &str) -> bool {
        self.to_all || self.targets.iter().any(|t| t == station)
    }

    /// Checks every field against the bounds a bulletin keeps (see [`bounds`]). Central
    /// refuses a push outside them; a station refuses a signed document outside them:
    /// a signature proves who wrote a document, not that its numbers are sane, and one
    /// out-of-range interval must not crash the process that drives the loudspeakers.
    pub fn check_bounds(&self) -> Result<(), String> {
        use bounds::*;
        check_id(&self.id)?;
        check_text("title", &self.title, MAX_TITLE_CHARS)?;
        check_targets(&self.targets)?;
        if !is_sha256(&self.audio_sha256) {
            return Err(format!(
                "audio_sha256 {:?} is not 64 lowercase hex digits",
                clip(&self.audio_sha256)
            ));
        }
        if self.audio_size == 0 || self.audio_size > MAX_BULLETIN_AUDIO_BYTES {
            return Err(format!(
                "audio of {} bytes: a bulletin's audio is 1 to {MAX_BULLETIN_AUDIO_BYTES} bytes",
                self.audio_size
            ));
        }
        if !self.gain_db.is_finite() || !(MIN_GAIN_DB..=MAX_GAIN_DB).contains(&self.gain_db) {
            return Err(format!(
                "gain of {} dB is outside {MIN_GAIN_DB} to {MAX_GAIN_DB} dB",
                self.gain_db
            ));
        }
        if self.repeat > MAX_BULLETIN_REPEAT {
            return Err(format!("{} repeats: at most {MAX_BULLETIN_REPEAT}", self.repeat));
        }
        let validity = check_validity(self.issued_at, self.expires_at)?;
        if self.interval_secs > validity {
            return Err(format!(
                "an interval of {} s between plays is longer than the bulletin is valid ({validity} s)",
                self.interval_secs
            ));
        }
        Ok(())
    }
}

/// The bounds every value in a bulletin or a cancel order keeps, stated once for
/// central (which refuses to sign outside them) and stations (which refuse a signed
/// document outside them).
pub mod bounds {
    use chrono::{DateTime, Utc};

    /// Longest a bulletin may be valid: 7 days.
    pub const MAX_BULLETIN_VALIDITY_SECS: u64 = 7 * 24 * 3600;
    /// Most extra plays after the first.
    pub const MAX_BULLETIN_REPEAT: u32 = 100;
    /// Longest title, in characters.
    pub const MAX_TITLE_CHARS: usize = 200;
    /// Longest bulletin id, in bytes (ids are plain ASCII).
    pub const MAX_ID_LEN: usize = 100;
    /// Most target stations listed in one signed document (a province-wide push is
    /// signed `to_all`, without a list).
    pub const MAX_TARGETS: usize = 20_000;
    /// Largest bulletin audio: a station fetches it whole into memory, ahead of
    /// everything else (64 MiB is over an hour of MP3 speech).
    pub const MAX_BULLETIN_AUDIO_BYTES: u64 = 64 * 1024 * 1024;
    /// The gain range a schedule item may ask for; a bulletin's gain stays inside it.
    pub const MIN_GAIN_DB: f32 = -40.0;
    pub const MAX_GAIN_DB: f32 = 20.0;
    /// Largest event number a station accepts (SQLite keeps integers as i64).
    pub const MAX_EVENT_SEQ: u64 = i64::MAX as u64;

    /// Whether `text` is 64 lowercase hex digits: audio is named by its sha256 and the
    /// name becomes a file name in every cache.
    pub fn is_sha256(text: &str) -> bool {
        text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    }

    /// A bulletin id: 1 to [`MAX_ID_LEN`] ASCII letters, digits, `-` or `_` (it becomes
    /// a ledger item id and a log field).
    pub fn check_id(id: &str) -> Result<(), String> {
        let plain = id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        if id.is_empty() || id.len() > MAX_ID_LEN || !plain {
            return Err(format!(
                "bulletin id {:?} is not 1 to {MAX_ID_LEN} letters, digits, '-' or '_'",
                clip(id)
            ));
        }
        Ok(())
    }

    /// A human text of at most `max` characters with no control characters.
    pub fn check_text(what: &str, text: &str, max: usize) -> Result<(), String> {
        let chars = text.chars().count();
        if chars > max {
            return Err(format!("{what} has {chars} characters: at most {max}"));
        }
        if text.chars().any(char::is_control) {
            return Err(format!("{what} {:?} holds control characters", clip(text)));
        }
        Ok(())
    }

    pub fn check_targets(targets: &[String]) -> Result<(), String> {
        if targets.len() > MAX_TARGETS {
            return Err(format!("{} target stations: at most {MAX_TARGETS}", targets.len()));
        }
        Ok(())
    }

    /// `expires_at` after `issued_at` by at most [`MAX_BULLETIN_VALIDITY_SECS`]; returns
    /// the validity in seconds.
    pub fn check_validity(
        issued_at: DateTime<Utc>,
        expires_at: DateTime<Utc>,
    ) -> Result<u64, String> {
        let secs = (expires_at - issued_at).num_seconds();
        if secs <= 0 || secs as u64 > MAX_BULLETIN_VALIDITY_SECS {
            return Err(format!(
                "valid from {issued_at} to {expires_at}: a bulletin is valid for 1 s to 7 days"
            ));
        }
        Ok(secs as u64)
    }

    /// Longest free text a station reports (a reason, a sink error, what is playing).
    pub const MAX_REASON_CHARS: usize = 1000;

    /// A free text from a station, made safe to store and show: control characters
    /// replaced ([`crate::text::printable`]), cut at [`MAX_REASON_CHARS`].
    pub fn sanitise(field: &mut Option<String>) {
        crate::text::clean(field);
        if let Some(text) = field.as_mut()
            && text.chars().count() > MAX_REASON_CHARS
        {
            *text = text.chars().take(MAX_REASON_CHARS).collect();
        }
    }

    /// The first 40 characters of `text`, for an error message.
    pub fn clip(text: &str) -> String {
        text.chars().take(40).collect()
    }
}

impl BulletinCancelDoc {
    /// Whether the signed cancel is addressed to `station`.
    pub fn is_for(&self, station: &str) -> bool {
        self.to_all || self.targets.iter().any(|t| t == station)
    }

    /// As [`BulletinDoc::check_bounds`]: the id, the target list and the expiry.
    pub fn check_bounds(&self) -> Result<(), String> {
        bounds::check_id(&self.id)?;
        bounds::check_targets(&self.targets)?;
        // A cancel is issued while its bulletin is valid, so it expires within 7 days.
        bounds::check_validity(self.issued_at, self.expires_at).map(|_| ())
    }
}

/// One event on a station's bulletin stream (SSE `data:`, and the poll fallback's list).
/// `seq` is central's event id: a station resumes after the last one it handled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulletinEvent {
    pub seq: u64,
    /// A [`DocumentKind::Bulletin`] or [`DocumentKind::BulletinCancel`] envelope.
    pub envelope: SignedEnvelope,
}

/// What the poll fallback answers: every event after `after`, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulletinEvents {
    pub events: Vec<BulletinEvent>,
}

/// Where a bulletin is at one station, as the station reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeliveryState {
    /// The event reached the station.
    Delivered,
    /// Signature, target, replay and expiry checks passed.
    Verified,
    /// Its first sample reached the speaker (with the latency from push).
    Started,
    /// Every play (and repeat) ended.
    Finished,
    /// A `test` bulletin passed everything short of airing.
    TestOk,
    /// Refused or could not play (with the reason).
    Failed,
}

impl DeliveryState {
    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryState::Delivered => "delivered",
            DeliveryState::Verified => "verified",
            DeliveryState::Started => "started",
            DeliveryState::Finished => "finished",
            DeliveryState::TestOk => "test-ok",
            DeliveryState::Failed => "failed",
        }
    }
}

/// Station → central: a bulletin reached a state here.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeliveryReport {
    pub bulletin_id: String,
    pub state: DeliveryState,
    /// The station's clock when it happened.
    pub at: DateTime<Utc>,
    /// For `started`: first sample minus the bulletin's `issued_at`, milliseconds.
    pub latency_ms: Option<i64>,
    pub reason: Option<String>,
}

impl DeliveryReport {
    /// As [`Heartbeat::sanitise`], for the reason.
    pub fn sanitise(&mut self) {
        bounds::sanitise(&mut self.reason);
    }
}

/// Operator → central: push a bulletin. Exactly one of `audio_sha256` (already in the
/// library) and `text` (rendered with espeak-ng at central).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushBulletinRequest {
    pub title: Option<String>,
    pub audio_sha256: Option<String>,
    pub text: Option<String>,
    /// espeak-ng voice for `text` (default `vi`).
    pub voice: Option<String>,
    pub to: Target,
    pub priority: BulletinPriority,
    pub repeat: u32,
    pub interval_secs: u64,
    pub expires_secs: u64,
    pub tone: bool,
}

/// Central → operator: the pushed bulletin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PushBulletinResponse {
    pub id: String,
    pub targets: Vec<String>,
    pub audio_sha256: String,
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
}

/// One station's view of a bulletin in `loa bulletin show`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationDelivery {
    pub station_id: String,
    /// The furthest state reached (`failed` wins), or `None`: not reached.
    pub state: Option<DeliveryState>,
    pub at: Option<DateTime<Utc>>,
    pub latency_ms: Option<i64>,
    pub reason: Option<String>,
    /// Holding the event stream open right now.
    pub connected: bool,
    /// Last heartbeat or stream contact, for "not reached (offline since …)".
    pub last_seen: Option<DateTime<Utc>>,
}

/// A bulletin as `loa bulletin list` / `show` see it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulletinInfo {
    pub doc: BulletinDoc,
    pub cancelled_at: Option<DateTime<Utc>>,
    pub issued_by: String,
    pub stations: Vec<StationDelivery>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn target_parses_all_forms_and_refuses_empty() {
        assert_eq!("all".parse::<Target>(), Ok(Target::All));
        assert_eq!("district:Tri Tôn".parse::<Target>(), Ok(Target::District("Tri Tôn".into())));
        assert_eq!(
            "a, b".parse::<Target>(),
            Ok(Target::Stations(vec!["a".to_string(), "b".to_string()]))
        );
        assert!("district:".parse::<Target>().is_err());
        assert!(" , ".parse::<Target>().is_err());
    }

    #[test]
    fn audio_lookup_accepts_content_addresses_and_written_paths() {
        let mut audio = BTreeMap::new();
        audio.insert("../audio/a.mp3".to_string(), "ab".repeat(32));
        let s = ManifestSchedule {
            origin: "p.toml".into(),
            layer: Layer::Provincial,
            source: String::new(),
            audio,
        };
        assert_eq!(s.audio_sha256("../audio/a.mp3"), Some("ab".repeat(32).as_str()));
        assert_eq!(s.audio_sha256("sha256:cd"), Some("cd"));
        assert_eq!(s.audio_sha256("other.mp3"), None);
    }
}
