//! Data-driven: our own CAP documents, written from the CAP 1.2 specification.
//! - every `tests/cap/invalid/NAME.xml` breaks one rule: `loa cap check` prints exactly
//!   `NAME.expected` (each error names its element) and exits 1;
//! - every `tests/cap/valid/NAME.xml` is valid: `loa cap check --stations
//!   tests/cap/stations.toml --now 2026-12-01T06:00:00+07:00` prints exactly
//!   `NAME.expected` (the bulletin, or why none) and exits 0.
//!
//! Run with `LOA_BLESS=1` to rewrite the expected files after a deliberate change of
//! wording, then review the diff.

use std::path::Path;
use std::process::Command;

const NOW: &str = "2026-12-01T06:00:00+07:00";

fn run_folder(folder: &str, extra: &[&str], want_code: i32, min_files: usize) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join(folder);
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("folder exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let inputs: Vec<&String> = names.iter().filter(|n| n.ends_with(".xml")).collect();
    assert!(inputs.len() >= min_files, "expected at least {min_files} documents, found {inputs:?}");
    for n in names.iter().filter(|n| n.ends_with(".expected")) {
        let xml = n.replace(".expected", ".xml");
        assert!(names.contains(&xml), "{n} has no {xml} beside it");
    }
    let bless = std::env::var_os("LOA_BLESS").is_some();
    let mut failures = Vec::new();
    for name in inputs {
        let rel = format!("{folder}/{name}");
        let out = Command::new(env!("CARGO_BIN_EXE_loa"))
            .current_dir(root)
            .args(["cap", "check", &rel, "--now", NOW])
            .args(extra)
            .output()
            .expect("run loa");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let expected_path = dir.join(name.replace(".xml", ".expected"));
        if bless {
            std::fs::write(&expected_path, &stdout).expect("write expected");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} is missing", expected_path.display()));
        if stdout != expected {
            failures.push(format!("{rel}:\n--- expected\n{expected}--- got\n{stdout}"));
        }
        if out.status.code() != Some(want_code) {
            failures.push(format!("{rel}: exit {:?}, want {want_code}", out.status.code()));
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
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn each_invalid_document_gives_its_expected_errors() {
    run_folder("tests/cap/invalid", &[], 1, 30);
}

#[test]
fn each_valid_document_gives_its_expected_bulletin_or_why_none() {
    run_folder("tests/cap/valid", &["--stations", "tests/cap/stations.toml"], 0, 10);
}
