//! `loa status`: the fleet as central sees it — last seen, manifest held vs issued,
//! clock offset, cache readiness, now playing, sound output health.

use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
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
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: StatusArgs) -> ExitCode {
    let result = (|| {
        let remote = args.remote.resolve()?;
        let fleet: FleetStatus = remote::runtime()?.block_on(fetch(&remote))?;
        match args.format {
            StatusFormat::Json => println!("{}", serde_json::to_string_pretty(&fleet)?),
            StatusFormat::Table => print!("{}", table(&fleet)),
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
    let response = remote
        .http
        .get(remote.url("/api/v1/status"))
        .bearer_auth(&remote.token)
        .send()
        .await
        .map_err(|e| remote.send_error(e))?;
    if !response.status().is_success() {
        return Err(remote.fail("status", response).await);
    }
    response.json().await.context("central's status answer is not valid JSON")
}

fn ago(now: DateTime<Utc>, then: DateTime<Utc>) -> String {
    let s = (now - then).num_seconds().max(0);
    match s {
        0..=119 => format!("{s}s ago"),
        120..=7199 => format!("{}m ago", s / 60),
        _ => format!("{}h ago", s / 3600),
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

/// The fleet as a text table. A station is `ready` when its cache covers at least the
/// next 24 hours (or everything it was given).
pub fn table(fleet: &FleetStatus) -> String {
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
                    until.format("%m-%d %H:%M"),
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
                hb.and_then(|h| h.clock_offset_ms)
                    .map(|ms| format!("{:+.1}s", ms as f64 / 1000.0))
                    .unwrap_or("-".into()),
                cache,
                hb.and_then(|h| h.now_playing.clone()).unwrap_or_else(|| "-".into()),
                hb.map(|h| h.sink_health.clone()).unwrap_or_else(|| "-".into()),
                playlog_cell(&s.playlog),
            ]
            .map(|cell| crate::text::printable(&cell)),
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
