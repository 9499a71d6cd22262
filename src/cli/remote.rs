//! Shared plumbing for commands that talk to central: where it is, which token to send,
//! and turning central's JSON errors into messages that say what to do next.
//!
//! The URL and token come from flags, then the environment (`LOA_CENTRAL`, `LOA_TOKEN`),
//! then a client config file (`--client-config`, `LOA_CLIENT_CONFIG`, or
//! `~/.config/loa/client.toml` with `central = "..."` and `token = "..."`).

use std::path::{Path, PathBuf};

use anyhow::{Context, anyhow, bail};
use clap::Args;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::protocol::{AudioInfo, ErrorBody};

#[derive(Debug, Clone, Args)]
pub struct RemoteArgs {
    /// Central's URL, e.g. http://central.example:8480.
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
    pub base: String,
    pub token: String,
    pub http: reqwest::Client,
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
        if !base.starts_with("http://") && !base.starts_with("https://") {
            bail!("central URL {base:?} must start with http:// or https://");
        }
        let mut builder = reqwest::Client::builder()
            .connect_timeout(crate::station::sync::CONNECT_TIMEOUT)
            .pool_idle_timeout(crate::station::sync::POOL_IDLE);
        if let Some(path) = self.ca_cert.clone().or(file.ca_cert) {
            let pem = std::fs::read(&path)
                .with_context(|| format!("cannot read CA certificate {}", path.display()))?;
            let cert = reqwest::Certificate::from_pem(&pem)
                .with_context(|| format!("{} is not a PEM certificate", path.display()))?;
            builder = builder.add_root_certificate(cert);
        } else if base.starts_with("https://") {
            bail!(
                "{base} is https: pass --ca-cert FILE (or LOA_CA_CERT) with the CA that signed central's certificate"
            );
        }
        let http = builder.build().context("cannot set up the HTTP client")?;
        Ok(Remote {
            base: base.trim_end_matches('/').to_string(),
            token: token.trim().to_string(),
            http,
        })
    }
}

fn read_client_file(path: &Path) -> anyhow::Result<ClientFile> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    toml::from_str(&text).map_err(|e| anyhow!("{}: {}", path.display(), e.message()))
}

impl Remote {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
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
        let response = self
            .http
            .get(self.url(path))
            .query(query)
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
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
            let response = self
                .http
                .get(self.url("/api/v1/playlog"))
                .query(&page_query)
                .bearer_auth(&self.token)
                .send()
                .await
                .map_err(|e| self.send_error(e))?;
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

    pub fn send_error(&self, e: reqwest::Error) -> anyhow::Error {
        let described =
            crate::station::sync::describe_http_for(&e, crate::station::sync::TlsSettings::CLI);
        anyhow!("cannot reach central at {}: {described}", self.base)
    }

    /// Central's record of `sha256`, or `None` when its library does not hold it.
    pub async fn library_entry(&self, sha256: &str) -> anyhow::Result<Option<AudioInfo>> {
        let response = self
            .http
            .get(self.url(&format!("/api/v1/library/{sha256}")))
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|e| self.send_error(e))?;
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
        let file = tokio::fs::File::open(path)
            .await
            .with_context(|| format!("cannot open {}", path.display()))?;
        let size = file.metadata().await?.len();
        let name = path.display().to_string();
        let counter = std::io::stderr().is_terminal();
        if !counter {
            eprintln!("{name}: uploading {}", size_text(size));
        }
        let shown = name.clone();
        let stream =
            futures_util::stream::unfold((file, 0u64, None), move |(mut file, sent, shown_pct)| {
                let name = shown.clone();
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
            })
            .boxed();
        let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let mut query = vec![("title", title.to_string())];
        if let Some(file_name) = file_name {
            query.push(("name", file_name));
        }
        if accept_damaged {
            query.push(("accept_damaged", "true".to_string()));
        }
        let sent = self
            .http
            .put(self.url("/api/v1/audio"))
            .query(&query)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_LENGTH, size)
            .body(reqwest::Body::wrap_stream(stream))
            .send()
            .await;
        if counter && size > 0 {
            // The counter's line is ended whatever came of it: what follows (the result,
            // an error, the shell prompt) starts on a line of its own.
            eprintln!();
        }
        let response = sent.map_err(|e| self.send_error(e))?;
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
