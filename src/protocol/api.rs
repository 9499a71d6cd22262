//! The HTTP API's paths, query parameters and headers: one list both sides use, so a
//! route cannot be renamed on one side only. Every path starts with [`API_PREFIX`].

/// Version of the HTTP API; every path starts with `/api/v1`.
pub const API_PREFIX: &str = "/api/v1";

/// Station routes (a station token).
pub mod station {
    /// `GET`: the signed manifest; `?wait=S` long-polls with `If-None-Match`.
    pub const MANIFEST: &str = "/api/v1/station/manifest";
    /// `POST`: a heartbeat.
    pub const HEARTBEAT: &str = "/api/v1/station/heartbeat";
    /// `POST`: a batch of ledger records.
    pub const PLAYLOG: &str = "/api/v1/station/playlog";
    /// `GET`: the bulletin event stream (SSE), resumed after `Last-Event-ID`.
    pub const EVENTS: &str = "/api/v1/station/events";
    /// `GET`: the same events as JSON, `?after=N&wait=S`.
    pub const EVENTS_POLL: &str = "/api/v1/station/events/poll";
    /// `POST`: delivery reports of bulletins.
    pub const DELIVERY: &str = "/api/v1/station/bulletins/delivery";
}

/// Operator routes (an operator token).
pub mod operator {
    /// `PUT`: upload an audio file (`?title=`).
    pub const AUDIO_UPLOAD: &str = "/api/v1/audio";
    /// `GET /api/v1/library/{sha256}`: a library record.
    pub const LIBRARY: &str = "/api/v1/library";
    /// `POST`: load a schedule.
    pub const SCHEDULES: &str = "/api/v1/schedules";
    /// `POST`: start a live broadcast; `GET`: the newest broadcasts.
    pub const LIVE: &str = "/api/v1/live";
    /// `GET`: the fleet.
    pub const STATUS: &str = "/api/v1/status";
    /// `GET`: the playlog, a page at a time.
    pub const PLAYLOG: &str = "/api/v1/playlog";
    /// `GET`: the daily report (`?date=`).
    pub const REPORT: &str = "/api/v1/report";
    /// `POST`: push; `GET`: list; `GET …/{id}`: show; `POST …/{id}/cancel`,
    /// `POST …/{id}/approve`.
    pub const BULLETINS: &str = "/api/v1/bulletins";
    /// `POST`: a CAP document (admin or cap-source); `GET`: the alerts received.
    pub const CAP: &str = "/api/v1/cap";
    /// `GET`: the audit trail (admin).
    pub const AUDIT: &str = "/api/v1/audit";
}

/// Paths outside the versioned API.
pub mod paths {
    /// `GET`: Prometheus text (admin or viewer token; or `metrics_listen`).
    pub const METRICS: &str = "/metrics";
    /// `GET`: the open alerts (any operator; a district's own stations only).
    pub const ALERTS: &str = "/api/v1/alerts";
}

/// `GET /api/v1/audio/{sha256}` (station or operator): a file of the library, with
/// `Range` for resuming.
pub const AUDIO: &str = "/api/v1/audio";

/// The URL path of audio `sha256`.
pub fn audio_path(sha256: &str) -> String {
    format!("{AUDIO}/{sha256}")
}

/// The URL path of bulletin `id`.
pub fn bulletin_path(id: &str) -> String {
    format!("{}/{id}", operator::BULLETINS)
}

/// The URL path that cancels bulletin `id`.
pub fn bulletin_cancel_path(id: &str) -> String {
    format!("{}/{id}/cancel", operator::BULLETINS)
}

/// The URL path that approves bulletin `id`.
pub fn bulletin_approve_path(id: &str) -> String {
    format!("{}/{id}/approve", operator::BULLETINS)
}

/// The URL path of the library record of `sha256`.
pub fn library_path(sha256: &str) -> String {
    format!("{}/{sha256}", operator::LIBRARY)
}

/// Query parameters.
pub mod query {
    /// Long-poll: seconds to wait for a change.
    pub const WAIT: &str = "wait";
    /// Event poll: resume after this event number.
    pub const AFTER: &str = "after";
    /// Playlog page: records per page; its cursor travels as [`AFTER`] too.
    pub const LIMIT: &str = "limit";
}

/// Headers.
pub mod header {
    /// SSE resume point.
    pub const LAST_EVENT_ID: &str = "last-event-id";
    /// The next playlog page's cursor.
    pub const PLAYLOG_NEXT: &str = "x-loa-next-cursor";
}
