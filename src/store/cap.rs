//! The SQLite side of CAP at central: station places (columns added to `stations`), the
//! alert ledger's state, the record of every alert received, bulletins waiting for
//! approval, and the audit trail. Every table is created on open if missing, so a data
//! directory from an older central gets them with no manual step. The row decoders are
//! plain functions that the PostgreSQL store (`pg::cap`) shares.

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{PendingBulletin, StationPlace, StoreError};
use crate::protocol::{
    AlertRecord, Approval, ApprovalState, AuditEntry, BulletinPriority, CapDecision, CapOutcome,
    time_text,
};

pub(super) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS cap_state (
    name TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cap_alerts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at TEXT NOT NULL,
    source TEXT NOT NULL,
    sender TEXT NOT NULL,
    identifier TEXT NOT NULL,
    sent TEXT,
    status TEXT NOT NULL,
    msg_type TEXT NOT NULL,
    signature TEXT NOT NULL,
    decision TEXT NOT NULL,
    reason TEXT NOT NULL,
    bulletin_id TEXT,
    priority TEXT,
    stations INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS cap_alerts_key ON cap_alerts (sender, identifier, sent);
CREATE TABLE IF NOT EXISTS pending_bulletins (
    id TEXT PRIMARY KEY,
    doc_json TEXT NOT NULL,
    state TEXT NOT NULL,
    reason TEXT NOT NULL,
    requested_by TEXT NOT NULL,
    decided_by TEXT,
    decided_at TEXT,
    created_seq INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at TEXT NOT NULL,
    who TEXT NOT NULL,
    action TEXT NOT NULL,
    subject TEXT NOT NULL,
    origin TEXT NOT NULL,
    detail TEXT NOT NULL
);
";

/// Columns added to tables that shipped before CAP: (table, column, type).
pub(super) const ADDED: &[(&str, &str, &str)] =
    &[("stations", "lat", "REAL"), ("stations", "lon", "REAL"), ("stations", "geocodes", "TEXT")];

/// The `cap_state` row that holds the alert ledger.
pub(super) const LEDGER: &str = "alert_ledger";

pub(super) fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(&format!("timestamp {text:?}"), e))
}

/// A place's geocodes as the `stations.geocodes` column holds them (JSON), for both stores.
pub(super) fn geocodes_text(place: &StationPlace) -> Result<String, StoreError> {
    serde_json::to_string(&place.geocodes).map_err(|e| corrupt("geocodes", e))
}

/// A station's place from its columns (no geocodes column yet: none), for both stores.
pub(super) fn place_from(
    (station_id, lat, lon, codes): (String, Option<f64>, Option<f64>, Option<String>),
) -> Result<StationPlace, StoreError> {
    let geocodes = match codes {
        Some(text) => serde_json::from_str(&text)
            .map_err(|e| corrupt(&format!("station {station_id} geocodes"), e))?,
        None => Vec::new(),
    };
    Ok(StationPlace { station_id, lat, lon, geocodes })
}

pub(super) fn set_place(conn: &Connection, place: &StationPlace) -> Result<bool, StoreError> {
    let codes = geocodes_text(place)?;
    let changed = conn.execute(
        "UPDATE stations SET lat = ?2, lon = ?3, geocodes = ?4 WHERE id = ?1",
        params![place.station_id, place.lat, place.lon, codes],
    )?;
    Ok(changed == 1)
}

pub(super) fn places(conn: &Connection) -> Result<Vec<StationPlace>, StoreError> {
    let mut stmt = conn.prepare("SELECT id, lat, lon, geocodes FROM stations ORDER BY id")?;
    let rows = stmt.query_map([], |r| r.try_into())?.collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(place_from).collect()
}

pub(super) fn ledger(conn: &Connection) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM cap_state WHERE name = ?1", [LEDGER], |r| r.get(0))
        .optional()?)
}

fn insert_audit(conn: &Connection, e: &AuditEntry) -> Result<(), StoreError> {
    conn.execute(
        "INSERT INTO audit (at, who, action, subject, origin, detail) VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![time_text(e.at), e.who, e.action, e.subject, e.from, e.detail],
    )?;
    Ok(())
}

/// The `cap_alerts` columns a record is stored in (after `id`), in order, for both stores.
pub(super) const ALERT_RECORD_COLUMNS: &str = "received_at, source, sender, identifier, sent, \
     status, msg_type, signature, decision, reason, bulletin_id, priority, stations";

/// An alert record as stored: [`ALERT_RECORD_COLUMNS`]' values, for both stores.
pub(super) type AlertRecordRow = (
    String,
    String,
    String,
    String,
    Option<String>,
    String,
    String,
    String,
    String,
    String,
    Option<String>,
    Option<String>,
    i64,
);

/// What an alert record is stored as, for both stores.
pub(super) fn alert_record_row(r: &AlertRecord) -> Result<AlertRecordRow, StoreError> {
    let o = &r.outcome;
    Ok((
        time_text(r.received_at),
        r.source.clone(),
        r.sender.clone(),
        r.identifier.clone(),
        r.sent.map(time_text),
        r.status.clone(),
        r.msg_type.clone(),
        r.signature.clone(),
        o.decision.as_str().to_string(),
        o.reason.clone(),
        o.bulletin_id.clone(),
        o.priority.map(|p| p.as_str().to_string()),
        super::console::to_bigint(o.stations, "alert stations")?,
    ))
}

pub(super) fn record(
    conn: &mut Connection,
    records: &[AlertRecord],
    audit: &[AuditEntry],
    ledger: Option<&str>,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    for r in records {
        let row = alert_record_row(r)?;
        tx.execute(
            &format!(
                "INSERT INTO cap_alerts ({ALERT_RECORD_COLUMNS})
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)"
            ),
            params![
                row.0, row.1, row.2, row.3, row.4, row.5, row.6, row.7, row.8, row.9, row.10,
                row.11, row.12
            ],
        )?;
    }
    for e in audit {
        insert_audit(&tx, e)?;
    }
    if let Some(json) = ledger {
        tx.execute(
            "INSERT INTO cap_state (name, value) VALUES (?1, ?2)
             ON CONFLICT (name) DO UPDATE SET value = excluded.value",
            params![LEDGER, json],
        )?;
    }
    tx.commit()?;
    Ok(())
}

fn priority(text: Option<String>) -> Result<Option<BulletinPriority>, StoreError> {
    text.map(|t| {
        serde_json::from_value(serde_json::Value::String(t.clone()))
            .map_err(|e| corrupt(&format!("priority {t:?}"), e))
    })
    .transpose()
}

/// An alert record from its stored columns, for both stores.
pub(super) fn alert_record_from(r: AlertRecordRow) -> Result<AlertRecord, StoreError> {
    let decision = CapDecision::parse(&r.8).ok_or_else(|| corrupt("alert decision", &r.8))?;
    Ok(AlertRecord {
        received_at: time(&r.0)?,
        source: r.1,
        sender: r.2,
        identifier: r.3,
        sent: r.4.as_deref().map(time).transpose()?,
        status: r.5,
        msg_type: r.6,
        signature: r.7,
        outcome: CapOutcome {
            decision,
            reason: r.9,
            bulletin_id: r.10,
            priority: priority(r.11)?,
            stations: super::console::from_bigint(r.12, "alert stations")?,
        },
    })
}

pub(super) fn alerts(conn: &Connection, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
    let mut stmt = conn.prepare(&format!(
        "SELECT {ALERT_RECORD_COLUMNS} FROM cap_alerts ORDER BY id DESC LIMIT ?1"
    ))?;
    let rows: Vec<AlertRecordRow> = stmt
        .query_map([super::console::sql_limit(limit)], |r| r.try_into())?
        .collect::<Result<_, _>>()?;
    rows.into_iter().map(alert_record_from).collect()
}

pub(super) fn alert_bulletin(
    conn: &Connection,
    sender: &str,
    identifier: &str,
    sent: DateTime<Utc>,
) -> Result<Option<String>, StoreError> {
    Ok(conn
        .query_row(
            "SELECT bulletin_id FROM cap_alerts
             WHERE sender = ?1 AND identifier = ?2 AND sent = ?3 AND bulletin_id IS NOT NULL
               AND decision IN ('aired', 'waiting', 'test')
             ORDER BY id DESC LIMIT 1",
            params![sender, identifier, time_text(sent)],
            |r| r.get(0),
        )
        .optional()?)
}

/// A pending bulletin's document as stored (JSON), for both stores.
pub(super) fn pending_doc(p: &PendingBulletin) -> Result<String, StoreError> {
    serde_json::to_string(&p.doc).map_err(|e| corrupt("bulletin", e))
}

pub(super) fn put_pending(conn: &Connection, p: &PendingBulletin) -> Result<(), StoreError> {
    let doc = pending_doc(p)?;
    let a = &p.approval;
    conn.execute(
        "INSERT INTO pending_bulletins
             (id, doc_json, state, reason, requested_by, decided_by, decided_at, created_seq,
              requester)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,
                 (SELECT COALESCE(MAX(created_seq), 0) + 1 FROM pending_bulletins), ?8)",
        params![
            p.doc.id,
            doc,
            a.state.as_str(),
            a.reason,
            a.requested_by,
            a.decided_by,
            a.decided_at.map(time_text),
            p.requester
        ],
    )?;
    Ok(())
}

/// What [`pending_from`] reads, in order, for both stores.
pub(super) const PENDING_COLUMNS: &str = "doc_json, state, reason, requested_by, decided_by, \
     decided_at, requester FROM pending_bulletins";

fn pending_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<[Option<String>; 7]> {
    Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?, r.get(6)?])
}

/// A pending bulletin from [`PENDING_COLUMNS`]' values, for both stores.
pub(super) fn pending_from(row: [Option<String>; 7]) -> Result<PendingBulletin, StoreError> {
    let [doc, state, reason, requested_by, decided_by, decided_at, requester] = row;
    let doc = serde_json::from_str(doc.as_deref().unwrap_or_default())
        .map_err(|e| corrupt("pending bulletin", e))?;
    let state_text = state.unwrap_or_default();
    let state =
        ApprovalState::parse(&state_text).ok_or_else(|| corrupt("approval state", &state_text))?;
    Ok(PendingBulletin {
        doc,
        approval: Approval {
            state,
            reason: reason.unwrap_or_default(),
            requested_by: requested_by.unwrap_or_default(),
            decided_by,
            decided_at: decided_at.as_deref().map(time).transpose()?,
        },
        requester,
    })
}

pub(super) fn pending(conn: &Connection, id: &str) -> Result<Option<PendingBulletin>, StoreError> {
    let row = conn
        .query_row(&format!("SELECT {PENDING_COLUMNS} WHERE id = ?1"), [id], pending_row)
        .optional()?;
    row.map(pending_from).transpose()
}

pub(super) fn pending_list(
    conn: &Connection,
    limit: usize,
) -> Result<Vec<PendingBulletin>, StoreError> {
    let mut stmt =
        conn.prepare(&format!("SELECT {PENDING_COLUMNS} ORDER BY created_seq DESC LIMIT ?1"))?;
    let rows = stmt
        .query_map([super::console::sql_limit(limit)], pending_row)?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(pending_from).collect()
}

pub(super) fn decide(
    conn: &Connection,
    id: &str,
    from: ApprovalState,
    to: ApprovalState,
    by: &str,
    at: DateTime<Utc>,
) -> Result<bool, StoreError> {
    let changed = conn.execute(
        "UPDATE pending_bulletins SET state = ?3, decided_by = ?4, decided_at = ?5
         WHERE id = ?1 AND state = ?2",
        params![id, from.as_str(), to.as_str(), by, time_text(at)],
    )?;
    Ok(changed == 1)
}

pub(super) fn audit(conn: &Connection, e: &AuditEntry) -> Result<(), StoreError> {
    insert_audit(conn, e)
}

/// An audit line from its columns (at, who, action, subject, origin, detail), for both
/// stores.
pub(super) fn audit_from(
    (at, who, action, subject, from, detail): (String, String, String, String, String, String),
) -> Result<AuditEntry, StoreError> {
    Ok(AuditEntry { at: time(&at)?, who, action, subject, from, detail })
}

pub(super) fn audit_log(conn: &Connection, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT at, who, action, subject, origin, detail FROM audit ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([super::console::sql_limit(limit)], |r| r.try_into())?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter().map(audit_from).collect()
}

#[cfg(test)]
mod tests {
    use super::super::console::at_once;
    use super::super::contract::each_store;
    use super::super::{SqliteStore, Store};
    use super::*;
    use crate::protocol::BulletinDoc;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().to_utc()
    }

    /// A data directory from before CAP: the station columns and the new tables appear
    /// on open, the old rows keep working and have no place.
    #[test]
    fn an_older_stations_table_gains_the_place_columns_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE stations (id TEXT PRIMARY KEY, name TEXT NOT NULL,
                     district TEXT NOT NULL, token_hash TEXT NOT NULL UNIQUE,
                     created_at TEXT NOT NULL);
                 INSERT INTO stations VALUES ('a', 'Đài A', 'Tri Tôn', 'h', '2026-01-01T00:00:00Z');",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.station_by_token("h").unwrap().unwrap().id, "a");
        assert_eq!(
            store.station_places().unwrap(),
            [StationPlace { station_id: "a".into(), ..StationPlace::default() }]
        );
        let place = StationPlace {
            station_id: "a".into(),
            lat: Some(10.4),
            lon: Some(105.4),
            geocodes: vec!["30280".into()],
        };
        assert!(store.set_station_place(&place).unwrap());
        assert!(
            !store
                .set_station_place(&StationPlace { station_id: "b".into(), ..place.clone() })
                .unwrap()
        );
        drop(store);
        assert_eq!(SqliteStore::open(&path).unwrap().station_places().unwrap(), [place]);
    }

    fn station(store: &dyn Store, id: &str) {
        let station =
            super::super::Station { id: id.into(), name: id.into(), district: "x".into() };
        store.add_station(&station, &format!("token-{id}")).unwrap();
    }

    #[test]
    fn station_places_are_set_and_listed_by_id() {
        each_store(|store| {
            station(store, "b");
            station(store, "a");
            let place = StationPlace {
                station_id: "b".into(),
                lat: Some(10.4),
                lon: Some(-105.4),
                geocodes: vec!["30280".into(), "30".into()],
            };
            assert!(store.set_station_place(&place).unwrap());
            assert!(
                !store
                    .set_station_place(&StationPlace { station_id: "nope".into(), ..place.clone() })
                    .unwrap(),
                "no such station"
            );
            let unplaced = StationPlace { station_id: "a".into(), ..StationPlace::default() };
            assert_eq!(store.station_places().unwrap(), [unplaced, place]);
        });
    }

    fn record(decision: CapDecision, bulletin: Option<&str>) -> AlertRecord {
        AlertRecord {
            received_at: t("2026-12-01T00:00:00Z"),
            source: "POST by cap-source from 127.0.0.1:1".into(),
            sender: "s@x".into(),
            identifier: "A".into(),
            sent: Some(t("2026-11-30T23:30:00Z")),
            status: "Actual".into(),
            msg_type: "Alert".into(),
            signature: "none".into(),
            outcome: CapOutcome {
                decision,
                reason: "why".into(),
                bulletin_id: bulletin.map(str::to_string),
                priority: Some(BulletinPriority::Priority),
                stations: 3,
            },
        }
    }

    fn entry(n: i64) -> AuditEntry {
        AuditEntry {
            at: t("2026-12-01T00:00:00Z") + chrono::Duration::seconds(n),
            who: "cap-source".into(),
            action: "cap.waiting".into(),
            subject: "s@x,A,…".into(),
            from: "127.0.0.1:1".into(),
            detail: format!("b-{n}: why"),
        }
    }

    #[test]
    fn alert_records_the_ledger_and_the_audit_trail_are_written_together() {
        each_store(|store| {
            assert_eq!(store.cap_ledger().unwrap(), None);
            let sent = t("2026-11-30T23:30:00Z");
            let audit = entry(1);
            store
                .record_alerts(
                    &[record(CapDecision::Waiting, Some("b-1"))],
                    std::slice::from_ref(&audit),
                    Some("{}"),
                )
                .unwrap();
            store.record_alerts(&[record(CapDecision::Refused, None)], &[], None).unwrap();
            assert_eq!(
                store.cap_ledger().unwrap().as_deref(),
                Some("{}"),
                "a refusal keeps the ledger"
            );
            store.record_alerts(&[], &[], Some(r#"{"n":2}"#)).unwrap();
            assert_eq!(store.cap_ledger().unwrap().as_deref(), Some(r#"{"n":2}"#), "replaced");
            let alerts = store.alerts(10).unwrap();
            assert_eq!(
                alerts,
                [record(CapDecision::Refused, None), record(CapDecision::Waiting, Some("b-1"))]
            );
            assert_eq!(alerts[1].key_text(), "s@x,A,2026-11-30T23:30:00-00:00");
            assert_eq!(store.alerts(1).unwrap().len(), 1);
            assert_eq!(store.alert_bulletin("s@x", "A", sent).unwrap().as_deref(), Some("b-1"));
            assert_eq!(
                store.alert_bulletin("s@x", "A", sent + chrono::Duration::seconds(1)).unwrap(),
                None
            );
            assert_eq!(store.audit_log(10).unwrap(), [audit]);
        });
    }

    #[test]
    fn the_audit_trail_is_listed_newest_first_and_bounded() {
        each_store(|store| {
            for n in 0..5 {
                store.audit(&entry(n)).unwrap();
            }
            assert_eq!(store.audit_log(2).unwrap(), [entry(4), entry(3)]);
            assert_eq!(store.audit_log(100).unwrap().len(), 5);
            assert_eq!(store.audit_log(usize::MAX).unwrap().len(), 5, "no limit");
            assert!(store.audit_log(0).unwrap().is_empty());
        });
    }

    fn doc(id: &str) -> BulletinDoc {
        BulletinDoc {
            id: id.into(),
            title: "Lũ".into(),
            targets: vec!["a".into()],
            to_all: false,
            audio_sha256: "a".repeat(64),
            audio_size: 10,
            gain_db: 0.0,
            priority: BulletinPriority::Emergency,
            repeat: 0,
            interval_secs: 0,
            tone: true,
            issued_at: t("2026-12-01T00:00:00Z"),
            expires_at: t("2026-12-01T06:00:00Z"),
            event_seq: None,
        }
    }

    fn pending(id: &str) -> PendingBulletin {
        PendingBulletin {
            doc: doc(id),
            approval: Approval {
                state: ApprovalState::WaitingApproval,
                reason: "no auto_air rule".into(),
                requested_by: "cap:s@x".into(),
                decided_by: None,
                decided_at: None,
            },
            requester: Some("user:an".into()),
        }
    }

    #[test]
    fn a_waiting_bulletin_is_decided_once() {
        each_store(|store| {
            store.put_pending(&pending("b-1")).unwrap();
            store.put_pending(&pending("b-2")).unwrap();
            assert!(store.put_pending(&pending("b-1")).is_err(), "one row per bulletin");
            assert_eq!(store.pending("b-1").unwrap(), Some(pending("b-1")));
            assert_eq!(store.pending("nope").unwrap(), None);
            let ids: Vec<String> =
                store.pending_list(10).unwrap().into_iter().map(|p| p.doc.id).collect();
            assert_eq!(ids, ["b-2", "b-1"], "newest first");
            assert_eq!(store.pending_list(1).unwrap().len(), 1, "bounded");
            let at = t("2026-12-01T00:05:00Z");
            use ApprovalState::*;
            assert!(store.decide_pending("b-1", WaitingApproval, Approved, "admin", at).unwrap());
            assert!(!store.decide_pending("b-1", WaitingApproval, Approved, "admin2", at).unwrap());
            let decided = store.pending("b-1").unwrap().unwrap().approval;
            assert_eq!(
                (decided.state, decided.decided_by.as_deref(), decided.decided_at),
                (Approved, Some("admin"), Some(at))
            );
            assert!(!store.decide_pending("nope", WaitingApproval, Withdrawn, "x", at).unwrap());
        });
    }

    #[test]
    fn two_people_approving_at_once_approve_it_once() {
        each_store(|store| {
            store.put_pending(&pending("b-1")).unwrap();
            let at = t("2026-12-01T00:05:00Z");
            let decided = at_once(8, |n| {
                let by = format!("admin{n}");
                let to = ApprovalState::Approved;
                let won = store.decide_pending("b-1", ApprovalState::WaitingApproval, to, &by, at);
                won.unwrap().then_some(by)
            });
            let winners: Vec<String> = decided.into_iter().flatten().collect();
            assert_eq!(winners.len(), 1, "{winners:?}");
            let approval = store.pending("b-1").unwrap().unwrap().approval;
            assert_eq!(approval.decided_by.as_ref(), Some(&winners[0]), "the winner's decision");
        });
    }

    #[test]
    fn bulletins_stored_at_once_are_all_listed_newest_first() {
        each_store(|store| {
            at_once(6, |n| store.put_pending(&pending(&format!("b-{n}"))).unwrap());
            store.put_pending(&pending("last")).unwrap();
            let list = store.pending_list(100).unwrap();
            assert_eq!(list.len(), 7);
            assert_eq!(list[0].doc.id, "last", "numbered after every earlier one");
        });
    }
}
