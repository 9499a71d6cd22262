//! The real output path, without a sound card: `loa audio play --sink default` runs cpal
//! → ALSA with `ALSA_CONFIG_PATH` pointing at a config whose default PCM writes raw
//! samples to a file (tests/alsa/file-tap.conf.in). The capture must equal the decoded
//! file: level, duration, and the pitch of a test tone. Built with the `alsa-backend`
//! feature only (without it there is no `default` sink).
#![cfg(feature = "alsa-backend")]

use std::path::Path;

use loa::audio::AudioFormat;

use crate::support::audio::*;
use crate::support::process::{command, root};

/// Parses "sink: default (48000 Hz, 2 channels, f32)" from the player's stderr.
fn sink_format(stderr: &str) -> (AudioFormat, String) {
    let line = stderr.lines().find(|l| l.starts_with("sink: ")).unwrap_or_else(|| {
        panic!("no sink line in stderr:\n{stderr}");
    });
    let inner = line.split('(').nth(1).and_then(|s| s.strip_suffix(')')).expect("(format)");
    let parts: Vec<&str> = inner.split(", ").collect();
    let rate = parts[0].trim_end_matches(" Hz").parse().expect("rate");
    let channels = parts[1].trim_end_matches(" channels").parse().expect("channels");
    (AudioFormat { rate, channels }, parts[2].to_string())
}

fn read_raw(path: &Path, sample_format: &str) -> Vec<f32> {
    let bytes = std::fs::read(path).expect("the tap wrote a capture file");
    match sample_format {
        "f32" => {
            bytes.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
        }
        "i16" => bytes
            .chunks_exact(2)
            .map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0)
            .collect(),
        other => panic!("capture in {other}: teach this test to read it"),
    }
}

#[test]
fn a_tone_played_through_cpal_reaches_the_alsa_file_tap_intact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tone = dir.path().join("tone.wav");
    // 44.1 kHz mono: the device path must resample and up-mix it.
    tone_wav(&tone, 44_100, 1, 1.5, 1_000.0, 0.5);
    let capture = dir.path().join("capture.raw");
    let template = std::fs::read_to_string(root().join("tests/alsa/file-tap.conf.in"))
        .expect("tests/alsa/file-tap.conf.in");
    let config = dir.path().join("alsa.conf");
    let capture_str = capture.to_str().expect("utf-8 temp path");
    std::fs::write(&config, template.replace("@OUT@", capture_str)).expect("write alsa.conf");

    let output = command()
        .args(["audio", "play", "--sink", "default"])
        .arg(&tone)
        .env("ALSA_CONFIG_PATH", &config)
        .env("RUST_LOG", "warn")
        .output()
        .expect("run loa");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "loa audio play failed:\n{stderr}");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("played"), "no proof of play printed: {stdout}");

    let (format, sample_format) = sink_format(&stderr);
    let captured = read_raw(&capture, &sample_format);
    let reference = decode_all(&tone, format, 0.0);
    let ch = format.channels;

    let cap_left = channel(&captured, ch, 0);
    let ref_left = channel(&reference, ch, 0);
    let start = first_above(&cap_left, 0.01).expect("the tone reached the tap");
    let end = last_above(&cap_left, 0.01).expect("the tone reached the tap");
    let ref_start = first_above(&ref_left, 0.01).expect("reference");
    let ref_end = last_above(&ref_left, 0.01).expect("reference");

    // Duration: exactly the decoded length, which is 1.5 s at the device rate.
    assert_eq!(end - start, ref_end - ref_start, "captured length differs from decoded");
    let secs = (end - start + 1) as f64 / f64::from(format.rate);
    assert!((secs - 1.5).abs() < 0.002, "captured {secs} s");

    // Samples: the capture is the decoded audio, frame for frame, on every channel.
    let tolerance = if sample_format == "f32" { 1e-6 } else { 1.5 / 32768.0 };
    let cap = &captured[start * ch..(end + 1) * ch];
    let refr = &reference[ref_start * ch..(ref_end + 1) * ch];
    let worst = cap.iter().zip(refr).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
    assert!(worst <= tolerance, "capture differs from decoded audio by {worst}");

    // Level and pitch of the tone itself.
    let body = &cap_left[start + 2_000..end - 2_000];
    let level = rms(body);
    assert!((level - 0.5 / 2f64.sqrt()).abs() < 0.005, "rms {level}");
    let freq = frequency(body, format.rate);
    assert!((freq - 1_000.0).abs() < 0.5, "frequency {freq} Hz");
    if ch > 1 {
        assert_eq!(channel(cap, ch, 1), channel(cap, ch, 0), "mono not copied to both channels");
    }
}
