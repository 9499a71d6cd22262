//! The receiving side of a scheduled relay: connects to the stream (`stream = "…"`),
//! decodes it as it arrives and feeds the player's relay buffer
//! ([`crate::audio::relay`]); reconnects with backoff when the stream drops, stalls or
//! never answers, until the slot ends or the player lets go of the feed.
//!
//! Bounds on what the stream's server controls: 10 s to connect and answer, a stall of
//! [`STALL`] without a byte counts as a drop-out, decoding is paced to real time (a server
//! that sends faster than real time costs neither CPU nor memory: the buffer keeps only
//! the newest seconds), and the answer must be 200 with an audio body symphonia reads
//! (MP3, Ogg Vorbis, FLAC, WAV).

use std::io::Read;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, sync_channel};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use symphonia::core::io::ReadOnlySource;

use crate::audio::relay::{RELAY_SLACK, RelayInput};
use crate::audio::{AudioFormat, Source};
use crate::clock::SharedClock;

/// No byte for this long: the stream is down (a drop-out), and the station reconnects.
pub const STALL: Duration = Duration::from_secs(3);
/// Connect and answer within this.
pub const CONNECT: Duration = Duration::from_secs(10);
/// The first wait before reconnecting; it doubles to [`BACKOFF_MAX`].
pub const BACKOFF_FIRST: Duration = Duration::from_millis(250);
pub const BACKOFF_MAX: Duration = Duration::from_secs(4);
/// Network chunks queued for the decoder (each a few KiB).
const QUEUE: usize = 64;

/// Where a relay reads from and what it decodes to.
#[derive(Clone)]
pub struct RelaySpec {
    pub url: String,
    pub format: AudioFormat,
    pub gain_db: f32,
    /// The slot's end: nothing is fetched after it.
    pub end: DateTime<Utc>,
    pub item_id: String,
}

/// An HTTP client for streams: the system's web roots (a relayed programme is on the
/// public internet, unlike central, whose CA is the only one the station's other clients
/// trust).
pub fn client() -> reqwest::Client {
    let mut builder = reqwest::Client::builder().connect_timeout(CONNECT).no_proxy();
    let certs = rustls_native_certs::load_native_certs();
    for cert in certs.certs {
        if let Ok(c) = reqwest::Certificate::from_der(&cert) {
            builder = builder.add_root_certificate(c);
        }
    }
    builder.build().unwrap_or_else(|e| {
        tracing::warn!("relay client with system roots: {e}; using defaults");
        reqwest::Client::new()
    })
}

/// Starts receiving `spec` into `input` on the current runtime; ends by itself.
pub fn spawn(spec: RelaySpec, input: RelayInput, http: reqwest::Client, clock: SharedClock) {
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        tracing::error!(item = %spec.item_id, "no runtime to relay on: the fallback plays");
        return;
    };
    runtime.spawn(run(spec, input, http, clock));
}

async fn run(spec: RelaySpec, input: RelayInput, http: reqwest::Client, clock: SharedClock) {
    let mut failures = 0u32;
    let mut down_logged = false;
    loop {
        if input.is_closed() || clock.now() >= spec.end {
            break;
        }
        let fetched = fetch(&spec, &input, &http).await;
        if input.is_closed() {
            // The slot ended (or the item was pre-empted): not a drop.
            break;
        }
        match fetched {
            Ok(bytes) if bytes > 0 => {
                failures = 0;
                down_logged = false;
                tracing::warn!(item = %spec.item_id, url = %spec.url, "the stream dropped after {bytes} bytes: reconnecting");
            }
            Ok(_) => failures += 1,
            Err(why) => {
                failures += 1;
                if !down_logged {
                    tracing::warn!(item = %spec.item_id, url = %spec.url, "cannot relay the stream ({why}): playing the fallback, retrying");
                    down_logged = true;
                }
            }
        }
        if input.is_closed() {
            break;
        }
        let wait = BACKOFF_FIRST.saturating_mul(1 << failures.min(5)).min(BACKOFF_MAX);
        clock.sleep(wait).await;
    }
    tracing::debug!(item = %spec.item_id, "relay connection ended");
}

/// One connection: answers with the bytes it received, or why it failed before any.
async fn fetch(
    spec: &RelaySpec,
    input: &RelayInput,
    http: &reqwest::Client,
) -> Result<u64, String> {
    let answer = tokio::time::timeout(CONNECT, http.get(&spec.url).send())
        .await
        .map_err(|_| format!("no answer within {} s", CONNECT.as_secs()))?
        .map_err(|e| e.to_string())?;
    if !answer.status().is_success() {
        return Err(format!("the server answered {}", answer.status()));
    }
    let name = stream_name(&spec.url, answer.headers().get(reqwest::header::CONTENT_TYPE));
    let (tx, rx) = sync_channel::<Vec<u8>>(QUEUE);
    let decoder = {
        let (spec, input) = (spec.clone(), input.clone());
        std::thread::Builder::new()
            .name("loa-relay-decode".into())
            .spawn(move || decode(spec, name, rx, input))
            .map_err(|e| format!("cannot start a decoding thread: {e}"))?
    };
    let mut answer = answer;
    let mut bytes = 0u64;
    loop {
        match tokio::time::timeout(STALL, answer.chunk()).await {
            Ok(Ok(Some(chunk))) => {
                bytes += chunk.len() as u64;
                // Blocks only while the decoder is QUEUE chunks behind (it is paced).
                let sent = {
                    let tx = tx.clone();
                    tokio::task::spawn_blocking(move || tx.send(chunk.to_vec()).is_ok())
                        .await
                        .unwrap_or(false)
                };
                if !sent || input.is_closed() {
                    break;
                }
            }
            Ok(Ok(None)) => break,
            Ok(Err(e)) => {
                if bytes == 0 {
                    drop(tx);
                    let _ = decoder.join();
                    return Err(e.to_string());
                }
                break;
            }
            Err(_) => {
                tracing::warn!(item = %spec.item_id, "no byte from the stream for {} s", STALL.as_secs());
                break;
            }
        }
    }
    drop(tx);
    let _ = tokio::task::spawn_blocking(move || decoder.join()).await;
    Ok(bytes)
}

/// The name the decoder gets: its extension is the format hint (`.mp3`, `.ogg`).
fn stream_name(url: &str, content_type: Option<&reqwest::header::HeaderValue>) -> PathBuf {
    let ct = content_type.and_then(|v| v.to_str().ok()).unwrap_or("").to_ascii_lowercase();
    let ext = if ct.contains("ogg") {
        "ogg"
    } else if ct.contains("mpeg") || ct.contains("mp3") {
        "mp3"
    } else {
        let path = url.split(['?', '#']).next().unwrap_or(url);
        match path.rsplit('.').next() {
            Some(e) if e.len() <= 4 && e.chars().all(|c| c.is_ascii_alphanumeric()) => e,
            _ => "mp3",
        }
    };
    PathBuf::from(format!("stream.{ext}"))
}

/// Decodes what arrives on `rx` into `input`, paced to real time plus the buffer's slack.
fn decode(spec: RelaySpec, name: PathBuf, rx: Receiver<Vec<u8>>, input: RelayInput) {
    let reader = ChannelReader { rx: std::sync::Mutex::new(rx), current: Vec::new(), at: 0 };
    let stream = Box::new(ReadOnlySource::new(reader));
    let mut source = match Source::open_stream(&name, stream, spec.format, spec.gain_db) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(item = %spec.item_id, "the stream cannot be decoded: {e}");
            return;
        }
    };
    let channels = spec.format.channels.max(1);
    let rate = f64::from(spec.format.rate.max(1));
    let mut block = vec![0.0f32; 2048 * channels];
    let started = Instant::now();
    let first = input.pushed_frames();
    let ahead_max = RELAY_SLACK.as_secs_f64() + 0.5;
    loop {
        let frames = match source.fill(&mut block) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(item = %spec.item_id, "stream decoding stopped: {e}");
                break;
            }
        };
        if !input.push(&block[..frames * channels]) {
            break;
        }
        // Paced: never more than the slack ahead of real time.
        let pushed = (input.pushed_frames() - first) as f64 / rate;
        let ahead = pushed - started.elapsed().as_secs_f64();
        if ahead > ahead_max {
            std::thread::sleep(Duration::from_secs_f64(ahead - ahead_max));
        }
    }
}

/// The network chunks as a byte stream for symphonia; the end when the sender is gone.
struct ChannelReader {
    /// In a mutex only because symphonia wants a `Sync` source; one thread reads.
    rx: std::sync::Mutex<Receiver<Vec<u8>>>,
    current: Vec<u8>,
    at: usize,
}

impl Read for ChannelReader {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        while self.at >= self.current.len() {
            let next = self.rx.lock().map_err(|_| std::io::ErrorKind::BrokenPipe)?.recv();
            match next {
                Ok(chunk) => {
                    self.current = chunk;
                    self.at = 0;
                }
                Err(_) => return Ok(0),
            }
        }
        let n = buf.len().min(self.current.len() - self.at);
        buf[..n].copy_from_slice(&self.current[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_format_hint_comes_from_the_content_type_then_the_path() {
        let ogg = reqwest::header::HeaderValue::from_static("application/ogg");
        assert_eq!(stream_name("http://h/live", Some(&ogg)), PathBuf::from("stream.ogg"));
        assert_eq!(stream_name("http://h/a.ogg?x=1", None), PathBuf::from("stream.ogg"));
        assert_eq!(stream_name("http://h/live", None), PathBuf::from("stream.mp3"));
    }
}
