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

pub fn operator_auth(state: &AppState, headers: &HeaderMap) -> Result<Role, ApiError> {
    let token = bearer(headers).ok_or(ApiError::Unauthorized)?;
    state.store.operator_by_token(&hash_token(&token))?.ok_or(ApiError::Unauthorized)
}

/// Parses a JSON body, refusing it with a clear 400.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::BadRequest(format!("{what} is not valid JSON of the expected shape: {e}"))
    })
}
