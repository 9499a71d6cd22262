//! Urgent bulletins end to end with real processes: `loa central`, three `loa station`
//! daemons (paced `clocked` sink), and the `loa bulletin` CLI. One station is playing a
//! long provincial programme (loaded through central's signed manifest) when `loa
//! bulletin push --audio … --to all` arrives: all three air the bulletin, `loa bulletin
//! show` reports each start latency, the station ledgers hold the pre-empted programme
//! and the bulletin, and so do central's playlog (`loa log`) and the day's compliance
//! report (`loa report`, on the stations' local date); a cancel stops a repeating
//! bulletin, and the report says so.

use std::time::Duration;

use loa::protocol::{BulletinInfo, BulletinStatus, DailyReport, DeliveryState, ReportStatus};

use crate::support::process::{
    Proc, Remote, StationToml, central_init, field_str as field, remote, station_log as records,
    text,
};
use crate::support::wait;

/// `loa report DATE --format json`, `None` while it fails.
fn day_report(url: &str, admin: &str, date: chrono::NaiveDate) -> Option<DailyReport> {
    let out = remote(url, admin, &["report", &date.to_string(), "--format", "json"]);
    if !out.status.success() {
        eprintln!("loa report: {}", text(&out.stderr));
        return None;
    }
    serde_json::from_slice(&out.stdout).ok()
}

/// The day the report is defined on: the stations' local date (Asia/Ho_Chi_Minh, the
/// default of both the stations and `loa report`), not the UTC one.
fn local_date(t: chrono::DateTime<chrono::Utc>) -> chrono::NaiveDate {
    t.with_timezone(&chrono_tz::Asia::Ho_Chi_Minh).date_naive()
}

fn show(url: &str, admin: &str, id: &str) -> BulletinInfo {
    Remote::new(url, admin).bulletin(id)
}

#[test]
fn a_pushed_bulletin_interrupts_all_three_stations_and_a_cancel_stops_one() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("central");
    let province = central_init(&data);
    let ids = ["tri-ton", "ba-chuc", "co-to"];
    let tokens: Vec<String> =
        ids.iter().map(|id| province.add_station(id, id, "Tri Tôn")).collect();
    let central = province.serve("");
    let (url, admin) = (central.url.clone(), province.admin.clone());

    let mut stations = Vec::new();
    let mut data_dirs = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        let root = dir.path().join(id);
        std::fs::create_dir_all(root.join("local")).unwrap();
        let station_toml = StationToml {
            id,
            central_url: &url,
            token: &tokens[i],
            key: &province.key,
            extra: "local_schedules = \"local\"\n",
            audio: "sink = \"clocked\"\nfade_ms = 300\n",
        }
        .write(&root);
        stations.push(Proc::station(&station_toml));
        data_dirs.push(root.join("data"));
    }
    for s in &stations {
        s.wait_for(&["bulletin stream connected"], Duration::from_secs(60));
    }

    // The province gives the first station a 60 s programme starting a few seconds from
    // now: signed, delivered and cached through central, so `loa report` plans it.
    let tz = chrono_tz::Asia::Ho_Chi_Minh;
    let start = chrono::Utc::now().with_timezone(&tz) + chrono::Duration::seconds(12);
    std::fs::write(dir.path().join("dai.wav"), loa::testing::wav_bytes(60.0, 300.0, 0.2)).unwrap();
    let provincial = dir.path().join("provincial.toml");
    std::fs::write(
        &provincial,
        format!(
            "layer = \"provincial\"\n\n[[item]]\nid = \"dai\"\ntitle = \"Chương trình dài\"\naudio = \"dai.wav\"\nat = {}\n",
            start.format("%Y-%m-%dT%H:%M:%S")
        ),
    )
    .unwrap();
    let out = remote(
        &url,
        &admin,
        &["schedule", "load", provincial.to_str().unwrap(), "--to", "tri-ton"],
    );
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    stations[0].wait_for(&["dai", "started"], Duration::from_secs(40));

    let bulletin = dir.path().join("canh-bao-lu.wav");
    std::fs::write(&bulletin, loa::testing::wav_bytes(2.0, 880.0, 0.4)).unwrap();
    let id = Remote::new(&url, &admin).push_bulletin(&[
        "--audio",
        bulletin.to_str().unwrap(),
        "--to",
        "all",
        "--title",
        "Cảnh báo lũ",
    ]);

    // Every station starts it; central knows each latency from push to first sample.
    let info = wait::until("three starts", Duration::from_secs(30), || {
        let info = show(&url, &admin, &id);
        info.stations.iter().all(|s| s.latency_ms.is_some()).then_some(info)
    });
    for s in &info.stations {
        let latency = s.latency_ms.unwrap();
        assert!((0..10_000).contains(&latency), "{}: {latency} ms", s.station_id);
        assert!(matches!(s.state, Some(DeliveryState::Started | DeliveryState::Finished)), "{s:?}");
    }
    let table = remote(&url, &admin, &["bulletin", "show", &id]);
    let table = text(&table.stdout);
    eprintln!("{table}");
    for station in ids {
        assert!(table.contains(station), "{table}");
    }
    assert!(table.contains(" s  "), "latency column: {table}");

    // The ledgers: the programme pre-empted by the bulletin, the bulletin played.
    for (i, data) in data_dirs.iter().enumerate() {
        let recs = wait::until("the bulletin's record", Duration::from_secs(30), || {
            let recs = records(data);
            recs.iter().any(|r| field(r, "item_id") == Some(id.as_str())).then_some(recs)
        });
        let played = recs.iter().find(|r| field(r, "item_id") == Some(id.as_str())).unwrap();
        assert_eq!(field(played, "outcome"), Some("played"), "{played}");
        if i == 0 {
            let dai = recs.iter().find(|r| field(r, "item_id") == Some("dai")).unwrap();
            assert_eq!(field(dai, "outcome"), Some("preempted"), "{dai}");
            assert_eq!(field(dai, "reason"), Some(format!("pre-empted by {id}").as_str()));
        }
    }
    // Central's playlog (`loa log`, fed by each station's uplink) holds both too.
    wait::until("central's playlog", Duration::from_secs(60), || {
        let out = remote(&url, &admin, &["log", "--format", "json"]);
        if !out.status.success() {
            return None;
        }
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
        let has = |station: &str, item: &str, outcome: &str| {
            rows.iter().any(|r| {
                let t = r.to_string();
                t.contains(&format!("\"{station}\""))
                    && field(r, "item_id") == Some(item)
                    && field(r, "outcome") == Some(outcome)
            })
        };
        (ids.iter().all(|s| has(s, &id, "played")) && has("tri-ton", "dai", "preempted"))
            .then_some(())
    });
    let info = wait::until("finished at every station", Duration::from_secs(30), || {
        let info = show(&url, &admin, &id);
        info.stations.iter().all(|s| s.state == Some(DeliveryState::Finished)).then_some(info)
    });

    // The day's report (`loa report`): the provincial programme pre-empted at the first
    // station, and the bulletin aired at all three with its latency from the push.
    let programme_day = start.date_naive();
    let dai = wait::until("the programme in the report", Duration::from_secs(30), || {
        let report = day_report(&url, &admin, programme_day)?;
        report.rows.into_iter().find(|r| r.station == "tri-ton" && r.item_id == "dai")
    });
    assert_eq!(dai.status, ReportStatus::Preempted, "{dai:?}");
    assert!(dai.detail.starts_with(&format!("pre-empted by {id} after ")), "{dai:?}");
    let bulletin_day = local_date(info.doc.issued_at);
    let report = day_report(&url, &admin, bulletin_day).expect("the report");
    for s in &info.stations {
        let row = report
            .bulletins
            .iter()
            .find(|r| r.bulletin_id == id && r.station == s.station_id)
            .unwrap_or_else(|| panic!("no report row for {} at {}: {report:#?}", id, s.station_id));
        assert_eq!(row.status, BulletinStatus::Aired, "{row:?}");
        assert_eq!((row.plays_aired, row.plays_planned), (1, 1), "{row:?}");
        // From the station's ledger record; `bulletin show` has it from the delivery state.
        let latency = row.latency_ms.expect("latency");
        let shown = s.latency_ms.expect("latency shown");
        assert!(
            (latency - shown).abs() <= 1,
            "{}: report {latency} ms, show {shown} ms",
            s.station_id
        );
        assert_eq!(row.district, "Tri Tôn");
    }
    let totals = report.bulletin_districts.iter().find(|d| d.district == "Tri Tôn").unwrap();
    assert_eq!((totals.stations, totals.targets, totals.counts["aired"]), (3, 3, 3));
    let table = remote(&url, &admin, &["report", &bulletin_day.to_string()]);
    assert!(table.status.success(), "{}", text(&table.stderr));
    let table = text(&table.stdout);
    eprintln!("{table}");
    assert!(table.contains(&format!("bulletins pushed on {bulletin_day}")), "{table}");
    for station in ids {
        assert!(
            table.lines().any(|l| l.contains(&id)
                && l.contains(station)
                && l.contains("aired")
                && l.contains("1/1")),
            "{station}: {table}"
        );
    }
    let csv = remote(&url, &admin, &["report", &bulletin_day.to_string(), "--format", "csv"]);
    let csv = text(&csv.stdout);
    assert_eq!(
        csv.lines()
            .filter(|l| l.contains(&format!(",{id},")) && l.contains(",aired,,,bulletin,"))
            .count(),
        3,
        "{csv}"
    );

    // A long, repeating bulletin to one station, cancelled while it plays: it stops and
    // no repeat follows.
    let long = dir.path().join("dai-bao.wav");
    std::fs::write(&long, loa::testing::wav_bytes(30.0, 500.0, 0.3)).unwrap();
    let long_id = Remote::new(&url, &admin).push_bulletin(&[
        "--audio",
        long.to_str().unwrap(),
        "--to",
        "ba-chuc",
        "--repeat",
        "3",
        "--tone",
    ]);
    let latency = wait::until("the long bulletin started", Duration::from_secs(30), || {
        show(&url, &admin, &long_id).stations[0].latency_ms
    });
    // `started` came with the first sound, the attention tone: its latency is the tone's.
    // The bulletin itself plays from the moment the tone's record is written.
    let tone_id = format!("{long_id}:tone");
    let tone = wait::until("the tone's record", Duration::from_secs(30), || {
        records(&data_dirs[1]).into_iter().find(|r| field(r, "item_id") == Some(tone_id.as_str()))
    });
    let tone_started =
        chrono::DateTime::parse_from_rfc3339(field(&tone, "started").unwrap()).unwrap().to_utc();
    let issued = show(&url, &admin, &long_id).doc.issued_at;
    assert!(
        ((tone_started - issued).num_milliseconds() - latency).abs() <= 1,
        "latency {latency} ms, the tone started {tone_started} after the push at {issued}"
    );
    let out = remote(&url, &admin, &["bulletin", "cancel", &long_id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let recs = wait::until("the cancelled record", Duration::from_secs(30), || {
        let recs = records(&data_dirs[1]);
        recs.iter().any(|r| field(r, "item_id") == Some(long_id.as_str())).then_some(recs)
    });
    let plays: Vec<_> =
        recs.iter().filter(|r| field(r, "item_id") == Some(long_id.as_str())).collect();
    assert_eq!(plays.len(), 1, "{plays:?}");
    assert_eq!(field(plays[0], "outcome"), Some("preempted"));
    assert_eq!(field(plays[0], "reason"), Some("cancelled by the province"));
    // The attention tone played before it.
    assert!(recs.iter().any(|r| field(r, "item_id") == Some(tone_id.as_str())), "{recs:?}");
    // Nothing of it sounds any more; a repeat would have been queued at the end.
    stations[1].wait_for(&[&long_id, "preempted"], Duration::from_secs(10));
    assert!(stations[1].find(&[&long_id, "armed emergency"]).is_some());
    let armed = stations[1]
        .log()
        .lines()
        .filter(|l| l.contains("armed emergency") && l.contains(&long_id) && !l.contains(":tone"))
        .count();
    assert_eq!(armed, 1, "no repeat was armed after the cancel");
    let long = show(&url, &admin, &long_id);
    assert!(long.cancelled_at.is_some());
    // The report: it aired once of four plays at that station, cut short by the cancel.
    let row = wait::until("the cancelled bulletin in the report", Duration::from_secs(30), || {
        let report = day_report(&url, &admin, local_date(long.doc.issued_at))?;
        let row = report.bulletins.into_iter().find(|r| r.bulletin_id == long_id)?;
        (row.plays_planned == 4 && !row.detail.contains("not received")).then_some(row)
    });
    assert_eq!(row.station, "ba-chuc");
    assert_eq!((row.status, row.plays_aired), (BulletinStatus::Aired, 1), "{row:?}");
    assert!(row.detail.contains("cancelled by the province"), "{row:?}");

    let list = remote(&url, &admin, &["bulletin", "list"]);
    assert!(text(&list.stdout).contains(&id) && text(&list.stdout).contains("cancelled"));
}
