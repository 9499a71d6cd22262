//! Sync over a link that drops: a proxy cuts connections mid-transfer and delays
//! chunks. All audio must still arrive verified, and resume must keep the bytes
//! transferred within 5% of the bytes needed.

use std::time::Duration;

use crate::support::central::Central;
use loa::protocol::Target;
use loa::testing::{Faults, FaultyProxy};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn all_audio_arrives_verified_through_cuts_with_little_waste() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let mut audio = Vec::new();
    for (i, seconds) in [12.0, 9.0, 15.0].into_iter().enumerate() {
        let info = central
            .upload_ok(loa::testing::wav_bytes(seconds, 300.0 + 100.0 * i as f64, 0.2), "x")
            .await;
        audio.push(info);
    }
    let source = format!(
        "layer = \"provincial\"\n{}",
        (0..3)
            .map(|i| format!(
                "[[item]]\nid = \"i{i}\"\ntitle = \"t\"\naudio = \"a{i}.wav\"\ncron = \"{} 6 * * *\"\n",
                i * 10
            ))
            .collect::<String>()
    );
    let map: Vec<(String, String)> =
        audio.iter().enumerate().map(|(i, a)| (format!("a{i}.wav"), a.sha256.clone())).collect();
    let map: Vec<(&str, &str)> = map.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let response = central.load(&central.admin, "p.toml", &source, &map, Target::All).await;
    assert_eq!(response.status(), 200);

    let proxy = FaultyProxy::start(
        central.addr,
        Faults { cut_after_bytes: 64 * 1024, cuts: 30, delay: Duration::from_millis(1) },
    )
    .await
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut syncer =
        central.syncer_via(&format!("http://{}", proxy.addr), "tri-ton", &token, cache.path());
    syncer.fetch_manifest(Duration::ZERO).await.unwrap().unwrap();
    let before = proxy.downstream_bytes();
    let mut passes = 0;
    loop {
        let report = syncer.sync_audio().await.unwrap();
        passes += 1;
        if syncer.readiness().unwrap().unwrap().missing_files == 0 {
            break;
        }
        assert!(passes < 10, "audio never completed: {report:?}");
    }
    let transferred = proxy.downstream_bytes() - before;
    let needed: u64 = audio.iter().map(|a| a.size).sum();
    let ratio = transferred as f64 / needed as f64;
    println!(
        "sync through faulty link: {transferred} bytes transferred / {needed} bytes needed = {ratio:.4} ({} cuts, {passes} passes)",
        proxy.cuts_done()
    );
    assert!(proxy.cuts_done() >= 10, "the proxy really cut connections");
    for a in &audio {
        assert!(syncer.cache().contains(&a.sha256));
        let bytes = std::fs::read(syncer.cache().audio_path(&a.sha256)).unwrap();
        assert_eq!(loa::cli::remote::sha256_bytes(&bytes), a.sha256);
    }
    assert!(ratio <= 1.05, "resume wasted too much: {ratio:.4}");
}
