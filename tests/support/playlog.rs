//! Playlog records as a station makes them, for tests that send them to central.

use chrono::{DateTime, Utc};
use loa::protocol::{Entry, Levels, Outcome, Record};
use loa::schedule::{Layer, Priority};

/// A provincial, normal-priority item `item` with `outcome` at `planned`, as a station
/// records it: audible levels, nothing else known (set fields on it for more).
pub fn entry(item: &str, outcome: Outcome, planned: DateTime<Utc>) -> Entry {
    Entry {
        item_id: item.into(),
        title: item.into(),
        layer: Layer::Provincial,
        priority: Priority::Normal,
        planned,
        outcome,
        started: None,
        ended: None,
        delay_ms: None,
        played_secs: None,
        reason: None,
        audio_sha256: None,
        levels: Some(Levels { peak_dbfs: -3.0, rms_dbfs: -20.0, silent: false }),
        reason_code: None,
        relay: None,
    }
}

/// `entries` as `station`'s records `from`, `from + 1`, …, chained from `prev` (the
/// ledger's `GENESIS` for a first batch; any other hash breaks the chain).
pub fn chain(station: &str, from: u64, prev: &str, entries: Vec<Entry>) -> Vec<Record> {
    Record::chain(station, from, prev, entries)
}
