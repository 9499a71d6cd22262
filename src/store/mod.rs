//! Central's persistence, behind the [`Store`] trait so another database can be added
//! later; [`SqliteStore`] is the embedded default.
//!
//! The store knows nothing about HTTP or signatures: it keeps stations, operator roles,
//! the audio library's metadata (the bytes live on disk, named by sha256), schedules and
//! their assignments, every manifest ever issued, and the latest heartbeat per station.
//! Tokens are never stored, only their sha256.

pub mod blobs;
mod bulletins;
mod cap;
mod cap_turn;
pub mod console;
#[cfg(test)]
pub(crate) mod contract;
pub mod copy;
mod field;
mod live;
mod pg;
mod playlog;
mod sqlite;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

pub use cap_turn::CapTurn;
pub use console::{LibraryEntry, LoginFailures, ScheduleLoad, SessionRow, User};
pub use field::{AlertRow, ClaimOutcome, EnrolCode, Notification};
pub use pg::{ConnectError, Connector, PgStore};
pub use sqlite::SqliteStore;

use crate::protocol::DeliveryReport;
use crate::protocol::{AlertRecord, Approval, ApprovalState, AuditEntry, BulletinDoc};
use crate::protocol::{AudioInfo, Heartbeat, PlaylogAck, PlaylogSummary, SignedEnvelope};
use crate::protocol::{Outcome, Record};
use crate::schedule::Layer;

/// Why the store refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("database error: {0}")]
    Postgres(postgres::Error),
    /// The database cannot be reached (PostgreSQL down, or the network to it): central
    /// answers `503` with `Retry-After`, and whoever asked sends again later.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Another central held what this call waited for, for longer than it may wait:
    /// central answers `503` with `Retry-After`, and whoever asked sends again later.
    #[error("{0}")]
    Busy(String),
    #[error("stored value is corrupt: {0}")]
    Corrupt(String),
    #[error("station {0:?} already exists")]
    StationExists(String),
    #[error("no such station {0:?}: add it with `loa central station add`")]
    NoSuchStation(String),
    #[error("manifest version {version} for station {station:?} already exists")]
    VersionTaken { station: String, version: u64 },
    #[error("user {0:?} already exists: `loa central user passwd` changes a password")]
    UserExists(String),
    /// Signing a bulletin event failed: nothing was appended.
    #[error("signing bulletin event {seq}: {why}")]
    Signing { seq: u64, why: String },
}

impl From<postgres::Error> for StoreError {
    /// A lost connection or a server shutting down is "unavailable" (try again later);
    /// anything else is an error in the request.
    fn from(e: postgres::Error) -> Self {
        let shutting_down = e.code().is_some_and(|c| {
            *c == postgres::error::SqlState::ADMIN_SHUTDOWN
                || *c == postgres::error::SqlState::CANNOT_CONNECT_NOW
                || *c == postgres::error::SqlState::CRASH_SHUTDOWN
        });
        let io = std::error::Error::source(&e).is_some_and(|s| s.is::<std::io::Error>());
        if e.is_closed() || shutting_down || io {
            StoreError::Unavailable(e.to_string())
        } else {
            StoreError::Postgres(e)
        }
    }
}

/// A registered station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Station {
    pub id: String,
    pub name: String,
    /// Its area path (`"Tri Tôn"`, `"Tri Tôn/Ba Chúc"`: [`crate::protocol::area`]). Named
    /// `district` where it crosses the wire and in the table, as before areas: a district
    /// name is an area of one level, so older data means what it meant.
    pub district: String,
}

/// What an operator token may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// The province: everything.
    Admin,
    /// District staff: `local` schedules for their own district's stations, and viewing.
    District(String),
    /// Read-only: status, logs, reports.
    Viewer,
    /// A disaster authority's system: may only post CAP alerts (`POST /api/v1/cap`).
    CapSource,
}

impl Role {
    /// Whether this role sees stations of `area` (an area path, see
    /// [`crate::protocol::area`]): admins and viewers every station, a district role the
    /// stations of its area and every area under it, a `cap-source` none.
    pub fn sees_area(&self, area: &str) -> bool {
        match self {
            Role::Admin | Role::Viewer => true,
            Role::District(scope) => crate::protocol::area::within(area, scope),
            Role::CapSource => false,
        }
    }

    /// Whether this role sees `station`.
    pub fn sees(&self, station: &Station) -> bool {
        self.sees_area(&station.district)
    }
}

impl std::fmt::Display for Role {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Role::Admin => write!(f, "admin"),
            Role::District(name) => write!(f, "district:{name}"),
            Role::Viewer => write!(f, "viewer"),
            Role::CapSource => write!(f, "cap-source"),
        }
    }
}

impl std::str::FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        match text.trim() {
            "admin" => Ok(Role::Admin),
            "viewer" => Ok(Role::Viewer),
            "cap-source" => Ok(Role::CapSource),
            other => {
                match other.strip_prefix("district:").or_else(|| other.strip_prefix("area:")) {
                    // Stored as given (trimmed): a token made before areas matches its
                    // stations exactly as before; `area::within` compares by segment.
                    Some(name) if crate::protocol::area::normalise(name).is_ok() => {
                        Ok(Role::District(name.trim().to_string()))
                    }
                    _ => Err(format!(
                        "unknown role {other:?}: expected admin, district:NAME (an area path such as \
                     district:\"Tri Tôn/Ba Chúc\"), viewer or cap-source"
                    )),
                }
            }
        }
    }
}

/// A schedule file as loaded, with its audio map (written value → sha256) as JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredSchedule {
    pub id: i64,
    pub origin: String,
    pub layer: Layer,
    pub source: String,
    pub audio: std::collections::BTreeMap<String, String>,
    pub loaded_at: DateTime<Utc>,
}

/// A manifest as issued.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredManifest {
    pub station_id: String,
    pub version: u64,
    pub issued_at: DateTime<Utc>,
    pub valid_until: DateTime<Utc>,
    pub envelope: SignedEnvelope,
}

/// A library file's loudness measurement and the gain stored for it.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioLevels {
    pub sha256: String,
    pub loudness_lufs: f64,
    /// `None` for a file stored before central kept true peaks: it must be measured
    /// again before its gain can be trusted not to clip.
    pub true_peak_dbtp: Option<f64>,
    pub gain_db: f32,
}

/// Where a station is, for CAP areas: WGS 84 degrees and administrative-unit codes.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StationPlace {
    pub station_id: String,
    pub lat: Option<f64>,
    pub lon: Option<f64>,
    /// Administrative-unit codes a CAP geocode may name (the commune's, …).
    pub geocodes: Vec<String>,
}

/// A bulletin made but not signed: it waits for a person's approval (or did).
#[derive(Debug, Clone, PartialEq)]
pub struct PendingBulletin {
    /// The document as it will be signed: targets resolved, audio rendered;
    /// `issued_at` is when it was made (approval signs it with the approval's time).
    pub doc: BulletinDoc,
    pub approval: Approval,
    /// The person who asked (`user:NAME`, `token:…`), when a person did: under the
    /// two-person rule they may not approve it themselves. `None` for CAP alerts.
    pub requester: Option<String>,
}

/// The latest heartbeat from a station, as received.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredHeartbeat {
    pub station_id: String,
    pub received_at: DateTime<Utc>,
    pub heartbeat: Heartbeat,
}

/// Central's persistence. Every method is a short blocking call; implementations are
/// shared between request handlers and must be thread-safe.
pub trait Store: Send + Sync + 'static {
    fn add_station(&self, station: &Station, token_hash: &str) -> Result<(), StoreError>;
    fn station(&self, id: &str) -> Result<Option<Station>, StoreError>;
    fn station_by_token(&self, token_hash: &str) -> Result<Option<Station>, StoreError>;
    /// Every station's token hash, with its id: one read that serves the periodic token
    /// check of every open stream ([`crate::central::token_check`]).
    fn station_token_hashes(&self) -> Result<Vec<(String, String)>, StoreError>;
    fn stations(&self) -> Result<Vec<Station>, StoreError>;

    /// Replaces a station's token hash: the old token stops working at once. `false`
    /// when there is no such station.
    fn set_station_token(&self, id: &str, token_hash: &str) -> Result<bool, StoreError>;

    fn add_operator(&self, token_hash: &str, role: &Role, label: &str) -> Result<(), StoreError>;
    fn operator_by_token(&self, token_hash: &str) -> Result<Option<Role>, StoreError>;
    /// The role and label of an operator token (the label names whose it is, for the
    /// audit trail).
    fn operator_identity(&self, token_hash: &str) -> Result<Option<(Role, String)>, StoreError>;
    /// Deletes every operator token with this label; returns how many there were.
    fn revoke_operators(&self, label: &str) -> Result<usize, StoreError>;

    /// Records an audio file's metadata and its measured true peak (dBTP). Re-adding
    /// the same sha256 keeps the first title and takes the new measurement and gain.
    fn put_audio(&self, info: &AudioInfo, true_peak_dbtp: f64) -> Result<(), StoreError>;
    fn audio(&self, sha256: &str) -> Result<Option<AudioInfo>, StoreError>;
    /// Every library file's measurement and stored gain, to check the gains against the
    /// current rule and target ([`crate::central::gains`]).
    fn audio_levels(&self) -> Result<Vec<AudioLevels>, StoreError>;
    /// Replaces one file's measurement and gain; false if the library does not hold it.
    fn set_audio_levels(&self, levels: &AudioLevels) -> Result<bool, StoreError>;

    /// Stores a schedule and assigns it to `stations`, replacing any schedule of the same
    /// layer and origin (file name) those stations had — so a district's local file can
    /// never replace a provincial one by taking its name. One transaction: all or nothing.
    /// The station list is kept with the schedule, for [`Store::schedule_loads`].
    fn load_schedule(
        &self,
        schedule: &StoredSchedule,
        stations: &[String],
        loaded_by: &str,
    ) -> Result<i64, StoreError>;
    fn schedules_for(&self, station_id: &str) -> Result<Vec<StoredSchedule>, StoreError>;
    /// The newest `limit` schedule loads, newest first.
    fn schedule_loads(&self, limit: usize) -> Result<Vec<ScheduleLoad>, StoreError>;
    /// The newest `limit` library files, newest first, with their true peaks.
    fn library(&self, limit: usize) -> Result<Vec<LibraryEntry>, StoreError>;
    /// Per station, its playlog records planned at or after `since` that were missed or
    /// failed (the fleet page's "missed today").
    fn missed_since(&self, since: DateTime<Utc>) -> Result<Vec<(String, u64)>, StoreError>;

    /// Stores a newly issued manifest; a version already taken is refused, so two
    /// writers can never issue two different documents under one version.
    fn put_manifest(&self, manifest: &StoredManifest) -> Result<(), StoreError>;
    fn latest_manifest(&self, station_id: &str) -> Result<Option<StoredManifest>, StoreError>;

    /// Stores a station's latest heartbeat, and keeps a copy in its history (at most
    /// [`console::HEARTBEAT_HISTORY`] per station, the oldest dropped), in one transaction.
    fn put_heartbeat(&self, heartbeat: &StoredHeartbeat) -> Result<(), StoreError>;
    fn heartbeats(&self) -> Result<Vec<StoredHeartbeat>, StoreError>;
    /// A station's newest `limit` heartbeats, newest first.
    fn heartbeat_history(
        &self,
        station_id: &str,
        limit: usize,
    ) -> Result<Vec<StoredHeartbeat>, StoreError>;

    /// The manifests that were in force for a station during `[from, until)`: the last
    /// one issued before `from` and every one issued in the range, oldest first.
    fn manifests_between(
        &self,
        station_id: &str,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<StoredManifest>, StoreError>;

    /// Stores a station's ledger records idempotently on `(station, seq)`, checking the
    /// hash chain, and answers the contiguous sequence now held. Returns only after the
    /// batch is committed durably.
    fn ingest_playlog(
        &self,
        station_id: &str,
        records: &[Record],
        now: DateTime<Utc>,
    ) -> Result<PlaylogAck, StoreError>;
    fn playlog(&self, filter: &PlaylogFilter) -> Result<Vec<Record>, StoreError>;
    fn playlog_summary(&self, station_id: &str) -> Result<PlaylogSummary, StoreError>;

    /// Sets where a station is; `false` when there is no such station.
    fn set_station_place(&self, place: &StationPlace) -> Result<bool, StoreError>;
    /// Every station's place (stations without one have empty fields), by id.
    fn station_places(&self) -> Result<Vec<StationPlace>, StoreError>;

    /// Waits for this process's turn to decide a CAP alert, among every central on this
    /// database: a decision reads the ledger ([`Store::cap_ledger`]), acts, and records
    /// the ledger's new state ([`Store::record_alerts`]) while holding the turn, so no
    /// central overwrites another's update or acts on an alert another is acting on.
    /// Blocks (call it off the async workers); [`StoreError::Busy`] when another central
    /// held the turn for longer than this store waits.
    fn cap_turn(&self) -> Result<CapTurn, StoreError>;
    /// The CAP alert ledger's state as last saved (JSON of `cap::AlertLedger`).
    fn cap_ledger(&self) -> Result<Option<String>, StoreError>;
    /// In one transaction: the records of an alert's decisions, the audit rows that go
    /// with them, and the ledger's new state (`None`: unchanged, e.g. a refusal).
    fn record_alerts(
        &self,
        records: &[AlertRecord],
        audit: &[AuditEntry],
        ledger: Option<&str>,
    ) -> Result<(), StoreError>;
    /// The newest `limit` alert records, newest first.
    fn alerts(&self, limit: usize) -> Result<Vec<AlertRecord>, StoreError>;
    /// The bulletin made for the alert (sender, identifier, sent), if one was.
    fn alert_bulletin(
        &self,
        sender: &str,
        identifier: &str,
        sent: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError>;

    /// Stores a bulletin that waits for approval (or a record of one that needed it).
    fn put_pending(&self, pending: &PendingBulletin) -> Result<(), StoreError>;
    fn pending(&self, id: &str) -> Result<Option<PendingBulletin>, StoreError>;
    /// The newest `limit` bulletins that needed approval, newest first.
    fn pending_list(&self, limit: usize) -> Result<Vec<PendingBulletin>, StoreError>;
    /// Moves bulletin `id` from state `from` to `to`, by `by` at `at`; `false` (and
    /// nothing changed) when it is not in state `from`: two people approving at once
    /// approve it once.
    fn decide_pending(
        &self,
        id: &str,
        from: ApprovalState,
        to: ApprovalState,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;

    /// Appends one line to the audit trail.
    fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError>;
    /// The newest `limit` lines of the audit trail, newest first.
    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError>;

    // People and their console sessions (`console.rs`).

    /// Adds a person; [`StoreError::UserExists`] when the name is taken.
    fn add_user(&self, user: &User) -> Result<(), StoreError>;
    fn user(&self, name: &str) -> Result<Option<User>, StoreError>;
    fn users(&self) -> Result<Vec<User>, StoreError>;
    /// A new password hash; every session of the person ends in the same transaction.
    /// `false` when there is no such person.
    fn set_user_password(
        &self,
        name: &str,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Disables or enables a person; disabling ends their sessions in the same
    /// transaction. `false` when there is no such person.
    fn set_user_disabled(
        &self,
        name: &str,
        disabled: bool,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    fn put_session(&self, session: &SessionRow) -> Result<(), StoreError>;
    fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError>;
    fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
    fn end_session(&self, id_hash: &str) -> Result<(), StoreError>;
    /// Ends every session last seen before `seen_before`; returns how many.
    fn end_idle_sessions(&self, seen_before: DateTime<Utc>) -> Result<usize, StoreError>;
    fn login_failures(&self, key: &str) -> Result<Option<LoginFailures>, StoreError>;
    /// Counts one more failed login under `key` and returns the count. First forgets
    /// counters last seen before `forget_before` and, past `keep_at_most` counters, the
    /// oldest: the table stays bounded whatever is tried.
    fn add_login_failure(
        &self,
        key: &str,
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
        keep_at_most: usize,
    ) -> Result<u32, StoreError>;
    fn clear_login_failures(&self, key: &str) -> Result<(), StoreError>;

    // In the field: enrolment codes and alerts (`field.rs`).

    /// Stores a new enrolment code (what it stretches into; never the code itself).
    fn put_enrol_code(&self, code: &EnrolCode) -> Result<(), StoreError>;
    fn enrol_code(&self, lookup: &str) -> Result<Option<EnrolCode>, StoreError>;
    /// In one transaction: a right claim on a live, unused code uses it up and replaces
    /// the station's token hash; a wrong one counts towards `max_failures`.
    fn claim_enrol_code(
        &self,
        lookup: &str,
        claim_hash: &str,
        token_hash: &str,
        now: DateTime<Utc>,
        max_failures: u32,
    ) -> Result<ClaimOutcome, StoreError>;
    /// Playlog records held, counted by station and outcome (for `/metrics`).
    fn playlog_outcome_counts(&self) -> Result<Vec<(String, String, u64)>, StoreError>;
    /// A station's latest record that aired (played or late), for the silence alert.
    fn latest_aired(&self, station_id: &str) -> Result<Option<Record>, StoreError>;
    /// Alerts not cleared yet, oldest first.
    fn open_alerts(&self) -> Result<Vec<AlertRow>, StoreError>;
    /// Raises an alert unless one with its key is open; queues a notification per
    /// channel in the same transaction. True when newly raised.
    fn raise_alert(
        &self,
        alert: &AlertRow,
        channels: &[&str],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Clears the open alert with `key`, queueing its notifications. True when one was open.
    fn clear_alert(
        &self,
        key: &str,
        channels: &[&str],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError>;
    /// Notifications due by `now`, oldest first.
    fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError>;
    fn notification_sent(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError>;
    /// A failed try, tried again at `next_try` (`None`: given up).
    fn notification_failed(
        &self,
        id: i64,
        error: &str,
        next_try: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError>;

    // Live broadcasts (`central::live`).
    /// A broadcast started (its row, not yet ended).
    fn live_started(&self, record: &crate::protocol::live::LiveRecord) -> Result<(), StoreError>;
    /// It ended: when, how much audio, why. Once (a second call changes nothing).
    fn live_ended(
        &self,
        id: &str,
        at: DateTime<Utc>,
        chunks: u64,
        audio_secs: f64,
        reason: &str,
    ) -> Result<(), StoreError>;
    /// The replica receiving broadcast `id` says it still is, at `at` (nothing changes
    /// once the broadcast ended). The start counts as the first such mark.
    fn live_alive(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError>;
    /// The newest `limit` broadcasts, newest first.
    fn live_list(&self, limit: usize)
    -> Result<Vec<crate::protocol::live::LiveRecord>, StoreError>;

    // Urgent bulletins: the one event stream every station follows, the signed
    // bulletins it carries and the stations' delivery states (`bulletins.rs`,
    // `pg/bulletins.rs`). Several centrals on one database serve one stream.
    /// Appends one event to the bulletin stream, durably, with what it carries in the
    /// same transaction: a new bulletin (stored with `event_seq` set), a bulletin's
    /// cancellation, or a live broadcast's start (nothing else stored). The number is
    /// the database's, one more than the newest, taken under a lock held until commit:
    /// numbers are contiguous and committed in order however many centrals append at
    /// once, so a station that saw event `n` can have missed none before it. `sign` is
    /// called once with the number (which goes under the signature), inside the
    /// transaction; its error appends nothing ([`StoreError::Signing`]). `None` (and
    /// `sign` not called) when a cancel finds its bulletin unknown or already cancelled
    /// — by another operator or another central a moment before.
    fn append_bulletin_event(
        &self,
        subject: EventSubject<'_>,
        targets: &[String],
        expires_at: DateTime<Utc>,
        sign: SignEvent<'_>,
    ) -> Result<Option<BulletinEventRow>, StoreError>;
    /// Every event numbered above `after`, in order.
    fn bulletin_events_after(&self, after: u64) -> Result<Vec<BulletinEventRow>, StoreError>;
    /// The signed bulletin `id` (its `targets` as pushed: empty for a `to_all` one,
    /// whose stations are its event's targets).
    fn bulletin(&self, id: &str) -> Result<Option<StoredBulletin>, StoreError>;
    /// Every signed bulletin, in the order their events were numbered.
    fn bulletins(&self) -> Result<Vec<StoredBulletin>, StoreError>;
    /// Stores every batch's reports in one transaction, all or none. Idempotent: a state
    /// a station already reported for a bulletin keeps its first report, whichever
    /// central received the later one.
    fn put_deliveries(&self, batches: &[DeliveryBatch]) -> Result<(), StoreError>;
    /// Every state each station reported for bulletin `bulletin_id`, to any central.
    fn deliveries(&self, bulletin_id: &str) -> Result<Vec<(String, DeliveryReport)>, StoreError>;
    /// News of bulletin events appended by any process on this database: each message
    /// is the newest event number known to have been committed (`0`: unknown — load
    /// to be sure, e.g. after the store's listening connection came back). `None` when
    /// no other process can append (an embedded file only this central opens): its own
    /// appends are all it needs to know of.
    fn bulletin_feed(&self) -> Option<std::sync::mpsc::Receiver<u64>>;
    /// News of manifests issued by any process on this database (its own included), so
    /// a station long-polling one replica hears at once of a version another issued.
    /// Its first message, once the store listens, is [`ManifestNews::MaybeMissed`].
    /// `None` when no other process issues manifests (an embedded file).
    fn manifest_feed(&self) -> Option<std::sync::mpsc::Receiver<ManifestNews>>;
}

/// What [`Store::manifest_feed`] tells.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ManifestNews {
    /// `version` of `station_id`'s manifest was committed.
    Issued { station_id: String, version: u64 },
    /// Some may have been issued unannounced (the listening connection was down): look.
    MaybeMissed,
}

/// A signed bulletin as stored: the document, who issued it, when it was cancelled.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredBulletin {
    pub doc: BulletinDoc,
    pub issued_by: String,
    pub cancelled_at: Option<DateTime<Utc>>,
}

/// One event of the bulletin stream: a signed bulletin, cancel order or live start.
#[derive(Debug, Clone, PartialEq)]
pub struct BulletinEventRow {
    /// The event number, from the database: contiguous, and the order of commits.
    pub seq: u64,
    /// The bulletin (or live broadcast) it is about.
    pub bulletin_id: String,
    pub envelope: SignedEnvelope,
    /// The stations it goes to (resolved, also for `--to all`).
    pub targets: Vec<String>,
    /// After this no station is sent it.
    pub expires_at: DateTime<Utc>,
}

/// What a new bulletin event carries ([`Store::append_bulletin_event`]).
#[derive(Debug, Clone, Copy)]
pub enum EventSubject<'a> {
    /// A new bulletin, stored with the event (its `event_seq` set to the number).
    Issue { doc: &'a BulletinDoc, issued_by: &'a str },
    /// The cancel order of stored bulletin `id`, cancelled at `at`.
    Cancel { id: &'a str, at: DateTime<Utc> },
    /// The start of live broadcast `id` (kept by the live tables, not here).
    Live { id: &'a str },
}

/// Signs an event once its number is known (the number goes under the signature).
pub type SignEvent<'a> = &'a mut (dyn FnMut(u64) -> Result<SignedEnvelope, String> + Send);

/// Delivery reports from one station's request, stored together.
#[derive(Debug, Clone, PartialEq)]
pub struct DeliveryBatch {
    pub station: String,
    pub reports: Vec<DeliveryReport>,
    pub received_at: DateTime<Utc>,
}

/// What [`Store::playlog`] selects; empty fields select everything.
#[derive(Debug, Clone, Default)]
pub struct PlaylogFilter {
    /// Only these stations (an empty list selects nothing).
    pub stations: Option<Vec<String>>,
    /// Planned at or after.
    pub since: Option<DateTime<Utc>>,
    /// Planned before.
    pub until: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    pub item_id: Option<String>,
    pub limit: Option<u64>,
    /// Only records after this one in the log's order (the next page).
    pub after: Option<crate::protocol::PlaylogCursor>,
}

/// A new bearer token: 32 random bytes, hex, with a `loa_` prefix so it is recognisable
/// in a config file. Shown once; only [`hash_token`] of it is stored.
pub fn new_token() -> String {
    let bytes: [u8; 32] = rand::random();
    format!("loa_{}", hex::encode(bytes))
}

/// The stored form of a token: hex sha256 of its text.
pub fn hash_token(token: &str) -> String {
    hex::encode(Sha256::digest(token.trim().as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_parse_and_print() {
        for text in ["admin", "viewer", "district:Tri Tôn"] {
            assert_eq!(text.parse::<Role>().unwrap().to_string(), text);
        }
        assert!("district:".parse::<Role>().is_err());
        assert_eq!(
            "area:Tri Tôn/Ba Chúc".parse::<Role>().unwrap(),
            Role::District("Tri Tôn/Ba Chúc".into())
        );
        let station =
            |area: &str| Station { id: "x".into(), name: "x".into(), district: area.into() };
        let tri_ton = Role::District("Tri Tôn".into());
        assert!(tri_ton.sees(&station("Tri Tôn")), "an existing district token, unchanged");
        assert!(tri_ton.sees(&station("Tri Tôn/Ba Chúc")), "and the communes under it");
        assert!(!tri_ton.sees(&station("Tịnh Biên")));
        assert!(!tri_ton.sees(&station("Tri Tôn Mới")));
        assert!(!Role::District("Tri Tôn/Ba Chúc".into()).sees(&station("Tri Tôn")));
        assert!("root".parse::<Role>().unwrap_err().contains("expected admin"));
    }

    #[test]
    fn tokens_are_random_and_hashed() {
        let a = new_token();
        assert_ne!(a, new_token());
        assert_eq!(a.len(), 4 + 64);
        assert_eq!(hash_token(&a), hash_token(&format!(" {a}\n")));
        assert_ne!(hash_token(&a), a);
    }
}
