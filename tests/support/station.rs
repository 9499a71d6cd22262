//! The station daemon in process: a temporary station directory, generated audio, a
//! ManualClock and a clocked sink the test can see catching up with the clock.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use loa::audio::sinks::{ClockedSink, Recording};
use loa::audio::{AudioFormat, Sink, SinkError};
use loa::clock::{Clock, ManualClock, SharedClock};
use loa::station::ledger::{Filter, Ledger, Record};
use loa::station::{Station, StationCommand, StationConfig, StationHandle, StationStatus};

use super::wait;

pub const RATE: u32 = 8_000;
const BUFFER_FRAMES: usize = 512;

/// Local time in Asia/Ho_Chi_Minh on 2026-12-01 (a Tuesday).
pub fn local(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    chrono_tz::Asia::Ho_Chi_Minh
        .with_ymd_and_hms(2026, 12, 1, h, m, s)
        .single()
        .expect("valid local time")
        .to_utc()
}

/// Writes a mono 8 kHz cosine WAV (first sample at full swing) of `seconds` at half scale (-6 dBFS peak).
pub fn write_tone(path: &Path, seconds: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: RATE,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("create wav");
    let n = (seconds * f64::from(RATE)) as usize;
    for i in 0..n {
        let s = (i as f64 * 440.0 * std::f64::consts::TAU / f64::from(RATE)).cos() * 0.5;
        w.write_sample((s * f64::from(i16::MAX)) as i16).expect("sample");
    }
    w.finalize().expect("finalize wav");
}

/// A clocked sink that publishes the monotonic instant its current write waits for, so
/// the test knows when the audio thread has caught up with the clock (in monotonic time:
/// a stepped wall clock must not make it look behind or ahead).
struct TapSink {
    inner: ClockedSink,
    clock: SharedClock,
    /// Monotonic time the next frame plays at.
    last_at: Duration,
    writing: Arc<Mutex<Duration>>,
}

impl Sink for TapSink {
    fn name(&self) -> &str {
        "clocked"
    }
    fn format(&self) -> AudioFormat {
        self.inner.format()
    }
    fn next_frame_at(&mut self) -> DateTime<Utc> {
        let at = self.inner.next_frame_at();
        let ahead = (at - self.clock.now()).to_std().unwrap_or_default();
        self.last_at = self.clock.monotonic() + ahead;
        at
    }
    fn write(&mut self, samples: &[f32]) -> Result<(), SinkError> {
        // The clocked sink blocks until all but its buffer of these frames has played.
        let frames = (samples.len() / self.inner.format().channels) as u64;
        let wait = frames.saturating_sub(BUFFER_FRAMES as u64) * 1_000_000 / u64::from(RATE);
        *self.writing.lock().unwrap_or_else(|p| p.into_inner()) =
            self.last_at + Duration::from_micros(wait);
        self.inner.write(samples)
    }
}

/// A sink whose writes fail while `broken` is set (a sound card dropping off the bus).
struct FlakySink {
    inner: TapSink,
    broken: Arc<std::sync::atomic::AtomicBool>,
}

impl Sink for FlakySink {
    fn name(&self) -> &str {
        "flaky"
    }
    fn format(&self) -> AudioFormat {
        self.inner.format()
    }
    fn next_frame_at(&mut self) -> DateTime<Utc> {
        self.inner.next_frame_at()
    }
    fn write(&mut self, samples: &[f32]) -> Result<(), SinkError> {
        if self.broken.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(SinkError::Device { detail: "snd_pcm_writei: Input/output error".into() });
        }
        self.inner.write(samples)
    }
}

/// Switches for [`Fixture::start_flaky`].
#[derive(Clone, Default)]
pub struct Flaky {
    /// Writes fail while set.
    pub broken: Arc<std::sync::atomic::AtomicBool>,
    /// Reopening succeeds while set.
    pub available: Arc<std::sync::atomic::AtomicBool>,
    /// Reopen tries so far.
    pub tries: Arc<std::sync::atomic::AtomicUsize>,
}

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub clock: Arc<ManualClock>,
    pub config: StationConfig,
    pub recording: Option<Recording>,
    writing: Arc<Mutex<Duration>>,
    pub handle: Option<StationHandle>,
    status: Option<tokio::sync::watch::Receiver<StationStatus>>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Fixture {
    /// A station directory with `audio/` and `schedules/local/`, the clock at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir_all(dir.path().join("audio")).expect("audio dir");
        std::fs::create_dir_all(dir.path().join("schedules/local")).expect("local dir");
        let mut config = StationConfig::standalone("xa-thu", dir.path().join("data"));
        config.provincial_schedule = Some(dir.path().join("schedules/provincial.toml"));
        config.local_schedules = Some(dir.path().join("schedules/local"));
        Self {
            dir,
            clock: ManualClock::new(start),
            config,
            recording: None,
            writing: Arc::new(Mutex::new(Duration::ZERO)),
            handle: None,
            status: None,
            shutdown: None,
            task: None,
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    pub fn tone(&self, name: &str, seconds: f64) -> PathBuf {
        let p = self.path(&format!("audio/{name}"));
        write_tone(&p, seconds);
        p
    }

    /// Writes a schedule file (relative to the station directory).
    pub fn schedule(&self, rel: &str, text: &str) {
        std::fs::write(self.path(rel), text).expect("write schedule");
    }

    /// Starts the daemon on a recording clocked sink.
    pub fn start(&mut self) {
        self.start_with(|_, _| {});
    }

    /// Like [`Fixture::start`]; `wire` attaches more parts to the daemon before it runs
    /// (the bulletin receiver follows its status and records).
    pub fn start_with(&mut self, wire: impl FnOnce(&mut Station, &StationHandle)) {
        let format = AudioFormat { rate: RATE, channels: 1 };
        let shared: SharedClock = self.clock.clone();
        let (sink, recording) = ClockedSink::new(format, shared.clone(), BUFFER_FRAMES, true);
        let sink = sink.with_resync_after(Duration::from_secs(1));
        self.recording = recording;
        *self.writing.lock().unwrap_or_else(|p| p.into_inner()) = self.clock.monotonic();
        let tap = TapSink {
            inner: sink,
            clock: shared.clone(),
            last_at: self.clock.monotonic(),
            writing: self.writing.clone(),
        };
        let (mut station, handle) =
            Station::with_sink(self.config.clone(), shared, Box::new(tap)).expect("station starts");
        wire(&mut station, &handle);
        self.run_station(station, handle);
    }

    /// Like [`Fixture::start`], on a sink that fails and comes back as `flaky` says; the
    /// player reopens it with a fresh clocked sink.
    pub fn start_flaky(&mut self, flaky: &Flaky) {
        let format = AudioFormat { rate: RATE, channels: 1 };
        let shared: SharedClock = self.clock.clone();
        let writing = self.writing.clone();
        let make = {
            let shared = shared.clone();
            let writing = writing.clone();
            let broken = flaky.broken.clone();
            move || {
                let (sink, _) = ClockedSink::new(format, shared.clone(), BUFFER_FRAMES, false);
                let sink = sink.with_resync_after(Duration::from_secs(1));
                let tap = TapSink {
                    inner: sink,
                    clock: shared.clone(),
                    last_at: shared.monotonic(),
                    writing: writing.clone(),
                };
                FlakySink { inner: tap, broken: broken.clone() }
            }
        };
        *self.writing.lock().unwrap_or_else(|p| p.into_inner()) = self.clock.monotonic();
        let first = make.clone()();
        let f = flaky.clone();
        let reopen: loa::audio::player::Reopen = Box::new(move || {
            f.tries.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            if f.available.load(std::sync::atomic::Ordering::SeqCst) {
                Ok(Box::new(make()) as Box<dyn Sink>)
            } else {
                Err(SinkError::Device { detail: "no such device".into() })
            }
        });
        let (station, handle) = Station::with_sink_reopening(
            self.config.clone(),
            shared,
            Box::new(first),
            Some(reopen),
        )
        .expect("station starts");
        self.run_station(station, handle);
    }

    fn run_station(&mut self, station: Station, handle: StationHandle) {
        self.status = Some(station.status());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        self.task = Some(tokio::spawn(async move {
            station
                .run(async {
                    let _ = rx.await;
                })
                .await
                .expect("station runs");
        }));
        self.shutdown = Some(tx);
        self.handle = Some(handle);
    }

    /// Waits (real time, bounded) until the audio thread has rendered past the clock and
    /// the daemon has made every decision due by now, with no item still decoding.
    async fn caught_up(&self) {
        wait::until_async("the audio thread to follow the clock", Duration::from_secs(10), || async move {
            let writing = *self.writing.lock().unwrap_or_else(|p| p.into_inner());
            let now = self.clock.monotonic();
            // With the sink down nothing renders: the daemon's decisions are enough.
            if (writing > now || self.output_down().await) && self.settled().await {
                Ok(())
            } else {
                Err(format!("the audio thread stopped following the clock: writing {writing:?}, now {now:?}"))
            }
        })
        .await
    }

    async fn output_down(&self) -> bool {
        let Some(handle) = &self.handle else { return false };
        let (tx, rx) = tokio::sync::oneshot::channel();
        if !handle.send(StationCommand::Status(tx)) {
            return false;
        }
        // Down, and the audio thread has looked at the clock since it last moved (no try
        // running): every try and failure due by now has happened.
        rx.await.is_ok_and(|s| match s.output {
            loa::audio::player::OutputState::Failed { checked_at, .. } => {
                checked_at >= self.clock.monotonic()
            }
            loa::audio::player::OutputState::Working => false,
        })
    }

    /// Whether the daemon, after handling every report the player sent so far, has made
    /// every decision due by now and has nothing still decoding.
    async fn settled(&self) -> bool {
        let Some(handle) = &self.handle else { return true };
        let (tx, rx) = tokio::sync::oneshot::channel();
        if !handle.send(StationCommand::Status(tx)) {
            return true;
        }
        rx.await.map_or(true, |s| s.preparing == 0)
    }

    /// Moves the clock to `until` in 50 ms steps, letting the daemon and the audio thread
    /// follow each step.
    pub async fn run_until(&self, until: DateTime<Utc>) {
        let step = chrono::Duration::milliseconds(50);
        while self.clock.now() < until {
            let next = (self.clock.now() + step).min(until);
            self.clock.set(next);
            self.caught_up().await;
            for _ in 0..4 {
                tokio::task::yield_now().await;
            }
        }
    }

    /// Moves the clock in 50 ms steps, letting the daemon follow each, until `check` is
    /// done (bounded in real time: 20 s); its value.
    pub async fn step_until<C: wait::Check, F: std::future::Future<Output = C>>(
        &self,
        what: impl std::fmt::Display,
        mut check: impl FnMut() -> F,
    ) -> C::Value {
        wait::until_async(what, Duration::from_secs(20), || {
            let checked = check();
            async move {
                let done = checked.await.done();
                if done.is_err() {
                    self.run_until(self.clock.now() + chrono::Duration::milliseconds(50)).await;
                }
                done
            }
        })
        .await
    }

    /// Steps the wall clock by `by` (monotonic time untouched, as NTP does), then lets
    /// 100 ms pass so the daemon and the audio thread see it.
    pub async fn step(&self, by: chrono::Duration) {
        self.clock.step(by);
        let to = self.clock.now() + chrono::Duration::milliseconds(100);
        self.run_until(to).await;
    }

    /// The daemon's status once it has handled everything queued so far.
    pub async fn status(&self) -> StationStatus {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let handle = self.handle.as_ref().expect("station running");
        assert!(handle.send(StationCommand::Status(tx)), "station stopped");
        rx.await.expect("status")
    }

    /// Jumps the clock (nothing may be due in between).
    pub async fn jump_to(&self, to: DateTime<Utc>) {
        self.clock.set(to);
        self.caught_up().await;
    }

    pub fn ledger(&self) -> Ledger {
        Ledger::open_existing(&self.config.ledger_path()).expect("ledger")
    }

    pub fn records(&self) -> Vec<Record> {
        self.ledger().query(&Filter::default()).expect("query")
    }

    /// Polls the ledger until it holds `n` records (bounded real-time wait).
    pub async fn wait_records(&self, n: usize) -> Vec<Record> {
        wait::until_async(format!("{n} records"), Duration::from_secs(10), || async move {
            let records = self.records();
            if records.len() >= n {
                return Ok(records);
            }
            Err(format!(
                "expected {n} records, have {}: {:#?}",
                records.len(),
                records
                    .iter()
                    .map(|r| (&r.entry.item_id, r.entry.outcome, &r.entry.reason))
                    .collect::<Vec<_>>()
            ))
        })
        .await
    }

    /// Stops the daemon as a crash or power cut would: no fade-out, no shutdown record.
    pub async fn kill(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        // Dropped only now: a dropped sender would have asked for an orderly stop.
        self.shutdown = None;
        self.handle = None;
    }

    /// Asks the daemon to stop (as SIGTERM would) and waits for it.
    pub async fn stop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            // The fade-out is paced by the clock: keep it moving while the daemon stops.
            let mut task = task;
            loop {
                tokio::select! {
                    r = &mut task => { r.expect("station task"); return; }
                    () = tokio::time::sleep(Duration::from_millis(1)) => {
                        self.clock.advance(Duration::from_millis(20));
                    }
                }
            }
        }
    }
}

/// The first frame of the recording whose sample is not silent, at or after `from`.
pub fn first_sound(recording: &Recording, from: u64) -> Option<u64> {
    let samples = recording.samples();
    let ch = recording.format().channels;
    (from as usize..samples.len() / ch)
        .find(|&f| samples[f * ch..(f + 1) * ch].iter().any(|s| s.abs() > 1e-4))
        .map(|f| f as u64)
}
