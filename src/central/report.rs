//! `loa report DATE`: the compliance view. For every station and every provincial item
//! its manifests planned that day, what the station reported — aired on time, late (by
//! how much), pre-empted, failed, missed (why) — or that nothing has arrived yet. Then,
//! for every bulletin pushed that day and every target station: aired (latency from the
//! push, plays aired of planned), test-ok, cancelled, failed, expired, not reached
//! (station offline), or pending.
//!
//! Pure: the caller passes the manifests' schedules, the records, the bulletins with
//! their delivery states and the clock reading, so every outcome kind is unit-tested
//! without a server.
//!
//! A bulletin's facts come from two places that can disagree: the delivery states the
//! station's receiver posts (`started` with its latency, `test-ok`, `failed`…) and the
//! ledger records of its plays (item id = bulletin id). **The records win**: a record is
//! written durably, hash-chained, and resent until central stores it, while a delivery
//! state is a quick notification that is dropped after a few failed posts. So when a
//! bulletin has any record at a station, the records alone say whether and how often it
//! aired there. Delivery states fill in only what no record can say: a play still
//! sounding (a record is written when a play ends), `test-ok` (a test is never aired, so
//! never recorded), and refusals before the player (expired on arrival, audio download
//! failed).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use chrono::{DateTime, NaiveDate, SubsecRound, Utc};
use chrono_tz::Tz;

use crate::protocol::Reason;
use crate::protocol::{
    BulletinDoc, BulletinPriority, BulletinReportRow, BulletinStatus, BulletinTotals, DailyReport,
    DeliveryReport, DeliveryState, DistrictTotals, ReportRow, ReportStatus,
};
use crate::protocol::{Outcome, Record};
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
    /// Last contact (heartbeat or bulletin stream), for "offline since".
    pub last_seen: Option<DateTime<Utc>>,
}

/// What central knows of one bulletin issued on the report's day.
#[derive(Debug, Clone)]
pub struct BulletinFacts {
    pub doc: BulletinDoc,
    pub cancelled_at: Option<DateTime<Utc>>,
    /// Station id → every delivery state it reported for this bulletin.
    pub deliveries: HashMap<String, Vec<DeliveryReport>>,
    /// Station id → its ledger records of this bulletin's plays (item id = bulletin id)
    /// and of its attention tone (`<id>:tone`: not a play, but the first sound, so where
    /// the latency ends); other records are ignored.
    pub records: HashMap<String, Vec<Record>>,
}

/// A reported play is "not reported" only once its deadline is this far behind:
/// stations report within seconds, so this is a margin for a slow link, not a delay.
const REPORT_GRACE: chrono::Duration = chrono::Duration::minutes(2);

/// A station silent this long counts as offline (heartbeats come every minute by default).
const OFFLINE_AFTER: chrono::Duration = chrono::Duration::minutes(5);

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

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M").to_string()
}

/// "station offline since …" when it has been silent over [`OFFLINE_AFTER`], `None` when
/// it is online.
fn offline(last_seen: Option<DateTime<Utc>>, now: DateTime<Utc>, tz: Tz) -> Option<String> {
    match last_seen {
        Some(t) if now - t > OFFLINE_AFTER => {
            Some(format!("station offline since {}", local(t, tz)))
        }
        Some(_) => None,
        None => Some("station never seen by central".to_string()),
    }
}

/// Whose problem a station's `missed` reason points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MissCause {
    /// The station's clock jumped: nobody chose to skip it.
    Clock,
    /// Anything else (yielded, too late, station not running, cancelled…).
    Other,
}

/// Classifies a `missed` record's reason.
pub fn miss_cause(reason: &Reason) -> MissCause {
    match reason {
        Reason::ClockStepped(_) => MissCause::Clock,
        _ => MissCause::Other,
    }
}

/// The detail shown for a `missed` play: a clock problem says so first.
fn miss_detail(reason: Option<&Reason>) -> String {
    match reason {
        Some(r) if miss_cause(r) == MissCause::Clock => {
            format!("clock problem at the station, not an operator's: {r}")
        }
        Some(r) => r.to_string(),
        None => String::new(),
    }
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
            let why = e.reason();
            let reason = why.as_ref().map(ToString::to_string).unwrap_or_default();
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
                Outcome::Missed => (ReportStatus::Missed, None, miss_detail(why.as_ref())),
                // A relay that carried nothing of its stream did not air the programme.
                Outcome::Relayed => match e.relay {
                    Some(r) if r.relayed_secs > 0.0 => {
                        (ReportStatus::Aired, e.delay_ms, r.summary())
                    }
                    r => {
                        let what = r.map(|r| r.summary()).unwrap_or_default();
                        let detail =
                            if reason.is_empty() { what } else { format!("{reason}; {what}") };
                        (ReportStatus::Failed, e.delay_ms, detail)
                    }
                },
            }
        }
        None if now < p.planned + p.max_delay + REPORT_GRACE => {
            (ReportStatus::Upcoming, None, String::new())
        }
        None => {
            let seen = offline(day.last_seen, now, tz)
                .unwrap_or_else(|| "station online but has not reported it".to_string());
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

/// What one bulletin came to at one station (see the module docs for which facts win).
fn bulletin_row(
    b: &BulletinFacts,
    day: &StationDay,
    now: DateTime<Utc>,
    tz: Tz,
) -> BulletinReportRow {
    let doc = &b.doc;
    let sid = day.station.id.as_str();
    let mut records: Vec<&Record> = b
        .records
        .get(sid)
        .map(|v| v.iter().filter(|r| r.entry.item_id == doc.id).collect())
        .unwrap_or_default();
    let tone_id = format!("{}:tone", doc.id);
    let tone_started = b.records.get(sid).and_then(|v| {
        v.iter().filter(|r| r.entry.item_id == tone_id).filter_map(|r| r.entry.started).min()
    });
    records.sort_by_key(|r| r.seq);
    let reports: &[DeliveryReport] = b.deliveries.get(sid).map_or(&[], Vec::as_slice);
    let report = |state: DeliveryState| reports.iter().find(|r| r.state == state);
    let test = doc.priority == BulletinPriority::Test;
    let plays_planned = if test { 0 } else { doc.repeat.saturating_add(1) };
    let started: Vec<&Record> =
        records.iter().copied().filter(|r| r.entry.started.is_some()).collect();

    // Whether and how often it aired: the records when there are any, else the delivery
    // states (a play still sounding has no record yet).
    let (plays_aired, latency_ms) = if !records.is_empty() {
        // Push to the first sound at the loudspeaker: the tone's, when it played one.
        let first = started
            .iter()
            .filter_map(|r| r.entry.started)
            .min()
            .map(|t| tone_started.map_or(t, |tone| tone.min(t)));
        (started.len() as u32, first.map(|t| (t - doc.issued_at).num_milliseconds()))
    } else if let Some(r) = report(DeliveryState::Started) {
        let plays = if report(DeliveryState::Finished).is_some() { plays_planned } else { 1 };
        (plays, r.latency_ms.or(Some((r.at - doc.issued_at).num_milliseconds())))
    } else if report(DeliveryState::Finished).is_some() && !test {
        (plays_planned, None)
    } else {
        (0, None)
    };
    // The reason the station gave for a play that never started, if it did.
    let unplayed = records.iter().find(|r| r.entry.started.is_none());
    let unplayed_reason = unplayed.map(|r| match r.entry.reason() {
        Some(reason) => reason,
        None => Reason::Failure(r.entry.outcome.as_str().to_string()),
    });
    let offline_note = offline(day.last_seen, now, tz);
    let received = report(DeliveryState::Delivered).or(report(DeliveryState::Verified));

    let (status, detail) = if plays_aired > 0 {
        let mut notes = Vec::new();
        if let Some(r) =
            started.iter().find(|r| matches!(r.entry.outcome, Outcome::Preempted | Outcome::Failed))
        {
            let why =
                r.entry.reason().map_or_else(|| r.entry.outcome.to_string(), |r| r.to_string());
            let played = r.entry.played_secs.map(|s| format!(" after {s:.1}s")).unwrap_or_default();
            notes.push(format!("cut short{played}: {why}"));
        }
        if plays_aired < plays_planned {
            let why = unplayed_reason.as_ref().map(ToString::to_string).or_else(|| {
                if b.cancelled_at.is_some() {
                    Some(Reason::Cancelled.to_string())
                } else if now >= doc.expires_at {
                    Some("expired".to_string())
                } else {
                    None
                }
            });
            let text = match why {
                Some(w) if notes.iter().any(|n| n.ends_with(&w)) => {
                    format!("{plays_aired} of {plays_planned} plays")
                }
                Some(w) => format!("{plays_aired} of {plays_planned} plays: {w}"),
                None => format!("{plays_aired} of {plays_planned} plays so far"),
            };
            notes.push(text);
        }
        if records.is_empty() {
            notes.push("proof of play not received yet".to_string());
        }
        (BulletinStatus::Aired, notes.join("; "))
    } else if let Some(reason) = unplayed_reason {
        // Recorded at the station, never started: the record says why.
        match reason {
            Reason::Cancelled => (BulletinStatus::Cancelled, format!("{reason} before it aired")),
            Reason::Expired(_) => (BulletinStatus::Expired, reason.to_string()),
            other => (BulletinStatus::Failed, other.to_string()),
        }
    } else if test && report(DeliveryState::TestOk).is_some() {
        (BulletinStatus::TestOk, String::new())
    } else if let Some(failed) = report(DeliveryState::Failed) {
        let why = failed.why();
        let reason = why.as_ref().map_or_else(|| "no reason given".to_string(), |r| r.to_string());
        // A refusal at or after expiry (the station's expiry check, or a download that
        // kept failing until expiry) means it expired before reaching the speaker.
        if failed.at >= doc.expires_at || matches!(why, Some(Reason::Expired(_))) {
            (BulletinStatus::Expired, reason)
        } else {
            (BulletinStatus::Failed, reason)
        }
    } else if let Some(at) = b.cancelled_at {
        let mut detail = format!("{} at {} before it aired", Reason::Cancelled, local(at, tz));
        if received.is_none()
            && let Some(note) = &offline_note
        {
            detail.push_str(&format!("; {note}"));
        }
        (BulletinStatus::Cancelled, detail)
    } else if now >= doc.expires_at + REPORT_GRACE {
        let expired = local(doc.expires_at, tz);
        let detail = match (received, &offline_note) {
            (Some(r), _) => {
                format!("received {} but not aired before it expired at {expired}", local(r.at, tz))
            }
            (None, Some(note)) => {
                format!("expired at {expired} before it reached the station; {note}")
            }
            (None, None) => format!(
                "expired at {expired} before it reached the station (online, but no delivery reported)"
            ),
        };
        (BulletinStatus::Expired, detail)
    } else if let Some(r) = received {
        let what = if test { "test not confirmed yet" } else { "not started yet" };
        (BulletinStatus::Pending, format!("received {}, {what}", local(r.at, tz)))
    } else if let Some(note) = offline_note {
        (
            BulletinStatus::NotReached,
            format!("{note}; it airs if the station is back before {}", local(doc.expires_at, tz)),
        )
    } else {
        (BulletinStatus::Pending, "not delivered yet".to_string())
    };
    BulletinReportRow {
        station: day.station.id.clone(),
        district: day.station.district.clone(),
        bulletin_id: doc.id.clone(),
        title: doc.title.clone(),
        priority: doc.priority,
        issued_at: doc.issued_at,
        expires_at: doc.expires_at,
        status,
        latency_ms,
        plays_aired,
        plays_planned,
        detail,
    }
}

/// The rows of the bulletins issued in `[from, until)` for the stations in `days`
/// (others are not the caller's to see), with totals per district.
fn bulletin_section(
    bulletins: &[BulletinFacts],
    days: &[StationDay],
    (from, until): (DateTime<Utc>, DateTime<Utc>),
    now: DateTime<Utc>,
    tz: Tz,
) -> (Vec<BulletinReportRow>, Vec<BulletinTotals>) {
    let by_id: HashMap<&str, &StationDay> =
        days.iter().map(|d| (d.station.id.as_str(), d)).collect();
    let mut rows = Vec::new();
    for b in bulletins.iter().filter(|b| from <= b.doc.issued_at && b.doc.issued_at < until) {
        let targets: BTreeSet<&str> = b.doc.targets.iter().map(String::as_str).collect();
        for target in targets {
            if let Some(day) = by_id.get(target) {
                rows.push(bulletin_row(b, day, now, tz));
            }
        }
    }
    rows.sort_by(|a, b| {
        (a.issued_at, &a.bulletin_id, &a.district, &a.station).cmp(&(
            b.issued_at,
            &b.bulletin_id,
            &b.district,
            &b.station,
        ))
    });
    let mut totals: BTreeMap<&str, (BTreeSet<&str>, BulletinTotals)> = BTreeMap::new();
    for row in &rows {
        let (stations, t) = totals.entry(row.district.as_str()).or_insert_with(|| {
            let counts = BulletinStatus::ALL.iter().map(|s| (s.as_str().to_string(), 0)).collect();
            let t =
                BulletinTotals { district: row.district.clone(), stations: 0, targets: 0, counts };
            (BTreeSet::new(), t)
        });
        stations.insert(row.station.as_str());
        t.stations = stations.len() as u64;
        t.targets += 1;
        *t.counts.entry(row.status.as_str().to_string()).or_insert(0) += 1;
    }
    let totals = totals.into_values().map(|(_, t)| t).collect();
    (rows, totals)
}

/// Builds the report for `date` (local to `tz`), as of `now`: the planned provincial
/// items of `days`, and those of `bulletins` issued that day (in `tz`) at the stations
/// of `days`.
pub fn build(
    date: NaiveDate,
    tz: Tz,
    now: DateTime<Utc>,
    days: &[StationDay],
    bulletins: &[BulletinFacts],
) -> DailyReport {
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
    let bounds = day_bounds(date, tz);
    let (bulletin_rows, bulletin_districts) = bulletin_section(bulletins, days, bounds, now, tz);
    DailyReport {
        date,
        timezone: tz.name().to_string(),
        generated_at: now,
        rows,
        districts: totals.into_values().collect(),
        bulletins: bulletin_rows,
        bulletin_districts,
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;
    use crate::protocol::{Entry, GENESIS};
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
            Reason::YieldedTo("bulletin".into()),
        );
        entry.outcome = outcome;
        match outcome {
            Outcome::Played => {
                entry.set_reason(None);
                entry.delay_ms = Some(2);
            }
            Outcome::Late => {
                entry.set_reason(None);
                entry.delay_ms = Some(95_000);
            }
            Outcome::Preempted => {
                entry.set_reason(Some(Reason::Failure("bulletin lu-lut".into())));
                entry.played_secs = Some(12.0);
            }
            Outcome::Failed => entry.set_reason(Some(Reason::Failure("audio missing: x".into()))),
            Outcome::Missed => {}
            Outcome::Relayed => {
                entry.set_reason(None);
                entry.delay_ms = Some(1);
                entry.relay = Some(crate::protocol::playlog::RelayFacts {
                    relayed_secs: 55.0,
                    dropouts: 1,
                    dropout_secs: 5.0,
                    longest_dropout_secs: 5.0,
                });
            }
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
    fn clock_step_misses_are_a_clock_problem_by_code_and_in_old_records_by_text() {
        let stepped = Reason::ClockStepped("clock stepped forward by 1d 0h 0m 0s".into());
        assert_eq!(miss_cause(&stepped), MissCause::Clock);
        // Records from stations older than reason codes: their text is classified.
        let old = |text: &str| miss_cause(&Reason::from_stored(None, text));
        let summary = "12 plays between A and B not recorded one by one: clock stepped forward by 3d 0h 0m 0s";
        assert_eq!(old(summary), MissCause::Clock);
        assert_eq!(old("yielded to tinh"), MissCause::Other);
        assert_eq!(old("station was not running"), MissCause::Other);
        assert_eq!(miss_cause(&Reason::YieldedTo("tinh".into())), MissCause::Other);
        let two_minutes = Reason::ClockStepped("clock stepped forward by 2m 0s".into());
        assert!(miss_detail(Some(&two_minutes)).starts_with("clock problem"));
        assert_eq!(miss_detail(Some(&Reason::YieldedTo("tinh".into()))), "yielded to tinh");
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
        let report = build(date, tz, now, &days, &[]);
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
        let later = build(date, tz, until + chrono::Duration::hours(1), &days, &[]);
        assert_eq!(later.rows.iter().filter(|r| r.status == ReportStatus::NotReported).count(), 4);
        let b_chieu = later.rows.iter().find(|r| r.station == "b" && r.item_id == "chieu").unwrap();
        assert_eq!(b_chieu.detail, "station offline since 2026-12-01 08:00");
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

    fn bulletin(id: &str, issued: DateTime<Utc>, repeat: u32, test: bool) -> BulletinDoc {
        BulletinDoc {
            id: id.into(),
            title: "Cảnh báo lũ".into(),
            targets: vec![],
            to_all: false,
            audio_sha256: "a".repeat(64),
            audio_size: 1,
            gain_db: 0.0,
            priority: if test { BulletinPriority::Test } else { BulletinPriority::Emergency },
            repeat,
            interval_secs: 60,
            tone: false,
            issued_at: issued,
            expires_at: issued + chrono::Duration::hours(1),
            event_seq: None,
        }
    }

    /// A ledger record of one play of bulletin `id`: started `start_ms` after `planned`
    /// unless `outcome` is missed.
    fn play(
        station: &str,
        seq: u64,
        id: &str,
        planned: DateTime<Utc>,
        outcome: Outcome,
        reason: Option<Reason>,
    ) -> Record {
        let mut r = record(station, seq, id, planned, Outcome::Missed);
        r.entry.priority = Priority::Emergency;
        r.entry.outcome = outcome;
        r.entry.set_reason(reason);
        r.entry.played_secs = None;
        if outcome != Outcome::Missed {
            r.entry.started = Some(planned + chrono::Duration::milliseconds(100));
            r.entry.delay_ms = Some(100);
            r.entry.played_secs = Some(if outcome == Outcome::Played { 20.0 } else { 12.0 });
        }
        r
    }

    fn delivery(id: &str, state: DeliveryState, at: DateTime<Utc>) -> DeliveryReport {
        DeliveryReport {
            bulletin_id: id.into(),
            state,
            at,
            latency_ms: None,
            reason: None,
            reason_code: None,
        }
    }

    #[test]
    fn every_bulletin_outcome_kind() {
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        let date = NaiveDate::from_ymd_opt(2026, 12, 1).unwrap();
        let ms = chrono::Duration::milliseconds;
        // 07:00 local on the report's day.
        let issued = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let now = issued + chrono::Duration::minutes(10);
        let online = Some(now - chrono::Duration::seconds(30));
        let day = |id: &str, district: &str, last_seen: Option<DateTime<Utc>>| StationDay {
            station: Station { id: id.into(), name: id.into(), district: district.into() },
            planned: vec![],
            records: vec![],
            last_seen,
        };
        let days = vec![
            day("aired", "Tri Tôn", online),
            day("playing", "Tri Tôn", online),
            day("records-win", "Tri Tôn", online),
            day("cut-short", "Tri Tôn", online),
            day("queued-expired", "Tri Tôn", online),
            day("failed", "Tịnh Biên", online),
            day("expired-on-arrival", "Tịnh Biên", online),
            day("offline", "Tịnh Biên", Some(issued - chrono::Duration::hours(2))),
            day("quiet", "Tịnh Biên", online),
            day("received", "Tịnh Biên", online),
            day("cancelled-mid", "Châu Đốc", online),
            day("cancelled-queued", "Châu Đốc", online),
            day("cancelled-unseen", "Châu Đốc", None),
            day("tested", "Châu Đốc", online),
        ];

        // An emergency with one repeat, to every station of the first two districts
        // (and one the caller may not see).
        let mut lu = bulletin("b-lu", issued, 1, false);
        lu.targets = days[..10].iter().map(|d| d.station.id.clone()).collect();
        lu.targets.push("not-shown".into());
        let t0 = issued + ms(400);
        let mut deliveries: HashMap<String, Vec<DeliveryReport>> = HashMap::new();
        let mut records: HashMap<String, Vec<Record>> = HashMap::new();
        records.insert(
            "aired".into(),
            vec![
                play("aired", 7, "b-lu", t0, Outcome::Played, None),
                play("aired", 8, "b-lu", t0 + ms(80_000), Outcome::Played, None),
                // The attention tone is a record of its own, not a play of the bulletin,
                // but it is the first sound: it sounded 100 ms after the push.
                play("aired", 6, "b-lu:tone", issued, Outcome::Played, None),
            ],
        );
        let mut started = delivery("b-lu", DeliveryState::Started, t0 + ms(100));
        started.latency_ms = Some(450);
        deliveries.insert("playing".into(), vec![started.clone()]);
        // The station said it failed and started it with another latency; its ledger
        // says it played twice: the ledger wins.
        let mut failed = delivery("b-lu", DeliveryState::Failed, t0);
        failed.reason = Some("bulletin audio: connection reset".into());
        let mut wrong = started.clone();
        wrong.latency_ms = Some(9_999);
        deliveries.insert("records-win".into(), vec![failed, wrong]);
        records.insert(
            "records-win".into(),
            vec![
                play("records-win", 1, "b-lu", t0, Outcome::Played, None),
                play("records-win", 2, "b-lu", t0 + ms(80_000), Outcome::Late, None),
            ],
        );
        records.insert(
            "cut-short".into(),
            vec![play("cut-short", 3, "b-lu", t0, Outcome::Preempted, Some(Reason::Shutdown))],
        );
        deliveries
            .insert("queued-expired".into(), vec![delivery("b-lu", DeliveryState::Delivered, t0)]);
        records.insert(
            "queued-expired".into(),
            vec![play(
                "queued-expired",
                9,
                "b-lu",
                t0,
                Outcome::Missed,
                Some(Reason::Expired(None)),
            )],
        );
        let mut broken = delivery("b-lu", DeliveryState::Failed, t0);
        broken.reason = Some("bulletin audio: sha256 mismatch".into());
        deliveries.insert("failed".into(), vec![broken]);
        let mut late = delivery("b-lu", DeliveryState::Failed, lu.expires_at + ms(5));
        late.reason = Some("bulletin b-lu refused".into());
        deliveries.insert("expired-on-arrival".into(), vec![late]);
        deliveries.insert(
            "received".into(),
            vec![
                delivery("b-lu", DeliveryState::Delivered, t0),
                delivery("b-lu", DeliveryState::Verified, t0),
            ],
        );
        let lu = BulletinFacts { doc: lu, cancelled_at: None, deliveries, records };

        // Three plays planned, cancelled at 07:05.
        let mut bao = bulletin("b-bao", issued + ms(1000), 3, false);
        bao.targets = vec!["cancelled-mid".into(), "cancelled-queued".into()];
        bao.targets.push("cancelled-unseen".into());
        let t1 = bao.issued_at + ms(300);
        let mut records = HashMap::new();
        records.insert(
            "cancelled-mid".to_string(),
            vec![play(
                "cancelled-mid",
                4,
                "b-bao",
                t1,
                Outcome::Preempted,
                Some(Reason::Cancelled),
            )],
        );
        records.insert(
            "cancelled-queued".to_string(),
            vec![play(
                "cancelled-queued",
                5,
                "b-bao",
                t1,
                Outcome::Missed,
                Some(Reason::Cancelled),
            )],
        );
        let bao = BulletinFacts {
            doc: bao,
            cancelled_at: Some(issued + chrono::Duration::minutes(5)),
            deliveries: HashMap::new(),
            records,
        };

        // The weekly chain test.
        let mut test = bulletin("b-test", issued + ms(2000), 0, true);
        test.targets = vec!["tested".into()];
        let mut deliveries = HashMap::new();
        deliveries.insert(
            "tested".to_string(),
            vec![delivery("b-test", DeliveryState::TestOk, issued + ms(2500))],
        );
        let test =
            BulletinFacts { doc: test, cancelled_at: None, deliveries, records: HashMap::new() };

        // Pushed at 23:59 local the day before, and at 23:59:59 local on the day: the
        // day is the stations' local day, not the UTC one.
        let (from, until) = day_bounds(date, tz);
        let mut before = bulletin("b-before", from - ms(60_000), 0, false);
        before.targets = vec!["aired".into()];
        let mut last = bulletin("b-last", until - ms(1000), 0, false);
        last.targets = vec!["quiet".into()];
        let other_days = |doc: BulletinDoc| BulletinFacts {
            doc,
            cancelled_at: None,
            deliveries: HashMap::new(),
            records: HashMap::new(),
        };
        let facts = vec![lu, bao, test, other_days(before), other_days(last)];

        let report = build(date, tz, now, &days, &facts);
        let row = |id: &str, station: &str| {
            report
                .bulletins
                .iter()
                .find(|r| r.bulletin_id == id && r.station == station)
                .unwrap_or_else(|| panic!("no row for {id} at {station}: {report:#?}"))
                .clone()
        };
        let check = |id: &str, station: &str, status, plays: (u32, u32), detail: &str| {
            let r = row(id, station);
            assert_eq!(
                (r.status, (r.plays_aired, r.plays_planned), r.detail.as_str()),
                (status, plays, detail),
                "{station}"
            );
            r
        };
        use BulletinStatus as S;
        let aired = check("b-lu", "aired", S::Aired, (2, 2), "");
        assert_eq!(aired.latency_ms, Some(100), "the tone's first sample minus the push");
        let playing = check(
            "b-lu",
            "playing",
            S::Aired,
            (1, 2),
            "1 of 2 plays so far; proof of play not received yet",
        );
        assert_eq!(playing.latency_ms, Some(450), "from the delivery state");
        let win = check("b-lu", "records-win", S::Aired, (2, 2), "");
        assert_eq!(win.latency_ms, Some(500), "the record's start, not the delivery state's");
        check(
            "b-lu",
            "cut-short",
            S::Aired,
            (1, 2),
            "cut short after 12.0s: station shutdown; 1 of 2 plays so far",
        );
        check("b-lu", "queued-expired", S::Expired, (0, 2), &Reason::Expired(None).to_string());
        check("b-lu", "failed", S::Failed, (0, 2), "bulletin audio: sha256 mismatch");
        check("b-lu", "expired-on-arrival", S::Expired, (0, 2), "bulletin b-lu refused");
        check(
            "b-lu",
            "offline",
            S::NotReached,
            (0, 2),
            "station offline since 2026-12-01 05:00; it airs if the station is back before 2026-12-01 08:00",
        );
        check("b-lu", "quiet", S::Pending, (0, 2), "not delivered yet");
        check("b-lu", "received", S::Pending, (0, 2), "received 2026-12-01 07:00, not started yet");
        check(
            "b-bao",
            "cancelled-mid",
            S::Aired,
            (1, 4),
            "cut short after 12.0s: cancelled by the province; 1 of 4 plays",
        );
        check(
            "b-bao",
            "cancelled-queued",
            S::Cancelled,
            (0, 4),
            "cancelled by the province before it aired",
        );
        check(
            "b-bao",
            "cancelled-unseen",
            S::Cancelled,
            (0, 4),
            "cancelled by the province at 2026-12-01 07:05 before it aired; station never seen by central",
        );
        let tested = check("b-test", "tested", S::TestOk, (0, 0), "");
        assert_eq!(tested.latency_ms, None);
        // Only what the caller may see, only bulletins pushed on the local day.
        assert!(report.bulletins.iter().all(|r| r.station != "not-shown"));
        assert!(report.bulletins.iter().all(|r| r.bulletin_id != "b-before"));
        check("b-last", "quiet", S::Pending, (0, 1), "not delivered yet");
        assert_eq!(report.bulletins.len(), 10 + 3 + 1 + 1);
        // Grouped by bulletin in push order.
        let order: Vec<&str> = report.bulletins.iter().map(|r| r.bulletin_id.as_str()).collect();
        assert_eq!(order.first(), Some(&"b-lu"));
        assert_eq!(order.last(), Some(&"b-last"));

        let totals = |district: &str| {
            report.bulletin_districts.iter().find(|d| d.district == district).unwrap().clone()
        };
        let tri_ton = totals("Tri Tôn");
        assert_eq!((tri_ton.stations, tri_ton.targets), (5, 5));
        assert_eq!((tri_ton.counts["aired"], tri_ton.counts["expired"]), (4, 1));
        let tinh_bien = totals("Tịnh Biên");
        assert_eq!((tinh_bien.stations, tinh_bien.targets), (5, 6), "quiet got two");
        for (k, n) in
            [("failed", 1), ("expired", 1), ("not-reached", 1), ("pending", 3), ("aired", 0)]
        {
            assert_eq!(tinh_bien.counts[k], n, "{k}");
        }
        let chau_doc = totals("Châu Đốc");
        for (k, n) in [("aired", 1), ("cancelled", 2), ("test-ok", 1)] {
            assert_eq!(chau_doc.counts[k], n, "{k}");
        }

        // After expiry, whatever never reached a station has expired there.
        let later = build(date, tz, issued + chrono::Duration::hours(2), &days, &facts);
        let row = |station: &str| {
            later.bulletins.iter().find(|r| r.bulletin_id == "b-lu" && r.station == station)
        };
        let offline = row("offline").unwrap();
        assert_eq!(offline.status, S::Expired);
        assert_eq!(
            offline.detail,
            "expired at 2026-12-01 08:00 before it reached the station; station offline since 2026-12-01 05:00"
        );
        let received = row("received").unwrap();
        assert_eq!(
            (received.status, received.detail.as_str()),
            (
                S::Expired,
                "received 2026-12-01 07:00 but not aired before it expired at 2026-12-01 08:00"
            )
        );
        // The play in progress never got its record: the delivery state still stands,
        // and no more plays can come.
        let playing = row("playing").unwrap();
        assert_eq!(
            (playing.status, playing.detail.as_str()),
            (S::Aired, "1 of 2 plays: expired; proof of play not received yet")
        );
    }
}
