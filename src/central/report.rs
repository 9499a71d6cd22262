//! `loa report DATE`: the compliance view. For every station and every provincial item
//! its manifests planned that day, what the station reported — aired on time, late (by
//! how much), pre-empted, failed, missed (why) — or that nothing has arrived yet.
//!
//! Pure: the caller passes the manifests' schedules, the records and the clock reading,
//! so every outcome kind is unit-tested without a server.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use chrono_tz::Tz;

use crate::ledger::{Outcome, Record};
use crate::protocol::{DailyReport, DistrictTotals, ReportRow, ReportStatus};
use crate::schedule::{Layer, Schedule, Timeline, to_instant};
use crate::store::Station;

/// One planned provincial play.
#[derive(Debug, Clone, PartialEq)]
pub struct Planned {
    pub item_id: String,
    pub title: String,
    pub planned: DateTime<Utc>,
    pub max_delay: chrono::Duration,
}

/// Everything the report needs about one station.
#[derive(Debug, Clone)]
pub struct StationDay {
    pub station: Station,
    pub planned: Vec<Planned>,
    pub records: Vec<Record>,
    /// Last heartbeat, for "offline since".
    pub last_seen: Option<DateTime<Utc>>,
}

/// A reported play is "not reported" only once its deadline is this far behind:
/// stations report within seconds, so this is a margin for a slow link, not a delay.
const REPORT_GRACE: chrono::Duration = chrono::Duration::minutes(2);

/// The instants a local date covers in `tz`: `[start, end)`.
pub fn day_bounds(date: NaiveDate, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = to_instant(date.and_time(chrono::NaiveTime::MIN), tz);
    let next = date.succ_opt().unwrap_or(date);
    (start, to_instant(next.and_time(chrono::NaiveTime::MIN), tz))
}

/// The provincial plays in `[from, until)` of the manifests in force: each manifest
/// (issued at, its schedules; oldest first) governs from its issue until the next one.
pub fn planned_between(
    manifests: &[(DateTime<Utc>, Vec<Schedule>)],
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<Planned> {
    let mut out: Vec<Planned> = Vec::new();
    for (i, (issued, schedules)) in manifests.iter().enumerate() {
        let start = from.max(*issued);
        let end = manifests.get(i + 1).map_or(until, |(next, _)| until.min(*next));
        if start >= end {
            continue;
        }
        let provincial: Vec<Schedule> =
            schedules.iter().filter(|s| s.layer == Layer::Provincial).cloned().collect();
        for occ in Timeline::new(provincial).occurrences(start, end) {
            if !out.iter().any(|p| p.item_id == occ.item_id && p.planned == occ.planned) {
                out.push(Planned {
                    item_id: occ.item_id,
                    title: occ.title,
                    planned: occ.planned,
                    max_delay: chrono::Duration::from_std(occ.max_delay)
                        .unwrap_or(chrono::Duration::hours(24)),
                });
            }
        }
    }
    out.sort_by(|a, b| a.planned.cmp(&b.planned).then_with(|| a.item_id.cmp(&b.item_id)));
    out
}

fn seconds(ms: i64) -> String {
    format!("{:.1}s", ms as f64 / 1000.0)
}

fn row_for(
    p: &Planned,
    record: Option<&Record>,
    day: &StationDay,
    now: DateTime<Utc>,
    tz: Tz,
) -> ReportRow {
    let (status, delay_ms, detail) = match record {
        Some(r) => {
            let e = &r.entry;
            let reason = e.reason.clone().unwrap_or_default();
            match e.outcome {
                Outcome::Played => (ReportStatus::Aired, e.delay_ms, String::new()),
                Outcome::Late => (
                    ReportStatus::Late,
                    e.delay_ms,
                    format!("late by {}", seconds(e.delay_ms.unwrap_or(0))),
                ),
                Outcome::Preempted => {
                    let played =
                        e.played_secs.map(|s| format!(" after {s:.1}s")).unwrap_or_default();
                    (ReportStatus::Preempted, e.delay_ms, format!("{reason}{played}"))
                }
                Outcome::Failed => (ReportStatus::Failed, e.delay_ms, reason),
                Outcome::Missed => (ReportStatus::Missed, None, reason),
            }
        }
        None if now < p.planned + p.max_delay + REPORT_GRACE => {
            (ReportStatus::Upcoming, None, String::new())
        }
        None => {
            let seen = match day.last_seen {
                Some(t) => {
                    format!("station last seen {}", t.with_timezone(&tz).format("%Y-%m-%d %H:%M"))
                }
                None => "station never seen by central".to_string(),
            };
            (ReportStatus::NotReported, None, seen)
        }
    };
    ReportRow {
        station: day.station.id.clone(),
        district: day.station.district.clone(),
        item_id: p.item_id.clone(),
        title: p.title.clone(),
        planned: p.planned,
        status,
        delay_ms,
        detail,
    }
}

/// Builds the report for `date` (local to `tz`), as of `now`.
pub fn build(date: NaiveDate, tz: Tz, now: DateTime<Utc>, days: &[StationDay]) -> DailyReport {
    let mut rows = Vec::new();
    let mut totals: BTreeMap<String, DistrictTotals> = BTreeMap::new();
    for day in days {
        let by_key: HashMap<(&str, DateTime<Utc>), &Record> = day
            .records
            .iter()
            .map(|r| ((r.entry.item_id.as_str(), r.entry.planned.trunc_subsecs(6)), r))
            .collect();
        let district =
            totals.entry(day.station.district.clone()).or_insert_with(|| DistrictTotals {
                district: day.station.district.clone(),
                stations: 0,
                planned: 0,
                counts: ReportStatus::ALL.iter().map(|s| (s.as_str().to_string(), 0)).collect(),
            });
        district.stations += 1;
        for p in &day.planned {
            let record = by_key.get(&(p.item_id.as_str(), p.planned.trunc_subsecs(6))).copied();
            let row = row_for(p, record, day, now, tz);
            district.planned += 1;
            *district.counts.entry(row.status.as_str().to_string()).or_insert(0) += 1;
            rows.push(row);
        }
    }
    rows.sort_by(|a, b| {
        (&a.district, &a.station, a.planned, &a.item_id).cmp(&(
            &b.district,
            &b.station,
            b.planned,
            &b.item_id,
        ))
    });
    DailyReport {
        date,
        timezone: tz.name().to_string(),
        generated_at: now,
        rows,
        districts: totals.into_values().collect(),
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::ledger::{Entry, GENESIS};
    use crate::schedule::Priority;

    const SOURCE: &str = r#"layer = "provincial"
[[item]]
id = "sang"
title = "Bản tin sáng"
audio = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
cron = "30 5 * * *"
[[item]]
id = "trua"
title = "Bản tin trưa"
audio = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
cron = "0 11 * * *"
[[item]]
id = "chieu"
title = "Bản tin chiều"
audio = "sha256:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
cron = "0 17 * * *"
"#;

    fn schedule() -> Schedule {
        crate::schedule::parse(SOURCE, "p.toml", std::path::Path::new("")).schedule.unwrap()
    }

    fn record(
        station: &str,
        seq: u64,
        item: &str,
        planned: DateTime<Utc>,
        outcome: Outcome,
    ) -> Record {
        let mut entry = Entry::missed(
            item,
            "t",
            Layer::Provincial,
            Priority::Normal,
            planned,
            "yielded to bulletin",
        );
        entry.outcome = outcome;
        match outcome {
            Outcome::Played => {
                entry.reason = None;
                entry.delay_ms = Some(2);
            }
            Outcome::Late => {
                entry.reason = None;
                entry.delay_ms = Some(95_000);
            }
            Outcome::Preempted => {
                entry.reason = Some("bulletin lu-lut".into());
                entry.played_secs = Some(12.0);
            }
            Outcome::Failed => entry.reason = Some("audio missing: x".into()),
            Outcome::Missed => {}
        }
        Record {
            station: station.into(),
            seq,
            entry,
            prev_hash: GENESIS.into(),
            hash: String::new(),
            acked: true,
        }
    }

    #[test]
    fn every_outcome_kind_on_a_known_day() {
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        let date = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let (from, until) = day_bounds(date, tz);
        assert_eq!(from, Utc.with_ymd_and_hms(2026, 11, 30, 17, 0, 0).unwrap());
        let issued = from - chrono::Duration::days(1);
        let planned = planned_between(&[(issued, vec![schedule()])], from, until);
        assert_eq!(
            planned.iter().map(|p| p.item_id.as_str()).collect::<Vec<_>>(),
            ["sang", "trua", "chieu"]
        );
        let at = |p: &Planned| p.planned;
        let station = |id: &str, district: &str| Station {
            id: id.into(),
            name: id.into(),
            district: district.into(),
        };
        let seen = Utc.with_ymd_and_hms(2026, 12, 1, 1, 0, 0).unwrap();
        let days = vec![
            StationDay {
                station: station("a", "Tri Tôn"),
                planned: planned.clone(),
                records: vec![
                    record("a", 1, "sang", at(&planned[0]), Outcome::Played),
                    record("a", 2, "trua", at(&planned[1]), Outcome::Late),
                    record("a", 3, "chieu", at(&planned[2]), Outcome::Preempted),
                ],
                last_seen: Some(seen),
            },
            StationDay {
                station: station("b", "Tri Tôn"),
                planned: planned.clone(),
                records: vec![
                    record("b", 1, "sang", at(&planned[0]), Outcome::Failed),
                    record("b", 2, "trua", at(&planned[1]), Outcome::Missed),
                ],
                last_seen: Some(seen),
            },
            StationDay {
                station: station("c", "Tịnh Biên"),
                planned: planned.clone(),
                records: vec![],
                last_seen: None,
            },
        ];
        // 16:00 local: the 17:00 item is still to come.
        let now = Utc.with_ymd_and_hms(2026, 12, 1, 9, 0, 0).unwrap();
        let report = build(date, tz, now, &days);
        let status = |s: &str, item: &str| {
            report.rows.iter().find(|r| r.station == s && r.item_id == item).unwrap().clone()
        };
        assert_eq!(status("a", "sang").status, ReportStatus::Aired);
        let late = status("a", "trua");
        assert_eq!((late.status, late.delay_ms), (ReportStatus::Late, Some(95_000)));
        assert_eq!(late.detail, "late by 95.0s");
        let pre = status("a", "chieu");
        assert_eq!(pre.status, ReportStatus::Preempted);
        assert_eq!(pre.detail, "bulletin lu-lut after 12.0s");
        assert_eq!(status("b", "sang").status, ReportStatus::Failed);
        assert_eq!(status("b", "sang").detail, "audio missing: x");
        let missed = status("b", "trua");
        assert_eq!(
            (missed.status, missed.detail.as_str()),
            (ReportStatus::Missed, "yielded to bulletin")
        );
        assert_eq!(status("b", "chieu").status, ReportStatus::Upcoming);
        let offline = status("c", "sang");
        assert_eq!(offline.status, ReportStatus::NotReported);
        assert_eq!(offline.detail, "station never seen by central");
        let tri_ton = report.districts.iter().find(|d| d.district == "Tri Tôn").unwrap();
        assert_eq!((tri_ton.stations, tri_ton.planned), (2, 6));
        for (k, n) in [
            ("aired", 1),
            ("late", 1),
            ("preempted", 1),
            ("failed", 1),
            ("missed", 1),
            ("upcoming", 1),
        ] {
            assert_eq!(tri_ton.counts[k], n, "{k}");
        }
        let tinh_bien = report.districts.iter().find(|d| d.district == "Tịnh Biên").unwrap();
        assert_eq!(tinh_bien.counts["not-reported"], 2);
        assert_eq!(tinh_bien.counts["upcoming"], 1);
        // The next day everything unreported has passed its deadline.
        let later = build(date, tz, until + chrono::Duration::hours(1), &days);
        assert_eq!(later.rows.iter().filter(|r| r.status == ReportStatus::NotReported).count(), 4);
    }

    #[test]
    fn a_manifest_governs_only_from_its_issue() {
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        let date = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let (from, until) = day_bounds(date, tz);
        // Issued at 12:00 local: only the 17:00 play counts that day.
        let issued = from + chrono::Duration::hours(12);
        let planned = planned_between(&[(issued, vec![schedule()])], from, until);
        assert_eq!(planned.len(), 1);
        assert_eq!(planned[0].item_id, "chieu");
        // A later manifest without schedules ends it.
        let planned = planned_between(
            &[(from - chrono::Duration::days(1), vec![schedule()]), (issued, vec![])],
            from,
            until,
        );
        assert_eq!(
            planned.iter().map(|p| p.item_id.as_str()).collect::<Vec<_>>(),
            ["sang", "trua"]
        );
    }
}
