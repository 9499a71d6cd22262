//! The wav air-check of a real `loa audio play`: killed with SIGKILL mid-file, what it
//! wrote is still a valid WAV file holding the audio played so far.

use std::time::Duration;

use crate::support::process::{command, root};
use crate::support::wait;

#[test]
fn a_killed_air_check_still_has_a_valid_wav_header() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("air-check.wav");
    let news = root().join("audio/ban-tin.mp3");
    let mut child = command()
        .args(["audio", "play", "--sink", "wav", "--rate", "16000", "--channels", "1", "--out"])
        .arg(&out)
        .arg(&news)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run loa");
    // The wav sink plays in real time and rewrites its header every second of audio.
    wait::until("a second of audio written", Duration::from_secs(30), || {
        let covered = hound::WavReader::open(&out).map(|r| r.duration()).unwrap_or(0);
        if covered >= 16_000 {
            return true;
        }
        assert!(child.try_wait().expect("child status").is_none(), "loa exited early");
        false
    });
    child.kill().expect("kill -9 loa");
    let _ = child.wait();
    let mut reader = hound::WavReader::open(&out).expect("valid header after kill");
    let spec = reader.spec();
    assert_eq!((spec.sample_rate, spec.channels, spec.bits_per_sample), (16_000, 1, 16));
    let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.expect("readable sample")).collect();
    assert!(samples.len() >= 16_000, "{} samples", samples.len());
    assert!(samples.iter().any(|&s| s.abs() > 1_000), "the speech is in the air-check");
}
