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
//! - **time**: every heartbeat answer carries central's time, so the station knows how
//!   far off its own clock is. Over [`CENTRAL_TIME_AFTER_MS`] (and `trust_central_time`,
//!   the default) the station plans by central's time ([`CentralTime`], through the
//!   [`OffsetClock`] the daemon and player read) until its clock agrees again within
//!   [`AGREES_WITHIN_MS`]; the daemon sees each switch as a clock step. Heartbeats also
//!   say whether `timedatectl` reports the clock synchronised, the latest clock step and
//!   whether the sound output is down.
//!
//! Not known here: scheduling and playing (the daemon), signatures (the sync verifies).

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::config::StationConfig;
use super::daemon::{StationCommand, StationHandle};
use crate::audio::player::OutputState;
use crate::clock::{OffsetClock, SharedClock};
use crate::protocol::{ClockStepReport, OutputFailure};
use crate::protocol::{PlaylogAck, PlaylogBatch};
use crate::signing::{PublicKey, SigningError, VerifiedManifest};
use crate::station::central_addrs::{self, CentralAddrs, Unanswered};
use crate::station::ledger::{Ledger, LedgerError, Outcome};
use crate::station::sync::{
    Backoff, StationReport, SyncConfig, SyncError, Syncer, describe_http, schedules,
};

/// How often the reporter looks for new ledger records.
pub const PLAYLOG_POLL: Duration = Duration::from_millis(500);
/// Records per playlog request.
pub const PLAYLOG_BATCH: usize = 500;
/// Longest manifest long-poll (central caps it at 60 s).
const MAX_LONG_POLL: Duration = Duration::from_secs(30);
/// The station's clock this far off central's (either way) makes it plan by central's.
pub const CENTRAL_TIME_AFTER_MS: i64 = 5_000;
/// ...until its own clock is back within this of central's.
pub const AGREES_WITHIN_MS: i64 = 1_000;
/// A correction larger than this (a century) is refused as nonsense.
pub const MAX_CORRECTION_MS: i64 = 100 * 366 * 86_400_000;

/// Decides whether the station plans by its own clock or by central's, from the offsets
/// heartbeats measure. Pure apart from the [`OffsetClock`] it sets.
pub struct CentralTime {
    clock: Arc<OffsetClock>,
    enabled: bool,
}

impl CentralTime {
    pub fn new(clock: Arc<OffsetClock>, enabled: bool) -> Self {
        Self { clock, enabled }
    }

    /// Whether the station plans by central's time now.
    pub fn active(&self) -> bool {
        !self.clock.correction().is_zero()
    }

    /// The station's own (uncorrected) clock minus central's, from `measured`: the
    /// offset a heartbeat measured on the corrected clock. `None` on overflow.
    pub fn raw_offset_ms(&self, measured: i64) -> Option<i64> {
        measured.checked_sub(self.clock.correction().num_milliseconds())
    }

    /// Takes a heartbeat's measured offset (corrected station clock minus central, ms)
    /// and switches to central's time or back; logs each switch once.
    pub fn observe(&self, measured: i64) {
        let Some(raw) = self.raw_offset_ms(measured) else { return };
        let off = raw.unsigned_abs();
        if off > MAX_CORRECTION_MS.unsigned_abs() {
            tracing::error!(
                raw,
                "central's time is over a century off this clock; not planning by it"
            );
            return;
        }
        // In range now: within a century, far inside chrono's.
        let offset = chrono::Duration::milliseconds(raw);
        if off > CENTRAL_TIME_AFTER_MS.unsigned_abs() {
            tracing::warn!(
                offset = %crate::clock::human(offset),
                "this station's clock is off central's (install an NTP client; fake-hwclock on a board without a real-time clock)"
            );
            if !self.enabled {
                return;
            }
            let correction = -offset;
            if (correction - self.clock.correction()).abs()
                > chrono::Duration::milliseconds(AGREES_WITHIN_MS)
            {
                tracing::warn!(
                    correction = %crate::clock::human(correction),
                    "planning by central's time until this clock agrees again"
                );
                self.clock.set_correction(correction);
            }
        } else if off <= AGREES_WITHIN_MS.unsigned_abs() && self.active() {
            tracing::info!("this station's clock agrees with central's again: planning by it");
            self.clock.set_correction(chrono::Duration::zero());
        }
    }
}

/// What `timedatectl show -p NTPSynchronized --value` printed: `Some(true)` for "yes".
pub fn parse_ntp_synchronized(output: &str) -> Option<bool> {
    match output.trim() {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

/// Whether the system clock is synchronised, per `timedatectl` (`None` where it cannot
/// tell: no systemd, no timedatectl, or it took over 2 s).
async fn clock_synchronized() -> Option<bool> {
    let run = tokio::process::Command::new("timedatectl")
        .args(["show", "-p", "NTPSynchronized", "--value"])
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(Duration::from_secs(2), run).await.ok()?.ok()?;
    if !output.status.success() {
        return None;
    }
    // Bounded: the answer is one word.
    let text = String::from_utf8_lossy(&output.stdout[..output.stdout.len().min(64)]).to_string();
    parse_ntp_synchronized(&text)
}

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
    #[error("no answer from central at {url} within {} s", within.as_secs())]
    NoAnswer { url: String, within: Duration },
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
    central_time: Option<CentralTime>,
}

struct Reporter {
    ledger: Ledger,
    http: reqwest::Client,
    central: Arc<CentralAddrs>,
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
        let Some(sync) = sync_config(config)? else { return Ok(None) };
        Self::from_sync(config, sync, handle, clock).map(Some)
    }

    /// [`Uplink::from_config`] with the station's [`SyncConfig`] already made (its
    /// central addresses shared with the bulletin receiver's).
    pub fn from_sync(
        config: &StationConfig,
        mut sync: SyncConfig,
        handle: StationHandle,
        clock: SharedClock,
    ) -> Result<Self, UplinkError> {
        sync.long_poll = config.heartbeat.min(MAX_LONG_POLL);
        sync.backoff = Backoff { base: Duration::from_millis(500), max: Duration::from_secs(30) };
        let syncer = Syncer::new(sync.clone(), clock)?;
        let http =
            sync.client_builder()?.timeout(Duration::from_secs(60)).build().map_err(|source| {
                SyncError::Http { url: sync.central.preferred().to_string(), source }
            })?;
        let sink_health = Arc::new(Mutex::new("ok".to_string()));
        let reporter = Reporter {
            ledger: Ledger::open_existing(&config.ledger_path())?,
            http,
            central: sync.central.clone(),
            token: sync.token.clone(),
            sink_health: sink_health.clone(),
        };
        Ok(Self {
            syncer,
            reporter,
            handle,
            heartbeat: config.heartbeat,
            data_dir: config.data_dir.clone(),
            sink_health,
            central_time: None,
        })
    }

    /// Lets heartbeats set `clock`'s correction to central's time (see [`CentralTime`]).
    pub fn with_central_time(mut self, clock: Arc<OffsetClock>, enabled: bool) -> Self {
        self.central_time = Some(CentralTime::new(clock, enabled));
        self
    }

    /// Runs both loops until `shutdown` resolves.
    pub async fn run(self, shutdown: impl Future<Output = ()> + Send) {
        let Uplink { syncer, reporter, handle, heartbeat, data_dir, sink_health, central_time } =
            self;
        let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
        let playlog = tokio::spawn(reporter.run(stop_rx.clone()));
        let links = Links { handle, heartbeat, data_dir, sink_health, central_time };
        let sync = sync_loop(syncer, links, stop_rx);
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
/// Each call makes its own [`CentralAddrs`]: `station::run` makes one and hands clones
/// to the receiver and the uplink, so they fail over together.
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
    )
    .with_addresses(&config.central_urls());
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

/// What the sync loop works with besides the syncer.
struct Links {
    handle: StationHandle,
    heartbeat: Duration,
    data_dir: PathBuf,
    sink_health: Arc<Mutex<String>>,
    central_time: Option<CentralTime>,
}

async fn sync_loop(mut syncer: Syncer, links: Links, mut stop: tokio::sync::watch::Receiver<bool>) {
    let Links { handle, heartbeat, data_dir, sink_health, central_time } = links;
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
                let mut report = station_report(&handle, &data_dir, &sink_health).await;
                report.central_time = central_time.as_ref().is_some_and(CentralTime::active);
                let measured = syncer.send_heartbeat(&report).await?;
                if let Some(central_time) = &central_time {
                    central_time.observe(measured);
                }
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
    let status = if handle.send(StationCommand::Status(tx)) {
        tokio::time::timeout(Duration::from_secs(5), rx).await.ok().and_then(Result::ok)
    } else {
        None
    };
    let mut sink_health =
        sink_health.lock().map(|s| s.clone()).unwrap_or_else(|p| p.into_inner().clone());
    let mut report = StationReport {
        disk_free_bytes: disk_free(data_dir),
        clock_synchronized: clock_synchronized().await,
        ..StationReport::default()
    };
    if let Some(status) = status {
        report.now_playing = status.playing.first().map(|p| p.item_id.clone());
        report.clock_step = status.clock_step.map(|s| ClockStepReport { at: s.at, by_ms: s.by_ms });
        match &status.output {
            OutputState::Failed { since, reason, .. } => {
                let failure = OutputFailure::new(*since, reason);
                sink_health = format!(
                    "failed since {}: {}",
                    since.format("%Y-%m-%d %H:%M:%S UTC"),
                    failure.reason
                );
                report.output_failed = Some(failure);
            }
            // Playing again: whatever ended the last item is over.
            OutputState::Working => sink_health = "ok".to_string(),
        }
    }
    report.sink_health = sink_health;
    report
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
    fn update_sink_health(&self, latest: Option<&crate::station::ledger::Record>) {
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
        let body = serde_json::to_vec(&PlaylogBatch { records })
            .map_err(|e| ReportError::Answer(format!("cannot encode the batch: {e}")))?;
        let pick = self.central.choose();
        let url = pick.url(crate::protocol::api::station::PLAYLOG);
        let patience = central_addrs::patience_for_upload(body.len() as u64);
        // Safe to send again at another address after a failure: central stores records
        // idempotently on (station, seq) and acknowledges only what it committed.
        let request = self
            .http
            .post(&url)
            .bearer_auth(&self.token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body);
        let response = self.central.send(&pick, request, patience).await.map_err(|e| match e {
            Unanswered::Http(source) => ReportError::Http { url: url.clone(), source },
            Unanswered::Timeout(within) => ReportError::NoAnswer { url: url.clone(), within },
        })?;
        let status = response.status();
        if !status.is_success() {
            let body = crate::station::sync::error_text(response).await;
            return Err(ReportError::Status { status, body });
        }
        let body =
            crate::station::sync::read_limited(response, crate::station::sync::MAX_ACK_BYTES)
                .await
                .map_err(|e| match e {
                    crate::station::sync::LimitedError::Http(source) => {
                        ReportError::Http { url: url.clone(), source }
                    }
                    crate::station::sync::LimitedError::TooLarge => ReportError::Answer(format!(
                        "larger than {} bytes",
                        crate::station::sync::MAX_ACK_BYTES
                    )),
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::{Clock, ManualClock};
    use chrono::TimeZone;

    fn rig(enabled: bool) -> (Arc<ManualClock>, Arc<OffsetClock>, CentralTime) {
        let t0 = chrono::Utc.with_ymd_and_hms(2026, 12, 1, 5, 0, 0).unwrap();
        let raw = ManualClock::new(t0);
        let clock = OffsetClock::new(raw.clone());
        let time = CentralTime::new(clock.clone(), enabled);
        (raw, clock, time)
    }

    #[test]
    fn a_clock_off_by_more_than_five_seconds_plans_by_central_until_it_agrees() {
        let (raw, clock, time) = rig(true);
        // Within 5 s: the station's own clock rules.
        time.observe(4_000);
        assert!(!time.active());
        // A minute slow (the station reads 60 s less than central): plan by central.
        time.observe(-60_000);
        assert!(time.active());
        assert_eq!(clock.now(), raw.now() + chrono::Duration::seconds(60));
        // Measured on the corrected clock the offset is now ~0: the raw clock is still
        // a minute off, so the correction stays.
        time.observe(20);
        assert_eq!(clock.correction(), chrono::Duration::seconds(60));
        // NTP fixed the box: the corrected clock reads a minute ahead of central.
        raw.step(chrono::Duration::seconds(60));
        time.observe(60_000);
        assert!(!time.active(), "its own clock agrees again");
        assert_eq!(clock.now(), raw.now());
    }

    #[test]
    fn central_time_is_only_reported_when_disabled_and_nonsense_is_refused() {
        let (_, _, time) = rig(false);
        time.observe(-86_400_000);
        assert!(!time.active(), "trust_central_time = false: only logged");
        let (_, _, time) = rig(true);
        // An offset from a broken central: centuries, or i64's ends.
        time.observe(i64::MIN);
        time.observe(i64::MAX);
        time.observe(-MAX_CORRECTION_MS - 1);
        assert!(!time.active());
        // 56 years (a board in 1970) is a real case.
        time.observe(-56 * 365 * 86_400_000);
        assert!(time.active());
    }

    #[test]
    fn timedatectl_answers_are_read_strictly() {
        assert_eq!(parse_ntp_synchronized("yes\n"), Some(true));
        assert_eq!(parse_ntp_synchronized("no"), Some(false));
        assert_eq!(parse_ntp_synchronized(""), None);
        assert_eq!(parse_ntp_synchronized("Failed to connect to bus"), None);
    }
}
