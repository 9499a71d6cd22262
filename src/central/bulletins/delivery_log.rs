//! Durable storage of the stations' bulletin delivery reports, with group commit.
//!
//! A push to the whole province makes every station report within the same second or
//! two — delivered, verified, started, finished: thousands of small writes at once, each
//! of which must be on disk before central answers it (a station resends what was not
//! acknowledged; central never acknowledges what it did not store). One fsync per report
//! would serialise the fleet behind the disk and fill the runtime's blocking pool with
//! threads waiting on one lock. So one writer thread owns its own connection, takes every
//! report queued since its last commit, writes them in one transaction (one fsync) and
//! only then answers each waiting request, success or error alike.

use std::path::Path;
use std::sync::mpsc;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, params};

use super::BulletinError;
use crate::protocol::DeliveryReport;

/// Most reports one transaction takes, so an answer is never held back indefinitely by a
/// queue that keeps refilling.
const MAX_BATCH: usize = 4096;

/// The answer a waiting request gets: the commit's error text when it failed.
type Answer = Result<(), String>;

struct Pending {
    station: String,
    reports: Vec<DeliveryReport>,
    received_at: DateTime<Utc>,
    answer: tokio::sync::oneshot::Sender<Answer>,
}

/// Hands reports to the writer thread; the thread ends when this is dropped.
pub struct DeliveryLog {
    queue: mpsc::Sender<Pending>,
}

impl DeliveryLog {
    /// Opens its own connection to the bulletin database at `path` (tables already made
    /// by the hub) and starts the writer thread.
    pub fn open(path: &Path) -> Result<Self, BulletinError> {
        let shown = path.display().to_string();
        let open = || -> Result<Connection, rusqlite::Error> {
            let conn = Connection::open(path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.busy_timeout(std::time::Duration::from_secs(5))?;
            Ok(conn)
        };
        let conn = open().map_err(|source| BulletinError::Open { path: shown.clone(), source })?;
        let (queue, pending) = mpsc::channel();
        std::thread::Builder::new()
            .name("loa-deliveries".into())
            .spawn(move || write_batches(conn, pending))
            .map_err(|e| {
                BulletinError::Corrupt(format!("cannot start the delivery writer: {e}"))
            })?;
        Ok(Self { queue })
    }

    /// Stores `reports` from `station`, all or none; returns once they are committed to
    /// disk. A state already reported keeps its first report.
    pub async fn put(
        &self,
        station: &str,
        reports: Vec<DeliveryReport>,
        received_at: DateTime<Utc>,
    ) -> Result<(), BulletinError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let pending = Pending { station: station.to_string(), reports, received_at, answer };
        let stopped = || BulletinError::Corrupt("the delivery writer has stopped".into());
        self.queue.send(pending).map_err(|_| stopped())?;
        answered.await.map_err(|_| stopped())?.map_err(BulletinError::Corrupt)
    }
}

fn write_batches(mut conn: Connection, pending: mpsc::Receiver<Pending>) {
    while let Ok(first) = pending.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH {
            match pending.try_recv() {
                Ok(more) => batch.push(more),
                Err(_) => break,
            }
        }
        let result = commit(&mut conn, &batch).map_err(|e| {
            tracing::error!("storing {} bulletin delivery reports: {e}", batch.len());
            format!("bulletin database: {e}")
        });
        for p in batch {
            let _ = p.answer.send(result.clone());
        }
    }
}

fn commit(conn: &mut Connection, batch: &[Pending]) -> Result<(), rusqlite::Error> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(
            "INSERT OR IGNORE INTO bulletin_deliveries (bulletin_id, station_id, state, at, latency_ms, reason, received_at, reason_code) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for p in batch {
            for report in &p.reports {
                insert.execute(params![
                    report.bulletin_id,
                    p.station,
                    report.state.as_str(),
                    crate::protocol::time_text(report.at),
                    report.latency_ms,
                    report.reason,
                    crate::protocol::time_text(p.received_at),
                    report.reason_code,
                ])?;
            }
        }
    }
    tx.commit()
}
