//! The HTTP routes. Station routes authenticate a station token; operator routes an
//! operator token and check its role. Bodies are parsed here (not by extractors) so a
//! malformed request gets the same clear JSON error as every other refusal.

use std::collections::{BTreeMap, BTreeSet};
use std::io::SeekFrom;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::handler::Handler;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodFilter, MethodRouter, on};
use serde::Deserialize;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::auth::{operator_auth, parse_json, station_auth};
use super::library;
use super::{ApiError, AppState, manifest};
use crate::protocol::{
    FleetStatus, Heartbeat, HeartbeatAck, LoadScheduleRequest, LoadScheduleResponse, StationStatus,
    Target,
};
use crate::schedule::Layer;
use crate::store::{Role, Station, StoredHeartbeat, StoredSchedule};

/// Longest a manifest long-poll may wait.
const MAX_WAIT: Duration = Duration::from_secs(60);
/// JSON bodies (schedules, heartbeats) are small.
const JSON_LIMIT: usize = 2 * 1024 * 1024;

/// Every route of the API, registered through [`Routes`] so the list of them comes from
/// the very code that builds the router.
fn routes() -> Routes {
    Routes::new()
        .get("/api/v1/station/manifest", get_manifest)
        .post("/api/v1/station/heartbeat", post_heartbeat)
        .get("/api/v1/audio/{sha256}", get_audio)
        .get("/api/v1/library/{sha256}", get_library_entry)
        .route_with(Verb::Put, "/api/v1/audio", put_audio, |r| r.layer(DefaultBodyLimit::disable()))
        .post("/api/v1/schedules", post_schedule)
        .get("/api/v1/status", get_status)
        .merge(super::bulletins::routes())
        .merge(super::live::routes())
        .merge(super::cap::routes())
        .merge(super::playlog::routes())
        .merge(super::enrol::routes())
        .merge(super::metrics::routes())
        .merge(super::alerts::routes())
}

/// The API under `/api/v1`, and the console unless it has a listener of its own
/// (`console_listen`, served by `console::router`).
pub fn router(state: Arc<AppState>) -> Router {
    let console = if state.config.console_listen.is_none() {
        super::console::routes()
    } else {
        Router::new()
    };
    routes()
        .router
        .merge(console)
        .layer(DefaultBodyLimit::max(JSON_LIMIT))
        .layer(axum::middleware::from_fn_with_state(state.clone(), super::metrics::count))
        .layer(axum::middleware::from_fn_with_state(state.clone(), refuse_plain_http))
        .with_state(state)
}

/// Every (method, path) [`router`] serves, in the order it registers them (a GET route
/// also answers HEAD, as axum does).
pub fn route_list() -> Vec<(&'static str, &'static str)> {
    routes().list
}

/// An HTTP method a route is registered for.
#[derive(Debug, Clone, Copy)]
pub enum Verb {
    Get,
    Post,
    Put,
}

impl Verb {
    fn name(self) -> &'static str {
        match self {
            Verb::Get => "GET",
            Verb::Post => "POST",
            Verb::Put => "PUT",
        }
    }

    fn filter(self) -> MethodFilter {
        match self {
            Verb::Get => MethodFilter::GET,
            Verb::Post => MethodFilter::POST,
            Verb::Put => MethodFilter::PUT,
        }
    }
}

/// The router being built, and each (method, path) as it is added: the route list
/// cannot miss a route the router serves.
pub struct Routes {
    router: Router<Arc<AppState>>,
    list: Vec<(&'static str, &'static str)>,
}

impl Routes {
    pub fn new() -> Self {
        Self { router: Router::new(), list: Vec::new() }
    }

    pub fn get<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        self.route_with(Verb::Get, path, handler, |r| r)
    }

    pub fn post<H, T>(self, path: &'static str, handler: H) -> Self
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        self.route_with(Verb::Post, path, handler, |r| r)
    }

    /// `handler` for `verb` at `path`, through `adjust` (a layer for this route only).
    pub fn route_with<H, T>(
        mut self,
        verb: Verb,
        path: &'static str,
        handler: H,
        adjust: impl FnOnce(MethodRouter<Arc<AppState>>) -> MethodRouter<Arc<AppState>>,
    ) -> Self
    where
        H: Handler<T, Arc<AppState>>,
        T: 'static,
    {
        self.router = self.router.route(path, adjust(on(verb.filter(), handler)));
        self.list.push((verb.name(), path));
        self
    }

    pub fn merge(mut self, other: Routes) -> Self {
        self.router = self.router.merge(other.router);
        self.list.extend(other.list);
        self
    }
}

/// Refuses every route over plain HTTP from another machine unless `allow_plain_http`:
/// a token sniffed on the provincial network would let anyone have central sign an
/// emergency for every station. This machine (loopback) may use plain HTTP.
pub(super) async fn refuse_plain_http(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let plain_remote = request
        .extensions()
        .get::<super::server::Connection>()
        .is_some_and(|c| !c.tls && !c.is_local());
    if plain_remote && !state.config.allow_plain_http {
        return ApiError::Forbidden(
            "central refuses plain HTTP from other machines (tokens would cross the network in clear): \
             use https:// with the CA from `loa central init --host NAME`, or set allow_plain_http = true in central.toml"
                .into(),
        )
        .into_response();
    }
    next.run(request).await
}

/// Audio is named by sha256 only: this is what keeps request paths out of the file
/// system (no `..`, no slashes).
fn valid_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[derive(Debug, Deserialize)]
struct WaitQuery {
    /// Seconds to hold the request open when the station already has the latest version.
    wait: Option<u64>,
}

fn etag(version: u64) -> String {
    format!("\"v{version}\"")
}

async fn get_manifest(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<WaitQuery>,
) -> Result<Response, ApiError> {
    let station = station_auth(&state, &headers)?;
    let known = headers.get(header::IF_NONE_MATCH).and_then(|v| v.to_str().ok()).map(String::from);
    let wait = Duration::from_secs(query.wait.unwrap_or(0)).min(MAX_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    // Only a request that may wait holds a place (see `streams`).
    let mut slot = if wait.is_zero() {
        None
    } else {
        Some(state.streams.open(&station.id, super::streams::Kind::LongPoll)?)
    };
    let mut changes = state.watch_station(&station.id);
    loop {
        let current = manifest::current(&state, &station.id).await?;
        let tag = etag(current.version);
        if known.as_deref() != Some(tag.as_str()) {
            let body = serde_json::to_vec(&current.envelope)
                .map_err(|e| ApiError::Internal(e.to_string()))?;
            return Ok((
                StatusCode::OK,
                [(header::ETAG, tag), (header::CONTENT_TYPE, "application/json".into())],
                body,
            )
                .into_response());
        }
        // Wait for a new version for this station, the deadline, or a newer request of
        // the same station taking this one's place.
        let closed = async {
            match slot.as_mut() {
                Some(slot) => slot.closed().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            changed = tokio::time::timeout_at(deadline, changes.changed()) => {
                if matches!(changed, Ok(Ok(()))) {
                    continue;
                }
            }
            () = closed => {}
        }
        return Ok((StatusCode::NOT_MODIFIED, [(header::ETAG, tag)]).into_response());
    }
}

async fn post_heartbeat(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let station = station_auth(&state, &headers)?;
    let body = super::body::read(body, super::body::HEARTBEAT_LIMIT).await?;
    let mut heartbeat: Heartbeat = parse_json(&body, "heartbeat")?;
    heartbeat.sanitise();
    let now = state.clock.now();
    state.store.put_heartbeat(&StoredHeartbeat {
        station_id: station.id,
        received_at: now,
        heartbeat,
    })?;
    Ok(axum::Json(HeartbeatAck { server_time: state.clock.now() }).into_response())
}

/// Parses `bytes=START-` or `bytes=START-END` (one range; that is all stations send).
fn parse_range(value: &str, size: u64) -> Result<(u64, u64), ApiError> {
    let bad = || ApiError::Range { size };
    let spec = value.trim().strip_prefix("bytes=").ok_or_else(bad)?;
    let (start, end) = spec.split_once('-').ok_or_else(bad)?;
    let start: u64 = start.trim().parse().map_err(|_| bad())?;
    let end: u64 = if end.trim().is_empty() {
        size.saturating_sub(1)
    } else {
        end.trim().parse::<u64>().map_err(|_| bad())?.min(size.saturating_sub(1))
    };
    if start >= size || end < start {
        return Err(bad());
    }
    Ok((start, end))
}

async fn get_audio(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(sha256): Path<String>,
) -> Result<Response, ApiError> {
    if station_auth(&state, &headers).is_err() {
        operator_auth(&state, &headers)?;
    }
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    audio_file(&state, &sha256, range).await
}

/// A library file (or a live bulletin's audio from memory), with HTTP Range: what
/// stations download and the console's players play.
pub async fn audio_file(
    state: &AppState,
    sha256: &str,
    range: Option<&str>,
) -> Result<Response, ApiError> {
    let sha256 = sha256.to_string();
    if !valid_sha256(&sha256) {
        return Err(ApiError::BadRequest(format!(
            "{sha256:?} is not a sha256: audio is named by 64 lowercase hex digits"
        )));
    }
    if let Some(bytes) = state.hot_audio.get(&sha256) {
        return hot_audio_response(bytes, range);
    }
    let Some(path) = state.audio.local(&sha256).await? else {
        return Err(ApiError::NotFound(format!("no audio sha256:{sha256} in the library")));
    };
    let mut file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(ApiError::NotFound(format!("no audio sha256:{sha256} in the library")));
        }
        Err(e) => return Err(e.into()),
    };
    let size = file.metadata().await?.len();
    let (status, start, end, length) = response_range(range, size)?;
    file.seek(SeekFrom::Start(start)).await?;
    let stream = futures_util::stream::unfold((file, length), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buffer = vec![0u8; (64 * 1024).min(left as usize)];
        match file.read(&mut buffer).await {
            Ok(0) => None,
            Ok(n) => {
                buffer.truncate(n);
                Some((Ok::<_, std::io::Error>(Bytes::from(buffer)), (file, left - n as u64)))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    Ok(audio_response(Body::from_stream(stream), status, start, end, length, size))
}

/// The status and the inclusive byte span answering `range` (none: the whole file), and
/// the body's length.
fn response_range(range: Option<&str>, size: u64) -> Result<(StatusCode, u64, u64, u64), ApiError> {
    let (status, start, end) = match range {
        Some(value) => {
            let (start, end) = parse_range(value, size)?;
            (StatusCode::PARTIAL_CONTENT, start, end)
        }
        None => (StatusCode::OK, 0, size.saturating_sub(1)),
    };
    let length = if size == 0 { 0 } else { end - start + 1 };
    Ok((status, start, end, length))
}

/// A live bulletin's audio, from memory (see [`super::hot_audio`]).
fn hot_audio_response(bytes: Bytes, range: Option<&str>) -> Result<Response, ApiError> {
    let size = bytes.len() as u64;
    let (status, start, end, length) = response_range(range, size)?;
    let body = if length == 0 { Bytes::new() } else { bytes.slice(start as usize..=end as usize) };
    Ok(audio_response(Body::from(body), status, start, end, length, size))
}

fn audio_response(
    body: Body,
    status: StatusCode,
    start: u64,
    end: u64,
    length: u64,
    size: u64,
) -> Response {
    let mut response = Response::new(body);
    *response.status_mut() = status;
    let h = response.headers_mut();
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(length));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/octet-stream"));
    if status == StatusCode::PARTIAL_CONTENT
        && let Ok(v) = HeaderValue::from_str(&format!("bytes {start}-{end}/{size}"))
    {
        h.insert(header::CONTENT_RANGE, v);
    }
    response
}

async fn get_library_entry(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Path(sha256): Path<String>,
) -> Result<Response, ApiError> {
    operator_auth(&state, &headers)?;
    if !valid_sha256(&sha256) {
        return Err(ApiError::BadRequest(format!(
            "{sha256:?} is not a sha256: audio is named by 64 lowercase hex digits"
        )));
    }
    let info = state
        .store
        .audio(&sha256)?
        .ok_or_else(|| ApiError::NotFound(format!("no audio sha256:{sha256} in the library")))?;
    Ok(axum::Json(info).into_response())
}

#[derive(Debug, Deserialize)]
struct UploadQuery {
    title: Option<String>,
    /// The file's name on the client (`loa audio add` sends it): what errors call it.
    name: Option<String>,
    /// Store a truncated or partly corrupt file anyway (`--accept-damaged`).
    #[serde(default)]
    accept_damaged: bool,
}

/// What an upload is called in answers: the client's file name (its last component,
/// printable, at most 100 characters), else `upload`. Never central's temporary path.
fn upload_name(name: Option<&str>) -> String {
    let name = name
        .and_then(|n| n.rsplit(['/', '\\']).next())
        .map(|n| crate::protocol::text::printable(n.trim()))
        .filter(|n| !n.is_empty() && n != "." && n != "..")
        .unwrap_or_else(|| "upload".to_string());
    name.chars().take(100).collect()
}

async fn put_audio(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    Query(query): Query<UploadQuery>,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let caller = super::auth::operator_caller(&state, &headers, request.extensions())?;
    let limit = state.config.upload_limit_bytes();
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(ApiError::TooLarge { limit });
    }
    let mut stream = request.into_body().into_data_stream();
    let upload = library::Upload {
        name: upload_name(query.name.as_deref()),
        title: query.title,
        accept_damaged: query.accept_damaged,
    };
    let stored = library::receive(&state, &caller, upload, &mut stream, limit).await?;
    Ok(axum::Json(stored).into_response())
}

/// File names travel as labels only, but a name with a path in it is a sign of a
/// confused or malicious client: refuse it.
fn valid_origin(origin: &str) -> bool {
    !origin.is_empty()
        && origin.len() <= 255
        && !origin.contains(['/', '\\'])
        && origin != "."
        && origin != ".."
        && !origin.chars().any(char::is_control)
}

async fn post_schedule(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    request: axum::extract::Request,
) -> Result<Response, ApiError> {
    let caller = super::auth::operator_caller(&state, &headers, request.extensions())?;
    let body = super::body::read(request.into_body(), super::body::SCHEDULE_LIMIT).await?;
    let request: LoadScheduleRequest = parse_json(&body, "schedule load request")?;
    let loaded = load_schedule(&state, &caller, request).await?;
    Ok(axum::Json(loaded).into_response())
}

/// Loads a schedule for `caller`, whichever door they came in by (`POST
/// /api/v1/schedules`, the console's form): checked as `loa schedule check` does, sent
/// only where the role may send it, each station's manifest issued, one audit line.
pub async fn load_schedule(
    state: &Arc<AppState>,
    caller: &super::auth::Caller,
    request: LoadScheduleRequest,
) -> Result<LoadScheduleResponse, ApiError> {
    let role = &caller.role;
    if *role == Role::Viewer {
        return Err(ApiError::Forbidden("viewer tokens cannot load schedules".into()));
    }
    if !valid_origin(&request.origin) {
        return Err(ApiError::BadRequest(format!(
            "schedule name {:?} must be a plain file name (no folders)",
            request.origin
        )));
    }
    for (written, sha) in &request.audio {
        if !valid_sha256(sha) {
            return Err(ApiError::BadRequest(format!(
                "audio {written:?} maps to {sha:?}, which is not a sha256"
            )));
        }
    }
    let schedule =
        manifest::check_schedule(&request.source, &request.origin).map_err(ApiError::Schedule)?;
    let refused = super::relay_hosts::refused(&schedule, &state.config.relay_hosts);
    if !refused.is_empty() {
        return Err(ApiError::Schedule(refused));
    }

    // Who may send this where is decided before anything about its content is judged.
    let stations = resolve_target(state, role, &request.to, schedule.layer)?;
    let needed = manifest::resolve_audio(&schedule, &request.audio)
        .map_err(|d| ApiError::Schedule(vec![d]))?;
    for sha in needed.iter().collect::<BTreeSet<_>>() {
        if state.store.audio(sha)?.is_none() {
            return Err(ApiError::BadRequest(format!(
                "audio sha256:{sha} is not in the library: upload it with `loa audio add`"
            )));
        }
    }
    let stored = StoredSchedule {
        id: 0,
        origin: request.origin.clone(),
        layer: schedule.layer,
        source: request.source,
        audio: request.audio,
        loaded_at: state.clock.now(),
    };
    let ids: Vec<String> = stations.iter().map(|s| s.id.clone()).collect();
    let schedule_id = state.store.load_schedule(&stored, &ids, &caller.who)?;
    let mut versions = BTreeMap::new();
    for id in ids {
        let issued = manifest::issue(state, &id).await?;
        versions.insert(id, issued.version);
    }
    tracing::info!(schedule_id, origin = stored.origin, by = %caller.who, "schedule loaded");
    super::bulletins::issue::audit(
        state,
        &caller.actor(),
        "schedule.load",
        &format!("schedule {schedule_id}"),
        format!(
            "{} ({}) to {} station(s): {}",
            stored.origin,
            if stored.layer == Layer::Local { "local" } else { "provincial" },
            versions.len(),
            versions.keys().cloned().collect::<Vec<_>>().join(", ")
        ),
    );
    Ok(LoadScheduleResponse { schedule_id, stations: versions })
}

/// The stations a load goes to, after checking the role may reach every one of them.
fn resolve_target(
    state: &AppState,
    role: &Role,
    to: &Target,
    layer: Layer,
) -> Result<Vec<Station>, ApiError> {
    let all = state.store.stations()?;
    let chosen: Vec<Station> = match to {
        Target::All => all,
        Target::District(name) => {
            let chosen: Vec<Station> = all
                .into_iter()
                .filter(|s| crate::protocol::area::within(&s.district, name))
                .collect();
            if chosen.is_empty() {
                return Err(ApiError::NotFound(format!("no stations in district {name:?}")));
            }
            chosen
        }
        Target::Stations(ids) => {
            let mut chosen = Vec::new();
            let unique: BTreeSet<&String> = ids.iter().collect();
            for id in unique {
                let station = all.iter().find(|s| &s.id == id).cloned().ok_or_else(|| {
                    ApiError::NotFound(format!("no station {id:?}: see `loa status` for the list"))
                })?;
                chosen.push(station);
            }
            chosen
        }
    };
    if let Role::District(own) = role {
        if layer != Layer::Local {
            return Err(ApiError::Forbidden(format!(
                "district tokens may load only layer = \"local\" schedules; this one is {layer:?}"
            )));
        }
        if matches!(to, Target::All) {
            return Err(ApiError::Forbidden(format!(
                "district tokens cannot target all stations: use --to district:{own}"
            )));
        }
        if let Some(other) = chosen.iter().find(|s| !role.sees(s)) {
            return Err(ApiError::Forbidden(format!(
                "station {:?} is in district {:?}; this token may assign only to district {own:?}",
                other.id, other.district
            )));
        }
    }
    Ok(chosen)
}

async fn get_status(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let role = operator_auth(&state, &headers)?;
    Ok(axum::Json(fleet_status(&state, &role)?).into_response())
}

/// The fleet `role` may see, as `loa status`, `/metrics` and the console's fleet page
/// show it.
pub fn fleet_status(state: &AppState, role: &Role) -> Result<FleetStatus, ApiError> {
    let heartbeats: BTreeMap<String, StoredHeartbeat> =
        state.store.heartbeats()?.into_iter().map(|h| (h.station_id.clone(), h)).collect();
    let mut stations = Vec::new();
    for s in state.store.stations()? {
        if !role.sees(&s) {
            continue;
        }
        let issued_version = state.store.latest_manifest(&s.id)?.map(|m| m.version);
        let beat = heartbeats.get(&s.id);
        let playlog = state.store.playlog_summary(&s.id)?;
        stations.push(StationStatus {
            id: s.id,
            name: s.name,
            district: s.district,
            issued_version,
            last_seen: beat.map(|b| b.received_at),
            heartbeat: beat.map(|b| b.heartbeat.clone()),
            playlog,
        });
    }
    Ok(FleetStatus { server_time: state.clock.now(), stations })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_upload_is_named_as_the_client_named_it_never_by_a_path() {
        assert_eq!(upload_name(Some("ban-tin.mp3")), "ban-tin.mp3");
        assert_eq!(upload_name(Some("/var/lib/loa/x.ogg")), "x.ogg");
        assert_eq!(upload_name(Some("C:\\audio\\x.ogg")), "x.ogg");
        assert_eq!(upload_name(Some("a\u{1b}[2J.mp3")), "a\u{FFFD}[2J.mp3");
        for nothing in [None, Some(""), Some(".."), Some("dir/")] {
            assert_eq!(upload_name(nothing), "upload", "{nothing:?}");
        }
        assert_eq!(upload_name(Some(&"x".repeat(500))).chars().count(), 100);
    }

    #[test]
    fn ranges_parse_and_refuse_nonsense() {
        assert_eq!(parse_range("bytes=0-", 10).unwrap(), (0, 9));
        assert_eq!(parse_range("bytes=4-6", 10).unwrap(), (4, 6));
        assert_eq!(parse_range("bytes=4-100", 10).unwrap(), (4, 9));
        for bad in ["bytes=10-", "bytes=5-4", "items=0-", "bytes=a-"] {
            assert!(parse_range(bad, 10).is_err(), "{bad}");
        }
    }

    #[tokio::test]
    async fn hot_audio_answers_ranges_like_the_disk_path() {
        let audio = Bytes::from_static(b"0123456789");
        let whole = hot_audio_response(audio.clone(), None).unwrap();
        assert_eq!(whole.status(), StatusCode::OK);
        assert_eq!(whole.headers()[header::CONTENT_LENGTH], "10");
        let body = axum::body::to_bytes(whole.into_body(), 100).await.unwrap();
        assert_eq!(&body[..], b"0123456789");

        let tail = hot_audio_response(audio.clone(), Some("bytes=4-")).unwrap();
        assert_eq!(tail.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(tail.headers()[header::CONTENT_RANGE], "bytes 4-9/10");
        assert_eq!(tail.headers()[header::CONTENT_LENGTH], "6");
        let body = axum::body::to_bytes(tail.into_body(), 100).await.unwrap();
        assert_eq!(&body[..], b"456789");

        assert!(matches!(
            hot_audio_response(audio, Some("bytes=10-")),
            Err(ApiError::Range { size: 10 })
        ));
    }

    #[test]
    fn names_with_paths_are_refused() {
        assert!(valid_origin("provincial.toml"));
        for bad in ["../x.toml", "a/b.toml", "..", "a\\b", "x\n"] {
            assert!(!valid_origin(bad), "{bad:?}");
        }
        assert!(!valid_sha256("../../etc/passwd"));
        assert!(!valid_sha256(&"A".repeat(64)));
        assert!(valid_sha256(&"a".repeat(64)));
    }
}
