//! Any text as a schedule file: parse, check and expand must never panic, and a file
//! without errors must yield a schedule (and one with errors must not).
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let parsed = loa::schedule::parse(text, "fuzz.toml", std::path::Path::new("/srv/loa"));
    let has_error = parsed.diagnostics.iter().any(|d| d.is_error());
    assert_eq!(parsed.schedule.is_some(), !has_error, "schedule present exactly when error-free");
    let _ = loa::schedule::check_files(&parsed, "fuzz.toml", &|_| true);
    if let Some(schedule) = &parsed.schedule {
        let from = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().unwrap_or_default();
        let plays = schedule.next(from, 50);
        assert!(plays.windows(2).all(|w| w[0].planned <= w[1].planned), "plays in order");
        let week = schedule.occurrences(from, from + chrono::Duration::days(7));
        assert!(week.iter().all(|o| o.planned >= from));
        for item in &schedule.items {
            let _ = loa::schedule::first_play(item, schedule.timezone, Some(from));
        }
        let timeline = loa::schedule::Timeline::new(vec![schedule.clone()]);
        let _ = timeline.conflicts(from, from + chrono::Duration::days(2), &|_| None);
    }
});
