//! A fresh PostgreSQL database per test, on the server `LOA_TEST_DATABASE_URL` names or
//! else on a throwaway server that `scripts/pg-test.sh start` runs in `/tmp/loa-pg-test-<checkout>`
//! (started once, reused by later test runs, stopped by `scripts/test.sh` at the end).
//! Each [`TestDatabase`] is dropped (with its connections) when the value is.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, Ordering};

/// The server every test database is made on.
pub fn server_url() -> &'static str {
    static URL: OnceLock<String> = OnceLock::new();
    URL.get_or_init(|| {
        if let Ok(url) = std::env::var("LOA_TEST_DATABASE_URL")
            && !url.is_empty()
        {
            return url;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pg-test.sh");
        let out = std::process::Command::new(script)
            .arg("start")
            .output()
            .unwrap_or_else(|e| panic!("cannot run {script}: {e}"));
        assert!(
            out.status.success(),
            "{script} start failed (install PostgreSQL with scripts/deps.sh, or set \
             LOA_TEST_DATABASE_URL): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    })
}

/// `url` (`postgres://…/dbname?options`) naming database `name` instead.
pub fn with_database(url: &str, name: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, format!("?{query}")),
        None => (url, String::new()),
    };
    let authority_start = base.find("://").map_or(0, |i| i + 3);
    let base = match base[authority_start..].find('/') {
        Some(slash) => &base[..authority_start + slash],
        None => base,
    };
    format!("{base}/{name}{query}")
}

/// A database made for one test and dropped after it.
pub struct TestDatabase {
    pub url: String,
    name: String,
}

impl TestDatabase {
    pub fn new() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let name = format!(
            "loa_test_{}_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed),
            rand::random::<u32>()
        );
        admin(|client| client.batch_execute(&format!("CREATE DATABASE {name}")));
        Self { url: with_database(server_url(), &name), name }
    }
}

impl Default for TestDatabase {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.name);
        admin(|client| client.batch_execute(&sql));
    }
}

/// Runs `f` on a connection to the server's `postgres` database, on a thread of its own
/// (the blocking client must not run on an async runtime's thread).
fn admin(f: impl FnOnce(&mut postgres::Client) -> Result<(), postgres::Error> + Send) {
    let url = with_database(server_url(), "postgres");
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                let mut client = crate::store::Connector::new(&url, None)
                    .map_err(|e| e.to_string())
                    .and_then(|connector| connector.client().map_err(|e| e.to_string()))
                    .unwrap_or_else(|e| panic!("test database server {url}: {e}"));
                f(&mut client).unwrap_or_else(|e| panic!("test database server {url}: {e}"));
            })
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_names_another_database() {
        assert_eq!(with_database("postgres://u@h:5/postgres", "t1"), "postgres://u@h:5/t1");
        assert_eq!(with_database("postgres://u@h:5", "t1"), "postgres://u@h:5/t1");
        assert_eq!(
            with_database("postgres://u:p@h/db?sslmode=disable", "t1"),
            "postgres://u:p@h/t1?sslmode=disable"
        );
    }
}
