//! `/reports`: the day's report as `loa report` gives it — per area, planned provincial
//! items against what aired, drawn as an inline SVG bar (no script, no image file) —
//! then every item that did not simply air, and the CSV of every row
//! (`/reports?format=csv&date=…`). Built by [`crate::central::playlog::daily_report`],
//! the function behind `GET /api/v1/report`, with the person's role, off the async
//! workers.

use std::sync::Arc;

use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Frame, Lang, answer};
use crate::central::playlog::{ReportQuery, daily_report};
use crate::central::{ApiError, AppState};
use crate::protocol::text::csv_field;
use crate::protocol::{DailyReport, DistrictTotals, ReportStatus};

/// Rows listed under the chart (the CSV has them all).
pub const LISTED: usize = 500;

#[derive(Debug, Default, Clone, Deserialize)]
pub struct ReportForm {
    #[serde(default)]
    date: String,
    #[serde(default)]
    area: String,
    #[serde(default)]
    format: String,
}

fn status_name(l: Lang, s: ReportStatus) -> &'static str {
    match s {
        ReportStatus::Aired => l.t("đã phát", "aired"),
        ReportStatus::Late => l.t("phát muộn", "late"),
        ReportStatus::Preempted => l.t("bị ngắt", "pre-empted"),
        ReportStatus::Failed => l.t("lỗi", "failed"),
        ReportStatus::Missed => l.t("bỏ lỡ", "missed"),
        ReportStatus::NotReported => l.t("chưa báo cáo", "not reported"),
        ReportStatus::Upcoming => l.t("chưa đến giờ", "upcoming"),
    }
}

fn colour(s: ReportStatus) -> &'static str {
    match s {
        ReportStatus::Aired => "#1b7a35",
        ReportStatus::Late => "#7fb069",
        ReportStatus::Preempted => "#e0a800",
        ReportStatus::Failed => "#c62828",
        ReportStatus::Missed => "#8e24aa",
        ReportStatus::NotReported => "#7b8794",
        ReportStatus::Upcoming => "#cfd6dd",
    }
}

/// One area's counts as a 100-wide stacked bar.
fn bar(d: &DistrictTotals) -> Markup {
    let total = d.planned.max(1) as f64;
    let mut x = 0.0;
    let mut parts = Vec::new();
    for s in ReportStatus::ALL {
        let n = d.counts.get(s.as_str()).copied().unwrap_or(0);
        if n > 0 {
            let w = 100.0 * n as f64 / total;
            parts.push((x, w, s, n));
            x += w;
        }
    }
    html! {
        svg.bar viewBox="0 0 100 6" preserveAspectRatio="none" role="img" aria-label=(d.district) {
            @for (x, w, s, n) in parts {
                rect x=(format!("{x:.2}")) y="0" width=(format!("{w:.2}")) height="6" fill=(colour(s)) {
                    title { (s.as_str()) ": " (n) }
                }
            }
        }
    }
}

fn csv(report: &DailyReport, tz: chrono_tz::Tz) -> Response {
    let mut out = String::from("station,area,item_id,title,planned,status,delay_ms,detail\n");
    for r in &report.rows {
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{}\n",
            csv_field(&r.station),
            csv_field(&r.district),
            csv_field(&r.item_id),
            csv_field(&r.title),
            r.planned.with_timezone(&tz).to_rfc3339(),
            r.status.as_str(),
            r.delay_ms.map(|d| d.to_string()).unwrap_or_default(),
            csv_field(&r.detail)
        ));
    }
    (
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8"),
            (header::CONTENT_DISPOSITION, "attachment; filename=\"report.csv\""),
        ],
        out,
    )
        .into_response()
}

pub async fn page(
    State(state): State<Arc<AppState>>,
    Query(form): Query<ReportForm>,
    request: Request,
) -> Response {
    let (session, lang) = match super::viewer(&state, &request) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let frame = Frame { state: &state, session: &session, lang };
    let l = lang;
    let tz = state.config.timezone;
    let today = state.clock.now().with_timezone(&tz).date_naive();
    let date = if form.date.trim().is_empty() {
        today.format("%Y-%m-%d").to_string()
    } else {
        form.date.trim().to_string()
    };
    if NaiveDate::parse_from_str(&date, "%Y-%m-%d").is_err() {
        let e = ApiError::BadRequest(format!(
            "date {:?} is not a date (YYYY-MM-DD)",
            crate::protocol::bounds::clip(&date)
        ));
        return super::refused(&frame, &e);
    }
    let area = form.area.trim().chars().take(200).collect::<String>();
    let query = ReportQuery {
        date: date.clone(),
        tz: Some(tz.name().to_string()),
        station: None,
        district: (!area.is_empty()).then(|| area.clone()),
    };
    let (role, shared) = (session.caller.role.clone(), state.clone());
    let built = tokio::task::spawn_blocking(move || {
        let day = NaiveDate::parse_from_str(&query.date, "%Y-%m-%d").unwrap_or_default();
        daily_report(&shared, &role, day, tz, &query)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("report task: {e}")))
    .and_then(|r| r);
    let report = match built {
        Ok(r) => r,
        Err(e) => return super::refused(&frame, &e),
    };
    if form.format == "csv" {
        return csv(&report, tz);
    }
    let query_string = serde_urlencoded::to_string([
        ("date", date.as_str()),
        ("area", area.as_str()),
        ("format", "csv"),
    ])
    .unwrap_or_default();
    let trouble: Vec<_> = report
        .rows
        .iter()
        .filter(|r| r.status != ReportStatus::Aired && r.status != ReportStatus::Upcoming)
        .take(LISTED)
        .collect();
    let body = html! {
        form.stack method="get" action="/reports" {
            div.row {
                label { (l.t("Ngày", "Day")) input type="date" name="date" value=(date); }
                label { (l.t("Khu vực", "Area")) input type="text" name="area" value=(area) maxlength="200"; }
            }
            button type="submit" { (l.t("Xem", "Show")) }
        }
        p { a href=(format!("/reports?{query_string}")) { (l.t("Tải CSV", "Download CSV")) } }
        div.table-wrap { table #areas {
            thead { tr {
                th { (l.t("Khu vực", "Area")) } th { (l.t("Trạm", "Stations")) } th { (l.t("Dự kiến", "Planned")) }
                th { (l.t("Đã phát", "Aired")) } th { (l.t("Biểu đồ", "Chart")) }
            } }
            tbody {
                @for d in &report.districts {
                    tr data-area=(d.district) {
                        td { (d.district) } td { (d.stations) } td { (d.planned) }
                        td { (d.counts.get("aired").copied().unwrap_or(0) + d.counts.get("late").copied().unwrap_or(0)) }
                        td { (bar(d)) }
                    }
                }
            }
        } }
        p.legend {
            @for s in ReportStatus::ALL {
                span { svg width="10" height="10" { rect width="10" height="10" fill=(colour(s)) {} } " " (status_name(l, s)) " " }
            }
        }
        h2 { (l.t("Không phát đúng", "Did not simply air")) " (" (trouble.len()) ")" }
        div.table-wrap { table #trouble {
            thead { tr {
                th { (l.t("Trạm", "Station")) } th { (l.t("Mục", "Item")) } th { (l.t("Dự kiến", "Planned")) }
                th { (l.t("Kết quả", "Status")) } th { (l.t("Chi tiết", "Detail")) }
            } }
            tbody {
                @for r in &trouble {
                    tr data-status=(r.status.as_str()) {
                        td { (r.station) } td { (r.title) } td { (frame.time(r.planned)) }
                        td.bad { (status_name(l, r.status)) } td { (r.detail) }
                    }
                }
            }
        } }
    };
    answer(
        StatusCode::OK,
        layout::page(&frame, &format!("{} {date}", l.t("Báo cáo ngày", "Daily report")), body),
    )
}
