//! A stream played while it arrives — a relayed HTTP/Icecast programme or a live voice
//! from the province — with a fixed, stated delay.
//!
//! Two halves share one bounded buffer of frames in the player's format:
//! - [`RelayInput`], held by whoever receives the stream (a decoder thread, a live
//!   receiver): it pushes frames as they come and learns when nobody listens any more;
//! - [`RelayFeed`], handed to the player as a [`Feed`]: at its start it keeps exactly
//!   `buffer` of the newest audio (the stated delay), then plays the stream. When the
//!   buffer runs dry (the link dropped) it plays the fallback — or silence — and counts a
//!   drop-out, until `buffer` has gathered again; it ends on time (`end`), or when the
//!   input finished and everything buffered went out (a live broadcast), or at once when
//!   the input was cut (a live broadcast that failed authentication).
//!
//! Why the buffer is trimmed to `buffer` at the start and capped at `buffer + slack`
//! afterwards: the delay stays what the operator was told, whatever the sender does (a
//! server that bursts its first seconds, or sends faster than real time, cannot make the
//! station play behind by more, nor grow its memory).

use std::collections::VecDeque;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::decode::{AudioFormat, DecodeError};
use super::feed::{Feed, RelayStats};

/// Audio kept beyond the stated delay before the oldest is dropped.
pub const RELAY_SLACK: Duration = Duration::from_secs(1);

/// Reopens the fallback from its start (it loops while the stream is down).
pub type OpenFallback = Box<dyn FnMut() -> Option<Box<dyn Feed>> + Send>;

struct Shared {
    pcm: VecDeque<f32>,
    /// Most samples held.
    cap: usize,
    /// The feed is gone (ended, pre-empted, dropped): the input should stop.
    closed: bool,
    /// The input will send nothing more (a live broadcast ended).
    finished: bool,
    /// The input was refused (why): the feed fails at its next block.
    cut: Option<String>,
    /// Samples ever pushed, and ever dropped as too old.
    pushed: u64,
}

fn lock(shared: &Mutex<Shared>) -> MutexGuard<'_, Shared> {
    shared.lock().unwrap_or_else(|p| p.into_inner())
}

/// The receiving half: pushes frames as they arrive.
#[derive(Clone)]
pub struct RelayInput {
    shared: Arc<Mutex<Shared>>,
    format: AudioFormat,
}

impl RelayInput {
    /// Appends interleaved frames in the player's format; the oldest go when more than
    /// the buffer and its slack are held. False once nobody listens (stop receiving).
    pub fn push(&self, samples: &[f32]) -> bool {
        let mut s = lock(&self.shared);
        if s.closed {
            return false;
        }
        s.pcm.extend(samples.iter().copied());
        s.pushed += samples.len() as u64;
        let over = s.pcm.len().saturating_sub(s.cap);
        if over > 0 {
            let channels = self.format.channels.max(1);
            let over = over.div_ceil(channels) * channels;
            let len = s.pcm.len();
            s.pcm.drain(..over.min(len));
        }
        true
    }

    /// No more audio will come: the feed plays what it holds, then ends.
    pub fn finish(&self) {
        lock(&self.shared).finished = true;
    }

    /// Refuses the stream: the feed stops at its next block and fails with `why`.
    pub fn cut(&self, why: impl Into<String>) {
        let mut s = lock(&self.shared);
        s.cut.get_or_insert_with(|| why.into());
        s.pcm.clear();
    }

    /// Whether the feed is gone (the input should stop).
    pub fn is_closed(&self) -> bool {
        lock(&self.shared).closed
    }

    /// Audio buffered now.
    pub fn buffered(&self) -> Duration {
        let s = lock(&self.shared);
        let frames = s.pcm.len() / self.format.channels.max(1);
        Duration::from_secs_f64(frames as f64 / f64::from(self.format.rate.max(1)))
    }

    /// Samples pushed since the start (to pace a decoder against real time).
    pub fn pushed_frames(&self) -> u64 {
        lock(&self.shared).pushed / self.format.channels.max(1) as u64
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not started yet.
    Waiting,
    Relaying,
    /// The stream had nothing: fallback or silence until `buffer` has gathered.
    Down,
}

/// The playing half: a [`Feed`] for the player.
pub struct RelayFeed {
    shared: Arc<Mutex<Shared>>,
    format: AudioFormat,
    buffer_frames: usize,
    /// The planned end of the slot (a relay); `None` ends with the input (live).
    end: Option<DateTime<Utc>>,
    /// Frames left to play, known from the start instant and `end`.
    left: Option<u64>,
    fallback: Option<Box<dyn Feed>>,
    open_fallback: Option<OpenFallback>,
    state: State,
    relayed: u64,
    dropouts: u32,
    dropout_frames: u64,
    current_dropout: u64,
    longest_dropout: u64,
    scratch: Vec<f32>,
}

/// A relay buffer: the input for the receiver, the feed for the player. `buffer` is the
/// stated delay; `end` the instant the slot ends (a scheduled relay) or `None` (a live
/// broadcast, which ends with its input); `open_fallback` what plays while the stream is
/// down (silence without one).
pub fn relay(
    format: AudioFormat,
    buffer: Duration,
    end: Option<DateTime<Utc>>,
    open_fallback: Option<OpenFallback>,
) -> (RelayInput, RelayFeed) {
    let channels = format.channels.max(1);
    let frames = |d: Duration| (d.as_secs_f64() * f64::from(format.rate)).round() as usize;
    let buffer_frames = frames(buffer).max(1);
    let cap = (buffer_frames + frames(RELAY_SLACK)) * channels;
    let shared = Arc::new(Mutex::new(Shared {
        pcm: VecDeque::with_capacity(cap.min(1 << 20)),
        cap,
        closed: false,
        finished: false,
        cut: None,
        pushed: 0,
    }));
    let input = RelayInput { shared: shared.clone(), format };
    let feed = RelayFeed {
        shared,
        format,
        buffer_frames,
        end,
        left: None,
        fallback: None,
        open_fallback,
        state: State::Waiting,
        relayed: 0,
        dropouts: 0,
        dropout_frames: 0,
        current_dropout: 0,
        longest_dropout: 0,
        scratch: Vec::new(),
    };
    (input, feed)
}

impl RelayFeed {
    fn seconds(&self, frames: u64) -> f64 {
        frames as f64 / f64::from(self.format.rate.max(1))
    }

    fn go_down(&mut self) {
        if self.state != State::Down {
            self.state = State::Down;
            self.dropouts += 1;
            self.current_dropout = 0;
        }
    }

    /// Fills `dst` from the fallback (looped from its start), silence where it has none.
    fn fill_fallback(&mut self, dst: &mut [f32]) {
        let channels = self.format.channels.max(1);
        let mut done = 0;
        let mut reopened = false;
        while done < dst.len() {
            if self.fallback.is_none() {
                self.fallback = self.open_fallback.as_mut().and_then(|open| open());
                if self.fallback.is_none() || reopened {
                    break;
                }
                reopened = true;
            }
            let Some(f) = self.fallback.as_mut() else { break };
            match f.fill(&mut dst[done..]) {
                Ok(frames) if frames > 0 => {
                    done += frames * channels;
                    reopened = false;
                }
                // At its end (or broken): from the start again, once per block.
                _ => self.fallback = None,
            }
        }
        dst[done..].fill(0.0);
    }
}

impl Feed for RelayFeed {
    fn started(&mut self, at: DateTime<Utc>) {
        if let Some(end) = self.end {
            let left = (end - at).num_microseconds().unwrap_or(i64::MAX).max(0) as u128;
            self.left = Some((left * u128::from(self.format.rate) / 1_000_000) as u64);
        }
    }

    fn fill(&mut self, dst: &mut [f32]) -> Result<usize, DecodeError> {
        let channels = self.format.channels.max(1);
        let mut want = dst.len() / channels;
        if let Some(left) = self.left {
            want = want.min(usize::try_from(left).unwrap_or(usize::MAX));
        }
        let mut s = lock(&self.shared);
        if let Some(why) = &s.cut {
            return Err(DecodeError::Refused { detail: why.clone() });
        }
        if self.state == State::Waiting && self.end.is_none() {
            // A live broadcast: silence until the buffer has gathered (the stated delay,
            // not a drop-out), then every word from the first.
            if s.pcm.len() < self.buffer_frames * channels && !s.finished {
                drop(s);
                dst[..want * channels].fill(0.0);
                return Ok(want);
            }
            self.state = State::Relaying;
        }
        if self.state == State::Waiting {
            // The stated delay: keep exactly the newest `buffer` of what arrived.
            let keep = self.buffer_frames * channels;
            let old = s.pcm.len().saturating_sub(keep);
            s.pcm.drain(..old);
            if s.pcm.len() >= keep {
                self.state = State::Relaying;
            } else {
                // Nothing (or too little) came before the start: a drop-out from the
                // first frame, until the buffer has gathered.
                self.state = State::Down;
                self.dropouts += 1;
                self.current_dropout = 0;
            }
        }
        if self.state == State::Down && (s.pcm.len() >= self.buffer_frames * channels || s.finished)
        {
            self.state = State::Relaying;
            self.longest_dropout = self.longest_dropout.max(self.current_dropout);
        }
        let mut from_stream = 0;
        if self.state == State::Relaying {
            from_stream = want.min(s.pcm.len() / channels);
            for (d, v) in
                dst[..from_stream * channels].iter_mut().zip(s.pcm.drain(..from_stream * channels))
            {
                *d = v;
            }
        }
        let finished = s.finished && s.pcm.is_empty();
        drop(s);
        self.relayed += from_stream as u64;
        let mut written = from_stream;
        if finished && self.end.is_none() {
            // A live broadcast ends with its input.
            self.close();
        } else if written < want {
            if self.state == State::Relaying && !finished {
                self.go_down();
            }
            let rest = &mut dst[written * channels..want * channels];
            let mut scratch = std::mem::take(&mut self.scratch);
            scratch.resize(rest.len(), 0.0);
            self.fill_fallback(&mut scratch);
            rest.copy_from_slice(&scratch);
            self.scratch = scratch;
            let gap = (want - written) as u64;
            self.dropout_frames += gap;
            self.current_dropout += gap;
            self.longest_dropout = self.longest_dropout.max(self.current_dropout);
            written = want;
        }
        if let Some(left) = self.left.as_mut() {
            *left = left.saturating_sub(written as u64);
        }
        Ok(written)
    }

    fn relay(&self) -> Option<RelayStats> {
        Some(RelayStats {
            relayed_secs: self.seconds(self.relayed),
            dropouts: self.dropouts,
            dropout_secs: self.seconds(self.dropout_frames),
            longest_dropout_secs: self.seconds(self.longest_dropout),
        })
    }
}

impl RelayFeed {
    fn close(&mut self) {
        lock(&self.shared).closed = true;
    }
}

impl Drop for RelayFeed {
    fn drop(&mut self) {
        self.close();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    const F: AudioFormat = AudioFormat { rate: 1000, channels: 1 };

    fn t(ms: i64) -> DateTime<Utc> {
        Utc.timestamp_millis_opt(1_800_000_000_000 + ms).unwrap()
    }

    #[test]
    fn a_relay_keeps_the_stated_delay_fills_a_drop_out_and_ends_on_time() {
        let fallback: OpenFallback =
            Box::new(|| Some(Box::new(Constant(0.5, 300)) as Box<dyn Feed>));
        let (input, mut feed) = relay(F, Duration::from_millis(200), Some(t(1000)), Some(fallback));
        // 500 ms arrive before the start: only the newest 200 ms are kept.
        input.push(&(0..500).map(|i| i as f32 / 1000.0).collect::<Vec<_>>());
        feed.started(t(0));
        let mut out = vec![0.0; 100];
        assert_eq!(feed.fill(&mut out).unwrap(), 100);
        assert!((out[0] - 0.3).abs() < 1e-6, "starts 200 ms behind the newest: {}", out[0]);
        assert_eq!(feed.fill(&mut out).unwrap(), 100);
        // Dry: the fallback fills the whole block, counted as one drop-out.
        assert_eq!(feed.fill(&mut out).unwrap(), 100);
        assert!(out.iter().all(|&v| v == 0.5));
        assert_eq!(feed.fill(&mut out).unwrap(), 100);
        // 150 ms back: not yet the buffer, still the fallback.
        input.push(&[0.9; 150]);
        feed.fill(&mut out).unwrap();
        assert_eq!(out[0], 0.5);
        input.push(&[0.9; 100]);
        feed.fill(&mut out).unwrap();
        assert_eq!(out[0], 0.9, "relaying again once the buffer has gathered");
        // The slot ends at 1000 ms: 600 written so far, 400 left.
        let mut big = vec![0.0; 2000];
        assert_eq!(feed.fill(&mut big).unwrap(), 400);
        assert_eq!(feed.fill(&mut big).unwrap(), 0, "ended on time");
        let stats = feed.relay().unwrap();
        assert_eq!(stats.dropouts, 2, "the second cut was at the end of the buffered audio");
        assert!((stats.relayed_secs - 0.45).abs() < 1e-9, "{stats:?}");
        assert!((stats.relayed_secs + stats.dropout_secs - 1.0).abs() < 1e-9, "{stats:?}");
        drop(feed);
        assert!(!input.push(&[0.0]), "nobody listens once the feed is gone");
    }

    #[test]
    fn a_stream_that_never_answers_is_one_drop_out_of_the_whole_slot() {
        let (_input, mut feed) = relay(F, Duration::from_millis(200), Some(t(500)), None);
        feed.started(t(0));
        let mut out = vec![1.0; 1000];
        assert_eq!(feed.fill(&mut out).unwrap(), 500);
        assert!(out[..500].iter().all(|&v| v == 0.0), "silence without a fallback");
        let s = feed.relay().unwrap();
        assert_eq!((s.dropouts, s.relayed_secs, s.dropout_secs), (1, 0.0, 0.5));
    }

    #[test]
    fn a_live_feed_waits_for_its_buffer_then_plays_from_the_first_word() {
        let (input, mut feed) = relay(F, Duration::from_millis(200), None, None);
        feed.started(t(0));
        let mut out = vec![1.0; 100];
        input.push(&(0..150).map(|i| i as f32 / 1000.0).collect::<Vec<_>>());
        assert_eq!(feed.fill(&mut out).unwrap(), 100);
        assert!(out.iter().all(|&v| v == 0.0), "silence while the buffer gathers");
        input.push(&[0.5; 100]);
        assert_eq!(feed.fill(&mut out).unwrap(), 100);
        assert_eq!(out[0], 0.0, "the first sample that arrived is the first played");
        assert!((out[99] - 0.099).abs() < 1e-6);
        input.finish();
        let mut rest = vec![0.0; 1000];
        assert_eq!(feed.fill(&mut rest).unwrap(), 150);
        assert_eq!(feed.fill(&mut rest).unwrap(), 0);
        let stats = feed.relay().unwrap();
        assert_eq!((stats.dropouts, stats.relayed_secs), (0, 0.25), "the wait is no drop-out");
    }

    #[test]
    fn a_live_feed_ends_with_its_input_and_fails_when_cut() {
        let (input, mut feed) = relay(F, Duration::from_millis(100), None, None);
        input.push(&[0.2; 150]);
        input.finish();
        feed.started(t(0));
        let mut out = vec![0.0; 100];
        assert_eq!(feed.fill(&mut out).unwrap(), 100);
        assert_eq!(feed.fill(&mut out).unwrap(), 50, "nothing of a live voice is dropped");
        assert_eq!(feed.fill(&mut out).unwrap(), 0, "everything buffered went out");

        let (input, mut feed) = relay(F, Duration::from_millis(100), None, None);
        input.push(&[0.2; 150]);
        feed.started(t(0));
        assert_eq!(feed.fill(&mut out).unwrap(), 100);
        input.cut("chunk 7 does not follow chunk 6");
        let e = feed.fill(&mut out).unwrap_err();
        assert!(e.to_string().contains("chunk 7"), "{e}");
    }

    #[test]
    fn memory_is_bounded_whatever_the_sender_does() {
        let (input, _feed) = relay(F, Duration::from_millis(200), None, None);
        for _ in 0..100 {
            input.push(&[0.1; 1000]);
        }
        assert_eq!(input.buffered(), Duration::from_millis(1200), "the buffer and its slack");
    }

    /// `n` frames of `v`, then the end.
    struct Constant(f32, usize);
    impl Feed for Constant {
        fn fill(&mut self, dst: &mut [f32]) -> Result<usize, DecodeError> {
            let n = dst.len().min(self.1);
            dst[..n].fill(self.0);
            self.1 -= n;
            Ok(n)
        }
    }
}
