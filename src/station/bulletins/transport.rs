//! Reaching central: the event stream (SSE, resumed after the last signed event), the
//! poll fallback, and the cancels a start asks for before resuming. Every byte read from
//! central is bounded: one event, one poll answer.

use std::collections::HashSet;
use std::time::Duration;

use futures_util::StreamExt;

use super::{BulletinError, RESUME_POLL, Receiver, STREAM_IDLE};
use crate::protocol::{BulletinEvent, BulletinEvents, DocumentKind};
use crate::station::central_addrs::{ANSWER_TIMEOUT, Unanswered};

impl Receiver {
    /// One poll request (waiting up to `wait` s for an event).
    pub async fn poll(&mut self, wait: u64) -> Result<(), BulletinError> {
        let after = self.seen.last_event()?;
        let central = self.config.sync.central.clone();
        let pick = central.choose();
        // As for the manifest: only an address that has answered gets a waiting poll.
        let wait = if pick.choice.settled { wait } else { 0 };
        let url = pick.url(&format!("/api/v1/station/events/poll?after={after}&wait={wait}"));
        let request = self
            .http
            .get(&url)
            .bearer_auth(&self.config.sync.token)
            .timeout(Duration::from_secs(wait + 30));
        let patience = ANSWER_TIMEOUT + Duration::from_secs(wait);
        let response =
            central.send(&pick, request, patience).await.map_err(|e| unanswered(&url, e))?;
        if !response.status().is_success() {
            return Err(BulletinError::Status {
                what: "bulletin poll".into(),
                status: response.status(),
            });
        }
        let body = read_limited(response, MAX_POLL_BYTES, "a bulletin poll answer", &url).await?;
        let events: BulletinEvents = serde_json::from_slice(&body)
            .map_err(|e| BulletinError::Malformed(format!("bulletin poll answer: {e}")))?;
        for event in events.events {
            self.handle(event).await;
        }
        Ok(())
    }

    /// Holds the event stream open until it ends or goes silent.
    /// Its first answer must come within [`ANSWER_TIMEOUT`] (central answers a stream's
    /// headers at once); then a silence of [`STREAM_IDLE`] ends it. Held at another
    /// address than the preferred one, it ends (and reconnects, resuming after the last
    /// event) once the preferred address answers again.
    pub(super) async fn stream(&mut self) -> Result<(), BulletinError> {
        let after = self.seen.last_event()?;
        let central = self.config.sync.central.clone();
        let mut back = central.back_to_preferred();
        back.borrow_and_update();
        let pick = central.choose();
        let url = pick.url("/api/v1/station/events");
        let request = self
            .http
            .get(&url)
            .bearer_auth(&self.config.sync.token)
            .header("Last-Event-ID", after.to_string())
            .header(reqwest::header::ACCEPT, "text/event-stream");
        let response =
            central.send(&pick, request, ANSWER_TIMEOUT).await.map_err(|e| unanswered(&url, e))?;
        if !response.status().is_success() {
            return Err(BulletinError::Status {
                what: "bulletin stream".into(),
                status: response.status(),
            });
        }
        tracing::info!(after, central = %pick.base, "bulletin stream connected");
        let elsewhere = pick.choice.index != 0;
        let mut body = response.bytes_stream();
        let mut decoder = SseDecoder::default();
        loop {
            let next = tokio::select! {
                next = tokio::time::timeout(STREAM_IDLE, body.next()) => next,
                Ok(()) = back.changed(), if elsewhere => {
                    tracing::info!("moving the bulletin stream back to central's preferred address");
                    return Ok(());
                }
            };
            let chunk = match next {
                Err(_) => {
                    return Err(BulletinError::Malformed(format!(
                        "no heartbeat for {} s: reconnecting",
                        STREAM_IDLE.as_secs()
                    )));
                }
                Ok(None) => return Ok(()),
                Ok(Some(Err(source))) => return Err(BulletinError::Http { url, source }),
                Ok(Some(Ok(chunk))) => chunk,
            };
            for block in decoder.push(&chunk)? {
                if let Some(data) = sse_data(&block) {
                    match serde_json::from_str::<BulletinEvent>(&data) {
                        Ok(event) => self.handle(event).await,
                        Err(e) => tracing::warn!("bulletin event is not valid JSON: {e}"),
                    }
                }
            }
        }
    }

    /// Ids of the bulletins cancelled by events central holds after the cursor: read
    /// before resuming, so one cancelled while the station was stopped does not sound
    /// again for the moment the stream takes to deliver the cancel. Bounded by
    /// [`RESUME_POLL`]: with central out of reach the resume does not wait for it.
    pub(super) async fn cancels_waiting(&self) -> HashSet<String> {
        let after = match self.seen.last_event() {
            Ok(after) => after,
            Err(e) => {
                tracing::warn!("{e}");
                return HashSet::new();
            }
        };
        let central = self.config.sync.central.clone();
        let pick = central.choose();
        let url = pick.url(&format!("/api/v1/station/events/poll?after={after}&wait=0"));
        let polled = async {
            let request = self.http.get(&url).bearer_auth(&self.config.sync.token);
            let response = central
                .send(&pick, request, ANSWER_TIMEOUT)
                .await
                .map_err(|e| unanswered(&url, e))?
                .error_for_status()
                .map_err(|source| BulletinError::Http { url: url.clone(), source })?;
            let body =
                read_limited(response, MAX_POLL_BYTES, "a bulletin poll answer", &url).await?;
            serde_json::from_slice::<BulletinEvents>(&body)
                .map_err(|e| BulletinError::Malformed(format!("bulletin poll answer: {e}")))
        };
        // Cut at RESUME_POLL without telling the address policy: a central slower than
        // that is not dead (ANSWER_TIMEOUT says when it is), only too slow for a resume.
        let polled = tokio::time::timeout(RESUME_POLL, polled).await.unwrap_or_else(|_| {
            Err(BulletinError::NoAnswer { url: url.clone(), within: RESUME_POLL })
        });
        match polled {
            Ok(events) => events
                .events
                .iter()
                .filter(|e| e.envelope.kind == DocumentKind::BulletinCancel)
                .filter_map(|e| self.verify_cancel(&e.envelope))
                .map(|order| order.id)
                .collect(),
            Err(e) => {
                tracing::warn!(
                    "cannot ask central for cancels before resuming bulletins ({e}); the stream will deliver them"
                );
                HashSet::new()
            }
        }
    }
}

/// Largest event the stream may carry. A bulletin event is a few kilobytes (a district's
/// target list is the biggest part); anything larger is not central's, and buffering it
/// without end would grow the memory of the process that drives the loudspeakers.
pub const MAX_EVENT_BYTES: usize = 256 * 1024;

/// Largest answer to a bulletin poll: the events one station may be owed (bulletins
/// are valid for at most 7 days, and rare).
pub const MAX_POLL_BYTES: usize = 4 * 1024 * 1024;

/// Cuts an SSE byte stream into blocks (each ended by a blank line), looking at every
/// byte once however the stream is chunked, and holding at most [`MAX_EVENT_BYTES`].
#[derive(Debug, Default)]
pub(super) struct SseDecoder {
    buffer: Vec<u8>,
    /// Bytes of `buffer` already searched for a block end.
    scanned: usize,
    /// Bytes looked at in all (a test checks the work stays linear).
    examined: u64,
}

impl SseDecoder {
    /// Adds `chunk` and returns the blocks it completed.
    pub(super) fn push(&mut self, chunk: &[u8]) -> Result<Vec<Vec<u8>>, BulletinError> {
        self.buffer.extend_from_slice(chunk);
        let mut blocks = Vec::new();
        let mut start = 0;
        // A terminator may straddle the previous chunk: look back two bytes.
        let mut i = self.scanned.saturating_sub(2).max(start);
        while i < self.buffer.len() {
            self.examined += 1;
            if self.buffer[i] == b'\n' {
                let end = match (self.buffer.get(i + 1), self.buffer.get(i + 2)) {
                    (Some(b'\n'), _) => Some(i + 2),
                    (Some(b'\r'), Some(b'\n')) => Some(i + 3),
                    _ => None,
                };
                if let Some(end) = end {
                    blocks.push(self.buffer[start..i].to_vec());
                    start = end;
                    i = end;
                    continue;
                }
            }
            i += 1;
        }
        if start > 0 {
            self.buffer.drain(..start);
        }
        self.scanned = self.buffer.len();
        if self.buffer.len() > MAX_EVENT_BYTES {
            self.buffer = Vec::new();
            self.scanned = 0;
            return Err(BulletinError::TooLarge { what: "an event", limit: MAX_EVENT_BYTES });
        }
        Ok(blocks)
    }
}

/// The `data:` lines of one SSE block joined (comments and other fields ignored).
pub(super) fn sse_data(block: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(block);
    let mut data: Option<String> = None;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(rest) = line.strip_prefix("data:") {
            let rest = rest.strip_prefix(' ').unwrap_or(rest);
            match &mut data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(rest);
                }
                None => data = Some(rest.to_string()),
            }
        }
    }
    data
}

/// An unanswered request to `url` as a [`BulletinError`].
pub(super) fn unanswered(url: &str, error: Unanswered) -> BulletinError {
    match error {
        Unanswered::Http(source) => BulletinError::Http { url: url.to_string(), source },
        Unanswered::Timeout(within) => BulletinError::NoAnswer { url: url.to_string(), within },
    }
}

/// A response body of at most `limit` bytes (`what` names it in the refusal).
pub(super) async fn read_limited(
    response: reqwest::Response,
    limit: usize,
    what: &'static str,
    url: &str,
) -> Result<Vec<u8>, BulletinError> {
    crate::station::sync::read_limited(response, limit).await.map_err(|e| match e {
        crate::station::sync::LimitedError::TooLarge => BulletinError::TooLarge { what, limit },
        crate::station::sync::LimitedError::Http(source) => {
            BulletinError::Http { url: url.to_string(), source }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sse_blocks_split_and_join_data_lines() {
        let raw = b": heartbeat\n\nid: 3\nevent: bulletin\ndata: {\"a\":\ndata: 1}\n\nid: 4\r\n";
        let mut decoder = SseDecoder::default();
        let blocks = decoder.push(raw).unwrap();
        assert_eq!(blocks.len(), 2, "an incomplete block waits for more bytes");
        assert_eq!(sse_data(&blocks[0]), None);
        assert_eq!(sse_data(&blocks[1]).as_deref(), Some("{\"a\":\n1}"));
        // The rest completes later, also when the blank line is split across chunks.
        assert!(decoder.push(b"data: x\r").unwrap().is_empty());
        let blocks = decoder.push(b"\n\r\n").unwrap();
        assert_eq!(blocks.iter().map(|b| sse_data(b)).collect::<Vec<_>>(), [Some("x".into())]);
        let mut split = SseDecoder::default();
        assert!(split.push(b"data: y\n").unwrap().is_empty());
        assert_eq!(split.push(b"\n").unwrap().len(), 1);
    }

    #[test]
    fn an_event_fed_a_byte_at_a_time_is_scanned_once_and_an_oversized_one_refused() {
        let event = format!("data: {}\n\n", "x".repeat(200_000));
        let mut decoder = SseDecoder::default();
        let mut blocks = Vec::new();
        for byte in event.as_bytes() {
            blocks.extend(decoder.push(std::slice::from_ref(byte)).unwrap());
        }
        assert_eq!(blocks.len(), 1);
        // Each byte is looked at about once (twice at most where a chunk boundary
        // may split a terminator), not once per chunk that arrives after it.
        assert!(
            decoder.examined <= 3 * event.len() as u64,
            "{} bytes examined for {} bytes",
            decoder.examined,
            event.len()
        );
        // One byte past the cap without a block end: refused, and the memory let go.
        let mut decoder = SseDecoder::default();
        let endless = vec![b'x'; MAX_EVENT_BYTES + 1];
        let err = decoder.push(&endless).unwrap_err();
        assert!(matches!(err, BulletinError::TooLarge { .. }), "{err}");
        assert_eq!(decoder.buffer.capacity(), 0);
        // Exactly at the cap it waits for more.
        let mut decoder = SseDecoder::default();
        assert!(decoder.push(&vec![b'x'; MAX_EVENT_BYTES]).unwrap().is_empty());
    }
}
