//! The player against the clocked sink and a manual clock: starts land on the frame for
//! their instant, pre-emptions fade within the configured time, gain and proof of play
//! are right. Time only moves when the test moves it.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use loa::audio::sinks::{ClockedSink, Recording, WavSink};
use loa::audio::{AudioFormat, PlayError, Player, PlayerConfig, PlayerEvent};
use loa::clock::{Clock, ManualClock};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::support::audio::*;
use crate::support::wait;

const RATE: u32 = 48_000;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 5, 30, 0).single().expect("valid instant")
}

struct Rig {
    clock: Arc<ManualClock>,
    player: Player,
    events: UnboundedReceiver<PlayerEvent>,
    recording: Recording,
    dir: tempfile::TempDir,
}

fn rig(config: PlayerConfig) -> Rig {
    let clock = ManualClock::new(t0());
    let format = AudioFormat { rate: RATE, channels: 2 };
    let (sink, recording) = ClockedSink::new(format, clock.clone(), 1024, true);
    let (player, events) = Player::spawn(Box::new(sink), clock.clone(), config);
    Rig {
        clock,
        player,
        events,
        recording: recording.expect("recording requested"),
        dir: tempfile::tempdir().expect("temp dir"),
    }
}

/// The next event, waiting (in real time) at most 20 s for the audio thread to produce it.
fn next_event(events: &mut UnboundedReceiver<PlayerEvent>) -> PlayerEvent {
    crate::support::audio::next_event(events, Duration::from_secs(20))
}

/// Waits until the audio thread has written at least `frames` frames.
fn wait_for_frames(recording: &Recording, frames: u64) {
    wait::until(format!("{frames} frames written"), Duration::from_secs(20), || {
        let written = recording.frames();
        if written >= frames {
            Ok(())
        } else {
            Err(format!("audio thread stuck at {written} frames"))
        }
    });
}

fn prepare(rig: &mut Rig, id: u64, path: &std::path::Path, gain_db: f32) {
    rig.player.prepare(id, path.to_path_buf(), gain_db);
    match next_event(&mut rig.events) {
        PlayerEvent::Prepared { id: got } => assert_eq!(got, id),
        other => panic!("expected Prepared, got {other:?}"),
    }
}

#[test]
fn a_start_at_t_lands_on_the_frame_for_t() {
    let mut rig = rig(PlayerConfig::default());
    let path = rig.dir.path().join("dc.wav");
    dc_wav(&path, RATE, 2, 1.0, 0.5);
    prepare(&mut rig, 7, &path, 0.0);

    // Not on a frame boundary, nor on a block boundary: 1.234567 s after the origin.
    let at = t0() + chrono::Duration::nanoseconds(1_234_567_000);
    rig.player.start_at(7, at);
    rig.clock.advance(Duration::from_secs(4));

    let started = match next_event(&mut rig.events) {
        PlayerEvent::Started { id: 7, at } => at,
        other => panic!("expected Started, got {other:?}"),
    };
    let proof = match next_event(&mut rig.events) {
        PlayerEvent::Finished { id: 7, proof } => proof,
        other => panic!("expected Finished, got {other:?}"),
    };
    let one_frame = chrono::Duration::nanoseconds(1_000_000_000 / i64::from(RATE) + 1);
    assert!((started - at).abs() <= one_frame, "reported start {started} vs asked {at}");

    let expected_frame = rig.recording.frame_at(at);
    let samples = rig.recording.samples();
    let left = channel(&samples, 2, 0);
    let first = first_above(&left, 0.0).expect("the item played") as f64;
    assert!(
        (first - expected_frame).abs() <= 1.0,
        "first sample at frame {first}, the frame for T is {expected_frame:.2}"
    );
    // Exactly the file's frames, at its level, then silence again.
    assert_eq!(proof.frames, u64::from(RATE));
    let last = last_above(&left, 0.0).expect("played") as f64;
    assert_eq!(last - first + 1.0, f64::from(RATE));
    assert!((proof.peak_dbfs - (-6.02)).abs() < 0.01, "peak {}", proof.peak_dbfs);
    assert!(!proof.silent);
}

#[test]
fn a_resampled_start_is_compensated_for_the_resampler_delay() {
    let mut rig = rig(PlayerConfig::default());
    let path = rig.dir.path().join("tone-44k1.wav");
    tone_wav(&path, 44_100, 1, 0.5, 1_000.0, 0.5);
    prepare(&mut rig, 1, &path, 0.0);
    let at = t0() + chrono::Duration::milliseconds(500);
    rig.player.start_at(1, at);
    rig.clock.advance(Duration::from_secs(2));
    assert!(matches!(next_event(&mut rig.events), PlayerEvent::Started { id: 1, .. }));
    let proof = match next_event(&mut rig.events) {
        PlayerEvent::Finished { id: 1, proof } => proof,
        other => panic!("expected Finished, got {other:?}"),
    };
    let left = channel(&rig.recording.samples(), 2, 1);
    let expected = rig.recording.frame_at(at);
    // A band-limited onset rises over a few samples; its steep part is at the start frame.
    let onset = first_above(&left, 0.25).expect("tone played") as f64;
    assert!((onset - expected).abs() <= 2.0, "onset {onset} vs {expected}");
    // 0.5 s at 48 kHz, converted (not dropped): right length, pitch and level.
    assert_eq!(proof.frames, 24_000);
    let body = &left[onset as usize + 1000..onset as usize + 20_000];
    assert!((frequency(body, RATE) - 1000.0).abs() < 0.5, "freq {}", frequency(body, RATE));
    assert!((rms(body) - 0.5 / 2f64.sqrt()).abs() < 0.005, "rms {}", rms(body));
}

#[test]
fn a_late_start_begins_at_once_and_reports_the_actual_instant() {
    let mut rig = rig(PlayerConfig::default());
    let path = rig.dir.path().join("dc.wav");
    dc_wav(&path, RATE, 1, 0.2, 0.25);
    rig.clock.advance(Duration::from_secs(3));
    wait_for_frames(&rig.recording, 3 * u64::from(RATE));
    prepare(&mut rig, 2, &path, 0.0);
    let asked = t0() + chrono::Duration::seconds(1);
    rig.player.start_at(2, asked);
    rig.clock.advance(Duration::from_secs(1));
    let started = match next_event(&mut rig.events) {
        PlayerEvent::Started { id: 2, at } => at,
        other => panic!("expected Started, got {other:?}"),
    };
    assert!(matches!(next_event(&mut rig.events), PlayerEvent::Finished { id: 2, .. }));
    assert!(started >= t0() + chrono::Duration::seconds(3), "started {started} before now");
    let first = first_above(&channel(&rig.recording.samples(), 2, 0), 0.0).expect("played");
    assert_eq!(rig.recording.time_of_frame(first as u64), started);
}

#[test]
fn a_preemption_fades_out_within_the_configured_time() {
    let fade = Duration::from_millis(300);
    let mut rig = rig(PlayerConfig { fade, ..PlayerConfig::default() });
    let path = rig.dir.path().join("long.wav");
    dc_wav(&path, RATE, 2, 10.0, 0.5);
    prepare(&mut rig, 3, &path, 0.0);
    rig.player.start_at(3, t0() + chrono::Duration::milliseconds(100));

    // Let two seconds play, and wait until the audio thread is there too.
    rig.clock.advance(Duration::from_secs(2));
    let preempted_at = rig.clock.now();
    let at_frame = 2 * u64::from(RATE);
    wait_for_frames(&rig.recording, at_frame);
    assert!(matches!(next_event(&mut rig.events), PlayerEvent::Started { id: 3, .. }));
    rig.player.preempt(3);
    rig.clock.advance(Duration::from_secs(2));

    let (played, proof) = match next_event(&mut rig.events) {
        PlayerEvent::Preempted { id: 3, played, proof } => (played, proof),
        other => panic!("expected Preempted, got {other:?}"),
    };
    let left = channel(&rig.recording.samples(), 2, 0);
    let fade_frames = (fade.as_secs_f64() * f64::from(RATE)) as usize;
    let fade_start = left.iter().position(|&s| s > 0.0 && s < 0.5).expect("a fade");
    let last = last_above(&left, 0.0).expect("played");
    assert!(last - fade_start < fade_frames, "fade took {} frames", last - fade_start + 1);
    assert!(last - fade_start + 2 >= fade_frames, "fade too short: {}", last - fade_start);
    // A steady ramp down, then silence for good.
    assert!(left[fade_start..=last].windows(2).all(|w| w[1] <= w[0]), "fade not monotonic");
    assert!(left[last + 1..].iter().all(|&s| s == 0.0));
    // It reacted within one buffer and one block of the command.
    let reaction = fade_start as f64 - rig.recording.frame_at(preempted_at);
    assert!((0.0..=2048.0 + 1.0).contains(&reaction), "reacted after {reaction} frames");
    let first = first_above(&left, 0.0).expect("played");
    assert_eq!(proof.frames as usize, last - first + 1);
    assert_eq!(played, proof.duration);
}

#[test]
fn gain_is_applied_and_measured_in_the_proof() {
    let mut rig = rig(PlayerConfig::default());
    let path = rig.dir.path().join("dc.wav");
    dc_wav(&path, RATE, 2, 0.5, 0.5);
    prepare(&mut rig, 4, &path, -6.0);
    rig.player.start_at(4, t0());
    rig.clock.advance(Duration::from_secs(2));
    assert!(matches!(next_event(&mut rig.events), PlayerEvent::Started { id: 4, .. }));
    let proof = match next_event(&mut rig.events) {
        PlayerEvent::Finished { id: 4, proof } => proof,
        other => panic!("expected Finished, got {other:?}"),
    };
    assert!((proof.peak_dbfs - (-12.02)).abs() < 0.01, "peak {}", proof.peak_dbfs);
    assert!((proof.rms_dbfs - (-12.02)).abs() < 0.01, "rms {}", proof.rms_dbfs);
    let peak = rig.recording.samples().iter().fold(0f32, |p, s| p.max(s.abs()));
    assert!((peak - 0.5 * 10f32.powf(-6.0 / 20.0)).abs() < 1e-4);
}

/// A stale or hand-edited gain, a float file over full scale, and two items summed: no
/// sample reaches the sink above the ceiling (-1 dBFS), let alone full scale, and the
/// proof records what was sent, not what was asked.
#[test]
fn no_sample_leaves_over_full_scale_whatever_the_gain() {
    let mut rig = rig(PlayerConfig::default());
    let loud = rig.dir.path().join("loud.wav");
    tone_wav(&loud, 44_100, 1, 1.0, 1_000.0, 0.9);
    let hot = rig.dir.path().join("hot.wav");
    // 32-bit float samples at +9.5 dBFS: legal in the file, impossible on a sound card.
    dc_wav(&hot, RATE, 2, 1.0, 3.0);
    prepare(&mut rig, 1, &loud, 30.0);
    prepare(&mut rig, 2, &hot, 0.0);
    rig.player.start_at(1, t0());
    rig.player.start_at(2, t0() + chrono::Duration::milliseconds(500));
    rig.clock.advance(Duration::from_secs(3));
    let mut proofs = std::collections::HashMap::new();
    while proofs.len() < 2 {
        match next_event(&mut rig.events) {
            PlayerEvent::Finished { id, proof } => {
                proofs.insert(id, proof);
            }
            PlayerEvent::Started { .. } => {}
            other => panic!("expected Started or Finished, got {other:?}"),
        }
    }
    let ceiling = 10f32.powf(loa::audio::PEAK_CEILING_DBFS as f32 / 20.0);
    let samples = rig.recording.samples();
    let peak = samples.iter().fold(0f32, |p, s| p.max(s.abs()));
    assert!(samples.iter().all(|s| s.is_finite()));
    assert!(peak <= 1.0 && peak <= ceiling, "peak {peak} over the ceiling {ceiling}");
    assert!(peak > ceiling * 0.98, "limited, not muted: peak {peak}");
    for (id, proof) in &proofs {
        assert!(proof.peak_dbfs <= -0.999, "item {id}: {proof:?}");
        assert!(proof.peak_dbfs > -1.5, "item {id} still plays loud: {proof:?}");
    }
}

#[test]
fn dead_air_inside_an_item_is_flagged_silent() {
    let mut rig = rig(PlayerConfig::default());
    let gap = rig.dir.path().join("gap.wav");
    // 1 s tone, 6 s of silence, 1 s tone.
    write_wav(&gap, 16_000, 1, Bits::Int16, 8 * 16_000, |i| {
        if (16_000..7 * 16_000).contains(&i) { 0.0 } else { 0.5 * ((i as f32) * 0.3).sin() }
    });
    let fine = rig.dir.path().join("fine.wav");
    tone_wav(&fine, 16_000, 1, 2.0, 440.0, 0.5);
    prepare(&mut rig, 5, &gap, 0.0);
    prepare(&mut rig, 6, &fine, 0.0);
    rig.player.start_at(5, t0());
    rig.player.start_at(6, t0() + chrono::Duration::seconds(9));
    rig.clock.advance(Duration::from_secs(12));
    let mut proofs = std::collections::HashMap::new();
    while proofs.len() < 2 {
        if let PlayerEvent::Finished { id, proof } = next_event(&mut rig.events) {
            proofs.insert(id, proof);
        }
    }
    assert!(proofs[&5].silent, "6 s of dead air not flagged: {:?}", proofs[&5]);
    assert!(!proofs[&6].silent, "a steady tone flagged silent: {:?}", proofs[&6]);
    assert!((proofs[&6].duration.as_secs_f64() - 2.0).abs() < 1e-3);
}

#[test]
fn start_without_prepare_fails_and_stop_cuts_what_plays() {
    let mut rig = rig(PlayerConfig::default());
    rig.player.start_at(99, t0());
    // Commands are taken between blocks, and the audio thread waits for time to pass.
    rig.clock.advance(Duration::from_millis(100));
    match next_event(&mut rig.events) {
        PlayerEvent::Failed { id: 99, reason: PlayError::NotPrepared { id: 99 }, proof: None } => {}
        other => panic!("expected NotPrepared, got {other:?}"),
    }
    let path = rig.dir.path().join("dc.wav");
    dc_wav(&path, RATE, 2, 5.0, 0.5);
    prepare(&mut rig, 8, &path, 0.0);
    let waiting = rig.dir.path().join("waiting.wav");
    dc_wav(&waiting, RATE, 2, 1.0, 0.5);
    prepare(&mut rig, 9, &waiting, 0.0);
    rig.player.start_at(8, t0() + chrono::Duration::milliseconds(100));
    rig.clock.advance(Duration::from_millis(900));
    wait_for_frames(&rig.recording, u64::from(RATE));
    assert!(matches!(next_event(&mut rig.events), PlayerEvent::Started { id: 8, .. }));
    rig.player.stop();
    rig.clock.advance(Duration::from_secs(1));
    let mut seen = Vec::new();
    for _ in 0..2 {
        seen.push(next_event(&mut rig.events));
    }
    assert!(
        seen.iter().any(|e| matches!(e, PlayerEvent::Preempted { id: 8, played, .. }
        if *played > Duration::from_millis(800) && *played < Duration::from_millis(1100))),
        "{seen:?}"
    );
    // Cut at once, no fade: the last half second written is silence.
    wait_for_frames(&rig.recording, 2 * u64::from(RATE));
    let samples = rig.recording.samples();
    assert!(samples[samples.len() - u64::from(RATE) as usize..].iter().all(|&s| s == 0.0));
    assert!(seen.iter().any(|e| matches!(
        e,
        PlayerEvent::Failed { id: 9, reason: PlayError::Stopped { id: 9 }, .. }
    )));
}

#[test]
fn the_wav_sink_writes_what_played_and_keeps_its_header_valid_while_running() {
    let clock = ManualClock::new(t0());
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("air-check.wav");
    let format = AudioFormat { rate: 16_000, channels: 1 };
    let sink = WavSink::create(&out, format, clock.clone(), 1024, None).expect("wav sink");
    let (player, mut events) =
        Player::spawn(Box::new(sink), clock.clone(), PlayerConfig::default());
    let item = dir.path().join("dc.wav");
    dc_wav(&item, 16_000, 1, 1.0, 0.25);
    player.prepare(1, item, 0.0);
    assert!(matches!(next_event(&mut events), PlayerEvent::Prepared { id: 1 }));
    player.start_at(1, t0() + chrono::Duration::milliseconds(500));
    clock.advance(Duration::from_secs(3));
    assert!(matches!(next_event(&mut events), PlayerEvent::Started { id: 1, .. }));
    assert!(matches!(next_event(&mut events), PlayerEvent::Finished { id: 1, .. }));

    // Still running, never finalised: the header already covers at least two seconds.
    // Every look at the file finds a valid header, and it grows to cover two seconds.
    wait::until("the header to cover two seconds", Duration::from_secs(20), || {
        let reader = hound::WavReader::open(&out).expect("a valid header mid-run");
        let covered = reader.duration();
        if covered >= 2 * 16_000 {
            Ok(())
        } else {
            Err(format!("header stuck at {covered} frames"))
        }
    });

    // Shut down (the thread may be waiting for time: let it pass), then read it all.
    let stopper = std::thread::spawn(move || player.shutdown());
    wait::until("the player to shut down", Duration::from_secs(20), || {
        let done = stopper.is_finished();
        if !done {
            clock.advance(Duration::from_millis(100));
        }
        done
    });
    stopper.join().expect("shutdown");
    let mut reader = hound::WavReader::open(&out).expect("finalised wav");
    let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.expect("sample")).collect();
    let level = (0.25 * 32767.0f32).round() as i16;
    let first = samples.iter().position(|&s| s != 0).expect("the item is in the air-check");
    assert_eq!(first, 8_000, "starts at 0.5 s");
    assert!(samples[first..first + 16_000].iter().all(|&s| s == level));
    assert!(samples[first + 16_000..].iter().all(|&s| s == 0), "silence after the item");
    assert!(samples.len() >= 2 * 16_000);
}

#[test]
fn a_reused_id_is_refused_and_the_first_item_plays_on() {
    let mut rig = rig(PlayerConfig::default());
    let path = rig.dir.path().join("dc.wav");
    dc_wav(&path, RATE, 2, 0.5, 0.5);
    prepare(&mut rig, 1, &path, 0.0);
    rig.player.prepare(1, path.clone(), 0.0);
    match next_event(&mut rig.events) {
        PlayerEvent::Failed { id: 1, reason: PlayError::Duplicate { id: 1 }, proof: None } => {}
        other => panic!("expected Duplicate, got {other:?}"),
    }
    rig.player.start_at(1, t0());
    rig.clock.advance(Duration::from_secs(1));
    assert!(matches!(next_event(&mut rig.events), PlayerEvent::Started { id: 1, .. }));
    match next_event(&mut rig.events) {
        PlayerEvent::Finished { id: 1, proof } => assert_eq!(proof.frames, 24_000),
        other => panic!("expected Finished, got {other:?}"),
    }
    // Once ended, the id may be used again.
    prepare(&mut rig, 1, &path, 0.0);
}

#[test]
fn every_request_ends_in_exactly_one_final_event() {
    let mut rig = rig(PlayerConfig::default());
    let good = rig.dir.path().join("dc.wav");
    dc_wav(&good, RATE, 2, 0.2, 0.5);
    // A load that fails, pre-empted while it loads: only the failure is reported.
    rig.player.prepare(1, rig.dir.path().join("missing.mp3"), 0.0);
    rig.player.preempt(1);
    let mut finals: std::collections::HashMap<u64, Vec<PlayerEvent>> = Default::default();
    let failed = next_event(&mut rig.events);
    finals.entry(1).or_default().push(failed);
    // Prepared, pre-empted before its start: ends pre-empted, having played nothing.
    prepare(&mut rig, 2, &good, 0.0);
    rig.player.preempt(2);
    // Prepared and started, then stopped while playing.
    prepare(&mut rig, 3, &good, 0.0);
    rig.player.start_at(3, t0() + chrono::Duration::milliseconds(100));
    rig.clock.advance(Duration::from_secs(1));
    wait_for_frames(&rig.recording, u64::from(RATE));

    // Drain everything the thread has said, then let it run on and check it says no more.
    for round in 0..2 {
        while let Ok(event) = rig.events.try_recv() {
            let id = match &event {
                PlayerEvent::Finished { id, .. }
                | PlayerEvent::Preempted { id, .. }
                | PlayerEvent::Failed { id, .. } => *id,
                _ => continue,
            };
            finals.entry(id).or_default().push(event);
        }
        if round == 0 {
            rig.clock.advance(Duration::from_secs(1));
            wait_for_frames(&rig.recording, 2 * u64::from(RATE));
        }
    }
    assert_eq!(finals.len(), 3, "{finals:?}");
    assert!(finals.values().all(|events| events.len() == 1), "{finals:?}");
    assert!(matches!(finals[&1][0], PlayerEvent::Failed { reason: PlayError::Decode(_), .. }));
    assert!(matches!(finals[&2][0], PlayerEvent::Preempted { played: Duration::ZERO, .. }));
    assert!(matches!(finals[&3][0], PlayerEvent::Finished { .. }));
}

#[test]
fn an_urgent_item_starts_on_its_frame_while_the_preempted_one_fades_under_it() {
    let fade = Duration::from_millis(200);
    let mut rig = rig(PlayerConfig { fade, ..PlayerConfig::default() });
    let normal = rig.dir.path().join("normal.wav");
    dc_wav(&normal, RATE, 2, 5.0, 0.25);
    let urgent = rig.dir.path().join("urgent.wav");
    dc_wav(&urgent, RATE, 2, 0.5, 0.5);
    prepare(&mut rig, 10, &normal, 0.0);
    prepare(&mut rig, 11, &urgent, 0.0);
    rig.player.start_at(10, t0() + chrono::Duration::milliseconds(100));
    rig.clock.advance(Duration::from_secs(1));
    wait_for_frames(&rig.recording, u64::from(RATE));
    // The station's pre-emption: fade the normal item, start the urgent one just after.
    // (The fade begins within ~43 ms of the command, at about 1.0 s, and lasts 200 ms.)
    let urgent_at = t0() + chrono::Duration::milliseconds(1_100);
    rig.player.preempt(10);
    rig.player.start_at(11, urgent_at);
    rig.clock.advance(Duration::from_secs(2));

    let mut finals = std::collections::HashMap::new();
    while finals.len() < 2 {
        match next_event(&mut rig.events) {
            PlayerEvent::Preempted { id, .. } | PlayerEvent::Finished { id, .. } => {
                finals.insert(id, true);
            }
            PlayerEvent::Started { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let left = channel(&rig.recording.samples(), 2, 0);
    let start = rig.recording.frame_at(urgent_at).round() as usize;
    // Before: the normal item alone (fading or not); from the urgent frame on, the urgent
    // item is there at full level on top of whatever is left of the fade.
    assert!(left[start - 1] <= 0.25 + 1e-6, "urgent item early: {}", left[start - 1]);
    assert!(left[start] >= 0.5 - 1e-6, "urgent item missing at its frame: {}", left[start]);
    assert!(left[start..start + 24_000].iter().all(|&s| (0.5 - 1e-6..=0.75 + 1e-6).contains(&s)));
    assert!(left[start..start + 24_000].iter().any(|&s| s > 0.5 + 1e-3), "no overlap: a gap?");
    // The fade has finished by the time the urgent item ends: it plays alone at 0.5.
    assert!(left[start + 23_000..start + 24_000].iter().all(|&s| (s - 0.5).abs() < 1e-6));
}

#[test]
fn a_far_future_start_on_the_unpaced_null_sink_waits_for_its_instant() {
    let clock = ManualClock::new(t0());
    let options = loa::audio::SinkOptions { clock: clock.clone(), ..Default::default() };
    let sink = loa::audio::sinks::open("null", options).expect("null sink");
    let (player, mut events) = Player::spawn(sink, clock.clone(), PlayerConfig::default());
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("dc.wav");
    dc_wav(&path, RATE, 2, 0.5, 0.5);
    player.prepare(1, path, 0.0);
    assert!(matches!(next_event(&mut events), PlayerEvent::Prepared { id: 1 }));
    let at = t0() + chrono::Duration::hours(6);
    player.start_at(1, at);
    clock.advance(Duration::from_secs(6 * 3600));
    match next_event(&mut events) {
        PlayerEvent::Started { id: 1, at: started } => assert_eq!(started, at),
        other => panic!("expected Started, got {other:?}"),
    }
    assert!(matches!(next_event(&mut events), PlayerEvent::Finished { id: 1, .. }));
}
