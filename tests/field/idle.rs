//! The idle pause, on the real clock: a player on a clocked sink that pauses like a sound
//! card (`with_pause`) stops writing while nothing is due, and the next item still starts
//! on its exact frame, from silence (no pop), on the sink it had (never closed or
//! reopened); after it, the player pauses again. (Through cpal → ALSA the same is
//! checked by `tests/station_alsa_fifo.rs`, whose second item follows 12 s of idle.)

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use chrono::Utc;
use loa::audio::sinks::ClockedSink;
use loa::audio::{AudioFormat, Player, PlayerConfig, PlayerEvent};
use loa::clock::{SharedClock, SystemClock};

use crate::support::audio::*;

const RATE: u32 = 48_000;

fn wait_until(what: &str, within: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn after_an_idle_pause_the_next_item_starts_on_its_frame_from_silence_on_the_same_sink() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tone = dir.path().join("tone.wav");
    tone_wav(&tone, RATE, 2, 0.5, 440.0, 0.5);
    let clock: SharedClock = Arc::new(SystemClock);
    let format = AudioFormat { rate: RATE, channels: 2 };
    let (sink, recording) = ClockedSink::new(format, clock.clone(), 1024, true);
    let recording = recording.expect("recording");
    let reopened = Arc::new(AtomicUsize::new(0));
    let counted = reopened.clone();
    let (player, mut events) = Player::spawn_reopening(
        Box::new(sink.with_pause()),
        Some(Box::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Err(loa::audio::SinkError::NotBuilt)
        })),
        clock.clone(),
        PlayerConfig::default(),
    );

    // Nothing due: after a few blocks of silence the player pauses, and writes nothing.
    wait_until("the player to pause", Duration::from_secs(5), || player.is_paused());
    let paused_at = recording.frames();
    assert!(paused_at <= 16 * 1024, "{paused_at} frames written before pausing");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(recording.frames(), paused_at, "frames written while paused");

    // An item 4 s from now, prepared at once (as the station's pre-roll does 2 s ahead).
    let planned = Utc::now() + chrono::Duration::seconds(4);
    player.prepare(1, tone.clone(), 0.0);
    assert!(matches!(
        next_event(&mut events, Duration::from_secs(10)),
        PlayerEvent::Prepared { id: 1 }
    ));
    player.start_at(1, planned);
    // Still paused until the lead before the start.
    std::thread::sleep(Duration::from_millis(500));
    assert!(player.is_paused(), "woke more than the lead before the start");
    let started = match next_event(&mut events, Duration::from_secs(10)) {
        PlayerEvent::Started { id: 1, at } => at,
        other => panic!("expected Started, got {other:?}"),
    };
    let reported = (started - planned).num_nanoseconds().expect("ns").abs();
    assert!(reported <= 11_000, "the start is reported {reported} ns from its instant");
    match next_event(&mut events, Duration::from_secs(10)) {
        PlayerEvent::Finished { id: 1, proof } => {
            assert_eq!(proof.frames, (RATE / 2) as u64);
        }
        other => panic!("expected Finished, got {other:?}"),
    }

    // What the sink played: silence, then the tone from the frame for `planned`.
    let samples = recording.samples();
    let left = channel(&samples, 2, 0);
    let first = first_above(&left, 1e-4).expect("the tone was played");
    let at = recording.time_of_frame(first as u64);
    let error_ns = (at - planned).num_nanoseconds().expect("ns").abs();
    // The tone's first sample is sin(0) = 0: the first audible one is its second.
    assert!(error_ns <= 42_000, "first sample {error_ns} ns from its instant");
    assert!(left[paused_at as usize..first].iter().all(|s| *s == 0.0), "only silence before it");
    assert!(left[..paused_at as usize].iter().all(|s| *s == 0.0), "only silence before the pause");
    // The resumed stream ran from at least the lead before the start: no cold start.
    let lead_frames = (first as u64).saturating_sub(paused_at);
    assert!(lead_frames >= RATE as u64, "{lead_frames} frames of silence before the start");
    assert!(!recording.steps().is_empty(), "the pause starts a new segment of the timeline");

    // Afterwards it pauses again; the sink was never closed or reopened.
    wait_until("the player to pause again", Duration::from_secs(5), || player.is_paused());
    assert_eq!(reopened.load(Ordering::SeqCst), 0);
    player.shutdown();
}
