//! Confirmations ingested per second: real HTTP on loopback into a `loa central`
//! process of its own (this process only plays the stations), from several stations
//! posting batches of the size the station reporter sends. Each record's chain is
//! checked on the way in. Measured on both stores: SQLite (`synchronous=FULL`, one
//! transaction per batch) and PostgreSQL (a throwaway server from scripts/pg-test.sh,
//! or `LOA_TEST_DATABASE_URL`; the throwaway server runs with `fsync=off`, so its figure
//! is the store's work, not a disk's). Run with `cargo bench --bench ingest`;
//! `LOA_BENCH_STORE=sqlite|postgres` runs one.

use std::time::Instant;

use chrono::{TimeZone, Utc};
use loa::central;

#[path = "support/central_process.rs"]
mod central_process;
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
    let only = std::env::var("LOA_BENCH_STORE").unwrap_or_default();
    if only != "postgres" {
        runtime.block_on(run(None));
    }
    if only != "sqlite" {
        let database = loa::testing::database::TestDatabase::new();
        runtime.block_on(run(Some(database.url.clone())));
    }
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

async fn run(database_url: Option<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let data_dir = dir.path().join("central");
    central::init_with(&data_dir, database_url.as_deref(), None).expect("init");
    let store = central::open_store(&data_dir, database_url.as_deref(), None).expect("store");
    let mut work = Vec::new();
    for i in 0..STATIONS {
        let id = format!("xa-{i:02}");
        let station = Station { id: id.clone(), name: id.clone(), district: "Tri Tôn".into() };
        let token = central::add_station(store.as_ref(), &station).expect("station");
        // Encode up front: the figure is central's ingest, not the client's JSON.
        let bodies: Vec<Vec<u8>> = chain(&id, PER_STATION)
            .chunks(PLAYLOG_BATCH)
            .map(|c| serde_json::to_vec(&PlaylogBatch { records: c.to_vec() }).expect("json"))
            .collect();
        work.push((token, bodies));
    }
    let central = central_process::start(dir.path(), "central", &data_dir, database_url.as_deref());
    let base = central.url.clone();
    let which = if database_url.is_some() { "PostgreSQL" } else { "SQLite" };
    let url = format!("{base}/api/v1/station/playlog");
    let bytes: usize = work.iter().flat_map(|(_, b)| b.iter().map(Vec::len)).sum();
    println!(
        "ingest benchmark on {which}: {STATIONS} stations × {PER_STATION} records, batches of {PLAYLOG_BATCH}, {:.1} MB of JSON, central in its own process",
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
    let summary = store.playlog_summary("xa-00").expect("summary");
    assert_eq!((summary.records, summary.acked_through), (PER_STATION, PER_STATION));
    assert!(summary.issues.is_empty(), "{:?}", summary.issues);
}
