//! `loa schedule load FILE --to all|ID,...|district:NAME`: check the file with the same
//! parser as `loa schedule check`, upload the audio central lacks, then assign it.
//!
//! [`ScheduleCli`] adds `load` beside the `check` and `next` subcommands of
//! [`super::schedule`] without changing that module.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};

use super::audio_add::ensure_uploaded;
use super::remote::{self, RemoteArgs, Retry};
use super::schedule::{ScheduleArgs, ScheduleCommand};
use crate::central::manifest::audio_key;
use crate::protocol::{LoadScheduleRequest, LoadScheduleResponse, Target};
use crate::schedule::{self, AudioRef};

#[derive(Debug, Args)]
pub struct ScheduleCli {
    #[command(subcommand)]
    pub command: ScheduleAll,
}

#[derive(Debug, Subcommand)]
pub enum ScheduleAll {
    #[command(flatten)]
    Local(ScheduleCommand),
    /// Upload a schedule file's audio and assign the file to stations at central.
    Load(LoadArgs),
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// The schedule file (TOML).
    pub file: PathBuf,
    /// Where it goes: all, a comma-separated list of station ids, or district:NAME.
    #[arg(long, value_parser = |s: &str| s.parse::<Target>())]
    pub to: Target,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: ScheduleCli) -> ExitCode {
    match args.command {
        ScheduleAll::Local(command) => super::schedule::run(ScheduleArgs { command }),
        ScheduleAll::Load(load) => match run_load(load) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => remote::report(&e),
        },
    }
}

fn run_load(args: LoadArgs) -> anyhow::Result<()> {
    let source = std::fs::read_to_string(&args.file)
        .with_context(|| format!("cannot read {}", args.file.display()))?;
    let shown = args.file.display().to_string();
    let origin = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .with_context(|| format!("{shown} is not a file name"))?;
    // Parsed the way central and the stations parse it: paths exactly as written.
    let parsed = schedule::parse(&source, &shown, Path::new(""));
    let errors: Vec<String> =
        parsed.diagnostics.iter().filter(|d| d.is_error()).map(ToString::to_string).collect();
    if !errors.is_empty() {
        bail!("{}\n{shown}: not loaded, fix the errors above", errors.join("\n"));
    }
    let dir = args.file.parent().unwrap_or(Path::new("")).to_path_buf();
    let mut files = BTreeMap::new();
    for (audio, pos) in &parsed.audio {
        if let (AudioRef::Path(path), Some(key)) = (audio, audio_key(audio)) {
            let local = dir.join(path);
            if !local.is_file() {
                bail!(
                    "{shown}:{}:{}: error: audio file {} does not exist",
                    pos.line,
                    pos.column,
                    local.display()
                );
            }
            files.insert(key, local);
        }
    }
    let remote = args.remote.resolve()?;
    remote::runtime()?.block_on(async {
        let mut audio = BTreeMap::new();
        for (key, local) in &files {
            let info = ensure_uploaded(&remote, local, None, false).await?;
            audio.insert(key.clone(), info.sha256);
        }
        let request = LoadScheduleRequest { origin: origin.clone(), source, audio, to: args.to };
        let response = remote
            .send(Retry::Once(remote::WORK_TIMEOUT), |base| {
                remote.http.post(format!("{base}/api/v1/schedules")).json(&request)
            })
            .await?;
        if !response.status().is_success() {
            return Err(remote.fail(&format!("loading {shown}"), response).await);
        }
        let loaded: LoadScheduleResponse =
            response.json().await.context("central's answer is not valid JSON")?;
        println!(
            "loaded {origin} as schedule {} for {} station(s)",
            loaded.schedule_id,
            loaded.stations.len()
        );
        for (station, version) in &loaded.stations {
            println!("  {station}: manifest v{version}");
        }
        Ok(())
    })
}
