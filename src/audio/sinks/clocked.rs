//! An ideal sound card made of a clock: paced by the clock's monotonic time (as a real
//! card is by its crystal), frame `n` reaches the speaker `n / rate` after frame 0, and
//! writing blocks while its buffer is full. The wall-clock instant of the next frame is
//! read through the clock's current wall time, so a stepped wall clock moves the
//! instants, never the pace. With a [`ManualClock`](crate::clock::ManualClock) the audio
//! thread waits for test-driven time, so tests see exactly when each sample "plays"
//! ([`Recording`]).

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{AudioFormat, Sink, SinkError, after_frames, frames_to_duration};
use crate::clock::SharedClock;

/// What a clocked sink played, with the wall instant of every frame, readable while it
/// plays.
#[derive(Debug, Clone)]
pub struct Recording {
    inner: Arc<Mutex<RecordingInner>>,
}

#[derive(Debug)]
struct RecordingInner {
    /// (first frame, its wall instant): a new segment each time the wall clock stepped.
    segments: Vec<(u64, DateTime<Utc>)>,
    format: AudioFormat,
    samples: Vec<f32>,
}

impl Recording {
    fn lock(&self) -> MutexGuard<'_, RecordingInner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The instant frame 0 reached the speaker.
    pub fn origin(&self) -> DateTime<Utc> {
        self.lock().segments[0].1
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

    /// The wall instant frame `n` reached the speaker (by the wall clock in force when it
    /// was written).
    pub fn time_of_frame(&self, n: u64) -> DateTime<Utc> {
        let inner = self.lock();
        let (first, at) = inner
            .segments
            .iter()
            .rev()
            .find(|(f, _)| *f <= n)
            .copied()
            .unwrap_or((0, DateTime::<Utc>::MIN_UTC));
        after_frames(at, n - first, inner.format.rate)
    }

    /// The (fractional) frame index playing at `at`, on the latest timeline that had
    /// reached `at` (after a step back, the later of two frames shown at the same time).
    pub fn frame_at(&self, at: DateTime<Utc>) -> f64 {
        let inner = self.lock();
        let (first, origin) = inner
            .segments
            .iter()
            .rev()
            .find(|(_, t)| *t <= at)
            .copied()
            .unwrap_or(inner.segments[0]);
        let ns = (at - origin).num_nanoseconds().unwrap_or(i64::MAX);
        first as f64 + ns as f64 * inner.format.rate as f64 / 1e9
    }

    /// Every wall-clock step the sink saw: (first frame after it, that frame's instant).
    pub fn steps(&self) -> Vec<(u64, DateTime<Utc>)> {
        self.lock().segments[1..].to_vec()
    }
}

/// The clocked sink. See the module docs.
pub struct ClockedSink {
    format: AudioFormat,
    clock: SharedClock,
    /// Monotonic time of frame 0.
    origin: Duration,
    written: u64,
    buffer_frames: u64,
    recording: Option<Recording>,
    /// Wall minus monotonic at the last look, to notice steps for the recording.
    offset: chrono::Duration,
    /// Re-anchor the timeline after falling this far behind the clock (real-time use);
    /// `None` keeps the ideal timeline however far the clock jumps (tests).
    resync_after: Option<Duration>,
    /// Whether [`Sink::pause`] is honoured (see [`ClockedSink::with_pause`]).
    can_pause: bool,
    paused: bool,
    /// Frames of the timeline that passed in pauses: played by the sink itself, never
    /// written, so not in the recording.
    skipped: u64,
}

fn wall_minus_mono(clock: &SharedClock) -> chrono::Duration {
    let mono = chrono::Duration::from_std(clock.monotonic()).unwrap_or(chrono::Duration::MAX);
    clock.now() - crate::clock::add(DateTime::<Utc>::UNIX_EPOCH, mono)
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
        let origin = clock.monotonic();
        let recording = record.then(|| Recording {
            inner: Arc::new(Mutex::new(RecordingInner {
                segments: vec![(0, clock.now())],
                format,
                samples: Vec::new(),
            })),
        });
        let offset = wall_minus_mono(&clock);
        let sink = Self {
            format,
            clock,
            origin,
            written: 0,
            buffer_frames: buffer_frames.max(1) as u64,
            recording: recording.clone(),
            offset,
            resync_after: None,
            can_pause: false,
            paused: false,
            skipped: 0,
        };
        (sink, recording)
    }

    /// Lets the timeline jump forward after the writer fell `lag` behind real time (a real
    /// device would have played silence meanwhile), instead of catching up in a burst.
    pub fn with_resync_after(mut self, lag: Duration) -> Self {
        self.resync_after = Some(lag);
        self
    }

    /// Honours [`Sink::pause`] like a sound card: while paused the timeline runs on (the
    /// sink "plays" silence by itself) and the next frame written after the pause plays
    /// at once. The recording then holds only what was written; each pause starts a new
    /// segment, so [`Recording::time_of_frame`] stays exact.
    pub fn with_pause(mut self) -> Self {
        self.can_pause = true;
        self
    }

    /// Frames written so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// Monotonic time at which frame `n` plays.
    fn mono_of(&self, n: u64) -> Duration {
        self.origin.saturating_add(frames_to_duration(n, self.format.rate))
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
        let mono_now = self.clock.monotonic();
        let mut at = self.mono_of(self.written);
        let mut resynced = false;
        if let Some(lag) = self.resync_after
            && mono_now.saturating_sub(at) > lag
        {
            tracing::warn!(
                behind_ms = mono_now.saturating_sub(at).as_millis() as u64,
                "sink fell behind real time; resynchronising"
            );
            let played = frames_to_duration(self.written, self.format.rate);
            self.origin = mono_now.saturating_sub(played);
            at = mono_now;
            resynced = true;
        }
        let offset = wall_minus_mono(&self.clock);
        // Signed: a writer behind the clock (a test's clock that jumped) keeps the ideal
        // timeline, its next frame in the past.
        let mono = |d: Duration| chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX);
        let wall = crate::clock::add(self.clock.now(), mono(at) - mono(mono_now));
        // Real clocks drift apart by nanoseconds between two readings: only a jump of
        // the wall clock (or a resync) starts a new segment.
        if resynced || (offset - self.offset).abs() > chrono::Duration::milliseconds(1) {
            self.offset = offset;
            if let Some(recording) = &self.recording {
                recording.lock().segments.push((self.written - self.skipped, wall));
            }
        }
        wall
    }

    fn pause(&mut self) -> bool {
        self.paused = self.can_pause;
        self.paused
    }

    fn resume(&mut self) {
        if !std::mem::take(&mut self.paused) {
            return;
        }
        // The frames the pause lasted played as silence: the timeline moves on to now.
        let elapsed = self.clock.monotonic().saturating_sub(self.origin);
        let now_frame = (elapsed.as_nanos() * u128::from(self.format.rate)).div_ceil(1_000_000_000);
        let now_frame = u64::try_from(now_frame).unwrap_or(u64::MAX);
        if now_frame > self.written {
            self.skipped += now_frame - self.written;
            self.written = now_frame;
            let wall = crate::clock::add(
                self.clock.now(),
                chrono::Duration::from_std(
                    self.mono_of(now_frame).saturating_sub(self.clock.monotonic()),
                )
                .unwrap_or_default(),
            );
            self.offset = wall_minus_mono(&self.clock);
            if let Some(recording) = &self.recording {
                recording.lock().segments.push((self.written - self.skipped, wall));
            }
        }
    }

    fn write(&mut self, samples: &[f32]) -> Result<(), SinkError> {
        let frames = (samples.len() / self.format.channels) as u64;
        // Room for these frames once everything but one buffer's worth has played.
        let end = self.written + frames;
        if end > self.buffer_frames {
            self.clock.block_until_monotonic(self.mono_of(end - self.buffer_frames));
        }
        if let Some(recording) = &self.recording {
            recording.lock().samples.extend_from_slice(samples);
        }
        self.written = end;
        self.paused = false;
        Ok(())
    }
}
