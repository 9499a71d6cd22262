//! systemd's notify protocol against the real `loa` binary: the test is systemd. It binds
//! a datagram socket, starts `loa station` / `loa central` with `NOTIFY_SOCKET` naming it
//! (an abstract `@name` for the station, a path for central) and `WATCHDOG_USEC`, and
//! reads what arrives:
//! - the station says `READY=1` once it can play, then `WATCHDOG=1` keeps arriving while
//!   it plays; when its audio thread is frozen (the debug-build test hook
//!   `LOA_TEST_FREEZE_AUDIO`) the pings stop, and come back when it is released;
//!   `STATUS=` names what plays and what comes next; SIGTERM gives `STOPPING=1`;
//! - central says `READY=1` once it listens, with the fleet in `STATUS=`, and pings.

use std::os::linux::net::SocketAddrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::support::process::{LOA, Proc as Daemon, central_init, command};
use chrono::{SecondsFormat, Utc};

/// Every datagram received within `within`, each with when it came.
fn drain(socket: &UnixDatagram, within: Duration) -> Vec<(Instant, String)> {
    let deadline = Instant::now() + within;
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return out;
        }
        socket.set_read_timeout(Some(left.max(Duration::from_millis(1)))).expect("timeout");
        match socket.recv(&mut buf) {
            Ok(n) => out.push((Instant::now(), String::from_utf8_lossy(&buf[..n]).into_owned())),
            Err(_) => return out,
        }
    }
}

/// Waits for a message containing `what`; returns it and everything before it.
fn wait_for(socket: &UnixDatagram, what: &str, within: Duration) -> (String, Vec<String>) {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        for (_, m) in drain(socket, Duration::from_millis(200)) {
            if m.contains(what) {
                return (m, seen);
            }
            seen.push(m);
        }
    }
    panic!("no notify message with {what:?} within {within:?}; got {seen:?}");
}

fn pings(messages: &[(Instant, String)]) -> usize {
    messages.iter().filter(|(_, m)| m.lines().any(|l| l == "WATCHDOG=1")).count()
}

#[test]
fn the_station_is_ready_pings_while_it_plays_and_stops_pinging_when_its_audio_thread_is_stuck() {
    if !cfg!(debug_assertions) {
        eprintln!(
            "skipped: the audio freeze hook exists only in debug builds (cargo test without --release)"
        );
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    let name = format!("loa-field-notify-{}", std::process::id());
    let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("abstract name");
    let socket = UnixDatagram::bind_addr(&addr).expect("bind the notify socket");

    // A 40 s tone from 3 s after start, then nothing until the next item in an hour.
    std::fs::write(root.join("tone.wav"), loa::testing::wav_bytes(40.0, 440.0, 0.3)).expect("wav");
    let first = Utc::now() + chrono::Duration::seconds(4);
    let later = first + chrono::Duration::hours(1);
    std::fs::write(
        root.join("provincial.toml"),
        format!(
            "layer = \"provincial\"\n\
             [[item]]\nid = \"ban-tin-sang\"\ntitle = \"Bản tin\"\naudio = \"tone.wav\"\nat = {}\n\
             [[item]]\nid = \"chuong-bao\"\ntitle = \"Chuông\"\naudio = \"tone.wav\"\nat = {}\n",
            first.to_rfc3339_opts(SecondsFormat::Millis, true),
            later.to_rfc3339_opts(SecondsFormat::Millis, true)
        ),
    )
    .expect("schedule");
    std::fs::write(
        root.join("station.toml"),
        "station_id = \"xa-an-binh\"\ndata_dir = \"data\"\nprovincial_schedule = \"provincial.toml\"\n\
         [audio]\nsink = \"clocked\"\n",
    )
    .expect("station.toml");
    let freeze = root.join("freeze");
    let station = Daemon::start(
        command()
            .args(["station", "--config"])
            .arg(root.join("station.toml"))
            .env("NOTIFY_SOCKET", format!("@{name}"))
            .env("WATCHDOG_USEC", "4000000")
            .env("LOA_TEST_FREEZE_AUDIO", &freeze),
    );

    let (ready, _) = wait_for(&socket, "READY=1", Duration::from_secs(60));
    assert!(ready.contains("STATUS="), "{ready}");
    assert!(ready.contains("next ban-tin-sang at"), "{ready}");
    station.wait_for(&["ban-tin-sang", "started"], Duration::from_secs(30));
    let (playing, _) = wait_for(&socket, "STATUS=playing ban-tin-sang", Duration::from_secs(20));
    assert!(playing.contains("next chuong-bao at"), "{playing}");

    // Pings while it plays: the interval is 4 s, so one every second.
    let alive = drain(&socket, Duration::from_secs(5));
    assert!(pings(&alive) >= 3, "pings while playing: {alive:?}");

    // The audio thread freezes: within the stale limit (2 s) and a tick the pings stop.
    std::fs::write(&freeze, b"").expect("freeze");
    station.wait_for(&["audio thread frozen by the test hook"], Duration::from_secs(5));
    drain(&socket, Duration::from_secs(4));
    let frozen = drain(&socket, Duration::from_secs(4));
    assert_eq!(pings(&frozen), 0, "pings while the audio thread was frozen: {frozen:?}");
    station.wait_for(&["no sign of life", "audio thread"], Duration::from_secs(5));

    // Released: the pings come back.
    std::fs::remove_file(&freeze).expect("release");
    let back = drain(&socket, Duration::from_secs(4));
    assert!(pings(&back) >= 1, "no ping after the audio thread was released: {back:?}");

    // SIGTERM: STOPPING=1, and the station stops cleanly.
    let status = station.terminate(Duration::from_secs(30));
    assert!(status.success(), "exit after SIGTERM: {status:?}");
    wait_for(&socket, "STOPPING=1", Duration::from_secs(5));
}

#[test]
fn central_is_ready_once_it_listens_and_pings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("central");
    central_init(&data);
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).expect("bind the notify socket");
    let central = Daemon::start(
        command()
            .args(["central", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(&data)
            .env("NOTIFY_SOCKET", &path)
            .env("WATCHDOG_USEC", "4000000"),
    );
    let (ready, _) = wait_for(&socket, "READY=1", Duration::from_secs(60));
    central.wait_for(&["loa central listening on"], Duration::from_secs(5));
    assert!(ready.contains("STATUS=serving http://127.0.0.1:"), "{ready}");
    assert!(ready.contains("0 stations"), "{ready}");
    let alive = drain(&socket, Duration::from_secs(4));
    assert!(pings(&alive) >= 2, "central's pings: {alive:?}");
}

#[test]
fn logs_are_one_json_object_per_line_with_loa_log_format_json() {
    use std::io::{BufRead, BufReader};
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("central");
    central_init(&data);
    let mut child = Command::new(LOA)
        .args(["central", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env("LOA_LOG_FORMAT", "json")
        .env("RUST_LOG", "info")
        .env("HOME", "/nonexistent")
        .stderr(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("spawn central");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut json_lines = 0;
    let found = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else { break None };
        // The listening line is printed for scripts, not logged; every log line is JSON.
        if line.starts_with("loa central listening on") || line.starts_with("public key:") {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        json_lines += 1;
        let message = value["fields"]["message"].as_str().unwrap_or_default().to_string();
        if message.contains("watching the fleet for problems") {
            break Some(value);
        }
    };
    let _ = child.kill();
    let _ = child.wait();
    let value = found.expect("the alerts line, as JSON");
    assert_eq!(value["level"], "INFO");
    assert!(value["timestamp"].is_string(), "{value}");
    assert!(json_lines >= 1);
}
