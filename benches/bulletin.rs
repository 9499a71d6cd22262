//! Push-to-first-sample latency of an urgent bulletin with 1, 100 and 1,000 simulated
//! stations: a real central on loopback and, in the same process, one real bulletin
//! receiver per station (its own HTTP client, SSE stream, replay store and audio cache).
//! "First sample" is the moment a receiver has verified the signed bulletin, downloaded
//! the 240 KB audio and verified its sha256: what it would hand to the player.
//! Run with `cargo bench --bench bulletin`; prints p50, p99 and max per fleet size, at
//! two points: the audio's sha256 matched in memory, and the audio committed durably to
//! the cache and the id marked seen (fsyncs), when it is handed to the player. All the
//! simulated stations share one disk here; real ones each have their own.
//! `LOA_BENCH_STATIONS=N` runs one fleet size only; `LOA_PERF_CTL` is for profiling
//! (see [`profile`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use loa::central::{self, CentralConfig};
use loa::clock::{SharedClock, SystemClock};
use loa::station::bulletins::{Mode, Receiver, ReceiverConfig};
use loa::station::sync::{Backoff, SyncConfig};
use loa::store::Station;

/// 7.5 s of 16 kHz mono 16-bit: 240,044 bytes.
const AUDIO_SECONDS: f64 = 7.5;

#[path = "support/push.rs"]
mod push;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

/// Per station, from the push's `issued_at`: signed bulletin received, audio sha256
/// verified, audio cached and handed over; each sorted.
async fn run(stations: usize) -> ([Vec<Duration>; 3], Duration) {
    let dir = tempfile::tempdir().expect("temp dir");
    let station_disk = station_disk();
    let data = dir.path().join("central");
    let init = central::init(&data).expect("init");
    let clock: SharedClock = Arc::new(SystemClock);
    let config = CentralConfig { data_dir: data, ..CentralConfig::default() };
    let state = central::open(config, clock.clone()).expect("open");
    let listener = loa::central::bind("127.0.0.1:0".parse().expect("address")).await.expect("bind");
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
        let cache = station_disk.path().join(&id);
        let sync = SyncConfig::new(&url, &token, &id, state.key.public(), cache);
        let config = ReceiverConfig {
            sync,
            mode: Mode::Stream,
            backoff: Backoff { base: Duration::from_millis(100), max: Duration::from_secs(2) },
        };
        let receiver = Receiver::new(
            config,
            clock.clone(),
            std::sync::Arc::new(loa::testing::ChannelAirwaves(tx.clone())),
        )
        .expect("receiver");
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

    profile("enable");
    let cpu_before = cpu_time();
    let pushed = push::emergency_to_all(&http, &url, &init.admin_token, &uploaded.sha256).await;
    let since_push = |at: chrono::DateTime<chrono::Utc>| {
        let us = (at - pushed.issued_at).num_microseconds().unwrap_or(0).max(0);
        Duration::from_micros(us as u64)
    };
    let mut received = Vec::with_capacity(stations);
    let mut checked = Vec::with_capacity(stations);
    let mut handed = Vec::with_capacity(stations);
    while handed.len() < stations {
        let got = tokio::time::timeout(Duration::from_secs(120), ready.recv())
            .await
            .expect("every station verified the bulletin in time")
            .expect("channel open");
        assert_eq!(got.doc.id, pushed.id);
        received.push(since_push(got.received_at));
        checked.push(since_push(got.checked_at));
        handed.push(since_push(got.verified_at));
    }
    let cpu = cpu_time().saturating_sub(cpu_before);
    profile("disable");
    let _ = quit.send(());
    for t in tasks {
        let _ = t.await;
    }
    let _ = stop.send(());
    let _ = server.await;
    assert!(size > 239_000);
    for l in [&mut received, &mut checked, &mut handed] {
        l.sort();
    }
    ([received, checked, handed], cpu)
}

/// CPU time this process has used (all threads: central and every simulated station).
fn cpu_time() -> Duration {
    // SAFETY: getrusage only writes the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) };
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(usage.ru_utime) + tv(usage.ru_stime)
}

/// Where the simulated stations keep their caches and replay stores. Each real station
/// has its own disk, idle but for its own writes; a thousand stations fsyncing on this
/// machine's one disk would measure that disk's queue, not a station's path. So they live
/// in memory (`/dev/shm`) unless `LOA_BENCH_STATION_DISK=1`, which puts them on the disk
/// with central to show that cost. Central's data is always on disk.
fn station_disk() -> tempfile::TempDir {
    let on_disk = std::env::var("LOA_BENCH_STATION_DISK").is_ok_and(|v| v == "1");
    let shm = std::path::Path::new("/dev/shm");
    if !on_disk && shm.is_dir() {
        tempfile::tempdir_in(shm).expect("temp dir in /dev/shm")
    } else {
        tempfile::tempdir().expect("temp dir")
    }
}

/// With `LOA_PERF_CTL=FIFO` (perf's `--control fifo:FIFO --delay=-1`), the profiler
/// records only from the push to the last station's hand-over, not the fleet's set-up.
fn profile(command: &str) {
    if let Ok(fifo) = std::env::var("LOA_PERF_CTL") {
        let _ = std::fs::write(fifo, format!("{command}\n"));
    }
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
    let only: Option<usize> = std::env::var("LOA_BENCH_STATIONS").ok().and_then(|n| n.parse().ok());
    let sizes: &[usize] = if let Some(n) = only.as_ref() {
        std::slice::from_ref(n)
    } else if std::env::args().any(|a| a == "--bench") {
        &[1, 100, 1000]
    } else {
        println!("(smoke run under cargo test: figures are not measurements)");
        &[1]
    };
    println!("bulletin push → audio verified at the station (240 KB), real HTTP/SSE on loopback");
    for &n in sizes {
        let started = Instant::now();
        let ([received, checked, handed], cpu) = runtime.block_on(run(n));
        let line = |what: &str, l: &[Duration]| {
            println!(
                "{n:>5} stations, {what}: p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
                percentile(l, 0.50).as_secs_f64() * 1000.0,
                percentile(l, 0.99).as_secs_f64() * 1000.0,
                l.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
            );
        };
        line("bulletin received    ", &received);
        line("sha256 verified      ", &checked);
        line("cached + seen, handed", &handed);
        println!(
            "      CPU from push to the last hand-over: {:.2} s ({:.2} ms per station); whole run {:.1} s",
            cpu.as_secs_f64(),
            cpu.as_secs_f64() * 1000.0 / n as f64,
            started.elapsed().as_secs_f64()
        );
    }
}
