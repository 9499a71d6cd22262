//! The real `loa` binary end to end: `loa central init`, `station add`, `token add`,
//! serving, `loa audio add`, `loa schedule load` and `loa status`, with the station sync
//! client fetching and verifying what the CLI loaded.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::sync::Arc;
use std::time::Duration;

use loa::clock::{SharedClock, SystemClock};
use loa::signing::PublicKey;
use loa::station::sync::{StationReport, SyncConfig, Syncer};

use crate::support::process::{Proc, central_init, command, loa, port_of, remote, stderr, stdout};

fn last_line(o: &Output) -> String {
    stdout(o).lines().last().unwrap_or_default().trim().to_string()
}

/// `loa central --config CONFIG` (its `listen` is `127.0.0.1:0`) and the URL it says it
/// listens on: the port the system picked.
fn start_server(config: &Path) -> (Proc, String) {
    let server = Proc::spawn(&["central", "--config", config.to_str().unwrap()]);
    let url = server.listening_url(Duration::from_secs(30));
    (server, url)
}

fn write_fixture(dir: &Path) -> PathBuf {
    std::fs::create_dir_all(dir.join("audio")).unwrap();
    std::fs::create_dir_all(dir.join("schedules")).unwrap();
    std::fs::write(dir.join("audio/sang.wav"), loa::testing::wav_bytes(2.0, 440.0, 0.2)).unwrap();
    std::fs::write(dir.join("audio/chieu.wav"), loa::testing::wav_bytes(1.5, 550.0, 0.2)).unwrap();
    let schedule = dir.join("schedules/provincial.toml");
    std::fs::write(
        &schedule,
        r#"layer = "provincial"
timezone = "Asia/Ho_Chi_Minh"

[[item]]
id = "ban-tin-sang"
title = "Bản tin thời sự buổi sáng"
audio = "../audio/sang.wav"
cron = "30 5 * * 1-6"
priority = "priority"

[[item]]
id = "ban-tin-chieu"
title = "Bản tin chiều"
audio = "../audio/chieu.wav"
cron = "0 17 * * 1-6"
"#,
    )
    .unwrap();
    schedule
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_loaded_schedule_reaches_two_stations_verified() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("central");
    let data_s = data.to_str().unwrap();

    let province = central_init(&data);
    let (public_key, admin) = (province.key.clone(), province.admin.clone());
    let again = loa(&["central", "init", "--data-dir", data_s]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("refusing to overwrite"), "{}", stderr(&again));

    let mut tokens = Vec::new();
    for id in ["tri-ton", "ba-chuc"] {
        tokens.push((id, province.add_station(id, id, "Tri Tôn")));
    }
    let out = loa(&["central", "token", "add", "--role", "district:Tri Tôn", "--data-dir", data_s]);
    assert!(out.status.success(), "{}", stderr(&out));
    let district = last_line(&out);

    let config = dir.path().join("central.toml");
    std::fs::write(&config, format!("listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n", data_s))
        .unwrap();
    let (_server, url) = start_server(&config);

    let schedule = write_fixture(&dir.path().join("work"));
    let schedule_s = schedule.to_str().unwrap();

    // A district token may not load a provincial schedule.
    let out =
        remote(&url, &district, &["schedule", "load", schedule_s, "--to", "district:Tri Tôn"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("district tokens may load only"), "{}", stderr(&out));

    // A schedule with an error is refused with file:line:column, before any upload.
    let bad = schedule.with_file_name("bad.toml");
    std::fs::write(&bad, "layer = \"provincial\"\n[[item]]\nid = \"x\"\ntitle = \"x\"\naudio = \"../audio/sang.wav\"\ncron = \"30 25 * * *\"\n").unwrap();
    let out = remote(&url, &admin, &["schedule", "load", bad.to_str().unwrap(), "--to", "all"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("bad.toml:6:"), "{}", stderr(&out));

    let out = remote(&url, &admin, &["schedule", "load", schedule_s, "--to", "all"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("loaded provincial.toml"), "{}", stdout(&out));
    assert!(stdout(&out).contains("tri-ton: manifest v1"), "{}", stdout(&out));

    // Already uploaded: `loa audio add` says so and still prints the sha256.
    let sang = schedule.parent().unwrap().join("../audio/sang.wav");
    let out = remote(&url, &admin, &["audio", "add", sang.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("already in central's library"));
    assert!(stdout(&out).contains(" LUFS") && !stdout(&out).contains("NaN"), "{}", stdout(&out));
    let sang_sha = stdout(&out).split_whitespace().next().unwrap().to_string();
    let jingle = dir.path().join("jingle.wav");
    std::fs::write(&jingle, loa::testing::wav_bytes(1.0, 880.0, 0.5)).unwrap();
    let out =
        remote(&url, &admin, &["audio", "add", jingle.to_str().unwrap(), "--title", "Nhạc hiệu"]);
    assert!(out.status.success(), "{}", stderr(&out));
    // Not a terminal: one progress line per file, no moving counter.
    let progress = format!("{}: uploading ", jingle.display());
    assert!(stderr(&out).starts_with(&progress), "upload progress on stderr: {}", stderr(&out));
    assert!(!stderr(&out).contains('\r'), "{:?}", stderr(&out));
    assert!(stdout(&out).contains("Nhạc hiệu  1.0 s"), "{}", stdout(&out));
    assert!(stdout(&out).contains("LUFS"), "{}", stdout(&out));
    let garbage = dir.path().join("notes.mp3");
    std::fs::write(&garbage, "không phải âm thanh").unwrap();
    let out = remote(&url, &admin, &["audio", "add", garbage.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("not a supported audio file"), "{}", stderr(&out));

    let key = PublicKey::from_hex(&public_key).unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let mut caches = Vec::new();
    for (id, token) in &tokens {
        let cache = tempfile::tempdir().unwrap();
        let config = SyncConfig::new(&url, token, id, key, cache.path().to_path_buf());
        let mut syncer = Syncer::new(config, clock.clone()).unwrap();
        let manifest = syncer.fetch_manifest(Duration::ZERO).await.unwrap().unwrap();
        assert_eq!(manifest.manifest.schedules[0].origin, "provincial.toml");
        assert_eq!(manifest.manifest.audio.len(), 2);
        let report = syncer.sync_audio().await.unwrap();
        assert_eq!(report.downloaded.len(), 2, "{report:?}");
        assert!(syncer.cache().contains(&sang_sha));
        let written = manifest.manifest.schedules[0].audio_sha256("../audio/sang.wav");
        assert_eq!(written, Some(sang_sha.as_str()));
        let status = StationReport {
            now_playing: None,
            sink_health: "ok".into(),
            disk_free_bytes: None,
            ..StationReport::default()
        };
        syncer.send_heartbeat(&status).await.unwrap();
        caches.push(cache);
    }

    let out = remote(&url, &admin, &["status"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let table = stdout(&out);
    for (id, _) in &tokens {
        let line = table.lines().find(|l| l.starts_with(id)).unwrap_or_else(|| panic!("{table}"));
        assert!(line.contains("ready") && line.contains("v1/v1"), "{table}");
    }

    // A station token is not an operator token.
    let out = remote(&url, &tokens[0].1, &["status"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("401"), "{}", stderr(&out));
}

#[test]
fn cli_without_central_or_token_says_what_to_do() {
    let out = command().args(["status"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("LOA_CENTRAL"), "{}", stderr(&out));
    let out = loa(&["central", "--config", "/nonexistent/central.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("cannot read /nonexistent/central.toml"), "{}", stderr(&out));
}

/// A port already taken is a clear error and exit 1 (not a panic, exit 101); port 0 picks
/// a free port, and the "listening on" line names it.
#[test]
fn central_on_a_port_in_use_says_so_and_exits_1() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("central");
    let data_s = data.to_str().unwrap();
    let init = loa(&["central", "init", "--data-dir", data_s]);
    assert!(init.status.success(), "{}", stderr(&init));

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = loa(&["central", "--data-dir", data_s, "--listen", &addr]);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains(&format!("address {addr} is already in use")), "{err}");
    assert!(err.contains("--listen"), "says what to do: {err}");
    assert!(!err.contains("panicked"), "{err}");
    assert_eq!(err.matches("os error").count(), 0, "the OS error is not repeated: {err}");

    let config = dir.path().join("central.toml");
    std::fs::write(&config, format!("listen = \"127.0.0.1:0\"\ndata_dir = {data_s:?}\n")).unwrap();
    let (_server, url) = start_server(&config);
    let port = port_of(&url).expect("a port");
    assert_ne!(port, 0, "{url}");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok(), "{url}");
}

/// `--format json` on `init` and `station add` says what the text says, as one object;
/// the text stays what people (and README) read.
#[test]
fn init_and_station_add_print_the_same_fields_as_text_and_as_json() {
    let dir = tempfile::tempdir().unwrap();
    let text_dir = dir.path().join("text");
    let json_dir = dir.path().join("json");
    let init = loa(&["central", "init", "--data-dir", text_dir.to_str().unwrap()]);
    assert!(init.status.success(), "{}", stderr(&init));
    let shown = stdout(&init);
    for prefix in [
        "data directory: ",
        "public key (pin it in every station config): ",
        "admin token (shown once, keep it safe): ",
        "no --host given: central serves plain HTTP",
    ] {
        assert!(shown.lines().any(|l| l.starts_with(prefix)), "{prefix:?} in:\n{shown}");
    }
    let json = json_dir.to_str().unwrap();
    let init = loa(&["central", "init", "--data-dir", json, "--format", "json"]);
    assert!(init.status.success(), "{}", stderr(&init));
    let made: loa::cli::central::Initialised = serde_json::from_slice(&init.stdout).unwrap();
    assert_eq!(made.data_dir, json_dir);
    assert_eq!(made.public_key.len(), 64, "{made:?}");
    assert!(made.admin_token.starts_with("loa_") && made.tls.is_none(), "{made:?}");

    let args =
        ["central", "station", "add", "tri-ton", "--name", "Tri Tôn", "--district", "Tri Tôn"];
    let out = loa(&[&args[..], &["--data-dir", text_dir.to_str().unwrap()]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<String> = stdout(&out).lines().map(String::from).collect();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0], "station tri-ton added", "{lines:?}");
    let code = lines[1].rsplit(": ").next().unwrap_or_default();
    assert!(lines[1].starts_with("enrolment code (once, within 24 h"), "{lines:?}");
    assert_eq!(code.len(), "CSMS-1EPQ-VQCT".len(), "{lines:?}");
    assert!(lines[2].starts_with("its token (shown once"), "{lines:?}");
    assert!(lines[3].starts_with("loa_"), "{lines:?}");
    let out = loa(&[&args[..], &["--data-dir", json, "--format", "json"]].concat());
    assert!(out.status.success(), "{}", stderr(&out));
    let added: loa::cli::central::StationAdded = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(added.station, "tri-ton");
    assert!(added.token.starts_with("loa_"), "{added:?}");
    assert_eq!(added.code.len(), code.len(), "{added:?}");
    assert_ne!(added.code, code, "each station add issues its own code");
}
