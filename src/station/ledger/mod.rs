//! The station's ledger: one durable, hash-chained record per planned item, in SQLite on
//! disk (WAL, `synchronous = FULL`), plus a small state table the daemon uses to know
//! how long it was down.
//!
//! Invariants kept here, not by callers:
//! - at most one record per `(item_id, planned)`: a restart cannot record an occurrence
//!   twice ([`Ledger::append`] returns the existing record instead);
//! - sequence numbers are contiguous and each record carries the previous one's hash;
//! - an unacknowledged record is never deleted (a trigger refuses it);
//! - [`Ledger::append`] returns only after the record is committed to disk.
//!
//! The ledger knows nothing about schedules, audio or the network.

use std::path::Path;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};

pub use crate::protocol::playlog::{
    Entry, GENESIS, Levels, Outcome, Record, chain_hash, time_text,
};

use crate::schedule::{Layer, Priority};

/// A ledger problem.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(
        "cannot open the ledger {path}: {source} (check that the data directory exists and is writable)"
    )]
    Open {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error(
        "ledger {path} belongs to station {found:?}, not {expected:?} (check station_id and data_dir)"
    )]
    WrongStation { path: String, found: String, expected: String },
    #[error("ledger database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("ledger record {seq} is unreadable: {problem}")]
    Corrupt { seq: u64, problem: String },
}

/// Whether [`Ledger::append`] stored a new record or found the occurrence already there.
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    New(Record),
    Duplicate(Record),
}

impl Appended {
    pub fn record(&self) -> &Record {
        match self {
            Appended::New(r) | Appended::Duplicate(r) => r,
        }
    }
}

/// What [`Ledger::query`] selects. Empty fields select everything.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Planned at or after.
    pub since: Option<DateTime<Utc>>,
    /// Planned before.
    pub until: Option<DateTime<Utc>>,
    pub outcome: Option<Outcome>,
    pub item_id: Option<String>,
}

/// The result of [`Ledger::verify`].
#[derive(Debug, Clone, PartialEq)]
pub struct ChainReport {
    pub records: u64,
    /// The first record where the chain breaks, and how.
    pub first_break: Option<(u64, String)>,
}

/// Keys of the state table.
pub mod state {
    /// The last instant the daemon was known alive (written every few seconds).
    pub const ALIVE: &str = "alive";
    /// Every occurrence planned before this instant has a record or is in flight.
    pub const HORIZON: &str = "horizon";
    /// JSON of the item playing now (see `station::daemon`), removed when it ends.
    pub const PLAYING: &str = "playing";
}

/// An open ledger for one station.
pub struct Ledger {
    conn: Connection,
    station: String,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS records (
    seq          INTEGER PRIMARY KEY,
    station      TEXT NOT NULL,
    item_id      TEXT NOT NULL,
    title        TEXT NOT NULL,
    layer        TEXT NOT NULL,
    priority     TEXT NOT NULL,
    planned      TEXT NOT NULL,
    outcome      TEXT NOT NULL,
    started      TEXT,
    ended        TEXT,
    delay_ms     INTEGER,
    played_secs  REAL,
    reason       TEXT,
    audio_sha256 TEXT,
    peak_dbfs    REAL,
    rms_dbfs     REAL,
    silent       INTEGER,
    prev_hash    TEXT NOT NULL,
    hash         TEXT NOT NULL,
    acked        INTEGER NOT NULL DEFAULT 0,
    UNIQUE (item_id, planned)
);
CREATE INDEX IF NOT EXISTS records_planned ON records (planned);
CREATE TRIGGER IF NOT EXISTS records_keep_unacked BEFORE DELETE ON records
    WHEN OLD.acked = 0
    BEGIN SELECT RAISE(ABORT, 'unacknowledged ledger records are never deleted'); END;
CREATE TABLE IF NOT EXISTS state (key TEXT PRIMARY KEY, value TEXT NOT NULL);
";

/// Columns added after the first release, with their type: added to an older ledger
/// when it is opened.
const ADDED_COLUMNS: &[(&str, &str)] = &[("reason_code", "TEXT"), ("relay_json", "TEXT")];

/// Every column but `acked` may never change once written. Created on open, and made
/// again over the columns added since when an older ledger's trigger lacks them.
const APPEND_ONLY: &str = "
CREATE TRIGGER records_append_only BEFORE UPDATE OF
    seq, station, item_id, title, layer, priority, planned, outcome, started, ended,
    delay_ms, played_secs, reason, audio_sha256, peak_dbfs, rms_dbfs, silent, prev_hash, hash,
    reason_code, relay_json
    ON records
    BEGIN SELECT RAISE(ABORT, 'ledger records are append-only'); END;
";

const COLUMNS: &str = "seq, station, item_id, title, layer, priority, planned, outcome, started, \
     ended, delay_ms, played_secs, reason, audio_sha256, peak_dbfs, rms_dbfs, silent, prev_hash, \
     hash, acked, reason_code, relay_json";

/// Brings a ledger written by an older version up to date: the columns added since,
/// and the append-only trigger over all of them. In one write transaction, and only what
/// is missing: the daemon and `loa log` may open the same ledger at the same moment, and
/// the second must find the work done rather than fail on it.
fn migrate(conn: &Connection) -> rusqlite::Result<()> {
    let current = |conn: &Connection| -> rusqlite::Result<bool> {
        let columns = ADDED_COLUMNS.iter().try_fold(true, |all, (name, _)| {
            let present = conn
                .prepare("SELECT 1 FROM pragma_table_info('records') WHERE name = ?1")?
                .exists([name])?;
            Ok::<_, rusqlite::Error>(all && present)
        })?;
        let trigger: Option<String> = conn
            .query_row(
                "SELECT sql FROM sqlite_master WHERE type = 'trigger' AND name = 'records_append_only'",
                [],
                |r| r.get(0),
            )
            .optional()?;
        let covers =
            trigger.is_some_and(|sql| ADDED_COLUMNS.iter().all(|(name, _)| sql.contains(name)));
        Ok(columns && covers)
    };
    if current(conn)? {
        return Ok(());
    }
    conn.execute_batch("BEGIN IMMEDIATE")?;
    let done = (|| {
        if current(conn)? {
            return Ok(());
        }
        for (name, kind) in ADDED_COLUMNS {
            let present = conn
                .prepare("SELECT 1 FROM pragma_table_info('records') WHERE name = ?1")?
                .exists([name])?;
            if !present {
                conn.execute_batch(&format!("ALTER TABLE records ADD COLUMN {name} {kind}"))?;
            }
        }
        conn.execute_batch("DROP TRIGGER IF EXISTS records_append_only")?;
        conn.execute_batch(APPEND_ONLY)
    })();
    match done {
        Ok(()) => conn.execute_batch("COMMIT"),
        Err(e) => {
            let _ = conn.execute_batch("ROLLBACK");
            Err(e)
        }
    }
}

/// What a record query may be narrowed by: since, until, outcome, item id.
pub type RecordFilter<'a> =
    (Option<DateTime<Utc>>, Option<DateTime<Utc>>, Option<Outcome>, Option<&'a str>);

/// Appends the conditions every record query shares — planned in `[since, until)`, an
/// outcome, an item — to `sql` as numbered parameters in `args`. The station's ledger and
/// central's playlog keep records in tables with the same column names, so both filter
/// through this one function and cannot drift apart.
pub fn push_conditions(
    (since, until, outcome, item_id): RecordFilter<'_>,
    sql: &mut String,
    args: &mut Vec<String>,
) {
    if let Some(t) = since {
        args.push(time_text(t));
        sql.push_str(&format!(" AND planned >= ?{}", args.len()));
    }
    if let Some(t) = until {
        args.push(time_text(t));
        sql.push_str(&format!(" AND planned < ?{}", args.len()));
    }
    if let Some(o) = outcome {
        args.push(o.as_str().to_string());
        sql.push_str(&format!(" AND outcome = ?{}", args.len()));
    }
    if let Some(item) = item_id {
        args.push(item.to_string());
        sql.push_str(&format!(" AND item_id = ?{}", args.len()));
    }
}

fn parse_time(seq: u64, text: &str) -> Result<DateTime<Utc>, LedgerError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| LedgerError::Corrupt { seq, problem: format!("bad time {text:?}: {e}") })
}

fn enum_text<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value)
        .ok()
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default()
}

fn parse_enum<T: serde::de::DeserializeOwned>(seq: u64, text: &str) -> Result<T, LedgerError> {
    serde_json::from_value(serde_json::Value::String(text.to_string()))
        .map_err(|e| LedgerError::Corrupt { seq, problem: format!("bad value {text:?}: {e}") })
}

/// Appends `entry` inside `tx`: `Ok(Ok(record))` when stored, `Ok(Err(seq))` when
/// `(item_id, planned)` is already recorded as `seq`.
fn append_in(
    tx: &rusqlite::Transaction<'_>,
    station: &str,
    entry: Entry,
) -> Result<Result<Record, u64>, LedgerError> {
    let entry = entry.normalized();
    let existing: Option<u64> = tx
        .query_row(
            "SELECT seq FROM records WHERE item_id = ?1 AND planned = ?2",
            params![entry.item_id, time_text(entry.planned)],
            |r| r.get(0),
        )
        .optional()?;
    if let Some(seq) = existing {
        return Ok(Err(seq));
    }
    let last: Option<(u64, String)> = tx
        .query_row("SELECT seq, hash FROM records ORDER BY seq DESC LIMIT 1", [], |r| {
            Ok((r.get(0)?, r.get(1)?))
        })
        .optional()?;
    let (seq, prev_hash) = match last {
        Some((seq, hash)) => (seq + 1, hash),
        None => (1, GENESIS.to_string()),
    };
    let hash = chain_hash(&prev_hash, station, seq, &entry);
    let levels = entry.levels;
    tx.execute(
        &format!(
            "INSERT INTO records ({COLUMNS}) VALUES \
             (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, 0, ?20, ?21)"
        ),
        params![
            seq,
            station,
            entry.item_id,
            entry.title,
            enum_text(&entry.layer),
            enum_text(&entry.priority),
            time_text(entry.planned),
            entry.outcome.as_str(),
            entry.started.map(time_text),
            entry.ended.map(time_text),
            entry.delay_ms,
            entry.played_secs,
            entry.reason,
            entry.audio_sha256,
            levels.map(|l| l.peak_dbfs),
            levels.map(|l| l.rms_dbfs),
            levels.map(|l| l.silent),
            prev_hash,
            hash,
            entry.reason_code,
            entry.relay.and_then(|r| serde_json::to_string(&r).ok()),
        ],
    )?;
    Ok(Ok(Record { station: station.to_string(), seq, entry, prev_hash, hash, acked: false }))
}

impl Ledger {
    /// Opens (creating if needed) the ledger at `path` for `station`. A ledger written by
    /// another station is refused, so two configs cannot mix their chains.
    pub fn open(path: &Path, station: &str) -> Result<Self, LedgerError> {
        let open_err = |source| LedgerError::Open { path: path.display().to_string(), source };
        let conn = Connection::open(path).map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
        conn.pragma_update(None, "journal_mode", "WAL").map_err(open_err)?;
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
        conn.execute_batch(SCHEMA).map_err(open_err)?;
        migrate(&conn).map_err(open_err)?;
        let found: Option<String> = conn
            .query_row("SELECT value FROM meta WHERE key = 'station'", [], |r| r.get(0))
            .optional()?;
        match found {
            Some(found) if found != station => {
                return Err(LedgerError::WrongStation {
                    path: path.display().to_string(),
                    found,
                    expected: station.to_string(),
                });
            }
            Some(_) => {}
            None => {
                conn.execute("INSERT INTO meta (key, value) VALUES ('station', ?1)", [station])?;
            }
        }
        Ok(Self { conn, station: station.to_string() })
    }

    /// Opens an existing ledger for reading whatever station wrote it (`loa log`).
    pub fn open_existing(path: &Path) -> Result<Self, LedgerError> {
        let open_err = |source| LedgerError::Open { path: path.display().to_string(), source };
        if !path.exists() {
            return Err(open_err(rusqlite::Error::InvalidPath(path.to_path_buf())));
        }
        let conn = Connection::open_with_flags(
            path,
            rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )
        .map_err(open_err)?;
        conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(open_err)?;
        // Whoever opens the ledger may write to it: every connection commits durably.
        conn.pragma_update(None, "synchronous", "FULL").map_err(open_err)?;
        migrate(&conn).map_err(open_err)?;
        let station: String = conn
            .query_row("SELECT value FROM meta WHERE key = 'station'", [], |r| r.get(0))
            .map_err(open_err)?;
        Ok(Self { conn, station })
    }

    pub fn station(&self) -> &str {
        &self.station
    }

    /// Appends the record for one occurrence, durably, unless `(item_id, planned)` is
    /// already recorded — then the existing record is returned untouched.
    pub fn append(&mut self, entry: Entry) -> Result<Appended, LedgerError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let appended = append_in(&tx, &self.station, entry)?;
        tx.commit()?;
        match appended {
            Ok(record) => Ok(Appended::New(record)),
            Err(seq) => {
                let record = self.get(seq)?.ok_or(LedgerError::Corrupt {
                    seq,
                    problem: "record vanished while reading".to_string(),
                })?;
                Ok(Appended::Duplicate(record))
            }
        }
    }

    /// Appends many records in one transaction (one fsync), skipping every occurrence
    /// already recorded; returns the records stored. For bulk accounting (a clock step,
    /// recovery after downtime), where one commit per record would take minutes.
    pub fn append_batch(&mut self, entries: Vec<Entry>) -> Result<Vec<Record>, LedgerError> {
        let tx = self.conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let mut stored = Vec::new();
        for entry in entries {
            if let Ok(record) = append_in(&tx, &self.station, entry)? {
                stored.push(record);
            }
        }
        tx.commit()?;
        Ok(stored)
    }

    /// The record with sequence number `seq`.
    pub fn get(&self, seq: u64) -> Result<Option<Record>, LedgerError> {
        let mut stmt =
            self.conn.prepare_cached(&format!("SELECT {COLUMNS} FROM records WHERE seq = ?1"))?;
        let mut rows = stmt.query([seq])?;
        match rows.next()? {
            Some(row) => Ok(Some(read_row(row)?)),
            None => Ok(None),
        }
    }

    /// Whether an occurrence already has its record.
    pub fn contains(&self, item_id: &str, planned: DateTime<Utc>) -> Result<bool, LedgerError> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM records WHERE item_id = ?1 AND planned = ?2",
            params![item_id, time_text(planned.trunc_micros())],
            |r| r.get(0),
        )?;
        Ok(n > 0)
    }

    /// Records matching `filter`, oldest planned first (then by sequence).
    pub fn query(&self, filter: &Filter) -> Result<Vec<Record>, LedgerError> {
        let mut sql = format!("SELECT {COLUMNS} FROM records WHERE 1 = 1");
        let mut args: Vec<String> = Vec::new();
        push_conditions(
            (filter.since, filter.until, filter.outcome, filter.item_id.as_deref()),
            &mut sql,
            &mut args,
        );
        sql.push_str(" ORDER BY planned, seq");
        let mut stmt = self.conn.prepare(&sql)?;
        let mut rows = stmt.query(rusqlite::params_from_iter(args.iter()))?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(read_row(row)?);
        }
        Ok(out)
    }

    /// Up to `limit` unacknowledged records, in sequence order (what the reporter sends).
    pub fn unacked(&self, limit: usize) -> Result<Vec<Record>, LedgerError> {
        let mut stmt = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM records WHERE acked = 0 ORDER BY seq LIMIT ?1"
        ))?;
        let mut rows = stmt.query([limit as i64])?;
        let mut out = Vec::new();
        while let Some(row) = rows.next()? {
            out.push(read_row(row)?);
        }
        Ok(out)
    }

    /// Marks every record up to and including `seq` as acknowledged by central.
    pub fn ack_through(&mut self, seq: u64) -> Result<usize, LedgerError> {
        Ok(self
            .conn
            .execute("UPDATE records SET acked = 1 WHERE seq <= ?1 AND acked = 0", [seq])?)
    }

    /// Walks the whole chain and reports the first record whose sequence, link or hash
    /// does not hold.
    pub fn verify(&self) -> Result<ChainReport, LedgerError> {
        let mut stmt = self.conn.prepare(&format!("SELECT {COLUMNS} FROM records ORDER BY seq"))?;
        let mut rows = stmt.query([])?;
        let mut expected_seq = 1u64;
        let mut prev = GENESIS.to_string();
        let mut count = 0u64;
        while let Some(row) = rows.next()? {
            let seq: u64 = row.get(0)?;
            count += 1;
            let record = match read_row(row) {
                Ok(r) => r,
                Err(e) => {
                    return Ok(ChainReport {
                        records: count,
                        first_break: Some((seq, e.to_string())),
                    });
                }
            };
            let problem = if record.seq != expected_seq {
                Some(format!("sequence jumps from {} to {}", expected_seq - 1, record.seq))
            } else if record.prev_hash != prev {
                Some("prev_hash does not match the previous record's hash".to_string())
            } else if !record.hash_is_valid() {
                Some("content does not match its hash (record altered)".to_string())
            } else {
                None
            };
            if let Some(problem) = problem {
                return Ok(ChainReport {
                    records: count,
                    first_break: Some((record.seq, problem)),
                });
            }
            prev = record.hash;
            expected_seq += 1;
        }
        Ok(ChainReport { records: count, first_break: None })
    }

    /// Reads a state value.
    pub fn state(&self, key: &str) -> Result<Option<String>, LedgerError> {
        Ok(self
            .conn
            .query_row("SELECT value FROM state WHERE key = ?1", [key], |r| r.get(0))
            .optional()?)
    }

    /// Writes a state value durably.
    pub fn set_state(&mut self, key: &str, value: &str) -> Result<(), LedgerError> {
        self.conn.execute(
            "INSERT INTO state (key, value) VALUES (?1, ?2) \
             ON CONFLICT (key) DO UPDATE SET value = excluded.value",
            [key, value],
        )?;
        Ok(())
    }

    /// Writes several state values in one durable transaction (one fsync).
    pub fn set_states(&mut self, pairs: &[(&str, &str)]) -> Result<(), LedgerError> {
        let tx = self.conn.transaction()?;
        for (key, value) in pairs {
            tx.execute(
                "INSERT INTO state (key, value) VALUES (?1, ?2) \
                 ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                [key, value],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Removes a state value.
    pub fn clear_state(&mut self, key: &str) -> Result<(), LedgerError> {
        self.conn.execute("DELETE FROM state WHERE key = ?1", [key])?;
        Ok(())
    }

    /// A state value holding an instant.
    pub fn state_time(&self, key: &str) -> Result<Option<DateTime<Utc>>, LedgerError> {
        Ok(self.state(key)?.and_then(|t| DateTime::parse_from_rfc3339(&t).ok()).map(|t| t.to_utc()))
    }

    /// Writes an instant as a state value.
    pub fn set_state_time(&mut self, key: &str, t: DateTime<Utc>) -> Result<(), LedgerError> {
        self.set_state(key, &time_text(t))
    }
}

trait TruncMicros {
    fn trunc_micros(self) -> Self;
}
impl TruncMicros for DateTime<Utc> {
    fn trunc_micros(self) -> Self {
        chrono::SubsecRound::trunc_subsecs(self, 6)
    }
}

fn read_row(row: &rusqlite::Row<'_>) -> Result<Record, LedgerError> {
    let seq: u64 = row.get(0)?;
    let layer: String = row.get(4)?;
    let priority: String = row.get(5)?;
    let planned: String = row.get(6)?;
    let outcome: String = row.get(7)?;
    let started: Option<String> = row.get(8)?;
    let ended: Option<String> = row.get(9)?;
    let peak: Option<f64> = row.get(14)?;
    let rms: Option<f64> = row.get(15)?;
    let silent: Option<bool> = row.get(16)?;
    let levels = match (peak, rms, silent) {
        (Some(peak_dbfs), Some(rms_dbfs), Some(silent)) => {
            Some(Levels { peak_dbfs, rms_dbfs, silent })
        }
        _ => None,
    };
    let entry = Entry {
        item_id: row.get(2)?,
        title: row.get(3)?,
        layer: parse_enum::<Layer>(seq, &layer)?,
        priority: parse_enum::<Priority>(seq, &priority)?,
        planned: parse_time(seq, &planned)?,
        outcome: outcome.parse().map_err(|problem| LedgerError::Corrupt { seq, problem })?,
        started: started.map(|t| parse_time(seq, &t)).transpose()?,
        ended: ended.map(|t| parse_time(seq, &t)).transpose()?,
        delay_ms: row.get(10)?,
        played_secs: row.get(11)?,
        reason: row.get(12)?,
        audio_sha256: row.get(13)?,
        levels,
        reason_code: row.get(20)?,
        relay: match row.get::<_, Option<String>>(21)? {
            Some(json) => Some(serde_json::from_str(&json).map_err(|e| LedgerError::Corrupt {
                seq,
                problem: format!("bad relay facts {json:?}: {e}"),
            })?),
            None => None,
        },
    };
    Ok(Record {
        station: row.get(1)?,
        seq,
        entry,
        prev_hash: row.get(17)?,
        hash: row.get(18)?,
        acked: row.get(19)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    /// A kill -9 or power cut after `append` returns must not lose the record: WAL
    /// journal, and every commit fsynced (`synchronous = FULL` = 2), on every way in.
    #[test]
    fn every_connection_is_wal_with_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite");
        let check = |ledger: &Ledger| {
            let mode: String =
                ledger.conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
            let sync: i64 =
                ledger.conn.pragma_query_value(None, "synchronous", |r| r.get(0)).unwrap();
            assert_eq!((mode.as_str(), sync), ("wal", 2));
        };
        check(&Ledger::open(&path, "tri-ton").unwrap());
        check(&Ledger::open_existing(&path).unwrap());
    }

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).single().expect("valid time")
    }

    fn played(item: &str, planned: DateTime<Utc>) -> Entry {
        Entry {
            item_id: item.to_string(),
            title: format!("Tiêu đề {item}"),
            layer: Layer::Provincial,
            priority: Priority::Normal,
            planned,
            outcome: Outcome::Played,
            started: Some(planned + chrono::Duration::microseconds(1234)),
            ended: Some(planned + chrono::Duration::seconds(600)),
            delay_ms: Some(1),
            played_secs: Some(599.5),
            reason: None,
            audio_sha256: Some("ab".repeat(32)),
            levels: Some(Levels { peak_dbfs: -1.25, rms_dbfs: -18.5, silent: false }),
            reason_code: None,
            relay: None,
        }
    }

    #[test]
    fn records_chain_survive_reopen_and_refuse_duplicates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.sqlite3");
        {
            let mut l = Ledger::open(&path, "xa-a").expect("open");
            let a = l.append(played("a", t(5, 30))).expect("append");
            let Appended::New(a) = a else { panic!("first append must be new") };
            assert_eq!((a.seq, a.prev_hash.as_str()), (1, GENESIS));
            l.append(Entry::missed(
                "b",
                "B",
                Layer::Local,
                Priority::Normal,
                t(5, 40),
                crate::protocol::Reason::from_stored(None, "x"),
            ))
            .expect("append");
        }
        let mut l = Ledger::open(&path, "xa-a").expect("reopen");
        let dup = l.append(played("a", t(5, 30))).expect("dup");
        assert!(matches!(dup, Appended::Duplicate(ref r) if r.seq == 1));
        let all = l.query(&Filter::default()).expect("query");
        assert_eq!(all.len(), 2);
        assert_eq!(all[0].entry, played("a", t(5, 30)));
        assert_eq!(all[1].prev_hash, all[0].hash);
        assert_eq!(l.verify().expect("verify"), ChainReport { records: 2, first_break: None });
        assert!(l.contains("b", t(5, 40)).expect("contains"));
        assert!(!l.contains("b", t(5, 41)).expect("contains"));
    }

    #[test]
    fn verify_reports_the_first_altered_record() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("ledger.sqlite3");
        let mut l = Ledger::open(&path, "xa-a").expect("open");
        for i in 0..4 {
            l.append(played(&format!("i{i}"), t(6, i))).expect("append");
        }
        // Tampering needs the append-only trigger out of the way, as an attacker would.
        l.conn.execute_batch("DROP TRIGGER records_append_only").expect("drop trigger");
        l.conn
            .execute("UPDATE records SET outcome = 'played', title = 'x' WHERE seq = 3", [])
            .expect("tamper");
        let report = l.verify().expect("verify");
        assert_eq!(report.first_break.map(|b| b.0), Some(3));
    }

    #[test]
    fn unacked_records_cannot_be_deleted_or_edited() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut l = Ledger::open(&dir.path().join("l.db"), "xa-a").expect("open");
        l.append(played("a", t(5, 0))).expect("append");
        l.append(played("b", t(5, 1))).expect("append");
        assert!(l.conn.execute("DELETE FROM records WHERE seq = 1", []).is_err());
        assert!(l.conn.execute("UPDATE records SET title = 'x' WHERE seq = 1", []).is_err());
        assert_eq!(l.ack_through(1).expect("ack"), 1);
        assert_eq!(l.unacked(10).expect("unacked").iter().map(|r| r.seq).collect::<Vec<_>>(), [2]);
        assert_eq!(l.verify().expect("verify").first_break, None, "acking keeps the chain");
    }

    #[test]
    fn filters_and_state() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut l = Ledger::open(&dir.path().join("l.db"), "xa-a").expect("open");
        l.append(played("a", t(5, 0))).expect("append");
        l.append(Entry::missed(
            "b",
            "B",
            Layer::Local,
            Priority::Normal,
            t(6, 0),
            crate::protocol::Reason::from_stored(None, "x"),
        ))
        .expect("append");
        l.append(played("a", t(7, 0))).expect("append");
        let f = Filter { outcome: Some(Outcome::Played), ..Filter::default() };
        assert_eq!(l.query(&f).expect("q").len(), 2);
        let f = Filter { since: Some(t(6, 0)), until: Some(t(7, 0)), ..Filter::default() };
        assert_eq!(l.query(&f).expect("q").iter().map(|r| r.seq).collect::<Vec<_>>(), [2]);
        let f = Filter { item_id: Some("a".into()), ..Filter::default() };
        assert_eq!(l.query(&f).expect("q").len(), 2);

        assert_eq!(l.state_time(state::ALIVE).expect("state"), None);
        l.set_state_time(state::ALIVE, t(8, 0)).expect("set");
        l.set_state_time(state::ALIVE, t(8, 1)).expect("set");
        assert_eq!(l.state_time(state::ALIVE).expect("state"), Some(t(8, 1)));
        l.set_states(&[(state::ALIVE, "x"), (state::HORIZON, "y")]).expect("set both");
        assert_eq!(l.state(state::HORIZON).expect("state").as_deref(), Some("y"));
        l.clear_state(state::ALIVE).expect("clear");
        assert_eq!(l.state(state::ALIVE).expect("state"), None);
    }

    #[test]
    fn an_older_ledger_is_brought_up_to_date_once_even_when_opened_twice_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("ledger.sqlite3");
        {
            let mut l = Ledger::open(&path, "tri-ton").unwrap();
            l.append(played("a", t(5, 30))).unwrap();
        }
        // As a ledger from before reason codes: no column, a trigger without it.
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "DROP TRIGGER records_append_only;
                 ALTER TABLE records DROP COLUMN reason_code;
                 CREATE TRIGGER records_append_only BEFORE UPDATE OF seq, hash ON records
                 BEGIN SELECT RAISE(ABORT, 'ledger records are append-only'); END;",
            )
            .unwrap();
        }
        // The daemon and `loa log` open it at the same moment, many times over.
        for _ in 0..20 {
            let threads: Vec<_> = (0..2)
                .map(|n| {
                    let path = path.clone();
                    std::thread::spawn(move || {
                        if n == 0 {
                            Ledger::open(&path, "tri-ton").map(|_| ())
                        } else {
                            Ledger::open_existing(&path).map(|_| ())
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().unwrap().unwrap();
            }
        }
        let l = Ledger::open_existing(&path).unwrap();
        assert_eq!(l.query(&Filter::default()).unwrap().len(), 1);
        let refused = l.conn.execute("UPDATE records SET reason_code = 'x' WHERE seq = 1", []);
        assert!(refused.is_err(), "the trigger covers the added column");
    }

    #[test]
    fn another_stations_ledger_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("l.db");
        drop(Ledger::open(&path, "xa-a").expect("open"));
        let err = Ledger::open(&path, "xa-b").err().expect("wrong station");
        assert!(err.to_string().contains("belongs to station \"xa-a\""), "{err}");
        assert_eq!(Ledger::open_existing(&path).expect("read").station(), "xa-a");
    }
}
