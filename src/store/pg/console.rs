//! What the operators' console keeps, on PostgreSQL: people, their sessions, the
//! failed-login counters, a short heartbeat history per station, and the console's
//! views of schedule loads, the library and missed records. The same tables as the
//! SQLite side ([`crate::store::console`]), whose row decoders both stores share; here
//! the bounded tables stay bounded with several central replicas writing at once.

use postgres::Client;

use super::super::console::{
    self as shared, HEARTBEAT_HISTORY, LIBRARY_COLUMNS, SCHEDULE_LOAD_COLUMNS, SESSION_COLUMNS,
    USER_COLUMNS, sql_limit, to_bigint,
};
use super::*;
use crate::protocol::time_text;

pub(super) const SCHEMA: &str = "
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
CREATE TABLE sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name),
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen TEXT COLLATE \"C\" NOT NULL,
    peer TEXT NOT NULL
);
CREATE INDEX sessions_user ON sessions (user_name);
CREATE TABLE login_failures (
    key TEXT PRIMARY KEY,
    failures BIGINT NOT NULL,
    last_at TEXT COLLATE \"C\" NOT NULL
);
CREATE INDEX login_failures_last ON login_failures (last_at);
CREATE TABLE heartbeat_history (
    station_id TEXT NOT NULL,
    received_at TEXT COLLATE \"C\" NOT NULL,
    body_json TEXT NOT NULL
);
CREATE INDEX heartbeat_history_station ON heartbeat_history (station_id, received_at);
";

/// The `pg_advisory_xact_lock` key under which failed logins are counted one writer at
/// a time, so that "forget the old, keep at most N" holds with several replicas.
const LOGIN_FAILURES_LOCK: i64 = 0x6c6f_615f_6c6f_6769; // "loa_logi"

/// The first key of the two-key `pg_advisory_xact_lock` taken per station (the second
/// is a hash of its id) while its heartbeat history is added to and trimmed.
const HISTORY_LOCK: i32 = 0x6c6f_6168; // "loah"

/// A row's columns, from the `first`, read in order into a tuple or an array of owned
/// values: what the SQLite side's shared decoders take, so no query here spells out
/// its columns one `try_get` at a time.
pub(super) trait Columns: Sized {
    fn columns_at(row: &postgres::Row, first: usize) -> Result<Self, StoreError>;
}

macro_rules! tuple_columns {
    ($($t:ident $i:tt),+) => {
        impl<$($t: for<'a> postgres::types::FromSql<'a>),+> Columns for ($($t,)+) {
            fn columns_at(row: &postgres::Row, first: usize) -> Result<Self, StoreError> {
                Ok(($(row.try_get::<_, $t>(first + $i)?,)+))
            }
        }
    };
}

tuple_columns!(A 0, B 1);
tuple_columns!(A 0, B 1, C 2);
tuple_columns!(A 0, B 1, C 2, D 3);
tuple_columns!(A 0, B 1, C 2, D 3, E 4, F 5);
tuple_columns!(A 0, B 1, C 2, D 3, E 4, F 5, G 6);
tuple_columns!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8);
tuple_columns!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10);
tuple_columns!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11);
tuple_columns!(A 0, B 1, C 2, D 3, E 4, F 5, G 6, H 7, I 8, J 9, K 10, L 11, M 12);

impl<T: for<'a> postgres::types::FromSql<'a>, const N: usize> Columns for [T; N] {
    fn columns_at(row: &postgres::Row, first: usize) -> Result<Self, StoreError> {
        let values = (first..first + N).map(|i| row.try_get(i)).collect::<Result<Vec<T>, _>>()?;
        values.try_into().map_err(|_| StoreError::Corrupt(format!("a row of {N} columns")))
    }
}

/// A whole row's columns (see [`Columns`]).
pub(super) fn columns<T: Columns>(row: &postgres::Row) -> Result<T, StoreError> {
    T::columns_at(row, 0)
}

fn user_from(r: &postgres::Row) -> Result<User, StoreError> {
    shared::user_from(columns(r)?)
}

/// [`StoreError::UserExists`] when the name is taken.
pub(super) fn add_user(c: &mut Client, user: &User) -> Result<(), StoreError> {
    let result = c.execute(
        "INSERT INTO users (name, role, password_hash, disabled, created_at, changed_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[
            &user.name,
            &user.role.to_string(),
            &user.password_hash,
            &i64::from(user.disabled),
            &time_text(user.created_at),
            &time_text(user.changed_at),
        ],
    );
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::UserExists(user.name.clone())),
        Err(e) => Err(e.into()),
    }
}

pub(super) fn user(c: &mut Client, name: &str) -> Result<Option<User>, StoreError> {
    let sql = format!("SELECT {USER_COLUMNS} WHERE name = $1");
    c.query_opt(&sql, &[&name])?.as_ref().map(user_from).transpose()
}

pub(super) fn users(c: &mut Client) -> Result<Vec<User>, StoreError> {
    // Byte order, as SQLite sorts: whatever the database's default collation is.
    let sql = format!("SELECT {USER_COLUMNS} ORDER BY name COLLATE \"C\"");
    c.query(&sql, &[])?.iter().map(user_from).collect()
}

/// A new password hash; every session of the person ends (one transaction).
pub(super) fn set_user_password(
    c: &mut Client,
    name: &str,
    password_hash: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = c.transaction()?;
    let changed = tx.execute(
        "UPDATE users SET password_hash = $2, changed_at = $3 WHERE name = $1",
        &[&name, &password_hash, &time_text(at)],
    )?;
    tx.execute("DELETE FROM sessions WHERE user_name = $1", &[&name])?;
    tx.commit()?;
    Ok(changed == 1)
}

/// Disables (or enables) a person; disabling ends every session of theirs.
pub(super) fn set_user_disabled(
    c: &mut Client,
    name: &str,
    disabled: bool,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let mut tx = c.transaction()?;
    let changed = tx.execute(
        "UPDATE users SET disabled = $2, changed_at = $3 WHERE name = $1",
        &[&name, &i64::from(disabled), &time_text(at)],
    )?;
    if disabled {
        tx.execute("DELETE FROM sessions WHERE user_name = $1", &[&name])?;
    }
    tx.commit()?;
    Ok(changed == 1)
}

pub(super) fn put_session(c: &mut Client, s: &SessionRow) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO sessions (id_hash, user_name, csrf, created_at, last_seen, peer)
         VALUES ($1, $2, $3, $4, $5, $6)",
        &[&s.id_hash, &s.user, &s.csrf, &time_text(s.created_at), &time_text(s.last_seen), &s.peer],
    )?;
    Ok(())
}

pub(super) fn session(c: &mut Client, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
    let sql = format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = $1");
    c.query_opt(&sql, &[&id_hash])?.map(|r| shared::session_from(columns(&r)?)).transpose()
}

pub(super) fn touch_session(
    c: &mut Client,
    id_hash: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE sessions SET last_seen = $2 WHERE id_hash = $1",
        &[&id_hash, &time_text(at)],
    )?;
    Ok(())
}

pub(super) fn end_session(c: &mut Client, id_hash: &str) -> Result<(), StoreError> {
    c.execute("DELETE FROM sessions WHERE id_hash = $1", &[&id_hash])?;
    Ok(())
}

pub(super) fn end_idle_sessions(
    c: &mut Client,
    seen_before: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let ended =
        c.execute("DELETE FROM sessions WHERE last_seen < $1", &[&time_text(seen_before)])?;
    usize::try_from(ended).map_err(|_| StoreError::Corrupt(format!("{ended} sessions ended")))
}

pub(super) fn login_failures(
    c: &mut Client,
    key: &str,
) -> Result<Option<LoginFailures>, StoreError> {
    c.query_opt("SELECT key, failures, last_at FROM login_failures WHERE key = $1", &[&key])?
        .map(|r| shared::login_failures_from(columns(&r)?))
        .transpose()
}

/// Counts one more failure under `key`, after forgetting counters last seen before
/// `forget_before` and, past `keep_at_most`, the oldest. One transaction under an
/// advisory lock: replicas counting at once take turns, so the table never holds more
/// than `keep_at_most` counters and every failure is counted.
pub(super) fn add_login_failure(
    c: &mut Client,
    key: &str,
    at: DateTime<Utc>,
    forget_before: DateTime<Utc>,
    keep_at_most: usize,
) -> Result<u32, StoreError> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&LOGIN_FAILURES_LOCK])?;
    tx.execute("DELETE FROM login_failures WHERE last_at < $1", &[&time_text(forget_before)])?;
    let rows: i64 = tx.query_one("SELECT COUNT(*) FROM login_failures", &[])?.try_get(0)?;
    let excess = shared::login_failures_excess(rows, keep_at_most);
    if excess > 0 {
        tx.execute(
            "DELETE FROM login_failures WHERE key IN
                 (SELECT key FROM login_failures WHERE key <> $1 ORDER BY last_at LIMIT $2)",
            &[&key, &excess],
        )?;
    }
    let failures: i64 = tx
        .query_one(
            "INSERT INTO login_failures (key, failures, last_at) VALUES ($1, 1, $2)
             ON CONFLICT (key) DO UPDATE
             SET failures = login_failures.failures + 1, last_at = excluded.last_at
             RETURNING failures",
            &[&key, &time_text(at)],
        )?
        .try_get(0)?;
    tx.commit()?;
    Ok(shared::failures_from(failures))
}

pub(super) fn clear_login_failures(c: &mut Client, key: &str) -> Result<(), StoreError> {
    c.execute("DELETE FROM login_failures WHERE key = $1", &[&key])?;
    Ok(())
}

/// Keeps a copy of a heartbeat in its station's history, at most [`HEARTBEAT_HISTORY`]
/// per station, inside the caller's transaction (`put_heartbeat`). A per-station
/// advisory lock makes replicas adding to one station's history take turns, so the
/// trim of one sees the other's row and the bound holds.
pub(super) fn add_history(
    tx: &mut postgres::Transaction<'_>,
    heartbeat: &StoredHeartbeat,
    body: &str,
) -> Result<(), StoreError> {
    let station = &heartbeat.station_id;
    tx.execute("SELECT pg_advisory_xact_lock($1, hashtext($2))", &[&HISTORY_LOCK, station])?;
    tx.execute(
        "INSERT INTO heartbeat_history (station_id, received_at, body_json) VALUES ($1, $2, $3)",
        &[station, &time_text(heartbeat.received_at), &body],
    )?;
    tx.execute(
        "DELETE FROM heartbeat_history WHERE station_id = $1 AND received_at <
             (SELECT received_at FROM heartbeat_history WHERE station_id = $1
              ORDER BY received_at DESC LIMIT 1 OFFSET $2)",
        &[station, &to_bigint(HEARTBEAT_HISTORY - 1, "heartbeat history")?],
    )?;
    Ok(())
}

pub(super) fn heartbeat_history(
    c: &mut Client,
    station_id: &str,
    limit: usize,
) -> Result<Vec<StoredHeartbeat>, StoreError> {
    c.query(
        "SELECT received_at, body_json FROM heartbeat_history WHERE station_id = $1
         ORDER BY received_at DESC LIMIT $2",
        &[&station_id, &sql_limit(limit)],
    )?
    .iter()
    .map(|r| {
        let (at, body): (String, String) = columns(r)?;
        shared::heartbeat_from(station_id, &at, &body)
    })
    .collect()
}

pub(super) fn schedule_loads(
    c: &mut Client,
    limit: usize,
) -> Result<Vec<ScheduleLoad>, StoreError> {
    let sql = format!("SELECT {SCHEDULE_LOAD_COLUMNS} ORDER BY id DESC LIMIT $1");
    c.query(&sql, &[&sql_limit(limit)])?
        .iter()
        .map(|r| shared::schedule_load_from(columns(r)?))
        .collect()
}

pub(super) fn library(c: &mut Client, limit: usize) -> Result<Vec<LibraryEntry>, StoreError> {
    let sql = format!(
        "SELECT {LIBRARY_COLUMNS} ORDER BY created_at COLLATE \"C\" DESC, sha256 COLLATE \"C\"
         LIMIT $1"
    );
    c.query(&sql, &[&sql_limit(limit)])?.iter().map(|r| shared::library_from(columns(r)?)).collect()
}

pub(super) fn missed_since(
    c: &mut Client,
    since: DateTime<Utc>,
) -> Result<Vec<(String, u64)>, StoreError> {
    let rows = c
        .query(
            "SELECT station_id, COUNT(*) FROM playlog
             WHERE planned >= $1 AND outcome IN ('missed', 'failed')
             GROUP BY station_id ORDER BY station_id COLLATE \"C\"",
            &[&time_text(since)],
        )?
        .iter()
        .map(columns)
        .collect::<Result<Vec<_>, StoreError>>()?;
    shared::counts_from(rows, "missed records")
}
