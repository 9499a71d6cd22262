//! Audio for tests: tones written with hound, byte surgery on files, and small signal
//! measurements.

use std::f32::consts::PI;
use std::path::{Path, PathBuf};
use std::time::Duration;

use loa::audio::{AudioFormat, PlayerEvent, Source};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::sync::mpsc::error::TryRecvError;

use super::wait;

/// The player's next event, waiting (in real time) at most `within` for the audio thread
/// to produce it.
#[track_caller]
pub fn next_event(events: &mut UnboundedReceiver<PlayerEvent>, within: Duration) -> PlayerEvent {
    wait::until("a player event", within, || match events.try_recv() {
        Ok(event) => Some(event),
        Err(TryRecvError::Empty) => None,
        Err(e) => panic!("the player went quiet (stalled?): {e:?}"),
    })
}

/// A sample format hound can write.
#[derive(Debug, Clone, Copy)]
pub enum Bits {
    Int8,
    Int16,
    Int24,
    Int32,
    Float32,
}

/// Writes a WAV file of `f(frame_index) -> sample` for `frames` frames, every channel alike.
pub fn write_wav(
    path: &Path,
    rate: u32,
    channels: u16,
    bits: Bits,
    frames: usize,
    f: impl Fn(usize) -> f32,
) {
    let (bits_per_sample, sample_format) = match bits {
        Bits::Int8 => (8, hound::SampleFormat::Int),
        Bits::Int16 => (16, hound::SampleFormat::Int),
        Bits::Int24 => (24, hound::SampleFormat::Int),
        Bits::Int32 => (32, hound::SampleFormat::Int),
        Bits::Float32 => (32, hound::SampleFormat::Float),
    };
    let spec = hound::WavSpec { channels, sample_rate: rate, bits_per_sample, sample_format };
    let mut w = hound::WavWriter::create(path, spec).expect("create test wav");
    for i in 0..frames {
        let v = f(i);
        for _ in 0..channels {
            match bits {
                Bits::Int8 => w.write_sample((v * 127.0).round() as i8).expect("write"),
                Bits::Int16 => w.write_sample((v * 32767.0).round() as i16).expect("write"),
                Bits::Int24 => w.write_sample((v * 8_388_607.0).round() as i32).expect("write"),
                Bits::Int32 => {
                    w.write_sample((v as f64 * 2_147_483_647.0).round() as i32).expect("write")
                }
                Bits::Float32 => w.write_sample(v).expect("write"),
            }
        }
    }
    w.finalize().expect("finalize test wav");
}

/// A cosine tone (first sample at full amplitude, so onsets are sharp).
pub fn tone_wav(path: &Path, rate: u32, channels: u16, secs: f32, freq: f32, amp: f32) {
    let frames = (secs * rate as f32).round() as usize;
    write_wav(path, rate, channels, Bits::Int16, frames, |i| {
        amp * (2.0 * PI * freq * i as f32 / rate as f32).cos()
    });
}

/// A constant level (DC): makes onsets and fades readable sample by sample.
pub fn dc_wav(path: &Path, rate: u32, channels: u16, secs: f32, level: f32) {
    let frames = (secs * rate as f32).round() as usize;
    write_wav(path, rate, channels, Bits::Float32, frames, |_| level);
}

/// The shipped fixture `name` under tests/audio_fixtures.
pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/audio_fixtures").join(name)
}

/// The first `keep` of `src`'s bytes, written to `dst`.
pub fn truncated_copy(src: &Path, dst: &Path, keep: f64) {
    let bytes = std::fs::read(src).expect("read fixture");
    let n = ((bytes.len() as f64) * keep) as usize;
    std::fs::write(dst, &bytes[..n]).expect("write truncated copy");
}

/// `src` with `len` pseudo-random bytes written over it at `at` (fraction of the size).
pub fn damaged_copy(src: &Path, dst: &Path, at: f64, len: usize, seed: u64) {
    let mut bytes = std::fs::read(src).expect("read fixture");
    let start = ((bytes.len() as f64) * at) as usize;
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    for b in bytes.iter_mut().skip(start).take(len) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        *b = (x >> 24) as u8;
    }
    std::fs::write(dst, &bytes).expect("write damaged copy");
}

/// All of `path` through loa's decoder (resampler, gain, limiter) at `format`.
pub fn decode_all(path: &Path, format: AudioFormat, gain_db: f32) -> Vec<f32> {
    let mut source = Source::open(path, format, gain_db).expect("open");
    let mut out = Vec::new();
    let mut buf = vec![0.0; 3000 * format.channels];
    loop {
        let frames = source.fill(&mut buf).expect("decode");
        out.extend_from_slice(&buf[..frames * format.channels]);
        if frames * format.channels < buf.len() {
            return out;
        }
    }
}

/// One channel of interleaved samples.
pub fn channel(samples: &[f32], channels: usize, c: usize) -> Vec<f32> {
    samples.iter().skip(c).step_by(channels).copied().collect()
}

/// RMS of a signal.
pub fn rms(x: &[f32]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&s| f64::from(s) * f64::from(s)).sum::<f64>() / x.len() as f64).sqrt()
}

/// Frequency from upward zero crossings (linear interpolation), Hz.
pub fn frequency(x: &[f32], rate: u32) -> f64 {
    let mut crossings = Vec::new();
    for i in 1..x.len() {
        if x[i - 1] < 0.0 && x[i] >= 0.0 {
            let frac = f64::from(-x[i - 1]) / f64::from(x[i] - x[i - 1]);
            crossings.push((i - 1) as f64 + frac);
        }
    }
    if crossings.len() < 2 {
        return 0.0;
    }
    let span = crossings[crossings.len() - 1] - crossings[0];
    (crossings.len() - 1) as f64 * f64::from(rate) / span
}

/// Index of the first sample whose magnitude exceeds `threshold`.
pub fn first_above(x: &[f32], threshold: f32) -> Option<usize> {
    x.iter().position(|s| s.abs() > threshold)
}

/// Index of the last sample whose magnitude exceeds `threshold`.
pub fn last_above(x: &[f32], threshold: f32) -> Option<usize> {
    x.iter().rposition(|s| s.abs() > threshold)
}
