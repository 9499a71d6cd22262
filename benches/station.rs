//! Station figures. Run with `cargo bench --bench station`; it prints its figures.
//!
//! 1. On-time start error: the real daemon (scheduler, player, SQLite ledger) plays
//!    ≥ 200 short items from a schedule on the clocked sink paced by the system clock,
//!    while two threads keep both cores busy. The error is the recorded start (the
//!    sink's timeline, re-anchored to the wall clock after any underrun) minus the
//!    planned instant.
//! 2. The `loa station` process playing MP3, peak RSS (VmHWM) and CPU seconds per audio
//!    second, twice: on the clocked sink (decode, resample, render, ledger — paced in real
//!    time like a sound card) and through cpal into the ALSA file tap
//!    (tests/alsa/file-tap.conf.in). The tap's null slave does not pace, so the second
//!    process renders (silence, mostly) as fast as it can: its CPU figure is the rig's,
//!    not what a sound card costs.
//! 3. Idle cost: a `loa station` with nothing due for two hours, CPU seconds per wall
//!    second over 30 s (`/proc/PID/task/*/schedstat`, to the nanosecond), through cpal →
//!    ALSA into a FIFO read at real-time rate, and on the clocked sink.
//!    `LOA_BENCH_IDLE_ONLY=SECONDS` runs only this; `LOA_BENCH_LOA=PATH` measures another
//!    `loa` binary (the previous version, for a before/after).
//! 4. Relay cost: the `loa station` process relaying an MP3 stream (48 kHz stereo,
//!    128 kbit/s, served at real-time pace by a server inside the bench) for 60 s on the
//!    clocked sink: peak RSS and CPU seconds per audio second, beside item 2's file
//!    figures [≤ ×2]. `LOA_BENCH_RELAY_ONLY=1` runs items 2 (clocked) and 4 only.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use loa::audio::AudioFormat;
use loa::audio::sinks::ClockedSink;
use loa::clock::{SharedClock, SystemClock};
use loa::station::ledger::{Filter, Ledger, Outcome, Record};
use loa::station::{Station, StationConfig};

/// Starts measured by `cargo bench` (a `cargo test` smoke run does 10).
const STARTS: usize = 220;
const SPACING_MS: i64 = 200;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn write_tone(path: &Path, rate: u32, seconds: f64) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("bench wav");
    for i in 0..(seconds * f64::from(rate)) as usize {
        let s = (i as f64 * 440.0 * std::f64::consts::TAU / f64::from(rate)).sin() * 0.5;
        w.write_sample((s * 32767.0) as i16).expect("bench wav");
    }
    w.finalize().expect("bench wav");
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Millis, true)
}

fn records(db: &Path) -> Vec<Record> {
    Ledger::open_existing(db).and_then(|l| l.query(&Filter::default())).unwrap_or_default()
}

fn wait_for<T>(what: &str, limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

/// Two threads that keep both cores busy until dropped.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<u64>>,
}

impl Load {
    fn start(n: usize) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..n)
            .map(|i| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = i as u64 + 1;
                    while !stop.load(Ordering::Relaxed) {
                        for _ in 0..10_000 {
                            x = x
                                .wrapping_mul(6364136223846793005)
                                .wrapping_add(1442695040888963407);
                        }
                    }
                    x
                })
            })
            .collect();
        Self { stop, threads }
    }
}

impl Drop for Load {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn start_error(starts: usize, busy_threads: usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    // 44.1 kHz so the resampler to the sink's 48 kHz runs too.
    write_tone(&dir.path().join("tone.wav"), 44_100, 0.08);
    let first = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(4);
    let mut toml = String::from("layer = \"provincial\"\n");
    for i in 0..starts {
        let planned = first + chrono::Duration::milliseconds(SPACING_MS * i as i64);
        toml.push_str(&format!(
            "[[item]]\nid = \"i{i}\"\ntitle = \"Mục {i}\"\naudio = \"tone.wav\"\nat = {}\n",
            at(planned)
        ));
    }
    std::fs::write(dir.path().join("provincial.toml"), toml).expect("schedule");
    let mut config = StationConfig::standalone("bench", dir.path().join("data"));
    config.provincial_schedule = Some(dir.path().join("provincial.toml"));
    let db = config.ledger_path();

    let clock: SharedClock = Arc::new(SystemClock);
    let format = AudioFormat { rate: 48_000, channels: 2 };
    let (sink, _) = ClockedSink::new(format, clock.clone(), 1024, false);
    // A late write means a real card would have played a gap: move the timeline, so a
    // start that came too late shows up as late.
    let sink = sink.with_resync_after(Duration::from_millis(2));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let daemon = runtime.spawn(async move {
        let (station, _handle) =
            Station::with_sink(config, clock, Box::new(sink)).expect("station starts");
        station
            .run(async {
                let _ = stop_rx.await;
            })
            .await
    });
    let load = Load::start(busy_threads);
    let all = wait_for("every start recorded", Duration::from_secs(120), || {
        let all = records(&db);
        (all.len() >= starts).then_some(all)
    });
    drop(load);
    let _ = stop_tx.send(());
    let _ = runtime.block_on(daemon);

    let mut errors_ms: Vec<f64> = Vec::new();
    let mut not_played = 0;
    for r in &all {
        match (r.entry.outcome, r.entry.started) {
            (Outcome::Played | Outcome::Late, Some(started)) => {
                let err = (started - r.entry.planned).num_microseconds().unwrap_or(i64::MAX);
                errors_ms.push(err as f64 / 1000.0);
            }
            _ => not_played += 1,
        }
    }
    errors_ms.sort_by(f64::total_cmp);
    let abs: Vec<f64> = {
        let mut a: Vec<f64> = errors_ms.iter().map(|e| e.abs()).collect();
        a.sort_by(f64::total_cmp);
        a
    };
    println!("start error, clocked sink at 48 kHz, {busy_threads} busy threads loading the cores:");
    println!("  starts recorded: {} (not played: {not_played})", all.len());
    if !abs.is_empty() {
        println!(
            "  |error| p50 {:.3} ms  p99 {:.3} ms  max {:.3} ms  (signed min {:.3} ms, max {:.3} ms)",
            percentile(&abs, 0.50),
            percentile(&abs, 0.99),
            abs[abs.len() - 1],
            errors_ms[0],
            errors_ms[errors_ms.len() - 1],
        );
        let over = |ms: f64| abs.iter().filter(|e| **e > ms).count();
        println!(
            "  starts off by > 1 ms: {}, > 10 ms: {}, > 100 ms: {}",
            over(1.0),
            over(10.0),
            over(100.0)
        );
    }
}

/// VmHWM (peak resident set) of a process, in kB.
fn peak_rss_kb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// User + system CPU time of a process.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = after.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(Duration::from_millis((utime + stime) * 10))
}

/// Runs `loa station` with `sink` playing the sample MP3 twice and prints its cost.
fn daemon_cost(sink: &str, label: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("capture.raw");
    let template = std::fs::read_to_string(root().join("tests/alsa/file-tap.conf.in"))
        .expect("tests/alsa/file-tap.conf.in");
    let alsa_conf = dir.path().join("alsa.conf");
    std::fs::write(&alsa_conf, template.replace("@OUT@", &capture.display().to_string()))
        .expect("alsa conf");
    let mp3 = root().join("audio/ban-tin.mp3");
    let first = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(3);
    let mut toml = String::from("layer = \"provincial\"\n");
    for (i, offset) in [0i64, 30].iter().enumerate() {
        toml.push_str(&format!(
            "[[item]]\nid = \"ban-tin-{i}\"\ntitle = \"Bản tin\"\naudio = \"{}\"\nat = {}\n",
            mp3.display(),
            at(first + chrono::Duration::seconds(*offset))
        ));
    }
    std::fs::write(dir.path().join("provincial.toml"), toml).expect("schedule");
    let config = dir.path().join("station.toml");
    std::fs::write(
        &config,
        format!(
            "station_id = \"bench\"\ndata_dir = \"data\"\nprovincial_schedule = \"provincial.toml\"\n\
             [audio]\nsink = \"{sink}\"\n"
        ),
    )
    .expect("config");
    let db = dir.path().join("data/ledger.sqlite3");
    let mut child = Command::new(env!("CARGO_BIN_EXE_loa"))
        .args(["station", "--config"])
        .arg(&config)
        .env("ALSA_CONFIG_PATH", &alsa_conf)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start loa station");
    let pid = child.id();
    let started = Instant::now();
    let all = wait_for("both bulletins recorded", Duration::from_secs(120), || {
        let all = records(&db);
        (all.len() >= 2).then_some(all)
    });
    let cpu = cpu_time(pid).unwrap_or_default();
    let rss = peak_rss_kb(pid).unwrap_or_default();
    let wall = started.elapsed();
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
    let audio: f64 = all.iter().filter_map(|r| r.entry.played_secs).sum();
    println!("loa station process, MP3 (44.1 kHz mono 48 kb/s) → {label}:");
    for r in &all {
        println!(
            "  {} {} played {:.1} s, start error {:?} ms",
            r.entry.item_id,
            r.entry.outcome,
            r.entry.played_secs.unwrap_or(0.0),
            r.entry.delay_ms
        );
    }
    println!("  wall {:.1} s (whole process life, idle included)", wall.as_secs_f64());
    println!("  peak RSS (VmHWM) {:.1} MB", rss as f64 / 1024.0);
    println!(
        "  CPU {:.2} s for {:.1} audio s = {:.4} CPU-s per audio second",
        cpu.as_secs_f64(),
        audio,
        if audio > 0.0 { cpu.as_secs_f64() / audio } else { f64::NAN }
    );
    if let Ok(meta) = std::fs::metadata(&capture) {
        // The tap's negotiated format is 48 kHz stereo f32 (`loa audio play` prints it).
        let rendered = meta.len() as f64 / (48_000.0 * 2.0 * 4.0);
        println!(
            "  the tap took {rendered:.0} s of sound (silence included) in {:.1} s of wall time: \
             {:.4} CPU-s per second rendered",
            wall.as_secs_f64(),
            cpu.as_secs_f64() / rendered.max(f64::MIN_POSITIVE)
        );
    }
}

/// CPU time of every thread of a process still alive, to the nanosecond
/// (`/proc/PID/task/*/schedstat`: the first field is time spent on a CPU).
fn cpu_ns(pid: u32) -> u64 {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return 0 };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

/// A sound card made of a FIFO: ALSA's file plugin writes the stream into it and this
/// thread takes it at the stream's real-time rate (`rate` bytes per second, 0 until
/// known), so the station is paced as by a real card.
fn paced_reader(fifo: PathBuf, rate: Arc<std::sync::atomic::AtomicU64>, stop: Arc<AtomicBool>) {
    std::thread::spawn(move || {
        use std::io::Read;
        let Ok(mut file) = std::fs::File::open(&fifo) else { return };
        let mut buf = vec![0u8; 4096];
        while rate.load(Ordering::SeqCst) == 0 && !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(10));
        }
        let per_sec = rate.load(Ordering::SeqCst).max(1) as f64;
        let mut next = Instant::now();
        while !stop.load(Ordering::SeqCst) {
            if let Some(wait) = next.checked_duration_since(Instant::now()) {
                std::thread::sleep(wait);
            }
            match file.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    next = next.max(Instant::now()) + Duration::from_secs_f64(n as f64 / per_sec)
                }
            }
        }
    });
}

/// A `loa station` with nothing due for two hours: CPU seconds per wall second over
/// `seconds`, after a few seconds to settle. `sink` "default" goes through cpal → ALSA's
/// file plugin into a FIFO read at real-time rate (a paced sound card); "clocked" is
/// the clocked sink. `LOA_BENCH_LOA` runs another `loa` binary (e.g. the previous
/// version's, for a before/after figure).
fn idle_cost(sink: &str, seconds: u64) -> f64 {
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("card.fifo");
    let status = Command::new("mkfifo").arg(&fifo).status().expect("mkfifo");
    assert!(status.success(), "mkfifo failed");
    let template = std::fs::read_to_string(root().join("tests/alsa/file-tap.conf.in"))
        .expect("tests/alsa/file-tap.conf.in");
    let alsa_conf = dir.path().join("alsa.conf");
    std::fs::write(&alsa_conf, template.replace("@OUT@", &fifo.display().to_string()))
        .expect("alsa conf");
    let mp3 = root().join("audio/ban-tin.mp3");
    let later = Utc::now().trunc_subsecs(0) + chrono::Duration::hours(2);
    std::fs::write(
        dir.path().join("provincial.toml"),
        format!(
            "layer = \"provincial\"\n[[item]]\nid = \"ban-tin\"\ntitle = \"Bản tin\"\naudio = \"{}\"\nat = {}\n",
            mp3.display(),
            at(later)
        ),
    )
    .expect("schedule");
    let config = dir.path().join("station.toml");
    std::fs::write(
        &config,
        format!(
            "station_id = \"bench\"\ndata_dir = \"data\"\nprovincial_schedule = \"provincial.toml\"\n\
             [audio]\nsink = \"{sink}\"\n"
        ),
    )
    .expect("config");
    let rate = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let stop = Arc::new(AtomicBool::new(false));
    if sink == "default" {
        paced_reader(fifo.clone(), rate.clone(), stop.clone());
    }
    let binary =
        std::env::var("LOA_BENCH_LOA").unwrap_or_else(|_| env!("CARGO_BIN_EXE_loa").into());
    let mut child = Command::new(&binary)
        .args(["station", "--config"])
        .arg(&config)
        .env("ALSA_CONFIG_PATH", &alsa_conf)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loa station");
    let pid = child.id();
    let stderr = child.stderr.take().expect("stderr");
    let rate_from_log = rate.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            // Log lines carry colour codes: drop them before reading `key=value`.
            let mut plain = String::new();
            let mut chars = line.chars();
            while let Some(c) = chars.next() {
                if c == '\u{1b}' {
                    for c in chars.by_ref() {
                        if c.is_ascii_alphabetic() {
                            break;
                        }
                    }
                } else {
                    plain.push(c);
                }
            }
            let line = plain;
            if line.contains("sound card stream started") {
                let value = |key: &str| -> u64 {
                    line.split_whitespace()
                        .find_map(|w| w.strip_prefix(key)?.strip_prefix('='))
                        .map(|v| v.trim_matches(|c: char| !c.is_ascii_alphanumeric()))
                        .map_or(0, |v| match v {
                            "f32" => 4,
                            "i16" => 2,
                            v => v.parse().unwrap_or(0),
                        })
                };
                let bytes = value("rate") * value("channels") * value("sample_format");
                rate_from_log.store(bytes, Ordering::SeqCst);
            }
        }
    });
    std::thread::sleep(Duration::from_secs(5));
    if sink == "default" {
        assert!(rate.load(Ordering::SeqCst) > 0, "the station did not say its stream's format");
    }
    let (cpu0, t0) = (cpu_ns(pid), Instant::now());
    std::thread::sleep(Duration::from_secs(seconds));
    let (cpu1, wall) = (cpu_ns(pid), t0.elapsed());
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    stop.store(true, Ordering::SeqCst);
    let _ = child.wait();
    let per_second = (cpu1.saturating_sub(cpu0)) as f64 / 1e9 / wall.as_secs_f64();
    println!(
        "idle loa station ({binary}), sink {sink}{}: {:.4} s CPU in {:.1} s = {per_second:.5} CPU-s per wall second",
        if sink == "default" { " (cpal → ALSA → FIFO read at real-time rate)" } else { "" },
        (cpu1.saturating_sub(cpu0)) as f64 / 1e9,
        wall.as_secs_f64()
    );
    per_second
}

#[path = "../tests/support/stream.rs"]
#[allow(dead_code)] // the tests' cuts are not used here
mod stream;

/// Runs `loa station` relaying a 60 s slot of an MP3 stream and prints its cost.
fn relay_cost() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mp3 = stream::sox_tone(&dir.path().join("stream.mp3"), 120.0, 440.0, 0.5);
    let server = stream::StreamServer::start(mp3, 120.0, "audio/mpeg");
    let first = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(6);
    let toml = format!(
        "layer = \"provincial\"\n[[item]]\nid = \"tiep-song\"\ntitle = \"Tiếp sóng\"\nstream = \"{}\"\nduration = \"60s\"\nat = {}\n",
        server.url("/live"),
        at(first)
    );
    std::fs::write(dir.path().join("provincial.toml"), toml).expect("schedule");
    let config = dir.path().join("station.toml");
    std::fs::write(
        &config,
        "station_id = \"bench\"\ndata_dir = \"data\"\nprovincial_schedule = \"provincial.toml\"\n[audio]\nsink = \"clocked\"\n",
    )
    .expect("config");
    let db = dir.path().join("data/ledger.sqlite3");
    let mut child = Command::new(env!("CARGO_BIN_EXE_loa"))
        .args(["station", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start loa station");
    let pid = child.id();
    let started = Instant::now();
    let all = wait_for("the relay recorded", Duration::from_secs(120), || {
        let all = records(&db);
        (!all.is_empty()).then_some(all)
    });
    let cpu = cpu_time(pid).unwrap_or_default();
    let rss = peak_rss_kb(pid).unwrap_or_default();
    let wall = started.elapsed();
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = child.wait();
    let relayed: f64 = all.iter().filter_map(|r| r.entry.relay.map(|f| f.relayed_secs)).sum();
    let slot: f64 = all.iter().filter_map(|r| r.entry.played_secs).sum();
    println!("loa station process relaying an MP3 stream (48 kHz stereo 128 kb/s) → clocked sink:");
    for r in &all {
        let facts = r.entry.relay.map(|f| f.summary()).unwrap_or_default();
        println!(
            "  {} {} {facts}, start error {:?} ms",
            r.entry.item_id, r.entry.outcome, r.entry.delay_ms
        );
    }
    println!(
        "  wall {:.1} s (whole process life, connecting and idle included)",
        wall.as_secs_f64()
    );
    println!("  peak RSS (VmHWM) {:.1} MB", rss as f64 / 1024.0);
    println!(
        "  CPU {:.2} s for {:.1} audio s ({relayed:.1} s from the stream) = {:.4} CPU-s per audio second",
        cpu.as_secs_f64(),
        slot,
        if slot > 0.0 { cpu.as_secs_f64() / slot } else { f64::NAN }
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    if std::env::var_os("LOA_BENCH_RELAY_ONLY").is_some() {
        daemon_cost("clocked", "clocked sink at 48 kHz stereo, paced by the system clock");
        relay_cost();
        return;
    }
    if let Ok(seconds) = std::env::var("LOA_BENCH_IDLE_ONLY") {
        let seconds = seconds.parse().unwrap_or(30);
        idle_cost("default", seconds);
        idle_cost("clocked", seconds);
        return;
    }
    // `cargo bench` passes --bench; `cargo test --all-targets` runs this too, without it:
    // then a few starts as a smoke test, no figures worth quoting.
    if !std::env::args().any(|a| a == "--bench") {
        println!("(smoke run under cargo test: figures are not measurements)");
        start_error(10, 0);
        return;
    }
    start_error(STARTS, 2);
    daemon_cost("clocked", "clocked sink at 48 kHz stereo, paced by the system clock");
    daemon_cost("default", "cpal → ALSA file tap (tests/alsa/file-tap.conf.in)");
    // Idle cost [≤ 0.001 CPU-s per wall second]: nothing due for two hours.
    idle_cost("default", 30);
    idle_cost("clocked", 30);
    relay_cost();
}
