//! `/audio`: the library — title, length, loudness, true peak, gain, damage — each file
//! playable in the browser (`/audio/{sha256}/file`, with Range), and an upload with a
//! progress bar (`PUT /audio/upload`, the file's bytes as the body, the CSRF token in
//! `x-csrf-token`) through [`library::receive`], the function behind `PUT /api/v1/audio`
//! (same limit, same checks, same audit line).

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{self, Frame, answer};
use super::session;
use crate::central::{AppState, library};
use crate::store::Role;

/// Files listed (newest first).
pub const LISTED: usize = 200;

pub async fn page(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (session, lang) = match super::viewer(&state, &request) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let frame = Frame { state: &state, session: &session, lang };
    let l = lang;
    let entries = match state.store.library(LISTED) {
        Ok(e) => e,
        Err(e) => return super::refused(&frame, &e.into()),
    };
    let body = html! {
        @if session.caller.role != Role::Viewer {
            form.stack #upload data-upload="/audio/upload" {
                label { (l.t("Tệp âm thanh", "Audio file")) input #file type="file" accept="audio/*" required; }
                label { (l.t("Tiêu đề", "Title")) input #title type="text" maxlength="200"; }
                progress #progress max="100" value="0" {}
                p #upload-result {}
                button type="submit" { (l.t("Tải lên", "Upload")) }
            }
        }
        div.table-wrap { table #library {
            thead { tr {
                th { (l.t("Tiêu đề", "Title")) } th { (l.t("Thời lượng", "Length")) } th { "LUFS" }
                th { (l.t("Đỉnh thực", "True peak")) } th { (l.t("Bù", "Gain")) } th { (l.t("Nghe", "Listen")) }
            } }
            tbody {
                @for e in &entries {
                    tr data-sha256=(e.info.sha256) {
                        td { (e.info.title) br; span.muted { (e.info.sha256.get(..12).unwrap_or(&e.info.sha256)) " · " (frame.time(e.added_at)) }
                             @if let Some(d) = &e.info.damage { br; span.bad { (d) } } }
                        td { (frame.decimal(e.info.duration_ms as f64 / 1000.0, 1)) " s" }
                        td { (frame.decimal(e.info.loudness_lufs, 1)) }
                        td { @match e.true_peak_dbtp { Some(p) => { (frame.decimal(p, 1)) " dBTP" }, None => "–" } }
                        td { (layout::signed(l, f64::from(e.info.gain_db), 1)) " dB" }
                        td { audio controls preload="none" src=(format!("/audio/{}/file", e.info.sha256)) {} }
                    }
                }
            }
        } }
    };
    answer(StatusCode::OK, layout::page(&frame, l.t("Thư viện âm thanh", "Audio library"), body))
}

/// A library file for the browser's player.
pub async fn file(
    State(state): State<Arc<AppState>>,
    Path(sha256): Path<String>,
    request: Request,
) -> Response {
    if let Err(r) = super::viewer(&state, &request) {
        return r;
    }
    let range = request.headers().get(header::RANGE).and_then(|v| v.to_str().ok());
    match crate::central::api::audio_file(&state, &sha256, range).await {
        Ok(r) => r,
        Err(e) => (e.status(), e.to_string()).into_response(),
    }
}

#[derive(Debug, Deserialize)]
pub struct UploadQuery {
    #[serde(default)]
    name: String,
    #[serde(default)]
    title: String,
}

/// The upload itself: answered with plain text for the page's script to show.
pub async fn upload(
    State(state): State<Arc<AppState>>,
    Query(q): Query<UploadQuery>,
    request: Request,
) -> Response {
    let Ok(Some(session)) = session::current(&state, request.headers(), request.extensions())
    else {
        return (StatusCode::UNAUTHORIZED, "sign in again: the session has ended").into_response();
    };
    let token = request.headers().get("x-csrf-token").and_then(|v| v.to_str().ok());
    if !session::csrf_ok(&session, token) {
        return (StatusCode::FORBIDDEN, "missing or wrong CSRF token: reload the page")
            .into_response();
    }
    let limit = state.config.upload_limit_bytes();
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > limit) {
        let e = crate::central::ApiError::TooLarge { limit };
        return (e.status(), e.to_string()).into_response();
    }
    let name: String =
        crate::protocol::text::printable(q.name.rsplit(['/', '\\']).next().unwrap_or(""))
            .chars()
            .take(200)
            .collect();
    let title = q.title.trim();
    let upload = library::Upload {
        name: if name.is_empty() { "upload".into() } else { name },
        title: (!title.is_empty()).then(|| title.chars().take(200).collect()),
        accept_damaged: false,
    };
    let mut stream = request.into_body().into_data_stream();
    match library::receive(&state, &session.caller, upload, &mut stream, limit).await {
        Ok(info) => (
            StatusCode::OK,
            format!(
                "{}: {:.1} s, {:.1} LUFS, {:+.1} dB",
                info.title,
                info.duration_ms as f64 / 1000.0,
                info.loudness_lufs,
                info.gain_db
            ),
        )
            .into_response(),
        Err(e) => (e.status(), e.to_string()).into_response(),
    }
}
