//! `/stations/{id}`: one station — its state as the fleet shows it, its next plays (from
//! the latest manifest central signed for it), the last day of its ledger (what played, what was missed and why) and its recent heartbeats. A station the
//! person may not see is answered exactly as one that does not exist.

use std::sync::Arc;

use axum::extract::{Path, Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::layout::{self, Frame, answer};
use crate::central::playlog::{LogQuery, page as log_page};
use crate::central::{ApiError, AppState};

/// Heartbeats shown (the store keeps [`crate::store::console::HEARTBEAT_HISTORY`]).
pub const HEARTBEATS: usize = 30;
/// Ledger records shown.
pub const RECORDS: u64 = 100;
/// Next plays shown (from the station's latest manifest, the next 24 h).
pub const NEXT: usize = 20;

/// The next plays of the schedules central sent this station (its own local files are
/// unknown here): from its latest manifest, verified as the station would.
fn next_plays(
    state: &AppState,
    station_id: &str,
) -> Result<Vec<crate::schedule::Occurrence>, ApiError> {
    let Some(stored) = state.store.latest_manifest(station_id)? else { return Ok(Vec::new()) };
    let verified =
        crate::signing::verify_stored_manifest(&state.key.public(), &stored.envelope, station_id)?;
    let schedules = crate::protocol::manifest::schedules(&verified.manifest).map_err(|e| {
        ApiError::Internal(format!("manifest v{} of {station_id}: {e}", stored.version))
    })?;
    let now = state.clock.now();
    let mut plays = crate::schedule::Timeline::new(schedules)
        .occurrences(now, now + chrono::Duration::hours(24));
    plays.truncate(NEXT);
    Ok(plays)
}

pub async fn page(
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
    let role = &session.caller.role;
    let found = (|| {
        let fleet = crate::central::api::fleet_status(&state, role)?;
        let status = fleet.stations.into_iter().find(|s| s.id == id).ok_or_else(|| {
            ApiError::NotFound(format!(
                "no station {:?} you may see",
                crate::protocol::bounds::clip(&id)
            ))
        })?;
        let since = state.clock.now() - chrono::Duration::hours(24);
        let q = LogQuery {
            station: Some(status.id.clone()),
            since: Some(since),
            limit: Some(RECORDS),
            ..LogQuery::default()
        };
        let (records, _) = log_page(&state, role, &q)?;
        let beats = state.store.heartbeat_history(&status.id, HEARTBEATS)?;
        let next = next_plays(&state, &status.id)?;
        Ok::<_, ApiError>((status, records, beats, next))
    })();
    let (status, records, beats, next) = match found {
        Ok(f) => f,
        Err(e) => return super::refused(&frame, &e),
    };
    let h = status.heartbeat.as_ref();
    let body = html! {
        p {
            (status.name) " · " (status.district) " · "
            (l.t("lần cuối", "last seen")) " "
            @match status.last_seen { Some(t) => (frame.time(t)), None => "–" }
        }
        p {
            strong { (l.t("Đang phát", "Now playing")) ": " }
            (h.and_then(|h| h.now_playing.clone()).unwrap_or_else(|| "–".into()))
            " · " strong { (l.t("Âm thanh", "Output")) ": " } (h.map_or("–".to_string(), |h| h.sink_health.clone()))
        }
        h2 { (l.t("Sắp phát (24 giờ tới, theo lịch tỉnh gửi)", "Next plays (24 h, from the schedules central sent)")) }
        div.table-wrap { table #next {
            thead { tr { th { (l.t("Lúc", "At")) } th { (l.t("Mục", "Item")) } th { (l.t("Lớp", "Layer")) } th { (l.t("Mức", "Priority")) } } }
            tbody {
                @for o in &next {
                    tr data-item=(o.item_id) {
                        td { (frame.time(o.planned)) } td { (o.title) br; span.muted { (o.item_id) } }
                        td { (if o.layer == crate::schedule::Layer::Local { l.t("địa phương", "local") } else { l.t("tỉnh", "provincial") }) }
                        td { (format!("{:?}", o.priority).to_lowercase()) }
                    }
                }
            }
        } }
        h2 { (l.t("Nhật ký 24 giờ qua", "Ledger, last 24 h")) }
        (super::playlog::records_table(&frame, &records))
        h2 { (l.t("Tín hiệu gần đây", "Recent heartbeats")) }
        div.table-wrap { table {
            thead { tr {
                th { (l.t("Lúc", "At")) } th { (l.t("Lịch", "Manifest")) } th { (l.t("Lệch giờ", "Clock")) }
                th { (l.t("Sẵn sàng đến", "Ready until")) } th { (l.t("Âm thanh", "Output")) }
            } }
            tbody {
                @for b in &beats {
                    tr {
                        td { (frame.time(b.received_at)) }
                        td { @match b.heartbeat.manifest_version { Some(v) => { "v" (v) }, None => "–" } }
                        td { @match b.heartbeat.clock_offset_ms { Some(ms) => { (layout::signed(l, ms as f64 / 1000.0, 1)) " s" }, None => "–" } }
                        td { @match b.heartbeat.ready_until { Some(t) => (frame.time(t)), None => "–" } }
                        td { (b.heartbeat.sink_health) }
                    }
                }
            }
        } }
    };
    answer(
        StatusCode::OK,
        layout::page(&frame, &format!("{} {}", l.t("Trạm", "Station"), status.id), body),
    )
}
