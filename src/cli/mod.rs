//! The command line: one module per subcommand. Each returns an [`ExitCode`]
//! (0 success, 1 the command found problems or failed, 2 usage error) and prints
//! errors that say what to do next. Nothing here is needed by the daemons' logic.

pub mod audio;
pub mod audio_add;
pub mod bulletin;
pub mod cap;
pub mod central;
pub mod demo;
pub mod live;
pub mod log;
pub mod remote;
pub mod report;
pub mod schedule;
pub mod schedule_load;
pub mod station;
pub mod status;
pub mod user;

use std::process::ExitCode;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::{Parser, Subcommand};

/// An instant as people read it: local time in `tz`, to the second, with the zone's
/// offset (`2026-12-06 18:17:43 +07:00`). Every human-facing line uses it (`--tz`,
/// default `Asia/Ho_Chi_Minh`, as for `loa log`); JSON keeps full precision.
pub fn local_time(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %:z").to_string()
}

/// Scheduled and urgent playout for a provincial network of grassroots radio stations.
#[derive(Debug, Parser)]
#[command(name = "loa", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Check, preview and load schedule files.
    Schedule(schedule_load::ScheduleCli),
    /// Run the station daemon (or print its example config).
    Station(station::StationArgs),
    /// Show the playback log: this station's ledger, or central's playlog.
    Log(log::LogArgs),
    /// One day's planned provincial items and pushed bulletins against what each station aired.
    Report(report::ReportArgs),
    /// The provincial server: set up, register stations and operators, serve.
    Central(central::CentralArgs),
    /// Look at audio files and outputs; play a file; add files to central's library
    #[command(subcommand)]
    Audio(audio_add::AudioAll),
    /// The fleet as central sees it.
    Status(status::StatusArgs),
    /// Central and several stations on this machine, sound to WAV files.
    Demo(demo::DemoArgs),
    /// Urgent bulletins: push, cancel, list, show.
    #[command(subcommand)]
    Bulletin(bulletin::BulletinCommand),
    /// Speak live to the stations now (a file at real-time pace; the microphone is not built yet).
    Live(live::LiveArgs),
    /// Warnings from the disaster authorities in CAP: check alerts and the bulletins they make.
    #[command(subcommand)]
    Cap(cap::CapCommand),
}

/// Parses the process arguments and runs the chosen subcommand.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    run(cli)
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Schedule(args) => schedule_load::run(args),
        Command::Station(args) => station::run(args),
        Command::Log(args) => log::run(args),
        Command::Report(args) => report::run(args),
        Command::Central(args) => central::run(args),
        Command::Audio(command) => audio_add::run_all(command),
        Command::Status(args) => status::run(args),
        Command::Demo(args) => demo::run(args),
        Command::Bulletin(command) => bulletin::run(command),
        Command::Cap(command) => cap::run(command),
        Command::Live(args) => live::run(args),
    }
}

/// Logs go to stderr, filtered by `RUST_LOG` (default `info`), so stdout stays clean for
/// tables, CSV and JSON that people pipe elsewhere. `LOA_LOG_FORMAT=json` writes one JSON
/// object per line (`timestamp`, `level`, `fields.message`, the other fields, `target`)
/// for journald forwarders and log shippers; anything else, the plain text lines.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        // symphonia logs routine probing (and "errors" for files it merely rejects) at
        // info/error; the audio module reports what matters itself.
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,symphonia_core=off,symphonia_bundle_mp3=warn,symphonia_format_ogg=warn,symphonia_format_riff=warn,symphonia_bundle_flac=warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    let _ = match std::env::var("LOA_LOG_FORMAT").as_deref() {
        Ok("json") => builder.json().try_init(),
        _ => builder.try_init(),
    };
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C): how both daemons are told to stop.
pub async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => tracing::info!("SIGTERM received"),
                _ = tokio::signal::ctrl_c() => tracing::info!("SIGINT received"),
            }
        }
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM ({e}); only Ctrl-C stops it");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
