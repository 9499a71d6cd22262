//! Central's store on PostgreSQL, for a province that runs several `loa central`
//! replicas over one database (`database_url = "postgres://…"` in central.toml, or
//! `LOA_DATABASE_URL`). The same [`Store`] contract as [`super::SqliteStore`]; the
//! contract tests run against both.
//!
//! The client is the synchronous `postgres` crate behind an `r2d2` pool, because
//! [`Store`] is synchronous (central calls it from request handlers, mostly inside
//! `spawn_blocking`). That crate drives its connection with its own small tokio runtime
//! and blocks on it, which tokio forbids on a thread that is already running async tasks;
//! so [`PgStore::run`] moves a call made from such a thread onto a scoped thread of its
//! own (tens of microseconds, next to a network round trip to the database).
//!
//! Every table's schema is in the module that owns it; [`migrate`] applies the numbered
//! migrations once, under an advisory lock, so replicas starting together do not race.

mod base;
mod blobs;
mod bulletins;
mod cap;
mod cap_turn;
mod connector;
mod console;
mod field;
mod live;
mod notify;
mod playlog;
mod tls;

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use postgres::Client;

use super::{
    AlertRow, AudioLevels, ClaimOutcome, EnrolCode, LibraryEntry, LoginFailures, Notification,
    PendingBulletin, PlaylogFilter, Role, ScheduleLoad, SessionRow, Station, StationPlace, Store,
    StoreError, StoredHeartbeat, StoredManifest, StoredSchedule, User,
};
use crate::protocol::{
    AlertRecord, ApprovalState, AudioInfo, AuditEntry, PlaylogAck, PlaylogSummary, Record,
};

pub use connector::{ConnectError, Connector};

type Pool = r2d2::Pool<Connector>;

/// Connections a replica keeps at most: request handlers beyond this wait (up to
/// [`CONNECT_TIMEOUT`]) rather than overload the database; ten replicas stay under
/// PostgreSQL's default `max_connections` of 100 with room for an operator's psql.
pub const POOL_SIZE: u32 = 8;

/// How long a call waits for a connection before answering "database unavailable" (a
/// station then gets `503` with `Retry-After` and keeps its records to send again).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Longest a single statement may run: a stuck query must not hold a connection (and a
/// request) forever.
const STATEMENT_TIMEOUT_MS: u32 = 30_000;

/// The schema, in order: each entry is applied once, in one transaction, and recorded
/// in `schema_migrations`. Append; never edit a shipped entry.
const MIGRATIONS: &[(i32, &str, &[&str])] = &[
    (
        1,
        "central's tables",
        &[
            base::SCHEMA,
            playlog::SCHEMA,
            cap::SCHEMA,
            field::SCHEMA,
            live::SCHEMA,
            console::SCHEMA,
            blobs::SCHEMA,
        ],
    ),
    (2, "urgent bulletins", &[bulletins::SCHEMA]),
    (3, "live broadcasts' heartbeat", &[live::ALIVE_COLUMN]),
];

/// An arbitrary, fixed key for `pg_advisory_xact_lock`: one replica migrates at a time.
const MIGRATION_LOCK: i64 = 0x6c6f_615f_6d69_6772; // "loa_migr"

/// [`Store`] on a PostgreSQL database.
pub struct PgStore {
    /// `None` only while dropping (see [`Drop`]).
    pool: Option<Pool>,
    /// The URL without its password, for messages.
    shown: String,
    /// News of what other replicas commit (a listening connection of its own, opened on
    /// the first [`Store::bulletin_feed`] or [`Store::manifest_feed`]).
    feed: std::sync::Arc<notify::Feed>,
    /// CAP decisions one at a time across replicas (a connection of each turn's own).
    cap_turns: cap_turn::CapTurns,
}

impl PgStore {
    /// Connects to `url` (`postgres://user:password@host:port/dbname`, or libpq's
    /// `key=value` form), creates or upgrades the schema, and returns the store. Fails
    /// when the database cannot be reached within [`CONNECT_TIMEOUT`]. With
    /// `sslmode=require` in the URL, over TLS verified against the system's roots only
    /// (see [`Self::connect_with_ca`]).
    pub fn connect(url: &str) -> Result<Self, StoreError> {
        Self::connect_with_ca(url, None)
    }

    /// [`Self::connect`], also trusting the CA certificates in `ca_file` to have issued
    /// the server's certificate (`database_ca_file`: a province's own CA).
    pub fn connect_with_ca(url: &str, ca_file: Option<&Path>) -> Result<Self, StoreError> {
        let mut manager = Connector::new(url, ca_file)?;
        let shown = manager.shown().to_string();
        manager
            .config_mut()
            .connect_timeout(CONNECT_TIMEOUT)
            .application_name("loa central")
            .options(&format!("-c statement_timeout={STATEMENT_TIMEOUT_MS}"));
        let feed = notify::Feed::new(manager.clone());
        let cap_turns = cap_turn::CapTurns::new(manager.clone());
        let pool = off_runtime(|| {
            r2d2::Pool::builder()
                .max_size(POOL_SIZE)
                .min_idle(Some(0))
                .connection_timeout(CONNECT_TIMEOUT)
                .build_unchecked(manager)
        });
        let store = Self { pool: Some(pool), shown, feed, cap_turns };
        store.run(migrate)?;
        Ok(store)
    }

    /// The database's URL without its password.
    pub fn shown_url(&self) -> &str {
        &self.shown
    }

    /// Runs `f` on a pooled connection, off any async runtime thread.
    pub(in crate::store) fn run<T: Send>(
        &self,
        f: impl FnOnce(&mut Client) -> Result<T, StoreError> + Send,
    ) -> Result<T, StoreError> {
        let pool = self.pool.as_ref().ok_or_else(|| StoreError::Unavailable("closed".into()))?;
        off_runtime(|| {
            let mut conn = pool.get().map_err(|e| {
                StoreError::Unavailable(format!("cannot reach the database {}: {e}", self.shown))
            })?;
            f(&mut conn)
        })
    }
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.feed.stop();
        // Closing a connection blocks on the client's runtime: never on an async thread.
        if let Some(pool) = self.pool.take() {
            off_runtime(move || drop(pool));
        }
    }
}

/// Calls `f` here, or on a scoped thread when this thread is running async tasks (where
/// the `postgres` client's blocking calls would panic).
fn off_runtime<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    if tokio::runtime::Handle::try_current().is_err() {
        return f();
    }
    std::thread::scope(|scope| match scope.spawn(f).join() {
        Ok(value) => value,
        Err(panic) => std::panic::resume_unwind(panic),
    })
}

/// Applies the migrations not applied yet.
fn migrate(c: &mut Client) -> Result<(), StoreError> {
    let mut tx = c.transaction()?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS schema_migrations (
            version INTEGER PRIMARY KEY,
            name TEXT NOT NULL,
            applied_at TEXT NOT NULL
        )",
    )?;
    let applied: Option<i32> =
        tx.query_one("SELECT MAX(version) FROM schema_migrations", &[])?.get(0);
    let applied = applied.unwrap_or(0);
    if let Some(newest) = MIGRATIONS.last()
        && applied > newest.0
    {
        return Err(StoreError::Corrupt(format!(
            "the database's schema is version {applied}, newer than this loa knows ({}): \
             upgrade loa on this machine",
            newest.0
        )));
    }
    for (version, name, parts) in MIGRATIONS.iter().filter(|(v, _, _)| *v > applied) {
        for part in *parts {
            tx.batch_execute(part)?;
        }
        tx.execute(
            "INSERT INTO schema_migrations (version, name, applied_at) VALUES ($1, $2, $3)",
            &[version, name, &Utc::now().to_rfc3339()],
        )?;
    }
    tx.commit()?;
    Ok(())
}

/// `url` with any password replaced by `***`.
fn redact(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://")
        && let Some((auth, host)) = rest.split_once('@')
        && let Some((user, _password)) = auth.split_once(':')
    {
        return format!("{scheme}://{user}:***@{host}");
    }
    if url.contains("password=") {
        return url
            .split_whitespace()
            .map(|kv| if kv.starts_with("password=") { "password=***" } else { kv })
            .collect::<Vec<_>>()
            .join(" ");
    }
    url.to_string()
}

/// Parses a stored RFC 3339 timestamp (timestamps are TEXT, as in the SQLite store, so
/// both stores order and compare them the same way).
pub(super) fn time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {text:?}: {e}")))
}

/// Whether a statement failed on a unique or primary key.
pub(super) fn is_unique_violation(e: &postgres::Error) -> bool {
    e.code() == Some(&postgres::error::SqlState::UNIQUE_VIOLATION)
}

impl Store for PgStore {
    fn add_station(&self, station: &Station, token_hash: &str) -> Result<(), StoreError> {
        self.run(|c| base::add_station(c, station, token_hash))
    }
    fn station(&self, id: &str) -> Result<Option<Station>, StoreError> {
        self.run(|c| base::station(c, id))
    }
    fn station_by_token(&self, token_hash: &str) -> Result<Option<Station>, StoreError> {
        self.run(|c| base::station_by_token(c, token_hash))
    }
    fn station_token_hashes(&self) -> Result<Vec<(String, String)>, StoreError> {
        self.run(base::station_token_hashes)
    }
    fn stations(&self) -> Result<Vec<Station>, StoreError> {
        self.run(base::stations)
    }
    fn set_station_token(&self, id: &str, token_hash: &str) -> Result<bool, StoreError> {
        self.run(|c| base::set_station_token(c, id, token_hash))
    }
    fn add_operator(&self, token_hash: &str, role: &Role, label: &str) -> Result<(), StoreError> {
        self.run(|c| base::add_operator(c, token_hash, role, label))
    }
    fn operator_by_token(&self, token_hash: &str) -> Result<Option<Role>, StoreError> {
        self.run(|c| base::operator_by_token(c, token_hash))
    }
    fn operator_identity(&self, token_hash: &str) -> Result<Option<(Role, String)>, StoreError> {
        self.run(|c| base::operator_identity(c, token_hash))
    }
    fn revoke_operators(&self, label: &str) -> Result<usize, StoreError> {
        self.run(|c| base::revoke_operators(c, label))
    }
    fn put_audio(&self, info: &AudioInfo, true_peak_dbtp: f64) -> Result<(), StoreError> {
        self.run(|c| base::put_audio(c, info, true_peak_dbtp))
    }
    fn audio(&self, sha256: &str) -> Result<Option<AudioInfo>, StoreError> {
        self.run(|c| base::audio(c, sha256))
    }
    fn audio_levels(&self) -> Result<Vec<AudioLevels>, StoreError> {
        self.run(base::audio_levels)
    }
    fn set_audio_levels(&self, levels: &AudioLevels) -> Result<bool, StoreError> {
        self.run(|c| base::set_audio_levels(c, levels))
    }
    fn load_schedule(
        &self,
        schedule: &StoredSchedule,
        stations: &[String],
        loaded_by: &str,
    ) -> Result<i64, StoreError> {
        self.run(|c| base::load_schedule(c, schedule, stations, loaded_by))
    }
    fn schedules_for(&self, station_id: &str) -> Result<Vec<StoredSchedule>, StoreError> {
        self.run(|c| base::schedules_for(c, station_id))
    }
    fn schedule_loads(&self, limit: usize) -> Result<Vec<ScheduleLoad>, StoreError> {
        self.run(|c| console::schedule_loads(c, limit))
    }
    fn library(&self, limit: usize) -> Result<Vec<LibraryEntry>, StoreError> {
        self.run(|c| console::library(c, limit))
    }
    fn missed_since(&self, since: DateTime<Utc>) -> Result<Vec<(String, u64)>, StoreError> {
        self.run(|c| console::missed_since(c, since))
    }
    fn put_manifest(&self, manifest: &StoredManifest) -> Result<(), StoreError> {
        self.run(|c| base::put_manifest(c, manifest))
    }
    fn latest_manifest(&self, station_id: &str) -> Result<Option<StoredManifest>, StoreError> {
        self.run(|c| base::latest_manifest(c, station_id))
    }
    fn put_heartbeat(&self, heartbeat: &StoredHeartbeat) -> Result<(), StoreError> {
        self.run(|c| base::put_heartbeat(c, heartbeat))
    }
    fn heartbeats(&self) -> Result<Vec<StoredHeartbeat>, StoreError> {
        self.run(base::heartbeats)
    }
    fn heartbeat_history(
        &self,
        station_id: &str,
        limit: usize,
    ) -> Result<Vec<StoredHeartbeat>, StoreError> {
        self.run(|c| console::heartbeat_history(c, station_id, limit))
    }
    fn manifests_between(
        &self,
        station_id: &str,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<StoredManifest>, StoreError> {
        self.run(|c| base::manifests_between(c, station_id, from, until))
    }
    fn ingest_playlog(
        &self,
        station_id: &str,
        records: &[Record],
        now: DateTime<Utc>,
    ) -> Result<PlaylogAck, StoreError> {
        self.run(|c| playlog::ingest_playlog(c, station_id, records, now))
    }
    fn playlog(&self, filter: &PlaylogFilter) -> Result<Vec<Record>, StoreError> {
        self.run(|c| playlog::playlog(c, filter))
    }
    fn playlog_summary(&self, station_id: &str) -> Result<PlaylogSummary, StoreError> {
        self.run(|c| playlog::playlog_summary(c, station_id))
    }
    fn set_station_place(&self, place: &StationPlace) -> Result<bool, StoreError> {
        self.run(|c| cap::set_station_place(c, place))
    }
    fn station_places(&self) -> Result<Vec<StationPlace>, StoreError> {
        self.run(cap::station_places)
    }
    fn cap_turn(&self) -> Result<super::CapTurn, StoreError> {
        self.cap_turns.take(&self.shown)
    }
    fn cap_ledger(&self) -> Result<Option<String>, StoreError> {
        self.run(cap::cap_ledger)
    }
    fn record_alerts(
        &self,
        records: &[AlertRecord],
        audit: &[AuditEntry],
        ledger: Option<&str>,
    ) -> Result<(), StoreError> {
        self.run(|c| cap::record_alerts(c, records, audit, ledger))
    }
    fn alerts(&self, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        self.run(|c| cap::alerts(c, limit))
    }
    fn alert_bulletin(
        &self,
        sender: &str,
        identifier: &str,
        sent: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        self.run(|c| cap::alert_bulletin(c, sender, identifier, sent))
    }
    fn put_pending(&self, pending: &PendingBulletin) -> Result<(), StoreError> {
        self.run(|c| cap::put_pending(c, pending))
    }
    fn pending(&self, id: &str) -> Result<Option<PendingBulletin>, StoreError> {
        self.run(|c| cap::pending(c, id))
    }
    fn pending_list(&self, limit: usize) -> Result<Vec<PendingBulletin>, StoreError> {
        self.run(|c| cap::pending_list(c, limit))
    }
    fn decide_pending(
        &self,
        id: &str,
        from: ApprovalState,
        to: ApprovalState,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.run(|c| cap::decide_pending(c, id, from, to, by, at))
    }
    fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        self.run(|c| cap::audit(c, entry))
    }
    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        self.run(|c| cap::audit_log(c, limit))
    }
    fn add_user(&self, user: &User) -> Result<(), StoreError> {
        self.run(|c| console::add_user(c, user))
    }
    fn user(&self, name: &str) -> Result<Option<User>, StoreError> {
        self.run(|c| console::user(c, name))
    }
    fn users(&self) -> Result<Vec<User>, StoreError> {
        self.run(console::users)
    }
    fn set_user_password(
        &self,
        name: &str,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.run(|c| console::set_user_password(c, name, password_hash, at))
    }
    fn set_user_disabled(
        &self,
        name: &str,
        disabled: bool,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.run(|c| console::set_user_disabled(c, name, disabled, at))
    }
    fn put_session(&self, session: &SessionRow) -> Result<(), StoreError> {
        self.run(|c| console::put_session(c, session))
    }
    fn session(&self, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
        self.run(|c| console::session(c, id_hash))
    }
    fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.run(|c| console::touch_session(c, id_hash, at))
    }
    fn end_session(&self, id_hash: &str) -> Result<(), StoreError> {
        self.run(|c| console::end_session(c, id_hash))
    }
    fn end_idle_sessions(&self, seen_before: DateTime<Utc>) -> Result<usize, StoreError> {
        self.run(|c| console::end_idle_sessions(c, seen_before))
    }
    fn login_failures(&self, key: &str) -> Result<Option<LoginFailures>, StoreError> {
        self.run(|c| console::login_failures(c, key))
    }
    fn add_login_failure(
        &self,
        key: &str,
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
        keep_at_most: usize,
    ) -> Result<u32, StoreError> {
        self.run(|c| console::add_login_failure(c, key, at, forget_before, keep_at_most))
    }
    fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        self.run(|c| console::clear_login_failures(c, key))
    }
    fn put_enrol_code(&self, code: &EnrolCode) -> Result<(), StoreError> {
        self.run(|c| field::put_enrol_code(c, code))
    }
    fn enrol_code(&self, lookup: &str) -> Result<Option<EnrolCode>, StoreError> {
        self.run(|c| field::enrol_code(c, lookup))
    }
    fn claim_enrol_code(
        &self,
        lookup: &str,
        claim_hash: &str,
        token_hash: &str,
        now: DateTime<Utc>,
        max_failures: u32,
    ) -> Result<ClaimOutcome, StoreError> {
        self.run(|c| field::claim_enrol_code(c, lookup, claim_hash, token_hash, now, max_failures))
    }
    fn playlog_outcome_counts(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        self.run(field::playlog_outcome_counts)
    }
    fn latest_aired(&self, station_id: &str) -> Result<Option<Record>, StoreError> {
        self.run(|c| field::latest_aired(c, station_id))
    }
    fn open_alerts(&self) -> Result<Vec<AlertRow>, StoreError> {
        self.run(field::open_alerts)
    }
    fn raise_alert(
        &self,
        alert: &AlertRow,
        channels: &[&str],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.run(|c| field::raise_alert(c, alert, channels, now))
    }
    fn clear_alert(
        &self,
        key: &str,
        channels: &[&str],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        self.run(|c| field::clear_alert(c, key, channels, now))
    }
    fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<Notification>, StoreError> {
        self.run(|c| field::due_notifications(c, now, limit))
    }
    fn notification_sent(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        self.run(|c| field::notification_sent(c, id, now))
    }
    fn notification_failed(
        &self,
        id: i64,
        error: &str,
        next_try: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        self.run(|c| field::notification_failed(c, id, error, next_try))
    }
    fn live_started(&self, record: &crate::protocol::live::LiveRecord) -> Result<(), StoreError> {
        self.run(|c| live::live_started(c, record))
    }
    fn live_ended(
        &self,
        id: &str,
        at: DateTime<Utc>,
        chunks: u64,
        audio_secs: f64,
        reason: &str,
    ) -> Result<(), StoreError> {
        self.run(|c| live::live_ended(c, id, at, chunks, audio_secs, reason))
    }
    fn live_alive(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        self.run(|c| live::live_alive(c, id, at))
    }
    fn live_list(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::protocol::live::LiveRecord>, StoreError> {
        self.run(|c| live::live_list(c, limit))
    }

    // Urgent bulletins (`bulletins.rs`).
    fn append_bulletin_event(
        &self,
        subject: super::EventSubject<'_>,
        targets: &[String],
        expires_at: DateTime<Utc>,
        sign: super::SignEvent<'_>,
    ) -> Result<Option<super::BulletinEventRow>, StoreError> {
        self.run(|c| bulletins::append_bulletin_event(c, subject, targets, expires_at, sign))
    }
    fn bulletin_events_after(
        &self,
        after: u64,
    ) -> Result<Vec<super::BulletinEventRow>, StoreError> {
        self.run(|c| bulletins::bulletin_events_after(c, after))
    }
    fn bulletin(&self, id: &str) -> Result<Option<super::StoredBulletin>, StoreError> {
        self.run(|c| bulletins::bulletin(c, id))
    }
    fn bulletins(&self) -> Result<Vec<super::StoredBulletin>, StoreError> {
        self.run(bulletins::bulletins)
    }
    fn put_deliveries(&self, batches: &[super::DeliveryBatch]) -> Result<(), StoreError> {
        self.run(|c| bulletins::put_deliveries(c, batches))
    }
    fn deliveries(
        &self,
        bulletin_id: &str,
    ) -> Result<Vec<(String, crate::protocol::DeliveryReport)>, StoreError> {
        self.run(|c| bulletins::deliveries(c, bulletin_id))
    }
    /// Other replicas append too: their commits are announced on `loa_bulletin_events`.
    fn bulletin_feed(&self) -> Option<std::sync::mpsc::Receiver<u64>> {
        Some(self.feed.bulletins())
    }
    /// Other replicas issue manifests too: their commits are announced on `loa_manifests`.
    fn manifest_feed(&self) -> Option<std::sync::mpsc::Receiver<super::ManifestNews>> {
        Some(self.feed.manifests())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_never_reach_a_message() {
        assert_eq!(redact("postgres://loa:s3cret@db:5432/loa"), "postgres://loa:***@db:5432/loa");
        assert_eq!(redact("postgres://loa@db/loa"), "postgres://loa@db/loa");
        assert_eq!(redact("host=db user=loa password=s3cret"), "host=db user=loa password=***");
    }

    #[test]
    fn replicas_starting_together_migrate_once() {
        let database = crate::testing::database::TestDatabase::new();
        let stores: Vec<PgStore> = std::thread::scope(|scope| {
            let starts: Vec<_> =
                (0..4).map(|_| scope.spawn(|| PgStore::connect(&database.url))).collect();
            starts.into_iter().map(|s| s.join().unwrap().unwrap()).collect()
        });
        let versions: Vec<i32> = stores[0]
            .run(|c| {
                Ok(c.query("SELECT version FROM schema_migrations ORDER BY version", &[])?
                    .iter()
                    .map(|r| r.get(0))
                    .collect())
            })
            .unwrap();
        let expected: Vec<i32> = MIGRATIONS.iter().map(|m| m.0).collect();
        assert_eq!(versions, expected);
    }

    #[test]
    fn a_schema_newer_than_this_loa_is_refused() {
        let database = crate::testing::database::TestDatabase::new();
        let store = PgStore::connect(&database.url).unwrap();
        store
            .run(|c| {
                c.execute(
                    "INSERT INTO schema_migrations VALUES (9999, 'from the future', 'now')",
                    &[],
                )?;
                Ok(())
            })
            .unwrap();
        let refused = PgStore::connect(&database.url).err().expect("refused");
        assert!(refused.to_string().contains("upgrade loa"), "{refused}");
    }

    #[test]
    fn an_unreachable_database_is_unavailable_within_the_connect_timeout() {
        // A port nothing listens on: refused at once, reported as unavailable (503).
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        let started = std::time::Instant::now();
        let err = PgStore::connect(&format!("postgres://loa:secret@127.0.0.1:{port}/loa"))
            .err()
            .expect("no database there");
        assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
        assert!(!err.to_string().contains("secret"), "{err}");
        assert!(started.elapsed() < CONNECT_TIMEOUT * 3, "{:?}", started.elapsed());
    }

    #[tokio::test]
    async fn calls_from_an_async_task_do_not_panic() {
        let database = crate::testing::database::TestDatabase::new();
        let store = PgStore::connect(&database.url).unwrap();
        let one: i32 = store.run(|c| Ok(c.query_one("SELECT 1", &[])?.get(0))).unwrap();
        assert_eq!(one, 1);
        drop(store);
    }

    #[test]
    fn a_url_may_name_a_primary_and_its_standby() {
        let url = "postgres://loa:pw@db-a:5432,db-b:5433/loa?target_session_attrs=read-write";
        let config: postgres::Config = url.parse().unwrap();
        assert_eq!(config.get_hosts().len(), 2);
        assert_eq!(config.get_ports(), [5432, 5433]);
        assert_eq!(
            config.get_target_session_attrs(),
            postgres::config::TargetSessionAttrs::ReadWrite
        );
        assert!(!redact(url).contains("pw"));
    }

    #[test]
    fn migrations_are_numbered_in_order() {
        let versions: Vec<i32> = MIGRATIONS.iter().map(|m| m.0).collect();
        let expected: Vec<i32> = (1..=versions.len() as i32).collect();
        assert_eq!(versions, expected);
    }
}
