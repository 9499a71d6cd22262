//! End to end with real processes: `loa demo` (and Ctrl-C), the README's commands, the
//! playlog across a central outage and SIGKILL, and the emergency path under attack.
//! Each test holds `support::serial()`: they load the machine with several daemons and
//! some assert real-time precision, so they run one at a time.

#[path = "../support/mod.rs"]
mod support;

mod demo;
mod demo_interrupt;
mod hardening;
mod playlog;
mod readme_examples;
