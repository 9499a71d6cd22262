//! Data-driven: every `schedules/invalid/NAME.toml` must make `loa schedule check`
//! print exactly `schedules/invalid/NAME.expected` and exit 1 when that holds an error
//! (0 for warnings only). Run with `LOA_BLESS=1` to rewrite the expected files after a
//! deliberate change of wording, then review the diff.

use std::path::Path;
use std::process::Command;

/// A fixed "now" for the checks that depend on it (overlaps, expired items).
const FROM: &str = "2026-12-01T00:00:00+07:00";

#[test]
fn each_invalid_sample_gives_its_expected_diagnostics() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let dir = root.join("schedules/invalid");
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .expect("schedules/invalid exists")
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    let inputs: Vec<&String> = names.iter().filter(|n| n.ends_with(".toml")).collect();
    assert!(inputs.len() >= 10, "expected one sample per error kind, found {inputs:?}");
    for n in names.iter().filter(|n| n.ends_with(".expected")) {
        let toml = n.replace(".expected", ".toml");
        assert!(names.contains(&toml), "{n} has no {toml} beside it");
    }

    let bless = std::env::var_os("LOA_BLESS").is_some();
    let mut failures = Vec::new();
    for name in inputs {
        let rel = format!("schedules/invalid/{name}");
        let out = Command::new(env!("CARGO_BIN_EXE_loa"))
            .current_dir(root)
            .args(["schedule", "check", &rel, "--from", FROM])
            .output()
            .expect("run loa");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        let expected_path = dir.join(name.replace(".toml", ".expected"));
        if bless {
            std::fs::write(&expected_path, &stdout).expect("write expected");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path)
            .unwrap_or_else(|_| panic!("{} is missing", expected_path.display()));
        if stdout != expected {
            failures.push(format!("{rel}:\n--- expected\n{expected}--- got\n{stdout}"));
        }
        let want_code = if expected.contains(": error: ") { 1 } else { 0 };
        if out.status.code() != Some(want_code) {
            failures.push(format!("{rel}: exit {:?}, want {want_code}", out.status.code()));
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
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
