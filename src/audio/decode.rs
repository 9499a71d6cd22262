//! Streaming decode of one audio file into interleaved `f32` frames at the sink's rate and
//! channel layout, with the item's gain applied.
//!
//! A [`Source`] never holds the whole file: it pulls packets from symphonia as the player
//! asks for frames, converts channels, and resamples with rubato (a real band-limited
//! resampler, not sample dropping). It is forgiving where a broadcaster would be: a
//! truncated file ends early, a corrupt packet is skipped with a warning (both counted in
//! [`DecodeStats`], which feeds the proof of play), but a file that yields no audio at all,
//! or changes sample rate mid-stream, is an error that names the file.

use std::collections::VecDeque;
use std::fs::File;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use super::limiter::{Limiter, PEAK_CEILING_DBFS};
use rubato::{FftFixedIn, Resampler};
use symphonia::core::codecs::audio::{AudioDecoder, AudioDecoderOptions};
use symphonia::core::errors::Error as SymphoniaError;
use symphonia::core::formats::probe::Hint;
use symphonia::core::formats::{FormatOptions, FormatReader, TrackType};
use symphonia::core::io::{MediaSource, MediaSourceStream, ReadOnlySource};
use symphonia::core::meta::MetadataOptions;

/// Frames fed to the resampler per call; also the granularity of decode-ahead.
const RESAMPLE_CHUNK: usize = 1024;
/// Demuxer errors in a row after which a damaged file is given up on (ends or fails).
const MAX_CONSECUTIVE_ERRORS: u32 = 64;
/// Frames in a row at another sample rate that mean the rate really changed.
const RATE_CHANGE_FRAMES: u32 = 3;

/// Why a file cannot be (or stopped being) decoded. Every message names the file.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DecodeError {
    /// A stream's receiver refused it (a live broadcast that failed authentication).
    #[error("{detail}")]
    Refused { detail: String },
    #[error("{path}: cannot open: {detail}; check the path and the file's permissions")]
    Open { path: PathBuf, kind: ErrorKind, detail: String },
    #[error("{path}: the file is empty (0 bytes); copy or download it again")]
    Empty { path: PathBuf },
    #[error(
        "{path}: not a recognised audio file ({detail}); supported formats are mp3, ogg vorbis, \
         flac and wav"
    )]
    NotAudio { path: PathBuf, detail: String },
    #[error("{path}: the file holds no audio track")]
    NoTrack { path: PathBuf },
    #[error("{path}: unsupported codec ({detail}); re-encode it as mp3, ogg vorbis, flac or wav")]
    UnsupportedCodec { path: PathBuf, detail: String },
    #[error(
        "{path}: no playable audio in the file ({detail}); it is damaged or not audio, re-encode \
         or download it again"
    )]
    NoAudio { path: PathBuf, detail: String },
    #[error(
        "{path}: the sample rate changes mid-stream at {at_secs:.2} s (from {from} Hz to {to} \
         Hz); re-encode the file at one sample rate"
    )]
    RateChanged { path: PathBuf, at_secs: f64, from: u32, to: u32 },
    #[error(
        "{path}: the channel count changes mid-stream at {at_secs:.2} s (from {from} to {to}); \
         re-encode the file with one channel layout"
    )]
    ChannelsChanged { path: PathBuf, at_secs: f64, from: usize, to: usize },
    #[error("{path}: decoding failed at {at_secs:.2} s: {detail}")]
    Decode { path: PathBuf, at_secs: f64, detail: String },
    #[error("{path}: cannot convert {from} Hz to {to} Hz: {detail}")]
    Resample { path: PathBuf, from: u32, to: u32, detail: String },
}

impl DecodeError {
    /// The same error naming the file `shown` instead of the path it was read from: a
    /// server decoding an upload in its own temporary file names it as the client did.
    pub fn named(mut self, shown: &Path) -> Self {
        match &mut self {
            Self::Open { path, .. }
            | Self::Empty { path }
            | Self::NotAudio { path, .. }
            | Self::NoTrack { path }
            | Self::UnsupportedCodec { path, .. }
            | Self::NoAudio { path, .. }
            | Self::RateChanged { path, .. }
            | Self::ChannelsChanged { path, .. }
            | Self::Decode { path, .. }
            | Self::Resample { path, .. } => *path = shown.to_path_buf(),
            Self::Refused { .. } => {}
        }
        self
    }
}

/// The rate and channel count a sink takes; what a [`Source`] converts to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AudioFormat {
    pub rate: u32,
    pub channels: usize,
}

/// What went wrong but was survived while decoding, for the proof of play.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// Corrupt packets skipped (each logged as a warning).
    pub skipped_packets: u32,
    /// The file ended before its header said it would (truncated, or gave up after damage).
    pub truncated: bool,
}

impl DecodeStats {
    /// What `loa audio probe` notes about the damage, e.g. `truncated, 3 corrupt packets
    /// skipped`; `None` for a file that decoded cleanly.
    pub fn damage(&self) -> Option<String> {
        let mut notes = Vec::new();
        if self.truncated {
            notes.push("truncated".to_string());
        }
        if self.skipped_packets > 0 {
            notes.push(format!("{} corrupt packets skipped", self.skipped_packets));
        }
        (!notes.is_empty()).then(|| notes.join(", "))
    }

    /// The damage said for someone deciding what to do with the file: `truncated (the
    /// file ends early)`, `3 corrupt packets skipped (parts of it do not decode)`.
    pub fn damage_explained(&self) -> Option<String> {
        let mut notes = Vec::new();
        if self.truncated {
            notes.push("truncated (the file ends early)".to_string());
        }
        if self.skipped_packets > 0 {
            notes.push(format!(
                "{} corrupt packets skipped (parts of it do not decode)",
                self.skipped_packets
            ));
        }
        (!notes.is_empty()).then(|| notes.join(", "))
    }
}

/// The first layer: a symphonia reader + decoder producing interleaved f32 at the file's
/// own rate and channel count.
struct FileDecoder {
    path: PathBuf,
    reader: Box<dyn FormatReader>,
    decoder: Box<dyn AudioDecoder>,
    track_id: u32,
    /// The file's rate and channels, known after the first decoded packet.
    spec: Option<AudioFormat>,
    /// Frames the container announces, if it does.
    announced_frames: Option<u64>,
    decoded_frames: u64,
    stats: DecodeStats,
    /// A run of frames refused for having another rate: (that rate, how many).
    rate_streak: Option<(u32, u32)>,
    /// Timestamp the next packet should have, to notice dropped pages.
    next_pts: Option<i64>,
    ended: bool,
    format_name: &'static str,
    codec_name: &'static str,
}

impl FileDecoder {
    fn open(path: &Path) -> Result<Self, DecodeError> {
        let path_buf = path.to_path_buf();
        let file = File::open(path).map_err(|e| DecodeError::Open {
            path: path_buf.clone(),
            kind: e.kind(),
            detail: e.to_string(),
        })?;
        match file.metadata() {
            Ok(meta) if meta.len() == 0 => return Err(DecodeError::Empty { path: path_buf }),
            Ok(meta) if meta.is_dir() => {
                return Err(DecodeError::Open {
                    path: path_buf,
                    kind: ErrorKind::IsADirectory,
                    detail: "it is a directory".into(),
                });
            }
            _ => {}
        }
        let reader = match probe_reader(path, Box::new(file), true) {
            Ok(reader) => reader,
            // A reader that looks at the end of a seekable file (ogg does, for its length)
            // trips over a truncated or damaged tail. Reading it as a plain stream, front to
            // back, plays what is there.
            Err(seekable) => match File::open(path) {
                Ok(file) => probe_reader(path, Box::new(ReadOnlySource::new(file)), false)
                    .map_err(|_| seekable)?,
                Err(_) => return Err(seekable),
            },
        };
        Self::from_reader(path_buf, reader)
    }

    /// A stream read front to back (a relayed HTTP stream): `name` stands for its path in
    /// errors, and its extension (`.mp3`, `.ogg`) is the format hint.
    fn open_stream(name: &Path, stream: Box<dyn MediaSource>) -> Result<Self, DecodeError> {
        let reader = probe_reader(name, stream, true)?;
        Self::from_reader(name.to_path_buf(), reader)
    }

    fn from_reader(path_buf: PathBuf, reader: Box<dyn FormatReader>) -> Result<Self, DecodeError> {
        let format_name = reader.format_info().short_name;
        let track = reader
            .default_track(TrackType::Audio)
            .ok_or_else(|| DecodeError::NoTrack { path: path_buf.clone() })?;
        let track_id = track.id;
        let announced_frames = track.num_frames;
        let params = track
            .codec_params
            .as_ref()
            .and_then(|p| p.audio())
            .ok_or_else(|| DecodeError::NoTrack { path: path_buf.clone() })?;
        let decoder = symphonia::default::get_codecs()
            .make_audio_decoder(params, &AudioDecoderOptions::default())
            .map_err(|e| DecodeError::UnsupportedCodec {
                path: path_buf.clone(),
                detail: format!("codec id {}: {e}", params.codec),
            })?;
        let codec_name = decoder.codec_info().short_name;
        Ok(Self {
            path: path_buf,
            reader,
            decoder,
            track_id,
            spec: None,
            announced_frames,
            decoded_frames: 0,
            stats: DecodeStats::default(),
            rate_streak: None,
            next_pts: None,
            ended: false,
            format_name,
            codec_name,
        })
    }

    fn at_secs(&self) -> f64 {
        self.spec.map(|s| self.decoded_frames as f64 / s.rate.max(1) as f64).unwrap_or(0.0)
    }

    /// Appends the next packet's interleaved samples to `out`. Returns false at the end.
    fn next_into(&mut self, out: &mut Vec<f32>) -> Result<bool, DecodeError> {
        let mut errors_in_a_row = 0u32;
        while !self.ended {
            let packet = match self.reader.next_packet() {
                Ok(Some(packet)) => packet,
                Ok(None) => {
                    self.finish();
                    break;
                }
                Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                    // A truncated file: what was decoded is what there is.
                    self.stats.truncated = true;
                    self.finish();
                    break;
                }
                Err(SymphoniaError::ResetRequired) => {
                    tracing::warn!(path = %self.path.display(), "stream changes layout; ending it");
                    self.finish();
                    break;
                }
                Err(SymphoniaError::DecodeError(msg)) | Err(SymphoniaError::LimitError(msg)) => {
                    errors_in_a_row += 1;
                    self.stats.skipped_packets += 1;
                    tracing::warn!(path = %self.path.display(), at_secs = self.at_secs(), "damaged data skipped: {msg}");
                    if errors_in_a_row >= MAX_CONSECUTIVE_ERRORS {
                        self.stats.truncated = true;
                        self.finish();
                        break;
                    }
                    continue;
                }
                Err(e) => {
                    if self.decoded_frames > 0 {
                        tracing::warn!(path = %self.path.display(), at_secs = self.at_secs(), "read error, ending early: {e}");
                        self.stats.truncated = true;
                        self.finish();
                        break;
                    }
                    return Err(DecodeError::Decode {
                        path: self.path.clone(),
                        at_secs: self.at_secs(),
                        detail: e.to_string(),
                    });
                }
            };
            if packet.track_id != self.track_id {
                continue;
            }
            // Pages the demuxer dropped silently (ogg skips pages failing their CRC) show as
            // a jump in timestamps.
            let pts = packet.pts.get();
            if let Some(expected) = self.next_pts {
                let gap = pts.saturating_sub(expected);
                if gap > 0 && gap as u64 > packet.dur.get() / 2 && self.decoded_frames > 0 {
                    self.stats.skipped_packets += 1;
                    tracing::warn!(path = %self.path.display(), at_secs = self.at_secs(), gap, "damaged data skipped: a gap in the stream");
                }
            }
            self.next_pts = Some(pts.saturating_add(packet.dur.get().min(i64::MAX as u64) as i64));
            match self.decoder.decode(&packet) {
                Ok(buf) => {
                    self.rate_streak = None;
                    let spec = AudioFormat {
                        rate: buf.spec().rate(),
                        channels: buf.spec().channels().count(),
                    };
                    if buf.frames() == 0 {
                        continue;
                    }
                    match self.spec {
                        None => {
                            if spec.rate == 0 || spec.channels == 0 {
                                return Err(DecodeError::NoAudio {
                                    path: self.path.clone(),
                                    detail: format!("{} Hz, {} channels", spec.rate, spec.channels),
                                });
                            }
                            self.spec = Some(spec);
                        }
                        Some(known) if known.rate != spec.rate => {
                            return Err(DecodeError::RateChanged {
                                path: self.path.clone(),
                                at_secs: self.at_secs(),
                                from: known.rate,
                                to: spec.rate,
                            });
                        }
                        Some(known) if known.channels != spec.channels => {
                            return Err(DecodeError::ChannelsChanged {
                                path: self.path.clone(),
                                at_secs: self.at_secs(),
                                from: known.channels,
                                to: spec.channels,
                            });
                        }
                        Some(_) => {}
                    }
                    let start = out.len();
                    out.resize(start + buf.samples_interleaved(), 0.0);
                    buf.copy_to_slice_interleaved::<f32, _>(&mut out[start..]);
                    self.decoded_frames += buf.frames() as u64;
                    return Ok(true);
                }
                Err(SymphoniaError::IoError(e)) if e.kind() == ErrorKind::UnexpectedEof => {
                    self.stats.truncated = true;
                    self.finish();
                    break;
                }
                Err(e @ (SymphoniaError::DecodeError(_) | SymphoniaError::IoError(_))) => {
                    // The mp3 decoder refuses a frame whose rate differs from the stream's
                    // as "malformed"; say what it really is.
                    // A few such frames in a row, not one: random bytes can look like a
                    // frame header too.
                    if let (Some(known), Some(rate)) = (self.spec, mpeg_frame_rate(&packet.data)) {
                        let streak = match self.rate_streak {
                            Some((r, n)) if r == rate => n + 1,
                            _ => 1,
                        };
                        self.rate_streak = Some((rate, streak));
                        if rate != known.rate && streak >= RATE_CHANGE_FRAMES {
                            return Err(DecodeError::RateChanged {
                                path: self.path.clone(),
                                at_secs: self.at_secs(),
                                from: known.rate,
                                to: rate,
                            });
                        }
                    }
                    errors_in_a_row += 1;
                    if errors_in_a_row >= MAX_CONSECUTIVE_ERRORS {
                        self.stats.truncated = true;
                        self.finish();
                        break;
                    }
                    self.stats.skipped_packets += 1;
                    if self.stats.skipped_packets <= 3 {
                        tracing::warn!(path = %self.path.display(), at_secs = self.at_secs(), "corrupt packet skipped: {e}");
                    }
                }
                Err(e) => {
                    return Err(DecodeError::Decode {
                        path: self.path.clone(),
                        at_secs: self.at_secs(),
                        detail: e.to_string(),
                    });
                }
            }
        }
        if self.decoded_frames == 0 {
            return Err(DecodeError::NoAudio {
                path: self.path.clone(),
                detail: if self.stats.skipped_packets > 0 {
                    format!("all {} packets were corrupt", self.stats.skipped_packets)
                } else {
                    "the stream ended before any audio".into()
                },
            });
        }
        Ok(false)
    }

    fn finish(&mut self) {
        self.ended = true;
        if self.stats.skipped_packets > 3 {
            tracing::warn!(path = %self.path.display(), skipped = self.stats.skipped_packets, "corrupt packets skipped in all");
        }
        if let Some(announced) = self.announced_frames {
            // Allow a packet's worth of slack: encoders disagree about padding.
            if self.decoded_frames + 4096 < announced {
                self.stats.truncated = true;
            }
        }
    }
}

/// Finds a format reader for `source`, with an error that says what is wrong with the file.
fn probe_reader(
    path: &Path,
    source: Box<dyn MediaSource>,
    hint_extension: bool,
) -> Result<Box<dyn FormatReader>, DecodeError> {
    let mss = MediaSourceStream::new(source, Default::default());
    let mut hint = Hint::new();
    if let Some(ext) = path.extension().and_then(|e| e.to_str()).filter(|_| hint_extension) {
        hint.with_extension(ext);
    }
    symphonia::default::get_probe()
        .probe(&hint, mss, FormatOptions::default(), MetadataOptions::default())
        .map_err(|e| {
            let detail = match e {
                SymphoniaError::IoError(io) if io.kind() == ErrorKind::UnexpectedEof => {
                    "its header is damaged or the file is cut short".to_string()
                }
                SymphoniaError::Unsupported(_) => "no known audio format found".to_string(),
                other => format!("damaged header: {other}"),
            };
            DecodeError::NotAudio { path: path.to_path_buf(), detail }
        })
}

/// The sample rate in an MPEG audio frame header, if `data` starts with one.
fn mpeg_frame_rate(data: &[u8]) -> Option<u32> {
    let [a, b, c, ..] = *data else { return None };
    if a != 0xFF || b & 0xE0 != 0xE0 {
        return None;
    }
    let base = match (b >> 3) & 0b11 {
        0b11 => [44_100, 48_000, 32_000], // MPEG-1
        0b10 => [22_050, 24_000, 16_000], // MPEG-2
        0b00 => [11_025, 12_000, 8_000],  // MPEG-2.5
        _ => return None,
    };
    base.get(usize::from((c >> 2) & 0b11)).copied()
}

/// One playable item: a file decoded, converted to the sink's format, gain applied, then
/// peak-limited so no sample leaves above [`PEAK_CEILING_DBFS`] whatever the gain.
pub struct Source {
    inner: FileDecoder,
    out_format: AudioFormat,
    in_format: AudioFormat,
    gain: f32,
    limiter: Limiter,
    /// The limiter's work has been logged once for this item.
    limit_logged: bool,
    resampler: Option<FftFixedIn<f32>>,
    /// Channel-converted input at the file's rate, planar, waiting for a full chunk.
    pending: Vec<Vec<f32>>,
    /// Output frames ready, interleaved.
    ready: VecDeque<f32>,
    /// Resampler output still to drop at the start (its group delay), so the first sample
    /// of the file is the first sample played.
    trim: usize,
    in_frames: u64,
    out_frames: u64,
    scratch: Vec<f32>,
    done: bool,
}

impl std::fmt::Debug for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("path", &self.inner.path)
            .field("in", &self.in_format)
            .field("out", &self.out_format)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Opens `path` and decodes its first buffers, so problems show now, not at air time.
    pub fn open(path: &Path, out_format: AudioFormat, gain_db: f32) -> Result<Self, DecodeError> {
        if out_format.rate == 0 || out_format.channels == 0 {
            return Err(DecodeError::Resample {
                path: path.to_path_buf(),
                from: 0,
                to: out_format.rate,
                detail: format!(
                    "the output has {} channels at {} Hz",
                    out_format.channels, out_format.rate
                ),
            });
        }
        let inner = FileDecoder::open(path)?;
        Self::start(inner, path, out_format, gain_db)
    }

    /// Opens a stream read front to back (an HTTP relay: no seeking, no length) and
    /// decodes its first packet. `name` is what errors call it (its extension is the
    /// format hint).
    pub fn open_stream(
        name: &Path,
        stream: Box<dyn MediaSource>,
        out_format: AudioFormat,
        gain_db: f32,
    ) -> Result<Self, DecodeError> {
        let inner = FileDecoder::open_stream(name, stream)?;
        Self::start(inner, name, out_format, gain_db)
    }

    fn start(
        mut inner: FileDecoder,
        path: &Path,
        out_format: AudioFormat,
        gain_db: f32,
    ) -> Result<Self, DecodeError> {
        let mut scratch = Vec::new();
        inner.next_into(&mut scratch)?;
        let in_format = inner.spec.ok_or_else(|| DecodeError::NoAudio {
            path: path.to_path_buf(),
            detail: "no decodable packet".into(),
        })?;
        let resampler = if in_format.rate != out_format.rate {
            let r = FftFixedIn::<f32>::new(
                in_format.rate as usize,
                out_format.rate as usize,
                RESAMPLE_CHUNK,
                2,
                out_format.channels,
            )
            .map_err(|e| DecodeError::Resample {
                path: path.to_path_buf(),
                from: in_format.rate,
                to: out_format.rate,
                detail: e.to_string(),
            })?;
            Some(r)
        } else {
            None
        };
        let trim = resampler.as_ref().map(|r| r.output_delay()).unwrap_or(0);
        let gain = if gain_db.is_finite() { 10f32.powf(gain_db / 20.0) } else { 1.0 };
        let mut source = Self {
            inner,
            out_format,
            in_format,
            gain,
            limiter: Limiter::new(PEAK_CEILING_DBFS, out_format.rate, out_format.channels),
            limit_logged: false,
            resampler,
            pending: vec![Vec::new(); out_format.channels],
            ready: VecDeque::new(),
            trim,
            in_frames: 0,
            out_frames: 0,
            scratch: Vec::new(),
            done: false,
        };
        source.push_input(&scratch)?;
        Ok(source)
    }

    /// The file's container format (e.g. "wave", "ogg").
    pub fn format_name(&self) -> &'static str {
        self.inner.format_name
    }

    /// The file's codec (e.g. "mp3", "vorbis").
    pub fn codec_name(&self) -> &'static str {
        self.inner.codec_name
    }

    /// The file's own rate and channel count.
    pub fn input_format(&self) -> AudioFormat {
        self.in_format
    }

    /// Frames the container announces at the file's rate, if it does.
    pub fn announced_frames(&self) -> Option<u64> {
        self.inner.announced_frames
    }

    /// Damage survived so far.
    pub fn stats(&self) -> DecodeStats {
        self.inner.stats
    }

    /// Fills `dst` (interleaved, in the output format) and returns the frames written;
    /// fewer than asked only at the end of the file.
    pub fn fill(&mut self, dst: &mut [f32]) -> Result<usize, DecodeError> {
        let channels = self.out_format.channels;
        let want = dst.len() / channels * channels;
        while self.ready.len() < want && !self.done {
            self.scratch.clear();
            let mut scratch = std::mem::take(&mut self.scratch);
            let more = self.inner.next_into(&mut scratch);
            let result = match more {
                Ok(true) => self.push_input(&scratch),
                Ok(false) => self.flush(),
                Err(e) => Err(e),
            };
            self.scratch = scratch;
            result?;
        }
        let n = want.min(self.ready.len());
        for (d, s) in dst[..n].iter_mut().zip(self.ready.drain(..n)) {
            *d = s * self.gain;
        }
        self.limiter.process(&mut dst[..n]);
        if !self.limit_logged && self.limiter.limited_frames() > 0 {
            self.limit_logged = true;
            tracing::warn!(
                path = %self.inner.path.display(),
                gain_db = 20.0 * self.gain.log10(),
                "peaks over {PEAK_CEILING_DBFS} dBFS after gain: limiting (the item's gain is too \
                 high for this file)"
            );
        }
        Ok(n / channels)
    }

    /// Converts channels of interleaved input at the file's rate, and resamples.
    fn push_input(&mut self, interleaved: &[f32]) -> Result<(), DecodeError> {
        let cin = self.in_format.channels;
        let cout = self.out_format.channels;
        let frames = interleaved.len() / cin;
        self.in_frames += frames as u64;
        for frame in interleaved.chunks_exact(cin) {
            for (c, plane) in self.pending.iter_mut().enumerate() {
                let v = if cout == 1 && cin > 1 {
                    // Down-mix to mono: average of all channels.
                    frame.iter().sum::<f32>() / cin as f32
                } else {
                    // Up-mix duplicates; a wider file keeps its first channels (front L/R).
                    frame[c % cin]
                };
                plane.push(v);
            }
        }
        self.drain_pending(false)
    }

    fn drain_pending(&mut self, last: bool) -> Result<(), DecodeError> {
        let Some(resampler) = self.resampler.as_mut() else {
            let frames = self.pending[0].len();
            for i in 0..frames {
                for plane in &self.pending {
                    self.ready.push_back(plane[i]);
                }
            }
            self.out_frames += frames as u64;
            for plane in &mut self.pending {
                plane.clear();
            }
            return Ok(());
        };
        let path = &self.inner.path;
        let (from, to) = (self.in_format.rate, self.out_format.rate);
        let err = |e: rubato::ResampleError| DecodeError::Resample {
            path: path.clone(),
            from,
            to,
            detail: e.to_string(),
        };
        loop {
            let need = resampler.input_frames_next();
            let have = self.pending[0].len();
            let out = if have >= need {
                let chunk: Vec<&[f32]> = self.pending.iter().map(|p| &p[..need]).collect();
                let out = resampler.process(&chunk, None).map_err(err)?;
                for plane in &mut self.pending {
                    plane.drain(..need);
                }
                out
            } else if last {
                let expected = (self.in_frames as u128 * to as u128).div_ceil(from as u128) as u64;
                if self.out_frames >= expected {
                    return Ok(());
                }
                let out = if have > 0 {
                    let chunk: Vec<&[f32]> = self.pending.iter().map(|p| &p[..]).collect();
                    let out = resampler.process_partial(Some(&chunk), None).map_err(err)?;
                    for plane in &mut self.pending {
                        plane.clear();
                    }
                    out
                } else {
                    resampler.process_partial::<&[f32]>(None, None).map_err(err)?
                };
                // Append, then cut at exactly the expected length (the tail is padding).
                let mut out = out;
                let room = (expected - self.out_frames) as usize + self.trim;
                for plane in &mut out {
                    plane.truncate(room);
                }
                out
            } else {
                return Ok(());
            };
            let frames = out.first().map(|p| p.len()).unwrap_or(0);
            let skip = self.trim.min(frames);
            self.trim -= skip;
            for i in skip..frames {
                for plane in &out {
                    self.ready.push_back(plane[i]);
                }
            }
            self.out_frames += (frames - skip) as u64;
            if frames == 0 {
                return Ok(());
            }
        }
    }

    fn flush(&mut self) -> Result<(), DecodeError> {
        self.done = true;
        self.drain_pending(true)
    }
}

/// What `loa audio probe` reports about a file.
#[derive(Debug, Clone, PartialEq)]
pub struct ProbeReport {
    pub path: PathBuf,
    /// Container, e.g. "mp3", "ogg", "flac", "wave".
    pub format: String,
    /// Codec, e.g. "mp3", "vorbis", "flac", "pcm_s16le".
    pub codec: String,
    /// Decoded length.
    pub duration: std::time::Duration,
    pub rate: u32,
    pub channels: usize,
    /// EBU R128 integrated loudness, LUFS (`-inf` for digital silence).
    pub integrated_lufs: f64,
    /// Sample peak, dBFS.
    pub peak_dbfs: f64,
    /// True (inter-sample) peak, dBTP: the sample peak of the signal oversampled 4×
    /// (ITU-R BS.1770), what a sound card's reconstruction filter actually puts out. Never
    /// below `peak_dbfs`.
    pub true_peak_dbtp: f64,
    pub stats: DecodeStats,
}

/// Decodes the whole file (streaming) and measures it.
pub fn probe(path: &Path) -> Result<ProbeReport, DecodeError> {
    let mut dec = FileDecoder::open(path)?;
    let mut buf = Vec::new();
    let mut meter: Option<ebur128::EbuR128> = None;
    let mut peak = 0f32;
    loop {
        buf.clear();
        let more = dec.next_into(&mut buf)?;
        if let Some(spec) = dec.spec {
            if meter.is_none() {
                let m = ebur128::EbuR128::new(
                    spec.channels as u32,
                    spec.rate,
                    ebur128::Mode::I | ebur128::Mode::TRUE_PEAK,
                )
                .map_err(|e| DecodeError::Decode {
                    path: path.to_path_buf(),
                    at_secs: 0.0,
                    detail: format!("loudness meter: {e}"),
                })?;
                meter = Some(m);
            }
            if let Some(m) = meter.as_mut() {
                let _ = m.add_frames_f32(&buf);
            }
        }
        peak = buf.iter().fold(peak, |p, s| p.max(s.abs()));
        if !more {
            break;
        }
    }
    let spec = dec.spec.ok_or_else(|| DecodeError::NoAudio {
        path: path.to_path_buf(),
        detail: "no decodable packet".into(),
    })?;
    let lufs = meter.as_ref().and_then(|m| m.loudness_global().ok()).unwrap_or(f64::NEG_INFINITY);
    let true_peak = meter
        .as_ref()
        .map(|m| (0..spec.channels as u32).filter_map(|c| m.true_peak(c).ok()).fold(0f64, f64::max))
        .unwrap_or(0.0)
        .max(f64::from(peak));
    Ok(ProbeReport {
        path: path.to_path_buf(),
        format: dec.format_name.to_string(),
        codec: dec.codec_name.to_string(),
        duration: std::time::Duration::from_secs_f64(dec.decoded_frames as f64 / spec.rate as f64),
        rate: spec.rate,
        channels: spec.channels,
        integrated_lufs: lufs,
        peak_dbfs: to_dbfs(peak as f64),
        true_peak_dbtp: to_dbfs(true_peak),
        stats: dec.stats,
    })
}

/// Linear amplitude to dBFS; silence is `-inf`.
pub fn to_dbfs(amplitude: f64) -> f64 {
    if amplitude > 0.0 { 20.0 * amplitude.log10() } else { f64::NEG_INFINITY }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mpeg_frame_headers_give_their_sample_rate() {
        // MPEG-1 layer III, 44.1 kHz; MPEG-2, 22.05 kHz; MPEG-2.5, 8 kHz.
        assert_eq!(mpeg_frame_rate(&[0xFF, 0xFB, 0x90, 0x00]), Some(44_100));
        assert_eq!(mpeg_frame_rate(&[0xFF, 0xF3, 0x80, 0x00]), Some(22_050));
        assert_eq!(mpeg_frame_rate(&[0xFF, 0xE3, 0x88, 0x00]), Some(8_000));
        // Not a frame header, reserved version, too short.
        assert_eq!(mpeg_frame_rate(&[0x49, 0x44, 0x33, 0x04]), None);
        assert_eq!(mpeg_frame_rate(&[0xFF, 0xEB, 0x90, 0x00]), None);
        assert_eq!(mpeg_frame_rate(&[0xFF]), None);
    }

    #[test]
    fn dbfs_of_silence_is_minus_infinity() {
        assert_eq!(to_dbfs(0.0), f64::NEG_INFINITY);
        assert!((to_dbfs(0.5) - (-6.0206)).abs() < 1e-3);
    }
}
