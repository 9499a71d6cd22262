//! Live: a voice into the sound card (ALSA's file plugin as the microphone), a scheduled
//! relay of an HTTP stream (served at real-time pace by a server inside the test, cut on
//! purpose), an emergency pre-empting a relay, a live voice from `loa live` through
//! central to a station, whole and untampered, and a broadcast never spoken ended by
//! central — each with a real `loa central` and a real `loa station` writing a WAV
//! air-check.

#[path = "../support/mod.rs"]
mod support;

mod rig;

mod mic;
mod relay;
mod relay_preempt;
mod tamper;
mod unspoken;
mod voice;
