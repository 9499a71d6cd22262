//! `loa station`: runs the station daemon until SIGTERM/SIGINT, or prints the commented
//! example configuration.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Args;

use crate::clock::SystemClock;
use crate::station::config;

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
    // Under systemd (Type=notify): READY=1 once it can play, STATUS= what it does,
    // WATCHDOG=1 while the scheduler and the audio thread live. Nothing without
    // NOTIFY_SOCKET.
    let supervisor = crate::station::Supervisor::from_env();
    runtime.block_on(crate::station::run_supervised(
        config,
        Arc::new(SystemClock),
        super::shutdown_signal(),
        supervisor,
    ))?;
    Ok(())
}
