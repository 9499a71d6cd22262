//! Discards frames as fast as they come (for CPU benchmarks). Its timeline follows the
//! clock: when the player idles, the next frame is "now", as on a device after an underrun.

use chrono::{DateTime, Utc};

use super::{AudioFormat, Sink, SinkError, after_frames};
use crate::clock::SharedClock;

/// The null sink. See the module docs.
pub struct NullSink {
    format: AudioFormat,
    clock: SharedClock,
    origin: DateTime<Utc>,
    written: u64,
}

impl NullSink {
    pub fn new(format: AudioFormat, clock: SharedClock) -> Self {
        let origin = clock.now();
        Self { format, clock, origin, written: 0 }
    }
}

impl Sink for NullSink {
    fn name(&self) -> &str {
        "null"
    }

    fn format(&self) -> AudioFormat {
        self.format
    }

    fn next_frame_at(&mut self) -> DateTime<Utc> {
        let at = after_frames(self.origin, self.written, self.format.rate);
        let now = self.clock.now();
        if at < now {
            self.origin = now - (at - self.origin);
            return now;
        }
        at
    }

    fn write(&mut self, samples: &[f32]) -> Result<(), SinkError> {
        self.written += (samples.len() / self.format.channels) as u64;
        Ok(())
    }

    fn paced(&self) -> bool {
        false
    }
}
