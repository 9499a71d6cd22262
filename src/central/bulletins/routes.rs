//! The bulletin routes: push and cancel (signed, then appended as events), list and show
//! (scoped to what a role may see), the stations' event stream and poll, and their
//! delivery reports.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::operate;
use super::{Connected, StoredEvent};
use crate::central::api::Routes;
use crate::central::auth::{
    operator_auth as operator, operator_caller, parse_json, station_auth as station,
};
use crate::central::{ApiError, AppState};
use crate::protocol::{BulletinEvent, BulletinEvents, DeliveryReport, PushBulletinRequest};

/// Comment line sent on an idle stream so proxies and stations know it is alive.
pub const STREAM_HEARTBEAT: Duration = Duration::from_secs(15);
/// Longest a poll may wait for an event.
const MAX_POLL_WAIT: Duration = Duration::from_secs(30);

/// The bulletin routes (merged into [`crate::central::router`]).
pub fn routes() -> Routes {
    Routes::new()
        .post("/api/v1/bulletins", push)
        .get("/api/v1/bulletins", list)
        .get("/api/v1/bulletins/{id}", show)
        .post("/api/v1/bulletins/{id}/cancel", cancel)
        .post("/api/v1/bulletins/{id}/approve", approve)
        .get("/api/v1/station/events", stream)
        .get("/api/v1/station/events/poll", poll)
        .post("/api/v1/station/bulletins/delivery", delivery)
}

async fn push(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let caller = operator_caller(&state, &headers, request.extensions())?;
    let body =
        crate::central::body::read(request.into_body(), crate::central::body::PUSH_LIMIT).await?;
    let request: PushBulletinRequest = parse_json(&body, "bulletin push request")?;
    let pushed = operate::push(&state, &caller, &request).await?;
    Ok(axum::Json(pushed.response).into_response())
}

async fn cancel(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let caller = operator_caller(&state, &headers, request.extensions())?;
    Ok(axum::Json(operate::cancel(&state, &caller, &id)?).into_response())
}

async fn approve(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let caller = operator_caller(&state, &headers, request.extensions())?;
    Ok(axum::Json(operate::approve(&state, &caller, &id).await?).into_response())
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    limit: Option<usize>,
}

async fn list(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let role = operator(&state, &headers)?;
    let limit = query.limit.unwrap_or(operate::LIST_DEFAULT);
    Ok(axum::Json(operate::list(&state, &role, limit)?).into_response())
}

async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let role = operator(&state, &headers)?;
    Ok(axum::Json(operate::visible_info(&state, &role, &id)?).into_response())
}

#[derive(Debug, Deserialize)]
struct AfterQuery {
    /// Resume after this event id (the stream also reads `Last-Event-ID`).
    after: Option<u64>,
    /// Poll only: seconds to wait for an event when there is none.
    wait: Option<u64>,
}

fn last_event_id(headers: &HeaderMap, query: &AfterQuery) -> Result<u64, ApiError> {
    match headers.get("last-event-id").map(|v| v.to_str().map(|s| s.trim().parse::<u64>())) {
        Some(Ok(Ok(n))) => Ok(n),
        Some(_) => Err(ApiError::BadRequest("Last-Event-ID is not an event number".into())),
        None => Ok(query.after.unwrap_or(0)),
    }
}

fn sse_event(e: &StoredEvent) -> Event {
    Event::default().id(e.seq.to_string()).event("bulletin").data(&e.data)
}

/// How often an open stream checks that its station's token is still valid: a rotated
/// token (`loa central station rotate-token`, which may run beside central on the same
/// database) closes the stream within seconds. All streams share one read of the tokens
/// ([`crate::central::token_check`]).
pub use crate::central::token_check::REAUTH_EVERY;

async fn stream(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<AfterQuery>,
) -> Result<Response, ApiError> {
    let station = station(&state, &headers)?;
    let token = crate::central::auth::bearer_hash(&headers).ok_or(ApiError::Unauthorized)?;
    let after = state.bulletins.resume_point(last_event_id(&headers, &query)?);
    let slot = state.streams.open(&station.id, crate::central::streams::Kind::EventStream)?;
    state.bulletins.touch(&station.id, state.clock.now());
    tracing::info!(station = %station.id, after, "bulletin stream opened");
    let guard = Connected::new(state.clone(), station.id.clone());
    let changes = state.bulletins.subscribe();
    let open = OpenStream {
        state,
        guard,
        slot,
        token,
        after,
        changes,
        pending: VecDeque::new(),
        check_at: tokio::time::Instant::now() + REAUTH_EVERY,
    };
    let events = futures_util::stream::unfold(open, |mut s| async move {
        let event = s.next().await?;
        Some((Ok::<_, Infallible>(event), s))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::new().interval(STREAM_HEARTBEAT).text("heartbeat"))
        .into_response())
}

/// One station's open event stream.
struct OpenStream {
    state: Arc<AppState>,
    guard: Connected,
    slot: crate::central::streams::Slot,
    /// The sha256 of the token it was opened with, checked again every [`REAUTH_EVERY`].
    token: String,
    after: u64,
    changes: tokio::sync::watch::Receiver<u64>,
    pending: VecDeque<Arc<StoredEvent>>,
    check_at: tokio::time::Instant,
}

impl OpenStream {
    /// The next event to send, or `None` when the stream must end (central stopping, a
    /// newer stream of the same station, a token that is no longer valid).
    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                self.after = e.seq;
                return Some(sse_event(&e));
            }
            self.changes.mark_unchanged();
            let now = self.state.clock.now();
            self.pending.extend(self.state.bulletins.events_for(
                &self.guard.station,
                self.after,
                now,
            ));
            if !self.pending.is_empty() {
                continue;
            }
            tokio::select! {
                changed = self.changes.changed() => if changed.is_err() { return None },
                () = self.slot.closed() => return None,
                () = tokio::time::sleep_until(self.check_at) => {
                    self.check_at = tokio::time::Instant::now() + REAUTH_EVERY;
                    let (state, station) = (&self.state, &self.guard.station);
                    if !state.tokens.still_valid(&state.store, &self.token, station).await {
                        tracing::info!(station = %self.guard.station, "its token is no longer valid: closing its bulletin stream");
                        return None;
                    }
                }
            }
        }
    }
}

async fn poll(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<AfterQuery>,
) -> Result<Response, ApiError> {
    let station = station(&state, &headers)?;
    let after = state.bulletins.resume_point(last_event_id(&headers, &query)?);
    let wait = Duration::from_secs(query.wait.unwrap_or(0)).min(MAX_POLL_WAIT);
    // Only a poll that waits holds a place.
    let mut slot = if wait.is_zero() {
        None
    } else {
        Some(state.streams.open(&station.id, crate::central::streams::Kind::LongPoll)?)
    };
    let deadline = tokio::time::Instant::now() + wait;
    let mut changes = state.bulletins.subscribe();
    loop {
        changes.mark_unchanged();
        let now = state.clock.now();
        state.bulletins.touch(&station.id, now);
        let found = state.bulletins.events_for(&station.id, after, now);
        if !found.is_empty() || tokio::time::Instant::now() >= deadline {
            let events = found
                .iter()
                .map(|e| BulletinEvent { seq: e.seq, envelope: e.envelope.clone() })
                .collect();
            return Ok(axum::Json(BulletinEvents { events }).into_response());
        }
        let closed = async {
            match slot.as_mut() {
                Some(slot) => slot.closed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = tokio::time::timeout_at(deadline, changes.changed()) => {}
            () = closed => {
                return Ok(axum::Json(BulletinEvents { events: Vec::new() }).into_response());
            }
        }
    }
}

/// Most delivery reports one request may carry (a station sends two or three at once).
const MAX_REPORTS_PER_REQUEST: usize = 64;

/// One report (a JSON object) or several (an array): a station sends `delivered` and
/// `verified` together, one request instead of two at the moment the whole province
/// reports at once.
fn delivery_reports(body: &Bytes) -> Result<Vec<DeliveryReport>, ApiError> {
    let is_list = body.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'[');
    if !is_list {
        return Ok(vec![parse_json(body, "delivery report")?]);
    }
    let reports: Vec<DeliveryReport> = parse_json(body, "list of delivery reports")?;
    if reports.is_empty() || reports.len() > MAX_REPORTS_PER_REQUEST {
        return Err(ApiError::BadRequest(format!(
            "a list of {} delivery reports: send 1 to {MAX_REPORTS_PER_REQUEST} per request",
            reports.len()
        )));
    }
    Ok(reports)
}

async fn delivery(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let station = station(&state, &headers)?;
    let body = crate::central::body::read(body, crate::central::body::DELIVERY_LIMIT).await?;
    let mut reports = delivery_reports(&body)?;
    reports.iter_mut().for_each(DeliveryReport::sanitise);
    let now = state.clock.now();
    state.bulletins.touch(&station.id, now);
    for report in &reports {
        if !state.bulletins.is_target(&report.bulletin_id, &station.id) {
            return Err(ApiError::NotFound(format!(
                "no bulletin {:?} for station {}",
                crate::protocol::text::printable(&crate::protocol::bounds::clip(
                    &report.bulletin_id
                )),
                station.id
            )));
        }
        tracing::info!(station = %station.id, id = %report.bulletin_id, state = report.state.as_str(), latency_ms = ?report.latency_ms, reason = ?report.reason, "bulletin delivery");
    }
    // Answered only once committed; a fleet's burst of reports shares a few fsyncs.
    state.bulletins.deliveries.put(&station.id, reports, now).await?;
    Ok(axum::http::StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_bodies_are_one_report_or_a_bounded_list() {
        let one = r#"{"bulletin_id":"b-1","state":"delivered","at":"2026-12-01T05:00:00Z","latency_ms":null,"reason":null}"#;
        assert_eq!(delivery_reports(&Bytes::from(one)).unwrap().len(), 1);
        let two = format!(" [{one},{}]", one.replace("delivered", "verified"));
        let reports = delivery_reports(&Bytes::from(two)).unwrap();
        assert_eq!(reports[1].state, crate::protocol::DeliveryState::Verified);
        for bad in ["[]".to_string(), format!("[{}]", vec![one; 65].join(","))] {
            let err = delivery_reports(&Bytes::from(bad)).unwrap_err().to_string();
            assert!(err.contains("send 1 to 64 per request"), "{err}");
        }
        let err = delivery_reports(&Bytes::from("[{\"state\":1}]")).unwrap_err().to_string();
        assert!(err.contains("list of delivery reports is not valid JSON"), "{err}");
    }
}
