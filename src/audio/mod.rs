//! Audio: decoding files into samples, the sinks that play them, and the player thread
//! that starts items at exact instants. Knows nothing about schedules or HTTP.
//!
//! - [`decode`]: symphonia → channel conversion → rubato → gain; [`probe`] for reports.
//! - [`sinks`]: the [`Sink`] trait and its backends (`alsa`/`default`, `wav`, `clocked`,
//!   `null`), chosen by name.
//! - [`player`]: [`Player`], its commands and [`PlayerEvent`]s with proof of play.

pub mod decode;
pub mod player;
pub mod sinks;

pub use decode::{AudioFormat, DecodeError, DecodeStats, ProbeReport, Source, probe};
pub use player::{PlayError, Player, PlayerConfig, PlayerEvent, ProofOfPlay, RequestId};
pub use sinks::{Sink, SinkError, SinkOptions};
