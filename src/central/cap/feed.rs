//! Polling the CAP feeds of `[cap] feeds`: every `poll_secs`, each feed's Atom or RSS
//! index is fetched and the CAP documents it lists that central has not taken yet are
//! fetched and taken like a posted one ([`super::ingest`]).
//!
//! Everything a feed sends is bounded: the index and each document 5 MiB (read as they
//! arrive, refused past it), at most `max_documents_per_poll` documents per feed per poll,
//! connect in 10 s, each fetch done in 30 s, at most 3 redirects. A feed that fails is
//! logged and tried again at the next poll; a document central could not act on (not
//! fetched, or central failed to speak it) too. A document taken — whatever was decided,
//! refusals included — is not fetched again while the index lists it. Each poll runs in
//! a task of its own, so nothing a feed says can stop the polling, let alone central.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;

use super::{Source, ingest};
use crate::central::{ApiError, AppState};
use crate::protocol::CapDecision;

/// Largest index or document fetched (the CAP document bound, 5 MiB).
pub const MAX_FETCH_BYTES: usize = crate::cap::xml::MAX_DOCUMENT_BYTES;
/// Most entries of one index looked at (the documents fetched are fewer: see
/// `max_documents_per_poll`).
pub const MAX_INDEX_ENTRIES: usize = 1000;
/// Connecting to a feed.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// One whole fetch (index or document), headers to last byte.
pub const FETCH_TIMEOUT: Duration = Duration::from_secs(30);
/// Redirects followed.
pub const MAX_REDIRECTS: usize = 3;

/// What one poll of one feed did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Polled {
    /// Documents listed in the index.
    pub listed: usize,
    /// Documents fetched and taken now (whatever was decided).
    pub taken: usize,
    /// Of those, refused (invalid, or a signature that does not verify).
    pub refused: usize,
    /// Documents that could not be fetched or acted on: tried again next poll.
    pub failed: usize,
    /// Listed, new, but left for the next poll (over `max_documents_per_poll`).
    pub left: usize,
}

/// The HTTP client feeds are fetched with: bounded, and trusting for `https://` only the
/// authorities in `feed_ca` (when the file is there).
pub fn client(state: &AppState) -> Result<reqwest::Client, String> {
    let mut builder = reqwest::Client::builder()
        .connect_timeout(CONNECT_TIMEOUT)
        .timeout(FETCH_TIMEOUT)
        .redirect(reqwest::redirect::Policy::limited(MAX_REDIRECTS))
        .user_agent(concat!("loa-central/", env!("CARGO_PKG_VERSION"), " (CAP feed)"));
    let ca = &state.config.cap.feed_ca;
    match std::fs::read(ca) {
        Ok(pem) => {
            let roots = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|e| format!("feed_ca {}: {e}", ca.display()))?;
            for root in roots {
                builder = builder.add_root_certificate(root);
            }
        }
        Err(e) => {
            if state.config.cap.feeds.iter().any(|f| f.starts_with("https://")) {
                tracing::error!(
                    "feed_ca {}: {e}: https:// feeds cannot be verified and will fail; install ca-certificates or set feed_ca in [cap]",
                    ca.display()
                );
            }
        }
    }
    builder.build().map_err(|e| format!("feed client: {e}"))
}

/// Polls every feed every `poll_secs` until the task is dropped.
pub async fn run(state: Arc<AppState>) {
    let client = match client(&state) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("CAP feeds are not polled: {e}");
            return;
        }
    };
    let feeds = state.config.cap.feeds.clone();
    tracing::info!(feeds = feeds.len(), every_s = state.config.cap.poll_secs, "polling CAP feeds");
    let mut taken: HashMap<String, HashSet<String>> = HashMap::new();
    let mut ticks = tokio::time::interval(Duration::from_secs(state.config.cap.poll_secs));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticks.tick().await;
        for feed in &feeds {
            let done = taken.remove(feed).unwrap_or_default();
            let task = tokio::spawn(poll(state.clone(), client.clone(), feed.clone(), done));
            match task.await {
                Ok((done, Ok(polled))) => {
                    if polled.taken > 0 || polled.failed > 0 {
                        tracing::info!(feed = %feed, listed = polled.listed, taken = polled.taken, refused = polled.refused, failed = polled.failed, left = polled.left, "CAP feed polled");
                    }
                    taken.insert(feed.clone(), done);
                }
                Ok((done, Err(e))) => {
                    tracing::warn!(feed = %feed, "CAP feed failed, tried again at the next poll: {e}");
                    taken.insert(feed.clone(), done);
                }
                Err(e) => tracing::error!(feed = %feed, "CAP feed poll stopped: {e}"),
            }
        }
    }
}

/// One poll of one feed. `done` holds the document URLs already taken; it comes back
/// holding only those the index still lists (so it never grows past the index).
pub async fn poll(
    state: Arc<AppState>,
    client: reqwest::Client,
    feed: String,
    done: HashSet<String>,
) -> (HashSet<String>, Result<Polled, String>) {
    let index = match fetch(&client, &feed).await {
        Ok(bytes) => bytes,
        Err(e) => return (done, Err(format!("index: {e}"))),
    };
    let links = match crate::cap::feed::links(&index, MAX_INDEX_ENTRIES) {
        Ok(links) => links,
        Err(e) => return (done, Err(format!("index: {e}"))),
    };
    let Ok(base) = reqwest::Url::parse(&feed) else {
        return (done, Err(format!("{feed:?} is not a URL")));
    };
    let mut urls: Vec<String> = Vec::new();
    for link in links {
        match base.join(&link) {
            Ok(url) if matches!(url.scheme(), "http" | "https") => urls.push(url.to_string()),
            _ => {
                tracing::warn!(feed = %feed, link = %crate::protocol::bounds::clip(&link), "feed entry is not an http(s) link: skipped")
            }
        }
    }
    let mut polled = Polled { listed: urls.len(), ..Polled::default() };
    let mut kept: HashSet<String> = urls.iter().filter(|u| done.contains(*u)).cloned().collect();
    let max = state.config.cap.max_documents_per_poll;
    for url in urls.iter().filter(|u| !done.contains(*u)) {
        if polled.taken + polled.failed >= max {
            polled.left += 1;
            continue;
        }
        let bytes = match fetch(&client, url).await {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(feed = %feed, document = %url, "CAP document not fetched, tried again next poll: {e}");
                polled.failed += 1;
                continue;
            }
        };
        match ingest(&state, bytes, &Source::feed(url)).await {
            Ok(answer) => {
                polled.taken += 1;
                if answer.outcomes.iter().any(|o| o.decision == CapDecision::Refused) {
                    polled.refused += 1;
                }
                kept.insert(url.clone());
            }
            Err(ApiError::Invalid { .. }) => {
                polled.taken += 1;
                polled.refused += 1;
                kept.insert(url.clone());
            }
            Err(e) => {
                tracing::warn!(feed = %feed, document = %url, "CAP document not taken, tried again next poll: {e}");
                polled.failed += 1;
            }
        }
    }
    (kept, Ok(polled))
}

/// GET `url`, refusing a body past [`MAX_FETCH_BYTES`] as it arrives.
pub async fn fetch(client: &reqwest::Client, url: &str) -> Result<Vec<u8>, String> {
    let response = client.get(url).send().await.map_err(|e| e.to_string())?;
    if !response.status().is_success() {
        return Err(format!("{url}: {}", response.status()));
    }
    if response.content_length().is_some_and(|n| n > MAX_FETCH_BYTES as u64) {
        return Err(format!("{url}: larger than {MAX_FETCH_BYTES} bytes (5 MiB): not fetched"));
    }
    let mut body = response.bytes_stream();
    let mut out = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.map_err(|e| format!("{url}: {e}"))?;
        if out.len() + chunk.len() > MAX_FETCH_BYTES {
            return Err(format!("{url}: larger than {MAX_FETCH_BYTES} bytes (5 MiB): not fetched"));
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}
