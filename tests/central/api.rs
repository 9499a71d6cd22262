//! Central's HTTP API with a real sync client over loopback: the happy path, and every
//! bad-input and attack case refused with a clear error.

use std::time::Duration;

use crate::support::central::{Central, LOCAL, PROVINCIAL, t0};
use crate::support::wait;
use base64::Engine;
use loa::clock::Clock;
use loa::protocol::{DocumentKind, FleetStatus, SignedEnvelope, Target};
use loa::signing::{ProvinceKey, SigningError};
use loa::station::sync::{StationReport, SyncError};
use loa::store::Role;

fn client() -> reqwest::Client {
    reqwest::Client::new()
}

#[tokio::test]
async fn schedule_and_audio_reach_the_station_verified_earliest_needed_first() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let (a, b) = central.provincial().await;
    let expected = (-16.0 - a.loudness_lufs) as f32;
    assert!((a.gain_db - expected).abs() < 0.01, "gain {} towards -16 LUFS", a.gain_db);

    let cache = tempfile::tempdir().unwrap();
    let mut syncer = central.syncer("tri-ton", &token, cache.path());
    let manifest = syncer.fetch_manifest(Duration::ZERO).await.unwrap().expect("a manifest");
    assert_eq!(manifest.manifest.station_id, "tri-ton");
    assert_eq!(manifest.manifest.schedules[0].source, PROVINCIAL);
    // 07:00 local now: 17:00 today (b) comes before 05:30 tomorrow (a).
    let order: Vec<_> = loa::station::sync::plan(&manifest.manifest, &Default::default())
        .into_iter()
        .map(|d| d.sha256)
        .collect();
    assert_eq!(order, [b.sha256.clone(), a.sha256.clone()]);

    let report = syncer.sync_audio().await.unwrap();
    assert_eq!(report.downloaded, order);
    assert!(report.failed.is_empty());
    for info in [&a, &b] {
        let bytes = std::fs::read(syncer.cache().audio_path(&info.sha256)).unwrap();
        assert_eq!(bytes.len() as u64, info.size);
    }
    let ready = syncer.readiness().unwrap().unwrap();
    assert_eq!(ready.missing_files, 0);
    assert_eq!(ready.ready_until, manifest.manifest.valid_until);

    // Same version again: nothing new.
    assert!(syncer.fetch_manifest(Duration::ZERO).await.unwrap().is_none());

    let report = StationReport {
        now_playing: Some("ban-tin-sang".into()),
        sink_health: "ok".into(),
        disk_free_bytes: Some(1 << 30),
        ..StationReport::default()
    };
    let offset = syncer.send_heartbeat(&report).await.unwrap();
    // Both sides read the same manual clock.
    assert_eq!(offset, 0);
    let fleet: FleetStatus = central.get_json("/api/v1/status", &central.admin).await;
    let station = &fleet.stations[0];
    let heartbeat = station.heartbeat.as_ref().unwrap();
    assert_eq!(heartbeat.manifest_version, Some(manifest.manifest.version));
    assert_eq!(heartbeat.missing_bytes, 0);
    assert_eq!(heartbeat.now_playing.as_deref(), Some("ban-tin-sang"));
}

#[tokio::test]
async fn long_poll_waits_for_a_new_version_and_etag_answers_not_modified() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let cache = tempfile::tempdir().unwrap();
    let mut syncer = central.syncer("tri-ton", &token, cache.path());
    let first = syncer.fetch_manifest(Duration::ZERO).await.unwrap().unwrap();
    assert_eq!(first.manifest.version, 1);
    assert!(first.manifest.schedules.is_empty());
    assert!(syncer.fetch_manifest(Duration::ZERO).await.unwrap().is_none());

    let waiting = tokio::spawn(async move {
        let got = syncer.fetch_manifest(Duration::from_secs(30)).await;
        (syncer, got)
    });
    tokio::task::yield_now().await;
    central.provincial().await;
    let (_syncer, got) = waiting.await.unwrap();
    let got = got.unwrap().expect("the long-poll returns the new version");
    assert_eq!(got.manifest.version, 2);
    assert_eq!(got.manifest.schedules.len(), 1);
}

#[tokio::test]
async fn wrong_station_token_is_refused() {
    let central = Central::start().await;
    central.add_station("tri-ton", "Tri Tôn");
    let cache = tempfile::tempdir().unwrap();
    let mut syncer = central.syncer("tri-ton", "loa_not-a-token", cache.path());
    let err = syncer.fetch_manifest(Duration::ZERO).await.unwrap_err();
    assert!(matches!(err, SyncError::Unauthorized), "{err}");
    assert!(err.to_string().contains("token"));
    // An operator token is not a station token either.
    let response = client()
        .get(format!("{}/api/v1/station/manifest", central.url))
        .bearer_auth(&central.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 401);
    let response = client().get(format!("{}/api/v1/status", central.url)).send().await.unwrap();
    assert_eq!(response.status(), 401);
}

#[tokio::test]
async fn district_tokens_are_scoped_to_local_schedules_in_their_district() {
    let central = Central::start().await;
    central.add_station("tri-ton", "Tri Tôn");
    central.add_station("chau-doc", "Châu Đốc");
    let a = central.upload_ok(loa::testing::wav_bytes(1.0, 440.0, 0.3), "a").await;
    let district = central.add_operator(Role::District("Tri Tôn".into()));
    let audio = [("audio/a.wav", a.sha256.as_str())];

    let other = Target::Stations(vec!["chau-doc".into()]);
    let response = central.load(&district, "xa.toml", LOCAL, &audio, other).await;
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 403, "{text}");
    assert!(text.contains("may assign only to district"), "{text}");

    let other = Target::District("Châu Đốc".into());
    let response = central.load(&district, "xa.toml", LOCAL, &audio, other).await;
    assert_eq!(response.status(), 403);

    let response = central.load(&district, "xa.toml", LOCAL, &audio, Target::All).await;
    assert_eq!(response.status(), 403);

    let own = Target::District("Tri Tôn".into());
    let response = central.load(&district, "p.toml", PROVINCIAL, &audio, own.clone()).await;
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("only layer = \\\"local\\\""));

    let response = central.load(&district, "xa.toml", LOCAL, &audio, own).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert!(central.state.store.schedules_for("chau-doc").unwrap().is_empty());
    assert_eq!(central.state.store.schedules_for("tri-ton").unwrap().len(), 1);

    // Naming a local file like the provincial one does not replace the provincial one.
    central.provincial().await;
    let own = Target::District("Tri Tôn".into());
    let response = central.load(&district, "provincial.toml", LOCAL, &audio, own).await;
    assert_eq!(response.status(), 200);
    let layers: Vec<_> = central
        .state
        .store
        .schedules_for("tri-ton")
        .unwrap()
        .into_iter()
        .map(|s| (s.layer, s.origin))
        .collect();
    use loa::schedule::Layer;
    assert!(layers.contains(&(Layer::Provincial, "provincial.toml".into())), "{layers:?}");
    assert!(layers.contains(&(Layer::Local, "provincial.toml".into())), "{layers:?}");

    let viewer = central.add_operator(Role::Viewer);
    let response = central.load(&viewer, "xa.toml", LOCAL, &audio, Target::All).await;
    assert_eq!(response.status(), 403);
    let response = central.upload(&viewer, loa::testing::wav_bytes(1.0, 440.0, 0.3), "x").await;
    assert_eq!(response.status(), 403);
}

#[tokio::test]
async fn schedule_errors_come_back_with_file_line_column() {
    let central = Central::start().await;
    central.add_station("tri-ton", "Tri Tôn");
    let bad = "layer = \"provincial\"\n\n[[item]]\nid = \"x\"\ntitle = \"x\"\naudio = \"sha256:00\"\ncron = \"99 5 * * *\"\n";
    let response = central.load(&central.admin, "bad.toml", bad, &[], Target::All).await;
    assert_eq!(response.status(), 422);
    let body: loa::protocol::ErrorBody = response.json().await.unwrap();
    assert!(!body.diagnostics.is_empty());
    assert!(body.diagnostics.iter().all(|d| d.starts_with("bad.toml:")), "{:?}", body.diagnostics);
    assert!(
        body.diagnostics.iter().any(|d| d.starts_with("bad.toml:7:")),
        "{:?}",
        body.diagnostics
    );
    assert!(central.state.store.schedules_for("tri-ton").unwrap().is_empty());

    // Audio that was never uploaded.
    let response = central
        .load(
            &central.admin,
            "p.toml",
            PROVINCIAL,
            &[("audio/a.wav", &"a".repeat(64)), ("audio/b.wav", &"b".repeat(64))],
            Target::All,
        )
        .await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("loa audio add"));
}

#[tokio::test]
async fn path_traversal_in_names_is_refused() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    for path in ["..%2F..%2Fcentral.sqlite", "..", "%2E%2E%2Fprovince.key"] {
        let response = client()
            .get(format!("{}/api/v1/audio/{path}", central.url))
            .bearer_auth(&token)
            .send()
            .await
            .unwrap();
        assert!(
            response.status() == 400 || response.status() == 404,
            "{path}: {}",
            response.status()
        );
    }
    let response = central.load(&central.admin, "../../etc/x.toml", LOCAL, &[], Target::All).await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("plain file name"));
    let response = central
        .load(&central.admin, "x.toml", LOCAL, &[("audio/a.wav", "../../etc/passwd")], Target::All)
        .await;
    assert_eq!(response.status(), 400);
}

#[tokio::test]
async fn oversized_and_undecodable_uploads_are_refused() {
    let central = Central::start_with(|c| c.upload_limit_mb = 1).await;
    let response = central.upload(&central.admin, vec![0u8; 1024 * 1024 + 1], "big").await;
    assert_eq!(response.status(), 413);
    assert!(response.text().await.unwrap().contains("upload_limit_mb"));
    let response = central.upload(&central.admin, b"plain text, not audio".to_vec(), "x").await;
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("not a supported audio file"));
    let leftovers = std::fs::read_dir(central.state.tmp_dir()).unwrap().count();
    assert_eq!(leftovers, 0, "refused uploads leave no temporary files");
    assert_eq!(std::fs::read_dir(central.state.audio_dir()).unwrap().count(), 0);
}

#[tokio::test]
async fn malformed_json_gets_a_clear_error() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let response = client()
        .post(format!("{}/api/v1/schedules", central.url))
        .bearer_auth(&central.admin)
        .body("{\"origin\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("not valid JSON"));
    let response = client()
        .post(format!("{}/api/v1/station/heartbeat", central.url))
        .bearer_auth(&token)
        .body("[1,2]")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    assert!(response.text().await.unwrap().contains("heartbeat is not valid JSON"));
}

#[tokio::test]
async fn blob_whose_bytes_do_not_match_its_hash_is_discarded() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let (a, b) = central.provincial().await;
    // Someone swaps the bytes of `a` at central (same length).
    let path = central.state.audio_dir().join(&a.sha256);
    let mut bytes = std::fs::read(&path).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, bytes).unwrap();

    let cache = tempfile::tempdir().unwrap();
    let mut syncer = central.syncer("tri-ton", &token, cache.path());
    syncer.fetch_manifest(Duration::ZERO).await.unwrap().unwrap();
    let report = syncer.sync_audio().await.unwrap();
    assert_eq!(report.downloaded, std::slice::from_ref(&b.sha256));
    assert_eq!(report.failed.len(), 1);
    assert!(report.failed[0].1.contains("different bytes"), "{}", report.failed[0].1);
    assert!(!syncer.cache().contains(&a.sha256));
    assert!(!syncer.cache().audio_path(&a.sha256).exists());
    let ready = syncer.readiness().unwrap().unwrap();
    assert_eq!(ready.missing_files, 1);
}

#[tokio::test]
async fn truncated_download_is_not_cached_and_resumes() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let (a, _b) = central.provincial().await;
    let proxy = loa::testing::FaultyProxy::start(
        central.addr,
        loa::testing::Faults { cut_after_bytes: 20_000, cuts: 1_000, delay: Duration::ZERO },
    )
    .await
    .unwrap();
    let cache = tempfile::tempdir().unwrap();
    let mut syncer = central.syncer("tri-ton", &token, cache.path());
    syncer.fetch_manifest(Duration::ZERO).await.unwrap().unwrap();
    let direct =
        central.syncer_via(&format!("http://{}", proxy.addr), "tri-ton", &token, cache.path());
    let download = loa::station::sync::Download {
        sha256: a.sha256.clone(),
        size: a.size,
        earliest_needed: None,
    };
    let mut received = 0;
    let err = direct.download(&download, &mut received).await.unwrap_err();
    assert!(matches!(err, SyncError::Http { .. } | SyncError::Truncated { .. }), "{err}");
    assert!(!direct.cache().contains(&a.sha256), "a truncated file must never enter the cache");
    assert!(received > 0 && received < a.size);
    // The next attempt, direct to central, resumes from what arrived.
    let mut more = 0;
    syncer.download(&download, &mut more).await.unwrap();
    assert_eq!(received + more, a.size, "resume fetched only the missing bytes");
    assert!(syncer.cache().contains(&a.sha256));
}

fn envelope_json(envelope: &SignedEnvelope) -> serde_json::Value {
    let bytes = base64::engine::general_purpose::STANDARD.decode(&envelope.payload).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

#[tokio::test]
async fn tampered_foreign_zero_replayed_and_expired_manifests_are_refused() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let cache = tempfile::tempdir().unwrap();
    let mut syncer = central.syncer("tri-ton", &token, cache.path());
    let v1 = syncer.fetch_manifest(Duration::ZERO).await.unwrap().unwrap();
    central.provincial().await;
    let v2 = syncer.fetch_manifest(Duration::ZERO).await.unwrap().unwrap();
    assert_eq!(v2.manifest.version, 2);

    // Replay of the older version: rollback.
    let err = syncer.accept(&v1.envelope).unwrap_err();
    assert!(
        matches!(err, SyncError::Refused(SigningError::Rollback { accepted: 2, found: 1 })),
        "{err}"
    );

    // Tampered: version bumped in the payload, signature kept.
    let mut json = envelope_json(&v2.envelope);
    json["version"] = serde_json::json!(99);
    let mut tampered = v2.envelope.clone();
    tampered.payload =
        base64::engine::general_purpose::STANDARD.encode(serde_json::to_vec(&json).unwrap());
    let err = syncer.accept(&tampered).unwrap_err();
    assert!(matches!(err, SyncError::Refused(SigningError::BadSignature)), "{err}");

    // Signed by another key.
    let foreign = ProvinceKey::generate().sign(DocumentKind::Manifest, &json).unwrap();
    let err = syncer.accept(&foreign).unwrap_err();
    assert!(matches!(err, SyncError::Refused(SigningError::BadSignature)), "{err}");

    // All-zero signature.
    let mut zero = v2.envelope.clone();
    zero.signature = "00".repeat(64);
    let err = syncer.accept(&zero).unwrap_err();
    assert!(matches!(err, SyncError::Refused(SigningError::ZeroSignature)), "{err}");

    // Expired: a station whose clock is past valid_until refuses it.
    central.clock.advance(Duration::from_secs(8 * 24 * 3600));
    let cache2 = tempfile::tempdir().unwrap();
    let mut late = central.syncer("tri-ton", &token, cache2.path());
    let err = late.accept(&v2.envelope).unwrap_err();
    assert!(matches!(err, SyncError::Refused(SigningError::Expired { .. })), "{err}");
    // Central re-issues at half-life, so a polling station still gets a valid one.
    let fresh = late.fetch_manifest(Duration::ZERO).await.unwrap().unwrap();
    assert!(fresh.manifest.version > 2);
    assert!(fresh.manifest.valid_until > central.clock.now());

    // Everything refused left the accepted manifest in place.
    assert_eq!(syncer.current().unwrap().manifest.version, 2);
}

#[tokio::test]
async fn station_keeps_its_manifest_while_central_is_down_and_catches_up_after() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let (a, b) = central.provincial().await;
    let cache = tempfile::tempdir().unwrap();
    let mut syncer = central.syncer("tri-ton", &token, cache.path());
    syncer.fetch_manifest(Duration::ZERO).await.unwrap().unwrap();
    syncer.sync_audio().await.unwrap();
    let url = central.url.clone();

    let parts = central.stop().await;
    let err = syncer.fetch_manifest(Duration::ZERO).await.unwrap_err();
    assert!(err.to_string().contains("cannot reach central"), "{err}");
    assert_eq!(syncer.current().unwrap().manifest.version, 1);
    assert!(syncer.cache().contains(&a.sha256) && syncer.cache().contains(&b.sha256));

    // A restarted station process still has its last good manifest, from disk.
    drop(syncer);
    let central = Central::restart(parts).await;
    let mut syncer = central.syncer("tri-ton", &token, cache.path());
    assert_eq!(syncer.current().unwrap().manifest.version, 1);
    assert_ne!(central.url, url);

    // Central changed while the station was away: it catches up.
    let c = central.upload_ok(loa::testing::wav_bytes(1.0, 880.0, 0.3), "c").await;
    let response = central
        .load(&central.admin, "local.toml", LOCAL, &[("audio/a.wav", &c.sha256)], Target::All)
        .await;
    assert_eq!(response.status(), 200);
    let v2 = syncer.fetch_manifest(Duration::ZERO).await.unwrap().unwrap();
    assert_eq!(v2.manifest.version, 2);
    assert_eq!(v2.manifest.schedules.len(), 2);
    let report = syncer.sync_audio().await.unwrap();
    assert_eq!(report.downloaded, std::slice::from_ref(&c.sha256));
    assert_eq!(t0(), central.clock.now());
}

#[tokio::test]
async fn run_hands_over_each_new_manifest_and_reports_readiness() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let cache = tempfile::tempdir().unwrap();
    let syncer = central.syncer("tri-ton", &token, cache.path());
    let (versions, mut received) = tokio::sync::mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(syncer.run(
        Duration::ZERO,
        move |m| {
            let _ = versions.send(m.manifest.version);
        },
        || StationReport {
            now_playing: None,
            sink_health: "ok".into(),
            disk_free_bytes: None,
            ..StationReport::default()
        },
        async {
            let _ = stopped.await;
        },
    ));
    assert_eq!(received.recv().await, Some(1));
    let (a, b) = central.provincial().await;
    assert_eq!(received.recv().await, Some(2));
    // Wait (bounded) for the heartbeat that reports the new version fully cached.
    let reported = wait::until_async(
        "a heartbeat reporting version 2 fully cached",
        Duration::from_secs(20),
        || {
            let beats = central.state.store.heartbeats().unwrap();
            let fresh = beats
                .into_iter()
                .map(|b| b.heartbeat)
                .next()
                .filter(|h| h.manifest_version == Some(2) && h.missing_bytes == 0);
            std::future::ready(fresh)
        },
    )
    .await;
    assert_eq!(reported.sink_health, "ok");
    let _ = stop.send(());
    task.await.unwrap();
    let cache = loa::station::sync::Cache::open(cache.path()).unwrap();
    assert!(cache.contains(&a.sha256) && cache.contains(&b.sha256));
}

#[tokio::test]
async fn a_blob_longer_than_the_manifest_says_is_refused_and_not_kept() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let (a, _b) = central.provincial().await;
    let cache = tempfile::tempdir().unwrap();
    let syncer = central.syncer("tri-ton", &token, cache.path());
    let lying = loa::station::sync::Download {
        sha256: a.sha256.clone(),
        size: a.size - 10,
        earliest_needed: None,
    };
    let mut received = 0;
    let err = syncer.download(&lying, &mut received).await.unwrap_err();
    assert!(matches!(err, SyncError::Oversize { .. }), "{err}");
    assert!(!syncer.cache().contains(&a.sha256));
    let bad_name = loa::station::sync::Download {
        sha256: "../../etc/passwd".into(),
        size: 1,
        earliest_needed: None,
    };
    let err = syncer.download(&bad_name, &mut received).await.unwrap_err();
    assert!(matches!(err, SyncError::BadName(_)), "{err}");
}
