//! CAP warnings: the documents in `tests/cap_documents/`, signatures, areas, the ledger,
//! bounds, fuzzing, the third-party corpus and `loa cap check`. (The allocation-counting
//! entity test is its own binary, `tests/cap_attack.rs`: its global allocator must see
//! nothing else.)

#[path = "../support/mod.rs"]
mod support;

mod area;
mod bounds;
mod cli;
mod corpus;
mod files;
mod fuzz;
mod ledger;
mod signature;
