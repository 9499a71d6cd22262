//! The operators' console: server-rendered pages (maud) with htmx for the parts that
//! update live, served by `loa central` on its listener (or alone on `console_listen`). One file per page; this one
//! holds the routes and what every page does first — find the session (else go to
//! `/login`), and for a POST read the form within its limit and check its CSRF token.
//!
//! Pages call the same functions the API does ([`super::bulletins::operate`],
//! `api::fleet_status`) with the same [`super::auth::Caller`], so a district account
//! sees and touches exactly what a district token does.

pub mod audio;
pub mod audit;
pub mod bulletins;
pub mod fleet;
pub mod layout;
pub mod live;
pub mod login;
pub mod playlog;
pub mod reports;
pub mod schedules;
pub mod session;
pub mod station;

use std::sync::Arc;

use axum::Router;
use axum::extract::Request;
use axum::http::{StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::de::DeserializeOwned;

use self::layout::{Frame, Lang};
use self::session::Session;
use super::AppState;

/// Forms with a few short fields (sign out, language, cancel, approve).
pub const SMALL_FORM: usize = super::body::LOGIN_LIMIT;

/// The console's routes (merged into central's router by `api::router`).
pub fn routes() -> Router<Arc<AppState>> {
    Router::new()
        .route("/", get(fleet::page))
        .route("/fleet/table", get(fleet::part))
        .route("/login", get(login::show).post(login::submit))
        .route("/logout", post(login::logout))
        .route("/lang", post(login::switch))
        .route("/bulletins", get(bulletins::page).post(bulletins::push))
        .route("/bulletins/{id}", get(bulletins::show))
        .route("/bulletins/{id}/board", get(bulletins::board_part))
        .route("/bulletins/{id}/cancel", post(bulletins::cancel))
        .route("/bulletins/{id}/approve", post(bulletins::approve))
        .route("/live", get(live::page))
        .route("/live/start", post(live::start))
        // The microphone's PCM, read within its own bound (`live::audio`).
        .route(
            "/live/{id}/audio",
            post(live::audio).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/live/{id}/stop", post(live::stop))
        .route("/audit", get(audit::page))
        .route("/playlog", get(playlog::page))
        .route("/reports", get(reports::page))
        .route("/audio", get(audio::page))
        .route(
            "/audio/upload",
            axum::routing::put(audio::upload).layer(axum::extract::DefaultBodyLimit::disable()),
        )
        .route("/audio/{sha256}/file", get(audio::file))
        .route("/schedules", get(schedules::page).post(schedules::submit))
        .route("/stations/{id}", get(station::page))
        .route("/assets/{file}", get(asset))
        .layer(tower_http::compression::CompressionLayer::new().gzip(true).compress_when(text_only))
}

/// Only text (pages, CSS, scripts, CSV) is gzipped: never audio (played with Range).
fn text_only(
    _: StatusCode,
    _: axum::http::Version,
    headers: &axum::http::HeaderMap,
    _: &axum::http::Extensions,
) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|t| t.starts_with("text/"))
}

/// The console alone, for its own listener (`console_listen`): the same plain-HTTP
/// refusal and request counter as the main listener.
pub fn router(state: Arc<AppState>) -> Router {
    routes()
        .layer(axum::middleware::from_fn_with_state(state.clone(), super::metrics::count))
        .layer(axum::middleware::from_fn_with_state(state.clone(), super::api::refuse_plain_http))
        .with_state(state)
}

async fn asset(uri: Uri) -> Response {
    layout::asset(uri.path())
}

/// A `303 See Other` to `to`.
pub fn see_other(to: &str) -> Response {
    (StatusCode::SEE_OTHER, [(header::LOCATION, to.to_string())]).into_response()
}

/// A form with no fields but the CSRF token.
#[derive(Debug, serde::Deserialize)]
pub struct NoFields {}

/// The session of a page request, or the answer that sends the browser to sign in.
// The error is the answer a handler returns at once (a redirect or a page): boxing it
// would only add a `*` at every call site.
#[allow(clippy::result_large_err)]
pub fn viewer(state: &AppState, request: &Request) -> Result<(Session, Lang), Response> {
    let lang = Lang::of(request.headers());
    match session::current(state, request.headers(), request.extensions()) {
        Ok(Some(s)) => Ok((s, lang)),
        Ok(None) => Err(see_other("/login")),
        Err(e) => Err(layout::answer(
            e.status(),
            layout::bare(lang, "loa", layout::error_box(&e.to_string())),
        )),
    }
}

/// A POSTed form: the session (else to `/login`), the body within `limit` bytes, its
/// CSRF token (the `csrf` field, or htmx's `x-csrf-token` header) checked before the
/// fields are looked at, then the fields as `T`.
#[allow(clippy::result_large_err)]
pub async fn posted<T: DeserializeOwned>(
    state: &AppState,
    request: Request,
    limit: usize,
) -> Result<(Session, Lang, T), Response> {
    let (session, lang) = viewer(state, &request)?;
    let header_token =
        request.headers().get("x-csrf-token").and_then(|v| v.to_str().ok()).map(str::to_string);
    let refuse = |status: StatusCode, message: &str| {
        let frame = Frame { state, session: &session, lang };
        layout::error_page(&frame, status, message)
    };
    let body = match super::body::read(request.into_body(), limit).await {
        Ok(b) => b,
        Err(e) => return Err(refuse(e.status(), &e.to_string())),
    };
    let pairs: Vec<(String, String)> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let field_token = pairs.iter().find(|(k, _)| k == "csrf").map(|(_, v)| v.clone());
    if !session::csrf_ok(&session, field_token.as_deref().or(header_token.as_deref())) {
        tracing::warn!(user = %session.user.name, "console form refused: missing or wrong CSRF token");
        return Err(refuse(
            StatusCode::FORBIDDEN,
            lang.t(
                "Biểu mẫu thiếu mã bảo vệ (CSRF) hoặc mã sai: hãy tải lại trang rồi gửi lại.",
                "The form's protection token (CSRF) is missing or wrong: reload the page and send it again.",
            ),
        ));
    }
    let fields: Vec<(String, String)> = pairs.into_iter().filter(|(k, _)| k != "csrf").collect();
    let encoded = serde_urlencoded::to_string(&fields).unwrap_or_default();
    match serde_urlencoded::from_str::<T>(&encoded) {
        Ok(form) => Ok((session, lang, form)),
        Err(e) => {
            let message =
                format!("{}: {e}", lang.t("Biểu mẫu không hợp lệ", "The form is not valid"));
            Err(refuse(StatusCode::BAD_REQUEST, &message))
        }
    }
}

/// An [`super::ApiError`] from a shared function, as a page in the frame: what kind of
/// refusal in the page's language, then the shared function's own words (English).
pub fn refused(frame: &Frame<'_>, e: &super::ApiError) -> Response {
    let l = frame.lang;
    let status = e.status();
    let kind = match status {
        StatusCode::FORBIDDEN => {
            l.t("Tài khoản này không được phép làm việc đó.", "This account may not do that.")
        }
        StatusCode::NOT_FOUND => l.t(
            "Không tìm thấy (hoặc tài khoản này không được xem).",
            "Not found (or not visible to this account).",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            l.t("Dữ liệu gửi lên quá lớn.", "What was sent is too large.")
        }
        s if s.is_server_error() => {
            l.t("Máy chủ gặp lỗi; không có gì thay đổi.", "Central failed; nothing changed.")
        }
        _ => l.t(
            "Yêu cầu không hợp lệ; không có gì thay đổi.",
            "The request is not valid; nothing changed.",
        ),
    };
    let body = maud::html! { p.error role="alert" { strong { (kind) } br; (e.to_string()) } };
    layout::answer(
        status,
        layout::page(frame, l.t("Không thực hiện được", "Could not be done"), body),
    )
}
