//! Fetches one live broadcast from central (`GET /api/v1/station/live/{id}`), passes
//! every record through the [`Verifier`], decodes the Opus packets it lets through and
//! pushes them into the player's relay buffer. The first refusal cuts the broadcast
//! (the buffer is cleared, the feed fails with why); the signed end finishes it (the
//! buffer plays out). A dropped connection is tried again, rejoining at central's latest
//! checkpoint, until the broadcast ends or the player lets go.

use std::time::Duration;

use futures_util::StreamExt;

use super::verify::{Verdict, Verifier};
use crate::audio::AudioFormat;
use crate::audio::opus_codec::Decoder;
use crate::audio::relay::RelayInput;
use crate::protocol::live::Reader;
use crate::signing::PublicKey;

/// Connect and answer within this (every request to central: see `central_addrs`).
const CONNECT: Duration = crate::station::central_addrs::ANSWER_TIMEOUT;
/// No byte for this long (central sends a checkpoint every second): reconnect.
const STALL: Duration = Duration::from_secs(5);

/// Where and how to fetch a broadcast.
#[derive(Clone)]
pub struct LiveFetch {
    /// Central's addresses, shared with the station's other clients: each connection
    /// goes to the one current then, and one that does not answer moves them on.
    pub central: std::sync::Arc<crate::station::central_addrs::CentralAddrs>,
    /// `/api/v1/station/live/{id}`.
    pub path: String,
    pub token: String,
    pub http: reqwest::Client,
    pub key: PublicKey,
    pub id: String,
    /// The chain's first hash, from the signed start document.
    pub genesis: [u8; 32],
}

/// How one connection ended.
enum Ended {
    /// The province's last checkpoint: everything is in the buffer.
    Finished,
    /// Refused: the broadcast is cut.
    Cut(String),
    /// The connection dropped: try again.
    Dropped(String),
}

/// Receives `fetch` into `input` until the broadcast ends, is cut, or nobody listens.
pub async fn run(fetch: LiveFetch, input: RelayInput, format: AudioFormat) {
    let mut decoder = match Decoder::new(format) {
        Ok(d) => d,
        Err(e) => {
            input.cut(format!("live {}: {e}", fetch.id));
            return;
        }
    };
    let mut wait = Duration::from_millis(250);
    let mut joined = false;
    loop {
        match once(&fetch, &input, &mut decoder, &mut joined).await {
            Ended::Finished => {
                tracing::info!(id = %fetch.id, "live broadcast ended by the province");
                input.finish();
                return;
            }
            Ended::Cut(why) => {
                tracing::error!(id = %fetch.id, "live broadcast cut: {why}");
                input.cut(why);
                return;
            }
            Ended::Dropped(why) => {
                if input.is_closed() {
                    return;
                }
                tracing::warn!(id = %fetch.id, "live broadcast connection lost ({why}): rejoining");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(Duration::from_secs(4));
            }
        }
    }
}

async fn once(
    fetch: &LiveFetch,
    input: &RelayInput,
    decoder: &mut Decoder,
    joined: &mut bool,
) -> Ended {
    use crate::station::central_addrs::Unanswered;
    let pick = fetch.central.choose();
    let request = fetch.http.get(pick.url(&fetch.path)).bearer_auth(&fetch.token);
    let answer = match fetch.central.send(&pick, request, CONNECT).await {
        Err(Unanswered::Timeout(_)) => {
            return Ended::Dropped(format!("no answer within {} s", CONNECT.as_secs()));
        }
        Err(Unanswered::Http(e)) => return Ended::Dropped(e.to_string()),
        Ok(a) => a,
    };
    match answer.status() {
        s if s.is_success() => {}
        // No longer on air: it ended while this station was reconnecting, or before it
        // heard of it at all (then nothing aired here, and the record says why).
        reqwest::StatusCode::NOT_FOUND if *joined => return Ended::Finished,
        reqwest::StatusCode::NOT_FOUND => {
            return Ended::Cut(format!(
                "live {}: it had ended before this station could join",
                fetch.id
            ));
        }
        s => return Ended::Dropped(format!("central answered {s}")),
    }
    // A new connection starts at a checkpoint: a fresh verifier joins there.
    let mut verifier = Verifier::new(fetch.key, &fetch.id, fetch.genesis);
    let mut reader = Reader::default();
    *joined = true;
    let mut body = answer.bytes_stream();
    loop {
        let bytes = match tokio::time::timeout(STALL, body.next()).await {
            Err(_) => return Ended::Dropped(format!("no byte for {} s", STALL.as_secs())),
            Ok(None) => return Ended::Dropped("central closed the stream".into()),
            Ok(Some(Err(e))) => return Ended::Dropped(e.to_string()),
            Ok(Some(Ok(b))) => b,
        };
        reader.push(&bytes);
        loop {
            let record = match reader.next_record() {
                Ok(Some(r)) => r,
                Ok(None) => break,
                Err(why) => return Ended::Cut(format!("live {}: {why}", fetch.id)),
            };
            match verifier.on_record(record) {
                Ok(Verdict::Play(packets)) => {
                    for p in packets {
                        match decoder.decode(&p) {
                            Ok(samples) => {
                                if !input.push(&samples) {
                                    return Ended::Finished;
                                }
                            }
                            Err(e) => tracing::warn!(id = %fetch.id, "a live packet skipped: {e}"),
                        }
                    }
                }
                Ok(Verdict::Verified { .. }) => {}
                Ok(Verdict::Ended { .. }) => return Ended::Finished,
                Err(e) => return Ended::Cut(e.to_string()),
            }
        }
    }
}
