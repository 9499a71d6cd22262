//! Tampered audio at the station: a content-addressed file (a scheduled `sha256:` item or
//! a bulletin, both read from the cache) whose bytes changed in the
//! cache after it was verified (bit rot, a torn write, someone on the box) is never
//! aired; the item is recorded failed with the reason, the file is removed so the sync
//! fetches it again, and the next item still plays.

use crate::support::station::{Fixture, local};
use loa::station::StationCommand;
use loa::station::daemon::file_sha256;
use loa::station::ledger::Outcome;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cached_file_whose_bytes_changed_is_not_aired() {
    let mut fx = Fixture::new(local(9, 59, 50));
    let good = fx.tone("tot.wav", 1.0);
    let bad = fx.tone("hong.wav", 1.5);
    let cache = fx.config.data_dir.join("audio");
    std::fs::create_dir_all(&cache).expect("cache dir");
    let good_sha = file_sha256(&good).expect("sha");
    let bad_sha = file_sha256(&bad).expect("sha");
    assert_ne!(good_sha, bad_sha);
    std::fs::copy(&good, cache.join(&good_sha)).expect("cache good");
    // Same length, one byte flipped in the middle of the samples: still decodes, would
    // air as a click — exactly what must not go out unnoticed.
    let mut bytes = std::fs::read(&bad).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(cache.join(&bad_sha), &bytes).expect("cache tampered");

    fx.start();
    let text = format!(
        "layer = \"provincial\"\n\
         [[item]]\nid = \"hong\"\ntitle = \"Hỏng\"\naudio = \"sha256:{bad_sha}\"\nat = 2026-12-01T10:00:05\n\
         [[item]]\nid = \"tot\"\ntitle = \"Tốt\"\naudio = \"sha256:{good_sha}\"\nat = 2026-12-01T10:00:10\n"
    );
    let parsed = loa::schedule::parse(&text, "central", std::path::Path::new(""));
    let schedule = parsed.schedule.expect("valid schedule");
    assert!(fx.handle.as_ref().expect("handle").send(StationCommand::Central(vec![schedule])));
    fx.run_until(local(10, 0, 15)).await;
    let records = fx.wait_records(2).await;
    let got: Vec<_> = records.iter().map(|r| (r.entry.item_id.as_str(), r.entry.outcome)).collect();
    assert_eq!(got, vec![("hong", Outcome::Failed), ("tot", Outcome::Played)]);
    let reason = records[0].entry.reason.as_deref().unwrap_or_default();
    assert!(reason.starts_with("audio corrupt:"), "{reason}");
    assert!(reason.contains(&bad_sha) && reason.contains("removed"), "{reason}");
    assert_eq!(records[0].entry.started, None, "nothing of it was aired");
    assert!(!cache.join(&bad_sha).exists(), "the tampered file is gone, so the sync refetches it");
    assert!(cache.join(&good_sha).exists());
    fx.stop().await;
}

/// Bulletins play from the same content-addressed cache (the receiver verified the
/// download, but the file may change on disk before it plays): a file there whose bytes
/// no longer match its name is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulletin_from_a_tampered_cache_file_is_not_aired() {
    let mut fx = Fixture::new(local(9, 59, 50));
    let tone = fx.tone("bao.wav", 1.0);
    let cache = fx.config.data_dir.join("audio");
    std::fs::create_dir_all(&cache).expect("cache dir");
    let sha = file_sha256(&tone).expect("sha");
    let mut bytes = std::fs::read(&tone).expect("read");
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x55;
    std::fs::write(cache.join(&sha), &bytes).expect("cache tampered");
    fx.start();
    fx.run_until(local(9, 59, 52)).await;
    let sent = fx.handle.as_ref().expect("handle").send(StationCommand::Emergency {
        id: "bao-lu".into(),
        title: "Cảnh báo lũ".into(),
        audio: cache.join(&sha),
        repeat: 0,
        expires: None,
        gain_db: 0.0,
        interval: std::time::Duration::ZERO,
        tone: None,
    });
    assert!(sent);
    fx.run_until(local(9, 59, 56)).await;
    let records = fx.wait_records(1).await;
    assert_eq!(
        (records[0].entry.item_id.as_str(), records[0].entry.outcome),
        ("bao-lu", Outcome::Failed)
    );
    assert!(records[0].entry.reason.as_deref().unwrap_or_default().starts_with("audio corrupt:"));
    assert_eq!(records[0].entry.started, None);
    fx.stop().await;
}
