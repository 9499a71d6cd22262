//! Speaking live from the console: the browser captures the microphone and POSTs raw
//! PCM (16-bit little-endian, mono, [`PCM_RATE`]) in small numbered chunks; central
//! encodes Opus here and hands the chunks to [`super::upload::speak`] — the same intake,
//! chain, signatures, listeners, recording and end as `loa live`'s upload.
//!
//! [`PcmIntake`] (pure) holds the console's own bounds before any audio is encoded: a
//! POST of at most [`MAX_PCM_BYTES`] (1 s) of whole samples, numbered in order (a repeat
//! of the last number is answered without effect: a retry), never more than
//! [`MAX_AHEAD_MS`] ahead of real time (429) nor longer than [`MAX_LIVE_SECS`] in all.
//! The chunks it makes then pass [`super::upload::Intake`]'s bounds as any upload's do.
//! [`Feed`]: one console broadcast being spoken — at most one per person at a time
//! (409), ended by the stop button, by a bound, or after [`FEED_STALL`] without audio.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;

use super::Broadcast;
use crate::audio::opus_codec::Encoder;
use crate::central::auth::Caller;
use crate::central::{ApiError, AppState};
use crate::protocol::live::{
    FRAME_MS, FRAMES_PER_CHUNK, MAX_AHEAD_MS, MAX_LIVE_SECS, StartLiveRequest, pack,
};

/// The rate the browser sends (it resamples its microphone to this).
pub const PCM_RATE: u32 = 48_000;
/// The most one POST carries: 1 s of audio (the browser sends 200 ms at a time, and
/// catches up after a slow answer with larger ones).
pub const MAX_PCM_BYTES: usize = PCM_RATE as usize * 2;
/// A console broadcast whose browser sent nothing this long ends (the tab was closed, the
/// network fell): stations do not hold the slot in silence for long.
pub const FEED_STALL: Duration = Duration::from_secs(10);
/// Chunks queued between the POSTs and the intake: more than the pacing bound lets in
/// (50 chunks ahead of real time), so a full queue means central itself is stuck.
const QUEUE: usize = 64;

/// Why a POST of PCM was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PcmError {
    #[error("a chunk of {0} bytes: at most {MAX_PCM_BYTES} (1 s of 16-bit mono at 48 kHz)")]
    TooLarge(usize),
    #[error("a chunk of {0} bytes is not whole 16-bit samples")]
    OddLength(usize),
    #[error("chunk {got} arrived where {want} was expected")]
    OutOfOrder { got: u64, want: u64 },
    #[error(
        "the audio is {ahead_ms} ms ahead of real time: at most {MAX_AHEAD_MS} (send as you speak)"
    )]
    TooFast { ahead_ms: u64 },
    #[error("a live broadcast lasts at most {} minutes", MAX_LIVE_SECS / 60)]
    TooLong,
    #[error("{0}")]
    Codec(String),
    /// The POST itself could not be read (too large for its route, stalled, cut).
    #[error("{0}")]
    Unreadable(String),
}

impl From<PcmError> for ApiError {
    fn from(e: PcmError) -> Self {
        match e {
            PcmError::TooFast { .. } => ApiError::TooFast(e.to_string()),
            PcmError::TooLarge(_) | PcmError::TooLong => ApiError::PayloadTooLarge(e.to_string()),
            PcmError::OutOfOrder { .. } => ApiError::Conflict(e.to_string()),
            PcmError::OddLength(_) | PcmError::Unreadable(_) => ApiError::BadRequest(e.to_string()),
            PcmError::Codec(_) => ApiError::Internal(e.to_string()),
        }
    }
}

/// PCM in, framed Opus chunks out (each a big-endian `u32` length and
/// [`FRAMES_PER_CHUNK`] packets, as `loa live` sends them).
pub struct PcmIntake {
    encoder: Encoder,
    /// Packets not yet in a chunk.
    packets: Vec<Vec<u8>>,
    /// The number the next POST must carry.
    next: u64,
    /// Samples accepted so far.
    samples: u64,
}

impl PcmIntake {
    pub fn new() -> Result<Self, PcmError> {
        let encoder = Encoder::new().map_err(|e| PcmError::Codec(e.to_string()))?;
        Ok(Self { encoder, packets: Vec::new(), next: 0, samples: 0 })
    }

    /// Audio accepted so far, milliseconds.
    pub fn audio_ms(&self) -> u64 {
        self.samples * 1000 / u64::from(PCM_RATE)
    }

    /// POST number `seq` of `bytes`, `elapsed` after the first arrived: the whole chunks
    /// it completes. A repeat of the last number gives nothing (a retry whose answer was
    /// lost); every bound is checked before anything is encoded.
    pub fn push(
        &mut self,
        seq: u64,
        bytes: &[u8],
        elapsed: Duration,
    ) -> Result<Vec<Vec<u8>>, PcmError> {
        if bytes.len() > MAX_PCM_BYTES {
            return Err(PcmError::TooLarge(bytes.len()));
        }
        if !bytes.len().is_multiple_of(2) {
            return Err(PcmError::OddLength(bytes.len()));
        }
        if seq + 1 == self.next {
            return Ok(Vec::new());
        }
        if seq != self.next {
            return Err(PcmError::OutOfOrder { got: seq, want: self.next });
        }
        let samples = self.samples + (bytes.len() / 2) as u64;
        let audio_ms = samples * 1000 / u64::from(PCM_RATE);
        if samples > MAX_LIVE_SECS * u64::from(PCM_RATE) {
            return Err(PcmError::TooLong);
        }
        let ahead_ms = audio_ms.saturating_sub(elapsed.as_millis() as u64);
        if ahead_ms > MAX_AHEAD_MS {
            return Err(PcmError::TooFast { ahead_ms });
        }
        let pcm: Vec<f32> = bytes
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
            .collect();
        let packets = self.encoder.push(&pcm).map_err(|e| PcmError::Codec(e.to_string()))?;
        self.packets.extend(packets);
        self.next += 1;
        self.samples = samples;
        let mut out = Vec::new();
        while self.packets.len() >= FRAMES_PER_CHUNK {
            let chunk: Vec<Vec<u8>> = self.packets.drain(..FRAMES_PER_CHUNK).collect();
            out.push(framed(&chunk));
        }
        Ok(out)
    }

    /// The last chunk: the packets left, and the partial frame padded with silence.
    pub fn finish(&mut self) -> Option<Vec<u8>> {
        let frame = (PCM_RATE / 1000 * FRAME_MS) as usize;
        let partial = (self.samples % frame as u64) as usize;
        if partial > 0
            && let Ok(packets) = self.encoder.push(&vec![0.0; frame - partial])
        {
            self.packets.extend(packets);
        }
        if self.packets.is_empty() {
            return None;
        }
        let rest: Vec<Vec<u8>> = std::mem::take(&mut self.packets);
        Some(framed(&rest))
    }
}

fn framed(packets: &[Vec<u8>]) -> Vec<u8> {
    let payload = pack(packets);
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(&payload);
    out
}

/// How a console broadcast ended, for the page.
#[derive(Debug, Clone)]
pub struct Ending {
    /// Why, in English (as in the store and the audit trail).
    pub reason: String,
    /// The refusal's status when a bound or a stall ended it; 200 when it ended cleanly.
    pub status: u16,
    pub chunks: u64,
    pub audio_secs: f64,
}

/// One console broadcast being spoken.
pub struct Feed {
    pub id: String,
    /// The person speaking (`Caller::who`): only they feed or stop it.
    pub who: String,
    pub stations: usize,
    intake: Mutex<Feeding>,
    ended: Mutex<Option<Ending>>,
    done: tokio::sync::Notify,
}

struct Feeding {
    pcm: PcmIntake,
    /// `None` once stopped: the intake then sees the end of its stream.
    tx: Option<tokio::sync::mpsc::Sender<Result<Bytes, PcmError>>>,
    first: Option<Instant>,
}

impl Feed {
    /// How it ended, once it has.
    pub fn ended(&self) -> Option<Ending> {
        self.ended.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// POST `seq` of PCM: encoded and queued for the intake. Refused when it broke a
    /// bound (the broadcast then ends: whatever the browser sends next is answered with
    /// why) or after the broadcast ended.
    pub fn feed(&self, seq: u64, bytes: &[u8]) -> Result<u64, ApiError> {
        let mut f = self.intake.lock().unwrap_or_else(|p| p.into_inner());
        let Some(tx) = f.tx.clone() else {
            return Err(ApiError::Conflict("this broadcast has been stopped".into()));
        };
        let first = *f.first.get_or_insert_with(Instant::now);
        let chunks = match f.pcm.push(seq, bytes, first.elapsed()) {
            Ok(c) => c,
            Err(e) => {
                // A broken bound ends the broadcast, as it ends an upload; the intake
                // records why.
                let _ = tx.try_send(Err(e.clone()));
                f.tx = None;
                return Err(e.into());
            }
        };
        for chunk in chunks {
            match tx.try_send(Ok(Bytes::from(chunk))) {
                Ok(()) => {}
                Err(tokio::sync::mpsc::error::TrySendError::Full(_)) => {
                    f.tx = None;
                    return Err(ApiError::Internal(
                        "central could not keep up with the audio".into(),
                    ));
                }
                Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => {
                    f.tx = None;
                    return Err(ApiError::Conflict("the broadcast has ended".into()));
                }
            }
        }
        Ok(f.pcm.audio_ms())
    }

    /// Ends the broadcast because of `e` (a POST that could not be read): the intake
    /// records why.
    pub fn abort(&self, e: PcmError) {
        let mut f = self.intake.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(tx) = f.tx.take() {
            let _ = tx.try_send(Err(e));
        }
    }

    /// The stop button: the last partial chunk, then the end of the stream. Returns how
    /// it ended, waiting for the intake to sign its end (at most `within`).
    pub async fn stop(&self, within: Duration) -> Option<Ending> {
        let notified = self.done.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        {
            let mut f = self.intake.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(tx) = f.tx.take()
                && let Some(last) = f.pcm.finish()
            {
                let _ = tx.try_send(Ok(Bytes::from(last)));
            }
        }
        if self.ended().is_none() {
            let _ = tokio::time::timeout(within, notified).await;
        }
        self.ended()
    }
}

/// Starts a console broadcast for `caller` through [`super::begin`] (the same checks as
/// `POST /api/v1/live`) and begins carrying its audio: the returned feed takes the
/// browser's PCM. One at a time per person.
pub fn start(
    state: &Arc<AppState>,
    caller: &Caller,
    request: &StartLiveRequest,
) -> Result<Arc<Feed>, ApiError> {
    // Held while the broadcast starts, so one person cannot start two at once.
    let mut feeds = state.live.feeds.lock().unwrap_or_else(|p| p.into_inner());
    // Ended feeds are kept until their page has learnt why (or the same person starts
    // again): at most one per person.
    feeds.retain(|_, f| f.ended().is_none() || f.who != caller.who);
    if feeds.values().any(|f| f.who == caller.who) {
        return Err(ApiError::Conflict(
            "you are already speaking live: stop that broadcast first".into(),
        ));
    }
    let pcm = PcmIntake::new().map_err(ApiError::from)?;
    let (answer, broadcast) = super::begin(state, caller, request)?;
    // This feed is the broadcast's only upload: the API's PUT is refused (409).
    broadcast.uploading.store(true, std::sync::atomic::Ordering::SeqCst);
    let (tx, rx) = tokio::sync::mpsc::channel(QUEUE);
    let feed = Arc::new(Feed {
        id: answer.id.clone(),
        who: caller.who.clone(),
        stations: answer.stations,
        intake: Mutex::new(Feeding { pcm, tx: Some(tx), first: None }),
        ended: Mutex::new(None),
        done: tokio::sync::Notify::new(),
    });
    feeds.insert(answer.id, feed.clone());
    drop(feeds);
    tokio::spawn(carry(state.clone(), broadcast, feed.clone(), caller.actor(), rx));
    Ok(feed)
}

async fn carry(
    state: Arc<AppState>,
    broadcast: Arc<Broadcast>,
    feed: Arc<Feed>,
    actor: crate::central::bulletins::Actor,
    rx: tokio::sync::mpsc::Receiver<Result<Bytes, PcmError>>,
) {
    let stream =
        futures_util::stream::unfold(
            rx,
            |mut rx| async move { rx.recv().await.map(|item| (item, rx)) },
        );
    let stream = Box::pin(stream);
    let carried = super::upload::speak(&state, &broadcast, &actor, stream, FEED_STALL).await;
    let ending = Ending {
        status: carried.error.as_ref().map_or(200, |e| e.status().as_u16()),
        reason: carried.reason,
        chunks: carried.chunks,
        audio_secs: carried.audio_ms as f64 / 1000.0,
    };
    // The POSTs stop being taken; the page learns why from its next one.
    feed.intake.lock().unwrap_or_else(|p| p.into_inner()).tx = None;
    *feed.ended.lock().unwrap_or_else(|p| p.into_inner()) = Some(ending);
    feed.done.notify_waiters();
}

/// The feed `id` if `who` is the one speaking on it (else, as for any id they cannot
/// see, none).
pub fn feed_of(state: &AppState, id: &str, who: &str) -> Option<Arc<Feed>> {
    let feeds = state.live.feeds.lock().unwrap_or_else(|p| p.into_inner());
    feeds.get(id).filter(|f| f.who == who).cloned()
}

/// Forgets an ended feed (its page has been told how it ended).
pub fn forget(state: &AppState, id: &str) {
    let mut feeds = state.live.feeds.lock().unwrap_or_else(|p| p.into_inner());
    if feeds.get(id).is_some_and(|f| f.ended().is_some()) {
        feeds.remove(id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::central::live::upload::{Intake, IntakeError};
    use crate::protocol::live::MAX_CHUNK_BYTES;

    const LATER: Duration = Duration::from_secs(3 * 3600);
    /// 200 ms of a 440 Hz tone, as the browser sends it.
    fn post() -> Vec<u8> {
        (0..PCM_RATE as usize / 5)
            .flat_map(|i| {
                let x = (i as f32 * 440.0 * std::f32::consts::TAU / PCM_RATE as f32).sin();
                ((x * 12_000.0) as i16).to_le_bytes()
            })
            .collect()
    }

    #[test]
    fn each_post_becomes_whole_chunks_the_upload_intake_accepts() {
        let mut pcm = PcmIntake::new().unwrap();
        let mut intake = Intake::default();
        for seq in 0..3 {
            let chunks = pcm.push(seq, &post(), LATER).unwrap();
            assert_eq!(chunks.len(), 2, "200 ms is two 100 ms chunks");
            for c in chunks {
                intake.push(&c);
                let payload = intake.next_chunk(LATER).unwrap().expect("a whole chunk");
                assert!(payload.len() <= MAX_CHUNK_BYTES);
            }
        }
        assert_eq!((intake.chunks, intake.audio_ms, pcm.audio_ms()), (6, 600, 600));
        // A partial frame at the end is padded and sent.
        let mut pcm = PcmIntake::new().unwrap();
        assert!(pcm.push(0, &post()[..1000], LATER).unwrap().is_empty());
        let last = pcm.finish().expect("the rest");
        intake.push(&last);
        assert!(intake.next_chunk(LATER).unwrap().is_some());
    }

    #[test]
    fn a_post_past_its_size_or_not_whole_samples_is_refused_before_encoding() {
        let mut pcm = PcmIntake::new().unwrap();
        assert!(pcm.push(0, &vec![0u8; MAX_PCM_BYTES], LATER).is_ok(), "1 s is the most");
        assert_eq!(
            pcm.push(1, &vec![0u8; MAX_PCM_BYTES + 2], LATER),
            Err(PcmError::TooLarge(MAX_PCM_BYTES + 2))
        );
        assert_eq!(pcm.push(1, &[0u8; 3], LATER), Err(PcmError::OddLength(3)));
        assert_eq!(pcm.audio_ms(), 1000, "nothing of the refused ones counted");
    }

    #[test]
    fn posts_come_in_order_and_a_retry_of_the_last_changes_nothing() {
        let mut pcm = PcmIntake::new().unwrap();
        assert_eq!(pcm.push(0, &post(), LATER).unwrap().len(), 2);
        assert!(pcm.push(0, &post(), LATER).unwrap().is_empty(), "a retry");
        assert_eq!(pcm.audio_ms(), 200);
        assert_eq!(pcm.push(2, &post(), LATER), Err(PcmError::OutOfOrder { got: 2, want: 1 }));
        assert_eq!(pcm.push(1, &post(), LATER).unwrap().len(), 2);
    }

    #[test]
    fn audio_faster_than_real_time_is_refused_one_post_past_the_bound() {
        let mut pcm = PcmIntake::new().unwrap();
        let allowed = MAX_AHEAD_MS / 200;
        for seq in 0..allowed {
            assert!(pcm.push(seq, &post(), Duration::ZERO).is_ok());
        }
        assert_eq!(
            pcm.push(allowed, &post(), Duration::ZERO),
            Err(PcmError::TooFast { ahead_ms: MAX_AHEAD_MS + 200 })
        );
        // The same POST a moment later is in time.
        assert!(pcm.push(allowed, &post(), Duration::from_millis(200)).is_ok());
        // And what it made passes the upload's own pacing bound just as well.
        let mut pcm = PcmIntake::new().unwrap();
        let mut intake = Intake::default();
        let mut refused = None;
        for seq in 0..=allowed {
            for c in pcm.push(seq, &post(), LATER).unwrap() {
                intake.push(&c);
                if let Err(e) = intake.next_chunk(Duration::ZERO) {
                    refused = Some(e);
                }
            }
        }
        assert_eq!(refused, Some(IntakeError::TooFast { ahead_ms: MAX_AHEAD_MS + 100 }));
    }

    #[test]
    fn a_broadcast_past_its_longest_is_refused() {
        let mut pcm = PcmIntake::new().unwrap();
        pcm.samples = MAX_LIVE_SECS * u64::from(PCM_RATE) - u64::from(PCM_RATE) / 5;
        assert!(pcm.push(0, &post(), LATER).is_ok(), "up to the last 200 ms");
        assert_eq!(pcm.push(1, &[0u8; 2], LATER), Err(PcmError::TooLong));
    }
}
