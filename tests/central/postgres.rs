//! Central on PostgreSQL, with real `loa central` processes and a real server:
//! `loa central migrate --to` moves a SQLite central (stations, tokens, library bytes,
//! playlog) into PostgreSQL and a replica with nothing on its disk but the key then
//! serves all of it; while the database is down central answers `503` with
//! `Retry-After`, and nothing a station sent during the outage is lost once it returns;
//! central follows a promoted standby; a replica killed mid-upload doubles nothing; a
//! schedule loaded through one replica reaches a station long-polling another at once.

use std::time::Duration;

use chrono::{TimeZone, Utc};
use loa::protocol::{FleetStatus, Outcome, PlaylogAck, PlaylogBatch, Record};
use loa::testing::database::TestDatabase;

use crate::support::pg::PgServer;
use crate::support::playlog::{chain, entry};
use crate::support::process::{
    CentralProc, Province, add_station_on, central_init, central_init_on, central_replica, loa,
    stderr, stdout, utf8,
};
use crate::support::wait::until_async;

const LISTEN: &str = "listen = \"127.0.0.1:0\"\n";

fn records(station: &str, n: u64) -> Vec<Record> {
    let t0 = Utc.with_ymd_and_hms(2026, 12, 6, 5, 0, 0).unwrap();
    let entries = (0..n)
        .map(|i| {
            entry(&format!("item-{i}"), Outcome::Played, t0 + chrono::Duration::minutes(i as i64))
        })
        .collect();
    chain(station, 1, loa::protocol::GENESIS, entries)
}

async fn send_playlog(url: &str, token: &str, records: &[Record]) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{url}/api/v1/station/playlog"))
        .bearer_auth(token)
        .json(&PlaylogBatch { records: records.to_vec() })
        .send()
        .await
        .unwrap()
}

async fn fleet(url: &str, admin: &str) -> FleetStatus {
    let response = reqwest::Client::new()
        .get(format!("{url}/api/v1/status"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

/// A province initialised straight into `database_url`, with station `tri-ton`, and
/// central serving it: the province, the station's token, central.
fn province_on(dir: &std::path::Path, database_url: &str) -> (Province, String, CentralProc) {
    let province = central_init_on(&dir.join("central"), database_url);
    let token = add_station_on(&province.data, database_url, "tri-ton", "Tri Tôn");
    let central = central_replica(&province, &province.data, database_url);
    (province, token, central)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sqlite_central_moves_to_postgres_and_a_bare_replica_serves_all_of_it() {
    let dir = tempfile::tempdir().unwrap();
    let province = central_init(&dir.path().join("central"));
    let tri_ton = province.add_station("tri-ton", "Tri Tôn", "Tri Tôn");
    let co_to = province.add_station("co-to", "Cô Tô", "Tịnh Biên");
    let wav = loa::testing::wav_bytes(2.0, 440.0, 0.3);
    let sha;
    {
        let mut central = province.serve(LISTEN);
        let audio = dir.path().join("tone.wav");
        std::fs::write(&audio, &wav).unwrap();
        let out =
            province.admin(&central).run(&["audio", "add", utf8(&audio), "--title", "Chuông"]);
        assert!(out.status.success(), "{}", stderr(&out));
        sha = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wav));
        for (id, token, n) in [("tri-ton", &tri_ton, 40), ("co-to", &co_to, 7)] {
            let response = send_playlog(&central.url, token, &records(id, n)).await;
            assert_eq!(response.status(), 200);
        }
        central.kill();
    }

    let database = TestDatabase::new();
    let migrate =
        |url: &str| loa(&["central", "migrate", "--data-dir", utf8(&province.data), "--to", url]);
    let out = migrate(&database.url);
    assert!(out.status.success(), "{}", stderr(&out));
    let said = stdout(&out);
    assert!(said.contains("1 library files, 2 playlog chains intact"), "{said}");
    assert!(said.lines().any(|l| l.starts_with("playlog") && l.contains(" 47 rows")), "{said}");

    // Again into the same database: refused, nothing doubled.
    let again = migrate(&database.url);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("already has rows"), "{}", stderr(&again));

    // A replica with an empty disk but the key: the admin token, the stations, their
    // playlog and the library's bytes all come from the database.
    let bare = dir.path().join("replica-b");
    let replica = central_replica(&province, &bare, &database.url);
    let status = fleet(&replica.url, &province.admin).await;
    let ids: Vec<&str> = status.stations.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["co-to", "tri-ton"]);
    let tri = status.stations.iter().find(|s| s.id == "tri-ton").unwrap();
    assert_eq!((tri.playlog.records, tri.playlog.acked_through), (40, 40));
    assert!(tri.playlog.issues.is_empty(), "{:?}", tri.playlog.issues);
    let audio = reqwest::Client::new()
        .get(format!("{}/api/v1/audio/{sha}", replica.url))
        .bearer_auth(&tri_ton)
        .send()
        .await
        .unwrap();
    assert_eq!(audio.status(), 200);
    assert_eq!(audio.bytes().await.unwrap().as_ref(), wav.as_slice());
    assert!(bare.join(loa::central::AUDIO_DIR).join(&sha).exists(), "kept in the replica's cache");
    // The station's next batch continues the migrated chain.
    let next = records("tri-ton", 41);
    let ack: PlaylogAck =
        send_playlog(&replica.url, &tri_ton, &next[40..]).await.json().await.unwrap();
    assert_eq!(ack.acked_through, 41);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn while_the_database_is_down_central_says_retry_and_loses_nothing() {
    let server = PgServer::start();
    let url = server.url();
    let dir = tempfile::tempdir().unwrap();
    let (province, token, central) = province_on(dir.path(), &url);
    let all = records("tri-ton", 30);
    let ack: PlaylogAck =
        send_playlog(&central.url, &token, &all[..10]).await.json().await.unwrap();
    assert_eq!(ack.acked_through, 10);

    server.stop();
    let refused = send_playlog(&central.url, &token, &all[10..20]).await;
    assert_eq!(refused.status(), 503, "{}", refused.text().await.unwrap_or_default());
    assert!(refused.headers().contains_key("retry-after"));
    assert!(central.running(), "central stays up without its database");

    server.resume();
    // The station sends again what was refused, and the rest: all stored, once.
    let resent =
        until_async("central to take the playlog again", Duration::from_secs(30), || async {
            let response = send_playlog(&central.url, &token, &all[10..]).await;
            (response.status() == 200).then_some(response)
        })
        .await;
    let ack: PlaylogAck = resent.json().await.unwrap();
    assert_eq!(ack.acked_through, 30);
    let status = fleet(&central.url, &province.admin).await;
    assert_eq!(status.stations[0].playlog.records, 30);
    assert!(status.stations[0].playlog.issues.is_empty());
}

/// The recipe in docs/postgresql.md, run: a primary with a streaming standby, central
/// given both hosts with `target_session_attrs=read-write`; the primary dies, the
/// standby is promoted, and central carries on on it with nothing lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn central_follows_a_promoted_standby() {
    let primary = PgServer::start();
    let standby = primary.standby();
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/postgres?target_session_attrs=read-write",
        primary.port, standby.port
    );
    let dir = tempfile::tempdir().unwrap();
    let (province, token, central) = province_on(dir.path(), &url);
    let all = records("tri-ton", 20);
    let ack: PlaylogAck =
        send_playlog(&central.url, &token, &all[..10]).await.json().await.unwrap();
    assert_eq!(ack.acked_through, 10);
    // The standby has replayed the first ten (streaming replication is asynchronous).
    let on_standby = format!("host=127.0.0.1 port={} user=postgres dbname=postgres", standby.port);
    crate::support::wait::until(
        "the standby to replay the playlog",
        Duration::from_secs(30),
        || {
            let url = on_standby.clone();
            std::thread::spawn(move || {
                let mut client = postgres::Client::connect(&url, postgres::NoTls).ok()?;
                let n: i64 = client.query_one("SELECT COUNT(*) FROM playlog", &[]).ok()?.get(0);
                (n == 10).then_some(())
            })
            .join()
            .unwrap()
        },
    );

    primary.stop();
    standby.promote();
    let resent = until_async(
        "central to write to the promoted standby",
        Duration::from_secs(30),
        || async {
            let response = send_playlog(&central.url, &token, &all[10..]).await;
            (response.status() == 200).then_some(response)
        },
    )
    .await;
    let ack: PlaylogAck = resent.json().await.unwrap();
    assert_eq!(ack.acked_through, 20);
    let status = fleet(&central.url, &province.admin).await;
    assert_eq!(status.stations[0].playlog.records, 20);
}

/// Two replicas on one database, twenty stations uploading their playlog in batches
/// (to their preferred replica, and to the other when it does not answer, as a station
/// does); one replica is SIGKILLed midway. Every record is stored exactly once and every
/// chain is whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_killed_while_stations_upload_loses_and_doubles_nothing() {
    const STATIONS: usize = 20;
    const RECORDS: u64 = 200;
    const BATCH: usize = 20;
    let database = TestDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let province = central_init_on(&dir.path().join("a"), &database.url);
    // Stations added in this process: twenty `loa central station add` runs would only
    // slow the test down.
    let store = loa::central::open_store(&province.data, Some(&database.url), None).unwrap();
    let mut tokens = Vec::new();
    for n in 0..STATIONS {
        let id = format!("xa-{n:02}");
        let station =
            loa::store::Station { id: id.clone(), name: id.clone(), district: "Tri Tôn".into() };
        tokens.push((id, loa::central::add_station(store.as_ref(), &station).unwrap()));
    }
    let mut a = central_replica(&province, &province.data, &database.url);
    let b = central_replica(&province, &dir.path().join("b"), &database.url);
    let urls = [a.url.clone(), b.url.clone()];
    let batches_done = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let uploads: Vec<_> = tokens
        .iter()
        .enumerate()
        .map(|(n, (id, token))| {
            let (urls, token, done) = (urls.clone(), token.clone(), batches_done.clone());
            let all = records(id, RECORDS);
            tokio::spawn(async move {
                let http =
                    reqwest::Client::builder().timeout(Duration::from_secs(5)).build().unwrap();
                let mut at = n % 2; // half prefer each replica
                let mut through = 0;
                for batch in all.chunks(BATCH) {
                    let mut tries = 0;
                    let ack: PlaylogAck = loop {
                        tries += 1;
                        assert!(tries < 50, "no replica took the batch");
                        let sent = http
                            .post(format!("{}/api/v1/station/playlog", urls[at]))
                            .bearer_auth(&token)
                            .json(&PlaylogBatch { records: batch.to_vec() })
                            .send()
                            .await;
                        match sent {
                            Ok(r) if r.status() == 200 => break r.json().await.unwrap(),
                            _ => at = 1 - at, // no answer: the other replica
                        }
                    };
                    through = ack.acked_through;
                    done.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                }
                through
            })
        })
        .collect();
    let total_batches = STATIONS * (RECORDS as usize / BATCH);
    crate::support::wait::until("a third of the batches in", Duration::from_secs(60), || {
        batches_done.load(std::sync::atomic::Ordering::SeqCst) >= total_batches / 3
    });
    a.kill();
    for upload in uploads {
        assert_eq!(upload.await.unwrap(), RECORDS, "every record acknowledged");
    }
    let status = fleet(&b.url, &province.admin).await;
    assert_eq!(status.stations.len(), STATIONS);
    for station in &status.stations {
        assert_eq!(
            (station.playlog.records, station.playlog.acked_through),
            (RECORDS, RECORDS),
            "{}",
            station.id
        );
        assert!(station.playlog.issues.is_empty(), "{}: {:?}", station.id, station.playlog.issues);
    }
}

/// A station long-polls replica B for its next manifest; a schedule is loaded through
/// replica A. B answers with A's new version as soon as A commits it (the database's
/// notice), not when the station's wait of a minute ends.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_loaded_through_one_replica_reaches_a_station_waiting_on_another() {
    let database = TestDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let (province, token, a) = province_on(dir.path(), &database.url);
    let b = central_replica(&province, &dir.path().join("b"), &database.url);
    let manifest = |url: &str, known: Option<String>, wait: u64| {
        let mut request = reqwest::Client::new()
            .get(format!("{url}/api/v1/station/manifest?wait={wait}"))
            .bearer_auth(&token);
        if let Some(tag) = known {
            request = request.header("If-None-Match", tag);
        }
        async move {
            let response = request.send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.headers()["etag"].to_str().unwrap().to_string()
        }
    };
    let first = manifest(&b.url, None, 0).await;

    // The station waits on B, for up to 60 s, holding the first version.
    let waiting = tokio::spawn(manifest(&b.url, Some(first.clone()), 60));
    // The long poll is held (its place counted by B's /metrics) before the load begins:
    // a load committed earlier would be answered at once, without the notice.
    until_async("the long poll waits on B", Duration::from_secs(20), || async {
        let body = reqwest::Client::new()
            .get(format!("{}/metrics", b.url))
            .bearer_auth(&province.admin)
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        body.lines().any(|l| l == "loa_event_streams_open 1")
    })
    .await;
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("sang.wav"), loa::testing::wav_bytes(1.0, 440.0, 0.2)).unwrap();
    let schedule = work.join("provincial.toml");
    std::fs::write(
        &schedule,
        "layer = \"provincial\"\ntimezone = \"Asia/Ho_Chi_Minh\"\n\n[[item]]\nid = \"ban-tin-sang\"\n\
         title = \"Bản tin sáng\"\naudio = \"sang.wav\"\ncron = \"30 5 * * *\"\n",
    )
    .unwrap();
    let loaded = std::time::Instant::now();
    let out = province.admin(&a).run(&["schedule", "load", utf8(&schedule), "--to", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));

    // Within 30 s, not at the 60 s end of the wait: without the notice, B would hold the
    // request until then.
    let tag = tokio::time::timeout(Duration::from_secs(30), waiting)
        .await
        .expect("B answered the waiting station before its wait ended")
        .unwrap();
    assert_ne!(tag, first, "a new version");
    let latest = manifest(&a.url, None, 0).await;
    assert_eq!(tag, latest, "the version A issued, not one of B's own");
    eprintln!("manifest reached the station on B {:?} after the load began", loaded.elapsed());
}
