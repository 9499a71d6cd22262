//! Where frames go: one [`Sink`] trait, a table of backends chosen by name, and a listing
//! for `loa audio devices` and for a bad name.
//!
//! Every sink answers one question the player's timing rests on: at what wall-clock
//! instant will the next frame written reach the speaker ([`Sink::next_frame_at`])? A
//! clocked sink knows it from its clock and position; the cpal sink from the device's
//! own playback timestamps. Sinks that need no hardware are always compiled.

mod clocked;
#[cfg(feature = "alsa-backend")]
mod device;
mod null;
mod wav;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};

pub use self::clocked::{ClockedSink, Recording};
pub use self::null::NullSink;
pub use self::wav::WavSink;
use super::decode::AudioFormat;
use crate::clock::{SharedClock, SystemClock};

/// The clocked sinks' device buffer, and half the cpal sink's ring (the frames written
/// ahead of its callbacks). The cpal sink's ALSA period is its own, up to 50 ms (2048
/// frames at 48 kHz): fewer periods make an idle stream cheaper (see `device.rs`).
pub const DEFAULT_BUFFER_FRAMES: usize = 1024;

/// Why a sink could not be opened or stopped working.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum SinkError {
    #[error("unknown sink {name:?}; choose one of: {known}")]
    Unknown { name: String, known: String },
    #[error("sink {name:?} needs a file path (e.g. --out air-check.wav)")]
    NeedsPath { name: String },
    #[error("wav sink: cannot write {path}: {detail}; check the folder exists and is writable")]
    Wav { path: PathBuf, detail: String },
    #[error(
        "sound card: {detail}; check `loa audio devices`, or use the wav sink on a machine \
         without one"
    )]
    Device { detail: String },
    #[error(
        "the sound card sink is not built in; rebuild with `--features alsa-backend`, or use \
         the wav or null sink"
    )]
    NotBuilt,
    #[error("invalid sink format: {detail}")]
    Format { detail: String },
    #[error(
        "the sound output is down since {since} ({detail}); it is being reopened: check the \
         sound card's cable or USB connection (`loa audio devices` lists what is there)"
    )]
    Down { since: String, detail: String },
}

/// A place frames are played to.
pub trait Sink: Send {
    /// The backend's name, for logs.
    fn name(&self) -> &str;
    /// The rate and channel count the sink takes; the player converts to it.
    fn format(&self) -> AudioFormat;
    /// Rate, channels and sample format, for logs and for reading a capture back.
    fn describe(&self) -> String {
        let f = self.format();
        format!("{} Hz, {} channels, f32", f.rate, f.channels)
    }
    /// The wall-clock instant the next frame written will reach the speaker.
    fn next_frame_at(&mut self) -> DateTime<Utc>;
    /// Writes interleaved frames, blocking while the device's buffer is full.
    fn write(&mut self, samples: &[f32]) -> Result<(), SinkError>;
    /// Whether `write` waits for the device. The player keeps an unpaced sink's stream
    /// idle (writes nothing) instead of spinning on silence.
    fn paced(&self) -> bool {
        true
    }
    /// Makes everything written so far durable (e.g. the WAV header). Called on stop.
    fn flush(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
    /// Lets the stream go on by itself, playing silence, until [`Sink::resume`]: the
    /// player calls it when nothing plays or is due soon, and writes nothing meanwhile
    /// (the stream stays open and its timing stays known). A sink that cannot (an
    /// air-check file must hold the silence) returns false and is written silence as
    /// before.
    fn pause(&mut self) -> bool {
        false
    }
    /// Ends a pause: the next [`Sink::next_frame_at`] answers for a stream that played
    /// silence meanwhile.
    fn resume(&mut self) {}
    /// While paused: whether the output still works (a sound card's stream error shows
    /// here instead of at the next write).
    fn check(&mut self) -> Result<(), SinkError> {
        Ok(())
    }
}

/// Options for [`open`]. `Default` is 48 kHz stereo, the system clock, no file.
#[derive(Clone)]
pub struct SinkOptions {
    /// Output file of the `wav` sink.
    pub path: Option<PathBuf>,
    /// Rate of the clocked sinks (the device decides for `alsa`).
    pub rate: u32,
    /// Channels of the clocked sinks (the device decides for `alsa`).
    pub channels: usize,
    /// Device buffer in frames (for the cpal sink: half its ring; see
    /// [`DEFAULT_BUFFER_FRAMES`]).
    pub buffer_frames: usize,
    /// The clock the clocked sinks pace against, and the cpal sink stamps callbacks with.
    pub clock: SharedClock,
    /// A cpal device name for `alsa` (default: the system default device).
    pub device: Option<String>,
}

impl Default for SinkOptions {
    fn default() -> Self {
        Self {
            path: None,
            rate: 48_000,
            channels: 2,
            buffer_frames: DEFAULT_BUFFER_FRAMES,
            clock: Arc::new(SystemClock),
            device: None,
        }
    }
}

impl std::fmt::Debug for SinkOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SinkOptions")
            .field("path", &self.path)
            .field("rate", &self.rate)
            .field("channels", &self.channels)
            .field("buffer_frames", &self.buffer_frames)
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

/// The sink backends by name, with what each is for.
pub const BACKENDS: &[(&str, &str)] = &[
    ("default", "the system's default sound card through cpal/ALSA (same as alsa)"),
    ("alsa", "a sound card through cpal/ALSA; --device picks one, periods of at most 50 ms"),
    ("wav", "real-time air-check: writes exactly what was played, silence included, to a WAV file"),
    ("clocked", "consumes frames in real time against the clock and discards them (tests)"),
    ("null", "discards frames as fast as they come, unpaced (benchmarks)"),
];

/// Names and descriptions of every sink backend.
pub fn list() -> Vec<(&'static str, &'static str)> {
    BACKENDS.to_vec()
}

/// Opens the sink called `name`.
pub fn open(name: &str, options: SinkOptions) -> Result<Box<dyn Sink>, SinkError> {
    let format = AudioFormat { rate: options.rate, channels: options.channels };
    validate(format, options.buffer_frames)?;
    match name {
        "default" | "alsa" => open_device(options),
        "wav" => {
            let path = options.path.clone().ok_or(SinkError::NeedsPath { name: name.into() })?;
            let sink = WavSink::create(
                &path,
                format,
                options.clock,
                options.buffer_frames,
                Some(Duration::from_secs(2)),
            )?;
            Ok(Box::new(sink))
        }
        "clocked" => {
            let (sink, _) = ClockedSink::new(format, options.clock, options.buffer_frames, false);
            // Like a sound card, it plays silence by itself while the player pauses.
            Ok(Box::new(sink.with_pause()))
        }
        "null" => Ok(Box::new(NullSink::new(format, options.clock))),
        other => Err(SinkError::Unknown {
            name: other.into(),
            known: BACKENDS.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", "),
        }),
    }
}

fn validate(format: AudioFormat, buffer_frames: usize) -> Result<(), SinkError> {
    if !(8_000..=384_000).contains(&format.rate) {
        return Err(SinkError::Format {
            detail: format!("rate {} Hz is outside 8000..=384000", format.rate),
        });
    }
    if !(1..=8).contains(&format.channels) {
        return Err(SinkError::Format {
            detail: format!("{} channels is outside 1..=8", format.channels),
        });
    }
    if buffer_frames == 0 {
        return Err(SinkError::Format { detail: "buffer of 0 frames".into() });
    }
    Ok(())
}

#[cfg(feature = "alsa-backend")]
fn open_device(options: SinkOptions) -> Result<Box<dyn Sink>, SinkError> {
    Ok(Box::new(device::DeviceSink::open(options)?))
}

#[cfg(not(feature = "alsa-backend"))]
fn open_device(_options: SinkOptions) -> Result<Box<dyn Sink>, SinkError> {
    Err(SinkError::NotBuilt)
}

/// One sound card output the `alsa` sink can use.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    pub name: String,
    pub description: String,
    pub is_default: bool,
}

/// The sound card outputs cpal sees (empty without the `alsa-backend` feature).
pub fn devices() -> Result<Vec<DeviceInfo>, SinkError> {
    #[cfg(feature = "alsa-backend")]
    {
        device::list()
    }
    #[cfg(not(feature = "alsa-backend"))]
    {
        Ok(Vec::new())
    }
}

/// `rate` frames as a duration.
pub(crate) fn frames_to_duration(frames: u64, rate: u32) -> Duration {
    let rate = u64::from(rate.max(1));
    Duration::new(frames / rate, ((frames % rate) * 1_000_000_000 / rate) as u32)
}

/// The instant `frames` after `origin` at `rate`, to the nanosecond.
pub(crate) fn after_frames(origin: DateTime<Utc>, frames: u64, rate: u32) -> DateTime<Utc> {
    let d = chrono::Duration::from_std(frames_to_duration(frames, rate)).unwrap_or_default();
    origin.checked_add_signed(d).unwrap_or(origin)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn an_unknown_sink_name_lists_the_known_ones() {
        let err = open("speaker", SinkOptions::default()).err().expect("unknown name");
        let message = err.to_string();
        for name in ["default", "alsa", "wav", "clocked", "null"] {
            assert!(message.contains(name), "{message}");
        }
    }

    #[test]
    fn the_wav_sink_needs_a_path_and_formats_are_checked() {
        assert!(matches!(open("wav", SinkOptions::default()), Err(SinkError::NeedsPath { .. })));
        let zero = SinkOptions { channels: 0, ..SinkOptions::default() };
        assert!(matches!(open("null", zero), Err(SinkError::Format { .. })));
        let slow = SinkOptions { rate: 100, ..SinkOptions::default() };
        assert!(matches!(open("clocked", slow), Err(SinkError::Format { .. })));
    }

    #[test]
    fn frame_instants_are_exact_to_the_nanosecond() {
        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 5, 30, 0).single().expect("instant");
        assert_eq!(after_frames(t0, 48_000, 48_000), t0 + chrono::Duration::seconds(1));
        assert_eq!(after_frames(t0, 1, 48_000), t0 + chrono::Duration::nanoseconds(20_833));
        assert_eq!(frames_to_duration(66_150, 44_100), Duration::from_millis(1_500));
    }
}
