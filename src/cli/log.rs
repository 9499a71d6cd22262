//! `loa log`: the playback log as a table, CSV or JSON — either this station's own
//! ledger (`--data-dir` or `--config`) or, otherwise, central's playlog of every station
//! the token may see (`--central`/`LOA_CENTRAL`, `--token`/`LOA_TOKEN`, or the client
//! config file). Both print through the same formatters.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use clap::{Args, ValueEnum};

use crate::station::config;
use crate::station::ledger::{Filter, Ledger, Outcome, Record};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Csv,
    Json,
}

/// Show the playback log (the station's ledger).
#[derive(Debug, Args)]
pub struct LogArgs {
    /// The station's data directory (holds ledger.sqlite3).
    #[arg(long, conflicts_with = "config")]
    pub data_dir: Option<PathBuf>,
    /// The station's config file; its data_dir and timezone are used.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Only this station (a station's ledger holds only its own records).
    #[arg(long, conflicts_with = "district")]
    pub station: Option<String>,
    /// Only this district's stations (central's playlog only).
    #[arg(long)]
    pub district: Option<String>,
    /// Planned at or after T: RFC 3339, or local "YYYY-MM-DD[THH:MM]".
    #[arg(long)]
    pub since: Option<String>,
    /// Planned before T: same forms as --since (a bare date means its start).
    #[arg(long)]
    pub until: Option<String>,
    /// Only this outcome: played, late, preempted, failed, missed, relayed.
    #[arg(long)]
    pub outcome: Option<Outcome>,
    /// Only this item id.
    #[arg(long)]
    pub item: Option<String>,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Check the ledger's hash chain and report the first break (exit 1 if broken).
    #[arg(long)]
    pub verify: bool,
    /// Time zone for local times and bare dates when reading central's playlog.
    #[arg(long, default_value = "Asia/Ho_Chi_Minh")]
    pub tz: Tz,
    #[command(flatten)]
    pub remote: super::remote::RemoteArgs,
}

pub fn run(args: LogArgs) -> ExitCode {
    match run_inner(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run_inner(args: LogArgs) -> Result<ExitCode> {
    let (data_dir, tz) = match (&args.data_dir, &args.config) {
        (Some(d), _) => (d.clone(), chrono_tz::Asia::Ho_Chi_Minh),
        (None, Some(c)) => {
            let c = config::load(c)?;
            (c.data_dir.clone(), c.timezone)
        }
        (None, None) => return run_central(&args),
    };
    if args.district.is_some() {
        bail!(
            "--district reads central's playlog: drop --data-dir/--config and give --central URL"
        );
    }
    let path = data_dir.join("ledger.sqlite3");
    if !path.exists() {
        bail!("no ledger at {}: has `loa station` run with this data directory?", path.display());
    }
    let ledger = Ledger::open_existing(&path)?;
    if args.verify {
        let report = ledger.verify()?;
        return Ok(match report.first_break {
            None => {
                println!("ledger {}: {} records, chain intact", path.display(), report.records);
                ExitCode::SUCCESS
            }
            Some((seq, problem)) => {
                println!("ledger {}: chain broken at record {seq}: {problem}", path.display());
                ExitCode::from(1)
            }
        });
    }
    let filter = Filter {
        since: args.since.as_deref().map(|t| parse_time(t, tz)).transpose().context("--since")?,
        until: args.until.as_deref().map(|t| parse_time(t, tz)).transpose().context("--until")?,
        outcome: args.outcome,
        item_id: args.item.clone(),
    };
    let records = match &args.station {
        Some(s) if s != ledger.station() => Vec::new(),
        _ => ledger.query(&filter)?,
    };
    print_records(&records, args.format, tz, false)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints records in the chosen format; `stations` adds a STATION column to the table.
pub fn print_records(records: &[Record], format: Format, tz: Tz, stations: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    let written = match format {
        Format::Json => {
            serde_json::to_writer_pretty(&mut out, &records)?;
            writeln!(out)
        }
        Format::Csv => write_csv(&mut out, records, tz),
        Format::Table => write_table(&mut out, records, tz, stations),
    };
    // A closed pipe (`loa log | head`) is not an error worth reporting.
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => Ok(other?),
    }
}

/// Central's playlog, filtered at central. Chain problems central found in the shown
/// stations' records are printed on stderr after the log.
fn run_central(args: &LogArgs) -> Result<ExitCode> {
    if args.verify {
        bail!(
            "--verify checks a station's own ledger: give --data-dir DIR or --config station.toml (central checks chains as records arrive: see `loa status`)"
        );
    }
    let remote = args.remote.resolve().map_err(|e| {
        anyhow::anyhow!("say where the log is: --data-dir DIR or --config station.toml for this station's ledger, or central's playlog ({e})")
    })?;
    let tz = args.tz;
    let mut query: Vec<(&str, String)> = Vec::new();
    if let Some(s) = &args.station {
        query.push(("station", s.clone()));
    }
    if let Some(d) = &args.district {
        query.push(("district", d.clone()));
    }
    if let Some(t) = &args.since {
        query.push(("since", parse_time(t, tz).context("--since")?.to_rfc3339()));
    }
    if let Some(t) = &args.until {
        query.push(("until", parse_time(t, tz).context("--until")?.to_rfc3339()));
    }
    if let Some(o) = args.outcome {
        query.push(("outcome", o.to_string()));
    }
    if let Some(i) = &args.item {
        query.push(("item", i.clone()));
    }
    let (records, fleet) = super::remote::runtime()?.block_on(async {
        let records: Vec<Record> = remote.playlog(&query).await?;
        let fleet = super::status::fetch(&remote).await?;
        Ok::<_, anyhow::Error>((records, fleet))
    })?;
    print_records(&records, args.format, tz, true)?;
    for s in &fleet.stations {
        let shown = args.station.as_ref().is_none_or(|id| id == &s.id)
            && args.district.as_ref().is_none_or(|d| crate::protocol::area::within(&s.district, d));
        if !shown {
            continue;
        }
        for issue in &s.playlog.issues {
            eprintln!(
                "warning: station {}: chain {} at record {}: {}",
                s.id, issue.kind, issue.seq, issue.detail
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// RFC 3339, or a local date / date-time in `tz`.
pub fn parse_time(text: &str, tz: Tz) -> Result<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.to_utc());
    }
    let naive = if let Ok(d) = NaiveDate::parse_from_str(text, "%Y-%m-%d") {
        d.and_hms_opt(0, 0, 0)
    } else {
        ["%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M"]
            .iter()
            .find_map(|f| NaiveDateTime::parse_from_str(text, f).ok())
    };
    let Some(naive) = naive else {
        bail!(
            "cannot read time {text:?}: use 2026-12-01, 2026-12-01T05:30 or 2026-12-01T05:30:00+07:00"
        )
    };
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.to_utc())
        .with_context(|| format!("{text} does not exist in {tz} (clock change)"))
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string()
}

fn detail(r: &Record) -> String {
    let e = &r.entry;
    let mut parts = Vec::new();
    if let Some(d) = e.delay_ms
        && e.outcome != Outcome::Missed
    {
        parts.push(format!("delay {:.3}s", d as f64 / 1000.0));
    }
    if let Some(p) = e.played_secs {
        parts.push(format!("played {p:.1}s"));
    }
    if let Some(l) = e.levels {
        parts.push(format!("peak {:.1} dBFS", l.peak_dbfs));
        if l.silent {
            parts.push("SILENT".to_string());
        }
    }
    if let Some(relay) = &e.relay {
        parts.push(relay.summary());
    }
    if let Some(reason) = &e.reason {
        parts.push(reason.clone());
    }
    parts.join(", ")
}

fn write_table(
    out: &mut impl Write,
    records: &[Record],
    tz: Tz,
    stations: bool,
) -> std::io::Result<()> {
    if records.is_empty() {
        return writeln!(out, "no records match");
    }
    // Every cell as it will be shown: strings a station sent never reach the terminal
    // with control characters in them.
    let rows: Vec<[String; 6]> = records
        .iter()
        .map(|r| {
            [
                if stations { format!("{} #{}", r.station, r.seq) } else { r.seq.to_string() },
                local(r.entry.planned, tz),
                r.entry.item_id.clone(),
                format!("{:?}/{:?}", r.entry.layer, r.entry.priority).to_lowercase(),
                r.entry.outcome.to_string(),
                detail(r),
            ]
            .map(|cell| printable(&cell))
        })
        .collect();
    let first = if stations { "STATION #SEQ" } else { "SEQ" };
    let header = [first, &format!("PLANNED ({tz})"), "ITEM", "LAYER", "OUTCOME", "DETAIL"]
        .map(str::to_string);
    let mut widths = [0usize; 5];
    for row in std::iter::once(&header).chain(rows.iter()) {
        for (w, cell) in widths.iter_mut().zip(row.iter()) {
            *w = (*w).max(cell.chars().count());
        }
    }
    for row in std::iter::once(&header).chain(rows.iter()) {
        let mut line = String::new();
        for (w, cell) in widths.iter().zip(row.iter()) {
            line.push_str(cell);
            line.push_str(&" ".repeat(w - cell.chars().count() + 2));
        }
        line.push_str(&row[5]);
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}

use crate::protocol::text::{csv_field, printable};

fn write_csv(out: &mut impl Write, records: &[Record], tz: Tz) -> std::io::Result<()> {
    writeln!(
        out,
        "station,seq,item_id,title,layer,priority,planned_utc,planned_local,outcome,started_utc,ended_utc,delay_ms,played_secs,reason,audio_sha256,peak_dbfs,rms_dbfs,silent,hash,acked,relayed_secs,dropouts,dropout_secs"
    )?;
    let opt =
        |t: Option<DateTime<Utc>>| t.map(crate::station::ledger::time_text).unwrap_or_default();
    for r in records {
        let e = &r.entry;
        let fields = [
            r.station.clone(),
            r.seq.to_string(),
            e.item_id.clone(),
            e.title.clone(),
            format!("{:?}", e.layer).to_lowercase(),
            format!("{:?}", e.priority).to_lowercase(),
            crate::station::ledger::time_text(e.planned),
            local(e.planned, tz),
            e.outcome.to_string(),
            opt(e.started),
            opt(e.ended),
            e.delay_ms.map(|d| d.to_string()).unwrap_or_default(),
            e.played_secs.map(|p| format!("{p:.3}")).unwrap_or_default(),
            e.reason.clone().unwrap_or_default(),
            e.audio_sha256.clone().unwrap_or_default(),
            e.levels.map(|l| format!("{:.2}", l.peak_dbfs)).unwrap_or_default(),
            e.levels.map(|l| format!("{:.2}", l.rms_dbfs)).unwrap_or_default(),
            e.levels.map(|l| l.silent.to_string()).unwrap_or_default(),
            r.hash.clone(),
            r.acked.to_string(),
            e.relay.map(|f| format!("{:.3}", f.relayed_secs)).unwrap_or_default(),
            e.relay.map(|f| f.dropouts.to_string()).unwrap_or_default(),
            e.relay.map(|f| format!("{:.3}", f.dropout_secs)).unwrap_or_default(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        writeln!(out, "{}", line.join(","))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_in_the_station_zone() {
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        let t = parse_time("2026-12-01T05:30", tz).expect("local");
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 11, 30, 22, 30, 0).unwrap());
        let t = parse_time("2026-12-01", tz).expect("date");
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 11, 30, 17, 0, 0).unwrap());
        let t = parse_time("2026-12-01T00:00:00Z", tz).expect("rfc3339");
        assert_eq!(t, Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap());
        let err = parse_time("tomorrow", tz).expect_err("bad");
        assert!(err.to_string().contains("use 2026-12-01"), "{err}");
    }

    #[test]
    fn csv_quotes_what_needs_it() {
        assert_eq!(csv_field("a,b"), "\"a,b\"");
        assert_eq!(csv_field("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(csv_field("plain"), "plain");
    }
}
