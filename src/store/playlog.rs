//! The playlog at central: every ledger record stations report, stored once per
//! `(station, seq)`, with the station's hash chain checked as records arrive.
//!
//! Acknowledgement is the contiguous prefix: `acked_through` only moves past a sequence
//! once every record before it is stored, so a station never marks a record acknowledged
//! that central does not hold. Problems in a chain (a hash that does not match its
//! content, a link to a different previous hash, a second different record under one
//! sequence) are kept in `playlog_issues`; gaps are derived from what is stored.
//!
//! The chain check itself ([`check`]) is pure: it takes what was held around a batch
//! before it and decides what to store and what to flag, so the SQLite store here and
//! the PostgreSQL one (`pg::playlog`) judge a chain the same way, and PostgreSQL can
//! read and write a whole batch in a few round trips.

use std::collections::HashMap;

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

/// A sequence number as an SQL integer. Refused at `i64::MAX` and above (no station
/// gets there) so `seq + 1` stays an integer in every query.
pub(super) fn seq_sql(seq: u64) -> Result<i64, StoreError> {
    i64::try_from(seq)
        .ok()
        .filter(|s| *s < i64::MAX)
        .ok_or_else(|| StoreError::Corrupt(format!("playlog sequence {seq} is out of range")))
}

/// A stored sequence number or count read back.
pub(super) fn seq_read(value: i64) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("playlog number {value}")))
}

/// A record as stored: as the station wrote it, since `acked` is the station's
/// bookkeeping, not content.
fn stored_json(record: &Record) -> Result<String, StoreError> {
    if record.acked {
        serde_json::to_string(&Record { acked: false, ..record.clone() })
    } else {
        serde_json::to_string(record)
    }
    .map_err(corrupt)
}

/// A stored record read back: central holds it, so it is acknowledged.
pub(super) fn record_from_json(json: &str) -> Result<Record, StoreError> {
    let mut record: Record = serde_json::from_str(json).map_err(corrupt)?;
    record.acked = true;
    Ok(record)
}

/// What the chain check needs of a record already stored.
pub(super) struct Held {
    pub(super) hash: String,
    pub(super) prev_hash: String,
    pub(super) record_json: String,
}

/// A problem found in a chain, for `playlog_issues`.
#[derive(Debug)]
pub(super) struct Flag {
    pub(super) seq: u64,
    pub(super) kind: &'static str,
    pub(super) detail: String,
}

/// What a batch does to a station's playlog, decided before anything is written.
pub(super) struct Checked {
    /// The records to store, by position in the batch: the first of each sequence
    /// central did not hold.
    pub(super) new: Vec<usize>,
    /// Each record of the batch as stored ([`stored_json`]), by position.
    pub(super) jsons: Vec<String>,
    /// Records of the batch central already held (or held earlier in the batch).
    pub(super) duplicates: u64,
    /// At most one per `(seq, kind)`, the first found (as the table keeps the first).
    pub(super) flags: Vec<Flag>,
}

impl Checked {
    /// The answer to the station once the prefix is known.
    pub(super) fn ack(&self, acked_through: u64) -> PlaylogAck {
        let stored = u64::try_from(self.new.len()).unwrap_or(u64::MAX);
        PlaylogAck { acked_through, stored, duplicates: self.duplicates }
    }
}

/// The largest sequence number a record may have: its successor's number must still be
/// below `i64::MAX` ([`seq_sql`]). No station gets near it; a record past it is refused
/// by its own number before anything is read or written.
pub(super) const MAX_SEQ: u64 = i64::MAX as u64 - 2;

/// The sequences whose stored records [`check`] needs: each record's own (is it a
/// duplicate?), its predecessor's and its successor's (do the links match?). Refuses a
/// batch with a record past [`MAX_SEQ`].
pub(super) fn neighbours(records: &[Record]) -> Result<Vec<u64>, StoreError> {
    if let Some(r) = records.iter().find(|r| r.seq > MAX_SEQ) {
        return Err(StoreError::Corrupt(format!(
            "playlog record {} of {}: sequence numbers stop at {MAX_SEQ}",
            r.seq, r.station
        )));
    }
    let mut seqs: Vec<u64> = records
        .iter()
        .flat_map(|r| [r.seq.checked_sub(1), Some(r.seq), r.seq.checked_add(1)])
        .flatten()
        .collect();
    seqs.sort_unstable();
    seqs.dedup();
    Ok(seqs)
}

/// Checks a batch against what was `held` (of [`neighbours`]) before it, as if its
/// records were stored one after another: a record stored earlier in the batch counts
/// as held for the ones after it.
pub(super) fn check(
    station: &str,
    records: &[Record],
    held: &HashMap<u64, Held>,
) -> Result<Checked, StoreError> {
    let jsons = records.iter().map(stored_json).collect::<Result<Vec<_>, _>>()?;
    // (hash, prev_hash, record_json) by sequence: what is held, then what is stored.
    let mut state: HashMap<u64, (&str, &str, &str)> = held
        .iter()
        .map(|(seq, h)| (*seq, (h.hash.as_str(), h.prev_hash.as_str(), h.record_json.as_str())))
        .collect();
    let mut new = Vec::new();
    let mut duplicates = 0u64;
    let mut flags: Vec<Flag> = Vec::new();
    let mut flag = |seq: u64, kind: &'static str, detail: String| {
        if !flags.iter().any(|f| f.seq == seq && f.kind == kind) {
            tracing::warn!(station, seq, kind, "playlog chain: {detail}");
            flags.push(Flag { seq, kind, detail });
        }
    };
    // The previous record of this batch, so a contiguous batch checks its links in memory.
    let mut previous: Option<(u64, &str)> = None;
    for (i, record) in records.iter().enumerate() {
        let json = jsons[i].as_str();
        let in_batch_prev = previous.filter(|(seq, _)| seq + 1 == record.seq).map(|(_, h)| h);
        previous = Some((record.seq, record.hash.as_str()));
        if let Some((_, _, held_json)) = state.get(&record.seq) {
            duplicates += 1;
            if *held_json != json {
                flag(
                    record.seq,
                    "conflict",
                    "a different record was sent under a sequence already stored (the first is kept)".into(),
                );
            }
            continue;
        }
        state.insert(record.seq, (record.hash.as_str(), record.prev_hash.as_str(), json));
        new.push(i);
        if !record.hash_is_valid() {
            flag(
                record.seq,
                "break",
                "hash does not match the record's content (altered after it was written)".into(),
            );
        }
        let expected_prev = if record.seq <= 1 {
            Some(GENESIS)
        } else if let Some(h) = in_batch_prev {
            Some(h)
        } else {
            state.get(&(record.seq - 1)).map(|(hash, _, _)| *hash)
        };
        if let Some(prev) = expected_prev
            && prev != record.prev_hash
        {
            flag(
                record.seq,
                "break",
                format!(
                    "links to {} but record {} has hash {prev}",
                    record.prev_hash,
                    record.seq.saturating_sub(1)
                ),
            );
        }
        // A record that arrived earlier than its predecessor: check that link too.
        let next_in_batch =
            records.get(i + 1).is_some_and(|n| Some(n.seq) == record.seq.checked_add(1));
        if !next_in_batch
            && let Some(next) = record.seq.checked_add(1)
            && let Some((_, next_prev, _)) = state.get(&next)
            && *next_prev != record.hash
        {
            flag(
                next,
                "break",
                format!("links to {next_prev} but record {} has hash {}", record.seq, record.hash),
            );
        }
    }
    Ok(Checked { new, jsons, duplicates, flags })
}

/// `through` moved over the records of the batch that continue the prefix, without
/// asking the database (the rest of the prefix is found in what is stored).
pub(super) fn batch_prefix(mut through: u64, records: &[Record]) -> u64 {
    for record in records {
        if Some(record.seq) == through.checked_add(1) {
            through += 1;
        }
    }
    through
}

fn stored_hash(
    tx: &Transaction<'_>,
    station: &str,
    seq: u64,
) -> Result<Option<String>, StoreError> {
    Ok(tx
        .prepare_cached("SELECT hash FROM playlog WHERE station_id = ?1 AND seq = ?2")?
        .query_row(params![station, seq_sql(seq)?], |r| r.get(0))
        .optional()?)
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
    let mut held = HashMap::new();
    for seq in neighbours(records)? {
        let row = tx
            .prepare_cached(
                "SELECT hash, prev_hash, record_json FROM playlog
                 WHERE station_id = ?1 AND seq = ?2",
            )?
            .query_row(params![station, seq_sql(seq)?], |r| {
                Ok(Held { hash: r.get(0)?, prev_hash: r.get(1)?, record_json: r.get(2)? })
            })
            .optional()?;
        if let Some(row) = row {
            held.insert(seq, row);
        }
    }
    let checked = check(station, records, &held)?;
    for &i in &checked.new {
        let record = &records[i];
        tx.prepare_cached(
            "INSERT OR IGNORE INTO playlog
             (station_id, seq, item_id, planned, outcome, hash, prev_hash, record_json, received_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        )?
        .execute(params![
            station,
            seq_sql(record.seq)?,
            record.entry.item_id,
            time_text(record.entry.planned),
            record.entry.outcome.as_str(),
            record.hash,
            record.prev_hash,
            checked.jsons[i],
            now_text,
        ])?;
    }
    for f in &checked.flags {
        tx.prepare_cached(
            "INSERT OR IGNORE INTO playlog_issues (station_id, seq, kind, detail, found_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
        )?
        .execute(params![station, seq_sql(f.seq)?, f.kind, f.detail, now_text])?;
    }
    let acked: Option<i64> = tx
        .query_row(
            "SELECT acked_through FROM playlog_progress WHERE station_id = ?1",
            [station],
            |r| r.get(0),
        )
        .optional()?;
    let mut through = batch_prefix(acked.map(seq_read).transpose()?.unwrap_or(0), records);
    while stored_hash(&tx, station, through + 1)?.is_some() {
        through += 1;
    }
    tx.execute(
        "INSERT INTO playlog_progress (station_id, acked_through, last_received) VALUES (?1, ?2, ?3)
         ON CONFLICT (station_id) DO UPDATE
         SET acked_through = excluded.acked_through, last_received = excluded.last_received",
        params![station, seq_sql(through)?, now_text],
    )?;
    tx.commit()?;
    Ok(checked.ack(through))
}

/// The query for `filter`'s records (`SELECT record_json …`, by planned time then
/// station and sequence) and its text arguments, with placeholders `{mark}1`, `{mark}2`…
/// (`?` for SQLite, `$` for PostgreSQL); `None` when nothing can match.
pub(super) fn filter_sql(filter: &PlaylogFilter, mark: char) -> Option<(String, Vec<String>)> {
    let mut sql = String::from("SELECT record_json FROM playlog WHERE 1 = 1");
    let mut args: Vec<String> = Vec::new();
    if let Some(stations) = &filter.stations {
        if stations.is_empty() {
            return None;
        }
        let mut marks = Vec::new();
        for s in stations {
            args.push(s.clone());
            marks.push(format!("{mark}{}", args.len()));
        }
        sql.push_str(&format!(" AND station_id IN ({})", marks.join(", ")));
    }
    let mut condition = |sql_part: &str, value: String| {
        args.push(value);
        sql.push_str(&format!(" AND {sql_part} {mark}{}", args.len()));
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
        // The sequence goes as text (every argument does) and is compared as a number.
        sql.push_str(&format!(
            " AND (planned, station_id, seq) > ({mark}{}, {mark}{}, CAST(CAST({mark}{n} AS TEXT) AS BIGINT))",
            n - 2,
            n - 1
        ));
    }
    sql.push_str(" ORDER BY planned, station_id, seq");
    if let Some(limit) = filter.limit {
        sql.push_str(&format!(" LIMIT {}", limit.min(i64::MAX as u64)));
    }
    Some((sql, args))
}

/// Records matching `filter`, by planned time then station and sequence.
pub(super) fn query(conn: &Connection, filter: &PlaylogFilter) -> Result<Vec<Record>, StoreError> {
    let Some((sql, args)) = filter_sql(filter, '?') else { return Ok(Vec::new()) };
    let mut stmt = conn.prepare(&sql)?;
    let rows = stmt
        .query_map(rusqlite::params_from_iter(args.iter()), |r| r.get::<_, String>(0))?
        .collect::<Result<Vec<_>, _>>()?;
    rows.iter().map(|json| record_from_json(json)).collect()
}

/// What a store read for [`summary`]: the progress row (acked through, last received),
/// how many records and the highest sequence, and the flagged issues as
/// `(seq, kind, detail)` by sequence and kind.
pub(super) struct SummaryRows {
    pub(super) progress: Option<(i64, String)>,
    pub(super) records: i64,
    pub(super) max_seq: Option<i64>,
    pub(super) flagged: Vec<(i64, String, String)>,
}

/// The summary from what was read: a gap where the highest sequence is past the prefix,
/// then the flagged issues.
pub(super) fn summarise(rows: SummaryRows) -> Result<PlaylogSummary, StoreError> {
    let (acked, last) = rows.progress.unzip();
    let acked_through = acked.map(seq_read).transpose()?.unwrap_or(0);
    let max_seq = rows.max_seq.map(seq_read).transpose()?.unwrap_or(0);
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
    for (seq, kind, detail) in rows.flagged {
        issues.push(ChainIssue { seq: seq_read(seq)?, kind, detail });
    }
    let last_received = last
        .map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|t| t.to_utc())
                .map_err(|e| StoreError::Corrupt(format!("timestamp {t:?}: {e}")))
        })
        .transpose()?;
    Ok(PlaylogSummary {
        acked_through,
        max_seq,
        records: seq_read(rows.records)?,
        last_received,
        issues,
    })
}

/// How much of a station's playlog central holds, and what is wrong with its chain.
pub(super) fn summary(conn: &Connection, station: &str) -> Result<PlaylogSummary, StoreError> {
    let progress = conn
        .query_row(
            "SELECT acked_through, last_received FROM playlog_progress WHERE station_id = ?1",
            [station],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .optional()?;
    let (records, max_seq) = conn.query_row(
        "SELECT COUNT(*), MAX(seq) FROM playlog WHERE station_id = ?1",
        [station],
        |r| Ok((r.get(0)?, r.get(1)?)),
    )?;
    let mut stmt = conn.prepare(
        "SELECT seq, kind, detail FROM playlog_issues WHERE station_id = ?1 ORDER BY seq, kind",
    )?;
    let flagged = stmt
        .query_map([station], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    summarise(SummaryRows { progress, records, max_seq, flagged })
}
#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::super::contract::each_store;
    use super::super::{Station, Store};
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

    /// Stations `a` and `b`.
    fn stations(store: &dyn Store) {
        for id in ["a", "b"] {
            let s = Station { id: id.into(), name: id.into(), district: "D".into() };
            store.add_station(&s, &format!("token-{id}")).unwrap();
        }
    }

    #[test]
    fn same_batch_twice_is_stored_once_and_acked_the_same() {
        each_store(|store| {
            stations(store);
            let now = Utc::now();
            let records = chain("a", 10);
            let first = store.ingest_playlog("a", &records, now).unwrap();
            assert_eq!(first, PlaylogAck { acked_through: 10, stored: 10, duplicates: 0 });
            let again = store.ingest_playlog("a", &records, now).unwrap();
            assert_eq!(again, PlaylogAck { acked_through: 10, stored: 0, duplicates: 10 });
            let held = store.playlog(&PlaylogFilter::default()).unwrap();
            assert_eq!(held.len(), 10);
            assert_eq!(
                held.iter().map(|r| r.seq).collect::<Vec<_>>(),
                (1..=10).collect::<Vec<_>>()
            );
            assert!(held.iter().all(|r| r.acked && r.hash_is_valid()));
            let summary = store.playlog_summary("a").unwrap();
            assert_eq!((summary.acked_through, summary.max_seq, summary.records), (10, 10, 10));
            assert_eq!(summary.last_received.map(|t| t.timestamp()), Some(now.timestamp()));
            assert!(summary.issues.is_empty(), "{:?}", summary.issues);
        });
    }

    /// A sequence number past [`MAX_SEQ`] (2⁶³ − 3: its successor, which the chain check
    /// reads, must fit a BIGINT) is refused on both stores by its own number, before
    /// anything is written; `MAX_SEQ` itself is stored.
    #[test]
    fn a_sequence_past_the_stored_range_is_refused() {
        each_store(|store| {
            stations(store);
            let last = MAX_SEQ;
            let template = chain("a", 1).remove(0).entry;
            let fits = Record::chain("a", last, GENESIS, [template.clone()]);
            let past = Record::chain("a", last + 1, GENESIS, [template]);
            let err = store.ingest_playlog("a", &past, Utc::now()).unwrap_err();
            assert!(err.to_string().contains(&(last + 1).to_string()), "{err}");
            assert_eq!(store.playlog_summary("a").unwrap().records, 0, "nothing written");
            store.ingest_playlog("a", &fits, Utc::now()).unwrap();
            assert_eq!(store.playlog_summary("a").unwrap().max_seq, last);
        });
    }

    /// Two replicas ingesting the same upload at once (a station retrying on the other
    /// after a timeout): every record is stored exactly once, each counted once as
    /// stored over both answers, and both acknowledge the whole batch.
    #[test]
    fn two_replicas_ingesting_one_batch_at_once_store_each_record_once() {
        each_store(|store| {
            stations(store);
            let records = chain("a", 300);
            let now = Utc::now();
            let acks: Vec<PlaylogAck> = std::thread::scope(|scope| {
                let runs: Vec<_> = (0..2)
                    .map(|_| scope.spawn(|| store.ingest_playlog("a", &records, now).unwrap()))
                    .collect();
                runs.into_iter().map(|r| r.join().unwrap()).collect()
            });
            assert_eq!(acks.iter().map(|a| a.stored).sum::<u64>(), 300, "{acks:?}");
            assert_eq!(acks.iter().map(|a| a.duplicates).sum::<u64>(), 300, "{acks:?}");
            assert!(acks.iter().all(|a| a.acked_through == 300), "{acks:?}");
            let summary = store.playlog_summary("a").unwrap();
            assert_eq!((summary.acked_through, summary.records), (300, 300));
            assert!(summary.issues.is_empty(), "{:?}", summary.issues);
        });
    }

    #[test]
    fn ack_stops_at_a_gap_until_it_is_filled() {
        each_store(|store| {
            stations(store);
            let now = Utc::now();
            let records = chain("a", 6);
            let ack =
                store.ingest_playlog("a", &[&records[..2], &records[3..]].concat(), now).unwrap();
            assert_eq!(ack.acked_through, 2);
            let summary = store.playlog_summary("a").unwrap();
            assert_eq!(summary.issues[0].kind, "gap");
            assert_eq!(summary.issues[0].seq, 3);
            assert_eq!((summary.max_seq, summary.records), (6, 5));
            let ack = store.ingest_playlog("a", &records[2..3], now).unwrap();
            assert_eq!(ack, PlaylogAck { acked_through: 6, stored: 1, duplicates: 0 });
            assert!(store.playlog_summary("a").unwrap().issues.is_empty());
            // Out of order within a batch: the prefix still reaches the end.
            let more = chain("b", 4);
            let shuffled = vec![more[3].clone(), more[0].clone(), more[2].clone(), more[1].clone()];
            let ack = store.ingest_playlog("b", &shuffled, now).unwrap();
            assert_eq!(ack, PlaylogAck { acked_through: 4, stored: 4, duplicates: 0 });
            assert!(store.playlog_summary("b").unwrap().issues.is_empty());
        });
    }

    #[test]
    fn altered_and_relinked_records_are_flagged() {
        each_store(|store| {
            stations(store);
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
        });
    }

    /// A record that arrives before its predecessor is checked when the predecessor
    /// comes, from the other side of the link.
    #[test]
    fn a_late_predecessor_is_checked_against_its_successor() {
        each_store(|store| {
            stations(store);
            let now = Utc::now();
            let mut records = chain("a", 3);
            records[2].prev_hash = "cd".repeat(32);
            store.ingest_playlog("a", &records[2..], now).unwrap();
            assert_eq!(store.playlog_summary("a").unwrap().issues[0].kind, "gap");
            store.ingest_playlog("a", &records[..2], now).unwrap();
            let issues = store.playlog_summary("a").unwrap().issues;
            let kinds: Vec<(u64, &str)> = issues.iter().map(|i| (i.seq, i.kind.as_str())).collect();
            assert_eq!(kinds, [(3, "break")]);
        });
    }

    #[test]
    fn filters_select_by_station_time_outcome_and_item() {
        each_store(|store| {
            stations(store);
            let now = Utc::now();
            store.ingest_playlog("a", &chain("a", 6), now).unwrap();
            store.ingest_playlog("b", &chain("b", 4), now).unwrap();
            let q = |f: PlaylogFilter| store.playlog(&f).unwrap().len();
            assert_eq!(q(PlaylogFilter::default()), 10);
            let only_b = PlaylogFilter { stations: Some(vec!["b".into()]), ..Default::default() };
            assert_eq!(q(only_b), 4);
            assert_eq!(q(PlaylogFilter { stations: Some(vec![]), ..Default::default() }), 0);
            assert_eq!(
                q(PlaylogFilter { outcome: Some(Outcome::Played), ..Default::default() }),
                5
            );
            assert_eq!(
                q(PlaylogFilter { item_id: Some("item-3".into()), ..Default::default() }),
                2
            );
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
        });
    }

    #[test]
    fn a_station_with_no_playlog_has_an_empty_summary() {
        each_store(|store| {
            stations(store);
            let summary = store.playlog_summary("a").unwrap();
            assert_eq!((summary.acked_through, summary.max_seq, summary.records), (0, 0, 0));
            assert_eq!(summary.last_received, None);
            assert!(summary.issues.is_empty());
        });
    }
}
