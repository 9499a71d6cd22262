//! Schedule files: parsing, diagnostics, expansion, the `loa schedule` CLI, fuzzing.
//! One test binary (each former `tests/schedule_*.rs` is a module here).

#[path = "../support/mod.rs"]
mod support;

mod cli;
mod expand;
mod fuzz;
mod invalid;
mod parse;
