//! The station side of distribution: fetch the signed manifest (long-poll), verify it,
//! download the audio it needs into the cache (resumable, verified), evict what is no
//! longer needed, and send heartbeats.
//!
//! [`Syncer`] is the entry point for the station daemon. It knows nothing about playing:
//! it hands over [`VerifiedManifest`]s and keeps [`Cache`] complete. Decisions (order,
//! readiness, backoff, clock offset) are pure functions in [`plan`].

pub mod cache;
mod download;
pub mod export;
pub mod plan;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use reqwest::StatusCode;
use reqwest::header;

pub use cache::{Cache, CacheError};
pub use export::{ExportError, resolved_source, schedules, write_schedules};
pub use plan::{Backoff, Download, Readiness, clock_offset_ms, plan, readiness};

use super::central_addrs::{self, CentralAddrs, Pick, Unanswered};
use crate::clock::SharedClock;
use crate::protocol::{ErrorBody, Heartbeat, HeartbeatAck, SignedEnvelope};
use crate::signing::{self, PublicKey, SigningError, VerifiedManifest};

/// How a station reaches central and what it trusts.
#[derive(Debug, Clone)]
pub struct SyncConfig {
    /// Central's addresses (e.g. `http://central.example:8480`), the preferred first,
    /// and which one requests go to now: shared by every clone of this configuration, so
    /// all of a station's clients fail over together.
    pub central: Arc<CentralAddrs>,
    /// This station's bearer token (from `loa central station add`).
    pub token: String,
    pub station_id: String,
    /// The province's pinned public key (from `loa central init`).
    pub public_key: PublicKey,
    pub cache_dir: PathBuf,
    /// How long one manifest request may wait for a change (default 30 s).
    pub long_poll: Duration,
    pub backoff: Backoff,
    /// Attempts per file per pass before moving on to the next file (default 8).
    pub max_attempts: u32,
    /// Unneeded audio stays this long before it is deleted (default 24 h).
    pub eviction_grace: Duration,
    /// PEM of the CA that signed central's certificate, for `https://` URLs. Only this
    /// CA is trusted (no built-in web roots).
    pub ca_cert_pem: Option<Vec<u8>>,
}

impl SyncConfig {
    /// A configuration with the documented defaults and one address (see
    /// [`SyncConfig::with_addresses`]).
    pub fn new(
        central: &str,
        token: &str,
        station_id: &str,
        public_key: PublicKey,
        cache_dir: PathBuf,
    ) -> Self {
        Self {
            central: Arc::new(CentralAddrs::single(central)),
            token: token.to_string(),
            station_id: station_id.to_string(),
            public_key,
            cache_dir,
            long_poll: Duration::from_secs(30),
            backoff: Backoff::default(),
            max_attempts: 8,
            eviction_grace: Duration::from_secs(24 * 3600),
            ca_cert_pem: None,
        }
    }

    /// The same with every address in `urls` (the preferred first).
    pub fn with_addresses(mut self, urls: &[String]) -> Self {
        self.central = Arc::new(CentralAddrs::new(urls));
        self
    }

    /// The one way a station's HTTP clients to central start (the sync, heartbeats, the
    /// playlog reporter, the bulletin receiver): a connect timeout, and `ca_cert_pem` as
    /// the only trusted root. Callers add the timeouts their requests need.
    pub fn client_builder(&self) -> Result<reqwest::ClientBuilder, SyncError> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .pool_idle_timeout(POOL_IDLE);
        if let Some(pem) = &self.ca_cert_pem {
            builder = builder.add_root_certificate(
                reqwest::Certificate::from_pem(pem).map_err(SyncError::CaCert)?,
            );
        }
        Ok(builder)
    }
}

/// How long a station waits for a TCP connection to central. Every request is also
/// bounded, connection included, by [`central_addrs::ANSWER_TIMEOUT`] (plus what it
/// legitimately waits for): that is what leaves an address which accepts connections
/// and never answers.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long an idle connection to central is kept for the next request: shorter than
/// central's header timeout (`central::server::HEADER_TIMEOUT`, 20 s), so central never
/// closes a connection under a request a station has just sent on it.
pub const POOL_IDLE: Duration = Duration::from_secs(15);

/// rustls' error behind a failed request, if the TLS handshake is what failed.
fn tls_error(error: &reqwest::Error) -> Option<&tokio_rustls::rustls::Error> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(err) = cause {
        // `io::Error` hides its payload from `source()`, and the TLS connector wraps
        // rustls' error in two of them: look inside by hand.
        let mut candidate = Some(err);
        while let Some(inner) = candidate {
            if let Some(tls) = inner.downcast_ref::<tokio_rustls::rustls::Error>() {
                return Some(tls);
            }
            candidate = inner
                .downcast_ref::<std::io::Error>()
                .and_then(|io| io.get_ref())
                .map(|payload| payload as &(dyn std::error::Error + 'static));
        }
        cause = err.source();
    }
    None
}

/// Whether central's TLS certificate was refused: a setting to fix (`ca_cert`, central's
/// `tls_cert`, the host in central_url), not a link that will come back by itself.
pub fn certificate_refused(error: &reqwest::Error) -> bool {
    matches!(tls_error(error), Some(tokio_rustls::rustls::Error::InvalidCertificate(_)))
}

/// Where the one who sees a TLS refusal sets what it trusts and which address it
/// calls: the station's config keys, or the command line's flags. A hint must name a
/// setting that person can actually change.
#[derive(Debug, Clone, Copy)]
pub struct TlsSettings {
    /// The CA setting (`ca_cert`, `--ca-cert`).
    pub ca: &'static str,
    /// The central address setting (`central_url`, `--central`).
    pub url: &'static str,
    /// Whose clock may be wrong when a certificate looks expired.
    pub whose_clock: &'static str,
}

impl TlsSettings {
    /// A station's `station.toml`.
    pub const STATION: TlsSettings =
        TlsSettings { ca: "ca_cert", url: "central_url", whose_clock: "this station's" };
    /// The `loa` command line.
    pub const CLI: TlsSettings = TlsSettings {
        ca: "--ca-cert (or LOA_CA_CERT, or ca_cert in the client config)",
        url: "--central",
        whose_clock: "this computer's",
    };
}

/// A reqwest error with its causes (reqwest's own message stops at "error sending
/// request"), and, when central's TLS certificate was refused, what to check: a wrong
/// `ca_cert` must not read like a flaky link. Worded for a station's settings.
pub fn describe_http(error: &reqwest::Error) -> String {
    describe_http_for(error, TlsSettings::STATION)
}

/// [`describe_http`] with the hint naming `settings`.
pub fn describe_http_for(error: &reqwest::Error, settings: TlsSettings) -> String {
    use tokio_rustls::rustls::{self, CertificateError};
    let mut text = error.to_string();
    let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(error);
    while let Some(err) = cause {
        let message = err.to_string();
        if !text.contains(&message) {
            text.push_str(": ");
            text.push_str(&message);
        }
        cause = err.source();
    }
    let Some(rustls::Error::InvalidCertificate(refusal)) = tls_error(error) else { return text };
    let TlsSettings { ca, url, whose_clock } = settings;
    let hint = match refusal {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => format!(
            "central's certificate is not signed by the trusted CA: set {ca} to the PEM of the CA that signed central's tls_cert"
        ),
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            format!(
                "central's certificate does not name the host in {url}: use the name or address its certificate was made for"
            )
        }
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => format!(
            "central's certificate has expired (or {whose_clock} clock is wrong): renew it at central"
        ),
        _ => format!("central's certificate was refused: check {ca} and central's tls_cert"),
    };
    format!("{text} ({hint})")
}

impl SyncError {
    /// Whether this failure is central's TLS certificate being refused (see
    /// [`certificate_refused`]): logged as an error, since only a person can fix it.
    pub fn certificate_refused(&self) -> bool {
        matches!(self, SyncError::Http { source, .. } if certificate_refused(source))
    }
}

/// Why a sync step failed. Every refusal of content is also logged.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    #[error("cannot reach central at {url}: {}", describe_http(source))]
    Http { url: String, source: reqwest::Error },
    #[error("no answer from central at {url} within {} s", within.as_secs())]
    NoAnswer { url: String, within: Duration },
    #[error("central answered {status} to {what}: {message}")]
    Status { what: String, status: StatusCode, message: String },
    #[error("central refused this station's token (401): check `token` in the station config")]
    Unauthorized,
    #[error("manifest from central is not a signed envelope: {0}")]
    Malformed(serde_json::Error),
    #[error("manifest refused: {0}")]
    Refused(#[from] SigningError),
    #[error(
        "audio sha256:{expected} arrived with different bytes (sha256:{actual}): discarded, will download again"
    )]
    HashMismatch { expected: String, actual: String },
    #[error("audio sha256:{sha256} ended after {got} of {expected} bytes: will resume")]
    Truncated { sha256: String, got: u64, expected: u64 },
    #[error("audio sha256:{sha256} is larger than the {expected} bytes the manifest promised")]
    Oversize { sha256: String, expected: u64 },
    #[error("audio name {0:?} is not a sha256: refused")]
    BadName(String),
    #[error(transparent)]
    Cache(#[from] CacheError),
    #[error("ca_cert is not a PEM certificate: {0}")]
    CaCert(reqwest::Error),
    #[error("{what} from central is larger than {limit} bytes: refused")]
    TooLarge { what: &'static str, limit: usize },
    #[error("{what} from central is not valid JSON of the expected shape: {source}")]
    BadAnswer { what: &'static str, source: serde_json::Error },
}

/// Largest manifest a station accepts: its schedules' text (each at most
/// [`crate::schedule::MAX_SOURCE_BYTES`]) and audio list.
pub const MAX_MANIFEST_BYTES: usize = 16 * 1024 * 1024;
/// Largest small answer (a heartbeat or playlog acknowledgement).
pub const MAX_ACK_BYTES: usize = 64 * 1024;
/// How much of an error answer is read to show it.
pub const MAX_ERROR_BYTES: usize = 16 * 1024;

/// Why [`read_limited`] gave no body.
#[derive(Debug)]
pub enum LimitedError {
    TooLarge,
    Http(reqwest::Error),
}

/// Reads a response body of at most `limit` bytes. Everything a station reads from
/// central goes through a bound: on plain HTTP anyone on the path can answer instead,
/// and the process that drives the loudspeakers must not grow without end.
pub async fn read_limited(
    mut response: reqwest::Response,
    limit: usize,
) -> Result<Vec<u8>, LimitedError> {
    if response.content_length().is_some_and(|n| n > limit as u64) {
        return Err(LimitedError::TooLarge);
    }
    let mut out = Vec::new();
    while let Some(chunk) = response.chunk().await.map_err(LimitedError::Http)? {
        if out.len() + chunk.len() > limit {
            return Err(LimitedError::TooLarge);
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

/// The text of an error answer, cut at [`MAX_ERROR_BYTES`] and stripped of control
/// characters (it ends up in logs and on terminals).
pub async fn error_text(mut response: reqwest::Response) -> String {
    let mut out = Vec::new();
    while let Ok(Some(chunk)) = response.chunk().await {
        let room = MAX_ERROR_BYTES.saturating_sub(out.len());
        out.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if room <= chunk.len() {
            break;
        }
    }
    crate::protocol::text::printable(&String::from_utf8_lossy(&out))
}

/// An unanswered request as a [`SyncError`] naming the address it went to.
pub(crate) fn unanswered(pick: &Pick, error: Unanswered) -> SyncError {
    match error {
        Unanswered::Http(source) => SyncError::Http { url: pick.base.clone(), source },
        Unanswered::Timeout(within) => SyncError::NoAnswer { url: pick.base.clone(), within },
    }
}

/// [`read_limited`] as a [`SyncError`].
async fn read_body(
    response: reqwest::Response,
    limit: usize,
    what: &'static str,
    url: &str,
) -> Result<Vec<u8>, SyncError> {
    read_limited(response, limit).await.map_err(|e| match e {
        LimitedError::TooLarge => SyncError::TooLarge { what, limit },
        LimitedError::Http(source) => SyncError::Http { url: url.to_string(), source },
    })
}

/// What one [`Syncer::sync_audio`] pass did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SyncReport {
    pub downloaded: Vec<String>,
    /// sha256 → last error, for files that ran out of attempts this pass.
    pub failed: Vec<(String, String)>,
    /// Body bytes received from central, including bytes of attempts that were cut.
    pub bytes_received: u64,
}

/// What the daemon knows and the heartbeat reports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StationReport {
    pub now_playing: Option<String>,
    /// `ok` or what is wrong with the sound output.
    pub sink_health: String,
    pub disk_free_bytes: Option<u64>,
    pub clock_step: Option<crate::protocol::ClockStepReport>,
    pub clock_synchronized: Option<bool>,
    pub central_time: bool,
    pub output_failed: Option<crate::protocol::OutputFailure>,
}

/// The station's sync client. Typical use by the daemon:
/// `let mut s = Syncer::new(config, clock)?; loop { if let Some(m) = s.poll_manifest().await? { apply(m) } s.sync_audio().await; s.evict()?; s.send_heartbeat(report).await?; }`
/// or simply [`Syncer::run`].
pub struct Syncer {
    config: SyncConfig,
    clock: SharedClock,
    http: reqwest::Client,
    cache: Cache,
    accepted: Option<VerifiedManifest>,
    clock_offset_ms: Option<i64>,
    unneeded_since: HashMap<String, DateTime<Utc>>,
}

impl Syncer {
    /// Opens the cache and re-verifies the manifest accepted before a restart, so the
    /// station can play at once and rollback protection survives restarts.
    pub fn new(config: SyncConfig, clock: SharedClock) -> Result<Self, SyncError> {
        let cache = Cache::open(&config.cache_dir)?;
        let accepted = match cache.load_manifest()? {
            Some(envelope) => {
                match signing::verify_stored_manifest(
                    &config.public_key,
                    &envelope,
                    &config.station_id,
                ) {
                    Ok(v) => Some(v),
                    Err(e) => {
                        tracing::warn!("stored manifest no longer verifies, ignoring it: {e}");
                        None
                    }
                }
            }
            None => None,
        };
        let http = config
            .client_builder()?
            .read_timeout(config.long_poll + Duration::from_secs(30))
            .build()
            .map_err(|source| SyncError::Http {
                url: config.central.preferred().to_string(),
                source,
            })?;
        Ok(Self {
            config,
            clock,
            http,
            cache,
            accepted,
            clock_offset_ms: None,
            unneeded_since: HashMap::new(),
        })
    }

    pub fn cache(&self) -> &Cache {
        &self.cache
    }

    /// The last manifest this station verified and accepted.
    pub fn current(&self) -> Option<&VerifiedManifest> {
        self.accepted.as_ref()
    }

    /// The latest clock offset estimate (station minus central, ms).
    pub fn clock_offset_ms(&self) -> Option<i64> {
        self.clock_offset_ms
    }

    /// Central's addresses, shared with every other client of this station.
    pub fn central(&self) -> &Arc<CentralAddrs> {
        &self.config.central
    }

    /// Sends `request` (built for `pick`) through the address policy: an unanswered
    /// request, or a 5xx, moves this station to central's next address.
    async fn send(
        &self,
        pick: &Pick,
        request: reqwest::RequestBuilder,
        patience: Duration,
    ) -> Result<reqwest::Response, SyncError> {
        self.config.central.send(pick, request, patience).await.map_err(|e| unanswered(pick, e))
    }

    async fn error_status(what: &str, response: reqwest::Response) -> SyncError {
        let status = response.status();
        if status == StatusCode::UNAUTHORIZED {
            return SyncError::Unauthorized;
        }
        let text = error_text(response).await;
        let message = serde_json::from_str::<ErrorBody>(&text).map(|b| b.error).unwrap_or(text);
        SyncError::Status { what: what.to_string(), status, message }
    }

    /// Asks central for a newer manifest, waiting up to the long-poll time for one.
    /// Returns the newly accepted manifest, or `None` when nothing changed. A manifest
    /// that fails verification is refused, logged, and leaves the accepted one in place.
    pub async fn poll_manifest(&mut self) -> Result<Option<VerifiedManifest>, SyncError> {
        self.fetch_manifest(self.config.long_poll).await
    }

    /// [`Syncer::poll_manifest`] with an explicit wait (zero: answer at once).
    pub async fn fetch_manifest(
        &mut self,
        wait: Duration,
    ) -> Result<Option<VerifiedManifest>, SyncError> {
        let pick = self.config.central.choose();
        // A long-poll answers late by design: it goes only to an address that has
        // answered since it became current, so a silent one is told apart within
        // ANSWER_TIMEOUT (the next poll, at once, waits).
        let wait = if pick.choice.settled { wait } else { Duration::ZERO };
        let url = pick.url(&format!("/api/v1/station/manifest?wait={}", wait.as_secs()));
        let mut request = self.http.get(&url).bearer_auth(&self.config.token);
        let accepted_version = self.accepted.as_ref().map(|m| m.manifest.version);
        if let Some(version) = accepted_version {
            request = request.header(header::IF_NONE_MATCH, format!("\"v{version}\""));
        }
        let response = self.send(&pick, request, central_addrs::ANSWER_TIMEOUT + wait).await?;
        if response.status() == StatusCode::NOT_MODIFIED {
            return Ok(None);
        }
        if !response.status().is_success() {
            return Err(Self::error_status("manifest request", response).await);
        }
        let bytes = read_body(response, MAX_MANIFEST_BYTES, "a manifest", &url).await?;
        let envelope: SignedEnvelope =
            serde_json::from_slice(&bytes).map_err(SyncError::Malformed).inspect_err(|e| {
                tracing::warn!("{e}");
            })?;
        self.accept(&envelope)
    }

    /// Verifies an envelope (however it arrived) and makes it the accepted manifest if
    /// it is newer. Refusals are logged.
    pub fn accept(
        &mut self,
        envelope: &SignedEnvelope,
    ) -> Result<Option<VerifiedManifest>, SyncError> {
        let accepted_version = self.accepted.as_ref().map(|m| m.manifest.version);
        let verified = signing::verify_manifest(
            &self.config.public_key,
            envelope,
            &self.config.station_id,
            accepted_version,
            self.clock.now(),
        )
        .inspect_err(|e| {
            tracing::warn!(station = self.config.station_id, "manifest refused: {e}")
        })?;
        if Some(verified.manifest.version) == accepted_version {
            return Ok(None);
        }
        self.cache.save_manifest(envelope)?;
        tracing::info!(version = verified.manifest.version, "manifest accepted");
        self.accepted = Some(verified.clone());
        Ok(Some(verified))
    }

    /// How far ahead the station can play with what it holds; `None` before any
    /// manifest was accepted.
    pub fn readiness(&self) -> Result<Option<Readiness>, SyncError> {
        let Some(accepted) = &self.accepted else { return Ok(None) };
        Ok(Some(readiness(&accepted.manifest, &self.cache.cached()?)))
    }

    /// Downloads everything the accepted manifest needs and the cache lacks, earliest
    /// needed first, each with retries (backoff + jitter). A file that keeps failing is
    /// reported and the pass moves on, so one bad file never blocks the others.
    pub async fn sync_audio(&mut self) -> Result<SyncReport, SyncError> {
        let mut report = SyncReport::default();
        let Some(accepted) = &self.accepted else { return Ok(report) };
        let downloads = plan(&accepted.manifest, &self.cache.cached()?);
        for download in downloads {
            let mut attempt = 0;
            loop {
                match self.download(&download, &mut report.bytes_received).await {
                    Ok(()) => {
                        report.downloaded.push(download.sha256.clone());
                        break;
                    }
                    Err(e) => {
                        tracing::warn!(sha256 = download.sha256, attempt, "download failed: {e}");
                        attempt += 1;
                        if attempt >= self.config.max_attempts {
                            report.failed.push((download.sha256.clone(), e.to_string()));
                            break;
                        }
                        let delay = self.config.backoff.delay(attempt - 1, rand::random::<f64>());
                        tokio::time::sleep(delay).await;
                    }
                }
            }
        }
        Ok(report)
    }

    /// Deletes cached audio the accepted manifest has not needed for the grace period.
    pub fn evict(&mut self) -> Result<Vec<String>, SyncError> {
        let Some(accepted) = &self.accepted else { return Ok(Vec::new()) };
        let needed = accepted.manifest.audio.iter().map(|a| a.sha256.clone()).collect();
        Ok(self.cache.evict(
            &needed,
            self.clock.now(),
            self.config.eviction_grace,
            &mut self.unneeded_since,
        )?)
    }

    /// Sends a heartbeat and updates the clock offset estimate from central's answer.
    pub async fn send_heartbeat(&mut self, report: &StationReport) -> Result<i64, SyncError> {
        let readiness = self.readiness()?;
        let heartbeat = Heartbeat {
            manifest_version: self.accepted.as_ref().map(|m| m.manifest.version),
            clock_offset_ms: self.clock_offset_ms,
            ready_until: readiness.as_ref().map(|r| r.ready_until),
            missing_bytes: readiness.as_ref().map(|r| r.missing_bytes).unwrap_or(0),
            disk_free_bytes: report.disk_free_bytes,
            now_playing: report.now_playing.clone(),
            sink_health: report.sink_health.clone(),
            sent_at: self.clock.now(),
            clock_step: report.clock_step.clone(),
            clock_synchronized: report.clock_synchronized,
            central_time: report.central_time,
            output_failed: report.output_failed.clone(),
        };
        let pick = self.config.central.choose();
        let url = pick.url("/api/v1/station/heartbeat");
        let sent = self.clock.now();
        // Sent again elsewhere after a failure: a second heartbeat only says it again.
        let request = self.http.post(&url).bearer_auth(&self.config.token).json(&heartbeat);
        let response = self.send(&pick, request, central_addrs::ANSWER_TIMEOUT).await?;
        if !response.status().is_success() {
            return Err(Self::error_status("heartbeat", response).await);
        }
        let body = read_body(response, MAX_ACK_BYTES, "a heartbeat answer", &url).await?;
        let ack: HeartbeatAck = serde_json::from_slice(&body)
            .map_err(|source| SyncError::BadAnswer { what: "a heartbeat answer", source })?;
        let offset = clock_offset_ms(sent, ack.server_time, self.clock.now());
        self.clock_offset_ms = Some(offset);
        Ok(offset)
    }

    /// Runs until `shutdown` resolves: long-poll the manifest, hand each newly accepted
    /// one to `on_manifest`, sync audio, evict, and send a heartbeat built from `report`
    /// about every `heartbeat_every`. Errors are logged and retried with backoff; the
    /// accepted manifest stays in force throughout.
    pub async fn run(
        mut self,
        heartbeat_every: Duration,
        mut on_manifest: impl FnMut(&VerifiedManifest) + Send,
        report: impl Fn() -> StationReport + Send,
        shutdown: impl std::future::Future<Output = ()> + Send,
    ) {
        if let Some(m) = &self.accepted {
            on_manifest(m);
        }
        let mut failures: u32 = 0;
        let mut last_heartbeat: Option<tokio::time::Instant> = None;
        tokio::pin!(shutdown);
        loop {
            let step = async {
                if let Some(m) = self.poll_manifest().await? {
                    on_manifest(&m);
                }
                let pass = self.sync_audio().await?;
                for (sha, e) in &pass.failed {
                    tracing::warn!(sha256 = sha, "still missing after retries: {e}");
                }
                self.evict()?;
                if last_heartbeat.is_none_or(|t| t.elapsed() >= heartbeat_every) {
                    self.send_heartbeat(&report()).await?;
                    last_heartbeat = Some(tokio::time::Instant::now());
                }
                Ok::<(), SyncError>(())
            };
            let outcome = tokio::select! {
                outcome = step => outcome,
                () = &mut shutdown => return,
            };
            let delay = match outcome {
                Ok(()) => {
                    failures = 0;
                    continue;
                }
                Err(e) => {
                    tracing::warn!("sync: {e}");
                    failures = failures.saturating_add(1);
                    self.config.backoff.delay(failures - 1, rand::random::<f64>())
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = &mut shutdown => return,
            }
        }
    }
}
