//! `loa report DATE`: for every station and every provincial item planned that day, what
//! central knows happened — with totals per district and any chain problems on stderr.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use chrono::NaiveDate;
use chrono_tz::Tz;
use clap::{Args, ValueEnum};

use super::remote::{self, RemoteArgs};
use crate::protocol::DailyReport;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
}

/// Planned provincial items of one day against what each station reported.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The day, YYYY-MM-DD, in --tz.
    pub date: NaiveDate,
    #[arg(long, value_enum, default_value_t = ReportFormat::Table)]
    pub format: ReportFormat,
    /// Only this station.
    #[arg(long, conflicts_with = "district")]
    pub station: Option<String>,
    /// Only this district's stations.
    #[arg(long)]
    pub district: Option<String>,
    /// The time zone the day is taken in.
    #[arg(long, default_value = "Asia/Ho_Chi_Minh")]
    pub tz: Tz,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: ReportArgs) -> ExitCode {
    match run_inner(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => remote::report(&e),
    }
}

fn run_inner(args: &ReportArgs) -> Result<()> {
    let remote = args.remote.resolve()?;
    let mut query = vec![("date", args.date.to_string()), ("tz", args.tz.name().to_string())];
    if let Some(s) = &args.station {
        query.push(("station", s.clone()));
    }
    if let Some(d) = &args.district {
        query.push(("district", d.clone()));
    }
    let (report, fleet) = remote::runtime()?.block_on(async {
        let report: DailyReport = remote.get_json("/api/v1/report", &query, "report").await?;
        let fleet = super::status::fetch(&remote).await?;
        Ok::<_, anyhow::Error>((report, fleet))
    })?;
    let mut out = std::io::stdout().lock();
    let written = match args.format {
        ReportFormat::Json => serde_json::to_writer_pretty(&mut out, &report)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out)),
        ReportFormat::Csv => write_csv(&mut out, &report, args.tz),
        ReportFormat::Table => write_table(&mut out, &report, args.tz),
    };
    match written {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    for s in &fleet.stations {
        if report.rows.iter().any(|r| r.station == s.id) {
            for issue in &s.playlog.issues {
                eprintln!(
                    "warning: station {}: chain {} at record {}: {}",
                    s.id, issue.kind, issue.seq, issue.detail
                );
            }
        }
    }
    Ok(())
}

fn status_text(row: &crate::protocol::ReportRow) -> String {
    row.status.as_str().to_string()
}

fn write_table(out: &mut impl Write, report: &DailyReport, tz: Tz) -> std::io::Result<()> {
    writeln!(out, "report for {} ({})", report.date, report.timezone)?;
    if report.rows.is_empty() {
        writeln!(out, "no provincial items were planned for the stations shown")?;
    }
    let mut rows =
        vec![["DISTRICT", "STATION", "TIME", "ITEM", "STATUS", "DETAIL"].map(String::from)];
    for r in &report.rows {
        rows.push([
            r.district.clone(),
            r.station.clone(),
            r.planned.with_timezone(&tz).format("%H:%M:%S").to_string(),
            r.item_id.clone(),
            status_text(r),
            r.detail.clone(),
        ]);
    }
    if rows.len() > 1 {
        write_columns(out, &rows)?;
    }
    writeln!(out)?;
    let mut totals = vec![
        [
            "DISTRICT",
            "STATIONS",
            "PLANNED",
            "AIRED",
            "LATE",
            "PREEMPTED",
            "FAILED",
            "MISSED",
            "NOT REPORTED",
            "UPCOMING",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for d in &report.districts {
        let n = |k: &str| d.counts.get(k).copied().unwrap_or(0).to_string();
        totals.push(vec![
            d.district.clone(),
            d.stations.to_string(),
            d.planned.to_string(),
            n("aired"),
            n("late"),
            n("preempted"),
            n("failed"),
            n("missed"),
            n("not-reported"),
            n("upcoming"),
        ]);
    }
    write_columns(out, &totals)
}

fn write_columns<R: AsRef<[String]>>(out: &mut impl Write, rows: &[R]) -> std::io::Result<()> {
    let columns = rows.first().map_or(0, |r| r.as_ref().len());
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r.as_ref()[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let cells: Vec<String> =
            row.as_ref().iter().zip(&widths).map(|(c, w)| format!("{c:<w$}", w = *w)).collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

fn csv_field(s: &str) -> String {
    if s.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", s.replace('"', "\"\""))
    } else {
        s.to_string()
    }
}

fn write_csv(out: &mut impl Write, report: &DailyReport, tz: Tz) -> std::io::Result<()> {
    writeln!(
        out,
        "date,district,station,item_id,title,planned_utc,planned_local,status,delay_ms,detail"
    )?;
    for r in &report.rows {
        let fields = [
            report.date.to_string(),
            r.district.clone(),
            r.station.clone(),
            r.item_id.clone(),
            r.title.clone(),
            crate::ledger::time_text(r.planned),
            r.planned.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string(),
            status_text(r),
            r.delay_ms.map(|d| d.to_string()).unwrap_or_default(),
            r.detail.clone(),
        ];
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        writeln!(out, "{}", line.join(","))?;
    }
    Ok(())
}
