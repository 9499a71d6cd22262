//! Urgent bulletins on PostgreSQL: the signed bulletins, the one event stream every
//! station follows, and the delivery states — shared by every central replica on the
//! database. What an append does, in which order, is [`append_event`] (shared with the
//! SQLite store); here are PostgreSQL's statements for it, and [`Feed`]: how a replica
//! hears, within milliseconds, that another one appended.
//!
//! Numbering under concurrent writers: every append takes one transaction-scoped
//! advisory lock ([`APPEND_LOCK`]) before it reads the newest number, and holds it until
//! its commit. So two replicas never take the same number, and event `n + 1` is never
//! committed before event `n` (a reader that sees `n + 1` sees `n`): a station that
//! resumes after `n` misses nothing. A lock rather than a counter table keeps the tables
//! the SQLite store's, column for column (for `loa central migrate`), and the number
//! follows whatever rows a migration copied in.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, mpsc};
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::{Client, Transaction};

use super::{Connector, StoreError};
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

/// The channel an append notifies at its commit, with the event number as payload.
pub(super) const CHANNEL: &str = "loa_bulletin_events";

/// An arbitrary, fixed key for `pg_advisory_xact_lock`: one append at a time.
const APPEND_LOCK: i64 = 0x6c6f_615f_6275_6c6c; // "loa_bull"

/// How often the listening thread looks up from its connection to see whether the store
/// was dropped.
const LISTEN_WAKE: Duration = Duration::from_millis(500);

/// Longest wait before connecting the listener again after a failure.
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(5);

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
        self.0.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &row.seq.to_string()])?;
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

/// The store's news of appended events ([`crate::store::Store::bulletin_feed`]): one
/// dedicated connection, on a thread of its own, `LISTEN`s on [`CHANNEL`] and hands each
/// notification's event number to every subscriber. Started by the first subscriber;
/// ends (within [`LISTEN_WAKE`]) once the store is dropped.
pub(super) struct Feed {
    connector: Connector,
    subscribers: Mutex<Subscribers>,
    started: Once,
    stopped: AtomicBool,
}

#[derive(Default)]
struct Subscribers {
    senders: Vec<mpsc::Sender<u64>>,
    /// Whether the connection is listening now.
    listening: bool,
}

impl Feed {
    pub(super) fn new(connector: Connector) -> Arc<Self> {
        Arc::new(Self {
            connector,
            subscribers: Mutex::new(Subscribers::default()),
            started: Once::new(),
            stopped: AtomicBool::new(false),
        })
    }

    /// A new receiver of the feed. Its first message, `0`, comes once the store listens:
    /// every append committed after that is announced by its number.
    pub(super) fn subscribe(self: &Arc<Self>) -> mpsc::Receiver<u64> {
        let (tx, rx) = mpsc::channel();
        {
            let mut subscribers = self.lock();
            if subscribers.listening {
                let _ = tx.send(0);
            }
            subscribers.senders.push(tx);
        }
        self.started.call_once(|| {
            let feed = self.clone();
            let spawned = std::thread::Builder::new()
                .name("loa-bulletin-listen".into())
                .spawn(move || feed.listen());
            if let Err(e) = spawned {
                tracing::error!("cannot start the bulletin listener: {e}; polling only");
            }
        });
        rx
    }

    /// Ends the listening thread (the store is being dropped).
    pub(super) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Subscribers> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sends `seq` to every subscriber still there; `listening` says whether the
    /// connection listens from now on.
    fn publish(&self, seq: u64, listening: bool) {
        let mut subscribers = self.lock();
        subscribers.listening = listening;
        subscribers.senders.retain(|s| s.send(seq).is_ok());
    }

    /// Connects, listens and relays until the store is dropped, connecting again (with
    /// backoff) whenever the connection fails. Every (re)connection is announced as `0`:
    /// a notification sent while nobody listened is lost, so subscribers load to be sure.
    fn listen(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        while !self.stopped.load(Ordering::Relaxed) {
            let connected = self.connector.client().and_then(|mut client| {
                client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
                Ok(client)
            });
            match connected {
                Ok(mut client) => {
                    backoff = Duration::from_millis(100);
                    self.publish(0, true);
                    if let Err(e) = self.relay(&mut client) {
                        tracing::warn!("bulletin listener: {e}; connecting again");
                    }
                    self.lock().listening = false;
                }
                Err(e) => {
                    tracing::warn!("bulletin listener cannot connect: {e}; trying again");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
                }
            }
        }
    }

    /// Hands on notifications until the connection closes or the store is dropped.
    fn relay(&self, client: &mut Client) -> Result<(), postgres::Error> {
        use postgres::fallible_iterator::FallibleIterator;
        while !self.stopped.load(Ordering::Relaxed) {
            {
                let mut notifications = client.notifications();
                let mut waiting = notifications.timeout_iter(LISTEN_WAKE);
                while let Some(note) = waiting.next()? {
                    self.publish(note.payload().parse().unwrap_or(0), true);
                }
            }
            if client.is_closed() {
                return Ok(());
            }
        }
        Ok(())
    }
}
