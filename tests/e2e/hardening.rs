//! The emergency path under attack, with real processes: an impostor on the path between
//! a station and central, and a crowd of idle sockets against a central whose open-file
//! limit is the common 1,024. Each case failed on the build before the hardening: the
//! forged event silenced the station for good; the sockets locked every station and
//! operator out.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use loa::protocol::{BulletinInfo, DeliveryState};

use crate::support::process::{
    CentralProc, LOA, Proc, Province, Remote, StationToml, central_init, remote, text,
};
use crate::support::wait;

/// `loa central --config central.toml` (beside `province`'s data) on 127.0.0.1:0, its
/// stderr kept; under `ulimit -n N` when asked.
fn start_central(province: &Province, ulimit: Option<u32>) -> CentralProc {
    let config = province.config("");
    let config = config.to_str().unwrap().to_string();
    let mut central = match ulimit {
        None => CentralProc::with_args(&["central", "--config", &config]),
        // A shell lowers the limit (soft and hard) and then becomes central.
        Some(n) => CentralProc::new(move || {
            let mut c = Command::new("sh");
            c.args(["-c", &format!("ulimit -n {n} && exec \"$0\" \"$@\"")])
                .args([LOA, "central", "--config", &config]);
            c
        }),
    };
    central.start();
    central
}

/// A province with one station, `tri-ton` (its token), and its central.
fn tri_ton(dir: &Path, ulimit: Option<u32>) -> (Province, String, CentralProc) {
    let province = central_init(&dir.join("central"));
    let token = province.add_station("tri-ton", "Tri Tôn", "Tri Tôn");
    let central = start_central(&province, ulimit);
    (province, token, central)
}

fn station_toml(root: &Path, id: &str, url: &str, token: &str, key: &str) -> PathBuf {
    std::fs::create_dir_all(root.join("local")).unwrap();
    StationToml {
        id,
        central_url: url,
        token,
        key,
        extra: "local_schedules = \"local\"\nheartbeat_secs = 2\n",
        audio: "sink = \"null\"\n",
    }
    .write(root)
}

/// Pushes a `test` bulletin (travels the whole chain, never aired) to `to`; its id.
fn push_test(url: &str, admin: &str, dir: &Path, to: &str) -> String {
    let audio = dir.join("kiem-tra.wav");
    std::fs::write(&audio, loa::testing::wav_bytes(0.5, 660.0, 0.3)).unwrap();
    Remote::new(url, admin).push_bulletin(&[
        "--audio",
        audio.to_str().unwrap(),
        "--to",
        to,
        "--priority",
        "test",
    ])
}

/// Waits until central shows `station` at `test-ok` for bulletin `id`.
fn wait_test_ok(url: &str, admin: &str, id: &str, station: &str, within: Duration) {
    wait::until(format!("{station} confirming test bulletin {id}"), within, || {
        let info: BulletinInfo =
            Remote::new(url, admin).json(&["bulletin", "show", id, "--format", "json"])?;
        let s = info.stations.iter().find(|s| s.station_id == station)?;
        (s.state == Some(DeliveryState::TestOk)).then_some(())
    });
}

/// The forged event an impostor sends: a huge event number and an envelope no key signed.
const FORGED: &str = concat!(
    "id: 9223372036854775807\nevent: bulletin\ndata: {\"seq\":9223372036854775807,",
    "\"envelope\":{\"kind\":\"bulletin\",\"payload\":\"e30=\",\"signature\":\"",
    "00000000000000000000000000000000000000000000000000000000000000000000000000000000",
    "000000000000000000000000000000000000000000000000\"}}\n\n"
);

/// A man in the middle on 127.0.0.1: it answers the station's first bulletin stream
/// itself, with [`FORGED`], and passes every other connection through to central byte
/// for byte.
struct Impostor {
    addr: SocketAddr,
    _runtime: tokio::runtime::Runtime,
}

impl Impostor {
    fn start(central: SocketAddr) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(async move {
            let forged = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
            loop {
                let Ok((client, _)) = listener.accept().await else { continue };
                let forged = forged.clone();
                tokio::spawn(async move {
                    let _ = Self::serve(client, central, forged).await;
                });
            }
        });
        Self { addr, _runtime: runtime }
    }

    async fn serve(
        mut client: tokio::net::TcpStream,
        central: SocketAddr,
        forged: std::sync::Arc<std::sync::atomic::AtomicBool>,
    ) -> std::io::Result<()> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if client.read(&mut byte).await? == 0 {
                return Ok(());
            }
            head.push(byte[0]);
        }
        let stream = head.starts_with(b"GET /api/v1/station/events ");
        if stream && !forged.swap(true, std::sync::atomic::Ordering::SeqCst) {
            let answer = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\nconnection: close\r\n\r\n{FORGED}"
            );
            client.write_all(answer.as_bytes()).await?;
            tokio::time::sleep(Duration::from_millis(300)).await;
            return client.shutdown().await;
        }
        let mut upstream = tokio::net::TcpStream::connect(central).await?;
        upstream.write_all(&head).await?;
        tokio::io::copy_bidirectional(&mut client, &mut upstream).await.map(|_| ())
    }
}

fn stream_connections(station: &Proc) -> usize {
    station.log().matches("bulletin stream connected").count()
}

#[test]
fn a_forged_event_from_an_impostor_does_not_silence_the_station_even_across_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let (province, token, central) = tri_ton(dir.path(), None);
    let Province { key, admin, .. } = &province;
    let url = central.url.clone();
    let central_addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    let impostor = Impostor::start(central_addr);
    let via = format!("http://{}", impostor.addr);
    let root = dir.path().join("tri-ton");
    let config = station_toml(&root, "tri-ton", &via, &token, key);

    let station = Proc::station(&config);
    // The impostor's stream: one forged event, refused, then the stream ends.
    station.wait_for(&["bulletin refused"], Duration::from_secs(60));
    // The station reconnects, through the impostor to the real central.
    wait::until("a second bulletin stream", Duration::from_secs(60), || {
        (stream_connections(&station) >= 2).then_some(())
    });
    let first = push_test(&url, admin, dir.path(), "tri-ton");
    wait_test_ok(&url, admin, &first, "tri-ton", Duration::from_secs(30));
    // The resume point never took the forged number: not after a restart either.
    drop(station);
    let station = Proc::station(&config);
    station.wait_for(&["bulletin stream connected"], Duration::from_secs(60));
    let line = station.find(&["bulletin stream connected"]).unwrap();
    assert!(!line.contains("9223372036854775807"), "resumed after the forged event: {line}");
    let second = push_test(&url, admin, dir.path(), "tri-ton");
    wait_test_ok(&url, admin, &second, "tri-ton", Duration::from_secs(30));
}

#[test]
fn a_station_whose_resume_point_was_poisoned_before_the_upgrade_hears_bulletins_again() {
    let dir = tempfile::tempdir().unwrap();
    let (province, token, central) = tri_ton(dir.path(), None);
    let Province { key, admin, .. } = &province;
    let url = central.url.clone();
    let root = dir.path().join("tri-ton");
    let config = station_toml(&root, "tri-ton", &url, &token, key);
    // What an older station stored after the forged event: the largest event number.
    std::fs::create_dir_all(root.join("data")).unwrap();
    let db = rusqlite::Connection::open(root.join("data").join("bulletins.sqlite")).unwrap();
    db.execute_batch(
        "CREATE TABLE cursor (k INTEGER PRIMARY KEY, last_event INTEGER NOT NULL);
         INSERT INTO cursor VALUES (0, 9223372036854775807);",
    )
    .unwrap();
    drop(db);
    let station = Proc::station(&config);
    station.wait_for(&["bulletin stream connected"], Duration::from_secs(60));
    // Central treats a resume point beyond its newest event as a fresh start.
    let id = push_test(&url, admin, dir.path(), "tri-ton");
    wait_test_ok(&url, admin, &id, "tri-ton", Duration::from_secs(30));
}

/// Writes `request` on a new connection to `addr` and returns the status line (empty
/// when central closed without answering), bounded by `within`.
fn status_line(addr: SocketAddr, request: &[u8], within: Duration) -> String {
    let Ok(mut stream) = TcpStream::connect_timeout(&addr, within) else { return String::new() };
    stream.set_read_timeout(Some(within)).unwrap();
    if stream.write_all(request).is_err() {
        return String::new();
    }
    let mut answer = Vec::new();
    let mut buf = [0u8; 512];
    while !answer.windows(2).any(|w| w == b"\r\n") {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => answer.extend_from_slice(&buf[..n]),
        }
    }
    String::from_utf8_lossy(&answer).lines().next().unwrap_or_default().to_string()
}

#[test]
fn central_under_ulimit_1024_serves_stations_and_operators_while_idle_sockets_pile_up() {
    let dir = tempfile::tempdir().unwrap();
    let (province, token, central) = tri_ton(dir.path(), Some(1024));
    let admin = &province.admin;
    let url = central.url.clone();
    let addr: SocketAddr = url.trim_start_matches("http://").parse().unwrap();
    // More sockets than central may hold files, each with half a request and then
    // nothing: what once made every later connection wait for ever.
    let mut idle = Vec::new();
    for _ in 0..1100 {
        let mut s = TcpStream::connect(addr).expect("connect an idle socket");
        s.write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: central\r\n").unwrap();
        idle.push(s);
    }
    let heartbeat = serde_json::json!({
        "manifest_version": null, "clock_offset_ms": null, "ready_until": null,
        "missing_bytes": 0, "disk_free_bytes": null, "now_playing": null,
        "sink_health": "ok", "sent_at": chrono::Utc::now(),
    })
    .to_string();
    let request = format!(
        "POST /api/v1/station/heartbeat HTTP/1.1\r\nHost: central\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{heartbeat}",
        heartbeat.len()
    );
    let started = Instant::now();
    let line = status_line(addr, request.as_bytes(), Duration::from_secs(10));
    assert!(
        line.starts_with("HTTP/1.1 200"),
        "station heartbeat: {line:?}\n{}",
        central.proc().log()
    );
    let out = remote(&url, admin, &["status"]);
    assert!(out.status.success(), "operator: {}", text(&out.stderr));
    assert!(text(&out.stdout).contains("tri-ton"));
    assert!(started.elapsed() < Duration::from_secs(10), "served after {:?}", started.elapsed());
    let log = central.proc().log();
    assert!(log.contains("the open-file limit allows"), "{log}");
    drop(idle);
}
