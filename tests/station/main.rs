//! The station daemon: in process on a manual clock (scheduling, clock steps, output
//! loss, tampered audio) and as a real `loa station` (restart after SIGKILL, HTTPS,
//! libfaketime, central at two addresses of which the first never answers: `failover`).
//! `restart` (a start within 10 ms) and `faketime` (within 100 ms, after writing a week
//! of records at once) hold `support::serial()`: never both at once.

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod clock;
mod daemon;
mod failover;
mod faketime;
mod https;
mod output;
mod restart;
mod tampered_audio;
