//! The store contract, run against both implementations: every test written with
//! [`each_store`] runs on a fresh SQLite file and on a fresh PostgreSQL database (a
//! real server: `crate::testing::database`), so the two cannot drift apart.

use super::{PgStore, SqliteStore, Store};
use crate::testing::database::TestDatabase;

/// Runs `test` on an empty SQLite store, then on an empty PostgreSQL store. A failure
/// names the store it happened on.
pub(crate) fn each_store(test: impl Fn(&dyn Store)) {
    let dir = tempfile::tempdir().expect("temporary directory");
    let sqlite = SqliteStore::open(&dir.path().join("central.sqlite")).expect("sqlite store");
    on("sqlite", || test(&sqlite));
    let database = TestDatabase::new();
    let pg = PgStore::connect(&database.url).expect("postgres store");
    on("postgres", || test(&pg));
}

fn on(name: &str, run: impl FnOnce()) {
    if let Err(panic) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(run)) {
        eprintln!("the store contract failed on {name}");
        std::panic::resume_unwind(panic);
    }
}
