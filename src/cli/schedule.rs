//! `loa schedule check|next`: what district staff type to validate and preview their
//! schedule files. All the meaning lives in [`crate::schedule`]; this module reads
//! files, asks the file system whether audio exists, and prints.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};

use crate::clock::{Clock, SystemClock};
use crate::schedule::{self, AudioRef, Diagnostic, Layer, Occurrence, Pos, Priority, Schedule};

#[derive(Debug, Args)]
pub struct ScheduleArgs {
    #[command(subcommand)]
    pub command: ScheduleCommand,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleCommand {
    /// Report every problem in the schedule files (exit 1 if any is an error).
    Check {
        /// Schedule files (TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// First instant checked for overlaps and for items that no longer play
        /// (RFC 3339; default: now).
        #[arg(long, value_parser = parse_instant)]
        from: Option<DateTime<Utc>>,
        /// How many days from `--from` are checked for overlaps.
        #[arg(long, default_value_t = 366, value_parser = clap::value_parser!(u32).range(1..=3660))]
        days: u32,
    },
    /// Show the next plays across the schedule files, in order.
    Next {
        /// Schedule files (TOML).
        #[arg(required = true)]
        files: Vec<PathBuf>,
        /// How many plays to show.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u32).range(1..=100_000))]
        count: u32,
        /// Show plays at or after this instant (RFC 3339, e.g. 2026-12-01T00:00:00+07:00;
        /// default: now).
        #[arg(long, value_parser = parse_instant)]
        from: Option<DateTime<Utc>>,
        #[arg(long, value_enum, default_value_t = Format::Table)]
        format: Format,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

fn parse_instant(s: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(s).map(|t| t.to_utc()).map_err(|e| {
        format!("{e}: write an RFC 3339 instant with its offset, e.g. 2026-12-01T05:00:00+07:00")
    })
}

/// The length of each distinct audio file the schedules reference, measured by decoding
/// it once (`loa audio probe`), for overlap checks: a declared `duration` is only a
/// fallback for audio this machine does not have (a `sha256:` reference, or a file that
/// does not decode — which `check_files`/the station report on their own).
fn audio_durations(schedules: &[Schedule]) -> HashMap<AudioRef, Duration> {
    let mut durations = HashMap::new();
    for item in schedules.iter().flat_map(|s| &s.items) {
        if let AudioRef::Path(path) = &item.audio {
            if durations.contains_key(&item.audio) {
                continue;
            }
            if let Ok(report) = crate::audio::probe(path) {
                durations.insert(item.audio.clone(), report.duration);
            }
        }
    }
    durations
}

pub fn run(args: ScheduleArgs) -> ExitCode {
    let result = match args.command {
        ScheduleCommand::Check { files, from, days } => {
            check(&files, from.unwrap_or_else(|| SystemClock.now()), days)
        }
        ScheduleCommand::Next { files, count, from, format } => {
            next(&files, from.unwrap_or_else(|| SystemClock.now()), count as usize, format)
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// One file read and parsed, with its diagnostics so far.
struct Loaded {
    origin: String,
    schedule: Option<Schedule>,
    diagnostics: Vec<Diagnostic>,
}

fn load(path: &Path) -> Loaded {
    let origin = path.display().to_string();
    let at_start = Pos { line: 1, column: 1 };
    let fail = |message: String| Loaded {
        origin: origin.clone(),
        schedule: None,
        diagnostics: vec![Diagnostic::error(&origin, at_start, message)],
    };
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) => return fail(format!("cannot read this file: {e}")),
    };
    let text = match String::from_utf8(bytes) {
        Ok(t) => t,
        Err(e) => {
            let at = e.utf8_error().valid_up_to();
            return fail(format!(
                "not UTF-8 text (bad byte at offset {at}): save the file as UTF-8"
            ));
        }
    };
    let base_dir = path.parent().unwrap_or(Path::new(""));
    let parsed = schedule::parse(&text, &origin, base_dir);
    let mut diagnostics = parsed.diagnostics.clone();
    diagnostics.extend(schedule::check_files(&parsed, &origin, &|p| p.is_file()));
    let has_error = diagnostics.iter().any(Diagnostic::is_error);
    Loaded { origin, schedule: if has_error { None } else { parsed.schedule }, diagnostics }
}

fn check(files: &[PathBuf], from: DateTime<Utc>, days: u32) -> anyhow::Result<ExitCode> {
    let mut loaded: Vec<Loaded> = files.iter().map(|f| load(f)).collect();
    for file in &mut loaded {
        let Some(s) = &file.schedule else { continue };
        for item in &s.items {
            if schedule::first_play(item, s.timezone, Some(from)).is_none() {
                let when = from.with_timezone(&s.timezone).format("%Y-%m-%d %H:%M");
                let message = format!(
                    "item \"{}\" has no plays after {when}: its validity has ended or its \
                     one-off time has passed",
                    item.id
                );
                file.diagnostics.push(Diagnostic::warning(&file.origin, item.pos, message));
            }
        }
    }
    let valid: Vec<Schedule> = loaded.iter().filter_map(|f| f.schedule.clone()).collect();
    let until = from + chrono::Duration::days(days.into());
    let durations = audio_durations(&valid);
    let duration_of = |audio: &AudioRef| durations.get(audio).copied();
    let conflicts = schedule::Timeline::new(valid).conflicts(from, until, &duration_of);
    for d in conflicts {
        if let Some(file) = loaded.iter_mut().find(|f| f.origin == d.origin) {
            file.diagnostics.push(d);
        }
    }

    let mut out = std::io::stdout().lock();
    let (mut errors, mut warnings) = (0, 0);
    for file in &mut loaded {
        file.diagnostics.sort_by_key(|d| (d.line, d.column));
        for d in &file.diagnostics {
            if d.is_error() {
                errors += 1;
            } else {
                warnings += 1;
            }
            writeln!(out, "{d}")?;
        }
    }
    let n = loaded.len();
    let files_word = if n == 1 { "file" } else { "files" };
    let summary = match (errors, warnings) {
        (0, 0) => "no problems".to_string(),
        (e, w) => format!("{} {}, {} {}", e, plural(e, "error"), w, plural(w, "warning")),
    };
    writeln!(out, "checked {n} {files_word}: {summary}")?;
    Ok(if errors > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { word.to_string() } else { format!("{word}s") }
}

fn next(
    files: &[PathBuf],
    from: DateTime<Utc>,
    count: usize,
    format: Format,
) -> anyhow::Result<ExitCode> {
    let loaded: Vec<Loaded> = files.iter().map(|f| load(f)).collect();
    let mut failed = false;
    for file in &loaded {
        for d in &file.diagnostics {
            eprintln!("{d}");
        }
        failed |= file.schedule.is_none();
    }
    if failed {
        eprintln!("error: fix the errors above first (`loa schedule check` lists them all)");
        return Ok(ExitCode::from(1));
    }
    let timeline = schedule::Timeline::new(loaded.into_iter().filter_map(|f| f.schedule).collect());
    let plays = timeline.next(from, count);
    let mut out = std::io::stdout().lock();
    match format {
        Format::Json => {
            let rows: Vec<serde_json::Value> = plays.iter().map(json_row).collect();
            serde_json::to_writer_pretty(&mut out, &rows).context("writing JSON")?;
            writeln!(out)?;
        }
        Format::Table => write_table(&mut out, &plays)?,
    }
    Ok(ExitCode::SUCCESS)
}

fn layer_name(l: Layer) -> &'static str {
    match l {
        Layer::Provincial => "provincial",
        Layer::Local => "local",
    }
}

fn priority_name(p: Priority) -> &'static str {
    match p {
        Priority::Normal => "normal",
        Priority::Priority => "priority",
        Priority::Emergency => "emergency",
    }
}

fn json_row(o: &Occurrence) -> serde_json::Value {
    let local = o.planned.with_timezone(&o.timezone);
    let audio = match &o.audio {
        AudioRef::Path(p) => p.display().to_string(),
        AudioRef::Sha256(h) => format!("sha256:{h}"),
        AudioRef::Stream(s) => s.url.clone(),
    };
    serde_json::json!({
        "planned": o.planned.to_rfc3339(),
        "local": local.to_rfc3339(),
        "timezone": o.timezone.name(),
        "weekday": local.format("%a").to_string(),
        "item_id": o.item_id,
        "title": o.title,
        "layer": layer_name(o.layer),
        "priority": priority_name(o.priority),
        "audio": audio,
        "max_delay_secs": o.max_delay.as_secs(),
        "duration_secs": o.duration.map(|d| d.as_secs()),
    })
}

fn write_table(out: &mut impl Write, plays: &[Occurrence]) -> std::io::Result<()> {
    let header = ["LOCAL TIME", "DAY", "ITEM", "TITLE", "LAYER", "PRIORITY"];
    // Seconds only when some play is not on a whole minute (6-field cron).
    let with_seconds = plays.iter().any(|o| o.planned.timestamp() % 60 != 0);
    let time_format = if with_seconds { "%Y-%m-%d %H:%M:%S %:z" } else { "%Y-%m-%d %H:%M %:z" };
    let rows: Vec<[String; 6]> = plays
        .iter()
        .map(|o| {
            let local = o.planned.with_timezone(&o.timezone);
            [
                local.format(time_format).to_string(),
                local.format("%a").to_string(),
                o.item_id.clone(),
                o.title.clone(),
                layer_name(o.layer).to_string(),
                priority_name(o.priority).to_string(),
            ]
        })
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let line = |cells: &[&str]| {
        let mut s = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            s.push_str(cell);
            if i + 1 < cells.len() {
                s.extend(std::iter::repeat_n(' ', w - cell.chars().count() + 2));
            }
        }
        s
    };
    writeln!(out, "{}", line(&header))?;
    for row in &rows {
        let cells: Vec<&str> = row.iter().map(String::as_str).collect();
        writeln!(out, "{}", line(&cells))?;
    }
    if rows.is_empty() {
        writeln!(out, "(no plays ahead)")?;
    }
    Ok(())
}
