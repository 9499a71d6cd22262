//! Audio: decoding files into samples, the sinks that play them, and the player thread
//! that starts items at exact instants. Knows nothing about schedules or HTTP.
//!
//! - [`capture`]: the sound card's input for a live voice (48 kHz mono, a bounded ring).
//! - [`decode`]: symphonia → channel conversion → rubato → gain → limiter; [`probe`] for
//!   reports.
//! - [`limiter`]: the peak limiter that keeps every sample at or below
//!   [`PEAK_CEILING_DBFS`], whatever gain an item carries.
//! - [`sinks`]: the [`Sink`] trait and its backends (`alsa`/`default`, `wav`, `clocked`,
//!   `null`), chosen by name.
//! - [`feed`]: what the player plays from — a file, or a stream arriving while it plays.
//! - [`relay`]: a stream (a relayed programme, a live voice) with a fixed delay, a
//!   fallback while it is down, and its drop-outs counted.
//! - [`player`]: [`Player`], its commands and [`PlayerEvent`]s with proof of play.

pub mod capture;
pub mod decode;
pub mod feed;
pub mod limiter;
pub mod opus_codec;
pub mod player;
pub mod relay;
pub mod sinks;

pub use decode::{AudioFormat, DecodeError, DecodeStats, ProbeReport, Source, probe};
pub use limiter::{Limiter, PEAK_CEILING_DBFS};
pub use player::{PlayError, Player, PlayerConfig, PlayerEvent, ProofOfPlay, RequestId};
pub use sinks::{Sink, SinkError, SinkOptions};
