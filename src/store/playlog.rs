//! The playlog at central: every ledger record stations report, stored once per
//! `(station, seq)`, with the station's hash chain checked as records arrive.
//!
//! Acknowledgement is the contiguous prefix: `acked_through` only moves past a sequence
//! once every record before it is stored, so a station never marks a record acknowledged
//! that central does not hold. Problems in a chain (a hash that does not match its
//! content, a link to a different previous hash, a second different record under one
//! sequence) are kept in `playlog_issues`; gaps are derived from what is stored.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, Transaction, params};

use super::{PlaylogFilter, StoreError};
use crate::protocol::{ChainIssue, PlaylogAck, PlaylogSummary};
use crate::protocol::{GENESIS, Record, time_text};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS playlog (
    station_id TEXT NOT NULL REFERENCES stations(id),
    seq INTEGER NOT NULL,
    item_id TEXT NOT NULL,
    planned TEXT NOT NULL,
    outcome TEXT NOT NULL,
    hash TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    record_json TEXT NOT NULL,
    received_at TEXT NOT NULL,
    PRIMARY KEY (station_id, seq)
);
CREATE INDEX IF NOT EXISTS playlog_planned ON playlog (planned);
CREATE TABLE IF NOT EXISTS playlog_progress (
    station_id TEXT PRIMARY KEY REFERENCES stations(id),
    acked_through INTEGER NOT NULL,
    last_received TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS playlog_issues (
    station_id TEXT NOT NULL,
    seq INTEGER NOT NULL,
    kind TEXT NOT NULL,
    detail TEXT NOT NULL,
    found_at TEXT NOT NULL,
    PRIMARY KEY (station_id, seq, kind)
);
";

fn corrupt(e: serde_json::Error) -> StoreError {
    StoreError::Corrupt(format!("playlog record: {e}"))
}

fn stored_hash(tx: &Transaction<'_>, station: &str, seq: u64) -> rusqlite::Result<Option<String>> {
    tx.prepare_cached("SELECT hash FROM playlog WHERE station_id = ?1 AND seq = ?2")?
        .query_row(params![station, seq as i64], |r| r.get(0))
        .optional()
}

fn stored_prev(tx: &Transaction<'_>, station: &str, seq: u64) -> rusqlite::Result<Option<String>> {
    tx.prepare_cached("SELECT prev_hash FROM playlog WHERE station_id = ?1 AND seq = ?2")?
        .query_row(params![station, seq as i64], |r| r.get(0))
        .optional()
}

fn flag(
    tx: &Transaction<'_>,
    station: &str,
    seq: u64,
    kind: &str,
    detail: String,
    now: &str,
) -> rusqlite::Result<()> {
    tracing::warn!(station, seq, kind, "playlog chain: {detail}");
    tx.prepare_cached(
        "INSERT OR IGNORE INTO playlog_issues (station_id, seq, kind, detail, found_at)
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?
    .execute(params![station, seq as i64, kind, detail, now])?;
    Ok(())
}

/// Stores a batch in one transaction (committed with `synchronous=FULL` before this
/// returns) and answers how far the station's records are now held without a gap.
pub(super) fn ingest(
    conn: &mut Connection,
    station: &str,
    records: &[Record],
    now: DateTime<Utc>,
) -> Result<PlaylogAck, StoreError> {
    let now_text = time_text(now);
    let tx = conn.transaction()?;
    let mut stored = 0u64;
    let mut duplicates = 0u64;
    // The previous record of this batch, so a contiguous batch checks its links in memory.
    let mut previous: Option<(u64, &str)> = None;
    for (i, record) in records.iter().enumerate() {
        // Stored as the station wrote it: `acked` is the station's bookkeeping, not content.
        let json = if record.acked {
            serde_json::to_string(&Record { acked: false, ..record.clone() })
        } else {
            serde_json::to_string(record)
        }
        .map_err(corrupt)?;
        let inserted = tx
            .prepare_cached(
                "INSERT OR IGNORE INTO playlog
                 (station_id, seq, item_id, planned, outcome, hash, prev_hash, record_json, received_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
            )?
            .execute(params![
                station,
                record.seq as i64,
                record.entry.item_id,
                time_text(record.entry.planned),
                record.entry.outcome.as_str(),
                record.hash,
                record.prev_hash,
                json,
                now_text,
            ])?;
        let in_batch_prev = previous.filter(|(seq, _)| seq + 1 == record.seq).map(|(_, h)| h);
        previous = Some((record.seq, record.hash.as_str()));
        if inserted == 0 {
            duplicates += 1;
            let held: Option<String> = tx
                .prepare_cached(
                    "SELECT record_json FROM playlog WHERE station_id = ?1 AND seq = ?2",
                )?
                .query_row(params![station, record.seq as i64], |r| r.get(0))
                .optional()?;
            if held.as_deref() != Some(json.as_str()) {
                flag(
                    &tx,
                    station,
                    record.seq,
                    "conflict",
                    "a different record was sent under a sequence already stored (the first is kept)".into(),
                    &now_text,
                )?;
            }
            continue;
        }
        stored += 1;
        if !record.hash_is_valid() {
            flag(
                &tx,
                station,
                record.seq,
                "break",
                "hash does not match the record's content (altered after it was written)".into(),
                &now_text,
            )?;
        }
        let expected_prev = if record.seq <= 1 {
            Some(GENESIS.to_string())
        } else if let Some(h) = in_batch_prev {
            Some(h.to_string())
        } else {
            stored_hash(&tx, station, record.seq - 1)?
        };
        if let Some(prev) = expected_prev
            && prev != record.prev_hash
        {
            flag(
                &tx,
                station,
                record.seq,
                "break",
                format!(
                    "links to {} but record {} has hash {prev}",
                    record.prev_hash,
                    record.seq - 1
                ),
                &now_text,
            )?;
        }
        // A record that arrived earlier than its predecessor: check that link too.
        let next_in_batch = records.get(i + 1).is_some_and(|n| n.seq == record.seq + 1);
        if !next_in_batch
            && let Some(next_prev) = stored_prev(&tx, station, record.seq + 1)?
            && next_prev != record.hash
        {
            flag(
                &tx,
                station,
                record.seq + 1,
                "break",
                format!("links to {next_prev} but record {} has hash {}", record.seq, record.hash),
                &now_text,
            )?;
        }
    }
    let mut through: u64 = tx
        .query_row(
            "SELECT acked_through FROM playlog_progress WHERE station_id = ?1",
            [station],
            |r| r.get::<_, i64>(0),
        )
        .optional()?
        .unwrap_or(0) as u64;
    // Skip over the part of this batch that continues the prefix without asking SQLite.
    for record in records {
        if record.seq == through + 1 {
            through += 1;
        }
    }
    while stored_hash(&tx, station, through + 1)?.is_some() {
        through += 1;
    }
    tx.execute(
        "INSERT INTO playlog_progress (station_id, acked_through, last_received) VALUES (?1, ?2, ?3)
         ON CONFLICT (station_id) DO UPDATE
         SET acked_through = excluded.acked_through, last_received = excluded.last_received",
        params![station, through as i64, now_text],
    )?;
    tx.commit()?;
    Ok(PlaylogAck { acked_through: through, stored, duplicates })
}

/// Records matching `filter`, by planned time then station and sequence.
pub(super) fn query(conn: &Connection, filter: &PlaylogFilter) -> Result<Vec<Record>, StoreError> {
    let mut sql = String::from("SELECT record_json FROM playlog WHERE 1 = 1");
    let mut args: Vec<String> = Vec::new();
    if let Some(stations) = &filter.stations {
        if stations.is_empty() {
            return Ok(Vec::new());
        }
        let mut marks = Vec::new();
        for s in stations {
            args.push(s.clone());
            marks.push(format!("?{}", args.len()));
        }
        sql.push_str(&format!(" AND station_id IN ({})", marks.join(", ")));
    }
    let mut condition = |sql_part: &str, value: String| {
        args.push(value);
        sql.push_str(&format!(" AND {sql_part} ?{}", args.len()));
    };
    if let Some(t) = filter.since {
        condition("planned >=", time_text(t));
    }
    if let Some(t) = filter.until {
        condition("planned <", time_text(t));
    }
    if let Some(o) = filter.outcome {
        condition("outcome =", o.as_str().to_string());
    }
    if let Some(item) = &filter.item_id {
        condition("item_id =", item.clone());
    }
    if let Some(after) = &filter.after {
        args.push(time_text(after.planned));
        args.push(after.station.clone());
        args.push(after.seq.min(i64::MAX as u64).to_string());
        let n = args.len();
        sql.push_str(&format!(
            " AND (planned, station_id, seq) > (?{}, ?{}, CAST(?{n} AS INTEGER))",
            n - 2,
            n - 1
        ));
    }
    sql.push_str(" ORDER BY planned, station_id, seq");
    if let Some(limit) = filter.limit {
        sql.push_str(&format!(" LIMIT {}", limit.min(i64::MAX as u64)));
    }
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    rows.iter()
        .map(|json| {
            let mut record: Record = serde_json::from_str(json).map_err(corrupt)?;
            record.acked = true;
            Ok(record)
        })
        .collect()
}

/// How much of a station's playlog central holds, and what is wrong with its chain.
pub(super) fn summary(conn: &Connection, station: &str) -> Result<PlaylogSummary, StoreError> {
    let (acked, last): (Option<i64>, Option<String>) = conn
        .query_row(
            "SELECT acked_through, last_received FROM playlog_progress WHERE station_id = ?1",
            [station],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?
        .map(|(a, l)| (Some(a), Some(l)))
        .unwrap_or((None, None));
    let (records, max_seq): (i64, Option<i64>) = conn.query_row(
        "SELECT COUNT(*), MAX(seq) FROM playlog WHERE station_id = ?1",
        [station],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let acked_through = acked.unwrap_or(0) as u64;
    let max_seq = max_seq.unwrap_or(0) as u64;
    let mut issues = Vec::new();
    if max_seq > acked_through {
        issues.push(ChainIssue {
            seq: acked_through + 1,
            kind: "gap".into(),
            detail: format!(
                "record {} has not arrived; records up to {max_seq} have",
                acked_through + 1
            ),
        });
    }
    let mut stmt = conn.prepare(
        "SELECT seq, kind, detail FROM playlog_issues WHERE station_id = ?1 ORDER BY seq, kind",
    )?;
    let flagged = stmt
        .query_map([station], |r| {
            Ok(ChainIssue { seq: r.get::<_, i64>(0)? as u64, kind: r.get(1)?, detail: r.get(2)? })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    issues.extend(flagged);
    let last_received = last
        .map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|t| t.to_utc())
                .map_err(|e| StoreError::Corrupt(format!("timestamp {t:?}: {e}")))
        })
        .transpose()?;
    Ok(PlaylogSummary { acked_through, max_seq, records: records as u64, last_received, issues })
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::super::{SqliteStore, Station, Store};
    use super::*;
    use crate::protocol::{Entry, Outcome};
    use crate::schedule::{Layer, Priority};

    /// A valid chain of `n` records for `station`.
    pub(crate) fn chain(station: &str, n: u64) -> Vec<Record> {
        let entries = (1..=n).map(|seq| {
            let planned = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
                + chrono::Duration::minutes(seq as i64);
            let mut entry = Entry::missed(
                &format!("item-{seq}"),
                "Bản tin",
                Layer::Provincial,
                Priority::Normal,
                planned,
                crate::protocol::Reason::from_stored(None, "station was not running"),
            );
            if seq % 2 == 0 {
                entry.outcome = Outcome::Played;
                entry.reason = None;
            }
            entry
        });
        Record::chain(station, 1, GENESIS, entries)
    }

    fn store() -> (tempfile::TempDir, SqliteStore) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("c.sqlite")).unwrap();
        for id in ["a", "b"] {
            let s = Station { id: id.into(), name: id.into(), district: "D".into() };
            store.add_station(&s, &format!("token-{id}")).unwrap();
        }
        (dir, store)
    }

    #[test]
    fn same_batch_twice_is_stored_once_and_acked_the_same() {
        let (_dir, store) = store();
        let now = Utc::now();
        let records = chain("a", 10);
        let first = store.ingest_playlog("a", &records, now).unwrap();
        assert_eq!(first, PlaylogAck { acked_through: 10, stored: 10, duplicates: 0 });
        let again = store.ingest_playlog("a", &records, now).unwrap();
        assert_eq!(again, PlaylogAck { acked_through: 10, stored: 0, duplicates: 10 });
        let held = store.playlog(&PlaylogFilter::default()).unwrap();
        assert_eq!(held.len(), 10);
        assert_eq!(held.iter().map(|r| r.seq).collect::<Vec<_>>(), (1..=10).collect::<Vec<_>>());
        assert!(held.iter().all(|r| r.acked && r.hash_is_valid()));
        let summary = store.playlog_summary("a").unwrap();
        assert_eq!((summary.acked_through, summary.max_seq, summary.records), (10, 10, 10));
        assert!(summary.issues.is_empty(), "{:?}", summary.issues);
    }

    #[test]
    fn ack_stops_at_a_gap_until_it_is_filled() {
        let (_dir, store) = store();
        let now = Utc::now();
        let records = chain("a", 6);
        let ack = store.ingest_playlog("a", &[&records[..2], &records[3..]].concat(), now).unwrap();
        assert_eq!(ack.acked_through, 2);
        let summary = store.playlog_summary("a").unwrap();
        assert_eq!(summary.issues[0].kind, "gap");
        assert_eq!(summary.issues[0].seq, 3);
        let ack = store.ingest_playlog("a", &records[2..3], now).unwrap();
        assert_eq!(ack, PlaylogAck { acked_through: 6, stored: 1, duplicates: 0 });
        assert!(store.playlog_summary("a").unwrap().issues.is_empty());
    }

    #[test]
    fn altered_and_relinked_records_are_flagged() {
        let (_dir, store) = store();
        let now = Utc::now();
        let mut records = chain("a", 5);
        // Record 3's outcome changed after it was hashed: content break at 3.
        records[2].entry.outcome = Outcome::Played;
        // Record 5 claims a different predecessor: link break at 5.
        records[4].prev_hash = "ab".repeat(32);
        let ack = store.ingest_playlog("a", &records, now).unwrap();
        assert_eq!(ack.acked_through, 5, "stored records are acknowledged even when flagged");
        let issues = store.playlog_summary("a").unwrap().issues;
        let kinds: Vec<(u64, &str)> = issues.iter().map(|i| (i.seq, i.kind.as_str())).collect();
        assert!(kinds.contains(&(3, "break")), "{issues:?}");
        assert!(kinds.contains(&(5, "break")), "{issues:?}");
        assert!(!kinds.iter().any(|(s, _)| [1, 2, 4].contains(s)), "{issues:?}");
        // Another station's chain is untouched.
        store.ingest_playlog("b", &chain("b", 2), now).unwrap();
        assert!(store.playlog_summary("b").unwrap().issues.is_empty());
        // A different record resent under a stored sequence keeps the first.
        let mut other = chain("b", 2);
        other[1].entry.title = "khác".into();
        store.ingest_playlog("b", &other, now).unwrap();
        let issues = store.playlog_summary("b").unwrap().issues;
        assert_eq!(issues.len(), 1);
        assert_eq!((issues[0].seq, issues[0].kind.as_str()), (2, "conflict"));
        let held = store
            .playlog(&PlaylogFilter { stations: Some(vec!["b".into()]), ..Default::default() })
            .unwrap();
        assert_eq!(held[1].entry.title, "Bản tin");
    }

    #[test]
    fn filters_select_by_station_time_outcome_and_item() {
        let (_dir, store) = store();
        let now = Utc::now();
        store.ingest_playlog("a", &chain("a", 6), now).unwrap();
        store.ingest_playlog("b", &chain("b", 4), now).unwrap();
        let q = |f: PlaylogFilter| store.playlog(&f).unwrap().len();
        assert_eq!(q(PlaylogFilter::default()), 10);
        assert_eq!(q(PlaylogFilter { stations: Some(vec!["b".into()]), ..Default::default() }), 4);
        assert_eq!(q(PlaylogFilter { stations: Some(vec![]), ..Default::default() }), 0);
        assert_eq!(q(PlaylogFilter { outcome: Some(Outcome::Played), ..Default::default() }), 5);
        assert_eq!(q(PlaylogFilter { item_id: Some("item-3".into()), ..Default::default() }), 2);
        let base = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let since = Some(base + chrono::Duration::minutes(3));
        let until = Some(base + chrono::Duration::minutes(5));
        assert_eq!(q(PlaylogFilter { since, until, ..Default::default() }), 4);
        assert_eq!(q(PlaylogFilter { limit: Some(3), ..Default::default() }), 3);
        // Pages: each starts after the last record of the one before, none twice.
        let all = store.playlog(&PlaylogFilter::default()).unwrap();
        let mut paged = Vec::new();
        let mut after = None;
        loop {
            let page = store
                .playlog(&PlaylogFilter {
                    limit: Some(2),
                    after: after.clone(),
                    ..Default::default()
                })
                .unwrap();
            let Some(last) = page.last() else { break };
            after = Some(crate::protocol::PlaylogCursor {
                planned: last.entry.planned,
                station: last.station.clone(),
                seq: last.seq,
            });
            paged.extend(page);
        }
        assert_eq!(paged, all);
        assert_eq!(q(PlaylogFilter { limit: Some(u64::MAX), ..Default::default() }), all.len());
    }
}
