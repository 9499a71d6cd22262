//! End to end with real processes: `loa demo` (and Ctrl-C), the README's commands, the
//! playlog across a central outage and SIGKILL, and the emergency path under attack.
//! The two that check when items aired against the schedule (`demo`, and `playlog`'s
//! central outage) hold `support::serial()`, so they never run at the same time; the
//! others run alongside them.

#[path = "../support/mod.rs"]
mod support;

mod demo;
mod demo_interrupt;
mod hardening;
mod playlog;
mod readme_examples;
