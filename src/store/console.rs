//! What the operators' console keeps: people (name, role, argon2id hash of the password,
//! disabled or not), their sessions (only the sha256 of a session id, never the id), the
//! failed-login counters that slow down guessing, a short heartbeat history per station,
//! and the history of schedule loads. SQLite here; each query is named in the
//! [`Store`](super::Store) trait, in plain SQL (no SQLite-only syntax in what the trait
//! promises), and the row decoders and checked integer conversions are plain functions
//! that the PostgreSQL store (`pg::console`, `pg::cap`, …) shares.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{Role, StoreError, StoredHeartbeat};
use crate::protocol::{AudioInfo, time_text};
use crate::schedule::Layer;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    disabled INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    changed_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name),
    csrf TEXT NOT NULL,
    created_at TEXT NOT NULL,
    last_seen TEXT NOT NULL,
    peer TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS sessions_user ON sessions (user_name);
CREATE TABLE IF NOT EXISTS login_failures (
    key TEXT PRIMARY KEY,
    failures INTEGER NOT NULL,
    last_at TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS login_failures_last ON login_failures (last_at);
CREATE TABLE IF NOT EXISTS heartbeat_history (
    station_id TEXT NOT NULL,
    received_at TEXT NOT NULL,
    body_json TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS heartbeat_history_station ON heartbeat_history (station_id, received_at);
";

/// Columns added to tables that shipped before the console: (table, column, type).
pub(super) const ADDED: &[(&str, &str, &str)] =
    &[("schedules", "stations_json", "TEXT"), ("pending_bulletins", "requester", "TEXT")];

/// Heartbeats kept per station for its page (about two hours at one a minute).
pub const HEARTBEAT_HISTORY: usize = 120;

/// A person who logs in to the console, with the role the API's tokens have.
#[derive(Debug, Clone, PartialEq)]
pub struct User {
    /// 1–64 characters: lowercase letters, digits, `.`, `-`, `_`.
    pub name: String,
    pub role: Role,
    /// The PHC string of an argon2id hash; never the password.
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: DateTime<Utc>,
    pub changed_at: DateTime<Utc>,
}

/// A console session. The browser holds the id; the store only its sha256.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRow {
    pub id_hash: String,
    pub user: String,
    /// The token every form of this session carries (`csrf`).
    pub csrf: String,
    pub created_at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    /// Where it logged in from.
    pub peer: String,
}

/// Failed logins counted under one key (`user:NAME` or `addr:IP`).
#[derive(Debug, Clone, PartialEq)]
pub struct LoginFailures {
    pub key: String,
    pub failures: u32,
    pub last_at: DateTime<Utc>,
}

/// One schedule load, for the console's history.
#[derive(Debug, Clone, PartialEq)]
pub struct ScheduleLoad {
    pub id: i64,
    pub origin: String,
    pub layer: Layer,
    pub loaded_by: String,
    pub loaded_at: DateTime<Utc>,
    /// The stations it was assigned to (`None` for a load made before this was kept).
    pub stations: Option<Vec<String>>,
}

/// A library file as the console lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct LibraryEntry {
    pub info: AudioInfo,
    pub true_peak_dbtp: Option<f64>,
    pub added_at: DateTime<Utc>,
}

/// Whether `name` may name a person: 1–64 lowercase letters, digits, `.`, `-`, `_`.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"._-".contains(&b))
}

fn time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {text:?}: {e}")))
}

/// A count or size as the BIGINT/INTEGER column it is stored in; refused (never wrapped)
/// when it does not fit. For both stores.
pub(super) fn to_bigint<T: TryInto<i64>>(value: T, what: &str) -> Result<i64, StoreError> {
    value.try_into().map_err(|_| StoreError::Corrupt(format!("{what} is too large to store")))
}

/// A stored BIGINT/INTEGER read back as the unsigned count it holds; a negative or
/// oversized value is corrupt, never wrapped. For both stores.
pub(super) fn from_bigint<T: TryFrom<i64>>(value: i64, what: &str) -> Result<T, StoreError> {
    T::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} out of range")))
}

/// A `LIMIT` argument: a limit past what SQL can say means no limit.
pub(super) fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// A failure counter as stored, read back (a counter past `u32::MAX` reads as the max).
pub(super) fn failures_from(count: i64) -> u32 {
    u32::try_from(count.max(0)).unwrap_or(u32::MAX)
}

fn user_row(
    r: &rusqlite::Row<'_>,
) -> rusqlite::Result<(String, String, String, i64, String, String)> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?))
}

/// A person from their columns ([`USER_COLUMNS`]), for both stores.
pub(super) fn user_from(
    row: (String, String, String, i64, String, String),
) -> Result<User, StoreError> {
    let (name, role, password_hash, disabled, created_at, changed_at) = row;
    Ok(User {
        role: role.parse().map_err(StoreError::Corrupt)?,
        name,
        password_hash,
        disabled: disabled != 0,
        created_at: time(&created_at)?,
        changed_at: time(&changed_at)?,
    })
}

/// What [`user_from`] reads, in order, for both stores.
pub(super) const USER_COLUMNS: &str =
    "name, role, password_hash, disabled, created_at, changed_at FROM users";

pub(super) fn add_user(conn: &Connection, user: &User) -> Result<(), StoreError> {
    let result = conn.execute(
        "INSERT INTO users (name, role, password_hash, disabled, created_at, changed_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            user.name,
            user.role.to_string(),
            user.password_hash,
            i64::from(user.disabled),
            time_text(user.created_at),
            time_text(user.changed_at)
        ],
    );
    match result {
        Ok(_) => Ok(()),
        Err(rusqlite::Error::SqliteFailure(e, _))
            if e.code == rusqlite::ErrorCode::ConstraintViolation =>
        {
            Err(StoreError::UserExists(user.name.clone()))
        }
        Err(e) => Err(e.into()),
    }
}

pub(super) fn user(conn: &Connection, name: &str) -> Result<Option<User>, StoreError> {
    let row = conn
        .query_row(&format!("SELECT {USER_COLUMNS} WHERE name = ?1"), [name], user_row)
        .optional()?;
    row.map(user_from).transpose()
}

pub(super) fn users(conn: &Connection) -> Result<Vec<User>, StoreError> {
    let mut stmt = conn.prepare(&format!("SELECT {USER_COLUMNS} ORDER BY name"))?;
    let rows = stmt.query_map([], user_row)?.collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(user_from).collect()
}

/// A new password hash; every session of the person ends (one transaction).
pub(super) fn set_user_password(
    conn: &mut Connection,
    name: &str,
    password_hash: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let tx = conn.transaction()?;
    let changed = tx.execute(
        "UPDATE users SET password_hash = ?2, changed_at = ?3 WHERE name = ?1",
        params![name, password_hash, time_text(at)],
    )?;
    tx.execute("DELETE FROM sessions WHERE user_name = ?1", [name])?;
    tx.commit()?;
    Ok(changed == 1)
}

/// Disables (or enables) a person; disabling ends every session of theirs.
pub(super) fn set_user_disabled(
    conn: &mut Connection,
    name: &str,
    disabled: bool,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let tx = conn.transaction()?;
    let changed = tx.execute(
        "UPDATE users SET disabled = ?2, changed_at = ?3 WHERE name = ?1",
        params![name, i64::from(disabled), time_text(at)],
    )?;
    if disabled {
        tx.execute("DELETE FROM sessions WHERE user_name = ?1", [name])?;
    }
    tx.commit()?;
    Ok(changed == 1)
}

pub(super) fn put_session(conn: &Connection, s: &SessionRow) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO sessions (id_hash, user_name, csrf, created_at, last_seen, peer)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![s.id_hash, s.user, s.csrf, time_text(s.created_at), time_text(s.last_seen), s.peer],
    )?;
    Ok(())
}

/// The columns [`session_from`] reads, in order, for both stores.
pub(super) const SESSION_COLUMNS: &str = "id_hash, user_name, csrf, created_at, last_seen, peer";

/// A session from [`SESSION_COLUMNS`]' values, for both stores.
pub(super) fn session_from(
    [id_hash, user, csrf, created_at, last_seen, peer]: [String; 6],
) -> Result<SessionRow, StoreError> {
    Ok(SessionRow {
        id_hash,
        user,
        csrf,
        created_at: time(&created_at)?,
        last_seen: time(&last_seen)?,
        peer,
    })
}

pub(super) fn session(conn: &Connection, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
    let mut stmt =
        conn.prepare_cached(&format!("SELECT {SESSION_COLUMNS} FROM sessions WHERE id_hash = ?1"))?;
    let row: Option<[String; 6]> = stmt
        .query_row([id_hash], |r| {
            Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?])
        })
        .optional()?;
    row.map(session_from).transpose()
}

pub(super) fn touch_session(
    conn: &Connection,
    id_hash: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE sessions SET last_seen = ?2 WHERE id_hash = ?1",
        params![id_hash, time_text(at)],
    )?;
    Ok(())
}

pub(super) fn end_session(conn: &Connection, id_hash: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM sessions WHERE id_hash = ?1", [id_hash])?;
    Ok(())
}

pub(super) fn end_idle_sessions(
    conn: &Connection,
    seen_before: DateTime<Utc>,
) -> Result<usize, StoreError> {
    Ok(conn.execute("DELETE FROM sessions WHERE last_seen < ?1", [time_text(seen_before)])?)
}

pub(super) fn login_failures(
    conn: &Connection,
    key: &str,
) -> Result<Option<LoginFailures>, StoreError> {
    let row: Option<(String, i64, String)> = conn
        .query_row("SELECT key, failures, last_at FROM login_failures WHERE key = ?1", [key], |r| {
            r.try_into()
        })
        .optional()?;
    row.map(login_failures_from).transpose()
}

/// A failure counter from its columns, for both stores.
pub(super) fn login_failures_from(
    (key, failures, last_at): (String, i64, String),
) -> Result<LoginFailures, StoreError> {
    Ok(LoginFailures { key, failures: failures_from(failures), last_at: time(&last_at)? })
}

/// How many other counters to forget before counting one more, when `rows` are held
/// and at most `keep_at_most` may be: room for one more. For both stores.
pub(super) fn login_failures_excess(rows: i64, keep_at_most: usize) -> i64 {
    let keep = sql_limit(keep_at_most);
    if rows >= keep { rows.saturating_add(1).saturating_sub(keep) } else { 0 }
}

/// Counts one more failure under `key` at `at`; returns the count. Counters last seen
/// before `forget_before` are dropped first, and past `keep_at_most` rows the oldest go:
/// however many names and addresses are tried, the table stays bounded.
pub(super) fn add_login_failure(
    conn: &mut Connection,
    key: &str,
    at: DateTime<Utc>,
    forget_before: DateTime<Utc>,
    keep_at_most: usize,
) -> Result<u32, StoreError> {
    let tx = conn.transaction()?;
    tx.execute("DELETE FROM login_failures WHERE last_at < ?1", [time_text(forget_before)])?;
    let rows: i64 = tx.query_row("SELECT COUNT(*) FROM login_failures", [], |r| r.get(0))?;
    let excess = login_failures_excess(rows, keep_at_most);
    if excess > 0 {
        tx.execute(
            "DELETE FROM login_failures WHERE key IN
                 (SELECT key FROM login_failures WHERE key <> ?1 ORDER BY last_at LIMIT ?2)",
            params![key, excess],
        )?;
    }
    tx.execute(
        "INSERT INTO login_failures (key, failures, last_at) VALUES (?1, 1, ?2)
         ON CONFLICT (key) DO UPDATE SET failures = login_failures.failures + 1, last_at = excluded.last_at",
        params![key, time_text(at)],
    )?;
    let failures: i64 =
        tx.query_row("SELECT failures FROM login_failures WHERE key = ?1", [key], |r| r.get(0))?;
    tx.commit()?;
    Ok(failures_from(failures))
}

pub(super) fn clear_login_failures(conn: &Connection, key: &str) -> Result<(), StoreError> {
    conn.execute("DELETE FROM login_failures WHERE key = ?1", [key])?;
    Ok(())
}

/// Keeps a copy of each heartbeat, at most [`HEARTBEAT_HISTORY`] per station.
pub(super) fn add_history(
    tx: &Connection,
    h: &StoredHeartbeat,
    body: &str,
) -> Result<(), StoreError> {
    let at = time_text(h.received_at);
    tx.execute(
        "INSERT INTO heartbeat_history (station_id, received_at, body_json) VALUES (?1, ?2, ?3)",
        params![h.station_id, at, body],
    )?;
    tx.execute(
        "DELETE FROM heartbeat_history WHERE station_id = ?1 AND received_at <
             (SELECT received_at FROM heartbeat_history WHERE station_id = ?1
              ORDER BY received_at DESC LIMIT 1 OFFSET ?2)",
        params![h.station_id, to_bigint(HEARTBEAT_HISTORY - 1, "heartbeat history")?],
    )?;
    Ok(())
}

pub(super) fn heartbeat_history(
    conn: &Connection,
    station_id: &str,
    limit: usize,
) -> Result<Vec<StoredHeartbeat>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT received_at, body_json FROM heartbeat_history WHERE station_id = ?1
         ORDER BY received_at DESC LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![station_id, sql_limit(limit)], |r| {
            Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(|(at, body)| heartbeat_from(station_id, &at, &body)).collect()
}

/// A stored heartbeat from its columns, for both stores.
pub(super) fn heartbeat_from(
    station_id: &str,
    received_at: &str,
    body: &str,
) -> Result<StoredHeartbeat, StoreError> {
    Ok(StoredHeartbeat {
        station_id: station_id.to_string(),
        received_at: time(received_at)?,
        heartbeat: serde_json::from_str(body)
            .map_err(|e| StoreError::Corrupt(format!("heartbeat: {e}")))?,
    })
}

pub(super) fn schedule_loads(
    conn: &Connection,
    limit: usize,
) -> Result<Vec<ScheduleLoad>, StoreError> {
    let mut stmt =
        conn.prepare(&format!("SELECT {SCHEDULE_LOAD_COLUMNS} ORDER BY id DESC LIMIT ?1"))?;
    let rows = stmt
        .query_map([sql_limit(limit)], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(schedule_load_from).collect()
}

/// The columns [`schedule_load_from`] reads, in order, for both stores.
pub(super) const SCHEDULE_LOAD_COLUMNS: &str =
    "id, origin, layer, loaded_by, loaded_at, stations_json FROM schedules";

/// A schedule load from [`SCHEDULE_LOAD_COLUMNS`]' values, for both stores.
pub(super) fn schedule_load_from(
    (id, origin, layer, loaded_by, loaded_at, stations): (
        i64,
        String,
        String,
        String,
        String,
        Option<String>,
    ),
) -> Result<ScheduleLoad, StoreError> {
    Ok(ScheduleLoad {
        id,
        origin,
        layer: match layer.as_str() {
            "local" => Layer::Local,
            "provincial" => Layer::Provincial,
            other => return Err(StoreError::Corrupt(format!("layer {other:?}"))),
        },
        loaded_by,
        loaded_at: time(&loaded_at)?,
        stations: stations
            .map(|s| serde_json::from_str(&s))
            .transpose()
            .map_err(|e| StoreError::Corrupt(format!("schedule {id} stations: {e}")))?,
    })
}

pub(super) fn missed_since(
    conn: &Connection,
    since: DateTime<Utc>,
) -> Result<Vec<(String, u64)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT station_id, COUNT(*) FROM playlog
         WHERE planned >= ?1 AND outcome IN ('missed', 'failed')
         GROUP BY station_id ORDER BY station_id",
    )?;
    let rows =
        stmt.query_map([time_text(since)], |r| r.try_into())?.collect::<Result<Vec<_>, _>>()?;
    counts_from(rows, "missed records")
}

/// Per-key counts as `COUNT(*)` gives them, checked, for both stores.
pub(super) fn counts_from<K>(rows: Vec<(K, i64)>, what: &str) -> Result<Vec<(K, u64)>, StoreError> {
    rows.into_iter().map(|(key, n)| Ok((key, from_bigint(n, what)?))).collect()
}

/// The `audio` columns [`library_from`] reads, in order, for both stores.
pub(super) const LIBRARY_COLUMNS: &str = "sha256, title, size, duration_ms, loudness_lufs, \
     gain_db, damage, true_peak_dbtp, created_at FROM audio";

/// A library file's stored columns ([`LIBRARY_COLUMNS`]), for both stores.
pub(super) type LibraryRow =
    (String, String, i64, i64, f64, f64, Option<String>, Option<f64>, String);

/// A library entry from [`LIBRARY_COLUMNS`]' values, for both stores.
pub(super) fn library_from(
    (sha256, title, size, duration_ms, loudness_lufs, gain_db, damage, true_peak_dbtp, added): LibraryRow,
) -> Result<LibraryEntry, StoreError> {
    Ok(LibraryEntry {
        info: AudioInfo {
            size: from_bigint(size, "audio size")?,
            duration_ms: from_bigint(duration_ms, "audio duration")?,
            sha256,
            title,
            loudness_lufs,
            // Stored from an f32: narrowing gives back the value written.
            gain_db: gain_db as f32,
            damage,
        },
        true_peak_dbtp,
        added_at: time(&added)?,
    })
}

pub(super) fn library(conn: &Connection, limit: usize) -> Result<Vec<LibraryEntry>, StoreError> {
    let mut stmt = conn
        .prepare(&format!("SELECT {LIBRARY_COLUMNS} ORDER BY created_at DESC, sha256 LIMIT ?1"))?;
    let rows = stmt
        .query_map([sql_limit(limit)], |r| r.try_into())?
        .collect::<Result<Vec<LibraryRow>, _>>()?;
    rows.into_iter().map(library_from).collect()
}

/// Runs `f(0)` … `f(n - 1)` on `n` threads released together, and returns what each
/// gave, in order: how the contract tests make several replicas write at once.
#[cfg(test)]
pub(super) fn at_once<T: Send>(n: usize, f: impl Fn(usize) -> T + Sync) -> Vec<T> {
    let start = std::sync::Barrier::new(n);
    std::thread::scope(|scope| {
        let threads: Vec<_> = (0..n)
            .map(|i| {
                let (start, f) = (&start, &f);
                scope.spawn(move || {
                    start.wait();
                    f(i)
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().expect("a thread panicked")).collect()
    })
}

/// A station's chain of playlog records with these outcomes, planned 100 s apart from
/// 1 800 000 000 s (the tests' epoch), for the tests that count them.
#[cfg(test)]
pub(super) fn records_with(
    station: &str,
    outcomes: &[crate::protocol::Outcome],
) -> Vec<crate::protocol::Record> {
    use crate::protocol::{Entry, GENESIS, Reason, Record};
    let entries = outcomes.iter().enumerate().map(|(i, outcome)| {
        let planned = DateTime::from_timestamp(1_800_000_000 + 100 * i as i64, 0).unwrap();
        let reason = Reason::from_stored(None, "station was not running");
        let priority = crate::schedule::Priority::Normal;
        let mut entry =
            Entry::missed(&format!("item-{i}"), "t", Layer::Provincial, priority, planned, reason);
        entry.outcome = *outcome;
        entry
    });
    Record::chain(station, 1, GENESIS, entries)
}

#[cfg(test)]
mod tests {
    use super::super::contract::each_store;
    use super::super::{Station, StoredSchedule};
    use super::*;
    use crate::protocol::Heartbeat;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn person(name: &str) -> User {
        User {
            name: name.into(),
            role: Role::District("Tri Tôn".into()),
            password_hash: "$argon2id$x".into(),
            disabled: false,
            created_at: at(0),
            changed_at: at(0),
        }
    }

    fn session(id: &str, user: &str) -> SessionRow {
        SessionRow {
            id_hash: id.into(),
            user: user.into(),
            csrf: "c".into(),
            created_at: at(0),
            last_seen: at(0),
            peer: "127.0.0.1:1".into(),
        }
    }

    #[test]
    fn people_sessions_and_their_ends() {
        each_store(|store| {
            store.add_user(&person("binh")).unwrap();
            store.add_user(&person("an")).unwrap();
            assert!(matches!(store.add_user(&person("an")), Err(StoreError::UserExists(_))));
            assert_eq!(store.user("an").unwrap(), Some(person("an")));
            assert_eq!(store.user("nobody").unwrap(), None);
            let names: Vec<String> = store.users().unwrap().into_iter().map(|u| u.name).collect();
            assert_eq!(names, ["an", "binh"], "by name");
            store.put_session(&session("s1", "an")).unwrap();
            store.put_session(&session("s2", "an")).unwrap();
            store.put_session(&session("s3", "binh")).unwrap();
            assert_eq!(store.session("s1").unwrap(), Some(session("s1", "an")));
            // A new password ends every session of the person, and only theirs.
            assert!(store.set_user_password("an", "$argon2id$y", at(5)).unwrap());
            assert!(
                store.session("s1").unwrap().is_none() && store.session("s2").unwrap().is_none()
            );
            assert!(store.session("s3").unwrap().is_some());
            let an = store.user("an").unwrap().unwrap();
            assert_eq!((an.password_hash.as_str(), an.changed_at), ("$argon2id$y", at(5)));
            assert!(!store.set_user_password("nobody", "$argon2id$y", at(5)).unwrap());
            // Disabling ends theirs too; enabling again ends nothing.
            assert!(store.set_user_disabled("binh", true, at(6)).unwrap());
            assert!(store.session("s3").unwrap().is_none());
            assert!(store.user("binh").unwrap().unwrap().disabled);
            assert!(!store.set_user_disabled("nobody", true, at(6)).unwrap());
            store.put_session(&session("s6", "binh")).unwrap();
            assert!(store.set_user_disabled("binh", false, at(7)).unwrap());
            assert!(!store.user("binh").unwrap().unwrap().disabled);
            assert!(store.session("s6").unwrap().is_some());
            // Idle sessions end.
            store.put_session(&SessionRow { last_seen: at(100), ..session("s4", "an") }).unwrap();
            store.put_session(&SessionRow { last_seen: at(10), ..session("s5", "an") }).unwrap();
            store.touch_session("s5", at(200)).unwrap();
            assert_eq!(store.end_idle_sessions(at(150)).unwrap(), 2, "s4 and s6");
            assert!(store.session("s4").unwrap().is_none());
            assert_eq!(store.session("s5").unwrap().unwrap().last_seen, at(200));
            store.end_session("s5").unwrap();
            assert!(store.session("s5").unwrap().is_none());
        });
    }

    #[test]
    fn failure_counters_grow_clear_and_stay_bounded() {
        each_store(|store| {
            for n in 1..=3 {
                assert_eq!(store.add_login_failure("user:an", at(n), at(0), 10).unwrap(), n as u32);
            }
            let counted = store.login_failures("user:an").unwrap().unwrap();
            assert_eq!(
                counted,
                LoginFailures { key: "user:an".into(), failures: 3, last_at: at(3) }
            );
            store.clear_login_failures("user:an").unwrap();
            assert!(store.login_failures("user:an").unwrap().is_none());
            // Ten keys at most: the eleventh pushes out the oldest, never the one counted.
            for n in 0..10 {
                store.add_login_failure(&format!("addr:{n}"), at(n), at(0), 10).unwrap();
            }
            store.add_login_failure("addr:new", at(50), at(0), 10).unwrap();
            assert!(store.login_failures("addr:0").unwrap().is_none());
            assert_eq!(store.login_failures("addr:new").unwrap().unwrap().failures, 1);
            assert!(store.login_failures("addr:9").unwrap().is_some());
            // What is older than the window is forgotten.
            store.add_login_failure("addr:late", at(1000), at(900), 10).unwrap();
            assert!(store.login_failures("addr:9").unwrap().is_none());
        });
    }

    #[test]
    fn failures_counted_at_once_are_each_counted_and_the_table_stays_bounded() {
        each_store(|store| {
            let mut counts =
                at_once(8, |n| store.add_login_failure("user:an", at(n as i64), at(0), 5).unwrap());
            counts.sort_unstable();
            assert_eq!(counts, (1..=8).collect::<Vec<u32>>(), "each failure counted once");
            let keys = |n: usize| format!("addr:{n}");
            at_once(12, |n| store.add_login_failure(&keys(n), at(100), at(0), 5).unwrap());
            let held = (0..12).filter(|n| store.login_failures(&keys(*n)).unwrap().is_some());
            let user = store.login_failures("user:an").unwrap().is_some();
            assert!(held.count() + usize::from(user) <= 5, "never more than five counters");
        });
    }

    #[test]
    fn missed_since_counts_missed_and_failed_records_from_an_instant() {
        use crate::protocol::Outcome;
        each_store(|store| {
            store
                .add_station(
                    &Station { id: "a".into(), name: "a".into(), district: "x".into() },
                    "h",
                )
                .unwrap();
            let outcomes = [Outcome::Missed, Outcome::Failed, Outcome::Played, Outcome::Missed];
            let records = records_with("a", &outcomes);
            store.ingest_playlog("a", &records, at(1000)).unwrap();
            assert_eq!(store.missed_since(at(0)).unwrap(), vec![("a".to_string(), 3)]);
            assert_eq!(
                store.missed_since(at(100)).unwrap(),
                vec![("a".to_string(), 2)],
                "from the instant on"
            );
            assert_eq!(store.missed_since(at(301)).unwrap(), vec![]);
        });
    }

    fn beat(station: &str, n: i64) -> StoredHeartbeat {
        StoredHeartbeat {
            station_id: station.into(),
            received_at: at(n),
            heartbeat: Heartbeat {
                manifest_version: Some(n as u64),
                clock_offset_ms: None,
                ready_until: None,
                missing_bytes: 0,
                disk_free_bytes: None,
                now_playing: None,
                sink_health: "ok".into(),
                sent_at: at(n),
                clock_step: None,
                clock_synchronized: None,
                central_time: false,
                output_failed: None,
            },
        }
    }

    #[test]
    fn heartbeat_history_keeps_the_newest_per_station() {
        each_store(|store| {
            for id in ["a", "b"] {
                let station = Station { id: id.into(), name: id.into(), district: "x".into() };
                store.add_station(&station, &format!("h-{id}")).unwrap();
            }
            store.put_heartbeat(&beat("b", 0)).unwrap();
            for n in 0..(HEARTBEAT_HISTORY as i64 + 5) {
                store.put_heartbeat(&beat("a", n)).unwrap();
            }
            let all = store.heartbeat_history("a", 1000).unwrap();
            assert_eq!(all.len(), HEARTBEAT_HISTORY, "one past the bound is dropped");
            assert_eq!(all[0], beat("a", HEARTBEAT_HISTORY as i64 + 4), "newest first");
            assert_eq!(store.heartbeat_history("a", 3).unwrap().len(), 3);
            assert_eq!(store.heartbeat_history("b", 10).unwrap(), [beat("b", 0)], "per station");
            assert_eq!(store.heartbeats().unwrap().len(), 2, "the latest is kept as before");
        });
    }

    #[test]
    fn heartbeats_stored_at_once_keep_the_history_bounded() {
        each_store(|store| {
            let station = Station { id: "a".into(), name: "a".into(), district: "x".into() };
            store.add_station(&station, "h").unwrap();
            for n in 0..(HEARTBEAT_HISTORY as i64 - 2) {
                store.put_heartbeat(&beat("a", n)).unwrap();
            }
            at_once(8, |n| store.put_heartbeat(&beat("a", 1000 + n as i64)).unwrap());
            assert_eq!(store.heartbeat_history("a", 1000).unwrap().len(), HEARTBEAT_HISTORY);
        });
    }

    #[test]
    fn schedule_loads_are_listed_newest_first_and_bounded() {
        each_store(|store| {
            let station = Station { id: "a".into(), name: "a".into(), district: "x".into() };
            store.add_station(&station, "h").unwrap();
            let schedule = |origin: &str, layer| StoredSchedule {
                id: 0,
                origin: origin.into(),
                layer,
                source: "# empty\n".into(),
                audio: Default::default(),
                loaded_at: at(5),
            };
            let stations = ["a".to_string()];
            store
                .load_schedule(&schedule("p.toml", Layer::Provincial), &stations, "admin")
                .unwrap();
            let id =
                store.load_schedule(&schedule("l.toml", Layer::Local), &stations, "an").unwrap();
            let loads = store.schedule_loads(10).unwrap();
            assert_eq!(loads.len(), 2);
            assert_eq!(
                loads[0],
                ScheduleLoad {
                    id,
                    origin: "l.toml".into(),
                    layer: Layer::Local,
                    loaded_by: "an".into(),
                    loaded_at: at(5),
                    stations: Some(vec!["a".into()]),
                }
            );
            assert_eq!(loads[1].layer, Layer::Provincial);
            assert_eq!(store.schedule_loads(1).unwrap().len(), 1);
        });
    }

    #[test]
    fn the_library_lists_files_with_their_true_peaks_bounded() {
        each_store(|store| {
            let info = |n: u8| AudioInfo {
                sha256: format!("{n}").repeat(64),
                title: format!("file {n}"),
                size: 1000 + u64::from(n),
                duration_ms: 60_000,
                loudness_lufs: -20.5,
                gain_db: -3.5,
                damage: (n == 2).then(|| "truncated".to_string()),
            };
            for n in 1..=3 {
                store.put_audio(&info(n), -1.5 - f64::from(n)).unwrap();
            }
            let all = store.library(10).unwrap();
            let mut got: Vec<(AudioInfo, Option<f64>)> =
                all.into_iter().map(|e| (e.info, e.true_peak_dbtp)).collect();
            got.sort_by(|a, b| a.0.sha256.cmp(&b.0.sha256));
            let expected: Vec<_> = (1..=3).map(|n| (info(n), Some(-1.5 - f64::from(n)))).collect();
            assert_eq!(got, expected);
            assert_eq!(store.library(2).unwrap().len(), 2);
        });
    }
}
