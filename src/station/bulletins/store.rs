//! The receiver's own file (`bulletins.sqlite`): the ids it has seen (replays are
//! refused), the resume point, the high-water mark of issue times, and every accepted
//! bulletin's progress — what a restart resumes, counted from the daemon's ledger
//! records of its plays.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{BulletinError, DB_FILE};
use crate::protocol::{BulletinDoc, Reason};

/// Every bulletin handed to the daemon, with how far it got: what a restart resumes.
/// `plays` is the repeat count plus one; `ended` counts plays that ended for good (aired,
/// or failed and not retried), `aired` those that played to their end.
pub(super) const ACCEPTED_SCHEMA: &str = "CREATE TABLE IF NOT EXISTS accepted (
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
pub(super) enum Stage {
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
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Stage::Accepted => "accepted",
            Stage::Finished => "finished",
            Stage::Cancelled => "cancelled",
            Stage::Failed => "failed",
        }
    }

    pub(super) fn parse(text: &str) -> Option<Self> {
        [Stage::Accepted, Stage::Finished, Stage::Cancelled, Stage::Failed]
            .into_iter()
            .find(|s| s.as_str() == text)
    }
}

/// One accepted bulletin's progress, as the replay store keeps it.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct Progress {
    pub(super) doc: BulletinDoc,
    pub(super) accepted_at: DateTime<Utc>,
    pub(super) plays: u32,
    pub(super) aired: u32,
    pub(super) ended: u32,
    pub(super) stage: Stage,
    pub(super) reason: Option<String>,
    /// The last change: acceptance, or the end of the last play that ended for good.
    pub(super) updated_at: DateTime<Utc>,
    /// The latest planned instant of its plays in the ledger (set by [`reconcile`]).
    pub(super) last_planned: Option<DateTime<Utc>>,
}

/// How one play of a bulletin ended, as far as its progress goes.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum PlayEnd {
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
pub(super) fn play_end(entry: &crate::station::ledger::Entry) -> Option<PlayEnd> {
    use crate::station::ledger::Outcome;
    if crate::protocol::bulletin::tone_of(&entry.item_id).is_some() {
        return None;
    }
    let reason = entry.reason();
    match entry.outcome {
        Outcome::Played | Outcome::Late | Outcome::Relayed => Some(PlayEnd::Aired),
        Outcome::Preempted => None,
        Outcome::Failed if reason == Some(Reason::Interrupted) => None,
        Outcome::Failed => Some(PlayEnd::Lost),
        Outcome::Missed if reason == Some(Reason::Cancelled) => None,
        Outcome::Missed => {
            Some(PlayEnd::Dropped(reason.map_or_else(|| "missed".to_string(), |r| r.to_string())))
        }
    }
}

pub(super) fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

pub(super) fn parse_time(text: &str) -> rusqlite::Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc)).map_err(|e| {
        rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
    })
}

/// Seen ids and the last event id, on disk.
pub(super) struct Seen {
    conn: Mutex<Connection>,
    path: String,
}

impl Seen {
    pub(super) fn open(path: &Path) -> Result<Self, BulletinError> {
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

    pub(super) fn err(&self) -> impl Fn(rusqlite::Error) -> BulletinError + '_ {
        |source| BulletinError::Store { path: self.path.clone(), source }
    }

    pub(super) fn conn(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn contains(&self, id: &str) -> Result<bool, BulletinError> {
        let found = self
            .conn()
            .query_row("SELECT 1 FROM seen WHERE id = ?1", params![id], |_| Ok(()))
            .optional()
            .map_err(self.err())?;
        Ok(found.is_some())
    }

    /// Marks `id` seen until `expires_at`, and forgets ids that expired before `now`.
    pub(super) fn insert(
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
    pub(super) fn insert_doc(
        &self,
        doc: &BulletinDoc,
        now: DateTime<Utc>,
    ) -> Result<(), BulletinError> {
        let mut conn = self.conn();
        let tx = conn.transaction().map_err(self.err())?;
        mark_seen(&tx, &doc.id, doc.expires_at, now).map_err(self.err())?;
        raise_newest(&tx, doc.issued_at).map_err(self.err())?;
        tx.commit().map_err(self.err())
    }

    /// The latest `issued_at` of any bulletin this station accepted or confirmed.
    pub(super) fn newest_issued(&self) -> Result<Option<DateTime<Utc>>, BulletinError> {
        let text = self
            .conn()
            .query_row("SELECT issued_at FROM newest WHERE k = 0", [], |r| r.get::<_, String>(0))
            .optional()
            .map_err(self.err())?;
        text.as_deref().map(parse_time).transpose().map_err(self.err())
    }

    /// Marks the bulletin seen and records it accepted with none of its plays aired, in
    /// the one transaction (one fsync) the hand-off to the daemon already waited for.
    pub(super) fn accept(
        &self,
        doc: &BulletinDoc,
        now: DateTime<Utc>,
    ) -> Result<(), BulletinError> {
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
    pub(super) fn cancel(
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
    pub(super) fn play_ended(
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
    pub(super) fn update(
        &self,
        p: &Progress,
        stage: Stage,
        now: DateTime<Utc>,
    ) -> Result<(), BulletinError> {
        self.conn()
            .execute(
                "UPDATE accepted SET aired = ?2, ended = ?3, state = ?4, reason = ?5, updated_at = ?6
                 WHERE id = ?1 AND state = 'accepted'",
                params![p.doc.id, p.aired, p.ended, stage.as_str(), p.reason, time_text(now)],
            )
            .map_err(self.err())?;
        Ok(())
    }

    pub(super) fn get(&self, id: &str) -> Result<Option<Progress>, BulletinError> {
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!("SELECT {PROGRESS_COLUMNS} FROM accepted WHERE id = ?1"))
            .map_err(self.err())?;
        let row = stmt.query_row(params![id], read_progress).optional().map_err(self.err())?;
        row.transpose()
    }

    /// Accepted bulletins still to air, oldest first.
    pub(super) fn pending(&self) -> Result<Vec<Progress>, BulletinError> {
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

    pub(super) fn last_event(&self) -> Result<u64, BulletinError> {
        let n = self
            .conn()
            .query_row("SELECT last_event FROM cursor WHERE k = 0", [], |r| r.get::<_, i64>(0))
            .optional()
            .map_err(self.err())?;
        Ok(n.unwrap_or(0) as u64)
    }

    pub(super) fn set_last_event(&self, seq: u64) -> Result<(), BulletinError> {
        self.conn()
            .execute(
                "INSERT INTO cursor (k, last_event) VALUES (0, ?1) ON CONFLICT(k) DO UPDATE SET last_event = max(last_event, ?1)",
                params![seq as i64],
            )
            .map_err(self.err())?;
        Ok(())
    }
}

pub(super) const PROGRESS_COLUMNS: &str =
    "id, doc, accepted_at, plays, aired, ended, state, reason, updated_at";

/// A row of `accepted`; the inner error names a row whose content cannot be read.
pub(super) fn read_progress(
    row: &rusqlite::Row<'_>,
) -> rusqlite::Result<Result<Progress, BulletinError>> {
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
pub(super) fn raise_newest(
    tx: &rusqlite::Transaction<'_>,
    issued_at: DateTime<Utc>,
) -> rusqlite::Result<()> {
    tx.execute(
        "INSERT INTO newest (k, issued_at) VALUES (0, ?1)
         ON CONFLICT(k) DO UPDATE SET issued_at = max(issued_at, excluded.issued_at)",
        params![time_text(issued_at)],
    )?;
    Ok(())
}

/// Marks `id` seen until `expires_at` and forgets what expired a day before `now`.
pub(super) fn mark_seen(
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

/// The `missed` record of the plays of `p` a start found it could not air: planned at
/// that start (when the station found out), and always after every play of it already
/// in the ledger, whose key is `(item_id, planned)`.
pub(super) fn unaired(
    p: &Progress,
    reason: Reason,
    now: DateTime<Utc>,
) -> crate::station::ledger::Entry {
    let after_plays = p.last_planned.map(|t| t + chrono::Duration::milliseconds(1));
    let planned = after_plays.map_or(now, |t| t.max(now));
    let mut entry = crate::station::ledger::Entry::missed(
        &p.doc.id,
        &p.doc.title,
        crate::schedule::Layer::Provincial,
        p.doc.priority.level().unwrap_or(crate::schedule::Priority::Emergency),
        planned,
        reason,
    );
    entry.audio_sha256 = Some(p.doc.audio_sha256.clone());
    entry
}

/// The larger of the store's counts and the ledger's for `p`: a play's record is durable
/// in the ledger before its progress is, so a stop in between must not air it again.
/// Returns whether the ledger counted more.
pub(super) fn reconcile(p: &mut Progress, ledger: &Path) -> bool {
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
