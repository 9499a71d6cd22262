//! CAP alerts at central: a document arrives (`POST /api/v1/cap`, or a feed central
//! polls: [`feed`]), is read and judged by [`crate::cap`], and becomes what the alert
//! ledger says — a bulletin that airs, waits for a person, or is a test; a cancel; or
//! nothing — through the same path as a pushed bulletin ([`crate::central::bulletins`]:
//! bounds, signature, audit). Every decision, refusals included, is recorded
//! ([`Store::record_alerts`](crate::store::Store::record_alerts)) with the ledger's new
//! state, in one transaction.
//!
//! Rules decided here:
//! - Alerts are taken one at a time ([`CapState::lock`]): an Update never overtakes the
//!   alert it updates. Across replicas on one database too: a decision holds the
//!   store's turn ([`Store::cap_turn`](crate::store::Store::cap_turn)) from reading the
//!   ledger until its new state is recorded, so every replica may take posts and poll
//!   feeds, and an alert a replica has just decided is a repeat to the next one (one
//!   bulletin, and no ledger update lost). A turn not had within its bound is `503`
//!   (a feed tries again at its next poll).
//! - A document with any error — its signature failing included — is refused (`422`
//!   with the diagnostics) and recorded as refused; nothing else changes.
//! - A test alert (status Test, Exercise) is signed and sent at once as a `test`
//!   bulletin: it never airs, so no one needs to approve it.
//! - Any other bulletin airs only if an `auto_air` rule matches it (never with a refused
//!   signature); otherwise it waits, whole but unsigned, for `loa bulletin approve ID`.
//! - When making a bulletin fails at central (speech), nothing is recorded and the
//!   ledger is not saved: the same alert sent again (a feed's next poll) is tried again.

pub mod feed;

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::api::Routes;
use super::auth::{admin_auth, cap_source_auth, operator_auth, peer};
use super::bulletins::{self, Actor, Cancelled, Draft};
use super::{ApiError, AppState};
use crate::cap::{
    self, AlertLedger, CapBulletinPlan, CapConfig, CapStation, LedgerAction, NoBulletin,
    PlanPriority, SignatureOutcome, SignatureReport, TrustStore,
};
use crate::protocol::{
    AlertRecord, AuditEntry, BulletinPriority, CapAnswer, CapDecision, CapOutcome,
};
use crate::store::{CapTurn, Role};

/// An alert older than this is forgotten by the ledger (a feed does not list an alert
/// for a month); its bulletin expired long before (at most 7 days).
pub const LEDGER_MEMORY_DAYS: i64 = 30;

/// Longest diagnostic text kept in a record, in characters.
const MAX_REASON_CHARS: usize = 2000;

/// What central holds for CAP between requests.
pub struct CapState {
    /// The trusted signers' keys (`[cap] trusted_signers`), read at start.
    pub trust: TrustStore,
    /// Alerts are taken one at a time in this process; across replicas on one
    /// database, a decision then also holds the store's turn (`Store::cap_turn`).
    pub lock: tokio::sync::Mutex<()>,
}

impl CapState {
    /// Reads the trusted signers named in `config`; a file that cannot be read or holds
    /// no key stops central's start with what to fix.
    pub fn load(config: &CapConfig) -> Result<Self, String> {
        let mut trust = TrustStore::new();
        for path in &config.trusted_signers {
            let pem = std::fs::read_to_string(path).map_err(|e| {
                format!(
                    "cannot read trusted signer {}: {e}; fix trusted_signers in central.toml",
                    path.display()
                )
            })?;
            trust
                .add_pem(&path.display().to_string(), &pem)
                .map_err(|e| format!("trusted signer {}: {e}", path.display()))?;
        }
        Ok(CapState { trust, lock: tokio::sync::Mutex::new(()) })
    }
}

/// Where a document came from.
#[derive(Debug, Clone)]
pub struct Source {
    /// For the audit trail.
    pub actor: Actor,
    /// For the record: `POST by cap-source from 10.0.0.5:41234`, `feed https://…`.
    pub label: String,
}

impl Source {
    pub fn post(role: &Role, from: &str) -> Self {
        Source {
            actor: Actor::new(role.to_string(), from),
            label: format!("POST by {role} from {from}"),
        }
    }

    pub fn feed(url: &str) -> Self {
        Source { actor: Actor::new("central", url), label: format!("feed {url}") }
    }
}

/// The CAP routes (merged into [`crate::central::router`]).
pub fn routes() -> Routes {
    Routes::new().get("/api/v1/cap", list).post("/api/v1/cap", post).get("/api/v1/audit", audit_log)
}

async fn post(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let role = cap_source_auth(&state, &headers)?;
    let source = Source::post(&role, &peer(request.extensions()));
    let body = super::body::read(request.into_body(), super::body::CAP_LIMIT).await?;
    let answer = ingest(&state, body.to_vec(), &source).await?;
    Ok((StatusCode::CREATED, axum::Json(answer)).into_response())
}

/// Reads, judges and acts on one CAP document. `Err(ApiError::Invalid)` (422) for a
/// document with errors (recorded as refused); other errors when central could not act
/// (nothing recorded: send it again).
pub async fn ingest(
    state: &AppState,
    bytes: Vec<u8>,
    source: &Source,
) -> Result<CapAnswer, ApiError> {
    let received_at = state.clock.now();
    // Up to 5 MiB of XML, canonicalised and verified: off the async workers.
    let trust = state.cap.trust.clone();
    let checked = tokio::task::spawn_blocking(move || cap::check(&bytes, &trust))
        .await
        .map_err(|e| ApiError::Internal(format!("CAP check: {e}")))?;
    let signature = describe_signature(&checked.signature);
    let warnings: Vec<String> = checked
        .diagnostics
        .iter()
        .filter(|d| !d.is_error())
        .map(|d| crate::protocol::text::printable(&d.to_string()))
        .collect();
    let _one_at_a_time = state.cap.lock.lock().await;
    let Some(alert) = checked.alert else {
        let errors: Vec<String> = checked
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| crate::protocol::text::printable(&d.to_string()))
            .collect();
        let reason = clip(&errors.join("; "));
        let mut record = record_of(checked.read.as_ref(), source, received_at, &signature);
        record.outcome = CapOutcome {
            decision: CapDecision::Refused,
            reason: reason.clone(),
            bulletin_id: None,
            priority: None,
            stations: 0,
        };
        let subject = record.key_text();
        let entry = audit_entry(state, &source.actor, "cap.refused", &subject, &reason);
        state.store.record_alerts(&[record], &[entry], None)?;
        tracing::warn!(alert = %subject, source = %source.label, "CAP alert refused: {reason}");
        let message = if checked.signature.refused() {
            "CAP document refused: its XML signature does not verify (nothing was changed)"
        } else {
            "CAP document refused: it is not a valid CAP 1.2 alert (nothing was changed)"
        };
        return Err(ApiError::Invalid { message: message.to_string(), diagnostics: errors });
    };

    // Held until the ledger's new state is recorded: no other central reads the ledger
    // in between (it would act on this alert again, or overwrite this update).
    let _turn = cap_turn(state).await?;
    let now = state.clock.now();
    let mut ledger: AlertLedger = match state.store.cap_ledger()? {
        Some(json) => serde_json::from_str(&json)
            .map_err(|e| ApiError::Internal(format!("stored CAP ledger is corrupt: {e}")))?,
        None => AlertLedger::new(),
    };
    ledger.prune(now, now - chrono::Duration::days(LEDGER_MEMORY_DAYS));
    let stations = cap_stations(state)?;
    let config = &state.config.cap;
    let decision = cap::plan(&alert, Some(&stations), config, now);
    let actions = ledger.apply(&alert, decision);

    let base = record_of(Some(&alert), source, received_at, &signature);
    let mut records = Vec::new();
    for action in actions {
        let outcome = act(state, action, &checked.signature, source).await?;
        records.push(AlertRecord { outcome, ..base.clone() });
    }
    let key = alert.key().to_string();
    let audit: Vec<AuditEntry> = records
        .iter()
        .map(|r| {
            let o = &r.outcome;
            let detail = match &o.bulletin_id {
                Some(id) => format!("{id}: {}", o.reason),
                None => o.reason.clone(),
            };
            audit_entry(state, &source.actor, &format!("cap.{}", o.decision), &key, &detail)
        })
        .collect();
    let json = serde_json::to_string(&ledger)
        .map_err(|e| ApiError::Internal(format!("CAP ledger: {e}")))?;
    state.store.record_alerts(&records, &audit, Some(&json))?;
    for r in &records {
        let o = &r.outcome;
        tracing::info!(alert = %key, source = %source.label, decision = %o.decision, bulletin = ?o.bulletin_id, "CAP alert: {}", o.reason);
    }
    Ok(CapAnswer {
        alert: Some(key),
        outcomes: records.into_iter().map(|r| r.outcome).collect(),
        warnings,
    })
}

/// This central's turn to decide, among every central on the database
/// ([`Store::cap_turn`](crate::store::Store::cap_turn)): waited for on the blocking pool,
/// since another replica's decision may take seconds.
async fn cap_turn(state: &AppState) -> Result<CapTurn, ApiError> {
    let store = state.store.clone();
    tokio::task::spawn_blocking(move || store.cap_turn())
        .await
        .map_err(|e| ApiError::Internal(format!("CAP turn: {e}")))?
        .map_err(ApiError::from)
}

/// Does what one ledger action says; the outcome to record.
async fn act(
    state: &AppState,
    action: LedgerAction,
    signature: &SignatureReport,
    source: &Source,
) -> Result<CapOutcome, ApiError> {
    let none = |decision, reason: String| CapOutcome {
        decision,
        reason,
        bulletin_id: None,
        priority: None,
        stations: 0,
    };
    match action {
        LedgerAction::Make(plan) => make(state, &plan, signature, source).await,
        LedgerAction::Cancel { alert, by } => {
            let Some(id) =
                state.store.alert_bulletin(&alert.sender, &alert.identifier, alert.sent)?
            else {
                return Ok(none(
                    CapDecision::Ignored,
                    format!("{by} ends the bulletin of {alert}, but none was made for it"),
                ));
            };
            let why = format!("cancelled by CAP alert {by} (ends {alert})");
            let reason = match bulletins::cancel(state, &id, &source.actor, &why)? {
                Cancelled::Signed => format!("bulletin of {alert} cancelled: {by} ends it"),
                Cancelled::Withdrawn => {
                    format!("bulletin of {alert} withdrawn before approval: {by} ends it")
                }
                Cancelled::AlreadyOver => {
                    format!("bulletin of {alert} was already over when {by} ended it")
                }
            };
            Ok(CapOutcome { bulletin_id: Some(id), ..none(CapDecision::Cancelled, reason) })
        }
        LedgerAction::NoBulletin(reason) => {
            let decision = match reason {
                NoBulletin::Draft => CapDecision::Ignored,
                _ => CapDecision::NoBulletin,
            };
            Ok(none(decision, reason.to_string()))
        }
        LedgerAction::Ignored { alert, reason } => {
            Ok(none(CapDecision::Ignored, format!("{alert}: {reason}")))
        }
    }
}

/// The bulletin a plan asks for: spoken, then sent (a test; an `auto_air` match) or held
/// for a person's approval.
async fn make(
    state: &AppState,
    plan: &CapBulletinPlan,
    signature: &SignatureReport,
    source: &Source,
) -> Result<CapOutcome, ApiError> {
    let config = &state.config.cap;
    let priority = match plan.priority {
        PlanPriority::Emergency => BulletinPriority::Emergency,
        PlanPriority::Priority => BulletinPriority::Priority,
        PlanPriority::Test => BulletinPriority::Test,
    };
    let title = plain_title(&plan.title);
    let voice = voice(&plan.voice);
    let spoken = match bulletins::issue::speak(state, &plan.text, &voice, &title).await {
        // A language espeak-ng has no voice for is spoken with the Vietnamese one rather
        // than not at all.
        Err(e) if voice != "vi" => {
            tracing::warn!(
                voice,
                "CAP text not spoken with voice {voice}: {e}; speaking it with vi"
            );
            bulletins::issue::speak(state, &plan.text, "vi", &title).await
        }
        other => other,
    };
    let audio = spoken.map_err(|e| {
        ApiError::Internal(format!(
            "the alert's text could not be spoken at central: {e}; nothing was recorded, send the alert again"
        ))
    })?;
    let now = state.clock.now();
    let draft = Draft {
        title,
        audio,
        targets: plan.targets.clone(),
        to_all: false,
        priority,
        repeat: 0,
        interval_secs: 0,
        tone: config.tone && priority != BulletinPriority::Test,
        expires_at: plan.expires_at,
    };
    let doc = match draft.doc(now) {
        Ok(doc) => doc,
        // Outside what a station accepts (e.g. expiring within a second): recorded, not
        // an error of the request.
        Err(e) => {
            return Ok(CapOutcome {
                decision: CapDecision::NoBulletin,
                reason: e.to_string(),
                bulletin_id: None,
                priority: Some(priority),
                stations: plan.targets.len(),
            });
        }
    };
    let requested_by = format!("cap:{}", plan.key.sender);
    let outcome = |decision, reason: String| CapOutcome {
        decision,
        reason,
        bulletin_id: Some(doc.id.clone()),
        priority: Some(priority),
        stations: plan.targets.len(),
    };
    let about = format!("{} ({})", priority, plan.priority_reason);
    if priority == BulletinPriority::Test {
        bulletins::issue(state, &doc, &plan.targets, &requested_by, &source.actor).await?;
        return Ok(outcome(CapDecision::Test, format!("test bulletin sent, never aired: {about}")));
    }
    if let Some(rule) = auto_air_rule(config, plan, signature) {
        bulletins::issue(state, &doc, &plan.targets, &requested_by, &source.actor).await?;
        return Ok(outcome(CapDecision::Aired, format!("{about}; auto_air rule {rule} matched")));
    }
    let reason = format!(
        "{about}; no auto_air rule matches (sender {}, signature {}): approve it with `loa bulletin approve {}`",
        plan.key.sender,
        describe_signature(signature),
        doc.id
    );
    bulletins::hold(state, &doc, &requested_by, &reason, &source.actor, None)?;
    Ok(outcome(CapDecision::Waiting, reason))
}

/// The number (from 1) of the first `auto_air` rule that lets `plan` air.
fn auto_air_rule(
    config: &CapConfig,
    plan: &CapBulletinPlan,
    signature: &SignatureReport,
) -> Option<usize> {
    if !config.auto_air(plan, signature) {
        return None;
    }
    (0..config.auto_air.len())
        .find(|&i| {
            let one = CapConfig { auto_air: vec![config.auto_air[i].clone()], ..config.clone() };
            one.auto_air(plan, signature)
        })
        .map(|i| i + 1)
}

/// Central's stations as the area selection sees them (coordinates and codes from
/// `loa central station add … --lat --lon --geocode`).
pub fn cap_stations(state: &AppState) -> Result<Vec<CapStation>, ApiError> {
    Ok(state
        .store
        .station_places()?
        .into_iter()
        .map(|p| CapStation {
            id: p.station_id,
            position: match (p.lat, p.lon) {
                (Some(lat), Some(lon)) => Some(cap::model::LatLon { lat, lon }),
                _ => None,
            },
            codes: p.geocodes,
        })
        .collect())
}

/// A title safe to sign: one line, no control characters, within the bulletin bound.
fn plain_title(title: &str) -> String {
    let plain: String = title.chars().map(|c| if c.is_control() { ' ' } else { c }).collect();
    let plain = plain.split_whitespace().collect::<Vec<_>>().join(" ");
    let max = crate::protocol::bounds::MAX_TITLE_CHARS;
    let plain: String = if plain.chars().count() > max {
        plain.chars().take(max - 1).collect::<String>() + "…"
    } else {
        plain
    };
    if plain.is_empty() { "CAP alert".to_string() } else { plain }
}

/// An espeak-ng voice name from an alert's language, `vi` when it is not a plain one.
fn voice(voice: &str) -> String {
    let plain =
        !voice.is_empty() && voice.len() <= 8 && voice.bytes().all(|b| b.is_ascii_alphabetic());
    if plain { voice.to_ascii_lowercase() } else { "vi".to_string() }
}

fn clip(text: &str) -> String {
    if text.chars().count() <= MAX_REASON_CHARS {
        return text.to_string();
    }
    let mut cut: String = text.chars().take(MAX_REASON_CHARS).collect();
    cut.push('…');
    cut
}

/// `none`, `trusted (signer)`, `not trusted (signer)`, `refused: why`.
pub fn describe_signature(report: &SignatureReport) -> String {
    if !report.is_signed() {
        return "none".to_string();
    }
    let parts: Vec<String> = report
        .checks
        .iter()
        .map(|c| match &c.outcome {
            SignatureOutcome::Trusted { signer } => format!("trusted ({signer})"),
            SignatureOutcome::NotTrusted { signer } => format!("not trusted ({signer})"),
            SignatureOutcome::Refused { reason } => format!("refused: {reason}"),
        })
        .collect();
    clip(&crate::protocol::text::printable(&parts.join("; ")))
}

/// The record of `alert` (as far as it could be read) from `source`.
fn record_of(
    alert: Option<&cap::Alert>,
    source: &Source,
    received_at: DateTime<Utc>,
    signature: &str,
) -> AlertRecord {
    // Kept exactly: a later Update or Cancel finds the bulletin by them (CAP allows no
    // whitespace or control characters in either, and the reader bounds their length).
    let text = |s: &str| s.to_string();
    AlertRecord {
        received_at,
        source: source.label.clone(),
        sender: alert.map(|a| text(&a.sender)).unwrap_or_default(),
        identifier: alert.map(|a| text(&a.identifier)).unwrap_or_default(),
        sent: alert.map(|a| a.sent.to_utc()),
        status: alert.map(|a| a.status.to_string()).unwrap_or_default(),
        msg_type: alert.map(|a| a.msg_type.to_string()).unwrap_or_default(),
        signature: signature.to_string(),
        outcome: CapOutcome {
            decision: CapDecision::Ignored,
            reason: String::new(),
            bulletin_id: None,
            priority: None,
            stations: 0,
        },
    }
}

fn audit_entry(
    state: &AppState,
    actor: &Actor,
    action: &str,
    subject: &str,
    detail: &str,
) -> AuditEntry {
    AuditEntry {
        at: state.clock.now(),
        who: actor.who.clone(),
        action: action.to_string(),
        subject: subject.to_string(),
        from: actor.from.clone(),
        detail: detail.to_string(),
    }
}

/// Alert records and audit lines `loa` shows when it does not say how many.
pub const LIST_DEFAULT: usize = 100;
/// Most one request may ask for.
pub const LIST_MAX: usize = 1000;

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

fn limit(query: &ListQuery) -> Result<usize, ApiError> {
    let limit = query.limit.unwrap_or(LIST_DEFAULT);
    if limit == 0 || limit > LIST_MAX {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is out of range: ask for 1 to {LIST_MAX}"
        )));
    }
    Ok(limit)
}

/// `GET /api/v1/cap`: the alerts received, newest first. A district token sees only
/// the records of bulletins that reach one of its stations.
async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let role = operator_auth(&state, &headers)?;
    let limit = limit(&query)?;
    let mut records = state.store.alerts(limit)?;
    if let Role::District(_) = &role {
        let mine: std::collections::HashSet<String> =
            state.store.stations()?.into_iter().filter(|s| role.sees(s)).map(|s| s.id).collect();
        let mut kept = Vec::new();
        for r in records {
            let Some(id) = &r.outcome.bulletin_id else { continue };
            let targets = match state.bulletins.targets(id)? {
                Some(targets) => targets,
                None => state.store.pending(id)?.map(|p| p.doc.targets).unwrap_or_default(),
            };
            if targets.iter().any(|t| mine.contains(t)) {
                kept.push(r);
            }
        }
        records = kept;
    }
    Ok(axum::Json(records).into_response())
}

/// `GET /api/v1/audit`: the audit trail, newest first (admin).
async fn audit_log(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    admin_auth(&state, &headers, "read the audit trail")?;
    let limit = limit(&query)?;
    Ok(axum::Json(state.store.audit_log(limit)?).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn titles_and_voices_are_made_safe() {
        assert_eq!(plain_title("Lũ\u{7}  trên\nsông"), "Lũ trên sông");
        assert_eq!(plain_title(" \t"), "CAP alert");
        let long = "x".repeat(250);
        assert_eq!(plain_title(&long).chars().count(), 200, "one past the bound is cut");
        assert_eq!(plain_title(&"y".repeat(200)), "y".repeat(200));
        assert_eq!(voice("vi"), "vi");
        assert_eq!(voice("EN"), "en");
        assert_eq!(voice("x-klingon"), "vi");
        assert_eq!(voice(""), "vi");
    }
}
