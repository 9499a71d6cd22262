//! The embedded SQLite store: one file, WAL journal, `synchronous=FULL` so a committed
//! write survives a power cut.
//!
//! The decoding of stored rows, the JSON columns and the enum texts are plain functions
//! here (`pub(super)`), shared with the PostgreSQL store (`pg::base`), so the two read
//! and write the same values.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

use super::{
    AudioLevels, PendingBulletin, PlaylogFilter, Role, Station, StationPlace, Store, StoreError,
    StoredHeartbeat, StoredManifest, StoredSchedule, cap, playlog,
};
// One parser for stored timestamps, the same for both stores.
use super::pg::time;
use crate::protocol::Record;
use crate::protocol::{AlertRecord, ApprovalState, AuditEntry};
use crate::protocol::{AudioInfo, SignedEnvelope};
use crate::protocol::{PlaylogAck, PlaylogSummary};
use crate::schedule::Layer;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS stations (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    district TEXT NOT NULL,
    token_hash TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS operators (
    token_hash TEXT PRIMARY KEY,
    role TEXT NOT NULL,
    label TEXT NOT NULL,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audio (
    sha256 TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    size INTEGER NOT NULL,
    duration_ms INTEGER NOT NULL,
    loudness_lufs REAL NOT NULL,
    gain_db REAL NOT NULL,
    created_at TEXT NOT NULL,
    true_peak_dbtp REAL,
    damage TEXT
);
CREATE TABLE IF NOT EXISTS schedules (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    origin TEXT NOT NULL,
    layer TEXT NOT NULL,
    source TEXT NOT NULL,
    audio_json TEXT NOT NULL,
    loaded_by TEXT NOT NULL,
    loaded_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS assignments (
    station_id TEXT NOT NULL REFERENCES stations(id),
    layer TEXT NOT NULL,
    origin TEXT NOT NULL,
    schedule_id INTEGER NOT NULL REFERENCES schedules(id),
    PRIMARY KEY (station_id, layer, origin)
);
CREATE TABLE IF NOT EXISTS manifests (
    station_id TEXT NOT NULL REFERENCES stations(id),
    version INTEGER NOT NULL,
    issued_at TEXT NOT NULL,
    valid_until TEXT NOT NULL,
    envelope_json TEXT NOT NULL,
    PRIMARY KEY (station_id, version)
);
CREATE TABLE IF NOT EXISTS heartbeats (
    station_id TEXT PRIMARY KEY REFERENCES stations(id),
    received_at TEXT NOT NULL,
    body_json TEXT NOT NULL
);
";

/// [`Store`] on one SQLite file. Calls are serialised through one connection: central's
/// writes are small and rare next to the audio bytes it serves from disk.
pub struct SqliteStore {
    conn: Mutex<Connection>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path` and applies the schema.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let conn = Connection::open(path)
            .map_err(|source| StoreError::Open { path: shown.clone(), source })?;
        conn.pragma_update(None, "journal_mode", "WAL")
            .and_then(|()| conn.pragma_update(None, "synchronous", "FULL"))
            .and_then(|()| conn.pragma_update(None, "foreign_keys", "ON"))
            .and_then(|()| conn.busy_timeout(std::time::Duration::from_secs(5)))
            .and_then(|()| conn.execute_batch(SCHEMA))
            .and_then(|()| conn.execute_batch(super::playlog::SCHEMA))
            .and_then(|()| conn.execute_batch(cap::SCHEMA))
            .and_then(|()| conn.execute_batch(super::field::SCHEMA))
            .and_then(|()| conn.execute_batch(super::live::SCHEMA))
            .and_then(|()| conn.execute_batch(super::console::SCHEMA))
            .and_then(|()| add_missing_columns(&conn))
            .and_then(|()| super::bulletins::prepare(&conn, path))
            .map_err(|source| StoreError::Open { path: shown, source })?;
        Ok(Self { conn: Mutex::new(conn) })
    }

    fn conn(&self) -> MutexGuard<'_, Connection> {
        // A panic while holding the lock cannot leave SQLite half-written (transactions
        // roll back), so a poisoned lock is still safe to use.
        self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Columns added after a table first shipped: a data directory made by an older
/// version gets them (empty) on open, so upgrading needs no manual step.
fn add_missing_columns(conn: &Connection) -> rusqlite::Result<()> {
    const ADDED: &[(&str, &str, &str)] =
        &[("audio", "true_peak_dbtp", "REAL"), ("audio", "damage", "TEXT")];
    for (table, column, kind) in
        ADDED.iter().chain(cap::ADDED).chain(super::console::ADDED).chain(super::live::ADDED)
    {
        let exists: bool = conn.query_row(
            &format!("SELECT COUNT(*) > 0 FROM pragma_table_info('{table}') WHERE name = ?1"),
            [column],
            |r| r.get(0),
        )?;
        if !exists {
            conn.execute_batch(&format!("ALTER TABLE {table} ADD COLUMN {column} {kind}"))?;
        }
    }
    Ok(())
}

/// The quietest true peak stored: digital silence measures `-inf`, which a REAL column
/// does not round-trip everywhere.
pub(super) const SILENT_PEAK_DBTP: f64 = -200.0;

/// An unsigned count or size as an SQL integer, refused rather than wrapped when it
/// does not fit.
pub(super) fn sql_int(value: u64, what: &str) -> Result<i64, StoreError> {
    i64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} is too large")))
}

/// A stored SQL integer as the unsigned value it was written from.
pub(super) fn read_int(value: i64, what: &str) -> Result<u64, StoreError> {
    u64::try_from(value).map_err(|_| StoreError::Corrupt(format!("{what} {value} is negative")))
}

/// A JSON column's text.
pub(super) fn to_json(value: &impl serde::Serialize) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A library row (`sha256, title, size, duration_ms, loudness_lufs, gain_db, damage`).
pub(super) fn audio_info(
    sha256: String,
    title: String,
    size: i64,
    duration_ms: i64,
    loudness_lufs: f64,
    gain_db: f64,
    damage: Option<String>,
) -> Result<AudioInfo, StoreError> {
    Ok(AudioInfo {
        size: read_int(size, "audio size")?,
        duration_ms: read_int(duration_ms, "audio duration")?,
        sha256,
        title,
        loudness_lufs,
        gain_db: gain_db as f32,
        damage,
    })
}

/// A schedule row (`id, origin, layer, source, audio_json, loaded_at`).
pub(super) fn schedule_row(
    id: i64,
    origin: String,
    layer_name: &str,
    source: String,
    audio_json: &str,
    loaded_at: &str,
) -> Result<StoredSchedule, StoreError> {
    Ok(StoredSchedule {
        id,
        origin,
        layer: layer(layer_name)?,
        source,
        audio: serde_json::from_str(audio_json)
            .map_err(|e| StoreError::Corrupt(format!("schedule {id} audio: {e}")))?,
        loaded_at: time(loaded_at)?,
    })
}

/// A manifest row (`version, issued_at, valid_until, envelope_json`) of `station_id`.
pub(super) fn manifest_row(
    station_id: &str,
    version: i64,
    issued_at: &str,
    valid_until: &str,
    envelope: &str,
) -> Result<StoredManifest, StoreError> {
    let envelope: SignedEnvelope = serde_json::from_str(envelope)
        .map_err(|e| StoreError::Corrupt(format!("manifest envelope: {e}")))?;
    Ok(StoredManifest {
        station_id: station_id.to_string(),
        version: read_int(version, "manifest version")?,
        issued_at: time(issued_at)?,
        valid_until: time(valid_until)?,
        envelope,
    })
}

/// Of a station's manifests (by version), those in force during `[from, until)`: the
/// last issued before `from` and every one issued in the range.
pub(super) fn in_force(
    all: Vec<StoredManifest>,
    from: DateTime<Utc>,
    until: DateTime<Utc>,
) -> Vec<StoredManifest> {
    let before = all.iter().rposition(|m| m.issued_at < from);
    all.into_iter()
        .enumerate()
        .filter(|(i, m)| Some(*i) == before || (m.issued_at >= from && m.issued_at < until))
        .map(|(_, m)| m)
        .collect()
}

/// A heartbeat row (`station_id, received_at, body_json`).
pub(super) fn heartbeat_row(
    station_id: String,
    received_at: &str,
    body: &str,
) -> Result<StoredHeartbeat, StoreError> {
    Ok(StoredHeartbeat {
        received_at: time(received_at)?,
        heartbeat: serde_json::from_str(body)
            .map_err(|e| StoreError::Corrupt(format!("heartbeat: {e}")))?,
        station_id,
    })
}

pub(super) fn layer_text(layer: Layer) -> &'static str {
    match layer {
        Layer::Local => "local",
        Layer::Provincial => "provincial",
    }
}

pub(super) fn layer(text: &str) -> Result<Layer, StoreError> {
    match text {
        "local" => Ok(Layer::Local),
        "provincial" => Ok(Layer::Provincial),
        other => Err(StoreError::Corrupt(format!("layer {other:?}"))),
    }
}

fn station_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Station> {
    Ok(Station { id: row.get(0)?, name: row.get(1)?, district: row.get(2)? })
}

impl Store for SqliteStore {
    fn add_station(&self, station: &Station, token_hash: &str) -> Result<(), StoreError> {
        let conn = self.conn();
        let result = conn.execute(
            "INSERT INTO stations (id, name, district, token_hash, created_at)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                station.id,
                station.name,
                station.district,
                token_hash,
                Utc::now().to_rfc3339()
            ],
        );
        match result {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.code == rusqlite::ErrorCode::ConstraintViolation =>
            {
                Err(StoreError::StationExists(station.id.clone()))
            }
            Err(e) => Err(e.into()),
        }
    }

    fn station(&self, id: &str) -> Result<Option<Station>, StoreError> {
        Ok(self
            .conn()
            .query_row("SELECT id, name, district FROM stations WHERE id = ?1", [id], station_row)
            .optional()?)
    }

    fn station_by_token(&self, token_hash: &str) -> Result<Option<Station>, StoreError> {
        // Asked on every station request: the statement is prepared once per connection.
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT id, name, district FROM stations WHERE token_hash = ?1")?;
        Ok(stmt.query_row([token_hash], station_row).optional()?)
    }

    fn station_token_hashes(&self) -> Result<Vec<(String, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT token_hash, id FROM stations")?;
        let rows = stmt.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    fn stations(&self) -> Result<Vec<Station>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare("SELECT id, name, district FROM stations ORDER BY id")?;
        let rows = stmt.query_map([], station_row)?.collect::<Result<Vec<_>, _>>()?;
        Ok(rows)
    }

    fn add_operator(&self, token_hash: &str, role: &Role, label: &str) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO operators (token_hash, role, label, created_at) VALUES (?1, ?2, ?3, ?4)",
            params![token_hash, role.to_string(), label, Utc::now().to_rfc3339()],
        )?;
        Ok(())
    }

    fn set_station_token(&self, id: &str, token_hash: &str) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "UPDATE stations SET token_hash = ?2 WHERE id = ?1",
            params![id, token_hash],
        )?;
        Ok(changed == 1)
    }

    fn revoke_operators(&self, label: &str) -> Result<usize, StoreError> {
        Ok(self.conn().execute("DELETE FROM operators WHERE label = ?1", [label])?)
    }

    fn operator_identity(&self, token_hash: &str) -> Result<Option<(Role, String)>, StoreError> {
        let conn = self.conn();
        let mut stmt =
            conn.prepare_cached("SELECT role, label FROM operators WHERE token_hash = ?1")?;
        let row: Option<(String, String)> =
            stmt.query_row([token_hash], |r| Ok((r.get(0)?, r.get(1)?))).optional()?;
        row.map(|(role, label)| Ok((role.parse::<Role>().map_err(StoreError::Corrupt)?, label)))
            .transpose()
    }

    fn operator_by_token(&self, token_hash: &str) -> Result<Option<Role>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare_cached("SELECT role FROM operators WHERE token_hash = ?1")?;
        let text: Option<String> = stmt.query_row([token_hash], |r| r.get(0)).optional()?;
        text.map(|t| t.parse::<Role>().map_err(StoreError::Corrupt)).transpose()
    }

    fn put_audio(&self, info: &AudioInfo, true_peak_dbtp: f64) -> Result<(), StoreError> {
        self.conn().execute(
            "INSERT INTO audio
             (sha256, title, size, duration_ms, loudness_lufs, gain_db, created_at, true_peak_dbtp,
              damage)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)
             ON CONFLICT (sha256) DO UPDATE SET loudness_lufs = excluded.loudness_lufs,
                 gain_db = excluded.gain_db, true_peak_dbtp = excluded.true_peak_dbtp",
            params![
                info.sha256,
                info.title,
                sql_int(info.size, "audio size")?,
                sql_int(info.duration_ms, "audio duration")?,
                info.loudness_lufs,
                f64::from(info.gain_db),
                Utc::now().to_rfc3339(),
                true_peak_dbtp.max(SILENT_PEAK_DBTP),
                info.damage
            ],
        )?;
        Ok(())
    }

    fn audio_levels(&self) -> Result<Vec<AudioLevels>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT sha256, loudness_lufs, true_peak_dbtp, gain_db FROM audio ORDER BY created_at, sha256",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok(AudioLevels {
                sha256: r.get(0)?,
                loudness_lufs: r.get(1)?,
                true_peak_dbtp: r.get(2)?,
                gain_db: r.get::<_, f64>(3)? as f32,
            })
        })?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    fn set_audio_levels(&self, levels: &AudioLevels) -> Result<bool, StoreError> {
        let changed = self.conn().execute(
            "UPDATE audio SET loudness_lufs = ?2, true_peak_dbtp = ?3, gain_db = ?4 WHERE sha256 = ?1",
            params![
                levels.sha256,
                levels.loudness_lufs,
                levels.true_peak_dbtp.map(|p| p.max(SILENT_PEAK_DBTP)),
                f64::from(levels.gain_db)
            ],
        )?;
        Ok(changed == 1)
    }

    fn audio(&self, sha256: &str) -> Result<Option<AudioInfo>, StoreError> {
        type Row = (String, String, i64, i64, f64, f64, Option<String>);
        let row = self
            .conn()
            .query_row(
                "SELECT sha256, title, size, duration_ms, loudness_lufs, gain_db, damage
                 FROM audio WHERE sha256 = ?1",
                [sha256],
                |r| Row::try_from(r),
            )
            .optional()?;
        row.map(|(sha256, title, size, duration, lufs, gain, damage)| {
            audio_info(sha256, title, size, duration, lufs, gain, damage)
        })
        .transpose()
    }

    fn load_schedule(
        &self,
        schedule: &StoredSchedule,
        stations: &[String],
        loaded_by: &str,
    ) -> Result<i64, StoreError> {
        let audio_json = to_json(&schedule.audio)?;
        let stations_json = to_json(&stations)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO schedules (origin, layer, source, audio_json, loaded_by, loaded_at,
                                    stations_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
            params![
                schedule.origin,
                layer_text(schedule.layer),
                schedule.source,
                audio_json,
                loaded_by,
                schedule.loaded_at.to_rfc3339(),
                stations_json
            ],
        )?;
        let id = tx.last_insert_rowid();
        for station in stations {
            let exists: Option<i64> = tx
                .query_row("SELECT 1 FROM stations WHERE id = ?1", [station], |r| r.get(0))
                .optional()?;
            if exists.is_none() {
                return Err(StoreError::NoSuchStation(station.clone()));
            }
            tx.execute(
                "INSERT INTO assignments (station_id, layer, origin, schedule_id)
                 VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (station_id, layer, origin)
                 DO UPDATE SET schedule_id = excluded.schedule_id",
                params![station, layer_text(schedule.layer), schedule.origin, id],
            )?;
        }
        tx.commit()?;
        Ok(id)
    }

    fn schedules_for(&self, station_id: &str) -> Result<Vec<StoredSchedule>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT s.id, s.origin, s.layer, s.source, s.audio_json, s.loaded_at
             FROM assignments a JOIN schedules s ON s.id = a.schedule_id
             WHERE a.station_id = ?1 ORDER BY s.layer DESC, s.origin",
        )?;
        let rows = stmt
            .query_map([station_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                    r.get::<_, String>(4)?,
                    r.get::<_, String>(5)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(id, origin, layer_name, source, audio_json, loaded_at)| {
                schedule_row(id, origin, &layer_name, source, &audio_json, &loaded_at)
            })
            .collect()
    }

    fn put_manifest(&self, manifest: &StoredManifest) -> Result<(), StoreError> {
        let envelope = to_json(&manifest.envelope)?;
        let version = sql_int(manifest.version, "manifest version")?;
        let result = self.conn().execute(
            "INSERT INTO manifests (station_id, version, issued_at, valid_until, envelope_json)
             VALUES (?1, ?2, ?3, ?4, ?5)",
            params![
                manifest.station_id,
                version,
                manifest.issued_at.to_rfc3339(),
                manifest.valid_until.to_rfc3339(),
                envelope
            ],
        );
        match result {
            Ok(_) => Ok(()),
            Err(rusqlite::Error::SqliteFailure(e, _))
                if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
            {
                Err(StoreError::VersionTaken {
                    station: manifest.station_id.clone(),
                    version: manifest.version,
                })
            }
            Err(e) => Err(e.into()),
        }
    }

    fn manifests_between(
        &self,
        station_id: &str,
        from: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<StoredManifest>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT version, issued_at, valid_until, envelope_json FROM manifests
             WHERE station_id = ?1 ORDER BY version",
        )?;
        let rows = stmt
            .query_map([station_id], |r| {
                Ok((
                    r.get::<_, i64>(0)?,
                    r.get::<_, String>(1)?,
                    r.get::<_, String>(2)?,
                    r.get::<_, String>(3)?,
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let all = rows
            .iter()
            .map(|(version, issued_at, valid_until, envelope)| {
                manifest_row(station_id, *version, issued_at, valid_until, envelope)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(in_force(all, from, until))
    }

    fn ingest_playlog(
        &self,
        station_id: &str,
        records: &[Record],
        now: DateTime<Utc>,
    ) -> Result<PlaylogAck, StoreError> {
        playlog::ingest(&mut self.conn(), station_id, records, now)
    }

    fn playlog(&self, filter: &PlaylogFilter) -> Result<Vec<Record>, StoreError> {
        playlog::query(&self.conn(), filter)
    }

    fn playlog_summary(&self, station_id: &str) -> Result<PlaylogSummary, StoreError> {
        playlog::summary(&self.conn(), station_id)
    }

    fn put_enrol_code(&self, code: &super::EnrolCode) -> Result<(), StoreError> {
        super::field::put_enrol_code(&self.conn(), code)
    }

    fn enrol_code(&self, lookup: &str) -> Result<Option<super::EnrolCode>, StoreError> {
        super::field::enrol_code(&self.conn(), lookup)
    }

    fn claim_enrol_code(
        &self,
        lookup: &str,
        claim_hash: &str,
        token_hash: &str,
        now: DateTime<Utc>,
        max_failures: u32,
    ) -> Result<super::ClaimOutcome, StoreError> {
        super::field::claim_enrol_code(
            &mut self.conn(),
            lookup,
            claim_hash,
            token_hash,
            now,
            max_failures,
        )
    }

    fn live_started(&self, record: &crate::protocol::live::LiveRecord) -> Result<(), StoreError> {
        super::live::started(&self.conn(), record)
    }

    fn live_ended(
        &self,
        id: &str,
        at: DateTime<Utc>,
        chunks: u64,
        audio_secs: f64,
        reason: &str,
    ) -> Result<(), StoreError> {
        super::live::ended(&self.conn(), id, at, chunks, audio_secs, reason)
    }

    fn live_alive(&self, id: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        super::live::alive(&self.conn(), id, at)
    }

    fn live_list(
        &self,
        limit: usize,
    ) -> Result<Vec<crate::protocol::live::LiveRecord>, StoreError> {
        super::live::list(&self.conn(), limit)
    }

    fn playlog_outcome_counts(&self) -> Result<Vec<(String, String, u64)>, StoreError> {
        super::field::playlog_outcome_counts(&self.conn())
    }

    fn latest_aired(&self, station_id: &str) -> Result<Option<Record>, StoreError> {
        super::field::latest_aired(&self.conn(), station_id)
    }

    fn open_alerts(&self) -> Result<Vec<super::AlertRow>, StoreError> {
        super::field::open_alerts(&self.conn())
    }

    fn raise_alert(
        &self,
        alert: &super::AlertRow,
        channels: &[&str],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        super::field::raise_alert(&mut self.conn(), alert, channels, now)
    }

    fn clear_alert(
        &self,
        key: &str,
        channels: &[&str],
        now: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        super::field::clear_alert(&mut self.conn(), key, channels, now)
    }

    fn due_notifications(
        &self,
        now: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<super::Notification>, StoreError> {
        super::field::due_notifications(&self.conn(), now, limit)
    }

    fn notification_sent(&self, id: i64, now: DateTime<Utc>) -> Result<(), StoreError> {
        super::field::notification_sent(&self.conn(), id, now)
    }

    fn notification_failed(
        &self,
        id: i64,
        error: &str,
        next_try: Option<DateTime<Utc>>,
    ) -> Result<(), StoreError> {
        super::field::notification_failed(&self.conn(), id, error, next_try)
    }

    fn latest_manifest(&self, station_id: &str) -> Result<Option<StoredManifest>, StoreError> {
        let row: Option<(i64, String, String, String)> = self
            .conn()
            .query_row(
                "SELECT version, issued_at, valid_until, envelope_json FROM manifests
                 WHERE station_id = ?1 ORDER BY version DESC LIMIT 1",
                [station_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()?;
        row.map(|(version, issued_at, valid_until, envelope)| {
            manifest_row(station_id, version, &issued_at, &valid_until, &envelope)
        })
        .transpose()
    }

    fn put_heartbeat(&self, heartbeat: &StoredHeartbeat) -> Result<(), StoreError> {
        let body = to_json(&heartbeat.heartbeat)?;
        let mut conn = self.conn();
        let tx = conn.transaction()?;
        tx.execute(
            "INSERT INTO heartbeats (station_id, received_at, body_json) VALUES (?1, ?2, ?3)
             ON CONFLICT (station_id) DO UPDATE
             SET received_at = excluded.received_at, body_json = excluded.body_json",
            params![heartbeat.station_id, heartbeat.received_at.to_rfc3339(), body],
        )?;
        super::console::add_history(&tx, heartbeat, &body)?;
        tx.commit()?;
        Ok(())
    }

    fn heartbeat_history(
        &self,
        station_id: &str,
        limit: usize,
    ) -> Result<Vec<StoredHeartbeat>, StoreError> {
        super::console::heartbeat_history(&self.conn(), station_id, limit)
    }

    fn schedule_loads(&self, limit: usize) -> Result<Vec<super::ScheduleLoad>, StoreError> {
        super::console::schedule_loads(&self.conn(), limit)
    }

    fn missed_since(&self, since: DateTime<Utc>) -> Result<Vec<(String, u64)>, StoreError> {
        super::console::missed_since(&self.conn(), since)
    }

    fn library(&self, limit: usize) -> Result<Vec<super::LibraryEntry>, StoreError> {
        super::console::library(&self.conn(), limit)
    }

    fn add_user(&self, user: &super::User) -> Result<(), StoreError> {
        super::console::add_user(&self.conn(), user)
    }

    fn user(&self, name: &str) -> Result<Option<super::User>, StoreError> {
        super::console::user(&self.conn(), name)
    }

    fn users(&self) -> Result<Vec<super::User>, StoreError> {
        super::console::users(&self.conn())
    }

    fn set_user_password(
        &self,
        name: &str,
        password_hash: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        super::console::set_user_password(&mut self.conn(), name, password_hash, at)
    }

    fn set_user_disabled(
        &self,
        name: &str,
        disabled: bool,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        super::console::set_user_disabled(&mut self.conn(), name, disabled, at)
    }

    fn put_session(&self, session: &super::SessionRow) -> Result<(), StoreError> {
        super::console::put_session(&self.conn(), session)
    }

    fn session(&self, id_hash: &str) -> Result<Option<super::SessionRow>, StoreError> {
        super::console::session(&self.conn(), id_hash)
    }

    fn touch_session(&self, id_hash: &str, at: DateTime<Utc>) -> Result<(), StoreError> {
        super::console::touch_session(&self.conn(), id_hash, at)
    }

    fn end_session(&self, id_hash: &str) -> Result<(), StoreError> {
        super::console::end_session(&self.conn(), id_hash)
    }

    fn end_idle_sessions(&self, seen_before: DateTime<Utc>) -> Result<usize, StoreError> {
        super::console::end_idle_sessions(&self.conn(), seen_before)
    }

    fn login_failures(&self, key: &str) -> Result<Option<super::LoginFailures>, StoreError> {
        super::console::login_failures(&self.conn(), key)
    }

    fn add_login_failure(
        &self,
        key: &str,
        at: DateTime<Utc>,
        forget_before: DateTime<Utc>,
        keep_at_most: usize,
    ) -> Result<u32, StoreError> {
        super::console::add_login_failure(&mut self.conn(), key, at, forget_before, keep_at_most)
    }

    fn clear_login_failures(&self, key: &str) -> Result<(), StoreError> {
        super::console::clear_login_failures(&self.conn(), key)
    }

    fn set_station_place(&self, place: &StationPlace) -> Result<bool, StoreError> {
        cap::set_place(&self.conn(), place)
    }

    fn station_places(&self) -> Result<Vec<StationPlace>, StoreError> {
        cap::places(&self.conn())
    }

    /// Nothing to wait for: one process opens the file, and it already takes CAP alerts
    /// one at a time (`CapState::lock` in `central::cap`).
    fn cap_turn(&self) -> Result<super::CapTurn, StoreError> {
        Ok(super::CapTurn::within_process())
    }
    fn cap_ledger(&self) -> Result<Option<String>, StoreError> {
        cap::ledger(&self.conn())
    }

    fn record_alerts(
        &self,
        records: &[AlertRecord],
        audit: &[AuditEntry],
        ledger: Option<&str>,
    ) -> Result<(), StoreError> {
        cap::record(&mut self.conn(), records, audit, ledger)
    }

    fn alerts(&self, limit: usize) -> Result<Vec<AlertRecord>, StoreError> {
        cap::alerts(&self.conn(), limit)
    }

    fn alert_bulletin(
        &self,
        sender: &str,
        identifier: &str,
        sent: DateTime<Utc>,
    ) -> Result<Option<String>, StoreError> {
        cap::alert_bulletin(&self.conn(), sender, identifier, sent)
    }

    fn put_pending(&self, pending: &PendingBulletin) -> Result<(), StoreError> {
        cap::put_pending(&self.conn(), pending)
    }

    fn pending(&self, id: &str) -> Result<Option<PendingBulletin>, StoreError> {
        cap::pending(&self.conn(), id)
    }

    fn pending_list(&self, limit: usize) -> Result<Vec<PendingBulletin>, StoreError> {
        cap::pending_list(&self.conn(), limit)
    }

    fn decide_pending(
        &self,
        id: &str,
        from: ApprovalState,
        to: ApprovalState,
        by: &str,
        at: DateTime<Utc>,
    ) -> Result<bool, StoreError> {
        cap::decide(&self.conn(), id, from, to, by, at)
    }

    fn audit(&self, entry: &AuditEntry) -> Result<(), StoreError> {
        cap::audit(&self.conn(), entry)
    }

    fn audit_log(&self, limit: usize) -> Result<Vec<AuditEntry>, StoreError> {
        cap::audit_log(&self.conn(), limit)
    }

    fn heartbeats(&self) -> Result<Vec<StoredHeartbeat>, StoreError> {
        let conn = self.conn();
        let mut stmt = conn.prepare(
            "SELECT station_id, received_at, body_json FROM heartbeats ORDER BY station_id",
        )?;
        let rows = stmt
            .query_map([], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?, r.get::<_, String>(2)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        rows.into_iter()
            .map(|(station_id, received_at, body)| heartbeat_row(station_id, &received_at, &body))
            .collect()
    }

    // Urgent bulletins (`bulletins.rs`).
    fn append_bulletin_event(
        &self,
        subject: super::EventSubject<'_>,
        targets: &[String],
        expires_at: DateTime<Utc>,
        sign: super::SignEvent<'_>,
    ) -> Result<Option<super::BulletinEventRow>, StoreError> {
        super::bulletins::append_bulletin_event(
            &mut self.conn(),
            subject,
            targets,
            expires_at,
            sign,
        )
    }
    fn bulletin_events_after(
        &self,
        after: u64,
    ) -> Result<Vec<super::BulletinEventRow>, StoreError> {
        super::bulletins::bulletin_events_after(&self.conn(), after)
    }
    fn bulletin(&self, id: &str) -> Result<Option<super::StoredBulletin>, StoreError> {
        super::bulletins::bulletin(&self.conn(), id)
    }
    fn bulletins(&self) -> Result<Vec<super::StoredBulletin>, StoreError> {
        super::bulletins::bulletins(&self.conn())
    }
    fn put_deliveries(&self, batches: &[super::DeliveryBatch]) -> Result<(), StoreError> {
        super::bulletins::put_deliveries(&mut self.conn(), batches)
    }
    fn deliveries(
        &self,
        bulletin_id: &str,
    ) -> Result<Vec<(String, crate::protocol::DeliveryReport)>, StoreError> {
        super::bulletins::deliveries(&self.conn(), bulletin_id)
    }
    /// One process writes the file: its own appends are all there is to know of.
    fn bulletin_feed(&self) -> Option<std::sync::mpsc::Receiver<u64>> {
        None
    }
    /// One process issues this file's manifests: it announces its own.
    fn manifest_feed(&self) -> Option<std::sync::mpsc::Receiver<super::ManifestNews>> {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{DocumentKind, Heartbeat};
    use crate::store::contract::each_store;
    use crate::store::hash_token;
    use std::collections::BTreeMap;

    fn station(id: &str) -> Station {
        Station { id: id.into(), name: format!("Đài {id}"), district: "Tri Tôn".into() }
    }

    /// Acknowledged data (manifests issued, and whatever central confirms to a station)
    /// survives a kill -9 or power cut: WAL journal, every commit fsynced.
    #[test]
    fn the_store_is_wal_with_full_sync() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("central.sqlite")).unwrap();
        let conn = store.conn();
        let mode: String = conn.pragma_query_value(None, "journal_mode", |r| r.get(0)).unwrap();
        let sync: i64 = conn.pragma_query_value(None, "synchronous", |r| r.get(0)).unwrap();
        assert_eq!((mode.as_str(), sync), ("wal", 2));
    }

    /// A data directory made before central kept true peaks opens as it is: the column
    /// is added, empty, and the file's row reads back with no true peak (so the start
    /// measures it again, see `central::gains`).
    #[test]
    fn an_older_library_table_gains_the_true_peak_column_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.sqlite");
        {
            let conn = Connection::open(&path).unwrap();
            conn.execute_batch(
                "CREATE TABLE audio (sha256 TEXT PRIMARY KEY, title TEXT NOT NULL,
                     size INTEGER NOT NULL, duration_ms INTEGER NOT NULL,
                     loudness_lufs REAL NOT NULL, gain_db REAL NOT NULL,
                     created_at TEXT NOT NULL);
                 INSERT INTO audio VALUES ('abc', 'Bản tin', 10, 1000, -20.0, 4.0, '2026-01-01T00:00:00Z');",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        let levels = store.audio_levels().unwrap();
        assert_eq!(
            levels,
            [AudioLevels {
                sha256: "abc".into(),
                loudness_lufs: -20.0,
                true_peak_dbtp: None,
                gain_db: 4.0
            }]
        );
        let old = store.audio("abc").unwrap().unwrap();
        assert_eq!((old.title.as_str(), old.damage), ("Bản tin", None), "not known damaged");
        // Opening again changes nothing.
        drop(store);
        assert_eq!(SqliteStore::open(&path).unwrap().audio_levels().unwrap(), levels);
    }

    /// What is written is on disk: a store opened again on the file holds it.
    #[test]
    fn stations_operators_and_tokens_survive_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.sqlite");
        {
            let store = SqliteStore::open(&path).unwrap();
            store.add_station(&station("a"), &hash_token("tok-a")).unwrap();
            store.add_operator(&hash_token("op"), &Role::District("Tri Tôn".into()), "x").unwrap();
        }
        let store = SqliteStore::open(&path).unwrap();
        assert_eq!(store.station_by_token(&hash_token("tok-a")).unwrap(), Some(station("a")));
        assert_eq!(
            store.operator_by_token(&hash_token("op")).unwrap(),
            Some(Role::District("Tri Tôn".into()))
        );
    }

    #[test]
    fn stations_are_found_by_id_and_token_and_a_new_token_replaces_the_old() {
        each_store(|store| {
            store.add_station(&station("b"), &hash_token("tok-b")).unwrap();
            store.add_station(&station("a"), &hash_token("tok-a")).unwrap();
            assert!(matches!(
                store.add_station(&station("a"), &hash_token("tok-other")),
                Err(StoreError::StationExists(_))
            ));
            assert!(
                matches!(
                    store.add_station(&station("c"), &hash_token("tok-a")),
                    Err(StoreError::StationExists(_))
                ),
                "a token is one station's"
            );
            assert_eq!(store.station("a").unwrap(), Some(station("a")));
            assert_eq!(store.station("c").unwrap(), None);
            assert_eq!(store.station_by_token(&hash_token("tok-a")).unwrap(), Some(station("a")));
            assert_eq!(store.station_by_token(&hash_token("nope")).unwrap(), None);
            assert_eq!(store.stations().unwrap(), [station("a"), station("b")], "by id");
            assert!(store.set_station_token("a", &hash_token("tok-a2")).unwrap());
            assert_eq!(store.station_by_token(&hash_token("tok-a")).unwrap(), None);
            assert_eq!(store.station_by_token(&hash_token("tok-a2")).unwrap(), Some(station("a")));
            let mut tokens = store.station_token_hashes().unwrap();
            tokens.sort();
            let mut expected = vec![
                (hash_token("tok-a2"), "a".to_string()),
                (hash_token("tok-b"), "b".to_string()),
            ];
            expected.sort();
            assert_eq!(tokens, expected, "every station's current token, the old one gone");
            assert!(!store.set_station_token("c", &hash_token("tok-c")).unwrap());
        });
    }

    /// Two replicas adding one station at once: one adds it, the other is told it exists.
    #[test]
    fn a_station_added_twice_at_once_is_added_once() {
        each_store(|store| {
            let results: Vec<_> = std::thread::scope(|scope| {
                let adds: Vec<_> = (0..2)
                    .map(|n| {
                        scope.spawn(move || {
                            store.add_station(&station("a"), &hash_token(&format!("t{n}")))
                        })
                    })
                    .collect();
                adds.into_iter().map(|a| a.join().unwrap()).collect()
            });
            assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
            assert!(
                results.iter().any(|r| matches!(r, Err(StoreError::StationExists(_)))),
                "{results:?}"
            );
            assert_eq!(store.stations().unwrap().len(), 1);
        });
    }

    #[test]
    fn operators_have_a_role_and_a_label_and_are_revoked_by_label() {
        each_store(|store| {
            let district = Role::District("Tri Tôn/Ba Chúc".into());
            store.add_operator(&hash_token("op1"), &district, "Lan").unwrap();
            store.add_operator(&hash_token("op2"), &Role::Viewer, "Lan").unwrap();
            store.add_operator(&hash_token("op3"), &Role::Admin, "Minh").unwrap();
            assert_eq!(
                store.operator_by_token(&hash_token("op1")).unwrap(),
                Some(district.clone())
            );
            assert_eq!(
                store.operator_identity(&hash_token("op3")).unwrap(),
                Some((Role::Admin, "Minh".to_string()))
            );
            assert_eq!(store.operator_by_token(&hash_token("nope")).unwrap(), None);
            assert_eq!(store.operator_identity(&hash_token("nope")).unwrap(), None);
            assert_eq!(store.revoke_operators("Lan").unwrap(), 2);
            assert_eq!(store.revoke_operators("Lan").unwrap(), 0);
            assert_eq!(store.operator_by_token(&hash_token("op1")).unwrap(), None);
            assert_eq!(store.operator_by_token(&hash_token("op3")).unwrap(), Some(Role::Admin));
        });
    }

    #[test]
    fn audio_keeps_the_first_title_and_the_latest_measurement() {
        each_store(|store| {
            let info = |title: &str, lufs: f64| AudioInfo {
                sha256: "ab".repeat(32),
                title: title.into(),
                size: 5_000_000_000,
                duration_ms: 61_000,
                loudness_lufs: lufs,
                gain_db: -3.5,
                damage: Some("truncated".into()),
            };
            assert_eq!(store.audio(&"ab".repeat(32)).unwrap(), None);
            store.put_audio(&info("Bản tin", -20.0), -1.5).unwrap();
            store.put_audio(&info("Khác", -18.0), f64::NEG_INFINITY).unwrap();
            assert_eq!(store.audio(&"ab".repeat(32)).unwrap(), Some(info("Bản tin", -18.0)));
            let silent = AudioLevels {
                sha256: "ab".repeat(32),
                loudness_lufs: -18.0,
                true_peak_dbtp: Some(SILENT_PEAK_DBTP),
                gain_db: -3.5,
            };
            assert_eq!(
                store.audio_levels().unwrap(),
                std::slice::from_ref(&silent),
                "silence is stored"
            );
            let levels = AudioLevels { true_peak_dbtp: Some(-0.5), gain_db: 2.0, ..silent };
            assert!(store.set_audio_levels(&levels).unwrap());
            assert_eq!(store.audio_levels().unwrap(), std::slice::from_ref(&levels));
            let elsewhere = AudioLevels { sha256: "cd".repeat(32), ..levels };
            assert!(!store.set_audio_levels(&elsewhere).unwrap(), "not in the library");
        });
    }

    #[test]
    fn loading_replaces_same_origin_and_is_all_or_nothing() {
        each_store(|store| {
            store.add_station(&station("a"), "h1").unwrap();
            store.add_station(&station("b"), "h2").unwrap();
            let mut s = StoredSchedule {
                id: 0,
                origin: "p.toml".into(),
                layer: Layer::Provincial,
                source: "v1".into(),
                audio: BTreeMap::from([("x.mp3".to_string(), "ab".repeat(32))]),
                loaded_at: DateTime::from_timestamp(1_800_000_000, 0).unwrap(),
            };
            store.load_schedule(&s, &["a".into()], "admin").unwrap();
            s.source = "v2".into();
            let id =
                store.load_schedule(&s, &["a".into(), "b".into(), "a".into()], "admin").unwrap();
            let got = store.schedules_for("a").unwrap();
            assert_eq!(got, [StoredSchedule { id, ..s.clone() }]);
            assert_eq!(store.schedules_for("b").unwrap()[0].id, id);
            s.source = "v3".into();
            let err = store.load_schedule(&s, &["a".into(), "nope".into()], "admin").unwrap_err();
            assert!(matches!(err, StoreError::NoSuchStation(ref n) if n == "nope"), "{err:?}");
            assert_eq!(store.schedules_for("a").unwrap()[0].source, "v2", "partial load leaked");
            // A local file with the same name never replaces the provincial one.
            s.layer = Layer::Local;
            s.source = "local".into();
            store.load_schedule(&s, &["a".into()], "district:x").unwrap();
            let got = store.schedules_for("a").unwrap();
            assert_eq!(got.len(), 2);
            assert_eq!((got[0].layer, got[0].source.as_str()), (Layer::Provincial, "v2"));
            assert_eq!(store.schedules_for("nope").unwrap(), []);
        });
    }

    fn manifest(version: u64, issued_at: i64) -> StoredManifest {
        let at = DateTime::from_timestamp(1_800_000_000 + issued_at, 0).unwrap();
        StoredManifest {
            station_id: "a".into(),
            version,
            issued_at: at,
            valid_until: at + chrono::Duration::days(7),
            envelope: SignedEnvelope {
                kind: DocumentKind::Manifest,
                payload: String::new(),
                signature: version.to_string(),
            },
        }
    }

    #[test]
    fn manifest_versions_are_unique_and_latest_wins() {
        each_store(|store| {
            store.add_station(&station("a"), "h1").unwrap();
            store.put_manifest(&manifest(1, 0)).unwrap();
            store.put_manifest(&manifest(2, 10)).unwrap();
            assert!(matches!(
                store.put_manifest(&manifest(2, 20)),
                Err(StoreError::VersionTaken { version: 2, .. })
            ));
            assert_eq!(store.latest_manifest("a").unwrap(), Some(manifest(2, 10)));
            assert_eq!(store.latest_manifest("b").unwrap(), None);
        });
    }

    /// Two replicas issuing the same version at once: one document under it, never two.
    #[test]
    fn one_manifest_version_issued_at_once_by_several_writers_is_stored_once() {
        each_store(|store| {
            store.add_station(&station("a"), "h1").unwrap();
            let results: Vec<_> = std::thread::scope(|scope| {
                let puts: Vec<_> = (0..4)
                    .map(|n| scope.spawn(move || store.put_manifest(&manifest(7, n))))
                    .collect();
                puts.into_iter().map(|p| p.join().unwrap()).collect()
            });
            assert_eq!(results.iter().filter(|r| r.is_ok()).count(), 1, "{results:?}");
            assert!(
                results
                    .iter()
                    .filter(|r| r.is_err())
                    .all(|r| matches!(r, Err(StoreError::VersionTaken { version: 7, .. }))),
                "{results:?}"
            );
            assert_eq!(store.latest_manifest("a").unwrap().unwrap().version, 7);
        });
    }

    /// Replica B hears of each manifest replica A commits, with its station and version;
    /// a version refused as taken is not announced; an embedded file has no feed.
    #[test]
    fn a_manifest_issued_on_one_replica_is_announced_to_the_other() {
        use crate::store::ManifestNews;
        use std::time::Duration;
        let dir = tempfile::tempdir().unwrap();
        let embedded = SqliteStore::open(&dir.path().join("central.sqlite")).unwrap();
        assert!(embedded.manifest_feed().is_none(), "one process issues: nothing to follow");

        let database = crate::testing::database::TestDatabase::new();
        let a = crate::store::PgStore::connect(&database.url).unwrap();
        let b = crate::store::PgStore::connect(&database.url).unwrap();
        a.add_station(&station("a"), "h1").unwrap();
        let feed = b.manifest_feed().expect("a shared database has a feed");
        let next = || feed.recv_timeout(Duration::from_secs(10)).expect("news within 10 s");
        assert_eq!(next(), ManifestNews::MaybeMissed, "first: B listens");
        a.put_manifest(&manifest(1, 0)).unwrap();
        assert!(a.put_manifest(&manifest(1, 5)).is_err(), "taken");
        b.put_manifest(&manifest(2, 10)).unwrap();
        assert_eq!(next(), ManifestNews::Issued { station_id: "a".into(), version: 1 });
        assert_eq!(
            next(),
            ManifestNews::Issued { station_id: "a".into(), version: 2 },
            "its own too"
        );
        assert!(feed.try_recv().is_err(), "the refused version was not announced");
    }

    #[test]
    fn manifests_between_are_the_one_in_force_at_the_start_and_those_issued_in_the_range() {
        each_store(|store| {
            store.add_station(&station("a"), "h1").unwrap();
            for (version, at) in [(1, 0), (2, 100), (3, 200), (4, 300)] {
                store.put_manifest(&manifest(version, at)).unwrap();
            }
            let at = |secs: i64| DateTime::from_timestamp(1_800_000_000 + secs, 0).unwrap();
            let versions = |from, until| -> Vec<u64> {
                store
                    .manifests_between("a", at(from), at(until))
                    .unwrap()
                    .iter()
                    .map(|m| m.version)
                    .collect()
            };
            assert_eq!(versions(150, 300), [2, 3], "the one in force at the start, then the range");
            assert_eq!(versions(100, 101), [1, 2], "issued at the start, after the one before");
            assert_eq!(versions(-10, 50), [1]);
            assert_eq!(versions(1000, 2000), [4]);
            assert_eq!(store.manifests_between("b", at(0), at(1000)).unwrap(), []);
        });
    }

    #[test]
    fn the_latest_heartbeat_of_each_station_is_kept() {
        each_store(|store| {
            store.add_station(&station("b"), "h2").unwrap();
            store.add_station(&station("a"), "h1").unwrap();
            let beat = |id: &str, n: i64| {
                let at = DateTime::from_timestamp(1_800_000_000 + n, 0).unwrap();
                let heartbeat: Heartbeat = serde_json::from_value(serde_json::json!({
                    "manifest_version": n, "clock_offset_ms": -12, "missing_bytes": 10,
                    "now_playing": "item-1", "sink_health": "ok", "sent_at": at,
                }))
                .unwrap();
                StoredHeartbeat { station_id: id.into(), received_at: at, heartbeat }
            };
            assert_eq!(store.heartbeats().unwrap(), []);
            store.put_heartbeat(&beat("b", 1)).unwrap();
            store.put_heartbeat(&beat("a", 2)).unwrap();
            store.put_heartbeat(&beat("b", 3)).unwrap();
            assert_eq!(store.heartbeats().unwrap(), [beat("a", 2), beat("b", 3)]);
        });
    }
}
