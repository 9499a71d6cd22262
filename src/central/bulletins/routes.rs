//! The bulletin routes: push and cancel (signed, then appended as events), list and show
//! (scoped to what a role may see), the stations' event stream and poll, and their
//! delivery reports.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::issue::{self, Actor, Draft};
use super::{Connected, StoredEvent, lock};
use crate::central::api::Routes;
use crate::central::auth::{
    admin_auth, operator_auth as operator, parse_json, peer, station_auth as station,
};
use crate::central::{ApiError, AppState};
use crate::protocol::{
    ApprovalState, BulletinEvent, BulletinEvents, BulletinInfo, DeliveryReport, DeliveryState,
    PushBulletinRequest, PushBulletinResponse, StationDelivery, Target,
};
use crate::store::{PendingBulletin, Role, Station};

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

/// The stations a push may reach under `role` (see the module docs).
pub fn resolve_targets(
    stations: Vec<Station>,
    role: &Role,
    to: &Target,
) -> Result<Vec<String>, ApiError> {
    match role {
        Role::Admin => {}
        Role::Viewer | Role::CapSource => {
            return Err(ApiError::Forbidden(format!("{role} tokens cannot push bulletins")));
        }
        Role::District(own) => {
            if matches!(to, Target::All) {
                return Err(ApiError::Forbidden(format!(
                    "district tokens cannot push to all stations: use --to district:{own}"
                )));
            }
            if let Target::District(name) = to
                && name != own
            {
                return Err(ApiError::Forbidden(format!(
                    "this token may push only to district {own:?}"
                )));
            }
        }
    }
    // A district token is answered as if its district were the whole province: the
    // same refusal for a station elsewhere as for one that does not exist, so nothing
    // about other districts' stations can be learnt from it.
    let visible: Vec<Station> = match role {
        Role::District(own) => stations.into_iter().filter(|s| &s.district == own).collect(),
        _ => stations,
    };
    let chosen: Vec<Station> = match to {
        Target::All => visible,
        Target::District(name) => {
            let chosen: Vec<Station> =
                visible.into_iter().filter(|s| &s.district == name).collect();
            if chosen.is_empty() {
                return Err(ApiError::NotFound(format!("no stations in district {name:?}")));
            }
            chosen
        }
        Target::Stations(ids) => {
            let mut chosen = Vec::new();
            for id in ids.iter().collect::<std::collections::BTreeSet<_>>() {
                let s = visible.iter().find(|s| &s.id == id).cloned().ok_or_else(|| {
                    let id = crate::protocol::text::printable(&crate::protocol::bounds::clip(id));
                    match role {
                        Role::District(own) => ApiError::Forbidden(format!(
                            "station {id:?} is not one of district {own:?}'s stations: this token may push only to them"
                        )),
                        _ => ApiError::NotFound(format!(
                            "no station {id:?}: see `loa status` for the list"
                        )),
                    }
                })?;
                chosen.push(s);
            }
            chosen
        }
    };
    if chosen.is_empty() {
        return Err(ApiError::NotFound(
            "no stations to push to: add one with `loa central station add`".into(),
        ));
    }
    Ok(chosen.into_iter().map(|s| s.id).collect())
}

/// Longest text a `--text` bulletin may have, in characters: about five minutes of
/// speech. A longer text is a mistake (or an attack: 52 KB of text made a 124 MB WAV
/// that every station then downloaded).
pub const MAX_TEXT_CHARS: usize = 4000;

/// The title of a bulletin pushed without one: the first words of its text.
fn title_from_text(text: &str) -> String {
    const WORDS: usize = 8;
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut title = words.iter().take(WORDS).copied().collect::<Vec<_>>().join(" ");
    if title.chars().count() > 60 {
        title = title.chars().take(60).collect::<String>().trim_end().to_string();
    }
    if words.len() > WORDS || title.chars().count() < words.join(" ").chars().count() {
        title.push('…');
    }
    title
}

/// Checks the numbers of a push request before anything is rendered or signed.
fn check_request(request: &PushBulletinRequest) -> Result<(), ApiError> {
    use crate::protocol::bounds::{
        MAX_BULLETIN_REPEAT, MAX_BULLETIN_VALIDITY_SECS, MAX_TITLE_CHARS, check_text,
    };
    if request.expires_secs == 0 || request.expires_secs > MAX_BULLETIN_VALIDITY_SECS {
        return Err(ApiError::BadRequest(format!(
            "expiry of {} s is out of range: give --expires between 1s and 7d",
            request.expires_secs
        )));
    }
    if request.repeat > MAX_BULLETIN_REPEAT {
        return Err(ApiError::BadRequest(format!(
            "--repeat {} is more than {MAX_BULLETIN_REPEAT}",
            request.repeat
        )));
    }
    if request.interval_secs > request.expires_secs {
        return Err(ApiError::BadRequest(format!(
            "--interval of {} s is longer than the bulletin is valid (--expires, {} s): \
             give an interval shorter than the expiry",
            request.interval_secs, request.expires_secs
        )));
    }
    if let Some(title) = &request.title {
        check_text("--title", title, MAX_TITLE_CHARS).map_err(ApiError::BadRequest)?;
    }
    if let Some(text) = &request.text {
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(ApiError::BadRequest(format!(
                "--text has {chars} characters: a spoken bulletin takes at most {MAX_TEXT_CHARS} \
                 (about five minutes); record a longer one and push it with --audio FILE"
            )));
        }
    }
    if let Some(voice) = &request.voice {
        let plain = voice.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_+".contains(&b));
        if voice.is_empty() || voice.len() > 40 || !plain {
            return Err(ApiError::BadRequest(format!(
                "voice {:?} is not an espeak-ng voice name (e.g. vi, en, km)",
                crate::protocol::bounds::clip(voice)
            )));
        }
    }
    Ok(())
}

async fn push(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let role = operator(&state, &headers)?;
    let actor = Actor::new(role.to_string(), peer(request.extensions()));
    let body =
        crate::central::body::read(request.into_body(), crate::central::body::PUSH_LIMIT).await?;
    let request: PushBulletinRequest = parse_json(&body, "bulletin push request")?;
    check_request(&request)?;
    let targets = resolve_targets(state.store.stations()?, &role, &request.to)?;
    let title = match (&request.title, &request.text) {
        (Some(title), _) => title.clone(),
        (None, Some(text)) => title_from_text(text),
        (None, None) => "bulletin".to_string(),
    };
    let audio = match (&request.audio_sha256, &request.text) {
        (Some(sha), None) => state.store.audio(sha)?.ok_or_else(|| {
            ApiError::BadRequest(format!(
                "audio sha256:{} is not in the library: upload it with `loa audio add`",
                crate::protocol::bounds::clip(sha)
            ))
        })?,
        (None, Some(text)) if !text.trim().is_empty() => {
            let voice = request.voice.as_deref().unwrap_or("vi");
            issue::speak(&state, text, voice, &title).await?
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of --audio FILE or --text TEXT (not empty)".into(),
            ));
        }
    };
    let now = state.clock.now();
    let draft = Draft {
        title,
        audio,
        targets: targets.clone(),
        to_all: request.to == Target::All,
        priority: request.priority,
        repeat: request.repeat,
        interval_secs: request.interval_secs,
        tone: request.tone,
        expires_at: now + chrono::Duration::seconds(request.expires_secs as i64),
    };
    let doc = draft.doc(now)?;
    issue::issue(&state, &doc, &targets, &role.to_string(), &actor).await?;
    Ok(axum::Json(PushBulletinResponse {
        id: doc.id,
        targets,
        audio_sha256: doc.audio_sha256,
        issued_at: doc.issued_at,
        expires_at: doc.expires_at,
    })
    .into_response())
}

/// The stations of `role`'s district, or `None` for a role that sees every station.
fn own_stations(state: &AppState, role: &Role) -> Result<Option<HashSet<String>>, ApiError> {
    match role {
        Role::District(own) => Ok(Some(
            state
                .store
                .stations()?
                .into_iter()
                .filter(|s| &s.district == own)
                .map(|s| s.id)
                .collect(),
        )),
        Role::Admin | Role::Viewer => Ok(None),
        Role::CapSource => Ok(Some(HashSet::new())),
    }
}

/// A bulletin `role` may see: a district token sees only bulletins that reach one of
/// its stations (and only those stations' rows); to it, any other does not exist.
fn visible_info(state: &AppState, role: &Role, id: &str) -> Result<BulletinInfo, ApiError> {
    let mut info = info(state, id)?;
    if let Some(own) = own_stations(state, role)? {
        if !info.doc.targets.iter().any(|t| own.contains(t)) {
            return Err(no_bulletin(id));
        }
        info.stations.retain(|s| own.contains(&s.station_id));
        info.doc.targets.retain(|t| own.contains(t));
    }
    Ok(info)
}

fn no_bulletin(id: &str) -> ApiError {
    let id = crate::protocol::text::printable(&crate::protocol::bounds::clip(id));
    ApiError::NotFound(format!("no bulletin {id:?}: `loa bulletin list`"))
}

/// Whether `role` may cancel a bulletin sent to `targets`.
fn may_touch(state: &AppState, role: &Role, targets: &[String]) -> Result<(), ApiError> {
    match role {
        Role::Admin => Ok(()),
        Role::Viewer | Role::CapSource => {
            Err(ApiError::Forbidden(format!("{role} tokens cannot cancel bulletins")))
        }
        Role::District(own) => {
            let mine = own_stations(state, role)?.unwrap_or_default();
            if targets.iter().all(|t| mine.contains(t)) {
                Ok(())
            } else {
                Err(ApiError::Forbidden(format!(
                    "this bulletin also reaches stations outside district {own:?}: only an admin may cancel it"
                )))
            }
        }
    }
}

async fn cancel(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let role = operator(&state, &headers)?;
    let actor = Actor::new(role.to_string(), peer(request.extensions()));
    // A district token learns nothing of a bulletin that reaches none of its stations.
    let before = visible_info(&state, &role, &id)?;
    let (targets, cancelled) = match state.bulletins.bulletin(&id)? {
        Some((doc, _, cancelled)) => (doc.targets, cancelled),
        None => (before.doc.targets.clone(), None),
    };
    may_touch(&state, &role, &targets)?;
    if let Some(at) = cancelled {
        return Err(ApiError::BadRequest(format!("bulletin {id} was already cancelled at {at}")));
    }
    if let Some(a) = &before.approval
        && a.state != ApprovalState::WaitingApproval
        && a.state != ApprovalState::Approved
    {
        return Err(ApiError::BadRequest(format!(
            "bulletin {id} was never sent ({}): there is nothing to cancel",
            a.state.as_str()
        )));
    }
    issue::cancel(&state, &id, &actor, "cancelled by an operator")?;
    Ok(axum::Json(visible_info(&state, &role, &id)?).into_response())
}

async fn approve(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let role = admin_auth(&state, &headers, "approve a bulletin")?;
    let actor = Actor::new(role.to_string(), peer(request.extensions()));
    issue::approve(&state, &id, &actor).await?;
    Ok(axum::Json(visible_info(&state, &role, &id)?).into_response())
}

/// A bulletin with every target station's state; one that needed approval with where
/// that stands (and, while it is not signed, no station state at all).
fn info(state: &AppState, id: &str) -> Result<BulletinInfo, ApiError> {
    let approval = state.store.pending(id)?;
    let Some((doc, issued_by, cancelled_at)) = state.bulletins.bulletin(id)? else {
        let pending = approval.ok_or_else(|| no_bulletin(id))?;
        return Ok(unsigned_info(pending));
    };
    let approval = approval.map(|p| p.approval);
    let mut per: BTreeMap<String, Vec<DeliveryReport>> = BTreeMap::new();
    for (station, report) in state.bulletins.deliveries(id)? {
        per.entry(station).or_default().push(report);
    }
    let beats: HashMap<String, DateTime<Utc>> =
        state.store.heartbeats()?.into_iter().map(|h| (h.station_id, h.received_at)).collect();
    let connected = lock(&state.bulletins.connected).clone();
    let contact = lock(&state.bulletins.contact).clone();
    let stations = doc
        .targets
        .iter()
        .map(|sid| {
            let reports = per.remove(sid).unwrap_or_default();
            let failed = reports.iter().find(|r| r.state == DeliveryState::Failed);
            let furthest = failed.or_else(|| reports.iter().max_by_key(|r| r.state));
            let latency_ms = reports
                .iter()
                .find(|r| r.state == DeliveryState::Started)
                .and_then(|r| r.latency_ms);
            let last_seen = match (beats.get(sid), contact.get(sid)) {
                (Some(a), Some(b)) => Some(*a.max(b)),
                (a, b) => a.or(b).copied(),
            };
            StationDelivery {
                station_id: sid.clone(),
                state: furthest.map(|r| r.state),
                at: furthest.map(|r| r.at),
                latency_ms,
                reason: furthest.and_then(|r| r.reason.clone()),
                connected: connected.contains_key(sid),
                last_seen,
            }
        })
        .collect();
    Ok(BulletinInfo { doc, cancelled_at, issued_by, stations, approval })
}

/// A bulletin not signed (waiting, or never approved): its targets, none reached.
fn unsigned_info(pending: PendingBulletin) -> BulletinInfo {
    let stations = pending
        .doc
        .targets
        .iter()
        .map(|sid| StationDelivery {
            station_id: sid.clone(),
            state: None,
            at: None,
            latency_ms: None,
            reason: None,
            connected: false,
            last_seen: None,
        })
        .collect();
    BulletinInfo {
        issued_by: pending.approval.requested_by.clone(),
        doc: pending.doc,
        cancelled_at: None,
        stations,
        approval: Some(pending.approval),
    }
}

/// Bulletins `loa bulletin list` shows when it does not say, newest first.
pub const LIST_DEFAULT: usize = 100;
/// Most bulletins one list may ask for.
pub const LIST_MAX: usize = 1000;

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
    let limit = query.limit.unwrap_or(LIST_DEFAULT);
    if limit == 0 || limit > LIST_MAX {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is out of range: list 1 to {LIST_MAX} bulletins"
        )));
    }
    // Signed bulletins newest first, and those never signed (waiting for approval, or
    // never approved) in their place by the time they were made.
    let unsigned: Vec<PendingBulletin> = state
        .store
        .pending_list(limit)?
        .into_iter()
        .filter(|p| p.approval.state != ApprovalState::Approved)
        .collect();
    let mut out: Vec<BulletinInfo> = Vec::new();
    for id in state.bulletins.bulletin_ids()?.iter().chain(unsigned.iter().map(|p| &p.doc.id)) {
        if out.len() == 2 * limit {
            break;
        }
        match visible_info(&state, &role, id) {
            Ok(info) => out.push(info),
            Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.doc.issued_at));
    out.truncate(limit);
    Ok(axum::Json(out).into_response())
}

async fn show(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
) -> Result<Response, ApiError> {
    let role = operator(&state, &headers)?;
    Ok(axum::Json(visible_info(&state, &role, &id)?).into_response())
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
/// database) closes the stream within this. One indexed lookup per stream each time.
pub const REAUTH_EVERY: Duration = Duration::from_secs(5);

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
    let changes = state.bulletins.latest.subscribe();
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
                    let still = self.state.store.station_by_token(&self.token);
                    if !matches!(&still, Ok(Some(s)) if s.id == self.guard.station) {
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
    let mut changes = state.bulletins.latest.subscribe();
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

    fn st(id: &str, district: &str) -> Station {
        Station { id: id.into(), name: id.into(), district: district.into() }
    }

    #[test]
    fn district_tokens_reach_only_their_own_stations() {
        let all = || vec![st("a", "tri-ton"), st("b", "tri-ton"), st("c", "tinh-bien")];
        let admin = resolve_targets(all(), &Role::Admin, &Target::All).unwrap();
        assert_eq!(admin, vec!["a", "b", "c"]);
        let own = Role::District("tri-ton".into());
        assert_eq!(
            resolve_targets(all(), &own, &Target::District("tri-ton".into())).unwrap(),
            vec!["a", "b"]
        );
        assert!(matches!(resolve_targets(all(), &own, &Target::All), Err(ApiError::Forbidden(_))));
        assert!(matches!(
            resolve_targets(all(), &own, &Target::Stations(vec!["c".into()])),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            resolve_targets(all(), &Role::Viewer, &Target::All),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            resolve_targets(all(), &Role::Admin, &Target::Stations(vec!["zz".into()])),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn delivery_bodies_are_one_report_or_a_bounded_list() {
        let one = r#"{"bulletin_id":"b-1","state":"delivered","at":"2026-12-01T05:00:00Z","latency_ms":null,"reason":null}"#;
        assert_eq!(delivery_reports(&Bytes::from(one)).unwrap().len(), 1);
        let two = format!(" [{one},{}]", one.replace("delivered", "verified"));
        let reports = delivery_reports(&Bytes::from(two)).unwrap();
        assert_eq!(reports[1].state, DeliveryState::Verified);
        for bad in ["[]".to_string(), format!("[{}]", vec![one; 65].join(","))] {
            let err = delivery_reports(&Bytes::from(bad)).unwrap_err().to_string();
            assert!(err.contains("send 1 to 64 per request"), "{err}");
        }
        let err = delivery_reports(&Bytes::from("[{\"state\":1}]")).unwrap_err().to_string();
        assert!(err.contains("list of delivery reports is not valid JSON"), "{err}");
    }
}
