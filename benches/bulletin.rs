//! Push-to-first-sample latency of an urgent bulletin with 1, 100 and 1,000 simulated
//! stations: a real central on loopback and, in the same process, one real bulletin
//! receiver per station (its own HTTP client, SSE stream, replay store and audio cache).
//! "First sample" is the moment a receiver has verified the signed bulletin, downloaded
//! the 240 KB audio and verified its sha256: what it would hand to the player.
//! Run with `cargo bench --bench bulletin`; prints p50, p99 and max per fleet size, at
//! two points: the audio's sha256 matched in memory, and the audio committed durably to
//! the cache and the id marked seen (fsyncs), when it is handed to the player. All the
//! simulated stations share one disk here; real ones each have their own.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loa::central::{self, CentralConfig};
use loa::clock::{SharedClock, SystemClock};
use loa::protocol::{BulletinPriority, PushBulletinRequest, PushBulletinResponse, Target};
use loa::station::bulletins::{Mode, Output, Receiver, ReceiverConfig};
use loa::store::Station;
use loa::sync::{Backoff, SyncConfig};

/// 7.5 s of 16 kHz mono 16-bit: 240,044 bytes.
const AUDIO_SECONDS: f64 = 7.5;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

async fn run(stations: usize) -> (Vec<Duration>, Vec<Duration>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("central");
    let init = central::init(&data).expect("init");
    let clock: SharedClock = Arc::new(SystemClock);
    let config = CentralConfig { data_dir: data, ..CentralConfig::default() };
    let state = central::open(config, clock.clone()).expect("open");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(central::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let audio = loa::testing::wav_bytes(AUDIO_SECONDS, 440.0, 0.3);
    let size = audio.len();
    let uploaded: loa::protocol::AudioInfo = http
        .put(format!("{url}/api/v1/audio?title=bao"))
        .bearer_auth(&init.admin_token)
        .body(audio)
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("upload answer");

    let (tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    let (quit, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::new();
    for n in 0..stations {
        let id = format!("xa-{n:04}");
        let station = Station { id: id.clone(), name: id.clone(), district: "bench".into() };
        let token = central::add_station(state.store.as_ref(), &station).expect("station");
        let cache = dir.path().join("stations").join(&id);
        let sync = SyncConfig::new(&url, &token, &id, state.key.public(), cache);
        let config = ReceiverConfig {
            sync,
            mode: Mode::Stream,
            backoff: Backoff { base: Duration::from_millis(100), max: Duration::from_secs(2) },
        };
        let receiver =
            Receiver::new(config, clock.clone(), Output::Channel(tx.clone())).expect("receiver");
        let mut quit = quit.subscribe();
        tasks.push(tokio::spawn(receiver.run(None, async move {
            let _ = quit.recv().await;
        })));
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    while state.bulletins.connected_stations() < stations {
        assert!(Instant::now() < deadline, "streams did not all connect");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }

    let request = PushBulletinRequest {
        title: Some("bench".into()),
        audio_sha256: Some(uploaded.sha256.clone()),
        text: None,
        voice: None,
        to: Target::All,
        priority: BulletinPriority::Emergency,
        repeat: 0,
        interval_secs: 0,
        expires_secs: 3600,
        tone: false,
    };
    let pushed: PushBulletinResponse = http
        .post(format!("{url}/api/v1/bulletins"))
        .bearer_auth(&init.admin_token)
        .json(&request)
        .send()
        .await
        .expect("push")
        .json()
        .await
        .expect("push answer");
    let mut latencies = Vec::with_capacity(stations);
    let mut checked = Vec::with_capacity(stations);
    while latencies.len() < stations {
        let got = tokio::time::timeout(Duration::from_secs(120), ready.recv())
            .await
            .expect("every station verified the bulletin in time")
            .expect("channel open");
        assert_eq!(got.doc.id, pushed.id);
        let ms = (got.verified_at - pushed.issued_at).num_microseconds().unwrap_or(0).max(0);
        latencies.push(Duration::from_micros(ms as u64));
        let us = (got.checked_at - pushed.issued_at).num_microseconds().unwrap_or(0).max(0);
        checked.push(Duration::from_micros(us as u64));
    }
    let _ = quit.send(());
    for t in tasks {
        let _ = t.await;
    }
    let _ = stop.send(());
    let _ = server.await;
    assert!(size > 239_000);
    latencies.sort();
    checked.sort();
    (checked, latencies)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this without it: then
    // one station as a smoke test, no figures worth quoting.
    let sizes: &[usize] = if std::env::args().any(|a| a == "--bench") {
        &[1, 100, 1000]
    } else {
        println!("(smoke run under cargo test: figures are not measurements)");
        &[1]
    };
    println!("bulletin push → audio verified at the station (240 KB), real HTTP/SSE on loopback");
    for &n in sizes {
        let started = Instant::now();
        let (checked, handed) = runtime.block_on(run(n));
        let line = |what: &str, l: &[Duration]| {
            println!(
                "{n:>5} stations, {what}: p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
                percentile(l, 0.50).as_secs_f64() * 1000.0,
                percentile(l, 0.99).as_secs_f64() * 1000.0,
                l.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            );
        };
        line("sha256 verified      ", &checked);
        line("cached + seen, handed", &handed);
        println!("      (run {:.1} s)", started.elapsed().as_secs_f64());
    }
}
