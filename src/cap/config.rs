//! `[cap]` settings: how alerts become bulletins, whom central trusts, which feeds it
//! polls. The `[cap]` table of central.toml; `loa cap check --config FILE` reads the same
//! table.
//!
//! ```toml
//! [cap]
//! languages = ["vi"]              # info blocks in this order of preference
//! default_priority = "priority"   # when no rule matches
//! default_expiry = "6h"           # an alert without <expires>
//! max_expiry = "168h"             # no bulletin lives longer (7 days, the bulletin maximum)
//! geocode_names = []              # geocode valueNames that are admin-unit codes ([] = any)
//! trusted_signers = ["/etc/loa/cap-signers.pem"]
//!
//! [[cap.priority_rule]]           # first match wins; an empty list matches anything
//! severity = ["Extreme", "Severe"]
//! urgency = ["Immediate", "Expected"]
//! priority = "emergency"
//!
//! [[cap.auto_air]]                # which bulletins air without a person approving
//! senders = ["canhbao@kttv.gov.vn"]
//! priority = ["emergency"]
//! trusted_signature = true
//! ```
//!
//! Feeds (central polls them): `feeds = ["https://…/cap.atom"]`, `poll_secs = 60`,
//! `feed_ca = "/etc/ssl/certs/ca-certificates.crt"`, `max_documents_per_poll = 20`.

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::bulletin::{CapBulletinPlan, PlanPriority};
use super::model::{Certainty, Severity, Urgency};
use super::signature::SignatureReport;

/// Longest a bulletin may live (the bulletin maximum, central's `MAX_EXPIRY_SECS`).
pub const MAX_EXPIRY: Duration = Duration::from_secs(7 * 24 * 3600);

/// Most feeds central polls.
pub const MAX_FEEDS: usize = 32;
/// Shortest and longest poll interval, seconds.
pub const POLL_SECS_RANGE: std::ops::RangeInclusive<u64> = 5..=86_400;
/// Most CAP documents fetched from one feed in one poll.
pub const MAX_DOCUMENTS_PER_POLL: usize = 200;
/// Longest feed URL, in bytes.
pub const MAX_FEED_URL_BYTES: usize = 2048;

/// urgency/severity/certainty → priority. Each list empty = any value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PriorityRule {
    #[serde(default)]
    pub urgency: Vec<Urgency>,
    #[serde(default)]
    pub severity: Vec<Severity>,
    #[serde(default)]
    pub certainty: Vec<Certainty>,
    pub priority: PlanPriority,
}

impl PriorityRule {
    pub fn matches(&self, u: Urgency, s: Severity, c: Certainty) -> bool {
        (self.urgency.is_empty() || self.urgency.contains(&u))
            && (self.severity.is_empty() || self.severity.contains(&s))
            && (self.certainty.is_empty() || self.certainty.contains(&c))
    }
}

/// A bulletin that matches a rule airs without a person approving it. Each list empty =
/// any value; `trusted_signature` (default true) also requires a trusted signer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AutoAirRule {
    #[serde(default)]
    pub senders: Vec<String>,
    #[serde(default)]
    pub priority: Vec<PlanPriority>,
    #[serde(default = "yes")]
    pub trusted_signature: bool,
}

fn yes() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CapConfig {
    /// Language tags in order of preference: an info block whose language is the tag or
    /// starts with it and `-` (`vi` takes `vi-VN`). No match: the first block's language.
    pub languages: Vec<String>,
    #[serde(rename = "priority_rule")]
    pub priority_rules: Vec<PriorityRule>,
    pub default_priority: PlanPriority,
    #[serde(with = "duration_text")]
    pub default_expiry: Duration,
    #[serde(with = "duration_text")]
    pub max_expiry: Duration,
    /// Geocode `valueName`s that carry administrative-unit codes; empty = any.
    pub geocode_names: Vec<String>,
    /// PEM files of the certificates or public keys whose signatures are trusted.
    pub trusted_signers: Vec<PathBuf>,
    /// Rules for airing without approval; none (the default) = a person approves each.
    pub auto_air: Vec<AutoAirRule>,
    /// Play the attention tone before a CAP-born bulletin.
    pub tone: bool,
    /// Atom or RSS indexes of CAP documents that central polls (http or https).
    pub feeds: Vec<String>,
    /// Seconds between two polls of every feed.
    pub poll_secs: u64,
    /// Most CAP documents fetched from one feed in one poll (the newest entries first).
    pub max_documents_per_poll: usize,
    /// PEM bundle of the certificate authorities an `https://` feed may be signed by
    /// (Debian's bundle by default; central trusts no other roots).
    pub feed_ca: PathBuf,
}

impl Default for CapConfig {
    fn default() -> Self {
        CapConfig {
            languages: vec!["vi".to_string()],
            priority_rules: vec![PriorityRule {
                urgency: vec![Urgency::Immediate, Urgency::Expected],
                severity: vec![Severity::Extreme, Severity::Severe],
                certainty: vec![],
                priority: PlanPriority::Emergency,
            }],
            default_priority: PlanPriority::Priority,
            default_expiry: Duration::from_secs(6 * 3600),
            max_expiry: MAX_EXPIRY,
            geocode_names: Vec::new(),
            trusted_signers: Vec::new(),
            auto_air: Vec::new(),
            tone: true,
            feeds: Vec::new(),
            poll_secs: 60,
            max_documents_per_poll: 20,
            feed_ca: PathBuf::from("/etc/ssl/certs/ca-certificates.crt"),
        }
    }
}

impl CapConfig {
    /// Checks what serde cannot: durations within the bulletin maximum, rules sensible.
    pub fn check(&self) -> Result<(), String> {
        if self.max_expiry.is_zero() || self.max_expiry > MAX_EXPIRY {
            return Err("max_expiry must be more than 0 and at most 168h (7 days)".to_string());
        }
        if self.default_expiry.is_zero() || self.default_expiry > self.max_expiry {
            return Err("default_expiry must be more than 0 and at most max_expiry".to_string());
        }
        if !POLL_SECS_RANGE.contains(&self.poll_secs) {
            return Err(format!(
                "poll_secs must be {} to {} seconds",
                POLL_SECS_RANGE.start(),
                POLL_SECS_RANGE.end()
            ));
        }
        if self.feeds.len() > MAX_FEEDS {
            return Err(format!("{} feeds: at most {MAX_FEEDS}", self.feeds.len()));
        }
        for feed in &self.feeds {
            let scheme_ok = feed.starts_with("http://") || feed.starts_with("https://");
            if !scheme_ok || feed.len() > MAX_FEED_URL_BYTES || feed.chars().any(char::is_control) {
                return Err(format!(
                    "feed {:?} is not an http:// or https:// URL of at most {MAX_FEED_URL_BYTES} bytes",
                    feed.chars().take(80).collect::<String>()
                ));
            }
        }
        if !(1..=MAX_DOCUMENTS_PER_POLL).contains(&self.max_documents_per_poll) {
            return Err(format!("max_documents_per_poll must be 1 to {MAX_DOCUMENTS_PER_POLL}"));
        }
        if self.priority_rules.iter().any(|r| r.priority == PlanPriority::Test)
            || self.default_priority == PlanPriority::Test
        {
            return Err(
                "priority \"test\" comes from an alert's status (Test, Exercise), not from a rule"
                    .to_string(),
            );
        }
        Ok(())
    }

    /// Priority for an Actual alert's info block: the first matching rule, else the
    /// default; with the rule's number (from 1) when one matched.
    pub fn priority_for(
        &self,
        u: Urgency,
        s: Severity,
        c: Certainty,
    ) -> (PlanPriority, Option<usize>) {
        match self.priority_rules.iter().position(|r| r.matches(u, s, c)) {
            Some(i) => (self.priority_rules[i].priority, Some(i + 1)),
            None => (self.default_priority, None),
        }
    }

    /// Whether a bulletin may air without a person approving it: some `auto_air` rule
    /// matches, and a refused signature never does.
    pub fn auto_air(&self, plan: &CapBulletinPlan, signature: &SignatureReport) -> bool {
        if signature.refused() {
            return false;
        }
        self.auto_air.iter().any(|r| {
            (r.senders.is_empty() || r.senders.iter().any(|s| s == &plan.key.sender))
                && (r.priority.is_empty() || r.priority.contains(&plan.priority))
                && (!r.trusted_signature || signature.trusted())
        })
    }
}

/// Durations written as the schedules write them: "90s", "10m", "6h", "168h".
mod duration_text {
    use super::*;

    pub fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        let secs = d.as_secs();
        let text = if secs.is_multiple_of(3600) {
            format!("{}h", secs / 3600)
        } else if secs.is_multiple_of(60) {
            format!("{}m", secs / 60)
        } else {
            format!("{secs}s")
        };
        s.serialize_str(&text)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let text = String::deserialize(d)?;
        crate::schedule::parse_duration(&text).map_err(|e| {
            serde::de::Error::custom(format!("duration {text:?}: {e} (e.g. \"6h\", \"168h\")"))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        cap: CapConfig,
    }

    #[test]
    fn defaults_follow_the_issue() {
        let c = CapConfig::default();
        c.check().unwrap();
        use Certainty::*;
        use Severity::*;
        use Urgency::*;
        assert_eq!(c.priority_for(Immediate, Extreme, Observed).0, PlanPriority::Emergency);
        assert_eq!(c.priority_for(Expected, Severe, Unlikely).0, PlanPriority::Emergency);
        assert_eq!(c.priority_for(Future, Extreme, Observed).0, PlanPriority::Priority);
        assert_eq!(c.priority_for(Immediate, Moderate, Observed), (PlanPriority::Priority, None));
    }

    #[test]
    fn reads_a_cap_table_and_round_trips() {
        let f: File = toml::from_str(
            r#"
            [cap]
            languages = ["vi", "en"]
            default_expiry = "2h"
            [[cap.priority_rule]]
            severity = ["Extreme"]
            priority = "emergency"
            [[cap.auto_air]]
            senders = ["kttv"]
            "#,
        )
        .unwrap();
        assert_eq!(f.cap.default_expiry, Duration::from_secs(7200));
        assert_eq!(f.cap.max_expiry, MAX_EXPIRY);
        assert!(f.cap.auto_air[0].trusted_signature);
        let text = toml::to_string(&f.cap).unwrap();
        let again: CapConfig = toml::from_str(&text).unwrap();
        assert_eq!(again, f.cap);
    }

    #[test]
    fn refuses_what_it_cannot_honour() {
        assert!(toml::from_str::<File>("[cap]\nmax_expiry = \"200h\"\n").is_err());
        assert!(toml::from_str::<File>("[cap]\nunknown = 1\n").is_err());
        assert!(
            toml::from_str::<File>(
                "[cap]\n[[cap.priority_rule]]\nurgency = [\"Soon\"]\npriority = \"emergency\"\n"
            )
            .is_err()
        );
        let c: File =
            toml::from_str("[cap]\ndefault_expiry = \"1h\"\nmax_expiry = \"30m\"\n").unwrap();
        assert!(c.cap.check().is_err());
        let c: File = toml::from_str("[cap]\ndefault_priority = \"test\"\n").unwrap();
        assert!(c.cap.check().is_err());
        for bad in [
            "[cap]\npoll_secs = 4\n",
            "[cap]\npoll_secs = 86401\n",
            "[cap]\nfeeds = [\"file:///etc/passwd\"]\n",
            "[cap]\nmax_documents_per_poll = 201\n",
            "[cap]\nmax_documents_per_poll = 0\n",
        ] {
            let c: File = toml::from_str(bad).unwrap();
            assert!(c.cap.check().is_err(), "{bad}");
        }
        let feeds: Vec<String> = (0..33).map(|i| format!("https://x/{i}")).collect();
        let c = CapConfig { feeds, ..CapConfig::default() };
        assert!(c.check().unwrap_err().contains("at most 32"));
        let c = CapConfig {
            feeds: vec![format!("https://{}", "x".repeat(2040))],
            ..CapConfig::default()
        };
        assert!(c.check().is_ok(), "2048 bytes");
        let c = CapConfig {
            feeds: vec![format!("https://{}", "x".repeat(2041))],
            ..CapConfig::default()
        };
        assert!(c.check().is_err(), "2049 bytes");
    }
}
