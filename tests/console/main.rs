//! The operators' console: people on the terminal (`users`), the console over real HTTP
//! with a manual clock (`http`: sessions, CSRF, throttling, scoping, audit, two-person
//! rule; `pages`: what each page shows), and in a real headless chromium against a real
//! `loa central` and two real `loa station` processes (`browser`); speaking live from the
//! console over HTTP (`live_http`) and in chromium with a fake microphone against a real
//! central and station (`live_browser`, on the live tests' `rig.rs`).

#[path = "../support/mod.rs"]
mod support;

mod chromium;
mod people;
/// The live tests' rig: a real central and station, the station's WAV air-check.
#[allow(dead_code)]
#[path = "../live/rig.rs"]
mod rig;
mod web;

mod browser;
mod http;
mod live_browser;
mod live_http;
mod pages;
mod users;
