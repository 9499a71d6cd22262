//! `cargo bench --bench schedule`: 10,000 items in ten files of 1,000 (a file holds at
//! most 1,000: `schedule::limits`) are parsed, their audio files checked on disk, and
//! expanded a week ahead (plus the overlap check over that week). Prints the time of each step (best and median wall-clock time of several runs, and mean CPU time); the target
//! is under 100 ms in release for parse + check + expand.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use loa::schedule::{self, Timeline};

const ITEMS: usize = 10_000;
/// Items per file: the most a file may hold.
const PER_FILE: usize = schedule::limits::MAX_ITEMS;
const RUNS: usize = 11;

/// A province-sized file: each item has its own minute of the week (10,080 minutes,
/// 10,000 items), mostly weekly, some monthly, some Mon–Sat at an odd second, some
/// one-off; a third with validity ranges and holidays. Durations are not declared, so
/// only plays starting at the same instant would clash (the overlap check still walks
/// every play).
fn generate(audio_files: usize, file: usize) -> String {
    let mut s = String::from("layer = \"local\"\ntimezone = \"Asia/Ho_Chi_Minh\"\n");
    for i in file * PER_FILE..(file + 1) * PER_FILE {
        let weekday = i / 1440;
        let minute = i % 60;
        let hour = (i % 1440) / 60;
        let when = match i % 10 {
            0..=6 => format!("cron = \"{minute} {hour} * * {weekday}\""),
            7 => format!("cron = \"{minute} {hour} {} * *\"", 1 + i % 28),
            8 => format!("cron = \"{} {minute} {hour} * * 1-6\"", 1 + i % 59),
            _ => format!("at = 2026-12-{:02}T{hour:02}:{minute:02}:30", 1 + i % 28),
        };
        s.push_str(&format!(
            "\n[[item]]\nid = \"item-{i}\"\ntitle = \"Chương trình số {i} của xã\"\n\
             audio = \"audio/tep-{}.mp3\"\n{when}\n",
            i % audio_files,
        ));
        if i % 3 == 0 {
            s.push_str("from = 2026-11-01\nuntil = 2027-12-31\nskip = [2027-01-01, 2027-02-06]\n");
        }
        if i % 4 == 0 {
            s.push_str("priority = \"priority\"\nmax_delay = \"10m\"\n");
        }
    }
    s
}

/// Time this thread has spent on a CPU, in nanoseconds (Linux schedstat), when known:
/// on a shared machine the wall clock also counts time spent waiting for a core. The
/// kernel updates it at scheduler ticks, so it is only read around all the runs.
fn cpu_ns() -> Option<u64> {
    let stat = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    stat.split_whitespace().next()?.parse().ok()
}

/// One step's figures: best and median wall time, mean CPU time, over `RUNS` runs.
struct Figures {
    best: Duration,
    median: Duration,
    cpu: Option<Duration>,
}

fn time<T>(f: impl Fn() -> T) -> (Figures, T) {
    let mut walls = Vec::with_capacity(RUNS);
    let mut last = None;
    let cpu_start = cpu_ns();
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = black_box(f());
        walls.push(start.elapsed());
        last = Some(out);
    }
    let cpu = match (cpu_start, cpu_ns()) {
        (Some(a), Some(b)) => Some(Duration::from_nanos(b.saturating_sub(a) / RUNS as u64)),
        _ => None,
    };
    walls.sort();
    let figures = Figures { best: walls[0], median: walls[RUNS / 2], cpu };
    (figures, last.unwrap_or_else(f))
}

fn ms(d: Duration) -> String {
    format!("{:8.2} ms", d.as_secs_f64() * 1000.0)
}

fn row(name: &str, f: &Figures, note: &str) {
    let cpu = f.cpu.map_or("       n/a".to_string(), ms);
    println!("{name:<20}{} {} {cpu}   {note}", ms(f.best), ms(f.median));
}

fn main() {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot create a temporary folder: {e}");
            std::process::exit(1);
        }
    };
    let audio_files = 50;
    for i in 0..audio_files {
        let _ = std::fs::create_dir_all(dir.path().join("audio"));
        if let Err(e) = std::fs::write(dir.path().join(format!("audio/tep-{i}.mp3")), b"x") {
            eprintln!("cannot write test audio: {e}");
            std::process::exit(1);
        }
    }
    let sources: Vec<String> = (0..ITEMS / PER_FILE).map(|f| generate(audio_files, f)).collect();
    let bytes: usize = sources.iter().map(String::len).sum();
    let base = dir.path().to_path_buf();
    // Tuesday 2026-12-01 00:00 in Vietnam.
    let from: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-12-01T00:00:00+07:00")
        .map(|t| t.to_utc())
        .unwrap_or_default();
    let until = from + chrono::Duration::days(7);

    // LOA_BENCH_PARSE_ONLY=N: parse N times and stop (for profiling the parser).
    if let Some(n) = std::env::var("LOA_BENCH_PARSE_ONLY").ok().and_then(|n| n.parse().ok()) {
        for _ in 0..n {
            for source in &sources {
                black_box(schedule::parse(source, "bench.toml", &base));
            }
        }
        return;
    }
    let (parse, parsed) = time(|| {
        sources.iter().map(|s| schedule::parse(s, "bench.toml", &base)).collect::<Vec<_>>()
    });
    let (toml, _) = time(|| {
        sources.iter().map(|s| toml::de::DeTable::parse_recoverable(s).1.len()).sum::<usize>()
    });
    let (check, missing) = time(|| {
        parsed
            .iter()
            .flat_map(|p| schedule::check_files(p, "bench.toml", &|p: &Path| p.is_file()))
            .collect::<Vec<_>>()
    });
    let mut schedules = Vec::new();
    for p in &parsed {
        match &p.schedule {
            Some(s) => schedules.push(s.clone()),
            None => {
                eprintln!("the generated schedule has errors: {:?}", p.diagnostics.first());
                std::process::exit(1);
            }
        }
    }
    let timeline = Timeline::new(schedules);
    let (expand, plays) = time(|| timeline.occurrences(from, until));
    let (overlaps, found) = time(|| timeline.conflicts(from, until, &|_| None));

    println!(
        "schedule benchmark: {ITEMS} items in {} files, {bytes} bytes of TOML, {RUNS} runs",
        sources.len()
    );
    println!("                    wall best  wall median   CPU mean");
    row("parse", &parse, "");
    row("  of which TOML", &toml, "(the toml crate alone)");
    row("check audio files", &check, &format!("({} missing)", missing.len()));
    row("expand one week", &expand, &format!("({} plays)", plays.len()));
    row("overlaps one week", &overlaps, &format!("({} diagnostics)", found.len()));
    let sum = |f: fn(&Figures) -> Option<Duration>| -> Option<Duration> {
        Some(f(&parse)? + f(&check)? + f(&expand)?)
    };
    let best = sum(|f| Some(f.best)).unwrap_or_default();
    let median = sum(|f| Some(f.median)).unwrap_or_default();
    let cpu = sum(|f| f.cpu).map_or("       n/a".to_string(), ms);
    println!(
        "parse+check+expand  {} {} {cpu}   (target < 100 ms in release)",
        ms(best),
        ms(median)
    );
}
