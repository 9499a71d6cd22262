//! The alert ledger: given alerts in the order they arrive, which bulletins are made and
//! which are cancelled. A pure state machine; central will keep its state (it is small
//! and serializable) and turn each [`LedgerAction`] into a push or a cancel.
//!
//! Rules:
//! - An alert is known by (sender, identifier, sent). The same key again is ignored: one
//!   bulletin per alert, however often a feed repeats it.
//! - An Update ends the live bulletins of the alerts it references, then its own plan
//!   (if any) is made; a Cancel ends them and makes nothing.
//! - An alert that an Update or Cancel already superseded, arriving late, is ignored.
//! - A test (status Test or Exercise) can end only test bulletins, and a real alert
//!   only real ones: an exercise never silences a real warning.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::bulletin::{CapBulletinPlan, Decision, NoBulletin};
use super::model::{Alert, AlertKey, Status};

/// What to do for one alert.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum LedgerAction {
    /// Push this bulletin.
    Make(Box<CapBulletinPlan>),
    /// Cancel the bulletin made for `alert`, because of `by` (an Update or a Cancel).
    Cancel { alert: AlertKey, by: AlertKey },
    /// The alert makes no bulletin, for this reason (log it).
    NoBulletin(NoBulletin),
    /// The alert is ignored: a duplicate, already superseded, or a test that may not end
    /// a real bulletin (or the reverse).
    Ignored { alert: AlertKey, reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Live {
    test: bool,
    expires_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AlertLedger {
    /// Every alert key received.
    seen: BTreeSet<AlertKey>,
    /// Alerts whose bulletin is live.
    #[serde(with = "pairs")]
    live: BTreeMap<AlertKey, Live>,
    /// Alerts referenced by an Update or Cancel, with the alert that ended them.
    #[serde(with = "pairs")]
    ended: BTreeMap<AlertKey, AlertKey>,
}

/// A map keyed by [`AlertKey`] as a list of `[key, value]` pairs: JSON (central keeps
/// the ledger as JSON) allows only strings as object keys.
mod pairs {
    use std::collections::BTreeMap;

    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<K: Serialize, V: Serialize, S: Serializer>(
        map: &BTreeMap<K, V>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.collect_seq(map.iter())
    }

    pub fn deserialize<'de, K, V, D>(d: D) -> Result<BTreeMap<K, V>, D::Error>
    where
        K: Deserialize<'de> + Ord,
        V: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        Ok(Vec::<(K, V)>::deserialize(d)?.into_iter().collect())
    }
}

impl AlertLedger {
    pub fn new() -> Self {
        AlertLedger::default()
    }

    /// Whether the bulletin of `key` is live (made, not cancelled or replaced).
    pub fn is_live(&self, key: &AlertKey) -> bool {
        self.live.contains_key(key)
    }

    /// Takes the next alert and what [`super::bulletin::plan`] decided for it.
    pub fn apply(&mut self, alert: &Alert, decision: Decision) -> Vec<LedgerAction> {
        let key = alert.key();
        debug_assert_eq!(&key, decision.key());
        if !self.seen.insert(key.clone()) {
            return vec![LedgerAction::Ignored {
                alert: key,
                reason: "the same alert (sender, identifier, sent) was already received"
                    .to_string(),
            }];
        }
        if let Some(by) = self.ended.get(&key) {
            return vec![LedgerAction::Ignored {
                alert: key.clone(),
                reason: format!("already superseded by {by}"),
            }];
        }
        // Drafts and system messages end nothing (plan gives them no references).
        let test = matches!(alert.status, Status::Test | Status::Exercise);
        let mut actions = Vec::new();
        for earlier in decision.ends() {
            if let Some(live) = self.live.get(earlier) {
                if live.test != test {
                    actions.push(LedgerAction::Ignored {
                        alert: earlier.clone(),
                        reason: format!(
                            "{key} is {} and may not end the {} bulletin of {earlier}",
                            if test { "a test" } else { "real" },
                            if live.test { "test" } else { "real" },
                        ),
                    });
                    continue;
                }
                self.live.remove(earlier);
                actions.push(LedgerAction::Cancel { alert: earlier.clone(), by: key.clone() });
            }
            self.ended.entry(earlier.clone()).or_insert_with(|| key.clone());
        }
        match decision {
            Decision::Bulletin(plan) => {
                self.live.insert(key, Live { test, expires_at: plan.expires_at });
                actions.push(LedgerAction::Make(plan));
            }
            Decision::NoBulletin { reason, .. } => actions.push(LedgerAction::NoBulletin(reason)),
        }
        actions
    }

    /// Forgets live bulletins that have expired by `now`, and alerts sent before
    /// `forget_before` (a feed does not repeat an alert from long ago).
    pub fn prune(&mut self, now: DateTime<Utc>, forget_before: DateTime<Utc>) {
        self.live.retain(|_, l| l.expires_at > now);
        self.seen.retain(|k| k.sent >= forget_before);
        self.ended.retain(|k, _| k.sent >= forget_before);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cap::{CapConfig, TrustStore, check, plan};

    #[test]
    fn the_ledger_round_trips_through_json() {
        let doc = |id: &str, kind: &str, refs: &str| {
            format!(
                "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"><identifier>{id}</identifier>\
                 <sender>s@x</sender><sent>2026-12-01T05:00:00+07:00</sent><status>Actual</status>\
                 <msgType>{kind}</msgType><scope>Public</scope>{refs}<info><category>Met</category>\
                 <event>E</event><urgency>Immediate</urgency><severity>Severe</severity>\
                 <certainty>Observed</certainty><area><areaDesc>A</areaDesc>\
                 <circle>10.4,105.4 5</circle></area></info></alert>"
            )
        };
        let now = DateTime::parse_from_rfc3339("2026-12-01T06:00:00+07:00").unwrap().to_utc();
        let mut ledger = AlertLedger::new();
        for xml in [
            doc("A", "Alert", ""),
            doc("B", "Update", "<references>s@x,A,2026-12-01T05:00:00+07:00</references>"),
        ] {
            let alert = check(xml.as_bytes(), &TrustStore::new()).alert.unwrap();
            let decision = plan(&alert, None, &CapConfig::default(), now);
            ledger.apply(&alert, decision);
        }
        let json = serde_json::to_string(&ledger).unwrap();
        let again: AlertLedger = serde_json::from_str(&json).unwrap();
        assert_eq!(again, ledger);
        assert_eq!(again.ended.len(), 1);
        assert_eq!(again.live.len(), 1);
    }
}
