//! `loa live --to TARGETS [--priority emergency|priority] --input FILE|default`: speak to
//! the stations now. Starts a broadcast at central (its signed start document goes out on
//! the event stream), then encodes the input as Opus (48 kHz mono, 20 ms frames) and
//! uploads it in 100 ms chunks as it is spoken — a file is read at real-time pace, as a
//! microphone would give it. Central chains, signs and relays the chunks.
//!
//! `--input default` (the sound card's capture through cpal) is not built yet: it says so.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::{Args, ValueEnum};

use super::remote::{self, RemoteArgs};
use crate::audio::opus_codec::Encoder;
use crate::audio::{AudioFormat, Source};
use crate::protocol::live::{
    FRAME_SAMPLES, FRAMES_PER_CHUNK, RATE, StartLiveRequest, StartLiveResponse, pack,
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
    /// An audio file to speak (mp3, ogg, flac, wav), sent at real-time pace; `default`
    /// (the sound card's microphone) is not built yet.
    #[arg(long, default_value = "default")]
    pub input: String,
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

fn run_inner(args: LiveArgs) -> anyhow::Result<()> {
    if args.input == "default" {
        bail!("capturing the sound card is not built yet: speak into a file and pass --input FILE");
    }
    let path = PathBuf::from(&args.input);
    let to: Target = args.to.parse().map_err(|e: String| anyhow!(e))?;
    let format = AudioFormat { rate: RATE, channels: 1 };
    // Opened before anything starts at central: a file that cannot be read starts nothing.
    let source = Source::open(&path, format, 0.0)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let remote = args.remote.resolve()?;
    let priority = match args.priority {
        LivePriority::Emergency => BulletinPriority::Emergency,
        LivePriority::Priority => BulletinPriority::Priority,
    };
    remote::runtime()?.block_on(async move {
        let request = StartLiveRequest { title: args.title.clone(), to, priority };
        let answer = remote
            .http
            .post(remote.url(crate::protocol::api::operator::LIVE))
            .bearer_auth(&remote.token)
            .json(&request)
            .send()
            .await
            .map_err(|e| remote.send_error(e))?;
        if !answer.status().is_success() {
            return Err(remote.fail("starting a live broadcast", answer).await);
        }
        let started: StartLiveResponse =
            answer.json().await.context("central's answer to a live start")?;
        println!("{}", started.id);
        eprintln!("on air to {} stations: speaking {}", started.stations, path.display());
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Vec<u8>, std::io::Error>>(16);
        let encoder = std::thread::Builder::new()
            .name("loa-live-encode".into())
            .spawn(move || encode_paced(source, tx))
            .context("cannot start the encoder")?;
        let body =
            reqwest::Body::wrap_stream(futures_util::stream::unfold(rx, |mut rx| async move {
                rx.recv().await.map(|item| (item, rx))
            }));
        let answer = remote
            .http
            .put(remote.url(&started.upload))
            .bearer_auth(&remote.token)
            .body(body)
            .send()
            .await
            .map_err(|e| remote.send_error(e))?;
        let sent = encoder.join().map_err(|_| anyhow!("the encoder failed"))??;
        if !answer.status().is_success() {
            return Err(remote.fail("the live audio", answer).await);
        }
        eprintln!("ended: {sent} chunks ({:.1} s) sent", sent as f64 / 10.0);
        Ok(())
    })
}

/// Decodes, encodes and sends 100 ms chunks (each a `u32` length and the packed
/// packets), paced to real time; the number of chunks sent.
fn encode_paced(
    mut source: Source,
    tx: tokio::sync::mpsc::Sender<Result<Vec<u8>, std::io::Error>>,
) -> anyhow::Result<u64> {
    let mut encoder = Encoder::new()?;
    let chunk_samples = FRAME_SAMPLES * FRAMES_PER_CHUNK;
    let mut block = vec![0.0f32; chunk_samples];
    let started = std::time::Instant::now();
    let mut sent = 0u64;
    loop {
        let n = source.fill(&mut block).map_err(|e| anyhow!("{e}"))?;
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
        // As spoken: chunk k leaves at k × 100 ms.
        let due = started + Duration::from_millis(sent * 100);
        if let Some(wait) = due.checked_duration_since(std::time::Instant::now()) {
            std::thread::sleep(wait);
        }
        if tx.blocking_send(Ok(framed)).is_err() {
            bail!("central stopped taking the audio");
        }
        sent += 1;
    }
    Ok(sent)
}
