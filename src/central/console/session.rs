//! Console sessions: the cookie (`HttpOnly; SameSite=Strict`, `Secure` under TLS), the
//! 8 h idle timeout, the CSRF token every POST must carry, and the growing delay after
//! failed logins, per person and per address. The browser holds a random session id;
//! the store keeps only its sha256. A session resolves to the same [`Caller`] an
//! operator token does, so every page is scoped exactly as the API is.

use axum::http::{HeaderMap, header};
use base64::Engine;
use chrono::{DateTime, Duration, Utc};
use rand::RngCore;

use crate::central::auth::Caller;
use crate::central::server::Connection;
use crate::central::{ApiError, AppState};
use crate::store::{SessionRow, User, hash_token};

/// The session cookie's name.
pub const COOKIE: &str = "loa_session";
/// A session unused this long ends.
pub const IDLE: Duration = Duration::hours(8);
/// Failed logins under one key before each further try must wait.
pub const FREE_FAILURES: u32 = 5;
/// The first wait after [`FREE_FAILURES`]; it doubles with each failure after that.
pub const FIRST_DELAY: Duration = Duration::seconds(5);
/// The longest wait.
pub const MAX_DELAY: Duration = Duration::minutes(15);
/// Failure counters untouched this long are forgotten.
pub const FORGET_AFTER: Duration = Duration::hours(24);
/// Failure counters kept at most (the oldest go first): memory stays bounded however
/// many names and addresses are tried.
pub const MAX_COUNTERS: usize = 10_000;
/// Longest cookie header read; a longer one is treated as carrying no session.
const MAX_COOKIE_HEADER: usize = 8 * 1024;

/// A logged-in person on this request.
#[derive(Debug, Clone)]
pub struct Session {
    pub caller: Caller,
    pub user: User,
    /// The token this session's forms carry.
    pub csrf: String,
    /// The sha256 of the session id (to end it at logout).
    pub id_hash: String,
}

fn random_text(bytes: usize) -> String {
    let mut raw = vec![0u8; bytes];
    rand::rng().fill_bytes(&mut raw);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

/// The session id in the request's cookies, if any.
pub fn cookie_id(headers: &HeaderMap) -> Option<String> {
    for value in headers.get_all(header::COOKIE) {
        let text = value.to_str().ok()?;
        if text.len() > MAX_COOKIE_HEADER {
            return None;
        }
        for pair in text.split(';') {
            if let Some((name, id)) = pair.trim().split_once('=')
                && name == COOKIE
                && !id.is_empty()
                && id.len() <= 64
            {
                return Some(id.to_string());
            }
        }
    }
    None
}

/// The `Set-Cookie` value for a new session id.
pub fn set_cookie(id: &str, tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!(
        "{COOKIE}={id}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
        IDLE.num_seconds()
    )
}

/// The `Set-Cookie` value that removes the session cookie.
pub fn clear_cookie(tls: bool) -> String {
    let secure = if tls { "; Secure" } else { "" };
    format!("{COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// Where the request came from, as `Caller::from` and the address counter see it.
pub fn peer(extensions: &axum::http::Extensions) -> (String, String) {
    match extensions.get::<Connection>() {
        Some(c) => (c.peer.to_string(), c.peer.ip().to_canonical().to_string()),
        None => ("-".into(), "-".into()),
    }
}

pub fn is_tls(extensions: &axum::http::Extensions) -> bool {
    extensions.get::<Connection>().is_some_and(|c| c.tls)
}

/// Starts a session for `user`; returns the id the browser keeps.
pub fn start(state: &AppState, user: &User, from: &str) -> Result<String, ApiError> {
    let now = state.clock.now();
    // Sessions idle past the timeout are swept here, so the table never grows with them.
    state.store.end_idle_sessions(now - IDLE)?;
    let id = random_text(32);
    state.store.put_session(&SessionRow {
        id_hash: hash_token(&id),
        user: user.name.clone(),
        csrf: random_text(24),
        created_at: now,
        last_seen: now,
        peer: from.to_string(),
    })?;
    Ok(id)
}

/// The session this request carries, if it is live: known, not idle past [`IDLE`], its
/// person still there and not disabled. Using it counts as activity.
pub fn current(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Result<Option<Session>, ApiError> {
    let Some(id) = cookie_id(headers) else { return Ok(None) };
    let id_hash = hash_token(&id);
    let Some(row) = state.store.session(&id_hash)? else { return Ok(None) };
    let now = state.clock.now();
    if now - row.last_seen > IDLE {
        state.store.end_session(&id_hash)?;
        return Ok(None);
    }
    let user = match state.store.user(&row.user)? {
        Some(u) if !u.disabled => u,
        _ => {
            state.store.end_session(&id_hash)?;
            return Ok(None);
        }
    };
    // One write a minute at most per session, not one per request.
    if now - row.last_seen > Duration::seconds(60) {
        state.store.touch_session(&id_hash, now)?;
    }
    let (from, _) = peer(extensions);
    Ok(Some(Session { caller: Caller::person(&user, from), user, csrf: row.csrf, id_hash }))
}

/// Whether `given` is this session's CSRF token (compared in constant time).
pub fn csrf_ok(session: &Session, given: Option<&str>) -> bool {
    let Some(given) = given else { return false };
    let (a, b) = (given.as_bytes(), session.csrf.as_bytes());
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// How long a key with `failures` failed logins must wait after its last one.
pub fn delay_for(failures: u32) -> Option<Duration> {
    if failures < FREE_FAILURES {
        return None;
    }
    let doublings = (failures - FREE_FAILURES).min(16);
    let delay = FIRST_DELAY * 2i32.pow(doublings);
    Some(delay.min(MAX_DELAY))
}

/// The counter keys of a login attempt: the name tried and the address it came from.
pub fn keys(name: &str, address: &str) -> [String; 2] {
    let name: String = name.chars().take(64).collect();
    [format!("user:{name}"), format!("addr:{address}")]
}

/// When the attempt may be made, if it must still wait: the later of both keys' waits.
pub fn must_wait(
    state: &AppState,
    keys: &[String; 2],
    now: DateTime<Utc>,
) -> Result<Option<DateTime<Utc>>, ApiError> {
    let mut until: Option<DateTime<Utc>> = None;
    for key in keys {
        if let Some(f) = state.store.login_failures(key)?
            && let Some(delay) = delay_for(f.failures)
        {
            let ready = f.last_at + delay;
            if ready > now && until.is_none_or(|u| ready > u) {
                until = Some(ready);
            }
        }
    }
    Ok(until)
}

/// Counts a failed login under both keys.
pub fn failed(state: &AppState, keys: &[String; 2], now: DateTime<Utc>) -> Result<(), ApiError> {
    for key in keys {
        state.store.add_login_failure(key, now, now - FORGET_AFTER, MAX_COUNTERS)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_start_after_five_failures_and_grow_to_a_bound() {
        assert_eq!(delay_for(0), None);
        assert_eq!(delay_for(FREE_FAILURES - 1), None);
        assert_eq!(delay_for(FREE_FAILURES), Some(FIRST_DELAY));
        assert_eq!(delay_for(FREE_FAILURES + 1), Some(FIRST_DELAY * 2));
        assert_eq!(delay_for(FREE_FAILURES + 2), Some(FIRST_DELAY * 4));
        assert_eq!(delay_for(u32::MAX), Some(MAX_DELAY));
    }

    #[test]
    fn the_session_cookie_is_read_bounded_and_set_strict() {
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, "a=b; loa_session=abc; c=d".parse().unwrap());
        assert_eq!(cookie_id(&h).as_deref(), Some("abc"));
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, format!("loa_session={}", "x".repeat(65)).parse().unwrap());
        assert_eq!(cookie_id(&h), None, "one past the id bound is no session");
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            format!("{}; loa_session=abc", "y".repeat(MAX_COOKIE_HEADER)).parse().unwrap(),
        );
        assert_eq!(cookie_id(&h), None, "a header past its bound is not read");
        let c = set_cookie("abc", false);
        assert!(c.contains("HttpOnly") && c.contains("SameSite=Strict") && !c.contains("Secure"));
        assert!(set_cookie("abc", true).ends_with("; Secure"));
    }

    #[test]
    fn a_wrong_or_missing_csrf_token_is_refused() {
        let user = User {
            name: "an".into(),
            role: crate::store::Role::Admin,
            password_hash: String::new(),
            disabled: false,
            created_at: Utc::now(),
            changed_at: Utc::now(),
        };
        let s = Session {
            caller: Caller::person(&user, "-".into()),
            user,
            csrf: "token-123".into(),
            id_hash: "h".into(),
        };
        assert!(csrf_ok(&s, Some("token-123")));
        assert!(!csrf_ok(&s, Some("token-124")));
        assert!(!csrf_ok(&s, Some("token-1234")));
        assert!(!csrf_ok(&s, Some("")));
        assert!(!csrf_ok(&s, None));
    }
}
