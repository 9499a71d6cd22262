//! CAP alert received → first sample at the station, with 100 simulated stations: a real
//! central on loopback (with an `auto_air` rule, so the alert airs without a person) and,
//! in the same process, one real bulletin receiver per station (its own HTTP client, SSE
//! stream, replay store and audio cache), as in `benches/bulletin.rs`.
//!
//! Each run POSTs one Extreme/Immediate CAP alert whose spoken text is 300 characters of
//! Vietnamese; central checks it, plans it, speaks it with espeak-ng (TTS included),
//! measures and stores the WAV, signs the bulletin and sends it. The clock starts when the
//! POST is sent and stops, per station, when the receiver has verified the signed bulletin
//! and the audio's sha256 and committed both: the moment it hands the bulletin to the
//! player, whose first sample follows (tens of ms on an idle station, measured in
//! `tests/bulletin/e2e.rs`). Prints p50/p99/max over every station of every run, the
//! POST's own answer time, and the machine's load before and after.
//!
//! `cargo bench --bench cap`; `LOA_BENCH_STATIONS=N` (default 100), `LOA_BENCH_RUNS=N`
//! (default 5).

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use loa::cap::config::AutoAirRule;
use loa::cap::{CapConfig, PlanPriority};
use loa::central::{self, CentralConfig};
use loa::clock::{SharedClock, SystemClock};
use loa::protocol::{CapAnswer, CapDecision};
use loa::station::bulletins::{Mode, Receiver, ReceiverConfig};
use loa::station::sync::{Backoff, SyncConfig};
use loa::store::{Role, Station, StationPlace};

/// The spoken text: exactly 300 characters (headline and description together).
fn text(run: usize) -> (String, String) {
    let headline = format!("Cảnh báo lũ khẩn cấp số {run}");
    let mut description = String::from(
        "Mực nước sông Hậu tại Châu Đốc đang lên nhanh, vượt mức báo động ba. Người dân vùng \
         trũng ven sông di chuyển ngay đến nơi cao, mang theo giấy tờ, thuốc men và nước uống. \
         Chính quyền xã tổ chức sơ tán người già, trẻ em. Không đi qua vùng nước chảy xiết. ",
    );
    // headline + "\n" + description = 300 characters.
    let want = 300 - headline.chars().count() - 1;
    while description.chars().count() < want {
        description.push_str("Theo dõi loa truyền thanh. ");
    }
    let mut description: String = description.chars().take(want).collect();
    if description.ends_with(' ') {
        description.pop();
        description.push('.');
    }
    (headline, description)
}

fn alert(run: usize) -> String {
    let now = Utc::now();
    let at = |t: chrono::DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S-00:00").to_string();
    let (headline, description) = text(run);
    format!(
        r#"<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>BENCH-{run}-{nonce}</identifier>
  <sender>canhbao@angiang.gov.vn</sender>
  <sent>{sent}</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <info>
    <language>vi-VN</language>
    <category>Met</category>
    <event>Lũ</event>
    <urgency>Immediate</urgency>
    <severity>Extreme</severity>
    <certainty>Observed</certainty>
    <expires>{expires}</expires>
    <headline>{headline}</headline>
    <description>{description}</description>
    <area><areaDesc>An Giang</areaDesc><circle>10.40,105.40 50</circle></area>
  </info>
</alert>"#,
        nonce = rand::random::<u32>(),
        sent = at(now),
        expires = at(now + chrono::Duration::hours(1)),
    )
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

/// Per station and run: POST sent → handed to the player; and each POST's answer time.
async fn run(stations: usize, runs: usize) -> (Vec<Duration>, Vec<Duration>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let station_disk = station_disk();
    let data = dir.path().join("central");
    central::init(&data).expect("init");
    let clock: SharedClock = Arc::new(SystemClock);
    let cap = CapConfig {
        tone: false,
        auto_air: vec![AutoAirRule {
            senders: vec!["canhbao@angiang.gov.vn".into()],
            priority: vec![PlanPriority::Emergency],
            trusted_signature: false,
        }],
        ..CapConfig::default()
    };
    let config = CentralConfig { data_dir: data, cap, ..CentralConfig::default() };
    let state = central::open(config, clock.clone()).expect("open");
    let cap_source =
        central::add_operator(state.store.as_ref(), &Role::CapSource, "bench").expect("token");
    let listener = loa::central::bind("127.0.0.1:0".parse().expect("address")).await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(central::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));

    let (tx, mut ready) = tokio::sync::mpsc::unbounded_channel();
    let (quit, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::new();
    for n in 0..stations {
        let id = format!("xa-{n:04}");
        let station = Station { id: id.clone(), name: id.clone(), district: "bench".into() };
        let token = central::add_station(state.store.as_ref(), &station).expect("station");
        // Spread over ~30 km around the alert's centre: every one inside its 50 km.
        let (dlat, dlon) = ((n % 10) as f64 * 0.03 - 0.15, (n / 10 % 10) as f64 * 0.03 - 0.15);
        let place = StationPlace {
            station_id: id.clone(),
            lat: Some(10.40 + dlat),
            lon: Some(105.40 + dlon),
            geocodes: vec![],
        };
        state.store.set_station_place(&place).expect("place");
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
            Arc::new(loa::testing::ChannelAirwaves(tx.clone())),
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

    let http = reqwest::Client::new();
    let mut handed = Vec::with_capacity(stations * runs);
    let mut answers = Vec::with_capacity(runs);
    for r in 0..runs {
        let body = alert(r);
        let sent = Utc::now();
        let started = Instant::now();
        let response = http
            .post(format!("{url}/api/v1/cap"))
            .bearer_auth(&cap_source)
            .body(body)
            .send()
            .await
            .expect("post");
        assert_eq!(response.status(), 201);
        let answer: CapAnswer = response.json().await.expect("answer");
        answers.push(started.elapsed());
        let outcome = &answer.outcomes[0];
        assert_eq!(outcome.decision, CapDecision::Aired, "{answer:?}");
        assert_eq!(outcome.stations, stations, "every station inside the area");
        let id = outcome.bulletin_id.clone().expect("bulletin");
        let mut got = 0;
        while got < stations {
            let r = tokio::time::timeout(Duration::from_secs(120), ready.recv())
                .await
                .expect("every station got the bulletin in time")
                .expect("channel open");
            assert_eq!(r.doc.id, id);
            let us = (r.verified_at - sent).num_microseconds().unwrap_or(0).max(0);
            handed.push(Duration::from_micros(us as u64));
            got += 1;
        }
    }
    let _ = quit.send(());
    for t in tasks {
        let _ = t.await;
    }
    let _ = stop.send(());
    let _ = server.await;
    handed.sort();
    answers.sort();
    (handed, answers)
}

/// As in `benches/bulletin.rs`: each simulated station's cache in memory, as a real
/// station has its own idle disk (`LOA_BENCH_STATION_DISK=1` puts them on this one).
fn station_disk() -> tempfile::TempDir {
    let on_disk = std::env::var("LOA_BENCH_STATION_DISK").is_ok_and(|v| v == "1");
    let shm = std::path::Path::new("/dev/shm");
    if !on_disk && shm.is_dir() {
        tempfile::tempdir_in(shm).expect("temp dir in /dev/shm")
    } else {
        tempfile::tempdir().expect("temp dir")
    }
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    assert_eq!(text(0).0.chars().count() + 1 + text(0).1.chars().count(), 300);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let env = |name: &str| std::env::var(name).ok().and_then(|n| n.parse::<usize>().ok());
    let bench = std::env::args().any(|a| a == "--bench");
    let (stations, runs) = if bench {
        (env("LOA_BENCH_STATIONS").unwrap_or(100), env("LOA_BENCH_RUNS").unwrap_or(5))
    } else {
        println!("(smoke run under cargo test: figures are not measurements)");
        (env("LOA_BENCH_STATIONS").unwrap_or(2), 1)
    };
    println!(
        "CAP alert POSTed → bulletin verified and handed to the player, {stations} stations, \
         300-character text spoken by espeak-ng at central, {runs} runs"
    );
    println!(
        "load average before: {} ({} cores)",
        load(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    let started = Instant::now();
    let (handed, answers) = runtime.block_on(run(stations, runs));
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "alert → handed to the player: p50 {:.1} ms  p99 {:.1} ms  max {:.1} ms  ({} samples)",
        ms(percentile(&handed, 0.50)),
        ms(percentile(&handed, 0.99)),
        handed.last().map_or(0.0, |d| ms(*d)),
        handed.len()
    );
    println!(
        "POST answered (check, speech, sign, send): p50 {:.1} ms  max {:.1} ms",
        ms(percentile(&answers, 0.50)),
        answers.last().map_or(0.0, |d| ms(*d))
    );
    println!("load average after: {}; whole run {:.1} s", load(), started.elapsed().as_secs_f64());
}
