//! The contract between stations, central and the command line: every type that crosses
//! a process boundary, the API's paths, the bounds every value keeps, and the one step
//! both sides take from a manifest to schedules. Serde and pure functions only — no IO —
//! and it imports nothing of the project but [`crate::schedule`].
//!
//! - [`signed`]: signed documents as they travel ([`SignedEnvelope`], [`DocumentKind`]).
//! - [`manifest`]: the signed per-station manifest and [`manifest::schedules`].
//! - [`bulletin`]: bulletins, cancels, the event stream, delivery states, approval.
//! - [`cap`]: CAP alerts at central: decisions, the record of alerts, the audit trail.
//! - [`playlog`]: ledger records, outcomes, reasons, the hash chain, pages.
//! - [`status`]: heartbeats and the fleet.
//! - [`report`]: the daily compliance report.
//! - [`library`]: schedule loads, the audio library, targets, error bodies.
//! - [`enrol`]: enrolling a station with a one-time code bound to central's identity.
//! - [`area`]: where a station sits: area paths and what a scope covers.
//! - [`bounds`]: the numeric and size bounds of bulletins (both sides check them).
//! - [`api`]: paths, query parameters, headers.
//! - [`text`]: strings from elsewhere made safe to show.

pub mod api;
pub mod area;
pub mod bounds;
pub mod bulletin;
pub mod cap;
pub mod enrol;
pub mod library;
pub mod live;
pub mod manifest;
pub mod playlog;
pub mod report;
pub mod signed;
pub mod status;
pub mod text;

pub use api::API_PREFIX;
pub use bulletin::*;
pub use cap::*;
pub use library::*;
pub use manifest::*;
pub use playlog::*;
pub use report::*;
pub use signed::*;
pub use status::*;
