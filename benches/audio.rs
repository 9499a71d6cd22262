//! Audio figures: decode speed (× real time) per format, decoding and converting to the
//! sink's 48 kHz stereo, and the CPU time the player spends on 60 s of MP3 played to the
//! null sink. Run with `cargo bench --bench audio` (release); it prints its figures.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use loa::audio::sinks::{self, SinkOptions};
use loa::audio::{AudioFormat, Player, PlayerConfig, PlayerEvent, Source, probe};
use loa::clock::{SharedClock, SystemClock};

const OUT: AudioFormat = AudioFormat { rate: 48_000, channels: 2 };

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Decodes `path` fully to the sink format; returns output frames.
fn decode_once(path: &Path) -> u64 {
    let mut source = match Source::open(path, OUT, 0.0) {
        Ok(source) => source,
        Err(e) => panic!("{e}"),
    };
    let mut buf = vec![0.0f32; 4096 * OUT.channels];
    let mut frames = 0u64;
    loop {
        let n = match source.fill(&mut buf) {
            Ok(n) => n,
            Err(e) => panic!("{e}"),
        };
        frames += n as u64;
        if n * OUT.channels < buf.len() {
            return frames;
        }
    }
}

/// Process CPU time (user + system, all threads), from /proc/self/stat.
fn cpu_time() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command name: state is field 3, utime 14, stime 15 (1-based, whole line).
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    // Linux reports clock ticks of 1/100 s on every mainstream architecture.
    Some(Duration::from_millis((utime + stime) * 10))
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too, without it:
    // then do one quick pass as a smoke test instead of measuring.
    let measure = std::env::args().any(|a| a == "--bench");
    if !measure {
        println!("(smoke run under cargo test: figures are not measurements)");
    }
    let min_time = if measure { Duration::from_secs(2) } else { Duration::ZERO };
    let min_runs = if measure { 3 } else { 1 };
    let player_audio = Duration::from_secs(if measure { 60 } else { 1 });
    let dir = match tempfile::tempdir() {
        Ok(dir) => dir,
        Err(e) => panic!("temp dir: {e}"),
    };
    let wav = dir.path().join("speech-like.wav");
    {
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&wav, spec).expect("bench wav");
        for i in 0..44_100 * 30 {
            let t = i as f32 / 44_100.0;
            let v = 0.3 * (2.0 * std::f32::consts::PI * 220.0 * t).sin() * (t * 3.0).sin().abs();
            w.write_sample((v * 32767.0) as i16).expect("bench wav");
        }
        w.finalize().expect("bench wav");
    }
    let files = [
        ("mp3 (44.1 kHz mono 48 kb/s)", root().join("audio/ban-tin.mp3")),
        ("ogg vorbis (44.1 kHz stereo)", root().join("tests/audio_fixtures/tone-440.ogg")),
        ("flac (48 kHz mono 32-bit)", root().join("tests/audio_fixtures/tone-440.flac")),
        ("wav (44.1 kHz mono 16-bit)", wav.clone()),
        ("wav (22.05 kHz mono 16-bit)", root().join("audio/chuong-bao.wav")),
    ];
    println!("decode + convert to {} Hz {} ch, × real time:", OUT.rate, OUT.channels);
    for (label, path) in &files {
        let secs = match probe(path) {
            Ok(r) => r.duration.as_secs_f64(),
            Err(e) => panic!("{e}"),
        };
        // Measured in CPU time, so other work on the machine does not skew the figure.
        let started = Instant::now();
        let cpu_start = cpu_time();
        let mut audio = 0.0;
        let mut runs = 0;
        loop {
            let frames = decode_once(path);
            audio += frames as f64 / f64::from(OUT.rate);
            runs += 1;
            let cpu = cpu_time().zip(cpu_start).map(|(now, then)| now.saturating_sub(then));
            let spent = cpu.unwrap_or_else(|| started.elapsed());
            if spent >= min_time && runs >= min_runs {
                let secs_spent = spent.as_secs_f64().max(0.01);
                println!(
                    "  {label:<30} {:>8.0}× real time  ({runs} runs of {secs:.1} s in {:.2} s {})",
                    audio / secs_spent,
                    secs_spent,
                    if cpu.is_some() { "CPU" } else { "wall" }
                );
                break;
            }
        }
    }

    // Player CPU: 60 s of MP3 through the whole player to the null sink.
    let clock: SharedClock = Arc::new(SystemClock);
    let sink = match sinks::open("null", SinkOptions { clock: clock.clone(), ..Default::default() })
    {
        Ok(sink) => sink,
        Err(e) => panic!("{e}"),
    };
    let (player, mut events) = Player::spawn(sink, clock.clone(), PlayerConfig::default());
    let news = root().join("audio/ban-tin.mp3");
    let cpu_before = cpu_time();
    let wall = Instant::now();
    let mut played = Duration::ZERO;
    let mut id = 0;
    while played < player_audio {
        id += 1;
        player.prepare(id, news.clone(), 0.0);
        loop {
            match events.blocking_recv() {
                Some(PlayerEvent::Prepared { .. }) => player.start_at(id, clock.now()),
                Some(PlayerEvent::Started { .. }) => {}
                Some(PlayerEvent::Finished { proof, .. }) => {
                    played += proof.duration;
                    break;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let wall = wall.elapsed();
    player.shutdown();
    match (cpu_before, cpu_time()) {
        (Some(before), Some(after)) => {
            let cpu = after.saturating_sub(before);
            println!(
                "player, mp3 → null sink: {:.1} s of audio in {:.0} ms CPU ({:.0} ms wall); \
                 {:.0} ms CPU per 60 s of audio ({:.2}% of one core in real time)",
                played.as_secs_f64(),
                cpu.as_secs_f64() * 1e3,
                wall.as_secs_f64() * 1e3,
                cpu.as_secs_f64() * 1e3 * 60.0 / played.as_secs_f64(),
                cpu.as_secs_f64() / played.as_secs_f64() * 100.0
            );
        }
        _ => println!(
            "player, mp3 → null sink: {:.1} s of audio in {:.0} ms wall (no /proc for CPU time)",
            played.as_secs_f64(),
            wall.as_secs_f64() * 1e3
        ),
    }
}
