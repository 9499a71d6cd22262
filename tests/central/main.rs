//! Central: the HTTP API in process, sync faults, TLS, the playlog API, and the real
//! `loa central` with the operator CLI (`central init`, `station add`, `audio add`, …),
//! and central on PostgreSQL (over TLS too; replicas deciding CAP alerts at once).

#[path = "../support/mod.rs"]
mod support;

mod api;
mod cap_ingest;
mod cap_replicas;
mod cli;
mod library_gains;
mod operator_cli;
mod playlog_api;
mod postgres;
mod postgres_tls;
mod sync_faults;
mod tls;
