//! The station's bulletin receiver: holds central's event stream open (SSE, resumed by
//! the last event id after a reconnect, with backoff; a poll request when the stream
//! cannot be held), checks every bulletin, fetches its audio ahead of everything else,
//! and hands it to the daemon's emergency path. Reports each step back to central.
//!
//! The gate every bulletin passes, in order: signature by the pinned key
//! (`verify_strict`, [`DocumentKind::Bulletin`] tag — a manifest's or a cancel's signature
//! never passes), this station among the targets, an id never seen before (replays are
//! refused; seen ids are kept in `bulletins.sqlite` until they expire, so a restart does
//! not forget them), not expired. Then the audio is downloaded through the sync cache
//! (temporary file, sha256 verified, renamed) by this receiver's own download — it never
//! waits in the sync's queue of programme downloads — and only then is it played.
//!
//! A bulletin handed to the daemon is recorded accepted in the same file (same
//! transaction as its seen mark), and each of its plays counted from the daemon's ledger
//! records; on start, what a stop left unaired is handed over again with only its
//! remaining plays, and one that expired meanwhile is recorded `missed` and reported
//! `failed` with the reason (see [`Receiver::follow`]).
//!
//! `test` bulletins go through every step but the daemon: they are confirmed `test-ok`.
//! Cancels are signed too ([`DocumentKind::BulletinCancel`]); a cancel that arrives
//! before its bulletin makes the bulletin's id "seen", so it never plays.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use rusqlite::{Connection, OptionalExtension, params};
use sha2::Digest;

use super::core::PlayingNow;
use super::daemon::{StationCommand, StationHandle, StationStatus};
use crate::clock::SharedClock;
use crate::protocol::Reason;
use crate::protocol::playlog::EXPIRED_WHILE_STOPPED;
use crate::protocol::{
    BulletinCancelDoc, BulletinDoc, BulletinEvent, BulletinEvents, BulletinPriority,
    DeliveryReport, DeliveryState, DocumentKind, SignedEnvelope,
};
use crate::signing::{PublicKey, SigningError};
use crate::station::sync::{Backoff, SyncConfig, SyncError, Syncer};

/// The attention tone shipped in the binary.
pub const TONE_WAV: &[u8] = include_bytes!("../../audio/chuong-bao.wav");
/// The receiver's own file in the station's data directory.
pub const DB_FILE: &str = "bulletins.sqlite";
/// How long a start waits for central's list of cancels before resuming bulletins.
pub const RESUME_POLL: Duration = Duration::from_secs(3);
/// A stream silent for this long (central sends a heartbeat every 15 s) is dead.
pub const STREAM_IDLE: Duration = Duration::from_secs(45);

/// Why a bulletin event was refused or could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum BulletinError {
    #[error("bulletin refused: {0}")]
    Signature(#[from] SigningError),
    #[error("bulletin event is not valid JSON: {0}")]
    Malformed(String),
    #[error("bulletin {id} is for other stations, not {station}: refused")]
    NotForUs { id: String, station: String },
    #[error("bulletin {0} was already received: refused as a replay")]
    Replay(String),
    #[error("bulletin {id} expired at {expires_at} (now {now}): refused")]
    Expired { id: String, expires_at: DateTime<Utc>, now: DateTime<Utc> },
    #[error("bulletin audio: {0}")]
    Download(#[from] SyncError),
    #[error("bulletin state {path}: {source}")]
    Store { path: String, source: rusqlite::Error },
    #[error("cannot reach central at {url}: {}", crate::station::sync::describe_http(source))]
    Http { url: String, source: reqwest::Error },
    #[error("central answered {status} to {what}")]
    Status { what: String, status: reqwest::StatusCode },
    #[error("the station daemon has stopped")]
    DaemonGone,
    #[error("bulletin {0} was cancelled or closed before its audio arrived")]
    Withdrawn(String),
    #[error("cannot install the attention tone at {path}: {source}")]
    Tone { path: String, source: std::io::Error },
    #[error("signed bulletin refused: {0}")]
    OutOfRange(String),
    #[error(
        "event {got} carries a document signed for event {signed}: refused (someone on the path renumbered it)"
    )]
    Renumbered { got: u64, signed: u64 },
    #[error(
        "bulletin {id} was issued at {issued_at}, more than its validity before the newest bulletin seen ({newest}): refused as a replay"
    )]
    Stale { id: String, issued_at: DateTime<Utc>, newest: DateTime<Utc> },
    #[error("{what} from central is larger than {limit} bytes: refused")]
    TooLarge { what: &'static str, limit: usize },
}

impl BulletinError {
    /// This failure as a reason a delivery report carries: an expiry is
    /// [`Reason::Expired`] (the report counts it as one), anything else a failure.
    pub fn reason(&self) -> Reason {
        match self {
            BulletinError::Expired { .. } => Reason::Expired(Some(self.to_string())),
            other => Reason::Failure(other.to_string()),
        }
    }
}

/// How the receiver reaches central.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Hold the SSE stream open; poll once after each stream failure.
    Stream,
    /// Long-poll only (links or proxies that cut streams).
    Poll,
}

/// The receiver's configuration.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    pub sync: SyncConfig,
    pub mode: Mode,
    pub backoff: Backoff,
}

/// A bulletin whose audio is verified in the cache: what the player would be handed.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    pub doc: BulletinDoc,
    pub audio: PathBuf,
    /// When the signed bulletin arrived from central (the receiver's clock).
    pub received_at: DateTime<Utc>,
    /// When the audio's sha256 matched (the receiver's clock).
    pub checked_at: DateTime<Utc>,
    /// When the audio was committed durably to the cache and the id marked seen: the
    /// moment it is handed to the player.
    pub verified_at: DateTime<Utc>,
}

/// Where verified bulletins go: the daemon, or (benchmarks, tests) a channel.
#[derive(Clone)]
pub enum Output {
    Daemon { handle: StationHandle, tone: PathBuf },
    Channel(tokio::sync::mpsc::UnboundedSender<Ready>),
}

/// Every bulletin handed to the daemon, with how far it got: what a restart resumes.
/// `plays` is the repeat count plus one; `ended` counts plays that ended for good (aired,
/// or failed and not retried), `aired` those that played to their end.
const ACCEPTED_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS accepted (
    id TEXT PRIMARY KEY,
    doc TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    accepted_at TEXT NOT NULL,
    plays INTEGER NOT NULL,
    aired INTEGER NOT NULL DEFAULT 0,
    ended INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL,
    reason TEXT,
    updated_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS accepted_state ON accepted (state, accepted_at);";

/// Where an accepted bulletin stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// Handed to the daemon; plays are still to air.
    Accepted,
    /// Every play ended (or the next repeat would start after the expiry).
    Finished,
    /// Cancelled by the province.
    Cancelled,
    /// Can no longer air (expired, or its audio could not be had again).
    Failed,
}

impl Stage {
    fn as_str(self) -> &'static str {
        match self {
            Stage::Accepted => "accepted",
            Stage::Finished => "finished",
            Stage::Cancelled => "cancelled",
            Stage::Failed => "failed",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        [Stage::Accepted, Stage::Finished, Stage::Cancelled, Stage::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One accepted bulletin's progress, as the replay store keeps it.
#[derive(Debug, Clone, PartialEq)]
struct Progress {
    doc: BulletinDoc,
    accepted_at: DateTime<Utc>,
    plays: u32,
    aired: u32,
    ended: u32,
    stage: Stage,
    reason: Option<String>,
    /// The last change: acceptance, or the end of the last play that ended for good.
    updated_at: DateTime<Utc>,
    /// The latest planned instant of its plays in the ledger (set by [`reconcile`]).
    last_planned: Option<DateTime<Utc>>,
}

/// How one play of a bulletin ended, as far as its progress goes.
#[derive(Debug, Clone, PartialEq)]
enum PlayEnd {
    /// Played to its end (`played` or `late`).
    Aired,
    /// Failed; the core goes on to the next repeat.
    Lost,
    /// Never started and never will (it expired in the queue).
    Dropped(String),
}

/// What an emergency ledger record means for its bulletin's progress; `None` when it
/// changes nothing: the attention tone, a play cut by the station stopping (it airs
/// again from the start after the restart), or a cancel (the cancel itself wrote that).
fn play_end(entry: &crate::station::ledger::Entry) -> Option<PlayEnd> {
    use crate::station::ledger::Outcome;
    if crate::protocol::bulletin::tone_of(&entry.item_id).is_some() {
        return None;
    }
    let reason = entry.reason();
    match entry.outcome {
        Outcome::Played | Outcome::Late => Some(PlayEnd::Aired),
        Outcome::Preempted => None,
        Outcome::Failed if reason == Some(Reason::Interrupted) => None,
        Outcome::Failed => Some(PlayEnd::Lost),
        Outcome::Missed if reason == Some(Reason::Cancelled) => None,
        Outcome::Missed => {
            Some(PlayEnd::Dropped(reason.map_or_else(|| "missed".to_string(), |r| r.to_string())))
        }
    }
}

fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_time(text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Seen ids and the last event id, on disk.
struct Seen {
    conn: Mutex<Connection>,
    path: String,
}

impl Seen {
    fn open(path: &Path) -> Result<Self, BulletinError> {
        let shown = path.display().to_string();
        let err = |source| BulletinError::Store { path: shown.clone(), source };
        let conn = Connection::open(path).map_err(err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(err)?;
        conn.busy_timeout(Duration::from_secs(5)).map_err(err)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS seen (id TEXT PRIMARY KEY, expires_at TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS cursor (k INTEGER PRIMARY KEY, last_event INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS newest (k INTEGER PRIMARY KEY, issued_at TEXT NOT NULL);",
        )
        .map_err(err)?;
        conn.execute_batch(ACCEPTED_SCHEMA).map_err(err)?;
        Ok(Self { conn: Mutex::new(conn), path: shown })
    }

    fn err(&self) -> impl Fn(rusqlite::Error) -> BulletinError + '_ {
        |source| BulletinError::Store { path: self.path.clone(), source }
    }

    fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn contains(&self, id: &str) -> Result<bool, BulletinError> {
        let found = self
            .conn()
            .query_row("SELECT 1 FROM seen WHERE id = ?1", params![id], |_| Ok(()))
            .optional()
            .map_err(self.err())?;
        Ok(found.is_some())
    }

    /// Marks `id` seen until `expires_at`, and forgets ids that expired before `now`.
    fn insert(
        &self,
        id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), BulletinError> {
        // One transaction, one fsync: this is on the bulletin's path to the loudspeaker.
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err())?;
        mark_seen(&tx, id, expires_at, now).map_err(self.err())?;
        tx.commit().map_err(self.err())
    }

    /// Marks the signed bulletin `doc` seen (as [`Seen::insert`]) and raises the
    /// high-water mark of `issued_at`.
    fn insert_doc(&self, doc: &BulletinDoc, now: DateTime<Utc>) -> Result<(), BulletinError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err())?;
        mark_seen(&tx, &doc.id, doc.expires_at, now).map_err(self.err())?;
        raise_newest(&tx, doc.issued_at).map_err(self.err())?;
        tx.commit().map_err(self.err())
    }

    /// The latest `issued_at` of any bulletin this station accepted or confirmed.
    fn newest_issued(&self) -> Result<Option<DateTime<Utc>>, BulletinError> {
        let text = self
            .conn()
            .query_row("SELECT issued_at FROM newest WHERE k = 0", [], |r| r.get::<_, String>(0))
            .optional()
            .map_err(self.err())?;
        text.as_deref().map(parse_time).transpose().map_err(self.err())
    }

    /// Marks the bulletin seen and records it accepted with none of its plays aired, in
    /// the one transaction (one fsync) the hand-off to the daemon already waited for.
    fn accept(&self, doc: &BulletinDoc, now: DateTime<Utc>) -> Result<(), BulletinError> {
        let json = serde_json::to_string(doc)
            .map_err(|e| BulletinError::Malformed(format!("bulletin {}: {e}", doc.id)))?;
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err())?;
        mark_seen(&tx, &doc.id, doc.expires_at, now).map_err(self.err())?;
        raise_newest(&tx, doc.issued_at).map_err(self.err())?;
        tx.execute(
            "INSERT OR IGNORE INTO accepted (id, doc, expires_at, accepted_at, plays, state, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, 'accepted', ?4)",
            params![doc.id, json, time_text(doc.expires_at), time_text(now), i64::from(doc.repeat) + 1],
        )
        .map_err(self.err())?;
        tx.commit().map_err(self.err())
    }

    /// Marks `id` seen and, if it was accepted and still to air, cancelled (one fsync).
    /// Returns the progress of the accepted bulletin it closed, if any.
    fn cancel(
        &self,
        id: &str,
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Progress>, BulletinError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err())?;
        mark_seen(&tx, id, expires_at, now).map_err(self.err())?;
        let open = tx
            .query_row(
                &format!(
                    "SELECT {PROGRESS_COLUMNS} FROM accepted WHERE id = ?1 AND state = 'accepted'"
                ),
                params![id],
                read_progress,
            )
            .optional()
            .map_err(self.err())?
            .transpose()?;
        tx.execute(
            "UPDATE accepted SET state = 'cancelled', reason = ?2, updated_at = ?3
             WHERE id = ?1 AND state = 'accepted'",
            params![id, Reason::Cancelled.to_string(), time_text(now)],
        )
        .map_err(self.err())?;
        tx.commit().map_err(self.err())?;
        Ok(open)
    }

    /// Counts one play of `id` that ended at `ended_at`; returns the stage it leaves the
    /// bulletin in (`None` when it is not accepted and still to air).
    fn play_ended(
        &self,
        id: &str,
        end: &PlayEnd,
        ended_at: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<Option<Stage>, BulletinError> {
        let Some(mut p) = self.get(id)?.filter(|p| p.stage == Stage::Accepted) else {
            return Ok(None);
        };
        match end {
            PlayEnd::Aired | PlayEnd::Lost => {
                p.ended += 1;
                p.aired += u32::from(*end == PlayEnd::Aired);
                // The core queues no repeat that would start after the expiry (its
                // `after_end`): such a bulletin is over too.
                let interval = chrono::Duration::seconds(p.doc.interval_secs as i64);
                if p.ended >= p.plays || ended_at + interval > p.doc.expires_at {
                    p.stage = Stage::Finished;
                }
            }
            PlayEnd::Dropped(reason) => {
                p.stage = Stage::Failed;
                p.reason = Some(reason.clone());
            }
        }
        self.conn()
            .execute(
                "UPDATE accepted SET aired = ?2, ended = ?3, state = ?4, reason = ?5, updated_at = ?6
                 WHERE id = ?1 AND state = 'accepted'",
                params![id, p.aired, p.ended, p.stage.as_str(), p.reason, time_text(now)],
            )
            .map_err(self.err())?;
        Ok(Some(p.stage))
    }

    /// Writes the counts a start reconciled from the ledger, and `stage` (the same, or
    /// finished, cancelled, failed with `p.reason`), if `p` is still accepted.
    fn update(&self, p: &Progress, stage: Stage, now: DateTime<Utc>) -> Result<(), BulletinError> {
        self.conn()
            .execute(
                "UPDATE accepted SET aired = ?2, ended = ?3, state = ?4, reason = ?5, updated_at = ?6
                 WHERE id = ?1 AND state = 'accepted'",
                params![p.doc.id, p.aired, p.ended, stage.as_str(), p.reason, time_text(now)],
            )
            .map_err(self.err())?;
        Ok(())
    }

    fn get(&self, id: &str) -> Result<Option<Progress>, BulletinError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!("SELECT {PROGRESS_COLUMNS} FROM accepted WHERE id = ?1"))
            .map_err(self.err())?;
        let row = stmt.query_row(params![id], read_progress).optional().map_err(self.err())?;
        row.transpose()
    }

    /// Accepted bulletins still to air, oldest first.
    fn pending(&self) -> Result<Vec<Progress>, BulletinError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!(
                "SELECT {PROGRESS_COLUMNS} FROM accepted WHERE state = 'accepted' ORDER BY accepted_at, id"
            ))
            .map_err(self.err())?;
        let rows = stmt.query_map([], read_progress).map_err(self.err())?;
        let mut out = Vec::new();
        for row in rows {
            match row.map_err(self.err())? {
                Ok(p) => out.push(p),
                // One unreadable row must not hold back the others.
                Err(e) => tracing::error!("{e}"),
            }
        }
        Ok(out)
    }

    fn last_event(&self) -> Result<u64, BulletinError> {
        let n = self
            .conn()
            .query_row("SELECT last_event FROM cursor WHERE k = 0", [], |r| r.get::<_, i64>(0))
            .optional()
            .map_err(self.err())?;
        Ok(n.unwrap_or(0) as u64)
    }

    fn set_last_event(&self, seq: u64) -> Result<(), BulletinError> {
        self.conn()
            .execute(
                "INSERT INTO cursor (k, last_event) VALUES (0, ?1) ON CONFLICT(k) DO UPDATE SET last_event = max(last_event, ?1)",
                params![seq as i64],
            )
            .map_err(self.err())?;
        Ok(())
    }
}

const PROGRESS_COLUMNS: &str =
    "id, doc, accepted_at, plays, aired, ended, state, reason, updated_at";

/// A row of `accepted`; the inner error names a row whose content cannot be read.
fn read_progress(row: &rusqlite::Row<'_>) -> rusqlite::Result<Result<Progress, BulletinError>> {
    let id: String = row.get(0)?;
    let doc: String = row.get(1)?;
    let stage: String = row.get(6)?;
    let doc = match serde_json::from_str::<BulletinDoc>(&doc) {
        Ok(doc) => doc,
        Err(e) => {
            return Ok(Err(BulletinError::Malformed(format!(
                "accepted bulletin {id} in {DB_FILE}: {e}; it cannot be resumed"
            ))));
        }
    };
    let Some(stage) = Stage::parse(&stage) else {
        return Ok(Err(BulletinError::Malformed(format!(
            "accepted bulletin {id} in {DB_FILE}: unknown state {stage:?}"
        ))));
    };
    Ok(Ok(Progress {
        doc,
        accepted_at: parse_time(&row.get::<_, String>(2)?)?,
        plays: row.get(3)?,
        aired: row.get(4)?,
        ended: row.get(5)?,
        stage,
        reason: row.get(7)?,
        updated_at: parse_time(&row.get::<_, String>(8)?)?,
        last_planned: None,
    }))
}

/// Raises the high-water mark of accepted bulletins' `issued_at` (texts in one fixed
/// format, so they compare as instants do).
fn raise_newest(tx: &rusqlite::Transaction<'_>, issued_at: DateTime<Utc>) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO newest (k, issued_at) VALUES (0, ?1)
         ON CONFLICT(k) DO UPDATE SET issued_at = max(issued_at, excluded.issued_at)",
        params![time_text(issued_at)],
    )?;
    Ok(())
}

/// Marks `id` seen until `expires_at` and forgets what expired a day before `now`.
fn mark_seen(
    tx: &rusqlite::Transaction<'_>,
    id: &str,
    expires_at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT OR IGNORE INTO seen (id, expires_at) VALUES (?1, ?2)",
        params![id, time_text(expires_at)],
    )?;
    // Kept a day past expiry: an expired replay is refused by its expiry anyway. An
    // accepted bulletin still to air stays until a start-up has accounted for it.
    let horizon = time_text(now - chrono::Duration::days(1));
    tx.execute("DELETE FROM seen WHERE expires_at < ?1", params![horizon])?;
    tx.execute(
        "DELETE FROM accepted WHERE expires_at < ?1 AND state != 'accepted'",
        params![horizon],
    )?;
    Ok(())
}

/// A bulletin handed to the daemon whose start and end are still to be reported.
#[derive(Debug, Clone)]
struct Tracked {
    issued_at: DateTime<Utc>,
    plays: u32,
    started: Vec<DateTime<Utc>>,
    sounding: bool,
    /// `started` was reported: at its first sound here (the tone or the first play), or
    /// before a restart (resumed with a play already aired).
    start_reported: bool,
}

/// The receiver. Build with [`Receiver::new`], then [`Receiver::run`].
pub struct Receiver {
    config: ReceiverConfig,
    clock: SharedClock,
    http: reqwest::Client,
    seen: Arc<Seen>,
    syncer: Arc<Syncer>,
    output: Output,
    reporter: Reporter,
    tracked: Arc<Mutex<HashMap<String, Tracked>>>,
    /// Ids of the bulletins handed to the daemon by this process. Its lock also orders a
    /// hand-off against a cancel: a bulletin whose audio arrives in a retry task is
    /// either handed over before the cancel (which then stops it in the daemon) or not
    /// at all, and one cancelled before it was handed over gets its ledger record here,
    /// since the daemon never heard of it.
    handed: Arc<Mutex<HashSet<String>>>,
    /// The daemon's emergency play records and its ledger (see [`Receiver::follow`]).
    station: Option<(tokio::sync::mpsc::UnboundedReceiver<crate::station::ledger::Entry>, PathBuf)>,
}

/// Posts delivery reports without holding up the bulletin path.
#[derive(Clone)]
struct Reporter {
    http: reqwest::Client,
    url: String,
    token: String,
}

impl Reporter {
    fn send(&self, report: DeliveryReport) {
        self.send_all(vec![report]);
    }

    /// Posts `reports` in one request (a JSON array when there are several).
    fn send_all(&self, reports: Vec<DeliveryReport>) {
        let Some(first) = reports.first() else { return };
        let (id, state) = (first.bulletin_id.clone(), first.state.as_str());
        let body = match reports.as_slice() {
            [one] => serde_json::to_vec(one),
            many => serde_json::to_vec(many),
        };
        let body = match body {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(%id, "delivery report: {e}");
                return;
            }
        };
        let me = self.clone();
        tokio::spawn(async move {
            for attempt in 0..6u32 {
                let sent = me
                    .http
                    .post(&me.url)
                    .bearer_auth(&me.token)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone())
                    .send()
                    .await;
                match sent {
                    Ok(r) if r.status().is_success() => return,
                    Ok(r) if r.status().is_client_error() => {
                        tracing::warn!(%id, status = %r.status(), "central refused a delivery report");
                        return;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(500 << attempt)).await,
                }
            }
            tracing::warn!(%id, state, "delivery report not sent");
        });
    }
}

/// Writes the shipped tone into `dir` (once) and returns its path.
pub fn install_tone(dir: &Path) -> Result<PathBuf, BulletinError> {
    let path = dir.join("chuong-bao.wav");
    let err = |source| BulletinError::Tone { path: path.display().to_string(), source };
    if std::fs::read(&path).ok().as_deref() != Some(TONE_WAV) {
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = dir.join("chuong-bao.wav.tmp");
        std::fs::write(&tmp, TONE_WAV).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
    }
    Ok(path)
}

/// Checks a bulletin envelope against everything but the seen-set and the issue
/// high-water mark (see the module docs): the signature, the bounds of every field, the
/// target list, the expiry.
pub fn verify_bulletin(
    key: &PublicKey,
    envelope: &SignedEnvelope,
    station: &str,
    now: DateTime<Utc>,
) -> Result<BulletinDoc, BulletinError> {
    let doc = signed_bulletin(key, envelope)?;
    check_bulletin(doc, station, now)
}

/// The signed bulletin in `envelope`, with only its signature and shape checked.
fn signed_bulletin(
    key: &PublicKey,
    envelope: &SignedEnvelope,
) -> Result<BulletinDoc, BulletinError> {
    let payload = key.verify_envelope(DocumentKind::Bulletin, envelope)?;
    serde_json::from_slice(&payload)
        .map_err(|e| BulletinError::Malformed(format!("signed bulletin: {e}")))
}

/// The checks of [`verify_bulletin`] after the signature.
fn check_bulletin(
    doc: BulletinDoc,
    station: &str,
    now: DateTime<Utc>,
) -> Result<BulletinDoc, BulletinError> {
    doc.check_bounds().map_err(|why| BulletinError::OutOfRange(format!("{}: {why}", doc.id)))?;
    if !doc.is_for(station) {
        return Err(BulletinError::NotForUs { id: doc.id, station: station.to_string() });
    }
    if now > doc.expires_at {
        return Err(BulletinError::Expired { id: doc.id, expires_at: doc.expires_at, now });
    }
    Ok(doc)
}

/// The event number to resume after once this event is handled: the number the province
/// signed into the document, which must be the number the event came with. A document
/// from an older central carries none; then the event's own number stands (central
/// treats a number beyond its newest event as a fresh start, so a forged one costs a
/// resend, not silence).
fn resume_after(event_seq: u64, signed: Option<u64>) -> Result<u64, BulletinError> {
    match signed {
        Some(signed) if signed != event_seq => {
            Err(BulletinError::Renumbered { got: event_seq, signed })
        }
        _ if event_seq > crate::protocol::bounds::MAX_EVENT_SEQ => {
            Err(BulletinError::OutOfRange(format!(
                "event number {event_seq} is beyond {}",
                crate::protocol::bounds::MAX_EVENT_SEQ
            )))
        }
        _ => Ok(event_seq),
    }
}

impl Receiver {
    pub fn new(
        config: ReceiverConfig,
        clock: SharedClock,
        output: Output,
    ) -> Result<Self, BulletinError> {
        let root = config.sync.cache_dir.clone();
        std::fs::create_dir_all(&root)
            .map_err(|source| BulletinError::Tone { path: root.display().to_string(), source })?;
        let seen = Arc::new(Seen::open(&root.join(DB_FILE))?);
        let syncer = Arc::new(Syncer::new(config.sync.clone(), clock.clone())?);
        let url = config.sync.central.clone();
        let http = config
            .sync
            .client_builder()?
            .build()
            .map_err(|source| BulletinError::Http { url, source })?;
        let reporter = Reporter {
            http: http.clone(),
            url: format!("{}/api/v1/station/bulletins/delivery", config.sync.central),
            token: config.sync.token.clone(),
        };
        Ok(Self {
            config,
            clock,
            http,
            seen,
            syncer,
            output,
            reporter,
            tracked: Arc::new(Mutex::new(HashMap::new())),
            handed: Arc::new(Mutex::new(HashSet::new())),
            station: None,
        })
    }

    /// Keeps each accepted bulletin's progress from the daemon's records of its plays
    /// ([`super::Station::bulletin_records`]), and resumes what a stop left unaired on
    /// start; `ledger` is the daemon's, read on start to count plays whose record was
    /// durable before the progress was.
    pub fn follow(
        mut self,
        records: tokio::sync::mpsc::UnboundedReceiver<crate::station::ledger::Entry>,
        ledger: PathBuf,
    ) -> Self {
        self.station = Some((records, ledger));
        self
    }

    /// A copy for a task of its own (a bulletin whose audio is being retried), sharing
    /// the store, the cache, the daemon and the reporter.
    fn detached(&self) -> Self {
        Self {
            config: self.config.clone(),
            clock: self.clock.clone(),
            http: self.http.clone(),
            seen: self.seen.clone(),
            syncer: self.syncer.clone(),
            output: self.output.clone(),
            reporter: self.reporter.clone(),
            tracked: self.tracked.clone(),
            handed: self.handed.clone(),
            station: None,
        }
    }

    /// Whether accepted bulletin `id` was closed (cancelled, failed, finished) since.
    fn withdrawn(&self, id: &str) -> bool {
        matches!(self.seen.get(id), Ok(Some(p)) if p.stage != Stage::Accepted)
    }

    fn report(
        &self,
        id: &str,
        state: DeliveryState,
        latency_ms: Option<i64>,
        reason: Option<Reason>,
    ) {
        self.reporter.send(
            DeliveryReport {
                bulletin_id: id.to_string(),
                state,
                at: self.clock.now(),
                latency_ms,
                reason: None,
                reason_code: None,
            }
            .with_reason(reason),
        );
    }

    /// Runs until `shutdown` resolves. `status` (the daemon's) is watched to report when
    /// each bulletin started and finished.
    pub async fn run(
        mut self,
        status: Option<tokio::sync::watch::Receiver<StationStatus>>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        if let Some(status) = status {
            tokio::spawn(track(
                status,
                self.tracked.clone(),
                self.reporter.clone(),
                self.clock.clone(),
            ));
        }
        tokio::pin!(shutdown);
        if let Some((records, ledger)) = self.station.take() {
            tokio::spawn(progress(records, self.seen.clone(), self.clock.clone()));
            // Before the first event is read: a cancel that arrives now finds the
            // bulletin already back in the daemon's queue.
            tokio::select! {
                () = &mut shutdown => return,
                () = self.resume(&ledger) => {}
            }
        }
        let mut attempt = 0u32;
        loop {
            let result = tokio::select! {
                () = &mut shutdown => return,
                r = self.once() => r,
            };
            match result {
                Ok(()) => attempt = 0,
                Err(e) => {
                    if matches!(&e, BulletinError::Http { source, .. } if crate::station::sync::certificate_refused(source))
                    {
                        tracing::error!("bulletin stream: {e}");
                    } else {
                        tracing::warn!("bulletin stream: {e}");
                    }
                    // The fallback: one poll, so a link that cannot hold a stream still
                    // gets its bulletins.
                    if self.config.mode == Mode::Stream {
                        let polled = tokio::select! {
                            () = &mut shutdown => return,
                            r = self.poll(0) => r,
                        };
                        if let Err(e) = polled {
                            tracing::warn!("bulletin poll: {e}");
                        }
                    }
                    let delay = self.config.backoff.delay(attempt, rand::random::<f64>());
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    async fn once(&mut self) -> Result<(), BulletinError> {
        match self.config.mode {
            Mode::Stream => self.stream().await,
            Mode::Poll => self.poll(25).await,
        }
    }

    /// One poll request (waiting up to `wait` s for an event).
    pub async fn poll(&mut self, wait: u64) -> Result<(), BulletinError> {
        let after = self.seen.last_event()?;
        let url = format!(
            "{}/api/v1/station/events/poll?after={after}&wait={wait}",
            self.config.sync.central
        );
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.config.sync.token)
            .timeout(Duration::from_secs(wait + 30))
            .send()
            .await
            .map_err(|source| BulletinError::Http { url: url.clone(), source })?;
        if !response.status().is_success() {
            return Err(BulletinError::Status {
                what: "bulletin poll".into(),
                status: response.status(),
            });
        }
        let body = read_limited(response, MAX_POLL_BYTES, "a bulletin poll answer", &url).await?;
        let events: BulletinEvents = serde_json::from_slice(&body)
            .map_err(|e| BulletinError::Malformed(format!("bulletin poll answer: {e}")))?;
        for event in events.events {
            self.handle(event).await;
        }
        Ok(())
    }

    /// Holds the event stream open until it ends or goes silent.
    async fn stream(&mut self) -> Result<(), BulletinError> {
        let after = self.seen.last_event()?;
        let url = format!("{}/api/v1/station/events", self.config.sync.central);
        let response = self
            .http
            .get(&url)
            .bearer_auth(&self.config.sync.token)
            .header("Last-Event-ID", after.to_string())
            .header(reqwest::header::ACCEPT, "text/event-stream")
            .send()
            .await
            .map_err(|source| BulletinError::Http { url: url.clone(), source })?;
        if !response.status().is_success() {
            return Err(BulletinError::Status {
                what: "bulletin stream".into(),
                status: response.status(),
            });
        }
        tracing::info!(after, "bulletin stream connected");
        let mut body = response.bytes_stream();
        let mut decoder = SseDecoder::default();
        loop {
            let chunk = match tokio::time::timeout(STREAM_IDLE, body.next()).await {
                Err(_) => {
                    return Err(BulletinError::Malformed(format!(
                        "no heartbeat for {} s: reconnecting",
                        STREAM_IDLE.as_secs()
                    )));
                }
                Ok(None) => return Ok(()),
                Ok(Some(Err(source))) => return Err(BulletinError::Http { url, source }),
                Ok(Some(Ok(chunk))) => chunk,
            };
            for block in decoder.push(&chunk)? {
                if let Some(data) = sse_data(&block) {
                    match serde_json::from_str::<BulletinEvent>(&data) {
                        Ok(event) => self.handle(event).await,
                        Err(e) => tracing::warn!("bulletin event is not valid JSON: {e}"),
                    }
                }
            }
        }
    }

    /// Handles one event; a refusal is logged (and reported), never fatal. The resume
    /// point moves only past an event the province signed, to the number it signed:
    /// one forged event with a huge id must not make the station skip every later one.
    pub async fn handle(&mut self, event: BulletinEvent) {
        let handled = match event.envelope.kind {
            DocumentKind::BulletinCancel => self.cancel(&event.envelope, event.seq),
            _ => self.bulletin(&event.envelope, event.seq).await,
        };
        let Some(seq) = handled else { return };
        let seen = self.seen.clone();
        match tokio::task::spawn_blocking(move || seen.set_last_event(seq)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("{e}"),
            Err(e) => tracing::error!("replay store: {e}"),
        }
    }

    /// The signed cancel order in `envelope`, if the province signed it: `Ok` with the
    /// order when it is for this station and within bounds, `Err(())` (logged) when it
    /// is signed but not to act on.
    fn signed_cancel(&self, envelope: &SignedEnvelope) -> Option<Result<BulletinCancelDoc, ()>> {
        let checked = self
            .config
            .sync
            .public_key
            .verify_envelope(DocumentKind::BulletinCancel, envelope)
            .map_err(BulletinError::from)
            .and_then(|p| {
                serde_json::from_slice::<BulletinCancelDoc>(&p)
                    .map_err(|e| BulletinError::Malformed(format!("signed cancel: {e}")))
            });
        match checked {
            Ok(o) => match o.check_bounds() {
                Err(why) => {
                    tracing::warn!(id = %o.id, "signed cancel refused: {why}");
                    Some(Err(()))
                }
                Ok(()) if o.is_for(&self.config.sync.station_id) => Some(Ok(o)),
                Ok(()) => {
                    tracing::warn!(id = %o.id, "cancel for other stations: ignored");
                    Some(Err(()))
                }
            },
            Err(e) => {
                tracing::warn!("cancel refused: {e}");
                None
            }
        }
    }

    /// The signed cancel order in `envelope` if it is for this station (else logged).
    fn verify_cancel(&self, envelope: &SignedEnvelope) -> Option<BulletinCancelDoc> {
        self.signed_cancel(envelope).and_then(Result::ok)
    }

    /// Handles a cancel event; returns where the stream resumes after it, `None` when
    /// the province did not sign it.
    fn cancel(&mut self, envelope: &SignedEnvelope, event_seq: u64) -> Option<u64> {
        let now = self.clock.now();
        let order = match self.signed_cancel(envelope)? {
            Ok(order) => order,
            Err(()) => return self.resume_or_log(event_seq, None),
        };
        let resume = self.resume_or_log(event_seq, order.event_seq)?;
        self.cancel_order(order, now);
        Some(resume)
    }

    /// [`resume_after`], logging a refusal.
    fn resume_or_log(&self, event_seq: u64, signed: Option<u64>) -> Option<u64> {
        resume_after(event_seq, signed).inspect_err(|e| tracing::warn!("{e}")).ok()
    }

    fn cancel_order(&mut self, order: BulletinCancelDoc, now: DateTime<Utc>) {
        tracing::info!(id = %order.id, "bulletin cancelled by the province");
        // Held to the end: a retry task does not hand the bulletin over in between.
        let handed = self.handed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A bulletin not yet received is now "seen": it will never play; one accepted
        // is no longer resumed. Written before the event's id becomes the cursor
        // (`handle`): a stop in between gets the cancel again, which changes nothing.
        let closed = match self.seen.cancel(&order.id, order.expires_at, now) {
            Ok(closed) => closed,
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        };
        if let Ok(mut tracked) = self.tracked.lock() {
            tracked.remove(&order.id);
        }
        let Output::Daemon { handle, .. } = &self.output else { return };
        let sent = if handed.contains(&order.id) {
            // The daemon stops it where it plays or is queued, and records that.
            handle.send(StationCommand::CancelBulletin { id: order.id.clone() })
        } else if let Some(p) = closed {
            // Accepted but its audio had not arrived: the daemon never heard of it, so
            // its ledger record (what the station did with it) is written from here.
            tracing::info!(id = %order.id, "bulletin cancelled before its audio arrived: not aired");
            handle.send(StationCommand::Record(Box::new(unaired(&p, Reason::Cancelled, now))))
        } else {
            true
        };
        if !sent {
            tracing::error!("{}", BulletinError::DaemonGone);
        }
    }

    /// Handles a bulletin event; returns where the stream resumes after it, `None` when
    /// the province did not sign it (or signed it for another event number).
    async fn bulletin(&mut self, envelope: &SignedEnvelope, event_seq: u64) -> Option<u64> {
        let signed = match signed_bulletin(&self.config.sync.public_key, envelope) {
            Ok(doc) => doc,
            Err(e) => {
                tracing::warn!("{e}");
                return None;
            }
        };
        let resume = self.resume_or_log(event_seq, signed.event_seq)?;
        self.signed_bulletin(signed).await;
        Some(resume)
    }

    /// A bulletin the province signed: checked, then fetched and handed over.
    async fn signed_bulletin(&mut self, signed: BulletinDoc) {
        let now = self.clock.now();
        let station = self.config.sync.station_id.clone();
        let doc = match check_bulletin(signed, &station, now) {
            Ok(doc) => doc,
            Err(e) => {
                tracing::warn!("{e}");
                if let BulletinError::Expired { id, expires_at, .. } = &e {
                    self.report(id, DeliveryState::Failed, None, Some(e.reason()));
                    let _ = self.seen.insert(id, *expires_at, now);
                }
                return;
            }
        };
        match self.seen.contains(&doc.id) {
            Ok(false) => {}
            Ok(true) => {
                tracing::warn!("{}", BulletinError::Replay(doc.id.clone()));
                return;
            }
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        }
        // A station whose clock went back forgets seen ids early (they are kept a day
        // past expiry by its own clock): an old genuine bulletin replayed then would
        // look new. One that had expired before the newest bulletin this station has
        // seen was issued (issued more than its own validity earlier) is stale, whatever
        // the clock says.
        match self.seen.newest_issued() {
            Ok(Some(newest)) if doc.expires_at < newest => {
                let e =
                    BulletinError::Stale { id: doc.id.clone(), issued_at: doc.issued_at, newest };
                tracing::warn!("{e}");
                self.report(&doc.id, DeliveryState::Failed, None, Some(e.reason()));
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::error!("{e}"),
        }
        // Reported after the hand-off: the bulletin's path comes first.
        let delivered_at = now;
        let verified_at = self.clock.now();
        tracing::info!(id = %doc.id, priority = %doc.priority, "bulletin verified; fetching its audio first");
        // Seen before it is handed over: a stop after this never takes it as new again.
        // A bulletin for the daemon is recorded accepted in the same transaction, so a
        // stop before all its plays aired resumes it on start (fetching its audio again
        // if it had not arrived). That one fsync runs off the async workers *while* the
        // audio downloads: on a station's SD card it would otherwise add its whole
        // latency to the warning's.
        let accept =
            matches!(self.output, Output::Daemon { .. }) && doc.priority != BulletinPriority::Test;
        let (seen, accepted) = (self.seen.clone(), doc.clone());
        let written = tokio::task::spawn_blocking(move || {
            if accept { seen.accept(&accepted, now) } else { seen.insert_doc(&accepted, now) }
        });
        let fetched = self.fetch(&doc, delivered_at, false).await;
        match written.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("{e}"),
            Err(e) => tracing::error!("replay store: {e}"),
        }
        match fetched {
            Ok(ready) => self.hand_off(&doc, ready, delivered_at, verified_at),
            // Retried in a task of its own until it expires: the stream must go on
            // meanwhile — another warning, or the cancel of this one, must not wait
            // behind a download that keeps failing.
            Err(e) if self.clock.now() < doc.expires_at => {
                tracing::warn!(id = %doc.id, "bulletin audio: {e}; retrying while the stream goes on");
                let courier = self.detached();
                tokio::spawn(async move {
                    match courier.fetch(&doc, delivered_at, true).await {
                        Ok(ready) => courier.hand_off(&doc, ready, delivered_at, verified_at),
                        Err(e) => courier.fetch_failed(&doc, accept, e),
                    }
                });
            }
            Err(e) => self.fetch_failed(&doc, accept, e),
        }
    }

    /// A bulletin whose audio did not arrive before it expired: an accepted one is closed
    /// with a ledger record saying why; any other is reported failed.
    fn fetch_failed(&self, doc: &BulletinDoc, accept: bool, e: BulletinError) {
        if let BulletinError::Withdrawn(_) = e {
            tracing::info!(id = %doc.id, "bulletin cancelled while its audio was retried: not aired");
            return;
        }
        tracing::error!(id = %doc.id, "bulletin audio: {e}");
        let progress = if accept { self.seen.get(&doc.id).ok().flatten() } else { None };
        match (&self.output, progress) {
            // Accepted, never aired: closed with a ledger record saying why.
            (Output::Daemon { handle, .. }, Some(mut p)) => {
                let reason = Reason::Failure(format!("its audio could not be fetched: {e}"));
                self.give_up(handle, &mut p, reason, self.clock.now());
            }
            _ => self.report(&doc.id, DeliveryState::Failed, None, Some(e.reason())),
        }
    }

    /// Hands a bulletin whose audio is in the cache to the daemon (or the channel), then
    /// reports it delivered and verified.
    fn hand_off(
        &self,
        doc: &BulletinDoc,
        ready: Ready,
        delivered_at: DateTime<Utc>,
        verified_at: DateTime<Utc>,
    ) {
        // Held until the daemon has it: see `handed`.
        let mut handed = self.handed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.withdrawn(&doc.id) {
            tracing::info!(id = %doc.id, "bulletin audio arrived after its cancel: not aired");
            return;
        }
        if doc.priority == BulletinPriority::Test {
            tracing::info!(id = %doc.id, "test bulletin verified end to end: not aired");
            self.report(&doc.id, DeliveryState::TestOk, None, None);
        }
        match &self.output {
            Output::Channel(tx) => {
                let _ = tx.send(ready);
            }
            Output::Daemon { .. } if doc.priority == BulletinPriority::Test => {}
            Output::Daemon { handle, tone } => {
                handed.insert(doc.id.clone());
                if let Ok(mut tracked) = self.tracked.lock() {
                    tracked.insert(
                        doc.id.clone(),
                        Tracked {
                            issued_at: doc.issued_at,
                            plays: doc.repeat + 1,
                            started: Vec::new(),
                            sounding: false,
                            start_reported: false,
                        },
                    );
                }
                let sent = handle.send(StationCommand::Emergency {
                    id: doc.id.clone(),
                    title: doc.title.clone(),
                    audio: ready.audio,
                    repeat: doc.repeat,
                    expires: Some(doc.expires_at),
                    gain_db: doc.gain_db,
                    interval: Duration::from_secs(doc.interval_secs),
                    tone: doc.tone.then(|| tone.clone()),
                });
                if !sent {
                    self.report(
                        &doc.id,
                        DeliveryState::Failed,
                        None,
                        Some(Reason::Failure("station daemon stopped".into())),
                    );
                }
            }
        }
        self.reporter.send_all(
            [(DeliveryState::Delivered, delivered_at), (DeliveryState::Verified, verified_at)]
                .map(|(state, at)| DeliveryReport {
                    bulletin_id: doc.id.clone(),
                    state,
                    at,
                    latency_ms: None,
                    reason: None,
                    reason_code: None,
                })
                .to_vec(),
        );
    }

    /// Hands the daemon again every accepted bulletin a stop left unaired, oldest first,
    /// with only its remaining plays; one that expired meanwhile gets a `missed` ledger
    /// record and a `failed` report saying so.
    ///
    /// A play cut by the stop counts as not aired: it airs again from the start. Airing a
    /// flood warning twice is better than not at all, and nobody can tell which part of
    /// a cut play was heard.
    async fn resume(&mut self, ledger: &Path) {
        let Output::Daemon { handle, tone } = self.output.clone() else { return };
        let seen = self.seen.clone();
        let pending = match tokio::task::spawn_blocking(move || seen.pending()).await {
            Ok(Ok(pending)) => pending,
            Ok(Err(e)) => {
                tracing::error!("cannot read the accepted bulletins, none is resumed: {e}");
                return;
            }
            Err(e) => {
                tracing::error!("replay store: {e}");
                return;
            }
        };
        let cancelled =
            if pending.is_empty() { HashSet::new() } else { self.cancels_waiting().await };
        for mut p in pending {
            if reconcile(&mut p, ledger) {
                // The store lagged the ledger (a stop between the two writes).
                self.close(&p, Stage::Accepted, self.clock.now());
            }
            let id = p.doc.id.clone();
            let now = self.clock.now();
            if p.ended >= p.plays {
                tracing::info!(id = %id, aired = p.aired, "bulletin had ended before the stop");
                self.close(&p, Stage::Finished, now);
                self.report(&id, DeliveryState::Finished, None, None);
                continue;
            }
            if cancelled.contains(&id) {
                // As the core records a queued play a cancel withdrew. The cancel event
                // itself is handled again from the stream: it changes nothing more.
                tracing::info!(id = %id, "bulletin cancelled while the station was stopped: not resumed");
                let entry = unaired(&p, Reason::Cancelled, now);
                if !handle.send(StationCommand::Record(Box::new(entry))) {
                    tracing::error!("{}", BulletinError::DaemonGone);
                }
                p.reason = Some(Reason::Cancelled.to_string());
                self.close(&p, Stage::Cancelled, now);
                continue;
            }
            if now > p.doc.expires_at {
                let reason = Reason::Expired(Some(format!(
                    "{EXPIRED_WHILE_STOPPED} (expired at {}, {} of {} plays aired)",
                    p.doc.expires_at.to_rfc3339(),
                    p.aired,
                    p.plays
                )));
                self.give_up(&handle, &mut p, reason, now);
                continue;
            }
            let ready = match self.recheck(&p.doc, p.accepted_at, false).await {
                Ok(ready) => ready,
                // As for a new bulletin: retried in a task of its own, so the other
                // resumed bulletins and the stream do not wait for it.
                Err(e) if self.clock.now() < p.doc.expires_at => {
                    tracing::warn!(id = %id, "resumed bulletin's audio: {e}; retrying while the stream goes on");
                    let (courier, handle, tone) = (self.detached(), handle.clone(), tone.clone());
                    tokio::spawn(async move {
                        match courier.recheck(&p.doc, p.accepted_at, true).await {
                            Ok(ready) => {
                                courier.resume_hand_off(&p, &handle, &tone, ready);
                            }
                            Err(BulletinError::Withdrawn(_)) => {}
                            Err(e) => {
                                let reason = Reason::Failure(format!(
                                    "audio missing after a restart and not fetched: {e}"
                                ));
                                courier.give_up(&handle, &mut p, reason, courier.clock.now());
                            }
                        }
                    });
                    continue;
                }
                Err(e) => {
                    let reason = Reason::Failure(format!(
                        "audio missing after a restart and not fetched: {e}"
                    ));
                    self.give_up(&handle, &mut p, reason, self.clock.now());
                    continue;
                }
            };
            if !self.resume_hand_off(&p, &handle, &tone, ready) {
                return;
            }
        }
    }

    /// Hands a resumed bulletin's remaining plays to the daemon; false when it has stopped.
    fn resume_hand_off(
        &self,
        p: &Progress,
        handle: &StationHandle,
        tone: &Path,
        ready: Ready,
    ) -> bool {
        // Held until the daemon has it: see `handed`.
        let mut handed = self.handed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let id = p.doc.id.clone();
        if self.withdrawn(&id) {
            tracing::info!(id = %id, "resumed bulletin's audio arrived after its cancel: not aired");
            return true;
        }
        handed.insert(id.clone());
        let remaining = p.plays - p.ended;
        tracing::info!(id = %id, remaining, aired = p.aired, "resuming a bulletin the stop left unaired");
        if let Ok(mut tracked) = self.tracked.lock() {
            tracked.insert(
                id.clone(),
                Tracked {
                    issued_at: p.doc.issued_at,
                    plays: remaining,
                    started: Vec::new(),
                    sounding: false,
                    start_reported: p.aired > 0,
                },
            );
        }
        let sent = handle.send(StationCommand::Emergency {
            id,
            title: p.doc.title.clone(),
            audio: ready.audio,
            repeat: remaining - 1,
            expires: Some(p.doc.expires_at),
            gain_db: p.doc.gain_db,
            interval: Duration::from_secs(p.doc.interval_secs),
            // The tone announces the first play only.
            tone: (p.doc.tone && p.aired == 0).then(|| tone.to_path_buf()),
        });
        if !sent {
            tracing::error!("{}", BulletinError::DaemonGone);
        }
        sent
    }

    /// Ids of the bulletins cancelled by events central holds after the cursor: read
    /// before resuming, so one cancelled while the station was stopped does not sound
    /// again for the moment the stream takes to deliver the cancel. Bounded by
    /// [`RESUME_POLL`]: with central out of reach the resume does not wait for it.
    async fn cancels_waiting(&self) -> HashSet<String> {
        let after = match self.seen.last_event() {
            Ok(after) => after,
            Err(e) => {
                tracing::warn!("{e}");
                return HashSet::new();
            }
        };
        let url =
            format!("{}/api/v1/station/events/poll?after={after}&wait=0", self.config.sync.central);
        let polled = async {
            let response = self
                .http
                .get(&url)
                .bearer_auth(&self.config.sync.token)
                .timeout(RESUME_POLL)
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|source| BulletinError::Http { url: url.clone(), source })?;
            let body =
                read_limited(response, MAX_POLL_BYTES, "a bulletin poll answer", &url).await?;
            serde_json::from_slice::<BulletinEvents>(&body)
                .map_err(|e| BulletinError::Malformed(format!("bulletin poll answer: {e}")))
        };
        match polled.await {
            Ok(events) => events
                .events
                .iter()
                .filter(|e| e.envelope.kind == DocumentKind::BulletinCancel)
                .filter_map(|e| self.verify_cancel(&e.envelope))
                .map(|order| order.id)
                .collect(),
            Err(e) => {
                tracing::warn!(
                    "cannot ask central for cancels before resuming bulletins ({e}); the stream will deliver them"
                );
                HashSet::new()
            }
        }
    }

    /// Ends an accepted bulletin that can no longer air: a `missed` ledger record (what
    /// the ledger says of anything the station was not running for), a `failed` report
    /// with `reason`, and the store closed.
    fn give_up(
        &self,
        handle: &StationHandle,
        p: &mut Progress,
        reason: Reason,
        now: DateTime<Utc>,
    ) {
        // Under `handed`'s lock, and only while still accepted: a cancel that came first
        // has already written its ledger record, and a bulletin gets one, not two.
        let _handed = self.handed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.withdrawn(&p.doc.id) {
            tracing::info!(id = %p.doc.id, "bulletin cancelled before it could air: not aired");
            return;
        }
        tracing::warn!(id = %p.doc.id, "bulletin not aired: {reason}");
        let entry = unaired(p, reason.clone(), now);
        if !handle.send(StationCommand::Record(Box::new(entry))) {
            tracing::error!("{}", BulletinError::DaemonGone);
        }
        p.reason = Some(reason.to_string());
        self.close(p, Stage::Failed, now);
        self.report(&p.doc.id, DeliveryState::Failed, None, Some(reason));
    }

    /// Writes `p` as `stage` (logged, not fatal: the next start reconciles again).
    fn close(&self, p: &Progress, stage: Stage, now: DateTime<Utc>) {
        if let Err(e) = self.seen.update(p, stage, now) {
            tracing::error!("{e}");
        }
    }

    /// The bulletin's audio checked again in the cache: a file whose bytes no longer
    /// match its name is removed, and a missing one fetched again.
    async fn recheck(
        &self,
        doc: &BulletinDoc,
        received_at: DateTime<Utc>,
        retry: bool,
    ) -> Result<Ready, BulletinError> {
        let sha = doc.audio_sha256.clone();
        if crate::station::sync::cache::is_sha256(&sha) {
            let path = self.syncer.cache().audio_path(&sha);
            let checked = tokio::task::spawn_blocking(move || {
                match super::daemon::file_sha256(&path) {
                    Ok(actual) if actual != sha => {
                        tracing::warn!(path = %path.display(), "cached bulletin audio corrupt: fetching it again");
                        let _ = std::fs::remove_file(&path);
                    }
                    _ => {}
                }
            });
            let _ = checked.await;
        }
        self.fetch(doc, received_at, retry).await
    }

    /// Downloads the bulletin's audio into the sync cache: one try, or with `retry`
    /// again with the receiver's backoff until the bulletin expires or is cancelled. A
    /// bulletin is small: it is fetched whole into memory, its sha256 checked as it
    /// arrives, then written to the cache's temporary file and committed (fsync, rename)
    /// on the blocking pool, so a whole fleet's worth of disk waits never stalls the
    /// streams; the directory's fsync follows off the warning's path. It never queues
    /// behind the sync's programme downloads.
    async fn fetch(
        &self,
        doc: &BulletinDoc,
        received_at: DateTime<Utc>,
        retry: bool,
    ) -> Result<Ready, BulletinError> {
        let sha = doc.audio_sha256.clone();
        if !crate::station::sync::cache::is_sha256(&sha) {
            return Err(SyncError::BadName(sha).into());
        }
        let mut attempt = 0;
        let mut checked_at = self.clock.now();
        while !self.syncer.cache().contains(&sha) {
            match self.fetch_once(doc).await {
                Ok(at) => {
                    checked_at = at;
                    break;
                }
                // Until the bulletin expires: a warning that failed a few quick tries
                // (central restarting, a link dropping) must still air when the link
                // comes back, not be reported failed and forgotten.
                Err(e) if retry && self.clock.now() < doc.expires_at => {
                    if self.withdrawn(&doc.id) {
                        return Err(BulletinError::Withdrawn(doc.id.clone()));
                    }
                    tracing::warn!(id = %doc.id, "bulletin audio, retrying: {e}");
                    let delay = self.config.backoff.delay(attempt, rand::random::<f64>());
                    attempt = attempt.saturating_add(1);
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e),
            }
        }
        Ok(Ready {
            doc: doc.clone(),
            audio: self.syncer.cache().audio_path(&sha),
            received_at,
            checked_at,
            verified_at: self.clock.now(),
        })
    }

    async fn fetch_once(&self, doc: &BulletinDoc) -> Result<DateTime<Utc>, BulletinError> {
        let sha = doc.audio_sha256.clone();
        let url = format!("{}/api/v1/audio/{sha}", self.config.sync.central);
        let http = |source| BulletinError::Http { url: url.clone(), source };
        let response =
            self.http.get(&url).bearer_auth(&self.config.sync.token).send().await.map_err(http)?;
        if !response.status().is_success() {
            return Err(BulletinError::Status {
                what: "bulletin audio download".into(),
                status: response.status(),
            });
        }
        // Hashed as it arrives: the check is done when the last byte is, and no worker
        // spends a whole file's hashing in one go.
        // The chunks are kept as they came (no copy into one big buffer).
        let mut hasher = sha2::Sha256::new();
        let mut chunks = Vec::new();
        let mut got: u64 = 0;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(http)?;
            got += chunk.len() as u64;
            if got > doc.audio_size {
                return Err(SyncError::Oversize { sha256: sha, expected: doc.audio_size }.into());
            }
            hasher.update(&chunk);
            chunks.push(chunk);
        }
        if got < doc.audio_size {
            return Err(SyncError::Truncated { sha256: sha, got, expected: doc.audio_size }.into());
        }
        let actual = hex::encode(hasher.finalize());
        if actual != sha {
            return Err(SyncError::HashMismatch { expected: sha, actual }.into());
        }
        let checked = self.clock.now();
        let cache = crate::station::sync::Cache::open(self.syncer.cache().root())
            .map_err(SyncError::from)?;
        let committed =
            tokio::task::spawn_blocking(move || -> Result<DateTime<Utc>, BulletinError> {
                let partial = cache.partial_path(&sha);
                let write = || -> std::io::Result<()> {
                    use std::io::Write;
                    let mut file = std::fs::File::create(&partial)?;
                    for chunk in &chunks {
                        file.write_all(chunk)?;
                    }
                    Ok(())
                };
                write().map_err(|source| {
                    SyncError::Cache(crate::station::sync::CacheError {
                        path: partial.display().to_string(),
                        source,
                    })
                })?;
                cache.commit_whole(&sha).map_err(SyncError::from)?;
                Ok(checked)
            })
            .await;
        // The name's fsync, after the hand-off rather than before it: on a station's SD
        // card one fsync is tens of milliseconds of a warning's latency. A power cut
        // before it can only lose the file's name (never tear the file): a resumed
        // bulletin then fetches its audio again.
        if matches!(committed, Ok(Ok(_))) {
            let cache = self.syncer.cache().clone();
            tokio::task::spawn_blocking(move || {
                if let Err(e) = cache.sync_audio_dir() {
                    tracing::warn!("bulletin audio may need fetching again after a power cut: {e}");
                }
            });
        }
        match committed {
            Ok(result) => result,
            Err(e) => Err(BulletinError::Malformed(format!("audio check stopped: {e}"))),
        }
    }
}

/// Starts the receiver for a daemon configured with `central_url`, `token` and
/// `province_key` (returns `None`, with a log line, when one is missing). It stops when
/// the daemon's handle stops accepting commands or `shutdown` resolves. `records` are
/// the daemon's ([`super::Station::bulletin_records`]): with them it keeps each accepted
/// bulletin's progress and resumes what a stop left unaired.
pub fn spawn_for(
    config: &super::StationConfig,
    clock: SharedClock,
    handle: StationHandle,
    status: tokio::sync::watch::Receiver<StationStatus>,
    records: tokio::sync::mpsc::UnboundedReceiver<crate::station::ledger::Entry>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Option<tokio::task::JoinHandle<()>>, BulletinError> {
    let Some(sync) = super::uplink::sync_config(config)? else {
        tracing::info!("no central_url, token and province_key: bulletins are not received");
        return Ok(None);
    };
    let tone = install_tone(&config.data_dir.join("tone"))?;
    let receiver = Receiver::new(
        // Ten seconds at most between tries: an urgent warning must not wait out a long
        // backoff once the link is back.
        ReceiverConfig {
            sync,
            mode: Mode::Stream,
            backoff: Backoff { base: Duration::from_millis(500), max: Duration::from_secs(10) },
        },
        clock,
        Output::Daemon { handle, tone },
    )?
    .follow(records, config.ledger_path());
    Ok(Some(tokio::spawn(receiver.run(Some(status), shutdown))))
}

/// Largest event the stream may carry. A bulletin event is a few kilobytes (a district's
/// target list is the biggest part); anything larger is not central's, and buffering it
/// without end would grow the memory of the process that drives the loudspeakers.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Largest answer to a bulletin poll: the events one station may be owed (bulletins
/// are valid for at most 7 days, and rare).
pub const MAX_POLL_BYTES: usize = 4 * 1024 * 1024;

/// Cuts an SSE byte stream into blocks (each ended by a blank line), looking at every
/// byte once however the stream is chunked, and holding at most [`MAX_EVENT_BYTES`].
#[derive(Debug, Default)]
struct SseDecoder {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already searched for a block end.
    scanned: usize,
    /// Bytes looked at in all (a test checks the work stays linear).
    examined: u64,
}

impl SseDecoder {
    /// Adds `chunk` and returns the blocks it completed.
    fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, BulletinError> {
        self.buffer.extend_from_slice(chunk);
        let mut blocks = Vec::new();
        let mut start = 0;
        // A terminator may straddle the previous chunk: look back two bytes.
        let mut i = self.scanned.saturating_sub(2).max(start);
        while i < self.buffer.len() {
            self.examined += 1;
            if self.buffer[i] == b'\n' {
                let end = match (self.buffer.get(i + 1), self.buffer.get(i + 2)) {
                    (Some(b'\n'), _) => Some(i + 2),
                    (Some(b'\r'), Some(b'\n')) => Some(i + 3),
                    _ => None,
                };
                if let Some(end) = end {
                    blocks.push(self.buffer[start..i].to_vec());
                    start = end;
                    i = end;
                    continue;
                }
            }
            i += 1;
        }
        if start > 0 {
            self.buffer.drain(..start);
        }
        self.scanned = self.buffer.len();
        if self.buffer.len() > MAX_EVENT_BYTES {
            self.buffer = Vec::new();
            self.scanned = 0;
            return Err(BulletinError::TooLarge { what: "an event", limit: MAX_EVENT_BYTES });
        }
        Ok(blocks)
    }
}

/// The `data:` lines of one SSE block joined (comments and other fields ignored).
fn sse_data(block: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(block);
    let mut data: Option<String> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("data:") {
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(rest);
                }
                None => data = Some(rest.to_string()),
            }
        }
    }
    data
}

/// A response body of at most `limit` bytes (`what` names it in the refusal).
async fn read_limited(
    response: reqwest::Response,
    limit: usize,
    what: &'static str,
    url: &str,
) -> Result<Vec<u8>, BulletinError> {
    crate::station::sync::read_limited(response, limit).await.map_err(|e| match e {
        crate::station::sync::LimitedError::TooLarge => BulletinError::TooLarge { what, limit },
        crate::station::sync::LimitedError::Http(source) => {
            BulletinError::Http { url: url.to_string(), source }
        }
    })
}

/// The `missed` record of the plays of `p` a start found it could not air: planned at
/// that start (when the station found out), and always after every play of it already
/// in the ledger, whose key is `(item_id, planned)`.
fn unaired(p: &Progress, reason: Reason, now: DateTime<Utc>) -> crate::station::ledger::Entry {
    let after_plays = p.last_planned.map(|t| t + chrono::Duration::milliseconds(1));
    let planned = after_plays.map_or(now, |t| t.max(now));
    let mut entry = crate::station::ledger::Entry::missed(
        &p.doc.id,
        &p.doc.title,
        crate::schedule::Layer::Provincial,
        crate::schedule::Priority::Emergency,
        planned,
        reason,
    );
    entry.audio_sha256 = Some(p.doc.audio_sha256.clone());
    entry
}

/// The larger of the store's counts and the ledger's for `p`: a play's record is durable
/// in the ledger before its progress is, so a stop in between must not air it again.
/// Returns whether the ledger counted more.
fn reconcile(p: &mut Progress, ledger: &Path) -> bool {
    use crate::station::ledger::{Filter, Ledger};
    let filter = Filter { item_id: Some(p.doc.id.clone()), ..Filter::default() };
    let records = match Ledger::open_existing(ledger).and_then(|l| l.query(&filter)) {
        Ok(records) => records,
        Err(e) => {
            tracing::warn!(id = %p.doc.id, "cannot read the ledger, counting plays from {DB_FILE}: {e}");
            return false;
        }
    };
    let (mut aired, mut ended) = (0, 0);
    for r in records {
        p.last_planned = p.last_planned.max(Some(r.entry.planned));
        match play_end(&r.entry) {
            Some(PlayEnd::Aired) => {
                aired += 1;
                ended += 1;
            }
            Some(PlayEnd::Lost) => ended += 1,
            Some(PlayEnd::Dropped(_)) | None => {}
        }
    }
    let more = aired > p.aired || ended > p.ended;
    p.aired = p.aired.max(aired);
    p.ended = p.ended.max(ended);
    more
}

/// Counts each emergency play the daemon recorded into its bulletin's progress.
async fn progress(
    mut records: tokio::sync::mpsc::UnboundedReceiver<crate::station::ledger::Entry>,
    seen: Arc<Seen>,
    clock: SharedClock,
) {
    while let Some(entry) = records.recv().await {
        let Some(end) = play_end(&entry) else { continue };
        let (seen, now) = (seen.clone(), clock.now());
        let ended_at = entry.ended.unwrap_or(entry.planned);
        let written = tokio::task::spawn_blocking(move || {
            seen.play_ended(&entry.item_id, &end, ended_at, now)
        });
        match written.await {
            Ok(Ok(Some(stage))) if stage != Stage::Accepted => {
                tracing::info!(stage = stage.as_str(), "bulletin progress closed");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("{e}"),
            Err(e) => tracing::error!("replay store: {e}"),
        }
    }
}

/// Watches the daemon's status and reports `started` (with the latency from push to the
/// first sound) and `finished` (after the last play) for each tracked bulletin.
async fn track(
    mut status: tokio::sync::watch::Receiver<StationStatus>,
    tracked: Arc<Mutex<HashMap<String, Tracked>>>,
    reporter: Reporter,
    clock: SharedClock,
) {
    loop {
        let playing = status.borrow_and_update().playing.clone();
        let reports = match tracked.lock() {
            Ok(mut map) => observe(&playing, &mut map, clock.now()),
            Err(_) => Vec::new(),
        };
        if !reports.is_empty() {
            reporter.send_all(reports);
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// What the daemon's now-playing list means for the tracked bulletins; the finished ones
/// leave `map`. `started` is reported once, at the first sound of the bulletin at the
/// loudspeaker: its attention tone (`<id>:tone`) when it has one, since that is what
/// people hear first and what the latency from the push is about. `finished` follows
/// the end of its last play (the tone is not a play).
fn observe(
    playing: &[PlayingNow],
    map: &mut HashMap<String, Tracked>,
    now: DateTime<Utc>,
) -> Vec<DeliveryReport> {
    let mut reports = Vec::new();
    let mut done = Vec::new();
    for (id, t) in map.iter_mut() {
        let tone = format!("{id}:tone");
        let first_sound = playing
            .iter()
            .filter(|p| p.item_id == *id || p.item_id == tone)
            .map(|p| p.started)
            .min();
        if let Some(at) = first_sound
            && !t.start_reported
        {
            t.start_reported = true;
            reports.push(DeliveryReport {
                bulletin_id: id.clone(),
                state: DeliveryState::Started,
                at,
                latency_ms: Some((at - t.issued_at).num_milliseconds()),
                reason: None,
                reason_code: None,
            });
        }
        match playing.iter().find(|p| &p.item_id == id) {
            Some(p) => {
                if !t.started.contains(&p.planned) {
                    t.started.push(p.planned);
                }
                t.sounding = true;
            }
            None if t.sounding => {
                t.sounding = false;
                if t.started.len() as u32 >= t.plays {
                    reports.push(DeliveryReport {
                        bulletin_id: id.clone(),
                        state: DeliveryState::Finished,
                        at: now,
                        latency_ms: None,
                        reason: None,
                        reason_code: None,
                    });
                    done.push(id.clone());
                }
            }
            None => {}
        }
    }
    for id in done {
        map.remove(&id);
    }
    reports
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signing::ProvinceKey;

    fn doc(targets: &[&str], expires_at: DateTime<Utc>) -> BulletinDoc {
        BulletinDoc {
            id: "b-1".into(),
            title: "lũ".into(),
            targets: targets.iter().map(|s| s.to_string()).collect(),
            to_all: false,
            audio_sha256: "a".repeat(64),
            audio_size: 10,
            gain_db: 0.0,
            priority: BulletinPriority::Emergency,
            repeat: 0,
            interval_secs: 0,
            tone: false,
            issued_at: expires_at - chrono::Duration::hours(1),
            expires_at,
            event_seq: None,
        }
    }

    #[test]
    fn only_a_signed_unexpired_bulletin_for_this_station_passes() {
        let key = ProvinceKey::from_seed([7; 32]);
        let public = key.public();
        let t = DateTime::parse_from_rfc3339("2026-12-01T06:00:00Z").unwrap().with_timezone(&Utc);
        let good = key.sign(DocumentKind::Bulletin, &doc(&["a", "b"], t)).unwrap();
        assert_eq!(verify_bulletin(&public, &good, "a", t).unwrap().id, "b-1");
        assert!(matches!(
            verify_bulletin(&public, &good, "c", t),
            Err(BulletinError::NotForUs { .. })
        ));
        // `--to all` is signed as such, with no list: every station of the province.
        let everywhere = BulletinDoc { to_all: true, ..doc(&[], t) };
        let everywhere = key.sign(DocumentKind::Bulletin, &everywhere).unwrap();
        assert_eq!(verify_bulletin(&public, &everywhere, "c", t).unwrap().id, "b-1");
        assert!(matches!(
            verify_bulletin(
                &public,
                &key.sign(DocumentKind::Bulletin, &doc(&[], t)).unwrap(),
                "c",
                t
            ),
            Err(BulletinError::NotForUs { .. })
        ));
        assert!(matches!(
            verify_bulletin(&public, &good, "a", t + chrono::Duration::seconds(1)),
            Err(BulletinError::Expired { .. })
        ));
        // Signed by another key; or a manifest/cancel signature presented as a bulletin.
        let other = ProvinceKey::from_seed([8; 32]).sign(DocumentKind::Bulletin, &doc(&["a"], t));
        assert!(matches!(
            verify_bulletin(&public, &other.unwrap(), "a", t),
            Err(BulletinError::Signature(SigningError::BadSignature))
        ));
        let as_cancel = key.sign(DocumentKind::BulletinCancel, &doc(&["a"], t)).unwrap();
        let mut relabelled = as_cancel.clone();
        relabelled.kind = DocumentKind::Bulletin;
        assert!(matches!(
            verify_bulletin(&public, &relabelled, "a", t),
            Err(BulletinError::Signature(SigningError::BadSignature))
        ));
        assert!(matches!(
            verify_bulletin(&public, &as_cancel, "a", t),
            Err(BulletinError::Signature(SigningError::WrongKind { .. }))
        ));
    }

    #[test]
    fn a_signed_bulletin_outside_its_bounds_is_refused_before_it_reaches_the_core() {
        let key = ProvinceKey::from_seed([7; 32]);
        let public = key.public();
        let t = DateTime::parse_from_rfc3339("2026-12-01T06:00:00Z").unwrap().with_timezone(&Utc);
        let base = || BulletinDoc {
            issued_at: t - chrono::Duration::seconds(10),
            ..doc(&["a"], t + chrono::Duration::hours(1))
        };
        let cases: Vec<(&str, BulletinDoc)> = vec![
            // The interval that made `DateTime + TimeDelta` overflow in the core.
            (
                "interval 1e13 s",
                BulletinDoc { repeat: 1, interval_secs: 10_000_000_000_000, ..base() },
            ),
            (
                "interval longer than the validity",
                BulletinDoc { repeat: 1, interval_secs: 3611, ..base() },
            ),
            ("101 repeats", BulletinDoc { repeat: 101, ..base() }),
            (
                "valid 7 days and a second",
                BulletinDoc {
                    expires_at: t - chrono::Duration::seconds(10)
                        + chrono::Duration::days(7)
                        + chrono::Duration::seconds(1),
                    ..base()
                },
            ),
            (
                "expires before it is issued",
                BulletinDoc { issued_at: t + chrono::Duration::hours(2), ..base() },
            ),
            (
                "audio name with a path",
                BulletinDoc { audio_sha256: "../../etc/passwd".into(), ..base() },
            ),
            ("audio name in capitals", BulletinDoc { audio_sha256: "A".repeat(64), ..base() }),
            (
                "audio of 64 MiB and a byte",
                BulletinDoc { audio_size: 64 * 1024 * 1024 + 1, ..base() },
            ),
            ("gain +21 dB", BulletinDoc { gain_db: 21.0, ..base() }),
            ("title of 201 characters", BulletinDoc { title: "x".repeat(201), ..base() }),
            ("title with an escape", BulletinDoc { title: "lũ\u{1b}[2J".into(), ..base() }),
            ("id with a slash", BulletinDoc { id: "b/1".into(), ..base() }),
        ];
        for (name, doc) in cases {
            let envelope = key.sign(DocumentKind::Bulletin, &doc).unwrap();
            let got = verify_bulletin(&public, &envelope, "a", t);
            assert!(matches!(got, Err(BulletinError::OutOfRange(_))), "{name}: {got:?}");
        }
        // At the bounds it passes.
        let edge = BulletinDoc {
            repeat: 100,
            interval_secs: 3610,
            audio_size: 64 * 1024 * 1024,
            gain_db: 20.0,
            title: "x".repeat(200),
            ..base()
        };
        let envelope = key.sign(DocumentKind::Bulletin, &edge).unwrap();
        assert!(verify_bulletin(&public, &envelope, "a", t).is_ok());
    }

    #[test]
    fn the_resume_point_is_the_number_the_province_signed() {
        assert_eq!(resume_after(7, Some(7)).unwrap(), 7);
        assert_eq!(resume_after(7, None).unwrap(), 7, "a document from an older central");
        assert!(matches!(
            resume_after(9_223_372_036_854_775_807, Some(7)),
            Err(BulletinError::Renumbered { .. })
        ));
        assert!(matches!(resume_after(u64::MAX, None), Err(BulletinError::OutOfRange(_))));
    }

    #[test]
    fn seen_ids_and_the_cursor_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let t = DateTime::parse_from_rfc3339("2026-12-01T06:00:00Z").unwrap().with_timezone(&Utc);
        {
            let seen = Seen::open(&dir.path().join(DB_FILE)).unwrap();
            seen.insert("b-1", t + chrono::Duration::hours(1), t).unwrap();
            seen.set_last_event(7).unwrap();
            seen.set_last_event(5).unwrap();
        }
        let seen = Seen::open(&dir.path().join(DB_FILE)).unwrap();
        assert!(seen.contains("b-1").unwrap());
        assert!(!seen.contains("b-2").unwrap());
        assert_eq!(seen.last_event().unwrap(), 7, "the cursor never goes back");
        // Long past expiry, the id is forgotten.
        seen.insert("b-3", t + chrono::Duration::days(9), t + chrono::Duration::days(3)).unwrap();
        assert!(!seen.contains("b-1").unwrap());
    }

    fn entry(
        id: &str,
        outcome: crate::station::ledger::Outcome,
        reason: Option<Reason>,
    ) -> crate::station::ledger::Entry {
        let t = DateTime::parse_from_rfc3339("2026-12-01T06:00:00Z").unwrap().with_timezone(&Utc);
        let mut e = crate::station::ledger::Entry::missed(
            id,
            "lũ",
            crate::schedule::Layer::Provincial,
            crate::schedule::Priority::Emergency,
            t,
            Reason::TooLate,
        );
        e.outcome = outcome;
        e.set_reason(reason);
        e
    }

    #[test]
    fn accepted_bulletins_count_their_plays_until_finished_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let t = DateTime::parse_from_rfc3339("2026-12-01T06:00:00Z").unwrap().with_timezone(&Utc);
        let s = chrono::Duration::seconds;
        let mut lu = BulletinDoc { repeat: 2, interval_secs: 5, ..doc(&["a"], t + s(3600)) };
        lu.id = "lu".into();
        let mut bao = BulletinDoc { repeat: 0, ..doc(&["a"], t + s(3600)) };
        bao.id = "bao".into();
        {
            let seen = Seen::open(&dir.path().join(DB_FILE)).unwrap();
            seen.accept(&lu, t).unwrap();
            seen.accept(&bao, t + s(1)).unwrap();
            assert!(seen.contains("lu").unwrap(), "accepted means seen: a resend is a replay");
            // Accepting twice (a replayed event that slipped through) changes nothing.
            seen.accept(&lu, t + s(2)).unwrap();
            let stage = seen.play_ended("lu", &PlayEnd::Aired, t + s(10), t + s(10)).unwrap();
            assert_eq!(stage, Some(Stage::Accepted));
        }
        // After a restart: both still to air, oldest first, with what aired so far.
        let seen = Seen::open(&dir.path().join(DB_FILE)).unwrap();
        let pending = seen.pending().unwrap();
        let ids: Vec<_> = pending.iter().map(|p| p.doc.id.as_str()).collect();
        assert_eq!(ids, ["lu", "bao"]);
        assert_eq!((pending[0].plays, pending[0].aired, pending[0].ended), (3, 1, 1));
        assert_eq!(pending[0].accepted_at, t);
        assert_eq!(pending[0].doc, lu);
        // A failed play ends for good but is not aired; the last one finishes it.
        assert_eq!(
            seen.play_ended("lu", &PlayEnd::Lost, t + s(20), t + s(20)).unwrap(),
            Some(Stage::Accepted)
        );
        assert_eq!(
            seen.play_ended("lu", &PlayEnd::Aired, t + s(30), t + s(30)).unwrap(),
            Some(Stage::Finished)
        );
        let lu_now = seen.get("lu").unwrap().unwrap();
        assert_eq!((lu_now.aired, lu_now.ended, lu_now.stage), (2, 3, Stage::Finished));
        // Nothing moves a closed bulletin again.
        assert_eq!(seen.play_ended("lu", &PlayEnd::Aired, t + s(40), t + s(40)).unwrap(), None);
        assert_eq!(seen.get("lu").unwrap().unwrap().aired, 2);
        // A cancel closes an accepted bulletin; one never received becomes seen only.
        seen.cancel("bao", bao.expires_at, t + s(41)).unwrap();
        assert_eq!(seen.get("bao").unwrap().unwrap().stage, Stage::Cancelled);
        seen.cancel("lu", lu.expires_at, t + s(42)).unwrap();
        assert_eq!(
            seen.get("lu").unwrap().unwrap().stage,
            Stage::Finished,
            "a finished one stays so"
        );
        seen.cancel("never-came", t + s(3600), t + s(43)).unwrap();
        assert!(seen.contains("never-came").unwrap() && seen.get("never-came").unwrap().is_none());
        assert!(seen.pending().unwrap().is_empty());
    }

    #[test]
    fn expiry_and_dropped_plays_close_a_bulletin_and_old_ones_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let t = DateTime::parse_from_rfc3339("2026-12-01T06:00:00Z").unwrap().with_timezone(&Utc);
        let s = chrono::Duration::seconds;
        let seen = Seen::open(&dir.path().join(DB_FILE)).unwrap();
        // The next repeat would start after the expiry: the core queues none, so the
        // bulletin is over after this play.
        let mut short = BulletinDoc { repeat: 3, interval_secs: 60, ..doc(&["a"], t + s(90)) };
        short.id = "short".into();
        seen.accept(&short, t).unwrap();
        assert_eq!(
            seen.play_ended("short", &PlayEnd::Aired, t + s(40), t + s(40)).unwrap(),
            Some(Stage::Finished)
        );
        // Expired in the queue: failed, with the daemon's reason.
        let mut queued = BulletinDoc { repeat: 1, ..doc(&["a"], t + s(90)) };
        queued.id = "queued".into();
        seen.accept(&queued, t).unwrap();
        let dropped = PlayEnd::Dropped("expired before it could play".into());
        assert_eq!(
            seen.play_ended("queued", &dropped, t + s(91), t + s(91)).unwrap(),
            Some(Stage::Failed)
        );
        let q = seen.get("queued").unwrap().unwrap();
        assert_eq!(q.reason.as_deref(), Some("expired before it could play"));
        // Closed by a restart with the ledger's counts.
        let mut kept = BulletinDoc { repeat: 1, ..doc(&["a"], t + s(90)) };
        kept.id = "kept".into();
        seen.accept(&kept, t).unwrap();
        let mut p = seen.get("kept").unwrap().unwrap();
        p.aired = 1;
        p.ended = 1;
        p.reason = Some("expired while the station was stopped".into());
        seen.update(&p, Stage::Failed, t + s(200)).unwrap();
        let k = seen.get("kept").unwrap().unwrap();
        assert_eq!(
            (k.aired, k.stage, k.reason.as_deref()),
            (1, Stage::Failed, p.reason.as_deref())
        );
        // A day past expiry, closed bulletins are forgotten (an open one is kept for the
        // next start to account for).
        let mut open = BulletinDoc { repeat: 0, ..doc(&["a"], t + s(90)) };
        open.id = "open".into();
        seen.accept(&open, t).unwrap();
        seen.insert("later", t + s(9 * 86_400), t + s(2 * 86_400)).unwrap();
        assert!(seen.get("short").unwrap().is_none() && seen.get("kept").unwrap().is_none());
        assert_eq!(seen.pending().unwrap().len(), 1);
    }

    #[test]
    fn a_start_counts_plays_the_ledger_holds_but_the_store_missed() {
        use crate::station::ledger::{Ledger, Outcome};
        let dir = tempfile::tempdir().unwrap();
        let t = DateTime::parse_from_rfc3339("2026-12-01T06:00:00Z").unwrap().with_timezone(&Utc);
        let s = chrono::Duration::seconds;
        let mut lu = BulletinDoc { repeat: 2, interval_secs: 5, ..doc(&["a"], t + s(3600)) };
        lu.id = "lu".into();
        let seen = Seen::open(&dir.path().join(DB_FILE)).unwrap();
        seen.accept(&lu, t).unwrap();
        // Played and durable in the ledger; the stop came before the store heard of it.
        // The next play was cut by the stop.
        let ledger_path = dir.path().join("ledger.sqlite3");
        let mut ledger = Ledger::open(&ledger_path, "a").unwrap();
        let mut played = entry("lu", Outcome::Played, None);
        played.planned = t + s(1);
        ledger.append(played).unwrap();
        let mut cut = entry("lu", Outcome::Failed, Some(Reason::Interrupted));
        cut.planned = t + s(7);
        ledger.append(cut).unwrap();
        let mut p = seen.pending().unwrap().remove(0);
        assert!(reconcile(&mut p, &ledger_path), "the ledger counted more");
        assert_eq!((p.aired, p.ended, p.last_planned), (1, 1, Some(t + s(7))));
        assert!(!reconcile(&mut p, &ledger_path), "nothing more the second time");
        // The record of what a start could not air never collides with a play's key.
        assert_eq!(
            unaired(&p, Reason::TooLate, t + s(3)).planned,
            t + s(7) + chrono::Duration::milliseconds(1)
        );
        assert_eq!(unaired(&p, Reason::TooLate, t + s(60)).planned, t + s(60));
        // No ledger at all (first start): the store's counts stand.
        let mut q = seen.pending().unwrap().remove(0);
        assert!(!reconcile(&mut q, &dir.path().join("none.sqlite3")));
        assert_eq!(q.aired, 0);
    }

    #[test]
    fn ledger_records_move_progress_only_when_a_play_ended_for_good() {
        use crate::station::ledger::Outcome;
        assert_eq!(play_end(&entry("b", Outcome::Played, None)), Some(PlayEnd::Aired));
        assert_eq!(play_end(&entry("b", Outcome::Late, None)), Some(PlayEnd::Aired));
        assert_eq!(play_end(&entry("b:tone", Outcome::Played, None)), None);
        // Cut by the stop: aired again from the start after the restart.
        let interrupted = entry("b", Outcome::Failed, Some(Reason::Interrupted));
        assert_eq!(play_end(&interrupted), None);
        let shutdown = entry("b", Outcome::Preempted, Some(Reason::Shutdown));
        assert_eq!(play_end(&shutdown), None);
        let cancelled = entry("b", Outcome::Missed, Some(Reason::Cancelled));
        assert_eq!(play_end(&cancelled), None);
        assert_eq!(
            play_end(&entry(
                "b",
                Outcome::Failed,
                Some(Reason::Failure("audio unreadable".into()))
            )),
            Some(PlayEnd::Lost)
        );
        assert_eq!(
            play_end(&entry("b", Outcome::Missed, Some(Reason::Expired(None)))),
            Some(PlayEnd::Dropped("expired before it could play".into()))
        );
    }

    #[test]
    fn sse_blocks_split_and_join_data_lines() {
        let raw = b": heartbeat\n\nid: 3\nevent: bulletin\ndata: {\"a\":\ndata: 1}\n\nid: 4\r\n";
        let mut decoder = SseDecoder::default();
        let blocks = decoder.push(raw).unwrap();
        assert_eq!(blocks.len(), 2, "an incomplete block waits for more bytes");
        assert_eq!(sse_data(&blocks[0]), None);
        assert_eq!(sse_data(&blocks[1]).as_deref(), Some("{\"a\":\n1}"));
        // The rest completes later, also when the blank line is split across chunks.
        assert!(decoder.push(b"data: x\r").unwrap().is_empty());
        let blocks = decoder.push(b"\n\r\n").unwrap();
        assert_eq!(blocks.iter().map(|b| sse_data(b)).collect::<Vec<_>>(), [Some("x".into())]);
        let mut split = SseDecoder::default();
        assert!(split.push(b"data: y\n").unwrap().is_empty());
        assert_eq!(split.push(b"\n").unwrap().len(), 1);
    }

    #[test]
    fn an_event_fed_a_byte_at_a_time_is_scanned_once_and_an_oversized_one_refused() {
        let event = format!("data: {}\n\n", "x".repeat(200_000));
        let mut decoder = SseDecoder::default();
        let mut blocks = Vec::new();
        for byte in event.as_bytes() {
            blocks.extend(decoder.push(std::slice::from_ref(byte)).unwrap());
        }
        assert_eq!(blocks.len(), 1);
        // Each byte is looked at about once (twice at most where a chunk boundary
        // may split a terminator), not once per chunk that arrives after it.
        assert!(
            decoder.examined <= 3 * event.len() as u64,
            "{} bytes examined for {} bytes",
            decoder.examined,
            event.len()
        );
        // One byte past the cap without a block end: refused, and the memory let go.
        let mut decoder = SseDecoder::default();
        let endless = vec![b'x'; MAX_EVENT_BYTES + 1];
        let err = decoder.push(&endless).unwrap_err();
        assert!(matches!(err, BulletinError::TooLarge { .. }), "{err}");
        assert_eq!(decoder.buffer.capacity(), 0);
        // Exactly at the cap it waits for more.
        let mut decoder = SseDecoder::default();
        assert!(decoder.push(&vec![b'x'; MAX_EVENT_BYTES]).unwrap().is_empty());
    }

    #[test]
    fn the_tone_is_installed_once_and_decodes() {
        let dir = tempfile::tempdir().unwrap();
        let path = install_tone(dir.path()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), TONE_WAV);
        assert_eq!(install_tone(dir.path()).unwrap(), path);
        assert!(crate::audio::probe(&path).unwrap().duration > Duration::from_millis(300));
    }

    #[test]
    fn started_is_reported_at_the_tone_and_finished_after_the_last_play() {
        use crate::schedule::{Layer, Priority};
        let push = DateTime::parse_from_rfc3339("2026-12-01T05:30:00Z").unwrap().to_utc();
        let ms = chrono::Duration::milliseconds;
        let sounding = |item_id: &str, planned, started| PlayingNow {
            item_id: item_id.into(),
            title: "lũ".into(),
            layer: Layer::Provincial,
            priority: Priority::Emergency,
            planned,
            started,
            audio_sha256: None,
        };
        let tracked = |start_reported| Tracked {
            issued_at: push,
            plays: 1,
            started: Vec::new(),
            sounding: false,
            start_reported,
        };
        let mut map = HashMap::from([("b-1".to_string(), tracked(false))]);
        // The tone sounds 43 ms after the push: that is the first sound people hear.
        let tone = sounding("b-1:tone", push, push + ms(43));
        let reports = observe(std::slice::from_ref(&tone), &mut map, push + ms(100));
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!(reports[0].state, DeliveryState::Started);
        assert_eq!((reports[0].at, reports[0].latency_ms), (push + ms(43), Some(43)));
        // The tone ends, the bulletin follows it: no second `started`, and the tone's end
        // is not the bulletin's.
        assert!(observe(&[], &mut map, push + ms(2_050)).is_empty());
        let play = sounding("b-1", push + ms(2_050), push + ms(2_078));
        assert!(observe(std::slice::from_ref(&play), &mut map, push + ms(2_100)).is_empty());
        let reports = observe(&[], &mut map, push + ms(5_000));
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!((reports[0].state, reports[0].at), (DeliveryState::Finished, push + ms(5_000)));
        assert!(map.is_empty(), "finished bulletins are no longer tracked");

        // Without a tone the first play is the first sound; after a restart with a play
        // already aired, nothing is reported started again.
        let mut map = HashMap::from([("b-1".to_string(), tracked(false))]);
        let reports = observe(std::slice::from_ref(&play), &mut map, push + ms(2_100));
        assert_eq!(reports[0].latency_ms, Some(2_078));
        let mut map = HashMap::from([("b-1".to_string(), tracked(true))]);
        assert!(observe(std::slice::from_ref(&play), &mut map, push + ms(2_100)).is_empty());
    }
}
