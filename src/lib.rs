//! `loa` — scheduled and urgent playout for a provincial network of grassroots radio
//! stations.
//!
//! # Layout
//! - [`schedule`]: TOML schedule files → model + diagnostics; cron expansion. Pure, no IO.
//! - [`audio`]: decoding (symphonia), sinks (cpal, wav, null, clocked), the player thread.
//! - [`clock`]: the one notion of "now" shared by the scheduler and the clocked sink, so
//!   tests drive time instead of waiting for it.
//! - [`ledger`]: the station's durable, hash-chained record of every planned item (SQLite).
//! - [`station`]: the station daemon — config, scheduler, player control, recovery.
//! - [`cap`]: CAP 1.2 warnings from the disaster authorities → bulletin plans. Pure, no IO.
//! - [`demo`]: the sample schedules shifted to play within seconds, for `loa demo`.
//! - [`text`]: strings from elsewhere made safe to show (no control characters).
//! - [`cli`]: one module per subcommand; the binary in `main.rs` only dispatches.
//!
//! See ARCHITECTURE.md for the invariants each module keeps.

pub mod audio;
pub mod cap;
pub mod central;
pub mod cli;
pub mod clock;
pub mod demo;
pub mod ledger;
pub mod protocol;
pub mod schedule;
pub mod signing;
pub mod station;
pub mod store;
pub mod sync;
#[doc(hidden)]
pub mod testing;
pub mod text;
