//! `loa station`: runs the station daemon until SIGTERM/SIGINT, or prints the commented
//! example configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use crate::clock::SystemClock;
use crate::station::uplink::Uplink;
use crate::station::{Station, config};

/// Run the station daemon.
#[derive(Debug, Args)]
pub struct StationArgs {
    /// The configuration file (see --print-config).
    #[arg(long, default_value = "station.toml")]
    pub config: PathBuf,
    /// Print a commented example configuration with every default, and exit.
    #[arg(long)]
    pub print_config: bool,
}

pub fn run(args: StationArgs) -> ExitCode {
    if args.print_config {
        print!("{}", config::EXAMPLE);
        return ExitCode::SUCCESS;
    }
    match run_daemon(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run_daemon(args: StationArgs) -> Result<()> {
    let config = config::load(&args.config)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        // Everything reads one clock, which plans by central's time while this box's
        // own clock is known to be wrong (see `uplink::CentralTime`).
        let offset_clock = crate::clock::OffsetClock::new(Arc::new(SystemClock));
        let clock: crate::clock::SharedClock = offset_clock.clone();
        let (mut station, handle) = Station::from_config(config.clone(), clock.clone())?;
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let receiver = crate::station::bulletins::spawn_for(
            &config,
            clock.clone(),
            handle.clone(),
            station.status(),
            station.bulletin_records(),
            async move {
                let _ = stop_rx.await;
            },
        )?;
        // With central configured, the uplink (sync, heartbeats, playlog) runs beside
        // the daemon and stops after it, so the records of the shutdown go up too.
        let uplink = Uplink::from_config(&config, handle, clock)?.map(|uplink| {
            let uplink = uplink.with_central_time(offset_clock, config.trust_central_time);
            let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
            let task = tokio::spawn(uplink.run(async {
                let _ = stopped.await;
            }));
            (stop, task)
        });
        station.run(shutdown_signal()).await?;
        let _ = stop_tx.send(());
        if let Some(task) = receiver {
            let _ = task.await;
        }
        if let Some((stop, task)) = uplink {
            let _ = stop.send(());
            let _ = task.await;
        }
        Ok(())
    })
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => tracing::info!("SIGTERM received"),
                    _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
                }
            }
            Err(e) => {
                tracing::warn!("cannot listen for SIGTERM ({e}); only Ctrl-C stops the station");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
