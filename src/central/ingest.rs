//! Uploaded audio: prove it decodes and measure its loudness and peak before it enters
//! the library, so a station is never sent a file it cannot play, nor a gain that would
//! clip it.

use std::path::Path;

use crate::audio::{DecodeStats, PEAK_CEILING_DBFS};

/// What central needs to know about an uploaded file.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub duration_ms: u64,
    /// Integrated loudness, EBU R128 (LUFS).
    pub loudness_lufs: f64,
    /// True (inter-sample) peak, dBTP; `-inf` for digital silence.
    pub true_peak_dbtp: f64,
}

/// Why an upload is not playable audio.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("not a supported audio file (mp3, ogg vorbis, flac, wav): {0}")]
    Format(String),
    #[error("audio decodes to no samples: nothing to play")]
    Empty,
}

/// Decodes the whole file with the same decoder the stations play with
/// ([`crate::audio::probe`]) and takes its length, integrated loudness and true peak.
pub fn measure(path: &Path) -> Result<Measured, IngestError> {
    measure_as(path, path).map(|(measured, _)| measured)
}

/// [`measure`] for an upload held in a temporary file: errors name the file `shown` (as
/// the client sent it, never central's own path), and the decoder's damage report comes
/// back beside the figures, so the caller can refuse a truncated or corrupt file.
pub fn measure_as(path: &Path, shown: &Path) -> Result<(Measured, DecodeStats), IngestError> {
    let report =
        crate::audio::probe(path).map_err(|e| IngestError::Format(e.named(shown).to_string()))?;
    let duration_ms = u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX);
    if duration_ms == 0 {
        return Err(IngestError::Empty);
    }
    let measured = Measured {
        duration_ms,
        // Digital silence measures as -inf: record the quietest finite value instead.
        loudness_lufs: if report.integrated_lufs.is_finite() {
            report.integrated_lufs
        } else {
            -70.0
        },
        true_peak_dbtp: report.true_peak_dbtp,
    };
    Ok((measured, report.stats))
}

/// Most a file is raised or lowered for loudness, dB: a near-silent file is not blown up
/// into noise.
pub const MAX_LOUDNESS_GAIN_DB: f64 = 20.0;

/// The gain a station applies to this file, dB: towards `target_lufs`, but never more
/// than keeps the file's true peak at or below [`PEAK_CEILING_DBFS`].
///
/// Loudness alone is not enough: speech recorded quietly but with sharp plosives (or a
/// jingle with hard transients) measures low and would be raised until its peaks pass
/// full scale. The true peak, not the sample peak, is the bound because that is what the
/// station really sends: its resampler and the sound card's reconstruction filter
/// rebuild the waveform between samples, where a peak can sit up to a few dB over the
/// highest sample (a sine near a quarter of the sample rate, sampled off its crest).
/// The peak bound is rounded down to 0.01 dB, so the stored figure itself keeps it.
/// A file already over the ceiling is lowered as far as its peak needs, even past
/// -[`MAX_LOUDNESS_GAIN_DB`].
pub fn gain_towards(target_lufs: f64, measured: &Measured) -> f32 {
    let loudness =
        (target_lufs - measured.loudness_lufs).clamp(-MAX_LOUDNESS_GAIN_DB, MAX_LOUDNESS_GAIN_DB);
    // Rounded down, so the f32 stored keeps the bound exactly.
    let headroom = ((PEAK_CEILING_DBFS - measured.true_peak_dbtp) * 100.0).floor() / 100.0;
    let gain = if headroom.is_nan() { loudness } else { loudness.min(headroom) };
    gain as f32
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn wav_is_measured_and_garbage_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let wav = dir.path().join("tone.wav");
        std::fs::write(&wav, crate::testing::wav_bytes(2.0, 440.0, 0.5)).unwrap();
        let m = measure(&wav).unwrap();
        assert_eq!(m.duration_ms, 2000);
        // A 0.5-amplitude mono sine is about -9 LUFS.
        assert!((m.loudness_lufs - -9.0).abs() < 1.5, "{}", m.loudness_lufs);

        let junk = dir.path().join("junk.mp3");
        std::fs::write(&junk, b"this is not audio at all, just text").unwrap();
        assert!(matches!(measure(&junk), Err(IngestError::Format(_))));
    }

    #[test]
    fn shipped_mp3_and_ogg_samples_are_measured() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("audio");
        for name in ["ban-tin.mp3", "nhac-hieu.ogg"] {
            let m = measure(&root.join(name)).unwrap();
            assert!(m.duration_ms > 500, "{name}: {m:?}");
            assert!((-40.0..0.0).contains(&m.loudness_lufs), "{name}: {m:?}");
        }
    }

    fn measured(loudness_lufs: f64, true_peak_dbtp: f64) -> Measured {
        Measured { duration_ms: 1_000, loudness_lufs, true_peak_dbtp }
    }

    #[test]
    fn loudness_gain_is_bounded_when_peaks_allow() {
        assert_eq!(gain_towards(-16.0, &measured(-20.0, -12.0)), 4.0);
        assert_eq!(gain_towards(-16.0, &measured(-70.0, -60.0)), 20.0);
        assert_eq!(gain_towards(-16.0, &measured(-70.0, f64::NEG_INFINITY)), 20.0);
        assert_eq!(gain_towards(-16.0, &measured(-6.0, -0.5)), -10.0);
    }

    #[test]
    fn gain_never_lifts_the_true_peak_over_the_ceiling() {
        // Quiet speech with a sharp peak: loudness asks +10 dB, the peak allows +3.
        assert_eq!(gain_towards(-16.0, &measured(-26.0, -4.0)), 3.0);
        // Already over the ceiling (a float file): lowered even though it is quiet.
        assert_eq!(gain_towards(-16.0, &measured(-20.0, 2.5)), -3.5);
        for (lufs, tp) in [(-30.0, -3.33), (-23.7, -0.01), (-40.0, -20.123), (-18.0, 6.0)] {
            let gain = f64::from(gain_towards(-16.0, &measured(lufs, tp)));
            assert!(tp + gain <= PEAK_CEILING_DBFS, "{lufs} LUFS, {tp} dBTP: {gain} dB");
        }
    }

    /// Writes 3 s of a -30 dBFS speech-band tone (16 kHz mono WAV); with `burst`, one
    /// second in, a 0.9 FS transient near a quarter of the rate, sampled off its crests
    /// (inter-sample peaks): quiet on average, so loudness alone would lift it to clip.
    pub(crate) fn write_quiet_tone(path: &Path, burst: bool) {
        let rate = 16_000u32;
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(path, spec).unwrap();
        for i in 0..(3 * rate) {
            let t = f64::from(i) / f64::from(rate);
            let mut v = 0.0316 * (t * 300.0 * std::f64::consts::TAU).sin();
            if burst && (rate..rate + 40).contains(&i) {
                v += 0.9 * (t * 3_990.0 * std::f64::consts::TAU + 0.78).sin();
            }
            w.write_sample((v * 32_767.0).round() as i16).unwrap();
        }
        w.finalize().unwrap();
    }

    /// A file that is quiet on average but has one full-scale click, measured for real.
    #[test]
    fn a_loud_peaky_file_gets_a_gain_that_keeps_its_peak_under_the_ceiling() {
        let dir = tempfile::tempdir().unwrap();
        let (peaky, quiet) = (dir.path().join("peaky.wav"), dir.path().join("quiet.wav"));
        write_quiet_tone(&peaky, true);
        write_quiet_tone(&quiet, false);
        let m = measure(&peaky).unwrap();
        let gain = f64::from(gain_towards(-16.0, &m));
        assert!(m.loudness_lufs < -25.0, "quiet on average: {m:?}");
        assert!(m.true_peak_dbtp + gain <= PEAK_CEILING_DBFS, "{m:?}, gain {gain}");
        assert!(gain < 1.0, "loudness alone would have asked for +9 dB or more: {gain}");
        // The burst's crests fall between samples: a gain bounded by the sample peak
        // (-2.4 dBFS here) would have put the true peak (-0.7 dBTP) over the ceiling.
        let probe = crate::audio::probe(&peaky).unwrap();
        assert!(probe.true_peak_dbtp > probe.peak_dbfs + 1.0, "{probe:?}");
        let by_sample_peak = PEAK_CEILING_DBFS - probe.peak_dbfs;
        assert!(m.true_peak_dbtp + by_sample_peak > PEAK_CEILING_DBFS, "{probe:?}");

        let m = measure(&quiet).unwrap();
        let gain = f64::from(gain_towards(-16.0, &m));
        assert!(gain > 9.0, "a quiet file without peaks is still raised: {m:?}, {gain}");
        assert!(m.true_peak_dbtp + gain <= PEAK_CEILING_DBFS, "{m:?}, gain {gain}");
    }
}
