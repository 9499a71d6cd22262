//! `loa live --to TARGETS [--priority emergency|priority] --input FILE|default`: speak to
//! the stations now. Starts a broadcast at central (its signed start document goes out on
//! the event stream), then encodes the input as Opus (48 kHz mono, 20 ms frames) and
//! uploads it in 100 ms chunks as it is spoken — a file is read at real-time pace, as a
//! microphone would give it. Central chains, signs and relays the chunks.
//!
//! `--input default` (or `--device NAME`) captures the sound card through cpal
//! ([`crate::audio::capture`]): the device is opened before anything starts at central,
//! records from the moment the broadcast is on air, and paces the upload itself.
//!
//! It ends when the file ends, on Ctrl-C or SIGTERM, or after `--max-secs` (at most
//! [`MAX_LIVE_SECS`]): the upload closes, and central ends the broadcast with its last
//! checkpoint.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Args, ValueEnum};

use super::remote::{self, RemoteArgs};
use crate::audio::capture::Capture;
use crate::audio::opus_codec::Encoder;
use crate::audio::{AudioFormat, Source};
use crate::protocol::live::{
    FRAME_SAMPLES, FRAMES_PER_CHUNK, MAX_LIVE_SECS, RATE, StartLiveRequest, StartLiveResponse, pack,
};
use crate::protocol::{BulletinPriority, Target};

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LivePriority {
    /// Interrupts everything but another emergency.
    Emergency,
    /// Ahead of normal programmes, behind emergencies.
    Priority,
}

#[derive(Debug, Args)]
pub struct LiveArgs {
    /// `all`, station ids `ID,ID`, or `district:NAME`.
    #[arg(long)]
    pub to: String,
    #[arg(long, value_enum, default_value = "emergency")]
    pub priority: LivePriority,
    /// `default`: the sound card's microphone; or an audio file to speak (mp3, ogg, flac,
    /// wav), sent at real-time pace.
    #[arg(long, default_value = "default")]
    pub input: String,
    /// The capture device for `--input default` (a name as `loa audio devices` lists
    /// it); the system's default input when absent.
    #[arg(long)]
    pub device: Option<String>,
    /// Ends the broadcast after this many seconds (Ctrl-C or SIGTERM end it sooner).
    #[arg(long, default_value_t = MAX_LIVE_SECS, value_parser = clap::value_parser!(u64).range(1..=MAX_LIVE_SECS))]
    pub max_secs: u64,
    #[arg(long, default_value = "Phát thanh trực tiếp")]
    pub title: String,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

pub fn run(args: LiveArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => remote::report(&e),
    }
}

/// Where the voice comes from.
enum Input {
    File(Box<Source>, PathBuf),
    Card(Capture),
}

impl Input {
    fn open(args: &LiveArgs) -> anyhow::Result<Self> {
        if args.input == "default" {
            return Ok(Self::Card(Capture::open(args.device.as_deref())?));
        }
        if args.device.is_some() {
            bail!("--device picks the sound card for --input default: drop one of them");
        }
        let path = PathBuf::from(&args.input);
        let format = AudioFormat { rate: RATE, channels: 1 };
        let source = Source::open(&path, format, 0.0)
            .with_context(|| format!("cannot read {}", path.display()))?;
        Ok(Self::File(Box::new(source), path))
    }

    fn describe(&self) -> String {
        match self {
            Self::File(_, path) => path.display().to_string(),
            Self::Card(capture) => format!("the sound card ({})", capture.description),
        }
    }

    /// Fills `block` (fewer only at the end, or when `stop` is set); 0 at the end.
    fn fill(&mut self, block: &mut [f32], stop: &AtomicBool) -> anyhow::Result<usize> {
        if stop.load(Ordering::Relaxed) {
            return Ok(0);
        }
        match self {
            Self::File(source, _) => source.fill(block).map_err(|e| anyhow!("{e}")),
            Self::Card(capture) => {
                let mut n = 0;
                while n < block.len() && !stop.load(Ordering::Relaxed) {
                    n += capture.take(&mut block[n..], Duration::from_millis(100))?;
                }
                Ok(n)
            }
        }
    }
}

/// Why the broadcast ended, as the operator is told.
fn ending(stopped: bool, sent: u64, max_chunks: u64) -> &'static str {
    if stopped {
        "stopped (Ctrl-C or SIGTERM)"
    } else if sent >= max_chunks {
        "--max-secs reached"
    } else {
        "the input ended"
    }
}

/// Ctrl-C and SIGTERM, caught from before the broadcast starts.
struct Signals {
    int: tokio::signal::unix::Signal,
    term: tokio::signal::unix::Signal,
}

impl Signals {
    /// Registers both at once (inside the runtime), so none is missed.
    fn catch() -> anyhow::Result<Self> {
        use tokio::signal::unix::{SignalKind, signal};
        Ok(Self {
            int: signal(SignalKind::interrupt()).context("cannot catch Ctrl-C")?,
            term: signal(SignalKind::terminate()).context("cannot catch SIGTERM")?,
        })
    }
}

/// Sets `stop` on Ctrl-C or SIGTERM; a second one (central not answering the end) exits
/// at once, as Ctrl-C did before.
async fn stop_on_signal(signals: Signals, stop: Arc<AtomicBool>) {
    let Signals { mut int, mut term } = signals;
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    eprintln!("ending the broadcast… (again to quit at once)");
    stop.store(true, Ordering::Relaxed);
    tokio::select! {
        _ = int.recv() => {}
        _ = term.recv() => {}
    }
    eprintln!("quit before central confirmed the end: GET /api/v1/live says how it ended");
    std::process::exit(130);
}

fn run_inner(args: LiveArgs) -> anyhow::Result<()> {
    let to: Target = args.to.parse().map_err(|e: String| anyhow!(e))?;
    // Opened before anything starts at central: an input that cannot be read starts nothing.
    let input = Input::open(&args)?;
    let remote = args.remote.resolve()?;
    let priority = match args.priority {
        LivePriority::Emergency => BulletinPriority::Emergency,
        LivePriority::Priority => BulletinPriority::Priority,
    };
    let max_chunks = args.max_secs.saturating_mul(10);
    remote::runtime()?.block_on(async move {
        let stop = Arc::new(AtomicBool::new(false));
        tokio::spawn(stop_on_signal(Signals::catch()?, stop.clone()));
        let request = StartLiveRequest { title: args.title.clone(), to, priority };
        let answer = remote
            .send(remote::Retry::Once(remote::WORK_TIMEOUT), |base| {
                remote
                    .http
                    .post(format!("{base}{}", crate::protocol::api::operator::LIVE))
                    .json(&request)
            })
            .await?;
        // The audio goes to the address that started the broadcast (the one that
        // answered): another central would not know it.
        let base = remote.base().to_string();
        if !answer.status().is_success() {
            return Err(remote.fail("starting a live broadcast", answer).await);
        }
        let started: StartLiveResponse =
            answer.json().await.context("central's answer to a live start")?;
        println!("{}", started.id);
        eprintln!("on air to {} stations: speaking {}", started.stations, input.describe());
        if let Input::Card(capture) = &input {
            capture.start()?;
        }
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(16);
        let encoder_stop = stop.clone();
        let encoder = std::thread::Builder::new()
            .name("loa-live-encode".into())
            .spawn(move || encode_paced(input, tx, &encoder_stop, max_chunks))
            .context("cannot start the encoder")?;
        let body =
            reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            }));
        let answer = remote
            .http
            .put(format!("{base}{}", started.upload))
            .bearer_auth(&remote.token)
            .body(body)
            .send()
            .await
            .map_err(|e| {
                let why = crate::station::sync::describe_http_for(
                    &e,
                    crate::station::sync::TlsSettings::CLI,
                );
                anyhow!("cannot send the live audio to central at {base}: {why}")
            })?;
        let (sent, dropped) = encoder.join().map_err(|_| anyhow!("the encoder failed"))??;
        if !answer.status().is_success() {
            return Err(remote.fail("the live audio", answer).await);
        }
        let why = ending(stop.load(Ordering::Relaxed), sent, max_chunks);
        eprintln!("ended ({why}): {sent} chunks ({:.1} s) sent", sent as f64 / 10.0);
        if dropped > 0 {
            eprintln!(
                "warning: {:.2} s of the microphone was dropped: the upload could not keep up",
                dropped as f64 / f64::from(RATE)
            );
        }
        Ok(())
    })
}

/// Encodes and sends 100 ms chunks (each a `u32` length and the packed packets) until the
/// input ends, `stop` is set, or `max_chunks` went; a file is paced to real time, the
/// sound card paces itself. The chunks sent and the microphone's samples dropped.
fn encode_paced(
    mut input: Input,
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
    stop: &AtomicBool,
    max_chunks: u64,
) -> anyhow::Result<(u64, u64)> {
    let mut encoder = Encoder::new()?;
    let chunk_samples = FRAME_SAMPLES * FRAMES_PER_CHUNK;
    let mut block = vec![0.0f32; chunk_samples];
    let started = std::time::Instant::now();
    let mut sent = 0u64;
    while sent < max_chunks {
        let n = input.fill(&mut block, stop)?;
        if n == 0 {
            break;
        }
        // The last chunk padded with silence to whole frames.
        block[n..].fill(0.0);
        let frames = n.div_ceil(FRAME_SAMPLES);
        let packets = encoder.push(&block[..frames * FRAME_SAMPLES])?;
        let payload = pack(&packets);
        let mut framed = (payload.len() as u32).to_be_bytes().to_vec();
        framed.extend_from_slice(&payload);
        // A file as spoken: chunk k leaves at k × 100 ms.
        if matches!(input, Input::File(..)) {
            let due = started + Duration::from_millis(sent * 100);
            if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
                std::thread::sleep(wait);
            }
        }
        if tx.blocking_send(Ok(framed)).is_err() {
            bail!("central stopped taking the audio");
        }
        sent += 1;
    }
    let dropped = match &input {
        Input::Card(capture) => capture.dropped(),
        Input::File(..) => 0,
    };
    Ok((sent, dropped))
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        live: LiveArgs,
    }

    fn parse(max: &str) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(["loa", "--to", "all", "--max-secs", max])
    }

    #[test]
    fn max_secs_is_bounded_by_the_longest_broadcast_one_past_refused() {
        assert_eq!(parse(&MAX_LIVE_SECS.to_string()).unwrap().live.max_secs, MAX_LIVE_SECS);
        assert!(parse(&(MAX_LIVE_SECS + 1).to_string()).is_err());
        assert!(parse("0").is_err());
        assert_eq!(
            Cli::try_parse_from(["loa", "--to", "all"]).unwrap().live.max_secs,
            MAX_LIVE_SECS
        );
    }

    #[test]
    fn the_operator_is_told_why_it_ended() {
        assert_eq!(ending(true, 5, 10), "stopped (Ctrl-C or SIGTERM)");
        assert_eq!(ending(false, 10, 10), "--max-secs reached");
        assert_eq!(ending(false, 9, 10), "the input ended");
    }
}
