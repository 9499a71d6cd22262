//! Enrolling a station with a short code, end to end with real processes: `loa central`
//! over HTTPS (its own CA from `init --host`), `loa central station add` printing the
//! code, `loa station enroll` writing the config, and the enrolled `loa station` heard by
//! central. Then what must be refused: the same code again, an expired code, another
//! central that does not know the code, a rogue server that answers in central's place
//! without knowing it, and an address that keeps guessing (429 past the limit).

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use crate::support::process::{LOA, Proc as Daemon, add_station, central_init_with, command, text};
use crate::support::wait;
use loa::protocol::FleetStatus;

/// `loa central init --host localhost`: (public key, admin token).
fn init(data: &Path) -> (String, String) {
    let province = central_init_with(data, &["--host", "localhost"]);
    (province.key, province.admin)
}

fn serve(data: &Path) -> (Daemon, String) {
    let central = Daemon::start(
        command().args(["central", "--listen", "127.0.0.1:0", "--data-dir"]).arg(data),
    );
    let url = central.listening_url(Duration::from_secs(60)).replace("127.0.0.1", "localhost");
    (central, url)
}

/// `loa central station add ID`: (the code, the token).
fn add(data: &Path, id: &str) -> (String, String) {
    let added = add_station(data, id, id, "An Phú", &[]);
    (added.code, added.token)
}

fn enroll(url: &str, code: &str, config: &Path, data: &Path, force: bool) -> Output {
    let mut args = vec![
        "station".to_string(),
        "enroll".into(),
        "--central".into(),
        url.into(),
        "--code".into(),
        code.into(),
        "--config".into(),
        config.display().to_string(),
        "--data-dir".into(),
        data.display().to_string(),
        "--no-start".into(),
    ];
    if force {
        args.push("--force".into());
    }
    Command::new(LOA).args(&args).env("HOME", "/nonexistent").output().expect("run loa")
}

#[test]
fn a_station_enrols_with_its_code_once_and_is_heard_by_central() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a_data = dir.path().join("central-a");
    let (key, admin) = init(&a_data);
    let (_central, url) = serve(&a_data);
    let (code, old_token) = add(&a_data, "xa-an-binh");
    assert_eq!(code.len(), 14, "{code}");

    let etc = dir.path().join("etc");
    let config = etc.join("station.toml");
    let station_data = dir.path().join("station-data");
    let out = enroll(&url, &code, &config, &station_data, false);
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    assert!(text(&out.stdout).contains("enrolled as station xa-an-binh"), "{}", text(&out.stdout));

    // The config: 0640, the province key central printed, central's own CA beside it.
    let mode = std::fs::metadata(&config).expect("config").permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
    let written = std::fs::read_to_string(&config).expect("config");
    let parsed: toml::Table = written.parse().expect("toml");
    assert_eq!(parsed["station_id"].as_str(), Some("xa-an-binh"));
    assert_eq!(parsed["province_key"].as_str(), Some(key.as_str()));
    assert_eq!(parsed["central_url"].as_str(), Some(url.as_str()));
    let token = parsed["token"].as_str().expect("token").to_string();
    assert_ne!(token, old_token, "enrolment issues a new token");
    assert_eq!(
        std::fs::read(etc.join("central-ca.pem")).expect("ca"),
        std::fs::read(a_data.join("tls/ca.pem")).expect("central's ca")
    );

    // The same code again: used.
    let again = enroll(&url, &code, &dir.path().join("again.toml"), &station_data, false);
    assert!(!again.status.success());
    assert!(text(&again.stderr).contains("no such enrolment code"), "{}", text(&again.stderr));
    // An existing config is kept unless --force.
    let (code2, _) = add(&a_data, "xa-hai");
    let kept = enroll(&url, &code2, &config, &station_data, false);
    assert!(text(&kept.stderr).contains("exists already: pass --force"), "{}", text(&kept.stderr));

    // The enrolled station runs with what was written (sink switched to the clocked one:
    // no sound card here) and central hears it with its new token.
    std::fs::write(
        &config,
        written.replace("sink = \"default\"", "sink = \"clocked\"\n").replace(
            "local_schedules = \"schedules\"",
            "local_schedules = \"schedules\"\nheartbeat_secs = 1",
        ),
    )
    .expect("config");
    std::fs::create_dir_all(etc.join("schedules")).expect("schedules dir");
    let _station = Daemon::start(command().args(["station", "--config"]).arg(&config));
    let status = |out: Output| -> Option<FleetStatus> { serde_json::from_slice(&out.stdout).ok() };
    wait::until("a heartbeat from the enrolled station", Duration::from_secs(60), || {
        let out = Command::new(LOA)
            .args(["status", "--format", "json", "--central", &url, "--token", &admin, "--ca-cert"])
            .arg(a_data.join("tls/ca.pem"))
            .env("HOME", "/nonexistent")
            .output()
            .expect("status");
        status(out)?.stations.into_iter().find(|s| s.id == "xa-an-binh" && s.heartbeat.is_some())
    });
}

#[test]
fn an_expired_code_another_central_and_a_rogue_server_are_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let a_data = dir.path().join("central-a");
    init(&a_data);
    let (_a, a_url) = serve(&a_data);
    let station_data = dir.path().join("station-data");

    // Expired: a code issued 25 h ago (through the library, as `station add` would).
    add(&a_data, "xa-cu");
    let store = loa::store::SqliteStore::open(&a_data.join("central.sqlite")).expect("store");
    let old = loa::central::enrol::issue_code(
        &store,
        "xa-cu",
        chrono::Utc::now() - chrono::Duration::hours(25),
    )
    .expect("code");
    let out = enroll(&a_url, &old, &dir.path().join("old.toml"), &station_data, false);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("or it expired"), "{}", text(&out.stderr));
    assert!(!dir.path().join("old.toml").exists());

    // Another central (its own CA and key) does not know A's code.
    let b_data = dir.path().join("central-b");
    init(&b_data);
    let (_b, b_url) = serve(&b_data);
    let (code, _) = add(&a_data, "xa-moi");
    let out = enroll(&b_url, &code, &dir.path().join("b.toml"), &station_data, false);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("no such enrolment code"), "{}", text(&out.stderr));
    assert!(!dir.path().join("b.toml").exists());

    // A rogue server answers the offer itself (its own CA and key, a made-up proof): the
    // station refuses it, and the code still works at the real central afterwards.
    let rogue = Rogue::start(&b_data, false);
    let out = enroll(&rogue.url, &code, &dir.path().join("rogue.toml"), &station_data, false);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("is not the central that issued this code"),
        "{}",
        text(&out.stderr)
    );
    assert!(!dir.path().join("rogue.toml").exists());
    assert_eq!(rogue.claims(), 0, "the rogue never saw a claim");
    // One that answers more than the station reads (64 KiB + 1) is refused too.
    let huge = Rogue::start(&b_data, true);
    let out = enroll(&huge.url, &code, &dir.path().join("huge.toml"), &station_data, false);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("an answer over 65536 bytes"), "{}", text(&out.stderr));
    let out = enroll(&a_url, &code, &dir.path().join("ok.toml"), &station_data, false);
    assert!(out.status.success(), "{}", text(&out.stderr));

    // Guessing, at a third central nobody has failed at yet: 10 failures a minute from
    // one address, then 429. And a body one byte past the 1 KiB limit is refused (413).
    let c_data = dir.path().join("central-c");
    init(&c_data);
    let (_c, c_url) = serve(&c_data);
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let (statuses, big) = runtime.block_on(async {
        let client =
            reqwest::Client::builder().danger_accept_invalid_certs(true).build().expect("client");
        let mut statuses = Vec::new();
        for i in 0..11u8 {
            let lookup = format!("{:064x}", u128::from(i) + 1);
            let response = client
                .post(format!("{c_url}/api/v1/enrol/offer"))
                .json(&serde_json::json!({ "lookup": lookup }))
                .send()
                .await
                .expect("offer");
            statuses.push(response.status().as_u16());
        }
        let body = format!("{{\"lookup\": \"{}\"}}", "a".repeat(1024 - 14 + 1));
        assert_eq!(body.len(), 1025);
        let big = client
            .post(format!("{b_url}/api/v1/enrol/offer"))
            .body(body)
            .send()
            .await
            .expect("offer")
            .status()
            .as_u16();
        (statuses, big)
    });
    assert_eq!(statuses[..10], [404; 10]);
    assert_eq!(statuses[10], 429, "{statuses:?}");
    assert_eq!(big, 413);
}

/// A TLS server with central B's certificate that answers every enrolment offer with a
/// forged one (`huge`: one byte over what a station reads), and counts claims.
struct Rogue {
    url: String,
    claims: Arc<std::sync::atomic::AtomicUsize>,
    _runtime: tokio::runtime::Runtime,
}

impl Rogue {
    fn start(data: &Path, huge: bool) -> Self {
        let runtime = tokio::runtime::Runtime::new().expect("runtime");
        let acceptor = loa::central::tls::acceptor(
            &data.join("tls/central.pem"),
            &data.join("tls/central.key"),
        )
        .expect("acceptor");
        let listener =
            runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let ca = std::fs::read_to_string(data.join("tls/ca.pem")).expect("ca");
        let claims = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counted = claims.clone();
        runtime.spawn(async move {
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let acceptor = acceptor.clone();
                let ca = ca.clone();
                let counted = counted.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut buf = vec![0u8; 8192];
                    let n = tls.read(&mut buf).await.unwrap_or(0);
                    let request = String::from_utf8_lossy(&buf[..n]).to_string();
                    if request.contains("/enrol/claim") {
                        counted.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                    }
                    let mut body = serde_json::json!({
                        "station_id": "xa-moi",
                        "province_key": "ab".repeat(32),
                        "ca_cert": ca,
                        "proof": "00".repeat(32),
                    })
                    .to_string();
                    if huge {
                        let pad = 64 * 1024 + 1 - body.len();
                        body.push_str(&" ".repeat(pad));
                    }
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self { url: format!("https://localhost:{port}"), claims, _runtime: runtime }
    }

    fn claims(&self) -> usize {
        self.claims.load(std::sync::atomic::Ordering::SeqCst)
    }
}
