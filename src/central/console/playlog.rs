//! `/playlog`: what the stations played, missed and why — filtered as `loa log` is
//! (station, area, days, outcome, item), a page at a time, and as CSV
//! (`/playlog?format=csv&…`). Built from [`crate::central::playlog::page`], the function
//! behind `GET /api/v1/playlog`, with the person's role.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Frame, Lang, answer};
use crate::central::playlog::{LogQuery, page as log_page};
use crate::central::{ApiError, AppState};
use crate::protocol::Record;
use crate::protocol::text::csv_field;

/// Records a page shows (the API allows more; a phone does not).
pub const PAGE: u64 = 200;
/// Records one CSV download holds at most.
pub const CSV_MAX: u64 = 10_000;

/// The filter form's fields, as typed.
#[derive(Debug, Default, Clone, Deserialize)]
pub struct Filter {
    #[serde(default)]
    station: String,
    #[serde(default)]
    area: String,
    /// First day (YYYY-MM-DD, the province's zone), inclusive.
    #[serde(default)]
    from: String,
    /// Last day, inclusive.
    #[serde(default)]
    to: String,
    #[serde(default)]
    outcome: String,
    #[serde(default)]
    item: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    format: String,
}

fn some(text: &str) -> Option<String> {
    let t = text.trim();
    (!t.is_empty()).then(|| t.chars().take(200).collect())
}

/// The start of `day` in the province's zone.
fn day_start(state: &AppState, text: &str, what: &str) -> Result<Option<DateTime<Utc>>, ApiError> {
    let Some(text) = some(text) else { return Ok(None) };
    let day = NaiveDate::parse_from_str(&text, "%Y-%m-%d").map_err(|e| {
        ApiError::BadRequest(format!("{what} {text:?} is not a date (YYYY-MM-DD): {e}"))
    })?;
    let tz = state.config.timezone;
    let midnight = day.and_hms_opt(0, 0, 0).unwrap_or_default();
    Ok(tz.from_local_datetime(&midnight).earliest().map(|t| t.with_timezone(&Utc)))
}

impl Filter {
    fn query(&self, state: &AppState, limit: u64) -> Result<LogQuery, ApiError> {
        let until = day_start(state, &self.to, "to")?.map(|t| t + chrono::Duration::days(1));
        Ok(LogQuery {
            station: some(&self.station),
            district: some(&self.area),
            since: day_start(state, &self.from, "from")?,
            until,
            outcome: some(&self.outcome),
            item: some(&self.item),
            limit: Some(limit),
            after: some(&self.after),
        })
    }

    /// This filter as a query string (for the CSV link and the next page).
    fn encoded(&self, format: &str, after: &str) -> String {
        serde_urlencoded::to_string([
            ("station", self.station.as_str()),
            ("area", self.area.as_str()),
            ("from", self.from.as_str()),
            ("to", self.to.as_str()),
            ("outcome", self.outcome.as_str()),
            ("item", self.item.as_str()),
            ("after", after),
            ("format", format),
        ])
        .unwrap_or_default()
    }
}

fn outcome_name(l: Lang, o: &str) -> &str {
    match o {
        "played" => l.t("đã phát", "played"),
        "late" => l.t("phát muộn", "late"),
        "preempted" => l.t("bị ngắt", "pre-empted"),
        "failed" => l.t("lỗi", "failed"),
        "missed" => l.t("bỏ lỡ", "missed"),
        other => other,
    }
}

/// The record table (also the station page's recent ledger).
pub fn records_table(frame: &Frame<'_>, records: &[Record]) -> Markup {
    let l = frame.lang;
    html! {
        div.table-wrap { table.playlog {
            thead { tr {
                th { (l.t("Dự kiến", "Planned")) } th { (l.t("Trạm", "Station")) }
                th { (l.t("Mục", "Item")) } th { (l.t("Kết quả", "Outcome")) } th { (l.t("Lý do", "Reason")) }
            } }
            tbody {
                @for r in records {
                    tr data-outcome=(r.entry.outcome.as_str()) {
                        td { (frame.time(r.entry.planned)) }
                        td { (r.station) }
                        td { (r.entry.title) br; span.muted { (r.entry.item_id) } }
                        td.ok[matches!(r.entry.outcome.as_str(), "played" | "late")]
                          .bad[matches!(r.entry.outcome.as_str(), "failed" | "missed")] {
                            (outcome_name(l, r.entry.outcome.as_str()))
                        }
                        td { @if let Some(reason) = &r.entry.reason { (reason) } }
                    }
                }
            }
        } }
    }
}

fn csv(state: &AppState, records: &[Record]) -> Response {
    let tz = state.config.timezone;
    let mut out =
        String::from("station,seq,planned,item_id,title,outcome,reason,started,delay_ms\n");
    for r in records {
        let e = &r.entry;
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{}\n",
            csv_field(&r.station),
            r.seq,
            e.planned.with_timezone(&tz).to_rfc3339(),
            csv_field(&e.item_id),
            csv_field(&e.title),
            e.outcome.as_str(),
            csv_field(e.reason.as_deref().unwrap_or("")),
            e.started.map(|t| t.with_timezone(&tz).to_rfc3339()).unwrap_or_default(),
            e.delay_ms.map(|d| d.to_string()).unwrap_or_default()
        ));
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"playlog.csv\""),
        ],
        out,
    )
        .into_response()
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    Query(filter): Query<Filter>,
    request: Request,
) -> Response {
    let (session, lang) = match super::viewer(&state, &request) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let frame = Frame { state: &state, session: &session, lang };
    let l = lang;
    let as_csv = filter.format == "csv";
    let limit = if as_csv { CSV_MAX } else { PAGE };
    let found =
        filter.query(&state, limit).and_then(|q| log_page(&state, &session.caller.role, &q));
    let (records, next) = match found {
        Ok(found) => found,
        Err(e) => return super::refused(&frame, &e),
    };
    if as_csv {
        return csv(&state, &records);
    }
    let f = &filter;
    let body = html! {
        form.stack.filters method="get" action="/playlog" {
            div.row {
                label { (l.t("Trạm", "Station")) input type="text" name="station" value=(f.station) maxlength="64"; }
                label { (l.t("Khu vực", "Area")) input type="text" name="area" value=(f.area) maxlength="200"; }
                label { (l.t("Từ ngày", "From")) input type="date" name="from" value=(f.from); }
                label { (l.t("Đến ngày", "To")) input type="date" name="to" value=(f.to); }
                label { (l.t("Kết quả", "Outcome"))
                    select name="outcome" {
                        option value="" { (l.t("tất cả", "all")) }
                        @for o in ["played", "late", "preempted", "failed", "missed"] {
                            option value=(o) selected[f.outcome == o] { (outcome_name(l, o)) }
                        }
                    }
                }
            }
            button type="submit" { (l.t("Lọc", "Filter")) }
        }
        p {
            (layout::number(records.len() as u64)) " " (l.t("bản ghi", "records")) " · "
            a href=(format!("/playlog?{}", f.encoded("csv", &f.after))) { (l.t("Tải CSV", "Download CSV")) }
            @if let Some(next) = &next {
                " · " a href=(format!("/playlog?{}", f.encoded("", &next.to_string()))) { (l.t("Trang sau", "Next page")) }
            }
        }
        (records_table(&frame, &records))
    };
    answer(StatusCode::OK, layout::page(&frame, l.t("Nhật ký phát", "Playlog"), body))
}
