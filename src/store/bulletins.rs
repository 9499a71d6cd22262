//! Urgent bulletins in the SQLite store: the signed bulletins, the one event stream that
//! carries them to the stations (numbered by the database), and the stations' delivery
//! states. Also what the PostgreSQL store shares with it ([`append_event`] over an
//! [`EventWriter`], the row decoders, the delivery rows), so the two cannot drift.
//!
//! Until these tables moved into the store they lived in `bulletins.sqlite` beside
//! `central.sqlite`, outside the [`super::Store`] trait; [`prepare`] copies such a file
//! in once, on open, and sets it aside.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{BulletinEventRow, DeliveryBatch, EventSubject, SignEvent, StoreError, StoredBulletin};
use crate::protocol::{BulletinDoc, DeliveryReport, DeliveryState, time_text};

pub(super) const SCHEMA: &str = "
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
CREATE INDEX IF NOT EXISTS bulletin_events_by_bulletin ON bulletin_events (bulletin_id, seq);
CREATE TABLE IF NOT EXISTS bulletin_deliveries (
    bulletin_id TEXT NOT NULL,
    station_id TEXT NOT NULL,
    state TEXT NOT NULL,
    at TEXT NOT NULL,
    latency_ms INTEGER,
    reason TEXT,
    received_at TEXT NOT NULL,
    reason_code TEXT,
    PRIMARY KEY (bulletin_id, station_id, state)
);
";

/// The file the bulletin tables lived in before they moved into the store.
const OLD_FILE: &str = "bulletins.sqlite";

/// Every bulletin, in the order of its first event (the order they were signed), the
/// same text in both stores.
pub(super) const SELECT_BULLETINS: &str = "SELECT doc_json, issued_by, cancelled_at FROM bulletins b \
     ORDER BY (SELECT MIN(seq) FROM bulletin_events e WHERE e.bulletin_id = b.id), id";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

/// Timestamps are RFC 3339 text in both stores, read by one function.
use super::pg::time;

/// An event number as the database keeps it (BIGINT / INTEGER).
fn seq_to_db(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq).map_err(|_| corrupt("bulletin event number", format!("{seq} is too large")))
}

/// An event number as read back.
fn seq_from_db(seq: i64) -> Result<u64, StoreError> {
    u64::try_from(seq).map_err(|_| corrupt("bulletin event number", format!("{seq} is negative")))
}

/// Creates the tables, and copies in an older central's `bulletins.sqlite` (beside
/// `db_path`) when there is one. Called from [`super::SqliteStore::open`].
pub(super) fn prepare(conn: &Connection, db_path: &Path) -> rusqlite::Result<()> {
    conn.execute_batch(SCHEMA)?;
    if let Some(dir) = db_path.parent()
        && dir.join(OLD_FILE).exists()
    {
        import_old_file(conn, dir)?;
    }
    Ok(())
}

/// Copies the older file's rows in (one transaction: all or none; event numbers,
/// bulletins, cancellations and delivery states as they were), then renames the file
/// `bulletins.sqlite.imported` so it is never read again. Idempotent, should a crash
/// come between the commit and the rename: every row is keyed, and the import runs
/// before this central appends anything.
fn import_old_file(conn: &Connection, dir: &Path) -> rusqlite::Result<()> {
    let old = dir.join(OLD_FILE);
    conn.execute("ATTACH DATABASE ?1 AS old", params![old.to_string_lossy()])?;
    let copied = (|| -> rusqlite::Result<Option<i64>> {
        let tables: i64 = conn.query_row(
            "SELECT COUNT(*) FROM old.sqlite_master WHERE type = 'table' \
             AND name IN ('bulletins', 'bulletin_events', 'bulletin_deliveries')",
            [],
            |r| r.get(0),
        )?;
        if tables < 3 {
            // Not a file central wrote (a station's, in a directory both use): not ours.
            return Ok(None);
        }
        // `reason_code` came later: a file from before it has none.
        let has_code: bool = conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info('bulletin_deliveries', 'old') \
             WHERE name = 'reason_code'",
            [],
            |r| r.get(0),
        )?;
        let code = if has_code { "reason_code" } else { "NULL" };
        let tx = conn.unchecked_transaction()?;
        tx.execute_batch(&format!(
            "INSERT OR IGNORE INTO main.bulletins (id, doc_json, issued_by, cancelled_at)
                 SELECT id, doc_json, issued_by, cancelled_at FROM old.bulletins ORDER BY rowid;
             INSERT OR IGNORE INTO main.bulletin_events (seq, bulletin_id, envelope_json, targets_json, expires_at)
                 SELECT seq, bulletin_id, envelope_json, targets_json, expires_at FROM old.bulletin_events;
             INSERT OR IGNORE INTO main.bulletin_deliveries
                 (bulletin_id, station_id, state, at, latency_ms, reason, received_at, reason_code)
                 SELECT bulletin_id, station_id, state, at, latency_ms, reason, received_at, {code}
                 FROM old.bulletin_deliveries;"
        ))?;
        let events: i64 =
            tx.query_row("SELECT COUNT(*) FROM old.bulletin_events", [], |r| r.get(0))?;
        tx.commit()?;
        Ok(Some(events))
    })();
    conn.execute_batch("DETACH DATABASE old")?;
    let Some(events) = copied? else { return Ok(()) };
    let aside = dir.join(format!("{OLD_FILE}.imported"));
    match std::fs::rename(&old, &aside) {
        Ok(()) => tracing::info!(
            events,
            "bulletins moved from {} into the central store; the old file is kept as {}",
            old.display(),
            aside.display()
        ),
        Err(e) => tracing::warn!("cannot rename {} to {}: {e}", old.display(), aside.display()),
    }
    for ext in ["-wal", "-shm"] {
        let _ = std::fs::remove_file(dir.join(format!("{OLD_FILE}{ext}")));
    }
    Ok(())
}

/// One store's statements inside an append's transaction; [`append_event`] decides the
/// order and what each answer means, once for both stores.
pub(super) trait EventWriter {
    /// The newest event number (`0`: none yet), read under a lock that every appender
    /// takes and holds until its commit.
    fn newest(&mut self) -> Result<i64, StoreError>;
    /// Sets `cancelled_at` of bulletin `id` if it is not yet: whether it changed.
    fn cancel(&mut self, id: &str, at: &str) -> Result<bool, StoreError>;
    fn insert_bulletin(&mut self, id: &str, doc_json: &str, by: &str) -> Result<(), StoreError>;
    fn insert_event(&mut self, row: &EventColumns<'_>) -> Result<(), StoreError>;
}

/// A `bulletin_events` row as written.
pub(super) struct EventColumns<'a> {
    pub seq: i64,
    pub bulletin_id: &'a str,
    pub envelope_json: &'a str,
    pub targets_json: &'a str,
    pub expires_at: &'a str,
}

/// [`super::Store::append_bulletin_event`] inside the caller's transaction (the caller
/// commits on `Ok(Some(_))` and rolls back otherwise).
pub(super) fn append_event(
    w: &mut impl EventWriter,
    subject: EventSubject<'_>,
    targets: &[String],
    expires_at: DateTime<Utc>,
    sign: SignEvent<'_>,
) -> Result<Option<BulletinEventRow>, StoreError> {
    let targets_json = serde_json::to_string(targets).map_err(|e| corrupt("targets", e))?;
    let newest = seq_from_db(w.newest()?)?;
    let seq = newest
        .checked_add(1)
        .ok_or_else(|| corrupt("bulletin event number", "the numbers are used up"))?;
    let bulletin_id = match subject {
        EventSubject::Issue { doc, issued_by } => {
            let doc = BulletinDoc { event_seq: Some(seq), ..doc.clone() };
            let doc_json = serde_json::to_string(&doc).map_err(|e| corrupt("bulletin", e))?;
            w.insert_bulletin(&doc.id, &doc_json, issued_by)?;
            doc.id
        }
        EventSubject::Cancel { id, at } => {
            if !w.cancel(id, &time_text(at))? {
                return Ok(None);
            }
            id.to_string()
        }
        EventSubject::Live { id } => id.to_string(),
    };
    let envelope = sign(seq).map_err(|why| StoreError::Signing { seq, why })?;
    let envelope_json = serde_json::to_string(&envelope).map_err(|e| corrupt("envelope", e))?;
    w.insert_event(&EventColumns {
        seq: seq_to_db(seq)?,
        bulletin_id: &bulletin_id,
        envelope_json: &envelope_json,
        targets_json: &targets_json,
        expires_at: &time_text(expires_at),
    })?;
    Ok(Some(BulletinEventRow { seq, bulletin_id, envelope, targets: targets.to_vec(), expires_at }))
}

/// An event from its stored columns (both stores).
pub(super) fn event_row(
    seq: i64,
    bulletin_id: String,
    envelope: &str,
    targets: &str,
    expires_at: &str,
) -> Result<BulletinEventRow, StoreError> {
    Ok(BulletinEventRow {
        seq: seq_from_db(seq)?,
        bulletin_id,
        envelope: serde_json::from_str(envelope).map_err(|e| corrupt("event envelope", e))?,
        targets: serde_json::from_str(targets).map_err(|e| corrupt("event targets", e))?,
        expires_at: time(expires_at)?,
    })
}

/// A bulletin from its stored columns (both stores).
pub(super) fn bulletin_row(
    doc: &str,
    issued_by: String,
    cancelled_at: Option<&str>,
) -> Result<StoredBulletin, StoreError> {
    Ok(StoredBulletin {
        doc: serde_json::from_str(doc).map_err(|e| corrupt("bulletin", e))?,
        issued_by,
        cancelled_at: cancelled_at.map(time).transpose()?,
    })
}

/// A `bulletin_deliveries` row as written.
pub(super) struct DeliveryColumns<'a> {
    pub bulletin_id: &'a str,
    pub station_id: &'a str,
    pub state: &'static str,
    pub at: String,
    pub latency_ms: Option<i64>,
    pub reason: Option<&'a str>,
    pub received_at: String,
    pub reason_code: Option<&'a str>,
}

/// Every report of `batches` as rows, sorted by key: writers that take the rows' locks
/// in one order never deadlock one another.
pub(super) fn delivery_columns(batches: &[DeliveryBatch]) -> Vec<DeliveryColumns<'_>> {
    let mut rows: Vec<DeliveryColumns<'_>> = batches
        .iter()
        .flat_map(|b| {
            let received_at = time_text(b.received_at);
            b.reports.iter().map(move |r| DeliveryColumns {
                bulletin_id: &r.bulletin_id,
                station_id: &b.station,
                state: r.state.as_str(),
                at: time_text(r.at),
                latency_ms: r.latency_ms,
                reason: r.reason.as_deref(),
                received_at: received_at.clone(),
                reason_code: r.reason_code.as_deref(),
            })
        })
        .collect();
    rows.sort_by(|a, b| {
        (a.bulletin_id, a.station_id, a.state).cmp(&(b.bulletin_id, b.station_id, b.state))
    });
    rows
}

/// One delivery state from its stored columns (both stores).
pub(super) fn delivery_row(
    bulletin_id: &str,
    station: String,
    state: String,
    at: &str,
    latency_ms: Option<i64>,
    reason: Option<String>,
    reason_code: Option<String>,
) -> Result<(String, DeliveryReport), StoreError> {
    let state = serde_json::from_value::<DeliveryState>(serde_json::Value::String(state))
        .map_err(|e| corrupt("delivery state", e))?;
    let report = DeliveryReport {
        bulletin_id: bulletin_id.to_string(),
        state,
        at: time(at)?,
        latency_ms,
        reason,
        reason_code,
    };
    Ok((station, report))
}

/// SQLite's statements for [`append_event`]; the transaction is IMMEDIATE, so the
/// write lock (every appender's) is held from before the newest number is read.
struct SqliteWriter<'a>(&'a rusqlite::Transaction<'a>);

impl EventWriter for SqliteWriter<'_> {
    fn newest(&mut self) -> Result<i64, StoreError> {
        Ok(self
            .0
            .query_row("SELECT COALESCE(MAX(seq), 0) FROM bulletin_events", [], |r| r.get(0))?)
    }
    fn cancel(&mut self, id: &str, at: &str) -> Result<bool, StoreError> {
        let changed = self.0.execute(
            "UPDATE bulletins SET cancelled_at = ?2 WHERE id = ?1 AND cancelled_at IS NULL",
            params![id, at],
        )?;
        Ok(changed == 1)
    }
    fn insert_bulletin(&mut self, id: &str, doc_json: &str, by: &str) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO bulletins (id, doc_json, issued_by) VALUES (?1, ?2, ?3)",
            params![id, doc_json, by],
        )?;
        Ok(())
    }
    fn insert_event(&mut self, row: &EventColumns<'_>) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO bulletin_events (seq, bulletin_id, envelope_json, targets_json, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![row.seq, row.bulletin_id, row.envelope_json, row.targets_json, row.expires_at],
        )?;
        Ok(())
    }
}

pub(super) fn append_bulletin_event(
    conn: &mut Connection,
    subject: EventSubject<'_>,
    targets: &[String],
    expires_at: DateTime<Utc>,
    sign: SignEvent<'_>,
) -> Result<Option<BulletinEventRow>, StoreError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    let row = append_event(&mut SqliteWriter(&tx), subject, targets, expires_at, sign)?;
    if row.is_some() {
        tx.commit()?;
    }
    Ok(row)
}

pub(super) fn bulletin_events_after(
    conn: &Connection,
    after: u64,
) -> Result<Vec<BulletinEventRow>, StoreError> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    let mut stmt = conn.prepare_cached(
        "SELECT seq, bulletin_id, envelope_json, targets_json, expires_at FROM bulletin_events WHERE seq > ?1 ORDER BY seq",
    )?;
    let rows = stmt
        .query_map(params![after], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(seq, id, env, targets, exp)| event_row(seq, id, &env, &targets, &exp))
        .collect()
}

type BulletinColumns = (String, String, Option<String>);

fn bulletin_columns(r: &rusqlite::Row<'_>) -> rusqlite::Result<BulletinColumns> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

pub(super) fn bulletin(conn: &Connection, id: &str) -> Result<Option<StoredBulletin>, StoreError> {
    conn.prepare_cached("SELECT doc_json, issued_by, cancelled_at FROM bulletins WHERE id = ?1")?
        .query_row(params![id], bulletin_columns)
        .optional()?
        .map(|(doc, by, cancelled)| bulletin_row(&doc, by, cancelled.as_deref()))
        .transpose()
}

pub(super) fn bulletins(conn: &Connection) -> Result<Vec<StoredBulletin>, StoreError> {
    let mut stmt = conn.prepare_cached(SELECT_BULLETINS)?;
    let rows = stmt.query_map([], bulletin_columns)?.collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(doc, by, cancelled)| bulletin_row(&doc, by, cancelled.as_deref()))
        .collect()
}

pub(super) fn put_deliveries(
    conn: &mut Connection,
    batches: &[DeliveryBatch],
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    {
        // The primary key keeps the first report of a state; later ones are ignored.
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO bulletin_deliveries (bulletin_id, station_id, state, at, latency_ms, reason, received_at, reason_code) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for row in delivery_columns(batches) {
            insert.execute(params![
                row.bulletin_id,
                row.station_id,
                row.state,
                row.at,
                row.latency_ms,
                row.reason,
                row.received_at,
                row.reason_code,
            ])?;
        }
    }
    tx.commit()?;
    Ok(())
}

pub(super) fn deliveries(
    conn: &Connection,
    bulletin_id: &str,
) -> Result<Vec<(String, DeliveryReport)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT station_id, state, at, latency_ms, reason, reason_code FROM bulletin_deliveries WHERE bulletin_id = ?1 ORDER BY station_id, state",
    )?;
    let rows = stmt
        .query_map(params![bulletin_id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get::<_, String>(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(station, state, at, latency, reason, code)| {
            delivery_row(bulletin_id, station, state, &at, latency, reason, code)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Duration;

    use super::*;
    use crate::protocol::{BulletinPriority, DocumentKind, SignedEnvelope};
    use crate::store::contract::each_store;
    use crate::store::{PgStore, SqliteStore, Store};
    use crate::testing::database::TestDatabase;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T05:00:00Z").unwrap().with_timezone(&Utc)
    }

    fn doc(id: &str) -> BulletinDoc {
        BulletinDoc {
            id: id.into(),
            title: "Lũ quét".into(),
            targets: vec!["a".into(), "b".into()],
            to_all: false,
            audio_sha256: "0".repeat(64),
            audio_size: 1,
            gain_db: -1.5,
            priority: BulletinPriority::Emergency,
            repeat: 2,
            interval_secs: 60,
            tone: true,
            issued_at: t0(),
            expires_at: t0() + chrono::Duration::hours(1),
            event_seq: None,
        }
    }

    /// An envelope that names the number it was signed with.
    fn envelope(seq: u64) -> SignedEnvelope {
        SignedEnvelope {
            kind: DocumentKind::Bulletin,
            payload: seq.to_string(),
            signature: String::new(),
        }
    }

    fn targets() -> Vec<String> {
        vec!["a".into(), "b".into()]
    }

    /// Appends `subject` signed with [`envelope`]; `None` when nothing was appended.
    fn append(store: &dyn Store, subject: EventSubject<'_>) -> Option<BulletinEventRow> {
        store
            .append_bulletin_event(
                subject,
                &targets(),
                t0() + chrono::Duration::hours(1),
                &mut |seq| Ok(envelope(seq)),
            )
            .unwrap()
    }

    fn issue(store: &dyn Store, id: &str) -> u64 {
        let doc = doc(id);
        append(store, EventSubject::Issue { doc: &doc, issued_by: "admin" }).unwrap().seq
    }

    fn seqs(store: &dyn Store, after: u64) -> Vec<u64> {
        store.bulletin_events_after(after).unwrap().iter().map(|e| e.seq).collect()
    }

    #[test]
    fn an_event_is_numbered_by_the_store_and_carries_its_bulletin() {
        each_store(|store| {
            let d = doc("b-1");
            let row = append(store, EventSubject::Issue { doc: &d, issued_by: "admin" }).unwrap();
            assert_eq!(row.seq, 1);
            assert_eq!(row.envelope, envelope(1));
            let stored = store.bulletin("b-1").unwrap().unwrap();
            assert_eq!(stored.doc, BulletinDoc { event_seq: Some(1), ..d.clone() });
            assert_eq!((stored.issued_by.as_str(), stored.cancelled_at), ("admin", None));
            assert_eq!(store.bulletin_events_after(0).unwrap(), vec![row]);

            let at = t0() + chrono::Duration::minutes(5);
            let cancel = append(store, EventSubject::Cancel { id: "b-1", at }).unwrap();
            assert_eq!((cancel.seq, cancel.bulletin_id.as_str()), (2, "b-1"));
            assert_eq!(store.bulletin("b-1").unwrap().unwrap().cancelled_at, Some(at));
            // Cancelled already (by someone else a moment before), or never signed:
            // nothing appended, nothing signed.
            let mut never = |_| -> Result<SignedEnvelope, String> { panic!("signed") };
            for id in ["b-1", "unknown"] {
                let again = EventSubject::Cancel { id, at };
                assert_eq!(store.append_bulletin_event(again, &[], at, &mut never).unwrap(), None);
            }
            assert_eq!(store.bulletin("b-1").unwrap().unwrap().cancelled_at, Some(at));

            let live = append(store, EventSubject::Live { id: "live-1" }).unwrap();
            assert_eq!(live.seq, 3);
            assert_eq!(store.bulletin("live-1").unwrap(), None, "a live start has no bulletin row");
            assert_eq!(seqs(store, 1), vec![2, 3]);
            assert_eq!(store.bulletin_events_after(2).unwrap(), vec![live]);
            assert!(seqs(store, 3).is_empty());
            assert!(seqs(store, u64::MAX).is_empty(), "a resume point past every event");
            assert_eq!(store.bulletin("nope").unwrap(), None);
        });
    }

    #[test]
    fn a_failed_signature_or_a_repeated_id_appends_nothing() {
        each_store(|store| {
            let d = doc("b-1");
            let subject = EventSubject::Issue { doc: &d, issued_by: "admin" };
            let err = store
                .append_bulletin_event(subject, &targets(), d.expires_at, &mut |_| {
                    Err("the key is unreadable".into())
                })
                .unwrap_err();
            assert!(
                matches!(&err, StoreError::Signing { seq: 1, why } if why.contains("unreadable")),
                "{err:?}"
            );
            assert_eq!(store.bulletin("b-1").unwrap(), None);
            assert!(seqs(store, 0).is_empty());
            assert_eq!(issue(store, "b-1"), 1, "the number was not used up");
            let again =
                store.append_bulletin_event(subject, &targets(), d.expires_at, &mut |seq| {
                    Ok(envelope(seq))
                });
            assert!(again.is_err(), "one bulletin id is signed once: {again:?}");
            assert_eq!(seqs(store, 0), vec![1]);
            assert_eq!(issue(store, "b-2"), 2);
        });
    }

    #[test]
    fn bulletins_are_listed_in_the_order_they_were_signed() {
        each_store(|store| {
            assert!(store.bulletins().unwrap().is_empty());
            for id in ["m", "c", "x"] {
                issue(store, id);
            }
            append(store, EventSubject::Live { id: "a-live" });
            append(store, EventSubject::Cancel { id: "m", at: t0() });
            let listed: Vec<(String, Option<u64>, bool)> = store
                .bulletins()
                .unwrap()
                .into_iter()
                .map(|b| (b.doc.id, b.doc.event_seq, b.cancelled_at.is_some()))
                .collect();
            let expected = [("m", 1, true), ("c", 2, false), ("x", 3, false)]
                .map(|(id, seq, cancelled)| (id.to_string(), Some(seq), cancelled));
            assert_eq!(listed, expected);
        });
    }

    fn report(id: &str, state: DeliveryState, minute: i64) -> DeliveryReport {
        DeliveryReport {
            bulletin_id: id.into(),
            state,
            at: t0() + chrono::Duration::minutes(minute),
            latency_ms: (state == DeliveryState::Started).then_some(850),
            reason: (state == DeliveryState::Failed).then(|| "đĩa đầy".to_string()),
            reason_code: (state == DeliveryState::Failed).then(|| "failure".to_string()),
        }
    }

    fn batch(station: &str, reports: Vec<DeliveryReport>) -> DeliveryBatch {
        DeliveryBatch { station: station.into(), reports, received_at: t0() }
    }

    #[test]
    fn delivery_reports_keep_the_first_of_each_state() {
        each_store(|store| {
            store.put_deliveries(&[]).unwrap();
            store.put_deliveries(&[batch("a", Vec::new())]).unwrap();
            use DeliveryState::*;
            store
                .put_deliveries(&[
                    batch("a-2", vec![report("b-1", Delivered, 1), report("b-1", Started, 2)]),
                    // The same state twice in one group commit: the first stays.
                    batch("a1", vec![report("b-1", Failed, 3), report("b-1", Failed, 9)]),
                    batch("a", vec![report("b-2", Delivered, 4)]),
                ])
                .unwrap();
            // Sent again (a lost acknowledgement), later, maybe to another central.
            store
                .put_deliveries(&[batch(
                    "a-2",
                    vec![report("b-1", Delivered, 7), report("b-1", Finished, 8)],
                )])
                .unwrap();
            let got = store.deliveries("b-1").unwrap();
            let expected = vec![
                // In byte order on both stores (`-` before `1`), whatever the locale.
                ("a-2".to_string(), report("b-1", Delivered, 1)),
                ("a-2".to_string(), report("b-1", Finished, 8)),
                ("a-2".to_string(), report("b-1", Started, 2)),
                ("a1".to_string(), report("b-1", Failed, 3)),
            ];
            assert_eq!(got, expected);
            assert_eq!(
                store.deliveries("b-2").unwrap(),
                vec![("a".into(), report("b-2", Delivered, 4))]
            );
            assert!(store.deliveries("b-3").unwrap().is_empty());
        });
    }

    /// Two handles on one database, as two central replicas have: two SQLite stores on
    /// one file, then two PostgreSQL stores on one database.
    fn each_pair(test: impl Fn(&dyn Store, &dyn Store)) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.sqlite");
        let (a, b) = (SqliteStore::open(&path).unwrap(), SqliteStore::open(&path).unwrap());
        test(&a, &b);
        let database = TestDatabase::new();
        let (a, b) =
            (PgStore::connect(&database.url).unwrap(), PgStore::connect(&database.url).unwrap());
        test(&a, &b);
    }

    /// Replicas appending at once: every number taken once, none skipped, and each event
    /// stored with the envelope signed for its number (and its bulletin with it).
    #[test]
    fn concurrent_appends_from_two_replicas_are_numbered_contiguously() {
        const THREADS: usize = 4;
        const EACH: usize = 10;
        each_pair(|a, b| {
            let taken: Vec<u64> = std::thread::scope(|scope| {
                let workers: Vec<_> = (0..THREADS)
                    .map(|n| {
                        let store = if n % 2 == 0 { a } else { b };
                        scope.spawn(move || {
                            (0..EACH)
                                .map(|i| issue(store, &format!("b-{n}-{i}")))
                                .collect::<Vec<_>>()
                        })
                    })
                    .collect();
                workers.into_iter().flat_map(|w| w.join().unwrap()).collect()
            });
            let mut sorted = taken.clone();
            sorted.sort();
            let all: Vec<u64> = (1..=(THREADS * EACH) as u64).collect();
            assert_eq!(sorted, all, "contiguous, no number twice");
            for store in [a, b] {
                let events = store.bulletin_events_after(0).unwrap();
                assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), all);
                for event in events {
                    assert_eq!(event.envelope, envelope(event.seq));
                    let stored = store.bulletin(&event.bulletin_id).unwrap().unwrap();
                    assert_eq!(stored.doc.event_seq, Some(event.seq));
                }
            }
        });
    }

    /// Two operators cancelling one bulletin through two replicas at once: one cancel
    /// order is signed and appended, the other finds it cancelled.
    #[test]
    fn concurrent_cancels_on_two_replicas_append_one_order() {
        each_pair(|a, b| {
            issue(a, "b-1");
            let appended: Vec<Option<u64>> = std::thread::scope(|scope| {
                let cancels: Vec<_> = [a, b, a, b]
                    .into_iter()
                    .map(|store| {
                        scope.spawn(move || {
                            append(store, EventSubject::Cancel { id: "b-1", at: t0() })
                                .map(|row| row.seq)
                        })
                    })
                    .collect();
                cancels.into_iter().map(|c| c.join().unwrap()).collect()
            });
            assert_eq!(appended.iter().flatten().collect::<Vec<_>>(), vec![&2], "{appended:?}");
            assert_eq!(seqs(b, 0), vec![1, 2]);
        });
    }

    /// The same reports reaching two replicas at once (a station that failed over with
    /// reports unacknowledged): each state stored once.
    #[test]
    fn concurrent_delivery_reports_on_two_replicas_are_each_stored_once() {
        use DeliveryState::*;
        each_pair(|a, b| {
            std::thread::scope(|scope| {
                for (n, store) in [a, b, a, b].into_iter().enumerate() {
                    scope.spawn(move || {
                        for station in 0..20 {
                            let reports = [Delivered, Verified, Started, Finished]
                                .map(|s| report("b-1", s, n as i64))
                                .to_vec();
                            store
                                .put_deliveries(&[batch(&format!("s-{station}"), reports)])
                                .unwrap();
                        }
                    });
                }
            });
            let stored = a.deliveries("b-1").unwrap();
            assert_eq!(stored.len(), 20 * 4);
            assert_eq!(b.deliveries("b-1").unwrap(), stored);
        });
    }

    #[test]
    fn an_embedded_file_has_no_feed() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("central.sqlite")).unwrap();
        assert!(store.bulletin_feed().is_none(), "one process writes it: nothing to follow");
    }

    /// Waits for a message on `feed` that satisfies `wanted`, at most `within`.
    fn heard(feed: &mpsc::Receiver<u64>, within: Duration, wanted: impl Fn(u64) -> bool) -> u64 {
        let deadline = std::time::Instant::now() + within;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match feed.recv_timeout(left) {
                Ok(seq) if wanted(seq) => return seq,
                Ok(_) => {}
                Err(e) => panic!("nothing wanted on the feed within {within:?}: {e}"),
            }
        }
    }

    /// Replica B hears of replica A's append from the database within a bounded time,
    /// with the event's number.
    #[test]
    fn an_append_on_one_replica_is_announced_to_the_other() {
        let database = TestDatabase::new();
        let a = PgStore::connect(&database.url).unwrap();
        let b = PgStore::connect(&database.url).unwrap();
        let feed = b.bulletin_feed().expect("a shared database has a feed");
        // The first message says B listens: every commit after it is announced.
        assert_eq!(heard(&feed, Duration::from_secs(10), |_| true), 0);
        let late = b.bulletin_feed().unwrap();
        assert_eq!(heard(&late, Duration::from_secs(10), |_| true), 0, "a later subscriber too");
        let seq = issue(&a, "b-1");
        assert_eq!(heard(&feed, Duration::from_secs(5), |s| s != 0), seq);
        assert_eq!(heard(&late, Duration::from_secs(5), |s| s != 0), seq);
        append(&a, EventSubject::Cancel { id: "b-1", at: t0() });
        assert_eq!(heard(&feed, Duration::from_secs(5), |s| s != 0), seq + 1);
        // A rolled-back append (its signature failed) announces nothing: the next
        // announcement is the next commit.
        let d = doc("b-2");
        let subject = EventSubject::Issue { doc: &d, issued_by: "admin" };
        let failed = a.append_bulletin_event(subject, &[], d.expires_at, &mut |_| Err("no".into()));
        assert!(failed.is_err());
        let next = issue(&b, "b-3");
        assert_eq!(heard(&feed, Duration::from_secs(5), |s| s != 0), next);
        assert_eq!(next, seq + 2);
    }

    /// A station's own `bulletins.sqlite` in the same directory is not central's: left
    /// alone.
    #[test]
    fn a_bulletin_file_central_did_not_write_is_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let station = Connection::open(dir.path().join(OLD_FILE)).unwrap();
        station.execute_batch("CREATE TABLE seen (id TEXT PRIMARY KEY)").unwrap();
        drop(station);
        let store = SqliteStore::open(&dir.path().join("central.sqlite")).unwrap();
        assert!(dir.path().join(OLD_FILE).exists());
        assert!(seqs(&store, 0).is_empty());
    }

    /// A data directory from before the move: its `bulletins.sqlite` (from before
    /// `reason_code`, too) is copied in once and set aside; the numbering goes on.
    #[test]
    fn an_older_bulletin_file_is_imported_once_and_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let d = BulletinDoc { event_seq: Some(7), ..doc("b-7") };
        let old = Connection::open(dir.path().join(OLD_FILE)).unwrap();
        old.execute_batch(
            "CREATE TABLE bulletins (id TEXT PRIMARY KEY, doc_json TEXT NOT NULL, issued_by TEXT NOT NULL, cancelled_at TEXT);
             CREATE TABLE bulletin_events (seq INTEGER PRIMARY KEY, bulletin_id TEXT NOT NULL, envelope_json TEXT NOT NULL, targets_json TEXT NOT NULL, expires_at TEXT NOT NULL);
             CREATE TABLE bulletin_deliveries (bulletin_id TEXT NOT NULL, station_id TEXT NOT NULL, state TEXT NOT NULL, at TEXT NOT NULL, latency_ms INTEGER, reason TEXT, received_at TEXT NOT NULL, PRIMARY KEY (bulletin_id, station_id, state));",
        )
        .unwrap();
        old.execute(
            "INSERT INTO bulletins VALUES ('b-7', ?1, 'admin', '2026-12-01T05:30:00+00:00')",
            [serde_json::to_string(&d).unwrap()],
        )
        .unwrap();
        for seq in [7, 8] {
            old.execute(
                "INSERT INTO bulletin_events VALUES (?1, 'b-7', ?2, '[\"a\"]', '2026-12-01T06:00:00+00:00')",
                params![seq, serde_json::to_string(&envelope(seq as u64)).unwrap()],
            )
            .unwrap();
        }
        old.execute_batch(
            "INSERT INTO bulletin_deliveries VALUES ('b-7', 'a', 'started', '2026-12-01T05:00:00+00:00', 850, NULL, '2026-12-01T05:00:01+00:00');",
        )
        .unwrap();
        drop(old);

        let path = dir.path().join("central.sqlite");
        let store = SqliteStore::open(&path).unwrap();
        assert!(!dir.path().join(OLD_FILE).exists());
        assert!(dir.path().join(format!("{OLD_FILE}.imported")).exists());
        let events = store.bulletin_events_after(0).unwrap();
        assert_eq!(events.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![7, 8]);
        assert_eq!(events[1].envelope, envelope(8));
        assert_eq!(events[0].targets, vec!["a".to_string()]);
        let stored = store.bulletin("b-7").unwrap().unwrap();
        assert_eq!(stored.doc, d);
        assert_eq!(stored.cancelled_at, Some(t0() + chrono::Duration::minutes(30)));
        let delivered = store.deliveries("b-7").unwrap();
        assert_eq!(delivered.len(), 1);
        assert_eq!(
            (delivered[0].1.state, delivered[0].1.latency_ms),
            (DeliveryState::Started, Some(850))
        );
        assert_eq!(delivered[0].1.reason_code, None);
        assert_eq!(issue(&store, "b-9"), 9, "numbering goes on from the imported events");
        drop(store);
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(seqs(&store, 0), vec![7, 8, 9], "imported once");
    }

    /// `loa central migrate --to postgres://…`: the bulletin tables copy column by
    /// column, and the stream's numbering goes on in PostgreSQL after the last event
    /// SQLite numbered (stations resume where they were).
    #[test]
    fn a_migrated_central_goes_on_numbering_its_bulletin_events() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.sqlite");
        let lite = SqliteStore::open(&path).unwrap();
        issue(&lite, "b-1");
        issue(&lite, "b-2");
        append(&lite, EventSubject::Cancel { id: "b-1", at: t0() });
        let started = batch("a", vec![report("b-2", DeliveryState::Started, 1)]);
        lite.put_deliveries(&[started]).unwrap();
        let database = TestDatabase::new();
        let pg = PgStore::connect(&database.url).unwrap();
        let audio = dir.path().join("audio");
        std::fs::create_dir_all(&audio).unwrap();
        crate::store::copy::sqlite_to_postgres(&path, &audio, &pg).unwrap();
        assert_eq!(pg.bulletin_events_after(0).unwrap(), lite.bulletin_events_after(0).unwrap());
        assert_eq!(pg.bulletins().unwrap(), lite.bulletins().unwrap());
        assert_eq!(pg.deliveries("b-2").unwrap(), lite.deliveries("b-2").unwrap());
        assert_eq!(issue(&pg, "b-3"), 4);
    }
}
