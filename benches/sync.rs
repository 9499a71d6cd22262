//! Station sync through a link that drops: bytes transferred / bytes needed, and time
//! taken, with and without a proxy that cuts every connection after a fixed number of
//! bytes. Run with `cargo bench --bench sync`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use loa::central::{self, CentralConfig};
use loa::clock::{SharedClock, SystemClock};
use loa::protocol::{LoadScheduleRequest, Target};
use loa::station::sync::{Backoff, SyncConfig, Syncer};
use loa::store::Station;
use loa::testing::{Faults, FaultyProxy, wav_bytes};

const FILES: usize = 6;
const SECONDS: f64 = 40.0;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("central");
    let init = central::init(&data_dir).expect("init");
    let clock: SharedClock = Arc::new(SystemClock);
    let state =
        central::open(CentralConfig { data_dir, ..CentralConfig::default() }, clock.clone())
            .expect("open");
    let station =
        Station { id: "tri-ton".into(), name: "Tri Tôn".into(), district: "Tri Tôn".into() };
    let token = central::add_station(state.store.as_ref(), &station).expect("station");
    let listener = loa::central::bind("127.0.0.1:0".parse().expect("address")).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(central::serve(listener, state.clone(), std::future::pending()));
    let url = format!("http://{addr}");
    let http = reqwest::Client::new();

    let mut audio = BTreeMap::new();
    let mut source = String::from("layer = \"provincial\"\n");
    let mut needed = 0u64;
    for i in 0..FILES {
        let bytes = wav_bytes(SECONDS, 200.0 + 50.0 * i as f64, 0.2);
        needed += bytes.len() as u64;
        let info: loa::protocol::AudioInfo = http
            .put(format!("{url}/api/v1/audio"))
            .bearer_auth(&init.admin_token)
            .body(bytes)
            .send()
            .await
            .expect("upload")
            .json()
            .await
            .expect("upload answer");
        audio.insert(format!("a{i}.wav"), info.sha256);
        source.push_str(&format!(
            "[[item]]\nid = \"i{i}\"\ntitle = \"t\"\naudio = \"a{i}.wav\"\ncron = \"{i} 6 * * *\"\n"
        ));
    }
    let load = LoadScheduleRequest { origin: "p.toml".into(), source, audio, to: Target::All };
    let response = http
        .post(format!("{url}/api/v1/schedules"))
        .bearer_auth(&init.admin_token)
        .json(&load)
        .send()
        .await
        .expect("load");
    assert!(response.status().is_success(), "load failed");

    println!("sync benchmark: {FILES} files, {needed} bytes needed");
    for (label, cut) in [
        ("clean link", None),
        ("cut every 256 KiB", Some(256 * 1024)),
        ("cut every 64 KiB", Some(64 * 1024)),
    ] {
        let faults = Faults {
            cut_after_bytes: cut.unwrap_or(u64::MAX),
            cuts: if cut.is_some() { u64::MAX } else { 0 },
            delay: Duration::ZERO,
        };
        let proxy = FaultyProxy::start(addr, faults).await.expect("proxy");
        let cache = tempfile::tempdir().expect("cache dir");
        let mut config = SyncConfig::new(
            &format!("http://{}", proxy.addr),
            &token,
            "tri-ton",
            state.key.public(),
            cache.path().to_path_buf(),
        );
        config.backoff = Backoff { base: Duration::from_millis(1), max: Duration::from_millis(10) };
        config.max_attempts = 1000;
        let mut syncer = Syncer::new(config, clock.clone()).expect("syncer");
        syncer.fetch_manifest(Duration::ZERO).await.expect("manifest");
        let before = proxy.downstream_bytes();
        let started = Instant::now();
        let report = syncer.sync_audio().await.expect("sync");
        let elapsed = started.elapsed();
        assert!(report.failed.is_empty(), "{:?}", report.failed);
        let transferred = proxy.downstream_bytes() - before;
        println!(
            "{label:>18}: {transferred} bytes transferred / {needed} needed = {:.4}, {} cuts, {:.2} s, {:.1} MB/s",
            transferred as f64 / needed as f64,
            proxy.cuts_done(),
            elapsed.as_secs_f64(),
            needed as f64 / 1e6 / elapsed.as_secs_f64()
        );
    }
}
