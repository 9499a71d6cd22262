//! Schedule files: TOML → [`Schedule`] + [`Diagnostic`]s, and expansion into
//! [`Occurrence`]s. Pure: no file system, no clock — callers pass text and instants in.
//! The one check that needs the file system, [`check_files`], takes the question
//! ("does this path exist?") as a function, so the caller owns the IO.
//!
//! - [`model`]: the types other modules build on.
//! - [`parse`](parse()): text → [`Parsed`] (schedule only when error-free, and every
//!   diagnostic).
//! - [`expand`]: plays in UTC with defined DST behaviour; [`Timeline`] merges files and
//!   finds overlaps.

pub mod expand;
pub mod model;
mod parse;

use std::collections::HashMap;
use std::path::Path;

pub use expand::{Timeline, first_play, to_instant};
pub use model::*;
pub use parse::limits::{self, MAX_SOURCE_BYTES};
pub use parse::{DEFAULT_MAX_DELAY, DEFAULT_TIMEZONE, parse, parse_duration};

/// Errors for every audio path in `parsed` for which `exists` says no, at the line and
/// column of its `audio` value. `origin` is the name the file is reported under. Each
/// distinct path is asked about once.
pub fn check_files(
    parsed: &Parsed,
    origin: &str,
    exists: &dyn Fn(&Path) -> bool,
) -> Vec<Diagnostic> {
    let mut known: HashMap<&Path, bool> = HashMap::new();
    let mut out = Vec::new();
    for (audio, pos) in &parsed.audio {
        let AudioRef::Path(path) = audio else { continue };
        if *known.entry(path).or_insert_with(|| exists(path)) {
            continue;
        }
        out.push(Diagnostic::error(
            origin,
            *pos,
            format!(
                "audio file {} does not exist: check the name (paths are relative to the \
                 schedule file's folder) or use \"sha256:<hex>\" for audio central holds",
                path.display()
            ),
        ));
    }
    out
}
