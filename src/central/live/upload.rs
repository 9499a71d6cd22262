//! The operator's audio coming in (`PUT /api/v1/live/{id}/audio`): a stream of chunks,
//! each a big-endian `u32` length and that many bytes of packed Opus packets
//! ([`crate::protocol::live::pack`]). [`Intake`] (pure) cuts the body into chunks and
//! holds every bound; `put_audio` numbers them, chains them, signs a checkpoint every
//! [`CHECKPOINT_EVERY`] chunks and at the end, sends them to the listeners, and writes
//! the recording.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path as UrlPath, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{Broadcast, Out, RECORDINGS_DIR, checkpoint};
use crate::central::{ApiError, AppState};
use crate::protocol::live::{
    CHECKPOINT_EVERY, FRAME_MS, FRAMES_PER_CHUNK, MAX_AHEAD_MS, MAX_CHUNK_BYTES, MAX_LIVE_SECS,
    RECORD_CHUNK, chain, chunk_body, genesis, packets, record,
};

/// Why an upload was refused (the broadcast then ends at the last good chunk).
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum IntakeError {
    #[error("a chunk of {0} bytes: at most {MAX_CHUNK_BYTES}")]
    TooLarge(usize),
    #[error("a chunk of {0} frames: at most {FRAMES_PER_CHUNK} (100 ms)")]
    TooManyFrames(usize),
    #[error("{0}")]
    Malformed(String),
    #[error(
        "the upload is {ahead_ms} ms ahead of real time: at most {MAX_AHEAD_MS} (send as you speak)"
    )]
    TooFast { ahead_ms: u64 },
    #[error("a live broadcast lasts at most {} minutes", MAX_LIVE_SECS / 60)]
    TooLong,
}

/// Cuts an upload into checked chunks.
#[derive(Default)]
pub struct Intake {
    buf: Vec<u8>,
    /// Audio accepted so far, milliseconds.
    pub audio_ms: u64,
    pub chunks: u64,
}

impl Intake {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole chunk's payload, `Ok(None)` when more bytes are needed.
    /// `elapsed` is the time since the first chunk arrived.
    pub fn next_chunk(&mut self, elapsed: Duration) -> Result<Option<Vec<u8>>, IntakeError> {
        if self.buf.len() < 4 {
            return Ok(None);
        }
        let len = u32::from_be_bytes([self.buf[0], self.buf[1], self.buf[2], self.buf[3]]) as usize;
        if len > MAX_CHUNK_BYTES {
            return Err(IntakeError::TooLarge(len));
        }
        if self.buf.len() < 4 + len {
            return Ok(None);
        }
        let payload: Vec<u8> = self.buf.drain(..4 + len).skip(4).collect();
        let frames = packets(&payload).map_err(IntakeError::Malformed)?.len();
        if frames > FRAMES_PER_CHUNK {
            return Err(IntakeError::TooManyFrames(frames));
        }
        let audio_ms = self.audio_ms + frames as u64 * u64::from(FRAME_MS);
        if audio_ms > MAX_LIVE_SECS * 1000 {
            return Err(IntakeError::TooLong);
        }
        let ahead_ms = audio_ms.saturating_sub(elapsed.as_millis() as u64);
        if ahead_ms > MAX_AHEAD_MS {
            return Err(IntakeError::TooFast { ahead_ms });
        }
        self.audio_ms = audio_ms;
        self.chunks += 1;
        Ok(Some(payload))
    }
}

/// How an upload ended.
pub struct Carried {
    pub chunks: u64,
    pub audio_ms: u64,
    /// Why it ended, in English (the store's `end_reason`, the audit line).
    pub reason: String,
    /// The refusal that ended it, if one did (a bound, a stall, a signing failure).
    pub error: Option<ApiError>,
}

pub(super) async fn put_audio(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let caller = crate::central::auth::operator_caller(&state, &headers, request.extensions())?;
    let body = request.into_body();
    let broadcast = state.live.get(&id).ok_or_else(|| {
        ApiError::NotFound(format!(
            "no live broadcast {:?} on air: start one with `loa live`",
            crate::protocol::bounds::clip(&id)
        ))
    })?;
    if caller.who != broadcast.started_by {
        return Err(ApiError::Forbidden(format!(
            "this broadcast was started by {}: only that token speaks on it",
            broadcast.started_by
        )));
    }
    if broadcast.uploading.swap(true, Ordering::SeqCst) {
        return Err(ApiError::Conflict("this broadcast's audio is already being sent".into()));
    }
    let stream = body.into_data_stream();
    let carried =
        speak(&state, &broadcast, &caller.actor(), stream, crate::central::body::READ_TIMEOUT)
            .await;
    let secs = carried.audio_ms as f64 / 1000.0;
    match carried.error {
        Some(e) => Err(e),
        None => Ok(axum::Json(serde_json::json!({
            "id": id, "chunks": carried.chunks, "audio_secs": secs, "end": carried.reason
        }))
        .into_response()),
    }
}

/// The one path every broadcast's audio takes, whoever sends it (`loa live`'s upload,
/// the console's microphone): `chunks` (framed Opus, cut anywhere) through [`Intake`],
/// numbered, chained, checkpointed, sent to the listeners and recorded; then the
/// broadcast ends — off the air, its row closed, `live.end` in the audit trail as
/// `actor`. The caller must have claimed the upload (`uploading`). `stall`: the longest
/// wait for the next bytes before the broadcast ends.
pub(super) async fn speak<S, E>(
    state: &AppState,
    broadcast: &Broadcast,
    actor: &crate::central::bulletins::Actor,
    chunks: S,
    stall: Duration,
) -> Carried
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let id = &broadcast.id;
    let carried = carry(state, broadcast, chunks, stall).await;
    state.live.remove(id);
    let now = state.clock.now();
    let secs = carried.audio_ms as f64 / 1000.0;
    if let Err(e) = state.store.live_ended(id, now, carried.chunks, secs, &carried.reason) {
        tracing::error!(id, "cannot record the live broadcast's end: {e}");
    }
    tracing::info!(id, chunks = carried.chunks, secs, reason = %carried.reason, "live broadcast ended");
    let detail = format!("{}: {} chunks, {secs:.1} s", carried.reason, carried.chunks);
    crate::central::bulletins::issue::audit(state, actor, "live.end", id, detail);
    carried
}

async fn carry<S, E>(state: &AppState, b: &Broadcast, mut stream: S, stall: Duration) -> Carried
where
    S: futures_util::Stream<Item = Result<Bytes, E>> + Unpin,
    E: std::fmt::Display,
{
    let mut intake = Intake::default();
    let mut hash = genesis(&b.start);
    let mut first: Option<std::time::Instant> = None;
    let mut recording = open_recording(state, &b.id).await;
    let (reason, error) = 'upload: loop {
        let next = tokio::time::timeout(stall, stream.next()).await;
        let bytes = match next {
            Err(_) => {
                let why = format!("no audio for {} s", stall.as_secs());
                break (why.clone(), Some(ApiError::Timeout(why)));
            }
            Ok(None) => break ("upload ended".to_string(), None),
            Ok(Some(Err(e))) => break (format!("upload interrupted: {e}"), None),
            Ok(Some(Ok(bytes))) => bytes,
        };
        intake.push(&bytes);
        loop {
            let started = *first.get_or_insert_with(std::time::Instant::now);
            let payload = match intake.next_chunk(started.elapsed()) {
                Ok(Some(p)) => p,
                Ok(None) => break,
                Err(e) => {
                    let error = match &e {
                        IntakeError::TooFast { .. } => ApiError::TooFast(e.to_string()),
                        IntakeError::TooLarge(_) | IntakeError::TooLong => {
                            ApiError::PayloadTooLarge(e.to_string())
                        }
                        _ => ApiError::BadRequest(e.to_string()),
                    };
                    break 'upload (e.to_string(), Some(error));
                }
            };
            let seq = intake.chunks;
            let body = chunk_body(seq, &hash, &payload);
            hash = chain(&hash, seq, &payload);
            let out =
                Out { seq, checkpoint: false, bytes: Bytes::from(record(RECORD_CHUNK, &body)) };
            recording = write(recording, &out.bytes).await;
            b.publish(on_the_path(out));
            if seq % CHECKPOINT_EVERY == 0 {
                match checkpoint(state, &b.id, seq, &hash, false) {
                    Ok(cp) => {
                        recording = write(recording, &cp.bytes).await;
                        b.publish(cp);
                    }
                    Err(e) => break 'upload (format!("cannot sign: {e}"), Some(e.into())),
                }
            }
        }
    };
    // The end, signed over everything sent: stations finish what they buffered.
    match checkpoint(state, &b.id, intake.chunks, &hash, true) {
        Ok(cp) => {
            recording = write(recording, &cp.bytes).await;
            b.publish(cp);
        }
        Err(e) => tracing::error!(id = %b.id, "cannot sign the last checkpoint: {e}"),
    }
    if let Some(file) = recording {
        let _ = file.sync_all().await;
    }
    Carried { chunks: intake.chunks, audio_ms: intake.audio_ms, reason, error }
}

/// Appends `bytes` to the recording; a failure is logged once and the broadcast goes on
/// unrecorded.
async fn write(file: Option<tokio::fs::File>, bytes: &Bytes) -> Option<tokio::fs::File> {
    let mut file = file?;
    match file.write_all(bytes).await {
        Ok(()) => Some(file),
        Err(e) => {
            tracing::error!("live recording: {e}; the broadcast goes on unrecorded");
            None
        }
    }
}

/// What a man in the middle would send instead of `out`. Only in debug builds, only when
/// `LOA_TEST_TAMPER_LIVE_CHUNK=N` is set: chunk N leaves with its last byte changed (the
/// recording keeps the true one), so a test proves the stations cut it.
fn on_the_path(out: Out) -> Out {
    #[cfg(debug_assertions)]
    {
        static TAMPER: std::sync::OnceLock<Option<u64>> = std::sync::OnceLock::new();
        let tamper = TAMPER.get_or_init(|| {
            std::env::var("LOA_TEST_TAMPER_LIVE_CHUNK").ok().and_then(|v| v.parse().ok())
        });
        if *tamper == Some(out.seq) && !out.checkpoint {
            let mut bytes = out.bytes.to_vec();
            if let Some(last) = bytes.last_mut() {
                *last ^= 0x55;
            }
            tracing::warn!(seq = out.seq, "test hook: live chunk altered on its way out");
            return Out { bytes: Bytes::from(bytes), ..out };
        }
    }
    out
}

async fn open_recording(state: &AppState, id: &str) -> Option<tokio::fs::File> {
    let dir = state.config.data_dir.join(RECORDINGS_DIR);
    let path = dir.join(format!("{id}.loalive"));
    let opened = async {
        tokio::fs::create_dir_all(&dir).await?;
        tokio::fs::File::create(&path).await
    };
    match opened.await {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::error!(path = %path.display(), "cannot record the live broadcast: {e}");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::live::pack;

    fn framed(payload: &[u8]) -> Vec<u8> {
        let mut out = (payload.len() as u32).to_be_bytes().to_vec();
        out.extend_from_slice(payload);
        out
    }

    fn chunk(frames: usize) -> Vec<u8> {
        framed(&pack(&vec![vec![7u8; 40]; frames]))
    }

    const LATER: Duration = Duration::from_secs(3 * 3600);

    #[test]
    fn chunks_are_cut_as_they_arrive_and_each_bound_holds_one_past() {
        let mut intake = Intake::default();
        let two = [chunk(5), chunk(5)].concat();
        intake.push(&two[..7]);
        assert_eq!(intake.next_chunk(LATER), Ok(None), "waits for the rest");
        intake.push(&two[7..]);
        assert!(intake.next_chunk(LATER).unwrap().is_some());
        assert!(intake.next_chunk(LATER).unwrap().is_some());
        assert_eq!((intake.chunks, intake.audio_ms), (2, 200));

        // Size: the largest chunk passes, one byte more is refused from its length.
        let mut at = Intake::default();
        let big = pack(&[vec![1u8; MAX_CHUNK_BYTES - 2]]);
        assert_eq!(big.len(), MAX_CHUNK_BYTES);
        at.push(&framed(&big));
        assert!(at.next_chunk(LATER).unwrap().is_some());
        let mut past = Intake::default();
        past.push(&((MAX_CHUNK_BYTES + 1) as u32).to_be_bytes());
        assert_eq!(past.next_chunk(LATER), Err(IntakeError::TooLarge(MAX_CHUNK_BYTES + 1)));

        // Frames per chunk.
        let mut six = Intake::default();
        six.push(&chunk(FRAMES_PER_CHUNK + 1));
        assert_eq!(six.next_chunk(LATER), Err(IntakeError::TooManyFrames(FRAMES_PER_CHUNK + 1)));
        let mut bad = Intake::default();
        bad.push(&framed(&[0, 9, 1]));
        assert!(matches!(bad.next_chunk(LATER), Err(IntakeError::Malformed(_))));
    }

    #[test]
    fn an_upload_ahead_of_real_time_is_refused_one_chunk_past_the_bound() {
        let mut intake = Intake::default();
        let allowed = MAX_AHEAD_MS / 100;
        for _ in 0..allowed {
            intake.push(&chunk(5));
            assert!(intake.next_chunk(Duration::ZERO).unwrap().is_some());
        }
        intake.push(&chunk(5));
        assert_eq!(
            intake.next_chunk(Duration::ZERO),
            Err(IntakeError::TooFast { ahead_ms: MAX_AHEAD_MS + 100 })
        );
        // The same chunk a moment later is in time.
        assert!(intake.next_chunk(Duration::from_millis(100)).is_ok());
    }

    #[test]
    fn a_broadcast_past_its_longest_is_refused() {
        let mut intake = Intake { audio_ms: MAX_LIVE_SECS * 1000 - 100, ..Intake::default() };
        intake.push(&chunk(5));
        assert!(intake.next_chunk(LATER).unwrap().is_some());
        intake.push(&chunk(1));
        assert_eq!(intake.next_chunk(LATER), Err(IntakeError::TooLong));
    }
}
