//! Who is asking: every request carries a bearer token whose sha256 the store knows —
//! a station's, or an operator's with its role. Nothing else identifies a caller, and a
//! caller is known before any of its body is read ([`super::body`]).

use axum::body::Bytes;
use axum::http::{HeaderMap, header};

use super::{ApiError, AppState};
use crate::store::{Role, Station, hash_token};

pub fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    value.strip_prefix("Bearer ").map(|t| t.trim().to_string())
}

/// The sha256 of the request's bearer token (what the store keeps).
pub fn bearer_hash(headers: &HeaderMap) -> Option<String> {
    bearer(headers).map(|t| hash_token(&t))
}

pub fn station_auth(state: &AppState, headers: &HeaderMap) -> Result<Station, ApiError> {
    let token = bearer(headers).ok_or(ApiError::Unauthorized)?;
    state.store.station_by_token(&hash_token(&token))?.ok_or(ApiError::Unauthorized)
}

/// An operator: admin, district or viewer. A `cap-source` token is refused here (403):
/// it may only post alerts ([`cap_source_auth`]).
pub fn operator_auth(state: &AppState, headers: &HeaderMap) -> Result<Role, ApiError> {
    match any_operator(state, headers)? {
        Role::CapSource => Err(ApiError::Forbidden(
            "a cap-source token may only post CAP alerts (POST /api/v1/cap)".into(),
        )),
        role => Ok(role),
    }
}

/// Who may post a CAP alert: a `cap-source` token or an admin (403 for other roles).
pub fn cap_source_auth(state: &AppState, headers: &HeaderMap) -> Result<Role, ApiError> {
    match any_operator(state, headers)? {
        role @ (Role::CapSource | Role::Admin) => Ok(role),
        role => Err(ApiError::Forbidden(format!(
            "{role} tokens cannot post CAP alerts: use a cap-source token (`loa central token add --role cap-source`)"
        ))),
    }
}

/// An admin token (403 for any other operator).
pub fn admin_auth(state: &AppState, headers: &HeaderMap, what: &str) -> Result<Role, ApiError> {
    match operator_auth(state, headers)? {
        Role::Admin => Ok(Role::Admin),
        role => {
            Err(ApiError::Forbidden(format!("only an admin may {what}; this is a {role} token")))
        }
    }
}

fn any_operator(state: &AppState, headers: &HeaderMap) -> Result<Role, ApiError> {
    let token = bearer(headers).ok_or(ApiError::Unauthorized)?;
    state.store.operator_by_token(&hash_token(&token))?.ok_or(ApiError::Unauthorized)
}

/// Where a request came from, for the audit trail: the peer address central's accept
/// loop recorded (`-` when it was not recorded, e.g. a router called in a test).
pub fn peer(extensions: &axum::http::Extensions) -> String {
    extensions
        .get::<super::server::Connection>()
        .map_or_else(|| "-".to_string(), |c| c.peer.to_string())
}

/// Parses a JSON body, refusing it with a clear 400.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("{what} is not valid JSON of the expected shape: {e}"))
    })
}
