//! An ideal sound card made of a clock: frame `n` reaches the speaker at
//! `origin + n / rate`, and writing blocks while its buffer is full. With a
//! [`ManualClock`](crate::clock::ManualClock) the audio thread waits for test-driven time,
//! so tests see exactly when each sample "plays" ([`Recording`]).

use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};

use super::{AudioFormat, Sink, SinkError, after_frames};
use crate::clock::SharedClock;

/// What a clocked sink played, with the instant of frame 0, readable while it plays.
#[derive(Debug, Clone)]
pub struct Recording {
    inner: Arc<Mutex<RecordingInner>>,
}

#[derive(Debug)]
struct RecordingInner {
    origin: DateTime<Utc>,
    format: AudioFormat,
    samples: Vec<f32>,
}

impl Recording {
    fn lock(&self) -> MutexGuard<'_, RecordingInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The instant frame 0 reached the speaker.
    pub fn origin(&self) -> DateTime<Utc> {
        self.lock().origin
    }

    pub fn format(&self) -> AudioFormat {
        self.lock().format
    }

    /// Frames written so far.
    pub fn frames(&self) -> u64 {
        let inner = self.lock();
        (inner.samples.len() / inner.format.channels) as u64
    }

    /// A copy of every sample written, interleaved.
    pub fn samples(&self) -> Vec<f32> {
        self.lock().samples.clone()
    }

    /// The instant frame `n` reaches the speaker.
    pub fn time_of_frame(&self, n: u64) -> DateTime<Utc> {
        let inner = self.lock();
        after_frames(inner.origin, n, inner.format.rate)
    }

    /// The (fractional) frame index playing at `at`.
    pub fn frame_at(&self, at: DateTime<Utc>) -> f64 {
        let inner = self.lock();
        let ns = (at - inner.origin).num_nanoseconds().unwrap_or(i64::MAX);
        ns as f64 * inner.format.rate as f64 / 1e9
    }
}

/// The clocked sink. See the module docs.
pub struct ClockedSink {
    format: AudioFormat,
    clock: SharedClock,
    origin: DateTime<Utc>,
    written: u64,
    buffer_frames: u64,
    recording: Option<Recording>,
    /// Re-anchor the timeline after falling this far behind the clock (real-time use);
    /// `None` keeps the ideal timeline however far the clock jumps (tests).
    resync_after: Option<chrono::Duration>,
}

impl ClockedSink {
    /// A sink whose frame 0 plays at the clock's current time. With `record`, a handle to
    /// everything it plays is returned too.
    pub fn new(
        format: AudioFormat,
        clock: SharedClock,
        buffer_frames: usize,
        record: bool,
    ) -> (Self, Option<Recording>) {
        let origin = clock.now();
        let recording = record.then(|| Recording {
            inner: Arc::new(Mutex::new(RecordingInner { origin, format, samples: Vec::new() })),
        });
        let sink = Self {
            format,
            clock,
            origin,
            written: 0,
            buffer_frames: buffer_frames.max(1) as u64,
            recording: recording.clone(),
            resync_after: None,
        };
        (sink, recording)
    }

    /// Lets the timeline jump forward after the writer fell `lag` behind real time (a real
    /// device would have played silence meanwhile), instead of catching up in a burst.
    pub fn with_resync_after(mut self, lag: std::time::Duration) -> Self {
        self.resync_after = chrono::Duration::from_std(lag).ok();
        self
    }

    /// Frames written so far.
    pub fn written(&self) -> u64 {
        self.written
    }
}

impl Sink for ClockedSink {
    fn name(&self) -> &str {
        "clocked"
    }

    fn format(&self) -> AudioFormat {
        self.format
    }

    fn next_frame_at(&mut self) -> DateTime<Utc> {
        let at = after_frames(self.origin, self.written, self.format.rate);
        if let Some(lag) = self.resync_after {
            let now = self.clock.now();
            if now - at > lag {
                tracing::warn!(
                    behind_ms = (now - at).num_milliseconds(),
                    "sink fell behind real time; resynchronising"
                );
                self.origin = now - (at - self.origin);
                return now;
            }
        }
        at
    }

    fn write(&mut self, samples: &[f32]) -> Result<(), SinkError> {
        let frames = (samples.len() / self.format.channels) as u64;
        // Room for these frames once everything but one buffer's worth has played.
        let end = self.written + frames;
        if end > self.buffer_frames {
            let until = after_frames(self.origin, end - self.buffer_frames, self.format.rate);
            self.clock.block_until(until);
        }
        if let Some(recording) = &self.recording {
            recording.lock().samples.extend_from_slice(samples);
        }
        self.written = end;
        Ok(())
    }
}
