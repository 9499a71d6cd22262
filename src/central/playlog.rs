//! The playlog routes: stations post ledger batches; operators read the log and the
//! daily report. A district token sees only its own district's stations.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::api::{operator_auth, parse_json, station_auth};
use super::report::{self, BulletinFacts, StationDay};
use super::{ApiError, AppState};
use crate::ledger::{Outcome, Record};
use crate::protocol::{DeliveryReport, PlaylogBatch, ReportStatus};
use crate::signing;
use crate::store::{PlaylogFilter, Role, Station};

/// Most records one batch may carry (the station sends at most this many at once).
pub const MAX_BATCH: usize = 2000;

pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/v1/station/playlog", post(post_playlog))
        .route("/api/v1/playlog", get(get_playlog))
        .route("/api/v1/report", get(get_report))
}

async fn post_playlog(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let station = station_auth(&state, &headers)?;
    let body = super::body::read(body, super::body::PLAYLOG_LIMIT).await?;
    let batch: PlaylogBatch = parse_json(&body, "playlog batch")?;
    if batch.records.len() > MAX_BATCH {
        return Err(ApiError::BadRequest(format!(
            "playlog batch has {} records: send at most {MAX_BATCH}",
            batch.records.len()
        )));
    }
    if let Some(other) = batch.records.iter().find(|r| r.station != station.id || r.seq == 0) {
        return Err(ApiError::BadRequest(format!(
            "record {} is for station {:?} (seq must be ≥ 1): this token belongs to {:?}",
            other.seq, other.station, station.id
        )));
    }
    let now = state.clock.now();
    let store = state.store.clone();
    let id = station.id.clone();
    // The commit waits for fsync: keep it off the async workers.
    let ack = tokio::task::spawn_blocking(move || store.ingest_playlog(&id, &batch.records, now))
        .await
        .map_err(|e| ApiError::Internal(format!("playlog ingest task: {e}")))??;
    tracing::debug!(
        station = station.id,
        acked_through = ack.acked_through,
        stored = ack.stored,
        "playlog batch"
    );
    Ok(axum::Json(ack).into_response())
}

/// The stations a role may see, optionally narrowed to one station or district.
fn visible(
    state: &AppState,
    role: &Role,
    station: Option<&str>,
    district: Option<&str>,
) -> Result<Vec<Station>, ApiError> {
    let mut all = state.store.stations()?;
    if let Role::District(own) = role {
        all.retain(|s| &s.district == own);
    }
    if let Some(id) = station {
        all.retain(|s| s.id == id);
        if all.is_empty() {
            return Err(ApiError::NotFound(format!(
                "no station {id:?} you may see: `loa status` lists them"
            )));
        }
    }
    if let Some(name) = district {
        all.retain(|s| s.district == name);
        if all.is_empty() {
            return Err(ApiError::NotFound(format!(
                "no stations in district {name:?} you may see: `loa status` lists them"
            )));
        }
    }
    Ok(all)
}

#[derive(Debug, Deserialize)]
struct LogQuery {
    station: Option<String>,
    district: Option<String>,
    since: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
    outcome: Option<String>,
    item: Option<String>,
    limit: Option<u64>,
}

async fn get_playlog(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let role = operator_auth(&state, &headers)?;
    let stations = visible(&state, &role, q.station.as_deref(), q.district.as_deref())?;
    let outcome = q
        .outcome
        .as_deref()
        .map(|o| o.parse::<Outcome>())
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let filter = PlaylogFilter {
        stations: Some(stations.into_iter().map(|s| s.id).collect()),
        since: q.since,
        until: q.until,
        outcome,
        item_id: q.item,
        limit: q.limit,
    };
    Ok(axum::Json(state.store.playlog(&filter)?).into_response())
}

#[derive(Debug, Deserialize)]
struct ReportQuery {
    date: String,
    tz: Option<String>,
    station: Option<String>,
    district: Option<String>,
}

async fn get_report(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<ReportQuery>,
) -> Result<Response, ApiError> {
    let role = operator_auth(&state, &headers)?;
    let date = NaiveDate::parse_from_str(&q.date, "%Y-%m-%d")
        .map_err(|e| ApiError::BadRequest(format!("date {:?} is not YYYY-MM-DD: {e}", q.date)))?;
    let tz_name = q.tz.as_deref().unwrap_or(crate::schedule::DEFAULT_TIMEZONE.name());
    let tz: chrono_tz::Tz = tz_name.parse().map_err(|_| {
        ApiError::BadRequest(format!(
            "unknown time zone {tz_name:?}: use an IANA name such as Asia/Ho_Chi_Minh"
        ))
    })?;
    let stations = visible(&state, &role, q.station.as_deref(), q.district.as_deref())?;
    let (from, until) = report::day_bounds(date, tz);
    let heartbeats = state.store.heartbeats()?;
    let contact = state.bulletins.last_contact(state.clock.now());
    let public = state.key.public();
    let mut days = Vec::new();
    for station in stations {
        let mut manifests = Vec::new();
        for stored in state.store.manifests_between(&station.id, from, until)? {
            // Signed by the current key, or by one retired by `loa central rotate-key`.
            let verified =
                match signing::verify_stored_manifest(&public, &stored.envelope, &station.id) {
                    Ok(v) => v,
                    Err(e) => super::retired_keys(&state.config.data_dir)
                        .iter()
                        .find_map(|k| {
                            signing::verify_stored_manifest(k, &stored.envelope, &station.id).ok()
                        })
                        .ok_or(e)?,
                };
            let schedules = crate::sync::schedules(&verified.manifest).map_err(|e| {
                ApiError::Internal(format!("manifest v{} of {}: {e}", stored.version, station.id))
            })?;
            manifests.push((stored.issued_at, schedules));
        }
        let planned = report::planned_between(&manifests, from, until);
        let records = state.store.playlog(&PlaylogFilter {
            stations: Some(vec![station.id.clone()]),
            since: Some(from),
            until: Some(until),
            ..PlaylogFilter::default()
        })?;
        let beat = heartbeats.iter().find(|h| h.station_id == station.id).map(|h| h.received_at);
        let last_seen = beat.max(contact.get(&station.id).copied());
        days.push(StationDay { station, planned, records, last_seen });
    }
    let bulletins = bulletin_facts(&state, &days, from, until)?;
    let report = report::build(date, tz, state.clock.now(), &days, &bulletins);
    let unreported = report.rows.iter().filter(|r| r.status == ReportStatus::NotReported).count();
    tracing::debug!(%date, rows = report.rows.len(), unreported, "report");
    Ok(axum::Json(report).into_response())
}

/// The bulletins issued in `[from, until)` with their delivery states and the ledger
/// records of their plays, for the stations in `days` only.
fn bulletin_facts(
    state: &AppState,
    days: &[StationDay],
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<BulletinFacts>, ApiError> {
    let mut out = Vec::new();
    for issued in state.bulletins.issued_between(from, until)? {
        let doc = issued.doc;
        let shown: Vec<String> = days
            .iter()
            .filter(|d| doc.targets.contains(&d.station.id))
            .map(|d| d.station.id.clone())
            .collect();
        if shown.is_empty() {
            continue;
        }
        let mut deliveries: HashMap<String, Vec<DeliveryReport>> = HashMap::new();
        for (station, r) in issued.deliveries {
            deliveries.entry(station).or_default().push(r);
        }
        let mut records: HashMap<String, Vec<Record>> = HashMap::new();
        // Plays are selected by bulletin id, not by day: a repeat, or a station that got
        // it late, may play after midnight and still belongs to this bulletin.
        for r in state.store.playlog(&PlaylogFilter {
            stations: Some(shown),
            item_id: Some(doc.id.clone()),
            ..PlaylogFilter::default()
        })? {
            records.entry(r.station.clone()).or_default().push(r);
        }
        out.push(BulletinFacts { doc, cancelled_at: issued.cancelled_at, deliveries, records });
    }
    Ok(out)
}
