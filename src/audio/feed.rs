//! What the player plays from: a [`Feed`]. A file ([`Source`]) is one; a relayed stream
//! and a live broadcast ([`super::relay::RelayFeed`]) are others, whose samples arrive
//! from the network while they play. The player only ever asks a feed for the next
//! block, so none of them may block the audio thread.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::decode::{DecodeError, DecodeStats, Source};

/// A source of frames in the player's format.
pub trait Feed: Send {
    /// Fills `dst` (interleaved, the sink's format) and returns the frames written;
    /// fewer than asked only at the end. Never blocks.
    fn fill(&mut self, dst: &mut [f32]) -> Result<usize, DecodeError>;
    /// Damage survived so far (a file's skipped packets, truncation).
    fn stats(&self) -> DecodeStats {
        DecodeStats::default()
    }
    /// The instant the feed's first frame reaches the speaker (told once, at the start).
    fn started(&mut self, _at: DateTime<Utc>) {}
    /// What a relayed stream or a live broadcast did; `None` for a file.
    fn relay(&self) -> Option<RelayStats> {
        None
    }
}

impl Feed for Source {
    fn fill(&mut self, dst: &mut [f32]) -> Result<usize, DecodeError> {
        Source::fill(self, dst)
    }

    fn stats(&self) -> DecodeStats {
        Source::stats(self)
    }
}

/// What reached the speaker from a stream: the proof of play of a relay or a live
/// broadcast, in seconds of the sink's time.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct RelayStats {
    /// Seconds of the stream's own audio that went out.
    pub relayed_secs: f64,
    /// Drop-outs: stretches where the stream had nothing and the fallback (or silence)
    /// played instead.
    pub dropouts: u32,
    /// Their total length, seconds.
    pub dropout_secs: f64,
    /// The longest one, seconds.
    pub longest_dropout_secs: f64,
}
