//! Urgent bulletins at central: sign, store, push to stations over a per-station event
//! stream (SSE, with a poll fallback), cancel, and collect each station's delivery states.
//!
//! Rules decided here:
//! - `admin` may push anything anywhere; a `district` token may push (emergency or test)
//!   only to stations of its own district, never `all`; `viewer` may only list and show.
//!   Cancel follows the same rule over the bulletin's targets.
//! - Every bulletin and every cancel is a signed document ([`DocumentKind::Bulletin`],
//!   [`DocumentKind::BulletinCancel`]: different tags, so neither replays as the other or
//!   as a manifest) and an event with a sequence number. A station resumes after the last
//!   sequence it handled (`Last-Event-ID`); events whose bulletin expired are not sent.
//! - Events live in memory (a bulletin is rare and small) and in SQLite, so a restart of
//!   central resumes every stream where it was.
//! - "Not reached (offline since …)" comes from the last contact: a heartbeat or the
//!   event stream itself.
//! - A bulletin may wait for a person's approval ([`issue::hold`], a CAP alert without
//!   an `auto_air` rule): stored whole in [`crate::store`] but not signed, so no station
//!   hears of it until [`approve`] signs it (issued then, expiring when it was to).
//! - Every push, cancel, withdrawal and approval goes through [`issue`] and writes a line
//!   of the audit trail.
//!
//! The tables live in their own file (`bulletins.sqlite`) beside the main store, so this
//! module changes nothing in [`crate::store`].

mod delivery_log;
pub mod issue;
pub mod operate;
mod routes;
mod speech;

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{ApiError, AppState};
use crate::protocol::{
    BulletinDoc, BulletinEvent, DeliveryReport, DeliveryState, SignedEnvelope, time_text,
};
use crate::signing::SigningError;
use delivery_log::DeliveryLog;
pub use issue::{Actor, Cancelled, Draft, approve, cancel, hold, issue};
pub use operate::{MAX_TEXT_CHARS, resolve_targets};
pub use routes::{REAUTH_EVERY, STREAM_HEARTBEAT, routes};
pub use speech::{ESPEAK, SPEECH_TIMEOUT, render_speech};

/// The bulletin tables' file inside central's data directory.
pub const DB_FILE: &str = "bulletins.sqlite";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bulletins (
    id TEXT PRIMARY KEY,
    doc_json TEXT NOT NULL,
    issued_by TEXT NOT NULL,
    cancelled_at TEXT
);
CREATE TABLE IF NOT EXISTS bulletin_events (
    seq INTEGER PRIMARY KEY,
    bulletin_id TEXT NOT NULL,
    envelope_json TEXT NOT NULL,
    targets_json TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bulletin_deliveries (
    bulletin_id TEXT NOT NULL,
    station_id TEXT NOT NULL,
    state TEXT NOT NULL,
    at TEXT NOT NULL,
    latency_ms INTEGER,
    reason TEXT,
    received_at TEXT NOT NULL,
    PRIMARY KEY (bulletin_id, station_id, state)
);
";

/// Why the bulletin store failed.
#[derive(Debug, thiserror::Error)]
pub enum BulletinError {
    #[error("bulletin database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("bulletin database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("stored bulletin is corrupt: {0}")]
    Corrupt(String),
    #[error(
        "{program} is not installed at central: run `apt-get install espeak-ng` there, or push recorded audio with --audio FILE"
    )]
    NoSpeech { program: String },
    #[error("{program} failed to render the text: {detail}")]
    Speech { program: String, detail: String },
}

impl From<BulletinError> for ApiError {
    fn from(e: BulletinError) -> Self {
        match e {
            BulletinError::NoSpeech { .. } | BulletinError::Speech { .. } => {
                ApiError::BadRequest(e.to_string())
            }
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A stored bulletin (`doc.targets` resolved, also for `--to all`) with what its stations
/// reported (see [`Hub::issued_between`]).
#[derive(Debug, Clone)]
pub struct Issued {
    pub doc: BulletinDoc,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// (station id, one delivery state it reported).
    pub deliveries: Vec<(String, DeliveryReport)>,
}

/// A stored bulletin, who issued it, and when it was cancelled.
type StoredBulletin = (BulletinDoc, String, Option<DateTime<Utc>>);

/// One event as held in memory.
struct StoredEvent {
    seq: u64,
    bulletin_id: String,
    /// The SSE `data:` line, serialised once for every stream that sends it.
    data: String,
    targets: HashSet<String>,
    expires_at: DateTime<Utc>,
    envelope: SignedEnvelope,
}

/// The bulletin state central shares between handlers.
pub struct Hub {
    db: Mutex<Connection>,
    /// Delivery reports go through their own writer (group commit).
    deliveries: DeliveryLog,
    events: RwLock<Vec<Arc<StoredEvent>>>,
    latest: tokio::sync::watch::Sender<u64>,
    /// Open event streams per station.
    connected: Mutex<HashMap<String, usize>>,
    /// Last stream contact per station (heartbeats are in the main store).
    contact: Mutex<HashMap<String, DateTime<Utc>>>,
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, BulletinError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| BulletinError::Corrupt(format!("time {text:?}: {e}")))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// Opens (creating if needed) `bulletins.sqlite` in `data_dir` and loads the events.
    pub fn open(data_dir: &Path) -> Result<Self, BulletinError> {
        let path = data_dir.join(DB_FILE);
        let shown = path.display().to_string();
        let open = || -> Result<Connection, rusqlite::Error> {
            let conn = Connection::open(&path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.execute_batch(SCHEMA)?;
            // Added with reason codes: a file from an older central gets the column.
            let has_code: bool = conn
                .prepare("SELECT 1 FROM pragma_table_info('bulletin_deliveries') WHERE name = 'reason_code'")?
                .exists([])?;
            if !has_code {
                conn.execute_batch("ALTER TABLE bulletin_deliveries ADD COLUMN reason_code TEXT")?;
            }
            Ok(conn)
        };
        let conn = open().map_err(|source| BulletinError::Open { path: shown, source })?;
        let mut events = Vec::new();
        {
            let mut stmt = conn.prepare(
                "SELECT seq, envelope_json, targets_json, expires_at, bulletin_id FROM bulletin_events ORDER BY seq",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?;
            for row in rows {
                let (seq, envelope, targets, expires, bulletin_id) = row?;
                let envelope: SignedEnvelope = serde_json::from_str(&envelope)
                    .map_err(|e| BulletinError::Corrupt(e.to_string()))?;
                events.push(Arc::new(StoredEvent {
                    seq: seq as u64,
                    bulletin_id,
                    data: event_data(seq as u64, &envelope)?,
                    targets: serde_json::from_str(&targets)
                        .map_err(|e| BulletinError::Corrupt(e.to_string()))?,
                    expires_at: parse_time(&expires)?,
                    envelope,
                }));
            }
        }
        let latest = events.last().map_or(0, |e| e.seq);
        Ok(Self {
            db: Mutex::new(conn),
            deliveries: DeliveryLog::open(&path)?,
            events: RwLock::new(events),
            latest: tokio::sync::watch::Sender::new(latest),
            connected: Mutex::new(HashMap::new()),
            contact: Mutex::new(HashMap::new()),
        })
    }

    /// Stores `bulletin` (if given) and appends one event, durably, then wakes every
    /// stream. `sign` makes the event's envelope from its sequence number, which goes
    /// under the signature ([`BulletinDoc::event_seq`]). Returns the sequence number.
    fn append(
        &self,
        bulletin: Option<(&BulletinDoc, &str)>,
        cancel: Option<(&str, DateTime<Utc>)>,
        sign: impl FnOnce(u64) -> Result<SignedEnvelope, SigningError>,
        targets: &[String],
        expires_at: DateTime<Utc>,
    ) -> Result<(u64, SignedEnvelope), BulletinError> {
        let targets_json =
            serde_json::to_string(targets).map_err(|e| BulletinError::Corrupt(e.to_string()))?;
        // Writers hold the events lock across the insert so sequence order is list order.
        let mut events = self.events.write().unwrap_or_else(|p| p.into_inner());
        let seq = events.last().map_or(0, |e| e.seq) + 1;
        let envelope = sign(seq).map_err(|e| BulletinError::Corrupt(e.to_string()))?;
        let envelope_json =
            serde_json::to_string(&envelope).map_err(|e| BulletinError::Corrupt(e.to_string()))?;
        let id = {
            let mut conn = lock(&self.db);
            let tx = conn.transaction()?;
            let id = if let Some((doc, by)) = bulletin {
                let mut doc = doc.clone();
                doc.event_seq = Some(seq);
                let doc_json = serde_json::to_string(&doc)
                    .map_err(|e| BulletinError::Corrupt(e.to_string()))?;
                tx.execute(
                    "INSERT INTO bulletins (id, doc_json, issued_by) VALUES (?1, ?2, ?3)",
                    params![doc.id, doc_json, by],
                )?;
                doc.id.clone()
            } else if let Some((id, at)) = cancel {
                tx.execute(
                    "UPDATE bulletins SET cancelled_at = ?2 WHERE id = ?1",
                    params![id, time_text(at)],
                )?;
                id.to_string()
            } else {
                return Err(BulletinError::Corrupt("event without a bulletin".into()));
            };
            tx.execute(
                "INSERT INTO bulletin_events (seq, bulletin_id, envelope_json, targets_json, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![seq as i64, id, envelope_json, targets_json, time_text(expires_at)],
            )?;
            tx.commit()?;
            id
        };
        events.push(Arc::new(StoredEvent {
            seq,
            bulletin_id: id,
            data: event_data(seq, &envelope)?,
            targets: targets.iter().cloned().collect(),
            expires_at,
            envelope: envelope.clone(),
        }));
        drop(events);
        self.latest.send_replace(seq);
        Ok((seq, envelope))
    }

    /// Appends the start of live broadcast `id` as an event (no bulletin row: the
    /// broadcast is kept by [`crate::central::live`] and the store), durably, then wakes
    /// every stream. As [`Hub::append`], `sign` makes the envelope from the event number.
    pub fn append_live(
        &self,
        id: &str,
        sign: impl FnOnce(u64) -> Result<SignedEnvelope, SigningError>,
        targets: &[String],
        expires_at: DateTime<Utc>,
    ) -> Result<(u64, SignedEnvelope), BulletinError> {
        let corrupt = |e: &dyn std::fmt::Display| BulletinError::Corrupt(e.to_string());
        let targets_json = serde_json::to_string(targets).map_err(|e| corrupt(&e))?;
        let mut events = self.events.write().unwrap_or_else(|p| p.into_inner());
        let seq = events.last().map_or(0, |e| e.seq) + 1;
        let envelope = sign(seq).map_err(|e| corrupt(&e))?;
        let envelope_json = serde_json::to_string(&envelope).map_err(|e| corrupt(&e))?;
        lock(&self.db).execute(
            "INSERT INTO bulletin_events (seq, bulletin_id, envelope_json, targets_json, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![seq as i64, id, envelope_json, targets_json, time_text(expires_at)],
        )?;
        events.push(Arc::new(StoredEvent {
            seq,
            bulletin_id: id.to_string(),
            data: event_data(seq, &envelope)?,
            targets: targets.iter().cloned().collect(),
            expires_at,
            envelope: envelope.clone(),
        }));
        drop(events);
        self.latest.send_replace(seq);
        Ok((seq, envelope))
    }

    /// Where a station's stream resumes: after `after`, or from the start when `after`
    /// is beyond the newest event (a resume point central never issued — a station
    /// whose stored cursor was corrupted, or a central whose events were restored from
    /// an older backup). Sending from the start costs nothing: stations refuse what
    /// they have seen, and expired events are not sent.
    fn resume_point(&self, after: u64) -> u64 {
        let newest =
            self.events.read().unwrap_or_else(|p| p.into_inner()).last().map_or(0, |e| e.seq);
        if after > newest {
            tracing::warn!(
                after,
                newest,
                "resume point beyond the newest event: sending from the start"
            );
            0
        } else {
            after
        }
    }

    /// Events after `after` for `station` whose bulletin has not expired at `now`.
    fn events_for(&self, station: &str, after: u64, now: DateTime<Utc>) -> Vec<Arc<StoredEvent>> {
        let events = self.events.read().unwrap_or_else(|p| p.into_inner());
        let start = events.partition_point(|e| e.seq <= after);
        events[start..]
            .iter()
            .filter(|e| e.targets.contains(station) && e.expires_at > now)
            .cloned()
            .collect()
    }

    /// The stored bulletin `id` (with `targets` resolved for a `to_all` one), who issued
    /// it, and when it was cancelled.
    fn bulletin(&self, id: &str) -> Result<Option<StoredBulletin>, BulletinError> {
        let conn = lock(&self.db);
        let row = conn
            .query_row(
                "SELECT doc_json, issued_by, cancelled_at FROM bulletins WHERE id = ?1",
                params![id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()?;
        drop(conn);
        row.map(|(doc, by, cancelled)| {
            let doc = self.stored_doc(&doc)?;
            let cancelled = cancelled.as_deref().map(parse_time).transpose()?;
            Ok((doc, by, cancelled))
        })
        .transpose()
    }

    /// The stations signed bulletin `id` was sent to (resolved also for `--to all`).
    pub fn targets(&self, id: &str) -> Result<Option<Vec<String>>, BulletinError> {
        Ok(self.bulletin(id)?.map(|(doc, _, _)| doc.targets))
    }

    fn bulletin_ids(&self) -> Result<Vec<String>, BulletinError> {
        let conn = lock(&self.db);
        let mut stmt = conn.prepare("SELECT id FROM bulletins ORDER BY rowid DESC")?;
        let ids = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// A stored bulletin document, with `targets` resolved for a `to_all` one.
    fn stored_doc(&self, json: &str) -> Result<BulletinDoc, BulletinError> {
        let mut doc: BulletinDoc =
            serde_json::from_str(json).map_err(|e| BulletinError::Corrupt(e.to_string()))?;
        if doc.to_all {
            doc.targets = self.resolved_targets(&doc.id);
        }
        Ok(doc)
    }

    /// The station ids bulletin `id` was resolved to when pushed, sorted.
    fn resolved_targets(&self, id: &str) -> Vec<String> {
        let events = self.events.read().unwrap_or_else(|p| p.into_inner());
        let mut targets: Vec<String> = events
            .iter()
            .find(|e| e.bulletin_id == id)
            .map(|e| e.targets.iter().cloned().collect())
            .unwrap_or_default();
        targets.sort();
        targets
    }

    /// Whether `station` is one of bulletin `id`'s targets (from memory: asked once per
    /// delivery report, thousands of times a second after a province-wide push).
    fn is_target(&self, id: &str, station: &str) -> bool {
        let events = self.events.read().unwrap_or_else(|p| p.into_inner());
        events.iter().any(|e| e.bulletin_id == id && e.targets.contains(station))
    }

    /// Every state each station reported for bulletin `id`.
    fn deliveries(&self, id: &str) -> Result<Vec<(String, DeliveryReport)>, BulletinError> {
        let conn = lock(&self.db);
        let mut stmt = conn.prepare(
            "SELECT station_id, state, at, latency_ms, reason, reason_code FROM bulletin_deliveries WHERE bulletin_id = ?1",
        )?;
        let rows = stmt.query_map(params![id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (station, state, at, latency_ms, reason, reason_code) = row?;
            let state = serde_json::from_value::<DeliveryState>(serde_json::Value::String(state))
                .map_err(|e| BulletinError::Corrupt(e.to_string()))?;
            out.push((
                station,
                DeliveryReport {
                    bulletin_id: id.to_string(),
                    state,
                    at: parse_time(&at)?,
                    latency_ms,
                    reason,
                    reason_code,
                },
            ));
        }
        Ok(out)
    }

    /// How many stations hold the event stream open now.
    pub fn connected_stations(&self) -> usize {
        lock(&self.connected).len()
    }

    fn touch(&self, station: &str, now: DateTime<Utc>) {
        lock(&self.contact).insert(station.to_string(), now);
    }

    /// Bulletins issued in `[from, until)`, oldest first, each with when it was
    /// cancelled and every delivery state its stations reported (for `loa report`).
    pub fn issued_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Issued>, BulletinError> {
        let stored: Vec<(String, Option<String>)> = {
            let conn = lock(&self.db);
            let mut stmt =
                conn.prepare("SELECT doc_json, cancelled_at FROM bulletins ORDER BY rowid")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for (doc, cancelled) in stored {
            let doc = self.stored_doc(&doc)?;
            if doc.issued_at < from || doc.issued_at >= until {
                continue;
            }
            let cancelled = cancelled.as_deref().map(parse_time).transpose()?;
            let deliveries = self.deliveries(&doc.id)?;
            out.push(Issued { doc, cancelled_at: cancelled, deliveries });
        }
        out.sort_by_key(|b| b.doc.issued_at);
        Ok(out)
    }

    /// When each station was last in contact over the bulletin stream; a station
    /// holding the stream open now counts as seen `now`.
    pub fn last_contact(&self, now: DateTime<Utc>) -> HashMap<String, DateTime<Utc>> {
        let mut seen = lock(&self.contact).clone();
        for station in lock(&self.connected).keys() {
            seen.insert(station.clone(), now);
        }
        seen
    }
}

/// The SSE `data:` of an event, serialised once for every stream that sends it.
fn event_data(seq: u64, envelope: &SignedEnvelope) -> Result<String, BulletinError> {
    serde_json::to_string(&BulletinEvent { seq, envelope: envelope.clone() })
        .map_err(|e| BulletinError::Corrupt(e.to_string()))
}

/// Counts an open stream for a station while it lives.
struct Connected {
    state: Arc<AppState>,
    station: String,
}

impl Connected {
    fn new(state: Arc<AppState>, station: String) -> Self {
        *lock(&state.bulletins.connected).entry(station.clone()).or_insert(0) += 1;
        Self { state, station }
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        let now = self.state.clock.now();
        self.state.bulletins.touch(&self.station, now);
        let mut map = lock(&self.state.bulletins.connected);
        if let Some(n) = map.get_mut(&self.station) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.station);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{BulletinPriority, DocumentKind};

    /// Many stations reporting at once: every report is committed exactly once, each
    /// request answered only after its own commit, repeats ignored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_delivery_reports_are_each_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Arc::new(Hub::open(dir.path()).unwrap());
        let t = DateTime::parse_from_rfc3339("2026-12-01T05:00:00Z").unwrap().with_timezone(&Utc);
        let report = |state| DeliveryReport {
            bulletin_id: "b-1".into(),
            state,
            at: t,
            latency_ms: None,
            reason: None,
            reason_code: None,
        };
        let mut tasks = Vec::new();
        for n in 0..200 {
            let hub = hub.clone();
            let reports = vec![report(DeliveryState::Delivered), report(DeliveryState::Verified)];
            tasks.push(tokio::spawn(async move {
                hub.deliveries.put(&format!("xa-{}", n % 100), reports, t).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let stored = hub.deliveries("b-1").unwrap();
        assert_eq!(stored.len(), 200, "100 stations × 2 states, the repeats ignored");
        drop(hub);
        let reopened = Hub::open(dir.path()).unwrap();
        assert_eq!(reopened.deliveries("b-1").unwrap().len(), 200, "durable across a reopen");
    }

    #[test]
    fn events_survive_reopen_and_filter_by_station_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T05:00:00Z").unwrap().with_timezone(&Utc);
        let env = SignedEnvelope {
            kind: DocumentKind::Bulletin,
            payload: String::new(),
            signature: String::new(),
        };
        let doc = |id: &str, exp: i64| BulletinDoc {
            id: id.into(),
            title: "t".into(),
            targets: vec!["a".into()],
            to_all: false,
            audio_sha256: "0".repeat(64),
            audio_size: 1,
            gain_db: 0.0,
            priority: BulletinPriority::Emergency,
            repeat: 0,
            interval_secs: 0,
            tone: false,
            issued_at: t0,
            expires_at: t0 + chrono::Duration::seconds(exp),
            event_seq: None,
        };
        {
            let hub = Hub::open(dir.path()).unwrap();
            let d1 = doc("one", 60);
            let d2 = doc("two", 3600);
            let sign = |_| Ok(env.clone());
            let s1 = hub.append(Some((&d1, "admin")), None, sign, &d1.targets, d1.expires_at);
            let s2 = hub.append(Some((&d2, "admin")), None, sign, &d2.targets, d2.expires_at);
            assert_eq!((s1.unwrap().0, s2.unwrap().0), (1, 2));
            // A resume point beyond the newest event (a corrupted or forged cursor) is a
            // fresh start, not silence.
            assert_eq!(hub.resume_point(2), 2);
            assert_eq!(hub.resume_point(u64::MAX), 0);
        }
        let hub = Hub::open(dir.path()).unwrap();
        let seqs = |station: &str, after: u64, now| -> Vec<u64> {
            hub.events_for(station, after, now).iter().map(|e| e.seq).collect()
        };
        assert_eq!(seqs("a", 0, t0), vec![1, 2]);
        assert_eq!(seqs("a", 1, t0), vec![2]);
        assert_eq!(seqs("b", 0, t0), Vec::<u64>::new());
        // The first bulletin expired: a station reconnecting later is not sent it.
        assert_eq!(seqs("a", 0, t0 + chrono::Duration::seconds(61)), vec![2]);
        assert!(hub.bulletin("two").unwrap().is_some());
    }
}
