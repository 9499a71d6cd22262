//! PostgreSQL: field (stub)

use super::*;
use postgres::Client;

pub(super) const SCHEMA: &str = "";

pub(super) fn put_enrol_code(c: &mut Client, code: &EnrolCode) -> Result<(), StoreError> {
    let _ = (c, code);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn enrol_code(c: &mut Client, lookup: &str) -> Result<Option<EnrolCode>, StoreError> {
    let _ = (c, lookup);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn claim_enrol_code(
    c: &mut Client,
    lookup: &str,
    claim_hash: &str,
    token_hash: &str,
    now: DateTime<Utc>,
    max_failures: u32,
) -> Result<ClaimOutcome, StoreError> {
    let _ = (c, lookup, claim_hash, token_hash, now, max_failures);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn playlog_outcome_counts(
    c: &mut Client,
) -> Result<Vec<(String, String, u64)>, StoreError> {
    let _ = c;
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn latest_aired(c: &mut Client, station_id: &str) -> Result<Option<Record>, StoreError> {
    let _ = (c, station_id);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn open_alerts(c: &mut Client) -> Result<Vec<AlertRow>, StoreError> {
    let _ = c;
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn raise_alert(
    c: &mut Client,
    alert: &AlertRow,
    channels: &[&str],
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let _ = (c, alert, channels, now);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn clear_alert(
    c: &mut Client,
    key: &str,
    channels: &[&str],
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let _ = (c, key, channels, now);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn due_notifications(
    c: &mut Client,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Notification>, StoreError> {
    let _ = (c, now, limit);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn notification_sent(
    c: &mut Client,
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let _ = (c, id, now);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn notification_failed(
    c: &mut Client,
    id: i64,
    error: &str,
    next_try: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    let _ = (c, id, error, next_try);
    Err(StoreError::Unavailable("not yet".into()))
}
