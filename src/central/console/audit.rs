//! `/audit`: the audit trail for admins — who did what, when, from where — newest first,
//! the same lines `loa central audit` prints and `GET /api/v1/audit` returns.

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::response::Response;
use maud::html;

use super::layout::{self, Frame, answer};
use crate::central::AppState;
use crate::store::Role;

/// Lines shown (the newest).
pub const SHOWN: usize = 500;

pub async fn page(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (session, lang) = match super::viewer(&state, &request) {
        Ok(s) => s,
        Err(r) => return r,
    };
    let frame = Frame { state: &state, session: &session, lang };
    let l = lang;
    if session.caller.role != Role::Admin {
        return layout::error_page(
            &frame,
            StatusCode::FORBIDDEN,
            l.t(
                "Chỉ quản trị viên được xem nhật ký thao tác.",
                "Only an admin may read the audit trail.",
            ),
        );
    }
    let lines = match state.store.audit_log(SHOWN) {
        Ok(lines) => lines,
        Err(e) => return super::refused(&frame, &e.into()),
    };
    let body = html! {
        div.table-wrap { table #audit {
            thead { tr {
                th { (l.t("Lúc", "When")) } th { (l.t("Ai", "Who")) } th { (l.t("Thao tác", "Action")) }
                th { (l.t("Đối tượng", "Subject")) } th { (l.t("Từ", "From")) } th { (l.t("Chi tiết", "Detail")) }
            } }
            tbody {
                @for e in &lines {
                    tr data-action=(e.action) {
                        td { (frame.time(e.at)) } td { (e.who) } td { (e.action) }
                        td { (e.subject) } td { (e.from) } td { (e.detail) }
                    }
                }
            }
        } }
    };
    answer(StatusCode::OK, layout::page(&frame, l.t("Nhật ký thao tác", "Audit trail"), body))
}
