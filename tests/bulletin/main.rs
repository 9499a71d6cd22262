//! Urgent bulletins: the receiver and resume on a manual clock, and with real processes
//! (`e2e`, `restart`), and two central replicas on one PostgreSQL database (`replicas`).

#[path = "../support/mod.rs"]
mod support;

mod e2e;
mod receiver;
mod replicas;
mod restart;
mod resume;
