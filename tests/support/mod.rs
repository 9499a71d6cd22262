//! The one test harness, shared by every test binary (each `main.rs` includes it with
//! `#[path = "../support/mod.rs"] mod support;`, a standalone file with
//! `#[path = "support/mod.rs"]`).
//!
//! - [`wait`]: the bounded poll-until every test that waits uses.
//! - [`process`]: the real `loa` binary — one-shot commands, children killed on drop,
//!   `central init`/`station add` through `--format json`, central on `127.0.0.1:0`.
//! - [`central`]: an in-process central on loopback with a manual clock.
//! - [`station`]: an in-process station daemon on a manual clock and a clocked sink.
//! - [`audio`]: WAV writers, damaged copies, signal measurements.
//! - [`pg`]: a PostgreSQL server of its own for a test that stops and starts it.
//! - [`golden`]: a folder of inputs beside their expected outputs (`LOA_BLESS=1`).
//! - [`serial`]: a lock for tests that must not share the machine with each other.
//!
//! Each binary uses a part of it, so unused items are expected.
#![allow(dead_code)]

pub mod audio;
pub mod cap;
pub mod central;
pub mod golden;
pub mod pg;
pub mod playlog;
pub mod process;
pub mod station;
pub mod stream;
pub mod wait;

/// Held by the tests whose assertions bound real time most tightly (a real station's
/// start within milliseconds): in one binary, no two of them run at once. A panicking
/// holder releases it.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}
