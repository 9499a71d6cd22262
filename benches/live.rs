//! Live voice fan-out. Run with `cargo bench --bench live` (`LOA_BENCH_STATIONS=N` one
//! size); it prints its figures.
//!
//! A real `loa central` process; N station listeners in this process, each with its own
//! station token on its own connection (`GET /api/v1/station/live/{id}`), each passing
//! every record through the station's own `Verifier` and decoding the Opus packets as a
//! station does; an uploader that encodes a tone and sends 100 ms chunks at real-time
//! pace, noting when each chunk left. The figure is, per chunk and listener, the time
//! from the chunk leaving the uploader to its audio decoded at the listener. A station's
//! mouth-to-speaker delay is that plus its stated buffer (`relay_buffer_ms`, 2 s), which
//! `tests/live/voice.rs` measures end to end at one real station (1.95 s).

#[path = "../tests/support/mod.rs"]
mod support;

use support::process::{Proc, add_station, central_init};

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use loa::audio::AudioFormat;
use loa::audio::opus_codec::{Decoder, Encoder};
use loa::protocol::live::{
    FRAME_SAMPLES, FRAMES_PER_CHUNK, Reader, StartLiveRequest, StartLiveResponse, genesis, pack,
};
use loa::protocol::{BulletinEvents, BulletinPriority, Target};
use loa::signing::PublicKey;
use loa::station::live::verify::{Verdict, Verifier};

/// Seconds of voice sent.
const SECONDS: u64 = 10;

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

async fn run(stations: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("central");
    let province = central_init(&data);
    let key = PublicKey::from_hex(&province.key).expect("the province key");
    let tokens: Vec<String> = (0..stations)
        .map(|i| add_station(&data, &format!("s{i:04}"), "s", "d", &[]).token)
        .collect();
    let config = dir.path().join("central.toml");
    std::fs::write(
        &config,
        format!("listen = \"127.0.0.1:0\"\ndata_dir = {:?}\n", data.to_str().unwrap()),
    )
    .expect("central.toml");
    let central = Proc::spawn(&["central", "--config", config.to_str().unwrap()]);
    let url = central.listening_url(Duration::from_secs(60));
    let http = reqwest::Client::new();

    let started: StartLiveResponse = http
        .post(format!("{url}{}", loa::protocol::api::operator::LIVE))
        .bearer_auth(&province.admin)
        .json(&StartLiveRequest {
            title: "bench".into(),
            to: Target::All,
            priority: BulletinPriority::Emergency,
        })
        .send()
        .await
        .expect("start")
        .json()
        .await
        .expect("start answer");
    let events: BulletinEvents = http
        .get(format!("{url}{}?after=0", loa::protocol::api::station::EVENTS_POLL))
        .bearer_auth(&tokens[0])
        .send()
        .await
        .expect("poll")
        .json()
        .await
        .expect("events");
    let start = events.events.last().expect("the start event").envelope.clone();
    let genesis = genesis(&start);

    let sent: Arc<Mutex<Vec<Option<Instant>>>> =
        Arc::new(Mutex::new(vec![None; SECONDS as usize * 10 + 2]));
    let mut listeners = Vec::new();
    for token in &tokens {
        let (http, url, token, id, sent) =
            (http.clone(), url.clone(), token.clone(), started.id.clone(), sent.clone());
        listeners.push(tokio::spawn(async move {
            let answer = http
                .get(format!("{url}/api/v1/station/live/{id}"))
                .bearer_auth(&token)
                .send()
                .await
                .expect("listen");
            assert!(answer.status().is_success(), "{}", answer.status());
            let mut verifier = Verifier::new(key, &id, genesis);
            let mut decoder =
                Decoder::new(AudioFormat { rate: 48_000, channels: 2 }).expect("decoder");
            let mut reader = Reader::default();
            let mut body = answer.bytes_stream();
            let mut delays = Vec::new();
            let mut seq = 0u64;
            while let Some(Ok(bytes)) = body.next().await {
                reader.push(&bytes);
                while let Ok(Some(record)) = reader.next_record() {
                    match verifier.on_record(record).expect("verified") {
                        Verdict::Play(packets) => {
                            seq += 1;
                            for p in packets {
                                decoder.decode(&p).expect("decoded");
                            }
                            let at = sent.lock().unwrap()[seq as usize];
                            if let Some(at) = at {
                                delays.push(at.elapsed().as_secs_f64() * 1000.0);
                            }
                        }
                        Verdict::Ended { .. } => return delays,
                        Verdict::Verified { .. } => {}
                    }
                }
            }
            delays
        }));
    }
    // Let every listener connect.
    tokio::time::sleep(Duration::from_millis(500 + stations as u64 * 5)).await;

    let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(4);
    let upload = {
        let http = http.clone();
        let url = format!("{url}{}", started.upload);
        let admin = province.admin.clone();
        tokio::spawn(async move {
            let body =
                reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
                    rx.recv().await.map(|item| (item, rx))
                }));
            http.put(url).bearer_auth(admin).body(body).send().await.expect("upload").status()
        })
    };
    let mut encoder = Encoder::new().expect("encoder");
    let chunk = FRAME_SAMPLES * FRAMES_PER_CHUNK;
    let tone: Vec<f32> = (0..chunk)
        .map(|i| 0.3 * (i as f32 * 600.0 * std::f32::consts::TAU / 48_000.0).sin())
        .collect();
    let t0 = Instant::now();
    for seq in 1..=SECONDS * 10 {
        let due = t0 + Duration::from_millis((seq - 1) * 100);
        tokio::time::sleep_until(due.into()).await;
        let payload = pack(&encoder.push(&tone).expect("encode"));
        let mut framed = (payload.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&payload);
        sent.lock().unwrap()[seq as usize] = Some(Instant::now());
        tx.send(Ok(framed)).await.expect("send");
    }
    drop(tx);
    assert!(upload.await.expect("upload task").is_success());
    let mut all = Vec::new();
    for l in listeners {
        all.extend(l.await.expect("listener"));
    }
    all.sort_by(f64::total_cmp);
    println!(
        "{stations} stations: {} chunk arrivals, chunk sent → verified and decoded at the station: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; mouth-to-speaker = that + relay_buffer_ms (2,000 ms)",
        all.len(),
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        all.last().copied().unwrap_or(f64::NAN)
    );
    assert_eq!(all.len(), stations * SECONDS as usize * 10, "every chunk reached every station");
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<usize> =
        match std::env::var("LOA_BENCH_STATIONS").ok().and_then(|v| v.parse().ok()) {
            Some(n) => vec![n],
            // `cargo test --all-targets` runs this without --bench: a smoke run.
            None if !std::env::args().any(|a| a == "--bench") => vec![2],
            None => vec![1, 100],
        };
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    for n in sizes {
        runtime.block_on(run(n));
    }
}
