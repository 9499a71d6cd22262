//! PostgreSQL: live (stub)

use super::*;
use postgres::Client;

pub(super) const SCHEMA: &str = "";

pub(super) fn live_started(
    c: &mut Client,
    record: &crate::protocol::live::LiveRecord,
) -> Result<(), StoreError> {
    let _ = (c, record);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn live_ended(
    c: &mut Client,
    id: &str,
    at: DateTime<Utc>,
    chunks: u64,
    audio_secs: f64,
    reason: &str,
) -> Result<(), StoreError> {
    let _ = (c, id, at, chunks, audio_secs, reason);
    Err(StoreError::Unavailable("not yet".into()))
}
pub(super) fn live_list(
    c: &mut Client,
    limit: usize,
) -> Result<Vec<crate::protocol::live::LiveRecord>, StoreError> {
    let _ = (c, limit);
    Err(StoreError::Unavailable("not yet".into()))
}
