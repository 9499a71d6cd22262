//! The SQLite side of CAP at central: station places (columns added to `stations`), the
//! alert ledger's state, the record of every alert received, bulletins waiting for
//! approval, and the audit trail. Every table is created on open if missing, so a data
//! directory from an older central gets them with no manual step.

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

const LEDGER: &str = "alert_ledger";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn time(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| corrupt(&format!("timestamp {text:?}"), e))
}

pub(super) fn set_place(conn: &Connection, place: &StationPlace) -> Result<bool, StoreError> {
    let codes = serde_json::to_string(&place.geocodes).map_err(|e| corrupt("geocodes", e))?;
    let changed = conn.execute(
        "UPDATE stations SET lat = ?2, lon = ?3, geocodes = ?4 WHERE id = ?1",
        params![place.station_id, place.lat, place.lon, codes],
    )?;
    Ok(changed == 1)
}

pub(super) fn places(conn: &Connection) -> Result<Vec<StationPlace>, StoreError> {
    let mut stmt = conn.prepare("SELECT id, lat, lon, geocodes FROM stations ORDER BY id")?;
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, Option<f64>>(1)?,
                r.get::<_, Option<f64>>(2)?,
                r.get::<_, Option<String>>(3)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(station_id, lat, lon, codes)| {
            let geocodes = match codes {
                Some(text) => serde_json::from_str(&text)
                    .map_err(|e| corrupt(&format!("station {station_id} geocodes"), e))?,
                None => Vec::new(),
            };
            Ok(StationPlace { station_id, lat, lon, geocodes })
        })
        .collect()
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

pub(super) fn record(
    conn: &mut Connection,
    records: &[AlertRecord],
    audit: &[AuditEntry],
    ledger: Option<&str>,
) -> Result<(), StoreError> {
    let tx = conn.transaction()?;
    for r in records {
        let o = &r.outcome;
        tx.execute(
            "INSERT INTO cap_alerts (received_at, source, sender, identifier, sent, status, msg_type,
                 signature, decision, reason, bulletin_id, priority, stations)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)",
            params![
                time_text(r.received_at),
                r.source,
                r.sender,
                r.identifier,
                r.sent.map(time_text),
                r.status,
                r.msg_type,
                r.signature,
                o.decision.as_str(),
                o.reason,
                o.bulletin_id,
                o.priority.map(|p| p.as_str()),
                o.stations as i64
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

pub(super) fn alerts(conn: &Connection, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT received_at, source, sender, identifier, sent, status, msg_type, signature,
                decision, reason, bulletin_id, priority, stations
         FROM cap_alerts ORDER BY id DESC LIMIT ?1",
    )?;
    type Row = (
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
    let rows: Vec<Row> = stmt
        .query_map([limit as i64], |r| {
            Ok((
                r.get(0)?,
                r.get(1)?,
                r.get(2)?,
                r.get(3)?,
                r.get(4)?,
                r.get(5)?,
                r.get(6)?,
                r.get(7)?,
                r.get(8)?,
                r.get(9)?,
                r.get(10)?,
                r.get(11)?,
                r.get(12)?,
            ))
        })?
        .collect::<Result<_, _>>()?;
    rows.into_iter()
        .map(|r| {
            let decision =
                CapDecision::parse(&r.8).ok_or_else(|| corrupt("alert decision", &r.8))?;
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
                    stations: r.12.max(0) as usize,
                },
            })
        })
        .collect()
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

pub(super) fn put_pending(conn: &Connection, p: &PendingBulletin) -> Result<(), StoreError> {
    let doc = serde_json::to_string(&p.doc).map_err(|e| corrupt("bulletin", e))?;
    let a = &p.approval;
    conn.execute(
        "INSERT INTO pending_bulletins
             (id, doc_json, state, reason, requested_by, decided_by, decided_at, created_seq)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7,
                 (SELECT COALESCE(MAX(created_seq), 0) + 1 FROM pending_bulletins))",
        params![
            p.doc.id,
            doc,
            a.state.as_str(),
            a.reason,
            a.requested_by,
            a.decided_by,
            a.decided_at.map(time_text)
        ],
    )?;
    Ok(())
}

const PENDING_COLUMNS: &str =
    "doc_json, state, reason, requested_by, decided_by, decided_at FROM pending_bulletins";

fn pending_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<[Option<String>; 6]> {
    Ok([r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?, r.get(5)?])
}

fn pending_from(row: [Option<String>; 6]) -> Result<PendingBulletin, StoreError> {
    let [doc, state, reason, requested_by, decided_by, decided_at] = row;
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
    let rows = stmt.query_map([limit as i64], pending_row)?.collect::<Result<Vec<_>, _>>()?;
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

pub(super) fn audit_log(conn: &Connection, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
    let mut stmt = conn.prepare(
        "SELECT at, who, action, subject, origin, detail FROM audit ORDER BY id DESC LIMIT ?1",
    )?;
    let rows = stmt
        .query_map([limit as i64], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, String>(5)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(|(at, who, action, subject, from, detail)| {
            Ok(AuditEntry { at: time(&at)?, who, action, subject, from, detail })
        })
        .collect()
}
