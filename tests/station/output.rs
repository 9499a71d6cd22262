//! A sound output that fails and comes back, under the running daemon (ManualClock, a
//! clocked sink that fails on demand): the item playing is recorded `failed` with how
//! long it played, the player reopens the sink with backoff (at most 10 s between
//! tries), the status shows the output failed (since when, why) meanwhile, and the next
//! item due after the sink is back starts on its exact instant.

use std::sync::atomic::Ordering;

use crate::support::station::{Fixture, Flaky, local};
use loa::audio::player::OutputState;
use loa::station::ledger::Outcome;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_sound_card_is_reopened_and_the_next_item_plays_on_time() {
    let mut fx = Fixture::new(local(9, 59, 50));
    fx.tone("dai.wav", 10.0);
    fx.tone("ngan.wav", 3.0);
    fx.schedule(
        "schedules/provincial.toml",
        "layer = \"provincial\"\n\
         [[item]]\nid = \"dai\"\ntitle = \"Dài\"\naudio = \"../audio/dai.wav\"\nat = 2026-12-01T10:00:00\n\
         [[item]]\nid = \"ngan\"\ntitle = \"Ngắn\"\naudio = \"../audio/ngan.wav\"\nat = 2026-12-01T10:00:30\n",
    );
    let flaky = Flaky::default();
    fx.start_flaky(&flaky);
    fx.run_until(local(10, 0, 4)).await;
    assert_eq!(fx.status().await.playing.len(), 1, "dai is on air");

    // The card drops off the bus mid-item and stays away for a while.
    flaky.broken.store(true, Ordering::SeqCst);
    fx.run_until(local(10, 0, 15)).await;
    let status = fx.status().await;
    let OutputState::Failed { since, reason, .. } = status.output else {
        panic!("the status shows the output failed: {:?}", status.output)
    };
    assert!(since >= local(10, 0, 4) && since < local(10, 0, 5), "{since}");
    assert!(reason.contains("Input/output error"), "{reason}");
    let records = fx.wait_records(1).await;
    let cut = &records[0].entry;
    assert_eq!((cut.item_id.as_str(), cut.outcome), ("dai", Outcome::Failed));
    assert!(cut.reason.as_deref().is_some_and(|r| r.contains("Input/output error")));
    let played = cut.played_secs.expect("how long it played");
    assert!((3.5..=4.5).contains(&played), "played {played} s");
    // Tries at 0, 0.5, 1.5, 3.5 and 7.5 s after the failure: backing off, not spinning.
    assert_eq!(flaky.tries.load(Ordering::SeqCst), 5);

    // It comes back: reopened within the 10 s cap, before the next item.
    flaky.broken.store(false, Ordering::SeqCst);
    flaky.available.store(true, Ordering::SeqCst);
    fx.run_until(local(10, 0, 27)).await;
    assert_eq!(fx.status().await.output, OutputState::Working);
    fx.run_until(local(10, 0, 34)).await;
    let records = fx.wait_records(2).await;
    let next = &records[1].entry;
    assert_eq!(next.item_id, "ngan");
    assert_eq!(next.outcome, Outcome::Played);
    assert_eq!(next.started, Some(local(10, 0, 30)), "on its exact instant");
    assert_eq!(next.played_secs, Some(3.0));
    fx.stop().await;
}
