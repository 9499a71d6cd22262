//! The station daemon: loads its configuration and schedules, arms each occurrence on
//! the injected clock, drives the audio player, applies the priority rules, and writes
//! exactly one ledger record per planned item.

pub mod config;
pub mod core;

pub use config::{ConfigError, StationConfig};
