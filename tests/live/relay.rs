//! A scheduled relay end to end with real processes: `loa central` (with `relay_hosts`),
//! one `loa station` writing a WAV air-check, and an HTTP stream server inside this test
//! that serves an MP3 tone at real-time pace and is cut for 5 s in the middle.
//!
//! What the air-check must show, measured against a marker file item planned 3 s before
//! the relay: the stream's tone starts exactly 3 s after the marker (the planned
//! instant), the fallback's tone fills the cut, the stream comes back without a restart,
//! and the sound stops when the slot ends. A second stream item whose server never
//! answers plays its fallback for the whole slot. The ledger records both as `relayed`
//! with the seconds relayed and the drop-outs, and `loa log` and `loa report` at central
//! show them. A schedule relaying a host outside `relay_hosts` is refused with a 422.

use std::time::Duration;

use loa::protocol::{DailyReport, LoadScheduleRequest, Outcome, Record, ReportStatus, Target};

use super::rig::Rig;
use crate::support::process::{remote, text};
use crate::support::stream::{StreamServer, sox_tone};
use crate::support::wait;

const MARKER_HZ: f64 = 500.0;
const STREAM_HZ: f64 = 1000.0;
const FALLBACK_HZ: f64 = 250.0;
/// The relay is planned this long after the marker.
const RELAY_AFTER: f64 = 3.0;
const RELAY_SECS: f64 = 20.0;
/// The dead stream is planned this long after the marker, for this long.
const DEAD_AFTER: f64 = 25.0;
const DEAD_SECS: f64 = 4.0;

fn class(hz: u32) -> &'static str {
    match hz {
        0 => "silence",
        150..=350 => "fallback",
        400..=600 => "marker",
        800..=1200 => "stream",
        _ => "other",
    }
}

#[test]
fn a_relay_airs_at_its_instant_survives_a_5_s_cut_on_its_fallback_and_ends_on_time() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let stream = sox_tone(&work.join("vov.mp3"), 90.0, STREAM_HZ, 0.5);
    let server = StreamServer::start(stream, 90.0, "audio/mpeg");

    let rig = Rig::start(work);
    let (url, admin) = (rig.url.clone(), rig.admin.clone());

    // A district may not point the loudspeakers at a host the province did not list.
    let outside = work.join("ngoai.toml");
    let outside_text = "layer = \"provincial\"\n\n[[item]]\nid = \"la\"\ntitle = \"Đài lạ\"\nstream = \"https://radio.example.vn/live.mp3\"\nduration = \"30m\"\ncron = \"0 5 * * *\"\n";
    std::fs::write(&outside, outside_text).unwrap();
    let out = remote(&url, &admin, &["schedule", "load", outside.to_str().unwrap(), "--to", "all"]);
    let said = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(!out.status.success(), "{said}");
    assert!(
        said.contains("ngoai.toml:6:10: error: item \"la\" relays a stream from radio.example.vn, which central does not allow (relay_hosts allows 127.0.0.1)"),
        "{said}"
    );
    let status = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let request = LoadScheduleRequest {
            origin: "ngoai.toml".into(),
            source: outside_text.into(),
            audio: Default::default(),
            to: Target::All,
        };
        reqwest::Client::new()
            .post(format!("{url}{}", loa::protocol::api::operator::SCHEDULES))
            .bearer_auth(&admin)
            .json(&request)
            .send()
            .await
            .unwrap()
            .status()
    });
    assert_eq!(status.as_u16(), 422);

    let station = &rig.station;

    let tz = chrono_tz::Asia::Ho_Chi_Minh;
    let t0 = chrono::Utc::now().with_timezone(&tz) + chrono::Duration::seconds(15);
    let at = |secs: f64| {
        (t0 + chrono::Duration::milliseconds((secs * 1000.0) as i64))
            .format("%Y-%m-%dT%H:%M:%S")
            .to_string()
    };
    std::fs::write(work.join("moc.wav"), loa::testing::wav_bytes(1.0, MARKER_HZ, 0.3)).unwrap();
    std::fs::write(work.join("du-phong.wav"), loa::testing::wav_bytes(2.0, FALLBACK_HZ, 0.3))
        .unwrap();
    let provincial = work.join("tiep-song.toml");
    std::fs::write(
        &provincial,
        format!(
            "layer = \"provincial\"\n\n\
             [[item]]\nid = \"moc\"\ntitle = \"Mốc\"\naudio = \"moc.wav\"\nat = {}\n\n\
             [[item]]\nid = \"vov\"\ntitle = \"Tiếp sóng VOV1\"\nstream = \"{}\"\nduration = \"{}s\"\nfallback = \"du-phong.wav\"\nat = {}\n\n\
             [[item]]\nid = \"chet\"\ntitle = \"Tiếp sóng (im lặng)\"\nstream = \"{}\"\nduration = \"{}s\"\nfallback = \"du-phong.wav\"\nat = {}\n",
            at(0.0),
            server.url("/live"),
            RELAY_SECS,
            at(RELAY_AFTER),
            server.url("/silent"),
            DEAD_SECS,
            at(DEAD_AFTER),
        ),
    )
    .unwrap();
    let out = remote(
        &url,
        &admin,
        &["schedule", "load", provincial.to_str().unwrap(), "--to", "tri-ton"],
    );
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));

    // The network cut: 4 s into the relay, the stream's server goes away for 5 s.
    station.wait_for(&["started", "vov"], Duration::from_secs(40));
    std::thread::sleep(Duration::from_secs(4));
    let before_cut = server.connections();
    server.cut(Duration::from_secs(5));

    let records = wait::until("both relays recorded", Duration::from_secs(60), || {
        let r = rig.ledger();
        let done = ["moc", "vov", "chet"].iter().all(|id| r.iter().any(|r| r.entry.item_id == *id));
        done.then_some(r)
    });
    let find = |id: &str| records.iter().find(|r| r.entry.item_id == id).unwrap().entry.clone();
    let (moc, vov, chet) = (find("moc"), find("vov"), find("chet"));
    assert!(server.connections() > before_cut, "the station reconnected after the cut");

    assert_eq!(vov.outcome, Outcome::Relayed, "{vov:?}");
    assert!(vov.delay_ms.is_some_and(|d| d.abs() < 100), "{vov:?}");
    let facts = vov.relay.expect("relay facts");
    assert_eq!(facts.dropouts, 1, "{facts:?}");
    assert!((facts.relayed_secs + facts.dropout_secs - RELAY_SECS).abs() < 0.1, "{facts:?}");
    // The buffer (2 s) and its slack carry the first seconds of the cut; reconnecting
    // (backoff ≤ 4 s) and gathering the buffer again take the rest.
    assert!((5.0..=12.0).contains(&facts.dropout_secs), "{facts:?}");
    assert!((facts.longest_dropout_secs - facts.dropout_secs).abs() < 1e-6, "{facts:?}");

    assert_eq!(chet.outcome, Outcome::Relayed, "{chet:?}");
    let dead = chet.relay.expect("relay facts");
    assert_eq!(dead.relayed_secs, 0.0, "{dead:?}");
    assert_eq!(dead.dropouts, 1, "{dead:?}");
    assert!((dead.dropout_secs - DEAD_SECS).abs() < 0.05, "{dead:?}");

    // The air-check, measured from the marker's first sample, once it holds a second
    // past the dead stream's slot (its header is rewritten every second).
    let air = rig.air_check_until(DEAD_AFTER + DEAD_SECS + 1.0);
    let rate = f64::from(air.rate);
    let frame = |secs: f64| (secs * rate) as usize;
    let marker_at = air.onset(0, 2000).expect("the marker in the air-check");
    let marker_started = moc.started.expect("marker start");
    let relay_at = air.onset(marker_at + frame(1.5), 2000).expect("the relay in the air-check");
    let offset = (relay_at - marker_at) as f64 / rate;
    assert!(
        (offset - RELAY_AFTER).abs() < 0.05,
        "the relay starts {offset:.3} s after the marker, planned {RELAY_AFTER} s (ledger: {:?} vs {marker_started})",
        vov.started
    );
    let window = |at: usize| at / (air.rate as usize / 100);
    let runs: Vec<_> = air
        .runs(class)
        .into_iter()
        .filter(|r| {
            r.2 >= 5
                && r.1 >= window(relay_at)
                && r.1 < window(marker_at + frame(DEAD_AFTER + DEAD_SECS + 0.5))
        })
        .map(|(c, start, len)| {
            (c, start as f64 / 100.0 - marker_at as f64 / rate, len as f64 / 100.0)
        })
        .collect();
    let names: Vec<&str> = runs.iter().map(|r| r.0).collect();
    assert_eq!(
        names,
        ["stream", "fallback", "stream", "silence", "fallback", "silence"],
        "tones after the relay's start (name, s after the marker, length): {runs:?}"
    );
    // The fallback fills the drop-out the ledger counts.
    assert!((runs[1].2 - facts.dropout_secs).abs() < 0.1, "{runs:?} vs {facts:?}");
    // The stream ends on time: the slot is 20 s from its planned instant.
    let ended = runs[2].1 + runs[2].2;
    assert!((ended - (RELAY_AFTER + RELAY_SECS)).abs() < 0.05, "ended {ended:.3} s: {runs:?}");
    // The dead stream: its fallback for its whole slot.
    assert!(
        (runs[4].1 - DEAD_AFTER).abs() < 0.05 && (runs[4].2 - DEAD_SECS).abs() < 0.05,
        "{runs:?}"
    );

    // Central: the playlog and the day's report.
    let playlog = wait::until("the records at central", Duration::from_secs(30), || {
        let out = remote(&url, &admin, &["log", "--station", "tri-ton", "--format", "json"]);
        let r: Vec<Record> = serde_json::from_slice(&out.stdout).ok()?;
        (r.iter().filter(|r| r.entry.outcome == Outcome::Relayed).count() == 2).then_some(r)
    });
    let central_vov = playlog.iter().find(|r| r.entry.item_id == "vov").unwrap();
    assert_eq!(central_vov.entry.relay, Some(facts));
    let table = remote(&url, &admin, &["log", "--station", "tri-ton"]);
    let table = text(&table.stdout);
    assert!(table.contains(&facts.summary()), "{table}");
    assert!(table.contains("relayed 0.0 s, 1 drop-out (4.0 s)"), "{table}");

    let date = marker_started.with_timezone(&tz).date_naive();
    let out = remote(&url, &admin, &["report", &date.to_string(), "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let report: DailyReport = serde_json::from_slice(&out.stdout).unwrap();
    let row = |id: &str| report.rows.iter().find(|r| r.item_id == id).unwrap().clone();
    assert_eq!(row("vov").status, ReportStatus::Aired, "{:?}", row("vov"));
    assert_eq!(row("vov").detail, facts.summary());
    assert_eq!(row("chet").status, ReportStatus::Failed, "{:?}", row("chet"));
    assert!(row("chet").detail.contains("relayed 0.0 s"), "{:?}", row("chet"));
}
