//! The real output path, without a sound card: `loa audio play --sink default` runs cpal
//! → ALSA with `ALSA_CONFIG_PATH` pointing at a config whose default PCM writes raw
//! samples to a file (tests/alsa/file-tap.conf.in). The capture must equal the decoded
//! file: level, duration, and the pitch of a test tone.

mod audio_support;

use std::path::Path;
use std::process::Command;

use loa::audio::{AudioFormat, Source};

use audio_support::*;

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

fn decode_all(path: &Path, format: AudioFormat) -> Vec<f32> {
    let mut source = Source::open(path, format, 0.0).expect("decode reference");
    let mut out = Vec::new();
    let mut buf = vec![0.0; 4096 * format.channels];
    loop {
        let frames = source.fill(&mut buf).expect("decode reference");
        out.extend_from_slice(&buf[..frames * format.channels]);
        if frames * format.channels < buf.len() {
            return out;
        }
    }
}

#[test]
fn a_tone_played_through_cpal_reaches_the_alsa_file_tap_intact() {
    let dir = tempfile::tempdir().expect("temp dir");
    let tone = dir.path().join("tone.wav");
    // 44.1 kHz mono: the device path must resample and up-mix it.
    tone_wav(&tone, 44_100, 1, 1.5, 1_000.0, 0.5);
    let capture = dir.path().join("capture.raw");
    let template = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/alsa/file-tap.conf.in"),
    )
    .expect("tests/alsa/file-tap.conf.in");
    let config = dir.path().join("alsa.conf");
    let capture_str = capture.to_str().expect("utf-8 temp path");
    std::fs::write(&config, template.replace("@OUT@", capture_str)).expect("write alsa.conf");

    let output = Command::new(env!("CARGO_BIN_EXE_loa"))
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
    let reference = decode_all(&tone, format);
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

#[test]
fn a_killed_air_check_still_has_a_valid_wav_header() {
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join("air-check.wav");
    let news = Path::new(env!("CARGO_MANIFEST_DIR")).join("audio/ban-tin.mp3");
    let mut child = Command::new(env!("CARGO_BIN_EXE_loa"))
        .args(["audio", "play", "--sink", "wav", "--rate", "16000", "--channels", "1", "--out"])
        .arg(&out)
        .arg(&news)
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("run loa");
    // The wav sink plays in real time and rewrites its header every second of audio.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let covered = hound::WavReader::open(&out).map(|r| r.duration()).unwrap_or(0);
        if covered >= 16_000 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "no second of audio written");
        assert!(child.try_wait().expect("child status").is_none(), "loa exited early");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    child.kill().expect("kill -9 loa");
    let _ = child.wait();
    let mut reader = hound::WavReader::open(&out).expect("valid header after kill");
    let spec = reader.spec();
    assert_eq!((spec.sample_rate, spec.channels, spec.bits_per_sample), (16_000, 1, 16));
    let samples: Vec<i16> = reader.samples::<i16>().map(|s| s.expect("readable sample")).collect();
    assert!(samples.len() >= 16_000, "{} samples", samples.len());
    assert!(samples.iter().any(|&s| s.abs() > 1_000), "the speech is in the air-check");
}
