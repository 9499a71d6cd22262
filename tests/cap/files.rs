//! Data-driven: our own CAP documents, written from the CAP 1.2 specification.
//! - every `tests/cap_documents/invalid/NAME.xml` breaks one rule: `loa cap check` prints exactly
//!   `NAME.expected` (each error names its element) and exits 1;
//! - every `tests/cap_documents/valid/NAME.xml` is valid: `loa cap check --stations
//!   tests/cap_documents/stations.toml --now 2026-12-01T06:00:00+07:00` prints exactly
//!   `NAME.expected` (the bulletin, or why none) and exits 0.
//!
//! Run with `LOA_BLESS=1` to rewrite the expected files after a deliberate change of
//! wording, then review the diff.

use crate::support::golden::{self, Golden};
use crate::support::process;

const NOW: &str = "2026-12-01T06:00:00+07:00";

fn run_folder(folder: &str, extra: &[&str], want_code: i32, min_files: usize) {
    let root = process::root();
    let dir = root.join(folder);
    let inputs = golden::inputs(&dir, "xml", min_files);
    let mut golden = Golden::new();
    for name in inputs {
        let rel = format!("{folder}/{name}");
        let mut args = vec!["cap", "check", rel.as_str(), "--now", NOW];
        args.extend_from_slice(extra);
        let out = process::loa_in(root, &args);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let expected_path = dir.join(name.replace(".xml", ".expected"));
        if golden.check(&rel, &stdout, &expected_path).is_none() {
            continue;
        }
        if out.status.code() != Some(want_code) {
            golden.fail(format!("{rel}: exit {:?}, want {want_code}", out.status.code()));
        }
        assert!(
            out.stderr.is_empty(),
            "{rel}: unexpected stderr {}",
            String::from_utf8_lossy(&out.stderr)
        );
        // Every diagnostic names the file, its level and an element path.
        for line in stdout.lines().filter(|l| l.contains(": error: ") || l.contains(": warning: "))
        {
            let parts: Vec<&str> = line.splitn(4, ": ").collect();
            assert!(
                parts.len() == 4
                    && parts[0] == rel
                    && (parts[1] == "error" || parts[1] == "warning")
                    && !parts[2].is_empty()
                    && !parts[2].contains(' '),
                "badly formed diagnostic: {line}"
            );
        }
        if want_code == 1 {
            assert!(stdout.contains(": error: "), "{rel}: an invalid document without an error");
        }
    }
    golden.finish();
}

#[test]
fn each_invalid_document_gives_its_expected_errors() {
    run_folder("tests/cap_documents/invalid", &[], 1, 30);
}

#[test]
fn each_valid_document_gives_its_expected_bulletin_or_why_none() {
    run_folder(
        "tests/cap_documents/valid",
        &["--stations", "tests/cap_documents/stations.toml"],
        0,
        10,
    );
}
