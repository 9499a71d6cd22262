//! Fire times at fixed instants: weekdays, DST gaps and overlaps, month ends, Feb 29,
//! skip dates, validity ranges, one-off items, and the merged timeline's order and
//! overlap checks.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use loa::schedule::{self, Layer, Priority, Schedule, Timeline};

fn sched(src: &str) -> Schedule {
    let parsed = schedule::parse(src, "t.toml", Path::new(""));
    let shown: Vec<String> = parsed.diagnostics.iter().map(ToString::to_string).collect();
    parsed.schedule.unwrap_or_else(|| panic!("schedule should parse: {shown:#?}"))
}

fn one(header: &str, item: &str) -> Schedule {
    sched(&format!(
        "{header}\n[[item]]\nid = \"x\"\ntitle = \"Bản tin\"\naudio = \"sha256:{}\"\n{item}\n",
        "ab".repeat(32)
    ))
}

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).expect("test instant").to_utc()
}

fn planned(s: &Schedule, from: &str, until: &str) -> Vec<String> {
    s.occurrences(t(from), t(until))
        .iter()
        .map(|o| o.planned.with_timezone(&o.timezone).to_rfc3339())
        .collect()
}

const VN: &str = "layer = \"provincial\"";
const BERLIN: &str = "layer = \"local\"\ntimezone = \"Europe/Berlin\"";

#[test]
fn weekday_one_is_monday_and_zero_and_seven_are_sunday() {
    // 2026-11-30 is a Monday.
    let mon = one(VN, "cron = \"0 6 * * 1\"");
    assert_eq!(
        planned(&mon, "2026-11-29T00:00:00+07:00", "2026-12-08T00:00:00+07:00"),
        ["2026-11-30T06:00:00+07:00", "2026-12-07T06:00:00+07:00"]
    );
    for sunday in ["0", "7", "SUN"] {
        let s = one(VN, &format!("cron = \"0 6 * * {sunday}\""));
        assert_eq!(
            planned(&s, "2026-11-30T00:00:00+07:00", "2026-12-08T00:00:00+07:00"),
            ["2026-12-06T06:00:00+07:00"],
            "weekday {sunday}"
        );
    }
    let mon_sat = one(VN, "cron = \"30 5 * * 1-6\"");
    let week = planned(&mon_sat, "2026-11-30T00:00:00+07:00", "2026-12-07T00:00:00+07:00");
    assert_eq!(week.len(), 6);
    assert_eq!(week[5], "2026-12-05T05:30:00+07:00");
}

#[test]
fn six_fields_have_seconds_first() {
    let s = one(VN, "cron = \"15 30 5 * * *\"");
    assert_eq!(
        planned(&s, "2026-12-01T00:00:00+07:00", "2026-12-02T00:00:00+07:00"),
        ["2026-12-01T05:30:15+07:00"]
    );
}

#[test]
fn dst_gap_plays_once_at_the_first_instant_after_it() {
    // Europe/Berlin springs forward on 2027-03-28: 02:00 CET becomes 03:00 CEST.
    let s = one(BERLIN, "cron = \"30 2 * * *\"");
    assert_eq!(
        planned(&s, "2027-03-27T00:00:00+01:00", "2027-03-30T00:00:00+02:00"),
        ["2027-03-27T02:30:00+01:00", "2027-03-28T03:00:00+02:00", "2027-03-29T02:30:00+02:00"]
    );
    // Every 20 minutes inside the missing hour: still a single play after the gap.
    let s = one(BERLIN, "cron = \"*/20 2 * * *\"");
    assert_eq!(
        planned(&s, "2027-03-28T00:00:00+01:00", "2027-03-28T12:00:00+02:00"),
        ["2027-03-28T03:00:00+02:00"]
    );
    // A gap time and the time right after the gap are one play, not two.
    let s = one(BERLIN, "cron = \"0 2,3 * * *\"");
    assert_eq!(
        planned(&s, "2027-03-28T00:00:00+01:00", "2027-03-28T12:00:00+02:00"),
        ["2027-03-28T03:00:00+02:00"]
    );
    // A one-off in the gap.
    let s = one(BERLIN, "at = 2027-03-28T02:30:00");
    assert_eq!(
        planned(&s, "2027-03-01T00:00:00+01:00", "2027-04-01T00:00:00+02:00"),
        ["2027-03-28T03:00:00+02:00"]
    );
}

#[test]
fn dst_overlap_plays_once_at_the_first_occurrence() {
    // Europe/Berlin falls back on 2027-10-31: 03:00 CEST becomes 02:00 CET, so
    // 02:00–02:59 happens twice.
    let s = one(BERLIN, "cron = \"30 2 * * *\"");
    assert_eq!(
        planned(&s, "2027-10-30T00:00:00+02:00", "2027-11-02T00:00:00+01:00"),
        ["2027-10-30T02:30:00+02:00", "2027-10-31T02:30:00+02:00", "2027-11-01T02:30:00+01:00"]
    );
    let s = one(BERLIN, "cron = \"*/30 2 * * *\"");
    assert_eq!(
        planned(&s, "2027-10-31T00:00:00+02:00", "2027-10-31T12:00:00+01:00"),
        ["2027-10-31T02:00:00+02:00", "2027-10-31T02:30:00+02:00"]
    );
    // A one-off in the repeated hour: the first of the two instants.
    let s = one(BERLIN, "at = 2027-10-31T02:30:00");
    assert_eq!(
        planned(&s, "2027-10-01T00:00:00+02:00", "2027-11-01T00:00:00+01:00"),
        ["2027-10-31T02:30:00+02:00"]
    );
    // Starting during the repeated hour, after the play: it does not play again.
    let s = one(BERLIN, "cron = \"30 2 * * *\"");
    let next = s.next(t("2027-10-31T02:10:00+01:00"), 1);
    assert_eq!(next[0].planned, t("2027-11-01T02:30:00+01:00"));
}

#[test]
fn ho_chi_minh_has_no_dst() {
    let s = one(VN, "cron = \"30 2 * * *\"");
    let days = planned(&s, "2027-03-27T00:00:00+07:00", "2027-11-01T00:00:00+07:00");
    assert_eq!(days.len(), 219);
    assert!(days.iter().all(|d| d.ends_with("T02:30:00+07:00")));
}

#[test]
fn month_ends_and_the_last_day() {
    let s = one(VN, "cron = \"0 8 31 * *\"");
    assert_eq!(
        planned(&s, "2027-01-01T00:00:00+07:00", "2027-06-01T00:00:00+07:00"),
        ["2027-01-31T08:00:00+07:00", "2027-03-31T08:00:00+07:00", "2027-05-31T08:00:00+07:00"]
    );
    let s = one(VN, "cron = \"0 8 L 2 *\"");
    assert_eq!(
        planned(&s, "2027-01-01T00:00:00+07:00", "2029-01-01T00:00:00+07:00"),
        ["2027-02-28T08:00:00+07:00", "2028-02-29T08:00:00+07:00"]
    );
}

#[test]
fn february_29_only_in_leap_years() {
    let s = one(VN, "cron = \"0 8 29 2 *\"");
    let next = s.next(t("2026-12-01T00:00:00+07:00"), 2);
    let shown: Vec<String> =
        next.iter().map(|o| o.planned.with_timezone(&o.timezone).to_rfc3339()).collect();
    assert_eq!(shown, ["2028-02-29T08:00:00+07:00", "2032-02-29T08:00:00+07:00"]);
}

#[test]
fn skip_dates_and_inclusive_validity() {
    let s = one(
        VN,
        "cron = \"30 5 * * *\"\nfrom = 2026-12-30\nuntil = 2027-01-03\nskip = [2027-01-01]",
    );
    assert_eq!(
        planned(&s, "2026-12-01T00:00:00+07:00", "2027-02-01T00:00:00+07:00"),
        [
            "2026-12-30T05:30:00+07:00",
            "2026-12-31T05:30:00+07:00",
            "2027-01-02T05:30:00+07:00",
            "2027-01-03T05:30:00+07:00"
        ]
    );
    // Past the end of validity there is nothing next.
    assert!(s.next(t("2027-01-04T00:00:00+07:00"), 3).is_empty());
}

#[test]
fn ranges_are_half_open() {
    let s = one(VN, "cron = \"30 5 * * *\"");
    assert_eq!(
        planned(&s, "2026-12-01T05:30:00+07:00", "2026-12-02T05:30:00+07:00"),
        ["2026-12-01T05:30:00+07:00"]
    );
    assert!(planned(&s, "2026-12-01T05:30:00+07:00", "2026-12-01T05:30:00+07:00").is_empty());
}

#[test]
fn one_off_with_an_offset_is_an_absolute_instant() {
    let s = one(BERLIN, "at = 2027-09-02T06:00:00+07:00");
    let next = s.next(t("2027-01-01T00:00:00Z"), 5);
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].planned, t("2027-09-01T23:00:00Z"));
}

#[test]
fn occurrences_carry_the_item() {
    let s = one(
        VN,
        "cron = \"0 6 * * *\"\npriority = \"priority\"\nmax_delay = \"10m\"\nduration = \"15m\"\ngain_db = -3",
    );
    let o = &s.next(t("2026-12-01T00:00:00Z"), 1)[0];
    assert_eq!(o.item_id, "x");
    assert_eq!(o.title, "Bản tin");
    assert_eq!(o.layer, Layer::Provincial);
    assert_eq!(o.priority, Priority::Priority);
    assert_eq!(o.max_delay, Duration::from_secs(600));
    assert_eq!(o.duration, Some(Duration::from_secs(900)));
    assert_eq!(o.gain_db, -3.0);
    assert_eq!(o.timezone, chrono_tz::Asia::Ho_Chi_Minh);
}

fn two_files() -> Timeline {
    let provincial = sched(&format!(
        "layer = \"provincial\"\n\
         [[item]]\nid = \"news\"\ntitle = \"Thời sự\"\naudio = \"sha256:{h}\"\ncron = \"0 6 * * *\"\n\
         [[item]]\nid = \"music\"\ntitle = \"Ca nhạc\"\naudio = \"sha256:{h}\"\ncron = \"0 6 * * *\"\npriority = \"priority\"\n",
        h = "cd".repeat(32)
    ));
    let local = sched(&format!(
        "layer = \"local\"\n\
         [[item]]\nid = \"commune\"\ntitle = \"Xã\"\naudio = \"sha256:{h}\"\ncron = \"0 6 * * *\"\n",
        h = "ef".repeat(32)
    ));
    Timeline::new(vec![local, provincial])
}

#[test]
fn timeline_orders_by_time_then_priority_then_layer() {
    let tl = two_files();
    let ids: Vec<String> =
        tl.next(t("2026-12-01T00:00:00+07:00"), 4).into_iter().map(|o| o.item_id).collect();
    assert_eq!(ids, ["music", "news", "commune", "music"]);
    let day = tl.occurrences(t("2026-12-01T00:00:00+07:00"), t("2026-12-03T00:00:00+07:00"));
    assert_eq!(day.len(), 6);
    assert!(day.windows(2).all(|w| w[0].planned <= w[1].planned));
}

#[test]
fn conflicts_need_the_same_layer_and_priority() {
    // In two_files() nothing clashes: same instant, but different layer or priority.
    let tl = two_files();
    let none = tl.conflicts(t("2026-12-01T00:00:00Z"), t("2026-12-08T00:00:00Z"), &|_| None);
    assert!(none.is_empty(), "{none:?}");

    let h = "ab".repeat(32);
    let s = sched(&format!(
        "layer = \"local\"\n\
         [[item]]\nid = \"a\"\ntitle = \"A\"\naudio = \"sha256:{h}\"\ncron = \"0 6 * * *\"\nduration = \"15m\"\n\
         [[item]]\nid = \"b\"\ntitle = \"B\"\naudio = \"sha256:{h}\"\ncron = \"10 6 * * 1\"\n"
    ));
    let tl = Timeline::new(vec![s]);
    let from = t("2026-12-01T00:00:00Z");
    let until = t("2026-12-15T00:00:00Z");
    let found = tl.conflicts(from, until, &|_| None);
    let shown: Vec<String> = found.iter().map(ToString::to_string).collect();
    assert_eq!(shown.len(), 2, "{shown:#?}");
    assert!(shown[0].starts_with("t.toml:2:1: error: item \"a\" (at Mon 2026-12-07 06:00)"));
    assert!(shown[1].starts_with("t.toml:8:1: error: item \"b\" (at Mon 2026-12-07 06:10)"));
    // When the audio is known to be shorter than the declared duration, no clash.
    let short = tl.conflicts(from, until, &|_| Some(Duration::from_secs(300)));
    assert!(short.is_empty(), "{short:?}");
}

#[test]
fn an_item_longer_than_its_period_overlaps_itself() {
    let s = one("layer = \"local\"", "cron = \"*/10 * * * *\"\nduration = \"15m\"");
    let tl = Timeline::new(vec![s]);
    let found = tl.conflicts(t("2026-12-01T00:00:00Z"), t("2026-12-02T00:00:00Z"), &|_| None);
    assert_eq!(found.len(), 1);
    assert!(found[0].message.contains("overlaps itself"), "{}", found[0]);
}
