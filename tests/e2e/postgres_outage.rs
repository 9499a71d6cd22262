//! Central on PostgreSQL loses its database for 60 s while two real stations play and
//! report: the stations keep playing from their verified caches, central answers them
//! `503` + `Retry-After`, and once PostgreSQL is back every record reaches central,
//! once, with every chain whole and nothing left unacknowledged.

use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};
use loa::station::ledger::Outcome;

use crate::support::pg::PgServer;
use crate::support::process::{self, Proc, Remote, StationToml, station_ledger, stderr, utf8};
use crate::support::wait;

/// Items in the schedule, 15 s apart; the database is down for the middle ones.
const ITEMS: i64 = 5;
const OUTAGE: Duration = Duration::from_secs(60);

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&chrono_tz::Asia::Ho_Chi_Minh).format("%Y-%m-%dT%H:%M:%S").to_string()
}

#[test]
fn stations_play_and_report_through_a_minute_without_the_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let server = PgServer::start();
    let url = server.url();
    let province = process::central_init_on(&dir.path().join("central"), &url);
    let central = process::central_replica(&province, &province.data, &url);
    let admin = Remote::new(&central.url, &province.admin);
    let configs: Vec<PathBuf> = ["tri-ton", "ba-chuc"]
        .iter()
        .map(|id| {
            let token = process::add_station_on(&province.data, &url, id, "Tri Tôn");
            StationToml {
                id,
                central_url: &central.url,
                token: &token,
                key: &province.key,
                extra: "heartbeat_secs = 1\n",
                audio: "sink = \"null\"\n",
            }
            .write(&dir.path().join(id))
        })
        .collect();
    let _stations: Vec<Proc> = configs
        .iter()
        .map(|c| {
            let station = Proc::station(c);
            station.wait_station_started();
            station
        })
        .collect();

    let work = dir.path().join("work");
    std::fs::create_dir_all(work.join("audio")).expect("audio dir");
    std::fs::write(work.join("audio/tone.wav"), loa::testing::wav_bytes(1.5, 440.0, 0.5))
        .expect("tone");
    let first = Utc::now() + chrono::Duration::seconds(20);
    let mut schedule = String::from("layer = \"provincial\"\ntimezone = \"Asia/Ho_Chi_Minh\"\n");
    for i in 0..ITEMS {
        schedule.push_str(&format!(
            "\n[[item]]\nid = \"ban-tin-{i}\"\ntitle = \"Bản tin {i}\"\naudio = \"audio/tone.wav\"\nat = {}\n",
            local(first + chrono::Duration::seconds(15 * i))
        ));
    }
    let path = work.join("provincial.toml");
    std::fs::write(&path, schedule).expect("schedule");
    let out = admin.run(&["schedule", "load", utf8(&path), "--to", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // The first item is confirmed at central with the database up.
    wait::until("the first item confirmed at central", Duration::from_secs(60), || {
        let records: Vec<loa::protocol::Record> =
            admin.json(&["log", "--format", "json", "--item", "ban-tin-0"])?;
        (records.len() == 2).then_some(())
    });

    // A minute without the database: the middle items play meanwhile.
    server.stop();
    let down_until = Utc::now() + chrono::Duration::from_std(OUTAGE).expect("outage");
    let refused = admin.run(&["status"]);
    assert!(!refused.status.success(), "central cannot answer without its database");
    wait::until_past("the outage to last a minute", down_until, OUTAGE + Duration::from_secs(5));
    for c in &configs {
        let l = station_ledger(c).expect("ledger");
        let unacked = l.unacked(100).expect("unacked");
        assert!(!unacked.is_empty(), "records made during the outage wait for central");
        assert!(unacked.iter().all(|r| matches!(r.entry.outcome, Outcome::Played | Outcome::Late)));
    }
    server.resume();

    // Every item of both stations reaches central, once; nothing left unacknowledged.
    wait::until("every record at central", Duration::from_secs(90), || {
        let fleet = admin.fleet()?;
        let all = fleet
            .stations
            .iter()
            .all(|s| s.playlog.records == ITEMS as u64 && s.playlog.acked_through == ITEMS as u64);
        all.then_some(())
    });
    let fleet = admin.fleet().expect("fleet");
    for s in &fleet.stations {
        assert!(s.playlog.issues.is_empty(), "{}: {:?}", s.id, s.playlog.issues);
    }
    for c in &configs {
        let l = station_ledger(c).expect("ledger");
        assert!(l.unacked(10).expect("unacked").is_empty(), "every record acknowledged");
        assert!(l.verify().expect("verify").first_break.is_none());
        let aired = l.query(&Default::default()).expect("records");
        assert_eq!(aired.len(), ITEMS as usize);
        assert!(aired.iter().all(|r| matches!(r.entry.outcome, Outcome::Played | Outcome::Late)));
    }
    assert!(central.running());
}
