//! Every supported encoding decodes to the right pitch, level and length at the sink's
//! rate and layout; `probe` and `loa audio probe` report files, and bad ones clearly.

use loa::audio::{AudioFormat, probe};

use crate::support::audio::*;
use crate::support::process::{command, root};

const OUT: AudioFormat = AudioFormat { rate: 48_000, channels: 2 };

/// Checks a decoded 440 Hz tone of `secs` at amplitude `amp`: length, pitch, level, and
/// that both output channels carry it.
fn check_tone(what: &str, samples: &[f32], secs: f64, amp: f64, level_tolerance: f64) {
    let frames = samples.len() / OUT.channels;
    let expected = secs * f64::from(OUT.rate);
    assert!(
        (frames as f64 - expected).abs() <= 0.01 * expected,
        "{what}: {frames} frames, expected {expected}"
    );
    for c in 0..OUT.channels {
        let x = channel(samples, OUT.channels, c);
        let body = &x[frames / 10..frames * 9 / 10];
        let f = frequency(body, OUT.rate);
        assert!((f - 440.0).abs() < 1.0, "{what} ch{c}: {f} Hz");
        let level = rms(body);
        let want = amp / 2f64.sqrt();
        assert!((level - want).abs() < level_tolerance, "{what} ch{c}: rms {level}, want {want}");
    }
}

#[test]
fn wav_of_every_sample_format_rate_and_layout_decodes_to_the_same_tone() {
    let dir = tempfile::tempdir().expect("temp dir");
    let cases = [
        (Bits::Int8, 8_000, 1),
        (Bits::Int16, 22_050, 2),
        (Bits::Int24, 44_100, 1),
        (Bits::Int32, 48_000, 2),
        (Bits::Float32, 96_000, 1),
        (Bits::Int16, 16_000, 2),
    ];
    for (bits, rate, channels) in cases {
        let path = dir.path().join(format!("{bits:?}-{rate}-{channels}.wav"));
        let frames = rate as usize; // one second
        write_wav(&path, rate, channels, bits, frames, |i| {
            0.5 * (2.0 * std::f32::consts::PI * 440.0 * i as f32 / rate as f32).sin()
        });
        let what = format!("{bits:?} {rate} Hz {channels} ch");
        // 8-bit quantisation noise is loud; the others are exact to a few thousandths.
        let tolerance = if matches!(bits, Bits::Int8) { 0.01 } else { 0.003 };
        check_tone(&what, &decode_all(&path, OUT, 0.0), 1.0, 0.5, tolerance);
        let report = probe(&path).expect("probe");
        assert_eq!((report.rate, report.channels), (rate, usize::from(channels)), "{what}");
        assert!((report.duration.as_secs_f64() - 1.0).abs() < 1e-3, "{what}");
    }
}

#[test]
fn mp3_ogg_and_flac_decode_to_the_same_tone() {
    // Fixtures made with ffmpeg (see tests/audio_fixtures/README.md): 440 Hz at ffmpeg's
    // sine amplitude 1/8, halved: 0.0625 (and 3 dB less per channel when ffmpeg spread it
    // over stereo for the ogg).
    let stereo = 0.0625 / 2f64.sqrt();
    for (name, secs, amp) in [
        ("tone-440.mp3", 2.0, 0.0625),
        ("tone-440.ogg", 6.0, stereo),
        ("tone-440.flac", 2.0, 0.0625),
    ] {
        let samples = decode_all(&fixture(name), OUT, 0.0);
        // Lossy codecs shift the level by up to about half a decibel.
        check_tone(name, &samples, secs, amp, amp / 2f64.sqrt() * 0.06);
    }
}

#[test]
fn stereo_down_mixes_to_mono_and_gain_scales() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("stereo.wav");
    tone_wav(&path, 48_000, 2, 0.5, 440.0, 0.5);
    let mono = AudioFormat { rate: 48_000, channels: 1 };
    let plain = decode_all(&path, mono, 0.0);
    let quieter = decode_all(&path, mono, -20.0);
    assert_eq!(plain.len(), 24_000);
    assert!((rms(&plain) - 0.5 / 2f64.sqrt()).abs() < 0.002);
    assert!((rms(&quieter) / rms(&plain) - 0.1).abs() < 1e-4, "-20 dB is a tenth");
}

#[test]
fn probe_measures_loudness_and_peak() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("tone.wav");
    // A 1 kHz stereo sine peaking at -20 dBFS reads about -20 LUFS: RMS is 3 dB under the
    // peak, the two channels add 3 dB, and K-weighting at 1 kHz cancels R128's offset.
    tone_wav(&path, 48_000, 2, 3.0, 1_000.0, 0.1);
    let report = probe(&path).expect("probe");
    assert_eq!(report.format, "wave");
    assert!(report.codec.contains("pcm"), "codec {}", report.codec);
    assert!((report.peak_dbfs - (-20.0)).abs() < 0.05, "peak {}", report.peak_dbfs);
    assert!(
        (report.integrated_lufs - (-20.0)).abs() < 0.5,
        "integrated {} LUFS",
        report.integrated_lufs
    );
}

#[test]
fn the_probe_command_prints_a_table_and_fails_on_a_bad_file() {
    let root = root();
    let dir = tempfile::tempdir().expect("temp dir");
    let bad = dir.path().join("notes.mp3");
    std::fs::write(&bad, "not audio at all\n").expect("write");
    let output = command()
        .args(["audio", "probe"])
        .arg(root.join("audio/ban-tin.mp3"))
        .arg(root.join("audio/nhac-hieu.ogg"))
        .arg(root.join("audio/chuong-bao.wav"))
        .arg(&bad)
        .output()
        .expect("run loa");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "stdout:\n{stdout}\nstderr:\n{stderr}");
    for needle in ["ban-tin.mp3", "nhac-hieu.ogg", "vorbis", "chuong-bao.wav", "22050", "LUFS"] {
        assert!(stdout.contains(needle), "{needle} missing from:\n{stdout}");
    }
    assert!(stderr.contains("notes.mp3: not a recognised audio file"), "stderr:\n{stderr}");

    let ok = command()
        .args(["audio", "probe"])
        .arg(root.join("audio/chuong-bao.wav"))
        .output()
        .expect("run loa");
    assert!(ok.status.success());
}

#[test]
fn the_sample_audio_is_what_the_schedules_expect() {
    let root = root().join("audio");
    let news = probe(&root.join("ban-tin.mp3")).expect("ban-tin.mp3");
    assert!((20.0..=30.0).contains(&news.duration.as_secs_f64()), "{news:?}");
    let jingle = probe(&root.join("nhac-hieu.ogg")).expect("nhac-hieu.ogg");
    assert!((1.0..=6.0).contains(&jingle.duration.as_secs_f64()), "{jingle:?}");
    let tone = probe(&root.join("chuong-bao.wav")).expect("chuong-bao.wav");
    assert!((tone.duration.as_secs_f64() - 2.0).abs() < 0.05, "{tone:?}");
    let total: u64 = std::fs::read_dir(&root)
        .expect("audio/")
        .filter_map(|e| e.ok()?.metadata().ok())
        .map(|m| m.len())
        .sum();
    assert!(total < 2 * 1024 * 1024, "audio/ is {total} bytes");
}
