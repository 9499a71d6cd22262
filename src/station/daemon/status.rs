//! What the daemon publishes after every decision: its status (for `loa status`, the
//! heartbeat, systemd's `STATUS=` and tests that drive the clock), the next play, and the
//! liveness the watchdog reads.

use chrono::{DateTime, Utc};

use crate::audio::player::OutputState;
use crate::clock::ClockStep;
use crate::station::core::PlayingNow;

/// What the daemon is doing, published after every decision (for `loa status`, the
/// sync's heartbeat, and tests that drive the clock).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StationStatus {
    /// The clock time of the last decision.
    pub at: Option<DateTime<Utc>>,
    /// When the daemon next wakes by itself.
    pub wake: Option<DateTime<Utc>>,
    /// Items handed to the player that are still being decoded.
    pub preparing: usize,
    /// Items sounding now.
    pub playing: Vec<PlayingNow>,
    /// The latest wall-clock step, until the station has run an hour without one.
    pub clock_step: Option<ClockStep>,
    /// The sound output: working, or failed since when and why (reopening meanwhile).
    pub output: OutputState,
    /// The next scheduled play after now (for systemd's status line and logs).
    pub next: Option<NextPlay>,
}

/// A scheduled play still to come.
#[derive(Debug, Clone, PartialEq)]
pub struct NextPlay {
    pub item_id: String,
    pub planned: DateTime<Utc>,
}

/// The proofs of life a watchdog reads: the scheduler's loop and the audio thread each
/// bump their counter every time round (see `service::watchdog`).
#[derive(Debug, Clone)]
pub struct Liveness {
    pub scheduler: std::sync::Arc<std::sync::atomic::AtomicU64>,
    pub audio: std::sync::Arc<std::sync::atomic::AtomicU64>,
}

impl StationStatus {
    /// One line for systemd's `STATUS=` and people: what plays, and what comes next, in
    /// local time (`playing ban-tin-sang, next chuong-bao at 17:40`).
    pub fn summary(&self, tz: chrono_tz::Tz) -> String {
        let mut parts = Vec::new();
        if let OutputState::Failed { since, reason, .. } = &self.output {
            parts.push(format!(
                "sound output failed since {}: {reason}",
                since.with_timezone(&tz).format("%H:%M:%S")
            ));
        }
        match self.playing.first() {
            Some(p) => parts.push(format!("playing {}", p.item_id)),
            None => parts.push("idle".to_string()),
        }
        match &self.next {
            Some(next) => {
                let local = next.planned.with_timezone(&tz);
                let today = self.at.map(|a| a.with_timezone(&tz).date_naive());
                let when = if Some(local.date_naive()) == today {
                    local.format("%H:%M").to_string()
                } else {
                    local.format("%Y-%m-%d %H:%M").to_string()
                };
                parts.push(format!("next {} at {when}", next.item_id));
            }
            None => parts.push("nothing scheduled".to_string()),
        }
        parts.join(", ")
    }
}
