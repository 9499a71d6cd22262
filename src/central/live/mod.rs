//! Live broadcasts from the province: an admin (or a district token, to its own
//! district's stations) starts one (`POST /api/v1/live`), its
//! signed start document goes out on the bulletin event stream, the operator's `loa live`
//! uploads Opus chunks (`PUT /api/v1/live/{id}/audio`, [`upload`]) — or a person speaks
//! from the console, whose microphone's PCM [`pcm`] encodes and hands to the same
//! intake ([`begin`] and `upload::speak` serve both) — and each targeted
//! station fetches the chained, checkpointed records (`GET /api/v1/station/live/{id}`).
//! Central keeps a recording of exactly what it sent (`data_dir/live/ID.loalive`, the
//! same records) and a row per broadcast in the store.
//!
//! Bounds: the start request is JSON of at most [`crate::central::body::PUSH_LIMIT`];
//! each uploaded chunk at most [`MAX_CHUNK_BYTES`] and [`MAX_PACKETS_PER_CHUNK`]
//! packets; the upload may not run more than [`MAX_AHEAD_MS`] ahead of real time (429)
//! nor last more than [`MAX_LIVE_SECS`]; one upload per broadcast (409), which must begin
//! within [`UPLOAD_WAIT`]; at most
//! [`crate::central::streams::PER_STATION`] listeners per station token (the newest
//! wins) and a listener that falls [`LISTENER_QUEUE`] records behind is dropped (it
//! rejoins). A joining listener first gets the latest checkpoint and the chunks sent
//! since, taken under the lock records are published with, so it misses none.

pub mod pcm;
mod upload;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use axum::body::{Body, Bytes};
use axum::extract::DefaultBodyLimit;
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};

use crate::central::api::{Routes, Verb};
use crate::central::auth::{parse_json, station_auth};
use crate::central::{ApiError, AppState};
use crate::protocol::live::{
    CHANNELS, CHECKPOINT_EVERY, CODEC, FRAME_MS, LiveCheckpoint, LiveDoc, LiveRecord,
    MAX_LIVE_SECS, RATE, RECORD_CHECKPOINT, StartLiveRequest, StartLiveResponse, genesis, record,
};
use crate::protocol::{BulletinPriority, DocumentKind, SignedEnvelope, Target};
use crate::signing::SigningError;

pub use crate::protocol::live::{MAX_AHEAD_MS, MAX_CHUNK_BYTES, MAX_PACKETS_PER_CHUNK};

/// Records queued for one listener before it counts as too slow (about 25 s of audio).
pub const LISTENER_QUEUE: usize = 256;
/// A broadcast whose audio has not started arriving this long after its start ends
/// (signed end: stations that joined stop waiting).
pub const UPLOAD_WAIT: std::time::Duration = std::time::Duration::from_secs(30);
/// Where recordings go, under `data_dir`.
pub const RECORDINGS_DIR: &str = "live";
/// How often the replica receiving a broadcast marks it alive in the store.
pub const LIVE_ALIVE_EVERY: std::time::Duration = std::time::Duration::from_secs(5);
/// A broadcast not marked alive for this long is no longer on air, whatever its row says:
/// the replica receiving it died. Four marks missed, so a slow write is not taken for a
/// death, and stations looking for it elsewhere are told it is gone within this.
pub const LIVE_LEASE: std::time::Duration = std::time::Duration::from_secs(20);

/// One record as it goes out: its chunk number (a checkpoint: the chunk it covers) and
/// its framed bytes.
#[derive(Debug)]
pub struct Out {
    pub seq: u64,
    pub checkpoint: bool,
    pub bytes: Bytes,
}

/// A broadcast central is carrying.
pub struct Broadcast {
    pub id: String,
    pub start: SignedEnvelope,
    targets: HashSet<String>,
    tx: tokio::sync::broadcast::Sender<Arc<Out>>,
    /// What a joining station gets before the live records: the latest checkpoint and
    /// the chunks sent since (at most [`CHECKPOINT_EVERY`]). Records are published under
    /// this lock, so a joiner's snapshot and its subscription meet without a gap.
    since: Mutex<Since>,
    uploading: std::sync::atomic::AtomicBool,
    pub started_at: DateTime<Utc>,
    /// The role that started it: only the same role sends its audio.
    pub started_by: String,
}

/// The latest checkpoint and the chunks after it.
struct Since {
    checkpoint: Arc<Out>,
    chunks: Vec<Arc<Out>>,
}

impl Broadcast {
    fn publish(&self, out: Out) {
        let out = Arc::new(out);
        let mut since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        if out.checkpoint {
            since.checkpoint = out.clone();
            since.chunks.clear();
        } else if since.chunks.len() < 2 * CHECKPOINT_EVERY as usize {
            // Central writes a checkpoint every CHECKPOINT_EVERY chunks: the bound only
            // guards against a bug there.
            since.chunks.push(out.clone());
        }
        let _ = self.tx.send(out);
    }

    /// Subscribes to what comes next, and returns what a joiner must get first: taken
    /// under the publishing lock, so nothing falls between the two.
    fn join(&self) -> (tokio::sync::broadcast::Receiver<Arc<Out>>, Vec<Arc<Out>>) {
        let since = self.since.lock().unwrap_or_else(|p| p.into_inner());
        let rx = self.tx.subscribe();
        let mut first = Vec::with_capacity(1 + since.chunks.len());
        first.push(since.checkpoint.clone());
        first.extend(since.chunks.iter().cloned());
        (rx, first)
    }
}

/// Broadcasts on air now.
#[derive(Default)]
pub struct LiveHub {
    on_air: Mutex<HashMap<String, Arc<Broadcast>>>,
    /// Broadcasts spoken from the console, by id ([`pcm::Feed`]).
    feeds: Mutex<HashMap<String, Arc<pcm::Feed>>>,
}

impl LiveHub {
    fn get(&self, id: &str) -> Option<Arc<Broadcast>> {
        self.on_air.lock().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    fn remove(&self, id: &str) {
        self.on_air.lock().unwrap_or_else(|p| p.into_inner()).remove(id);
    }
}

/// The live routes (merged into [`crate::central::router`]).
pub fn routes() -> Routes {
    Routes::new()
        .post(crate::protocol::api::operator::LIVE, start)
        .get(crate::protocol::api::operator::LIVE, list)
        // The audio is read chunk by chunk under the live bounds (`upload`).
        .route_with(Verb::Put, "/api/v1/live/{id}/audio", upload::put_audio, |r| {
            r.layer(DefaultBodyLimit::disable())
        })
        .get("/api/v1/station/live/{id}", listen)
}

/// A signed checkpoint record after chunk `seq`.
fn checkpoint(
    state: &AppState,
    id: &str,
    seq: u64,
    hash: &[u8; 32],
    end: bool,
) -> Result<Out, SigningError> {
    let doc = LiveCheckpoint { id: id.to_string(), seq, hash: hex::encode(hash), end };
    let envelope = state.key.sign(DocumentKind::LiveCheckpoint, &doc)?;
    let json = serde_json::to_vec(&envelope).map_err(SigningError::Encode)?;
    Ok(Out { seq, checkpoint: true, bytes: Bytes::from(record(RECORD_CHECKPOINT, &json)) })
}

async fn start(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let caller = crate::central::auth::operator_caller(&state, &headers, request.extensions())?;
    let body =
        crate::central::body::read(request.into_body(), crate::central::body::PUSH_LIMIT).await?;
    let request: StartLiveRequest = parse_json(&body, "live broadcast request")?;
    let (answer, _) = begin(&state, &caller, &request)?;
    Ok(axum::Json(answer).into_response())
}

/// Starts a broadcast for `caller`, however it was asked for (`POST /api/v1/live`, the
/// console's "Nói trực tiếp"): who may reach which stations is decided as for a
/// bulletin push (an admin anywhere, a district its own area's stations, nobody else);
/// the start document signed and announced; a store row; `live.start` in the audit
/// trail as `caller`. Only `caller.who` may then send its audio.
pub fn begin(
    state: &Arc<AppState>,
    caller: &crate::central::auth::Caller,
    request: &StartLiveRequest,
) -> Result<(StartLiveResponse, Arc<Broadcast>), ApiError> {
    let role = caller.role.clone();
    if request.priority == BulletinPriority::Test {
        return Err(ApiError::BadRequest(
            "a live broadcast airs at emergency or priority: use a test bulletin to prove the chain".into(),
        ));
    }
    crate::protocol::bounds::check_text(
        "title",
        &request.title,
        crate::protocol::bounds::MAX_TITLE_CHARS,
    )
    .map_err(ApiError::BadRequest)?;
    let stations = state.store.stations()?;
    let targets = crate::central::bulletins::resolve_targets(stations, &role, &request.to)?;
    let now = state.clock.now();
    let id = format!("live-{}-{:08x}", now.format("%Y%m%d%H%M%S"), rand::random::<u32>());
    let to_all = matches!(request.to, Target::All);
    let doc = LiveDoc {
        id: id.clone(),
        title: request.title.clone(),
        targets: if to_all { Vec::new() } else { targets.clone() },
        to_all,
        priority: request.priority,
        codec: CODEC.into(),
        rate: RATE,
        channels: CHANNELS,
        frame_ms: FRAME_MS,
        checkpoint_every: CHECKPOINT_EVERY,
        issued_at: now,
        expires_at: now + chrono::Duration::seconds(MAX_LIVE_SECS as i64 + 60),
        event_seq: None,
    };
    doc.check_bounds().map_err(ApiError::BadRequest)?;
    let (tx, _) = tokio::sync::broadcast::channel(LISTENER_QUEUE);
    let recording = format!("{RECORDINGS_DIR}/{id}.loalive");
    state.store.live_started(&LiveRecord {
        id: id.clone(),
        title: request.title.clone(),
        priority: request.priority,
        started_by: caller.who.clone(),
        started_at: now,
        stations: targets.len(),
        ended_at: None,
        chunks: 0,
        audio_secs: 0.0,
        end_reason: None,
        recording,
        alive_at: Some(now),
    })?;
    // Signed with its event number, and on air before any station can hear of it: the
    // broadcast is listed inside the signing step, which runs before the event is
    // published.
    let mut on_air: Option<Arc<Broadcast>> = None;
    let sign = |seq| {
        let envelope =
            state.key.sign(DocumentKind::Live, &LiveDoc { event_seq: Some(seq), ..doc.clone() })?;
        let first = checkpoint(state, &id, 0, &genesis(&envelope), false)?;
        let broadcast = Arc::new(Broadcast {
            id: id.clone(),
            start: envelope.clone(),
            targets: targets.iter().cloned().collect(),
            tx,
            since: Mutex::new(Since { checkpoint: Arc::new(first), chunks: Vec::new() }),
            uploading: false.into(),
            started_at: now,
            started_by: caller.who.clone(),
        });
        state
            .live
            .on_air
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(id.clone(), broadcast.clone());
        on_air = Some(broadcast);
        Ok(envelope)
    };
    let appended = state.bulletins.append_live(&id, sign, &targets, doc.expires_at);
    let broadcast = match (appended, on_air) {
        (Ok(_), Some(b)) => b,
        (result, _) => {
            state.live.remove(&id);
            let _ = state.store.live_ended(&id, state.clock.now(), 0, 0.0, "not announced");
            let why = match result {
                Err(e) => e.to_string(),
                Ok(_) => "the start was not signed".to_string(),
            };
            return Err(ApiError::Internal(why));
        }
    };
    tracing::info!(id, stations = targets.len(), by = %caller.who, "live broadcast started");
    tokio::spawn(keep_alive(state.clone(), id.clone()));
    crate::central::bulletins::issue::audit(
        state,
        &caller.actor(),
        "live.start",
        &id,
        format!(
            "{} to {} station(s){}, expires {}: {}",
            request.priority,
            targets.len(),
            if to_all { " (all)" } else { "" },
            doc.expires_at.to_rfc3339(),
            request.title
        ),
    );
    {
        let (state, id) = (state.clone(), id.clone());
        tokio::spawn(async move {
            tokio::time::sleep(UPLOAD_WAIT).await;
            let Some(b) = state.live.get(&id) else { return };
            if b.uploading.load(std::sync::atomic::Ordering::SeqCst) {
                return;
            }
            state.live.remove(&id);
            match checkpoint(&state, &id, 0, &genesis(&b.start), true) {
                Ok(end) => b.publish(end),
                Err(e) => tracing::error!(id, "cannot sign the end: {e}"),
            }
            let why = "no audio arrived";
            if let Err(e) = state.store.live_ended(&id, state.clock.now(), 0, 0.0, why) {
                tracing::error!(id, "cannot record the live broadcast's end: {e}");
            }
            tracing::warn!(id, "live broadcast ended: {why} within {} s", UPLOAD_WAIT.as_secs());
            let central = crate::central::bulletins::Actor::new("central", "-");
            let detail = format!("{why} within {} s", UPLOAD_WAIT.as_secs());
            crate::central::bulletins::issue::audit(&state, &central, "live.end", &id, detail);
        });
    }
    let answer = StartLiveResponse {
        id: id.clone(),
        upload: format!("/api/v1/live/{id}/audio"),
        stations: targets.len(),
    };
    Ok((answer, broadcast))
}

async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    crate::central::auth::operator_auth(&state, &headers)?;
    Ok(axum::Json(state.store.live_list(100)?).into_response())
}

/// While this replica holds broadcast `id`, marks it alive in the store every
/// [`LIVE_ALIVE_EVERY`], so other replicas can tell a broadcast on air from the open row
/// of one whose replica died ([`held_elsewhere`]).
async fn keep_alive(state: Arc<AppState>, id: String) {
    let mut every = tokio::time::interval(LIVE_ALIVE_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    every.tick().await; // the start is the first mark
    loop {
        every.tick().await;
        if state.live.get(&id).is_none() {
            return;
        }
        let (store, at, mark) = (state.store.clone(), state.clock.now(), id.clone());
        let marked = tokio::task::spawn_blocking(move || store.live_alive(&mark, at)).await;
        match marked {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(id, "cannot mark the live broadcast alive: {e}"),
            Err(e) => tracing::warn!(id, "cannot mark the live broadcast alive: {e}"),
        }
    }
}

/// Whether `r`, as stored, is broadcast `id` still on air at `now`: not ended, and marked
/// alive within [`LIVE_LEASE`] (a row without marks, from before they were kept, counts
/// from its start).
fn on_air(r: &LiveRecord, id: &str, now: chrono::DateTime<chrono::Utc>) -> bool {
    let lease = chrono::Duration::from_std(LIVE_LEASE).unwrap_or(chrono::Duration::MAX);
    r.id == id && r.ended_at.is_none() && r.alive_at.unwrap_or(r.started_at) > now - lease
}

/// With replicas: a broadcast the store says is on air but this replica does not hold
/// is being received by another replica. `503` (with `Retry-After`) sends the station to
/// its next central address, where it may be; a plain `404` would leave it silent.
fn held_elsewhere(state: &AppState, id: &str) -> Result<Option<ApiError>, ApiError> {
    // A row left open by a replica that died mid-broadcast stops counting once its last
    // mark of life is older than the lease.
    let now = state.clock.now();
    let elsewhere = state.store.live_list(LIVE_LOOKUP)?.iter().any(|r| on_air(r, id, now));
    Ok(elsewhere.then(|| {
        ApiError::Busy(format!(
            "live broadcast {:?} is received by another central replica: ask another address",
            crate::protocol::bounds::clip(id)
        ))
    }))
}

/// How many of the newest broadcasts [`held_elsewhere`] looks through: far more than
/// can be on air at once.
const LIVE_LOOKUP: usize = 100;

/// A station's listener: the latest checkpoint, then every record as it comes.
async fn listen(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let station = station_auth(&state, &headers)?;
    let not_here = || {
        ApiError::NotFound(format!(
            "no live broadcast {:?} for this station",
            crate::protocol::bounds::clip(&id)
        ))
    };
    let Some(broadcast) = state.live.get(&id) else {
        return Err(held_elsewhere(&state, &id)?.unwrap_or_else(not_here));
    };
    if !broadcast.targets.contains(&station.id) {
        return Err(not_here());
    }
    let token = crate::central::auth::bearer_hash(&headers).ok_or(ApiError::Unauthorized)?;
    let mut slot = state.streams.open(&station.id, crate::central::streams::Kind::Live)?;
    let (mut rx, first) = broadcast.join();
    let from = first[0].seq;
    tracing::info!(id, station = %station.id, from, caught_up = first.len() - 1, "live listener joined");
    let (out_tx, out_rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(8);
    tokio::spawn(async move {
        for out in first {
            if out_tx.send(Ok(out.bytes.clone())).await.is_err() {
                return;
            }
        }
        let reauth = crate::central::bulletins::REAUTH_EVERY;
        let mut check_at = tokio::time::Instant::now() + reauth;
        loop {
            let next = tokio::select! {
                r = rx.recv() => r,
                () = slot.closed() => break,
                () = tokio::time::sleep_until(check_at) => {
                    check_at = tokio::time::Instant::now() + reauth;
                    if !state.tokens.still_valid(&state.store, &token, &station.id).await {
                        tracing::info!(station = %station.id, "its token is no longer valid: closing its live stream");
                        break;
                    }
                    continue;
                }
            };
            match next {
                Ok(out) => {
                    if out_tx.send(Ok(out.bytes.clone())).await.is_err() {
                        break;
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(station = %station.id, n, "live listener too slow: dropped (it rejoins)");
                    break;
                }
                Err(tokio::sync::broadcast::error::RecvError::Closed) => break,
            }
        }
    });
    let stream = futures_util::stream::unfold(out_rx, |mut rx| async move {
        rx.recv().await.map(|item| (item, rx))
    });
    Response::builder()
        .header(axum::http::header::CONTENT_TYPE, "application/x-loa-live")
        .body(Body::from_stream(stream))
        .map_err(|e| ApiError::Internal(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out(seq: u64, checkpoint: bool) -> Out {
        Out { seq, checkpoint, bytes: Bytes::from(format!("{seq}{checkpoint}")) }
    }

    fn broadcast() -> Broadcast {
        let (tx, _) = tokio::sync::broadcast::channel(64);
        Broadcast {
            id: "live-1".into(),
            start: SignedEnvelope {
                kind: DocumentKind::Live,
                payload: String::new(),
                signature: String::new(),
            },
            targets: HashSet::new(),
            tx,
            since: Mutex::new(Since { checkpoint: Arc::new(out(0, true)), chunks: Vec::new() }),
            uploading: false.into(),
            started_at: Utc::now(),
            started_by: "admin".into(),
        }
    }

    /// A stored row counts as on air only while its replica keeps marking it: the lease
    /// runs from the last mark (or the start), to the second, and an ended row never counts.
    #[test]
    fn a_row_is_on_air_only_within_the_lease_of_its_last_mark() {
        assert!(LIVE_LEASE >= LIVE_ALIVE_EVERY * 4, "several marks may be missed");
        let start = chrono::DateTime::parse_from_rfc3339("2026-12-06T06:00:00Z").unwrap().to_utc();
        let lease = chrono::Duration::from_std(LIVE_LEASE).unwrap();
        let row = LiveRecord {
            id: "live-1".into(),
            title: "Lũ".into(),
            priority: BulletinPriority::Emergency,
            started_by: "admin".into(),
            started_at: start,
            stations: 3,
            ended_at: None,
            chunks: 0,
            audio_secs: 0.0,
            end_reason: None,
            recording: String::new(),
            alive_at: None,
        };
        let second = chrono::Duration::seconds(1);
        assert!(on_air(&row, "live-1", start + lease - second), "from its start");
        assert!(!on_air(&row, "live-1", start + lease), "its replica stopped marking it");
        assert!(!on_air(&row, "live-2", start), "another broadcast");
        let marked =
            LiveRecord { alive_at: Some(start + chrono::Duration::hours(1)), ..row.clone() };
        let then = start + chrono::Duration::hours(1);
        assert!(on_air(&marked, "live-1", then + lease - second), "from its last mark");
        assert!(!on_air(&marked, "live-1", then + lease));
        let ended = LiveRecord { ended_at: Some(start), ..marked };
        assert!(!on_air(&ended, "live-1", then));
    }

    fn seqs(records: &[Arc<Out>]) -> Vec<(u64, bool)> {
        records.iter().map(|o| (o.seq, o.checkpoint)).collect()
    }

    /// A station joining between checkpoints gets the chunks since the last one, then
    /// exactly what follows: no gap (it would refuse the stream) and no repeat.
    #[test]
    fn a_late_joiner_gets_the_chunks_since_the_checkpoint_then_the_rest() {
        let b = broadcast();
        b.publish(out(1, false));
        b.publish(out(2, false));
        let (mut rx, first) = b.join();
        assert_eq!(seqs(&first), vec![(0, true), (1, false), (2, false)]);
        b.publish(out(3, false));
        assert_eq!(rx.try_recv().map(|o| o.seq).ok(), Some(3));
        assert!(rx.try_recv().is_err(), "nothing sent twice");
        // A checkpoint starts the catch-up again from itself.
        for seq in 4..=10 {
            b.publish(out(seq, false));
        }
        b.publish(out(10, true));
        b.publish(out(11, false));
        let (_, first) = b.join();
        assert_eq!(seqs(&first), vec![(10, true), (11, false)]);
    }

    /// The catch-up is bounded even if checkpoints stopped coming.
    #[test]
    fn the_catch_up_is_bounded() {
        let b = broadcast();
        for seq in 1..=100 {
            b.publish(out(seq, false));
        }
        let (_, first) = b.join();
        assert_eq!(first.len(), 1 + 2 * CHECKPOINT_EVERY as usize);
    }
}
