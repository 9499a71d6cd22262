//! `loa status`: the fleet as central sees it — last seen, manifest held vs issued,
//! clock offset (with a recent clock step, planning by central's time, an unsynchronised
//! clock), cache readiness, now playing, sound output health (failed since when, why).

use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::{Args, ValueEnum};

use super::remote::{self, RemoteArgs};
use crate::protocol::FleetStatus;

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum StatusFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct StatusArgs {
    #[arg(long, value_enum, default_value_t = StatusFormat::Table)]
    pub format: StatusFormat,
    /// Time zone of the times shown (JSON keeps UTC, full precision).
    #[arg(long, default_value = "Asia/Ho_Chi_Minh")]
    pub tz: Tz,
    /// The open alerts instead of the fleet: what an operator must act on.
    #[arg(long)]
    pub problems: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: StatusArgs) -> ExitCode {
    let result = (|| {
        let remote = args.remote.resolve()?;
        if args.problems {
            let alerts: Vec<crate::central::alerts::AlertView> =
                remote::runtime()?.block_on(fetch_alerts(&remote))?;
            match args.format {
                StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&alerts)?),
                StatusFormat::Table => print!("{}", problems_table(&alerts, args.tz)),
            }
            return Ok(());
        }
        let fleet: FleetStatus = remote::runtime()?.block_on(fetch(&remote))?;
        match args.format {
            StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&fleet)?),
            StatusFormat::Table => print!("{}", table(&fleet, args.tz)),
        }
        Ok::<(), anyhow::Error>(())
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => remote::report(&e),
    }
}

/// The fleet as central reports it.
pub async fn fetch(remote: &remote::Remote) -> anyhow::Result<FleetStatus> {
    let response = remote.get("/api/v1/status", &[]).await?;
    if !response.status().is_success() {
        return Err(remote.fail("status", response).await);
    }
    response.json().await.context("central's status answer is not valid JSON")
}

/// The open alerts (`GET /api/v1/alerts`).
pub async fn fetch_alerts(
    remote: &remote::Remote,
) -> anyhow::Result<Vec<crate::central::alerts::AlertView>> {
    let response = remote.get(crate::protocol::api::paths::ALERTS, &[]).await?;
    if !response.status().is_success() {
        return Err(remote.fail("alerts", response).await);
    }
    response.json().await.context("central's alerts answer is not valid JSON")
}

/// The open alerts as a table (`SINCE` local to `tz`), or a line saying there are none.
pub fn problems_table(alerts: &[crate::central::alerts::AlertView], tz: Tz) -> String {
    if alerts.is_empty() {
        return "no problems\n".to_string();
    }
    let mut out = String::new();
    let width = alerts.iter().map(|a| a.kind.len()).max().unwrap_or(4).max(4);
    let station_width =
        alerts.iter().map(|a| a.station.as_deref().unwrap_or("-").len()).max().unwrap_or(7).max(7);
    out.push_str(&format!(
        "{:<19}  {:<width$}  {:<station_width$}  DETAIL\n",
        "SINCE", "KIND", "STATION"
    ));
    for a in alerts {
        out.push_str(&format!(
            "{:<19}  {:<width$}  {:<station_width$}  {}\n",
            a.raised_at.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S"),
            a.kind,
            crate::protocol::text::printable(a.station.as_deref().unwrap_or("-")),
            crate::protocol::text::printable(&a.detail),
        ));
    }
    out
}

fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let s = (now - then).num_seconds().max(0);
    match s {
        0..=119 => format!("{s}s ago"),
        120..=7199 => format!("{}m ago", s / 60),
        _ => format!("{}h ago", s / 3600),
    }
}

/// The CLOCK cell: offset, then what is wrong with the clock, if anything.
fn clock_cell(h: &crate::protocol::Heartbeat, tz: Tz) -> String {
    let mut cell = h
        .clock_offset_ms
        .map(|ms| format!("{:+.1}s", ms as f64 / 1000.0))
        .unwrap_or_else(|| "-".into());
    if h.clock_synchronized == Some(false) {
        cell.push_str(" not synced");
    }
    if h.central_time {
        cell.push_str(" (by central's time)");
    }
    if let Some(step) = &h.clock_step {
        // From the network: a nonsense size is shown, never a panic.
        let by = chrono::Duration::try_milliseconds(step.by_ms)
            .map(crate::clock::human)
            .unwrap_or_else(|| format!("{} ms", step.by_ms));
        let sign = if step.by_ms > 0 { "+" } else { "" };
        cell.push_str(&format!(
            " stepped {sign}{by} at {}",
            step.at.with_timezone(&tz).format("%m-%d %H:%M")
        ));
    }
    cell
}

/// The SINK cell: `ok`, or since when and why the output is down (cut to 80 characters).
fn sink_cell(h: &crate::protocol::Heartbeat, tz: Tz) -> String {
    match &h.output_failed {
        Some(f) => {
            let reason: String = f.reason.chars().take(80).collect();
            format!(
                "failed since {}: {reason}",
                f.since.with_timezone(&tz).format("%m-%d %H:%M:%S")
            )
        }
        None => h.sink_health.chars().take(120).collect(),
    }
}

/// How much of a station's playlog central holds, and the first chain problem.
fn playlog_cell(p: &crate::protocol::PlaylogSummary) -> String {
    let mut cell = format!("{} records", p.acked_through);
    if let Some(issue) = p.issues.first() {
        cell.push_str(&format!(", {} at #{}", issue.kind.to_uppercase(), issue.seq));
        if p.issues.len() > 1 {
            cell.push_str(&format!(" (+{} more)", p.issues.len() - 1));
        }
    }
    cell
}

/// The fleet as a text table, times local to `tz`. A station is `ready` when its cache
/// covers at least the next 24 hours (or everything it was given).
pub fn table(fleet: &FleetStatus, tz: Tz) -> String {
    let now = fleet.server_time;
    let mut rows = vec![
        [
            "STATION",
            "DISTRICT",
            "LAST SEEN",
            "MANIFEST",
            "CLOCK",
            "CACHE",
            "NOW PLAYING",
            "SINK",
            "PLAYLOG",
        ]
        .map(String::from),
    ];
    for s in &fleet.stations {
        let hb = s.heartbeat.as_ref();
        let issued = s.issued_version.map(|v| format!("v{v}")).unwrap_or_else(|| "-".into());
        let held =
            hb.and_then(|h| h.manifest_version).map(|v| format!("v{v}")).unwrap_or("-".into());
        let cache = match hb {
            None => "-".to_string(),
            Some(h) => match h.ready_until {
                Some(_) if h.missing_bytes == 0 => "ready".to_string(),
                Some(until) if until - now >= chrono::Duration::hours(24) => {
                    format!("ready ({} KB pending)", h.missing_bytes / 1024)
                }
                Some(until) => format!(
                    "until {} ({} KB missing)",
                    until.with_timezone(&tz).format("%m-%d %H:%M"),
                    h.missing_bytes / 1024
                ),
                None => "no manifest".to_string(),
            },
        };
        rows.push(
            [
                s.id.clone(),
                s.district.clone(),
                s.last_seen.map(|t| ago(now, t)).unwrap_or_else(|| "never".into()),
                format!("{held}/{issued}"),
                hb.map(|h| clock_cell(h, tz)).unwrap_or_else(|| "-".into()),
                cache,
                hb.and_then(|h| h.now_playing.clone()).unwrap_or_else(|| "-".into()),
                hb.map(|h| sink_cell(h, tz)).unwrap_or_else(|| "-".into()),
                playlog_cell(&s.playlog),
            ]
            .map(|cell| crate::protocol::text::printable(&cell)),
        );
    }
    let widths: Vec<usize> =
        (0..9).map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> =
            row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}", w = *w)).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{ClockStepReport, Heartbeat, OutputFailure};
    use chrono::TimeZone;

    #[test]
    fn clock_and_sink_cells_show_what_is_wrong_and_survive_nonsense() {
        let at = Utc.with_ymd_and_hms(2026, 12, 1, 5, 30, 0).unwrap();
        // A heartbeat from an older station: no new fields at all.
        let old = r#"{"manifest_version":null,"clock_offset_ms":300,"ready_until":null,
            "missing_bytes":0,"disk_free_bytes":null,"now_playing":null,"sink_health":"ok",
            "sent_at":"2026-12-01T05:30:00Z"}"#;
        let mut h: Heartbeat = serde_json::from_str(old).expect("older heartbeats parse");
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        assert_eq!(
            (clock_cell(&h, tz), sink_cell(&h, tz)),
            ("+0.3s".to_string(), "ok".to_string())
        );
        h.clock_synchronized = Some(false);
        h.central_time = true;
        h.clock_step = Some(ClockStepReport { at, by_ms: 86_400_000 });
        h.output_failed = Some(OutputFailure::new(at, &"x".repeat(1000)));
        // Times in the province's zone (05:30 UTC is 12:30 there), never UTC unmarked.
        assert_eq!(
            clock_cell(&h, tz),
            "+0.3s not synced (by central's time) stepped +1d 0h 0m 0s at 12-01 12:30"
        );
        assert_eq!(sink_cell(&h, tz), format!("failed since 12-01 12:30:00: {}", "x".repeat(80)));
        assert_eq!(
            h.output_failed.as_ref().map(|f| f.reason.len()),
            Some(OutputFailure::MAX_REASON)
        );
        h.clock_step = Some(ClockStepReport { at, by_ms: i64::MIN });
        assert!(clock_cell(&h, tz).contains("stepped"), "{}", clock_cell(&h, tz));
    }
}
