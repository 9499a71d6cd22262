//! Data-driven: every `schedules/invalid/NAME.toml` must make `loa schedule check`
//! print exactly `schedules/invalid/NAME.expected` and exit 1 when that holds an error
//! (0 for warnings only). Run with `LOA_BLESS=1` to rewrite the expected files after a
//! deliberate change of wording, then review the diff.

use crate::support::golden::{self, Golden};
use crate::support::process;

/// A fixed "now" for the checks that depend on it (overlaps, expired items).
const FROM: &str = "2026-12-01T00:00:00+07:00";

#[test]
fn each_invalid_sample_gives_its_expected_diagnostics() {
    let root = process::root();
    let dir = root.join("schedules/invalid");
    // One sample per error kind.
    let inputs = golden::inputs(&dir, "toml", 10);
    let mut golden = Golden::new();
    for name in inputs {
        let rel = format!("schedules/invalid/{name}");
        let out = process::loa_in(root, &["schedule", "check", &rel, "--from", FROM]);
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let expected_path = dir.join(name.replace(".toml", ".expected"));
        let Some(expected) = golden.check(&rel, &stdout, &expected_path) else { continue };
        let want_code = if expected.contains(": error: ") { 1 } else { 0 };
        if out.status.code() != Some(want_code) {
            golden.fail(format!("{rel}: exit {:?}, want {want_code}", out.status.code()));
        }
        assert!(out.stderr.is_empty(), "{rel}: unexpected stderr {:?}", out.stderr);
        // Every diagnostic line is located: file:line:column: severity: message
        for line in stdout.lines().filter(|l| !l.starts_with("checked ")) {
            let parts: Vec<&str> = line.splitn(5, ':').collect();
            assert!(
                parts.len() == 5
                    && parts[0] == rel
                    && parts[1].parse::<usize>().is_ok()
                    && parts[2].parse::<usize>().is_ok(),
                "badly formed diagnostic: {line}"
            );
        }
    }
    golden.finish();
}
