//! PostgreSQL: the playlog (every ledger record stations report), the hot path of a
//! province's central: a busy upload arrives in batches of hundreds of records, and a
//! batch costs a fixed handful of round trips whatever its size. The chain check is the
//! SQLite store's ([`crate::store::playlog`]'s `check`), run on what the batch's
//! neighbours were before it.

use std::collections::HashMap;

use postgres::Client;
use postgres::types::Type;

use super::super::playlog::{
    Held, SummaryRows, batch_prefix, check, filter_sql, neighbours, record_from_json, seq_read,
    seq_sql, summarise,
};
use super::*;
use crate::protocol::time_text;

/// The SQLite tables, in PostgreSQL types. `COLLATE "C"` on the columns records are
/// ordered and paged by, so the order is SQLite's (bytes) whatever the database's locale.
pub(super) const SCHEMA: &str = r#"
CREATE TABLE playlog (
    station_id TEXT COLLATE "C" NOT NULL REFERENCES stations(id),
    seq BIGINT NOT NULL,
    item_id TEXT NOT NULL,
    planned TEXT COLLATE "C" NOT NULL,
    outcome TEXT NOT NULL,
    hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    record_json TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (station_id, seq)
);
CREATE INDEX playlog_planned ON playlog (planned);
CREATE TABLE playlog_progress (
    station_id TEXT PRIMARY KEY REFERENCES stations(id),
    acked_through BIGINT NOT NULL,
    last_received TEXT NOT NULL
);
CREATE TABLE playlog_issues (
    station_id TEXT NOT NULL,
    seq BIGINT NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    found_at TEXT NOT NULL,
    PRIMARY KEY (station_id, seq, kind)
);
"#;

/// Stores a batch in one transaction and answers how far the station's records are now
/// held without a gap. Six round trips for any batch (statements sent with their
/// parameter types, so none is prepared first): BEGIN; lock the station's progress row;
/// read the stored neighbours of the batch; insert the new records and the flags in one
/// statement (arrays, `UNNEST`); move the acknowledgement; COMMIT.
///
/// Concurrency: the progress row is locked (`INSERT … ON CONFLICT DO UPDATE`, which
/// takes the row lock) before anything is read, so ingests of one station from several
/// replicas run one after another, each seeing what the one before committed (READ
/// COMMITTED: every statement after the lock reads a fresh snapshot): the chain
/// check and the duplicate count are exact, and `ON CONFLICT DO NOTHING` on
/// `(station_id, seq)` is a second guard that a record is stored once.
pub(super) fn ingest_playlog(
    c: &mut Client,
    station_id: &str,
    records: &[Record],
    now: DateTime<Utc>,
) -> Result<PlaylogAck, StoreError> {
    let now_text = time_text(now);
    let mut tx = c.transaction()?;
    let acked: i64 = tx
        .query_typed_one(
            "INSERT INTO playlog_progress (station_id, acked_through, last_received)
             VALUES ($1, 0, $2)
             ON CONFLICT (station_id) DO UPDATE SET last_received = excluded.last_received
             RETURNING acked_through",
            &[(&station_id, Type::TEXT), (&now_text, Type::TEXT)],
        )?
        .get(0);
    let wanted = neighbours(records)?.into_iter().map(seq_sql).collect::<Result<Vec<_>, _>>()?;
    let mut held = HashMap::new();
    for row in tx.query_typed(
        "SELECT seq, hash, prev_hash, record_json FROM playlog
         WHERE station_id = $1 AND seq = ANY($2)",
        &[(&station_id, Type::TEXT), (&wanted, Type::INT8_ARRAY)],
    )? {
        let seq = seq_read(row.get(0))?;
        held.insert(seq, Held { hash: row.get(1), prev_hash: row.get(2), record_json: row.get(3) });
    }
    let checked = check(station_id, records, &held)?;
    let new: Vec<&Record> = checked.new.iter().map(|&i| &records[i]).collect();
    let seqs = new.iter().map(|r| seq_sql(r.seq)).collect::<Result<Vec<_>, _>>()?;
    let items: Vec<&str> = new.iter().map(|r| r.entry.item_id.as_str()).collect();
    let planned: Vec<String> = new.iter().map(|r| time_text(r.entry.planned)).collect();
    let outcomes: Vec<&str> = new.iter().map(|r| r.entry.outcome.as_str()).collect();
    let hashes: Vec<&str> = new.iter().map(|r| r.hash.as_str()).collect();
    let prevs: Vec<&str> = new.iter().map(|r| r.prev_hash.as_str()).collect();
    let jsons: Vec<&str> = checked.new.iter().map(|&i| checked.jsons[i].as_str()).collect();
    let flag_seqs = checked.flags.iter().map(|f| seq_sql(f.seq)).collect::<Result<Vec<_>, _>>()?;
    let kinds: Vec<&str> = checked.flags.iter().map(|f| f.kind).collect();
    let details: Vec<&str> = checked.flags.iter().map(|f| f.detail.as_str()).collect();
    tx.execute_typed(
        "WITH flagged AS (
             INSERT INTO playlog_issues (station_id, seq, kind, detail, found_at)
             SELECT $1, f.seq, f.kind, f.detail, $2 FROM UNNEST($10, $11, $12) AS f(seq, kind, detail)
             ON CONFLICT DO NOTHING
         )
         INSERT INTO playlog
             (station_id, seq, item_id, planned, outcome, hash, prev_hash, record_json, received_at)
         SELECT $1, r.seq, r.item_id, r.planned, r.outcome, r.hash, r.prev_hash, r.record_json, $2
         FROM UNNEST($3, $4, $5, $6, $7, $8, $9)
             AS r(seq, item_id, planned, outcome, hash, prev_hash, record_json)
         ON CONFLICT DO NOTHING",
        &[
            (&station_id, Type::TEXT),
            (&now_text, Type::TEXT),
            (&seqs, Type::INT8_ARRAY),
            (&items, Type::TEXT_ARRAY),
            (&planned, Type::TEXT_ARRAY),
            (&outcomes, Type::TEXT_ARRAY),
            (&hashes, Type::TEXT_ARRAY),
            (&prevs, Type::TEXT_ARRAY),
            (&jsons, Type::TEXT_ARRAY),
            (&flag_seqs, Type::INT8_ARRAY),
            (&kinds, Type::TEXT_ARRAY),
            (&details, Type::TEXT_ARRAY),
        ],
    )?;
    // The prefix continues from the batch's own records; the first stored sequence from
    // there whose successor is missing ends it (ordered by the primary key, so a gap
    // with many records behind it stops the scan at once).
    let from = seq_sql(batch_prefix(seq_read(acked)?, records))?;
    let through: i64 = tx
        .query_typed_one(
            "UPDATE playlog_progress SET acked_through = (
                 SELECT c.seq FROM (
                     SELECT $2::BIGINT AS seq
                     UNION ALL
                     SELECT seq FROM playlog WHERE station_id = $1 AND seq > $2
                 ) c
                 WHERE NOT EXISTS
                     (SELECT 1 FROM playlog n WHERE n.station_id = $1 AND n.seq = c.seq + 1)
                 ORDER BY c.seq LIMIT 1)
             WHERE station_id = $1
             RETURNING acked_through",
            &[(&station_id, Type::TEXT), (&from, Type::INT8)],
        )?
        .get(0);
    tx.commit()?;
    Ok(checked.ack(seq_read(through)?))
}

/// Records matching `filter`, by planned time then station and sequence.
pub(super) fn playlog(c: &mut Client, filter: &PlaylogFilter) -> Result<Vec<Record>, StoreError> {
    let Some((sql, args)) = filter_sql(filter, '$') else { return Ok(Vec::new()) };
    let params: Vec<&(dyn postgres::types::ToSql + Sync)> =
        args.iter().map(|a| a as &(dyn postgres::types::ToSql + Sync)).collect();
    c.query(&sql, &params)?.iter().map(|row| record_from_json(row.get(0))).collect()
}

/// How much of a station's playlog central holds, and what is wrong with its chain.
pub(super) fn playlog_summary(
    c: &mut Client,
    station_id: &str,
) -> Result<PlaylogSummary, StoreError> {
    let progress = c
        .query_opt(
            "SELECT acked_through, last_received FROM playlog_progress WHERE station_id = $1",
            &[&station_id],
        )?
        .map(|r| (r.get(0), r.get(1)));
    let counts = c.query_one(
        "SELECT COUNT(*), MAX(seq) FROM playlog WHERE station_id = $1",
        &[&station_id],
    )?;
    let flagged = c
        .query(
            "SELECT seq, kind, detail FROM playlog_issues WHERE station_id = $1
             ORDER BY seq, kind COLLATE \"C\"",
            &[&station_id],
        )?
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    summarise(SummaryRows { progress, records: counts.get(0), max_seq: counts.get(1), flagged })
}
