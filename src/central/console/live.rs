//! `/live` ("Nói trực tiếp", linked from `/bulletins`): speak to the stations from the
//! browser's microphone. The page (targets and priority as the bulletin form offers
//! them) and its script (`assets/live.js`, `assets/live-worklet.js`): the microphone is
//! opened first, then `POST /live/start` starts the broadcast through
//! [`pcm::start`] — [`crate::central::live::begin`] with the person's
//! [`Caller`], the same checks, store row and `live.start` audit line as `loa live` —
//! then the PCM goes in 200 ms POSTs (`/live/{id}/audio?seq=N`, [`pcm::Feed::feed`])
//! until the stop button (`/live/{id}/stop`). Each POST carries the session's CSRF
//! token in `x-csrf-token`, checked before its body is read; a broadcast is fed and
//! stopped only by the person who started it (anyone else: 404).
//!
//! [`Caller`]: crate::central::auth::Caller

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{self, Frame, Lang, answer};
use crate::central::live::pcm::{self, MAX_PCM_BYTES};
use crate::central::{ApiError, AppState};
use crate::protocol::live::StartLiveRequest;
use crate::protocol::{BulletinPriority, Target};
use crate::store::Role;

/// The start form's fields.
#[derive(Debug, Deserialize)]
pub struct StartForm {
    #[serde(default)]
    title: String,
    /// `all`, `district:AREA`, or station ids separated by commas.
    to: String,
    priority: BulletinPriority,
}

pub async fn page(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (session, lang) = match super::viewer(&state, &request) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let frame = Frame { state: &state, session: &session, lang };
    let l = lang;
    let title = l.t("Nói trực tiếp", "Speak live");
    if session.caller.role == Role::Viewer {
        let e = ApiError::Forbidden("viewer accounts cannot start a live broadcast".into());
        return super::refused(&frame, &e);
    }
    let choices = match super::bulletins::targets(&frame) {
        Ok(c) => c,
        Err(e) => return super::refused(&frame, &e),
    };
    let body = html! {
        p.muted { (l.t(
            "Trình duyệt thu micrô và gửi tới trung tâm; các trạm được chọn phát ngay theo mức đã chọn, chậm khoảng 2 giây. Bấm “Dừng” để kết thúc.",
            "The browser records the microphone and sends it to central; the chosen stations play it at once at the chosen priority, about 2 s behind. Press “Stop” to end it."
        )) }
        form.stack #live method="post" action="/live/start" data-live data-worklet=(layout::LIVE_WORKLET_PATH) {
            (frame.csrf())
            label { (l.t("Tiêu đề", "Title"))
                input type="text" name="title" maxlength="200" value=(l.t("Thông báo trực tiếp", "Live announcement")); }
            div.row {
                label { (l.t("Gửi đến", "To"))
                    select name="to" required {
                        @for (value, shown) in &choices { option value=(value) { (shown) } }
                    }
                }
                label { (l.t("Mức", "Priority"))
                    select name="priority" {
                        option value="emergency" selected { (l.t("khẩn cấp", "emergency")) }
                        option value="priority" { (l.t("ưu tiên", "priority")) }
                    }
                }
            }
            div.row {
                button.danger #live-start type="submit" { (l.t("Bắt đầu nói", "Start speaking")) }
                button #live-stop type="button" disabled { (l.t("Dừng", "Stop")) }
            }
            p #live-state role="status" aria-live="polite" data-idle=(l.t("Chưa phát.", "Not on air.")) {
                (l.t("Chưa phát.", "Not on air."))
            }
            p.error #live-error role="alert" hidden {}
            noscript { p.error { (l.t("Cần bật JavaScript để nói trực tiếp.", "Speaking live needs JavaScript.")) } }
        }
        // The page's words for the script, in the page's language.
        template #live-words
            data-asking=(l.t("Đang mở micrô…", "Opening the microphone…"))
            data-starting=(l.t("Đang bắt đầu…", "Starting…"))
            data-on-air=(l.t("ĐANG PHÁT TRỰC TIẾP", "ON AIR"))
            data-stations=(l.t("trạm", "stations"))
            data-stopping=(l.t("Đang dừng…", "Stopping…"))
            data-ended=(l.t("Đã kết thúc", "Ended"))
            data-cut=(l.t("Trung tâm đã ngắt buổi phát", "Central cut the broadcast"))
            data-no-mic=(l.t("Không mở được micrô (hãy cho phép trình duyệt dùng micrô, và dùng HTTPS)", "The microphone could not be opened (allow the browser to use it, and use HTTPS)"))
            data-signin=(l.t("Phiên đăng nhập đã hết: hãy đăng nhập lại", "The session has ended: sign in again"))
            data-network=(l.t("Mất kết nối tới trung tâm", "Lost the connection to central"))
            data-dropped=(l.t("giây âm thanh bị bỏ vì mạng chậm", "s of audio dropped: the network was slow"))
            data-seconds=(l.t("giây", "s"))
            data-comma=(l.t(",", ".")) {}
        script src=(layout::LIVE_JS_PATH) defer {}
        p { a href="/bulletins" { (l.t("← Bản tin khẩn", "← Bulletins")) } }
    };
    answer(StatusCode::OK, layout::page(&frame, title, body))
}

/// A short answer for the script: JSON on success, plain text (the page's language
/// first, then the shared check's own words) on refusal.
fn text(status: StatusCode, message: String) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8"), (header::CACHE_CONTROL, "no-store")],
        message,
    )
        .into_response()
}

/// What kind of refusal `e` is, in `l`, then its own words.
fn refusal(l: Lang, e: &ApiError) -> Response {
    let kind = match e.status() {
        StatusCode::FORBIDDEN => {
            l.t("Tài khoản này không được phép làm việc đó.", "This account may not do that.")
        }
        StatusCode::NOT_FOUND => l.t(
            "Không tìm thấy (hoặc tài khoản này không được xem).",
            "Not found (or not visible to this account).",
        ),
        StatusCode::CONFLICT => l.t("Không thực hiện được lúc này.", "Not possible now."),
        StatusCode::TOO_MANY_REQUESTS => {
            l.t("Âm thanh đến nhanh hơn thời gian thực.", "The audio came faster than real time.")
        }
        StatusCode::PAYLOAD_TOO_LARGE => {
            l.t("Quá giới hạn của buổi phát trực tiếp.", "Past a live broadcast's bound.")
        }
        s if s.is_server_error() => l.t("Máy chủ gặp lỗi.", "Central failed."),
        _ => l.t("Yêu cầu không hợp lệ.", "The request is not valid."),
    };
    text(e.status(), format!("{kind} {e}"))
}

/// The session and the CSRF header of a script's POST, checked before its body is read.
#[allow(clippy::result_large_err)]
fn script_post(
    state: &AppState,
    request: &Request,
) -> Result<(super::session::Session, Lang), Response> {
    let (session, lang) = super::viewer(state, request)?;
    let given = request.headers().get("x-csrf-token").and_then(|v| v.to_str().ok());
    if !super::session::csrf_ok(&session, given) {
        tracing::warn!(user = %session.user.name, "console live request refused: missing or wrong CSRF token");
        return Err(text(
            StatusCode::FORBIDDEN,
            lang.t(
                "Thiếu mã bảo vệ (CSRF) hoặc mã sai: hãy tải lại trang.",
                "The protection token (CSRF) is missing or wrong: reload the page.",
            )
            .to_string(),
        ));
    }
    Ok((session, lang))
}

/// `POST /live/start`: the form (CSRF field), then the broadcast started for this person.
pub async fn start(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (session, lang, form) =
        match super::posted::<StartForm>(&state, request, super::SMALL_FORM).await {
            Ok(s) => s,
            Err(r) => return r,
        };
    let request = form.to.parse::<Target>().map_err(ApiError::BadRequest).map(|to| {
        let title = form.title.trim();
        StartLiveRequest {
            title: if title.is_empty() { "Phát trực tiếp".into() } else { title.to_string() },
            to,
            priority: form.priority,
        }
    });
    match request.and_then(|r| pcm::start(&state, &session.caller, &r)) {
        Ok(feed) => axum::Json(serde_json::json!({
            "id": feed.id,
            "stations": feed.stations,
            "audio": format!("/live/{}/audio", feed.id),
            "stop": format!("/live/{}/stop", feed.id),
            "chunk_bytes_max": MAX_PCM_BYTES,
        }))
        .into_response(),
        Err(e) => refusal(lang, &e),
    }
}

#[derive(Debug, Deserialize)]
pub struct Seq {
    seq: u64,
}

/// Why a console broadcast ended, for the person who spoke: the page's language first,
/// then central's own words. `status`: the refusal that ended it (200: it simply ended).
fn ended(l: Lang, status: u16, reason: &str, audio_secs: f64) -> Response {
    let kind = match status {
        429 => l.t("âm thanh đến nhanh hơn thời gian thực", "the audio came faster than real time"),
        413 => l.t("quá giới hạn của buổi phát", "past a live broadcast's bound"),
        408 => l.t("không nhận được âm thanh", "no audio arrived"),
        409 => {
            l.t("đã dừng, hoặc âm thanh đến sai thứ tự", "stopped, or the audio came out of order")
        }
        200 => l.t("đã kết thúc", "it ended"),
        _ => l.t("trung tâm gặp lỗi", "central failed"),
    };
    let message = format!(
        "{}: {kind} ({reason}; {} {}).",
        l.t("Trung tâm đã ngắt buổi phát", "Central cut the broadcast"),
        layout::decimal(l, audio_secs, 1),
        l.t("giây đã phát", "s aired"),
    );
    text(StatusCode::GONE, message)
}

/// `POST /live/{id}/audio?seq=N`: up to 1 s of 16-bit mono PCM at 48 kHz.
pub async fn audio(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    Query(Seq { seq }): Query<Seq>,
    request: Request,
) -> Response {
    let (session, lang) = match script_post(&state, &request) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(feed) = pcm::feed_of(&state, &id, &session.caller.who) else {
        return refusal(lang, &ApiError::NotFound("no such broadcast of yours".into()));
    };
    if let Some(e) = feed.ended() {
        pcm::forget(&state, &id);
        return ended(lang, e.status, &e.reason, e.audio_secs);
    }
    let body = crate::central::body::read(request.into_body(), MAX_PCM_BYTES).await;
    let fed = body.and_then(|body| feed.feed(seq, &body));
    if let Err(e) = &fed {
        feed.abort(pcm::PcmError::Unreadable(e.to_string()));
    }
    match fed {
        Ok(audio_ms) => axum::Json(serde_json::json!({ "audio_ms": audio_ms })).into_response(),
        Err(e) => {
            // A broken bound ended it: said once the intake has signed the end.
            let end = feed.stop(Duration::from_secs(5)).await;
            pcm::forget(&state, &id);
            match end {
                Some(end) if end.status != 200 => {
                    ended(lang, end.status, &end.reason, end.audio_secs)
                }
                Some(end) => ended(lang, e.status().as_u16(), &e.to_string(), end.audio_secs),
                None => refusal(lang, &e),
            }
        }
    }
}

/// `POST /live/{id}/stop`: the end, signed; how much aired.
pub async fn stop(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (session, lang) = match script_post(&state, &request) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let Some(feed) = pcm::feed_of(&state, &id, &session.caller.who) else {
        return refusal(lang, &ApiError::NotFound("no such broadcast of yours".into()));
    };
    let end = feed.stop(Duration::from_secs(10)).await;
    pcm::forget(&state, &id);
    match end {
        Some(e) if e.status == 200 => axum::Json(serde_json::json!({
            "id": id, "end": e.reason, "chunks": e.chunks, "audio_secs": e.audio_secs
        }))
        .into_response(),
        Some(e) => ended(lang, e.status, &e.reason, e.audio_secs),
        None => text(
            StatusCode::ACCEPTED,
            lang.t("Đang kết thúc buổi phát…", "The broadcast is ending…").to_string(),
        ),
    }
}
