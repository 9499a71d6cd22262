//! Two `loa central` replicas on one PostgreSQL database serve one bulletin stream: a
//! station streaming from replica B airs an emergency pushed through replica A (the
//! event numbered by the database, announced to B by `NOTIFY`), and its delivery
//! reports, received by B, show through A. And when A dies in the middle of its
//! fan-out, the stations that were on it move to B and every station airs it once.

use std::time::Duration;

use loa::protocol::DeliveryState;
use loa::testing::database::TestDatabase;

use crate::support::process::{
    CentralProc, Proc, Province, Remote, StationToml, add_station_on, central_init_on,
    central_replica, field_str as field, station_log as records,
};
use crate::support::wait;

/// Replica A and replica B on a fresh database, station `tri-ton` (its token), the
/// province and the directory they live in. Bind them database first, as a test's own
/// locals were declared: the centrals then stop before their directory and database go.
struct Pair {
    a: CentralProc,
    b: CentralProc,
    token: String,
    province: Province,
    dir: tempfile::TempDir,
    _database: TestDatabase,
}

impl Pair {
    fn start() -> Self {
        let database = TestDatabase::new();
        let dir = tempfile::tempdir().unwrap();
        let province = central_init_on(&dir.path().join("a"), &database.url);
        let token = add_station_on(&province.data, &database.url, "tri-ton", "Tri Tôn");
        let a = central_replica(&province, &province.data, &database.url);
        let b = central_replica(&province, &dir.path().join("b"), &database.url);
        Pair { a, b, token, province, dir, _database: database }
    }
}

#[test]
fn an_emergency_pushed_through_one_replica_airs_at_a_station_streaming_from_the_other() {
    let Pair { _database, dir, province, token, a, b } = Pair::start();

    let root = dir.path().join("tri-ton");
    let station_toml = StationToml {
        id: "tri-ton",
        central_url: &b.url,
        token: &token,
        key: &province.key,
        extra: "",
        audio: "sink = \"clocked\"\n",
    }
    .write(&root);
    let station = Proc::station(&station_toml);
    station.wait_for(&["bulletin stream connected"], Duration::from_secs(60));

    let audio = dir.path().join("canh-bao-lu.wav");
    std::fs::write(&audio, loa::testing::wav_bytes(2.0, 880.0, 0.4)).unwrap();
    let through_a = Remote::new(&a.url, &province.admin);
    let id = through_a.push_bulletin(&[
        "--audio",
        audio.to_str().unwrap(),
        "--to",
        "tri-ton",
        "--title",
        "Cảnh báo lũ",
    ]);

    // It airs at the station, which only ever talked to B.
    wait::until("the bulletin aired", Duration::from_secs(60), || {
        records(&root.join("data"))
            .iter()
            .any(|r| {
                field(r, "item_id") == Some(id.as_str()) && field(r, "outcome") == Some("played")
            })
            .then_some(())
    });
    assert!(b.proc().find(&["bulletin stream opened", "tri-ton"]).is_some(), "{}", b.proc().log());
    assert!(a.proc().find(&["bulletin stream opened"]).is_none(), "{}", a.proc().log());

    // The reports went to B; A shows them, read from the database.
    let info = wait::until("A shows the station's start", Duration::from_secs(30), || {
        let info = through_a.bulletin(&id);
        info.stations.iter().all(|s| s.latency_ms.is_some()).then_some(info)
    });
    let shown = &info.stations[0];
    assert_eq!(shown.station_id, "tri-ton");
    assert!(
        matches!(shown.state, Some(DeliveryState::Started | DeliveryState::Finished)),
        "{shown:?}"
    );
    let latency = shown.latency_ms.unwrap();
    eprintln!("push through A → first sample at a station on B: {latency} ms");
    assert!((0..10_000).contains(&latency), "{latency} ms");
    // B agrees, event number and all.
    let through_b = Remote::new(&b.url, &province.admin).bulletin(&id);
    assert_eq!(through_b.doc.event_seq, info.doc.event_seq);
    assert!(through_b.stations[0].state.is_some(), "{through_b:?}");
}

/// Twenty real stations, half streaming from each of two replicas (each listing both,
/// its own first); an emergency to all is pushed through A and A is SIGKILLed as soon as
/// it has answered, in the middle of its fan-out. The stations that were on A move to B,
/// resume the stream after the last event they had, and every station airs the
/// bulletin exactly once.
#[test]
fn the_replica_that_took_the_push_dies_mid_fan_out_and_every_station_airs_it_once() {
    const STATIONS: usize = 20;
    let database = TestDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let province = central_init_on(&dir.path().join("a"), &database.url);
    let tokens: Vec<(String, String)> = (0..STATIONS)
        .map(|n| {
            let id = format!("xa-{n:02}");
            let token = add_station_on(&province.data, &database.url, &id, "Tri Tôn");
            (id, token)
        })
        .collect();
    let mut a = central_replica(&province, &province.data, &database.url);
    let b = central_replica(&province, &dir.path().join("b"), &database.url);

    let stations: Vec<(std::path::PathBuf, Proc)> = tokens
        .iter()
        .enumerate()
        .map(|(n, (id, token))| {
            let order = if n % 2 == 0 { [&a.url, &b.url] } else { [&b.url, &a.url] };
            let urls = format!("[\"{}\", \"{}\"]", order[0], order[1]);
            let root = dir.path().join(id);
            let toml = StationToml {
                id,
                central_url: &urls,
                token,
                key: &province.key,
                extra: "",
                audio: "sink = \"clocked\"\n",
            }
            .write(&root);
            (root, Proc::station(&toml))
        })
        .collect();
    for (_, station) in &stations {
        station.wait_for(&["bulletin stream connected"], Duration::from_secs(60));
    }

    let audio = dir.path().join("canh-bao-lu.wav");
    std::fs::write(&audio, loa::testing::wav_bytes(2.0, 880.0, 0.4)).unwrap();
    let id = Remote::new(&a.url, &province.admin).push_bulletin(&[
        "--audio",
        audio.to_str().unwrap(),
        "--to",
        "all",
        "--title",
        "Cảnh báo lũ",
    ]);
    a.kill();

    for (root, _) in &stations {
        let aired = wait::until("the bulletin aired everywhere", Duration::from_secs(90), || {
            let aired: Vec<_> = records(&root.join("data"))
                .into_iter()
                .filter(|r| field(r, "item_id") == Some(id.as_str()))
                .collect();
            aired
                .iter()
                .any(|r| matches!(field(r, "outcome"), Some("played" | "late")))
                .then_some(aired)
        });
        assert_eq!(aired.len(), 1, "{}: aired once, recorded once: {aired:?}", root.display());
    }
    // B shows every station's report, whichever replica each reached.
    let info = wait::until("B shows every station", Duration::from_secs(30), || {
        let info = Remote::new(&b.url, &province.admin).bulletin(&id);
        info.stations.iter().all(|s| s.latency_ms.is_some()).then_some(info)
    });
    assert_eq!(info.stations.len(), STATIONS);
}

/// A live broadcast is received by the replica the operator speaks to (A), but the
/// station streams from B: B, which does not hold the broadcast but knows from the
/// database that it is on air, answers `503`, and the station asks its next address (A)
/// and airs it, rather than staying silent.
#[test]
fn a_live_broadcast_on_one_replica_reaches_a_station_on_the_other() {
    let Pair { _database, dir, province, token, a, b } = Pair::start();
    let root = dir.path().join("tri-ton");
    let urls = format!("[\"{}\", \"{}\"]", b.url, a.url);
    let toml = StationToml {
        id: "tri-ton",
        central_url: &urls,
        token: &token,
        key: &province.key,
        extra: "",
        audio: "sink = \"clocked\"\n",
    }
    .write(&root);
    let station = Proc::station(&toml);
    station.wait_for(&["bulletin stream connected"], Duration::from_secs(60));
    assert!(b.proc().find(&["bulletin stream opened", "tri-ton"]).is_some(), "{}", b.proc().log());

    let voice = dir.path().join("giong-noi.wav");
    std::fs::write(&voice, loa::testing::wav_bytes(3.0, 600.0, 0.4)).unwrap();
    let out = crate::support::process::remote(
        &a.url,
        &province.admin,
        &["live", "--to", "tri-ton", "--input", voice.to_str().unwrap(), "--title", "Trực tiếp"],
    );
    assert!(out.status.success(), "{}", crate::support::process::stderr(&out));
    let id = crate::support::process::stdout(&out).trim().to_string();
    let record = wait::until("the live broadcast aired", Duration::from_secs(60), || {
        records(&root.join("data")).into_iter().find(|r| {
            field(r, "item_id") == Some(id.as_str()) && field(r, "outcome") == Some("relayed")
        })
    });
    let relayed = record["relay"]["relayed_secs"].as_f64().unwrap_or_default();
    assert!(relayed > 2.0, "{record}");
    assert!(a.proc().find(&["live listener joined", "tri-ton"]).is_some(), "{}", a.proc().log());
}

/// The replica receiving a live broadcast dies before it ends, leaving the broadcast's
/// row open. While A lived, B sent the station on to its next address (`503`); once A
/// has not marked the broadcast alive for the lease, B answers that there is no such
/// broadcast (`404`), so stations stop looking for it — not two hours later.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_live_broadcast_whose_replica_died_stops_being_looked_for() {
    use loa::central::live::{LIVE_ALIVE_EVERY, LIVE_LEASE};
    use loa::protocol::live::{StartLiveRequest, StartLiveResponse};
    let Pair { _database, dir: _dir, province, token, mut a, b } = Pair::start();
    let http = reqwest::Client::new();
    let request = StartLiveRequest {
        title: "Trực tiếp".into(),
        to: loa::protocol::Target::All,
        priority: loa::protocol::BulletinPriority::Emergency,
    };
    let response =
        http.post(format!("{}/api/v1/live", a.url)).bearer_auth(&province.admin).json(&request);
    let started: StartLiveResponse = response.send().await.unwrap().json().await.unwrap();
    let listen = || {
        let request =
            http.get(format!("{}/api/v1/station/live/{}", b.url, started.id)).bearer_auth(&token);
        async move { request.send().await.unwrap().status().as_u16() }
    };
    assert_eq!(listen().await, 503, "on air at A: B sends the station on");

    a.kill();
    let killed = std::time::Instant::now();
    wait::until_async(
        "B says the broadcast is gone",
        LIVE_LEASE + Duration::from_secs(30),
        || async { (listen().await == 404).then_some(()) },
    )
    .await;
    let gone = killed.elapsed();
    // Not before A's last mark could have lapsed: the lease, less the marking interval.
    assert!(gone >= LIVE_LEASE - LIVE_ALIVE_EVERY, "after {gone:?}");
}
