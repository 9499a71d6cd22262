//! The last word on level before samples reach the sound card: a peak limiter with an
//! instant attack, so no sample ever leaves above [`PEAK_CEILING_DBFS`], whatever gain an
//! item carries.
//!
//! Central already picks each file's gain so its true peak stays under the ceiling
//! (`central::ingest::gain_towards`), so with a fresh gain this limiter never acts. It is
//! here for what central cannot see: a gain stored before peaks were measured, a schedule
//! item's own `gain_db` added on top, a hand-edited manifest field, a float file with
//! samples beyond full scale, decoder or resampler overshoot. A hard clamp at full scale
//! would square off every such peak (audible distortion on horn loudspeakers); letting
//! samples past 1.0 reach an integer sink would wrap them (a crack at full volume).
//! Ducking the gain for the few milliseconds around a peak costs far less.

/// Ceiling for every sample the player sends and for the peak central's gain aims under,
/// dBFS: -1 dBTP is the EBU R128 / ITU-R BS.1770 delivery limit. The 1 dB of headroom
/// covers what a sample-peak check misses: the sound card's reconstruction filter and the
/// station's own resampling (44.1 kHz files played at 48 kHz) bring inter-sample peaks up
/// to the true peak, which lossy decoding can put a fraction of a dB over the samples.
pub const PEAK_CEILING_DBFS: f64 = -1.0;

/// How fast the gain comes back after a peak (time constant). Short enough that one peak
/// does not duck the words after it; long enough not to follow the waveform itself (a
/// 50 Hz hum cycle is 20 ms), which would turn limiting into distortion.
const RELEASE_SECS: f64 = 0.1;

/// Linear amplitude of `dbfs`.
pub fn amplitude(dbfs: f64) -> f64 {
    10f64.powf(dbfs / 20.0)
}

/// A stereo-linked peak limiter: one gain for all channels of a frame, so the image does
/// not wander. Attack is instant (the gain drops to exactly what keeps the loudest sample
/// of the frame at the ceiling); release is exponential towards unity.
#[derive(Debug, Clone)]
pub struct Limiter {
    ceiling: f32,
    channels: usize,
    /// Current gain, 0 < gain ≤ 1.
    gain: f32,
    /// Per-frame factor by which the distance to unity gain shrinks.
    release: f32,
    limited_frames: u64,
}

impl Limiter {
    /// A limiter for interleaved audio of `channels` at `rate`, holding every sample at or
    /// below `ceiling_dbfs` (at most full scale, whatever is asked).
    pub fn new(ceiling_dbfs: f64, rate: u32, channels: usize) -> Self {
        let ceiling = amplitude(ceiling_dbfs.min(0.0)) as f32;
        let release = (-1.0 / (RELEASE_SECS * f64::from(rate.max(1)))).exp() as f32;
        Self { ceiling, channels: channels.max(1), gain: 1.0, release, limited_frames: 0 }
    }

    /// Limits `interleaved` in place. Non-finite samples (a corrupt float file) become
    /// silence rather than reaching the sink.
    pub fn process(&mut self, interleaved: &mut [f32]) {
        for frame in interleaved.chunks_mut(self.channels) {
            let mut peak = 0f32;
            for s in frame.iter_mut() {
                if !s.is_finite() {
                    *s = 0.0;
                }
                peak = peak.max(s.abs());
            }
            self.gain = 1.0 - (1.0 - self.gain) * self.release;
            if peak * self.gain > self.ceiling {
                self.gain = self.ceiling / peak;
                self.limited_frames += 1;
            }
            for s in frame.iter_mut() {
                // The clamp only absorbs rounding in `ceiling / peak · s`.
                *s = (*s * self.gain).clamp(-self.ceiling, self.ceiling);
            }
        }
    }

    /// Frames whose gain had to be pulled down so far.
    pub fn limited_frames(&self) -> u64 {
        self.limited_frames
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sine(frames: usize, amp: f32) -> Vec<f32> {
        (0..frames).map(|i| amp * (i as f32 * 0.05).sin()).collect()
    }

    #[test]
    fn audio_under_the_ceiling_passes_untouched() {
        let mut l = Limiter::new(PEAK_CEILING_DBFS, 48_000, 1);
        let input = sine(48_000, 0.5);
        let mut out = input.clone();
        l.process(&mut out);
        assert_eq!(out, input);
        assert_eq!(l.limited_frames(), 0);
    }

    #[test]
    fn no_sample_leaves_above_the_ceiling_even_at_plus_40_db() {
        let ceiling = amplitude(PEAK_CEILING_DBFS) as f32;
        let mut l = Limiter::new(PEAK_CEILING_DBFS, 48_000, 2);
        let gain = amplitude(40.0) as f32;
        let mut out: Vec<f32> = sine(96_000, 0.9).into_iter().map(|s| s * gain).collect();
        l.process(&mut out);
        let peak = out.iter().fold(0f32, |p, s| p.max(s.abs()));
        assert!(peak <= ceiling, "peak {peak} over ceiling {ceiling}");
        assert!(peak > ceiling * 0.99, "loud audio stays loud: {peak}");
        assert!(l.limited_frames() > 0);
    }

    #[test]
    fn gain_recovers_after_a_single_peak() {
        let mut l = Limiter::new(PEAK_CEILING_DBFS, 1_000, 1);
        let mut block = vec![0.25f32; 2_000];
        block[0] = 4.0;
        l.process(&mut block);
        // Ducked right after the peak, back to within 1% of unity 1 s (10 time constants)
        // later.
        assert!(block[1] < 0.25 * 0.5, "{}", block[1]);
        assert!((block[1_999] - 0.25).abs() < 0.25 * 0.01, "{}", block[1_999]);
    }

    #[test]
    fn non_finite_samples_become_silence_and_channels_share_one_gain() {
        let mut l = Limiter::new(0.0, 48_000, 2);
        let mut frame = [f32::NAN, 0.5, f32::INFINITY, 2.0, 0.25, -0.25];
        l.process(&mut frame);
        assert_eq!(frame[0], 0.0);
        assert_eq!(frame[1], 0.5);
        assert_eq!(frame[2], 0.0);
        assert_eq!(frame[3], 1.0);
        // The second frame is ducked on both channels alike.
        assert!(frame[4] < 0.25 && (frame[4] + frame[5]).abs() < 1e-6, "{frame:?}");
    }
}
