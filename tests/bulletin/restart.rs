//! A bulletin accepted by a station survives the station being killed, with real
//! processes: `loa central`, one `loa station` (paced `clocked` sink) killed with SIGKILL
//! and started again, and the `loa bulletin` CLI.
//!
//! - pushed with `--repeat 2 --interval 5s`, the station is killed once the first play is
//!   in its ledger: after the restart the two remaining plays air, exactly three in all,
//!   and `loa bulletin show` says finished;
//! - one pushed with a short `--expires` that waits behind a long bulletin when the
//!   station is killed, restarted after the expiry: it never airs, and the ledger and
//!   `loa bulletin show` say why; the long one airs again from the start and a cancel
//!   sent after the restart stops it.

use std::path::{Path, PathBuf};
use std::time::Duration;

use loa::protocol::{BulletinInfo, DeliveryState};

use crate::support::process::{
    CentralProc, Proc, Remote, StationToml, central_init, field_str as field, remote, station_log,
    text,
};
use crate::support::wait;

/// The station ledger's records of `item` (`loa log --data-dir`).
fn records_of(data: &Path, item: &str) -> Vec<serde_json::Value> {
    station_log(data).into_iter().filter(|r| field(r, "item_id") == Some(item)).collect()
}

fn outcomes(records: &[serde_json::Value]) -> Vec<(String, String)> {
    records
        .iter()
        .map(|r| {
            (
                field(r, "outcome").unwrap_or("").to_string(),
                field(r, "reason").unwrap_or("").to_string(),
            )
        })
        .collect()
}

fn show(url: &str, admin: &str, id: &str) -> BulletinInfo {
    Remote::new(url, admin).bulletin(id)
}

fn push(url: &str, admin: &str, args: &[&str]) -> String {
    Remote::new(url, admin).push_bulletin(&[&["--to", "tri-ton"][..], args].concat())
}

struct Setup {
    _dir: tempfile::TempDir,
    root: PathBuf,
    url: String,
    admin: String,
    _central: CentralProc,
}

impl Setup {
    /// Central with one station, `tri-ton`, configured under `root` (not started).
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let province = central_init(&dir.path().join("central"));
        let token = province.add_station("tri-ton", "Tri Tôn", "Tri Tôn");
        let central = province.serve("");
        let url = central.url.clone();
        let root = dir.path().join("tri-ton");
        StationToml {
            id: "tri-ton",
            central_url: &url,
            token: &token,
            key: &province.key,
            extra: "",
            audio: "sink = \"clocked\"\nfade_ms = 100\n",
        }
        .write(&root);
        Self { _dir: dir, root, url, admin: province.admin, _central: central }
    }

    fn station(&self) -> Proc {
        let station = Proc::station(&self.root.join("station.toml"));
        station.wait_for(&["bulletin stream connected"], Duration::from_secs(60));
        station
    }

    fn data(&self) -> PathBuf {
        self.root.join("data")
    }

    fn wav(&self, name: &str, seconds: f64) -> String {
        let path = self.root.join(name);
        std::fs::write(&path, loa::testing::wav_bytes(seconds, 660.0, 0.3)).unwrap();
        path.to_str().unwrap().to_string()
    }
}

#[test]
fn a_killed_station_airs_the_remaining_plays_after_a_restart_and_never_an_expired_one() {
    let s = Setup::new();
    let station = s.station();

    // Three plays of 2 s, 5 s apart; killed once the first is in the ledger.
    let audio = s.wav("lu.wav", 2.0);
    let id = push(
        &s.url,
        &s.admin,
        &["--audio", &audio, "--repeat", "2", "--interval", "5s", "--title", "Cảnh báo lũ"],
    );
    wait::until("the first play in the ledger", Duration::from_secs(30), || {
        let recs = records_of(&s.data(), &id);
        recs.iter().any(|r| field(r, "outcome") == Some("played")).then_some(())
    });
    station.kill();
    let before = records_of(&s.data(), &id);
    assert_eq!(outcomes(&before), [("played".to_string(), String::new())], "{before:?}");

    let station = s.station();
    station.wait_for(&[&id, "resuming a bulletin"], Duration::from_secs(30));
    let info = wait::until("finished after the restart", Duration::from_secs(60), || {
        let info = show(&s.url, &s.admin, &id);
        (info.stations[0].state == Some(DeliveryState::Finished)).then_some(info)
    });
    let recs = records_of(&s.data(), &id);
    let played = recs.iter().filter(|r| field(r, "outcome") == Some("played")).count();
    assert_eq!(played, 3, "exactly three plays in all: {:?}", outcomes(&recs));
    assert_eq!(recs.len(), 3, "{:?}", outcomes(&recs));
    // The latency central shows is still the first play's.
    let latency = info.stations[0].latency_ms.expect("a start latency");
    assert!((0..10_000).contains(&latency), "{latency} ms");

    // A long bulletin airs; a short-lived one waits behind it when the station dies.
    let long_audio = s.wav("dai.wav", 20.0);
    let long = push(&s.url, &s.admin, &["--audio", &long_audio, "--title", "Dài"]);
    station.wait_for(&[&long, "started"], Duration::from_secs(30));
    let short_audio = s.wav("ngan.wav", 2.0);
    let short = push(&s.url, &s.admin, &["--audio", &short_audio, "--expires", "8s"]);
    station.wait_for(&[&short, "emergency queued"], Duration::from_secs(30));
    station.kill();
    let expires = show(&s.url, &s.admin, &short).doc.expires_at;
    wait::until_past(
        "the short bulletin's expiry",
        expires + chrono::Duration::milliseconds(500),
        Duration::from_secs(30),
    );

    let station = s.station();
    let why = "expired while the station was stopped";
    let recs = wait::until("the expired bulletin's record", Duration::from_secs(30), || {
        let recs = records_of(&s.data(), &short);
        (!recs.is_empty()).then_some(recs)
    });
    assert_eq!(recs.len(), 1, "{:?}", outcomes(&recs));
    assert_eq!(field(&recs[0], "outcome"), Some("missed"));
    assert!(field(&recs[0], "reason").unwrap_or("").starts_with(why), "{:?}", outcomes(&recs));
    let delivery = wait::until("the failed report", Duration::from_secs(30), || {
        let info = show(&s.url, &s.admin, &short);
        let d = info.stations[0].clone();
        (d.state == Some(DeliveryState::Failed)).then_some(d)
    });
    assert!(delivery.reason.as_deref().unwrap_or("").contains(why), "{delivery:?}");
    let table = text(&remote(&s.url, &s.admin, &["bulletin", "show", &short]).stdout);
    assert!(table.contains(why), "{table}");

    // The long one was cut by the kill: it airs again from the start, and a cancel sent
    // now stops it.
    station.wait_for(&[&long, "resuming a bulletin"], Duration::from_secs(30));
    station.wait_for(&[&long, "started"], Duration::from_secs(30));
    let out = remote(&s.url, &s.admin, &["bulletin", "cancel", &long]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let recs = wait::until("the cancelled play", Duration::from_secs(30), || {
        let recs = records_of(&s.data(), &long);
        recs.iter().any(|r| field(r, "outcome") == Some("preempted")).then_some(recs)
    });
    assert_eq!(
        outcomes(&recs),
        [
            ("failed".to_string(), "interrupted: station stopped".to_string()),
            ("preempted".to_string(), "cancelled by the province".to_string()),
        ]
    );
    assert!(records_of(&s.data(), &short).iter().all(|r| field(r, "outcome") == Some("missed")));
}
