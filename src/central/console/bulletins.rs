//! `/bulletins`: compose a bulletin (spoken from text, or a library file), confirm it
//! with the number of stations that will sound, follow its delivery board (refreshed
//! every half second from `/bulletins/{id}/board` while it can change), cancel it, approve it under the two-person
//! rule, and the list of recent bulletins. Every action goes through
//! [`operate`](crate::central::bulletins::operate) with the person's [`Caller`], exactly
//! as `loa bulletin` does through the API.
//!
//! [`Caller`]: crate::central::auth::Caller

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Frame, Lang, answer};
use crate::central::bulletins::operate;
use crate::central::{ApiError, AppState};
use crate::protocol::{
    ApprovalState, BulletinInfo, BulletinPriority, DeliveryState, PushBulletinRequest, Target,
};
use crate::store::Role;

/// The push form's fields.
#[derive(Debug, Clone, Deserialize)]
pub struct PushForm {
    #[serde(default)]
    title: String,
    #[serde(default)]
    text: String,
    /// A library file's sha256, instead of text.
    #[serde(default)]
    audio: String,
    /// `all`, `district:AREA`, or station ids separated by commas.
    to: String,
    priority: BulletinPriority,
    #[serde(default)]
    repeat: u32,
    #[serde(default)]
    interval_secs: u64,
    /// Minutes the bulletin stays valid (1 to 7 days).
    expires_mins: u64,
    #[serde(default)]
    tone: Option<String>,
    /// Present once the person has seen how many stations will sound.
    #[serde(default)]
    confirmed: Option<String>,
}

impl PushForm {
    fn request(&self) -> Result<PushBulletinRequest, ApiError> {
        let to: Target = self.to.parse().map_err(ApiError::BadRequest)?;
        let text = self.text.trim();
        let audio = self.audio.trim();
        Ok(PushBulletinRequest {
            title: (!self.title.trim().is_empty()).then(|| self.title.trim().to_string()),
            audio_sha256: (!audio.is_empty())
                .then(|| audio.trim_start_matches("sha256:").to_string()),
            text: (!text.is_empty()).then(|| text.to_string()),
            voice: None,
            to,
            priority: self.priority,
            repeat: self.repeat,
            interval_secs: self.interval_secs,
            expires_secs: self.expires_mins.saturating_mul(60),
            tone: self.tone.is_some(),
        })
    }
}

fn priority_name(l: Lang, p: BulletinPriority) -> &'static str {
    match p {
        BulletinPriority::Emergency => l.t("khẩn cấp", "emergency"),
        BulletinPriority::Priority => l.t("ưu tiên", "priority"),
        BulletinPriority::Test => l.t("thử nghiệm (không phát)", "test (never aired)"),
    }
}

fn state_name(l: Lang, s: Option<DeliveryState>) -> &'static str {
    match s {
        None => l.t("chưa nhận", "not reached"),
        Some(DeliveryState::Delivered) => l.t("đã nhận", "delivered"),
        Some(DeliveryState::Verified) => l.t("đã kiểm tra", "verified"),
        Some(DeliveryState::Started) => l.t("đang phát", "started"),
        Some(DeliveryState::Finished) => l.t("đã phát xong", "finished"),
        Some(DeliveryState::TestOk) => l.t("thử nghiệm đạt (test-ok)", "test-ok"),
        Some(DeliveryState::Failed) => l.t("lỗi", "failed"),
    }
}

/// The targets a person may choose: all (admin), each area they see, each station.
pub(super) fn targets(frame: &Frame<'_>) -> Result<Vec<(String, String)>, ApiError> {
    let l = frame.lang;
    let role = &frame.session.caller.role;
    let stations: Vec<_> =
        frame.state.store.stations()?.into_iter().filter(|s| role.sees(s)).collect();
    let mut out = Vec::new();
    if *role == Role::Admin {
        out.push((
            "all".to_string(),
            format!(
                "{} ({} {})",
                l.t("Tất cả các trạm", "All stations"),
                stations.len(),
                l.t("trạm", "stations")
            ),
        ));
    }
    let areas: BTreeSet<&str> = stations.iter().map(|s| s.district.as_str()).collect();
    for area in areas {
        let n =
            stations.iter().filter(|s| crate::protocol::area::within(&s.district, area)).count();
        out.push((
            format!("district:{area}"),
            format!("{} {area} ({n} {})", l.t("Khu vực", "Area"), l.t("trạm", "stations")),
        ));
    }
    for s in &stations {
        out.push((s.id.clone(), format!("{} {} ({})", l.t("Trạm", "Station"), s.id, s.district)));
    }
    Ok(out)
}

fn push_form(frame: &Frame<'_>) -> Result<Markup, ApiError> {
    let l = frame.lang;
    let choices = targets(frame)?;
    let library = frame.state.store.library(super::audio::LISTED)?;
    Ok(html! {
        form.stack #push method="post" action="/bulletins" {
            (frame.csrf())
            label { (l.t("Tiêu đề", "Title")) input type="text" name="title" maxlength="200"; }
            label { (l.t("Nội dung (đọc bằng giọng máy)", "Text (spoken)"))
                textarea name="text" maxlength="4000" {} }
            label { (l.t("Hoặc một tệp trong thư viện", "Or a file from the library"))
                select name="audio" {
                    option value="" { (l.t("(đọc nội dung ở trên)", "(speak the text above)")) }
                    @for e in &library {
                        option value=(e.info.sha256) { (e.info.title) " (" (frame.decimal(e.info.duration_ms as f64 / 1000.0, 1)) " s)" }
                    }
                }
            }
            div.row {
                label { (l.t("Gửi đến", "To"))
                    select name="to" required {
                        @for (value, shown) in &choices { option value=(value) { (shown) } }
                    }
                }
                label { (l.t("Mức", "Priority"))
                    select name="priority" {
                        @for p in [BulletinPriority::Emergency, BulletinPriority::Priority, BulletinPriority::Test] {
                            option value=(p.as_str()) selected[p == BulletinPriority::Test] { (priority_name(l, p)) }
                        }
                    }
                }
            }
            div.row {
                label { (l.t("Phát lại (lần)", "Repeats")) input type="number" name="repeat" min="0" max="100" value="0"; }
                label { (l.t("Cách nhau (giây)", "Interval (s)")) input type="number" name="interval_secs" min="0" value="0"; }
                label { (l.t("Hết hạn sau (phút)", "Expires after (min)")) input type="number" name="expires_mins" min="1" max="10080" value="60"; }
            }
            label { input type="checkbox" name="tone" value="1" checked; " " (l.t("Chuông báo trước", "Warning tone first")) }
            button type="submit" { (l.t("Tiếp tục", "Continue")) }
        }
    })
}

fn list_table(frame: &Frame<'_>, list: &[BulletinInfo]) -> Markup {
    let l = frame.lang;
    let now = frame.state.clock.now();
    html! {
        div.table-wrap { table {
            thead { tr {
                th { (l.t("Bản tin", "Bulletin")) } th { (l.t("Trạng thái", "State")) }
                th { (l.t("Phát hành", "Issued")) } th { (l.t("Hết hạn", "Expires")) }
                th { (l.t("Trạm nhận / tổng", "Reached / stations")) }
            } }
            tbody {
                @for b in list {
                    tr {
                        td { a href=(format!("/bulletins/{}", b.doc.id)) { (b.doc.title) } br; span.muted { (b.doc.id) } }
                        td { (b.headline_state(now)) }
                        td { (frame.time(b.doc.issued_at)) }
                        td { (frame.time(b.doc.expires_at)) }
                        td { (b.stations.iter().filter(|s| s.state.is_some()).count()) " / " (b.stations.len()) }
                    }
                }
            }
        } }
    }
}

pub async fn page(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (session, lang) = match super::viewer(&state, &request) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let frame = Frame { state: &state, session: &session, lang };
    let l = lang;
    let body = (|| -> Result<Markup, ApiError> {
        let list = operate::list(&state, &session.caller.role, operate::LIST_DEFAULT)?;
        let form =
            if session.caller.role == Role::Viewer { None } else { Some(push_form(&frame)?) };
        Ok(html! {
            @if let Some(f) = form {
                p { a.button #speak-live href="/live" { (l.t("🎙 Nói trực tiếp", "🎙 Speak live")) } " "
                    span.muted { (l.t("(phát giọng nói qua micrô của trình duyệt ngay tới các trạm)", "(your voice, through the browser's microphone, to the stations now)")) } }
                h2 { (l.t("Gửi bản tin", "Push a bulletin")) } (f)
            }
            h2 { (l.t("Bản tin gần đây", "Recent bulletins")) }
            (list_table(&frame, &list))
        })
    })();
    match body {
        Ok(b) => answer(StatusCode::OK, layout::page(&frame, l.t("Bản tin khẩn", "Bulletins"), b)),
        Err(e) => super::refused(&frame, &e),
    }
}

/// The confirmation: the same fields again, hidden, with the number of stations named.
fn confirmation(frame: &Frame<'_>, form: &PushForm, stations: usize, areas: usize) -> Markup {
    let l = frame.lang;
    let sound = form.priority != BulletinPriority::Test;
    html! {
        p.notice #confirm {
            @if sound {
                (l.t("Bản tin", "The bulletin")) " “" (form.title) "” " (l.t("sẽ PHÁT tại", "will SOUND at")) " "
                strong { (stations) " " (l.t("trạm", "stations")) } " (" (areas) " " (l.t("khu vực", "areas")) "), "
                (l.t("mức", "priority")) " " (priority_name(l, form.priority)) "."
            } @else {
                (l.t("Bản tin thử nghiệm đi qua", "The test bulletin goes through")) " " strong { (stations) " " (l.t("trạm", "stations")) }
                " " (l.t("nhưng không phát ra loa.", "but is never aired."))
            }
        }
        @if !form.audio.is_empty() {
            p { (l.t("Nghe trước", "Listen first")) ": "
                audio #preview controls preload="none" src=(format!("/audio/{}/file", form.audio)) {} }
        }
        form.stack method="post" action="/bulletins" {
            (frame.csrf())
            input type="hidden" name="title" value=(form.title);
            input type="hidden" name="text" value=(form.text);
            input type="hidden" name="audio" value=(form.audio);
            input type="hidden" name="to" value=(form.to);
            input type="hidden" name="priority" value=(form.priority.as_str());
            input type="hidden" name="repeat" value=(form.repeat);
            input type="hidden" name="interval_secs" value=(form.interval_secs);
            input type="hidden" name="expires_mins" value=(form.expires_mins);
            @if form.tone.is_some() { input type="hidden" name="tone" value="1"; }
            input type="hidden" name="confirmed" value="1";
            button.danger[sound] #send type="submit" { (l.t("Xác nhận gửi", "Confirm and send")) }
            a href="/bulletins" { (l.t("Huỷ bỏ", "Go back")) }
        }
    }
}

pub async fn push(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (session, lang, form) =
        match super::posted::<PushForm>(&state, request, crate::central::body::CONSOLE_PUSH_LIMIT)
            .await
        {
            Ok(s) => s,
            Err(r) => return r,
        };
    let frame = Frame { state: &state, session: &session, lang };
    let l = lang;
    let request = match form.request() {
        Ok(r) => r,
        Err(e) => return super::refused(&frame, &e),
    };
    if let Err(e) = operate::check_request(&request) {
        return super::refused(&frame, &e);
    }
    if form.confirmed.is_none() {
        // Resolved exactly as the push will be: the same refusals, the same count.
        let counted = state.store.stations().map_err(ApiError::from).and_then(|all| {
            let targets = operate::resolve_targets(all.clone(), &session.caller.role, &request.to)?;
            Ok((targets.len(), operate::areas_of(&all, &targets)))
        });
        // Text is spoken now, so the person hears what will air before sending it: the
        // confirmation then pushes that very file.
        let mut form = form.clone();
        if let (Ok(_), Some(text)) = (&counted, &request.text)
            && request.audio_sha256.is_none()
        {
            if form.title.trim().is_empty() {
                form.title = operate::title_from_text(text);
            }
            match crate::central::bulletins::issue::speak(&state, text, "vi", &form.title).await {
                Ok(info) => {
                    form.audio = info.sha256;
                    form.text = String::new();
                }
                Err(e) => return super::refused(&frame, &e),
            }
        }
        return match counted {
            Ok((n, areas)) => answer(
                StatusCode::OK,
                layout::page(
                    &frame,
                    l.t("Xác nhận bản tin", "Confirm the bulletin"),
                    confirmation(&frame, &form, n, areas),
                ),
            ),
            Err(e) => super::refused(&frame, &e),
        };
    }
    match operate::push(&state, &session.caller, &request).await {
        Ok(pushed) => super::see_other(&format!("/bulletins/{}", pushed.response.id)),
        Err(e) => super::refused(&frame, &e),
    }
}

fn board(frame: &Frame<'_>, info: &BulletinInfo) -> Markup {
    let l = frame.lang;
    let id = &info.doc.id;
    let reached = info.stations.iter().filter(|s| s.state.is_some()).count();
    // Refreshed every half second while anything can still change (so a state central
    // learns shows within a second), then left alone: an ended bulletin's board is final
    // once the last reports are in (a minute after its end).
    let now = frame.state.clock.now();
    let ended = info.cancelled_at.unwrap_or(info.doc.expires_at).min(info.doc.expires_at);
    let live = now < ended + chrono::Duration::minutes(1);
    html! {
        div #board hx-get=[live.then(|| format!("/bulletins/{id}/board"))] hx-trigger=[live.then_some("every 500ms")] hx-swap="outerHTML" {
            p.muted { (reached) " / " (info.stations.len()) " " (l.t("trạm đã nhận", "stations reached")) }
            div.table-wrap { table {
                thead { tr {
                    th { (l.t("Trạm", "Station")) } th { (l.t("Trạng thái", "State")) }
                    th { (l.t("Lúc", "At")) } th { (l.t("Độ trễ", "Latency")) } th { (l.t("Ghi chú", "Detail")) }
                } }
                tbody {
                    @for s in &info.stations {
                        tr data-station=(s.station_id) data-state=(s.state.map_or("none", |x| x.as_str())) {
                            td { (s.station_id) }
                            td { (state_name(l, s.state)) }
                            td { @match s.at { Some(t) => (frame.time(t)), None => "–" } }
                            td { @match s.latency_ms { Some(ms) => { (frame.decimal(ms as f64 / 1000.0, 3)) " s" }, None => "–" } }
                            td { @if let Some(r) = &s.reason { (r) } }
                        }
                    }
                }
            } }
        }
    }
}

/// A bulletin id from a URL: what central makes (letters, digits, dashes; at most 100
/// bytes), or "no bulletin" before anything is looked up.
fn known_id(id: &str) -> Result<(), ApiError> {
    let valid = !id.is_empty()
        && id.len() <= 100
        && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-');
    if valid {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("no bulletin {:?}", crate::protocol::bounds::clip(id))))
    }
}

fn info_of(frame: &Frame<'_>, id: &str) -> Result<BulletinInfo, ApiError> {
    known_id(id)?;
    operate::visible_info(frame.state, &frame.session.caller.role, id)
}

pub async fn show(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (session, lang) = match super::viewer(&state, &request) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let frame = Frame { state: &state, session: &session, lang };
    let l = lang;
    let info = match info_of(&frame, &id) {
        Ok(i) => i,
        Err(e) => return super::refused(&frame, &e),
    };
    let waiting = info.approval.as_ref().is_some_and(|a| a.state == ApprovalState::WaitingApproval);
    let live = info.cancelled_at.is_none() && info.doc.expires_at > state.clock.now();
    let role = &session.caller.role;
    let body = html! {
        p {
            strong { (priority_name(l, info.doc.priority)) } " · " (info.headline_state(state.clock.now()))
            " · " (l.t("hết hạn", "expires")) " " (frame.time(info.doc.expires_at))
            " · " (l.t("người gửi", "by")) " " (info.issued_by)
        }
        @if let Some(a) = &info.approval {
            p.notice { (a.state.as_str()) ": " (a.reason) }
        }
        div.row {
            @if waiting && *role == Role::Admin {
                form method="post" action=(format!("/bulletins/{}/approve", info.doc.id)) {
                    (frame.csrf())
                    button.danger #approve type="submit" { (l.t("Duyệt (người thứ hai)", "Approve (second person)")) }
                }
            }
            @if (live || waiting) && *role != Role::Viewer {
                form method="post" action=(format!("/bulletins/{}/cancel", info.doc.id)) {
                    (frame.csrf())
                    button #cancel type="submit" { (l.t("Huỷ bản tin", "Cancel the bulletin")) }
                }
            }
        }
        (board(&frame, &info))
    };
    answer(StatusCode::OK, layout::page(&frame, &info.doc.title, body))
}

/// The delivery board alone, for htmx's refresh.
pub async fn board_part(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (session, lang) = match super::viewer(&state, &request) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let frame = Frame { state: &state, session: &session, lang };
    match info_of(&frame, &id) {
        Ok(info) => answer(StatusCode::OK, board(&frame, &info)),
        Err(e) => answer(e.status(), layout::error_box(&e.to_string())),
    }
}

pub async fn cancel(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (session, lang, _) =
        match super::posted::<super::NoFields>(&state, request, super::SMALL_FORM).await {
            Ok(s) => s,
            Err(r) => return r,
        };
    let frame = Frame { state: &state, session: &session, lang };
    match known_id(&id).and_then(|()| operate::cancel(&state, &session.caller, &id)) {
        Ok(_) => super::see_other(&format!("/bulletins/{id}")),
        Err(e) => super::refused(&frame, &e),
    }
}

pub async fn approve(
    State(state): State<Arc<AppState>>,
    Path(id): Path<String>,
    request: Request,
) -> Response {
    let (session, lang, _) =
        match super::posted::<super::NoFields>(&state, request, super::SMALL_FORM).await {
            Ok(s) => s,
            Err(r) => return r,
        };
    let frame = Frame { state: &state, session: &session, lang };
    let approved = match known_id(&id) {
        Ok(()) => operate::approve(&state, &session.caller, &id).await,
        Err(e) => Err(e),
    };
    match approved {
        Ok(_) => super::see_other(&format!("/bulletins/{id}")),
        Err(e) => super::refused(&frame, &e),
    }
}
