//! `loa central migrate --to postgres://…`: copies a SQLite central into an empty
//! PostgreSQL database, then proves the copy — the same number of rows in every table,
//! every playlog chain intact and the same summary per station, every library file's
//! bytes held.
//!
//! The copy is generic, table by table and column by column, because the PostgreSQL
//! schema keeps the SQLite table and column names (src/store/pg/: INTEGER → BIGINT,
//! REAL → DOUBLE PRECISION, TEXT, BLOB → BYTEA). A SQLite table or column the
//! PostgreSQL schema lacks stops the copy before anything is written: nothing is left
//! behind silently. Everything is one transaction: an interrupted copy leaves the
//! database empty, and running it again is safe.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use postgres::types::ToSql;
use rusqlite::types::ValueRef;

use super::blobs::AudioBlobs;
use super::{PgStore, SqliteStore, Store, StoreError};
use crate::protocol::{GENESIS, Record};

/// What was copied, per table, and the library files whose bytes went in.
#[derive(Debug, Default, PartialEq)]
pub struct Copied {
    pub rows: BTreeMap<String, u64>,
    pub audio_files: u64,
    pub playlog_chains: u64,
}

/// Why a copy was refused or failed its check.
#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading {path}: {source}")]
    Sqlite { path: String, source: rusqlite::Error },
    #[error("{0}")]
    Refused(String),
    #[error("after the copy, {0}: the PostgreSQL database was left as it was before")]
    Check(String),
}

/// Tables PostgreSQL does not get: SQLite's own bookkeeping.
fn skipped(table: &str) -> bool {
    table.starts_with("sqlite_")
}

/// Copies the SQLite central at `sqlite_path` (its `audio` directory beside it holds the
/// library's bytes) into `pg`, which must have no rows yet.
pub fn sqlite_to_postgres(
    sqlite_path: &Path,
    audio_dir: &Path,
    pg: &PgStore,
) -> Result<Copied, CopyError> {
    let shown = sqlite_path.display().to_string();
    let sqlite_err = |source| CopyError::Sqlite { path: shown.clone(), source };
    // Opening through the store first brings an older file's schema up to date.
    drop(SqliteStore::open(sqlite_path)?);
    let lite = rusqlite::Connection::open_with_flags(
        sqlite_path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
    )
    .map_err(sqlite_err)?;
    let tables: Vec<String> = lite
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(sqlite_err)?;
    let tables: Vec<String> = tables.into_iter().filter(|t| !skipped(t)).collect();
    let mut copied = Copied::default();
    // The PostgreSQL side may run on a thread of its own (see `PgStore::run`).
    let shared = std::sync::Mutex::new(lite);
    pg.run(|c| {
        let lite = shared.lock().unwrap_or_else(|p| p.into_inner());
        let mut tx = c.transaction()?;
        let order = table_order(&mut tx, &tables)?;
        for table in &order {
            let rows = copy_table(&lite, &mut tx, table).map_err(|e| match e {
                CopyOrStore::Store(e) => e,
                CopyOrStore::Refused(why) => StoreError::Corrupt(why),
            })?;
            copied.rows.insert(table.clone(), rows);
        }
        reset_identities(&mut tx, &order)?;
        tx.commit()?;
        Ok(())
    })
    .map_err(|e| match e {
        StoreError::Corrupt(why) => CopyError::Refused(why),
        other => CopyError::Store(other),
    })?;
    let lite = shared.into_inner().unwrap_or_else(|p| p.into_inner());
    // The library's bytes, file by file (each its own transaction: content-addressed,
    // so a second run skips what the first stored).
    let shas: Vec<String> = lite
        .prepare("SELECT sha256 FROM audio ORDER BY sha256")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .map_err(sqlite_err)?;
    for sha in &shas {
        let path = audio_dir.join(sha);
        let mut file = std::fs::File::open(&path).map_err(|e| {
            CopyError::Refused(format!(
                "library file {} is listed but cannot be read ({e}): restore it, or remove \
                 it from the library, before migrating",
                path.display()
            ))
        })?;
        pg.put_audio_bytes(sha, &mut file)?;
        copied.audio_files += 1;
    }
    copied.playlog_chains = check(&lite, pg, &copied, &shas).map_err(|e| match e {
        CopyOrStore::Store(e) => CopyError::Store(e),
        CopyOrStore::Refused(why) => CopyError::Check(why),
    })?;
    Ok(copied)
}

enum CopyOrStore {
    Store(StoreError),
    Refused(String),
}

impl From<postgres::Error> for CopyOrStore {
    fn from(e: postgres::Error) -> Self {
        CopyOrStore::Store(e.into())
    }
}

impl From<StoreError> for CopyOrStore {
    fn from(e: StoreError) -> Self {
        CopyOrStore::Store(e)
    }
}

impl From<rusqlite::Error> for CopyOrStore {
    fn from(e: rusqlite::Error) -> Self {
        CopyOrStore::Store(e.into())
    }
}

/// The SQLite tables in an order that satisfies PostgreSQL's foreign keys (referenced
/// tables first); refuses a table PostgreSQL lacks, or a database that has rows.
fn table_order(
    tx: &mut postgres::Transaction<'_>,
    tables: &[String],
) -> Result<Vec<String>, StoreError> {
    let known: BTreeSet<String> = tx
        .query(
            "SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()",
            &[],
        )?
        .iter()
        .map(|r| r.get(0))
        .collect();
    if let Some(missing) = tables.iter().find(|t| !known.contains(*t)) {
        return Err(StoreError::Corrupt(format!(
            "table {missing} is in the SQLite file but not in PostgreSQL's schema: this loa \
             cannot migrate it (upgrade loa, or report it)"
        )));
    }
    for table in tables {
        let any = tx.query_opt(&format!("SELECT 1 FROM {} LIMIT 1", quoted(table)), &[])?;
        if any.is_some() {
            return Err(StoreError::Corrupt(format!(
                "the PostgreSQL database already has rows in {table}: migrate into an empty \
                 database (createdb a new one)"
            )));
        }
    }
    let edges: Vec<(String, String)> = tx
        .query(
            "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text
             FROM pg_constraint c WHERE c.contype = 'f'",
            &[],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    // Kahn's algorithm over the tables being copied.
    let mut order = Vec::new();
    let mut left: BTreeSet<&String> = tables.iter().collect();
    while !left.is_empty() {
        let ready: Vec<&String> = left
            .iter()
            .copied()
            .filter(|t| {
                !edges
                    .iter()
                    .any(|(from, to)| from == *t && to != *t && left.iter().any(|l| *l == to))
            })
            .collect();
        if ready.is_empty() {
            return Err(StoreError::Corrupt("the tables' foreign keys form a cycle".into()));
        }
        for t in ready {
            left.remove(t);
            order.push(t.clone());
        }
    }
    Ok(order)
}

fn quoted(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// One value of a row, typed for its PostgreSQL column.
type Param = Box<dyn ToSql + Sync>;

/// Copies every row of `table`; returns how many.
fn copy_table(
    lite: &rusqlite::Connection,
    tx: &mut postgres::Transaction<'_>,
    table: &str,
) -> Result<u64, CopyOrStore> {
    let pg_columns: BTreeMap<String, String> = tx
        .query(
            "SELECT column_name, data_type FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1",
            &[&table],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let mut select = lite.prepare(&format!("SELECT * FROM {}", quoted(table)))?;
    let columns: Vec<String> = select.column_names().iter().map(|c| c.to_string()).collect();
    let mut kinds = Vec::new();
    for column in &columns {
        let kind = pg_columns.get(column).ok_or_else(|| {
            CopyOrStore::Refused(format!(
                "column {table}.{column} is in the SQLite file but not in PostgreSQL's schema: \
                 this loa cannot migrate it (upgrade loa, or report it)"
            ))
        })?;
        kinds.push(kind.clone());
    }
    let insert = tx.prepare(&format!(
        "INSERT INTO {} ({}) VALUES ({})",
        quoted(table),
        columns.iter().map(|c| quoted(c)).collect::<Vec<_>>().join(", "),
        (1..=columns.len()).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
    ))?;
    let mut rows = select.query([])?;
    let mut count = 0u64;
    while let Some(row) = rows.next()? {
        let mut params: Vec<Param> = Vec::with_capacity(columns.len());
        for (i, kind) in kinds.iter().enumerate() {
            params.push(convert(row.get_ref(i)?, kind).map_err(|why| {
                CopyOrStore::Refused(format!("{table}.{}, row {}: {why}", columns[i], count + 1))
            })?);
        }
        let refs: Vec<&(dyn ToSql + Sync)> = params.iter().map(|p| p.as_ref()).collect();
        tx.execute(&insert, &refs)?;
        count += 1;
    }
    Ok(count)
}

/// A SQLite value as the PostgreSQL column type `kind` wants it.
fn convert(value: ValueRef<'_>, kind: &str) -> Result<Param, String> {
    let text = |v: ValueRef<'_>| -> Result<Option<String>, String> {
        match v {
            ValueRef::Null => Ok(None),
            ValueRef::Text(t) => {
                String::from_utf8(t.to_vec()).map(Some).map_err(|_| "text is not UTF-8".into())
            }
            ValueRef::Integer(i) => Ok(Some(i.to_string())),
            ValueRef::Real(r) => Ok(Some(r.to_string())),
            ValueRef::Blob(_) => Err("a blob where text belongs".into()),
        }
    };
    Ok(match kind {
        "bigint" | "integer" | "smallint" => {
            let n: Option<i64> = match value {
                ValueRef::Null => None,
                ValueRef::Integer(i) => Some(i),
                other => return Err(format!("{:?} where an integer belongs", other.data_type())),
            };
            match kind {
                "bigint" => Box::new(n),
                "integer" => {
                    Box::new(n.map(i32::try_from).transpose().map_err(|_| "integer out of range")?)
                }
                _ => {
                    Box::new(n.map(i16::try_from).transpose().map_err(|_| "integer out of range")?)
                }
            }
        }
        "double precision" | "real" => Box::new(match value {
            ValueRef::Null => None,
            ValueRef::Integer(i) => Some(i as f64),
            ValueRef::Real(r) => Some(r),
            other => return Err(format!("{:?} where a number belongs", other.data_type())),
        }),
        "bytea" => Box::new(match value {
            ValueRef::Null => None,
            ValueRef::Blob(b) => Some(b.to_vec()),
            other => return Err(format!("{:?} where bytes belong", other.data_type())),
        }),
        "boolean" => Box::new(match value {
            ValueRef::Null => None,
            ValueRef::Integer(i) => Some(i != 0),
            other => return Err(format!("{:?} where a flag belongs", other.data_type())),
        }),
        "text" | "character varying" => Box::new(text(value)?),
        other => return Err(format!("PostgreSQL column type {other} is not migrated")),
    })
}

/// Identity columns continue after the highest copied id.
fn reset_identities(
    tx: &mut postgres::Transaction<'_>,
    tables: &[String],
) -> Result<(), StoreError> {
    for table in tables {
        let identities = tx.query(
            "SELECT column_name FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1 AND is_identity = 'YES'",
            &[table],
        )?;
        for row in identities {
            let column: String = row.get(0);
            tx.execute(
                &format!(
                    "SELECT setval(pg_get_serial_sequence($1, $2), \
                     COALESCE((SELECT MAX({}) FROM {}), 0) + 1, false)",
                    quoted(&column),
                    quoted(table)
                ),
                &[table, &column],
            )?;
        }
    }
    Ok(())
}

/// The proof: row counts equal, every library file held, every station's playlog chain
/// intact in PostgreSQL and its summary the same as SQLite's. Returns the chains checked.
fn check(
    lite: &rusqlite::Connection,
    pg: &PgStore,
    copied: &Copied,
    shas: &[String],
) -> Result<u64, CopyOrStore> {
    for (table, rows) in &copied.rows {
        let in_sqlite: i64 =
            lite.query_row(&format!("SELECT COUNT(*) FROM {}", quoted(table)), [], |r| r.get(0))?;
        let in_pg: i64 = pg.run(|c| {
            Ok(c.query_one(&format!("SELECT COUNT(*) FROM {}", quoted(table)), &[])?.get(0))
        })?;
        if in_sqlite != in_pg || u64::try_from(in_pg).ok() != Some(*rows) {
            return Err(CopyOrStore::Refused(format!(
                "table {table} has {in_sqlite} rows in SQLite and {in_pg} in PostgreSQL"
            )));
        }
    }
    for sha in shas {
        if !pg.holds_audio(sha)? {
            return Err(CopyOrStore::Refused(format!("library file {sha} is not held")));
        }
    }
    let sqlite_store = SqliteStore::open(Path::new(lite.path().unwrap_or_default()))?;
    let mut chains = 0;
    for station in pg.stations()? {
        let records: Vec<String> = pg.run(|c| {
            Ok(c.query(
                "SELECT record_json FROM playlog WHERE station_id = $1 ORDER BY seq",
                &[&station.id],
            )?
            .iter()
            .map(|r| r.get(0))
            .collect())
        })?;
        let mut prev: Option<Record> = None;
        for json in &records {
            let record: Record = serde_json::from_str(json).map_err(|e| {
                CopyOrStore::Refused(format!(
                    "a playlog record of {} does not parse: {e}",
                    station.id
                ))
            })?;
            let linked = match &prev {
                Some(p) if p.seq + 1 == record.seq => record.prev_hash == p.hash,
                None if record.seq == 1 => record.prev_hash == GENESIS,
                _ => true, // a gap: the summaries below compare what both stores hold
            };
            if !record.hash_is_valid() || !linked {
                return Err(CopyOrStore::Refused(format!(
                    "station {}'s playlog chain breaks at record {}",
                    station.id, record.seq
                )));
            }
            prev = Some(record);
        }
        if pg.playlog_summary(&station.id)? != sqlite_store.playlog_summary(&station.id)? {
            return Err(CopyOrStore::Refused(format!(
                "station {}'s playlog summary differs between SQLite and PostgreSQL",
                station.id
            )));
        }
        chains += 1;
    }
    Ok(chains)
}
