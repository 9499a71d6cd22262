//! The proof of play: running sums over what the sink received for one item (frames,
//! peak, RMS, the longest silent stretch), kept apart from the audio thread's timing so
//! each can be read alone.

use std::time::Duration;

use super::PlayerConfig;
use crate::audio::decode::AudioFormat;
use crate::audio::feed::{Feed, RelayStats};
use crate::audio::sinks::frames_to_duration;

/// Evidence that an item went out: what the sink received for it.
#[derive(Debug, Clone, PartialEq)]
pub struct ProofOfPlay {
    /// Frames of this item written to the sink (after gain and fade).
    pub frames: u64,
    pub duration: Duration,
    /// Sample peak, dBFS (`-inf` if nothing played).
    pub peak_dbfs: f32,
    /// RMS over the whole item, dBFS.
    pub rms_dbfs: f32,
    /// Dead air: a stretch of at least `silence_min` under the threshold, or an item silent
    /// throughout.
    pub silent: bool,
    /// Corrupt packets skipped while decoding.
    pub skipped_packets: u32,
    /// The file ended before its header said it would.
    pub truncated: bool,
    /// For a relayed stream or a live broadcast: what came from the stream and what
    /// filled its drop-outs.
    pub relay: Option<RelayStats>,
}

/// Running sums for a [`ProofOfPlay`].
pub(super) struct ProofAcc {
    frames: u64,
    peak: f32,
    sum_sq: f64,
    samples: u64,
    window_frames: u64,
    window_sq: f64,
    window_len: u64,
    threshold_sq: f64,
    run: u64,
    longest_run: u64,
    silence_min_frames: u64,
    rate: u32,
}

impl ProofAcc {
    pub(super) fn new(config: &PlayerConfig, format: AudioFormat) -> Self {
        let threshold = 10f64.powf(f64::from(config.silence_threshold_dbfs) / 20.0);
        Self {
            frames: 0,
            peak: 0.0,
            sum_sq: 0.0,
            samples: 0,
            window_frames: u64::from(format.rate / 10).max(1),
            window_sq: 0.0,
            window_len: 0,
            threshold_sq: threshold * threshold,
            run: 0,
            longest_run: 0,
            silence_min_frames: (config.silence_min.as_secs_f64() * f64::from(format.rate)) as u64,
            rate: format.rate,
        }
    }

    pub(super) fn add(&mut self, samples: &[f32], channels: usize) {
        for frame in samples.chunks_exact(channels) {
            let mut sq = 0f64;
            for &s in frame {
                self.peak = self.peak.max(s.abs());
                sq += f64::from(s) * f64::from(s);
            }
            self.sum_sq += sq;
            self.samples += channels as u64;
            self.window_sq += sq / channels as f64;
            self.window_len += 1;
            if self.window_len == self.window_frames {
                if self.window_sq / (self.window_len as f64) < self.threshold_sq {
                    self.run += self.window_len;
                    self.longest_run = self.longest_run.max(self.run);
                } else {
                    self.run = 0;
                }
                self.window_sq = 0.0;
                self.window_len = 0;
            }
            self.frames += 1;
        }
    }

    pub(super) fn finish(&self, source: Option<&dyn Feed>) -> ProofOfPlay {
        let rms_sq = if self.samples > 0 { self.sum_sq / self.samples as f64 } else { 0.0 };
        let stats = source.map(|s| s.stats()).unwrap_or_default();
        ProofOfPlay {
            frames: self.frames,
            duration: frames_to_duration(self.frames, self.rate),
            peak_dbfs: dbfs(f64::from(self.peak)),
            rms_dbfs: dbfs(rms_sq.sqrt()),
            silent: self.frames == 0
                || (self.silence_min_frames > 0 && self.longest_run >= self.silence_min_frames)
                || rms_sq < self.threshold_sq,
            skipped_packets: stats.skipped_packets,
            truncated: stats.truncated,
            relay: source.and_then(|s| s.relay()),
        }
    }
}

fn dbfs(amplitude: f64) -> f32 {
    if amplitude > 0.0 { (20.0 * amplitude.log10()) as f32 } else { f32::NEG_INFINITY }
}
