//! Durable storage of the stations' bulletin delivery reports, with group commit.
//!
//! A push to the whole province makes every station report within the same second or
//! two — delivered, verified, started, finished: thousands of small writes at once, each
//! of which must be committed before central answers it (a station resends what was not
//! acknowledged; central never acknowledges what it did not store). One commit per
//! report would serialise the fleet behind the disk (or the database's round trips) and
//! fill the runtime's blocking pool with threads waiting on one lock. So one writer
//! thread takes every report queued since its last commit, stores them in one
//! transaction of the store ([`Store::put_deliveries`]) and only then answers each
//! waiting request, success or error alike.

use std::sync::{Arc, mpsc};

use chrono::{DateTime, Utc};

use super::BulletinError;
use crate::protocol::DeliveryReport;
use crate::store::{DeliveryBatch, Store, StoreError};

/// Most reports one transaction takes, so an answer is never held back indefinitely by a
/// queue that keeps refilling.
const MAX_BATCH: usize = 4096;

/// Why a commit failed, as every request that waited on it is told: an unreachable
/// database stays "unavailable" (so each station is told to try again, `503`).
#[derive(Debug, Clone)]
enum Failed {
    Unavailable(String),
    Other(String),
}

/// The answer a waiting request gets.
type Answer = Result<(), Failed>;

struct Pending {
    batch: DeliveryBatch,
    answer: tokio::sync::oneshot::Sender<Answer>,
}

/// Hands reports to the writer thread; the thread ends when this is dropped.
pub struct DeliveryLog {
    queue: mpsc::Sender<Pending>,
}

impl DeliveryLog {
    /// Starts the writer thread over `store`.
    pub fn start(store: Arc<dyn Store>) -> Result<Self, BulletinError> {
        let (queue, pending) = mpsc::channel();
        std::thread::Builder::new()
            .name("loa-deliveries".into())
            .spawn(move || write_batches(&*store, pending))
            .map_err(|e| {
                BulletinError::Corrupt(format!("cannot start the delivery writer: {e}"))
            })?;
        Ok(Self { queue })
    }

    /// Stores `reports` from `station`, all or none; returns once they are committed.
    /// A state already reported keeps its first report.
    pub async fn put(
        &self,
        station: &str,
        reports: Vec<DeliveryReport>,
        received_at: DateTime<Utc>,
    ) -> Result<(), BulletinError> {
        let (answer, answered) = tokio::sync::oneshot::channel();
        let batch = DeliveryBatch { station: station.to_string(), reports, received_at };
        let stopped = || BulletinError::Deliveries("the delivery writer has stopped".into());
        self.queue.send(Pending { batch, answer }).map_err(|_| stopped())?;
        match answered.await.map_err(|_| stopped())? {
            Ok(()) => Ok(()),
            Err(Failed::Unavailable(why)) => Err(StoreError::Unavailable(why).into()),
            Err(Failed::Other(why)) => Err(BulletinError::Deliveries(why)),
        }
    }
}

fn write_batches(store: &dyn Store, pending: mpsc::Receiver<Pending>) {
    while let Ok(first) = pending.recv() {
        let mut waiting = vec![first];
        while waiting.len() < MAX_BATCH {
            match pending.try_recv() {
                Ok(more) => waiting.push(more),
                Err(_) => break,
            }
        }
        let (batches, answers): (Vec<DeliveryBatch>, Vec<_>) =
            waiting.into_iter().map(|p| (p.batch, p.answer)).unzip();
        let result = store.put_deliveries(&batches).map_err(|e| {
            tracing::error!("storing {} bulletin delivery reports: {e}", batches.len());
            match e {
                StoreError::Unavailable(why) => Failed::Unavailable(why),
                other => Failed::Other(other.to_string()),
            }
        });
        for answer in answers {
            let _ = answer.send(result.clone());
        }
    }
}
