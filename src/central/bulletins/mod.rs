//! Urgent bulletins at central: sign, store, push to stations over a per-station event
//! stream (SSE, with a poll fallback), cancel, and collect each station's delivery states.
//!
//! Rules decided here:
//! - `admin` may push anything anywhere; a `district` token may push (emergency or test)
//!   only to stations of its own district, never `all`; `viewer` may only list and show.
//!   Cancel follows the same rule over the bulletin's targets.
//! - Every bulletin and every cancel is a signed document ([`DocumentKind::Bulletin`],
//!   [`DocumentKind::BulletinCancel`]: different tags, so neither replays as the other or
//!   as a manifest) and an event with a sequence number. A station resumes after the last
//!   sequence it handled (`Last-Event-ID`); events whose bulletin expired are not sent.
//! - Events live in central's [`Store`] and, as a cache, in memory (a bulletin is rare
//!   and small): a restart of central resumes every stream where it was, and several
//!   centrals on one PostgreSQL database serve one stream — the store numbers the events,
//!   and each central follows the others' appends through [`Store::bulletin_feed`].
//! - "Not reached (offline since …)" comes from the last contact: a heartbeat or the
//!   event stream itself.
//! - A bulletin may wait for a person's approval ([`issue::hold`], a CAP alert without
//!   an `auto_air` rule): stored whole in [`crate::store`] but not signed, so no station
//!   hears of it until [`approve`] signs it (issued then, expiring when it was to).
//! - Every push, cancel, withdrawal and approval goes through [`issue`] and writes a line
//!   of the audit trail.
//! - Delivery states are read from the store whenever shown: a report received by any
//!   central counts.

mod delivery_log;
pub mod issue;
pub mod operate;
mod routes;
mod speech;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, RwLock, Weak, mpsc};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{ApiError, AppState};
use crate::protocol::{BulletinDoc, BulletinEvent, DeliveryReport, SignedEnvelope};
use crate::signing::SigningError;
use crate::store::{BulletinEventRow, EventSubject, Store, StoreError, StoredBulletin};
use delivery_log::DeliveryLog;
pub use issue::{Actor, Cancelled, Draft, approve, cancel, hold, issue};
pub use operate::{MAX_TEXT_CHARS, resolve_targets};
pub use routes::{REAUTH_EVERY, STREAM_HEARTBEAT, routes};
pub use speech::{ESPEAK, SPEECH_TIMEOUT, render_speech};

/// How often a central whose store is shared with other replicas loads new events even
/// without news from the store: a notification lost (its listening connection down, a
/// bug) costs at most this long. The news itself arrives within milliseconds.
pub const FOLLOW_POLL: Duration = Duration::from_secs(5);

/// Why the bulletin store failed.
#[derive(Debug, thiserror::Error)]
pub enum BulletinError {
    #[error("bulletin store: {0}")]
    Store(#[from] StoreError),
    #[error("stored bulletin is corrupt: {0}")]
    Corrupt(String),
    #[error("storing delivery reports: {0}")]
    Deliveries(String),
    #[error(
        "{program} is not installed at central: run `apt-get install espeak-ng` there, or push recorded audio with --audio FILE"
    )]
    NoSpeech { program: String },
    #[error("{program} failed to render the text: {detail}")]
    Speech { program: String, detail: String },
}

impl From<BulletinError> for ApiError {
    fn from(e: BulletinError) -> Self {
        match e {
            BulletinError::NoSpeech { .. } | BulletinError::Speech { .. } => {
                ApiError::BadRequest(e.to_string())
            }
            // An unreachable database is 503: a station sends its reports again.
            BulletinError::Store(e) => ApiError::from(e),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

/// A stored bulletin (`doc.targets` resolved, also for `--to all`) with what its stations
/// reported (see [`Hub::issued_between`]).
#[derive(Debug, Clone)]
pub struct Issued {
    pub doc: BulletinDoc,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// (station id, one delivery state it reported).
    pub deliveries: Vec<(String, DeliveryReport)>,
}

/// One event as held in memory.
struct StoredEvent {
    seq: u64,
    bulletin_id: String,
    /// The SSE `data:` line, serialised once for every stream that sends it.
    data: String,
    targets: HashSet<String>,
    expires_at: DateTime<Utc>,
    envelope: SignedEnvelope,
}

impl StoredEvent {
    fn from_row(row: BulletinEventRow) -> Result<Self, BulletinError> {
        Ok(Self {
            data: event_data(row.seq, &row.envelope)?,
            seq: row.seq,
            bulletin_id: row.bulletin_id,
            targets: row.targets.into_iter().collect(),
            expires_at: row.expires_at,
            envelope: row.envelope,
        })
    }
}

/// The bulletin state central shares between handlers.
pub struct Hub {
    store: Arc<dyn Store>,
    /// Delivery reports go through their own writer (group commit).
    deliveries: DeliveryLog,
    /// The store's events, in memory: every stream reads them from here.
    cache: Arc<EventCache>,
    /// Open event streams per station, on this central.
    connected: Mutex<HashMap<String, usize>>,
    /// Last stream contact per station, on this central (heartbeats are in the store).
    contact: Mutex<HashMap<String, DateTime<Utc>>>,
}

/// Every event of the store's stream, in order: a cache, loaded from the store at start
/// and extended from it whenever this central or another one on the same database
/// appends — never the only copy of anything.
struct EventCache {
    events: RwLock<Vec<Arc<StoredEvent>>>,
    /// The newest event number held: open streams wait on it.
    latest: tokio::sync::watch::Sender<u64>,
}

impl EventCache {
    fn newest(&self) -> u64 {
        self.events.read().unwrap_or_else(|p| p.into_inner()).last().map_or(0, |e| e.seq)
    }

    /// Adds the rows after the newest held (the store hands them in order and without
    /// gaps) and wakes every stream when there were any. Returns the newest held.
    fn extend(&self, rows: Vec<BulletinEventRow>) -> Result<u64, BulletinError> {
        let mut events = self.events.write().unwrap_or_else(|p| p.into_inner());
        let before = events.last().map_or(0, |e| e.seq);
        for row in rows {
            if row.seq > events.last().map_or(0, |e| e.seq) {
                events.push(Arc::new(StoredEvent::from_row(row)?));
            }
        }
        let newest = events.last().map_or(0, |e| e.seq);
        drop(events);
        if newest != before {
            self.latest.send_replace(newest);
        }
        Ok(newest)
    }

    /// Loads what the store has after the newest event held. Returns the newest held.
    fn refresh(&self, store: &dyn Store) -> Result<u64, BulletinError> {
        let rows = store.bulletin_events_after(self.newest())?;
        self.extend(rows)
    }
}

/// Keeps `cache` in step with the store while the hub lives: on each piece of news from
/// the store's feed, and every [`FOLLOW_POLL`] without any.
fn follow(cache: Weak<EventCache>, store: Arc<dyn Store>, feed: mpsc::Receiver<u64>) {
    loop {
        let heard = feed.recv_timeout(FOLLOW_POLL);
        let Some(cache) = cache.upgrade() else { return };
        match heard {
            // This central's own append, already held.
            Ok(seq) if seq != 0 && seq <= cache.newest() => continue,
            Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
            // The store stopped its news: poll only.
            Err(mpsc::RecvTimeoutError::Disconnected) => std::thread::sleep(FOLLOW_POLL),
        }
        if let Err(e) = cache.refresh(&*store) {
            tracing::warn!("loading bulletin events from the store: {e}");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// Loads the events from `store`, starts the delivery writer and, when other
    /// centrals may append to the same store, a thread that follows them.
    pub fn open(store: Arc<dyn Store>) -> Result<Self, BulletinError> {
        let cache = Arc::new(EventCache {
            events: RwLock::new(Vec::new()),
            latest: tokio::sync::watch::Sender::new(0),
        });
        // Subscribed before the first load: nothing appended in between is missed.
        if let Some(feed) = store.bulletin_feed() {
            let (weak, follower) = (Arc::downgrade(&cache), store.clone());
            std::thread::Builder::new()
                .name("loa-bulletin-follow".into())
                .spawn(move || follow(weak, follower, feed))
                .map_err(|e| BulletinError::Corrupt(format!("cannot start the follower: {e}")))?;
        }
        cache.refresh(&*store)?;
        Ok(Self {
            deliveries: DeliveryLog::start(store.clone())?,
            store,
            cache,
            connected: Mutex::new(HashMap::new()),
            contact: Mutex::new(HashMap::new()),
        })
    }

    /// A receiver that changes whenever an event is added.
    fn subscribe(&self) -> tokio::sync::watch::Receiver<u64> {
        self.cache.latest.subscribe()
    }

    /// Stores `subject` and appends one event, durably, then wakes every stream. `sign`
    /// makes the event's envelope from its number, which goes under the signature
    /// ([`BulletinDoc::event_seq`]); the number is the store's, so centrals sharing a
    /// database number one stream. Returns the number and the envelope; `None` when a
    /// cancel found its bulletin already cancelled (nothing appended).
    fn append(
        &self,
        subject: EventSubject<'_>,
        sign: impl FnOnce(u64) -> Result<SignedEnvelope, SigningError> + Send,
        targets: &[String],
        expires_at: DateTime<Utc>,
    ) -> Result<Option<(u64, SignedEnvelope)>, BulletinError> {
        let mut sign = Some(sign);
        let mut signer = |seq| match sign.take() {
            Some(f) => f(seq).map_err(|e| e.to_string()),
            None => Err("signed twice".to_string()),
        };
        let Some(row) =
            self.store.append_bulletin_event(subject, targets, expires_at, &mut signer)?
        else {
            return Ok(None);
        };
        let appended = (row.seq, row.envelope.clone());
        if self.cache.newest() + 1 == row.seq {
            self.cache.extend(vec![row])?;
        } else {
            // Another central appended before it: load those too, in order.
            self.cache.refresh(&*self.store)?;
        }
        Ok(Some(appended))
    }

    /// Appends the start of live broadcast `id` as an event (no bulletin row: the
    /// broadcast is kept by [`crate::central::live`] and the store), durably, then wakes
    /// every stream. As [`Hub::append`], `sign` makes the envelope from the event number.
    pub fn append_live(
        &self,
        id: &str,
        sign: impl FnOnce(u64) -> Result<SignedEnvelope, SigningError> + Send,
        targets: &[String],
        expires_at: DateTime<Utc>,
    ) -> Result<(u64, SignedEnvelope), BulletinError> {
        self.append(EventSubject::Live { id }, sign, targets, expires_at)?
            .ok_or_else(|| BulletinError::Corrupt(format!("live broadcast {id} not appended")))
    }

    /// Where a station's stream resumes: after `after`, or from the start when `after`
    /// is beyond the newest event (a resume point central never issued — a station
    /// whose stored cursor was corrupted, or a central whose events were restored from
    /// an older backup). Sending from the start costs nothing: stations refuse what
    /// they have seen, and expired events are not sent. A point beyond what this central
    /// holds is first looked for in the store: another central may have just issued it.
    fn resume_point(&self, after: u64) -> u64 {
        let mut newest = self.cache.newest();
        if after > newest {
            newest = self.cache.refresh(&*self.store).unwrap_or_else(|e| {
                tracing::warn!("loading bulletin events from the store: {e}");
                newest
            });
        }
        if after > newest {
            tracing::warn!(
                after,
                newest,
                "resume point beyond the newest event: sending from the start"
            );
            0
        } else {
            after
        }
    }

    /// Events after `after` that `keep` keeps.
    fn events_after(
        &self,
        after: u64,
        keep: impl Fn(&StoredEvent) -> bool,
    ) -> Vec<Arc<StoredEvent>> {
        let events = self.cache.events.read().unwrap_or_else(|p| p.into_inner());
        let start = events.partition_point(|e| e.seq <= after);
        events[start..].iter().filter(|e| keep(e)).cloned().collect()
    }

    /// Events after `after` for `station` whose bulletin has not expired at `now`.
    fn events_for(&self, station: &str, after: u64, now: DateTime<Utc>) -> Vec<Arc<StoredEvent>> {
        self.events_after(after, |e| e.targets.contains(station) && e.expires_at > now)
    }

    /// The stored bulletin `id` (with `targets` resolved for a `to_all` one), who issued
    /// it, and when it was cancelled.
    fn bulletin(&self, id: &str) -> Result<Option<StoredBulletin>, BulletinError> {
        Ok(self.store.bulletin(id)?.map(|b| self.resolved(b)))
    }

    /// The stations signed bulletin `id` was sent to (resolved also for `--to all`).
    pub fn targets(&self, id: &str) -> Result<Option<Vec<String>>, BulletinError> {
        Ok(self.bulletin(id)?.map(|b| b.doc.targets))
    }

    /// Every signed bulletin's id, newest first.
    fn bulletin_ids(&self) -> Result<Vec<String>, BulletinError> {
        Ok(self.store.bulletins()?.into_iter().rev().map(|b| b.doc.id).collect())
    }

    /// A stored bulletin with `targets` resolved for a `to_all` one.
    fn resolved(&self, mut b: StoredBulletin) -> StoredBulletin {
        if b.doc.to_all {
            b.doc.targets = self.resolved_targets(&b.doc.id);
        }
        b
    }

    /// Whether an event held answers `found` (the store is asked again when none does:
    /// another central may have appended it a moment ago).
    fn held_or_loaded<T>(&self, found: impl Fn(&[Arc<StoredEvent>]) -> Option<T>) -> Option<T> {
        let look = || found(&self.cache.events.read().unwrap_or_else(|p| p.into_inner()));
        look().or_else(|| {
            if let Err(e) = self.cache.refresh(&*self.store) {
                tracing::warn!("loading bulletin events from the store: {e}");
            }
            look()
        })
    }

    /// The station ids bulletin `id` was resolved to when pushed, sorted.
    fn resolved_targets(&self, id: &str) -> Vec<String> {
        let mut targets: Vec<String> = self
            .held_or_loaded(|events| {
                events.iter().find(|e| e.bulletin_id == id).map(|e| e.targets.clone())
            })
            .map(|t| t.into_iter().collect())
            .unwrap_or_default();
        targets.sort();
        targets
    }

    /// Whether `station` is one of bulletin `id`'s targets (from memory: asked once per
    /// delivery report, thousands of times a second after a province-wide push).
    fn is_target(&self, id: &str, station: &str) -> bool {
        self.held_or_loaded(|events| {
            events.iter().any(|e| e.bulletin_id == id && e.targets.contains(station)).then_some(())
        })
        .is_some()
    }

    /// Every state each station reported for bulletin `id`, to any central (read from
    /// the store each time: never a stale copy).
    fn deliveries(&self, id: &str) -> Result<Vec<(String, DeliveryReport)>, BulletinError> {
        Ok(self.store.deliveries(id)?)
    }

    /// How many stations hold the event stream open now.
    pub fn connected_stations(&self) -> usize {
        lock(&self.connected).len()
    }

    fn touch(&self, station: &str, now: DateTime<Utc>) {
        lock(&self.contact).insert(station.to_string(), now);
    }

    /// Bulletins issued in `[from, until)`, oldest first, each with when it was
    /// cancelled and every delivery state its stations reported (for `loa report`).
    pub fn issued_between(
        &self,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<Issued>, BulletinError> {
        let mut out = Vec::new();
        for stored in self.store.bulletins()? {
            if stored.doc.issued_at < from || stored.doc.issued_at >= until {
                continue;
            }
            let StoredBulletin { doc, cancelled_at, .. } = self.resolved(stored);
            let deliveries = self.deliveries(&doc.id)?;
            out.push(Issued { doc, cancelled_at, deliveries });
        }
        out.sort_by_key(|b| b.doc.issued_at);
        Ok(out)
    }

    /// When each station was last in contact over the bulletin stream; a station
    /// holding the stream open now counts as seen `now`.
    pub fn last_contact(&self, now: DateTime<Utc>) -> HashMap<String, DateTime<Utc>> {
        let mut seen = lock(&self.contact).clone();
        for station in lock(&self.connected).keys() {
            seen.insert(station.clone(), now);
        }
        seen
    }
}

/// Makes the audio of each bulletin another central pushed hot here too, as soon as this
/// central holds its event: the stations streaming from here ask for it all at once as
/// well ([`issue::issue`] makes its own pushes hot before they are sent). Runs while
/// central serves; with one central every bulletin is already hot.
pub async fn warm(state: Arc<AppState>) {
    let mut changes = state.bulletins.subscribe();
    let mut seen = state.bulletins.cache.newest();
    while changes.changed().await.is_ok() {
        let (now, newest) = (state.clock.now(), *changes.borrow_and_update());
        let fresh = state.bulletins.events_after(seen, |e| {
            e.seq <= newest
                && e.envelope.kind == crate::protocol::DocumentKind::Bulletin
                && e.expires_at > now
        });
        seen = newest;
        for event in fresh {
            match state.store.bulletin(&event.bulletin_id) {
                Ok(Some(b)) if state.hot_audio.get(&b.doc.audio_sha256).is_none() => {
                    issue::make_hot(&state, &b.doc).await;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(id = %event.bulletin_id, "bulletin audio not made hot: {e}")
                }
            }
        }
    }
}

/// The SSE `data:` of an event, serialised once for every stream that sends it.
fn event_data(seq: u64, envelope: &SignedEnvelope) -> Result<String, BulletinError> {
    serde_json::to_string(&BulletinEvent { seq, envelope: envelope.clone() })
        .map_err(|e| BulletinError::Corrupt(e.to_string()))
}

/// Counts an open stream for a station while it lives.
struct Connected {
    state: Arc<AppState>,
    station: String,
}

impl Connected {
    fn new(state: Arc<AppState>, station: String) -> Self {
        *lock(&state.bulletins.connected).entry(station.clone()).or_insert(0) += 1;
        Self { state, station }
    }
}

impl Drop for Connected {
    fn drop(&mut self) {
        let now = self.state.clock.now();
        self.state.bulletins.touch(&self.station, now);
        let mut map = lock(&self.state.bulletins.connected);
        if let Some(n) = map.get_mut(&self.station) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.station);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{BulletinPriority, DeliveryState, DocumentKind};

    fn sqlite(dir: &std::path::Path) -> Arc<dyn Store> {
        Arc::new(crate::store::SqliteStore::open(&dir.join("central.sqlite")).unwrap())
    }

    /// Many stations reporting at once: every report is committed exactly once, each
    /// request answered only after its own commit, repeats ignored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_delivery_reports_are_each_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Arc::new(Hub::open(sqlite(dir.path())).unwrap());
        let t = DateTime::parse_from_rfc3339("2026-12-01T05:00:00Z").unwrap().with_timezone(&Utc);
        let report = |state| DeliveryReport {
            bulletin_id: "b-1".into(),
            state,
            at: t,
            latency_ms: None,
            reason: None,
            reason_code: None,
        };
        let mut tasks = Vec::new();
        for n in 0..200 {
            let hub = hub.clone();
            let reports = vec![report(DeliveryState::Delivered), report(DeliveryState::Verified)];
            tasks.push(tokio::spawn(async move {
                hub.deliveries.put(&format!("xa-{}", n % 100), reports, t).await
            }));
        }
        for task in tasks {
            task.await.unwrap().unwrap();
        }
        let stored = hub.deliveries("b-1").unwrap();
        assert_eq!(stored.len(), 200, "100 stations × 2 states, the repeats ignored");
        drop(hub);
        let reopened = Hub::open(sqlite(dir.path())).unwrap();
        assert_eq!(reopened.deliveries("b-1").unwrap().len(), 200, "durable across a reopen");
    }

    /// Two centrals on one PostgreSQL database: what one appends reaches the other's
    /// streams (its cache, and the signal they wait on) through the store's feed, within
    /// a bounded time; the numbers are one sequence.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_second_central_on_the_same_database_follows_the_first() {
        let database = crate::testing::database::TestDatabase::new();
        let store = || -> Arc<dyn Store> {
            Arc::new(crate::store::PgStore::connect(&database.url).unwrap())
        };
        let (a, b) = (Hub::open(store()).unwrap(), Hub::open(store()).unwrap());
        let env = SignedEnvelope {
            kind: DocumentKind::Bulletin,
            payload: String::new(),
            signature: String::new(),
        };
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T05:00:00Z").unwrap().with_timezone(&Utc);
        let doc = test_doc("b-1", t0, 3600);
        let mut seen = b.subscribe();
        let subject = EventSubject::Issue { doc: &doc, issued_by: "admin" };
        let (seq, _) =
            a.append(subject, |_| Ok(env.clone()), &doc.targets, doc.expires_at).unwrap().unwrap();
        assert_eq!(seq, 1);
        let within = Duration::from_secs(5);
        tokio::time::timeout(within, seen.wait_for(|newest| *newest >= seq))
            .await
            .expect("B heard of A's event in time")
            .unwrap();
        assert_eq!(
            b.events_for("a", 0, doc.issued_at).iter().map(|e| e.seq).collect::<Vec<_>>(),
            vec![1]
        );
        assert!(b.is_target("b-1", "a"));
        // B's own next event follows A's, and A learns of it too.
        let mut seen = a.subscribe();
        let cancel = EventSubject::Cancel { id: "b-1", at: doc.issued_at };
        let (next, _) =
            b.append(cancel, |_| Ok(env.clone()), &doc.targets, doc.expires_at).unwrap().unwrap();
        assert_eq!(next, 2);
        tokio::time::timeout(within, seen.wait_for(|newest| *newest >= next))
            .await
            .unwrap()
            .unwrap();
        // Another cancel, through A: already over, nothing appended.
        let again = EventSubject::Cancel { id: "b-1", at: doc.issued_at };
        assert!(
            a.append(again, |_| Ok(env.clone()), &doc.targets, doc.expires_at).unwrap().is_none()
        );
        assert!(a.bulletin("b-1").unwrap().unwrap().cancelled_at.is_some());
    }

    /// A bulletin pushed through one central has its audio hot at another on the same
    /// database as soon as that one holds the event (its stations ask for it at once).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_bulletin_pushed_elsewhere_gets_its_audio_hot_here() {
        let database = crate::testing::database::TestDatabase::new();
        let dir = tempfile::tempdir().unwrap();
        let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
        crate::central::init_with(&a_dir, Some(&database.url), None).unwrap();
        std::fs::create_dir_all(&b_dir).unwrap();
        let key = crate::central::KEY_FILE;
        std::fs::copy(a_dir.join(key), b_dir.join(key)).unwrap();
        let open = |data_dir: &std::path::Path| {
            let config = crate::central::CentralConfig {
                data_dir: data_dir.to_path_buf(),
                database_url: Some(database.url.clone()),
                ..Default::default()
            };
            crate::central::open(config, Arc::new(crate::clock::SystemClock)).unwrap()
        };
        let (a, b) = (open(&a_dir), open(&b_dir));
        let wav = crate::testing::wav_bytes(1.0, 440.0, 0.3);
        let sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wav));
        std::fs::write(a.audio.path(&sha), &wav).unwrap();
        a.audio.stored(&sha).await.unwrap();
        let warming = tokio::spawn(warm(b.clone()));

        let now = a.clock.now();
        let doc = BulletinDoc {
            audio_sha256: sha.clone(),
            audio_size: wav.len() as u64,
            ..test_doc("b-1", now, 600)
        };
        let actor = Actor::new("admin", "-");
        issue(&a, &doc, &doc.targets, "admin", &actor).await.unwrap();
        assert!(a.hot_audio.get(&sha).is_some(), "hot where it was pushed");
        crate::testing::wait_until(Duration::from_secs(10), || b.hot_audio.get(&sha).is_some())
            .await;
        assert_eq!(b.hot_audio.get(&sha).unwrap().as_ref(), wav.as_slice());
        warming.abort();
    }

    fn test_doc(id: &str, t0: DateTime<Utc>, expires_in_secs: i64) -> BulletinDoc {
        BulletinDoc {
            id: id.into(),
            title: "t".into(),
            targets: vec!["a".into()],
            to_all: false,
            audio_sha256: "0".repeat(64),
            audio_size: 1,
            gain_db: 0.0,
            priority: BulletinPriority::Emergency,
            repeat: 0,
            interval_secs: 0,
            tone: false,
            issued_at: t0,
            expires_at: t0 + chrono::Duration::seconds(expires_in_secs),
            event_seq: None,
        }
    }

    #[test]
    fn events_survive_reopen_and_filter_by_station_and_expiry() {
        let dir = tempfile::tempdir().unwrap();
        let t0 = DateTime::parse_from_rfc3339("2026-12-01T05:00:00Z").unwrap().with_timezone(&Utc);
        let env = SignedEnvelope {
            kind: DocumentKind::Bulletin,
            payload: String::new(),
            signature: String::new(),
        };
        let doc = |id: &str, exp: i64| test_doc(id, t0, exp);
        {
            let hub = Hub::open(sqlite(dir.path())).unwrap();
            let d1 = doc("one", 60);
            let d2 = doc("two", 3600);
            let sign = |_| Ok(env.clone());
            let issue = |doc| EventSubject::Issue { doc, issued_by: "admin" };
            let s1 = hub.append(issue(&d1), sign, &d1.targets, d1.expires_at).unwrap().unwrap();
            let s2 = hub.append(issue(&d2), sign, &d2.targets, d2.expires_at).unwrap().unwrap();
            assert_eq!((s1.0, s2.0), (1, 2));
            // A resume point beyond the newest event (a corrupted or forged cursor) is a
            // fresh start, not silence.
            assert_eq!(hub.resume_point(2), 2);
            assert_eq!(hub.resume_point(u64::MAX), 0);
        }
        let hub = Hub::open(sqlite(dir.path())).unwrap();
        let seqs = |station: &str, after: u64, now| -> Vec<u64> {
            hub.events_for(station, after, now).iter().map(|e| e.seq).collect()
        };
        assert_eq!(seqs("a", 0, t0), vec![1, 2]);
        assert_eq!(seqs("a", 1, t0), vec![2]);
        assert_eq!(seqs("b", 0, t0), Vec::<u64>::new());
        // The first bulletin expired: a station reconnecting later is not sent it.
        assert_eq!(seqs("a", 0, t0 + chrono::Duration::seconds(61)), vec![2]);
        assert!(hub.bulletin("two").unwrap().is_some());
    }
}
