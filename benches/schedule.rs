//! `cargo bench --bench schedule`: a 10,000-item schedule file is parsed, its audio
//! files checked on disk, and expanded a week ahead (plus the overlap check over that
//! week). Prints the time of each step (best and median of several runs); the target
//! is under 100 ms in release for parse + check + expand.

use std::hint::black_box;
use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use loa::schedule::{self, Timeline};

const ITEMS: usize = 10_000;
const RUNS: usize = 7;

/// A province-sized file: each item has its own minute of the week (10,080 minutes,
/// 10,000 items), mostly weekly, some monthly, some Mon–Sat at an odd second, some
/// one-off; a third with validity ranges and holidays. Durations are not declared, so
/// only plays starting at the same instant would clash (the overlap check still walks
/// every play).
fn generate(audio_files: usize) -> String {
    let mut s = String::from("layer = \"local\"\ntimezone = \"Asia/Ho_Chi_Minh\"\n");
    for i in 0..ITEMS {
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

fn time<T>(f: impl Fn() -> T) -> (Duration, Duration, T) {
    let mut times = Vec::with_capacity(RUNS);
    let mut last = None;
    for _ in 0..RUNS {
        let start = Instant::now();
        let out = black_box(f());
        times.push(start.elapsed());
        last = Some(out);
    }
    times.sort();
    (times[0], times[RUNS / 2], last.unwrap_or_else(|| f()))
}

fn ms(d: Duration) -> String {
    format!("{:8.2} ms", d.as_secs_f64() * 1000.0)
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
    let source = generate(audio_files);
    let base = dir.path().to_path_buf();
    // Tuesday 2026-12-01 00:00 in Vietnam.
    let from: DateTime<Utc> = DateTime::parse_from_rfc3339("2026-12-01T00:00:00+07:00")
        .map(|t| t.to_utc())
        .unwrap_or_default();
    let until = from + chrono::Duration::days(7);

    let (p_best, p_med, parsed) = time(|| schedule::parse(&source, "bench.toml", &base));
    let (t_best, t_med, _) = time(|| toml::de::DeTable::parse_recoverable(&source).1.len());
    let (c_best, c_med, missing) =
        time(|| schedule::check_files(&parsed, "bench.toml", &|p: &Path| p.is_file()));
    let Some(sched) = parsed.schedule.clone() else {
        eprintln!("the generated schedule has errors: {:?}", parsed.diagnostics.first());
        std::process::exit(1);
    };
    let timeline = Timeline::new(vec![sched]);
    let (e_best, e_med, plays) = time(|| timeline.occurrences(from, until));
    let (o_best, o_med, overlaps) = time(|| timeline.conflicts(from, until, &|_| None));

    println!("schedule benchmark: {ITEMS} items, {} bytes of TOML, {RUNS} runs", source.len());
    println!("                        best       median");
    println!("parse              {} {}", ms(p_best), ms(p_med));
    println!("  of which TOML    {} {}", ms(t_best), ms(t_med));
    println!("check audio files  {} {}   ({} missing)", ms(c_best), ms(c_med), missing.len());
    println!("expand one week    {} {}   ({} plays)", ms(e_best), ms(e_med), plays.len());
    println!("overlaps one week  {} {}   ({} diagnostics)", ms(o_best), ms(o_med), overlaps.len());
    let total = p_med + c_med + e_med;
    println!("parse+check+expand {} (median sum; target < 100 ms in release)", ms(total));
}
