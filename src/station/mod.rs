//! The station daemon: loads its configuration and schedules, arms each occurrence on
//! the injected clock, drives the audio player, applies the priority rules, and writes
//! exactly one ledger record per planned item.
//!
//! - [`config`]: `station.toml` → [`StationConfig`], errors at file:line:column.
//! - [`core`]: the scheduler's decisions as a pure state machine (no IO, no clock).
//! - [`schedules`]: the provincial file and the watched local directory.
//! - [`bulletins`]: the bulletin receiver (event stream, checks, priority download).
//! - [`daemon`]: the IO shell — clock, player, ledger, commands, crash recovery.
//! - [`run()`]: all of it — daemon, receiver, uplink — under one shutdown signal.
//! - [`uplink`]: with central configured, the sync, heartbeats and playlog reporting.
//! - [`enrol`]: `loa station enroll` — token, province key and CA from a one-time code.
//! - [`ledger`]: the durable, hash-chained record of every planned item (SQLite).
//! - [`sync`]: manifests and audio from central into the cache, heartbeats.
//! - [`central_addrs`]: which of central's addresses every request goes to now.

pub mod bulletins;
pub mod central_addrs;
pub mod config;
pub mod core;
pub mod daemon;
pub mod enrol;
pub mod ledger;
pub mod live;
pub mod relay;
mod run;
pub mod schedules;
pub mod sync;
pub mod uplink;

pub use config::{ConfigError, StationConfig};
pub use daemon::{
    AirBulletin, Liveness, NextPlay, Station, StationCommand, StationError, StationHandle,
    StationStatus,
};
pub use run::{RunError, Supervisor, run, run_supervised};
