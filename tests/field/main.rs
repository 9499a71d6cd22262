//! In the field: the Debian package installed with dpkg, systemd's notify protocol read
//! by the test with a real station and central, enrolment with real processes, alerts to
//! operators through a fake webhook and an SMTP receiver, `/metrics` against `loa status`,
//! and the player's idle pause.

#[path = "../support/mod.rs"]
mod support;

mod alerts;
mod deb;
mod enrol;
mod idle;
mod metrics;
mod notify;
