//! CAP decisions one at a time across replicas, on PostgreSQL ([`Store::cap_turn`]).
//!
//! A turn is a session-level advisory lock ([`CAP_TURN_LOCK`]) taken on a connection
//! opened for that turn alone, never one of the pool's: the lock lives exactly as long
//! as that connection, so ending the turn is closing it — and if the replica dies
//! mid-decision, PostgreSQL ends the session and the turn with it. A pooled connection
//! would go back to the pool still holding the lock whenever an unlock failed.
//!
//! A turn is held while the bulletin is spoken and sent (seconds), longer than any
//! transaction here should stay open, hence a session lock and not a transaction's.
//! Waiting is bounded by `lock_timeout` ([`CAP_TURN_WAIT`]): past it the caller gets
//! [`StoreError::Busy`] (`503`; a feed tries again at its next poll).
//!
//! [`Store::cap_turn`]: crate::store::Store::cap_turn

use std::time::Duration;

use postgres::Client;
use postgres::error::SqlState;

use super::{Connector, PgStore, StoreError, off_runtime};
use crate::store::CapTurn;

/// An arbitrary, fixed key for `pg_advisory_lock`: one CAP decision at a time.
pub(super) const CAP_TURN_LOCK: i64 = 0x6c6f_615f_6361_7064; // "loa_capd"

/// How long a decision waits for another replica's to end. A decision takes seconds
/// (speech, signing, one transaction); one still running after this is stuck.
pub const CAP_TURN_WAIT: Duration = Duration::from_secs(30);

/// How a [`PgStore`] takes CAP turns: the database to open a connection to, and how
/// long to wait.
pub(super) struct CapTurns {
    connector: Connector,
    wait: Duration,
}

impl CapTurns {
    pub(super) fn new(connector: Connector) -> Self {
        CapTurns { connector, wait: CAP_TURN_WAIT }
    }

    /// Opens a connection and waits on it for the lock, off any async worker (the
    /// client is made and, on a failure, dropped here).
    pub(super) fn take(&self, shown: &str) -> Result<CapTurn, StoreError> {
        off_runtime(|| {
            let mut client = self.connector.client().map_err(|e| {
                StoreError::Unavailable(format!("cannot reach the database {shown}: {e}"))
            })?;
            // The lock's wait is bounded by lock_timeout alone (not the store's
            // statement_timeout, which may be shorter than the wait).
            let wait_ms = self.wait.as_millis().clamp(1, i32::MAX as u128);
            client.batch_execute(&format!(
                "SET statement_timeout = 0; SET lock_timeout = {wait_ms}"
            ))?;
            match client.execute("SELECT pg_advisory_lock($1)", &[&CAP_TURN_LOCK]) {
                Ok(_) => Ok(CapTurn::holding(Held(Some(client)))),
                Err(e) if e.code() == Some(&SqlState::LOCK_NOT_AVAILABLE) => {
                    Err(StoreError::Busy(format!(
                        "another central has been deciding a CAP alert for over {} s: \
                         send the alert again later (a feed is read again at its next poll)",
                        self.wait.as_secs_f64()
                    )))
                }
                Err(e) => Err(e.into()),
            }
        })
    }
}

impl PgStore {
    /// How long [`Store::cap_turn`](crate::store::Store::cap_turn) waits for another
    /// replica's decision to end (default [`CAP_TURN_WAIT`]).
    pub fn with_cap_turn_wait(mut self, wait: Duration) -> Self {
        self.cap_turns.wait = wait;
        self
    }
}

/// The connection holding the lock; dropping it closes the connection, which releases
/// the lock.
struct Held(Option<Client>);

impl Drop for Held {
    fn drop(&mut self) {
        let Some(client) = self.0.take() else { return };
        if tokio::runtime::Handle::try_current().is_err() {
            drop(client);
            return;
        }
        // Closing blocks on the client's own runtime, which tokio forbids on an async
        // worker (a decision ends there): close it on a plain thread instead, without
        // making the worker wait for it.
        std::thread::spawn(move || drop(client));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::time::Instant;

    use super::*;
    use crate::store::Store;
    use crate::testing::database::TestDatabase;

    /// Long enough for anything a test waits on; a failure, not a pause.
    const DEADLINE: Duration = Duration::from_secs(20);

    /// Backends waiting for the CAP lock (granted = false) or holding it (true).
    fn lock_holders(store: &PgStore, granted: bool) -> Vec<i32> {
        store
            .run(|c| {
                let rows = c.query(
                    "SELECT pid FROM pg_locks
                     WHERE locktype = 'advisory' AND granted = $2
                       AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
                       AND ((classid::bigint << 32) | objid::bigint) = $1",
                    &[&CAP_TURN_LOCK, &granted],
                )?;
                Ok(rows.iter().map(|r| r.get(0)).collect())
            })
            .unwrap()
    }

    /// Waits until `test` holds, or fails the test after [`DEADLINE`].
    fn until(what: &str, mut test: impl FnMut() -> bool) {
        let start = Instant::now();
        while !test() {
            assert!(start.elapsed() < DEADLINE, "{what}: not within {DEADLINE:?}");
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Starts taking `store`'s turn on a thread; the turn (or error) arrives on the
    /// channel, once the thread is waiting on the lock.
    fn take_on_thread(
        store: std::sync::Arc<PgStore>,
        watcher: &PgStore,
    ) -> mpsc::Receiver<Result<CapTurn, StoreError>> {
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(store.cap_turn());
        });
        until("the second replica waits for the lock", || !lock_holders(watcher, false).is_empty());
        rx
    }

    #[test]
    fn a_second_replica_waits_for_the_first_decision_to_end() {
        let database = TestDatabase::new();
        let a = PgStore::connect(&database.url).unwrap();
        let b = std::sync::Arc::new(PgStore::connect(&database.url).unwrap());
        let a_turn = a.cap_turn().unwrap();
        let b_turn = take_on_thread(b.clone(), &a);
        assert!(
            matches!(b_turn.try_recv(), Err(mpsc::TryRecvError::Empty)),
            "b got a turn while a held it"
        );
        drop(a_turn);
        let b_turn = b_turn.recv_timeout(DEADLINE).expect("b's turn").expect("b's turn");
        assert_eq!(lock_holders(&a, true).len(), 1, "only b holds it");
        // And back: a now waits for b.
        let a = std::sync::Arc::new(a);
        let a_turn = take_on_thread(a.clone(), &b);
        drop(b_turn);
        let _a_turn = a_turn.recv_timeout(DEADLINE).expect("a's turn").expect("a's turn");
    }

    #[test]
    fn a_replica_that_dies_holding_the_turn_releases_it() {
        let database = TestDatabase::new();
        let a = PgStore::connect(&database.url).unwrap();
        let b = std::sync::Arc::new(PgStore::connect(&database.url).unwrap());
        let a_turn = a.cap_turn().unwrap();
        let holder = lock_holders(&a, true);
        assert_eq!(holder.len(), 1);
        let b_turn = take_on_thread(b.clone(), &a);
        // The holder's session ends without an unlock, as when its process is killed.
        let ended: bool = a
            .run(|c| Ok(c.query_one("SELECT pg_terminate_backend($1)", &[&holder[0]])?.get(0)))
            .unwrap();
        assert!(ended);
        let _b_turn = b_turn.recv_timeout(DEADLINE).expect("b's turn").expect("b's turn");
        drop(a_turn); // its connection is already gone: nothing to close, no panic
    }

    #[test]
    fn a_wait_past_its_bound_is_busy() {
        let database = TestDatabase::new();
        let a = PgStore::connect(&database.url).unwrap();
        let b =
            PgStore::connect(&database.url).unwrap().with_cap_turn_wait(Duration::from_millis(200));
        let _a_turn = a.cap_turn().unwrap();
        let err = b.cap_turn().expect_err("a holds the turn");
        assert!(matches!(err, StoreError::Busy(_)), "{err:?}");
        assert!(err.to_string().contains("send the alert again later"), "{err}");
        assert!(lock_holders(&a, false).is_empty(), "b no longer waits");
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_turn_taken_and_ended_on_an_async_worker_does_not_panic() {
        let database = TestDatabase::new();
        let a = PgStore::connect(&database.url).unwrap();
        let turn = a.cap_turn().unwrap();
        assert_eq!(lock_holders(&a, true).len(), 1);
        drop(turn);
        until("the turn's connection is closed", || lock_holders(&a, true).is_empty());
    }
}
