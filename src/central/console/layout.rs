//! The frame every console page shares — head, navigation, the person and the sign-out
//! form — the language switch (Vietnamese first, English by the `loa_lang` cookie), times
//! in the province's zone and numbers in Vietnamese format, and the embedded assets
//! (htmx, the stylesheet): nothing is fetched from the internet.

use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};

use super::session::Session;
use crate::central::AppState;
use crate::store::Role;

/// htmx 2.0.11 (Zero-Clause BSD, `assets/htmx.LICENSE`).
pub const HTMX: &[u8] = include_bytes!("assets/htmx.min.js");
/// The console's only stylesheet, written by hand.
pub const CSS: &str = include_str!("assets/console.css");
/// The console's own script (a picked file read into a form field).
pub const JS: &str = include_str!("assets/console.js");
/// The speak-live page's script and its audio worklet (loaded by `/live` only).
pub const LIVE_JS: &str = include_str!("assets/live.js");
pub const LIVE_WORKLET: &str = include_str!("assets/live-worklet.js");
/// Where they are served (versioned: cached for a day).
pub const HTMX_PATH: &str = "/assets/htmx-2.0.11.min.js";
pub const CSS_PATH: &str = "/assets/console-1.css";
pub const JS_PATH: &str = "/assets/console-1.js";
pub const LIVE_JS_PATH: &str = "/assets/live-1.js";
pub const LIVE_WORKLET_PATH: &str = "/assets/live-worklet-1.js";

/// The language a page is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Vi,
    En,
}

impl Lang {
    /// `loa_lang=en` chooses English; anything else is Vietnamese.
    pub fn of(headers: &HeaderMap) -> Lang {
        let english = headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .any(|pair| pair.trim() == "loa_lang=en");
        if english { Lang::En } else { Lang::Vi }
    }

    /// The Vietnamese or the English text.
    pub fn t<'a>(self, vi: &'a str, en: &'a str) -> &'a str {
        match self {
            Lang::Vi => vi,
            Lang::En => en,
        }
    }

    fn code(self) -> &'static str {
        match self {
            Lang::Vi => "vi",
            Lang::En => "en",
        }
    }
}

/// What every page needs to draw its frame.
pub struct Frame<'a> {
    pub state: &'a AppState,
    pub session: &'a Session,
    pub lang: Lang,
}

impl Frame<'_> {
    /// `at` in the province's zone: `06/12/2026 05:30:00` (day first, as in Vietnam).
    pub fn time(&self, at: DateTime<Utc>) -> String {
        at.with_timezone(&self.state.config.timezone).format("%d/%m/%Y %H:%M:%S").to_string()
    }

    /// A hidden field carrying this session's CSRF token (every form has one).
    pub fn csrf(&self) -> Markup {
        html! { input type="hidden" name="csrf" value=(self.session.csrf); }
    }

    /// `x` with `places` decimals, a comma before them in Vietnamese (`-16,2`).
    pub fn decimal(&self, x: f64, places: usize) -> String {
        decimal(self.lang, x, places)
    }

    pub fn is_admin(&self) -> bool {
        self.session.user.role == Role::Admin
    }
}

/// `n` with `.` between thousands, as Vietnamese write it (`1.234`).
pub fn number(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push('.');
        }
        out.push(c);
    }
    out
}

/// `x` with `places` decimals, a comma before them in Vietnamese.
pub fn decimal(lang: Lang, x: f64, places: usize) -> String {
    let text = format!("{x:.places$}");
    if lang == Lang::Vi { text.replace('.', ",") } else { text }
}

/// The same with a sign (`+0,3`).
pub fn signed(lang: Lang, x: f64, places: usize) -> String {
    let text = decimal(lang, x, places);
    if x >= 0.0 { format!("+{text}") } else { text }
}

/// A whole page: head, navigation, `title`, `body`.
pub fn page(frame: &Frame<'_>, title: &str, body: Markup) -> Markup {
    let l = frame.lang;
    let user = &frame.session.user;
    html! {
        (DOCTYPE)
        html lang=(l.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · loa" }
                link rel="stylesheet" href=(CSS_PATH);
                script src=(HTMX_PATH) defer {}
                script src=(JS_PATH) defer {}
            }
            body hx-headers=(format!(r#"{{"x-csrf-token": "{}"}}"#, frame.session.csrf)) {
                header.top {
                    nav {
                        a href="/" { (l.t("Trạm", "Stations")) }
                        a href="/bulletins" { (l.t("Bản tin khẩn", "Bulletins")) }
                        a href="/schedules" { (l.t("Lịch phát", "Schedules")) }
                        a href="/audio" { (l.t("Âm thanh", "Audio")) }
                        a href="/playlog" { (l.t("Nhật ký phát", "Playlog")) }
                        a href="/reports" { (l.t("Báo cáo", "Reports")) }
                        @if frame.is_admin() {
                            a href="/audit" { (l.t("Nhật ký thao tác", "Audit")) }
                        }
                    }
                    div.who {
                        span { (user.name) " · " (user.role.to_string()) }
                        form method="post" action="/lang" {
                            (frame.csrf())
                            input type="hidden" name="lang" value=(if l == Lang::Vi { "en" } else { "vi" });
                            button.link type="submit" { (l.t("English", "Tiếng Việt")) }
                        }
                        form method="post" action="/logout" {
                            (frame.csrf())
                            button.link type="submit" { (l.t("Đăng xuất", "Sign out")) }
                        }
                    }
                }
                main {
                    h1 { (title) }
                    (body)
                }
            }
        }
    }
}

/// A page without the frame (login, errors before a session exists).
pub fn bare(lang: Lang, title: &str, body: Markup) -> Markup {
    html! {
        (DOCTYPE)
        html lang=(lang.code()) {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (title) " · loa" }
                link rel="stylesheet" href=(CSS_PATH);
            }
            body { main.narrow { h1 { (title) } (body) } }
        }
    }
}

/// A refusal or failure, as a fragment (`p.error`) that says what went wrong.
pub fn error_box(message: &str) -> Markup {
    html! { p.error role="alert" { (message) } }
}

/// An HTML answer with `status`.
pub fn answer(status: StatusCode, markup: Markup) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8"),
            (header::CACHE_CONTROL, "no-store"),
            (header::X_FRAME_OPTIONS, "DENY"),
        ],
        markup.into_string(),
    )
        .into_response()
}

/// An error page in the frame.
pub fn error_page(frame: &Frame<'_>, status: StatusCode, message: &str) -> Response {
    let l = frame.lang;
    answer(
        status,
        page(frame, l.t("Không thực hiện được", "Could not be done"), error_box(message)),
    )
}

/// The embedded assets.
pub fn asset(path: &str) -> Response {
    let (kind, bytes): (&str, &[u8]) = match path {
        HTMX_PATH => ("text/javascript; charset=utf-8", HTMX),
        CSS_PATH => ("text/css; charset=utf-8", CSS.as_bytes()),
        JS_PATH => ("text/javascript; charset=utf-8", JS.as_bytes()),
        LIVE_JS_PATH => ("text/javascript; charset=utf-8", LIVE_JS.as_bytes()),
        LIVE_WORKLET_PATH => ("text/javascript; charset=utf-8", LIVE_WORKLET.as_bytes()),
        _ => return StatusCode::NOT_FOUND.into_response(),
    };
    ([(header::CONTENT_TYPE, kind), (header::CACHE_CONTROL, "public, max-age=86400")], bytes)
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_written_the_vietnamese_way() {
        assert_eq!(number(0), "0");
        assert_eq!(number(999), "999");
        assert_eq!(number(1000), "1.000");
        assert_eq!(number(1_234_567), "1.234.567");
    }

    #[test]
    fn decimals_take_a_comma_in_vietnamese() {
        assert_eq!(decimal(Lang::Vi, -16.25, 1), "-16,2");
        assert_eq!(decimal(Lang::En, -16.25, 1), "-16.2");
        assert_eq!(signed(Lang::Vi, 0.3, 1), "+0,3");
        assert_eq!(signed(Lang::Vi, -0.3, 1), "-0,3");
    }

    #[test]
    fn english_only_when_asked() {
        let mut h = HeaderMap::new();
        assert_eq!(Lang::of(&h), Lang::Vi);
        h.insert(header::COOKIE, "a=b; loa_lang=en".parse().unwrap());
        assert_eq!(Lang::of(&h), Lang::En);
    }
}
