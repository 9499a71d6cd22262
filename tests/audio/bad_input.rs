//! Bad files through the player: each ends in one clear event (a `Failed` naming the file
//! and the problem, or — for damage the broadcaster can live with — a `Finished` whose
//! proof says what was lost), never a panic, and the player plays the next item after.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use loa::audio::sinks::{self, SinkOptions};
use loa::audio::{DecodeError, PlayError, Player, PlayerConfig, PlayerEvent, ProofOfPlay};
use loa::clock::{SharedClock, SystemClock};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::support::audio::*;

struct Rig {
    player: Player,
    events: UnboundedReceiver<PlayerEvent>,
    clock: SharedClock,
    dir: tempfile::TempDir,
    next_id: u64,
}

/// A player on the unpaced null sink: files play as fast as they decode.
fn rig() -> Rig {
    let clock: SharedClock = Arc::new(SystemClock);
    let options = SinkOptions { clock: clock.clone(), ..SinkOptions::default() };
    let sink = sinks::open("null", options).expect("null sink");
    let (player, events) = Player::spawn(sink, clock.clone(), PlayerConfig::default());
    Rig { player, events, clock, dir: tempfile::tempdir().expect("temp dir"), next_id: 1 }
}

fn next_event(events: &mut UnboundedReceiver<PlayerEvent>) -> PlayerEvent {
    crate::support::audio::next_event(events, Duration::from_secs(30))
}

/// Prepares and starts `path` now; returns the item's final event.
fn play(rig: &mut Rig, path: &Path) -> PlayerEvent {
    let id = rig.next_id;
    rig.next_id += 1;
    rig.player.prepare(id, path.to_path_buf(), 0.0);
    loop {
        match next_event(&mut rig.events) {
            PlayerEvent::Prepared { id: got } if got == id => {
                rig.player.start_at(id, rig.clock.now());
            }
            PlayerEvent::Started { .. } => {}
            event => return event,
        }
    }
}

/// Plays `path`, expects `Failed`, checks the message names the file, and proves the
/// player still plays a good file afterwards.
fn expect_failure(rig: &mut Rig, path: &Path) -> (DecodeError, Option<ProofOfPlay>) {
    let outcome = play(rig, path);
    let (reason, proof) = match outcome {
        PlayerEvent::Failed { reason: PlayError::Decode(e), proof, .. } => (e, proof),
        other => panic!("{}: expected a decode failure, got {other:?}", path.display()),
    };
    let message = reason.to_string();
    assert!(message.contains(&path.display().to_string()), "message lacks the path: {message}");
    assert_still_plays(rig);
    (reason, proof)
}

fn expect_finished(rig: &mut Rig, path: &Path) -> ProofOfPlay {
    match play(rig, path) {
        PlayerEvent::Finished { proof, .. } => {
            assert_still_plays(rig);
            proof
        }
        other => panic!("{}: expected Finished, got {other:?}", path.display()),
    }
}

fn assert_still_plays(rig: &mut Rig) {
    let good = rig.dir.path().join("good.wav");
    if !good.exists() {
        tone_wav(&good, 48_000, 2, 0.1, 440.0, 0.5);
    }
    match play(rig, &good) {
        PlayerEvent::Finished { proof, .. } => assert_eq!(proof.frames, 4_800),
        other => panic!("the player did not recover: {other:?}"),
    }
}

fn copy_in(rig: &Rig, name: &str) -> PathBuf {
    let dst = rig.dir.path().join(name);
    std::fs::copy(fixture(name), &dst).expect("copy fixture");
    dst
}

/// Full-length frames of a fixture at the null sink's 48 kHz.
fn full_frames(rig: &mut Rig, path: &Path) -> u64 {
    expect_finished(rig, path).frames
}

#[test]
fn a_missing_file_fails_with_the_path() {
    let mut rig = rig();
    let path = rig.dir.path().join("khong-co.mp3");
    let (e, proof) = expect_failure(&mut rig, &path);
    assert!(matches!(e, DecodeError::Open { kind: std::io::ErrorKind::NotFound, .. }), "{e:?}");
    assert!(proof.is_none());
    assert!(e.to_string().contains("cannot open"));
}

#[test]
fn a_directory_fails_to_open() {
    let mut rig = rig();
    let path = rig.dir.path().to_path_buf();
    let (e, _) = expect_failure(&mut rig, &path);
    assert!(matches!(e, DecodeError::Open { .. }), "{e:?}");
}

#[test]
fn an_empty_file_fails_as_empty() {
    let mut rig = rig();
    let path = rig.dir.path().join("empty.mp3");
    std::fs::write(&path, b"").expect("write");
    let (e, _) = expect_failure(&mut rig, &path);
    assert!(matches!(e, DecodeError::Empty { .. }), "{e:?}");
    assert!(e.to_string().contains("empty"));
}

#[test]
fn text_named_mp3_is_not_audio() {
    let mut rig = rig();
    let path = rig.dir.path().join("ban-tin.mp3");
    std::fs::write(&path, "Bản tin thời sự — this is text, not audio\n".repeat(50)).expect("write");
    let (e, _) = expect_failure(&mut rig, &path);
    assert!(matches!(e, DecodeError::NotAudio { .. }), "{e:?}");
    assert!(e.to_string().contains("not a recognised audio file"));
}

#[test]
fn truncated_files_play_what_is_there_and_say_so() {
    let mut rig = rig();
    let wav = rig.dir.path().join("tone.wav");
    tone_wav(&wav, 44_100, 2, 2.0, 440.0, 0.5);
    for path in [
        copy_in(&rig, "tone-440.mp3"),
        copy_in(&rig, "tone-440.ogg"),
        copy_in(&rig, "tone-440.flac"),
        wav,
    ] {
        let full = full_frames(&mut rig, &path);
        let cut = rig
            .dir
            .path()
            .join(format!("cut-{}", path.file_name().and_then(|n| n.to_str()).unwrap_or("x")));
        truncated_copy(&path, &cut, 0.5);
        let proof = expect_finished(&mut rig, &cut);
        assert!(
            proof.frames > full / 4 && proof.frames < full * 3 / 4,
            "{}: {} of {full} frames",
            cut.display(),
            proof.frames
        );
        assert!(proof.truncated, "{}: truncation not reported: {proof:?}", cut.display());
    }
}

#[test]
fn a_file_cut_inside_its_header_fails() {
    let mut rig = rig();
    for name in ["tone-440.mp3", "tone-440.ogg", "tone-440.flac"] {
        let path = copy_in(&rig, name);
        let cut = rig.dir.path().join(format!("header-only-{name}"));
        std::fs::write(&cut, &std::fs::read(&path).expect("read")[..40]).expect("write");
        let (e, _) = expect_failure(&mut rig, &cut);
        assert!(matches!(e, DecodeError::NotAudio { .. }), "{name}: {e:?}");
    }
}

#[test]
fn random_bytes_inside_a_file_are_skipped_not_fatal() {
    let mut rig = rig();
    for name in ["tone-440.mp3", "tone-440.ogg", "tone-440.flac"] {
        let path = copy_in(&rig, name);
        let full = full_frames(&mut rig, &path);
        let damaged = rig.dir.path().join(format!("damaged-{name}"));
        damaged_copy(&path, &damaged, 0.5, 2_000, 7);
        let proof = expect_finished(&mut rig, &damaged);
        assert!(proof.frames > full / 2, "{name}: only {} of {full} frames", proof.frames);
        assert!(
            proof.skipped_packets > 0 || proof.truncated,
            "{name}: damage went unreported: {proof:?}"
        );
    }
    // PCM has no structure to check: noise plays, the length is intact.
    let wav = rig.dir.path().join("tone.wav");
    tone_wav(&wav, 48_000, 2, 1.0, 440.0, 0.5);
    let damaged = rig.dir.path().join("damaged.wav");
    damaged_copy(&wav, &damaged, 0.5, 2_000, 7);
    assert_eq!(expect_finished(&mut rig, &damaged).frames, 48_000);
}

#[test]
fn a_corrupt_header_fails_except_where_the_format_resyncs() {
    let mut rig = rig();
    let wav = rig.dir.path().join("tone.wav");
    tone_wav(&wav, 44_100, 2, 1.0, 440.0, 0.5);
    for path in [wav, copy_in(&rig, "tone-440.ogg"), copy_in(&rig, "tone-440.flac")] {
        let bad = rig.dir.path().join(format!(
            "badheader-{}",
            path.file_name().and_then(|n| n.to_str()).unwrap_or("x")
        ));
        damaged_copy(&path, &bad, 0.0, 64, 3);
        let (e, _) = expect_failure(&mut rig, &bad);
        assert!(matches!(e, DecodeError::NotAudio { .. }), "{}: {e:?}", bad.display());
    }
    // MP3 is a sequence of self-synchronising frames: a broken first frame is skipped.
    let mp3 = copy_in(&rig, "tone-440.mp3");
    let full = full_frames(&mut rig, &mp3);
    let bad = rig.dir.path().join("badheader.mp3");
    damaged_copy(&mp3, &bad, 0.0, 64, 3);
    let proof = expect_finished(&mut rig, &bad);
    assert!(proof.frames + 4_800 >= full, "{} of {full}", proof.frames);
}

#[test]
fn an_unsupported_codec_says_so() {
    let mut rig = rig();
    let path = copy_in(&rig, "adpcm.wav");
    let (e, _) = expect_failure(&mut rig, &path);
    assert!(matches!(e, DecodeError::UnsupportedCodec { .. }), "{e:?}");
    assert!(e.to_string().contains("re-encode"));
}

#[test]
fn a_sample_rate_change_mid_stream_fails_after_what_played() {
    let mut rig = rig();
    let path = copy_in(&rig, "rate-change.mp3");
    let (e, proof) = expect_failure(&mut rig, &path);
    assert!(matches!(e, DecodeError::RateChanged { from: 44_100, to: 22_050, .. }), "{e:?}");
    // The first (44.1 kHz) second did play, and the proof says how much.
    let proof = proof.expect("proof of what played");
    assert!((proof.duration.as_secs_f64() - 1.0).abs() < 0.1, "{proof:?}");
}
