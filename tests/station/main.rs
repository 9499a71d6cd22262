//! The station daemon: in process on a manual clock (scheduling, clock steps, output
//! loss, tampered audio) and as a real `loa station` (restart after SIGKILL, HTTPS,
//! libfaketime). Those three hold `support::serial()`: they assert real-time precision,
//! so they never run alongside each other.

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod clock;
mod daemon;
mod faketime;
mod https;
mod output;
mod restart;
mod tampered_audio;
