//! Uploaded audio: prove it decodes and measure its loudness before it enters the
//! library, so a station is never sent a file it cannot play.

use std::path::Path;

use symphonia::core::codecs::audio::AudioDecoderOptions;
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, TrackType};
use symphonia::core::io::MediaSourceStream;
use symphonia::core::meta::MetadataOptions;

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
    #[error("cannot read uploaded file: {0}")]
    Io(#[from] std::io::Error),
    #[error("not a supported audio file (mp3, ogg vorbis, flac, wav): {0}")]
    Format(String),
    #[error("audio decodes to no samples: nothing to play")]
    Empty,
    #[error("cannot measure loudness: {0}")]
    Loudness(String),
}

/// Decodes the whole file (a corrupt packet is skipped, a truncated end counts as end of
/// stream) and measures its integrated loudness.
pub fn measure(path: &Path) -> Result<Measured, IngestError> {
    let file = std::fs::File::open(path)?;
    let stream = MediaSourceStream::new(Box::new(file), Default::default());
    let mut format = symphonia::default::get_probe()
        .probe(&Hint::new(), stream, FormatOptions::default(), MetadataOptions::default())
        .map_err(|e| IngestError::Format(e.to_string()))?;
    let track = format
        .default_track(TrackType::Audio)
        .ok_or_else(|| IngestError::Format("no audio track".into()))?;
    let track_id = track.id;
    let params = track
        .codec_params
        .as_ref()
        .and_then(|p| p.audio())
        .ok_or_else(|| IngestError::Format("track has no audio codec parameters".into()))?;
    let mut decoder = symphonia::default::get_codecs()
        .make_audio_decoder(params, &AudioDecoderOptions::default())
        .map_err(|e| IngestError::Format(e.to_string()))?;

    let mut meter: Option<(ebur128::EbuR128, u32, usize)> = None;
    let mut frames: u64 = 0;
    let mut samples: Vec<f32> = Vec::new();
    loop {
        let packet = match format.next_packet() {
            Ok(Some(packet)) => packet,
            Ok(None) => break,
            Err(SymphoniaError::IoError(e)) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                break;
            }
            Err(e) => return Err(IngestError::Format(e.to_string())),
        };
        if packet.track_id != track_id {
            continue;
        }
        let buffer = match decoder.decode(&packet) {
            Ok(buffer) => buffer,
            Err(SymphoniaError::DecodeError(message)) => {
                tracing::warn!("skipping a corrupt packet in upload: {message}");
                continue;
            }
            Err(e) => return Err(IngestError::Format(e.to_string())),
        };
        let rate = buffer.spec().rate();
        let channels = buffer.spec().channels().count();
        if rate == 0 || channels == 0 {
            return Err(IngestError::Format("stream reports zero rate or channels".into()));
        }
        let fresh = match &meter {
            Some((_, r, c)) => *r != rate || *c != channels,
            None => true,
        };
        if fresh {
            if meter.is_some() {
                return Err(IngestError::Format(
                    "sample rate or channels change mid-stream".into(),
                ));
            }
            let m = ebur128::EbuR128::new(channels as u32, rate, ebur128::Mode::I)
                .map_err(|e| IngestError::Loudness(e.to_string()))?;
            meter = Some((m, rate, channels));
        }
        samples.resize(buffer.samples_interleaved(), 0.0);
        buffer.copy_to_slice_interleaved(&mut samples);
        frames += buffer.frames() as u64;
        if let Some((m, _, _)) = meter.as_mut() {
            m.add_frames_f32(&samples).map_err(|e| IngestError::Loudness(e.to_string()))?;
        }
    }
    let Some((meter, rate, _)) = meter else { return Err(IngestError::Empty) };
    if frames == 0 {
        return Err(IngestError::Empty);
    }
    let loudness = meter.loudness_global().map_err(|e| IngestError::Loudness(e.to_string()))?;
    Ok(Measured {
        duration_ms: frames * 1000 / u64::from(rate),
        // Silence measures as -inf: record the quietest finite value instead.
        loudness_lufs: if loudness.is_finite() { loudness } else { -70.0 },
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
    fn gain_is_bounded() {
        assert_eq!(gain_towards(-16.0, -20.0), 4.0);
        assert_eq!(gain_towards(-16.0, -70.0), 20.0);
    }
}
