//! `loa report DATE`: for every station and every provincial item planned that day, what
//! central knows happened, then every bulletin pushed that day at every target station —
//! each with totals per district, and any chain problems on stderr.

use std::io::Write;
use std::process::ExitCode;

use anyhow::Result;
use chrono::NaiveDate;
use chrono_tz::Tz;
use clap::{Args, ValueEnum};

use super::remote::{self, RemoteArgs};
use crate::protocol::{BulletinPriority, BulletinReportRow, BulletinStatus, DailyReport};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
}

/// Planned provincial items and pushed bulletins of one day against what each station
/// reported.
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
        let shown = report.rows.iter().any(|r| r.station == s.id)
            || report.bulletins.iter().any(|r| r.station == s.id);
        if shown {
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
    write_columns(out, &totals)?;
    write_bulletins(out, report, tz)
}

/// `0.471s`, or `-`.
fn latency_text(ms: Option<i64>) -> String {
    ms.map_or_else(|| "-".to_string(), |ms| format!("{:.3}s", ms as f64 / 1000.0))
}

fn plays_text(row: &BulletinReportRow) -> String {
    if row.plays_planned == 0 {
        "-".to_string()
    } else {
        format!("{}/{}", row.plays_aired, row.plays_planned)
    }
}

/// The bulletin section of the table: one row per bulletin and target station, grouped
/// by bulletin, then totals per district.
fn write_bulletins(out: &mut impl Write, report: &DailyReport, tz: Tz) -> std::io::Result<()> {
    writeln!(out)?;
    writeln!(out, "bulletins pushed on {}", report.date)?;
    if report.bulletins.is_empty() {
        return writeln!(out, "no bulletins were pushed to the stations shown");
    }
    let mut rows = vec![
        ["PUSHED", "BULLETIN", "DISTRICT", "STATION", "STATUS", "LATENCY", "PLAYS", "DETAIL"]
            .map(String::from),
    ];
    for r in &report.bulletins {
        let status = match r.priority {
            BulletinPriority::Test if r.status != BulletinStatus::TestOk => {
                format!("{} (test)", r.status.as_str())
            }
            _ => r.status.as_str().to_string(),
        };
        rows.push([
            r.issued_at.with_timezone(&tz).format("%H:%M:%S").to_string(),
            r.bulletin_id.clone(),
            r.district.clone(),
            r.station.clone(),
            status,
            latency_text(r.latency_ms),
            plays_text(r),
            r.detail.clone(),
        ]);
    }
    write_columns(out, &rows)?;
    writeln!(out)?;
    let mut totals = vec![
        [
            "DISTRICT",
            "STATIONS",
            "TARGETS",
            "AIRED",
            "TEST-OK",
            "CANCELLED",
            "FAILED",
            "EXPIRED",
            "NOT REACHED",
            "PENDING",
        ]
        .map(String::from)
        .to_vec(),
    ];
    for d in &report.bulletin_districts {
        let mut row = vec![d.district.clone(), d.stations.to_string(), d.targets.to_string()];
        for status in BulletinStatus::ALL {
            row.push(d.counts.get(status.as_str()).copied().unwrap_or(0).to_string());
        }
        totals.push(row);
    }
    write_columns(out, &totals)
}

fn write_columns<R: AsRef<[String]>>(out: &mut impl Write, rows: &[R]) -> std::io::Result<()> {
    // Strings a station or central sent never reach the terminal with control characters.
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.as_ref().iter().map(|c| crate::protocol::text::printable(c)).collect())
        .collect();
    let columns = rows.first().map_or(0, Vec::len);
    let widths: Vec<usize> = (0..columns)
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in &rows {
        let cells: Vec<String> =
            row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}", w = *w)).collect();
        writeln!(out, "{}", cells.join("  ").trim_end())?;
    }
    Ok(())
}

use crate::protocol::text::csv_field;

/// One table for a spreadsheet: the first ten columns are those of the programme-only
/// report, unchanged; `kind` (`programme`, `bulletin`, `test-bulletin`) tells the rows
/// apart and the bulletin figures follow it. For a bulletin, `item_id` is its id,
/// `planned_*` when it was pushed, `status` a bulletin status.
fn write_csv(out: &mut impl Write, report: &DailyReport, tz: Tz) -> std::io::Result<()> {
    writeln!(
        out,
        "date,district,station,item_id,title,planned_utc,planned_local,status,delay_ms,detail,kind,latency_ms,plays_aired,plays_planned"
    )?;
    let local = |t: chrono::DateTime<chrono::Utc>| {
        t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S").to_string()
    };
    let mut write = |fields: [String; 14]| -> std::io::Result<()> {
        let line: Vec<String> = fields.iter().map(|f| csv_field(f)).collect();
        writeln!(out, "{}", line.join(","))
    };
    for r in &report.rows {
        write([
            report.date.to_string(),
            r.district.clone(),
            r.station.clone(),
            r.item_id.clone(),
            r.title.clone(),
            crate::station::ledger::time_text(r.planned),
            local(r.planned),
            status_text(r),
            r.delay_ms.map(|d| d.to_string()).unwrap_or_default(),
            r.detail.clone(),
            "programme".to_string(),
            String::new(),
            String::new(),
            String::new(),
        ])?;
    }
    for r in &report.bulletins {
        let kind = match r.priority {
            BulletinPriority::Emergency | BulletinPriority::Priority => "bulletin",
            BulletinPriority::Test => "test-bulletin",
        };
        write([
            report.date.to_string(),
            r.district.clone(),
            r.station.clone(),
            r.bulletin_id.clone(),
            r.title.clone(),
            crate::station::ledger::time_text(r.issued_at),
            local(r.issued_at),
            r.status.as_str().to_string(),
            String::new(),
            r.detail.clone(),
            kind.to_string(),
            r.latency_ms.map(|d| d.to_string()).unwrap_or_default(),
            r.plays_aired.to_string(),
            r.plays_planned.to_string(),
        ])?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};

    use super::*;
    use crate::protocol::{BulletinTotals, ReportRow, ReportStatus};

    fn report() -> DailyReport {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let bulletin =
            |station: &str, status, priority, latency_ms, plays_planned| BulletinReportRow {
                station: station.into(),
                district: "Tri Tôn".into(),
                bulletin_id: "b-20261201070000-4f2411c461dace97".into(),
                title: "Cảnh báo lũ, khẩn".into(),
                priority,
                issued_at: at,
                expires_at: at + chrono::Duration::hours(1),
                status,
                latency_ms,
                plays_aired: if latency_ms.is_some() { 1 } else { 0 },
                plays_planned,
                detail: String::new(),
            };
        DailyReport {
            date: chrono::NaiveDate::from_ymd_opt(2026, 12, 1).unwrap(),
            timezone: "Asia/Ho_Chi_Minh".into(),
            generated_at: at,
            rows: vec![ReportRow {
                station: "tri-ton".into(),
                district: "Tri Tôn".into(),
                item_id: "ban-tin-sang".into(),
                title: "Bản tin sáng".into(),
                planned: at - chrono::Duration::minutes(30),
                status: ReportStatus::Preempted,
                delay_ms: Some(2),
                detail: "pre-empted by b-20261201070000-4f2411c461dace97 after 12.0s".into(),
            }],
            districts: vec![],
            bulletins: vec![
                bulletin(
                    "tri-ton",
                    BulletinStatus::Aired,
                    BulletinPriority::Emergency,
                    Some(471),
                    1,
                ),
                bulletin("ba-chuc", BulletinStatus::Pending, BulletinPriority::Test, None, 0),
            ],
            bulletin_districts: vec![BulletinTotals {
                district: "Tri Tôn".into(),
                stations: 2,
                targets: 2,
                counts: [("aired".to_string(), 1), ("pending".to_string(), 1)].into(),
            }],
        }
    }

    #[test]
    fn csv_keeps_the_programme_columns_and_tells_bulletins_apart() {
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        let mut out = Vec::new();
        write_csv(&mut out, &report(), tz).unwrap();
        let text = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert!(
            lines[0].starts_with(
                "date,district,station,item_id,title,planned_utc,planned_local,status,delay_ms,detail,"
            ),
            "{}",
            lines[0]
        );
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[1].ends_with(",programme,,,"), "{}", lines[1]);
        assert_eq!(
            lines[2],
            "2026-12-01,Tri Tôn,tri-ton,b-20261201070000-4f2411c461dace97,\"Cảnh báo lũ, khẩn\",2026-12-01T00:00:00.000000Z,2026-12-01 07:00:00,aired,,,bulletin,471,1,1"
        );
        assert!(lines[3].contains(",pending,,,test-bulletin,,0,0"), "{}", lines[3]);
        let columns = lines[0].split(',').count();
        assert!(
            lines[1..]
                .iter()
                .all(|l| l.replace("\"Cảnh báo lũ, khẩn\"", "x").split(',').count() == columns)
        );
    }

    #[test]
    fn the_table_has_a_bulletin_section_with_latency_and_plays() {
        let mut out = Vec::new();
        write_table(&mut out, &report(), chrono_tz::Asia::Ho_Chi_Minh).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.contains("bulletins pushed on 2026-12-01"), "{text}");
        let row = text.lines().find(|l| l.starts_with("07:00:00")).unwrap();
        assert!(row.starts_with("07:00:00  b-20261201070000-4f2411c461dace97"), "{row}");
        assert!(row.contains("aired") && row.contains("0.471s") && row.contains("1/1"), "{row}");
        let test = text.lines().find(|l| l.contains("ba-chuc")).unwrap();
        assert!(test.contains("pending (test)"), "{test}");
        assert!(text.contains("NOT REACHED"), "{text}");

        let mut empty = report();
        empty.bulletins.clear();
        empty.bulletin_districts.clear();
        let mut out = Vec::new();
        write_table(&mut out, &empty, chrono_tz::Asia::Ho_Chi_Minh).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert!(text.ends_with("no bulletins were pushed to the stations shown\n"), "{text}");
    }
}
