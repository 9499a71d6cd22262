//! `/metrics`: central's figures in Prometheus' text format (version 0.0.4), written by
//! hand — the format is a few lines of text, no crate needed.
//!
//! Who may read it: an `admin` or `viewer` token on the API listener (a district token
//! sees only its own stations elsewhere, so it gets 403 here), or anyone who reaches
//! `metrics_listen` — a second listener that must be a loopback address (for a
//! Prometheus on the same machine, or behind an SSH tunnel), checked when the config is
//! read.
//!
//! Every figure about stations is computed from what `loa status --format json` shows
//! (the same store calls, the same `server_time`), so the two always agree. Histogram
//! buckets of the bulletin delivery latency (push → first sound at the station, for the
//! bulletins issued in the last 7 days): [`LATENCY_BUCKETS`] seconds.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{MatchedPath, State};
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};

use super::{ApiError, AppState};
use crate::protocol::DeliveryState;
use crate::store::Role;

/// Upper bounds of the delivery latency histogram, seconds.
pub const LATENCY_BUCKETS: &[f64] = &[0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 300.0];
/// How far back delivery latencies are read.
pub const LATENCY_WINDOW_DAYS: i64 = 7;
/// A station heard from (heartbeat) within this is online.
pub const ONLINE_WITHIN_SECS: i64 = 300;
/// Distinct (route, status) pairs kept; past it new pairs count as `other`.
const MAX_SERIES: usize = 1000;

/// Counters kept while central runs (they start at 0 with each process, as Prometheus
/// counters may).
#[derive(Debug, Default)]
pub struct Counters {
    requests: Mutex<BTreeMap<(String, u16), u64>>,
    ingest_batches: AtomicU64,
    ingest_records: AtomicU64,
}

impl Counters {
    /// A playlog batch stored: `records` new records.
    pub fn ingested(&self, records: u64) {
        self.ingest_batches.fetch_add(1, Ordering::Relaxed);
        self.ingest_records.fetch_add(records, Ordering::Relaxed);
    }

    fn request(&self, route: &str, status: u16) {
        let mut map = self.requests.lock().unwrap_or_else(|p| p.into_inner());
        let key = (route.to_string(), status);
        if map.len() >= MAX_SERIES && !map.contains_key(&key) {
            *map.entry(("other".to_string(), status)).or_default() += 1;
        } else {
            *map.entry(key).or_default() += 1;
        }
    }
}

/// Middleware: counts every answer by route (the route's pattern, never the raw path:
/// `/api/v1/audio/{sha256}`) and status.
pub async fn count(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_string(), |m| m.as_str().to_string());
    let response = next.run(request).await;
    state.metrics.request(&route, response.status().as_u16());
    response
}

pub fn routes() -> crate::central::api::Routes {
    crate::central::api::Routes::new().get(crate::protocol::api::paths::METRICS, get_metrics)
}

/// The metrics alone, without a token: what `metrics_listen` serves.
pub fn open_router(state: Arc<AppState>) -> Router {
    Router::new().route(crate::protocol::api::paths::METRICS, get(open_metrics)).with_state(state)
}

async fn get_metrics(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    match super::auth::operator_auth(&state, &headers)? {
        Role::Admin | Role::Viewer => {}
        Role::District(_) | Role::CapSource => {
            return Err(ApiError::Forbidden(
                "/metrics shows every station: use an admin or viewer token, or metrics_listen"
                    .into(),
            ));
        }
    }
    open_metrics(State(state)).await
}

async fn open_metrics(State(state): State<Arc<AppState>>) -> Result<Response, ApiError> {
    let now = state.clock.now();
    let text = tokio::task::spawn_blocking(move || render(&state, now))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    Ok(([(axum::http::header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], text)
        .into_response())
}

/// A label value as Prometheus reads it: `\`, `"` and newlines escaped.
pub fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// Every metric, at `now`.
pub fn render(state: &AppState, now: DateTime<Utc>) -> Result<String, ApiError> {
    let mut out = String::new();
    let stations = state.store.stations()?;
    let beats: BTreeMap<String, crate::store::StoredHeartbeat> =
        state.store.heartbeats()?.into_iter().map(|h| (h.station_id.clone(), h)).collect();

    family(&mut out, "loa_stations", "gauge", "Stations registered at central.");
    let _ = writeln!(out, "loa_stations {}", stations.len());
    let online = stations
        .iter()
        .filter(|s| {
            beats
                .get(&s.id)
                .is_some_and(|b| (now - b.received_at).num_seconds() <= ONLINE_WITHIN_SECS)
        })
        .count();
    family(
        &mut out,
        "loa_stations_online",
        "gauge",
        "Stations whose last heartbeat arrived within 5 minutes.",
    );
    let _ = writeln!(out, "loa_stations_online {online}");

    family(
        &mut out,
        "loa_station_last_heartbeat_age_seconds",
        "gauge",
        "Seconds since the station's last heartbeat reached central.",
    );
    for s in &stations {
        if let Some(b) = beats.get(&s.id) {
            let age = (now - b.received_at).num_milliseconds() as f64 / 1000.0;
            let _ = writeln!(
                out,
                "loa_station_last_heartbeat_age_seconds{{station=\"{}\",district=\"{}\"}} {age}",
                label(&s.id),
                label(&s.district)
            );
        }
    }
    family(
        &mut out,
        "loa_station_clock_offset_seconds",
        "gauge",
        "The station's clock minus central's, as it last measured it.",
    );
    for s in &stations {
        if let Some(offset) = beats.get(&s.id).and_then(|b| b.heartbeat.clock_offset_ms) {
            let _ = writeln!(
                out,
                "loa_station_clock_offset_seconds{{station=\"{}\"}} {}",
                label(&s.id),
                offset as f64 / 1000.0
            );
        }
    }
    family(
        &mut out,
        "loa_station_cache_ready",
        "gauge",
        "1 when the station's cache holds all its audio, or everything needed in the next 24 hours.",
    );
    family(
        &mut out,
        "loa_station_cache_missing_bytes",
        "gauge",
        "Audio bytes the station still has to download.",
    );
    family(&mut out, "loa_station_output_ok", "gauge", "1 while the station's sound output works.");
    for s in &stations {
        if let Some(b) = beats.get(&s.id) {
            let id = label(&s.id);
            let ready = b.heartbeat.cache_ready(now);
            let _ =
                writeln!(out, "loa_station_cache_ready{{station=\"{id}\"}} {}", u8::from(ready));
            let _ = writeln!(
                out,
                "loa_station_cache_missing_bytes{{station=\"{id}\"}} {}",
                b.heartbeat.missing_bytes
            );
            let ok = b.heartbeat.output_failed.is_none();
            let _ = writeln!(out, "loa_station_output_ok{{station=\"{id}\"}} {}", u8::from(ok));
        }
    }

    family(
        &mut out,
        "loa_playlog_records",
        "gauge",
        "Playlog records stored at central, by station and outcome (played, late, preempted, failed, missed).",
    );
    for (station, outcome, n) in state.store.playlog_outcome_counts()? {
        let _ = writeln!(
            out,
            "loa_playlog_records{{station=\"{}\",outcome=\"{}\"}} {n}",
            label(&station),
            label(&outcome)
        );
    }
    family(
        &mut out,
        "loa_playlog_chain_issues",
        "gauge",
        "Breaks, conflicts and gaps found in each station's playlog hash chain.",
    );
    for s in &stations {
        let summary = state.store.playlog_summary(&s.id)?;
        let _ = writeln!(
            out,
            "loa_playlog_chain_issues{{station=\"{}\"}} {}",
            label(&s.id),
            summary.issues.len()
        );
    }
    family(
        &mut out,
        "loa_playlog_ingest_batches_total",
        "counter",
        "Playlog batches stored since central started.",
    );
    let _ = writeln!(
        out,
        "loa_playlog_ingest_batches_total {}",
        state.metrics.ingest_batches.load(Ordering::Relaxed)
    );
    family(
        &mut out,
        "loa_playlog_ingest_records_total",
        "counter",
        "New playlog records stored since central started.",
    );
    let _ = writeln!(
        out,
        "loa_playlog_ingest_records_total {}",
        state.metrics.ingest_records.load(Ordering::Relaxed)
    );

    // Bulletin delivery latency: push → first sound, per (bulletin, station).
    let issued = state
        .bulletins
        .issued_between(
            now - chrono::Duration::days(LATENCY_WINDOW_DAYS),
            now + chrono::Duration::seconds(1),
        )
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut latencies: BTreeMap<(String, String), f64> = BTreeMap::new();
    for b in &issued {
        for (station, report) in &b.deliveries {
            if report.state == DeliveryState::Started
                && let Some(ms) = report.latency_ms
            {
                latencies.entry((b.doc.id.clone(), station.clone())).or_insert(ms as f64 / 1000.0);
            }
        }
    }
    family(
        &mut out,
        "loa_bulletin_delivery_latency_seconds",
        "histogram",
        "Push to first sound at each target station, bulletins of the last 7 days.",
    );
    let mut sum = 0.0;
    for le in LATENCY_BUCKETS {
        let n = latencies.values().filter(|v| **v <= *le).count();
        let _ = writeln!(out, "loa_bulletin_delivery_latency_seconds_bucket{{le=\"{le}\"}} {n}");
    }
    for v in latencies.values() {
        sum += v;
    }
    let _ = writeln!(
        out,
        "loa_bulletin_delivery_latency_seconds_bucket{{le=\"+Inf\"}} {}",
        latencies.len()
    );
    let _ = writeln!(out, "loa_bulletin_delivery_latency_seconds_sum {sum}");
    let _ = writeln!(out, "loa_bulletin_delivery_latency_seconds_count {}", latencies.len());

    let requests = state.metrics.requests.lock().unwrap_or_else(|p| p.into_inner()).clone();
    family(
        &mut out,
        "loa_http_requests_total",
        "counter",
        "Answers central gave, by route pattern and status.",
    );
    for ((route, status), n) in &requests {
        let _ = writeln!(
            out,
            "loa_http_requests_total{{route=\"{}\",status=\"{status}\"}} {n}",
            label(route)
        );
    }
    family(
        &mut out,
        "loa_sync_errors_total",
        "counter",
        "Error answers (4xx/5xx) on the routes stations sync through (manifest, audio, heartbeat, playlog, events, deliveries).",
    );
    let mut sync_errors: BTreeMap<&str, u64> = BTreeMap::new();
    for ((route, status), n) in &requests {
        let station_route =
            route.starts_with("/api/v1/station/") || route == "/api/v1/audio/{sha256}";
        if station_route && *status >= 400 {
            *sync_errors.entry(route.as_str()).or_default() += n;
        }
    }
    for (route, n) in sync_errors {
        let _ = writeln!(out, "loa_sync_errors_total{{route=\"{}\"}} {n}", label(route));
    }
    family(
        &mut out,
        "loa_event_streams_open",
        "gauge",
        "Event streams and long-polls stations hold open now.",
    );
    let _ = writeln!(out, "loa_event_streams_open {}", state.streams.total());
    family(
        &mut out,
        "loa_alerts_open",
        "gauge",
        "Alerts raised and not cleared (`loa status --problems`).",
    );
    let _ = writeln!(out, "loa_alerts_open {}", state.store.open_alerts()?.len());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_series_stop_growing_at_the_cap() {
        let counters = Counters::default();
        for i in 0..MAX_SERIES + 5 {
            counters.request(&format!("/r{i}"), 404);
        }
        let map = counters.requests.lock().unwrap();
        assert_eq!(map.len(), MAX_SERIES + 1, "the cap plus `other`");
        assert_eq!(map.get(&("other".to_string(), 404)), Some(&5));
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
