//! PostgreSQL: playlog (stub)

use super::*;
use postgres::Client;

pub(super) const SCHEMA: &str = "";

pub(super) fn ingest_playlog(
    c: &mut Client,
    station_id: &str,
    records: &[Record],
    now: DateTime<Utc>,
) -> Result<PlaylogAck, StoreError> {
    let _ = (c, station_id, records, now);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn playlog(c: &mut Client, filter: &PlaylogFilter) -> Result<Vec<Record>, StoreError> {
    let _ = (c, filter);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn playlog_summary(
    c: &mut Client,
    station_id: &str,
) -> Result<PlaylogSummary, StoreError> {
    let _ = (c, station_id);
    Err(StoreError::Unavailable("not yet".into()))
}
