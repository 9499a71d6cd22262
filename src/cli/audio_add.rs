//! `loa audio add FILE... [--title T] [--accept-damaged]`: upload audio to central's
//! library (progress on stderr), skipping files it already holds. Prints one line per
//! file on stdout; a damaged file (refused unless `--accept-damaged`) carries its note.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Args, Subcommand};

use super::remote::{self, Remote, RemoteArgs};
use crate::protocol::AudioInfo;

/// `loa audio …`: the local commands of [`super::audio`] plus `add`.
#[derive(Debug, Subcommand)]
pub enum AudioAll {
    #[command(flatten)]
    Local(super::audio::AudioCommand),
    /// Upload audio files to central's library (skips files it already holds).
    Add(AudioAddArgs),
}

pub fn run_all(command: AudioAll) -> ExitCode {
    match command {
        AudioAll::Local(command) => super::audio::run(command),
        AudioAll::Add(args) => run(args),
    }
}

#[derive(Debug, Args)]
pub struct AudioAddArgs {
    /// Audio files (mp3, ogg, flac, wav).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Title to record (default: the file name without extension).
    #[arg(long)]
    pub title: Option<String>,
    /// Store a file that is truncated or has corrupt packets anyway (central refuses it
    /// otherwise); the library keeps the note, e.g. `(truncated)`.
    #[arg(long)]
    pub accept_damaged: bool,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: AudioAddArgs) -> ExitCode {
    let result = (|| {
        let remote = args.remote.resolve()?;
        remote::runtime()?.block_on(async {
            for file in &args.files {
                let info =
                    ensure_uploaded(&remote, file, args.title.as_deref(), args.accept_damaged)
                        .await?;
                println!("{}", library_line(&info));
            }
            Ok::<(), anyhow::Error>(())
        })
    })();
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => remote::report(&e),
    }
}

/// One library entry as `loa audio add` lists it: sha256, title, length, loudness, gain,
/// and the damage of a file stored with `--accept-damaged`, as `loa audio probe` notes it.
pub fn library_line(info: &AudioInfo) -> String {
    let mut line = format!(
        "{}  {}  {:.1} s  {:.1} LUFS  gain {:+.1} dB",
        info.sha256,
        crate::protocol::text::printable(&info.title),
        info.duration_ms as f64 / 1000.0,
        info.loudness_lufs,
        info.gain_db
    );
    if let Some(damage) = &info.damage {
        line.push_str(&format!("  ({})", crate::protocol::text::printable(damage)));
    }
    line
}

/// Uploads `file` unless central already holds its sha256; returns central's record.
/// Central refuses a truncated or corrupt file unless `accept_damaged`.
pub async fn ensure_uploaded(
    remote: &Remote,
    file: &Path,
    title: Option<&str>,
    accept_damaged: bool,
) -> anyhow::Result<AudioInfo> {
    let sha256 = remote::sha256_file(file)?;
    let title = title.map(String::from).unwrap_or_else(|| {
        file.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default()
    });
    if let Some(info) = remote.library_entry(&sha256).await? {
        eprintln!("{}: already in central's library", file.display());
        return Ok(info);
    }
    let info = remote.upload_audio(file, &title, accept_damaged).await?;
    if info.sha256 != sha256 {
        anyhow::bail!(
            "central stored {} as sha256:{} but it hashes to {sha256} here: the file changed during upload",
            file.display(),
            info.sha256
        );
    }
    Ok(info)
}
