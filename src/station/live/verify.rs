//! The gate every live chunk passes before its audio reaches the relay buffer: its place
//! in the hash chain (sequence number and the previous chunk's hash), and the province's
//! signed checkpoints over the running hash. Pure: records in, verdicts out.
//!
//! What it guarantees: a chunk out of place, repeated, dropped or altered (with its
//! successor's `prev` left alone) is refused at once; an alteration that also rewrites
//! every later `prev` is refused at the next checkpoint, whose signed hash no longer
//! matches; and a stream whose checkpoints stop is refused once more than
//! [`AUTH_WINDOW_MS`] of audio has arrived since the last valid one. The receiver cuts
//! the broadcast on the first refusal, clearing what it buffered: with checkpoints every
//! second and a relay buffer of 2 s, audio refused at its checkpoint has not played yet.

use crate::protocol::live::{
    AUTH_WINDOW_MS, FRAME_MS, FRAMES_PER_CHUNK, LiveCheckpoint, Record, chain, packets,
};
use crate::protocol::{DocumentKind, SignedEnvelope};
use crate::signing::PublicKey;

/// Why a live stream was refused: each names what was wrong.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum LiveError {
    #[error("live {id}: chunk {got} arrived where chunk {want} was due")]
    OutOfPlace { id: String, got: u64, want: u64 },
    #[error("live {id}: chunk {seq} does not follow chunk {prev} (its previous hash differs)")]
    Broken { id: String, seq: u64, prev: u64 },
    #[error("live {id}: checkpoint refused: {why}")]
    Checkpoint { id: String, why: String },
    #[error("live {id}: checkpoint at chunk {seq} does not match the audio received")]
    Mismatch { id: String, seq: u64 },
    #[error("live {id}: {ms} ms of audio without a valid checkpoint (at most {AUTH_WINDOW_MS})")]
    Unauthenticated { id: String, ms: u64 },
    #[error("live {id}: the stream must start with a signed checkpoint")]
    NoStart { id: String },
    #[error("live {id}: {why}")]
    Malformed { id: String, why: String },
    #[error("live {id}: audio after its last checkpoint")]
    AfterEnd { id: String },
}

/// What a record meant.
#[derive(Debug, Clone, PartialEq)]
pub enum Verdict {
    /// A chunk in its place: its Opus packets, to decode and buffer.
    Play(Vec<Vec<u8>>),
    /// A valid checkpoint: everything up to `seq` is the province's.
    Verified { seq: u64 },
    /// The last checkpoint: the broadcast ended, everything received is verified.
    Ended { seq: u64 },
}

/// The chain state of one broadcast at one station.
pub struct Verifier {
    key: PublicKey,
    id: String,
    /// The genesis hash (from the signed start document): a checkpoint at chunk 0 must
    /// carry it.
    genesis: [u8; 32],
    /// The running hash after chunk `seq`.
    hash: [u8; 32],
    seq: u64,
    /// A first checkpoint has placed us in the chain.
    placed: bool,
    /// Chunks since the last valid checkpoint.
    unverified: u64,
    ended: bool,
}

impl Verifier {
    /// For broadcast `id` whose signed start document hashes to `genesis`.
    pub fn new(key: PublicKey, id: &str, genesis: [u8; 32]) -> Self {
        Self {
            key,
            id: id.to_string(),
            genesis,
            hash: genesis,
            seq: 0,
            placed: false,
            unverified: 0,
            ended: false,
        }
    }

    /// Chunks allowed between two valid checkpoints.
    fn window_chunks() -> u64 {
        AUTH_WINDOW_MS / (u64::from(FRAME_MS) * FRAMES_PER_CHUNK as u64)
    }

    /// Audio received since the last valid checkpoint, milliseconds.
    pub fn unverified_ms(&self) -> u64 {
        self.unverified * u64::from(FRAME_MS) * FRAMES_PER_CHUNK as u64
    }

    pub fn on_record(&mut self, record: Record) -> Result<Verdict, LiveError> {
        let id = self.id.clone();
        match record {
            Record::Checkpoint(envelope) => self.checkpoint(&envelope),
            Record::Chunk { .. } if !self.placed => Err(LiveError::NoStart { id }),
            Record::Chunk { .. } if self.ended => Err(LiveError::AfterEnd { id }),
            Record::Chunk { seq, prev, payload } => {
                let want = self.seq.saturating_add(1);
                if seq != want {
                    return Err(LiveError::OutOfPlace { id, got: seq, want });
                }
                if prev != self.hash {
                    return Err(LiveError::Broken { id, seq, prev: self.seq });
                }
                let frames: Vec<Vec<u8>> = packets(&payload)
                    .map_err(|why| LiveError::Malformed { id: id.clone(), why })?
                    .into_iter()
                    .map(<[u8]>::to_vec)
                    .collect();
                if frames.len() > FRAMES_PER_CHUNK {
                    // Longer chunks would stretch the window a checkpoint covers.
                    let why = format!(
                        "chunk {seq} holds {} frames: at most {FRAMES_PER_CHUNK}",
                        frames.len()
                    );
                    return Err(LiveError::Malformed { id, why });
                }
                self.hash = chain(&prev, seq, &payload);
                self.seq = seq;
                self.unverified += 1;
                if self.unverified > Self::window_chunks() {
                    return Err(LiveError::Unauthenticated { id, ms: self.unverified_ms() });
                }
                Ok(Verdict::Play(frames))
            }
        }
    }

    fn checkpoint(&mut self, envelope: &SignedEnvelope) -> Result<Verdict, LiveError> {
        let id = self.id.clone();
        let refused = |why: String| LiveError::Checkpoint { id: id.clone(), why };
        let payload = self
            .key
            .verify_envelope(DocumentKind::LiveCheckpoint, envelope)
            .map_err(|e| refused(e.to_string()))?;
        let cp: LiveCheckpoint = serde_json::from_slice(&payload)
            .map_err(|e| refused(format!("not a checkpoint: {e}")))?;
        if cp.id != self.id {
            return Err(refused(format!(
                "it is for broadcast {:?}",
                crate::protocol::bounds::clip(&cp.id)
            )));
        }
        let hash = hex::decode(&cp.hash).ok().and_then(|h| <[u8; 32]>::try_from(h).ok());
        let Some(hash) = hash else { return Err(refused("its hash is not 64 hex digits".into())) };
        if !self.placed {
            // Joining: at the start (chunk 0, the genesis), or later from the latest
            // checkpoint central sends first.
            if cp.seq == 0 && hash != self.genesis {
                return Err(LiveError::Mismatch { id, seq: 0 });
            }
            self.placed = true;
            self.seq = cp.seq;
            self.hash = hash;
        } else if cp.seq != self.seq || hash != self.hash {
            return Err(LiveError::Mismatch { id, seq: cp.seq });
        }
        self.unverified = 0;
        if cp.end {
            self.ended = true;
            return Ok(Verdict::Ended { seq: cp.seq });
        }
        Ok(Verdict::Verified { seq: cp.seq })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::live::{CHECKPOINT_EVERY, chunk_body, pack};
    use crate::signing::ProvinceKey;

    fn key() -> ProvinceKey {
        ProvinceKey::from_seed([7; 32])
    }

    fn cp(key: &ProvinceKey, id: &str, seq: u64, hash: &[u8; 32], end: bool) -> Record {
        let doc = LiveCheckpoint { id: id.into(), seq, hash: hex::encode(hash), end };
        Record::Checkpoint(key.sign(DocumentKind::LiveCheckpoint, &doc).unwrap())
    }

    /// What central sends: checkpoint 0, then `n` chunks with a checkpoint every
    /// [`CHECKPOINT_EVERY`], then the end.
    fn stream(key: &ProvinceKey, n: u64) -> Vec<Record> {
        let genesis = [1u8; 32];
        let mut out = vec![cp(key, "l1", 0, &genesis, false)];
        let mut hash = genesis;
        for seq in 1..=n {
            let payload = pack(&[vec![seq as u8; 20]]);
            out.push(Record::Chunk { seq, prev: hash, payload: payload.clone() });
            hash = chain(&hash, seq, &payload);
            if seq % CHECKPOINT_EVERY == 0 {
                out.push(cp(key, "l1", seq, &hash, false));
            }
        }
        out.push(cp(key, "l1", n, &hash, true));
        out
    }

    fn run(v: &mut Verifier, records: Vec<Record>) -> Result<Vec<Verdict>, LiveError> {
        records.into_iter().map(|r| v.on_record(r)).collect()
    }

    #[test]
    fn a_broadcast_as_central_sends_it_plays_to_its_end() {
        let key = key();
        let mut v = Verifier::new(key.public(), "l1", [1; 32]);
        let verdicts = run(&mut v, stream(&key, 25)).unwrap();
        assert_eq!(verdicts.iter().filter(|v| matches!(v, Verdict::Play(_))).count(), 25);
        assert_eq!(verdicts.last(), Some(&Verdict::Ended { seq: 25 }));
        // The framing round trip: a chunk record is what the verifier reads.
        let body = chunk_body(1, &[1; 32], &pack(&[vec![1; 20]]));
        let mut reader = crate::protocol::live::Reader::default();
        reader.push(&crate::protocol::live::record(crate::protocol::live::RECORD_CHUNK, &body));
        assert!(matches!(reader.next_record(), Ok(Some(Record::Chunk { seq: 1, .. }))));
    }

    #[test]
    fn one_tampered_chunk_is_refused_at_the_next_chunk_or_checkpoint() {
        let key = key();
        // Its payload changed, the next chunk's `prev` left alone: refused at chunk 6.
        let mut records = stream(&key, 20);
        if let Record::Chunk { payload, .. } = &mut records[5] {
            payload[3] ^= 1;
        }
        let mut v = Verifier::new(key.public(), "l1", [1; 32]);
        let e = run(&mut v, records).unwrap_err();
        assert_eq!(e, LiveError::Broken { id: "l1".into(), seq: 6, prev: 5 });

        // Every later `prev` rewritten to match: refused at the checkpoint after chunk 10.
        let mut records = stream(&key, 20);
        let mut hash = [1u8; 32];
        for r in records.iter_mut() {
            if let Record::Chunk { seq, prev, payload } = r {
                if *seq == 5 {
                    payload[3] ^= 1;
                }
                *prev = hash;
                hash = chain(&hash, *seq, payload);
            }
        }
        let mut v = Verifier::new(key.public(), "l1", [1; 32]);
        let mut played = 0;
        let e = loop {
            match v.on_record(records.remove(0)) {
                Ok(Verdict::Play(_)) => played += 1,
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        assert_eq!(e, LiveError::Mismatch { id: "l1".into(), seq: 10 });
        assert_eq!(played, 10, "refused within one checkpoint interval of the change");
    }

    #[test]
    fn chunks_out_of_place_and_forged_checkpoints_are_refused() {
        let key = key();
        let mut records = stream(&key, 5);
        records.swap(1, 2);
        let mut v = Verifier::new(key.public(), "l1", [1; 32]);
        assert!(matches!(run(&mut v, records), Err(LiveError::OutOfPlace { got: 2, want: 1, .. })));

        let mut records = stream(&key, 5);
        records.remove(0);
        let mut v = Verifier::new(key.public(), "l1", [1; 32]);
        assert!(matches!(run(&mut v, records), Err(LiveError::NoStart { .. })));

        let other = ProvinceKey::from_seed([9; 32]);
        let mut v = Verifier::new(key.public(), "l1", [1; 32]);
        let e = v.on_record(cp(&other, "l1", 0, &[1; 32], false)).unwrap_err();
        assert!(e.to_string().contains("checkpoint refused"), "{e}");
        let e = v.on_record(cp(&key, "l2", 0, &[1; 32], false)).unwrap_err();
        assert!(e.to_string().contains("it is for broadcast \"l2\""), "{e}");
        let e = v.on_record(cp(&key, "l1", 0, &[2; 32], false)).unwrap_err();
        assert_eq!(
            e,
            LiveError::Mismatch { id: "l1".into(), seq: 0 },
            "not this broadcast's genesis"
        );

        let genesis = [1u8; 32];
        let mut v = Verifier::new(key.public(), "l1", genesis);
        v.on_record(cp(&key, "l1", 0, &genesis, false)).unwrap();
        let six = pack(&vec![vec![1u8]; FRAMES_PER_CHUNK + 1]);
        let e = v.on_record(Record::Chunk { seq: 1, prev: genesis, payload: six }).unwrap_err();
        assert!(e.to_string().contains("holds 6 frames"), "{e}");

        let mut records = stream(&key, 5);
        records.push(Record::Chunk { seq: 6, prev: [0; 32], payload: pack(&[vec![1]]) });
        let mut v = Verifier::new(key.public(), "l1", [1; 32]);
        assert!(matches!(run(&mut v, records), Err(LiveError::AfterEnd { .. })));
    }

    #[test]
    fn audio_past_the_window_without_a_checkpoint_is_refused_one_past_the_bound() {
        let key = key();
        let window = AUTH_WINDOW_MS / 100;
        let genesis = [1u8; 32];
        let mut v = Verifier::new(key.public(), "l1", genesis);
        v.on_record(cp(&key, "l1", 0, &genesis, false)).unwrap();
        let mut hash = genesis;
        for seq in 1..=window + 1 {
            let payload = pack(&[vec![3; 10]]);
            let r = v.on_record(Record::Chunk { seq, prev: hash, payload: payload.clone() });
            hash = chain(&hash, seq, &payload);
            if seq <= window {
                assert!(r.is_ok(), "chunk {seq}: {r:?}");
            } else {
                assert_eq!(
                    r,
                    Err(LiveError::Unauthenticated { id: "l1".into(), ms: AUTH_WINDOW_MS + 100 })
                );
            }
        }
    }

    #[test]
    fn a_station_joining_late_starts_from_the_latest_checkpoint() {
        let key = key();
        let records = stream(&key, 25);
        // Central sends a joiner the checkpoint after chunk 20, then what follows it.
        let idx = records
            .iter()
            .position(|r| {
                let Record::Checkpoint(e) = r else { return false };
                let p = key.public().verify_envelope(DocumentKind::LiveCheckpoint, e).unwrap();
                serde_json::from_slice::<LiveCheckpoint>(&p).unwrap().seq == 20
            })
            .unwrap();
        let mut v = Verifier::new(key.public(), "l1", [1; 32]);
        let verdicts = run(&mut v, records[idx..].to_vec()).unwrap();
        assert_eq!(verdicts.first(), Some(&Verdict::Verified { seq: 20 }));
        assert_eq!(verdicts.last(), Some(&Verdict::Ended { seq: 25 }));
    }
}
