//! Enrolment codes at central (protocol in [`crate::protocol::enrol`]): issuing one for a
//! station, and the two routes a station calls with it — no bearer token, the code is
//! the credential.
//!
//! - `POST /api/v1/enrol/offer {lookup}` → the station id, the province's public key and
//!   central's CA, with the proof made under the code's key. Nothing secret.
//! - `POST /api/v1/enrol/claim {lookup, claim}` (the station now trusts the CA) → a new
//!   station token; the code is used up, the station's earlier token refused.
//!
//! Bounds: bodies of 1 KiB; a code lives 24 h and is used once; five wrong claims burn
//! it; each address may fail [`FAILURES_PER_MINUTE`] times a minute (then `429`).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use chrono::{DateTime, Utc};

use super::api::Routes;
use super::{ApiError, AppState, CentralError};
use crate::protocol::ErrorBody;
use crate::protocol::enrol::{self, ClaimRequest, Grant, Offer, OfferRequest};
use crate::store::{self, ClaimOutcome, EnrolCode, Store};

/// Failed offers and claims one address may make in a minute.
pub const FAILURES_PER_MINUTE: u32 = 10;

/// Failed attempts per address in the last minute (a sliding window).
#[derive(Debug, Default)]
pub struct Limiter {
    failures: Mutex<HashMap<IpAddr, std::collections::VecDeque<DateTime<Utc>>>>,
}

impl Limiter {
    fn blocked(&self, ip: IpAddr, now: DateTime<Utc>) -> bool {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let minute_ago = now - chrono::Duration::minutes(1);
        if let Some(times) = map.get_mut(&ip) {
            while times.front().is_some_and(|t| *t <= minute_ago) {
                times.pop_front();
            }
            if times.is_empty() {
                map.remove(&ip);
                return false;
            }
            return times.len() >= FAILURES_PER_MINUTE as usize;
        }
        false
    }

    fn failed(&self, ip: IpAddr, now: DateTime<Utc>) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if map.len() >= 100_000 {
            // Bounded: forget everyone's old failures rather than grow.
            let minute_ago = now - chrono::Duration::minutes(1);
            map.retain(|_, times| times.back().is_some_and(|t| *t > minute_ago));
        }
        if map.len() < 100_000 || map.contains_key(&ip) {
            let times = map.entry(ip).or_default();
            times.push_back(now);
            if times.len() > FAILURES_PER_MINUTE as usize {
                times.pop_front();
            }
        }
    }
}

/// Makes a one-time code for `station_id`, valid 24 h from `now`, and stores what it
/// stretches into. Returns the code, to be read to whoever installs the station.
pub fn issue_code(
    store: &dyn Store,
    station_id: &str,
    now: DateTime<Utc>,
) -> Result<String, CentralError> {
    if store.station(station_id)?.is_none() {
        return Err(CentralError::NoSuchStation(station_id.to_string()));
    }
    let code = enrol::code_from_random(rand::random::<u64>());
    let derived = enrol::derive(&enrol::normalise(&code).unwrap_or_default());
    store.put_enrol_code(&EnrolCode {
        lookup: derived.lookup,
        station_id: station_id.to_string(),
        mac_key: hex::encode(derived.mac_key),
        claim_hash: store::hash_token(&derived.claim),
        created_at: now,
        expires_at: now + chrono::Duration::hours(enrol::VALID_FOR_HOURS),
        used_at: None,
        failures: 0,
    })?;
    Ok(code)
}

pub fn routes() -> Routes {
    Routes::new().post(enrol::OFFER_PATH, offer).post(enrol::CLAIM_PATH, claim)
}

fn too_many() -> Response {
    tracing::warn!("refused: too many failed enrolment attempts from one address");
    (
        StatusCode::TOO_MANY_REQUESTS,
        [(axum::http::header::RETRY_AFTER, "60")],
        Json(ErrorBody {
            error: "too many failed enrolment attempts from this address: wait a minute, and check the code".into(),
            diagnostics: Vec::new(),
        }),
    )
        .into_response()
}

fn peer(connection: &Option<Extension<super::server::Connection>>) -> IpAddr {
    connection
        .as_ref()
        .map_or(IpAddr::from([0, 0, 0, 0]), |Extension(c)| c.peer.ip().to_canonical())
}

fn unknown() -> ApiError {
    ApiError::NotFound(
        "no such enrolment code at this central (or it expired, or was used): check the code and the central URL, or issue a new one with `loa central station code ID`".into(),
    )
}

async fn offer(
    State(state): State<Arc<AppState>>,
    connection: Option<Extension<super::server::Connection>>,
    body: Body,
) -> Result<Response, ApiError> {
    let ip = peer(&connection);
    let now = state.clock.now();
    if state.enrol_limit.blocked(ip, now) {
        return Ok(too_many());
    }
    let bytes = super::body::read(body, enrol::BODY_LIMIT).await?;
    let request: OfferRequest = super::auth::parse_json(&bytes, "the enrolment offer request")?;
    if !enrol::valid_hex64(&request.lookup) {
        return Err(ApiError::BadRequest("lookup must be 64 lowercase hex digits".into()));
    }
    let store = state.store.clone();
    let lookup = request.lookup.clone();
    let code = tokio::task::spawn_blocking(move || store.enrol_code(&lookup))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let live = code.filter(|c| {
        c.used_at.is_none() && now < c.expires_at && c.failures < enrol::MAX_CLAIM_FAILURES
    });
    let Some(code) = live else {
        state.enrol_limit.failed(ip, now);
        return Err(unknown());
    };
    let ca_path = state.config.data_dir.join(super::tls::TLS_DIR).join(super::tls::CA_FILE);
    let ca_cert = std::fs::read_to_string(&ca_path).map_err(|_| {
        ApiError::Conflict(format!(
            "enrolment needs central's CA at {}: run `loa central tls --host NAME` on central (stations then trust it)",
            ca_path.display()
        ))
    })?;
    let mac_key = hex::decode(&code.mac_key).map_err(|e| ApiError::Internal(e.to_string()))?;
    let province_key = state.key.public_hex();
    let proof = enrol::prove(&mac_key, &code.station_id, &province_key, &ca_cert);
    tracing::info!(station = %code.station_id, peer = %ip, "enrolment offer sent");
    Ok(Json(Offer { station_id: code.station_id, province_key, ca_cert, proof }).into_response())
}

async fn claim(
    State(state): State<Arc<AppState>>,
    connection: Option<Extension<super::server::Connection>>,
    body: Body,
) -> Result<Response, ApiError> {
    let ip = peer(&connection);
    let now = state.clock.now();
    if state.enrol_limit.blocked(ip, now) {
        return Ok(too_many());
    }
    let bytes = super::body::read(body, enrol::BODY_LIMIT).await?;
    let request: ClaimRequest = super::auth::parse_json(&bytes, "the enrolment claim")?;
    if !enrol::valid_hex64(&request.lookup) || !enrol::valid_hex64(&request.claim) {
        return Err(ApiError::BadRequest(
            "lookup and claim must be 64 lowercase hex digits".into(),
        ));
    }
    let token = store::new_token();
    let store = state.store.clone();
    let token_hash = store::hash_token(&token);
    let claim_hash = store::hash_token(&request.claim);
    let lookup = request.lookup.clone();
    let outcome = tokio::task::spawn_blocking(move || {
        store.claim_enrol_code(&lookup, &claim_hash, &token_hash, now, enrol::MAX_CLAIM_FAILURES)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))??;
    match outcome {
        ClaimOutcome::Granted { station_id } => {
            tracing::info!(station = %station_id, peer = %ip, "station enrolled: new token issued, the old one refused");
            Ok(Json(Grant { station_id, token }).into_response())
        }
        ClaimOutcome::Used => Err(ApiError::Gone(
            "this enrolment code was used already: issue a new one with `loa central station code ID`".into(),
        )),
        ClaimOutcome::Expired => Err(ApiError::Gone(
            "this enrolment code expired (codes live 24 h): issue a new one with `loa central station code ID`".into(),
        )),
        ClaimOutcome::Unknown | ClaimOutcome::Wrong { .. } => {
            state.enrol_limit.failed(ip, now);
            Err(ApiError::Forbidden(
                "the claim does not match the enrolment code: check the code (after 5 wrong tries it is burnt)".into(),
            ))
        }
    }
}
