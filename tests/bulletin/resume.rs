//! The station daemon and its bulletin receiver on an injected clock and a recording
//! clocked sink, against an in-process central: a bulletin with repeats is cut by a
//! crash in its second play; after the restart the cut play airs again from the start
//! and the last one follows, exactly three plays aired in all. One cancelled while the
//! station was down never sounds again. One whose audio never arrives intact before it
//! expires is closed with a ledger record that says so.

use std::future::ready;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use loa::clock::{Clock, SharedClock};
use loa::protocol::{BulletinPriority, PushBulletinRequest, PushBulletinResponse, Target};
use loa::station::StationCommand;
use loa::station::ledger::Outcome;

use crate::support::central::Central;
use crate::support::station::Fixture;
use crate::support::wait;

async fn push(central: &Central, sha: &str, repeat: u32) -> PushBulletinResponse {
    push_expiring(central, sha, repeat, 600).await
}

async fn push_expiring(
    central: &Central,
    sha: &str,
    repeat: u32,
    expires_secs: u64,
) -> PushBulletinResponse {
    let request = PushBulletinRequest {
        title: Some("Cảnh báo lũ".into()),
        audio_sha256: Some(sha.into()),
        text: None,
        voice: None,
        to: Target::All,
        priority: BulletinPriority::Emergency,
        repeat,
        interval_secs: 5,
        expires_secs,
        tone: false,
    };
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/bulletins", central.url))
        .bearer_auth(&central.admin)
        .json(&request)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

/// Station `tri-ton`, configured for `central` with `token` (not started).
fn station_of(central: &Central, token: String) -> Fixture {
    let mut fixture = Fixture::new(central.clock.now());
    fixture.config.station_id = "tri-ton".into();
    fixture.config.central_url = Some(central.url.clone());
    fixture.config.token = Some(token);
    let key = hex::decode(central.public_key().to_hex()).unwrap();
    fixture.config.province_key = Some(key.try_into().unwrap());
    fixture
}

/// Starts the daemon with its bulletin receiver (as `loa station` does); returns the
/// receiver's task and the sender that stops it.
fn start(fixture: &mut Fixture) -> (tokio::task::JoinHandle<()>, tokio::sync::oneshot::Sender<()>) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let mut receiver = None;
    let config = fixture.config.clone();
    let clock: SharedClock = fixture.clock.clone();
    fixture.start_with(|station, handle| {
        let task = loa::station::bulletins::spawn_for(
            &config,
            clock,
            handle.clone(),
            station.status(),
            station.bulletin_records(),
            async move {
                let _ = stopped.await;
            },
        )
        .expect("receiver starts");
        receiver = task;
    });
    (receiver.expect("central is configured"), stop)
}

/// Moves the clock in 50 ms steps until the daemon has bulletin `id` sounding (bounded
/// in real time); returns when it started.
async fn sounding(fixture: &Fixture, id: &str) -> DateTime<Utc> {
    let handle = fixture.handle.clone().expect("the daemon runs");
    fixture
        .step_until(format!("bulletin {id} sounding"), || {
            let handle = handle.clone();
            async move {
                let (tx, rx) = tokio::sync::oneshot::channel();
                assert!(handle.send(StationCommand::Status(tx)), "the daemon runs");
                let status = rx.await.unwrap();
                match status.playing.iter().find(|p| p.item_id == id) {
                    Some(p) => Ok(p.started),
                    None => Err(format!("bulletin {id} never started: {status:?}")),
                }
            }
        })
        .await
}

fn plays(fixture: &Fixture, id: &str) -> Vec<(Outcome, Option<String>)> {
    fixture
        .records()
        .into_iter()
        .filter(|r| r.entry.item_id == id)
        .map(|r| (r.entry.outcome, r.entry.reason))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_mid_bulletin_airs_the_cut_play_again_and_the_rest_exactly_once() {
    let _ = tracing_subscriber::fmt().with_env_filter("info").with_test_writer().try_init();
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let audio = central.upload_ok(loa::testing::wav_bytes(1.0, 660.0, 0.3), "lu").await;
    let mut fixture = station_of(&central, token);

    let (receiver, stop) = start(&mut fixture);
    let pushed = push(&central, &audio.sha256, 2).await;
    let id = pushed.id;
    let first = sounding(&fixture, &id).await;
    // The first play (1 s) ends; 5 s later the second starts and is cut half-way.
    fixture.run_until(first + chrono::Duration::milliseconds(6_500)).await;
    let second = sounding(&fixture, &id).await;
    assert!(second > first + chrono::Duration::seconds(5), "{first} {second}");
    assert_eq!(plays(&fixture, &id), [(Outcome::Played, None)]);
    fixture.kill().await;
    receiver.abort();
    let _ = receiver.await;
    drop(stop);

    // Down for a minute; then the same station starts again.
    let back = second + chrono::Duration::seconds(60);
    fixture.clock.set(back);
    let (receiver, stop) = start(&mut fixture);
    let again = sounding(&fixture, &id).await;
    assert!(again >= back, "resumed at {again}");
    fixture.run_until(again + chrono::Duration::seconds(20)).await;
    let recorded = plays(&fixture, &id);
    assert_eq!(
        recorded,
        [
            (Outcome::Played, None),
            (Outcome::Failed, Some(loa::protocol::Reason::Interrupted.to_string())),
            (Outcome::Played, None),
            (Outcome::Played, None),
        ]
    );
    // The cut play aired again from its first sample: whole plays, one after the other.
    let ledger = fixture.records();
    let aired: Vec<_> = ledger
        .iter()
        .filter(|r| r.entry.item_id == id && r.entry.outcome == Outcome::Played)
        .collect();
    for r in &aired {
        assert!((r.entry.played_secs.unwrap() - 1.0).abs() < 0.1, "{r:?}");
    }
    let gap = aired[2].entry.started.unwrap() - aired[1].entry.ended.unwrap();
    assert!((gap - chrono::Duration::seconds(5)).num_milliseconds().abs() < 200, "{gap}");

    // A graceful stop and start after the last play: nothing of it airs again.
    let _ = stop.send(());
    let _ = receiver.await;
    fixture.stop().await;
    let (receiver, stop) = start(&mut fixture);
    let later = fixture.clock.now() + chrono::Duration::seconds(10);
    fixture.run_until(later).await;
    assert_eq!(plays(&fixture, &id).len(), 4, "{:?}", plays(&fixture, &id));

    // A long one is cut by a crash and cancelled at central while the station is down:
    // after the restart it is not resumed, and the ledger says why.
    let long = central.upload_ok(loa::testing::wav_bytes(30.0, 440.0, 0.3), "dai").await;
    let long = push(&central, &long.sha256, 0).await.id;
    sounding(&fixture, &long).await;
    fixture.run_until(fixture.clock.now() + chrono::Duration::seconds(2)).await;
    fixture.kill().await;
    receiver.abort();
    let _ = receiver.await;
    drop(stop);
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/bulletins/{long}/cancel", central.url))
        .bearer_auth(&central.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    let (receiver, stop) = start(&mut fixture);
    fixture
        .step_until("two records of the long bulletin", || {
            let plays = plays(&fixture, &long);
            ready(if plays.len() >= 2 { Ok(()) } else { Err(format!("{plays:?}")) })
        })
        .await;
    fixture.run_until(fixture.clock.now() + chrono::Duration::seconds(3)).await;
    assert_eq!(
        plays(&fixture, &long),
        [
            (Outcome::Failed, Some(loa::protocol::Reason::Interrupted.to_string())),
            (Outcome::Missed, Some(loa::protocol::Reason::Cancelled.to_string())),
        ]
    );
    let (tx, rx) = tokio::sync::oneshot::channel();
    assert!(fixture.handle.as_ref().unwrap().send(StationCommand::Status(tx)));
    assert!(rx.await.unwrap().playing.is_empty(), "nothing of it sounds");
    let _ = stop.send(());
    let _ = receiver.await;
    fixture.stop().await;
}

/// The accepted bulletin's state in the station's own store (`accepted`, `finished`, …).
fn stored_state(fixture: &Fixture, id: &str) -> Option<String> {
    let path = fixture.config.data_dir.join(loa::station::bulletins::DB_FILE);
    let conn = rusqlite::Connection::open(path).ok()?;
    conn.query_row("SELECT state FROM accepted WHERE id = ?1", [id], |r| r.get(0)).ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulletin_whose_audio_never_arrives_is_recorded_missed_when_it_expires() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let audio = central.upload_ok(loa::testing::wav_bytes(1.0, 660.0, 0.3), "hong").await;
    // Central's copy is damaged on its disk: not made hot at the push, served as it is,
    // and refused by the station's sha256 check at every try.
    std::fs::write(central.state.audio_dir().join(&audio.sha256), b"not the audio").unwrap();
    let mut fixture = station_of(&central, token);
    let (receiver, stop) = start(&mut fixture);
    let id = push_expiring(&central, &audio.sha256, 0, 30).await.id;

    // Accepted (recorded while its audio downloads), then retried until it expires.
    wait::until_async(format!("the station to accept {id}"), Duration::from_secs(20), || {
        ready(stored_state(&fixture, &id).is_some())
    })
    .await;
    fixture.clock.set(fixture.clock.now() + chrono::Duration::seconds(31));
    fixture
        .step_until(format!("{id} to be closed"), || {
            ready(stored_state(&fixture, &id).as_deref() != Some("accepted"))
        })
        .await;
    assert_eq!(stored_state(&fixture, &id).as_deref(), Some("failed"), "not resumed on start");
    fixture
        .step_until(format!("a ledger record of {id}"), || ready(!plays(&fixture, &id).is_empty()))
        .await;
    let recorded = plays(&fixture, &id);
    assert_eq!(recorded.len(), 1, "{recorded:?}");
    let (outcome, reason) = &recorded[0];
    assert_eq!(*outcome, Outcome::Missed);
    let reason = reason.as_deref().unwrap_or_default();
    assert!(
        reason.contains("its audio could not be fetched") && reason.contains("sha256"),
        "{reason}"
    );
    let _ = stop.send(());
    let _ = receiver.await;
    fixture.stop().await;
}

/// A bulletin whose audio keeps failing is retried in a task of its own: a later warning
/// still airs at once, and a cancel of the failing one still reaches it and leaves one
/// ledger record saying it was cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_download_does_not_hold_back_the_next_warning_or_a_cancel() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let broken = central.upload_ok(loa::testing::wav_bytes(1.0, 660.0, 0.3), "hong").await;
    std::fs::write(central.state.audio_dir().join(&broken.sha256), b"not the audio").unwrap();
    let good = central.upload_ok(loa::testing::wav_bytes(1.0, 440.0, 0.3), "lu").await;
    let mut fixture = station_of(&central, token);
    let (receiver, stop) = start(&mut fixture);

    let stuck = push(&central, &broken.sha256, 0).await.id;
    wait::until_async(format!("the station to accept {stuck}"), Duration::from_secs(20), || {
        ready(stored_state(&fixture, &stuck).is_some())
    })
    .await;
    // The next warning airs while the first one's audio is still being retried.
    let next = push(&central, &good.sha256, 0).await.id;
    sounding(&fixture, &next).await;
    assert_eq!(stored_state(&fixture, &stuck).as_deref(), Some("accepted"), "still retried");

    // The cancel of the stuck one reaches the station and its retries stop for good.
    let response = reqwest::Client::new()
        .post(format!("{}/api/v1/bulletins/{stuck}/cancel", central.url))
        .bearer_auth(&central.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    wait::until_async(format!("{stuck} cancelled at the station"), Duration::from_secs(20), || {
        let state = stored_state(&fixture, &stuck);
        ready(if state.as_deref() == Some("cancelled") {
            Ok(())
        } else {
            Err(format!("{state:?}"))
        })
    })
    .await;
    // Central's copy is mended: a retry still running would now fetch it. Whether the
    // next retry comes before the cancel reached it (it stops) or after (the audio arrives
    // but is not handed over), nothing of it airs. Waited past the longest backoff (10 s).
    std::fs::write(
        central.state.audio_dir().join(&broken.sha256),
        loa::testing::wav_bytes(1.0, 660.0, 0.3),
    )
    .unwrap();
    let until = Instant::now() + Duration::from_secs(11);
    while Instant::now() < until {
        fixture.run_until(fixture.clock.now() + chrono::Duration::milliseconds(200)).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Never aired, and the ledger says why, once: the daemon never had it, so the
    // receiver wrote the record when the cancel came.
    assert_eq!(
        plays(&fixture, &stuck),
        [(Outcome::Missed, Some(loa::protocol::Reason::Cancelled.to_string()))]
    );
    assert_eq!(plays(&fixture, &next), [(Outcome::Played, None)]);
    let _ = stop.send(());
    let _ = receiver.await;
    fixture.stop().await;
}
