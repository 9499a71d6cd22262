//! Data-driven tests: a folder of inputs, each beside the exact output it must produce
//! (`NAME.expected`). `LOA_BLESS=1` rewrites the expected files after a deliberate change
//! of wording, for review in the diff.

use std::path::Path;

/// The inputs `*.EXT` in `dir`, sorted; at least `at_least` of them, and no `.expected`
/// without its input.
#[track_caller]
pub fn inputs(dir: &Path, ext: &str, at_least: usize) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let suffix = format!(".{ext}");
    let inputs: Vec<String> = names.iter().filter(|n| n.ends_with(&suffix)).cloned().collect();
    assert!(
        inputs.len() >= at_least,
        "expected at least {at_least} inputs in {}, found {inputs:?}",
        dir.display()
    );
    for n in names.iter().filter(|n| n.ends_with(".expected")) {
        let input = n.replace(".expected", &suffix);
        assert!(names.contains(&input), "{n} has no {input} beside it");
    }
    inputs
}

/// Compares outputs with their expected files, collecting every difference.
pub struct Golden {
    bless: bool,
    failures: Vec<String>,
}

impl Golden {
    pub fn new() -> Self {
        Self { bless: std::env::var_os("LOA_BLESS").is_some(), failures: Vec::new() }
    }

    /// The expected output of `rel` (read from `expected`), a failure noted when `got`
    /// differs; `None` when blessing (then `got` is written there instead).
    #[track_caller]
    pub fn check(&mut self, rel: &str, got: &str, expected: &Path) -> Option<String> {
        if self.bless {
            std::fs::write(expected, got).expect("write expected");
            return None;
        }
        let want = std::fs::read_to_string(expected)
            .unwrap_or_else(|_| panic!("{} is missing", expected.display()));
        if got != want {
            self.fail(format!("{rel}:\n--- expected\n{want}--- got\n{got}"));
        }
        Some(want)
    }

    pub fn fail(&mut self, why: String) {
        self.failures.push(why);
    }

    /// Fails with every difference found.
    #[track_caller]
    pub fn finish(self) {
        assert!(self.failures.is_empty(), "{}", self.failures.join("\n"));
    }
}
