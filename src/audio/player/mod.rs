//! The player: a handle that sends commands to one audio thread, which keeps the sink's
//! stream running (silence when idle) and places each start on the exact frame.
//!
//! Timing model: before rendering each block, the thread asks the sink when the block's
//! first frame will reach the speaker (`t0`). An item due at `T` starts at frame
//! `round((T − t0) · rate)` of the first block where that index is below the block
//! length — sample-accurate, whatever the block size or when the command arrived. A start
//! already past begins at the next block and reports that block's instant. Events carry
//! the request id; every id ends in exactly one of `Finished`, `Preempted` or `Failed`.
//!
//! A sink that fails (a USB sound card dropping off the bus, an HDMI output gone) fails
//! what was playing, is closed, and — when the player was given a [`Reopen`] — opened
//! again on a helper thread with backoff ([`reopen_backoff`]: 0.5 s doubling to 10 s),
//! while the thread keeps answering commands. Items due meanwhile fail with the reason;
//! the next one due after the device is back plays on time. [`Player::output`] follows
//! the state (failed since when and why, or working), each change logged once.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvError, RecvTimeoutError, Sender, TryRecvError};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use chrono::{DateTime, Utc};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::decode::{AudioFormat, DecodeError, Source};
use super::feed::Feed;
use super::limiter::{Limiter, PEAK_CEILING_DBFS};
use super::sinks::{Sink, SinkError, after_frames};
use crate::clock::SharedClock;

mod broken;
mod proof;

use proof::ProofAcc;
pub use proof::ProofOfPlay;

/// How often an idle thread on an unpaced sink looks at the clock for a future start.
const UNPACED_POLL: Duration = Duration::from_millis(5);
/// How often a thread whose sink failed looks at the clock (reopen due, items due).
const BROKEN_POLL: Duration = Duration::from_millis(20);
/// The longest wait between two tries to reopen a failed sink.
pub const REOPEN_MAX_WAIT: Duration = Duration::from_secs(10);
/// Nothing due sooner than this, and nothing playing: the thread pauses the sink (the
/// stream stays open and plays silence by itself) instead of writing silence. It writes
/// again this long before the next start, so every start is placed on a running stream
/// exactly as before.
pub const IDLE_LEAD: Duration = Duration::from_millis(1500);
/// Blocks of silence written after the last item ended before pausing: the device's
/// buffer then holds only silence, and the limiter has released (no pop).
pub const IDLE_AFTER_BLOCKS: u32 = 8;
/// While paused, the thread wakes this often to check the sink and show it is alive. A
/// sound card's stream reports a failure at its next period (up to 50 ms, see
/// `sinks::device`), so a failure while paused is noticed within 0.5 s in all.
pub const IDLE_POLL: Duration = Duration::from_millis(450);

/// Opens the sink again after it failed (the station passes `sinks::open` of its sink).
pub type Reopen = Box<dyn FnMut() -> Result<Box<dyn Sink>, SinkError> + Send>;

/// The wait before reopen try `tries + 1` (after `tries` failed): 0.5 s, 1, 2, 4, 8, then
/// 10 s.
pub fn reopen_backoff(tries: u32) -> Duration {
    let half_seconds = 1u64.checked_shl(tries.min(16)).unwrap_or(u64::MAX);
    Duration::from_millis(half_seconds.saturating_mul(500)).min(REOPEN_MAX_WAIT)
}

/// The sound output's state, for heartbeats and `loa status`.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum OutputState {
    /// Open and playing (silence when idle).
    #[default]
    Working,
    /// Failed at `since`, with `reason`; being reopened.
    Failed {
        since: DateTime<Utc>,
        reason: String,
        /// Reopen tries that failed so far.
        tries: u32,
        /// The monotonic time the audio thread last looked at the clock for a try or a
        /// due item: whoever drives a manual clock waits for it to catch up.
        checked_at: Duration,
    },
}

/// Identifies one planned playback, chosen by the caller (the station's ledger id).
pub type RequestId = u64;

/// How the player fades, judges silence and renders.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayerConfig {
    /// Fade-out length of a pre-emption.
    pub fade: Duration,
    /// RMS level under which audio counts as silence.
    pub silence_threshold_dbfs: f32,
    /// A silent stretch this long (or an item silent throughout) flags the proof `silent`.
    pub silence_min: Duration,
    /// Frames rendered per block. Smaller reacts faster to pre-emption; a start lands on
    /// its exact frame regardless.
    pub block_frames: usize,
}

impl Default for PlayerConfig {
    fn default() -> Self {
        Self {
            fade: Duration::from_millis(300),
            silence_threshold_dbfs: -50.0,
            silence_min: Duration::from_secs(5),
            block_frames: 1024,
        }
    }
}

/// Why an item did not play to its end.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum PlayError {
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Sink(#[from] SinkError),
    #[error("request {id} was never prepared; call prepare before start_at")]
    NotPrepared { id: RequestId },
    #[error("request {id} is already prepared or playing; give each playback its own id")]
    Duplicate { id: RequestId },
    #[error("request {id} was stopped before it started")]
    Stopped { id: RequestId },
}

/// What the player reports, each tagged with the request id.
#[derive(Debug, Clone, PartialEq)]
pub enum PlayerEvent {
    /// Opened and first buffers decoded; ready to start on time.
    Prepared {
        id: RequestId,
    },
    /// The instant its first sample reaches the speaker.
    Started {
        id: RequestId,
        at: DateTime<Utc>,
    },
    Finished {
        id: RequestId,
        proof: ProofOfPlay,
    },
    /// Faded out (or stopped) after `played`.
    Preempted {
        id: RequestId,
        played: Duration,
        proof: ProofOfPlay,
    },
    Failed {
        id: RequestId,
        reason: PlayError,
        proof: Option<ProofOfPlay>,
    },
}

/// The event channel plus the set of ids not yet ended, so a reused id is refused at once.
#[derive(Clone)]
struct Events {
    tx: UnboundedSender<PlayerEvent>,
    live: Arc<Mutex<HashSet<RequestId>>>,
}

impl Events {
    fn live(&self) -> MutexGuard<'_, HashSet<RequestId>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn send(&self, event: PlayerEvent) {
        match &event {
            PlayerEvent::Finished { id, .. }
            | PlayerEvent::Preempted { id, .. }
            | PlayerEvent::Failed { id, .. } => {
                self.live().remove(id);
            }
            PlayerEvent::Prepared { .. } | PlayerEvent::Started { .. } => {}
        }
        let _ = self.tx.send(event);
    }
}

enum Cmd {
    Reopened(Result<Box<dyn Sink>, SinkError>),
    Preparing(RequestId),
    Loaded(RequestId, Option<Box<dyn Feed>>),
    StartAt(RequestId, DateTime<Utc>),
    Preempt(RequestId),
    Stop,
    Shutdown,
}

/// Handle to the audio thread. Dropping it stops the thread after the block in flight.
pub struct Player {
    tx: Sender<Cmd>,
    events: Events,
    format: AudioFormat,
    thread: Option<JoinHandle<()>>,
    output: tokio::sync::watch::Receiver<OutputState>,
    beat: Arc<AtomicU64>,
    paused: Arc<AtomicBool>,
}

impl Player {
    /// Starts the audio thread on `sink`; events arrive on the returned receiver.
    pub fn spawn(
        sink: Box<dyn Sink>,
        clock: SharedClock,
        config: PlayerConfig,
    ) -> (Player, UnboundedReceiver<PlayerEvent>) {
        Self::spawn_reopening(sink, None, clock, config)
    }

    /// Like [`Player::spawn`]; after a sink error the sink is closed and `reopen` called
    /// (on a helper thread, with [`reopen_backoff`]) until it gives a sink of the same
    /// format. Without `reopen` a failed sink stays closed and every later item fails.
    pub fn spawn_reopening(
        sink: Box<dyn Sink>,
        reopen: Option<Reopen>,
        clock: SharedClock,
        config: PlayerConfig,
    ) -> (Player, UnboundedReceiver<PlayerEvent>) {
        let (tx, rx) = mpsc::channel();
        let (events_tx, events_rx) = unbounded_channel();
        let events = Events { tx: events_tx, live: Arc::new(Mutex::new(HashSet::new())) };
        let format = sink.format();
        let (output_tx, output) = tokio::sync::watch::channel(OutputState::Working);
        let engine = Engine::new(sink, clock, config, events.clone());
        let beat = Arc::new(AtomicU64::new(0));
        let paused = Arc::new(AtomicBool::new(false));
        let engine = Engine {
            reopen: reopen.map(|r| Arc::new(Mutex::new(r))),
            cmd_tx: Some(tx.clone()),
            output: output_tx,
            beat: beat.clone(),
            paused_flag: paused.clone(),
            ..engine
        };
        let thread = std::thread::Builder::new()
            .name("loa-audio".into())
            .spawn(move || engine.run(rx))
            .map_err(|e| tracing::error!("cannot start the audio thread: {e}"))
            .ok();
        (Player { tx, events, format, thread, output, beat, paused }, events_rx)
    }

    /// Bumped by the audio thread each block it renders and each time it wakes while
    /// paused: a watchdog that sees it stop knows the thread is stuck.
    pub fn beat(&self) -> Arc<AtomicU64> {
        self.beat.clone()
    }

    /// Whether the thread has paused the sink (nothing playing or due soon).
    pub fn is_paused(&self) -> bool {
        self.paused.load(Ordering::Relaxed)
    }

    /// Follows the sound output's state (failed since when and why, or working).
    pub fn output(&self) -> tokio::sync::watch::Receiver<OutputState> {
        self.output.clone()
    }

    /// The rate and channels everything is converted to.
    pub fn format(&self) -> AudioFormat {
        self.format
    }

    /// Opens `path` and decodes its first buffers on a helper thread, then reports
    /// `Prepared` (or `Failed`). `gain_db` is applied to every sample.
    pub fn prepare(&self, id: RequestId, path: PathBuf, gain_db: f32) {
        if !self.events.live().insert(id) {
            // Reported directly: the live item keeps its id and its one final event.
            let _ = self.events.tx.send(PlayerEvent::Failed {
                id,
                reason: PlayError::Duplicate { id },
                proof: None,
            });
            return;
        }
        if self.tx.send(Cmd::Preparing(id)).is_err() {
            self.events.send(PlayerEvent::Failed {
                id,
                reason: PlayError::Stopped { id },
                proof: None,
            });
            return;
        }
        let tx = self.tx.clone();
        let events = self.events.clone();
        let format = self.format;
        let spawned =
            std::thread::Builder::new().name(format!("loa-prepare-{id}")).spawn(move || {
                match Source::open(&path, format, gain_db) {
                    Ok(source) => {
                        let _ = tx.send(Cmd::Loaded(id, Some(Box::new(source) as Box<dyn Feed>)));
                        events.send(PlayerEvent::Prepared { id });
                    }
                    Err(e) => {
                        tracing::warn!(id, "cannot prepare: {e}");
                        let _ = tx.send(Cmd::Loaded(id, None));
                        events.send(PlayerEvent::Failed {
                            id,
                            reason: PlayError::Decode(e),
                            proof: None,
                        });
                    }
                }
            });
        if let Err(e) = spawned {
            let _ = self.tx.send(Cmd::Loaded(id, None));
            self.events.send(PlayerEvent::Failed {
                id,
                reason: PlayError::Sink(SinkError::Device {
                    detail: format!("cannot start a decoding thread: {e}"),
                }),
                proof: None,
            });
        }
    }

    /// Hands the player a feed that is ready now (a relayed stream, a live broadcast):
    /// reported `Prepared` at once, then started with [`Player::start_at`] like a file.
    pub fn prepare_feed(&self, id: RequestId, feed: Box<dyn Feed>) {
        if !self.events.live().insert(id) {
            let _ = self.events.tx.send(PlayerEvent::Failed {
                id,
                reason: PlayError::Duplicate { id },
                proof: None,
            });
            return;
        }
        if self.tx.send(Cmd::Preparing(id)).is_err()
            || self.tx.send(Cmd::Loaded(id, Some(feed))).is_err()
        {
            self.events.send(PlayerEvent::Failed {
                id,
                reason: PlayError::Stopped { id },
                proof: None,
            });
            return;
        }
        self.events.send(PlayerEvent::Prepared { id });
    }

    /// Starts a prepared item so its first sample reaches the speaker at `at` (at once if
    /// `at` has passed).
    pub fn start_at(&self, id: RequestId, at: DateTime<Utc>) {
        let _ = self.tx.send(Cmd::StartAt(id, at));
    }

    /// Fades the item out over the configured fade; an item not yet started is dropped.
    pub fn preempt(&self, id: RequestId) {
        let _ = self.tx.send(Cmd::Preempt(id));
    }

    /// Cuts everything now: playing items end `Preempted`, waiting ones `Failed`.
    pub fn stop(&self) {
        let _ = self.tx.send(Cmd::Stop);
    }
}

impl Player {
    /// Stops the thread and waits for it, so the sink has flushed (WAV header written,
    /// sound card drained). Do not call with a manual clock nobody advances: the thread may
    /// be waiting inside the sink for time to pass.
    pub fn shutdown(mut self) {
        let _ = self.tx.send(Cmd::Shutdown);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Player {
    fn drop(&mut self) {
        let _ = self.tx.send(Cmd::Shutdown);
        // Not joined: with a manual clock that no test advances any more, the thread waits
        // inside the sink; it exits at its next block.
        drop(self.thread.take());
    }
}

/// A test hook, compiled into debug builds only: while the file named by
/// `LOA_TEST_FREEZE_AUDIO` exists, the audio thread stands still (no block, no command,
/// no beat), as a player stuck in a driver would. The watchdog test freezes a real
/// station with it.
#[cfg(debug_assertions)]
fn freeze_hook() {
    static PATH: std::sync::OnceLock<Option<PathBuf>> = std::sync::OnceLock::new();
    let Some(path) =
        PATH.get_or_init(|| std::env::var_os("LOA_TEST_FREEZE_AUDIO").map(PathBuf::from))
    else {
        return;
    };
    if path.exists() {
        tracing::warn!("audio thread frozen by the test hook ({})", path.display());
        while path.exists() {
            std::thread::sleep(Duration::from_millis(20));
        }
        tracing::warn!("audio thread released by the test hook");
    }
}

#[cfg(not(debug_assertions))]
fn freeze_hook() {}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cancel {
    Preempt,
    Stop,
}

enum Waiting {
    /// `cancelled`: pre-empted or stopped before its load landed; ends when it lands.
    Loading {
        start: Option<DateTime<Utc>>,
        cancelled: Option<Cancel>,
    },
    Ready {
        source: Box<dyn Feed>,
        start: Option<DateTime<Utc>>,
    },
}

struct Playing {
    id: RequestId,
    source: Box<dyn Feed>,
    proof: ProofAcc,
    /// Frames left of the fade-out and its total, once pre-empted.
    fade: Option<(u64, u64)>,
    /// Frame within the next block where it begins (non-zero only in its first block).
    offset: usize,
}

/// A failed sink being reopened.
struct Broken {
    since: DateTime<Utc>,
    error: SinkError,
    /// Monotonic time of the next try.
    next_try: Duration,
    /// Tries that failed so far.
    tries: u32,
    /// A try is running on the helper thread.
    in_flight: bool,
    /// A reopened sink of another format was refused (logged once).
    wrong_format: bool,
}

struct Engine {
    /// `None` after a failure, until reopened.
    sink: Option<Box<dyn Sink>>,
    clock: SharedClock,
    config: PlayerConfig,
    events: Events,
    format: AudioFormat,
    waiting: HashMap<RequestId, Waiting>,
    playing: Vec<Playing>,
    broken: Option<Broken>,
    reopen: Option<Arc<Mutex<Reopen>>>,
    /// For the reopen helper to hand its result back.
    cmd_tx: Option<Sender<Cmd>>,
    output: tokio::sync::watch::Sender<OutputState>,
    mix: Vec<f32>,
    /// Each item is limited on its own; this one holds the sum (a fading item under the
    /// one that pre-empted it) under the same ceiling.
    bus: Limiter,
    scratch: Vec<f32>,
    beat: Arc<AtomicU64>,
    /// Blocks rendered in a row with nothing playing.
    silent_blocks: u32,
    /// The sink is paused (see [`IDLE_LEAD`]); `None` when it refused to pause.
    paused: Option<bool>,
    paused_flag: Arc<AtomicBool>,
}

impl Engine {
    fn new(sink: Box<dyn Sink>, clock: SharedClock, config: PlayerConfig, events: Events) -> Self {
        let format = sink.format();
        Self {
            sink: Some(sink),
            clock,
            config,
            events,
            format,
            waiting: HashMap::new(),
            playing: Vec::new(),
            broken: None,
            reopen: None,
            cmd_tx: None,
            output: tokio::sync::watch::Sender::new(OutputState::Working),
            mix: Vec::new(),
            bus: Limiter::new(PEAK_CEILING_DBFS, format.rate, format.channels),
            scratch: Vec::new(),
            beat: Arc::new(AtomicU64::new(0)),
            silent_blocks: 0,
            paused: Some(false),
            paused_flag: Arc::new(AtomicBool::new(false)),
        }
    }

    fn emit(&self, event: PlayerEvent) {
        self.events.send(event);
    }

    fn run(mut self, rx: Receiver<Cmd>) {
        let name = self.sink.as_ref().map(|s| s.name().to_string()).unwrap_or_default();
        tracing::debug!(sink = %name, rate = self.format.rate, "audio thread running");
        loop {
            self.beat.fetch_add(1, Ordering::Relaxed);
            freeze_hook();
            if self.broken.is_some() {
                self.while_broken();
            }
            if let Some(wait) = self.idle_wait() {
                match rx.recv_timeout(wait) {
                    Ok(cmd) => {
                        if !self.handle(cmd) {
                            break;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => self.check_paused(),
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                continue;
            }
            self.wake();
            // An unpaced or broken sink has no stream to keep alive: wait for work, or for
            // the next start to come within a block (rendering hours of silence to an
            // unpaced sink would only burn CPU).
            let next_start = self
                .waiting
                .values()
                .filter_map(|w| match w {
                    Waiting::Ready { start, .. } => *start,
                    Waiting::Loading { .. } => None,
                })
                .min();
            let unpaced_idle =
                self.playing.is_empty() && !self.sink.as_ref().is_some_and(|s| s.paced());
            let lead =
                after_frames(self.clock.now(), self.config.block_frames as u64, self.format.rate);
            let wait = if self.broken.is_some() {
                Some(Some(BROKEN_POLL))
            } else if unpaced_idle && next_start.is_none() {
                Some(Some(IDLE_POLL))
            } else if unpaced_idle && next_start.is_some_and(|t| t > lead) {
                Some(Some(UNPACED_POLL))
            } else {
                None
            };
            if let Some(timeout) = wait {
                let cmd = match timeout {
                    None::<Duration> => {
                        rx.recv().map_err(|RecvError| RecvTimeoutError::Disconnected)
                    }
                    Some(timeout) => rx.recv_timeout(timeout),
                };
                match cmd {
                    Ok(cmd) => {
                        if !self.handle(cmd) {
                            break;
                        }
                    }
                    Err(RecvTimeoutError::Timeout) => continue,
                    Err(RecvTimeoutError::Disconnected) => break,
                }
                if timeout.is_some() {
                    continue;
                }
            }
            let mut open = true;
            loop {
                match rx.try_recv() {
                    Ok(cmd) => {
                        if !self.handle(cmd) {
                            open = false;
                            break;
                        }
                    }
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        open = false;
                        break;
                    }
                }
            }
            if !open {
                break;
            }
            if self.broken.is_none() {
                self.render_block();
            }
        }
        if let Some(Err(e)) = self.sink.as_mut().map(|s| s.flush()) {
            tracing::warn!("sink flush on shutdown: {e}");
        }
        tracing::debug!("audio thread stopped");
    }

    /// How long to wait paused, or `None` to render a block. Pauses (once enough silence
    /// has been written) when nothing plays and nothing is due within [`IDLE_LEAD`].
    fn idle_wait(&mut self) -> Option<Duration> {
        if self.broken.is_some() || !self.playing.is_empty() || self.paused.is_none() {
            return None;
        }
        let sink = self.sink.as_mut()?;
        if !sink.paced() || self.silent_blocks < IDLE_AFTER_BLOCKS {
            return None;
        }
        let now = self.clock.now();
        let mut until_next: Option<Duration> = None;
        for w in self.waiting.values() {
            let start = match w {
                Waiting::Ready { start, .. } | Waiting::Loading { start, .. } => *start,
            };
            // An item without a start may be told to start at any moment: stay awake.
            let at = start?;
            let left = (at - now).to_std().unwrap_or_default();
            until_next = Some(until_next.map_or(left, |u| u.min(left)));
        }
        let left = match until_next {
            Some(left) if left <= IDLE_LEAD => return None,
            Some(left) => left - IDLE_LEAD,
            None => IDLE_POLL,
        };
        if self.paused == Some(false) {
            if !sink.pause() {
                // This sink wants every frame (an air-check file): write silence as before.
                self.paused = None;
                return None;
            }
            tracing::debug!("nothing due soon: the sound output plays silence by itself");
            self.paused = Some(true);
            self.paused_flag.store(true, Ordering::Relaxed);
        }
        Some(left.min(IDLE_POLL))
    }

    /// Ends a pause before rendering.
    fn wake(&mut self) {
        if self.paused == Some(true) {
            self.paused = Some(false);
            self.paused_flag.store(false, Ordering::Relaxed);
            if let Some(sink) = self.sink.as_mut() {
                sink.resume();
            }
            tracing::debug!("writing to the sound output again");
        }
    }

    /// While paused: a sink that failed meanwhile is handled as a failed write.
    fn check_paused(&mut self) {
        if self.paused != Some(true) {
            return;
        }
        if let Some(Err(e)) = self.sink.as_mut().map(|s| s.check()) {
            self.paused = Some(false);
            self.paused_flag.store(false, Ordering::Relaxed);
            self.sink_failed(e);
        }
    }

    /// Applies one command; false means shut down.
    fn handle(&mut self, cmd: Cmd) -> bool {
        match cmd {
            Cmd::Reopened(result) => self.reopened(result),
            Cmd::Preparing(id) => {
                if self.waiting.contains_key(&id) || self.playing.iter().any(|p| p.id == id) {
                    // The handle refuses reused ids; this is a last defence. The live item
                    // keeps its id, so this is not its final event.
                    let _ = self.events.tx.send(PlayerEvent::Failed {
                        id,
                        reason: PlayError::Duplicate { id },
                        proof: None,
                    });
                } else {
                    self.waiting.insert(id, Waiting::Loading { start: None, cancelled: None });
                }
            }
            Cmd::Loaded(id, source) => match (self.waiting.remove(&id), source) {
                // A failed load was reported by the preparing thread already.
                (Some(Waiting::Loading { .. }), None) | (None, _) => {}
                (Some(Waiting::Loading { cancelled: Some(Cancel::Preempt), .. }), Some(_)) => {
                    self.emit(PlayerEvent::Preempted {
                        id,
                        played: Duration::ZERO,
                        proof: ProofAcc::new(&self.config, self.format).finish(None),
                    });
                }
                (Some(Waiting::Loading { cancelled: Some(Cancel::Stop), .. }), Some(_)) => {
                    self.emit(PlayerEvent::Failed {
                        id,
                        reason: PlayError::Stopped { id },
                        proof: None,
                    });
                }
                (Some(Waiting::Loading { start, .. }), Some(source)) => {
                    // With the sink down it waits too: it fails only if its start comes
                    // before the sink is back.
                    self.waiting.insert(id, Waiting::Ready { source, start });
                }
                // Not ours to replace (cannot happen through the handle).
                (Some(other @ Waiting::Ready { .. }), _) => {
                    self.waiting.insert(id, other);
                }
            },
            Cmd::StartAt(id, at) => match self.waiting.get_mut(&id) {
                Some(Waiting::Loading { start, .. }) | Some(Waiting::Ready { start, .. }) => {
                    *start = Some(at);
                }
                None if self.playing.iter().any(|p| p.id == id) => {
                    tracing::warn!(id, "start_at for an item already playing; ignored");
                }
                None => {
                    tracing::warn!(id, "start_at for an item that is not prepared");
                    self.emit(PlayerEvent::Failed {
                        id,
                        reason: PlayError::NotPrepared { id },
                        proof: None,
                    });
                }
            },
            Cmd::Preempt(id) => {
                let fade = (self.config.fade.as_secs_f64() * f64::from(self.format.rate)) as u64;
                if let Some(p) = self.playing.iter_mut().find(|p| p.id == id) {
                    if p.fade.is_none() {
                        p.fade = Some((fade, fade.max(1)));
                    }
                } else {
                    match self.waiting.remove(&id) {
                        Some(Waiting::Loading { start, .. }) => {
                            self.waiting.insert(
                                id,
                                Waiting::Loading { start, cancelled: Some(Cancel::Preempt) },
                            );
                        }
                        Some(Waiting::Ready { .. }) => {
                            self.emit(PlayerEvent::Preempted {
                                id,
                                played: Duration::ZERO,
                                proof: ProofAcc::new(&self.config, self.format).finish(None),
                            });
                        }
                        None => tracing::debug!(id, "pre-empt for an unknown item; ignored"),
                    }
                }
            }
            Cmd::Stop => self.stop_all(None),
            Cmd::Shutdown => {
                self.stop_all(None);
                return false;
            }
        }
        true
    }

    /// Ends every item: playing ones as pre-empted (or failed on a sink error), waiting ones
    /// as failed.
    fn stop_all(&mut self, sink_error: Option<&SinkError>) {
        for p in std::mem::take(&mut self.playing) {
            let proof = p.proof.finish(Some(p.source.as_ref()));
            let event = match sink_error {
                Some(e) => PlayerEvent::Failed {
                    id: p.id,
                    reason: PlayError::Sink(e.clone()),
                    proof: Some(proof),
                },
                None => PlayerEvent::Preempted { id: p.id, played: proof.duration, proof },
            };
            self.emit(event);
        }
        let mut ids: Vec<RequestId> = self
            .waiting
            .iter()
            .filter(|(_, w)| matches!(w, Waiting::Ready { .. }))
            .map(|(id, _)| *id)
            .collect();
        ids.sort_unstable();
        for id in ids {
            self.waiting.remove(&id);
            let reason = match sink_error {
                Some(e) => PlayError::Sink(e.clone()),
                None => PlayError::Stopped { id },
            };
            self.emit(PlayerEvent::Failed { id, reason, proof: None });
        }
        // Items still loading end when their load lands.
        for w in self.waiting.values_mut() {
            if let Waiting::Loading { cancelled, .. } = w {
                *cancelled = Some(Cancel::Stop);
            }
        }
    }

    fn render_block(&mut self) {
        let channels = self.format.channels;
        let block = self.config.block_frames.max(1);
        let Some(t0) = self.sink.as_mut().map(|s| s.next_frame_at()) else { return };
        self.start_due(t0, block);
        if self.playing.is_empty() {
            self.silent_blocks = self.silent_blocks.saturating_add(1);
        } else {
            self.silent_blocks = 0;
        }

        self.mix.clear();
        self.mix.resize(block * channels, 0.0);
        let mut ended: Vec<(usize, Option<DecodeError>)> = Vec::new();
        for (index, p) in self.playing.iter_mut().enumerate() {
            let from = p.offset * channels;
            p.offset = 0;
            let mut want = block * channels - from;
            if let Some((left, _)) = p.fade {
                want = want.min(left as usize * channels);
            }
            self.scratch.clear();
            self.scratch.resize(want, 0.0);
            let got = match p.source.fill(&mut self.scratch) {
                Ok(frames) => frames,
                Err(e) => {
                    ended.push((index, Some(e)));
                    continue;
                }
            };
            let samples = &mut self.scratch[..got * channels];
            if let Some((left, total)) = p.fade.as_mut() {
                for frame in samples.chunks_exact_mut(channels) {
                    let g = *left as f32 / *total as f32;
                    for s in frame {
                        *s *= g;
                    }
                    *left = left.saturating_sub(1);
                }
            }
            p.proof.add(samples, channels);
            for (m, s) in self.mix[from..from + samples.len()].iter_mut().zip(samples.iter()) {
                *m += *s;
            }
            let faded_out = matches!(p.fade, Some((0, _)));
            if got * channels < want || faded_out {
                ended.push((index, None));
            }
        }
        self.bus.process(&mut self.mix);
        let write = match self.sink.as_mut() {
            Some(sink) => sink.write(&self.mix),
            None => Ok(()),
        };

        for (index, error) in ended.into_iter().rev() {
            let p = self.playing.remove(index);
            let proof = p.proof.finish(Some(p.source.as_ref()));
            let event = match (error, p.fade) {
                (Some(e), _) => PlayerEvent::Failed {
                    id: p.id,
                    reason: PlayError::Decode(e),
                    proof: Some(proof),
                },
                (None, Some(_)) => {
                    PlayerEvent::Preempted { id: p.id, played: proof.duration, proof }
                }
                (None, None) => PlayerEvent::Finished { id: p.id, proof },
            };
            self.emit(event);
        }
        if let Err(e) = write {
            self.sink_failed(e);
        }
    }

    /// Moves items due within this block (or overdue) from waiting to playing, at their
    /// exact frame.
    fn start_due(&mut self, t0: DateTime<Utc>, block: usize) {
        let rate = i128::from(self.format.rate);
        let mut due: Vec<(RequestId, usize)> = Vec::new();
        for (id, w) in &self.waiting {
            if let Waiting::Ready { start: Some(at), .. } = w {
                let ns = (*at - t0).num_nanoseconds().map(i128::from).unwrap_or(i128::MAX);
                // Nearest frame: round(ns · rate / 1e9).
                let frame = if ns >= 0 {
                    (ns * rate + 500_000_000) / 1_000_000_000
                } else {
                    (ns * rate - 500_000_000) / 1_000_000_000
                };
                if frame < block as i128 {
                    due.push((*id, frame.max(0) as usize));
                }
            }
        }
        due.sort_unstable();
        for (id, offset) in due {
            if let Some(Waiting::Ready { mut source, .. }) = self.waiting.remove(&id) {
                let at = after_frames(t0, offset as u64, self.format.rate);
                source.started(at);
                tracing::debug!(id, %at, now = %self.clock.now(), "item starts");
                self.emit(PlayerEvent::Started { id, at });
                self.playing.push(Playing {
                    id,
                    source,
                    proof: ProofAcc::new(&self.config, self.format),
                    fade: None,
                    offset,
                });
            }
        }
    }
}
