//! Central at several addresses, with real processes: a station whose first
//! `central_url` is a black hole (a listener in this test that accepts connections and
//! never answers) and whose second is a real `loa central` syncs its manifest and audio
//! and reports a heartbeat through the second within 10 s of its start, receives the
//! bulletin stream there and airs an emergency bulletin pushed by the CLI — itself given
//! the black hole first (`LOA_CENTRAL=hole,central`), pushing exactly once. The CLI with
//! a closed port first reads the fleet from the second address. In process: a `503` with
//! `Retry-After` moves a station's sync to the next address and that address is not asked
//! again meanwhile; a `401` moves nothing.

use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use loa::protocol::{BulletinInfo, DeliveryState};

use crate::support::process::{
    Proc, Remote, StationToml, central_init, field_str as field, station_log, text, utf8,
};
use crate::support::wait;

/// A TCP listener on 127.0.0.1 that accepts every connection and never writes a byte,
/// holding each connection open until it is dropped.
struct BlackHole {
    url: String,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl BlackHole {
    fn open() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the black hole");
        let port = listener.local_addr().expect("its address").port();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held: Vec<TcpStream> = Vec::new();
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    return;
                }
                if let Ok(stream) = stream {
                    held.push(stream);
                }
            }
        });
        Self { url: format!("http://127.0.0.1:{port}"), stop, thread: Some(thread) }
    }
}

impl Drop for BlackHole {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // One more connection wakes the accepting thread to see the flag.
        let _ = TcpStream::connect(self.url.trim_start_matches("http://"));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// A port nothing listens on (bound, then let go).
fn closed_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    listener.local_addr().expect("address").port()
}

#[test]
fn a_station_whose_first_central_is_a_black_hole_syncs_reports_and_airs_through_the_second() {
    let dir = tempfile::tempdir().expect("tempdir");
    let province = central_init(&dir.path().join("central"));
    let token = province.add_station("tri-ton", "Tri Tôn", "Tri Tôn");
    let central = province.serve("");
    let admin = province.admin(&central);
    let hole = BlackHole::open();

    // A provincial item tomorrow: a manifest with audio to fetch, nothing to play now.
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    std::fs::write(work.join("tone.wav"), loa::testing::wav_bytes(1.0, 440.0, 0.5)).expect("tone");
    let at = (Utc::now() + chrono::Duration::days(1))
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .format("%Y-%m-%dT%H:%M:%S");
    let schedule = work.join("provincial.toml");
    std::fs::write(
        &schedule,
        format!(
            "layer = \"provincial\"\n\n[[item]]\nid = \"ban-tin\"\ntitle = \"Bản tin\"\naudio = \"tone.wav\"\nat = {at}\n"
        ),
    )
    .expect("schedule");
    let out = admin.run(&["schedule", "load", utf8(&schedule), "--to", "all"]);
    assert!(out.status.success(), "{}", text(&out.stderr));

    let list = format!("[\"{}\", \"{}\"]", hole.url, central.url);
    let config = StationToml {
        id: "tri-ton",
        central_url: &list,
        token: &token,
        key: &province.key,
        extra: "heartbeat_secs = 1\n",
        audio: "sink = \"clocked\"\n",
    }
    .write(&dir.path().join("tri-ton"));
    let started = Instant::now();
    let station = Proc::station(&config);

    // Through the second address within 10 s of the start: the manifest central issued
    // accepted, its audio in place, and a heartbeat saying so.
    wait::until("tri-ton's heartbeat with its manifest", Duration::from_secs(10), || {
        let fleet = admin.fleet()?;
        let s = fleet.stations.iter().find(|s| s.id == "tri-ton")?;
        let h = s.heartbeat.as_ref()?;
        (h.manifest_version.is_some()
            && h.manifest_version == s.issued_version
            && h.missing_bytes == 0)
            .then_some(())
    });
    let synced = started.elapsed();
    assert!(synced < Duration::from_secs(10), "{synced:?}");
    eprintln!("synced and reported through the second address {synced:?} after the start");
    station.wait_for(&["moving to its next address", &hole.url], Duration::from_secs(5));
    station.wait_for(&["bulletin stream connected", &central.url], Duration::from_secs(20));

    // The CLI given the black hole first pushes the emergency once, at the second.
    let cli = Remote::new(&format!("{},{}", hole.url, central.url), &province.admin);
    let bulletin = work.join("canh-bao.wav");
    std::fs::write(&bulletin, loa::testing::wav_bytes(1.0, 880.0, 0.4)).expect("bulletin");
    let pushing = Instant::now();
    let id = cli.push_bulletin(&["--audio", utf8(&bulletin), "--to", "all"]);
    eprintln!("the CLI pushed through the second address in {:?}", pushing.elapsed());
    let all: Vec<BulletinInfo> = admin.expect_json(&["bulletin", "list", "--format", "json"]);
    assert_eq!(all.len(), 1, "pushed once: {all:?}");

    wait::until("tri-ton finished the emergency", Duration::from_secs(30), || {
        let info: BulletinInfo = admin.json(&["bulletin", "show", &id, "--format", "json"])?;
        let s = info.stations.iter().find(|s| s.station_id == "tri-ton")?;
        (s.state == Some(DeliveryState::Finished)).then_some(())
    });
    let data = config.parent().expect("dir").join("data");
    let records = station_log(&data);
    assert!(
        records
            .iter()
            .any(|r| field(r, "item_id") == Some(id.as_str())
                && field(r, "outcome") == Some("played")),
        "{records:?}"
    );
    drop(station);
    drop(hole);
}

#[test]
fn the_cli_reads_from_the_next_address_when_the_first_refuses_connections() {
    let dir = tempfile::tempdir().expect("tempdir");
    let province = central_init(&dir.path().join("central"));
    province.add_station("tri-ton", "Tri Tôn", "Tri Tôn");
    let central = province.serve("");
    let closed = format!("http://127.0.0.1:{}", closed_port());

    let cli = Remote::new(&format!("{closed},{}", central.url), &province.admin);
    let out = cli.run(&["status", "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fleet: loa::protocol::FleetStatus = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(fleet.stations.len(), 1);

    // Nowhere to go: both addresses are named in the error.
    let nowhere = Remote::new(&format!("{closed},{closed}/"), &province.admin);
    let out = nowhere.run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("cannot reach central at any of its addresses"), "{err}");

    // A refusal (a wrong token) is central's answer, wherever it comes from: the error is
    // the refusal, not a connection failure.
    let wrong = Remote::new(&format!("{closed},{}", central.url), "not-a-token");
    let out = wrong.run(&["status"]);
    assert_eq!(out.status.code(), Some(1));
    let err = text(&out.stderr);
    assert!(err.contains("401"), "{err}");
}

/// A server that answers every request `503 Service Unavailable` with `Retry-After: 60`,
/// counting the connections it gets.
fn busy_server() -> (String, Arc<std::sync::atomic::AtomicUsize>) {
    use std::io::{Read, Write};
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("address"));
    let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = count.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { continue };
            seen.fetch_add(1, Ordering::SeqCst);
            let mut request = Vec::new();
            let mut buffer = [0u8; 4096];
            while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                match stream.read(&mut buffer) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => request.extend_from_slice(&buffer[..n]),
                }
            }
            let _ = stream.write_all(
                b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 60\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
        }
    });
    (url, count)
}

#[tokio::test]
async fn a_busy_address_is_left_and_left_alone_and_a_refused_token_moves_nothing() {
    use loa::station::sync::{SyncConfig, SyncError, Syncer};
    let central = crate::support::central::Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    central.provincial().await;
    let cache = tempfile::tempdir().expect("tempdir");
    let syncer = |urls: &[String], token: &str| {
        let config = SyncConfig::new(
            &urls[0],
            token,
            "tri-ton",
            central.public_key(),
            cache.path().to_path_buf(),
        )
        .with_addresses(urls);
        Syncer::new(config, central.clock.clone()).expect("syncer")
    };

    // 503 with Retry-After at the first address: the second serves the rest.
    let (busy, asked) = busy_server();
    let mut s = syncer(&[busy.clone(), central.url.clone()], &token);
    let err = s.fetch_manifest(Duration::ZERO).await.expect_err("busy");
    assert!(matches!(err, SyncError::Status { status, .. } if status == 503), "{err}");
    assert_eq!(s.central().current(), central.url);
    s.fetch_manifest(Duration::ZERO).await.expect("second address").expect("a manifest");
    let pass = s.sync_audio().await.expect("audio");
    assert_eq!(pass.downloaded.len(), 2, "{pass:?}");
    s.send_heartbeat(&Default::default()).await.expect("heartbeat");
    assert_eq!(asked.load(Ordering::SeqCst), 1, "asked again inside its Retry-After");

    // A refused token is this station's problem: no other address would accept it.
    let closed = format!("http://127.0.0.1:{}", closed_port());
    let mut s = syncer(&[central.url.clone(), closed], "not-the-token");
    let err = s.fetch_manifest(Duration::ZERO).await.expect_err("401");
    assert!(matches!(err, SyncError::Unauthorized), "{err}");
    assert_eq!(s.central().current(), central.url);
}
