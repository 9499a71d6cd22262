//! Audio: decoding, bad input through the player, the player on a clocked sink, the wav
//! air-check, and (with the `alsa-backend` feature) the real cpal → ALSA path into a file.

#[path = "../support/mod.rs"]
mod support;

mod bad_input;
mod decode;
#[cfg(feature = "alsa-backend")]
mod file_tap;
mod player;
mod wav_sink;
