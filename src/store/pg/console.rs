//! PostgreSQL: console (stub)

use super::*;
use postgres::Client;

pub(super) const SCHEMA: &str = "";

pub(super) fn schedule_loads(
    c: &mut Client,
    limit: usize,
) -> Result<Vec<ScheduleLoad>, StoreError> {
    let _ = (c, limit);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn library(c: &mut Client, limit: usize) -> Result<Vec<LibraryEntry>, StoreError> {
    let _ = (c, limit);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn missed_since(
    c: &mut Client,
    since: DateTime<Utc>,
) -> Result<Vec<(String, u64)>, StoreError> {
    let _ = (c, since);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn heartbeat_history(
    c: &mut Client,
    station_id: &str,
    limit: usize,
) -> Result<Vec<StoredHeartbeat>, StoreError> {
    let _ = (c, station_id, limit);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn add_user(c: &mut Client, user: &User) -> Result<(), StoreError> {
    let _ = (c, user);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn user(c: &mut Client, name: &str) -> Result<Option<User>, StoreError> {
    let _ = (c, name);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn users(c: &mut Client) -> Result<Vec<User>, StoreError> {
    let _ = c;
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn set_user_password(
    c: &mut Client,
    name: &str,
    password_hash: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let _ = (c, name, password_hash, at);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn set_user_disabled(
    c: &mut Client,
    name: &str,
    disabled: bool,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let _ = (c, name, disabled, at);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn put_session(c: &mut Client, session: &SessionRow) -> Result<(), StoreError> {
    let _ = (c, session);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn session(c: &mut Client, id_hash: &str) -> Result<Option<SessionRow>, StoreError> {
    let _ = (c, id_hash);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn touch_session(
    c: &mut Client,
    id_hash: &str,
    at: DateTime<Utc>,
) -> Result<(), StoreError> {
    let _ = (c, id_hash, at);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn end_session(c: &mut Client, id_hash: &str) -> Result<(), StoreError> {
    let _ = (c, id_hash);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn end_idle_sessions(
    c: &mut Client,
    seen_before: DateTime<Utc>,
) -> Result<usize, StoreError> {
    let _ = (c, seen_before);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn login_failures(
    c: &mut Client,
    key: &str,
) -> Result<Option<LoginFailures>, StoreError> {
    let _ = (c, key);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn add_login_failure(
    c: &mut Client,
    key: &str,
    at: DateTime<Utc>,
    forget_before: DateTime<Utc>,
    keep_at_most: usize,
) -> Result<u32, StoreError> {
    let _ = (c, key, at, forget_before, keep_at_most);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn clear_login_failures(c: &mut Client, key: &str) -> Result<(), StoreError> {
    let _ = (c, key);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn add_history(
    tx: &mut postgres::Transaction<'_>,
    heartbeat: &StoredHeartbeat,
    body: &str,
) -> Result<(), StoreError> {
    let _ = (tx, heartbeat, body);
    Ok(())
} // stub until the console domain lands
