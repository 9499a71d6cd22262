//! The end of the demo: waiting until central holds every station's record of every
//! item, then what an operator at the province sees (`loa log`, `loa report`), the
//! air-checks and where the demo's files are; and the names its progress lines use.

use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use std::path::Path;

use super::{Demo, DemoArgs, TZ};
use crate::demo::{self, PlannedItem};
use crate::schedule::Layer;
use crate::station::ledger::Record;

/// Waits for the last item to end and for central to hold every station's record of
/// every item; prints the log and the day's report; stops the stations and says where
/// the air-checks are.
pub(super) fn finish(
    d: &mut Demo,
    items: &[PlannedItem],
    args: &DemoArgs,
    dir: &Path,
) -> Result<()> {
    // Wait for the last item to end and central to hold every station's record of it.
    let last_end = items.iter().map(PlannedItem::end).max().unwrap_or_else(Utc::now);
    d.wait_until(last_end + chrono::Duration::milliseconds(500))?;
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let out = d.run_loa(&["log", "--format", "json"])?;
        let records: Vec<Record> = serde_json::from_str(&out)
            .context("`loa log --format json` printed something that is not a list of records")?;
        let complete = d.stations.iter().all(|s| {
            items.iter().all(|it| {
                records.iter().any(|r| {
                    r.station == s.info.id
                        && r.entry.item_id == it.id
                        && r.entry.planned == it.planned
                })
            })
        });
        if complete {
            break;
        }
        if Instant::now() > until {
            bail!(
                "central did not receive every station's record of every item within 30 s (see the logs in {})",
                dir.display()
            );
        }
        d.wait_until(Utc::now() + chrono::Duration::milliseconds(300))?;
    }
    d.step("programme over: central holds every station's record of every item");

    // The log and the day's report, as an operator at the province sees them.
    let today = Utc::now().with_timezone(&TZ).format("%Y-%m-%d").to_string();
    println!("\n$ loa log");
    print!("{}", d.run_loa(&["log"])?);
    println!("\n$ loa report {today}");
    print!("{}", d.run_loa(&["report", &today])?);
    println!();

    // Stop the stations (they fade out and close their air-checks), then central.
    for s in &mut d.stations {
        if let Some(mut p) = s.proc.take() {
            p.stop(Duration::from_secs(5));
        }
    }
    d.step("stations stopped");
    if args.sink == "wav" {
        if args.keep {
            println!("air-checks (what each station played, silence included, 16-bit WAV):");
        } else {
            println!("air-checks (removed with the directory: pass --keep to listen to them):");
        }
        for s in &d.stations {
            for w in &s.info.wav_files {
                println!("  {}", w.display());
            }
        }
    }
    d.timeline.stations = d.stations.iter().map(|s| s.info.clone()).collect();
    d.save_timeline()?;
    if args.keep {
        println!(
            "kept: {} (timeline in {})",
            dir.display(),
            dir.join(demo::TIMELINE_FILE).display()
        );
    } else {
        println!("removing {} (pass --keep to look at it afterwards)", dir.display());
    }
    Ok(())
}

pub(super) fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&TZ).format("%H:%M:%S").to_string()
}

pub(super) fn priority_name(p: crate::schedule::Priority) -> &'static str {
    match p {
        crate::schedule::Priority::Normal => "normal",
        crate::schedule::Priority::Priority => "priority",
        crate::schedule::Priority::Emergency => "emergency",
    }
}

pub(super) fn layer_name(layer: Layer) -> &'static str {
    match layer {
        Layer::Provincial => "provincial",
        Layer::Local => "local",
    }
}
