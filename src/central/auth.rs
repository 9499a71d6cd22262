//! Who is asking: every request carries a bearer token whose sha256 the store knows —
//! a station's, or an operator's with its role. Nothing else identifies a caller, and a
//! caller is known before any of its body is read ([`super::body`]).

use axum::body::Bytes;
use axum::http::{HeaderMap, header};

use super::bulletins::Actor;
use super::{ApiError, AppState};
use crate::store::{Role, Station, User, hash_token};

/// An operator as both the API and the console know them: the same [`Role`] (so the same
/// scoping checks, whichever door they came in by) and who they are, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub role: Role,
    /// What the audit trail shows: the role for an operator token (as it always has),
    /// `NAME (role)` for a person logged in to the console.
    pub who: String,
    /// Tells people apart (the two-person rule): `user:NAME`, or `token:LABEL` (a token
    /// without a label: `token:` and the start of its hash).
    pub person: String,
    /// Where the request came from (see [`peer`]).
    pub from: String,
}

impl Caller {
    /// A person logged in to the console.
    pub fn person(user: &User, from: String) -> Self {
        Caller {
            who: format!("{} ({})", user.name, user.role),
            person: format!("user:{}", user.name),
            role: user.role.clone(),
            from,
        }
    }

    /// Who acts, for [`super::bulletins::issue`] and the audit trail.
    pub fn actor(&self) -> Actor {
        Actor::new(self.who.clone(), self.from.clone()).person(self.person.clone())
    }
}

/// The operator behind the request's bearer token (a `cap-source` token is refused, as in
/// [`operator_auth`]).
pub fn operator_caller(
    state: &AppState,
    headers: &HeaderMap,
    extensions: &axum::http::Extensions,
) -> Result<Caller, ApiError> {
    let hash = bearer_hash(headers).ok_or(ApiError::Unauthorized)?;
    let (role, label) = state.store.operator_identity(&hash)?.ok_or(ApiError::Unauthorized)?;
    if role == Role::CapSource {
        return Err(ApiError::Forbidden(
            "a cap-source token may only post CAP alerts (POST /api/v1/cap)".into(),
        ));
    }
    let person = if label.trim().is_empty() {
        format!("token:{}", &hash[..12])
    } else {
        format!("token:{}", label.trim())
    };
    Ok(Caller { who: role.to_string(), role, person, from: peer(extensions) })
}

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
