//! PostgreSQL: stations, operators, audio, schedules, manifests, heartbeats (stub)

use super::*;
use postgres::Client;

pub(super) const SCHEMA: &str = "";

pub(super) fn add_station(
    c: &mut Client,
    station: &Station,
    token_hash: &str,
) -> Result<(), StoreError> {
    let _ = (c, station, token_hash);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn station(c: &mut Client, id: &str) -> Result<Option<Station>, StoreError> {
    let _ = (c, id);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn station_by_token(
    c: &mut Client,
    token_hash: &str,
) -> Result<Option<Station>, StoreError> {
    let _ = (c, token_hash);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn stations(c: &mut Client) -> Result<Vec<Station>, StoreError> {
    let _ = c;
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn set_station_token(
    c: &mut Client,
    id: &str,
    token_hash: &str,
) -> Result<bool, StoreError> {
    let _ = (c, id, token_hash);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn add_operator(
    c: &mut Client,
    token_hash: &str,
    role: &Role,
    label: &str,
) -> Result<(), StoreError> {
    let _ = (c, token_hash, role, label);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn operator_by_token(
    c: &mut Client,
    token_hash: &str,
) -> Result<Option<Role>, StoreError> {
    let _ = (c, token_hash);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn operator_identity(
    c: &mut Client,
    token_hash: &str,
) -> Result<Option<(Role, String)>, StoreError> {
    let _ = (c, token_hash);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn revoke_operators(c: &mut Client, label: &str) -> Result<usize, StoreError> {
    let _ = (c, label);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn put_audio(
    c: &mut Client,
    info: &AudioInfo,
    true_peak_dbtp: f64,
) -> Result<(), StoreError> {
    let _ = (c, info, true_peak_dbtp);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn audio(c: &mut Client, sha256: &str) -> Result<Option<AudioInfo>, StoreError> {
    let _ = (c, sha256);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn audio_levels(c: &mut Client) -> Result<Vec<AudioLevels>, StoreError> {
    let _ = c;
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn set_audio_levels(c: &mut Client, levels: &AudioLevels) -> Result<bool, StoreError> {
    let _ = (c, levels);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn load_schedule(
    c: &mut Client,
    schedule: &StoredSchedule,
    stations: &[String],
    loaded_by: &str,
) -> Result<i64, StoreError> {
    let _ = (c, schedule, stations, loaded_by);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn schedules_for(
    c: &mut Client,
    station_id: &str,
) -> Result<Vec<StoredSchedule>, StoreError> {
    let _ = (c, station_id);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn put_manifest(c: &mut Client, manifest: &StoredManifest) -> Result<(), StoreError> {
    let _ = (c, manifest);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn latest_manifest(
    c: &mut Client,
    station_id: &str,
) -> Result<Option<StoredManifest>, StoreError> {
    let _ = (c, station_id);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn put_heartbeat(c: &mut Client, heartbeat: &StoredHeartbeat) -> Result<(), StoreError> {
    let _ = (c, heartbeat);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn heartbeats(c: &mut Client) -> Result<Vec<StoredHeartbeat>, StoreError> {
    let _ = c;
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn manifests_between(
    c: &mut Client,
    station_id: &str,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Result<Vec<StoredManifest>, StoreError> {
    let _ = (c, station_id, from, until);
    Err(StoreError::Unavailable("not yet".into()))
}
