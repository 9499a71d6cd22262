//! How each station is doing: its heartbeat, and the fleet as `loa status` shows it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::bounds;
use super::playlog::PlaylogSummary;

/// Station → central, every minute or so: how the station is doing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// Last manifest version the station verified and holds.
    pub manifest_version: Option<u64>,
    /// Station clock minus central clock, milliseconds (positive: station is ahead).
    pub clock_offset_ms: Option<i64>,
    /// Everything needed up to this instant is cached.
    pub ready_until: Option<DateTime<Utc>>,
    /// Bytes of audio still to download.
    pub missing_bytes: u64,
    pub disk_free_bytes: Option<u64>,
    /// Item id or bulletin id now on air, if any.
    pub now_playing: Option<String>,
    /// `ok`, or what is wrong with the sound output.
    pub sink_health: String,
    /// The station's own clock when it sent this.
    pub sent_at: DateTime<Utc>,
    /// The latest step of the station's wall clock, until it has run an hour without
    /// one (absent from older stations).
    #[serde(default)]
    pub clock_step: Option<ClockStepReport>,
    /// What `timedatectl` says: is the system clock synchronised (NTP)? Absent where it
    /// cannot tell.
    #[serde(default)]
    pub clock_synchronized: Option<bool>,
    /// The station plans by central's time, its own clock being more than 5 s off.
    #[serde(default)]
    pub central_time: bool,
    /// The sound output failed at `since` and has not played since (being reopened).
    #[serde(default)]
    pub output_failed: Option<OutputFailure>,
}

/// A step of a station's wall clock (NTP, a person setting the date).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClockStepReport {
    /// The station's clock just after the step.
    pub at: DateTime<Utc>,
    /// Positive: forward; negative: back. Milliseconds.
    pub by_ms: i64,
}

/// Why a station's sound output is down, since when.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputFailure {
    pub since: DateTime<Utc>,
    /// At most [`OutputFailure::MAX_REASON`] characters.
    pub reason: String,
}

impl OutputFailure {
    /// The longest reason a station sends (longer ones are cut).
    pub const MAX_REASON: usize = 300;

    pub fn new(since: DateTime<Utc>, reason: &str) -> Self {
        Self { since, reason: reason.chars().take(Self::MAX_REASON).collect() }
    }
}

impl Heartbeat {
    /// Whether the cache holds what the station needs: all its audio, or everything
    /// needed in the next 24 hours (as `loa status` shows `ready`).
    pub fn cache_ready(&self, now: DateTime<Utc>) -> bool {
        self.cache_ready_for(now, chrono::Duration::hours(24))
    }

    /// [`Heartbeat::cache_ready`] for another horizon.
    pub fn cache_ready_for(&self, now: DateTime<Utc>, horizon: chrono::Duration) -> bool {
        match self.ready_until {
            Some(_) if self.missing_bytes == 0 => true,
            Some(until) => until - now >= horizon,
            None => false,
        }
    }

    /// The station's free texts made safe to store and show: control characters
    /// replaced, each cut at [`bounds::MAX_REASON_CHARS`].
    pub fn sanitise(&mut self) {
        bounds::sanitise(&mut self.now_playing);
        let mut health = Some(std::mem::take(&mut self.sink_health));
        bounds::sanitise(&mut health);
        self.sink_health = health.unwrap_or_default();
        if let Some(failure) = self.output_failed.as_mut() {
            let mut reason = Some(std::mem::take(&mut failure.reason));
            bounds::sanitise(&mut reason);
            failure.reason =
                reason.unwrap_or_default().chars().take(OutputFailure::MAX_REASON).collect();
        }
    }
}

/// Central → station: the heartbeat was stored; `server_time` lets the station estimate
/// its clock offset (midpoint of send and receive).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeartbeatAck {
    pub server_time: DateTime<Utc>,
}

/// One line of `loa status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StationStatus {
    pub id: String,
    pub name: String,
    pub district: String,
    /// Latest manifest version central issued for this station.
    pub issued_version: Option<u64>,
    pub last_seen: Option<DateTime<Utc>>,
    pub heartbeat: Option<Heartbeat>,
    /// What central holds of this station's playlog (absent from older servers).
    #[serde(default)]
    pub playlog: PlaylogSummary,
}

/// Central → operator: the fleet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FleetStatus {
    pub server_time: DateTime<Utc>,
    pub stations: Vec<StationStatus>,
}
