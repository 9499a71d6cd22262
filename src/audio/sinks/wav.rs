//! The air-check: a clocked sink that also writes exactly what was played, silence
//! included, to a 16-bit WAV file. The header is rewritten every second of audio, so the
//! file stays valid (losing at most the last second) if the process is killed.

use std::fs::File;
use std::io::BufWriter;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};

use super::{AudioFormat, ClockedSink, Sink, SinkError};
use crate::clock::SharedClock;

/// The wav sink. See the module docs.
pub struct WavSink {
    clock: ClockedSink,
    writer: Option<hound::WavWriter<BufWriter<File>>>,
    path: PathBuf,
    since_flush: u64,
}

impl WavSink {
    /// Creates (truncates) `path`; frame 0 plays at the clock's current time. With
    /// `resync_after`, a writer that fell that far behind real time skips ahead (the gap is
    /// not in the file) instead of catching up in a burst; `None` keeps the ideal timeline
    /// (tests with a manual clock that jumps).
    pub fn create(
        path: &Path,
        format: AudioFormat,
        clock: SharedClock,
        buffer_frames: usize,
        resync_after: Option<std::time::Duration>,
    ) -> Result<Self, SinkError> {
        let spec = hound::WavSpec {
            channels: format.channels as u16,
            sample_rate: format.rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let writer = hound::WavWriter::create(path, spec)
            .map_err(|e| SinkError::Wav { path: path.to_path_buf(), detail: e.to_string() })?;
        let (clock, _) = ClockedSink::new(format, clock, buffer_frames, false);
        let clock = match resync_after {
            Some(lag) => clock.with_resync_after(lag),
            None => clock,
        };
        Ok(Self { clock, writer: Some(writer), path: path.to_path_buf(), since_flush: 0 })
    }

    fn err(&self, e: hound::Error) -> SinkError {
        SinkError::Wav { path: self.path.clone(), detail: e.to_string() }
    }
}

impl Sink for WavSink {
    fn name(&self) -> &str {
        "wav"
    }

    fn format(&self) -> AudioFormat {
        self.clock.format()
    }

    fn describe(&self) -> String {
        let f = self.clock.format();
        format!("{} Hz, {} channels, 16-bit wav", f.rate, f.channels)
    }

    fn next_frame_at(&mut self) -> DateTime<Utc> {
        self.clock.next_frame_at()
    }

    fn write(&mut self, samples: &[f32]) -> Result<(), SinkError> {
        self.clock.write(samples)?;
        let format = self.clock.format();
        let Some(writer) = self.writer.as_mut() else {
            return Err(SinkError::Wav {
                path: self.path.clone(),
                detail: "already closed".into(),
            });
        };
        let mut result = Ok(());
        for &s in samples {
            let v = (s.clamp(-1.0, 1.0) * i16::MAX as f32).round() as i16;
            if let Err(e) = writer.write_sample(v) {
                result = Err(e);
                break;
            }
        }
        result.map_err(|e| self.err(e))?;
        self.since_flush += (samples.len() / format.channels) as u64;
        if self.since_flush >= u64::from(format.rate) {
            self.since_flush = 0;
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), SinkError> {
        if let Some(writer) = self.writer.as_mut() {
            // hound's flush writes the buffered samples and updates the header's lengths.
            if let Err(e) = writer.flush() {
                return Err(self.err(e));
            }
        }
        Ok(())
    }
}

impl Drop for WavSink {
    fn drop(&mut self) {
        if let Some(Err(e)) = self.writer.take().map(|writer| writer.finalize()) {
            tracing::warn!(path = %self.path.display(), "cannot finalise air-check: {e}");
        }
    }
}
