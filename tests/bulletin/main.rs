//! Urgent bulletins: the receiver and resume on a manual clock, and with real processes
//! (`e2e`, `restart`).

#[path = "../support/mod.rs"]
mod support;

mod e2e;
mod receiver;
mod restart;
mod resume;
