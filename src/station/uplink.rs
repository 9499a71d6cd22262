//! The station's link to central, run beside the daemon when the config names a central
//! URL, a token and the province key: the sync ([`Syncer`]: verified manifests and
//! audio) feeds the daemon's schedules, heartbeats carry what the daemon is doing, and
//! the playlog reporter sends ledger records upward until central acknowledges them.
//!
//! Two independent loops, so a long manifest poll never delays a confirmation:
//! - **sync**: long-poll the manifest (up to the heartbeat interval), hand every
//!   verified manifest's schedules to the daemon as [`StationCommand::Central`], fetch
//!   missing audio into `<data_dir>/audio` (where the daemon reads `sha256:` audio),
//!   evict, heartbeat. The manifest accepted before a restart is re-verified at start-up
//!   and handed over at once, so a station with no network keeps its last good schedule.
//! - **playlog**: every [`PLAYLOG_POLL`] (and at once after a successful batch) send the
//!   oldest unacknowledged records, then mark acknowledged what central says it stored.
//!   Records are never deleted here; the ledger refuses to delete unacknowledged ones.
//!
//! Not known here: scheduling and playing (the daemon), signatures (the sync verifies).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::config::StationConfig;
use super::daemon::{StationCommand, StationHandle};
use crate::clock::SharedClock;
use crate::ledger::{Ledger, LedgerError, Outcome};
use crate::protocol::{PlaylogAck, PlaylogBatch};
use crate::signing::{PublicKey, SigningError, VerifiedManifest};
use crate::sync::{
    Backoff, StationReport, SyncConfig, SyncError, Syncer, describe_http, schedules,
};

/// How often the reporter looks for new ledger records.
pub const PLAYLOG_POLL: Duration = Duration::from_millis(500);
/// Records per playlog request.
pub const PLAYLOG_BATCH: usize = 500;
/// Longest manifest long-poll (central caps it at 60 s).
const MAX_LONG_POLL: Duration = Duration::from_secs(30);

/// Why the uplink could not start.
#[derive(Debug, thiserror::Error)]
pub enum UplinkError {
    #[error("station config has central_url but no {0}: add it (see `loa station --print-config`)")]
    Missing(&'static str),
    #[error("province_key: {0}")]
    Key(#[from] SigningError),
    #[error(transparent)]
    Sync(#[from] SyncError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

/// Why one playlog exchange failed (it is retried with backoff).
#[derive(Debug, thiserror::Error)]
enum ReportError {
    #[error("cannot reach central at {url}: {}", describe_http(source))]
    Http { url: String, source: reqwest::Error },
    #[error("central answered {status} to a playlog batch: {body}")]
    Status { status: reqwest::StatusCode, body: String },
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("central's answer to a playlog batch: {0}")]
    Answer(String),
}

/// The running uplink's two loops. Await [`Uplink::run`] beside the daemon.
pub struct Uplink {
    syncer: Syncer,
    reporter: Reporter,
    handle: StationHandle,
    heartbeat: Duration,
    data_dir: PathBuf,
    sink_health: Arc<Mutex<String>>,
}

struct Reporter {
    ledger: Ledger,
    http: reqwest::Client,
    url: String,
    token: String,
    sink_health: Arc<Mutex<String>>,
}

impl Uplink {
    /// `None` when the config does not name a central (standalone station). Opens the
    /// sync cache in the data directory (re-verifying the stored manifest) and a second
    /// connection to the ledger (the daemon must have created it).
    pub fn from_config(
        config: &StationConfig,
        handle: StationHandle,
        clock: SharedClock,
    ) -> Result<Option<Self>, UplinkError> {
        if config.central_url.is_none() {
            return Ok(None);
        }
        config.token.as_deref().ok_or(UplinkError::Missing("token"))?;
        config.province_key.ok_or(UplinkError::Missing("province_key"))?;
        let Some(mut sync) = sync_config(config)? else { return Ok(None) };
        sync.long_poll = config.heartbeat.min(MAX_LONG_POLL);
        sync.backoff = Backoff { base: Duration::from_millis(500), max: Duration::from_secs(30) };
        let syncer = Syncer::new(sync.clone(), clock)?;
        let http = sync
            .client_builder()?
            .timeout(Duration::from_secs(60))
            .build()
            .map_err(|source| SyncError::Http { url: sync.central.clone(), source })?;
        let sink_health = Arc::new(Mutex::new("ok".to_string()));
        let reporter = Reporter {
            ledger: Ledger::open_existing(&config.ledger_path())?,
            http,
            url: format!("{}/api/v1/station/playlog", sync.central),
            token: sync.token.clone(),
            sink_health: sink_health.clone(),
        };
        Ok(Some(Self {
            syncer,
            reporter,
            handle,
            heartbeat: config.heartbeat,
            data_dir: config.data_dir.clone(),
            sink_health,
        }))
    }

    /// Runs both loops until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let Uplink { syncer, reporter, handle, heartbeat, data_dir, sink_health } = self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let playlog = tokio::spawn(reporter.run(stop_rx.clone()));
        let sync = sync_loop(syncer, handle, heartbeat, data_dir, sink_health, stop_rx);
        tokio::pin!(sync);
        tokio::select! {
            () = shutdown => {}
            () = &mut sync => {}
        }
        let _ = stop_tx.send(true);
        let _ = playlog.await;
    }
}

/// How this station reaches central: its URL, token, pinned key and, for `https://`,
/// the CA in `ca_cert`. Every HTTP client the station opens to central (the sync,
/// heartbeats, the playlog reporter, the bulletin receiver) is built from this with
/// [`SyncConfig::client_builder`], so what the station trusts is decided in one place.
/// `None` for a standalone station (no central_url, token or province_key).
pub fn sync_config(config: &StationConfig) -> Result<Option<SyncConfig>, SigningError> {
    let (Some(central), Some(token), Some(key)) =
        (&config.central_url, &config.token, &config.province_key)
    else {
        return Ok(None);
    };
    let mut sync = SyncConfig::new(
        central,
        token,
        &config.station_id,
        PublicKey::from_bytes(key)?,
        config.data_dir.clone(),
    );
    sync.ca_cert_pem = config.ca_cert.as_ref().map(|ca| ca.pem.clone());
    Ok(Some(sync))
}

fn apply(handle: &StationHandle, m: &VerifiedManifest) {
    match schedules(&m.manifest) {
        Ok(list) => {
            tracing::info!(
                version = m.manifest.version,
                schedules = list.len(),
                "playing central's schedules"
            );
            handle.send(StationCommand::Central(list));
        }
        Err(e) => tracing::error!(
            version = m.manifest.version,
            "manifest verified but its schedules do not parse; the last good ones keep playing: {e}"
        ),
    }
}

async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

async fn sync_loop(
    mut syncer: Syncer,
    handle: StationHandle,
    heartbeat: Duration,
    data_dir: PathBuf,
    sink_health: Arc<Mutex<String>>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    if let Some(m) = syncer.current() {
        apply(&handle, m);
    }
    let backoff = Backoff { base: Duration::from_millis(500), max: Duration::from_secs(30) };
    let mut failures: u32 = 0;
    let mut last_beat: Option<tokio::time::Instant> = None;
    loop {
        let step = async {
            if let Some(m) = syncer.poll_manifest().await? {
                apply(&handle, &m);
            }
            let pass = syncer.sync_audio().await?;
            for (sha, e) in &pass.failed {
                tracing::warn!(sha256 = sha, "still missing after retries: {e}");
            }
            syncer.evict()?;
            if last_beat.is_none_or(|t| t.elapsed() >= heartbeat) {
                let report = station_report(&handle, &data_dir, &sink_health).await;
                syncer.send_heartbeat(&report).await?;
                last_beat = Some(tokio::time::Instant::now());
            }
            Ok::<(), SyncError>(())
        };
        let outcome = tokio::select! {
            outcome = step => outcome,
            () = stopped(&mut stop) => return,
        };
        let delay = match outcome {
            Ok(()) => {
                if failures > 0 {
                    tracing::info!("central reachable again");
                }
                failures = 0;
                continue;
            }
            Err(e) => {
                failures = failures.saturating_add(1);
                if e.certificate_refused() {
                    tracing::error!(failures, "sync: {e}; the accepted schedules keep playing");
                } else {
                    tracing::warn!(failures, "sync: {e}; the accepted schedules keep playing");
                }
                backoff.delay(failures - 1, rand::random::<f64>())
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = stopped(&mut stop) => return,
        }
    }
}

/// What the heartbeat says: asked of the daemon itself, so it is what it is doing now.
async fn station_report(
    handle: &StationHandle,
    data_dir: &Path,
    sink_health: &Arc<Mutex<String>>,
) -> StationReport {
    let (tx, rx) = tokio::sync::oneshot::channel();
    let now_playing = if handle.send(StationCommand::Status(tx)) {
        match tokio::time::timeout(Duration::from_secs(5), rx).await {
            Ok(Ok(status)) => status.playing.first().map(|p| p.item_id.clone()),
            _ => None,
        }
    } else {
        None
    };
    let sink_health =
        sink_health.lock().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone());
    StationReport { now_playing, sink_health, disk_free_bytes: disk_free(data_dir) }
}

/// Bytes available to this process on the file system holding `path`.
pub fn disk_free(path: &Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes()).ok()?;
    let mut stat: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: `c_path` is a valid NUL-terminated string and `stat` a valid out-pointer
    // for the duration of the call.
    let rc = unsafe { libc::statvfs(c_path.as_ptr(), &mut stat) };
    if rc != 0 {
        return None;
    }
    Some((stat.f_bavail as u64).saturating_mul(stat.f_frsize as u64))
}

impl Reporter {
    async fn run(mut self, mut stop: tokio::sync::watch::Receiver<bool>) {
        let backoff = Backoff { base: Duration::from_millis(250), max: Duration::from_secs(15) };
        let mut failures: u32 = 0;
        loop {
            let delay = match self.send_once().await {
                Ok(true) => {
                    failures = 0;
                    continue;
                }
                Ok(false) => {
                    failures = 0;
                    PLAYLOG_POLL
                }
                Err(e) => {
                    failures = failures.saturating_add(1);
                    tracing::warn!(
                        failures,
                        "playlog: {e}; records stay in the ledger and are sent again"
                    );
                    backoff.delay(failures - 1, rand::random::<f64>())
                }
            };
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                () = stopped(&mut stop) => {
                    // One last try so records written at shutdown go up now if they can.
                    let _ = tokio::time::timeout(Duration::from_secs(2), self.send_once()).await;
                    return;
                }
            }
        }
    }

    /// `ok`, or the sink error that ended the latest item.
    fn update_sink_health(&self, latest: Option<&crate::ledger::Record>) {
        let health = match latest {
            Some(r)
                if r.entry.outcome == Outcome::Failed
                    && r.entry.reason.as_deref().is_some_and(|x| x.starts_with("sink error")) =>
            {
                r.entry.reason.clone().unwrap_or_default()
            }
            _ => "ok".to_string(),
        };
        if let Ok(mut h) = self.sink_health.lock() {
            *h = health;
        }
    }

    /// Sends one batch of unacknowledged records. `Ok(true)` when central acknowledged
    /// progress and more may be waiting.
    async fn send_once(&mut self) -> Result<bool, ReportError> {
        let records = self.ledger.unacked(PLAYLOG_BATCH)?;
        let Some(last) = records.last().map(|r| r.seq) else { return Ok(false) };
        self.update_sink_health(records.last());
        let first = records[0].seq;
        let response = self
            .http
            .post(&self.url)
            .bearer_auth(&self.token)
            .json(&PlaylogBatch { records })
            .send()
            .await
            .map_err(|source| ReportError::Http { url: self.url.clone(), source })?;
        let status = response.status();
        if !status.is_success() {
            let body = crate::sync::error_text(response).await;
            return Err(ReportError::Status { status, body });
        }
        let body =
            crate::sync::read_limited(response, crate::sync::MAX_ACK_BYTES).await.map_err(|e| {
                match e {
                    crate::sync::LimitedError::Http(source) => {
                        ReportError::Http { url: self.url.clone(), source }
                    }
                    crate::sync::LimitedError::TooLarge => ReportError::Answer(format!(
                        "larger than {} bytes",
                        crate::sync::MAX_ACK_BYTES
                    )),
                }
            })?;
        let ack: PlaylogAck =
            serde_json::from_slice(&body).map_err(|e| ReportError::Answer(e.to_string()))?;
        // Nothing is marked acknowledged that this batch did not carry: an answer that
        // claims more (an impostor on the path, a confused proxy) must not make the
        // station stop resending records central never stored.
        if ack.acked_through > last {
            return Err(ReportError::Answer(format!(
                "it acknowledges records up to #{} but the batch ended at #{last}",
                ack.acked_through
            )));
        }
        // Central acknowledges only what it committed, so the whole prefix may be marked.
        let marked = self.ledger.ack_through(ack.acked_through)?;
        tracing::debug!(
            first,
            last,
            acked_through = ack.acked_through,
            marked,
            "playlog acknowledged"
        );
        Ok(marked > 0 && ack.acked_through >= last)
    }
}
