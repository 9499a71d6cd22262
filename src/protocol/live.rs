//! A live voice from the province: the signed start document stations hear on their
//! event stream, the hash chain over the audio chunks, the signed checkpoints, and the
//! framing the audio travels in (operator → central, central → stations, and central's
//! recording).
//!
//! Why this shape: a station must never play more than a few seconds of audio the
//! province did not sign, yet signing every 100 ms chunk as a document would cost a
//! signature check per chunk at 1,000 stations. So each chunk carries its sequence number
//! and the hash of the chain up to the previous chunk (a chunk out of place or altered
//! shows at the next one), and every [`CHECKPOINT_EVERY`] chunks central signs the
//! running hash ([`DocumentKind::LiveCheckpoint`]). The chain starts from the hash of the
//! signed start document, so it belongs to this broadcast alone. A station that joins
//! late, or reconnects, starts from the latest checkpoint, which it verifies first.
//!
//! Framing, one record after another: a type byte, a big-endian `u32` body length, the
//! body. [`RECORD_CHUNK`]: `seq` (u64 BE), the previous hash (32 bytes), then the chunk's
//! Opus packets, each a big-endian `u16` length and its bytes. [`RECORD_CHECKPOINT`]: a
//! [`SignedEnvelope`] as JSON. The upload from `loa live` is simpler: a `u32` length and
//! the packets of one chunk, repeated; central numbers, chains and signs them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::bounds;
use super::bulletin::BulletinPriority;
use super::signed::SignedEnvelope;

/// The codec: Opus, 48 kHz mono, 20 ms frames (see ARCHITECTURE.md for why).
pub const CODEC: &str = "opus";
pub const RATE: u32 = 48_000;
pub const CHANNELS: u8 = 1;
pub const FRAME_MS: u32 = 20;
/// Samples in one frame.
pub const FRAME_SAMPLES: usize = (RATE / 1000 * FRAME_MS) as usize;
/// Frames in one chunk (100 ms): what `loa live` sends at a time.
pub const FRAMES_PER_CHUNK: usize = 5;
/// Chunks between two signed checkpoints (1 s of audio).
pub const CHECKPOINT_EVERY: u64 = 10;
/// A station cuts a broadcast when this much of its audio has gone without a valid
/// checkpoint: the most unauthenticated audio a loudspeaker ever plays.
pub const AUTH_WINDOW_MS: u64 = 3000;

/// Largest chunk (its packets with their length prefixes), bytes: 100 ms of Opus is
/// about 300–1,300 bytes.
pub const MAX_CHUNK_BYTES: usize = 8 * 1024;
/// Most packets in one chunk (each at least 2.5 ms): 1 s.
pub const MAX_PACKETS_PER_CHUNK: usize = 50;
/// Largest record on the stations' stream (a chunk with its header, or a checkpoint).
pub const MAX_RECORD_BYTES: usize = MAX_CHUNK_BYTES + 64;
/// Longest broadcast: central ends it after this much audio.
pub const MAX_LIVE_SECS: u64 = 2 * 3600;
/// How far the upload may run ahead of real time before central refuses it (a client
/// sending faster than it speaks is not live, and would fill every station's buffer).
pub const MAX_AHEAD_MS: u64 = 5000;
/// Listeners one station token may hold on one broadcast (the newest wins).
pub const MAX_LISTENERS_PER_STATION: usize = 2;

pub const RECORD_CHUNK: u8 = 1;
pub const RECORD_CHECKPOINT: u8 = 2;

/// A live broadcast as the province signs it ([`DocumentKind::Live`]): the stream header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveDoc {
    pub id: String,
    pub title: String,
    /// The station ids it is for; empty with `to_all`.
    pub targets: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub to_all: bool,
    /// `emergency` or `priority`: the bulletin rules it airs by.
    pub priority: BulletinPriority,
    pub codec: String,
    pub rate: u32,
    pub channels: u8,
    pub frame_ms: u32,
    pub checkpoint_every: u64,
    pub issued_at: DateTime<Utc>,
    /// Nothing of it plays after this (issued + [`MAX_LIVE_SECS`] and a margin).
    pub expires_at: DateTime<Utc>,
    /// As [`super::BulletinDoc::event_seq`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_seq: Option<u64>,
}

impl LiveDoc {
    pub fn is_for(&self, station: &str) -> bool {
        self.to_all || self.targets.iter().any(|t| t == station)
    }

    /// The bounds a station checks on a signed start document (a signature says who,
    /// not that the numbers are sane).
    pub fn check_bounds(&self) -> Result<(), String> {
        bounds::check_id(&self.id)?;
        bounds::check_text("title", &self.title, bounds::MAX_TITLE_CHARS)?;
        bounds::check_targets(&self.targets)?;
        if self.priority == BulletinPriority::Test {
            return Err("a live broadcast is emergency or priority, never test".into());
        }
        let format = (self.codec.as_str(), self.rate, self.channels, self.frame_ms);
        if format != (CODEC, RATE, CHANNELS, FRAME_MS) {
            return Err(format!(
                "live audio {}/{} Hz/{} ch/{} ms: this station plays opus/48000 Hz/1 ch/20 ms",
                bounds::clip(&self.codec),
                self.rate,
                self.channels,
                self.frame_ms
            ));
        }
        if self.checkpoint_every == 0 || self.checkpoint_every > CHECKPOINT_EVERY * 2 {
            return Err(format!(
                "a checkpoint every {} chunks: 1 to {}",
                self.checkpoint_every,
                CHECKPOINT_EVERY * 2
            ));
        }
        bounds::check_validity(self.issued_at, self.expires_at).map(|_| ())
    }
}

/// A signed checkpoint ([`DocumentKind::LiveCheckpoint`]): the chain's hash after chunk
/// `seq` (0: before the first chunk) of broadcast `id`; `end` marks the last one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveCheckpoint {
    pub id: String,
    pub seq: u64,
    /// Lowercase hex of the running hash.
    pub hash: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub end: bool,
}

/// The chain's first hash: over the signed start document's payload as it travels.
pub fn genesis(start: &SignedEnvelope) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"loa-live-genesis\0");
    h.update(start.payload.as_bytes());
    h.finalize().into()
}

/// The hash after chunk `seq` with `payload`, following `prev`.
pub fn chain(prev: &[u8; 32], seq: u64, payload: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(prev);
    h.update(seq.to_be_bytes());
    h.update(payload);
    h.finalize().into()
}

/// A record's bytes: type, length, body.
pub fn record(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(5 + body.len());
    out.push(kind);
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(body);
    out
}

/// A chunk record's body.
pub fn chunk_body(seq: u64, prev: &[u8; 32], payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(40 + payload.len());
    out.extend_from_slice(&seq.to_be_bytes());
    out.extend_from_slice(prev);
    out.extend_from_slice(payload);
    out
}

/// One parsed record of the stations' stream.
#[derive(Debug, Clone, PartialEq)]
pub enum Record {
    Chunk { seq: u64, prev: [u8; 32], payload: Vec<u8> },
    Checkpoint(SignedEnvelope),
}

/// Splits records off the front of `buf` as bytes arrive; errors name what was wrong
/// (an unknown type, a length past [`MAX_RECORD_BYTES`], a malformed body).
#[derive(Default)]
pub struct Reader {
    buf: Vec<u8>,
}

impl Reader {
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole record, `Ok(None)` when more bytes are needed.
    pub fn next_record(&mut self) -> Result<Option<Record>, String> {
        if self.buf.len() < 5 {
            return Ok(None);
        }
        let kind = self.buf[0];
        let len = u32::from_be_bytes([self.buf[1], self.buf[2], self.buf[3], self.buf[4]]) as usize;
        if len > MAX_RECORD_BYTES {
            return Err(format!("a record of {len} bytes: at most {MAX_RECORD_BYTES}"));
        }
        if !matches!(kind, RECORD_CHUNK | RECORD_CHECKPOINT) {
            return Err(format!("unknown record type {kind}"));
        }
        if self.buf.len() < 5 + len {
            return Ok(None);
        }
        let body: Vec<u8> = self.buf.drain(..5 + len).skip(5).collect();
        match kind {
            RECORD_CHUNK => {
                if body.len() < 40 {
                    return Err(format!("a chunk record of {} bytes: at least 40", body.len()));
                }
                let seq = u64::from_be_bytes(body[..8].try_into().unwrap_or_default());
                let mut prev = [0u8; 32];
                prev.copy_from_slice(&body[8..40]);
                Ok(Some(Record::Chunk { seq, prev, payload: body[40..].to_vec() }))
            }
            _ => serde_json::from_slice(&body)
                .map(|e| Some(Record::Checkpoint(e)))
                .map_err(|e| format!("a checkpoint that is not a signed envelope: {e}")),
        }
    }
}

/// The Opus packets of a chunk's payload, checked against the bounds.
pub fn packets(payload: &[u8]) -> Result<Vec<&[u8]>, String> {
    if payload.len() > MAX_CHUNK_BYTES {
        return Err(format!("a chunk of {} bytes: at most {MAX_CHUNK_BYTES}", payload.len()));
    }
    let mut out = Vec::new();
    let mut rest = payload;
    while !rest.is_empty() {
        if rest.len() < 2 {
            return Err("a chunk ends inside a packet length".into());
        }
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        if len == 0 || rest.len() < 2 + len {
            return Err(format!("a packet of {len} bytes does not fit its chunk"));
        }
        out.push(&rest[2..2 + len]);
        rest = &rest[2 + len..];
        if out.len() > MAX_PACKETS_PER_CHUNK {
            return Err(format!("more than {MAX_PACKETS_PER_CHUNK} packets in one chunk"));
        }
    }
    if out.is_empty() {
        return Err("an empty chunk".into());
    }
    Ok(out)
}

/// Packs Opus packets into a chunk payload.
pub fn pack(packets: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for p in packets {
        out.extend_from_slice(&(p.len() as u16).to_be_bytes());
        out.extend_from_slice(p);
    }
    out
}

/// What an operator asks for (`POST /api/v1/live`; `loa live`, the console).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartLiveRequest {
    pub title: String,
    pub to: super::library::Target,
    pub priority: BulletinPriority,
}

/// Central's answer: the broadcast's id and where its audio goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StartLiveResponse {
    pub id: String,
    /// `PUT` the audio here (this path on central).
    pub upload: String,
    pub stations: usize,
}

/// A broadcast as central keeps it (the store, `GET /api/v1/live`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LiveRecord {
    pub id: String,
    pub title: String,
    pub priority: BulletinPriority,
    pub started_by: String,
    pub started_at: DateTime<Utc>,
    pub stations: usize,
    pub ended_at: Option<DateTime<Utc>>,
    /// Chunks received and seconds of audio.
    pub chunks: u64,
    pub audio_secs: f64,
    /// Why it ended (`stopped`, `upload ended`, a bound passed…).
    pub end_reason: Option<String>,
    /// Central's recording (data_dir-relative).
    pub recording: String,
    /// When the central replica receiving it last said it still was (every
    /// `LIVE_ALIVE_EVERY` while on air): a replica that died mid-broadcast leaves its row
    /// open, and this tells the others to stop sending stations to look for it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alive_at: Option<DateTime<Utc>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_every_bound_holds_one_past() {
        let mut r = Reader::default();
        let body = chunk_body(7, &[9; 32], &pack(&[vec![1, 2, 3]]));
        let bytes = record(RECORD_CHUNK, &body);
        r.push(&bytes[..10]);
        assert_eq!(r.next_record(), Ok(None), "waits for the rest");
        r.push(&bytes[10..]);
        let Some(Record::Chunk { seq, prev, payload }) = r.next_record().unwrap() else { panic!() };
        assert_eq!((seq, prev), (7, [9; 32]));
        assert_eq!(packets(&payload).unwrap(), vec![&[1u8, 2, 3][..]]);

        let mut big = Reader::default();
        big.push(&record(RECORD_CHUNK, &vec![0; MAX_RECORD_BYTES + 1])[..5]);
        assert!(big.next_record().unwrap_err().contains("at most"));
        let mut at = Reader::default();
        at.push(&record(RECORD_CHUNK, &vec![0; MAX_RECORD_BYTES]));
        assert!(at.next_record().unwrap().is_some());
        let mut odd = Reader::default();
        odd.push(&record(9, b"x"));
        assert!(odd.next_record().unwrap_err().contains("unknown record type 9"));

        let full = vec![vec![0u8; 10]; MAX_PACKETS_PER_CHUNK];
        assert!(packets(&pack(&full)).is_ok());
        let over = vec![vec![0u8; 10]; MAX_PACKETS_PER_CHUNK + 1];
        assert!(packets(&pack(&over)).is_err());
        assert!(packets(&vec![0u8; MAX_CHUNK_BYTES + 1]).is_err());
        assert!(packets(&[0, 5, 1]).is_err(), "a packet longer than its chunk");
        assert!(packets(&[]).is_err());
    }

    #[test]
    fn the_chain_depends_on_every_byte_and_the_order() {
        let g = [0u8; 32];
        let a = chain(&g, 1, b"abc");
        assert_ne!(a, chain(&g, 1, b"abd"));
        assert_ne!(a, chain(&g, 2, b"abc"));
        assert_ne!(chain(&a, 2, b"x"), chain(&chain(&g, 1, b"abd"), 2, b"x"));
    }
}
