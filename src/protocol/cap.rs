//! CAP alerts at central, as operators and alert sources see them: what central decided
//! for an alert it received (`POST /api/v1/cap`'s answer) and the record it keeps of
//! every alert (`GET /api/v1/cap`, `loa bulletin list`).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::bulletin::BulletinPriority;

/// What became of one alert (or of one of its effects: an Update cancels the bulletin of
/// the alert it updates, then makes its own).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum CapDecision {
    /// A bulletin was signed and sent: it airs (an `auto_air` rule matched).
    Aired,
    /// A bulletin was made and waits for a person: `loa bulletin approve ID`.
    Waiting,
    /// A test bulletin was signed and sent (status Test or Exercise): never aired.
    Test,
    /// The bulletin of an earlier alert was cancelled (or withdrawn before approval).
    Cancelled,
    /// Nothing to do: a duplicate, an alert already superseded, a Draft.
    Ignored,
    /// Read and valid, but no bulletin: System, not public, no station in its area,
    /// already expired, an acknowledgement.
    NoBulletin,
    /// Refused: the document is invalid or its signature does not verify.
    Refused,
}

impl CapDecision {
    pub fn as_str(self) -> &'static str {
        match self {
            CapDecision::Aired => "aired",
            CapDecision::Waiting => "waiting",
            CapDecision::Test => "test",
            CapDecision::Cancelled => "cancelled",
            CapDecision::Ignored => "ignored",
            CapDecision::NoBulletin => "no-bulletin",
            CapDecision::Refused => "refused",
        }
    }

    pub fn parse(text: &str) -> Option<Self> {
        [
            Self::Aired,
            Self::Waiting,
            Self::Test,
            Self::Cancelled,
            Self::Ignored,
            Self::NoBulletin,
            Self::Refused,
        ]
        .into_iter()
        .find(|d| d.as_str() == text)
    }
}

impl std::fmt::Display for CapDecision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decision about one alert, as answered and as recorded.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapOutcome {
    pub decision: CapDecision,
    /// Why, in words (the rule that matched, the diagnostic, the duplicate's key).
    pub reason: String,
    /// The bulletin made, or the one cancelled.
    pub bulletin_id: Option<String>,
    pub priority: Option<BulletinPriority>,
    /// How many stations it is for.
    pub stations: usize,
}

/// `POST /api/v1/cap` → `201`: what central decided.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapAnswer {
    /// `sender,identifier,sent` of the alert, when it could be read.
    pub alert: Option<String>,
    pub outcomes: Vec<CapOutcome>,
    /// Warnings about the document (e.g. a signature by a key that is not trusted).
    pub warnings: Vec<String>,
}

/// A record of one alert received and one decision about it. An alert whose effects
/// are several (an Update) has one record per effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertRecord {
    pub received_at: DateTime<Utc>,
    /// Where it came from: `POST by admin from 10.0.0.5`, `feed https://…`.
    pub source: String,
    /// The alert's identity, empty for a document that could not be read.
    pub sender: String,
    pub identifier: String,
    pub sent: Option<DateTime<Utc>>,
    /// `Actual`, `Test`, … (empty when unread).
    pub status: String,
    /// `Alert`, `Update`, `Cancel`, … (empty when unread).
    pub msg_type: String,
    /// `none`, `trusted (signer)`, `not trusted (signer)`, `refused: why`.
    pub signature: String,
    pub outcome: CapOutcome,
}

impl AlertRecord {
    /// `sender,identifier,sent`, as CAP's `references` write it.
    pub fn key_text(&self) -> String {
        match self.sent {
            Some(sent) => format!(
                "{},{},{}",
                self.sender,
                self.identifier,
                sent.format("%Y-%m-%dT%H:%M:%S-00:00")
            ),
            None => String::new(),
        }
    }
}

/// One line of the audit trail: who did what, when, from where.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub at: DateTime<Utc>,
    /// The caller's role (`admin`, `district:Tri Tôn`, `cap-source`), or `central` for
    /// what central decided itself (a feed's alert, an expiry).
    pub who: String,
    /// `bulletin.push`, `bulletin.cancel`, `bulletin.approve`, `cap.aired`, …
    pub action: String,
    /// What it was about: a bulletin id, an alert key.
    pub subject: String,
    /// The caller's address, or the feed's URL.
    pub from: String,
    pub detail: String,
}
