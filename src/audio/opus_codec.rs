//! Live audio's codec: Opus at 48 kHz mono in 20 ms frames (libopus through the `opus`
//! crate). The operator's `loa live` encodes; each station decodes and converts to its
//! sink's format. Why Opus: symphonia encodes nothing, raw PCM (96 KB/s at 48 kHz
//! mono f32, 48 KB/s as 16-bit) times 1,000 stations is more than a provincial uplink
//! carries, and Opus at [`BITRATE`] keeps speech clear in about 3 KB/s with 20 ms of
//! algorithmic delay (MP3 or Vorbis encoders would add a C library each for a worse
//! delay).

use rubato::{FftFixedIn, Resampler};

use super::decode::AudioFormat;

/// Speech bitrate, bits per second.
pub const BITRATE: i32 = 24_000;
/// Opus's own rate and the live stream's.
pub const RATE: u32 = 48_000;
/// Samples in one 20 ms frame at [`RATE`].
pub const FRAME: usize = 960;
/// Largest packet we produce (Opus's own maximum is 1,275 bytes per frame).
const MAX_PACKET: usize = 1500;

/// Why encoding or decoding failed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    #[error("opus: {0}")]
    Opus(String),
    #[error("resampling live audio to {to} Hz: {detail}")]
    Resample { to: u32, detail: String },
}

fn opus_err(e: opus::Error) -> CodecError {
    CodecError::Opus(e.to_string())
}

/// 48 kHz mono samples → one packet per 20 ms frame.
pub struct Encoder {
    inner: opus::Encoder,
    pending: Vec<f32>,
    out: Vec<u8>,
}

impl Encoder {
    pub fn new() -> Result<Self, CodecError> {
        let mut inner = opus::Encoder::new(RATE, opus::Channels::Mono, opus::Application::Voip)
            .map_err(opus_err)?;
        inner.set_bitrate(opus::Bitrate::Bits(BITRATE)).map_err(opus_err)?;
        Ok(Self { inner, pending: Vec::new(), out: vec![0; MAX_PACKET] })
    }

    /// Adds samples; returns the packets of every whole frame now complete.
    pub fn push(&mut self, samples: &[f32]) -> Result<Vec<Vec<u8>>, CodecError> {
        self.pending.extend_from_slice(samples);
        let mut packets = Vec::new();
        while self.pending.len() >= FRAME {
            let n =
                self.inner.encode_float(&self.pending[..FRAME], &mut self.out).map_err(opus_err)?;
            packets.push(self.out[..n].to_vec());
            self.pending.drain(..FRAME);
        }
        Ok(packets)
    }
}

/// Packets → samples in the player's format (channels duplicated, resampled when the
/// sink is not at 48 kHz).
pub struct Decoder {
    inner: opus::Decoder,
    format: AudioFormat,
    resampler: Option<FftFixedIn<f32>>,
    mono: Vec<f32>,
    pending: Vec<f32>,
}

impl Decoder {
    pub fn new(format: AudioFormat) -> Result<Self, CodecError> {
        let inner = opus::Decoder::new(RATE, opus::Channels::Mono).map_err(opus_err)?;
        let resampler = if format.rate == RATE {
            None
        } else {
            Some(
                FftFixedIn::<f32>::new(RATE as usize, format.rate as usize, FRAME, 2, 1)
                    .map_err(|e| CodecError::Resample { to: format.rate, detail: e.to_string() })?,
            )
        };
        Ok(Self { inner, format, resampler, mono: vec![0.0; FRAME * 6], pending: Vec::new() })
    }

    /// Decodes one packet and returns its samples, interleaved, in the player's format.
    pub fn decode(&mut self, packet: &[u8]) -> Result<Vec<f32>, CodecError> {
        let n = self.inner.decode_float(packet, &mut self.mono, false).map_err(opus_err)?;
        let mono: Vec<f32> = match self.resampler.as_mut() {
            None => self.mono[..n].to_vec(),
            Some(r) => {
                self.pending.extend_from_slice(&self.mono[..n]);
                let mut out = Vec::new();
                while self.pending.len() >= r.input_frames_next() {
                    let need = r.input_frames_next();
                    let chunk = [&self.pending[..need]];
                    let res = r.process(&chunk, None).map_err(|e| CodecError::Resample {
                        to: self.format.rate,
                        detail: e.to_string(),
                    })?;
                    out.extend_from_slice(&res[0]);
                    self.pending.drain(..need);
                }
                out
            }
        };
        let channels = self.format.channels.max(1);
        let mut out = Vec::with_capacity(mono.len() * channels);
        for s in mono {
            out.extend(std::iter::repeat_n(s, channels));
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tone_survives_encoding_and_decoding_at_both_rates() {
        let tone: Vec<f32> = (0..RATE as usize)
            .map(|i| 0.5 * (i as f32 * 440.0 * std::f32::consts::TAU / RATE as f32).sin())
            .collect();
        let mut enc = Encoder::new().unwrap();
        let packets = enc.push(&tone).unwrap();
        assert_eq!(packets.len(), 50, "one packet per 20 ms");
        let bytes: usize = packets.iter().map(Vec::len).sum();
        assert!(bytes < 4000, "{bytes} bytes for a second at {BITRATE} bit/s");
        for format in
            [AudioFormat { rate: 48_000, channels: 2 }, AudioFormat { rate: 44_100, channels: 1 }]
        {
            let mut dec = Decoder::new(format).unwrap();
            let mut out = Vec::new();
            for p in &packets {
                out.extend(dec.decode(p).unwrap());
            }
            let frames = out.len() / format.channels;
            let want = format.rate as usize;
            assert!(frames + 2000 > want && frames <= want, "{frames} frames at {format:?}");
            let rms = (out.iter().map(|s| s * s).sum::<f32>() / out.len() as f32).sqrt();
            assert!(rms > 0.2, "the tone came through: rms {rms}");
        }
    }
}
