//! What the ledger stores about one planned item: its [`Outcome`] and the [`Record`]
//! that proves it. Serde-only, no IO, so central can reuse these types on the wire and
//! recompute the same hashes.

use chrono::{DateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

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
}

impl Outcome {
    pub const ALL: [Outcome; 5] =
        [Outcome::Played, Outcome::Late, Outcome::Preempted, Outcome::Failed, Outcome::Missed];

    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Played => "played",
            Outcome::Late => "late",
            Outcome::Preempted => "preempted",
            Outcome::Failed => "failed",
            Outcome::Missed => "missed",
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
    /// Why it was pre-empted, failed or missed; empty for played/late.
    pub reason: Option<String>,
    /// sha256 (lowercase hex) of the audio file that was (or should have been) played.
    pub audio_sha256: Option<String>,
    pub levels: Option<Levels>,
}

impl Entry {
    /// An entry for an item that never started.
    pub fn missed(
        item_id: &str,
        title: &str,
        layer: Layer,
        priority: Priority,
        planned: DateTime<Utc>,
        reason: impl Into<String>,
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
            reason: Some(reason.into()),
            audio_sha256: None,
            levels: None,
        }
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
    /// Whether `hash` matches the content (ignores the link to the previous record).
    pub fn hash_is_valid(&self) -> bool {
        chain_hash(&self.prev_hash, &self.station, self.seq, &self.entry) == self.hash
    }
}
