//! The daemon's IO shell around [`Core`]: it feeds the core the time (from the injected
//! clock), the schedules' occurrences, the player's reports and commands, and carries
//! out what the core decides — player calls, ledger records, state for crash recovery.
//!
//! Downtime and clock steps are accounted for in [`downtime`] (recovery on start-up, a
//! wall-clock step, both bounded); [`status`] is what the daemon publishes.
//!
//! Bulletins are not in the daemon's recovery: the emergency queue lives in memory, and
//! the bulletin receiver, which keeps each accepted bulletin's progress from the records
//! sent by [`Station::bulletin_records`], hands what was left unaired over again.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender, unbounded_channel};

use super::config::StationConfig;
use super::core::{Action, Bulletin, Core, Item, PlayoutEvent, Proof, audio_path};
mod streams;
use super::schedules::ScheduleSet;
use crate::audio::player::{OutputState, PlayError, Player, PlayerConfig, PlayerEvent, Reopen};
use crate::audio::sinks::{self, Sink, SinkOptions};
use crate::clock::{self, ClockStep, SharedClock, StepDetector};
use crate::protocol::RelayFacts;
use crate::schedule::{AudioRef, Layer, Priority};
use crate::station::ledger::{Appended, Entry, Ledger, LedgerError, Levels, state};

mod downtime;
mod status;

use downtime::not_running;
pub use downtime::{ACCOUNT_WINDOW, Accounted, STEP_SHOWN_FOR, SUMMARY_ITEM};
pub use status::{Liveness, NextPlay, StationStatus};

/// Added to the buffer when a relay connects early: time to connect and answer.
pub const RELAY_CONNECT_MARGIN: Duration = Duration::from_secs(1);
/// How often the schedules are polled and the alive mark is written.
pub const POLL_EVERY: Duration = Duration::from_secs(2);
/// How far ahead occurrences are expanded.
const LOOKAHEAD: chrono::Duration = chrono::Duration::hours(1);
/// Levels below this are stored as this (the ledger and JSON cannot hold -inf).
const FLOOR_DBFS: f64 = -200.0;
/// The longest the loop sleeps: a step is noticed within this.
const MAX_SLEEP: Duration = Duration::from_secs(1);

/// A station daemon failure that stops it from starting or running.
#[derive(Debug, thiserror::Error)]
pub enum StationError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error(
        "cannot open the {sink} sink: {detail} (check [audio] sink in the config; `loa audio devices` lists devices)"
    )]
    Sink { sink: String, detail: String },
    #[error("cannot create the data directory {path}: {source}")]
    DataDir {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

/// A bulletin to put on air ([`StationCommand::Bulletin`]).
#[derive(Debug, Clone)]
pub struct AirBulletin {
    pub id: String,
    pub title: String,
    pub audio: PathBuf,
    /// Extra plays after the first.
    pub repeat: u32,
    pub expires: Option<DateTime<Utc>>,
    pub gain_db: f32,
    /// From the end of one play to the start of the next.
    pub interval: Duration,
    /// An attention tone played once before the first play.
    pub tone: Option<PathBuf>,
    /// `Emergency` or `Priority` (a `Normal` one is played as `Priority`).
    pub priority: Priority,
}

/// What other parts of the station (the bulletin receiver, the sync) send the daemon.
#[derive(Debug)]
pub enum StationCommand {
    /// Play a bulletin now, pre-empting everything but another emergency.
    Emergency {
        id: String,
        title: String,
        audio: PathBuf,
        /// Extra plays after the first.
        repeat: u32,
        expires: Option<DateTime<Utc>>,
        gain_db: f32,
        /// From the end of one play to the start of the next.
        interval: Duration,
        /// An attention tone played once before the first play.
        tone: Option<PathBuf>,
    },
    /// Play a bulletin now at `priority`: [`Priority::Emergency`] as
    /// [`StationCommand::Emergency`]; [`Priority::Priority`] ahead of normal programmes
    /// (it pre-empts them) but behind emergencies (they pre-empt it).
    Bulletin(Box<AirBulletin>),
    /// Stop bulletin `id` where it plays or waits; no later repeat airs.
    CancelBulletin { id: String },
    /// Re-read the schedules now (e.g. after the sync dropped a new provincial file).
    Reload,
    /// Play this verified provincial schedule instead of the provincial file (the sync
    /// hands it over after checking its signature).
    Provincial(Box<crate::schedule::Schedule>),
    /// Play these verified schedules from central (provincial and district-assigned)
    /// instead of the provincial file; the local directory keeps playing beside them.
    Central(Vec<crate::schedule::Schedule>),
    /// Play a verified live broadcast now at its priority (`station::live`).
    Live(Box<crate::station::live::AirLive>),
    /// Write this record (a bulletin that can no longer air, decided outside the core:
    /// the receiver found it expired while the station was stopped).
    Record(Box<Entry>),
    /// Report the status once every player report and command queued before this one
    /// has been handled and everything due by now decided (heartbeats; tests).
    Status(tokio::sync::oneshot::Sender<StationStatus>),
}

/// Sends commands to a running daemon.
#[derive(Debug, Clone)]
pub struct StationHandle {
    tx: UnboundedSender<StationCommand>,
}

impl StationHandle {
    /// Returns false when the daemon has stopped.
    pub fn send(&self, command: StationCommand) -> bool {
        self.tx.send(command).is_ok()
    }
}

/// The station daemon.
pub struct Station {
    config: StationConfig,
    clock: SharedClock,
    ledger: Ledger,
    player: Player,
    events: UnboundedReceiver<PlayerEvent>,
    commands: UnboundedReceiver<StationCommand>,
    core: Core,
    schedules: ScheduleSet,
    /// Every occurrence planned before this is recorded or known to the core.
    horizon: DateTime<Utc>,
    /// Occurrences up to here have been handed to the core.
    expanded_until: DateTime<Utc>,
    /// Records the ledger refused (disk full…), retried each turn.
    unwritten: Vec<Entry>,
    last_alive: Option<DateTime<Utc>>,
    /// The previous run's horizon and last alive mark, kept until central's schedules
    /// arrive: they reach the daemon after start-up recovery, and what they planned
    /// while the station was down must still end in a record.
    recovered: Option<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    preparing: std::collections::HashSet<u64>,
    status: tokio::sync::watch::Sender<StationStatus>,
    /// Where each durable record of an emergency play goes (the bulletin receiver keeps
    /// every accepted bulletin's progress from them).
    bulletin_records: Option<UnboundedSender<Entry>>,
    steps: StepDetector,
    /// The latest step and the monotonic time it was seen.
    last_step: Option<(ClockStep, Duration)>,
    /// Monotonic time this run started.
    run_start: Duration,
    /// The previous run's horizon and alive mark, when this run's clock started before
    /// that horizon: downtime is accounted once the clock has passed it.
    prior: Option<(DateTime<Utc>, Option<DateTime<Utc>>)>,
    output: tokio::sync::watch::Receiver<OutputState>,
    /// Bumped every turn of the loop (the watchdog's proof that the scheduler runs).
    beat: std::sync::Arc<std::sync::atomic::AtomicU64>,
    /// The next play after now, recomputed when the schedules change or it has passed
    /// (and with none, at most once a minute): `(computed at, next)`.
    next: Option<(DateTime<Utc>, Option<NextPlay>)>,
    /// The client relayed streams are fetched with (made at the first relay).
    relay_http: Option<reqwest::Client>,
    /// Live broadcasts waiting for the core to prepare them, by item id.
    live_feeds: std::collections::HashMap<String, crate::audio::relay::RelayFeed>,
}

impl Station {
    /// Opens the sink named in the config and builds the daemon.
    pub fn from_config(
        config: StationConfig,
        clock: SharedClock,
    ) -> Result<(Self, StationHandle), StationError> {
        let options = SinkOptions {
            path: config.wav_path.clone(),
            clock: clock.clone(),
            ..SinkOptions::default()
        };
        let sink = sinks::open(&config.sink, options.clone())
            .map_err(|e| StationError::Sink { sink: config.sink.clone(), detail: e.to_string() })?;
        // A sound card that fails (unplugged, HDMI gone) is opened again; the other sinks
        // write files or nothing, and reopening would truncate an air-check.
        let reopen: Option<Reopen> =
            matches!(config.sink.as_str(), "default" | "alsa").then(|| {
                let name = config.sink.clone();
                Box::new(move || sinks::open(&name, options.clone())) as Reopen
            });
        Self::with_sink_reopening(config, clock, sink, reopen)
    }

    /// Builds the daemon on a given sink (tests pass a recording clocked sink).
    pub fn with_sink(
        config: StationConfig,
        clock: SharedClock,
        sink: Box<dyn Sink>,
    ) -> Result<(Self, StationHandle), StationError> {
        Self::with_sink_reopening(config, clock, sink, None)
    }

    /// Like [`Station::with_sink`]; after a sink error the player closes the sink and
    /// calls `reopen` (with backoff) until it gives a working one.
    pub fn with_sink_reopening(
        config: StationConfig,
        clock: SharedClock,
        sink: Box<dyn Sink>,
        reopen: Option<Reopen>,
    ) -> Result<(Self, StationHandle), StationError> {
        std::fs::create_dir_all(&config.data_dir).map_err(|source| StationError::DataDir {
            path: config.data_dir.display().to_string(),
            source,
        })?;
        let ledger = Ledger::open(&config.ledger_path(), &config.station_id)?;
        let player_config = PlayerConfig {
            fade: config.fade,
            silence_threshold_dbfs: config.silence_threshold_dbfs,
            ..PlayerConfig::default()
        };
        let (player, events) = Player::spawn_reopening(sink, reopen, clock.clone(), player_config);
        let output = player.output();
        let (tx, commands) = unbounded_channel();
        let mut provincial = vec![config.synced_provincial_path()];
        provincial.extend(config.provincial_schedule.clone());
        let schedules = ScheduleSet::new(provincial, config.local_schedules.clone());
        let now = clock.now();
        let steps = StepDetector::new(clock.as_ref());
        let run_start = clock.monotonic();
        let station = Self {
            core: Core::new(config.preroll, config.fade)
                .with_relay_lead(config.relay_buffer + RELAY_CONNECT_MARGIN),
            config,
            clock,
            ledger,
            player,
            events,
            commands,
            schedules,
            horizon: now,
            expanded_until: now,
            unwritten: Vec::new(),
            last_alive: None,
            recovered: None,
            preparing: std::collections::HashSet::new(),
            status: tokio::sync::watch::Sender::new(StationStatus::default()),
            bulletin_records: None,
            steps,
            last_step: None,
            run_start,
            prior: None,
            output,
            beat: Default::default(),
            next: None,
            relay_http: None,
            live_feeds: std::collections::HashMap::new(),
        };
        Ok((station, StationHandle { tx }))
    }

    /// Every record of an emergency play, sent once it is durable in the ledger.
    pub fn bulletin_records(&mut self) -> UnboundedReceiver<Entry> {
        let (tx, rx) = unbounded_channel();
        self.bulletin_records = Some(tx);
        rx
    }

    /// Follows what the daemon is doing.
    pub fn status(&self) -> tokio::sync::watch::Receiver<StationStatus> {
        self.status.subscribe()
    }

    /// The scheduler's and the audio thread's proofs of life.
    pub fn liveness(&self) -> Liveness {
        Liveness { scheduler: self.beat.clone(), audio: self.player.beat() }
    }

    /// Runs until `shutdown` resolves, then fades out what plays, records it and returns.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), StationError> {
        let now = self.clock.now();
        tracing::info!(station = %self.config.station_id, "station starting");
        if self.config.central_url.is_some() {
            // The uplink (`station::uplink`) talks to central and feeds this daemon
            // through `StationCommand`s.
            let central = self.config.central_urls().join(", ");
            tracing::info!(%central, "schedules from central arrive through the uplink");
        }
        self.schedules.poll();
        self.recover(now)?;
        self.refresh(now, true);
        let poll_every = POLL_EVERY;
        let mut next_poll = self.clock.monotonic();
        tokio::pin!(shutdown);
        loop {
            self.beat.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let now = self.now();
            let mono = self.clock.monotonic();
            if mono >= next_poll {
                next_poll = mono.saturating_add(poll_every);
                let report = self.schedules.poll();
                self.refresh(now, report.changed());
                self.mark_alive(now);
            } else if clock::add(now, LOOKAHEAD / 2) > self.expanded_until {
                self.refresh(now, false);
            }
            let actions = self.core.tick(now);
            self.execute(actions);
            self.horizon = self.core.horizon(now);
            // Waits run on the monotonic clock; the wall clock only says what is due.
            let sleep = self
                .core
                .next_wake(now)
                .map_or(MAX_SLEEP, |w| clock::until(w, now))
                .min(MAX_SLEEP)
                .min(next_poll.saturating_sub(mono));
            let mut status = self.current_status(now);
            status.wake =
                Some(clock::add(now, chrono::Duration::from_std(sleep).unwrap_or_default()));
            self.status.send_replace(status);
            tokio::select! {
                biased;
                () = &mut shutdown => break,
                Some(event) = self.events.recv() => self.on_player_event(event),
                Some(command) = self.commands.recv() => self.on_command(command),
                () = self.clock.sleep(sleep) => {}
            }
        }
        self.stop().await
    }

    /// Fades out, records and persists; the horizon saved before lets the next start
    /// account for everything left undecided.
    async fn stop(mut self) -> Result<(), StationError> {
        let now = self.clock.now();
        tracing::info!("station stopping");
        self.mark_alive(now);
        let actions = self.core.shutdown(now);
        self.execute(actions);
        // The fade takes `fade` of the sink's time; a generous real-time bound covers a
        // stalled sink so shutdown never hangs.
        let bound = self.config.fade + Duration::from_secs(5);
        let waited = tokio::time::timeout(bound, async {
            while !self.core.is_idle() {
                match self.events.recv().await {
                    Some(event) => self.on_player_event(event),
                    None => break,
                }
            }
        })
        .await;
        if waited.is_err() {
            tracing::warn!("the player did not confirm the fade-out in time");
        }
        self.flush_unwritten();
        let now = self.clock.now();
        self.ledger.set_state_time(state::ALIVE, now)?;
        self.player.stop();
        tracing::info!("station stopped");
        Ok(())
    }

    /// Hands the core every occurrence from the horizon to the look-ahead that the
    /// ledger does not hold yet.
    fn refresh(&mut self, now: DateTime<Utc>, force: bool) {
        if !force && clock::add(now, LOOKAHEAD / 2) <= self.expanded_until {
            return;
        }
        let until = clock::add(now, LOOKAHEAD);
        let timeline = self.schedules.timeline();
        let mut items = Vec::new();
        // Never further back than accounting reaches: a stale horizon cannot make this
        // list years of plays.
        let start = self.horizon.max(clock::sub(now, ACCOUNT_WINDOW));
        for occ in timeline.occurrences(start, until) {
            match self.ledger.contains(&occ.item_id, occ.planned) {
                Ok(true) => {}
                Ok(false) => items.push(Item::from_occurrence(&occ)),
                Err(e) => {
                    tracing::error!("cannot read the ledger: {e}");
                    items.push(Item::from_occurrence(&occ));
                }
            }
        }
        self.expanded_until = until;
        let actions = self.core.set_candidates(items);
        self.execute(actions);
        self.next = None;
    }

    /// The next play after now, from the schedules (cached until it passes).
    fn next_play(&mut self, now: DateTime<Utc>) -> Option<NextPlay> {
        // What already plays (started a few milliseconds before its instant) is not next.
        let playing = self.core.playing_now();
        let sounding = |id: &str, planned: DateTime<Utc>| {
            playing.iter().any(|p| p.item_id == id && p.planned == planned)
        };
        let stale = match &self.next {
            None => true,
            Some((_, Some(next))) => next.planned <= now || sounding(&next.item_id, next.planned),
            Some((at, None)) => now < *at || now - *at > chrono::Duration::minutes(1),
        };
        if stale {
            let next = self
                .schedules
                .timeline()
                .next(now, 4)
                .into_iter()
                .find(|o| o.planned > now && !sounding(&o.item_id, o.planned))
                .map(|o| NextPlay { item_id: o.item_id, planned: o.planned });
            self.next = Some((now, next));
        }
        self.next.as_ref().and_then(|(_, n)| n.clone())
    }

    fn mark_alive(&mut self, now: DateTime<Utc>) {
        let mut horizon = self.core.horizon(now).min(self.horizon);
        // Until central's schedules have arrived in this run, nothing they planned since
        // the previous run's horizon has been decided: a run stopped before they arrive
        // must leave that horizon for the next start to account from, or their plays in
        // between end with no record at all.
        if self.config.central_url.is_some()
            && let Some((from, _)) = self.recovered
        {
            horizon = horizon.min(from);
        }
        let written = self.ledger.set_states(&[
            (state::HORIZON, &crate::station::ledger::time_text(horizon)),
            (state::ALIVE, &crate::station::ledger::time_text(now)),
        ]);
        if let Err(e) = written {
            tracing::error!("cannot write the alive mark: {e}");
        }
        self.last_alive = Some(now);
        self.flush_unwritten();
    }

    /// Queues a bulletin (and its attention tone first) at its priority.
    fn air(&mut self, air: AirBulletin, now: DateTime<Utc>) {
        let AirBulletin { id, title, audio, repeat, expires, gain_db, interval, tone, priority } =
            air;
        let priority = priority.max(Priority::Priority);
        let interval = chrono::Duration::from_std(interval).unwrap_or_default();
        if let Some(tone) = tone {
            self.core.push_emergency(Item {
                item_id: format!("{id}:tone"),
                title: format!("{title} (attention tone)"),
                layer: Layer::Provincial,
                priority,
                planned: now,
                max_delay: chrono::Duration::hours(1),
                audio: AudioRef::Path(tone),
                gain_db: 0.0,
                bulletin: Some(Bulletin { repeats_left: 0, expires, interval }),
            });
        }
        let item = Item {
            item_id: id,
            title,
            layer: Layer::Provincial,
            priority,
            planned: now,
            max_delay: chrono::Duration::hours(1),
            audio: AudioRef::Path(audio),
            gain_db,
            bulletin: Some(Bulletin { repeats_left: repeat, expires, interval }),
        };
        self.core.push_emergency(item);
    }

    fn current_status(&mut self, now: DateTime<Utc>) -> StationStatus {
        let wake = self.status.borrow().wake;
        let next = self.next_play(now);
        StationStatus {
            next,
            at: Some(now),
            wake,
            preparing: self.preparing.len(),
            playing: self.core.playing_now(),
            clock_step: self.last_step.map(|(step, _)| step),
            output: self.output.borrow().clone(),
        }
    }

    fn on_command(&mut self, command: StationCommand) {
        let now = self.now();
        match command {
            StationCommand::Emergency {
                id,
                title,
                audio,
                repeat,
                expires,
                gain_db,
                interval,
                tone,
            } => {
                let priority = Priority::Emergency;
                let air = AirBulletin {
                    id,
                    title,
                    audio,
                    repeat,
                    expires,
                    gain_db,
                    interval,
                    tone,
                    priority,
                };
                self.air(air, now);
            }
            StationCommand::Bulletin(air) => self.air(*air, now),
            StationCommand::Live(live) => self.air_live(*live, now),
            StationCommand::CancelBulletin { id } => {
                let actions = self.core.cancel_bulletin(&id, now);
                self.execute(actions);
            }
            StationCommand::Reload => {
                let report = self.schedules.poll();
                self.refresh(now, report.changed());
            }
            StationCommand::Provincial(schedule) => {
                if self.schedules.push_provincial(*schedule) {
                    self.refresh(now, true);
                }
            }
            StationCommand::Central(schedules) => {
                self.schedules.push_central(schedules);
                if let Some((from, alive)) = self.recovered.take() {
                    // Central's schedules arrived after start-up recovery: account for
                    // what they planned while the station was down, and hand the core
                    // what may still start late.
                    let done = self.account(from, now, &|planned| not_running(planned, alive));
                    self.horizon = self.horizon.min(done.late_from.unwrap_or(now));
                    tracing::info!(
                        missed = done.recorded,
                        summarised = done.summarised,
                        "recovered central's items from the previous run"
                    );
                }
                self.refresh(now, true);
            }
            StationCommand::Record(entry) => self.record(*entry),
            StationCommand::Status(reply) => {
                let actions = self.core.tick(now);
                self.execute(actions);
                let _ = reply.send(self.current_status(now));
            }
        }
    }

    fn on_player_event(&mut self, event: PlayerEvent) {
        let now = self.now();
        let proof = |p: &crate::audio::player::ProofOfPlay| Proof {
            relay: p.relay.map(|r| RelayFacts {
                relayed_secs: r.relayed_secs,
                dropouts: r.dropouts,
                dropout_secs: r.dropout_secs,
                longest_dropout_secs: r.longest_dropout_secs,
            }),
            played: p.duration,
            levels: Some(Levels {
                peak_dbfs: f64::from(p.peak_dbfs).max(FLOOR_DBFS),
                rms_dbfs: f64::from(p.rms_dbfs).max(FLOOR_DBFS),
                silent: p.silent,
            }),
        };
        match &event {
            PlayerEvent::Prepared { id } | PlayerEvent::Failed { id, .. } => {
                self.preparing.remove(id);
            }
            _ => {}
        }
        let event = match event {
            PlayerEvent::Prepared { id } => {
                tracing::debug!(id, "prepared");
                return;
            }
            PlayerEvent::Started { id, at } => PlayoutEvent::Started { id, at },
            PlayerEvent::Finished { id, proof: p } => {
                PlayoutEvent::Finished { id, proof: proof(&p) }
            }
            PlayerEvent::Preempted { id, proof: p, .. } => {
                PlayoutEvent::Preempted { id, proof: proof(&p) }
            }
            PlayerEvent::Failed { id, reason, proof: p } => {
                let reason = match reason {
                    PlayError::Decode(e) => format!("audio unreadable: {e}"),
                    PlayError::Sink(e) => format!("sink error: {e}"),
                    other => other.to_string(),
                };
                PlayoutEvent::Failed { id, reason, proof: p.as_ref().map(proof) }
            }
        };
        let actions = self.core.on_event(now, event);
        self.execute(actions);
    }

    /// Carries out the core's decisions in order.
    /// Player commands go first, ledger writes after them: an fsync must never delay a
    /// start (records still reach disk before anything reports them).
    fn execute(&mut self, actions: Vec<Action>) {
        let mut queue: std::collections::VecDeque<Action> = actions.into();
        let mut writes = Vec::new();
        while let Some(action) = queue.pop_front() {
            match action {
                Action::Prepare { id, item } if matches!(item.audio, AudioRef::Stream(_)) => {
                    self.prepare_relay(id, &item);
                }
                Action::Prepare { id, item } => {
                    let cache = self.config.data_dir.join("audio");
                    let path = audio_path(&item, &cache);
                    let expected = expected_sha256(&item, &path, &cache);
                    match file_sha256(&path) {
                        Ok(hex) if expected.as_ref().is_some_and(|want| *want != hex) => {
                            // Content-addressed audio whose bytes changed on disk (bit rot,
                            // tampering, a torn write): never aired. Removing it lets the
                            // sync, which trusts names in its cache, fetch it again.
                            let want = expected.unwrap_or_default();
                            let removed = std::fs::remove_file(&path).is_ok();
                            let reason = format!(
                                "audio corrupt: {} has sha256 {hex}, expected {want}; {}",
                                path.display(),
                                if removed {
                                    "removed so the sync downloads it again"
                                } else {
                                    "could not remove it: delete it by hand"
                                }
                            );
                            tracing::error!(item = %item.item_id, "{reason}");
                            let event = PlayoutEvent::Failed { id, reason, proof: None };
                            queue.extend(self.core.on_event(self.clock.now(), event));
                        }
                        Ok(hex) => {
                            self.core.set_sha256(id, hex);
                            self.preparing.insert(id);
                            self.player.prepare(id, path, item.gain_db);
                        }
                        Err(e) => {
                            let reason = if e.kind() == std::io::ErrorKind::NotFound {
                                format!("audio missing: {}", path.display())
                            } else {
                                format!("audio unreadable: {}: {e}", path.display())
                            };
                            let event = PlayoutEvent::Failed { id, reason, proof: None };
                            queue.extend(self.core.on_event(self.clock.now(), event));
                        }
                    }
                }
                Action::StartAt { id, at } => self.player.start_at(id, at),
                Action::Preempt { id } => self.player.preempt(id),
                Action::Cancel { id } => {
                    // A cancelled load still reports its end; it no longer holds anything up.
                    self.preparing.remove(&id);
                    self.player.preempt(id);
                }
                Action::Record(_) | Action::Playing(_) => writes.push(action),
            }
        }
        for action in writes {
            match action {
                Action::Record(entry) => self.record(entry),
                Action::Playing(now_playing) => {
                    let written = if now_playing.is_empty() {
                        self.ledger.clear_state(state::PLAYING)
                    } else {
                        let json = serde_json::to_string(&now_playing).unwrap_or_default();
                        self.ledger.set_state(state::PLAYING, &json)
                    };
                    if let Err(e) = written {
                        tracing::error!("cannot persist what is playing: {e}");
                    }
                }
                _ => {}
            }
        }
    }

    /// Writes a record durably (or keeps it to retry if the disk refuses).
    fn record(&mut self, entry: Entry) {
        match self.ledger.append(entry.clone()) {
            Ok(Appended::New(r)) => {
                tracing::info!(seq = r.seq, item = %r.entry.item_id, outcome = %r.entry.outcome, "recorded");
                // Bulletins play at emergency or priority level; the receiver ignores
                // the records of scheduled priority items (it knows no such id).
                if r.entry.priority >= Priority::Priority
                    && let Some(tx) = &self.bulletin_records
                {
                    let _ = tx.send(r.entry);
                }
            }
            Ok(Appended::Duplicate(r)) => {
                tracing::warn!(seq = r.seq, item = %r.entry.item_id, "already recorded; kept the first record");
            }
            Err(e) => {
                tracing::error!(item = %entry.item_id, "cannot write the ledger, will retry: {e}");
                self.unwritten.push(entry);
            }
        }
    }

    fn flush_unwritten(&mut self) {
        for entry in std::mem::take(&mut self.unwritten) {
            self.record(entry);
        }
    }
}

/// The sha256 an item's file must have: the one it names (`audio = "sha256:<hex>"`), or,
/// for a file in the content-addressed cache (bulletins play from there), its name.
fn expected_sha256(item: &Item, path: &Path, cache: &Path) -> Option<String> {
    match item.audio.file()? {
        AudioRef::Sha256(hex) => Some(hex.to_ascii_lowercase()),
        AudioRef::Stream(_) => None,
        AudioRef::Path(_) => {
            let name = path.file_name()?.to_str()?;
            let in_cache = path.parent() == Some(cache);
            let named = name.len() == 64 && name.bytes().all(|b| b.is_ascii_hexdigit());
            (in_cache && named).then(|| name.to_ascii_lowercase())
        }
    }
}

/// Lowercase hex sha256 of a file, streamed.
pub fn file_sha256(path: &Path) -> std::io::Result<String> {
    let mut file = std::fs::File::open(path)?;
    let mut hasher = Sha256::new();
    std::io::copy(&mut file, &mut hasher)?;
    Ok(hex::encode(hasher.finalize()))
}
