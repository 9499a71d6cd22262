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
    #[command(subcommand)]
    pub command: Option<StationCommand>,
    /// The configuration file (see --print-config).
    #[arg(long, default_value = "station.toml")]
    pub config: PathBuf,
    /// Print a commented example configuration with every default, and exit.
    #[arg(long)]
    pub print_config: bool,
}

#[derive(Debug, clap::Subcommand)]
pub enum StationCommand {
    /// Enrol this station with the one-time code from `loa central station add`: fetch
    /// its token, the province key and central's CA (checked against the code), write
    /// the config, and start the service.
    Enroll {
        /// Central's URL, https:// (e.g. https://central.example.vn:8480). With central
        /// on several machines, enrol with one, then list them all in station.toml:
        /// central_url = ["https://a…", "https://b…"] (the preferred first).
        #[arg(long)]
        central: String,
        /// The code, e.g. 7K3M-Q9TX-2HPD (case, spaces and dashes do not matter).
        #[arg(long)]
        code: String,
        /// Where to write station.toml (central's CA goes beside it).
        #[arg(long, default_value = "/etc/loa/station.toml")]
        config: PathBuf,
        /// The station's data directory, written into the config.
        #[arg(long, default_value = "/var/lib/loa/station")]
        data_dir: PathBuf,
        /// Replace an existing config.
        #[arg(long)]
        force: bool,
        /// Do not start (or restart) the loa-station service.
        #[arg(long)]
        no_start: bool,
    },
}

pub fn run(args: StationArgs) -> ExitCode {
    if let Some(StationCommand::Enroll { central, code, config, data_dir, force, no_start }) =
        args.command
    {
        let request = crate::station::enrol::Request { central, code, config, data_dir, force };
        return match enroll(&request, no_start) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::from(1)
            }
        };
    }
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

fn enroll(request: &crate::station::enrol::Request, no_start: bool) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let done = runtime.block_on(crate::station::enrol::enroll(request))?;
    println!("enrolled as station {} with {}", done.station_id, request.central);
    println!("wrote {} (0640) and {}", done.config.display(), done.ca_cert.display());
    let systemd = std::path::Path::new("/run/systemd/system").exists();
    if no_start {
        println!("not started (--no-start): `systemctl enable --now loa-station` when ready");
    } else if systemd {
        let status = std::process::Command::new("systemctl")
            .args(["enable", "--now", "loa-station.service"])
            .status()
            .context("cannot run systemctl")?;
        let restarted = std::process::Command::new("systemctl")
            .args(["restart", "loa-station.service"])
            .status()
            .context("cannot run systemctl")?;
        if !status.success() || !restarted.success() {
            anyhow::bail!(
                "the config is written, but the service did not start: see `systemctl status loa-station` and `journalctl -u loa-station`"
            );
        }
        println!("loa-station started; follow it with `journalctl -fu loa-station`");
    } else {
        println!(
            "systemd is not running here: start the station with `loa station --config {}`",
            done.config.display()
        );
    }
    Ok(())
}
