//! Uploaded audio: prove it decodes and measure its loudness before it enters the
//! library, so a station is never sent a file it cannot play.

use std::path::Path;

/// What central needs to know about an uploaded file.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    pub duration_ms: u64,
    /// Integrated loudness, EBU R128 (LUFS).
    pub loudness_lufs: f64,
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
/// ([`crate::audio::probe`]) and takes its length and integrated loudness.
pub fn measure(path: &Path) -> Result<Measured, IngestError> {
    let report = crate::audio::probe(path).map_err(|e| IngestError::Format(e.to_string()))?;
    let duration_ms = u64::try_from(report.duration.as_millis()).unwrap_or(u64::MAX);
    if duration_ms == 0 {
        return Err(IngestError::Empty);
    }
    Ok(Measured {
        duration_ms,
        // Digital silence measures as -inf: record the quietest finite value instead.
        loudness_lufs: if report.integrated_lufs.is_finite() {
            report.integrated_lufs
        } else {
            -70.0
        },
    })
}

/// Gain that brings `loudness` to `target`, limited to ±20 dB so a near-silent file is
/// not blown up into noise.
pub fn gain_towards(target_lufs: f64, loudness_lufs: f64) -> f32 {
    (target_lufs - loudness_lufs).clamp(-20.0, 20.0) as f32
}

#[cfg(test)]
mod tests {
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

    #[test]
    fn gain_is_bounded() {
        assert_eq!(gain_towards(-16.0, -20.0), 4.0);
        assert_eq!(gain_towards(-16.0, -70.0), 20.0);
    }
}
