//! Schedule files: TOML → [`Schedule`] + [`Diagnostic`]s, and expansion into
//! [`Occurrence`]s. Pure: no file system, no clock — callers pass text and instants in.
//!
//! The public surface other modules build on (station scheduler, central, CLI) is the
//! set of types in [`model`]; parsing and expansion live beside it.

pub mod model;

pub use model::*;
