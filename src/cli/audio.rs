//! `loa audio …`: look at audio files and outputs, and play a file through a sink.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use clap::Subcommand;

use crate::audio::sinks::{self, SinkOptions};
use crate::audio::{Player, PlayerConfig, PlayerEvent, probe};
use crate::clock::{SharedClock, SystemClock};

#[derive(Debug, Subcommand)]
pub enum AudioCommand {
    /// Format, codec, duration, rate, channels, loudness (EBU R128) and peak of each file
    Probe {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Output devices and sink backends the station can play to, and the microphones
    /// `loa live` can capture
    Devices,
    /// Play one file through a sink now (or at --at), then print its proof of play
    Play {
        file: PathBuf,
        /// Sink backend: default, alsa, wav, clocked, null
        #[arg(long, default_value = "default")]
        sink: String,
        /// Output file for the wav sink
        #[arg(long)]
        out: Option<PathBuf>,
        /// Sound card for the alsa sink (a name from `loa audio devices`)
        #[arg(long)]
        device: Option<String>,
        /// Gain applied to every sample, dB
        #[arg(long, default_value_t = 0.0, allow_negative_numbers = true)]
        gain: f32,
        /// When the first sample should be heard (RFC 3339); default now
        #[arg(long)]
        at: Option<DateTime<Utc>>,
        /// Rate of the wav/clocked/null sinks, Hz
        #[arg(long, default_value_t = 48_000)]
        rate: u32,
        /// Channels of the wav/clocked/null sinks
        #[arg(long, default_value_t = 2)]
        channels: usize,
    },
}

pub fn run(command: AudioCommand) -> ExitCode {
    match command {
        AudioCommand::Probe { files } => probe_files(&files),
        AudioCommand::Devices => match devices() {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e:#}");
                ExitCode::FAILURE
            }
        },
        AudioCommand::Play { file, sink, out, device, gain, at, rate, channels } => {
            let options = SinkOptions { path: out, rate, channels, device, ..Default::default() };
            match play(&file, &sink, options, gain, at) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::FAILURE
                }
            }
        }
    }
}

fn probe_files(files: &[PathBuf]) -> ExitCode {
    let mut failed = 0;
    let width = files.iter().map(|f| f.display().to_string().chars().count()).max().unwrap_or(4);
    println!(
        "{:<width$} {:<6} {:<10} {:>9} {:>7} {:>3} {:>9} {:>9} {:>9}",
        "file", "format", "codec", "duration", "rate", "ch", "loudness", "peak", "true peak"
    );
    for file in files {
        match probe(file) {
            Ok(r) => {
                println!(
                    "{:<width$} {:<6} {:<10} {:>8.2}s {:>7} {:>3} {:>5.1} LUFS {:>4.1} dBFS {:>4.1} dBTP{}",
                    file.display(),
                    r.format,
                    r.codec,
                    r.duration.as_secs_f64(),
                    r.rate,
                    r.channels,
                    r.integrated_lufs,
                    r.peak_dbfs,
                    r.true_peak_dbtp,
                    r.stats.damage().map(|d| format!("  ({d})")).unwrap_or_default()
                );
            }
            Err(e) => {
                failed += 1;
                eprintln!("error: {e}");
            }
        }
    }
    if failed > 0 {
        eprintln!("{failed} of {} files could not be read", files.len());
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

fn devices() -> Result<()> {
    println!("sinks:");
    for (name, description) in sinks::list() {
        println!("  {name:<8} {description}");
    }
    if !cfg!(feature = "alsa-backend") {
        println!("sound cards: none (built without the alsa-backend feature)");
        return Ok(());
    }
    let devices = sinks::devices().context("cannot list sound cards")?;
    if devices.is_empty() {
        println!("sound cards: none found (use the wav sink on this machine)");
    } else {
        println!("sound cards (for --device / the alsa sink):");
        for d in devices {
            let mark = if d.is_default { " (default)" } else { "" };
            println!("  {}{mark}  {}", d.name, d.description);
        }
    }
    let microphones =
        crate::audio::capture::list().context("cannot list the sound cards' inputs")?;
    if microphones.is_empty() {
        println!("microphones: none found");
    } else {
        println!("microphones (for loa live --device):");
        for (name, description) in microphones {
            println!("  {name}  {description}");
        }
    }
    Ok(())
}

fn play(
    file: &std::path::Path,
    sink_name: &str,
    mut options: SinkOptions,
    gain: f32,
    at: Option<DateTime<Utc>>,
) -> Result<()> {
    let clock: SharedClock = Arc::new(SystemClock);
    options.clock = clock.clone();
    let sink = sinks::open(sink_name, options)
        .with_context(|| format!("cannot open sink {sink_name:?}"))?;
    eprintln!("sink: {} ({})", sink_name, sink.describe());
    let (player, mut events) = Player::spawn(sink, clock.clone(), PlayerConfig::default());
    let id = 1;
    player.prepare(id, file.to_path_buf(), gain);
    let mut started = false;
    while let Some(event) = events.blocking_recv() {
        match event {
            PlayerEvent::Prepared { .. } => {
                player.start_at(id, at.unwrap_or_else(|| clock.now()));
            }
            PlayerEvent::Started { at, .. } => {
                started = true;
                eprintln!(
                    "started: first sample at {}",
                    super::local_time(at, chrono_tz::Asia::Ho_Chi_Minh)
                );
            }
            PlayerEvent::Finished { proof, .. } => {
                println!(
                    "played {}: {} frames, {:.3} s, peak {:.1} dBFS, rms {:.1} dBFS{}{}",
                    file.display(),
                    proof.frames,
                    proof.duration.as_secs_f64(),
                    proof.peak_dbfs,
                    proof.rms_dbfs,
                    if proof.silent { ", SILENT" } else { "" },
                    if proof.truncated { ", truncated" } else { "" },
                );
                break;
            }
            PlayerEvent::Preempted { played, .. } => {
                bail!("playback was cut after {:.3} s", played.as_secs_f64());
            }
            PlayerEvent::Failed { reason, .. } => {
                bail!("{reason}");
            }
        }
    }
    if !started {
        bail!("the player stopped before playing {}", file.display());
    }
    // Stop the stream with what was written drained to the sink.
    player.shutdown();
    Ok(())
}
