//! A real `loa station` process (wav sink, system clock) is killed with SIGKILL in the
//! middle of an item and started again later: the ledger must then hold exactly one
//! record per planned item — the interrupted one, those due while it was down, and the
//! rest — with the hash chain intact.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use loa::station::ledger::{Filter, Ledger, Outcome, Record, state};

use crate::support::audio::tone_wav;
use crate::support::process::{Proc, command};
use crate::support::{serial, wait};

/// `loa station --config CONFIG`, its log in `log`.
fn spawn(config: &Path, log: &Path) -> Proc {
    Proc::start_logged(command().args(["station", "--config"]).arg(config), log)
}

fn records(db: &Path) -> Vec<Record> {
    match Ledger::open_existing(db) {
        Ok(l) => l.query(&Filter::default()).unwrap_or_default(),
        Err(_) => Vec::new(),
    }
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[test]
fn sigkill_mid_item_then_restart_leaves_a_complete_ledger() {
    let _serial = serial();
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    std::fs::create_dir_all(root.join("schedules")).expect("dirs");
    tone_wav(&root.join("a.wav"), 8_000, 1, 1.0, 440.0, 0.5);
    tone_wav(&root.join("b.wav"), 8_000, 1, 4.0, 440.0, 0.5);

    // One-off items a few seconds apart, from the next whole second on.
    let t0 = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(3);
    let s = |n: i64| t0 + chrono::Duration::seconds(n);
    let plan = [
        ("a", "a.wav", s(1)),
        ("b", "b.wav", s(3)),
        ("c", "a.wav", s(6)),
        ("d", "a.wav", s(7)),
        ("e", "a.wav", s(12)),
    ];
    let mut toml = String::from("layer = \"provincial\"\n");
    for (id, audio, when) in &plan {
        toml.push_str(&format!(
            "[[item]]\nid = \"{id}\"\ntitle = \"Mục {id}\"\naudio = \"../{audio}\"\nat = {}\nmax_delay = \"1s\"\n",
            at(*when)
        ));
    }
    std::fs::write(root.join("schedules/provincial.toml"), toml).expect("schedule");
    let config = root.join("station.toml");
    std::fs::write(
        &config,
        "station_id = \"xa-thu\"\ndata_dir = \"data\"\nprovincial_schedule = \"schedules/provincial.toml\"\n\
         [audio]\nsink = \"wav\"\nwav_path = \"air.wav\"\n",
    )
    .expect("config");
    let db = root.join("data/ledger.sqlite3");

    let first = spawn(&config, &root.join("first.log"));
    first.wait_station_started();
    // `a` has played and `b` is sounding: kill the process without warning.
    wait::until("a recorded and b playing", Duration::from_secs(20), || {
        let a_done = records(&db).iter().any(|r| r.entry.item_id == "a");
        let playing = Ledger::open_existing(&db).ok()?.state(state::PLAYING).ok()??;
        (a_done && playing.contains("\"b\"")).then_some(())
    });
    first.kill();

    // Stay down until `c` and `d` can no longer start (planned + max_delay passed).
    wait::until_past("c and d to be past their max_delay", s(9), Duration::from_secs(20));
    let second = spawn(&config, &root.join("second.log"));
    second.wait_station_started();
    let all = wait::until("e recorded", Duration::from_secs(30), || {
        let all = records(&db);
        all.iter().any(|r| r.entry.item_id == "e").then_some(all)
    });
    second.kill();

    let got: Vec<(&str, Outcome, Option<&str>)> = all
        .iter()
        .map(|r| (r.entry.item_id.as_str(), r.entry.outcome, r.entry.reason.as_deref()))
        .collect();
    let log = std::fs::read_to_string(root.join("second.log")).unwrap_or_default();
    assert_eq!(
        got,
        vec![
            ("a", Outcome::Played, None),
            ("b", Outcome::Failed, Some("interrupted: station stopped")),
            ("c", Outcome::Missed, Some("station was not running")),
            ("d", Outcome::Missed, Some("station was not running")),
            ("e", Outcome::Played, None),
        ],
        "second run's log:\n{log}"
    );
    let b = &all[1].entry;
    let off = b.started.map(|t| (t - s(3)).num_milliseconds().abs());
    assert!(off.is_some_and(|ms| ms < 10), "the interrupted item keeps its start: {:?}", b.started);
    // What it played is known up to the last alive mark (a lower bound).
    assert!(b.played_secs.is_some_and(|p| (0.0..4.0).contains(&p)), "{:?}", b.played_secs);
    let ledger = Ledger::open_existing(&db).expect("ledger");
    let report = ledger.verify().expect("verify");
    assert_eq!((report.records, report.first_break), (5, None));
    let seqs: Vec<u64> = all.iter().map(|r| r.seq).collect();
    let mut sorted = seqs.clone();
    sorted.sort();
    assert_eq!(sorted, vec![1, 2, 3, 4, 5], "no gaps, nothing twice");

    // The same ledger read back through `loa log`.
    let out = command()
        .args(["log", "--config"])
        .arg(&config)
        .args(["--outcome", "missed", "--format", "json"])
        .output()
        .expect("loa log");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Vec<Record> = serde_json::from_slice(&out.stdout).expect("json records");
    assert_eq!(json.iter().map(|r| r.entry.item_id.as_str()).collect::<Vec<_>>(), ["c", "d"]);
    let out = command()
        .args(["log", "--verify", "--config"])
        .arg(&config)
        .output()
        .expect("loa log --verify");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("5 records, chain intact"));
}
