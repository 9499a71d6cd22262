//! Real processes end to end: `loa central` and `loa station` daemons on loopback, driven
//! by the `loa` command line. A schedule loaded at central reaches two stations, is
//! verified, played (WAV air-check + ledger) and confirmed into central's playlog; with
//! central gone the stations keep playing from their verified cache and catch up when it
//! returns. A SIGKILLed central loses no acknowledged record and stores none twice.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use loa::protocol::{DailyReport, FleetStatus, ReportStatus};
use loa::schedule::{Layer, Priority};
use loa::station::ledger::{Entry, Ledger, Outcome, Record};

use crate::support::process::{
    self, CentralProc, Proc, Remote, StationToml, station_ledger as ledger, stderr, stdout,
};
use crate::support::wait;

/// A province on disk and its central, which keeps its port across restarts (the
/// stations are configured with it).
struct Province {
    dir: PathBuf,
    init: process::Province,
    central: CentralProc,
}

impl Province {
    fn init(dir: &Path) -> Self {
        let init = process::central_init(&dir.join("central"));
        let config = init.config("");
        let central =
            CentralProc::with_args(&["central", "--config", config.to_str().expect("utf-8")])
                .logging_to(&dir.join("central.log"));
        Self { dir: dir.to_path_buf(), init, central }
    }

    fn add_station(&self, id: &str, district: &str) -> String {
        self.init.add_station(id, id, district)
    }

    /// Starts central and returns once it listens: the first time on a port the system
    /// picks, then always on that same port.
    fn start(&mut self) {
        self.central.start();
    }

    /// SIGKILL: central loses whatever it had not made durable.
    fn kill(&mut self) {
        self.central.kill();
    }

    fn url(&self) -> &str {
        assert!(self.central.port != 0, "start central first: its port is not known yet");
        &self.central.url
    }

    fn admin(&self) -> Remote {
        Remote::new(self.url(), &self.init.admin)
    }

    fn station_config(&self, id: &str, token: &str, wav: bool) -> PathBuf {
        let sink =
            if wav { "sink = \"wav\"\nwav_path = \"air.wav\"\n" } else { "sink = \"null\"\n" };
        StationToml {
            id,
            central_url: self.url(),
            token,
            key: &self.init.key,
            extra: "heartbeat_secs = 1\n",
            audio: sink,
        }
        .write(&self.dir.join(id))
    }

    fn fleet(&self) -> Option<FleetStatus> {
        self.admin().fleet()
    }

    fn playlog(&self, args: &[&str]) -> Option<Vec<Record>> {
        let mut all = vec!["log", "--format", "json"];
        all.extend_from_slice(args);
        self.admin().json(&all)
    }
}

/// `loa station --config CONFIG` in the config's directory, its log in `station.log`;
/// returns once it runs (its ledger open).
fn start_station(config: &Path) -> Proc {
    let dir = config.parent().expect("dir");
    let station = Proc::start_logged(
        process::command()
            .args(["station", "--config", config.to_str().expect("utf-8")])
            .current_dir(dir),
        &dir.join("station.log"),
    );
    station.wait_station_started();
    station
}

/// Played to the end, on time or — on a machine loaded by parallel builds — a little
/// late (the daemon's `late` is any start more than a few milliseconds after plan).
fn aired(e: &Entry) -> bool {
    matches!(e.outcome, Outcome::Played | Outcome::Late)
        && e.delay_ms.is_some_and(|d| d.abs() < 2000)
        && e.played_secs.is_some_and(|p| p > 1.4)
}

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::Asia::Ho_Chi_Minh).format("%Y-%m-%dT%H:%M:%S").to_string()
}

/// Peak absolute sample of a 16-bit WAV file, ignoring a header still being written.
fn wav_peak(path: &Path) -> i32 {
    let bytes = std::fs::read(path).unwrap_or_default();
    bytes
        .get(44..)
        .unwrap_or_default()
        .chunks_exact(2)
        .map(|c| i32::from(i16::from_le_bytes([c[0], c[1]])).abs())
        .max()
        .unwrap_or(0)
}

#[test]
fn schedule_reaches_two_stations_plays_and_survives_central_outage() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = Province::init(dir.path());
    let tokens = [
        ("tri-ton", p.add_station("tri-ton", "Tri Tôn")),
        ("ba-chuc", p.add_station("ba-chuc", "Tịnh Biên")),
    ];
    p.start();
    let configs: Vec<PathBuf> =
        tokens.iter().map(|(id, token)| p.station_config(id, token, true)).collect();
    let mut stations: Vec<Option<Proc>> = configs.iter().map(|c| Some(start_station(c))).collect();

    // Two provincial items: the first plays with central up, the second after it is gone.
    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("audio")).expect("audio dir");
    std::fs::write(work.join("audio/tone.wav"), loa::testing::wav_bytes(1.5, 440.0, 0.5))
        .expect("tone");
    let now = Utc::now();
    let first = now + chrono::Duration::seconds(20);
    let second = now + chrono::Duration::seconds(40);
    let schedule = work.join("provincial.toml");
    std::fs::write(
        &schedule,
        format!(
            "layer = \"provincial\"\ntimezone = \"Asia/Ho_Chi_Minh\"\n\n[[item]]\nid = \"ban-tin-1\"\ntitle = \"Bản tin một\"\naudio = \"audio/tone.wav\"\nat = {}\n\n[[item]]\nid = \"ban-tin-2\"\ntitle = \"Bản tin hai\"\naudio = \"audio/tone.wav\"\nat = {}\n",
            local(first),
            local(second)
        ),
    )
    .expect("schedule");
    let out =
        p.admin().run(&["schedule", "load", schedule.to_str().expect("utf-8"), "--to", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Both stations hold the manifest, have verified the audio and say so.
    wait::until(
        "both stations hold the new manifest and its audio",
        Duration::from_secs(15),
        || {
            let fleet = p.fleet()?;
            let ready = fleet.stations.iter().all(|s| {
                s.heartbeat.as_ref().is_some_and(|h| {
                    h.manifest_version.is_some()
                        && h.manifest_version == s.issued_version
                        && h.missing_bytes == 0
                        && h.ready_until.is_some()
                })
            });
            ready.then_some(())
        },
    );
    let out = p.admin().run(&["status"]);
    let table = stdout(&out);
    for (id, _) in &tokens {
        let line = table.lines().find(|l| l.starts_with(id)).unwrap_or_else(|| panic!("{table}"));
        assert!(line.contains("ready") && line.contains("ok"), "{table}");
    }
    for c in &configs {
        let audio = c.parent().expect("dir").join("data/audio");
        assert_eq!(std::fs::read_dir(&audio).expect("cache").count(), 1, "one verified file");
    }

    // The first item plays at both stations and its confirmation reaches central.
    let records = wait::until("first item confirmed at central", Duration::from_secs(30), || {
        let r = p.playlog(&["--item", "ban-tin-1"])?;
        (r.len() == 2).then_some(r)
    });
    for r in &records {
        assert!(aired(&r.entry), "{r:?}");
    }
    for c in &configs {
        let air = c.parent().expect("dir").join("air.wav");
        wait::until("audio in the air-check", Duration::from_secs(5), || {
            (wav_peak(&air) > 2000).then_some(())
        });
    }

    // Central goes away. One station restarts meanwhile: it re-verifies its stored
    // manifest and keeps the schedule.
    p.kill();
    if let Some(s) = stations[1].take() {
        s.terminate(Duration::from_secs(15));
    }
    stations[1] = Some(start_station(&configs[1]));
    for c in &configs {
        let entry =
            wait::until("second item played without central", Duration::from_secs(40), || {
                let l = ledger(c)?;
                let found = l
                    .query(&loa::station::ledger::Filter {
                        item_id: Some("ban-tin-2".into()),
                        ..Default::default()
                    })
                    .ok()?;
                found.into_iter().next()
            });
        assert!(aired(&entry.entry), "{entry:?}");
        assert!(!entry.acked, "central is down: nothing can acknowledge it");
    }

    // Central returns: the stations catch up (records, heartbeats).
    let restarted = Instant::now();
    p.start();
    wait::until("second item confirmed after central returned", Duration::from_secs(30), || {
        let r = p.playlog(&["--item", "ban-tin-2"])?;
        (r.len() == 2 && r.iter().all(|r| aired(&r.entry))).then_some(())
    });
    // The sync loop (which carries heartbeats) backs off to at most 30 s while central is
    // down, so its first call after the return may come up to 30 s later: wait past that.
    wait::until("fresh heartbeats from both", Duration::from_secs(40), || {
        let fleet = p.fleet()?;
        let fresh = fleet.stations.iter().all(|s| {
            s.last_seen.is_some_and(|t| (fleet.server_time - t).num_seconds() < 5)
                && s.heartbeat.as_ref().is_some_and(|h| {
                    h.disk_free_bytes.is_some_and(|d| d > 0)
                        && h.sink_health == "ok"
                        && h.clock_offset_ms.is_some_and(|o| o.abs() < 2000)
                })
        });
        fresh.then_some(())
    });
    for c in &configs {
        let l = ledger(c).expect("ledger");
        assert!(l.unacked(10).expect("unacked").is_empty(), "every record acknowledged");
        assert!(l.verify().expect("verify").first_break.is_none());
    }
    assert!(restarted.elapsed() < Duration::from_secs(40));

    // Filters at central.
    let tri_ton = p.playlog(&["--station", "tri-ton"]).expect("log");
    assert!(tri_ton.iter().all(|r| r.station == "tri-ton") && tri_ton.len() >= 2);
    let district = p.playlog(&["--district", "Tịnh Biên"]).expect("log");
    assert!(district.iter().all(|r| r.station == "ba-chuc") && district.len() >= 2);
    let since = p.playlog(&["--since", &second.to_rfc3339()]).expect("log");
    assert!(since.iter().all(|r| r.entry.item_id == "ban-tin-2"), "{since:?}");
    let out = p.admin().run(&["log", "--station", "tri-ton"]);
    assert!(
        stdout(&out).contains("tri-ton #1") && stdout(&out).contains("ban-tin-1"),
        "{}",
        stdout(&out)
    );

    // The day's report: both items aired at both stations, totals per district.
    let date = first.with_timezone(&chrono_tz::Asia::Ho_Chi_Minh).date_naive().to_string();
    let out = p.admin().run(&["report", &date, "--format", "json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report: DailyReport = serde_json::from_slice(&out.stdout).expect("report json");
    let aired = |id: &str| {
        let on_air = |s: ReportStatus| s == ReportStatus::Aired || s == ReportStatus::Late;
        report.rows.iter().filter(|r| r.item_id == id && on_air(r.status)).count()
    };
    // Both items fall on `date` unless the test runs across local midnight.
    let second_same_day =
        second.with_timezone(&chrono_tz::Asia::Ho_Chi_Minh).date_naive().to_string() == date;
    assert_eq!(aired("ban-tin-1"), 2, "{report:?}");
    if second_same_day {
        assert_eq!(aired("ban-tin-2"), 2, "{report:?}");
    }
    let out = p.admin().run(&["report", &date]);
    let table = stdout(&out);
    assert!(
        table.contains("Tri Tôn") && table.contains("Tịnh Biên") && table.contains("AIRED"),
        "{table}"
    );

    for s in stations.iter_mut().filter_map(Option::take) {
        s.terminate(Duration::from_secs(15));
    }
}

fn entry(i: u64) -> Entry {
    let planned =
        chrono::DateTime::parse_from_rfc3339("2026-12-01T00:00:00Z").expect("time").to_utc()
            + chrono::Duration::seconds(i as i64);
    let mut e = Entry::missed(
        &format!("x-{i}"),
        "Thông báo",
        Layer::Provincial,
        Priority::Normal,
        planned,
        loa::protocol::Reason::from_stored(None, "station was not running"),
    );
    if i.is_multiple_of(3) {
        e.outcome = Outcome::Played;
        e.reason = None;
    }
    e
}

#[test]
fn sigkilled_central_keeps_every_record_exactly_once() {
    const PER_STATION: u64 = 400;
    let dir = tempfile::tempdir().expect("tempdir");
    let mut p = Province::init(dir.path());
    let ids = ["xa-a", "xa-b"];
    let tokens: Vec<String> = ids.iter().map(|id| p.add_station(id, "Tri Tôn")).collect();
    p.start();
    let configs: Vec<PathBuf> =
        ids.iter().zip(&tokens).map(|(id, token)| p.station_config(id, token, false)).collect();
    let _stations: Vec<Proc> = configs.iter().map(|c| start_station(c)).collect();
    for c in &configs {
        wait::until("ledger created", Duration::from_secs(10), || ledger(c));
    }

    // Confirmations keep being written while central is killed and restarted: a third
    // before the kill, a third while central is down, the rest after it is back. Each
    // writer waits for the phase its part belongs to, so every run covers all three.
    let phase = Arc::new(AtomicU64::new(0));
    // Writers done with their middle third.
    let past_outage = Arc::new(AtomicU64::new(0));
    let writers: Vec<_> = configs
        .iter()
        .zip(ids)
        .map(|(c, id)| {
            let path = c.parent().expect("dir").join("data/ledger.sqlite3");
            let (phase, past_outage) = (phase.clone(), past_outage.clone());
            std::thread::spawn(move || {
                let mut l = Ledger::open(&path, id).expect("ledger");
                let mut part = 0;
                for i in 1..=PER_STATION {
                    if (i - 1) * 3 / PER_STATION > part {
                        part += 1;
                        if part == 2 {
                            past_outage.fetch_add(1, Ordering::SeqCst);
                        }
                        wait::until(format!("phase {part}"), Duration::from_secs(60), || {
                            phase.load(Ordering::SeqCst) >= part
                        });
                    }
                    l.append(entry(i)).expect("append");
                    if i % 25 == 0 {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                }
            })
        })
        .collect();
    wait::until("central acknowledging", Duration::from_secs(20), || {
        let fleet = p.fleet()?;
        fleet.stations.iter().all(|s| s.playlog.acked_through >= 20).then_some(())
    });
    p.kill();
    phase.store(1, Ordering::SeqCst);
    // Both writers have written their middle third (and wait for central's return).
    wait::until("records written while central is down", Duration::from_secs(30), || {
        past_outage.load(Ordering::SeqCst) == ids.len() as u64
    });
    let during: u64 = configs
        .iter()
        .map(|c| ledger(c).map_or(0, |l| l.unacked(10_000).map_or(0, |u| u.len() as u64)))
        .sum();
    std::thread::sleep(Duration::from_millis(500));
    p.start();
    phase.store(2, Ordering::SeqCst);
    for w in writers {
        w.join().expect("writer");
    }
    for (c, id) in configs.iter().zip(ids) {
        wait::until("every record acknowledged", Duration::from_secs(30), || {
            ledger(c)?.unacked(1).ok()?.is_empty().then_some(())
        });
        let held = p.playlog(&["--station", id]).expect("central log");
        let mut seqs: Vec<u64> = held.iter().map(|r| r.seq).collect();
        seqs.sort_unstable();
        assert_eq!(seqs, (1..=PER_STATION).collect::<Vec<_>>(), "{id}: every record exactly once");
        let local = ledger(c).expect("ledger").query(&Default::default()).expect("query");
        for (mine, theirs) in local.iter().zip(held.iter()) {
            assert_eq!(mine.hash, theirs.hash);
        }
    }
    let fleet = p.fleet().expect("status");
    for s in &fleet.stations {
        assert_eq!(s.playlog.acked_through, PER_STATION);
        assert!(s.playlog.issues.is_empty(), "{:?}", s.playlog.issues);
    }
    assert!(during > 0, "records were waiting while central was down");
}
