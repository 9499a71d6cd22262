//! Parser behaviour through the public API: relative audio paths, every problem of a
//! file at once, the file check asking each path once, and crontab's day rule.

use std::cell::RefCell;
use std::path::{Path, PathBuf};

use loa::schedule::{self, AudioRef, Recurrence, Severity};

#[test]
fn relative_audio_paths_are_joined_to_the_base_dir_and_checked_once() {
    let src = "layer = \"local\"\n\
        [[item]]\nid = \"a\"\ntitle = \"A\"\naudio = \"../audio/ban-tin.mp3\"\ncron = \"0 6 * * *\"\n\
        [[item]]\nid = \"b\"\ntitle = \"B\"\naudio = \"../audio/ban-tin.mp3\"\ncron = \"0 7 * * *\"\n\
        [[item]]\nid = \"c\"\ntitle = \"C\"\naudio = \"sha256:ABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABABAB\"\ncron = \"0 8 * * *\"\n";
    let parsed = schedule::parse(src, "d/x.toml", Path::new("d"));
    let s = parsed.schedule.as_ref().expect("valid");
    assert_eq!(s.items[0].audio, AudioRef::Path(PathBuf::from("d/../audio/ban-tin.mp3")));
    assert_eq!(s.items[2].audio, AudioRef::Sha256("ab".repeat(32)));

    let asked = RefCell::new(Vec::new());
    let missing = schedule::check_files(&parsed, "d/x.toml", &|p: &Path| {
        asked.borrow_mut().push(p.to_path_buf());
        false
    });
    assert_eq!(asked.borrow().len(), 1, "each path is asked about once");
    let shown: Vec<String> = missing.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 2);
    assert!(shown[0].starts_with("d/x.toml:5:9: error: audio file d/../audio/ban-tin.mp3"));
    assert!(shown[1].starts_with("d/x.toml:10:9: error: audio file"));
}

#[test]
fn every_problem_is_reported_and_no_schedule_comes_back() {
    let src = "layer = \"local\"\ntimezone = \"Mars/Olympus\"\n\
        [[item]]\nid = \"a\"\ntitle = \"A\"\naudio = \"x.mp3\"\ncron = \"61 6 * * *\"\n\
        [[item]]\nid = \"a\"\ntitle = \"\"\naudio = \"y.mp3\"\nat = 2027-01-01T06:00:00\nmax_delay = \"soon\"\n";
    let parsed = schedule::parse(src, "x.toml", Path::new(""));
    assert!(parsed.schedule.is_none());
    let at: Vec<(usize, usize)> = parsed.diagnostics.iter().map(|d| (d.line, d.column)).collect();
    assert_eq!(at, [(2, 12), (7, 9), (8, 1), (10, 9), (13, 13)], "{:#?}", parsed.diagnostics);
    assert!(parsed.diagnostics.iter().all(|d| d.severity == Severity::Error));
    // Audio references are kept for the file check even when items have errors.
    assert_eq!(parsed.audio.len(), 2);
}

#[test]
fn day_of_month_and_weekday_follow_crontab_either_matches() {
    let src = format!(
        "layer = \"local\"\n[[item]]\nid = \"a\"\ntitle = \"A\"\naudio = \"sha256:{}\"\ncron = \"0 8 1 * 1\"\n",
        "ab".repeat(32)
    );
    let parsed = schedule::parse(&src, "x.toml", Path::new(""));
    let s = parsed.schedule.expect("valid");
    assert!(matches!(&s.items[0].recurrence, Recurrence::Cron(spec) if spec.expr == "0 8 1 * 1"));
    let from = chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00+07:00")
        .expect("instant")
        .to_utc();
    let days: Vec<String> = s
        .next(from, 4)
        .iter()
        .map(|o| o.planned.with_timezone(&o.timezone).format("%a %d").to_string())
        .collect();
    // Tuesday the 1st (day of month), then Mondays, then the next 1st.
    assert_eq!(days, ["Tue 01", "Mon 07", "Mon 14", "Mon 21"]);
}

/// The commented example in README.md's schedule section is a valid schedule.
#[test]
fn readme_example_parses() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let section = readme.split("<!-- section: schedules -->").nth(1).expect("schedules section");
    let example = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("a toml example in the schedules section");
    let parsed = schedule::parse(example, "README.md", Path::new("schedules"));
    let shown: Vec<String> = parsed.diagnostics.iter().map(ToString::to_string).collect();
    assert!(shown.is_empty(), "{shown:#?}");
    let s = parsed.schedule.expect("valid");
    assert_eq!(s.items.len(), 2);
    assert!(matches!(s.items[1].recurrence, Recurrence::AtLocal(_)));
}
