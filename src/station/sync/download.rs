//! Audio from central into the cache: the one downloader, with the two ways a file
//! arrives.
//! - [`Syncer::download`]: a programme's file, resumed from its partial file with an
//!   HTTP `Range` after a cut, verified whole, then renamed into the cache.
//! - [`Syncer::fetch_whole`]: a bulletin's file, fetched whole into memory and hashed as
//!   it arrives, then written and committed once — on a station's SD card a write and a
//!   read-back before the hand-off would cost the warning tens of milliseconds, and a
//!   bulletin is small (bounded by the protocol).
//!
//! Both ask the same URL with the same token, refuse more bytes than announced, and put
//! nothing in the cache whose sha256 is not its name.

use std::io::{Read, Seek, Write};

use chrono::{DateTime, Utc};
use futures_util::StreamExt;
use reqwest::StatusCode;
use reqwest::header;
use sha2::{Digest, Sha256};

use super::{CacheError, Download, SyncError, Syncer, cache};
use crate::station::central_addrs::{self, Pick};

/// `Ok` when `hasher` holds the sha256 `expected`.
fn same_hash(expected: &str, hasher: Sha256) -> Result<(), SyncError> {
    let actual = hex::encode(hasher.finalize());
    if actual == expected {
        Ok(())
    } else {
        Err(SyncError::HashMismatch { expected: expected.to_string(), actual })
    }
}

impl Syncer {
    /// The request for audio `sha` at the address chosen now (and its URL, for errors).
    fn audio_request(&self, sha: &str) -> (Pick, String, reqwest::RequestBuilder) {
        let pick = self.config.central.choose();
        let url = pick.url(&crate::protocol::api::audio_path(sha));
        let request = self.http.get(&url).bearer_auth(&self.config.token);
        (pick, url, request)
    }

    /// One attempt at one file: resume from the partial file with an HTTP Range, then
    /// verify the whole file's sha256 and move it into the cache.
    pub async fn download(
        &self,
        download: &Download,
        bytes_received: &mut u64,
    ) -> Result<(), SyncError> {
        let sha = &download.sha256;
        if !cache::is_sha256(sha) {
            return Err(SyncError::BadName(sha.clone()));
        }
        let partial = self.cache.partial_path(sha);
        let io = |source| CacheError { path: partial.display().to_string(), source };
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&partial)
            .map_err(io)?;
        let mut have = file.metadata().map_err(io)?.len();
        if have > download.size {
            file.set_len(0).map_err(io)?;
            have = 0;
        }
        if have < download.size {
            let (pick, url, mut request) = self.audio_request(sha);
            if have > 0 {
                request = request.header(header::RANGE, format!("bytes={have}-"));
            }
            // The headers within ANSWER_TIMEOUT; the body then has the client's read
            // timeout between two chunks.
            let response = self.send(&pick, request, central_addrs::ANSWER_TIMEOUT).await?;
            match response.status() {
                StatusCode::PARTIAL_CONTENT => {}
                StatusCode::OK => {
                    // Central ignored the range: start over.
                    file.set_len(0).map_err(io)?;
                    have = 0;
                }
                StatusCode::RANGE_NOT_SATISFIABLE => {
                    file.set_len(0).map_err(io)?;
                    return Err(SyncError::Truncated {
                        sha256: sha.clone(),
                        got: 0,
                        expected: download.size,
                    });
                }
                _ => return Err(Self::error_status("audio download", response).await),
            }
            file.seek(std::io::SeekFrom::Start(have)).map_err(io)?;
            let mut stream = response.bytes_stream();
            let mut failure = None;
            while let Some(chunk) = stream.next().await {
                match chunk {
                    Ok(chunk) => {
                        *bytes_received += chunk.len() as u64;
                        if have + chunk.len() as u64 > download.size {
                            drop(file);
                            let _ = std::fs::remove_file(&partial);
                            return Err(SyncError::Oversize {
                                sha256: sha.clone(),
                                expected: download.size,
                            });
                        }
                        file.write_all(&chunk).map_err(io)?;
                        have += chunk.len() as u64;
                    }
                    Err(source) => {
                        failure = Some(SyncError::Http { url: url.clone(), source });
                        break;
                    }
                }
            }
            // Keep what arrived, durably, so the next attempt resumes after it.
            file.sync_data().map_err(io)?;
            if let Some(e) = failure {
                return Err(e);
            }
        }
        if have < download.size {
            return Err(SyncError::Truncated {
                sha256: sha.clone(),
                got: have,
                expected: download.size,
            });
        }
        file.seek(std::io::SeekFrom::Start(0)).map_err(io)?;
        let mut hasher = Sha256::new();
        let mut buffer = vec![0u8; 64 * 1024];
        loop {
            let n = file.read(&mut buffer).map_err(io)?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
        }
        drop(file);
        if let Err(e) = same_hash(sha, hasher) {
            let _ = std::fs::remove_file(&partial);
            tracing::warn!("{e}");
            return Err(e);
        }
        self.cache.commit(sha)?;
        tracing::info!(sha256 = sha, size = download.size, "audio verified and cached");
        Ok(())
    }

    /// Fetches audio `sha` of `size` bytes whole into memory, checks it as it arrives,
    /// then writes and commits it into the cache off the async workers. Returns when the
    /// sha256 matched. The cache directory's fsync follows off the caller's path: a
    /// power cut before it can only lose the file's name (never tear the file), and the
    /// file is then fetched again.
    pub async fn fetch_whole(&self, sha: &str, size: u64) -> Result<DateTime<Utc>, SyncError> {
        if !cache::is_sha256(sha) {
            return Err(SyncError::BadName(sha.to_string()));
        }
        let (pick, url, request) = self.audio_request(sha);
        let http = |source| SyncError::Http { url: url.clone(), source };
        let response = self.send(&pick, request, central_addrs::ANSWER_TIMEOUT).await?;
        if response.status() != StatusCode::OK {
            return Err(Self::error_status("bulletin audio download", response).await);
        }
        // Hashed as it arrives: the check is done when the last byte is, and no worker
        // spends a whole file's hashing in one go. The chunks are kept as they came.
        let mut hasher = Sha256::new();
        let mut chunks = Vec::new();
        let mut got: u64 = 0;
        let mut stream = response.bytes_stream();
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(http)?;
            got += chunk.len() as u64;
            if got > size {
                return Err(SyncError::Oversize { sha256: sha.to_string(), expected: size });
            }
            hasher.update(&chunk);
            chunks.push(chunk);
        }
        if got < size {
            return Err(SyncError::Truncated { sha256: sha.to_string(), got, expected: size });
        }
        same_hash(sha, hasher)?;
        let checked = self.clock.now();
        let cache = self.cache.clone();
        let sha = sha.to_string();
        let committed = tokio::task::spawn_blocking(move || -> Result<(), SyncError> {
            let partial = cache.partial_path(&sha);
            let write = || -> std::io::Result<()> {
                let mut file = std::fs::File::create(&partial)?;
                for chunk in &chunks {
                    file.write_all(chunk)?;
                }
                Ok(())
            };
            write().map_err(|source| CacheError { path: partial.display().to_string(), source })?;
            cache.commit_whole(&sha)?;
            Ok(())
        })
        .await;
        match committed {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(e),
            Err(e) => {
                return Err(SyncError::Cache(CacheError {
                    path: self.cache.root().display().to_string(),
                    source: std::io::Error::other(format!("the audio check stopped: {e}")),
                }));
            }
        }
        let cache = self.cache.clone();
        tokio::task::spawn_blocking(move || {
            if let Err(e) = cache.sync_audio_dir() {
                tracing::warn!("audio may need fetching again after a power cut: {e}");
            }
        });
        Ok(checked)
    }
}
