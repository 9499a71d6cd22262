//! HTTPS: central serves TLS (rustls) when a certificate is configured; the sync client
//! and the CLI trust only the configured CA.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use loa::central::{self, CentralConfig};
use loa::clock::{SharedClock, SystemClock};
use loa::protocol::{AudioInfo, LoadScheduleRequest, Target};
use loa::station::sync::{SyncConfig, SyncError, Syncer};
use loa::store::Station;

use crate::support::process::{Remote, central_init, tls_fixture as fixture};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn manifest_and_audio_travel_over_https_with_a_pinned_ca() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("central");
    let init = central::init(&data_dir).unwrap();
    let clock: SharedClock = Arc::new(SystemClock);
    let state =
        central::open(CentralConfig { data_dir, ..CentralConfig::default() }, clock.clone())
            .unwrap();
    let station =
        Station { id: "tri-ton".into(), name: "Tri Tôn".into(), district: "Tri Tôn".into() };
    let token = central::add_station(state.store.as_ref(), &station).unwrap();
    let acceptor = central::tls::acceptor(&fixture("cert.pem"), &fixture("key.pem")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(central::serve_tls(listener, acceptor, state.clone(), std::future::pending()));
    let url = format!("https://localhost:{}", addr.port());
    let ca = std::fs::read(fixture("ca.pem")).unwrap();

    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .build()
        .unwrap();
    let info: AudioInfo = http
        .put(format!("{url}/api/v1/audio"))
        .bearer_auth(&init.admin_token)
        .body(loa::testing::wav_bytes(1.0, 440.0, 0.3))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let load = LoadScheduleRequest {
        origin: "p.toml".into(),
        source: "layer = \"provincial\"\n[[item]]\nid = \"a\"\ntitle = \"a\"\naudio = \"a.wav\"\ncron = \"30 5 * * *\"\n".into(),
        audio: [("a.wav".to_string(), info.sha256.clone())].into(),
        to: Target::All,
    };
    let response = http
        .post(format!("{url}/api/v1/schedules"))
        .bearer_auth(&init.admin_token)
        .json(&load)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);

    let cache = tempfile::tempdir().unwrap();
    let mut config =
        SyncConfig::new(&url, &token, "tri-ton", state.key.public(), cache.path().to_path_buf());
    config.ca_cert_pem = Some(ca);
    let mut syncer = Syncer::new(config.clone(), clock.clone()).unwrap();
    let manifest = syncer.fetch_manifest(Duration::ZERO).await.unwrap().unwrap();
    assert_eq!(manifest.manifest.audio[0].sha256, info.sha256);
    let report = syncer.sync_audio().await.unwrap();
    assert_eq!(report.downloaded, std::slice::from_ref(&info.sha256));

    // Without the CA the station refuses central's certificate.
    config.ca_cert_pem = None;
    let other = tempfile::tempdir().unwrap();
    config.cache_dir = other.path().to_path_buf();
    let mut untrusting = Syncer::new(config, clock).unwrap();
    let err = untrusting.fetch_manifest(Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, SyncError::Http { .. }), "{err}");
    // ... and says what to fix rather than reading like a dropped link.
    assert!(err.certificate_refused(), "{err}");
    assert!(err.to_string().contains("not signed by the trusted CA: set ca_cert"), "{err}");

    // Plain HTTP to the TLS port gets nothing.
    let plain = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{}/api/v1/status", addr.port()))
        .send()
        .await;
    assert!(plain.is_err() || !plain.unwrap().status().is_success());
}

#[test]
fn the_real_binary_serves_https_and_the_cli_needs_the_ca() {
    let dir = tempfile::tempdir().unwrap();
    let province = central_init(&dir.path().join("central"));
    let admin = province.admin.clone();
    let central = province.serve(&format!(
        "tls_cert = {:?}\ntls_key = {:?}\n",
        fixture("cert.pem").to_str().unwrap(),
        fixture("key.pem").to_str().unwrap()
    ));
    let url = central.url.clone();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");
    let url = url.replace("127.0.0.1", "localhost");
    let status = |ca: Option<&Path>| {
        let cli = Remote::new(&url, &admin);
        match ca {
            Some(ca) => cli.trusting(ca).run(&["status"]),
            None => cli.run(&["status"]),
        }
    };
    let without = status(None);
    let wrong = status(Some(&fixture("other-ca.pem")));
    let with = status(Some(&fixture("ca.pem")));
    drop(central);
    assert_eq!(without.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&without.stderr).contains("--ca-cert"));
    // Another CA: the refusal says which flag to fix, not the station's config key.
    assert_eq!(wrong.status.code(), Some(1));
    let wrong_err = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        wrong_err.contains("not signed by the trusted CA: set --ca-cert (or LOA_CA_CERT"),
        "{wrong_err}"
    );
    assert!(with.status.success(), "{}", String::from_utf8_lossy(&with.stderr));
    assert!(String::from_utf8_lossy(&with.stdout).starts_with("STATION"));
}
