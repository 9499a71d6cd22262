//! `/`: the fleet — every station the person may see (a district account: its area's
//! only), online or not, last seen, now playing, manifest, clock offset, cache readiness,
//! sound output, items missed or failed today — problems first. The table refreshes itself every 5 s (htmx) from
//! `/fleet/table`; without JavaScript the page still shows it. Built from
//! `api::fleet_status`, the same function as `GET /api/v1/status`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use chrono::{DateTime, Utc};
use maud::{Markup, html};

use super::layout::{self, Frame, Lang, answer};
use crate::central::AppState;
use crate::protocol::{FleetStatus, StationStatus};

/// What is wrong with a station, in the page's language; empty when nothing is.
fn problems(
    st: &StationStatus,
    missed: u64,
    now: DateTime<Utc>,
    state: &AppState,
    l: Lang,
) -> Vec<String> {
    let alerts = &state.config.alerts;
    let mut out = Vec::new();
    let offline_after = chrono::Duration::minutes(alerts.offline_after_mins as i64);
    match st.last_seen {
        None => out.push(l.t("chưa từng kết nối", "never connected").to_string()),
        Some(seen) if now - seen > offline_after => {
            out.push(l.t("mất kết nối", "offline").to_string())
        }
        _ => {}
    }
    if missed > 0 {
        out.push(format!(
            "{} {missed} {}",
            l.t("bỏ lỡ", "missed"),
            l.t("mục hôm nay", "items today")
        ));
    }
    if let Some(h) = &st.heartbeat {
        if h.output_failed.is_some() || h.sink_health != "ok" {
            out.push(format!("{}: {}", l.t("đầu ra âm thanh", "sound output"), h.sink_health));
        }
        if h.clock_offset_ms.is_some_and(|ms| (ms.abs() as f64) / 1000.0 > alerts.clock_off_secs) {
            out.push(l.t("lệch giờ", "clock off").to_string());
        }
        let horizon = now + chrono::Duration::hours(alerts.cache_horizon_hours as i64);
        if h.ready_until.is_none_or(|r| r < horizon) {
            out.push(
                l.t("thiếu âm thanh cho 24 giờ tới", "audio missing for the next 24 h").to_string(),
            );
        }
    }
    out
}

fn table(frame: &Frame<'_>, fleet: &FleetStatus, missed: &HashMap<String, u64>) -> Markup {
    let l = frame.lang;
    let now = fleet.server_time;
    let missed_of = |id: &str| missed.get(id).copied().unwrap_or(0);
    let mut rows: Vec<(Vec<String>, &StationStatus)> = fleet
        .stations
        .iter()
        .map(|s| (problems(s, missed_of(&s.id), now, frame.state, l), s))
        .collect();
    rows.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.1.id.cmp(&b.1.id)));
    let troubled = rows.iter().filter(|r| !r.0.is_empty()).count();
    html! {
        div #fleet hx-get="/fleet/table" hx-trigger="every 5s" hx-swap="outerHTML" {
            p.muted {
                (layout::number(rows.len() as u64)) " " (l.t("trạm", "stations")) " · "
                (layout::number(troubled as u64)) " " (l.t("có vấn đề", "with problems")) " · "
                (l.t("cập nhật", "updated")) " " (frame.time(now))
            }
            div.table-wrap {
                table {
                    thead { tr {
                        th { (l.t("Trạm", "Station")) }
                        th { (l.t("Khu vực", "Area")) }
                        th { (l.t("Tình trạng", "State")) }
                        th { (l.t("Lần cuối", "Last seen")) }
                        th { (l.t("Đang phát", "Now playing")) }
                        th { (l.t("Lịch (bản)", "Manifest")) }
                        th { (l.t("Lệch giờ", "Clock")) }
                        th { (l.t("Âm thanh", "Output")) }
                        th { (l.t("Bỏ lỡ hôm nay", "Missed today")) }
                    } }
                    tbody {
                        @for (trouble, st) in &rows {
                            tr.problem[!trouble.is_empty()] data-station=(st.id) {
                                td { a href=(format!("/stations/{}", st.id)) { strong { (st.id) } } br; span.muted { (st.name) } }
                                td { (st.district) }
                                td {
                                    @if trouble.is_empty() { span.ok { (l.t("bình thường", "ok")) } }
                                    @else { span.bad { (trouble.join("; ")) } }
                                }
                                td { @match st.last_seen { Some(t) => (frame.time(t)), None => "–" } }
                                td { @match st.heartbeat.as_ref().and_then(|h| h.now_playing.clone()) { Some(p) => (p), None => "–" } }
                                td {
                                    @match (st.heartbeat.as_ref().and_then(|h| h.manifest_version), st.issued_version) {
                                        (Some(h), Some(i)) => { "v" (h) " / v" (i) }
                                        (None, Some(i)) => { "– / v" (i) }
                                        _ => "–",
                                    }
                                }
                                td { @match st.heartbeat.as_ref().and_then(|h| h.clock_offset_ms) {
                                    Some(ms) => { (layout::signed(l, ms as f64 / 1000.0, 1)) " s" }
                                    None => "–",
                                } }
                                td { @match &st.heartbeat { Some(h) => (h.sink_health), None => "–" } }
                                td.missed { (missed_of(&st.id)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The fleet the person may see, and per station its records missed or failed since
/// midnight in the province.
fn fleet_of(
    frame: &Frame<'_>,
) -> Result<(FleetStatus, HashMap<String, u64>), crate::central::ApiError> {
    let fleet = crate::central::api::fleet_status(frame.state, &frame.session.caller.role)?;
    let tz = frame.state.config.timezone;
    let midnight = fleet
        .server_time
        .with_timezone(&tz)
        .date_naive()
        .and_hms_opt(0, 0, 0)
        .and_then(|m| m.and_local_timezone(tz).earliest())
        .map_or(fleet.server_time, |m| m.with_timezone(&Utc));
    let missed = frame.state.store.missed_since(midnight)?.into_iter().collect();
    Ok((fleet, missed))
}

pub async fn page(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (session, lang) = match super::viewer(&state, &request) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let frame = Frame { state: &state, session: &session, lang };
    match fleet_of(&frame) {
        Ok((fleet, missed)) => answer(
            StatusCode::OK,
            layout::page(&frame, lang.t("Các trạm", "Stations"), table(&frame, &fleet, &missed)),
        ),
        Err(e) => super::refused(&frame, &e),
    }
}

/// The table alone, for htmx's refresh.
pub async fn part(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (session, lang) = match super::viewer(&state, &request) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let frame = Frame { state: &state, session: &session, lang };
    match fleet_of(&frame) {
        Ok((fleet, missed)) => answer(StatusCode::OK, table(&frame, &fleet, &missed)),
        Err(e) => answer(e.status(), layout::error_box(&e.to_string())),
    }
}
