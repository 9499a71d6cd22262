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
//! - Events live in memory (a bulletin is rare and small) and in SQLite, so a restart of
//!   central resumes every stream where it was.
//! - "Not reached (offline since …)" comes from the last contact: a heartbeat or the
//!   event stream itself.
//!
//! The tables live in their own file (`bulletins.sqlite`) beside the main store, so this
//! module changes nothing in [`crate::store`].

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Deserialize;

use super::api::{operator_auth as operator, station_auth as station};
use super::delivery_log::DeliveryLog;
use super::{ApiError, AppState};
use crate::protocol::{
    BulletinCancelDoc, BulletinDoc, BulletinEvent, BulletinEvents, BulletinInfo, DeliveryReport,
    DeliveryState, DocumentKind, PushBulletinRequest, PushBulletinResponse, SignedEnvelope,
    StationDelivery, Target,
};
use crate::signing::SigningError;
use crate::store::{Role, Station};

/// The bulletin tables' file inside central's data directory.
pub const DB_FILE: &str = "bulletins.sqlite";
/// The text-to-speech program central runs for `--text`.
pub const ESPEAK: &str = "espeak-ng";
/// Comment line sent on an idle stream so proxies and stations know it is alive.
pub const STREAM_HEARTBEAT: Duration = Duration::from_secs(15);
/// Longest a poll may wait for an event.
const MAX_POLL_WAIT: Duration = Duration::from_secs(30);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bulletins (
    id TEXT PRIMARY KEY,
    doc_json TEXT NOT NULL,
    issued_by TEXT NOT NULL,
    cancelled_at TEXT
);
CREATE TABLE IF NOT EXISTS bulletin_events (
    seq INTEGER PRIMARY KEY,
    bulletin_id TEXT NOT NULL,
    envelope_json TEXT NOT NULL,
    targets_json TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS bulletin_deliveries (
    bulletin_id TEXT NOT NULL,
    station_id TEXT NOT NULL,
    state TEXT NOT NULL,
    at TEXT NOT NULL,
    latency_ms INTEGER,
    reason TEXT,
    received_at TEXT NOT NULL,
    PRIMARY KEY (bulletin_id, station_id, state)
);
";

/// Why the bulletin store failed.
#[derive(Debug, thiserror::Error)]
pub enum BulletinError {
    #[error("bulletin database {path}: {source}")]
    Open { path: String, source: rusqlite::Error },
    #[error("bulletin database: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("stored bulletin is corrupt: {0}")]
    Corrupt(String),
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

/// A stored bulletin, who issued it, and when it was cancelled.
type StoredBulletin = (BulletinDoc, String, Option<DateTime<Utc>>);

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

/// The bulletin state central shares between handlers.
pub struct Hub {
    db: Mutex<Connection>,
    /// Delivery reports go through their own writer (group commit).
    deliveries: DeliveryLog,
    events: RwLock<Vec<Arc<StoredEvent>>>,
    latest: tokio::sync::watch::Sender<u64>,
    /// Open event streams per station.
    connected: Mutex<HashMap<String, usize>>,
    /// Last stream contact per station (heartbeats are in the main store).
    contact: Mutex<HashMap<String, DateTime<Utc>>>,
}

pub(super) fn time_text(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, BulletinError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| BulletinError::Corrupt(format!("time {text:?}: {e}")))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Hub {
    /// Opens (creating if needed) `bulletins.sqlite` in `data_dir` and loads the events.
    pub fn open(data_dir: &Path) -> Result<Self, BulletinError> {
        let path = data_dir.join(DB_FILE);
        let shown = path.display().to_string();
        let open = || -> Result<Connection, rusqlite::Error> {
            let conn = Connection::open(&path)?;
            conn.pragma_update(None, "journal_mode", "WAL")?;
            conn.pragma_update(None, "synchronous", "FULL")?;
            conn.busy_timeout(Duration::from_secs(5))?;
            conn.execute_batch(SCHEMA)?;
            // Added with reason codes: a file from an older central gets the column.
            let has_code: bool = conn
                .prepare("SELECT 1 FROM pragma_table_info('bulletin_deliveries') WHERE name = 'reason_code'")?
                .exists([])?;
            if !has_code {
                conn.execute_batch("ALTER TABLE bulletin_deliveries ADD COLUMN reason_code TEXT")?;
            }
            Ok(conn)
        };
        let conn = open().map_err(|source| BulletinError::Open { path: shown, source })?;
        let mut events = Vec::new();
        {
            let mut stmt = conn.prepare(
                "SELECT seq, envelope_json, targets_json, expires_at, bulletin_id FROM bulletin_events ORDER BY seq",
            )?;
            let rows = stmt.query_map([], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                ))
            })?;
            for row in rows {
                let (seq, envelope, targets, expires, bulletin_id) = row?;
                let envelope: SignedEnvelope = serde_json::from_str(&envelope)
                    .map_err(|e| BulletinError::Corrupt(e.to_string()))?;
                events.push(Arc::new(StoredEvent {
                    seq: seq as u64,
                    bulletin_id,
                    data: event_data(seq as u64, &envelope)?,
                    targets: serde_json::from_str(&targets)
                        .map_err(|e| BulletinError::Corrupt(e.to_string()))?,
                    expires_at: parse_time(&expires)?,
                    envelope,
                }));
            }
        }
        let latest = events.last().map_or(0, |e| e.seq);
        Ok(Self {
            db: Mutex::new(conn),
            deliveries: DeliveryLog::open(&path)?,
            events: RwLock::new(events),
            latest: tokio::sync::watch::Sender::new(latest),
            connected: Mutex::new(HashMap::new()),
            contact: Mutex::new(HashMap::new()),
        })
    }

    /// Stores `bulletin` (if given) and appends one event, durably, then wakes every
    /// stream. `sign` makes the event's envelope from its sequence number, which goes
    /// under the signature ([`BulletinDoc::event_seq`]). Returns the sequence number.
    fn append(
        &self,
        bulletin: Option<(&BulletinDoc, &str)>,
        cancel: Option<(&str, DateTime<Utc>)>,
        sign: impl FnOnce(u64) -> Result<SignedEnvelope, SigningError>,
        targets: &[String],
        expires_at: DateTime<Utc>,
    ) -> Result<(u64, SignedEnvelope), BulletinError> {
        let targets_json =
            serde_json::to_string(targets).map_err(|e| BulletinError::Corrupt(e.to_string()))?;
        // Writers hold the events lock across the insert so sequence order is list order.
        let mut events = self.events.write().unwrap_or_else(|p| p.into_inner());
        let seq = events.last().map_or(0, |e| e.seq) + 1;
        let envelope = sign(seq).map_err(|e| BulletinError::Corrupt(e.to_string()))?;
        let envelope_json =
            serde_json::to_string(&envelope).map_err(|e| BulletinError::Corrupt(e.to_string()))?;
        let id = {
            let mut conn = lock(&self.db);
            let tx = conn.transaction()?;
            let id = if let Some((doc, by)) = bulletin {
                let mut doc = doc.clone();
                doc.event_seq = Some(seq);
                let doc_json = serde_json::to_string(&doc)
                    .map_err(|e| BulletinError::Corrupt(e.to_string()))?;
                tx.execute(
                    "INSERT INTO bulletins (id, doc_json, issued_by) VALUES (?1, ?2, ?3)",
                    params![doc.id, doc_json, by],
                )?;
                doc.id.clone()
            } else if let Some((id, at)) = cancel {
                tx.execute(
                    "UPDATE bulletins SET cancelled_at = ?2 WHERE id = ?1",
                    params![id, time_text(at)],
                )?;
                id.to_string()
            } else {
                return Err(BulletinError::Corrupt("event without a bulletin".into()));
            };
            tx.execute(
                "INSERT INTO bulletin_events (seq, bulletin_id, envelope_json, targets_json, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![seq as i64, id, envelope_json, targets_json, time_text(expires_at)],
            )?;
            tx.commit()?;
            id
        };
        events.push(Arc::new(StoredEvent {
            seq,
            bulletin_id: id,
            data: event_data(seq, &envelope)?,
            targets: targets.iter().cloned().collect(),
            expires_at,
            envelope: envelope.clone(),
        }));
        drop(events);
        self.latest.send_replace(seq);
        Ok((seq, envelope))
    }

    /// Where a station's stream resumes: after `after`, or from the start when `after`
    /// is beyond the newest event (a resume point central never issued — a station
    /// whose stored cursor was corrupted, or a central whose events were restored from
    /// an older backup). Sending from the start costs nothing: stations refuse what
    /// they have seen, and expired events are not sent.
    fn resume_point(&self, after: u64) -> u64 {
        let newest =
            self.events.read().unwrap_or_else(|p| p.into_inner()).last().map_or(0, |e| e.seq);
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

    /// Events after `after` for `station` whose bulletin has not expired at `now`.
    fn events_for(&self, station: &str, after: u64, now: DateTime<Utc>) -> Vec<Arc<StoredEvent>> {
        let events = self.events.read().unwrap_or_else(|p| p.into_inner());
        let start = events.partition_point(|e| e.seq <= after);
        events[start..]
            .iter()
            .filter(|e| e.targets.contains(station) && e.expires_at > now)
            .cloned()
            .collect()
    }

    /// The stored bulletin `id` (with `targets` resolved for a `to_all` one), who issued
    /// it, and when it was cancelled.
    fn bulletin(&self, id: &str) -> Result<Option<StoredBulletin>, BulletinError> {
        let conn = lock(&self.db);
        let row = conn
            .query_row(
                "SELECT doc_json, issued_by, cancelled_at FROM bulletins WHERE id = ?1",
                params![id],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, Option<String>>(2)?,
                    ))
                },
            )
            .optional()?;
        drop(conn);
        row.map(|(doc, by, cancelled)| {
            let doc = self.stored_doc(&doc)?;
            let cancelled = cancelled.as_deref().map(parse_time).transpose()?;
            Ok((doc, by, cancelled))
        })
        .transpose()
    }

    fn bulletin_ids(&self) -> Result<Vec<String>, BulletinError> {
        let conn = lock(&self.db);
        let mut stmt = conn.prepare("SELECT id FROM bulletins ORDER BY rowid DESC")?;
        let ids = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<Result<_, _>>()?;
        Ok(ids)
    }

    /// A stored bulletin document, with `targets` resolved for a `to_all` one.
    fn stored_doc(&self, json: &str) -> Result<BulletinDoc, BulletinError> {
        let mut doc: BulletinDoc =
            serde_json::from_str(json).map_err(|e| BulletinError::Corrupt(e.to_string()))?;
        if doc.to_all {
            doc.targets = self.resolved_targets(&doc.id);
        }
        Ok(doc)
    }

    /// The station ids bulletin `id` was resolved to when pushed, sorted.
    fn resolved_targets(&self, id: &str) -> Vec<String> {
        let events = self.events.read().unwrap_or_else(|p| p.into_inner());
        let mut targets: Vec<String> = events
            .iter()
            .find(|e| e.bulletin_id == id)
            .map(|e| e.targets.iter().cloned().collect())
            .unwrap_or_default();
        targets.sort();
        targets
    }

    /// Whether `station` is one of bulletin `id`'s targets (from memory: asked once per
    /// delivery report, thousands of times a second after a province-wide push).
    fn is_target(&self, id: &str, station: &str) -> bool {
        let events = self.events.read().unwrap_or_else(|p| p.into_inner());
        events.iter().any(|e| e.bulletin_id == id && e.targets.contains(station))
    }

    /// Every state each station reported for bulletin `id`.
    fn deliveries(&self, id: &str) -> Result<Vec<(String, DeliveryReport)>, BulletinError> {
        let conn = lock(&self.db);
        let mut stmt = conn.prepare(
            "SELECT station_id, state, at, latency_ms, reason, reason_code FROM bulletin_deliveries WHERE bulletin_id = ?1",
        )?;
        let rows = stmt.query_map(params![id], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, Option<i64>>(3)?,
                r.get::<_, Option<String>>(4)?,
                r.get::<_, Option<String>>(5)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (station, state, at, latency_ms, reason, reason_code) = row?;
            let state = serde_json::from_value::<DeliveryState>(serde_json::Value::String(state))
                .map_err(|e| BulletinError::Corrupt(e.to_string()))?;
            out.push((
                station,
                DeliveryReport {
                    bulletin_id: id.to_string(),
                    state,
                    at: parse_time(&at)?,
                    latency_ms,
                    reason,
                    reason_code,
                },
            ));
        }
        Ok(out)
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
        let stored: Vec<(String, Option<String>)> = {
            let conn = lock(&self.db);
            let mut stmt =
                conn.prepare("SELECT doc_json, cancelled_at FROM bulletins ORDER BY rowid")?;
            stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?.collect::<Result<_, _>>()?
        };
        let mut out = Vec::new();
        for (doc, cancelled) in stored {
            let doc = self.stored_doc(&doc)?;
            if doc.issued_at < from || doc.issued_at >= until {
                continue;
            }
            let cancelled = cancelled.as_deref().map(parse_time).transpose()?;
            let deliveries = self.deliveries(&doc.id)?;
            out.push(Issued { doc, cancelled_at: cancelled, deliveries });
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

/// The bulletin routes (merged into [`super::router`]).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/bulletins", post(push).get(list))
        .route("/api/v1/bulletins/{id}", get(show))
        .route("/api/v1/bulletins/{id}/cancel", post(cancel))
        .route("/api/v1/station/events", get(stream))
        .route("/api/v1/station/events/poll", get(poll))
        .route("/api/v1/station/bulletins/delivery", post(delivery))
}

/// The stations a push may reach under `role` (see the module docs).
pub fn resolve_targets(
    stations: Vec<Station>,
    role: &Role,
    to: &Target,
) -> Result<Vec<String>, ApiError> {
    match role {
        Role::Admin => {}
        Role::Viewer => {
            return Err(ApiError::Forbidden("viewer tokens cannot push bulletins".into()));
        }
        Role::District(own) => {
            if matches!(to, Target::All) {
                return Err(ApiError::Forbidden(format!(
                    "district tokens cannot push to all stations: use --to district:{own}"
                )));
            }
            if let Target::District(name) = to
                && name != own
            {
                return Err(ApiError::Forbidden(format!(
                    "this token may push only to district {own:?}"
                )));
            }
        }
    }
    // A district token is answered as if its district were the whole province: the
    // same refusal for a station elsewhere as for one that does not exist, so nothing
    // about other districts' stations can be learnt from it.
    let visible: Vec<Station> = match role {
        Role::District(own) => stations.into_iter().filter(|s| &s.district == own).collect(),
        _ => stations,
    };
    let chosen: Vec<Station> = match to {
        Target::All => visible,
        Target::District(name) => {
            let chosen: Vec<Station> =
                visible.into_iter().filter(|s| &s.district == name).collect();
            if chosen.is_empty() {
                return Err(ApiError::NotFound(format!("no stations in district {name:?}")));
            }
            chosen
        }
        Target::Stations(ids) => {
            let mut chosen = Vec::new();
            for id in ids.iter().collect::<std::collections::BTreeSet<_>>() {
                let s = visible.iter().find(|s| &s.id == id).cloned().ok_or_else(|| {
                    let id = crate::protocol::text::printable(&crate::protocol::bounds::clip(id));
                    match role {
                        Role::District(own) => ApiError::Forbidden(format!(
                            "station {id:?} is not one of district {own:?}'s stations: this token may push only to them"
                        )),
                        _ => ApiError::NotFound(format!(
                            "no station {id:?}: see `loa status` for the list"
                        )),
                    }
                })?;
                chosen.push(s);
            }
            chosen
        }
    };
    if chosen.is_empty() {
        return Err(ApiError::NotFound(
            "no stations to push to: add one with `loa central station add`".into(),
        ));
    }
    Ok(chosen.into_iter().map(|s| s.id).collect())
}

/// Longest espeak-ng may take to render a bulletin's text (at most [`MAX_TEXT_CHARS`]:
/// a few seconds of work); a voice that hangs is killed.
pub const SPEECH_TIMEOUT: Duration = Duration::from_secs(60);

/// Renders `text` to a WAV file with espeak-ng (`voice`, e.g. `vi`). The program is killed
/// after [`SPEECH_TIMEOUT`], and a result larger than a bulletin's audio may be
/// ([`crate::protocol::bounds::MAX_BULLETIN_AUDIO_BYTES`]) is refused.
pub async fn render_speech(
    program: &str,
    text: &str,
    voice: &str,
    out: &Path,
) -> Result<(), BulletinError> {
    let child = tokio::process::Command::new(program)
        .arg("-v")
        .arg(voice)
        .arg("-w")
        .arg(out)
        .arg("--")
        .arg(text)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let speech_error =
        |detail: String| BulletinError::Speech { program: program.to_string(), detail };
    let child = match child {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BulletinError::NoSpeech { program: program.to_string() });
        }
        Err(e) => return Err(speech_error(e.to_string())),
        Ok(child) => child,
    };
    // Dropping the wait on timeout kills the child (`kill_on_drop`).
    let output = match tokio::time::timeout(SPEECH_TIMEOUT, child.wait_with_output()).await {
        Err(_) => {
            return Err(speech_error(format!(
                "it did not finish within {} s and was stopped",
                SPEECH_TIMEOUT.as_secs()
            )));
        }
        Ok(Err(e)) => return Err(speech_error(e.to_string())),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        return Err(speech_error(format!(
            "{} ({}); is the voice {voice:?} installed? `espeak-ng --voices` lists them",
            crate::protocol::text::printable(String::from_utf8_lossy(&output.stderr).trim()),
            output.status
        )));
    }
    let size = tokio::fs::metadata(out).await.map(|m| m.len()).unwrap_or(0);
    let limit = crate::protocol::bounds::MAX_BULLETIN_AUDIO_BYTES;
    if size > limit {
        return Err(speech_error(format!(
            "the speech is {size} bytes, more than a bulletin's audio may be ({limit})"
        )));
    }
    Ok(())
}

/// Renders `text`, measures it like an upload and stores it in the library.
async fn speech_audio(
    state: &AppState,
    text: &str,
    voice: &str,
    title: &str,
) -> Result<crate::protocol::AudioInfo, ApiError> {
    let nonce: u64 = rand::random();
    let temp = state.tmp_dir().join(format!("speech-{nonce:016x}.wav"));
    struct Remove(std::path::PathBuf);
    impl Drop for Remove {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
    let _guard = Remove(temp.clone());
    render_speech(ESPEAK, text, voice, &temp).await?;
    let bytes = tokio::fs::read(&temp).await?;
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&bytes));
    let path = temp.clone();
    // Named as what it is: the operator never sees central's temporary path.
    let shown = Path::new("speech.wav");
    let (measured, _) =
        tokio::task::spawn_blocking(move || super::ingest::measure_as(&path, shown))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .map_err(|e| ApiError::BadRequest(format!("rendered speech is not playable: {e}")))?;
    let info = crate::protocol::AudioInfo {
        sha256: sha256.clone(),
        title: title.to_string(),
        size: bytes.len() as u64,
        duration_ms: measured.duration_ms,
        loudness_lufs: measured.loudness_lufs,
        gain_db: super::ingest::gain_towards(state.config.loudness_target_lufs, &measured),
        damage: None,
    };
    // Durable before it is listed: fsync the file, rename, fsync the directory.
    tokio::fs::File::open(&temp).await?.sync_all().await?;
    tokio::fs::rename(&temp, state.audio_dir().join(&sha256)).await?;
    tokio::fs::File::open(state.audio_dir()).await?.sync_all().await?;
    state.store.put_audio(&info, measured.true_peak_dbtp)?;
    Ok(state.store.audio(&sha256)?.unwrap_or(info))
}

fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("{what} is not valid JSON of the expected shape: {e}"))
    })
}

/// Longest text a `--text` bulletin may have, in characters: about five minutes of
/// speech. A longer text is a mistake (or an attack: 52 KB of text made a 124 MB WAV
/// that every station then downloaded).
pub const MAX_TEXT_CHARS: usize = 4000;

/// The title of a bulletin pushed without one: the first words of its text.
fn title_from_text(text: &str) -> String {
    const WORDS: usize = 8;
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut title = words.iter().take(WORDS).copied().collect::<Vec<_>>().join(" ");
    if title.chars().count() > 60 {
        title = title.chars().take(60).collect::<String>().trim_end().to_string();
    }
    if words.len() > WORDS || title.chars().count() < words.join(" ").chars().count() {
        title.push('…');
    }
    title
}

/// Checks the numbers of a push request before anything is rendered or signed.
fn check_request(request: &PushBulletinRequest) -> Result<(), ApiError> {
    use crate::protocol::bounds::{
        MAX_BULLETIN_REPEAT, MAX_BULLETIN_VALIDITY_SECS, MAX_TITLE_CHARS, check_text,
    };
    if request.expires_secs == 0 || request.expires_secs > MAX_BULLETIN_VALIDITY_SECS {
        return Err(ApiError::BadRequest(format!(
            "expiry of {} s is out of range: give --expires between 1s and 7d",
            request.expires_secs
        )));
    }
    if request.repeat > MAX_BULLETIN_REPEAT {
        return Err(ApiError::BadRequest(format!(
            "--repeat {} is more than {MAX_BULLETIN_REPEAT}",
            request.repeat
        )));
    }
    if request.interval_secs > request.expires_secs {
        return Err(ApiError::BadRequest(format!(
            "--interval of {} s is longer than the bulletin is valid (--expires, {} s): \
             give an interval shorter than the expiry",
            request.interval_secs, request.expires_secs
        )));
    }
    if let Some(title) = &request.title {
        check_text("--title", title, MAX_TITLE_CHARS).map_err(ApiError::BadRequest)?;
    }
    if let Some(text) = &request.text {
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(ApiError::BadRequest(format!(
                "--text has {chars} characters: a spoken bulletin takes at most {MAX_TEXT_CHARS} \
                 (about five minutes); record a longer one and push it with --audio FILE"
            )));
        }
    }
    if let Some(voice) = &request.voice {
        let plain = voice.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_+".contains(&b));
        if voice.is_empty() || voice.len() > 40 || !plain {
            return Err(ApiError::BadRequest(format!(
                "voice {:?} is not an espeak-ng voice name (e.g. vi, en, km)",
                crate::protocol::bounds::clip(voice)
            )));
        }
    }
    Ok(())
}

async fn push(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let role = operator(&state, &headers)?;
    let body = super::body::read(body, super::body::PUSH_LIMIT).await?;
    let request: PushBulletinRequest = parse_json(&body, "bulletin push request")?;
    check_request(&request)?;
    let targets = resolve_targets(state.store.stations()?, &role, &request.to)?;
    let title = match (&request.title, &request.text) {
        (Some(title), _) => title.clone(),
        (None, Some(text)) => title_from_text(text),
        (None, None) => "bulletin".to_string(),
    };
    let audio = match (&request.audio_sha256, &request.text) {
        (Some(sha), None) => state.store.audio(sha)?.ok_or_else(|| {
            ApiError::BadRequest(format!(
                "audio sha256:{} is not in the library: upload it with `loa audio add`",
                crate::protocol::bounds::clip(sha)
            ))
        })?,
        (None, Some(text)) if !text.trim().is_empty() => {
            let voice = request.voice.as_deref().unwrap_or("vi");
            speech_audio(&state, text, voice, &title).await?
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of --audio FILE or --text TEXT (not empty)".into(),
            ));
        }
    };
    let now = state.clock.now();
    let nonce: [u8; 8] = rand::random();
    let to_all = request.to == Target::All;
    let doc = BulletinDoc {
        id: format!("b-{}-{}", now.format("%Y%m%d%H%M%S"), hex::encode(nonce)),
        title,
        targets: if to_all { Vec::new() } else { targets.clone() },
        to_all,
        audio_sha256: audio.sha256.clone(),
        audio_size: audio.size,
        gain_db: audio.gain_db,
        priority: request.priority,
        repeat: request.repeat,
        interval_secs: request.interval_secs,
        tone: request.tone,
        issued_at: now,
        expires_at: now + chrono::Duration::seconds(request.expires_secs as i64),
        event_seq: None,
    };
    // The same bounds every station checks: nothing is signed that a station refuses.
    doc.check_bounds().map_err(|why| ApiError::BadRequest(format!("bulletin refused: {why}")))?;
    // Hot before the stations hear of it: the whole fleet asks for it at once.
    let path = state.audio_dir().join(&doc.audio_sha256);
    if let Err(e) = state.hot_audio.load(&doc.audio_sha256, &path, doc.expires_at, now).await {
        tracing::warn!(id = %doc.id, "bulletin audio will be served from disk: {e}");
    }
    let by = role.to_string();
    let sign = |seq| {
        let signed = BulletinDoc { event_seq: Some(seq), ..doc.clone() };
        state.key.sign(DocumentKind::Bulletin, &signed)
    };
    let (seq, _) =
        state.bulletins.append(Some((&doc, &by)), None, sign, &targets, doc.expires_at)?;
    tracing::info!(id = %doc.id, seq, stations = targets.len(), priority = %doc.priority, by = %by, "bulletin pushed");
    Ok(axum::Json(PushBulletinResponse {
        id: doc.id,
        targets,
        audio_sha256: doc.audio_sha256,
        issued_at: doc.issued_at,
        expires_at: doc.expires_at,
    })
    .into_response())
}

/// The stations of `role`'s district, or `None` for a role that sees every station.
fn own_stations(state: &AppState, role: &Role) -> Result<Option<HashSet<String>>, ApiError> {
    match role {
        Role::District(own) => Ok(Some(
            state
                .store
                .stations()?
                .into_iter()
                .filter(|s| &s.district == own)
                .map(|s| s.id)
                .collect(),
        )),
        Role::Admin | Role::Viewer => Ok(None),
    }
}

/// A bulletin `role` may see: a district token sees only bulletins that reach one of
/// its stations (and only those stations' rows); to it, any other does not exist.
fn visible_info(state: &AppState, role: &Role, id: &str) -> Result<BulletinInfo, ApiError> {
    let mut info = info(state, id)?;
    if let Some(own) = own_stations(state, role)? {
        if !info.doc.targets.iter().any(|t| own.contains(t)) {
            return Err(no_bulletin(id));
        }
        info.stations.retain(|s| own.contains(&s.station_id));
        info.doc.targets.retain(|t| own.contains(t));
    }
    Ok(info)
}

fn no_bulletin(id: &str) -> ApiError {
    let id = crate::protocol::text::printable(&crate::protocol::bounds::clip(id));
    ApiError::NotFound(format!("no bulletin {id:?}: `loa bulletin list`"))
}

/// Whether `role` may cancel a bulletin sent to `targets`.
fn may_touch(state: &AppState, role: &Role, targets: &[String]) -> Result<(), ApiError> {
    match role {
        Role::Admin => Ok(()),
        Role::Viewer => Err(ApiError::Forbidden("viewer tokens cannot cancel bulletins".into())),
        Role::District(own) => {
            let mine = own_stations(state, role)?.unwrap_or_default();
            if targets.iter().all(|t| mine.contains(t)) {
                Ok(())
            } else {
                Err(ApiError::Forbidden(format!(
                    "this bulletin also reaches stations outside district {own:?}: only an admin may cancel it"
                )))
            }
        }
    }
}

async fn cancel(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let role = operator(&state, &headers)?;
    let (doc, _, cancelled) = state.bulletins.bulletin(&id)?.ok_or_else(|| no_bulletin(&id))?;
    // A district token learns nothing of a bulletin that reaches none of its stations.
    visible_info(&state, &role, &id)?;
    may_touch(&state, &role, &doc.targets)?;
    if let Some(at) = cancelled {
        return Err(ApiError::BadRequest(format!("bulletin {id} was already cancelled at {at}")));
    }
    let now = state.clock.now();
    let order = BulletinCancelDoc {
        id: doc.id.clone(),
        targets: if doc.to_all { Vec::new() } else { doc.targets.clone() },
        to_all: doc.to_all,
        issued_at: now,
        expires_at: doc.expires_at,
        event_seq: None,
    };
    let sign = |seq| {
        let signed = BulletinCancelDoc { event_seq: Some(seq), ..order.clone() };
        state.key.sign(DocumentKind::BulletinCancel, &signed)
    };
    let (seq, _) =
        state.bulletins.append(None, Some((&doc.id, now)), sign, &doc.targets, doc.expires_at)?;
    tracing::info!(id = %doc.id, seq, by = %role, "bulletin cancelled");
    Ok(axum::Json(visible_info(&state, &role, &id)?).into_response())
}

/// A bulletin with every target station's state.
fn info(state: &AppState, id: &str) -> Result<BulletinInfo, ApiError> {
    let (doc, issued_by, cancelled_at) =
        state.bulletins.bulletin(id)?.ok_or_else(|| no_bulletin(id))?;
    let mut per: BTreeMap<String, Vec<DeliveryReport>> = BTreeMap::new();
    for (station, report) in state.bulletins.deliveries(id)? {
        per.entry(station).or_default().push(report);
    }
    let beats: HashMap<String, DateTime<Utc>> =
        state.store.heartbeats()?.into_iter().map(|h| (h.station_id, h.received_at)).collect();
    let connected = lock(&state.bulletins.connected).clone();
    let contact = lock(&state.bulletins.contact).clone();
    let stations = doc
        .targets
        .iter()
        .map(|sid| {
            let reports = per.remove(sid).unwrap_or_default();
            let failed = reports.iter().find(|r| r.state == DeliveryState::Failed);
            let furthest = failed.or_else(|| reports.iter().max_by_key(|r| r.state));
            let latency_ms = reports
                .iter()
                .find(|r| r.state == DeliveryState::Started)
                .and_then(|r| r.latency_ms);
            let last_seen = match (beats.get(sid), contact.get(sid)) {
                (Some(a), Some(b)) => Some(*a.max(b)),
                (a, b) => a.or(b).copied(),
            };
            StationDelivery {
                station_id: sid.clone(),
                state: furthest.map(|r| r.state),
                at: furthest.map(|r| r.at),
                latency_ms,
                reason: furthest.and_then(|r| r.reason.clone()),
                connected: connected.contains_key(sid),
                last_seen,
            }
        })
        .collect();
    Ok(BulletinInfo { doc, cancelled_at, issued_by, stations })
}

/// Bulletins `loa bulletin list` shows when it does not say, newest first.
pub const LIST_DEFAULT: usize = 100;
/// Most bulletins one list may ask for.
pub const LIST_MAX: usize = 1000;

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let role = operator(&state, &headers)?;
    let limit = query.limit.unwrap_or(LIST_DEFAULT);
    if limit == 0 || limit > LIST_MAX {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is out of range: list 1 to {LIST_MAX} bulletins"
        )));
    }
    let mut out = Vec::new();
    for id in state.bulletins.bulletin_ids()? {
        if out.len() == limit {
            break;
        }
        match visible_info(&state, &role, &id) {
            Ok(info) => out.push(info),
            Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(axum::Json(out).into_response())
}

async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let role = operator(&state, &headers)?;
    Ok(axum::Json(visible_info(&state, &role, &id)?).into_response())
}

#[derive(Debug, Deserialize)]
struct AfterQuery {
    /// Resume after this event id (the stream also reads `Last-Event-ID`).
    after: Option<u64>,
    /// Poll only: seconds to wait for an event when there is none.
    wait: Option<u64>,
}

fn last_event_id(headers: &HeaderMap, query: &AfterQuery) -> Result<u64, ApiError> {
    match headers.get("last-event-id").map(|v| v.to_str().map(|s| s.trim().parse::<u64>())) {
        Some(Ok(Ok(n))) => Ok(n),
        Some(_) => Err(ApiError::BadRequest("Last-Event-ID is not an event number".into())),
        None => Ok(query.after.unwrap_or(0)),
    }
}

fn event_data(seq: u64, envelope: &SignedEnvelope) -> Result<String, BulletinError> {
    serde_json::to_string(&BulletinEvent { seq, envelope: envelope.clone() })
        .map_err(|e| BulletinError::Corrupt(e.to_string()))
}

fn sse_event(e: &StoredEvent) -> Event {
    Event::default().id(e.seq.to_string()).event("bulletin").data(&e.data)
}

/// How often an open stream checks that its station's token is still valid: a rotated
/// token (`loa central station rotate-token`, which may run beside central on the same
/// database) closes the stream within this. One indexed lookup per stream each time.
pub const REAUTH_EVERY: Duration = Duration::from_secs(5);

async fn stream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<AfterQuery>,
) -> Result<Response, ApiError> {
    let station = station(&state, &headers)?;
    let token = super::api::bearer_hash(&headers).ok_or(ApiError::Unauthorized)?;
    let after = state.bulletins.resume_point(last_event_id(&headers, &query)?);
    let slot = state.streams.open(&station.id, super::streams::Kind::EventStream)?;
    state.bulletins.touch(&station.id, state.clock.now());
    tracing::info!(station = %station.id, after, "bulletin stream opened");
    let guard = Connected::new(state.clone(), station.id.clone());
    let changes = state.bulletins.latest.subscribe();
    let open = OpenStream {
        state,
        guard,
        slot,
        token,
        after,
        changes,
        pending: VecDeque::new(),
        check_at: tokio::time::Instant::now() + REAUTH_EVERY,
    };
    let events = futures_util::stream::unfold(open, |mut s| async move {
        let event = s.next().await?;
        Some((Ok::<_, Infallible>(event), s))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(STREAM_HEARTBEAT).text("heartbeat"))
        .into_response())
}

/// One station's open event stream.
struct OpenStream {
    state: Arc<AppState>,
    guard: Connected,
    slot: super::streams::Slot,
    /// The sha256 of the token it was opened with, checked again every [`REAUTH_EVERY`].
    token: String,
    after: u64,
    changes: tokio::sync::watch::Receiver<u64>,
    pending: VecDeque<Arc<StoredEvent>>,
    check_at: tokio::time::Instant,
}

impl OpenStream {
    /// The next event to send, or `None` when the stream must end (central stopping, a
    /// newer stream of the same station, a token that is no longer valid).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                self.after = e.seq;
                return Some(sse_event(&e));
            }
            self.changes.mark_unchanged();
            let now = self.state.clock.now();
            self.pending.extend(self.state.bulletins.events_for(
                &self.guard.station,
                self.after,
                now,
            ));
            if !self.pending.is_empty() {
                continue;
            }
            tokio::select! {
                changed = self.changes.changed() => if changed.is_err() { return None },
                () = self.slot.closed() => return None,
                () = tokio::time::sleep_until(self.check_at) => {
                    self.check_at = tokio::time::Instant::now() + REAUTH_EVERY;
                    let still = self.state.store.station_by_token(&self.token);
                    if !matches!(&still, Ok(Some(s)) if s.id == self.guard.station) {
                        tracing::info!(station = %self.guard.station, "its token is no longer valid: closing its bulletin stream");
                        return None;
                    }
                }
            }
        }
    }
}

async fn poll(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<AfterQuery>,
) -> Result<Response, ApiError> {
    let station = station(&state, &headers)?;
    let after = state.bulletins.resume_point(last_event_id(&headers, &query)?);
    let wait = Duration::from_secs(query.wait.unwrap_or(0)).min(MAX_POLL_WAIT);
    // Only a poll that waits holds a place.
    let mut slot = if wait.is_zero() {
        None
    } else {
        Some(state.streams.open(&station.id, super::streams::Kind::LongPoll)?)
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = state.bulletins.latest.subscribe();
    loop {
        changes.mark_unchanged();
        let now = state.clock.now();
        state.bulletins.touch(&station.id, now);
        let found = state.bulletins.events_for(&station.id, after, now);
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            let events = found
                .iter()
                .map(|e| BulletinEvent { seq: e.seq, envelope: e.envelope.clone() })
                .collect();
            return Ok(axum::Json(BulletinEvents { events }).into_response());
        }
        let closed = async {
            match slot.as_mut() {
                Some(slot) => slot.closed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, changes.changed()) => {}
            () = closed => {
                return Ok(axum::Json(BulletinEvents { events: Vec::new() }).into_response());
            }
        }
    }
}

/// Most delivery reports one request may carry (a station sends two or three at once).
const MAX_REPORTS_PER_REQUEST: usize = 64;

/// One report (a JSON object) or several (an array): a station sends `delivered` and
/// `verified` together, one request instead of two at the moment the whole province
/// reports at once.
fn delivery_reports(body: &Bytes) -> Result<Vec<DeliveryReport>, ApiError> {
    let is_list = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if !is_list {
        return Ok(vec![parse_json(body, "delivery report")?]);
    }
    let reports: Vec<DeliveryReport> = parse_json(body, "list of delivery reports")?;
    if reports.is_empty() || reports.len() > MAX_REPORTS_PER_REQUEST {
        return Err(ApiError::BadRequest(format!(
            "a list of {} delivery reports: send 1 to {MAX_REPORTS_PER_REQUEST} per request",
            reports.len()
        )));
    }
    Ok(reports)
}

async fn delivery(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let station = station(&state, &headers)?;
    let body = super::body::read(body, super::body::DELIVERY_LIMIT).await?;
    let mut reports = delivery_reports(&body)?;
    reports.iter_mut().for_each(DeliveryReport::sanitise);
    let now = state.clock.now();
    state.bulletins.touch(&station.id, now);
    for report in &reports {
        if !state.bulletins.is_target(&report.bulletin_id, &station.id) {
            return Err(ApiError::NotFound(format!(
                "no bulletin {:?} for station {}",
                crate::protocol::text::printable(&crate::protocol::bounds::clip(
                    &report.bulletin_id
                )),
                station.id
            )));
        }
        tracing::info!(station = %station.id, id = %report.bulletin_id, state = report.state.as_str(), latency_ms = ?report.latency_ms, reason = ?report.reason, "bulletin delivery");
    }
    // Answered only once committed; a fleet's burst of reports shares a few fsyncs.
    state.bulletins.deliveries.put(&station.id, reports, now).await?;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::BulletinPriority;

    fn st(id: &str, district: &str) -> Station {
        Station { id: id.into(), name: id.into(), district: district.into() }
    }

    #[test]
    fn district_tokens_reach_only_their_own_stations() {
        let all = || vec![st("a", "tri-ton"), st("b", "tri-ton"), st("c", "tinh-bien")];
        let admin = resolve_targets(all(), &Role::Admin, &Target::All).unwrap();
        assert_eq!(admin, vec!["a", "b", "c"]);
        let own = Role::District("tri-ton".into());
        assert_eq!(
            resolve_targets(all(), &own, &Target::District("tri-ton".into())).unwrap(),
            vec!["a", "b"]
        );
        assert!(matches!(resolve_targets(all(), &own, &Target::All), Err(ApiError::Forbidden(_))));
        assert!(matches!(
            resolve_targets(all(), &own, &Target::Stations(vec!["c".into()])),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            resolve_targets(all(), &Role::Viewer, &Target::All),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            resolve_targets(all(), &Role::Admin, &Target::Stations(vec!["zz".into()])),
            Err(ApiError::NotFound(_))
        ));
    }

    #[tokio::test]
    async fn missing_espeak_says_how_to_install_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = render_speech("espeak-ng-not-here", "xin chào", "vi", &dir.path().join("o.wav"))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("apt-get install espeak-ng"), "{text}");
    }

    #[test]
    fn delivery_bodies_are_one_report_or_a_bounded_list() {
        let one = r#"{"bulletin_id":"b-1","state":"delivered","at":"2026-12-01T05:00:00Z","latency_ms":null,"reason":null}"#;
        assert_eq!(delivery_reports(&Bytes::from(one)).unwrap().len(), 1);
        let two = format!(" [{one},{}]", one.replace("delivered", "verified"));
        let reports = delivery_reports(&Bytes::from(two)).unwrap();
        assert_eq!(reports[1].state, DeliveryState::Verified);
        for bad in ["[]".to_string(), format!("[{}]", vec![one; 65].join(","))] {
            let err = delivery_reports(&Bytes::from(bad)).unwrap_err().to_string();
            assert!(err.contains("send 1 to 64 per request"), "{err}");
        }
        let err = delivery_reports(&Bytes::from("[{\"state\":1}]")).unwrap_err().to_string();
        assert!(err.contains("list of delivery reports is not valid JSON"), "{err}");
    }

    /// Many stations reporting at once: every report is committed exactly once, each
    /// request answered only after its own commit, repeats ignored.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_delivery_reports_are_each_stored_once() {
        let dir = tempfile::tempdir().unwrap();
        let hub = Arc::new(Hub::open(dir.path()).unwrap());
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
        let reopened = Hub::open(dir.path()).unwrap();
        assert_eq!(reopened.deliveries("b-1").unwrap().len(), 200, "durable across a reopen");
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
        let doc = |id: &str, exp: i64| BulletinDoc {
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
            expires_at: t0 + chrono::Duration::seconds(exp),
            event_seq: None,
        };
        {
            let hub = Hub::open(dir.path()).unwrap();
            let d1 = doc("one", 60);
            let d2 = doc("two", 3600);
            let sign = |_| Ok(env.clone());
            let s1 = hub.append(Some((&d1, "admin")), None, sign, &d1.targets, d1.expires_at);
            let s2 = hub.append(Some((&d2, "admin")), None, sign, &d2.targets, d2.expires_at);
            assert_eq!((s1.unwrap().0, s2.unwrap().0), (1, 2));
            // A resume point beyond the newest event (a corrupted or forged cursor) is a
            // fresh start, not silence.
            assert_eq!(hub.resume_point(2), 2);
            assert_eq!(hub.resume_point(u64::MAX), 0);
        }
        let hub = Hub::open(dir.path()).unwrap();
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
