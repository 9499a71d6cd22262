//! Live broadcasts at central: one row per broadcast (who started it, when, to how many
//! stations, how long it ran, why it ended, where the recording is). Plain SQL: a row
//! written at the start and updated once at the end. The row decoder is shared with the
//! PostgreSQL store (`pg::live`).

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::StoreError;
use crate::protocol::live::LiveRecord;
use crate::protocol::time_text;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS live_broadcasts (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    priority TEXT NOT NULL,
    started_by TEXT NOT NULL,
    started_at TEXT NOT NULL,
    stations INTEGER NOT NULL,
    ended_at TEXT,
    chunks INTEGER NOT NULL DEFAULT 0,
    audio_secs REAL NOT NULL DEFAULT 0,
    end_reason TEXT,
    recording TEXT NOT NULL,
    alive_at TEXT
);
";

/// Columns added after the table first shipped (see `sqlite::add_missing_columns`).
pub(crate) const ADDED: &[(&str, &str, &str)] = &[("live_broadcasts", "alive_at", "TEXT")];

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("live broadcast {what}: {e}"))
}

pub(crate) fn started(conn: &Connection, r: &LiveRecord) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO live_broadcasts (id, title, priority, started_by, started_at, stations, recording, alive_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?5)",
        params![
            r.id,
            r.title,
            r.priority.as_str(),
            r.started_by,
            time_text(r.started_at),
            super::console::to_bigint(r.stations, "live stations")?,
            r.recording
        ],
    )?;
    Ok(())
}

pub(crate) fn ended(
    conn: &Connection,
    id: &str,
    at: DateTime<Utc>,
    chunks: u64,
    audio_secs: f64,
    reason: &str,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE live_broadcasts SET ended_at = ?2, chunks = ?3, audio_secs = ?4, end_reason = ?5
         WHERE id = ?1 AND ended_at IS NULL",
        params![
            id,
            time_text(at),
            super::console::to_bigint(chunks, "live chunks")?,
            audio_secs,
            reason
        ],
    )?;
    Ok(())
}

/// Marks broadcast `id`, still on air, as alive at `at` (an ended one is left alone).
pub(crate) fn alive(conn: &Connection, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE live_broadcasts SET alive_at = ?2 WHERE id = ?1 AND ended_at IS NULL",
        params![id, time_text(at)],
    )?;
    Ok(())
}

/// The `live_broadcasts` columns [`record_from`] reads, in order, for both stores.
pub(super) const LIVE_COLUMNS: &str = "id, title, priority, started_by, started_at, stations, \
     ended_at, chunks, audio_secs, end_reason, recording, alive_at FROM live_broadcasts";

/// A broadcast's stored columns ([`LIVE_COLUMNS`]), for both stores.
pub(super) type LiveRow = (
    String,
    String,
    String,
    String,
    String,
    i64,
    Option<String>,
    i64,
    f64,
    Option<String>,
    String,
    Option<String>,
);

/// Most broadcasts one list shows, whatever is asked.
pub(super) const LIST_MAX: usize = 1000;

pub(crate) fn list(conn: &Connection, limit: usize) -> Result<Vec<LiveRecord>, StoreError> {
    let mut stmt =
        conn.prepare(&format!("SELECT {LIVE_COLUMNS} ORDER BY started_at DESC, id DESC LIMIT ?1"))?;
    let rows = stmt
        .query_map([super::console::sql_limit(limit.min(LIST_MAX))], |r| r.try_into())?
        .collect::<Result<Vec<LiveRow>, _>>()?;
    rows.into_iter().map(record_from).collect()
}

/// A broadcast from [`LIVE_COLUMNS`]' values, for both stores.
pub(super) fn record_from(
    (id, title, priority, by, started, stations, ended, chunks, secs, reason, rec, alive): LiveRow,
) -> Result<LiveRecord, StoreError> {
    let time = |t: &str| {
        DateTime::parse_from_rfc3339(t).map(|t| t.to_utc()).map_err(|e| corrupt("time", e))
    };
    let priority = serde_json::from_value(serde_json::Value::String(priority))
        .map_err(|e| corrupt("priority", e))?;
    Ok(LiveRecord {
        id,
        title,
        priority,
        started_by: by,
        started_at: time(&started)?,
        stations: super::console::from_bigint(stations, "live stations")?,
        ended_at: ended.as_deref().map(time).transpose()?,
        chunks: super::console::from_bigint(chunks, "live chunks")?,
        audio_secs: secs,
        end_reason: reason,
        recording: rec,
        alive_at: alive.as_deref().map(time).transpose()?,
    })
}

#[cfg(test)]
mod tests {
    use super::super::console::at_once;
    use super::super::contract::each_store;
    use super::*;
    use crate::protocol::BulletinPriority;

    fn record(id: &str, minute: i64) -> LiveRecord {
        let at = DateTime::parse_from_rfc3339("2026-12-06T06:00:00Z").unwrap().to_utc()
            + chrono::Duration::minutes(minute);
        LiveRecord {
            id: id.into(),
            title: "Cảnh báo lũ".into(),
            priority: BulletinPriority::Emergency,
            started_by: "admin".into(),
            started_at: at,
            stations: 150,
            ended_at: None,
            chunks: 0,
            audio_secs: 0.0,
            end_reason: None,
            recording: format!("live/{id}.loalive"),
            alive_at: Some(at),
        }
    }

    /// The start is the first mark of life; later marks move it while on air, and
    /// none after the end (a late mark from a replica that lost the race changes nothing).
    #[test]
    fn a_broadcast_is_marked_alive_while_on_air_only() {
        each_store(|store| {
            let started = record("a", 0);
            store.live_started(&LiveRecord { alive_at: None, ..started.clone() }).unwrap();
            let alive = |s: &dyn crate::store::Store| s.live_list(1).unwrap()[0].alive_at;
            assert_eq!(alive(store), Some(started.started_at), "the start counts");
            let later = started.started_at + chrono::Duration::seconds(5);
            store.live_alive("a", later).unwrap();
            assert_eq!(alive(store), Some(later));
            store.live_ended("a", later, 50, 5.0, "upload ended").unwrap();
            store.live_alive("a", later + chrono::Duration::seconds(5)).unwrap();
            assert_eq!(alive(store), Some(later), "not after the end");
            store.live_alive("nope", later).unwrap();
        });
    }

    #[test]
    fn a_broadcast_is_listed_newest_first_and_ends_once() {
        each_store(|store| {
            store.live_started(&record("a", 0)).unwrap();
            store.live_started(&record("b", 5)).unwrap();
            assert!(store.live_started(&record("a", 9)).is_err(), "one row per broadcast");
            let end = record("a", 2).started_at;
            store.live_ended("a", end, 40, 4.0, "upload ended").unwrap();
            store.live_ended("a", end + chrono::Duration::hours(1), 99, 9.9, "again").unwrap();
            store.live_ended("nope", end, 1, 1.0, "never started").unwrap();
            let list = store.live_list(10).unwrap();
            assert_eq!(list.iter().map(|r| r.id.as_str()).collect::<Vec<_>>(), ["b", "a"]);
            let a = &list[1];
            assert_eq!((a.ended_at, a.chunks, a.audio_secs), (Some(end), 40, 4.0));
            assert_eq!(a.end_reason.as_deref(), Some("upload ended"), "the first end stands");
            assert_eq!(list[0], record("b", 5), "as started");
            assert_eq!(store.live_list(1).unwrap().len(), 1);
            assert!(store.live_list(0).unwrap().is_empty());
        });
    }

    #[test]
    fn replicas_ending_a_broadcast_at_once_end_it_once() {
        each_store(|store| {
            store.live_started(&record("a", 0)).unwrap();
            let end = record("a", 2).started_at;
            at_once(8, |n| {
                let chunks = n as u64 + 1;
                store.live_ended("a", end, chunks, n as f64, &format!("end {chunks}")).unwrap()
            });
            let a = store.live_list(1).unwrap().remove(0);
            let reason = a.end_reason.expect("ended");
            assert_eq!(reason, format!("end {}", a.chunks), "one end whole, not a mixture");
            assert_eq!(a.audio_secs, (a.chunks - 1) as f64);
        });
    }
}
