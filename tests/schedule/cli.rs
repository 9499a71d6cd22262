//! `loa schedule check|next` end to end on the shipped samples, run from a temporary
//! copy with placeholder audio files so the test does not depend on the real audio.

use std::path::PathBuf;

use crate::support::process::{loa_in as loa, root, text};

const FROM: &str = "2026-12-01T00:00:00+07:00";

/// A temporary tree `schedules/{provincial,district}.toml` + `audio/<the three files>`.
fn sample_tree() -> tempfile::TempDir {
    let root = root();
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::create_dir_all(dir.path().join("schedules")).expect("mkdir");
    std::fs::create_dir_all(dir.path().join("audio")).expect("mkdir");
    for f in ["provincial.toml", "district.toml"] {
        std::fs::copy(root.join("schedules").join(f), dir.path().join("schedules").join(f))
            .expect("copy sample");
    }
    for f in ["ban-tin.mp3", "nhac-hieu.ogg", "chuong-bao.wav"] {
        std::fs::write(dir.path().join("audio").join(f), b"placeholder").expect("write");
    }
    dir
}

const SAMPLES: [&str; 2] = ["schedules/provincial.toml", "schedules/district.toml"];

#[test]
fn samples_pass_check() {
    let dir = sample_tree();
    let out = loa(dir.path(), &["schedule", "check", SAMPLES[0], SAMPLES[1], "--from", FROM]);
    assert_eq!(text(&out.stdout), "checked 2 files: no problems\n");
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
}

#[test]
fn samples_reference_only_the_shared_audio_files() {
    let dir = sample_tree();
    std::fs::remove_file(dir.path().join("audio/chuong-bao.wav")).expect("rm");
    let out = loa(dir.path(), &["schedule", "check", SAMPLES[1], "--from", FROM]);
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.starts_with("schedules/district.toml:10:9: error: audio file"), "{stdout}");
    assert!(stdout.ends_with("checked 1 file: 1 error, 0 warnings\n"), "{stdout}");
}

#[test]
fn next_lists_the_merged_plays_in_order() {
    let dir = sample_tree();
    let out = loa(
        dir.path(),
        &["schedule", "next", SAMPLES[0], SAMPLES[1], "--from", FROM, "--count", "4"],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    let lines: Vec<&str> = stdout.lines().collect();
    assert_eq!(lines.len(), 5, "{stdout}");
    assert!(lines[0].starts_with("LOCAL TIME"));
    let expect = [
        ("2026-12-01 05:30 +07:00  Tue", "ban-tin-sang", "provincial  priority"),
        ("2026-12-01 05:50 +07:00  Tue", "chuong-bao-sang", "local       normal"),
        ("2026-12-01 05:51 +07:00  Tue", "thoi-su-huyen", "local       normal"),
        ("2026-12-01 17:00 +07:00  Tue", "ban-tin-chieu", "provincial  priority"),
    ];
    for (line, (time, id, tail)) in lines[1..].iter().zip(expect) {
        assert!(line.starts_with(time) && line.contains(id) && line.ends_with(tail), "{line}");
    }
    assert!(lines[1].contains("Bản tin thời sự buổi sáng"));
}

#[test]
fn next_as_json() {
    let dir = sample_tree();
    let out = loa(
        dir.path(),
        &[
            "schedule",
            "next",
            SAMPLES[0],
            "--from",
            "2027-09-01T00:00:00+07:00",
            "--count",
            "3",
            "--format",
            "json",
        ],
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    let rows = rows.as_array().expect("an array");
    assert_eq!(rows.len(), 3);
    // 2027-09-01 is a Wednesday: morning news, evening news, agriculture; the National
    // Day one-off is on the 2nd.
    let ids: Vec<&str> = rows.iter().filter_map(|r| r["item_id"].as_str()).collect();
    assert_eq!(ids, ["ban-tin-sang", "ban-tin-chieu", "nong-nghiep"]);
    assert_eq!(rows[0]["local"], "2027-09-01T05:30:00+07:00");
    assert_eq!(rows[0]["planned"], "2027-08-31T22:30:00+00:00");
    assert_eq!(rows[0]["weekday"], "Wed");
    assert_eq!(rows[0]["max_delay_secs"], 600);
    let audio = rows[0]["audio"].as_str().unwrap_or("");
    assert!(PathBuf::from(audio).ends_with("audio/ban-tin.mp3"), "{audio}");

    let out = loa(
        dir.path(),
        &[
            "schedule",
            "next",
            SAMPLES[0],
            "--from",
            "2027-09-02T00:00:00+07:00",
            "--count",
            "2",
            "--format",
            "json",
        ],
    );
    let rows: serde_json::Value = serde_json::from_slice(&out.stdout).expect("valid JSON");
    assert_eq!(rows[0]["item_id"], "ban-tin-sang");
    assert_eq!(rows[1]["item_id"], "quoc-khanh");
    assert_eq!(rows[1]["local"], "2027-09-02T06:00:00+07:00");
}

#[test]
fn usage_errors_exit_2_and_bad_files_exit_1() {
    let dir = sample_tree();
    assert_eq!(loa(dir.path(), &["schedule", "check"]).status.code(), Some(2));
    let bad_from = loa(dir.path(), &["schedule", "next", SAMPLES[0], "--from", "tomorrow"]);
    assert_eq!(bad_from.status.code(), Some(2));
    assert!(text(&bad_from.stderr).contains("RFC 3339"));
    assert_eq!(
        loa(dir.path(), &["schedule", "next", SAMPLES[0], "--count", "0"]).status.code(),
        Some(2)
    );

    let out = loa(dir.path(), &["schedule", "check", "khong-co.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(text(&out.stdout).starts_with("khong-co.toml:1:1: error: cannot read this file"));

    std::fs::write(dir.path().join("bad.toml"), "layer = \"local\"\n[[item]]\nid = 3\n")
        .expect("write");
    let out = loa(dir.path(), &["schedule", "next", "bad.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        text(&out.stderr).contains("bad.toml:3:6: error: `id` must be a string"),
        "{}",
        text(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}
