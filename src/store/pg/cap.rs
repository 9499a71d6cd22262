//! PostgreSQL: cap (stub)

use super::*;
use postgres::Client;

pub(super) const SCHEMA: &str = "";

pub(super) fn set_station_place(c: &mut Client, place: &StationPlace) -> Result<bool, StoreError> {
    let _ = (c, place);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn station_places(c: &mut Client) -> Result<Vec<StationPlace>, StoreError> {
    let _ = c;
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn cap_ledger(c: &mut Client) -> Result<Option<String>, StoreError> {
    let _ = c;
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn record_alerts(
    c: &mut Client,
    records: &[AlertRecord],
    audit: &[AuditEntry],
    ledger: Option<&str>,
) -> Result<(), StoreError> {
    let _ = (c, records, audit, ledger);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn alerts(c: &mut Client, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
    let _ = (c, limit);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn alert_bulletin(
    c: &mut Client,
    sender: &str,
    identifier: &str,
    sent: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    let _ = (c, sender, identifier, sent);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn put_pending(c: &mut Client, pending: &PendingBulletin) -> Result<(), StoreError> {
    let _ = (c, pending);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn pending(c: &mut Client, id: &str) -> Result<Option<PendingBulletin>, StoreError> {
    let _ = (c, id);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn pending_list(
    c: &mut Client,
    limit: usize,
) -> Result<Vec<PendingBulletin>, StoreError> {
    let _ = (c, limit);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn decide_pending(
    c: &mut Client,
    id: &str,
    from: ApprovalState,
    to: ApprovalState,
    by: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let _ = (c, id, from, to, by, at);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn audit(c: &mut Client, entry: &AuditEntry) -> Result<(), StoreError> {
    let _ = (c, entry);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn audit_log(c: &mut Client, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
    let _ = (c, limit);
    Err(StoreError::Unavailable("not yet".into()))
}
