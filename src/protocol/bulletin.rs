//! Urgent bulletins: the signed bulletin and cancel documents, the event stream that
//! carries them, the delivery states stations report, and what operators push and see.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::bounds;
use super::library::Target;
use super::playlog::Reason;
use super::signed::SignedEnvelope;

/// How urgent a pushed bulletin is: `emergency` airs at once, interrupting everything
/// but another emergency; `priority` airs at once ahead of normal programmes and yields
/// to emergencies (a CAP warning that is not an emergency); `test` travels the whole
/// chain (delivery, verification, download) but is never aired.
///
/// Upgrading: a station older than `priority` cannot read a document that carries it
/// and refuses it, so stations are upgraded before central sends one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BulletinPriority {
    Emergency,
    Priority,
    Test,
}

impl BulletinPriority {
    /// The level the station plays it at, `None` for a test (never aired).
    pub fn level(self) -> Option<crate::schedule::Priority> {
        match self {
            BulletinPriority::Emergency => Some(crate::schedule::Priority::Emergency),
            BulletinPriority::Priority => Some(crate::schedule::Priority::Priority),
            BulletinPriority::Test => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BulletinPriority::Emergency => "emergency",
            BulletinPriority::Priority => "priority",
            BulletinPriority::Test => "test",
        }
    }
}

impl std::fmt::Display for BulletinPriority {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
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

/// The ledger item id of bulletin `id`'s attention tone (played before it when asked).
pub fn tone_item_id(id: &str) -> String {
    format!("{id}{TONE_SUFFIX}")
}

/// The bulletin whose attention tone `item_id` is, if it is one.
pub fn tone_of(item_id: &str) -> Option<&str> {
    item_id.strip_suffix(TONE_SUFFIX)
}

const TONE_SUFFIX: &str = ":tone";

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
    /// Why (for `failed`), in words; [`DeliveryReport::why`] reads it as a [`Reason`].
    pub reason: Option<String>,
    /// The [`Reason::code`] of `reason` (absent from older stations).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason_code: Option<String>,
}

impl DeliveryReport {
    /// As [`super::Heartbeat::sanitise`], for the reason.
    pub fn sanitise(&mut self) {
        bounds::sanitise(&mut self.reason);
    }

    /// This report with `reason` (its text and its code).
    pub fn with_reason(mut self, reason: Option<Reason>) -> Self {
        self.reason_code = reason.as_ref().map(|r| r.code().to_string());
        self.reason = reason.map(|r| r.to_string());
        self
    }

    /// Why, as a type (see [`Reason::from_stored`]).
    pub fn why(&self) -> Option<Reason> {
        self.reason.as_deref().map(|t| Reason::from_stored(self.reason_code.as_deref(), t))
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
    /// Held for a second admin (`two_person_rule`): nothing is signed or sent until
    /// `loa bulletin approve ID` by another admin.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub waiting_approval: bool,
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
    /// For a bulletin that needed a person's approval (a CAP-born one without an
    /// `auto_air` rule): where that stands. While it waits nothing is signed and no
    /// station hears of it; `doc.issued_at` is then when it was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
}

impl BulletinInfo {
    /// The state `list` and `show` print first: `waiting-approval`, `expired` (never
    /// approved), `withdrawn`, else `cancelled` or the priority.
    pub fn headline_state(&self, now: DateTime<Utc>) -> String {
        match &self.approval {
            Some(a) if a.state == ApprovalState::WaitingApproval && self.doc.expires_at <= now => {
                ApprovalState::Expired.as_str().to_string()
            }
            Some(a) if a.state != ApprovalState::Approved => a.state.as_str().to_string(),
            _ if self.cancelled_at.is_some() => "cancelled".to_string(),
            _ => self.doc.priority.to_string(),
        }
    }
}

/// Where a bulletin that waits for a person stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ApprovalState {
    /// Stored (audio rendered, targets resolved), not signed: `loa bulletin approve ID`.
    WaitingApproval,
    /// Approved: signed and sent at `decided_at`.
    Approved,
    /// Its expiry came before anyone approved it: never sent.
    Expired,
    /// Cancelled before approval (by a person, or by a CAP Update or Cancel): never sent.
    Withdrawn,
}

impl ApprovalState {
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalState::WaitingApproval => "waiting-approval",
            ApprovalState::Approved => "approved",
            ApprovalState::Expired => "expired",
            ApprovalState::Withdrawn => "withdrawn",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [Self::WaitingApproval, Self::Approved, Self::Expired, Self::Withdrawn]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// The approval of one bulletin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Approval {
    pub state: ApprovalState,
    /// Why it waits (`CAP alert …: no auto_air rule matches (priority emergency, …)`).
    pub reason: String,
    /// Who made it (`cap:<sender>` for a CAP alert, or the operator's role).
    pub requested_by: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
}
