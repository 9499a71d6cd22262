//! The real `loa station` process with its wall clock stepped under it by libfaketime
//! (Debian's `faketime`, installed by scripts/deps.sh), the monotonic clock left alone
//! (`DONT_FAKE_MONOTONIC=1`), as NTP steps it: an hour back (a fast clock corrected),
//! then a year forward. The offset is read from a file the test rewrites
//! (`FAKETIME_TIMESTAMP_FILE`, re-read every second).

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use loa::station::ledger::{Filter, Ledger, Outcome, Record};

use crate::support::audio::tone_wav;
use crate::support::process::{Proc, command};
use crate::support::{serial, wait};

const LIBFAKETIME: &[&str] = &[
    "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/aarch64-linux-gnu/faketime/libfaketime.so.1",
    "/usr/lib/faketime/libfaketime.so.1",
];

fn libfaketime() -> PathBuf {
    LIBFAKETIME.iter().map(PathBuf::from).find(|p| p.exists()).unwrap_or_else(|| {
        panic!("libfaketime is missing: run scripts/deps.sh (apt-get install faketime)")
    })
}

struct Station {
    proc: Proc,
    dir: tempfile::TempDir,
}

impl Station {
    fn offset(&self, spec: &str) {
        // Written whole and renamed, so libfaketime never reads half a line.
        let tmp = self.dir.path().join("faketime.tmp");
        std::fs::write(&tmp, format!("{spec}\n")).expect("write offset");
        std::fs::rename(&tmp, self.dir.path().join("faketime")).expect("rename offset");
    }

    fn records(&self) -> Vec<Record> {
        let path = self.dir.path().join("data/ledger.sqlite3");
        match Ledger::open_existing(&path) {
            Ok(ledger) => ledger.query(&Filter::default()).unwrap_or_default(),
            Err(_) => Vec::new(),
        }
    }

    fn log(&self) -> String {
        self.proc.log()
    }

    /// Waits (bounded) until `ok` holds for the records.
    fn wait_for(&self, what: &str, limit: Duration, ok: impl Fn(&[Record]) -> bool) -> Vec<Record> {
        wait::until(what, limit, || {
            let records = self.records();
            if ok(&records) {
                return Ok(records);
            }
            Err(format!(
                "{} records; log tail:\n{}",
                records.len(),
                self.log().lines().rev().take(30).collect::<Vec<_>>().join("\n")
            ))
        })
    }
}

fn start(initial_offset: &str) -> Station {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(dir.path().join("schedules")).expect("schedules dir");
    tone_wav(&dir.path().join("tone.wav"), 8_000, 1, 1.0, 440.0, 0.5);
    // A one-second item every 20 s (cron with seconds first).
    std::fs::write(
        dir.path().join("schedules/xa.toml"),
        "layer = \"local\"\n[[item]]\nid = \"moi-20s\"\ntitle = \"Mỗi 20 giây\"\n\
         audio = \"../tone.wav\"\ncron = \"*/20 * * * * *\"\nmax_delay = \"5s\"\n",
    )
    .expect("schedule");
    std::fs::write(
        dir.path().join("station.toml"),
        "station_id = \"xa-faketime\"\ndata_dir = \"data\"\nlocal_schedules = \"schedules\"\n\
         [audio]\nsink = \"clocked\"\n",
    )
    .expect("config");
    std::fs::write(dir.path().join("faketime"), format!("{initial_offset}\n")).expect("offset");
    let proc = Proc::start_logged(
        command()
            .args(["station", "--config"])
            .arg(dir.path().join("station.toml"))
            .env("LD_PRELOAD", libfaketime())
            .env("FAKETIME_TIMESTAMP_FILE", dir.path().join("faketime"))
            .env("FAKETIME_CACHE_DURATION", "1")
            .env("DONT_FAKE_MONOTONIC", "1"),
        &dir.path().join("station.log"),
    );
    proc.wait_station_started();
    Station { proc, dir }
}

fn played_after(records: &[Record], after: DateTime<Utc>) -> Option<&Record> {
    records.iter().find(|r| r.entry.planned > after && r.entry.outcome == Outcome::Played)
}

#[test]
fn a_real_station_survives_its_clock_stepped_back_an_hour_then_forward_a_year() {
    let _serial = serial();
    // The clock starts an hour fast.
    let station = start("+1h");
    let first = station.wait_for("a first play", Duration::from_secs(40), |r| {
        r.iter().any(|r| r.entry.outcome == Outcome::Played)
    });
    let fast_play = first[0].entry.planned;

    // Back an hour (NTP corrects it): the station plans from the corrected now and airs
    // the next play on time, although the clock had been past it.
    station.offset("+0");
    let corrected_from = fast_play - chrono::Duration::minutes(59);
    let records = station.wait_for("a play at the corrected time", Duration::from_secs(40), |r| {
        r.iter().any(|r| r.entry.planned < corrected_from && r.entry.outcome == Outcome::Played)
    });
    let on_time = records
        .iter()
        .find(|r| r.entry.planned < corrected_from && r.entry.outcome == Outcome::Played)
        .expect("played");
    assert!(on_time.entry.delay_ms.is_some_and(|d| d.abs() < 100), "{:?}", on_time.entry);
    assert!(station.log().contains("the wall clock stepped back"), "{}", station.log());
    assert!(
        records
            .iter()
            .all(|r| r.entry.reason.as_deref() != Some("could not start within max_delay"))
    );

    // Forward a year: a week of plays recorded one by one, the rest in one summary
    // record, in bounded time; then the next play on time.
    let before = station.records().len();
    let stepped_at = Utc::now() + chrono::Duration::days(365);
    station.offset("+365d");
    let records = station.wait_for("a play after a year's step", Duration::from_secs(120), |r| {
        played_after(r, stepped_at).is_some()
    });
    let stepped: Vec<_> = records
        .iter()
        .filter(|r| {
            r.entry
                .reason
                .as_deref()
                // The step is measured (wall minus monotonic time between two readings),
                // so it can come out a few ms short of 365 d, shown as 364d 23h 59m 59s.
                .is_some_and(|x| {
                    x.starts_with("clock stepped forward by 365d 0h 0m")
                        || x.starts_with("clock stepped forward by 364d 23h 59m")
                })
        })
        .collect();
    // A week of 20-second slots (3 a minute), plus the hour the daemon had already
    // planned ahead when the clock jumped (up to 180 slots).
    let week = 7 * 24 * 60 * 3;
    assert!((week - 3..=week + 190).contains(&stepped.len()), "{} one by one", stepped.len());
    let summaries: Vec<_> =
        records.iter().filter(|r| r.entry.item_id == loa::station::daemon::SUMMARY_ITEM).collect();
    assert_eq!(summaries.len(), 1);
    let detail = summaries[0].entry.reason.clone().unwrap_or_default();
    let counted: usize = detail.split(' ').next().and_then(|n| n.parse().ok()).expect("count");
    // The year less that week, in 20-second slots.
    assert!(counted.abs_diff(358 * 24 * 60 * 3) <= 3 * 60 * 2, "{detail}");
    assert!(
        records.len() - before < week + 300,
        "bounded: {} records written",
        records.len() - before
    );
    let next = played_after(&records, stepped_at).expect("played");
    assert!(next.entry.delay_ms.is_some_and(|d| d.abs() < 100), "{:?}", next.entry);
    assert!(station.log().contains("the wall clock stepped forward"));
    assert_eq!(
        Ledger::open_existing(&station.dir.path().join("data/ledger.sqlite3"))
            .expect("ledger")
            .verify()
            .expect("verify")
            .first_break,
        None
    );
}
