//! PostgreSQL: stations, operators, audio, schedules, manifests, heartbeats (stub)

use super::*;
use postgres::Client;

pub(super) const SCHEMA: &str = "
CREATE TABLE stations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    district TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL,
    lat DOUBLE PRECISION,
    lon DOUBLE PRECISION,
    geocodes TEXT
);
";

pub(super) fn add_station(
    c: &mut Client,
    station: &Station,
    token_hash: &str,
) -> Result<(), StoreError> {
    let result = c.execute(
        "INSERT INTO stations (id, name, district, token_hash, created_at) VALUES ($1, $2, $3, $4, $5)",
        &[&station.id, &station.name, &station.district, &token_hash, &Utc::now().to_rfc3339()],
    );
    match result {
        Ok(_) => Ok(()),
        Err(e) if is_unique_violation(&e) => Err(StoreError::StationExists(station.id.clone())),
        Err(e) => Err(e.into()),
    }
}
pub(super) fn station(c: &mut Client, id: &str) -> Result<Option<Station>, StoreError> {
    let row = c.query_opt("SELECT id, name, district FROM stations WHERE id = $1", &[&id])?;
    Ok(row.map(|r| Station { id: r.get(0), name: r.get(1), district: r.get(2) }))
}
pub(super) fn station_by_token(
    c: &mut Client,
    token_hash: &str,
) -> Result<Option<Station>, StoreError> {
    let _ = (c, token_hash);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn stations(c: &mut Client) -> Result<Vec<Station>, StoreError> {
    let rows = c.query("SELECT id, name, district FROM stations ORDER BY id", &[])?;
    Ok(rows.iter().map(|r| Station { id: r.get(0), name: r.get(1), district: r.get(2) }).collect())
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
