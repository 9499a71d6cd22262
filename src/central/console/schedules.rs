//! `/schedules`: paste or pick a schedule file, check it — the same `file:line:column`
//! diagnostics as `loa schedule check`, each shown under its line of the file — and load
//! it for stations or an area through `api::load_schedule`, the function behind
//! `POST /api/v1/schedules` (same role checks, same audit line). The history of loads
//! below lists those that reached a station the person may see.
//!
//! Audio: an item's `audio = "sha256:…"` is used as it is; a file name is matched to the
//! library entry whose title is that name or its stem (`ban-tin.mp3` → `ban-tin`), so a
//! file uploaded on `/audio` or with `loa audio add` under that title is found.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::{Markup, html};
use serde::Deserialize;

use super::layout::{self, Frame, answer};
use crate::central::{ApiError, AppState, manifest};
use crate::protocol::{LoadScheduleRequest, Target};
use crate::schedule::AudioRef;
use crate::store::Role;

/// Loads listed.
pub const HISTORY: usize = 50;

#[derive(Debug, Clone, Default, Deserialize)]
pub struct ScheduleForm {
    #[serde(default)]
    origin: String,
    #[serde(default)]
    source: String,
    #[serde(default)]
    to: String,
    /// `check` or `load`.
    #[serde(default)]
    action: String,
}

/// Diagnostics by line number (`origin:LINE:COLUMN: …`); those without one under 0.
fn by_line(origin: &str, diagnostics: &[String]) -> BTreeMap<usize, Vec<String>> {
    let mut out: BTreeMap<usize, Vec<String>> = BTreeMap::new();
    for d in diagnostics {
        let line = d
            .strip_prefix(origin)
            .and_then(|rest| rest.strip_prefix(':'))
            .and_then(|rest| rest.split(':').next())
            .and_then(|n| n.parse::<usize>().ok())
            .unwrap_or(0);
        out.entry(line).or_default().push(d.clone());
    }
    out
}

/// The file with its diagnostics under the lines they name.
fn annotated(origin: &str, source: &str, diagnostics: &[String]) -> Markup {
    let notes = by_line(origin, diagnostics);
    html! {
        @if let Some(general) = notes.get(&0) {
            @for d in general { p.error { (d) } }
        }
        div.table-wrap { table.source {
            tbody {
                @for (i, text) in source.lines().enumerate() {
                    @let n = i + 1;
                    tr.problem[notes.contains_key(&n)] id=(format!("line-{n}")) {
                        td.muted { (n) } td { code { (text) } }
                    }
                    @if let Some(ds) = notes.get(&n) {
                        @for d in ds { tr.diagnostic { td {} td { span.bad { (d) } } } }
                    }
                }
            }
        } }
    }
}

/// The audio map for a console load: sha256 references as they are, file names matched
/// to library titles.
fn audio_map(
    state: &AppState,
    schedule: &crate::schedule::Schedule,
) -> Result<BTreeMap<String, String>, ApiError> {
    let library = state.store.library(10_000)?;
    let mut map = BTreeMap::new();
    for item in &schedule.items {
        if let AudioRef::Path(path) = &item.audio {
            let written = path.to_string_lossy().to_string();
            let name =
                path.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            let stem =
                path.file_stem().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
            if let Some(entry) = library
                .iter()
                .find(|e| e.info.title == written || e.info.title == name || e.info.title == stem)
            {
                map.insert(written, entry.info.sha256.clone());
            }
        }
    }
    Ok(map)
}

/// Times shown in one cell of the week grid; more are counted.
const CELL_TIMES: usize = 6;
/// Items shown in the week grid.
const GRID_ITEMS: usize = 200;

/// What the file plays in the coming week (from next Monday, in the file's zone): one
/// row per item with its layer and priority, one column per day, the times in each cell.
fn week(frame: &Frame<'_>, schedule: &crate::schedule::Schedule) -> Markup {
    use chrono::{Datelike, TimeZone};
    let l = frame.lang;
    let tz = schedule.timezone;
    let today = frame.state.clock.now().with_timezone(&tz).date_naive();
    let monday =
        today + chrono::Duration::days(7 - i64::from(today.weekday().num_days_from_monday()));
    let start = monday.and_hms_opt(0, 0, 0).and_then(|m| tz.from_local_datetime(&m).earliest());
    let Some(start) = start.map(|s| s.with_timezone(&chrono::Utc)) else { return html! {} };
    // Grouped once by (item, weekday): a file may hold 35,000 plays a week.
    let mut cells: std::collections::HashMap<(String, u32), Vec<String>> = Default::default();
    for o in schedule.occurrences(start, start + chrono::Duration::days(7)) {
        let t = o.planned.with_timezone(&tz);
        cells
            .entry((o.item_id, t.weekday().num_days_from_monday()))
            .or_default()
            .push(t.format("%H:%M").to_string());
    }
    let days = [
        l.t("T2", "Mon"),
        l.t("T3", "Tue"),
        l.t("T4", "Wed"),
        l.t("T5", "Thu"),
        l.t("T6", "Fri"),
        l.t("T7", "Sat"),
        l.t("CN", "Sun"),
    ];
    html! {
        h2 { (l.t("Tuần tới", "Next week")) " (" (monday.format("%d/%m/%Y")) ")" }
        div.table-wrap { table #week {
            thead { tr { th { (l.t("Mục", "Item")) } @for d in days { th { (d) } } } }
            tbody {
                @for item in schedule.items.iter().take(GRID_ITEMS) {
                    tr data-item=(item.id) {
                        td { (item.title) br; span.muted {
                            (if schedule.layer == crate::schedule::Layer::Local { l.t("địa phương", "local") } else { l.t("tỉnh", "provincial") })
                            " · " (format!("{:?}", item.priority).to_lowercase())
                        } }
                        @for day in 0..7u32 {
                            @let times = cells.get(&(item.id.clone(), day)).cloned().unwrap_or_default();
                            td data-day=(day) {
                                (times.iter().take(CELL_TIMES).cloned().collect::<Vec<_>>().join(" "))
                                @if times.len() > CELL_TIMES { " +" (times.len() - CELL_TIMES) }
                            }
                        }
                    }
                }
            }
        } }
    }
}

fn form(frame: &Frame<'_>, f: &ScheduleForm) -> Result<Markup, ApiError> {
    let l = frame.lang;
    let role = &frame.session.caller.role;
    let stations: Vec<_> =
        frame.state.store.stations()?.into_iter().filter(|s| role.sees(s)).collect();
    let areas: BTreeSet<&str> = stations.iter().map(|s| s.district.as_str()).collect();
    Ok(html! {
        form.stack #schedule method="post" action="/schedules" {
            (frame.csrf())
            label { (l.t("Chọn tệp lịch (.toml)", "Pick a schedule file (.toml)"))
                input type="file" accept=".toml,text/plain" data-fills="#source" data-names="#origin"; }
            label { (l.t("Tên tệp", "File name")) input #origin type="text" name="origin" value=(if f.origin.is_empty() { "lich.toml" } else { &f.origin }) maxlength="200"; }
            label { (l.t("Nội dung", "Content")) textarea #source name="source" rows="14" { (f.source) } }
            label { (l.t("Gửi đến", "To"))
                select name="to" {
                    @if *role == Role::Admin { option value="all" selected[f.to == "all"] { (l.t("Tất cả các trạm", "All stations")) } }
                    @for a in &areas { @let v = format!("district:{a}"); option value=(v) selected[f.to == v] { (l.t("Khu vực", "Area")) " " (a) } }
                    @for s in &stations { option value=(s.id) selected[f.to == s.id] { (l.t("Trạm", "Station")) " " (s.id) } }
                }
            }
            div.row {
                button name="action" value="check" type="submit" { (l.t("Kiểm tra", "Check")) }
                button name="action" value="load" type="submit" { (l.t("Kiểm tra và nạp", "Check and load")) }
            }
        }
    })
}

fn history(frame: &Frame<'_>) -> Result<Markup, ApiError> {
    let l = frame.lang;
    let role = &frame.session.caller.role;
    let visible: BTreeSet<String> =
        frame.state.store.stations()?.into_iter().filter(|s| role.sees(s)).map(|s| s.id).collect();
    let loads: Vec<_> = frame
        .state
        .store
        .schedule_loads(HISTORY)?
        .into_iter()
        .filter(|load| match &load.stations {
            Some(ids) => ids.iter().any(|id| visible.contains(id)),
            None => *role == Role::Admin || *role == Role::Viewer,
        })
        .collect();
    Ok(html! {
        div.table-wrap { table #loads {
            thead { tr { th { "#" } th { (l.t("Tệp", "File")) } th { (l.t("Lớp", "Layer")) } th { (l.t("Người nạp", "By")) } th { (l.t("Lúc", "At")) } th { (l.t("Trạm", "Stations")) } } }
            tbody {
                @for load in &loads {
                    tr {
                        td { (load.id) } td { (load.origin) }
                        td { (if load.layer == crate::schedule::Layer::Local { l.t("địa phương", "local") } else { l.t("tỉnh", "provincial") }) }
                        td { (load.loaded_by) } td { (frame.time(load.loaded_at)) }
                        td { @match &load.stations {
                            Some(ids) => (ids.iter().filter(|id| visible.contains(*id)).cloned().collect::<Vec<_>>().join(", ")),
                            None => "–",
                        } }
                    }
                }
            }
        } }
    })
}

fn whole(frame: &Frame<'_>, f: &ScheduleForm, result: Markup) -> Response {
    let l = frame.lang;
    let built = form(frame, f).and_then(|form| Ok((form, history(frame)?)));
    match built {
        Ok((form, history)) => answer(
            StatusCode::OK,
            layout::page(
                frame,
                l.t("Lịch phát", "Schedules"),
                html! { (result) (form) h2 { (l.t("Các lần nạp", "Loads")) } (history) },
            ),
        ),
        Err(e) => super::refused(frame, &e),
    }
}

pub async fn page(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (session, lang) = match super::viewer(&state, &request) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let frame = Frame { state: &state, session: &session, lang };
    whole(&frame, &ScheduleForm::default(), html! {})
}

pub async fn submit(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (session, lang, f) = match super::posted::<ScheduleForm>(
        &state,
        request,
        crate::central::body::CONSOLE_SCHEDULE_LIMIT,
    )
    .await
    {
        Ok(s) => s,
        Err(r) => return r,
    };
    let frame = Frame { state: &state, session: &session, lang };
    let l = lang;
    let origin = f.origin.trim().to_string();
    let checked = manifest::check_schedule(&f.source, &origin);
    let schedule = match checked {
        Err(diagnostics) => {
            let result = html! {
                p.error #diagnostics { (diagnostics.len()) " " (l.t("lỗi trong tệp; không có gì thay đổi.", "errors in the file; nothing changed.")) }
                (annotated(&origin, &f.source, &diagnostics))
            };
            return whole(&frame, &f, result);
        }
        Ok(s) => s,
    };
    if f.action != "load" {
        let result = html! {
            p.notice #checked { (l.t("Tệp hợp lệ", "The file is valid")) ": " (schedule.items.len()) " " (l.t("mục", "items")) "." }
            (week(&frame, &schedule))
        };
        return whole(&frame, &f, result);
    }
    let loaded = async {
        let to: Target = f.to.parse().map_err(ApiError::BadRequest)?;
        let audio = audio_map(&state, &schedule)?;
        let request =
            LoadScheduleRequest { origin: origin.clone(), source: f.source.clone(), audio, to };
        crate::central::api::load_schedule(&state, &session.caller, request).await
    }
    .await;
    let result = match loaded {
        Ok(done) => html! {
            p.notice #loaded {
                (l.t("Đã nạp thành lịch", "Loaded as schedule")) " #" (done.schedule_id) " " (l.t("cho", "for")) " "
                (done.stations.len()) " " (l.t("trạm", "stations")) ": "
                (done.stations.iter().map(|(id, v)| format!("{id} v{v}")).collect::<Vec<_>>().join(", "))
            }
        },
        Err(ApiError::Schedule(diagnostics)) => html! {
            p.error #diagnostics { (l.t("Không nạp được; không có gì thay đổi.", "Not loaded; nothing changed.")) }
            (annotated(&origin, &f.source, &diagnostics))
        },
        Err(e) => html! { p.error #refused { (e.to_string()) } },
    };
    whole(&frame, &f, result)
}
