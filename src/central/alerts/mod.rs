//! Alerts that reach a person: central looks at the fleet every `check_secs` and raises
//! what an operator must act on — a station offline, its clock off, its cache not ready
//! for the next hours, its sound output failing or airing silence, an emergency not aired
//! at a target, a break in a playlog's hash chain. Each alert goes out once when it is
//! raised and once when it clears, by webhook and e-mail ([`notify`]); `loa status
//! --problems` lists the open ones (`GET /api/v1/alerts`).
//!
//! - [`evaluate`] is pure: facts in, the problems of the moment out.
//! - [`Watcher::tick`] compares them with the open alerts the store keeps, raising and
//!   clearing through the store (each with its notifications queued in the same
//!   transaction), then sends what is due. State lives in the store, so a restart neither
//!   raises an open alert again nor forgets to clear it; a notification is retried with
//!   backoff until sent (at most [`MAX_TRIES`]).

pub mod notify;

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::bulletins::Issued;
use super::{ApiError, AppState};
use crate::protocol::{BulletinPriority, DeliveryState, PlaylogSummary, Record};
use crate::store::{AlertRow, Role, Station, StoredHeartbeat};

/// Tries of one notification before it is given up (logged as an error).
pub const MAX_TRIES: u32 = 8;
/// The longest wait between two tries.
pub const MAX_RETRY_WAIT: Duration = Duration::from_secs(3600);

/// `[alerts]` in central.toml.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AlertsConfig {
    pub check_secs: u64,
    pub offline_after_mins: u64,
    pub clock_off_secs: f64,
    pub cache_horizon_hours: u64,
    pub emergency_grace_mins: u64,
    pub retry_secs: u64,
    pub webhook_url: Option<String>,
    pub webhook_timeout_secs: u64,
    pub smtp_host: Option<String>,
    pub smtp_port: Option<u16>,
    pub smtp_tls: SmtpTls,
    pub smtp_username: Option<String>,
    pub smtp_password: Option<String>,
    pub smtp_ca_cert: Option<PathBuf>,
    pub email_from: Option<String>,
    pub email_to: Vec<String>,
}

/// How the SMTP connection is protected (never in clear).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// TLS from the first byte (port 465).
    #[default]
    Implicit,
    /// Plain, then STARTTLS before anything else (port 587).
    Starttls,
}

impl Default for AlertsConfig {
    fn default() -> Self {
        Self {
            check_secs: 30,
            offline_after_mins: 10,
            clock_off_secs: 1.0,
            cache_horizon_hours: 24,
            emergency_grace_mins: 10,
            retry_secs: 30,
            webhook_url: None,
            webhook_timeout_secs: 10,
            smtp_host: None,
            smtp_port: None,
            smtp_tls: SmtpTls::Implicit,
            smtp_username: None,
            smtp_password: None,
            smtp_ca_cert: None,
            email_from: None,
            email_to: Vec::new(),
        }
    }
}

impl AlertsConfig {
    /// Every bound, with what to write instead.
    pub fn check(&self) -> Result<(), String> {
        let range = |name: &str, v: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&v) {
                Ok(())
            } else {
                Err(format!("[alerts] {name} must be between {lo} and {hi} (it is {v})"))
            }
        };
        range("check_secs", self.check_secs, 1, 3600)?;
        range("offline_after_mins", self.offline_after_mins, 1, 10_080)?;
        range("cache_horizon_hours", self.cache_horizon_hours, 1, 168)?;
        range("emergency_grace_mins", self.emergency_grace_mins, 1, 1440)?;
        range("retry_secs", self.retry_secs, 1, 3600)?;
        range("webhook_timeout_secs", self.webhook_timeout_secs, 1, 120)?;
        if !(self.clock_off_secs > 0.0 && self.clock_off_secs <= 3600.0) {
            return Err(format!(
                "[alerts] clock_off_secs must be above 0 and at most 3600 (it is {})",
                self.clock_off_secs
            ));
        }
        if let Some(url) = &self.webhook_url
            && !(url.starts_with("https://") || url.starts_with("http://"))
        {
            return Err(format!("[alerts] webhook_url must be an http(s) URL (it is {url:?})"));
        }
        if self.email_to.len() > 50 {
            return Err("[alerts] email_to lists at most 50 addresses".into());
        }
        if self.smtp_host.is_some() && (self.email_from.is_none() || self.email_to.is_empty()) {
            return Err("[alerts] with smtp_host, set email_from and at least one email_to".into());
        }
        if self.smtp_username.is_some() != self.smtp_password.is_some() {
            return Err("[alerts] set both smtp_username and smtp_password, or neither".into());
        }
        Ok(())
    }

    /// The channels alerts go out on.
    pub fn channels(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.webhook_url.is_some() {
            out.push(notify::WEBHOOK);
        }
        if self.smtp_host.is_some() && !self.email_to.is_empty() {
            out.push(notify::EMAIL);
        }
        out
    }
}

/// One problem of the moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    pub key: String,
    pub kind: &'static str,
    pub station: Option<String>,
    pub detail: String,
}

/// What [`evaluate`] looks at.
#[derive(Debug, Default)]
pub struct Facts {
    pub stations: Vec<Station>,
    pub heartbeats: BTreeMap<String, StoredHeartbeat>,
    pub playlogs: BTreeMap<String, PlaylogSummary>,
    /// Each station's latest record that aired (played or late).
    pub latest_aired: BTreeMap<String, Record>,
    /// Bulletins issued in the last 8 days.
    pub bulletins: Vec<Issued>,
}

fn when(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The problems of the moment (pure).
pub fn evaluate(config: &AlertsConfig, facts: &Facts, now: DateTime<Utc>) -> Vec<Problem> {
    let mut out = Vec::new();
    let offline_after = chrono::Duration::minutes(config.offline_after_mins as i64);
    for s in &facts.stations {
        let id = &s.id;
        let problem = |kind: &'static str, detail: String| Problem {
            key: format!("{kind}:{id}"),
            kind,
            station: Some(id.clone()),
            detail,
        };
        // A station never heard from is not installed yet, not offline.
        if let Some(beat) = facts.heartbeats.get(id) {
            let silent_for = now - beat.received_at;
            if silent_for > offline_after {
                out.push(problem(
                    "offline",
                    format!(
                        "no heartbeat from {id} since {} ({} min)",
                        when(beat.received_at),
                        silent_for.num_minutes()
                    ),
                ));
            } else {
                let h = &beat.heartbeat;
                if let Some(ms) = h.clock_offset_ms
                    && (ms.unsigned_abs() as f64) > config.clock_off_secs * 1000.0
                {
                    out.push(problem(
                        "clock",
                        format!(
                            "{id}'s clock is {:+.1} s off central's (more than {} s): check its NTP client",
                            ms as f64 / 1000.0,
                            config.clock_off_secs
                        ),
                    ));
                }
                let horizon = chrono::Duration::hours(config.cache_horizon_hours as i64);
                if h.manifest_version.is_some() && !h.cache_ready_for(now, horizon) {
                    out.push(problem(
                        "cache",
                        format!(
                            "{id} has not cached the audio for the next {} h ({} KB missing{}): check its link and disk",
                            config.cache_horizon_hours,
                            h.missing_bytes / 1024,
                            h.ready_until.map(|u| format!(", ready until {}", when(u))).unwrap_or_default()
                        ),
                    ));
                }
                if let Some(failed) = &h.output_failed {
                    out.push(problem(
                        "output",
                        format!(
                            "{id}'s sound output has failed since {}: {}",
                            when(failed.since),
                            crate::protocol::text::printable(&failed.reason)
                        ),
                    ));
                }
            }
        }
        if let Some(record) = facts.latest_aired.get(id)
            && record.entry.levels.as_ref().is_some_and(|l| l.silent)
        {
            out.push(problem(
                "silent",
                format!(
                    "{id} aired silence: {} at {} (check the amplifier, cables and the sound card's mixer)",
                    crate::protocol::text::printable(&record.entry.item_id),
                    when(record.entry.planned)
                ),
            ));
        }
        if let Some(summary) = facts.playlogs.get(id) {
            let breaks: Vec<_> = summary
                .issues
                .iter()
                .filter(|i| i.kind == "break" || i.kind == "conflict")
                .collect();
            if let Some(first) = breaks.first() {
                out.push(problem(
                    "chain",
                    format!(
                        "{id}'s playlog hash chain is broken ({} problem(s), first at #{}: {})",
                        breaks.len(),
                        first.seq,
                        crate::protocol::text::printable(&first.detail)
                    ),
                ));
            }
        }
    }
    let grace = chrono::Duration::minutes(config.emergency_grace_mins as i64);
    for b in &facts.bulletins {
        if b.doc.priority != BulletinPriority::Emergency || b.cancelled_at.is_some() {
            continue;
        }
        // Once a day past its expiry, an emergency is history (the report keeps it).
        if now > b.doc.expires_at + chrono::Duration::days(1) {
            continue;
        }
        for station in &b.doc.targets {
            let states: Vec<_> =
                b.deliveries.iter().filter(|(s, _)| s == station).map(|(_, r)| r).collect();
            if states
                .iter()
                .any(|r| matches!(r.state, DeliveryState::Started | DeliveryState::Finished))
            {
                continue;
            }
            let failed = states.iter().find(|r| r.state == DeliveryState::Failed);
            let detail = match failed {
                Some(r) => format!(
                    "emergency {} failed at {station}: {}",
                    b.doc.id,
                    crate::protocol::text::printable(
                        r.reason.as_deref().unwrap_or("no reason given")
                    )
                ),
                None if now >= b.doc.issued_at + grace => format!(
                    "emergency {} ({}) has not aired at {station} {} min after it was pushed{}",
                    b.doc.id,
                    crate::protocol::text::printable(&b.doc.title),
                    (now - b.doc.issued_at).num_minutes(),
                    if now > b.doc.expires_at { " and has expired" } else { "" }
                ),
                None => continue,
            };
            out.push(Problem {
                key: format!("emergency:{}:{station}", b.doc.id),
                kind: "emergency",
                station: Some(station.clone()),
                detail,
            });
        }
    }
    out
}

/// Raises and clears alerts against the store, and sends their notifications.
pub struct Watcher {
    state: Arc<AppState>,
    sender: notify::Sender,
}

impl Watcher {
    pub fn new(state: Arc<AppState>) -> Self {
        let sender = notify::Sender::new(&state.config.alerts);
        Self { state, sender }
    }

    /// Gathers the facts (off the async workers).
    async fn facts(&self, now: DateTime<Utc>) -> Result<Facts, ApiError> {
        let state = self.state.clone();
        tokio::task::spawn_blocking(move || {
            let store = state.store.as_ref();
            let stations = store.stations()?;
            let heartbeats =
                store.heartbeats()?.into_iter().map(|h| (h.station_id.clone(), h)).collect();
            let mut playlogs = BTreeMap::new();
            let mut latest_aired = BTreeMap::new();
            for s in &stations {
                playlogs.insert(s.id.clone(), store.playlog_summary(&s.id)?);
                if let Some(r) = store.latest_aired(&s.id)? {
                    latest_aired.insert(s.id.clone(), r);
                }
            }
            let bulletins = state
                .bulletins
                .issued_between(now - chrono::Duration::days(8), now + chrono::Duration::seconds(1))
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            Ok(Facts { stations, heartbeats, playlogs, latest_aired, bulletins })
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
    }

    /// One look: raise what is new, clear what is gone, send what is due. Returns
    /// (raised, cleared).
    pub async fn tick(&self, now: DateTime<Utc>) -> Result<(usize, usize), ApiError> {
        let facts = self.facts(now).await?;
        let problems = evaluate(&self.state.config.alerts, &facts, now);
        let channels = self.state.config.alerts.channels();
        let store = self.state.store.clone();
        let (raised, cleared) = tokio::task::spawn_blocking(move || {
            let open = store.open_alerts()?;
            let current: HashSet<&str> = problems.iter().map(|p| p.key.as_str()).collect();
            let open_keys: HashSet<&str> = open.iter().map(|a| a.key.as_str()).collect();
            let (mut raised, mut cleared) = (0, 0);
            for p in problems.iter().filter(|p| !open_keys.contains(p.key.as_str())) {
                let row = AlertRow {
                    id: 0,
                    key: p.key.clone(),
                    kind: p.kind.to_string(),
                    station_id: p.station.clone(),
                    detail: p.detail.clone(),
                    raised_at: now,
                    cleared_at: None,
                };
                if store.raise_alert(&row, &channels, now)? {
                    tracing::warn!(alert = %p.key, "alert raised: {}", p.detail);
                    raised += 1;
                }
            }
            for a in open.iter().filter(|a| !current.contains(a.key.as_str())) {
                if store.clear_alert(&a.key, &channels, now)? {
                    tracing::info!(alert = %a.key, "alert cleared: {}", a.detail);
                    cleared += 1;
                }
            }
            Ok::<_, crate::store::StoreError>((raised, cleared))
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
        self.deliver(now).await?;
        Ok((raised, cleared))
    }

    /// Sends every notification due by `now`.
    pub async fn deliver(&self, now: DateTime<Utc>) -> Result<usize, ApiError> {
        let store = self.state.store.clone();
        let due = tokio::task::spawn_blocking(move || store.due_notifications(now, 100))
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
        let mut sent = 0;
        for n in due {
            let result = self.sender.send(&n).await;
            let store = self.state.store.clone();
            let retry = self.state.config.alerts.retry_secs;
            let id = n.id;
            let attempts = n.attempts;
            let key = n.alert.key.clone();
            let channel = n.channel.clone();
            let ok = result.is_ok();
            tokio::task::spawn_blocking(move || match result {
                Ok(()) => store.notification_sent(id, now),
                Err(e) => {
                    let tries = attempts + 1;
                    let next = (tries < MAX_TRIES).then(|| {
                        let wait = Duration::from_secs(retry)
                            .saturating_mul(1u32.checked_shl(attempts).unwrap_or(u32::MAX))
                            .min(MAX_RETRY_WAIT);
                        now + chrono::Duration::from_std(wait).unwrap_or_default()
                    });
                    match next {
                        Some(at) => tracing::warn!(alert = %key, %channel, tries, "alert not sent ({e}); trying again at {at}"),
                        None => tracing::error!(alert = %key, %channel, tries, "alert not sent ({e}); giving up: check [alerts] in central.toml"),
                    }
                    store.notification_failed(id, &e.to_string(), next)
                }
            })
            .await
            .map_err(|e| ApiError::Internal(e.to_string()))??;
            sent += usize::from(ok);
        }
        Ok(sent)
    }

    /// Looks every `check_secs` (and sends what is due every few seconds) until the task
    /// is dropped.
    pub async fn run(self) {
        let every = Duration::from_secs(self.state.config.alerts.check_secs);
        let mut next_check = tokio::time::Instant::now();
        loop {
            let now = self.state.clock.now();
            if tokio::time::Instant::now() >= next_check {
                next_check = tokio::time::Instant::now() + every;
                if let Err(e) = self.tick(now).await {
                    tracing::error!("alerts: {e}");
                }
            } else if let Err(e) = self.deliver(now).await {
                tracing::error!("alerts: {e}");
            }
            tokio::time::sleep(every.min(Duration::from_secs(5))).await;
        }
    }
}

/// An open alert as `GET /api/v1/alerts` gives it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertView {
    pub key: String,
    pub kind: String,
    pub station: Option<String>,
    pub detail: String,
    pub raised_at: DateTime<Utc>,
}

pub fn routes() -> crate::central::api::Routes {
    crate::central::api::Routes::new().get(crate::protocol::api::paths::ALERTS, get_alerts)
}

async fn get_alerts(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let role = super::auth::operator_auth(&state, &headers)?;
    let store = state.store.clone();
    let (open, stations) = tokio::task::spawn_blocking(move || {
        Ok::<_, crate::store::StoreError>((store.open_alerts()?, store.stations()?))
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    let district_of: BTreeMap<String, String> =
        stations.into_iter().map(|s| (s.id, s.district)).collect();
    let views: Vec<AlertView> = open
        .into_iter()
        .filter(|a| match &role {
            Role::District(_) => a
                .station_id
                .as_ref()
                .and_then(|s| district_of.get(s))
                .is_some_and(|area| role.sees_area(area)),
            _ => true,
        })
        .map(|a| AlertView {
            key: a.key,
            kind: a.kind,
            station: a.station_id,
            detail: a.detail,
            raised_at: a.raised_at,
        })
        .collect();
    Ok(axum::Json(views).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_alerts_bound_is_refused_one_past_it() {
        assert_eq!(AlertsConfig::default().check(), Ok(()));
        let past: Vec<(&str, AlertsConfig)> = vec![
            ("check_secs", AlertsConfig { check_secs: 3601, ..Default::default() }),
            ("check_secs", AlertsConfig { check_secs: 0, ..Default::default() }),
            (
                "offline_after_mins",
                AlertsConfig { offline_after_mins: 10_081, ..Default::default() },
            ),
            (
                "cache_horizon_hours",
                AlertsConfig { cache_horizon_hours: 169, ..Default::default() },
            ),
            (
                "emergency_grace_mins",
                AlertsConfig { emergency_grace_mins: 1441, ..Default::default() },
            ),
            ("retry_secs", AlertsConfig { retry_secs: 3601, ..Default::default() }),
            (
                "webhook_timeout_secs",
                AlertsConfig { webhook_timeout_secs: 121, ..Default::default() },
            ),
            ("clock_off_secs", AlertsConfig { clock_off_secs: 3600.5, ..Default::default() }),
            ("clock_off_secs", AlertsConfig { clock_off_secs: 0.0, ..Default::default() }),
            ("email_to", AlertsConfig { email_to: vec!["a@b".into(); 51], ..Default::default() }),
            (
                "webhook_url",
                AlertsConfig { webhook_url: Some("ftp://x".into()), ..Default::default() },
            ),
            ("smtp_host", AlertsConfig { smtp_host: Some("mail".into()), ..Default::default() }),
            (
                "smtp_username",
                AlertsConfig { smtp_username: Some("u".into()), ..Default::default() },
            ),
        ];
        for (name, config) in past {
            let error = config.check().expect_err(name);
            assert!(error.contains(name), "{name}: {error}");
        }
        let at_the_bounds = AlertsConfig {
            check_secs: 3600,
            offline_after_mins: 10_080,
            cache_horizon_hours: 168,
            emergency_grace_mins: 1440,
            retry_secs: 3600,
            webhook_timeout_secs: 120,
            clock_off_secs: 3600.0,
            email_to: vec!["a@b".into(); 50],
            ..Default::default()
        };
        assert_eq!(at_the_bounds.check(), Ok(()));
    }
}
