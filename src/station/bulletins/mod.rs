//! The station's bulletin receiver: holds central's event stream open (SSE, resumed by
//! the last event id after a reconnect, with backoff; a poll request when the stream
//! cannot be held), checks every bulletin, fetches its audio ahead of everything else,
//! and hands it to the daemon's emergency path. Reports each step back to central.
//!
//! The gate every bulletin passes, in order: signature by the pinned key
//! (`verify_strict`, [`DocumentKind::Bulletin`] tag — a manifest's or a cancel's signature
//! never passes), this station among the targets, an id never seen before (replays are
//! refused; seen ids are kept in `bulletins.sqlite` until they expire, so a restart does
//! not forget them), not expired. Then the audio is downloaded through the sync cache
//! (temporary file, sha256 verified, renamed) by this receiver's own download — it never
//! waits in the sync's queue of programme downloads — and only then is it played.
//!
//! A bulletin handed to the daemon is recorded accepted in the same file (same
//! transaction as its seen mark), and each of its plays counted from the daemon's ledger
//! records; on start, what a stop left unaired is handed over again with only its
//! remaining plays, and one that expired meanwhile is recorded `missed` and reported
//! `failed` with the reason (see [`Receiver::follow`]).
//!
//! `test` bulletins go through every step but the daemon: they are confirmed `test-ok`.
//! Cancels are signed too ([`DocumentKind::BulletinCancel`]); a cancel that arrives
//! before its bulletin makes the bulletin's id "seen", so it never plays.

mod delivery;
mod handoff;
mod live;
mod store;
mod transport;
mod verify;

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::clock::SharedClock;
use crate::protocol::{BulletinDoc, DeliveryReport, DeliveryState, Reason};
use crate::signing::SigningError;
use crate::station::daemon::{AirBulletin, StationCommand, StationHandle, StationStatus};
use crate::station::ledger::Entry;
use crate::station::sync::{Backoff, SyncConfig, SyncError, Syncer};

use delivery::{Reporter, progress, track};
use store::{Seen, Stage};
pub use transport::{MAX_EVENT_BYTES, MAX_POLL_BYTES};
pub use verify::verify_bulletin;

/// The attention tone shipped in the binary.
pub const TONE_WAV: &[u8] = include_bytes!("../../../audio/chuong-bao.wav");
/// The receiver's own file in the station's data directory.
pub const DB_FILE: &str = "bulletins.sqlite";
/// How long a start waits for central's list of cancels before resuming bulletins.
pub const RESUME_POLL: Duration = Duration::from_secs(3);
/// A stream silent for this long (central sends a heartbeat every 15 s) is dead.
pub const STREAM_IDLE: Duration = Duration::from_secs(45);

/// Why a bulletin event was refused or could not be handled.
#[derive(Debug, thiserror::Error)]
pub enum BulletinError {
    #[error("bulletin refused: {0}")]
    Signature(#[from] SigningError),
    #[error("bulletin event is not valid JSON: {0}")]
    Malformed(String),
    #[error("bulletin {id} is for other stations, not {station}: refused")]
    NotForUs { id: String, station: String },
    #[error("bulletin {0} was already received: refused as a replay")]
    Replay(String),
    #[error("bulletin {id} expired at {expires_at} (now {now}): refused")]
    Expired { id: String, expires_at: DateTime<Utc>, now: DateTime<Utc> },
    #[error("bulletin audio: {0}")]
    Download(#[from] SyncError),
    #[error("bulletin state {path}: {source}")]
    Store { path: String, source: rusqlite::Error },
    #[error("cannot reach central at {url}: {}", crate::station::sync::describe_http(source))]
    Http { url: String, source: reqwest::Error },
    #[error("no answer from central at {url} within {} s", within.as_secs())]
    NoAnswer { url: String, within: Duration },
    #[error("central answered {status} to {what}")]
    Status { what: String, status: reqwest::StatusCode },
    #[error("the station daemon has stopped")]
    DaemonGone,
    #[error("bulletin {0} was cancelled or closed before its audio arrived")]
    Withdrawn(String),
    #[error("cannot install the attention tone at {path}: {source}")]
    Tone { path: String, source: std::io::Error },
    #[error("signed bulletin refused: {0}")]
    OutOfRange(String),
    #[error(
        "event {got} carries a document signed for event {signed}: refused (someone on the path renumbered it)"
    )]
    Renumbered { got: u64, signed: u64 },
    #[error(
        "bulletin {id} was issued at {issued_at}, more than its validity before the newest bulletin seen ({newest}): refused as a replay"
    )]
    Stale { id: String, issued_at: DateTime<Utc>, newest: DateTime<Utc> },
    #[error("{what} from central is larger than {limit} bytes: refused")]
    TooLarge { what: &'static str, limit: usize },
}

impl BulletinError {
    /// This failure as a reason a delivery report carries: an expiry is
    /// [`Reason::Expired`] (the report counts it as one), anything else a failure.
    pub fn reason(&self) -> Reason {
        match self {
            BulletinError::Expired { .. } => Reason::Expired(Some(self.to_string())),
            other => Reason::Failure(other.to_string()),
        }
    }
}

/// How the receiver reaches central.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Hold the SSE stream open; poll once after each stream failure.
    Stream,
    /// Long-poll only (links or proxies that cut streams).
    Poll,
}

/// The receiver's configuration.
#[derive(Debug, Clone)]
pub struct ReceiverConfig {
    pub sync: SyncConfig,
    pub mode: Mode,
    pub backoff: Backoff,
}

/// A bulletin whose audio is verified in the cache: what the player would be handed.
#[derive(Debug, Clone, PartialEq)]
pub struct Ready {
    pub doc: BulletinDoc,
    pub audio: PathBuf,
    /// When the signed bulletin arrived from central (the receiver's clock).
    pub received_at: DateTime<Utc>,
    /// When the audio's sha256 matched (the receiver's clock).
    pub checked_at: DateTime<Utc>,
    /// When the audio was committed durably to the cache and the id marked seen: the
    /// moment it is handed to the player.
    pub verified_at: DateTime<Utc>,
}

/// A verified bulletin to put on air: its audio is in the cache.
#[derive(Debug, Clone, PartialEq)]
pub struct Airing {
    pub ready: Ready,
    /// Plays after the first (a resumed bulletin: only those not yet aired).
    pub repeat: u32,
    /// Play the attention tone first.
    pub tone: bool,
}

/// Where verified bulletins go: the station's daemon ([`DaemonAirwaves`]); tests and the
/// benchmark put their own in its place and watch the very same receiver at work.
pub trait Airwaves: Send + Sync + 'static {
    /// Plays `airing` now at its priority: an emergency pre-empts everything but another
    /// emergency, a `priority` bulletin normal programmes. False when nothing plays any
    /// more (the daemon has stopped).
    fn air(&self, airing: Airing) -> bool;
    /// Stops bulletin `id` wherever it plays or waits; what ended is recorded there.
    fn cancel(&self, id: &str) -> bool;
    /// Records `entry` in the ledger: a bulletin the daemon never heard of (cancelled or
    /// given up before its audio arrived) still gets its record.
    fn record(&self, entry: Entry) -> bool;
    /// Plays a verified live broadcast now at its priority. False when nothing plays
    /// any more (or, by default, where live broadcasts are not played).
    fn air_live(&self, _live: crate::station::live::AirLive) -> bool {
        false
    }
}

/// The station daemon as [`Airwaves`]: bulletins become [`StationCommand`]s, with the
/// attention tone shipped in the binary.
#[derive(Clone)]
pub struct DaemonAirwaves {
    pub handle: StationHandle,
    /// Where [`install_tone`] put the attention tone.
    pub tone: PathBuf,
}

impl Airwaves for DaemonAirwaves {
    fn air(&self, airing: Airing) -> bool {
        let doc = &airing.ready.doc;
        let Some(priority) = doc.priority.level() else {
            // A test bulletin never reaches the airwaves (the receiver reports it test-ok).
            return true;
        };
        self.handle.send(StationCommand::Bulletin(Box::new(AirBulletin {
            id: doc.id.clone(),
            title: doc.title.clone(),
            audio: airing.ready.audio.clone(),
            repeat: airing.repeat,
            expires: Some(doc.expires_at),
            gain_db: doc.gain_db,
            interval: Duration::from_secs(doc.interval_secs),
            tone: airing.tone.then(|| self.tone.clone()),
            priority,
        })))
    }

    fn cancel(&self, id: &str) -> bool {
        self.handle.send(StationCommand::CancelBulletin { id: id.to_string() })
    }

    fn record(&self, entry: Entry) -> bool {
        self.handle.send(StationCommand::Record(Box::new(entry)))
    }

    fn air_live(&self, live: crate::station::live::AirLive) -> bool {
        self.handle.send(StationCommand::Live(Box::new(live)))
    }
}

/// A bulletin handed to the daemon whose start and end are still to be reported.
#[derive(Debug, Clone)]
struct Tracked {
    issued_at: DateTime<Utc>,
    plays: u32,
    started: Vec<DateTime<Utc>>,
    sounding: bool,
    /// `started` was reported: at its first sound here (the tone or the first play), or
    /// before a restart (resumed with a play already aired).
    start_reported: bool,
}

/// The receiver. Build with [`Receiver::new`], then [`Receiver::run`].
pub struct Receiver {
    config: ReceiverConfig,
    clock: SharedClock,
    http: reqwest::Client,
    seen: Arc<Seen>,
    syncer: Arc<Syncer>,
    airwaves: Arc<dyn Airwaves>,
    reporter: Reporter,
    tracked: Arc<Mutex<HashMap<String, Tracked>>>,
    /// Ids of the bulletins handed to the daemon by this process. Its lock also orders a
    /// hand-off against a cancel: a bulletin whose audio arrives in a retry task is
    /// either handed over before the cancel (which then stops it in the daemon) or not
    /// at all, and one cancelled before it was handed over gets its ledger record here,
    /// since the daemon never heard of it.
    handed: Arc<Mutex<HashSet<String>>>,
    /// The daemon's emergency play records and its ledger (see [`Receiver::follow`]).
    station: Option<(tokio::sync::mpsc::UnboundedReceiver<crate::station::ledger::Entry>, PathBuf)>,
}

/// Writes the shipped tone into `dir` (once) and returns its path.
pub fn install_tone(dir: &Path) -> Result<PathBuf, BulletinError> {
    let path = dir.join("chuong-bao.wav");
    let err = |source| BulletinError::Tone { path: path.display().to_string(), source };
    if std::fs::read(&path).ok().as_deref() != Some(TONE_WAV) {
        std::fs::create_dir_all(dir).map_err(err)?;
        let tmp = dir.join("chuong-bao.wav.tmp");
        std::fs::write(&tmp, TONE_WAV).map_err(err)?;
        std::fs::rename(&tmp, &path).map_err(err)?;
    }
    Ok(path)
}

impl Receiver {
    pub fn new(
        config: ReceiverConfig,
        clock: SharedClock,
        airwaves: Arc<dyn Airwaves>,
    ) -> Result<Self, BulletinError> {
        let root = config.sync.cache_dir.clone();
        std::fs::create_dir_all(&root)
            .map_err(|source| BulletinError::Tone { path: root.display().to_string(), source })?;
        let seen = Arc::new(Seen::open(&root.join(DB_FILE))?);
        let syncer = Arc::new(Syncer::new(config.sync.clone(), clock.clone())?);
        let url = config.sync.central.preferred().to_string();
        let http = config
            .sync
            .client_builder()?
            .build()
            .map_err(|source| BulletinError::Http { url, source })?;
        let reporter = Reporter {
            http: http.clone(),
            central: config.sync.central.clone(),
            token: config.sync.token.clone(),
        };
        Ok(Self {
            config,
            clock,
            http,
            seen,
            syncer,
            airwaves,
            reporter,
            tracked: Arc::new(Mutex::new(HashMap::new())),
            handed: Arc::new(Mutex::new(HashSet::new())),
            station: None,
        })
    }

    /// Keeps each accepted bulletin's progress from the daemon's records of its plays
    /// ([`super::Station::bulletin_records`]), and resumes what a stop left unaired on
    /// start; `ledger` is the daemon's, read on start to count plays whose record was
    /// durable before the progress was.
    pub fn follow(
        mut self,
        records: tokio::sync::mpsc::UnboundedReceiver<crate::station::ledger::Entry>,
        ledger: PathBuf,
    ) -> Self {
        self.station = Some((records, ledger));
        self
    }

    /// A copy for a task of its own (a bulletin whose audio is being retried), sharing
    /// the store, the cache, the daemon and the reporter.
    fn detached(&self) -> Self {
        Self {
            config: self.config.clone(),
            clock: self.clock.clone(),
            http: self.http.clone(),
            seen: self.seen.clone(),
            syncer: self.syncer.clone(),
            airwaves: self.airwaves.clone(),
            reporter: self.reporter.clone(),
            tracked: self.tracked.clone(),
            handed: self.handed.clone(),
            station: None,
        }
    }

    /// Whether accepted bulletin `id` was closed (cancelled, failed, finished) since.
    fn withdrawn(&self, id: &str) -> bool {
        matches!(self.seen.get(id), Ok(Some(p)) if p.stage != Stage::Accepted)
    }

    fn report(
        &self,
        id: &str,
        state: DeliveryState,
        latency_ms: Option<i64>,
        reason: Option<Reason>,
    ) {
        self.reporter.send(
            DeliveryReport {
                bulletin_id: id.to_string(),
                state,
                at: self.clock.now(),
                latency_ms,
                reason: None,
                reason_code: None,
            }
            .with_reason(reason),
        );
    }

    /// Runs until `shutdown` resolves. `status` (the daemon's) is watched to report when
    /// each bulletin started and finished.
    pub async fn run(
        mut self,
        status: Option<tokio::sync::watch::Receiver<StationStatus>>,
        shutdown: impl std::future::Future<Output = ()>,
    ) {
        if let Some(status) = status {
            tokio::spawn(track(
                status,
                self.tracked.clone(),
                self.reporter.clone(),
                self.clock.clone(),
            ));
        }
        tokio::pin!(shutdown);
        if let Some((records, ledger)) = self.station.take() {
            tokio::spawn(progress(records, self.seen.clone(), self.clock.clone()));
            // Before the first event is read: a cancel that arrives now finds the
            // bulletin already back in the daemon's queue.
            tokio::select! {
                () = &mut shutdown => return,
                () = self.resume(&ledger) => {}
            }
        }
        let mut attempt = 0u32;
        loop {
            let result = tokio::select! {
                () = &mut shutdown => return,
                r = self.once() => r,
            };
            match result {
                Ok(()) => attempt = 0,
                Err(e) => {
                    if matches!(&e, BulletinError::Http { source, .. } if crate::station::sync::certificate_refused(source))
                    {
                        tracing::error!("bulletin stream: {e}");
                    } else {
                        tracing::warn!("bulletin stream: {e}");
                    }
                    // The fallback: one poll, so a link that cannot hold a stream still
                    // gets its bulletins.
                    if self.config.mode == Mode::Stream {
                        let polled = tokio::select! {
                            () = &mut shutdown => return,
                            r = self.poll(0) => r,
                        };
                        if let Err(e) = polled {
                            tracing::warn!("bulletin poll: {e}");
                        }
                    }
                    let delay = self.config.backoff.delay(attempt, rand::random::<f64>());
                    attempt = attempt.saturating_add(1);
                    tokio::select! {
                        () = &mut shutdown => return,
                        () = tokio::time::sleep(delay) => {}
                    }
                }
            }
        }
    }

    async fn once(&mut self) -> Result<(), BulletinError> {
        match self.config.mode {
            Mode::Stream => self.stream().await,
            Mode::Poll => self.poll(25).await,
        }
    }
}

/// Starts the receiver for a daemon configured with `central_url`, `token` and
/// `province_key` (returns `None`, with a log line, when one is missing). It stops when
/// the daemon's handle stops accepting commands or `shutdown` resolves. `records` are
/// the daemon's ([`super::Station::bulletin_records`]): with them it keeps each accepted
/// bulletin's progress and resumes what a stop left unaired.
pub fn spawn_for(
    config: &super::StationConfig,
    clock: SharedClock,
    handle: StationHandle,
    status: tokio::sync::watch::Receiver<StationStatus>,
    records: tokio::sync::mpsc::UnboundedReceiver<crate::station::ledger::Entry>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Option<tokio::task::JoinHandle<()>>, BulletinError> {
    let sync = super::uplink::sync_config(config)?;
    spawn_with(sync, config, clock, handle, status, records, shutdown)
}

/// [`spawn_for`] with the station's [`SyncConfig`] already made (`None`: standalone), so
/// the receiver shares its central addresses with the uplink.
pub fn spawn_with(
    sync: Option<SyncConfig>,
    config: &super::StationConfig,
    clock: SharedClock,
    handle: StationHandle,
    status: tokio::sync::watch::Receiver<StationStatus>,
    records: tokio::sync::mpsc::UnboundedReceiver<crate::station::ledger::Entry>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<Option<tokio::task::JoinHandle<()>>, BulletinError> {
    let Some(sync) = sync else {
        tracing::info!("no central_url, token and province_key: bulletins are not received");
        return Ok(None);
    };
    let tone = install_tone(&config.data_dir.join("tone"))?;
    let receiver = Receiver::new(
        // Ten seconds at most between tries: an urgent warning must not wait out a long
        // backoff once the link is back.
        ReceiverConfig {
            sync,
            mode: Mode::Stream,
            backoff: Backoff { base: Duration::from_millis(500), max: Duration::from_secs(10) },
        },
        clock,
        Arc::new(DaemonAirwaves { handle, tone }),
    )?
    .follow(records, config.ledger_path());
    Ok(Some(tokio::spawn(receiver.run(Some(status), shutdown))))
}

#[cfg(test)]
mod tests {
    use super::delivery::*;
    use super::store::*;
    use super::verify::*;
    use super::*;
    use crate::protocol::{BulletinPriority, DocumentKind};
    use crate::signing::ProvinceKey;
    use crate::station::core::PlayingNow;

    fn doc(targets: &[&str], expires_at: DateTime<Utc>) -> BulletinDoc {
        BulletinDoc {
            id: "b-1".into(),
            title: "lũ".into(),
            targets: targets.iter().map(|s| s.to_string()).collect(),
            to_all: false,
            audio_sha256: "a".repeat(64),
            audio_size: 10,
            gain_db: 0.0,
            priority: BulletinPriority::Emergency,
            repeat: 0,
            interval_secs: 0,
            tone: false,
            issued_at: expires_at - chrono::Duration::hours(1),
            expires_at,
            event_seq: None,
        }
    }

    #[test]
    fn only_a_signed_unexpired_bulletin_for_this_station_passes() {
        let key = ProvinceKey::from_seed([7; 32]);
        let public = key.public();
        let t = DateTime::parse_from_rfc3339("2026-12-01T06:00:00Z").unwrap().with_timezone(&Utc);
        let good = key.sign(DocumentKind::Bulletin, &doc(&["a", "b"], t)).unwrap();
        assert_eq!(verify_bulletin(&public, &good, "a", t).unwrap().id, "b-1");
        assert!(matches!(
            verify_bulletin(&public, &good, "c", t),
            Err(BulletinError::NotForUs { .. })
        ));
        // `--to all` is signed as such, with no list: every station of the province.
        let everywhere = BulletinDoc { to_all: true, ..doc(&[], t) };
        let everywhere = key.sign(DocumentKind::Bulletin, &everywhere).unwrap();
        assert_eq!(verify_bulletin(&public, &everywhere, "c", t).unwrap().id, "b-1");
        assert!(matches!(
            verify_bulletin(
                &public,
                &key.sign(DocumentKind::Bulletin, &doc(&[], t)).unwrap(),
                "c",
                t
            ),
            Err(BulletinError::NotForUs { .. })
        ));
        assert!(matches!(
            verify_bulletin(&public, &good, "a", t + chrono::Duration::seconds(1)),
            Err(BulletinError::Expired { .. })
        ));
        // Signed by another key; or a manifest/cancel signature presented as a bulletin.
        let other = ProvinceKey::from_seed([8; 32]).sign(DocumentKind::Bulletin, &doc(&["a"], t));
        assert!(matches!(
            verify_bulletin(&public, &other.unwrap(), "a", t),
            Err(BulletinError::Signature(SigningError::BadSignature))
        ));
        let as_cancel = key.sign(DocumentKind::BulletinCancel, &doc(&["a"], t)).unwrap();
        let mut relabelled = as_cancel.clone();
        relabelled.kind = DocumentKind::Bulletin;
        assert!(matches!(
            verify_bulletin(&public, &relabelled, "a", t),
            Err(BulletinError::Signature(SigningError::BadSignature))
        ));
        assert!(matches!(
            verify_bulletin(&public, &as_cancel, "a", t),
            Err(BulletinError::Signature(SigningError::WrongKind { .. }))
        ));
    }

    #[test]
    fn a_signed_bulletin_outside_its_bounds_is_refused_before_it_reaches_the_core() {
        let key = ProvinceKey::from_seed([7; 32]);
        let public = key.public();
        let t = DateTime::parse_from_rfc3339("2026-12-01T06:00:00Z").unwrap().with_timezone(&Utc);
        let base = || BulletinDoc {
            issued_at: t - chrono::Duration::seconds(10),
            ..doc(&["a"], t + chrono::Duration::hours(1))
        };
        let cases: Vec<(&str, BulletinDoc)> = vec![
            // The interval that made `DateTime + TimeDelta` overflow in the core.
            (
                "interval 1e13 s",
                BulletinDoc { repeat: 1, interval_secs: 10_000_000_000_000, ..base() },
            ),
            (
                "interval longer than the validity",
                BulletinDoc { repeat: 1, interval_secs: 3611, ..base() },
            ),
            ("101 repeats", BulletinDoc { repeat: 101, ..base() }),
            (
                "valid 7 days and a second",
                BulletinDoc {
                    expires_at: t - chrono::Duration::seconds(10)
                        + chrono::Duration::days(7)
                        + chrono::Duration::seconds(1),
                    ..base()
                },
            ),
            (
                "expires before it is issued",
                BulletinDoc { issued_at: t + chrono::Duration::hours(2), ..base() },
            ),
            (
                "audio name with a path",
                BulletinDoc { audio_sha256: "../../etc/passwd".into(), ..base() },
            ),
            ("audio name in capitals", BulletinDoc { audio_sha256: "A".repeat(64), ..base() }),
            (
                "audio of 64 MiB and a byte",
                BulletinDoc { audio_size: 64 * 1024 * 1024 + 1, ..base() },
            ),
            ("gain +21 dB", BulletinDoc { gain_db: 21.0, ..base() }),
            ("title of 201 characters", BulletinDoc { title: "x".repeat(201), ..base() }),
            ("title with an escape", BulletinDoc { title: "lũ\u{1b}[2J".into(), ..base() }),
            ("id with a slash", BulletinDoc { id: "b/1".into(), ..base() }),
        ];
        for (name, doc) in cases {
            let envelope = key.sign(DocumentKind::Bulletin, &doc).unwrap();
            let got = verify_bulletin(&public, &envelope, "a", t);
            assert!(matches!(got, Err(BulletinError::OutOfRange(_))), "{name}: {got:?}");
        }
        // At the bounds it passes.
        let edge = BulletinDoc {
            repeat: 100,
            interval_secs: 3610,
            audio_size: 64 * 1024 * 1024,
            gain_db: 20.0,
            title: "x".repeat(200),
            ..base()
        };
        let envelope = key.sign(DocumentKind::Bulletin, &edge).unwrap();
        assert!(verify_bulletin(&public, &envelope, "a", t).is_ok());
    }

    #[test]
    fn the_resume_point_is_the_number_the_province_signed() {
        assert_eq!(resume_after(7, Some(7)).unwrap(), 7);
        assert_eq!(resume_after(7, None).unwrap(), 7, "a document from an older central");
        assert!(matches!(
            resume_after(9_223_372_036_854_775_807, Some(7)),
            Err(BulletinError::Renumbered { .. })
        ));
        assert!(matches!(resume_after(u64::MAX, None), Err(BulletinError::OutOfRange(_))));
    }

    #[test]
    fn seen_ids_and_the_cursor_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let t = DateTime::parse_from_rfc3339("2026-12-01T06:00:00Z").unwrap().with_timezone(&Utc);
        {
            let seen = Seen::open(&dir.path().join(DB_FILE)).unwrap();
            seen.insert("b-1", t + chrono::Duration::hours(1), t).unwrap();
            seen.set_last_event(7).unwrap();
            seen.set_last_event(5).unwrap();
        }
        let seen = Seen::open(&dir.path().join(DB_FILE)).unwrap();
        assert!(seen.contains("b-1").unwrap());
        assert!(!seen.contains("b-2").unwrap());
        assert_eq!(seen.last_event().unwrap(), 7, "the cursor never goes back");
        // Long past expiry, the id is forgotten.
        seen.insert("b-3", t + chrono::Duration::days(9), t + chrono::Duration::days(3)).unwrap();
        assert!(!seen.contains("b-1").unwrap());
    }

    fn entry(
        id: &str,
        outcome: crate::station::ledger::Outcome,
        reason: Option<Reason>,
    ) -> crate::station::ledger::Entry {
        let t = DateTime::parse_from_rfc3339("2026-12-01T06:00:00Z").unwrap().with_timezone(&Utc);
        let mut e = crate::station::ledger::Entry::missed(
            id,
            "lũ",
            crate::schedule::Layer::Provincial,
            crate::schedule::Priority::Emergency,
            t,
            Reason::TooLate,
        );
        e.outcome = outcome;
        e.set_reason(reason);
        e
    }

    #[test]
    fn accepted_bulletins_count_their_plays_until_finished_and_survive_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let t = DateTime::parse_from_rfc3339("2026-12-01T06:00:00Z").unwrap().with_timezone(&Utc);
        let s = chrono::Duration::seconds;
        let mut lu = BulletinDoc { repeat: 2, interval_secs: 5, ..doc(&["a"], t + s(3600)) };
        lu.id = "lu".into();
        let mut bao = BulletinDoc { repeat: 0, ..doc(&["a"], t + s(3600)) };
        bao.id = "bao".into();
        {
            let seen = Seen::open(&dir.path().join(DB_FILE)).unwrap();
            seen.accept(&lu, t).unwrap();
            seen.accept(&bao, t + s(1)).unwrap();
            assert!(seen.contains("lu").unwrap(), "accepted means seen: a resend is a replay");
            // Accepting twice (a replayed event that slipped through) changes nothing.
            seen.accept(&lu, t + s(2)).unwrap();
            let stage = seen.play_ended("lu", &PlayEnd::Aired, t + s(10), t + s(10)).unwrap();
            assert_eq!(stage, Some(Stage::Accepted));
        }
        // After a restart: both still to air, oldest first, with what aired so far.
        let seen = Seen::open(&dir.path().join(DB_FILE)).unwrap();
        let pending = seen.pending().unwrap();
        let ids: Vec<_> = pending.iter().map(|p| p.doc.id.as_str()).collect();
        assert_eq!(ids, ["lu", "bao"]);
        assert_eq!((pending[0].plays, pending[0].aired, pending[0].ended), (3, 1, 1));
        assert_eq!(pending[0].accepted_at, t);
        assert_eq!(pending[0].doc, lu);
        // A failed play ends for good but is not aired; the last one finishes it.
        assert_eq!(
            seen.play_ended("lu", &PlayEnd::Lost, t + s(20), t + s(20)).unwrap(),
            Some(Stage::Accepted)
        );
        assert_eq!(
            seen.play_ended("lu", &PlayEnd::Aired, t + s(30), t + s(30)).unwrap(),
            Some(Stage::Finished)
        );
        let lu_now = seen.get("lu").unwrap().unwrap();
        assert_eq!((lu_now.aired, lu_now.ended, lu_now.stage), (2, 3, Stage::Finished));
        // Nothing moves a closed bulletin again.
        assert_eq!(seen.play_ended("lu", &PlayEnd::Aired, t + s(40), t + s(40)).unwrap(), None);
        assert_eq!(seen.get("lu").unwrap().unwrap().aired, 2);
        // A cancel closes an accepted bulletin; one never received becomes seen only.
        seen.cancel("bao", bao.expires_at, t + s(41)).unwrap();
        assert_eq!(seen.get("bao").unwrap().unwrap().stage, Stage::Cancelled);
        seen.cancel("lu", lu.expires_at, t + s(42)).unwrap();
        assert_eq!(
            seen.get("lu").unwrap().unwrap().stage,
            Stage::Finished,
            "a finished one stays so"
        );
        seen.cancel("never-came", t + s(3600), t + s(43)).unwrap();
        assert!(seen.contains("never-came").unwrap() && seen.get("never-came").unwrap().is_none());
        assert!(seen.pending().unwrap().is_empty());
    }

    #[test]
    fn expiry_and_dropped_plays_close_a_bulletin_and_old_ones_are_forgotten() {
        let dir = tempfile::tempdir().unwrap();
        let t = DateTime::parse_from_rfc3339("2026-12-01T06:00:00Z").unwrap().with_timezone(&Utc);
        let s = chrono::Duration::seconds;
        let seen = Seen::open(&dir.path().join(DB_FILE)).unwrap();
        // The next repeat would start after the expiry: the core queues none, so the
        // bulletin is over after this play.
        let mut short = BulletinDoc { repeat: 3, interval_secs: 60, ..doc(&["a"], t + s(90)) };
        short.id = "short".into();
        seen.accept(&short, t).unwrap();
        assert_eq!(
            seen.play_ended("short", &PlayEnd::Aired, t + s(40), t + s(40)).unwrap(),
            Some(Stage::Finished)
        );
        // Expired in the queue: failed, with the daemon's reason.
        let mut queued = BulletinDoc { repeat: 1, ..doc(&["a"], t + s(90)) };
        queued.id = "queued".into();
        seen.accept(&queued, t).unwrap();
        let dropped = PlayEnd::Dropped("expired before it could play".into());
        assert_eq!(
            seen.play_ended("queued", &dropped, t + s(91), t + s(91)).unwrap(),
            Some(Stage::Failed)
        );
        let q = seen.get("queued").unwrap().unwrap();
        assert_eq!(q.reason.as_deref(), Some("expired before it could play"));
        // Closed by a restart with the ledger's counts.
        let mut kept = BulletinDoc { repeat: 1, ..doc(&["a"], t + s(90)) };
        kept.id = "kept".into();
        seen.accept(&kept, t).unwrap();
        let mut p = seen.get("kept").unwrap().unwrap();
        p.aired = 1;
        p.ended = 1;
        p.reason = Some("expired while the station was stopped".into());
        seen.update(&p, Stage::Failed, t + s(200)).unwrap();
        let k = seen.get("kept").unwrap().unwrap();
        assert_eq!(
            (k.aired, k.stage, k.reason.as_deref()),
            (1, Stage::Failed, p.reason.as_deref())
        );
        // A day past expiry, closed bulletins are forgotten (an open one is kept for the
        // next start to account for).
        let mut open = BulletinDoc { repeat: 0, ..doc(&["a"], t + s(90)) };
        open.id = "open".into();
        seen.accept(&open, t).unwrap();
        seen.insert("later", t + s(9 * 86_400), t + s(2 * 86_400)).unwrap();
        assert!(seen.get("short").unwrap().is_none() && seen.get("kept").unwrap().is_none());
        assert_eq!(seen.pending().unwrap().len(), 1);
    }

    #[test]
    fn a_start_counts_plays_the_ledger_holds_but_the_store_missed() {
        use crate::station::ledger::{Ledger, Outcome};
        let dir = tempfile::tempdir().unwrap();
        let t = DateTime::parse_from_rfc3339("2026-12-01T06:00:00Z").unwrap().with_timezone(&Utc);
        let s = chrono::Duration::seconds;
        let mut lu = BulletinDoc { repeat: 2, interval_secs: 5, ..doc(&["a"], t + s(3600)) };
        lu.id = "lu".into();
        let seen = Seen::open(&dir.path().join(DB_FILE)).unwrap();
        seen.accept(&lu, t).unwrap();
        // Played and durable in the ledger; the stop came before the store heard of it.
        // The next play was cut by the stop.
        let ledger_path = dir.path().join("ledger.sqlite3");
        let mut ledger = Ledger::open(&ledger_path, "a").unwrap();
        let mut played = entry("lu", Outcome::Played, None);
        played.planned = t + s(1);
        ledger.append(played).unwrap();
        let mut cut = entry("lu", Outcome::Failed, Some(Reason::Interrupted));
        cut.planned = t + s(7);
        ledger.append(cut).unwrap();
        let mut p = seen.pending().unwrap().remove(0);
        assert!(reconcile(&mut p, &ledger_path), "the ledger counted more");
        assert_eq!((p.aired, p.ended, p.last_planned), (1, 1, Some(t + s(7))));
        assert!(!reconcile(&mut p, &ledger_path), "nothing more the second time");
        // The record of what a start could not air never collides with a play's key.
        assert_eq!(
            unaired(&p, Reason::TooLate, t + s(3)).planned,
            t + s(7) + chrono::Duration::milliseconds(1)
        );
        assert_eq!(unaired(&p, Reason::TooLate, t + s(60)).planned, t + s(60));
        // No ledger at all (first start): the store's counts stand.
        let mut q = seen.pending().unwrap().remove(0);
        assert!(!reconcile(&mut q, &dir.path().join("none.sqlite3")));
        assert_eq!(q.aired, 0);
    }

    #[test]
    fn ledger_records_move_progress_only_when_a_play_ended_for_good() {
        use crate::station::ledger::Outcome;
        assert_eq!(play_end(&entry("b", Outcome::Played, None)), Some(PlayEnd::Aired));
        assert_eq!(play_end(&entry("b", Outcome::Late, None)), Some(PlayEnd::Aired));
        assert_eq!(play_end(&entry("b:tone", Outcome::Played, None)), None);
        // Cut by the stop: aired again from the start after the restart.
        let interrupted = entry("b", Outcome::Failed, Some(Reason::Interrupted));
        assert_eq!(play_end(&interrupted), None);
        let shutdown = entry("b", Outcome::Preempted, Some(Reason::Shutdown));
        assert_eq!(play_end(&shutdown), None);
        let cancelled = entry("b", Outcome::Missed, Some(Reason::Cancelled));
        assert_eq!(play_end(&cancelled), None);
        assert_eq!(
            play_end(&entry(
                "b",
                Outcome::Failed,
                Some(Reason::Failure("audio unreadable".into()))
            )),
            Some(PlayEnd::Lost)
        );
        assert_eq!(
            play_end(&entry("b", Outcome::Missed, Some(Reason::Expired(None)))),
            Some(PlayEnd::Dropped("expired before it could play".into()))
        );
    }

    #[test]
    fn the_tone_is_installed_once_and_decodes() {
        let dir = tempfile::tempdir().unwrap();
        let path = install_tone(dir.path()).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), TONE_WAV);
        assert_eq!(install_tone(dir.path()).unwrap(), path);
        assert!(crate::audio::probe(&path).unwrap().duration > Duration::from_millis(300));
    }

    #[test]
    fn started_is_reported_at_the_tone_and_finished_after_the_last_play() {
        use crate::schedule::{Layer, Priority};
        let push = DateTime::parse_from_rfc3339("2026-12-01T05:30:00Z").unwrap().to_utc();
        let ms = chrono::Duration::milliseconds;
        let sounding = |item_id: &str, planned, started| PlayingNow {
            item_id: item_id.into(),
            title: "lũ".into(),
            layer: Layer::Provincial,
            priority: Priority::Emergency,
            planned,
            started,
            audio_sha256: None,
        };
        let tracked = |start_reported| Tracked {
            issued_at: push,
            plays: 1,
            started: Vec::new(),
            sounding: false,
            start_reported,
        };
        let mut map = HashMap::from([("b-1".to_string(), tracked(false))]);
        // The tone sounds 43 ms after the push: that is the first sound people hear.
        let tone = sounding("b-1:tone", push, push + ms(43));
        let reports = observe(std::slice::from_ref(&tone), &mut map, push + ms(100));
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!(reports[0].state, DeliveryState::Started);
        assert_eq!((reports[0].at, reports[0].latency_ms), (push + ms(43), Some(43)));
        // The tone ends, the bulletin follows it: no second `started`, and the tone's end
        // is not the bulletin's.
        assert!(observe(&[], &mut map, push + ms(2_050)).is_empty());
        let play = sounding("b-1", push + ms(2_050), push + ms(2_078));
        assert!(observe(std::slice::from_ref(&play), &mut map, push + ms(2_100)).is_empty());
        let reports = observe(&[], &mut map, push + ms(5_000));
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert_eq!((reports[0].state, reports[0].at), (DeliveryState::Finished, push + ms(5_000)));
        assert!(map.is_empty(), "finished bulletins are no longer tracked");

        // Without a tone the first play is the first sound; after a restart with a play
        // already aired, nothing is reported started again.
        let mut map = HashMap::from([("b-1".to_string(), tracked(false))]);
        let reports = observe(std::slice::from_ref(&play), &mut map, push + ms(2_100));
        assert_eq!(reports[0].latency_ms, Some(2_078));
        let mut map = HashMap::from([("b-1".to_string(), tracked(true))]);
        assert!(observe(std::slice::from_ref(&play), &mut map, push + ms(2_100)).is_empty());
    }
}
