//! `loa report DATE`: planned provincial items and pushed bulletins against what the
//! stations recorded.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::bulletin::BulletinPriority;

/// What one planned provincial item came to, in `loa report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ReportStatus {
    /// Played, on time.
    Aired,
    Late,
    Preempted,
    Failed,
    Missed,
    /// Its deadline passed and central has no record yet (station offline or behind).
    NotReported,
    /// Its deadline has not passed yet.
    Upcoming,
}

impl ReportStatus {
    pub const ALL: [ReportStatus; 7] = [
        ReportStatus::Aired,
        ReportStatus::Late,
        ReportStatus::Preempted,
        ReportStatus::Failed,
        ReportStatus::Missed,
        ReportStatus::NotReported,
        ReportStatus::Upcoming,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ReportStatus::Aired => "aired",
            ReportStatus::Late => "late",
            ReportStatus::Preempted => "preempted",
            ReportStatus::Failed => "failed",
            ReportStatus::Missed => "missed",
            ReportStatus::NotReported => "not-reported",
            ReportStatus::Upcoming => "upcoming",
        }
    }
}

/// One planned provincial item at one station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReportRow {
    pub station: String,
    pub district: String,
    pub item_id: String,
    pub title: String,
    pub planned: DateTime<Utc>,
    pub status: ReportStatus,
    pub delay_ms: Option<i64>,
    /// Why (pre-empted, failed, missed), or "station last seen …" when not reported.
    pub detail: String,
}

/// Counts per status for one district.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistrictTotals {
    pub district: String,
    pub stations: u64,
    pub planned: u64,
    /// Status name → count.
    pub counts: BTreeMap<String, u64>,
}

/// `loa report DATE`: every station's planned provincial items that day, against what
/// the stations reported; then every bulletin pushed that day, per target station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DailyReport {
    pub date: chrono::NaiveDate,
    pub timezone: String,
    pub generated_at: DateTime<Utc>,
    pub rows: Vec<ReportRow>,
    pub districts: Vec<DistrictTotals>,
    /// One row per bulletin issued that day and target station the caller may see.
    /// Absent in reports from a central older than bulletin reporting.
    #[serde(default)]
    pub bulletins: Vec<BulletinReportRow>,
    #[serde(default)]
    pub bulletin_districts: Vec<BulletinTotals>,
}

/// What one pushed bulletin came to at one target station, in `loa report`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum BulletinStatus {
    /// At least one play started (how many of the planned plays: `plays_aired`).
    Aired,
    /// A `test` bulletin went through the whole chain short of airing.
    TestOk,
    /// The province cancelled it before it aired here.
    Cancelled,
    /// Refused or could not play (the reason).
    Failed,
    /// It expired before it reached the station or before it could start there.
    Expired,
    /// Not delivered, the station is offline, and it has not expired yet: it airs if the
    /// station comes back in time.
    NotReached,
    /// Still valid and the station is online, but nothing final is known yet.
    Pending,
}

impl BulletinStatus {
    pub const ALL: [BulletinStatus; 7] = [
        BulletinStatus::Aired,
        BulletinStatus::TestOk,
        BulletinStatus::Cancelled,
        BulletinStatus::Failed,
        BulletinStatus::Expired,
        BulletinStatus::NotReached,
        BulletinStatus::Pending,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BulletinStatus::Aired => "aired",
            BulletinStatus::TestOk => "test-ok",
            BulletinStatus::Cancelled => "cancelled",
            BulletinStatus::Failed => "failed",
            BulletinStatus::Expired => "expired",
            BulletinStatus::NotReached => "not-reached",
            BulletinStatus::Pending => "pending",
        }
    }
}

/// One bulletin at one target station.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulletinReportRow {
    pub station: String,
    pub district: String,
    pub bulletin_id: String,
    pub title: String,
    pub priority: BulletinPriority,
    /// When central pushed it.
    pub issued_at: DateTime<Utc>,
    pub expires_at: DateTime<Utc>,
    pub status: BulletinStatus,
    /// First sample at this station minus the push, milliseconds.
    pub latency_ms: Option<i64>,
    /// Plays that started here (the first and each repeat).
    pub plays_aired: u32,
    /// Plays the bulletin asked for: 1 + repeats (0 for a `test` bulletin).
    pub plays_planned: u32,
    /// Why (failed, expired, cancelled, cut short), or "station offline since …".
    pub detail: String,
}

/// Bulletin counts per status for one district.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BulletinTotals {
    pub district: String,
    /// Stations of the district targeted by at least one of the day's bulletins.
    pub stations: u64,
    /// (bulletin, station) pairs: one per row.
    pub targets: u64,
    /// Status name → count.
    pub counts: BTreeMap<String, u64>,
}
