//! Live broadcasts at central on PostgreSQL: one row per broadcast, written at the start
//! and updated once at the end. The same table as the SQLite side
//! ([`crate::store::live`]), whose row decoder both stores share.

use postgres::Client;

use super::super::console::{sql_limit, to_bigint};
use super::super::live as shared;
use super::console::columns;
use super::*;
use crate::protocol::live::LiveRecord;
use crate::protocol::time_text;

pub(super) const SCHEMA: &str = "
CREATE TABLE live_broadcasts (
    id TEXT COLLATE \"C\" PRIMARY KEY,
    title TEXT NOT NULL,
    priority TEXT NOT NULL,
    started_by TEXT NOT NULL,
    started_at TEXT COLLATE \"C\" NOT NULL,
    stations BIGINT NOT NULL,
    ended_at TEXT,
    chunks BIGINT NOT NULL DEFAULT 0,
    audio_secs DOUBLE PRECISION NOT NULL DEFAULT 0,
    end_reason TEXT,
    recording TEXT NOT NULL
);
";

pub(super) fn live_started(c: &mut Client, r: &LiveRecord) -> Result<(), StoreError> {
    c.execute(
        "INSERT INTO live_broadcasts (id, title, priority, started_by, started_at, stations, recording, alive_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $5)",
        &[
            &r.id,
            &r.title,
            &r.priority.as_str(),
            &r.started_by,
            &time_text(r.started_at),
            &to_bigint(r.stations, "live stations")?,
            &r.recording,
        ],
    )?;
    Ok(())
}

/// A conditional update (`WHERE ended_at IS NULL`): of two replicas ending one broadcast
/// at once, the second waits for the first's row lock, finds it ended, and changes
/// nothing; the first end stands.
pub(super) fn live_ended(
    c: &mut Client,
    id: &str,
    at: DateTime<Utc>,
    chunks: u64,
    audio_secs: f64,
    reason: &str,
) -> Result<(), StoreError> {
    c.execute(
        "UPDATE live_broadcasts SET ended_at = $2, chunks = $3, audio_secs = $4, end_reason = $5
         WHERE id = $1 AND ended_at IS NULL",
        &[&id, &time_text(at), &to_bigint(chunks, "live chunks")?, &audio_secs, &reason],
    )?;
    Ok(())
}

/// Added by migration 3: when the replica receiving a broadcast last said it was alive.
pub(super) const ALIVE_COLUMN: &str =
    "ALTER TABLE live_broadcasts ADD COLUMN alive_at TEXT COLLATE \"C\"";

pub(super) fn live_alive(c: &mut Client, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
    c.execute(
        "UPDATE live_broadcasts SET alive_at = $2 WHERE id = $1 AND ended_at IS NULL",
        &[&id, &time_text(at)],
    )?;
    Ok(())
}

pub(super) fn live_list(c: &mut Client, limit: usize) -> Result<Vec<LiveRecord>, StoreError> {
    let sql = format!("SELECT {} ORDER BY started_at DESC, id DESC LIMIT $1", shared::LIVE_COLUMNS);
    c.query(&sql, &[&sql_limit(limit.min(shared::LIST_MAX))])?
        .iter()
        .map(|r| shared::record_from(columns(r)?))
        .collect()
}
