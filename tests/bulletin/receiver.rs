//! The station's bulletin receiver against an in-process central (real HTTP on
//! loopback, real signatures, a manual clock): a station that was away gets a bulletin
//! that has not expired and never one that has; replays are refused, also after a
//! restart; the live stream delivers and resumes after the last event id; `test`
//! bulletins end as `test-ok`; `--text` is rendered at central.

use std::time::Duration;

use loa::protocol::{
    BulletinEvents, BulletinInfo, BulletinPriority, DeliveryState, PushBulletinRequest,
    PushBulletinResponse, Target,
};
use loa::station::bulletins::{Mode, Ready, Receiver, ReceiverConfig};
use loa::station::sync::{Backoff, SyncConfig};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

use crate::support::central::Central;
use crate::support::wait;

fn request(sha: &str, to: Target, expires_secs: u64) -> PushBulletinRequest {
    PushBulletinRequest {
        title: Some("Cảnh báo bão".into()),
        audio_sha256: Some(sha.into()),
        text: None,
        voice: None,
        to,
        priority: BulletinPriority::Emergency,
        repeat: 0,
        interval_secs: 0,
        expires_secs,
        tone: false,
    }
}

async fn push(central: &Central, request: &PushBulletinRequest) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/v1/bulletins", central.url))
        .bearer_auth(&central.admin)
        .json(request)
        .send()
        .await
        .unwrap()
}

async fn push_ok(central: &Central, request: &PushBulletinRequest) -> PushBulletinResponse {
    let response = push(central, request).await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

async fn show(central: &Central, id: &str) -> BulletinInfo {
    central.get_json(&format!("/api/v1/bulletins/{id}"), &central.admin).await
}

fn receiver(
    central: &Central,
    station: &str,
    token: &str,
    dir: &std::path::Path,
    mode: Mode,
) -> (Receiver, UnboundedReceiver<Ready>) {
    let sync = SyncConfig::new(&central.url, token, station, central.public_key(), dir.into());
    let config = ReceiverConfig {
        sync,
        mode,
        backoff: Backoff { base: Duration::from_millis(20), max: Duration::from_millis(200) },
    };
    let (tx, rx) = unbounded_channel();
    (
        Receiver::new(
            config,
            central.clock.clone(),
            std::sync::Arc::new(loa::testing::ChannelAirwaves(tx)),
        )
        .unwrap(),
        rx,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_away_station_gets_an_unexpired_bulletin_never_an_expired_one_and_no_replay() {
    let central = Central::start().await;
    let token_a = central.add_station("tri-ton", "Tri Tôn");
    let token_b = central.add_station("ba-chuc", "Tri Tôn");
    let audio = central.upload_ok(loa::testing::wav_bytes(1.0, 660.0, 0.3), "bao").await;
    let pushed = push_ok(&central, &request(&audio.sha256, Target::All, 60)).await;

    // Station a was away during the push: on reconnecting it gets the bulletin, with its
    // audio verified in the cache.
    let dir_a = tempfile::tempdir().unwrap();
    let (mut a, mut ready_a) = receiver(&central, "tri-ton", &token_a, dir_a.path(), Mode::Poll);
    a.poll(0).await.unwrap();
    let ready = ready_a.try_recv().expect("the bulletin was handed over");
    assert_eq!(ready.doc.id, pushed.id);
    assert_eq!(loa::station::daemon::file_sha256(&ready.audio).unwrap(), audio.sha256);

    // The same event again, or after a restart of the receiver: refused as a replay.
    let raw: BulletinEvents =
        central.get_json("/api/v1/station/events/poll?after=0", &token_a).await;
    assert_eq!(raw.events.len(), 1);
    a.handle(raw.events[0].clone()).await;
    assert!(ready_a.try_recv().is_err(), "a replay is refused");
    drop(a);
    let (mut a, mut ready_a) = receiver(&central, "tri-ton", &token_a, dir_a.path(), Mode::Poll);
    a.handle(raw.events[0].clone()).await;
    assert!(ready_a.try_recv().is_err(), "a replay is refused after a restart");
    a.poll(0).await.unwrap();
    assert!(ready_a.try_recv().is_err(), "the cursor survived the restart");

    // Station b comes back after the expiry: central no longer sends it, and the signed
    // event replayed by hand is refused by the station itself.
    central.clock.advance(Duration::from_secs(120));
    let dir_b = tempfile::tempdir().unwrap();
    let (mut b, mut ready_b) = receiver(&central, "ba-chuc", &token_b, dir_b.path(), Mode::Poll);
    b.poll(0).await.unwrap();
    assert!(ready_b.try_recv().is_err(), "an expired bulletin never plays");
    b.handle(raw.events[0].clone()).await;
    assert!(ready_b.try_recv().is_err(), "an expired bulletin never plays");

    // Central shows what each station reported (reports are posted in the background).
    let (central, id) = (&central, &pushed.id);
    let b = wait::until_async(
        "both stations' reports at central",
        Duration::from_secs(10),
        || async move {
            let info = show(central, id).await;
            let a = info.stations.iter().find(|s| s.station_id == "tri-ton").unwrap().clone();
            let b = info.stations.iter().find(|s| s.station_id == "ba-chuc").unwrap().clone();
            if a.state == Some(DeliveryState::Verified) && b.state == Some(DeliveryState::Failed) {
                Ok(b)
            } else {
                Err(format!("states: {a:?} {b:?}"))
            }
        },
    )
    .await;
    assert!(b.reason.as_deref().unwrap_or("").contains("expired"), "{b:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stream_delivers_live_resumes_after_the_last_id_and_confirms_tests() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let other = central.add_station("co-to", "Tri Tôn");
    let audio = central.upload_ok(loa::testing::wav_bytes(1.0, 660.0, 0.3), "bao").await;
    let dir = tempfile::tempdir().unwrap();
    let (rx_task, mut ready) = receiver(&central, "tri-ton", &token, dir.path(), Mode::Stream);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(rx_task.run(None, async {
        let _ = stopped.await;
    }));

    // A test bulletin: delivered, verified, downloaded, confirmed test-ok.
    let mut test = request(&audio.sha256, Target::Stations(vec!["tri-ton".into()]), 600);
    test.priority = BulletinPriority::Test;
    let first = push_ok(&central, &test).await;
    let (c, id) = (&central, &first.id);
    wait::until_async("test-ok at central", Duration::from_secs(10), || async move {
        show(c, id).await.stations[0].state == Some(DeliveryState::TestOk)
    })
    .await;

    // Another bulletin on the live stream.
    let second = push_ok(&central, &request(&audio.sha256, Target::All, 600)).await;
    let got = tokio::time::timeout(Duration::from_secs(20), ready.recv()).await.unwrap().unwrap();
    assert_eq!(got.doc.id, second.id);
    let _ = stop.send(());
    task.await.unwrap();

    // A raw client resuming after event 1 gets event 2 first, with its id.
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/station/events", central.url))
        .bearer_auth(&token)
        .header("Last-Event-ID", "1")
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert!(
        response.headers()[reqwest::header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream")
    );
    let mut body = response.bytes_stream();
    let mut seen = String::new();
    while !seen.contains("\n\n") {
        use futures_util::StreamExt;
        let chunk = tokio::time::timeout(Duration::from_secs(10), body.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        seen.push_str(&String::from_utf8_lossy(&chunk));
    }
    assert!(seen.contains("id: 2\n") || seen.contains("id:2\n"), "{seen}");
    assert!(seen.contains("\"seq\":2"), "{seen}");
    assert!(!seen.contains("\"seq\":1"), "event 1 is not sent again: {seen}");

    // A station that never connected is "not reached"; a bad token is refused.
    let info = show(&central, &second.id).await;
    let co_to = info.stations.iter().find(|s| s.station_id == "co-to").unwrap();
    assert_eq!((co_to.state, co_to.connected, co_to.last_seen), (None, false, None));
    let refused = reqwest::Client::new()
        .get(format!("{}/api/v1/station/events", central.url))
        .bearer_auth("loa_nope")
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 401);
    assert!(!other.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_cancel_and_text_to_speech_at_central() {
    let central = Central::start().await;
    central.add_station("tri-ton", "Tri Tôn");
    central.add_station("tinh-bien", "Tịnh Biên");
    let audio = central.upload_ok(loa::testing::wav_bytes(1.0, 660.0, 0.3), "bao").await;
    let district = central.add_operator(loa::store::Role::District("Tri Tôn".into()));
    let viewer = central.add_operator(loa::store::Role::Viewer);
    let client = reqwest::Client::new();
    let as_role = |token: &str, to: Target| {
        client
            .post(format!("{}/api/v1/bulletins", central.url))
            .bearer_auth(token.to_string())
            .json(&request(&audio.sha256, to, 600))
    };
    let r = as_role(&district, Target::All).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = as_role(&district, Target::Stations(vec!["tinh-bien".into()])).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = as_role(&viewer, Target::All).send().await.unwrap();
    assert_eq!(r.status(), 403);
    let r = as_role(&district, Target::District("Tri Tôn".into())).send().await.unwrap();
    assert_eq!(r.status(), 200);
    let own: PushBulletinResponse = r.json().await.unwrap();
    assert_eq!(own.targets, vec!["tri-ton".to_string()]);

    // A province-wide bulletin cannot be cancelled by a district; an admin can, once.
    let all = push_ok(&central, &request(&audio.sha256, Target::All, 600)).await;
    let cancel = |token: &str, id: &str| {
        client
            .post(format!("{}/api/v1/bulletins/{id}/cancel", central.url))
            .bearer_auth(token.to_string())
    };
    assert_eq!(cancel(&district, &all.id).send().await.unwrap().status(), 403);
    assert_eq!(cancel(&central.admin, &all.id).send().await.unwrap().status(), 200);
    assert_eq!(cancel(&central.admin, &all.id).send().await.unwrap().status(), 400);
    assert!(show(&central, &all.id).await.cancelled_at.is_some());

    // --text: espeak-ng renders Vietnamese at central (or the error says how to install).
    let mut spoken = request(&audio.sha256, Target::All, 600);
    spoken.audio_sha256 = None;
    spoken.text = Some("Cảnh báo lũ trên sông Hậu".into());
    let r = push(&central, &spoken).await;
    if r.status() == 200 {
        let pushed: PushBulletinResponse = r.json().await.unwrap();
        let info = central.state.store.audio(&pushed.audio_sha256).unwrap().unwrap();
        assert!(info.duration_ms > 500, "{info:?}");
    } else {
        let text = r.text().await.unwrap();
        assert!(text.contains("apt-get install espeak-ng"), "{text}");
    }
    // Neither or both of audio and text: refused with a clear message.
    spoken.text = None;
    let r = push(&central, &spoken).await;
    assert_eq!(r.status(), 400);
    assert!(r.text().await.unwrap().contains("--audio FILE or --text TEXT"));
}

/// A link that keeps dropping mid-download must delay a warning, not lose it: the
/// receiver retries the bulletin's audio until it arrives (here: eight cut connections in
/// a row, more than any fixed number of quick tries would cover) and then hands it over.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulletin_whose_audio_download_keeps_failing_is_retried_until_it_arrives() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let audio = central.upload_ok(loa::testing::wav_bytes(1.0, 660.0, 0.3), "bao").await;
    let pushed = push_ok(&central, &request(&audio.sha256, Target::All, 600)).await;
    let events: BulletinEvents =
        central.get_json("/api/v1/station/events/poll?after=0", &token).await;
    assert_eq!(events.events.len(), 1);

    // The audio (32 KB) only goes through a proxy that cuts its first eight connections
    // after 300 bytes, so each early download ends short.
    let faults = loa::testing::Faults { cut_after_bytes: 300, cuts: 8, delay: Duration::ZERO };
    let proxy = loa::testing::FaultyProxy::start(central.addr, faults).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("http://{}", proxy.addr);
    let sync = SyncConfig::new(&url, &token, "tri-ton", central.public_key(), dir.path().into());
    let config = ReceiverConfig {
        sync,
        mode: Mode::Poll,
        backoff: Backoff { base: Duration::from_millis(10), max: Duration::from_millis(50) },
    };
    let (tx, mut ready) = unbounded_channel();
    let mut receiver = Receiver::new(
        config,
        central.clock.clone(),
        std::sync::Arc::new(loa::testing::ChannelAirwaves(tx)),
    )
    .unwrap();

    // The retries run in a task of their own (the stream goes on meanwhile).
    receiver.handle(events.events[0].clone()).await;
    let handed = tokio::time::timeout(Duration::from_secs(30), ready.recv())
        .await
        .expect("the bulletin was handed over after the cuts")
        .expect("the receiver is alive");
    assert_eq!(handed.doc.id, pushed.id);
    assert_eq!(loa::station::daemon::file_sha256(&handed.audio).unwrap(), audio.sha256);
    assert_eq!(proxy.cuts_done(), 8, "every early download was cut");
}
