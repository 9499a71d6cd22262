//! What central keeps to run in the field: enrolment codes (only what the code stretches
//! into, never the code) and alerts with their outbox of notifications. SQLite here;
//! the row decoders and the claim rules are plain functions that the PostgreSQL store
//! (`pg::field`) calls too, so the two stores cannot judge or read a row differently.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::StoreError;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS enrol_codes (
    lookup TEXT PRIMARY KEY,
    station_id TEXT NOT NULL REFERENCES stations(id),
    mac_key TEXT NOT NULL,
    claim_hash TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL,
    used_at TEXT,
    failures INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    kind TEXT NOT NULL,
    station_id TEXT,
    detail TEXT NOT NULL,
    raised_at TEXT NOT NULL,
    cleared_at TEXT
);
CREATE UNIQUE INDEX IF NOT EXISTS alerts_open ON alerts(key) WHERE cleared_at IS NULL;
CREATE TABLE IF NOT EXISTS alert_outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    alert_id INTEGER NOT NULL REFERENCES alerts(id),
    event TEXT NOT NULL,
    channel TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_try TEXT NOT NULL,
    sent_at TEXT,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS alert_outbox_pending ON alert_outbox(next_try) WHERE sent_at IS NULL;
";

/// An enrolment code as central keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct EnrolCode {
    /// Finds the row (hex); derived from the code.
    pub lookup: String,
    pub station_id: String,
    /// The key central proves its offer with (hex); derived from the code.
    pub mac_key: String,
    /// sha256 of the claim (hex).
    pub claim_hash: String,
    pub created_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub used_at: Option<DateTime<Utc>>,
    pub failures: u32,
}

/// What a claim came to.
#[derive(Debug, Clone, PartialEq)]
pub enum ClaimOutcome {
    /// The station's token was replaced by the one given.
    Granted {
        station_id: String,
    },
    Unknown,
    Expired,
    Used,
    /// A wrong claim; the code is burnt after `max_failures`.
    Wrong {
        burnt: bool,
    },
}

/// An alert: open while `cleared_at` is `None`.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertRow {
    pub id: i64,
    /// What it is about, unique among open alerts (`offline:tri-ton`).
    pub key: String,
    pub kind: String,
    pub station_id: Option<String>,
    pub detail: String,
    pub raised_at: DateTime<Utc>,
    pub cleared_at: Option<DateTime<Utc>>,
}

/// One notification still to send (or sent).
#[derive(Debug, Clone, PartialEq)]
pub struct Notification {
    pub id: i64,
    pub alert: AlertRow,
    /// `raised` or `cleared`.
    pub event: String,
    /// `webhook` or `email`.
    pub channel: String,
    pub attempts: u32,
}

fn time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("time {text:?}: {e}")))
}

fn opt_time(text: Option<String>) -> Result<Option<DateTime<Utc>>, StoreError> {
    text.as_deref().map(time).transpose()
}

pub(crate) fn put_enrol_code(conn: &Connection, code: &EnrolCode) -> Result<(), StoreError> {
    let inserted = conn.execute(
        "INSERT INTO enrol_codes (lookup, station_id, mac_key, claim_hash, created_at, expires_at, used_at, failures)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8 WHERE EXISTS (SELECT 1 FROM stations WHERE id = ?2)",
        params![
            code.lookup,
            code.station_id,
            code.mac_key,
            code.claim_hash,
            code.created_at.to_rfc3339(),
            code.expires_at.to_rfc3339(),
            code.used_at.map(|t| t.to_rfc3339()),
            code.failures,
        ],
    )?;
    if inserted == 0 {
        return Err(StoreError::NoSuchStation(code.station_id.clone()));
    }
    Ok(())
}

/// The `enrol_codes` columns [`enrol_from`] reads, in order, for both stores.
pub(super) const ENROL_COLUMNS: &str =
    "station_id, mac_key, claim_hash, created_at, expires_at, used_at, failures FROM enrol_codes";

/// An enrolment code's stored columns ([`ENROL_COLUMNS`]), for both stores.
pub(super) type EnrolRow = (String, String, String, String, String, Option<String>, i64);

/// An enrolment code from [`ENROL_COLUMNS`]' values, for both stores.
pub(super) fn enrol_from(
    lookup: &str,
    (station_id, mac_key, claim_hash, created, expires, used, failures): EnrolRow,
) -> Result<EnrolCode, StoreError> {
    Ok(EnrolCode {
        lookup: lookup.to_string(),
        station_id,
        mac_key,
        claim_hash,
        created_at: time(&created)?,
        expires_at: time(&expires)?,
        used_at: opt_time(used)?,
        failures: super::console::failures_from(failures),
    })
}

pub(crate) fn enrol_code(conn: &Connection, lookup: &str) -> Result<Option<EnrolCode>, StoreError> {
    let row: Option<EnrolRow> = conn
        .query_row(&format!("SELECT {ENROL_COLUMNS} WHERE lookup = ?1"), [lookup], |r| r.try_into())
        .optional()?;
    row.map(|row| enrol_from(lookup, row)).transpose()
}

/// What a claim on a stored code comes to, before anything is written.
pub(super) enum Verdict {
    /// Nothing to write: the answer as it is.
    Answer(ClaimOutcome),
    /// A wrong claim: count one more failure, then answer this.
    Wrong(ClaimOutcome),
    /// A right claim: use the code up and replace the station's token.
    Grant,
}

/// Judges a claim on `code`, for both stores (each calls it with the code's row locked,
/// or in SQLite's one writer, so the count and the use are decided once).
pub(super) fn judge_claim(
    code: &EnrolCode,
    claim_hash: &str,
    now: DateTime<Utc>,
    max_failures: u32,
) -> Verdict {
    if code.used_at.is_some() {
        return Verdict::Answer(ClaimOutcome::Used);
    }
    if code.failures >= max_failures {
        return Verdict::Answer(ClaimOutcome::Wrong { burnt: true });
    }
    if now >= code.expires_at {
        return Verdict::Answer(ClaimOutcome::Expired);
    }
    // Hashes are compared, not claims: timing can tell at most a prefix of a sha256.
    if code.claim_hash != claim_hash {
        let burnt = code.failures.saturating_add(1) >= max_failures;
        return Verdict::Wrong(ClaimOutcome::Wrong { burnt });
    }
    Verdict::Grant
}

/// One transaction: the code is checked, and either burnt a little (a wrong claim) or
/// used up with the station's token replaced.
pub(crate) fn claim_enrol_code(
    conn: &mut Connection,
    lookup: &str,
    claim_hash: &str,
    token_hash: &str,
    now: DateTime<Utc>,
    max_failures: u32,
) -> Result<ClaimOutcome, StoreError> {
    let tx = conn.transaction()?;
    let Some(code) = enrol_code(&tx, lookup)? else { return Ok(ClaimOutcome::Unknown) };
    match judge_claim(&code, claim_hash, now, max_failures) {
        Verdict::Answer(outcome) => Ok(outcome),
        Verdict::Wrong(outcome) => {
            tx.execute(
                "UPDATE enrol_codes SET failures = failures + 1 WHERE lookup = ?1",
                [lookup],
            )?;
            tx.commit()?;
            Ok(outcome)
        }
        Verdict::Grant => {
            tx.execute(
                "UPDATE enrol_codes SET used_at = ?2 WHERE lookup = ?1",
                params![lookup, now.to_rfc3339()],
            )?;
            tx.execute(
                "UPDATE stations SET token_hash = ?2 WHERE id = ?1",
                params![code.station_id, token_hash],
            )?;
            tx.commit()?;
            Ok(ClaimOutcome::Granted { station_id: code.station_id })
        }
    }
}

/// An `alerts` row as read: id, key, kind, station, detail, raised, cleared.
pub(super) type AlertColumns =
    (i64, String, String, Option<String>, String, String, Option<String>);

fn alert_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AlertColumns> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?))
}

/// An alert from its columns ([`ALERT_COLUMNS`]), for both stores.
pub(super) fn to_alert(
    (id, key, kind, station_id, detail, raised, cleared): AlertColumns,
) -> Result<AlertRow, StoreError> {
    Ok(AlertRow {
        id,
        key,
        kind,
        station_id,
        detail,
        raised_at: time(&raised)?,
        cleared_at: opt_time(cleared)?,
    })
}

/// What [`to_alert`] reads, in order, for both stores.
pub(super) const ALERT_COLUMNS: &str = "id, key, kind, station_id, detail, raised_at, cleared_at";

pub(crate) fn open_alerts(conn: &Connection) -> Result<Vec<AlertRow>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ALERT_COLUMNS} FROM alerts WHERE cleared_at IS NULL ORDER BY raised_at, id"
    ))?;
    let rows = stmt.query_map([], alert_row)?.collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(to_alert).collect()
}

/// Raises `key` unless it is open already; the notifications for `channels` are queued
/// in the same transaction. True when newly raised.
pub(crate) fn raise_alert(
    conn: &mut Connection,
    alert: &AlertRow,
    channels: &[&str],
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let tx = conn.transaction()?;
    let inserted = tx.execute(
        "INSERT INTO alerts (key, kind, station_id, detail, raised_at) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT DO NOTHING",
        params![
            alert.key,
            alert.kind,
            alert.station_id,
            alert.detail,
            alert.raised_at.to_rfc3339()
        ],
    )?;
    if inserted == 0 {
        return Ok(false);
    }
    let id = tx.last_insert_rowid();
    for channel in channels {
        tx.execute(
            "INSERT INTO alert_outbox (alert_id, event, channel, next_try) VALUES (?1, 'raised', ?2, ?3)",
            params![id, channel, now.to_rfc3339()],
        )?;
    }
    tx.commit()?;
    Ok(true)
}

/// Clears `key` if it is open, queueing its notifications. True when it was open.
pub(crate) fn clear_alert(
    conn: &mut Connection,
    key: &str,
    channels: &[&str],
    now: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let tx = conn.transaction()?;
    let id: Option<i64> = tx
        .query_row("SELECT id FROM alerts WHERE key = ?1 AND cleared_at IS NULL", [key], |r| {
            r.get(0)
        })
        .optional()?;
    let Some(id) = id else { return Ok(false) };
    tx.execute("UPDATE alerts SET cleared_at = ?2 WHERE id = ?1", params![id, now.to_rfc3339()])?;
    for channel in channels {
        tx.execute(
            "INSERT INTO alert_outbox (alert_id, event, channel, next_try) VALUES (?1, 'cleared', ?2, ?3)",
            params![id, channel, now.to_rfc3339()],
        )?;
    }
    tx.commit()?;
    Ok(true)
}

pub(crate) fn due_notifications(
    conn: &Connection,
    now: DateTime<Utc>,
    limit: u32,
) -> Result<Vec<Notification>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT o.id, o.event, o.channel, o.attempts,
                a.id, a.key, a.kind, a.station_id, a.detail, a.raised_at, a.cleared_at
         FROM alert_outbox o JOIN alerts a ON a.id = o.alert_id
         WHERE o.sent_at IS NULL AND o.next_try <= ?1 ORDER BY o.id LIMIT ?2",
    )?;
    let rows = stmt
        .query_map(params![now.to_rfc3339(), limit], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, i64>(3)?,
                (r.get(4)?, r.get(5)?, r.get(6)?, r.get(7)?, r.get(8)?, r.get(9)?, r.get(10)?),
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(notification_from).collect()
}

/// A notification's stored columns: id, event, channel, attempts, and its alert's.
pub(super) type NotificationRow = (i64, String, String, i64, AlertColumns);

/// A notification from its columns, for both stores.
pub(super) fn notification_from(
    (id, event, channel, attempts, alert): NotificationRow,
) -> Result<Notification, StoreError> {
    Ok(Notification {
        id,
        alert: to_alert(alert)?,
        event,
        channel,
        attempts: super::console::failures_from(attempts),
    })
}

pub(crate) fn notification_sent(
    conn: &Connection,
    id: i64,
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE alert_outbox SET sent_at = ?2, attempts = attempts + 1 WHERE id = ?1",
        params![id, now.to_rfc3339()],
    )?;
    Ok(())
}

/// A failed try: tried again at `next_try`, or never again when `None` (given up).
pub(crate) fn notification_failed(
    conn: &Connection,
    id: i64,
    error: &str,
    next_try: Option<DateTime<Utc>>,
) -> Result<(), StoreError> {
    match next_try {
        Some(at) => conn.execute(
            "UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?2, next_try = ?3 WHERE id = ?1",
            params![id, error, at.to_rfc3339()],
        )?,
        None => conn.execute(
            "UPDATE alert_outbox SET attempts = attempts + 1, last_error = ?2, sent_at = 'gave up' WHERE id = ?1",
            params![id, error],
        )?,
    };
    Ok(())
}

pub(crate) fn playlog_outcome_counts(
    conn: &Connection,
) -> Result<Vec<(String, String, u64)>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT station_id, outcome, COUNT(*) FROM playlog GROUP BY station_id, outcome ORDER BY 1, 2",
    )?;
    let rows = stmt
        .query_map([], |r| Ok(((r.get(0)?, r.get(1)?), r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    outcome_counts_from(rows)
}

/// `(station, outcome)` counts as `COUNT(*)` gives them, checked, for both stores.
pub(super) fn outcome_counts_from(
    rows: Vec<((String, String), i64)>,
) -> Result<Vec<(String, String, u64)>, StoreError> {
    Ok(super::console::counts_from(rows, "playlog records")?
        .into_iter()
        .map(|((station, outcome), n)| (station, outcome, n))
        .collect())
}

pub(crate) fn latest_aired(
    conn: &Connection,
    station_id: &str,
) -> Result<Option<crate::protocol::Record>, StoreError> {
    let json: Option<String> = conn
        .query_row(
            "SELECT record_json FROM playlog WHERE station_id = ?1 AND outcome IN ('played', 'late')
             ORDER BY seq DESC LIMIT 1",
            [station_id],
            |r| r.get(0),
        )
        .optional()?;
    json.as_deref().map(record_from).transpose()
}

/// A playlog record from its stored JSON, for both stores.
pub(super) fn record_from(json: &str) -> Result<crate::protocol::Record, StoreError> {
    serde_json::from_str(json).map_err(|e| StoreError::Corrupt(format!("playlog record: {e}")))
}

#[cfg(test)]
mod tests {
    use super::super::console::at_once;
    use super::super::contract::each_store;
    use super::super::{Station, Store};
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap()
    }

    fn station(store: &dyn Store, id: &str) {
        let station = Station { id: id.into(), name: id.into(), district: "x".into() };
        store.add_station(&station, &format!("token-{id}")).unwrap();
    }

    fn code(lookup: &str) -> EnrolCode {
        EnrolCode {
            lookup: lookup.into(),
            station_id: "a".into(),
            mac_key: "m".into(),
            claim_hash: "right".into(),
            created_at: at(0),
            expires_at: at(600),
            used_at: None,
            failures: 0,
        }
    }

    #[test]
    fn an_enrolment_code_is_stored_for_a_known_station_only() {
        each_store(|store| {
            station(store, "a");
            store.put_enrol_code(&code("c1")).unwrap();
            assert_eq!(store.enrol_code("c1").unwrap(), Some(code("c1")));
            assert_eq!(store.enrol_code("nope").unwrap(), None);
            let elsewhere = EnrolCode { station_id: "nope".into(), ..code("c2") };
            assert!(matches!(store.put_enrol_code(&elsewhere), Err(StoreError::NoSuchStation(_))));
            assert_eq!(store.enrol_code("c2").unwrap(), None);
        });
    }

    #[test]
    fn a_claim_is_granted_once_and_wrong_claims_burn_the_code() {
        each_store(|store| {
            station(store, "a");
            store.put_enrol_code(&code("c1")).unwrap();
            store.put_enrol_code(&code("c2")).unwrap();
            let claim = |lookup: &str, hash: &str, now: i64| {
                store.claim_enrol_code(lookup, hash, "new-token", at(now), 3).unwrap()
            };
            assert_eq!(claim("nope", "right", 1), ClaimOutcome::Unknown);
            assert_eq!(claim("c1", "right", 600), ClaimOutcome::Expired, "at its expiry");
            assert_eq!(claim("c1", "right", 1), ClaimOutcome::Granted { station_id: "a".into() });
            assert_eq!(claim("c1", "right", 2), ClaimOutcome::Used);
            assert_eq!(store.enrol_code("c1").unwrap().unwrap().used_at, Some(at(1)));
            assert_eq!(claim("c2", "wrong", 1), ClaimOutcome::Wrong { burnt: false });
            assert_eq!(claim("c2", "wrong", 1), ClaimOutcome::Wrong { burnt: false });
            assert_eq!(claim("c2", "wrong", 1), ClaimOutcome::Wrong { burnt: true });
            assert_eq!(claim("c2", "right", 1), ClaimOutcome::Wrong { burnt: true }, "burnt");
            assert_eq!(store.enrol_code("c2").unwrap().unwrap().failures, 3);
        });
    }

    #[test]
    fn a_code_claimed_by_two_at_once_is_granted_once() {
        each_store(|store| {
            station(store, "a");
            store.put_enrol_code(&code("c1")).unwrap();
            let outcomes = at_once(8, |n| {
                let token = format!("token-{n}");
                store.claim_enrol_code("c1", "right", &token, at(1), 3).unwrap()
            });
            let granted = outcomes.iter().filter(|o| matches!(o, ClaimOutcome::Granted { .. }));
            assert_eq!(granted.count(), 1, "{outcomes:?}");
            assert_eq!(outcomes.iter().filter(|o| **o == ClaimOutcome::Used).count(), 7);
        });
    }

    #[test]
    fn wrong_claims_at_once_are_each_counted_up_to_the_bound() {
        each_store(|store| {
            station(store, "a");
            store.put_enrol_code(&code("c1")).unwrap();
            let outcomes = at_once(8, |_| store.claim_enrol_code("c1", "wrong", "t", at(1), 3));
            let not_yet = outcomes
                .iter()
                .filter(|o| matches!(o.as_ref().unwrap(), ClaimOutcome::Wrong { burnt: false }));
            assert_eq!(not_yet.count(), 2, "the first two of three: {outcomes:?}");
            assert_eq!(store.enrol_code("c1").unwrap().unwrap().failures, 3, "never past it");
        });
    }

    fn alert(key: &str, at_secs: i64) -> AlertRow {
        AlertRow {
            id: 0,
            key: key.into(),
            kind: "offline".into(),
            station_id: Some("a".into()),
            detail: "no heartbeat".into(),
            raised_at: at(at_secs),
            cleared_at: None,
        }
    }

    fn events(store: &dyn Store, now: i64) -> Vec<(String, String, String)> {
        let due = store.due_notifications(at(now), 100).unwrap();
        due.into_iter().map(|n| (n.alert.key, n.event, n.channel)).collect()
    }

    fn triple(key: &str, event: &str, channel: &str) -> (String, String, String) {
        (key.into(), event.into(), channel.into())
    }

    #[test]
    fn an_alert_is_raised_once_and_cleared_once_with_its_notifications() {
        each_store(|store| {
            let channels = ["webhook", "email"];
            assert!(store.raise_alert(&alert("offline:a", 5), &channels, at(5)).unwrap());
            assert!(!store.raise_alert(&alert("offline:a", 6), &channels, at(6)).unwrap());
            assert!(store.raise_alert(&alert("silent:a", 4), &["webhook"], at(6)).unwrap());
            let open = store.open_alerts().unwrap();
            let keys: Vec<&str> = open.iter().map(|a| a.key.as_str()).collect();
            assert_eq!(keys, ["silent:a", "offline:a"], "oldest first");
            assert_eq!(open[1], AlertRow { id: open[1].id, ..alert("offline:a", 5) });
            assert_eq!(
                events(store, 6),
                [
                    triple("offline:a", "raised", "webhook"),
                    triple("offline:a", "raised", "email"),
                    triple("silent:a", "raised", "webhook"),
                ]
            );
            assert!(events(store, 4).is_empty(), "not due before it was queued");
            assert!(store.clear_alert("offline:a", &["webhook"], at(9)).unwrap());
            assert!(!store.clear_alert("offline:a", &["webhook"], at(10)).unwrap());
            assert!(!store.clear_alert("never", &["webhook"], at(10)).unwrap());
            assert_eq!(store.open_alerts().unwrap().len(), 1);
            let due = store.due_notifications(at(9), 100).unwrap();
            let cleared = due.last().unwrap();
            assert_eq!(
                (cleared.event.as_str(), cleared.alert.cleared_at),
                ("cleared", Some(at(9)))
            );
            // Raised again once cleared: a new alert.
            assert!(store.raise_alert(&alert("offline:a", 11), &[], at(11)).unwrap());
            assert_eq!(store.open_alerts().unwrap().len(), 2);
        });
    }

    #[test]
    fn replicas_raising_and_clearing_one_alert_at_once_do_it_once() {
        each_store(|store| {
            let raised = at_once(8, |_| store.raise_alert(&alert("k", 1), &["webhook"], at(1)));
            assert_eq!(raised.iter().filter(|r| *r.as_ref().unwrap()).count(), 1, "{raised:?}");
            assert_eq!(store.open_alerts().unwrap().len(), 1);
            assert_eq!(events(store, 1), [triple("k", "raised", "webhook")], "one notification");
            let cleared = at_once(8, |_| store.clear_alert("k", &["webhook"], at(2)));
            assert_eq!(cleared.iter().filter(|r| *r.as_ref().unwrap()).count(), 1, "{cleared:?}");
            assert_eq!(
                events(store, 2),
                [triple("k", "raised", "webhook"), triple("k", "cleared", "webhook")]
            );
        });
    }

    #[test]
    fn notifications_are_due_oldest_first_bounded_and_tried_until_sent_or_given_up() {
        each_store(|store| {
            store.raise_alert(&alert("k", 1), &["a", "b", "c"], at(1)).unwrap();
            let due = store.due_notifications(at(1), 2).unwrap();
            assert_eq!(due.iter().map(|n| n.channel.as_str()).collect::<Vec<_>>(), ["a", "b"]);
            assert!(due.iter().all(|n| n.attempts == 0));
            let [a, b] = [due[0].id, due[1].id];
            store.notification_sent(a, at(2)).unwrap();
            store.notification_failed(b, "refused", Some(at(60))).unwrap();
            let now: Vec<String> = store
                .due_notifications(at(2), 10)
                .unwrap()
                .into_iter()
                .map(|n| n.channel)
                .collect();
            assert_eq!(now, ["c"], "sent: gone; failed: later");
            let later = store.due_notifications(at(60), 10).unwrap();
            assert_eq!(
                later.iter().map(|n| (n.channel.as_str(), n.attempts)).collect::<Vec<_>>(),
                [("b", 1), ("c", 0)]
            );
            store.notification_failed(b, "refused again", None).unwrap();
            let left = store.due_notifications(at(1000), 10).unwrap();
            assert_eq!(left.len(), 1, "given up: never again");
        });
    }

    #[test]
    fn playlog_outcomes_are_counted_and_the_latest_aired_found() {
        use crate::protocol::Outcome;
        each_store(|store| {
            station(store, "a");
            station(store, "b");
            let outcomes = [Outcome::Played, Outcome::Missed, Outcome::Late, Outcome::Failed];
            let records = super::super::console::records_with("a", &outcomes);
            store.ingest_playlog("a", &records, at(1000)).unwrap();
            let counts = store.playlog_outcome_counts().unwrap();
            let expected = [("failed", 1), ("late", 1), ("missed", 1), ("played", 1)];
            let expected: Vec<(String, String, u64)> =
                expected.iter().map(|(o, n)| ("a".to_string(), o.to_string(), *n)).collect();
            assert_eq!(counts, expected);
            assert_eq!(store.latest_aired("a").unwrap(), Some(records[2].clone()), "the late one");
            assert_eq!(store.latest_aired("b").unwrap(), None);
        });
    }
}
