//! Urgent bulletins on PostgreSQL: the signed bulletins, the one event stream every
//! station follows, and the delivery states — shared by every central replica on the
//! database. What an append does, in which order, is [`append_event`] (shared with the
//! SQLite store); here are PostgreSQL's statements for it. Each commit is announced on
//! [`notify::BULLETIN_CHANNEL`], so other replicas hear of it within milliseconds.
//!
//! Numbering under concurrent writers: every append takes one transaction-scoped
//! advisory lock ([`APPEND_LOCK`]) before it reads the newest number, and holds it until
//! its commit. So two replicas never take the same number, and event `n + 1` is never
//! committed before event `n` (a reader that sees `n + 1` sees `n`): a station that
//! resumes after `n` misses nothing. A lock rather than a counter table keeps the tables
//! the SQLite store's, column for column (for `loa central migrate`), and the number
//! follows whatever rows a migration copied in.

use chrono::{DateTime, Utc};
use postgres::{Client, Transaction};

use super::{StoreError, notify};
use crate::protocol::DeliveryReport;
use crate::store::bulletins::{
    EventColumns, EventWriter, SELECT_BULLETINS, append_event, bulletin_row, delivery_columns,
    delivery_row, event_row,
};
use crate::store::{BulletinEventRow, DeliveryBatch, EventSubject, SignEvent, StoredBulletin};

pub(super) const SCHEMA: &str = "
CREATE TABLE bulletins (
    id TEXT PRIMARY KEY,
    doc_json TEXT NOT NULL,
    issued_by TEXT NOT NULL,
    cancelled_at TEXT
);
CREATE TABLE bulletin_events (
    seq BIGINT PRIMARY KEY,
    bulletin_id TEXT NOT NULL,
    envelope_json TEXT NOT NULL,
    targets_json TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX bulletin_events_by_bulletin ON bulletin_events (bulletin_id, seq);
CREATE TABLE bulletin_deliveries (
    bulletin_id TEXT NOT NULL,
    station_id TEXT NOT NULL,
    state TEXT NOT NULL,
    at TEXT NOT NULL,
    latency_ms BIGINT,
    reason TEXT,
    received_at TEXT NOT NULL,
    reason_code TEXT,
    PRIMARY KEY (bulletin_id, station_id, state)
);
";

/// An arbitrary, fixed key for `pg_advisory_xact_lock`: one append at a time.
const APPEND_LOCK: i64 = 0x6c6f_615f_6275_6c6c; // "loa_bull"

/// PostgreSQL's statements for [`append_event`], inside one transaction.
struct PgWriter<'a, 'b>(&'a mut Transaction<'b>);

impl EventWriter for PgWriter<'_, '_> {
    fn newest(&mut self) -> Result<i64, StoreError> {
        // The lock first: the MAX below is then read after every earlier append's commit
        // (READ COMMITTED takes a fresh snapshot per statement).
        self.0.execute("SELECT pg_advisory_xact_lock($1)", &[&APPEND_LOCK])?;
        Ok(self.0.query_one("SELECT COALESCE(MAX(seq), 0) FROM bulletin_events", &[])?.get(0))
    }
    fn cancel(&mut self, id: &str, at: &str) -> Result<bool, StoreError> {
        // Conditional: of two cancels at once (under the lock anyway), one changes it.
        let changed = self.0.execute(
            "UPDATE bulletins SET cancelled_at = $2 WHERE id = $1 AND cancelled_at IS NULL",
            &[&id, &at],
        )?;
        Ok(changed == 1)
    }
    fn insert_bulletin(&mut self, id: &str, doc_json: &str, by: &str) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO bulletins (id, doc_json, issued_by) VALUES ($1, $2, $3)",
            &[&id, &doc_json, &by],
        )?;
        Ok(())
    }
    fn insert_event(&mut self, row: &EventColumns<'_>) -> Result<(), StoreError> {
        self.0.execute(
            "INSERT INTO bulletin_events (seq, bulletin_id, envelope_json, targets_json, expires_at) VALUES ($1, $2, $3, $4, $5)",
            &[&row.seq, &row.bulletin_id, &row.envelope_json, &row.targets_json, &row.expires_at],
        )?;
        // Sent by the server at commit, and only if it commits.
        self.0.execute(
            "SELECT pg_notify($1, $2)",
            &[&notify::BULLETIN_CHANNEL, &row.seq.to_string()],
        )?;
        Ok(())
    }
}

pub(super) fn append_bulletin_event(
    c: &mut Client,
    subject: EventSubject<'_>,
    targets: &[String],
    expires_at: DateTime<Utc>,
    sign: SignEvent<'_>,
) -> Result<Option<BulletinEventRow>, StoreError> {
    let mut tx = c.transaction()?;
    let row = append_event(&mut PgWriter(&mut tx), subject, targets, expires_at, sign)?;
    if row.is_some() {
        tx.commit()?;
    }
    Ok(row)
}

pub(super) fn bulletin_events_after(
    c: &mut Client,
    after: u64,
) -> Result<Vec<BulletinEventRow>, StoreError> {
    let after = i64::try_from(after).unwrap_or(i64::MAX);
    c.query(
        "SELECT seq, bulletin_id, envelope_json, targets_json, expires_at FROM bulletin_events WHERE seq > $1 ORDER BY seq",
        &[&after],
    )?
    .iter()
    .map(|r| event_row(r.get(0), r.get(1), r.get(2), r.get(3), r.get(4)))
    .collect()
}

pub(super) fn bulletin(c: &mut Client, id: &str) -> Result<Option<StoredBulletin>, StoreError> {
    c.query_opt("SELECT doc_json, issued_by, cancelled_at FROM bulletins WHERE id = $1", &[&id])?
        .map(|r| bulletin_row(r.get(0), r.get(1), r.get(2)))
        .transpose()
}

pub(super) fn bulletins(c: &mut Client) -> Result<Vec<StoredBulletin>, StoreError> {
    c.query(SELECT_BULLETINS, &[])?
        .iter()
        .map(|r| bulletin_row(r.get(0), r.get(1), r.get(2)))
        .collect()
}

pub(super) fn put_deliveries(c: &mut Client, batches: &[DeliveryBatch]) -> Result<(), StoreError> {
    let rows = delivery_columns(batches);
    if rows.is_empty() {
        return Ok(());
    }
    // One statement for the whole group commit (thousands of reports after a push to
    // the province), rows in key order so concurrent writers lock them in one order;
    // ON CONFLICT DO NOTHING keeps the first report of a state, whichever replica
    // committed it.
    let column = |f: fn(&_) -> String| rows.iter().map(f).collect::<Vec<String>>();
    let bulletin = column(|r| r.bulletin_id.to_string());
    let station = column(|r| r.station_id.to_string());
    let state = column(|r| r.state.to_string());
    let at = column(|r| r.at.clone());
    let received = column(|r| r.received_at.clone());
    let latency: Vec<Option<i64>> = rows.iter().map(|r| r.latency_ms).collect();
    let reason: Vec<Option<&str>> = rows.iter().map(|r| r.reason).collect();
    let code: Vec<Option<&str>> = rows.iter().map(|r| r.reason_code).collect();
    let mut tx = c.transaction()?;
    tx.execute(
        "INSERT INTO bulletin_deliveries (bulletin_id, station_id, state, at, latency_ms, reason, received_at, reason_code)
         SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::bigint[], $6::text[], $7::text[], $8::text[])
         ON CONFLICT DO NOTHING",
        &[&bulletin, &station, &state, &at, &latency, &reason, &received, &code],
    )?;
    tx.commit()?;
    Ok(())
}

pub(super) fn deliveries(
    c: &mut Client,
    bulletin_id: &str,
) -> Result<Vec<(String, DeliveryReport)>, StoreError> {
    c.query(
        "SELECT station_id, state, at, latency_ms, reason, reason_code FROM bulletin_deliveries WHERE bulletin_id = $1 ORDER BY station_id COLLATE \"C\", state COLLATE \"C\"",
        &[&bulletin_id],
    )?
    .iter()
    .map(|r| {
        let at: &str = r.get(2);
        delivery_row(bulletin_id, r.get(0), r.get(1), at, r.get(3), r.get(4), r.get(5))
    })
    .collect()
}
