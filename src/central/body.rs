//! Request bodies, read by the handlers themselves: only after the caller is
//! authenticated (an anonymous client never makes central buffer a byte), never more
//! than the route allows, and never waiting more than [`READ_TIMEOUT`] for the next
//! chunk (a client that stops sending mid-body gives its connection back).
//!
//! Every route's limit is stated here, once; `tests/security_matrix.rs` sends one byte
//! past each.

use std::time::Duration;

use axum::body::{Body, Bytes};
use futures_util::StreamExt;

use super::ApiError;

/// Longest wait for the next chunk of a request body.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
/// A station's heartbeat: a few hundred bytes of JSON.
pub const HEARTBEAT_LIMIT: usize = 16 * 1024;
/// A station's delivery reports: at most 64 reports of a few hundred bytes.
pub const DELIVERY_LIMIT: usize = 64 * 1024;
/// A playlog batch: at most [`super::playlog::MAX_BATCH`] records of about 1 KB.
pub const PLAYLOG_LIMIT: usize = 4 * 1024 * 1024;
/// A schedule load: the file's text (at most [`crate::schedule::MAX_SOURCE_BYTES`]) and
/// its audio map, as JSON.
pub const SCHEDULE_LIMIT: usize = 2 * 1024 * 1024;
/// A bulletin push: the request with at most [`super::bulletins::MAX_TEXT_CHARS`] of text.
pub const PUSH_LIMIT: usize = 64 * 1024;
/// A console form with a few short fields (`/login`: a name and a password of at most
/// [`super::people::PASSWORD_MAX`] bytes, percent-encoded).
pub const LOGIN_LIMIT: usize = 4 * 1024;
/// The console's bulletin form: a push's fields with at most
/// [`super::bulletins::MAX_TEXT_CHARS`] of text, percent-encoded (up to 9 bytes a
/// character).
pub const CONSOLE_PUSH_LIMIT: usize = 64 * 1024;
/// The console's schedule form: a file of at most [`crate::schedule::MAX_SOURCE_BYTES`]
/// (1 MiB), percent-encoded (3 bytes an ASCII character at worst, 9 a Vietnamese one;
/// a file near the bound is mostly ASCII keys and times).
pub const CONSOLE_SCHEDULE_LIMIT: usize = 4 * 1024 * 1024;
/// A CAP document: the largest [`crate::cap::xml`] reads (5 MiB).
pub const CAP_LIMIT: usize = crate::cap::xml::MAX_DOCUMENT_BYTES;

/// Reads `body` whole, refusing it once it passes `limit` bytes or stalls for
/// [`READ_TIMEOUT`].
pub async fn read(body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let too_large = || {
        ApiError::PayloadTooLarge(format!(
            "request body is larger than this route's limit of {limit} bytes"
        ))
    };
    let mut stream = body.into_data_stream();
    let mut out: Vec<u8> = Vec::new();
    loop {
        let next = tokio::time::timeout(READ_TIMEOUT, stream.next()).await.map_err(|_| {
            ApiError::Timeout(format!(
                "request body stalled: no byte for {} s",
                READ_TIMEOUT.as_secs()
            ))
        })?;
        match next {
            None => return Ok(Bytes::from(out)),
            Some(Err(e)) => {
                return Err(ApiError::BadRequest(format!("request body interrupted: {e}")));
            }
            Some(Ok(chunk)) => {
                if out.len() + chunk.len() > limit {
                    return Err(too_large());
                }
                out.extend_from_slice(&chunk);
            }
        }
    }
}

/// The next chunk of a streamed upload, or `None` at its end; a stall of
/// [`READ_TIMEOUT`] is an error.
pub async fn next_chunk<S>(stream: &mut S) -> Result<Option<Bytes>, ApiError>
where
    S: futures_util::Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    match tokio::time::timeout(READ_TIMEOUT, stream.next()).await {
        Err(_) => Err(ApiError::Timeout(format!(
            "upload stalled: no byte for {} s",
            READ_TIMEOUT.as_secs()
        ))),
        Ok(None) => Ok(None),
        Ok(Some(Err(e))) => Err(ApiError::BadRequest(format!("upload interrupted: {e}"))),
        Ok(Some(Ok(chunk))) => Ok(Some(chunk)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_body_one_byte_past_the_limit_is_refused() {
        let ok = read(Body::from(vec![7u8; 100]), 100).await.unwrap();
        assert_eq!(ok.len(), 100);
        let err = read(Body::from(vec![7u8; 101]), 100).await.unwrap_err();
        assert!(matches!(err, ApiError::PayloadTooLarge(_)), "{err}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_stalled_body_times_out() {
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Bytes, std::io::Error>>(1);
        tx.send(Ok(Bytes::from_static(b"{"))).await.unwrap();
        let body = Body::from_stream(tokio_stream_from(rx));
        let err = read(body, 1000).await.unwrap_err();
        assert!(matches!(err, ApiError::Timeout(_)), "{err}");
        drop(tx);
    }

    fn tokio_stream_from(
        rx: tokio::sync::mpsc::Receiver<Result<Bytes, std::io::Error>>,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> {
        futures_util::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|x| (x, rx)) })
    }
}
