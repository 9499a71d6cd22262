//! `/login` (fields `username`, `password`), `/logout`, and the language switch. A wrong
//! name and a wrong password get the same answer after the same work (an unknown name is
//! checked against a dummy hash); past [`session::FREE_FAILURES`] failures a name or an
//! address must wait, longer with each failure, before trying again.

use std::sync::{Arc, OnceLock};

use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use maud::html;
use serde::Deserialize;

use super::layout::{Lang, answer, bare, error_box};
use super::session;
use crate::central::people;
use crate::central::{AppState, bulletins::Actor};

#[derive(Debug, Deserialize)]
struct LoginForm {
    #[serde(default)]
    username: String,
    #[serde(default)]
    password: String,
}

fn form(lang: Lang, name: &str, problem: Option<&str>) -> maud::Markup {
    let l = lang;
    bare(
        l,
        l.t("Đăng nhập", "Sign in"),
        html! {
            @if let Some(p) = problem { (error_box(p)) }
            form.stack method="post" action="/login" {
                label { (l.t("Tên đăng nhập", "User name"))
                    input type="text" name="username" value=(name) autocomplete="username" required autofocus; }
                label { (l.t("Mật khẩu", "Password"))
                    input type="password" name="password" autocomplete="current-password" required; }
                button type="submit" { (l.t("Đăng nhập", "Sign in")) }
            }
        },
    )
}

pub async fn show(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let lang = Lang::of(request.headers());
    match session::current(&state, request.headers(), request.extensions()) {
        Ok(Some(_)) => super::see_other("/"),
        _ => answer(StatusCode::OK, form(lang, "", None)),
    }
}

/// A hash no password matches, checked when the name is unknown so both refusals cost
/// the same.
fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        people::hash_password("no password matches this one").unwrap_or_else(|_| "-".into())
    })
}

/// Whether a cross-site page is posting the form: an `Origin` that is not this host.
fn foreign_origin(headers: &HeaderMap) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) else {
        return false;
    };
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok()).unwrap_or("");
    let origin_host = origin.split("://").nth(1).unwrap_or(origin);
    origin != "null" && origin_host != host
}

pub async fn submit(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let lang = Lang::of(request.headers());
    let l = lang;
    if foreign_origin(request.headers()) {
        return answer(
            StatusCode::FORBIDDEN,
            form(
                lang,
                "",
                Some(
                    l.t("Yêu cầu từ trang khác bị từ chối.", "Refused: posted from another site."),
                ),
            ),
        );
    }
    let (from, address) = session::peer(request.extensions());
    let tls = session::is_tls(request.extensions());
    let body =
        match crate::central::body::read(request.into_body(), crate::central::body::LOGIN_LIMIT)
            .await
        {
            Ok(b) => b,
            Err(e) => return answer(e.status(), form(lang, "", Some(&e.to_string()))),
        };
    let Ok(LoginForm { username, password }) = serde_urlencoded::from_bytes::<LoginForm>(&body)
    else {
        return answer(
            StatusCode::BAD_REQUEST,
            form(lang, "", Some(l.t("Biểu mẫu không hợp lệ.", "The form is not valid."))),
        );
    };
    let username = username.trim().to_string();
    let shown: String = username.chars().take(64).collect();
    let now = state.clock.now();
    let keys = session::keys(&username, &address);
    match session::must_wait(&state, &keys, now) {
        Ok(Some(until)) => {
            let at = until.with_timezone(&state.config.timezone).format("%H:%M:%S");
            let message = match l {
                Lang::Vi => format!("Đăng nhập sai quá nhiều lần. Hãy thử lại sau {at}."),
                Lang::En => format!("Too many failed sign-ins. Try again after {at}."),
            };
            tracing::warn!(user = %shown, %address, "login refused: waiting after failures");
            return answer(StatusCode::TOO_MANY_REQUESTS, form(lang, &shown, Some(&message)));
        }
        Ok(None) => {}
        Err(e) => return answer(e.status(), form(lang, &shown, Some(&e.to_string()))),
    }
    let user = match state.store.user(&username) {
        Ok(u) => u.filter(|u| !u.disabled),
        Err(e) => {
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                form(lang, &shown, Some(&e.to_string())),
            );
        }
    };
    let hash = user.as_ref().map_or_else(|| dummy_hash().to_string(), |u| u.password_hash.clone());
    let matches = people::verify_off_workers(password, hash).await && user.is_some();
    let Some(user) = user.filter(|_| matches) else {
        if let Err(e) = session::failed(&state, &keys, now) {
            tracing::error!("cannot count a failed login: {e}");
        }
        tracing::warn!(user = %shown, %address, "login refused: wrong name or password");
        return answer(
            StatusCode::UNAUTHORIZED,
            form(
                lang,
                &shown,
                Some(l.t("Sai tên đăng nhập hoặc mật khẩu.", "Wrong user name or password.")),
            ),
        );
    };
    let _ = state.store.clear_login_failures(&keys[0]);
    let id = match session::start(&state, &user, &from) {
        Ok(id) => id,
        Err(e) => return answer(e.status(), form(lang, &shown, Some(&e.to_string()))),
    };
    let actor = Actor::new(format!("{} ({})", user.name, user.role), from);
    crate::central::bulletins::issue::audit(
        &state,
        &actor,
        "user.login",
        &format!("user {}", user.name),
        "signed in to the console".into(),
    );
    let mut response = super::see_other("/");
    if let Ok(v) = session::set_cookie(&id, tls).parse() {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

pub async fn logout(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let tls = session::is_tls(request.extensions());
    let (session, _lang, _form) =
        match super::posted::<super::NoFields>(&state, request, super::SMALL_FORM).await {
            Ok(s) => s,
            Err(r) => return r,
        };
    let _ = state.store.end_session(&session.id_hash);
    let mut response = super::see_other("/login");
    if let Ok(v) = session::clear_cookie(tls).parse() {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}

#[derive(Debug, Deserialize)]
pub struct LangForm {
    lang: String,
}

/// Switches the language (a cookie; the page it was asked from is shown again).
pub async fn switch(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let back = request
        .headers()
        .get(header::REFERER)
        .and_then(|v| v.to_str().ok())
        .and_then(|r| r.split_once("://").map(|(_, rest)| rest))
        .and_then(|rest| rest.find('/').map(|i| rest[i..].to_string()))
        .filter(|p| p.starts_with('/') && !p.starts_with("//"))
        .unwrap_or_else(|| "/".into());
    let (_, _, LangForm { lang }) =
        match super::posted::<LangForm>(&state, request, super::SMALL_FORM).await {
            Ok(s) => s,
            Err(r) => return r,
        };
    let value = if lang == "en" { "en" } else { "vi" };
    let mut response = super::see_other(&back);
    if let Ok(v) = format!("loa_lang={value}; Path=/; SameSite=Strict; Max-Age=31536000").parse() {
        response.headers_mut().insert(header::SET_COOKIE, v);
    }
    response
}
