//! Shared plumbing for commands that talk to central: where it is, which token to send,
//! and turning central's JSON errors into messages that say what to do next.
//!
//! The URL and token come from flags, then the environment (`LOA_CENTRAL`, `LOA_TOKEN`),
//! then a client config file (`--client-config`, `LOA_CLIENT_CONFIG`, or
//! `~/.config/loa/client.toml` with `central = "..."` and `token = "..."`).
//!
//! Central may have several addresses (`LOA_CENTRAL=https://a…,https://b…`, the flag and
//! the file the same): every request goes through the station's address policy
//! (`station::central_addrs`), with its timeouts. A read ([`Retry::Idempotent`]) moves
//! on to the next address after no connection, no answer within
//! `central_addrs::ANSWER_TIMEOUT`, or a 5xx. A request that changes something
//! ([`Retry::Once`]: a push, a cancel, a load, an upload) is sent to a second address
//! only when it provably never reached the first (no connection was made): a push that
//! timed out may have been done, and doing it twice would send a warning twice. So that
//! such a request does not meet a dead first address, an address that answers is found
//! first with a read when several are given and none has answered yet.
//! A 4xx is central's answer wherever it comes from: never retried elsewhere.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::protocol::{AudioInfo, ErrorBody};
use crate::station::central_addrs::{self, CentralAddrs, Unanswered};

#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// Central's URL, e.g. http://central.example:8480; several, comma-separated, are
    /// tried in order when one does not answer (https://a:8480,https://b:8480).
    #[arg(long, env = "LOA_CENTRAL", global = true)]
    pub central: Option<String>,
    /// Operator token (printed by `loa central init` or `loa central token add`).
    #[arg(long, env = "LOA_TOKEN", hide_env_values = true, global = true)]
    pub token: Option<String>,
    /// Client config file with `central` and `token` (default ~/.config/loa/client.toml).
    #[arg(long, env = "LOA_CLIENT_CONFIG", global = true)]
    pub client_config: Option<PathBuf>,
    /// PEM of the CA that signed central's certificate (for https:// URLs).
    #[arg(long, env = "LOA_CA_CERT", global = true)]
    pub ca_cert: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ClientFile {
    central: Option<String>,
    token: Option<String>,
    ca_cert: Option<PathBuf>,
}

/// A resolved connection to central.
pub struct Remote {
    /// Central's addresses and which one answers (see the module's documentation).
    pub central: Arc<CentralAddrs>,
    pub token: String,
    pub http: reqwest::Client,
}

/// Whether a request may be sent to another address after it failed at one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    /// A read: after no connection, no answer within `ANSWER_TIMEOUT`, or a 5xx.
    Idempotent,
    /// A change at central, allowed this long for its answer: only after no connection.
    Once(Duration),
}

/// How long a request that changes something may take to be answered: central may render
/// speech (up to a minute), measure an uploaded file, or sign manifests for every station
/// a schedule goes to. It is never sent twice, so this only bounds a hang.
pub const WORK_TIMEOUT: Duration = Duration::from_secs(600);

/// The addresses in `LOA_CENTRAL`/`--central`/the client file: comma-separated, each
/// `http://` or `https://`, at most `central_addrs::MAX_ADDRESSES`.
pub fn parse_addresses(text: &str) -> anyhow::Result<Vec<String>> {
    let urls: Vec<String> = text
        .split(',')
        .map(|u| u.trim().trim_end_matches('/').to_string())
        .filter(|u| !u.is_empty())
        .collect();
    if urls.is_empty() {
        bail!("no central URL in {text:?}: give http://HOST:PORT (several separated by commas)");
    }
    if urls.len() > central_addrs::MAX_ADDRESSES {
        bail!(
            "central URL lists {} addresses: give at most {}, the preferred first",
            urls.len(),
            central_addrs::MAX_ADDRESSES
        );
    }
    for url in &urls {
        let parsed = reqwest::Url::parse(url)
            .map_err(|e| anyhow!("central URL {url:?} is not a URL: {e}"))?;
        if !matches!(parsed.scheme(), "http" | "https") || parsed.host_str().is_none() {
            bail!("central URL {url:?} must start with http:// or https://");
        }
    }
    Ok(urls)
}

impl RemoteArgs {
    pub fn resolve(&self) -> anyhow::Result<Remote> {
        let file = match &self.client_config {
            Some(path) => Some(read_client_file(path)?),
            None => match std::env::var_os("HOME") {
                Some(home) => {
                    let path = Path::new(&home).join(".config/loa/client.toml");
                    if path.is_file() { Some(read_client_file(&path)?) } else { None }
                }
                None => None,
            },
        }
        .unwrap_or_default();
        let base = self.central.clone().or(file.central).ok_or_else(|| {
            anyhow!("no central URL: pass --central URL, set LOA_CENTRAL, or write `central = \"http://...\"` in ~/.config/loa/client.toml")
        })?;
        let token = self.token.clone().or(file.token).ok_or_else(|| {
            anyhow!("no token: pass --token, set LOA_TOKEN, or write `token = \"...\"` in ~/.config/loa/client.toml")
        })?;
        let urls = parse_addresses(&base)?;
        let mut builder = reqwest::Client::builder()
            .connect_timeout(crate::station::sync::CONNECT_TIMEOUT)
            .pool_idle_timeout(crate::station::sync::POOL_IDLE);
        if let Some(path) = self.ca_cert.clone().or(file.ca_cert) {
            let pem = std::fs::read(&path)
                .with_context(|| format!("cannot read CA certificate {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            builder = builder.add_root_certificate(cert);
        } else if let Some(https) = urls.iter().find(|u| u.starts_with("https://")) {
            bail!(
                "{https} is https: pass --ca-cert FILE (or LOA_CA_CERT) with the CA that signed central's certificate"
            );
        }
        let http = builder.build().context("cannot set up the HTTP client")?;
        Ok(Remote {
            central: Arc::new(CentralAddrs::new(&urls)),
            token: token.trim().to_string(),
            http,
        })
    }
}

/// A reqwest error with its causes, a TLS refusal worded for the command line's flags.
fn describe(e: &reqwest::Error) -> String {
    crate::station::sync::describe_http_for(e, crate::station::sync::TlsSettings::CLI)
}

fn read_client_file(path: &Path) -> anyhow::Result<ClientFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow!("{}: {}", path.display(), e.message()))
}

impl Remote {
    /// Sends the request `build` makes for an address (with the operator's token), at
    /// the address the policy chooses, and on to the next as `retry` allows. The answer,
    /// whatever its status (a 5xx only from the last address tried, or to a
    /// [`Retry::Once`] request).
    pub async fn send(
        &self,
        retry: Retry,
        build: impl FnMut(&str) -> reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        if matches!(retry, Retry::Once(_))
            && self.central.urls().len() > 1
            && !self.central.settled()
        {
            // Any answer (even a 404) shows the address is alive; errors are left to the
            // request itself.
            let alive = self.attempts(Retry::Idempotent, |base| {
                self.http.get(format!("{base}{}", crate::protocol::api::API_PREFIX))
            });
            let _ = alive.await;
        }
        self.attempts(retry, build).await
    }

    /// [`Remote::send`] without the search for an address that answers.
    async fn attempts(
        &self,
        retry: Retry,
        mut build: impl FnMut(&str) -> reqwest::RequestBuilder,
    ) -> anyhow::Result<reqwest::Response> {
        let tries = self.central.urls().len();
        let patience = match retry {
            Retry::Idempotent => central_addrs::ANSWER_TIMEOUT,
            Retry::Once(patience) => patience,
        };
        let mut missed = Vec::new();
        for attempt in 0..tries {
            let last = attempt + 1 == tries;
            let pick = self.central.choose();
            let request = build(&pick.base).bearer_auth(&self.token);
            match self.central.send(&pick, request, patience).await {
                Ok(answer)
                    if answer.status().is_server_error() && retry == Retry::Idempotent && !last =>
                {
                    missed.push((pick.base, format!("answered {}", answer.status())));
                }
                Ok(answer) => return Ok(answer),
                Err(Unanswered::Http(e)) if retry == Retry::Idempotent || e.is_connect() => {
                    missed.push((pick.base, describe(&e)));
                }
                Err(Unanswered::Timeout(within)) if retry == Retry::Idempotent => {
                    missed.push((pick.base, format!("no answer within {} s", within.as_secs())));
                }
                Err(Unanswered::Timeout(within)) => bail!(
                    "no answer from central at {} within {} s: it may have done what was asked; check (e.g. `loa bulletin list`) before asking again",
                    pick.base,
                    within.as_secs()
                ),
                Err(Unanswered::Http(e)) => bail!(
                    "the connection to central at {} broke before it answered: {}; it may have done what was asked, check before asking again",
                    pick.base,
                    describe(&e)
                ),
            }
        }
        match missed.as_slice() {
            [(base, why)] => bail!("cannot reach central at {base}: {why}"),
            many => {
                let each: Vec<String> = many.iter().map(|(b, why)| format!("{b}: {why}")).collect();
                bail!("cannot reach central at any of its addresses: {}", each.join("; "))
            }
        }
    }

    /// A read of `path` (with `query`) from whichever address answers.
    pub async fn get(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> anyhow::Result<reqwest::Response> {
        self.send(Retry::Idempotent, |base| self.http.get(format!("{base}{path}")).query(query))
            .await
    }

    /// Turns a non-success answer into an error carrying central's message and any
    /// file:line:column diagnostics.
    pub async fn fail(&self, what: &str, response: reqwest::Response) -> anyhow::Error {
        let status = response.status();
        let text = response.text().await.unwrap_or_default();
        match serde_json::from_str::<ErrorBody>(&text) {
            Ok(body) if !body.diagnostics.is_empty() => {
                anyhow!(
                    "{}\n{what} refused by central ({status}): {}",
                    body.diagnostics.join("\n"),
                    body.error
                )
            }
            Ok(body) => anyhow!("{what} refused by central ({status}): {}", body.error),
            Err(_) => anyhow!("{what} refused by central ({status}): {text}"),
        }
    }

    /// GETs `path` with `query` as an operator and decodes the JSON answer; `what` names
    /// it in errors ("playlog", "report").
    pub async fn get_json<T: serde::de::DeserializeOwned>(
        &self,
        path: &str,
        query: &[(&str, String)],
        what: &str,
    ) -> anyhow::Result<T> {
        let response = self.get(path, query).await?;
        if !response.status().is_success() {
            return Err(self.fail(what, response).await);
        }
        response.json().await.with_context(|| format!("central's {what} answer is not valid JSON"))
    }

    /// Every record of central's playlog that `query` selects, page by page (central
    /// answers at most [`crate::protocol::PLAYLOG_PAGE_MAX`] records a request and says
    /// where the next page starts).
    pub async fn playlog(
        &self,
        query: &[(&str, String)],
    ) -> anyhow::Result<Vec<crate::station::ledger::Record>> {
        use crate::protocol::{PLAYLOG_NEXT_HEADER, PLAYLOG_PAGE_MAX};
        let mut out = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut page_query = query.to_vec();
            page_query.push(("limit", PLAYLOG_PAGE_MAX.to_string()));
            if let Some(cursor) = &after {
                page_query.push(("after", cursor.clone()));
            }
            let response = self.get("/api/v1/playlog", &page_query).await?;
            if !response.status().is_success() {
                return Err(self.fail("playlog", response).await);
            }
            let next = response
                .headers()
                .get(PLAYLOG_NEXT_HEADER)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string);
            let page: Vec<crate::station::ledger::Record> =
                response.json().await.context("central's playlog answer is not valid JSON")?;
            out.extend(page);
            match next {
                Some(cursor) if Some(&cursor) != after.as_ref() => after = Some(cursor),
                _ => return Ok(out),
            }
        }
    }

    /// The address requests go to now (the one that answered last).
    pub fn base(&self) -> &str {
        self.central.current()
    }

    /// Central's record of `sha256`, or `None` when its library does not hold it.
    pub async fn library_entry(&self, sha256: &str) -> anyhow::Result<Option<AudioInfo>> {
        let response = self.get(&format!("/api/v1/library/{sha256}"), &[]).await?;
        match response.status() {
            s if s.is_success() => {
                Ok(Some(response.json().await.context("central's answer is not valid JSON")?))
            }
            reqwest::StatusCode::NOT_FOUND => Ok(None),
            _ => Err(self.fail("audio lookup", response).await),
        }
    }

    /// Uploads one file, showing progress on stderr; returns what central stored.
    ///
    /// On a terminal the progress is one line that counts up (`file: 42%`) and is ended
    /// by a newline once central has answered; elsewhere (a log, a pipe) it is one line,
    /// `file: uploading 612 KB`, written before the bytes go. Central is told the file's
    /// name, so its errors name the file as the operator knows it, and whether to store
    /// a damaged file anyway (`accept_damaged`).
    pub async fn upload_audio(
        &self,
        path: &Path,
        title: &str,
        accept_damaged: bool,
    ) -> anyhow::Result<AudioInfo> {
        use futures_util::StreamExt;
        use std::io::IsTerminal;
        use tokio::io::AsyncReadExt;
        let file =
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
        let size = file.metadata()?.len();
        let name = path.display().to_string();
        let counter = std::io::stderr().is_terminal();
        if !counter {
            eprintln!("{name}: uploading {}", size_text(size));
        }
        let shown = name.clone();
        // The body of one attempt: sent again only after no connection was made, when
        // nothing of it was read (see `Retry::Once`); the file is opened again for it.
        let mut first = Some(file);
        let again = path.to_path_buf();
        let mut body = move || {
            let file = first.take().map_or_else(|| std::fs::File::open(&again), Ok);
            let file = match file {
                Ok(file) => tokio::fs::File::from_std(file),
                Err(e) => {
                    let failed = futures_util::stream::once(async move { Err::<Vec<u8>, _>(e) });
                    return reqwest::Body::wrap_stream(failed);
                }
            };
            let name = shown.clone();
            let stream = futures_util::stream::unfold(
                (file, 0u64, None),
                move |(mut file, sent, shown_pct)| {
                    let name = name.clone();
                    async move {
                        let mut buffer = vec![0u8; 64 * 1024];
                        match file.read(&mut buffer).await {
                            Ok(0) => None,
                            Ok(n) => {
                                buffer.truncate(n);
                                let sent = sent + n as u64;
                                let pct = (sent * 100).checked_div(size).unwrap_or(100);
                                if counter && shown_pct != Some(pct) {
                                    eprint!("\r{name}: {pct}%");
                                }
                                Some((Ok::<_, std::io::Error>(buffer), (file, sent, Some(pct))))
                            }
                            Err(e) => Some((Err(e), (file, sent, shown_pct))),
                        }
                    }
                },
            );
            reqwest::Body::wrap_stream(stream.boxed())
        };
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let mut query = vec![("title", title.to_string())];
        if let Some(file_name) = file_name {
            query.push(("name", file_name));
        }
        if accept_damaged {
            query.push(("accept_damaged", "true".to_string()));
        }
        let patience = central_addrs::patience_for_upload(size) + WORK_TIMEOUT;
        let sent = self
            .send(Retry::Once(patience), |base| {
                self.http
                    .put(format!("{base}/api/v1/audio"))
                    .query(&query)
                    .header(reqwest::header::CONTENT_LENGTH, size)
                    .body(body())
            })
            .await;
        if counter && size > 0 {
            // The counter's line is ended whatever came of it: what follows (the result,
            // an error, the shell prompt) starts on a line of its own.
            eprintln!();
        }
        let response = sent?;
        if !response.status().is_success() {
            return Err(self.fail(&format!("upload of {}", path.display()), response).await);
        }
        response.json().await.context("central's answer to the upload is not valid JSON")
    }
}

/// A file size for people: `812 B`, `405 KB`, `12.3 MB` (1 KB = 1,024 bytes).
pub fn size_text(bytes: u64) -> String {
    const KB: u64 = 1024;
    match bytes {
        0..KB => format!("{bytes} B"),
        KB..1_048_576 => format!("{} KB", bytes.div_ceil(KB)),
        _ => format!("{:.1} MB", bytes as f64 / 1_048_576.0),
    }
}

/// Hex sha256 of a file's bytes.
pub fn sha256_file(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n =
            file.read(&mut buffer).with_context(|| format!("cannot read {}", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    Ok(hex::encode(hasher.finalize()))
}

/// A current-thread runtime for one command.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Prints an error chain and returns exit code 1.
pub fn report(e: &anyhow::Error) -> std::process::ExitCode {
    eprintln!("error: {e:#}");
    std::process::ExitCode::from(1)
}

/// Hex sha256 of bytes in memory.
pub fn sha256_bytes(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loa_central_takes_several_addresses_separated_by_commas() {
        assert_eq!(parse_addresses("http://a:1/").unwrap(), ["http://a:1"]);
        assert_eq!(
            parse_addresses(" https://a:1 , http://b:2,").unwrap(),
            ["https://a:1", "http://b:2"]
        );
        let nine = ["http://c:1"; 9].join(",");
        let err = parse_addresses(&nine).unwrap_err().to_string();
        assert!(err.contains("lists 9 addresses: give at most 8"), "{err}");
        let err = parse_addresses("http://a:1,central:8480").unwrap_err().to_string();
        assert!(err.contains("\"central:8480\" must start with http:// or https://"), "{err}");
        assert!(parse_addresses(" , ").is_err());
    }
}
