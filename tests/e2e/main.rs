//! End to end with real processes: `loa demo` (and Ctrl-C), the README's commands, the
//! playlog across a central outage and SIGKILL, the emergency path under attack, and CAP
//! alerts from a disaster authority to two stations, and a minute without PostgreSQL.
//! They run two at a time: their checks of when audio aired read the stations' own
//! sink timelines (and allow a late start), not the machine's promptness.

#[path = "../support/mod.rs"]
mod support;

mod cap;
mod demo;
mod demo_interrupt;
mod hardening;
mod playlog;
mod postgres_outage;
mod readme_examples;
