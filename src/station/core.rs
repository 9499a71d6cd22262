//! The scheduler's decisions, as a pure state machine: it is told the time, the
//! candidate occurrences and what the player reported, and answers with [`Action`]s
//! (prepare, start at, pre-empt, record). It does no IO and reads no clock, so every
//! rule of the brief is tested without audio or waiting.
//!
//! Rules applied here:
//! - an item is prepared `preroll` before its planned instant and started exactly then;
//! - a higher priority pre-empts a lower one; at equal priority a provincial item
//!   pre-empts a local one (the pre-empted item fades out so the other starts on time);
//! - anything else due while an item plays waits, and starts late when the other ends
//!   if still within its `max_delay`, else is missed "yielded to <item>";
//! - emergencies pre-empt everything but another emergency; those queue in arrival order;
//! - a bulletin at `priority` level (a CAP warning that is not an emergency) pre-empts
//!   normal items, waits behind (or is pre-empted by) emergencies, and never interrupts
//!   a provincial `priority` item;
//! - every item handed to the player ends as exactly one [`Entry`].

use std::collections::{HashMap, HashSet, VecDeque};
use std::path::PathBuf;

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};

use crate::protocol::bulletin::tone_item_id;
use crate::protocol::{Reason, RelayFacts};
use crate::schedule::{AudioRef, Layer, Occurrence, Priority};
use crate::station::ledger::{Entry, Levels, Outcome};

/// A start within this of the planned instant counts as `played`; later is `late`.
pub const LATE_AFTER: Duration = Duration::milliseconds(1000);

/// How much earlier than `fade` before a pre-empting item's start the pre-empt is
/// issued: covers the blocks the player has already rendered ahead into the sink's
/// buffer, so the fade is over when the new item starts.
pub const PREEMPT_MARGIN: Duration = Duration::milliseconds(300);

/// `t + d`, or the last representable instant: no duration from a file or the network
/// can make the scheduler panic.
pub fn later(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

/// `t - d`, or the first representable instant.
pub fn before(t: DateTime<Utc>, d: Duration) -> DateTime<Utc> {
    t.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

/// One thing to play: a scheduled occurrence or one repetition of an emergency bulletin.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub item_id: String,
    pub title: String,
    pub layer: Layer,
    pub priority: Priority,
    pub planned: DateTime<Utc>,
    pub max_delay: Duration,
    pub audio: AudioRef,
    pub gain_db: f32,
    /// Set for emergency bulletins.
    pub bulletin: Option<Bulletin>,
}

/// What makes an emergency bulletin different from a scheduled item.
#[derive(Debug, Clone, PartialEq)]
pub struct Bulletin {
    /// Plays left after this one.
    pub repeats_left: u32,
    /// Never starts after this instant.
    pub expires: Option<DateTime<Utc>>,
    /// From the end of one play to the start of the next.
    pub interval: Duration,
}

impl Item {
    /// The ledger's identity of this item: `(item_id, planned)`.
    pub fn key(&self) -> (String, DateTime<Utc>) {
        (self.item_id.clone(), self.planned)
    }

    pub fn from_occurrence(o: &Occurrence) -> Self {
        Self {
            item_id: o.item_id.clone(),
            title: o.title.clone(),
            layer: o.layer,
            priority: o.priority,
            planned: o.planned,
            max_delay: Duration::from_std(o.max_delay).unwrap_or(Duration::MAX),
            audio: o.audio.clone(),
            gain_db: o.gain_db,
            bulletin: None,
        }
    }

    /// The last instant this item may start.
    pub fn deadline(&self) -> DateTime<Utc> {
        let by_delay =
            self.planned.checked_add_signed(self.max_delay).unwrap_or(DateTime::<Utc>::MAX_UTC);
        match self.bulletin.as_ref().and_then(|b| b.expires) {
            Some(expires) => by_delay.min(expires),
            None => by_delay,
        }
    }

    /// The record of this item with `outcome` (no play facts).
    pub fn entry(&self, outcome: Outcome, reason: Option<Reason>) -> Entry {
        let mut entry = Entry {
            item_id: self.item_id.clone(),
            title: self.title.clone(),
            layer: self.layer,
            priority: self.priority,
            planned: self.planned,
            outcome,
            started: None,
            ended: None,
            delay_ms: None,
            played_secs: None,
            reason: None,
            audio_sha256: match self.audio.file() {
                Some(AudioRef::Sha256(hex)) => Some(hex.clone()),
                _ => None,
            },
            levels: None,
            reason_code: None,
            relay: None,
        };
        entry.set_reason(reason);
        entry
    }
}

/// Whether `a` may interrupt `b`.
pub fn outranks(a: &Item, b: &Item) -> bool {
    match a.priority.cmp(&b.priority) {
        std::cmp::Ordering::Greater => true,
        std::cmp::Ordering::Less => false,
        std::cmp::Ordering::Equal => {
            a.priority != Priority::Emergency
                && a.layer == Layer::Provincial
                && b.layer == Layer::Local
        }
    }
}

/// Order in which waiting items are taken: most urgent first, then provincial, then
/// earliest planned.
fn rank(item: &Item) -> (Priority, Layer, std::cmp::Reverse<DateTime<Utc>>) {
    (item.priority, item.layer, std::cmp::Reverse(item.planned))
}

/// What the player reports, in the scheduler's terms.
#[derive(Debug, Clone, PartialEq)]
pub enum PlayoutEvent {
    Started { id: u64, at: DateTime<Utc> },
    Finished { id: u64, proof: Proof },
    Preempted { id: u64, proof: Proof },
    Failed { id: u64, reason: String, proof: Option<Proof> },
}

/// What reached the sink.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Proof {
    pub played: std::time::Duration,
    pub levels: Option<Levels>,
    /// A relayed stream's or live broadcast's own facts (seconds relayed, drop-outs).
    pub relay: Option<RelayFacts>,
}

/// What the scheduler asks the shell to do, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Decode/open the audio now; report `Failed` if it cannot be.
    Prepare { id: u64, item: Item },
    /// Start the prepared item so its first sample reaches the speaker at `at`.
    StartAt { id: u64, at: DateTime<Utc> },
    /// Fade out and stop a playing item.
    Preempt { id: u64 },
    /// Forget a prepared item that has not started.
    Cancel { id: u64 },
    /// Write this record durably.
    Record(Entry),
    /// The items now sounding changed: persist them for crash recovery.
    Playing(Vec<PlayingNow>),
}

/// An item that is sounding, as persisted in the ledger's state table so a crash
/// mid-item can be recorded on restart.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlayingNow {
    pub item_id: String,
    pub title: String,
    pub layer: Layer,
    pub priority: Priority,
    pub planned: DateTime<Utc>,
    pub started: DateTime<Utc>,
    pub audio_sha256: Option<String>,
}

#[derive(Debug, Clone)]
struct Slot {
    id: u64,
    item: Item,
    sha256: Option<String>,
    /// When `StartAt` was issued (None while only prepared).
    start_at: Option<DateTime<Utc>>,
    started: Option<DateTime<Utc>>,
    /// Why it is being stopped, once a pre-empt was issued.
    stopping: Option<Reason>,
    /// As `next`: prepared to follow `current` when it ends (rather than pre-empt it).
    follows: bool,
}

/// The scheduler's state.
#[derive(Debug)]
pub struct Core {
    preroll: Duration,
    /// Added to `preroll` for a relayed stream: it connects early enough to have its
    /// buffer (the stated delay) full at its planned instant.
    relay_lead: Duration,
    fade: Duration,
    /// `fade + PREEMPT_MARGIN`: when to start fading what a prepared item pre-empts.
    lead: Duration,
    next_id: u64,
    /// Scheduled occurrences not yet handed to the player nor recorded.
    waiting: Vec<Item>,
    /// Emergency bulletins not yet handed to the player, in arrival order.
    emergencies: VecDeque<Item>,
    /// The item handed to the player that will or does sound.
    current: Option<Slot>,
    /// An item prepared to pre-empt `current` at its planned instant.
    next: Option<Slot>,
    /// Pre-empted or cancelled items whose player report is still due.
    stopping: HashMap<u64, Slot>,
    /// Keys handed to the player or recorded in this run: never taken again.
    done: HashSet<(String, DateTime<Utc>)>,
    /// Bulletin ids cancelled by the province: no play of theirs starts again.
    cancelled: HashSet<String>,
}

impl Core {
    pub fn new(preroll: std::time::Duration, fade: std::time::Duration) -> Self {
        let fade = Duration::from_std(fade).unwrap_or(Duration::milliseconds(300));
        Self {
            preroll: Duration::from_std(preroll).unwrap_or(Duration::seconds(2)),
            relay_lead: Duration::zero(),
            fade,
            lead: fade + PREEMPT_MARGIN,
            next_id: 1,
            waiting: Vec::new(),
            emergencies: VecDeque::new(),
            current: None,
            next: None,
            stopping: HashMap::new(),
            done: HashSet::new(),
            cancelled: HashSet::new(),
        }
    }

    /// Relayed streams are prepared `lead` earlier than files (their buffer fills then).
    pub fn with_relay_lead(mut self, lead: std::time::Duration) -> Self {
        self.relay_lead = Duration::from_std(lead).unwrap_or_default();
        self
    }

    /// How long before its planned instant `item` is prepared.
    fn preroll_of(&self, item: &Item) -> Duration {
        match item.audio {
            AudioRef::Stream(_) => self.preroll + self.relay_lead,
            _ => self.preroll,
        }
    }

    /// Replaces the scheduled candidates (after a schedule change or a refresh). The
    /// caller passes every occurrence from its horizon onwards that the ledger does not
    /// hold yet; those already handed to the player are ignored here. A prepared item
    /// that disappeared from the schedules is cancelled.
    pub fn set_candidates(&mut self, items: Vec<Item>) -> Vec<Action> {
        let mut actions = Vec::new();
        let keys: HashSet<_> = items.iter().map(Item::key).collect();
        if let Some(next) = &self.next
            && next.item.bulletin.is_none()
            && !keys.contains(&next.item.key())
            && let Some(next) = self.next.take()
        {
            tracing::info!(item = %next.item.item_id, "cancelled: no longer in the schedules");
            self.done.remove(&next.item.key());
            actions.push(Action::Cancel { id: next.id });
        }
        if let Some(cur) = &self.current
            && cur.started.is_none()
            && cur.item.bulletin.is_none()
            && !keys.contains(&cur.item.key())
            && let Some(cur) = self.current.take()
        {
            tracing::info!(item = %cur.item.item_id, "cancelled: no longer in the schedules");
            self.done.remove(&cur.item.key());
            actions.push(Action::Cancel { id: cur.id });
        }
        // Keys far behind every candidate can never come back: keep the set small over
        // months of running.
        if let Some(oldest) = items.iter().map(|i| i.planned).min() {
            let floor = oldest - Duration::days(1);
            self.done.retain(|(_, planned)| *planned >= floor);
        }
        self.waiting = items.into_iter().filter(|i| !self.done.contains(&i.key())).collect();
        self.waiting.sort_by_key(|i| i.planned);
        actions
    }

    /// Plans again after the wall clock stepped: every item handed to the player that
    /// has not started is withdrawn (cancelled) and waits again, so its start is decided
    /// anew by the corrected clock. What sounds keeps sounding.
    pub fn replan(&mut self) -> Vec<Action> {
        let mut actions = Vec::new();
        let unstarted = |slot: &Option<Slot>| slot.as_ref().is_some_and(|s| s.started.is_none());
        for slot in [
            if unstarted(&self.next) { self.next.take() } else { None },
            if unstarted(&self.current) { self.current.take() } else { None },
        ]
        .into_iter()
        .flatten()
        {
            tracing::info!(item = %slot.item.item_id, "withdrawn: the clock stepped");
            self.requeue(slot, &mut actions);
        }
        actions
    }

    /// Removes and returns the waiting scheduled items whose `max_delay` passed before
    /// `now`, marking them decided (the caller records them, with its own reason).
    pub fn take_overdue(&mut self, now: DateTime<Utc>) -> Vec<Item> {
        let (overdue, keep): (Vec<Item>, Vec<Item>) =
            std::mem::take(&mut self.waiting).into_iter().partition(|i| now > i.deadline());
        self.waiting = keep;
        for item in &overdue {
            self.done.insert(item.key());
        }
        overdue
    }

    /// Queues an emergency bulletin: it plays as soon as no other emergency does.
    pub fn push_emergency(&mut self, item: Item) {
        tracing::info!(item = %item.item_id, "emergency queued");
        self.emergencies.push_back(item);
    }

    /// Stops bulletin `id` (and its attention tone, `id:tone`) wherever it is: a play
    /// sounding now is faded out and recorded pre-empted "cancelled by the province", a
    /// prepared one is withdrawn, queued ones are recorded missed, and no repeat follows.
    pub fn cancel_bulletin(&mut self, id: &str, now: DateTime<Utc>) -> Vec<Action> {
        let mut actions = Vec::new();
        self.cancelled.insert(id.to_string());
        let tone = tone_item_id(id);
        let hit =
            |item: &Item| item.bulletin.is_some() && (item.item_id == id || item.item_id == tone);
        let mut keep = VecDeque::new();
        for item in std::mem::take(&mut self.emergencies) {
            if hit(&item) {
                tracing::info!(item = %item.item_id, "cancelled while queued");
                self.done.insert(item.key());
                actions.push(Action::Record(item.entry(Outcome::Missed, Some(Reason::Cancelled))));
            } else {
                keep.push_back(item);
            }
        }
        self.emergencies = keep;
        if self.next.as_ref().is_some_and(|n| hit(&n.item))
            && let Some(next) = self.next.take()
        {
            actions.push(Action::Cancel { id: next.id });
            actions.push(Action::Record(next.item.entry(Outcome::Missed, Some(Reason::Cancelled))));
        }
        if self.current.as_ref().is_some_and(|c| hit(&c.item))
            && let Some(cur) = self.current.take()
        {
            let sounding = cur.started.is_some() || cur.start_at.is_some_and(|t| t <= now);
            if sounding {
                self.stop(cur, now, Reason::Cancelled, &mut actions);
            } else {
                actions.push(Action::Cancel { id: cur.id });
                actions
                    .push(Action::Record(cur.item.entry(Outcome::Missed, Some(Reason::Cancelled))));
            }
        }
        actions.extend(self.tick(now));
        actions
    }

    /// The earliest instant after `now` at which something needs deciding, if any.
    /// (What is due at or before `now` was decided by the last [`Core::tick`]; it changes
    /// only with a player report or new candidates.)
    pub fn next_wake(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut wake: Option<DateTime<Utc>> = None;
        let mut at = |t: DateTime<Utc>| {
            if t > now {
                wake = Some(wake.map_or(t, |w| w.min(t)));
            }
        };
        for item in &self.waiting {
            at(before(item.planned, self.preroll_of(item)));
            at(before(item.planned, self.lead));
            at(later(item.deadline(), Duration::milliseconds(1)));
        }
        for e in &self.emergencies {
            at(e.planned);
            at(later(e.deadline(), Duration::milliseconds(1)));
        }
        if let Some(next) = &self.next {
            if next.follows {
                at(later(next.item.deadline(), Duration::milliseconds(1)));
                if next.start_at.is_some() {
                    at(next.item.planned - self.lead);
                }
            } else {
                at(next.item.planned - self.lead);
            }
        }
        wake
    }

    /// Every occurrence planned before this instant is recorded or in the player's hands;
    /// persisted so a restart knows which ones to record as missed.
    pub fn horizon(&self, now: DateTime<Utc>) -> DateTime<Utc> {
        let slots = self.current.iter().chain(self.next.iter()).chain(self.stopping.values());
        self.waiting
            .iter()
            .map(|i| i.planned)
            .chain(slots.filter(|s| s.item.bulletin.is_none()).map(|s| s.item.planned))
            .fold(now, DateTime::min)
    }

    /// Whether anything is sounding or about to.
    pub fn is_idle(&self) -> bool {
        self.current.is_none() && self.next.is_none() && self.stopping.is_empty()
    }

    /// The audio sha256 the shell computed when preparing `id`.
    pub fn set_sha256(&mut self, id: u64, sha256: String) {
        for slot in self.current.iter_mut().chain(self.next.iter_mut()) {
            if slot.id == id {
                slot.sha256 = Some(sha256.clone());
            }
        }
    }

    /// Decides what to do at `now`.
    pub fn tick(&mut self, now: DateTime<Utc>) -> Vec<Action> {
        let mut actions = Vec::new();
        self.expire(now, &mut actions);

        // An emergency goes ahead of anything but another emergency; the first one due
        // in arrival order (a repeat waits out its interval behind later arrivals). A
        // bulletin at `priority` level goes ahead of normal items, behind emergencies:
        // of the bulletins due, the highest level first.
        let due = |e: &Item| e.planned <= now;
        let top = self.emergencies.iter().filter(|e| due(e)).map(|e| e.priority).max();
        if let Some(idx) =
            top.and_then(|p| self.emergencies.iter().position(|e| due(e) && e.priority == p))
            && self.current.as_ref().is_none_or(|c| outranks(&self.emergencies[idx], &c.item))
            && let Some(item) = self.emergencies.remove(idx)
        {
            if let Some(next) = self.next.take() {
                // Whatever was prepared to pre-empt goes back to wait its turn.
                self.done.remove(&next.item.key());
                actions.push(Action::Cancel { id: next.id });
                if next.item.bulletin.is_some() {
                    self.emergencies.push_front(next.item);
                } else {
                    self.waiting.push(next.item);
                }
            }
            let at = match self.current.take() {
                Some(cur) => {
                    let by = Reason::PreemptedBy(item.item_id.clone());
                    self.stop(cur, now, by, &mut actions);
                    now + self.fade
                }
                None => now,
            };
            let slot = self.arm(item, &mut actions);
            tracing::info!(item = %slot.item.item_id, at = %at, "armed emergency");
            self.start(slot, at, &mut actions);
            return actions;
        }

        // A prepared pre-empting item whose moment has come.
        if let Some(next) = &self.next
            && !next.follows
            && now >= next.item.planned - self.lead
            && let Some(next) = self.next.take()
        {
            let at = next.item.planned.max(now);
            if let Some(cur) = self.current.take() {
                let by = Reason::PreemptedBy(next.item.item_id.clone());
                self.stop(cur, now, by, &mut actions);
            }
            self.start(next, at, &mut actions);
        }

        // A follower told to start at its planned instant, while what it follows still
        // plays when the fade would have to begin: take the start back; it follows the
        // end instead (re-armed below).
        if let Some(next) = &self.next
            && next.follows
            && next.start_at.is_some()
            && next.started.is_none()
            && now >= next.item.planned - self.lead
            && self.current.is_some()
            && let Some(next) = self.next.take()
        {
            tracing::info!(item = %next.item.item_id, "start withdrawn: the item before it still plays");
            actions.push(Action::Cancel { id: next.id });
            self.done.remove(&next.item.key());
            self.waiting.push(next.item);
        }

        // A prepared item with nothing left before it.
        if self.current.is_none()
            && let Some(next) = self.next.take()
        {
            if next.follows && next.start_at.is_some() {
                // Its start is already with the player.
                self.current = Some(next);
            } else {
                let at = next.item.planned.max(now);
                self.start(next, at, &mut actions);
            }
        }

        // The best waiting item that is due within the pre-roll.
        self.waiting.sort_by_key(|i| i.planned);
        if let Some(next) = &self.next
            && next.follows
            && let Some(best) = self
                .waiting
                .iter()
                .filter(|i| i.planned - self.preroll_of(i) <= now)
                .max_by_key(|i| rank(i))
            && (self.current.as_ref().is_some_and(|c| outranks(best, &c.item))
                || rank(best) > rank(&next.item))
            && let Some(next) = self.next.take()
        {
            // Something more urgent is due: the follower waits again behind it.
            tracing::info!(item = %next.item.item_id, by = %best.item_id, "disarmed for a more urgent item");
            actions.push(Action::Cancel { id: next.id });
            self.done.remove(&next.item.key());
            self.waiting.push(next.item);
        }
        let best = self
            .waiting
            .iter()
            .enumerate()
            .filter(|(_, i)| i.planned - self.preroll_of(i) <= now)
            .max_by_key(|(_, i)| rank(i))
            .map(|(idx, _)| idx);
        if let Some(idx) = best {
            let candidate = &self.waiting[idx];
            match &self.current {
                None if self.next.is_none() => {
                    let item = self.waiting.remove(idx);
                    let at = item.planned.max(now);
                    let slot = self.arm(item, &mut actions);
                    self.start(slot, at, &mut actions);
                }
                Some(cur) if self.next.is_none() && outranks(candidate, &cur.item) => {
                    let item = self.waiting.remove(idx);
                    if cur.started.is_none() && cur.start_at.is_some_and(|t| t >= item.planned) {
                        // Not sounding yet and due no earlier: put it back, take its place.
                        if let Some(cur) = self.current.take() {
                            tracing::info!(item = %cur.item.item_id, by = %item.item_id, "disarmed for a more urgent item");
                            actions.push(Action::Cancel { id: cur.id });
                            self.done.remove(&cur.item.key());
                            self.waiting.push(cur.item);
                        }
                        let at = item.planned.max(now);
                        let slot = self.arm(item, &mut actions);
                        self.start(slot, at, &mut actions);
                    } else {
                        let slot = self.arm(item, &mut actions);
                        tracing::info!(item = %slot.item.item_id, planned = %slot.item.planned, "armed to pre-empt");
                        self.next = Some(slot);
                        // It may already be time.
                        actions.extend(self.tick(now));
                    }
                }
                Some(cur) if self.next.is_none() => {
                    // Decoded now, started the moment `cur` ends (if still within max_delay).
                    let after = cur.item.item_id.clone();
                    let item = self.waiting.remove(idx);
                    let mut slot = self.arm(item, &mut actions);
                    tracing::info!(item = %slot.item.item_id, after = %after, "armed to follow");
                    slot.follows = true;
                    if slot.item.planned - self.lead > now {
                        // Most programmes end before the next one is due: hand the player
                        // the exact start now, so it does not hang on reacting to the end.
                        // Withdrawn above if `cur` still plays at the pre-empt lead.
                        slot.start_at = Some(slot.item.planned);
                        actions.push(Action::StartAt { id: slot.id, at: slot.item.planned });
                    }
                    self.next = Some(slot);
                }
                _ => {}
            }
        }
        actions
    }

    /// Handles a player report.
    pub fn on_event(&mut self, now: DateTime<Utc>, event: PlayoutEvent) -> Vec<Action> {
        let mut actions = Vec::new();
        match event {
            PlayoutEvent::Started { id, at } => {
                if let Some(slot) = self.slot_mut(id) {
                    slot.started = Some(at);
                    let delay = at - slot.item.planned;
                    tracing::info!(item = %slot.item.item_id, delay_ms = delay.num_milliseconds(), "started");
                }
                actions.push(Action::Playing(self.playing_now()));
            }
            PlayoutEvent::Finished { id, proof } => {
                if let Some(slot) = self.take_slot(id) {
                    let outcome = match (slot.started, &slot.stopping) {
                        (_, Some(_)) => Outcome::Preempted,
                        _ if proof.relay.is_some() => Outcome::Relayed,
                        (Some(s), None) if s - slot.item.planned > LATE_AFTER => Outcome::Late,
                        _ => Outcome::Played,
                    };
                    let reason = slot.stopping.clone();
                    let entry = self.finish_entry(&slot, now, outcome, reason, Some(proof));
                    self.tone_ended(&slot, entry.ended.unwrap_or(now), now);
                    actions.push(Action::Record(entry));
                    self.after_end(&slot, now);
                }
            }
            PlayoutEvent::Preempted { id, proof } => {
                if let Some(slot) = self.take_slot(id) {
                    let reason = slot
                        .stopping
                        .clone()
                        .unwrap_or_else(|| Reason::Failure("pre-empted".to_string()));
                    tracing::info!(item = %slot.item.item_id, played_s = proof.played.as_secs_f64(), reason = %reason, "preempted");
                    actions.push(Action::Record(self.finish_entry(
                        &slot,
                        now,
                        Outcome::Preempted,
                        Some(reason),
                        Some(proof),
                    )));
                    self.after_end(&slot, now);
                }
            }
            PlayoutEvent::Failed { id, reason, proof } => {
                if let Some(slot) = self.take_slot(id) {
                    tracing::warn!(item = %slot.item.item_id, reason = %reason, "failed");
                    let entry = self.finish_entry(
                        &slot,
                        now,
                        Outcome::Failed,
                        Some(Reason::Failure(reason)),
                        proof,
                    );
                    self.tone_ended(&slot, entry.ended.unwrap_or(now), now);
                    actions.push(Action::Record(entry));
                    self.after_end(&slot, now);
                }
            }
        }
        if actions.iter().any(|a| matches!(a, Action::Record(_))) {
            actions.push(Action::Playing(self.playing_now()));
            actions.extend(self.tick(now));
        }
        actions
    }

    /// Stops for shutdown: the sounding item is faded out and will be recorded as
    /// pre-empted "station shutdown"; prepared ones are cancelled and left unrecorded
    /// (the next start records them from the horizon). Returns what to do; the caller
    /// then waits for the player's reports until [`Core::is_idle`].
    pub fn shutdown(&mut self, now: DateTime<Utc>) -> Vec<Action> {
        let mut actions = Vec::new();
        if let Some(next) = self.next.take() {
            actions.push(Action::Cancel { id: next.id });
        }
        if let Some(cur) = self.current.take() {
            if cur.started.is_some() || cur.start_at.is_some_and(|t| t <= now) {
                self.stop(cur, now, Reason::Shutdown, &mut actions);
            } else {
                actions.push(Action::Cancel { id: cur.id });
            }
        }
        self.waiting.clear();
        self.emergencies.clear();
        actions
    }

    fn expire(&mut self, now: DateTime<Utc>, actions: &mut Vec<Action>) {
        let blocker = self.current.as_ref().map(|c| c.item.item_id.clone());
        if let Some(next) = &self.next
            && next.follows
            && next.started.is_none()
            && now > next.item.deadline()
            && let Some(next) = self.next.take()
        {
            let reason = match &blocker {
                Some(b) => Reason::YieldedTo(b.clone()),
                None => Reason::TooLate,
            };
            tracing::warn!(item = %next.item.item_id, planned = %next.item.planned, reason = %reason, "missed");
            actions.push(Action::Cancel { id: next.id });
            let mut entry = next.item.entry(Outcome::Missed, Some(reason));
            if next.sha256.is_some() {
                entry.audio_sha256 = next.sha256;
            }
            actions.push(Action::Record(entry));
        }
        let mut keep = Vec::with_capacity(self.waiting.len());
        for item in std::mem::take(&mut self.waiting) {
            if now > item.deadline() {
                let reason = match &blocker {
                    Some(b) => Reason::YieldedTo(b.clone()),
                    None => Reason::TooLate,
                };
                tracing::warn!(item = %item.item_id, planned = %item.planned, reason = %reason, "missed");
                self.done.insert(item.key());
                actions.push(Action::Record(item.entry(Outcome::Missed, Some(reason))));
            } else {
                keep.push(item);
            }
        }
        self.waiting = keep;
        let mut keep = VecDeque::new();
        for item in std::mem::take(&mut self.emergencies) {
            if now > item.deadline() {
                tracing::warn!(item = %item.item_id, "missed: emergency expired while queued");
                self.done.insert(item.key());
                actions
                    .push(Action::Record(item.entry(Outcome::Missed, Some(Reason::Expired(None)))));
            } else {
                keep.push_back(item);
            }
        }
        self.emergencies = keep;
    }

    fn arm(&mut self, item: Item, actions: &mut Vec<Action>) -> Slot {
        let id = self.next_id;
        self.next_id += 1;
        self.done.insert(item.key());
        tracing::info!(item = %item.item_id, id, planned = %item.planned, "armed");
        actions.push(Action::Prepare { id, item: item.clone() });
        Slot {
            id,
            item,
            sha256: None,
            start_at: None,
            started: None,
            stopping: None,
            follows: false,
        }
    }

    /// Withdraws `slot` from the player before it sounded and queues its item again (a
    /// bulletin first among the emergencies, a programme among the waiting items).
    fn requeue(&mut self, slot: Slot, actions: &mut Vec<Action>) {
        actions.push(Action::Cancel { id: slot.id });
        self.done.remove(&slot.item.key());
        if slot.item.bulletin.is_some() {
            self.emergencies.push_front(slot.item);
        } else {
            self.waiting.push(slot.item);
        }
    }

    fn start(&mut self, mut slot: Slot, at: DateTime<Utc>, actions: &mut Vec<Action>) {
        slot.start_at = Some(at);
        actions.push(Action::StartAt { id: slot.id, at });
        self.current = Some(slot);
    }

    /// Stops `slot` for `why`: [`Reason::Shutdown`], [`Reason::Cancelled`] or
    /// [`Reason::PreemptedBy`] the item taking its place.
    fn stop(&mut self, mut slot: Slot, now: DateTime<Utc>, why: Reason, actions: &mut Vec<Action>) {
        let sounding = slot.started.is_some() || slot.start_at.is_some_and(|t| t <= now);
        if sounding {
            tracing::info!(item = %slot.item.item_id, reason = %why, "pre-empting");
            slot.stopping = Some(why);
            actions.push(Action::Preempt { id: slot.id });
            self.stopping.insert(slot.id, slot);
        } else {
            // Never reached the speaker: it waits again (and may yet start late).
            tracing::info!(item = %slot.item.item_id, by = %why, "disarmed before starting");
            self.requeue(slot, actions);
        }
    }

    fn slot_mut(&mut self, id: u64) -> Option<&mut Slot> {
        if let Some(s) = self.current.as_mut().filter(|s| s.id == id) {
            return Some(s);
        }
        if let Some(s) = self.next.as_mut().filter(|s| s.id == id) {
            return Some(s);
        }
        self.stopping.get_mut(&id)
    }

    fn take_slot(&mut self, id: u64) -> Option<Slot> {
        if self.current.as_ref().is_some_and(|s| s.id == id) {
            return self.current.take();
        }
        if self.next.as_ref().is_some_and(|s| s.id == id) {
            return self.next.take();
        }
        self.stopping.remove(&id)
    }

    fn finish_entry(
        &self,
        slot: &Slot,
        now: DateTime<Utc>,
        outcome: Outcome,
        reason: Option<Reason>,
        proof: Option<Proof>,
    ) -> Entry {
        let mut entry = slot.item.entry(outcome, reason);
        if slot.sha256.is_some() {
            entry.audio_sha256 = slot.sha256.clone();
        }
        if let Some(started) = slot.started {
            entry.started = Some(started);
            entry.delay_ms = Some((started - slot.item.planned).num_milliseconds());
            let played = proof.map(|p| p.played).unwrap_or_default();
            entry.played_secs = Some(played.as_secs_f64());
            entry.ended = Some(
                Duration::from_std(played)
                    .ok()
                    .and_then(|d| started.checked_add_signed(d))
                    .unwrap_or(now),
            );
        }
        entry.levels = proof.and_then(|p| p.levels);
        entry.relay = proof.and_then(|p| p.relay);
        if matches!(outcome, Outcome::Late | Outcome::Played | Outcome::Relayed) {
            tracing::info!(item = %slot.item.item_id, outcome = %outcome, delay_ms = ?entry.delay_ms, "ended");
        }
        entry
    }

    /// A bulletin's attention tone ended (at the speaker: `ended`; reported at `now`):
    /// its first play, queued behind it since the push, is planned for the moment the
    /// tone ends — that is its plan, so starting then is `played`, not `late` by the
    /// tone's length. Never earlier than it was planned, nor later than `now` (a player
    /// that reports the end before the last buffered samples are heard).
    fn tone_ended(&mut self, slot: &Slot, ended: DateTime<Utc>, now: DateTime<Utc>) {
        let Some(id) = slot.item.item_id.strip_suffix(":tone") else { return };
        if slot.item.bulletin.is_none() {
            return;
        }
        if let Some(play) =
            self.emergencies.iter_mut().find(|e| e.item_id == id && e.bulletin.is_some())
        {
            play.planned = play.planned.max(ended.min(now));
        }
    }

    /// Re-queues the next repetition of a bulletin that ended.
    fn after_end(&mut self, slot: &Slot, now: DateTime<Utc>) {
        if let Some(b) = &slot.item.bulletin
            && b.repeats_left > 0
            && slot.stopping != Some(Reason::Shutdown)
            && !self.cancelled.contains(&slot.item.item_id)
        {
            let mut again = slot.item.clone();
            // Saturating: an interval is bounded by the bulletin's validity, but the core
            // must not panic on any duration it is handed.
            again.planned =
                later(now, b.interval).max(later(slot.item.planned, Duration::milliseconds(1)));
            if b.expires.is_some_and(|e| again.planned > e) {
                tracing::info!(item = %slot.item.item_id, "no further repeat: the bulletin expires first");
                return;
            }
            again.bulletin = Some(Bulletin {
                repeats_left: b.repeats_left - 1,
                expires: b.expires,
                interval: b.interval,
            });
            self.emergencies.push_front(again);
        }
    }

    /// The items sounding now (started, not yet reported ended).
    pub fn playing_now(&self) -> Vec<PlayingNow> {
        let slots = self.current.iter().chain(self.stopping.values());
        slots
            .filter_map(|s| {
                Some(PlayingNow {
                    item_id: s.item.item_id.clone(),
                    title: s.item.title.clone(),
                    layer: s.item.layer,
                    priority: s.item.priority,
                    planned: s.item.planned,
                    started: s.started?,
                    audio_sha256: s.sha256.clone(),
                })
            })
            .collect()
    }
}

/// The audio file an item needs, if it is a path (content-addressed audio is looked up
/// in the cache by the shell); for a relayed stream, its fallback file (empty without).
pub fn audio_path(item: &Item, cache_dir: &std::path::Path) -> PathBuf {
    file_path(&item.audio, cache_dir).unwrap_or_default()
}

/// The file `audio` plays from (a stream's fallback), `None` for a stream without one.
pub fn file_path(audio: &AudioRef, cache_dir: &std::path::Path) -> Option<PathBuf> {
    match audio.file()? {
        AudioRef::Path(p) => Some(p.clone()),
        AudioRef::Sha256(hex) => Some(cache_dir.join(hex)),
        AudioRef::Stream(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use std::collections::BTreeMap;

    const FADE_MS: i64 = 300;

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, m, 0).single().expect("valid time")
    }

    fn item(
        id: &str,
        layer: Layer,
        priority: Priority,
        planned: DateTime<Utc>,
        max_delay_m: i64,
    ) -> Item {
        Item {
            item_id: id.to_string(),
            title: id.to_uppercase(),
            layer,
            priority,
            planned,
            max_delay: Duration::minutes(max_delay_m),
            audio: AudioRef::Path(PathBuf::from(format!("{id}.mp3"))),
            gain_db: 0.0,
            bulletin: None,
        }
    }

    /// (item, outcome, started, reason) of a record.
    type Summary = (String, Outcome, Option<DateTime<Utc>>, Option<String>);

    /// A player that starts exactly when told, plays each item for its length and takes
    /// `FADE_MS` to fade out: enough to check every decision without audio.
    struct Sim {
        core: Core,
        now: DateTime<Utc>,
        lengths: HashMap<String, Duration>,
        broken: HashSet<String>,
        names: HashMap<u64, String>,
        /// id -> (start, started reported)
        starts: BTreeMap<u64, (DateTime<Utc>, bool)>,
        /// id -> instant the fade ends
        fades: BTreeMap<u64, DateTime<Utc>>,
        failures: Vec<u64>,
        records: Vec<Entry>,
        playing_state: Vec<PlayingNow>,
    }

    impl Sim {
        fn new(start: DateTime<Utc>, items: Vec<Item>, lengths: &[(&str, i64)]) -> Self {
            let mut core =
                Core::new(std::time::Duration::from_secs(2), std::time::Duration::from_millis(300));
            let actions = core.set_candidates(items);
            assert!(actions.is_empty());
            let mut sim = Self {
                core,
                now: start,
                lengths: lengths
                    .iter()
                    .map(|(k, s)| (k.to_string(), Duration::seconds(*s)))
                    .collect(),
                broken: HashSet::new(),
                names: HashMap::new(),
                starts: BTreeMap::new(),
                fades: BTreeMap::new(),
                failures: Vec::new(),
                records: Vec::new(),
                playing_state: Vec::new(),
            };
            let actions = sim.core.tick(start);
            sim.apply(actions);
            sim
        }

        fn apply(&mut self, actions: Vec<Action>) {
            for action in actions {
                match action {
                    Action::Prepare { id, item } => {
                        if self.broken.contains(&item.item_id) {
                            self.failures.push(id);
                        }
                        self.names.insert(id, item.item_id);
                    }
                    Action::StartAt { id, at } => {
                        if !self.failures.contains(&id) {
                            self.starts.insert(id, (at, false));
                        }
                    }
                    Action::Preempt { id } => {
                        self.fades.insert(id, self.now + Duration::milliseconds(FADE_MS));
                    }
                    Action::Cancel { id } => {
                        self.starts.remove(&id);
                    }
                    Action::Record(e) => self.records.push(e),
                    Action::Playing(p) => self.playing_state = p,
                }
            }
        }

        fn end_of(&self, id: u64) -> Option<DateTime<Utc>> {
            let (start, started) = self.starts.get(&id)?;
            started.then(|| *start + self.lengths[&self.names[&id]])
        }

        /// Runs the world until `until`, delivering player reports at their instants.
        fn run_until(&mut self, until: DateTime<Utc>) {
            for _ in 0..10_000 {
                if let Some(id) = self.failures.pop() {
                    let ev = PlayoutEvent::Failed {
                        id,
                        reason: "audio corrupt: no suitable format reader found".into(),
                        proof: None,
                    };
                    let a = self.core.on_event(self.now, ev);
                    self.apply(a);
                    continue;
                }
                let mut next: Option<(DateTime<Utc>, u8, u64)> = None;
                let mut consider = |at: DateTime<Utc>, kind: u8, id: u64| {
                    if next.is_none_or(|n| (at, kind) < (n.0, n.1)) {
                        next = Some((at, kind, id));
                    }
                };
                for (id, (start, started)) in &self.starts {
                    if !started {
                        consider((*start).max(self.now), 1, *id);
                    }
                }
                for (id, at) in &self.fades {
                    consider(*at, 0, *id);
                }
                for id in self.starts.keys() {
                    if let Some(end) = self.end_of(*id)
                        && !self.fades.contains_key(id)
                    {
                        consider(end, 2, *id);
                    }
                }
                if let Some(w) = self.core.next_wake(self.now) {
                    consider(w, 3, 0);
                }
                let Some((at, kind, id)) = next.filter(|n| n.0 <= until) else {
                    self.now = until;
                    let a = self.core.tick(until);
                    self.apply(a);
                    return;
                };
                self.now = at;
                let actions = match kind {
                    0 => {
                        let (start, _) = self.starts.remove(&id).unwrap_or((at, true));
                        self.fades.remove(&id);
                        let played = (at - start).to_std().unwrap_or_default();
                        self.core.on_event(
                            at,
                            PlayoutEvent::Preempted {
                                id,
                                proof: Proof { played, levels: None, relay: None },
                            },
                        )
                    }
                    1 => {
                        if let Some(s) = self.starts.get_mut(&id) {
                            s.1 = true;
                        }
                        self.core.on_event(at, PlayoutEvent::Started { id, at })
                    }
                    2 => {
                        let (start, _) = self.starts.remove(&id).unwrap_or((at, true));
                        let played = (at - start).to_std().unwrap_or_default();
                        self.core.on_event(
                            at,
                            PlayoutEvent::Finished {
                                id,
                                proof: Proof { played, levels: None, relay: None },
                            },
                        )
                    }
                    _ => self.core.tick(at),
                };
                self.apply(actions);
            }
            panic!("simulation did not settle");
        }

        fn summary(&self) -> Vec<Summary> {
            self.records
                .iter()
                .map(|e| (e.item_id.clone(), e.outcome, e.started, e.reason.clone()))
                .collect()
        }
    }

    use Layer::{Local, Provincial};
    use Priority::Normal;

    #[test]
    fn a_day_plays_in_order_on_time() {
        let items = vec![
            item("tiep-song", Provincial, Normal, t(5, 30), 5),
            item("huyen", Local, Normal, t(5, 45), 5),
            item("xa", Local, Normal, t(6, 0), 5),
            item("chieu", Provincial, Normal, t(17, 0), 5),
        ];
        let lengths = [("tiep-song", 900), ("huyen", 600), ("xa", 600), ("chieu", 1200)];
        let mut sim = Sim::new(t(5, 0), items, &lengths);
        sim.run_until(t(18, 0));
        assert_eq!(
            sim.summary(),
            vec![
                ("tiep-song".into(), Outcome::Played, Some(t(5, 30)), None),
                ("huyen".into(), Outcome::Played, Some(t(5, 45)), None),
                ("xa".into(), Outcome::Played, Some(t(6, 0)), None),
                ("chieu".into(), Outcome::Played, Some(t(17, 0)), None),
            ]
        );
        assert_eq!(sim.records[0].played_secs, Some(900.0));
        assert_eq!(sim.records[0].ended, Some(t(5, 45)));
        assert!(sim.core.is_idle());
        assert!(sim.playing_state.is_empty());
    }

    #[test]
    fn priority_preempts_normal_so_it_starts_exactly_on_time() {
        let items = vec![
            item("nhac", Local, Normal, t(10, 0), 5),
            item("canh-bao", Provincial, Priority::Priority, t(10, 5), 5),
        ];
        let mut sim = Sim::new(t(9, 0), items, &[("nhac", 1800), ("canh-bao", 120)]);
        sim.run_until(t(11, 0));
        let s = sim.summary();
        assert_eq!(
            s[0],
            (
                "nhac".into(),
                Outcome::Preempted,
                Some(t(10, 0)),
                Some("pre-empted by canh-bao".into())
            )
        );
        assert_eq!(s[1], ("canh-bao".into(), Outcome::Played, Some(t(10, 5)), None));
        assert_eq!(sim.records[0].played_secs, Some(299.7), "faded out to end just before 10:05");
        assert_eq!(s.len(), 2, "a pre-empted item is not resumed: {s:?}");
    }

    #[test]
    fn provincial_preempts_local_at_equal_priority_but_local_yields_to_provincial() {
        let items = vec![
            item("xa-1", Local, Normal, t(10, 0), 5),
            item("tinh", Provincial, Normal, t(10, 2), 5),
            // Due while `tinh` plays: waits, starts late when it ends (10:22 < 10:15+10m).
            item("xa-2", Local, Normal, t(10, 15), 10),
            // Due while `tinh` plays, cannot wait long enough.
            item("xa-3", Local, Normal, t(10, 16), 2),
        ];
        let lengths = [("xa-1", 600), ("tinh", 1200), ("xa-2", 60), ("xa-3", 60)];
        let mut sim = Sim::new(t(9, 0), items, &lengths);
        sim.run_until(t(11, 0));
        let s = sim.summary();
        assert_eq!(
            s[0],
            ("xa-1".into(), Outcome::Preempted, Some(t(10, 0)), Some("pre-empted by tinh".into()))
        );
        assert_eq!(s[1], ("xa-3".into(), Outcome::Missed, None, Some("yielded to tinh".into())));
        assert_eq!(s[2], ("tinh".into(), Outcome::Played, Some(t(10, 2)), None));
        assert_eq!(s[3], ("xa-2".into(), Outcome::Late, Some(t(10, 22)), None));
        assert_eq!(sim.records[3].delay_ms, Some(7 * 60 * 1000));
    }

    #[test]
    fn same_instant_provincial_goes_first_and_local_waits() {
        let items = vec![
            item("xa", Local, Normal, t(10, 0), 5),
            item("tinh", Provincial, Normal, t(10, 0), 5),
        ];
        let mut sim = Sim::new(t(9, 0), items, &[("xa", 60), ("tinh", 120)]);
        sim.run_until(t(11, 0));
        let s = sim.summary();
        assert_eq!(s[0], ("tinh".into(), Outcome::Played, Some(t(10, 0)), None));
        assert_eq!(s[1], ("xa".into(), Outcome::Late, Some(t(10, 2)), None));
    }

    #[test]
    fn failed_audio_is_recorded_and_the_next_item_plays() {
        let items = vec![
            item("hong", Provincial, Normal, t(10, 0), 5),
            item("sau", Provincial, Normal, t(10, 10), 5),
        ];
        let mut sim = Sim::new(t(9, 0), items, &[("hong", 60), ("sau", 60)]);
        sim.broken.insert("hong".into());
        sim.run_until(t(11, 0));
        let s = sim.summary();
        assert_eq!(s[0].0, "hong");
        assert_eq!(s[0].1, Outcome::Failed);
        assert!(s[0].3.as_deref().is_some_and(|r| r.contains("corrupt")));
        assert_eq!(s[1], ("sau".into(), Outcome::Played, Some(t(10, 10)), None));
    }

    #[test]
    fn emergencies_preempt_everything_queue_among_themselves_and_repeat() {
        let items = vec![item("uu-tien", Provincial, Priority::Priority, t(10, 0), 5)];
        let mut sim = Sim::new(t(9, 0), items, &[("uu-tien", 1200), ("lu", 60), ("bao", 30)]);
        sim.run_until(t(10, 1));
        let mut lu = item("lu", Provincial, Priority::Emergency, t(10, 1), 60);
        lu.bulletin = Some(Bulletin { repeats_left: 1, expires: None, interval: Duration::zero() });
        sim.core.push_emergency(lu);
        let mut bao = item("bao", Provincial, Priority::Emergency, t(10, 1), 60);
        bao.bulletin =
            Some(Bulletin { repeats_left: 0, expires: None, interval: Duration::zero() });
        sim.core.push_emergency(bao);
        let a = sim.core.tick(sim.now);
        sim.apply(a);
        sim.run_until(t(11, 0));
        let s = sim.summary();
        let ms = |x: i64| Some(t(10, 1) + Duration::milliseconds(x));
        assert_eq!(
            s[0],
            ("uu-tien".into(), Outcome::Preempted, Some(t(10, 0)), Some("pre-empted by lu".into()))
        );
        assert_eq!(s[1], ("lu".into(), Outcome::Played, ms(300), None));
        // The repetition goes before the next queued bulletin, then that one.
        assert_eq!(s[2].0, "lu");
        assert_eq!(s[2].2, ms(60_300));
        assert_eq!(s[3], ("bao".into(), Outcome::Late, ms(120_300), None));
        assert_eq!(s.len(), 4);
    }

    #[test]
    fn a_priority_bulletin_preempts_normal_items_and_yields_to_emergencies() {
        let items = vec![
            item("nhac", Local, Normal, t(10, 0), 5),
            item("tinh", Provincial, Priority::Priority, t(10, 30), 5),
        ];
        let lengths = [("nhac", 1800), ("canh-bao", 120), ("lu", 60), ("mua", 60), ("tinh", 60)];
        let mut sim = Sim::new(t(9, 0), items, &lengths);
        sim.run_until(t(10, 1));
        let bulletin = |id: &str, priority, at| {
            let mut b = item(id, Provincial, priority, at, 60);
            b.bulletin =
                Some(Bulletin { repeats_left: 0, expires: None, interval: Duration::zero() });
            b
        };
        // A priority bulletin pre-empts the normal programme at once.
        sim.core.push_emergency(bulletin("canh-bao", Priority::Priority, t(10, 1)));
        let a = sim.core.tick(sim.now);
        sim.apply(a);
        sim.run_until(t(10, 2));
        // An emergency pre-empts it; a second priority bulletin, queued first, waits
        // behind the emergency.
        sim.core.push_emergency(bulletin("mua", Priority::Priority, t(10, 2)));
        sim.core.push_emergency(bulletin("lu", Priority::Emergency, t(10, 2)));
        let a = sim.core.tick(sim.now);
        sim.apply(a);
        sim.run_until(t(11, 0));
        let s = sim.summary();
        let ms = |m: u32, x: i64| Some(t(10, m) + Duration::milliseconds(x));
        assert_eq!(
            s[0],
            (
                "nhac".into(),
                Outcome::Preempted,
                Some(t(10, 0)),
                Some("pre-empted by canh-bao".into())
            )
        );
        assert_eq!(
            s[1],
            ("canh-bao".into(), Outcome::Preempted, ms(1, 300), Some("pre-empted by lu".into()))
        );
        assert_eq!(s[2], ("lu".into(), Outcome::Played, ms(2, 300), None));
        assert_eq!(s[3].0, "mua");
        assert_eq!(s[3].2, ms(3, 300), "the priority bulletin follows the emergency");
        // The provincial priority programme is not interrupted by a priority bulletin,
        // and is not late behind it either (mua ended at 10:04).
        assert_eq!(s[4], ("tinh".into(), Outcome::Played, Some(t(10, 30)), None));
        assert_eq!(s.len(), 5, "{s:?}");
    }

    #[test]
    fn a_priority_bulletin_waits_for_a_provincial_priority_item() {
        let items = vec![item("tinh", Provincial, Priority::Priority, t(10, 0), 5)];
        let mut sim = Sim::new(t(9, 0), items, &[("tinh", 120), ("canh-bao", 60)]);
        sim.run_until(t(10, 1));
        let mut b = item("canh-bao", Provincial, Priority::Priority, t(10, 1), 60);
        b.bulletin = Some(Bulletin { repeats_left: 0, expires: None, interval: Duration::zero() });
        sim.core.push_emergency(b);
        let a = sim.core.tick(sim.now);
        sim.apply(a);
        sim.run_until(t(11, 0));
        let s = sim.summary();
        assert_eq!(s[0], ("tinh".into(), Outcome::Played, Some(t(10, 0)), None));
        assert_eq!(s[1].0, "canh-bao");
        assert_eq!(s[1].2, Some(t(10, 2)), "starts when the programme ends");
    }

    #[test]
    fn time_arithmetic_saturates_instead_of_panicking() {
        let end = DateTime::<Utc>::MAX_UTC;
        assert_eq!(later(end, Duration::milliseconds(1)), end);
        assert_eq!(later(t(9, 0), Duration::MAX), end);
        assert_eq!(
            before(DateTime::<Utc>::MIN_UTC, Duration::seconds(1)),
            DateTime::<Utc>::MIN_UTC
        );
        assert_eq!(later(t(9, 0), Duration::seconds(1)), t(9, 0) + Duration::seconds(1));
    }

    #[test]
    fn repeats_wait_their_interval_and_a_cancel_stops_the_play_and_every_repeat() {
        let items = vec![item("dai", Local, Normal, t(9, 0), 5)];
        let mut sim = Sim::new(t(8, 59), items, &[("dai", 3600), ("lu", 60)]);
        sim.run_until(t(9, 1));
        let mut lu = item("lu", Provincial, Priority::Emergency, t(9, 1), 60);
        lu.bulletin =
            Some(Bulletin { repeats_left: 3, expires: None, interval: Duration::minutes(2) });
        sim.core.push_emergency(lu);
        let a = sim.core.tick(sim.now);
        sim.apply(a);
        // First play 09:01:00.3-09:02:00.3, the repeat 2 min after its end.
        sim.run_until(t(9, 4) + Duration::seconds(30));
        let a = sim.core.cancel_bulletin("lu", sim.now);
        sim.apply(a);
        sim.run_until(t(10, 30));
        let s = sim.summary();
        let ms = |x: i64| Some(t(9, 1) + Duration::milliseconds(x));
        assert_eq!(s[0].0, "dai");
        assert_eq!(s[0].1, Outcome::Preempted);
        assert_eq!(s[1], ("lu".into(), Outcome::Played, ms(300), None));
        assert_eq!(s[2].0, "lu");
        assert_eq!(s[2].2, ms(180_300));
        assert_eq!(s[2].1, Outcome::Preempted);
        assert_eq!(s[2].3, Some(Reason::Cancelled.to_string()));
        // No later repeat airs.
        assert_eq!(s.iter().filter(|r| r.0 == "lu").count(), 2, "{s:?}");
    }

    #[test]
    fn a_bulletin_behind_its_own_tone_is_played_on_its_plan_not_late() {
        // A programme plays when a bulletin with its attention tone arrives: the tone
        // pre-empts it (after the fade), the bulletin follows the tone's end.
        let items = vec![item("dai", Local, Normal, t(9, 0), 5)];
        let mut sim = Sim::new(t(8, 59), items, &[("dai", 3600), ("lu:tone", 2), ("lu", 60)]);
        sim.run_until(t(9, 1));
        let bulletin =
            Some(Bulletin { repeats_left: 0, expires: None, interval: Duration::zero() });
        let mut tone = item("lu:tone", Provincial, Priority::Emergency, t(9, 1), 60);
        tone.bulletin = bulletin.clone();
        let mut lu = item("lu", Provincial, Priority::Emergency, t(9, 1), 60);
        lu.bulletin = bulletin;
        sim.core.push_emergency(tone);
        sim.core.push_emergency(lu);
        let a = sim.core.tick(sim.now);
        sim.apply(a);
        sim.run_until(t(9, 5));
        let ms = |x: i64| t(9, 1) + Duration::milliseconds(x);
        let s = sim.summary();
        assert_eq!(s[0].1, Outcome::Preempted, "{s:?}");
        assert_eq!(s[1], ("lu:tone".into(), Outcome::Played, Some(ms(300)), None));
        assert_eq!(s[2], ("lu".into(), Outcome::Played, Some(ms(2_300)), None));
        let play = &sim.records[2];
        assert_eq!(
            (play.planned, play.delay_ms),
            (ms(2_300), Some(0)),
            "planned at the tone's end"
        );
    }

    #[test]
    fn a_cancelled_queued_bulletin_is_recorded_missed() {
        let mut sim = Sim::new(t(9, 0), vec![], &[("a", 600), ("b", 60)]);
        for id in ["a", "b"] {
            let mut e = item(id, Provincial, Priority::Emergency, t(9, 0), 60);
            e.bulletin =
                Some(Bulletin { repeats_left: 0, expires: None, interval: Duration::zero() });
            sim.core.push_emergency(e);
        }
        let acts = sim.core.tick(sim.now);
        sim.apply(acts);
        sim.run_until(t(9, 1));
        let acts = sim.core.cancel_bulletin("b", sim.now);
        sim.apply(acts);
        sim.run_until(t(10, 0));
        let s = sim.summary();
        assert!(
            s.contains(&("b".into(), Outcome::Missed, None, Some(Reason::Cancelled.to_string()))),
            "{s:?}"
        );
        assert_eq!(s.iter().find(|r| r.0 == "a").map(|r| r.1), Some(Outcome::Played));
    }

    #[test]
    fn an_expired_queued_emergency_is_missed() {
        let mut sim = Sim::new(t(9, 0), vec![], &[("a", 600), ("b", 60)]);
        let mut a = item("a", Provincial, Priority::Emergency, t(9, 0), 60);
        a.bulletin = Some(Bulletin { repeats_left: 0, expires: None, interval: Duration::zero() });
        let mut b = item("b", Provincial, Priority::Emergency, t(9, 0), 60);
        b.bulletin =
            Some(Bulletin { repeats_left: 0, expires: Some(t(9, 5)), interval: Duration::zero() });
        sim.core.push_emergency(a);
        sim.core.push_emergency(b);
        let acts = sim.core.tick(sim.now);
        sim.apply(acts);
        sim.run_until(t(10, 0));
        let s = sim.summary();
        assert_eq!(
            s[0],
            ("b".into(), Outcome::Missed, None, Some("expired before it could play".into()))
        );
        assert_eq!(s[1].1, Outcome::Played);
    }

    #[test]
    fn a_removed_item_is_cancelled_and_an_added_one_plays() {
        let mut sim = Sim::new(
            t(9, 0),
            vec![item("cu", Local, Normal, t(10, 0), 5)],
            &[("cu", 60), ("moi", 60)],
        );
        sim.run_until(t(9, 59) + Duration::seconds(59));
        let a = sim.core.set_candidates(vec![item("moi", Local, Normal, t(10, 30), 5)]);
        assert!(matches!(a.as_slice(), [Action::Cancel { .. }]), "{a:?}");
        sim.apply(a);
        sim.run_until(t(11, 0));
        assert_eq!(sim.summary(), vec![("moi".into(), Outcome::Played, Some(t(10, 30)), None)]);
    }

    #[test]
    fn shutdown_fades_the_playing_item_and_records_it() {
        let mut sim = Sim::new(t(9, 0), vec![item("a", Local, Normal, t(9, 0), 5)], &[("a", 600)]);
        sim.run_until(t(9, 1));
        assert_eq!(sim.playing_state.len(), 1, "the sounding item is persisted");
        let a = sim.core.shutdown(sim.now);
        assert!(matches!(a.as_slice(), [Action::Preempt { .. }]), "{a:?}");
        sim.apply(a);
        sim.run_until(t(9, 2));
        assert!(sim.core.is_idle());
        assert_eq!(
            sim.summary(),
            vec![("a".into(), Outcome::Preempted, Some(t(9, 0)), Some("station shutdown".into()))]
        );
        assert!(sim.playing_state.is_empty());
    }

    #[test]
    fn missed_when_nothing_could_start_in_time_and_horizon_tracks_waiting_items() {
        let mut core =
            Core::new(std::time::Duration::from_secs(2), std::time::Duration::from_millis(300));
        core.set_candidates(vec![item("a", Local, Normal, t(9, 0), 5)]);
        assert_eq!(core.horizon(t(9, 3)), t(9, 0));
        let acts = core.tick(t(9, 6));
        assert!(matches!(&acts[0], Action::Record(e) if e.outcome == Outcome::Missed
            && e.reason() == Some(Reason::TooLate)));
        assert_eq!(core.horizon(t(9, 6)), t(9, 6));
    }

    #[test]
    fn back_to_back_items_are_prepared_ahead_and_follow_without_a_gap() {
        let items =
            vec![item("a", Provincial, Normal, t(10, 0), 5), item("b", Local, Normal, t(10, 1), 5)];
        let mut sim = Sim::new(t(9, 0), items, &[("a", 60), ("b", 60)]);
        sim.run_until(t(10, 0) + Duration::seconds(59));
        assert!(
            sim.core.next.as_ref().is_some_and(|n| n.follows && n.start_at == Some(t(10, 1))),
            "b is decoded and its start handed over while a plays"
        );
        sim.run_until(t(11, 0));
        assert_eq!(
            sim.summary(),
            vec![
                ("a".into(), Outcome::Played, Some(t(10, 0)), None),
                ("b".into(), Outcome::Played, Some(t(10, 1)), None)
            ]
        );
    }

    #[test]
    fn a_follower_steps_back_for_something_more_urgent() {
        let items = vec![
            item("dai", Local, Normal, t(10, 0), 5),
            item("sau", Local, Normal, t(10, 1), 30),
            item("gap", Provincial, Normal, t(10, 2), 5),
        ];
        let mut sim = Sim::new(t(9, 0), items, &[("dai", 600), ("sau", 60), ("gap", 60)]);
        sim.run_until(t(11, 0));
        let s = sim.summary();
        assert_eq!(
            s[0],
            ("dai".into(), Outcome::Preempted, Some(t(10, 0)), Some("pre-empted by gap".into()))
        );
        assert_eq!(s[1], ("gap".into(), Outcome::Played, Some(t(10, 2)), None));
        assert_eq!(s[2], ("sau".into(), Outcome::Late, Some(t(10, 3)), None));
    }
}
