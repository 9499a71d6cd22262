//! The playlog routes: stations post ledger batches; operators read the log and the
//! daily report. A district token sees only its own district's stations.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, Utc};
use serde::Deserialize;

use super::api::Routes;
use super::auth::{operator_auth, parse_json, station_auth};
use super::report::{self, BulletinFacts, StationDay};
use super::{ApiError, AppState};
use crate::protocol::{
    DeliveryReport, PLAYLOG_NEXT_HEADER, PLAYLOG_PAGE_DEFAULT, PLAYLOG_PAGE_MAX, PlaylogBatch,
    PlaylogCursor, ReportStatus,
};
use crate::protocol::{Outcome, Record};
use crate::signing;
use crate::store::{PlaylogFilter, Role, Station};

/// Most records one batch may carry (the station sends at most this many at once).
pub const MAX_BATCH: usize = 2000;

pub fn routes() -> Routes {
    Routes::new()
        .post("/api/v1/station/playlog", post_playlog)
        .get("/api/v1/playlog", get_playlog)
        .get("/api/v1/report", get_report)
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
    if let Some(other) = batch.records.iter().find(|r| r.station != station.id) {
        return Err(ApiError::BadRequest(format!(
            "record {} is for station {:?}: this token belongs to {:?}",
            other.seq,
            crate::protocol::text::printable(&crate::protocol::bounds::clip(&other.station)),
            station.id
        )));
    }
    // Sequences are stored as SQLite integers: one above i64::MAX would wrap.
    if let Some(bad) = batch.records.iter().find(|r| r.seq == 0 || r.seq > i64::MAX as u64) {
        return Err(ApiError::BadRequest(format!(
            "record sequence {} is out of range: 1 to {}",
            bad.seq,
            i64::MAX
        )));
    }
    let now = state.clock.now();
    let store = state.store.clone();
    let id = station.id.clone();
    // The commit waits for fsync: keep it off the async workers.
    let ack = tokio::task::spawn_blocking(move || store.ingest_playlog(&id, &batch.records, now))
        .await
        .map_err(|e| ApiError::Internal(format!("playlog ingest task: {e}")))??;
    state.metrics.ingested(ack.stored);
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
    all.retain(|s| role.sees(s));
    if let Some(id) = station {
        all.retain(|s| s.id == id);
        if all.is_empty() {
            return Err(ApiError::NotFound(format!(
                "no station {id:?} you may see: `loa status` lists them"
            )));
        }
    }
    if let Some(name) = district {
        all.retain(|s| crate::protocol::area::within(&s.district, name));
        if all.is_empty() {
            return Err(ApiError::NotFound(format!(
                "no stations in district {name:?} you may see: `loa status` lists them"
            )));
        }
    }
    Ok(all)
}

/// A playlog question: `GET /api/v1/playlog`'s query, the console's `/playlog` form.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LogQuery {
    pub station: Option<String>,
    pub district: Option<String>,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    pub outcome: Option<String>,
    pub item: Option<String>,
    pub limit: Option<u64>,
    /// The next page's start ([`crate::protocol::PlaylogCursor`]).
    pub after: Option<String>,
}

/// One page of the playlog `role` may see, and where the next page starts (when this
/// one is full): what `loa log` and the console's `/playlog` both show.
pub fn page(
    state: &AppState,
    role: &Role,
    q: &LogQuery,
) -> Result<(Vec<Record>, Option<PlaylogCursor>), ApiError> {
    let stations = visible(state, role, q.station.as_deref(), q.district.as_deref())?;
    let outcome = q
        .outcome
        .as_deref()
        .map(|o| o.parse::<Outcome>())
        .transpose()
        .map_err(ApiError::BadRequest)?;
    let limit = q.limit.unwrap_or(PLAYLOG_PAGE_DEFAULT);
    if limit == 0 || limit > PLAYLOG_PAGE_MAX {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is out of range: ask for 1 to {PLAYLOG_PAGE_MAX} records a page, \
             and the next page with `after`"
        )));
    }
    let after = q.after.as_deref().map(str::parse::<PlaylogCursor>).transpose();
    let filter = PlaylogFilter {
        stations: Some(stations.into_iter().map(|s| s.id).collect()),
        since: q.since,
        until: q.until,
        outcome,
        item_id: q.item.clone(),
        limit: Some(limit),
        after: after.map_err(ApiError::BadRequest)?,
    };
    let records = state.store.playlog(&filter)?;
    let next = (records.len() as u64 == limit).then(|| records.last()).flatten().map(|r| {
        PlaylogCursor { planned: r.entry.planned, station: r.station.clone(), seq: r.seq }
    });
    Ok((records, next))
}

async fn get_playlog(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(q): Query<LogQuery>,
) -> Result<Response, ApiError> {
    let role = operator_auth(&state, &headers)?;
    let (records, next) = page(&state, &role, &q)?;
    let mut response = axum::Json(records).into_response();
    if let Some(next) = next
        && let Ok(value) = axum::http::HeaderValue::from_str(&next.to_string())
    {
        response.headers_mut().insert(PLAYLOG_NEXT_HEADER, value);
    }
    Ok(response)
}

/// A report question: `GET /api/v1/report`'s query, the console's `/reports` form.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct ReportQuery {
    pub date: String,
    pub tz: Option<String>,
    pub station: Option<String>,
    pub district: Option<String>,
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
    // Planning a day of every visible station is CPU work: off the async workers.
    let state = state.clone();
    let report = tokio::task::spawn_blocking(move || daily_report(&state, &role, date, tz, &q))
        .await
        .map_err(|e| ApiError::Internal(format!("report task: {e}")))??;
    Ok(axum::Json(report).into_response())
}

/// The daily report for what `role` may see (`loa report`, the console's `/reports`).
/// CPU work: async callers run it on the blocking pool.
pub fn daily_report(
    state: &AppState,
    role: &Role,
    date: NaiveDate,
    tz: chrono_tz::Tz,
    q: &ReportQuery,
) -> Result<crate::protocol::DailyReport, ApiError> {
    let stations = visible(state, role, q.station.as_deref(), q.district.as_deref())?;
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
            let schedules =
                crate::protocol::manifest::schedules(&verified.manifest).map_err(|e| {
                    ApiError::Internal(format!(
                        "manifest v{} of {}: {e}",
                        stored.version, station.id
                    ))
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
    let bulletins = bulletin_facts(state, &days, from, until)?;
    let report = report::build(date, tz, state.clock.now(), &days, &bulletins);
    let unreported = report.rows.iter().filter(|r| r.status == ReportStatus::NotReported).count();
    tracing::debug!(%date, rows = report.rows.len(), unreported, "report");
    Ok(report)
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
        // Its attention tone too: the first sound people heard, where the latency ends.
        for item_id in [doc.id.clone(), format!("{}:tone", doc.id)] {
            for r in state.store.playlog(&PlaylogFilter {
                stations: Some(shown.clone()),
                item_id: Some(item_id),
                ..PlaylogFilter::default()
            })? {
                records.entry(r.station.clone()).or_default().push(r);
            }
        }
        out.push(BulletinFacts { doc, cancelled_at: issued.cancelled_at, deliveries, records });
    }
    Ok(out)
}
