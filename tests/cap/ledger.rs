//! The alert ledger as a state machine: given alerts in arrival order (real CAP
//! documents, read and planned as central will), which bulletins are made and which
//! cancelled.

use chrono::{DateTime, Utc};
use loa::cap::model::LatLon;
use loa::cap::{self, AlertLedger, CapConfig, CapStation, LedgerAction, TrustStore};

const SENDER: &str = "canhbao@angiang.gov.vn";

fn now() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-12-01T06:00:00+07:00").unwrap().to_utc()
}

fn stations() -> Vec<CapStation> {
    vec![
        CapStation {
            id: "xa-an-binh".into(),
            position: Some(LatLon { lat: 10.4, lon: 105.4 }),
            codes: vec![],
        },
        CapStation {
            id: "xa-tri-ton".into(),
            position: Some(LatLon { lat: 10.42, lon: 105.0 }),
            codes: vec![],
        },
    ]
}

/// An alert: `sent` is local time (+07:00) on 2026-12-01; `refs` are `identifier@sent`.
struct Doc<'a> {
    id: &'a str,
    sender: &'a str,
    sent: &'a str,
    status: &'a str,
    msg_type: &'a str,
    refs: &'a [(&'a str, &'a str)],
    polygon: &'a str,
}

const AROUND_AN_BINH: &str = "10.3,105.3 10.3,105.5 10.5,105.5 10.5,105.3 10.3,105.3";
const AROUND_BOTH: &str = "10.3,104.9 10.3,105.5 10.5,105.5 10.5,104.9 10.3,104.9";
const HA_NOI: &str = "20.9,105.7 20.9,106.0 21.2,106.0 21.2,105.7 20.9,105.7";

fn doc(id: &str) -> Doc<'_> {
    Doc {
        id,
        sender: SENDER,
        sent: "05:00:00",
        status: "Actual",
        msg_type: "Alert",
        refs: &[],
        polygon: AROUND_AN_BINH,
    }
}

impl Doc<'_> {
    fn xml(&self) -> String {
        let refs = if self.refs.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = self
                .refs
                .iter()
                .map(|(id, sent)| format!("{SENDER},{id},2026-12-01T{sent}+07:00"))
                .collect();
            format!("<references>{}</references>", list.join(" "))
        };
        let info = if self.msg_type == "Cancel" {
            String::new()
        } else {
            format!(
                "<info><language>vi</language><category>Met</category><event>Lũ</event>\
                 <urgency>Immediate</urgency><severity>Severe</severity><certainty>Observed</certainty>\
                 <expires>2026-12-01T18:00:00+07:00</expires><headline>Lũ {}</headline>\
                 <area><areaDesc>Ven sông</areaDesc><polygon>{}</polygon></area></info>",
                self.id, self.polygon
            )
        };
        format!(
            "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"><identifier>{}</identifier>\
             <sender>{}</sender><sent>2026-12-01T{}+07:00</sent><status>{}</status>\
             <msgType>{}</msgType><scope>Public</scope>{refs}{info}</alert>",
            self.id, self.sender, self.sent, self.status, self.msg_type
        )
    }
}

/// Feeds the documents in order; returns one line per action, e.g. `make A [xa-an-binh]`.
fn run(ledger: &mut AlertLedger, docs: &[Doc<'_>]) -> Vec<String> {
    let config = CapConfig::default();
    let stations = stations();
    let mut out = Vec::new();
    for d in docs {
        let checked = cap::check(d.xml().as_bytes(), &TrustStore::new());
        let alert = checked.alert.unwrap_or_else(|| panic!("{}: {:?}", d.id, checked.diagnostics));
        let decision = cap::plan(&alert, Some(&stations), &config, now());
        for action in ledger.apply(&alert, decision) {
            out.push(match action {
                LedgerAction::Make(p) => {
                    format!("make {} {} [{}]", p.key.identifier, p.priority, p.targets.join(","))
                }
                LedgerAction::Cancel { alert, by } => {
                    format!("cancel {} by {}", alert.identifier, by.identifier)
                }
                LedgerAction::NoBulletin(r) => format!("none {}: {r}", d.id),
                LedgerAction::Ignored { alert, reason } => {
                    format!("ignore {}: {reason}", alert.identifier)
                }
            });
        }
    }
    out
}

#[test]
fn the_same_alert_twice_makes_one_bulletin() {
    let mut l = AlertLedger::new();
    assert_eq!(
        run(&mut l, &[doc("A"), doc("A"), doc("A")]),
        [
            "make A emergency [xa-an-binh]",
            "ignore A: the same alert (sender, identifier, sent) was already received",
            "ignore A: the same alert (sender, identifier, sent) was already received",
        ]
    );
    // Same identifier, another sent or sender: another alert.
    let later = Doc { sent: "05:01:00", ..doc("A") };
    let other_sender = Doc { sender: "canhbao@hanoi.gov.vn", ..doc("A") };
    assert_eq!(
        run(&mut l, &[later, other_sender]),
        ["make A emergency [xa-an-binh]", "make A emergency [xa-an-binh]"]
    );
}

#[test]
fn update_replaces_and_cancel_cancels() {
    let mut l = AlertLedger::new();
    let out = run(
        &mut l,
        &[
            doc("A"),
            Doc {
                sent: "05:10:00",
                msg_type: "Update",
                refs: &[("A", "05:00:00")],
                polygon: AROUND_BOTH,
                ..doc("B")
            },
            Doc { sent: "05:20:00", msg_type: "Cancel", refs: &[("B", "05:10:00")], ..doc("C") },
        ],
    );
    assert_eq!(
        out,
        [
            "make A emergency [xa-an-binh]",
            "cancel A by B",
            "make B emergency [xa-an-binh,xa-tri-ton]",
            "cancel B by C",
            "none C: msgType Cancel: ends the bulletins of the alerts it references",
        ]
    );
    // A feed repeating the original, or the update, changes nothing.
    let again = run(
        &mut l,
        &[
            doc("A"),
            Doc { sent: "05:10:00", msg_type: "Update", refs: &[("A", "05:00:00")], ..doc("B") },
        ],
    );
    assert!(again.iter().all(|a| a.starts_with("ignore")), "{again:?}");
}

#[test]
fn references_are_matched_by_sender_identifier_and_the_instant_sent() {
    let mut l = AlertLedger::new();
    let a = doc("A");
    let key = {
        let c = cap::check(a.xml().as_bytes(), &TrustStore::new());
        c.alert.unwrap().key()
    };
    // The same instant written in UTC still names A.
    let utc_ref = format!(
        "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"><identifier>B</identifier><sender>{SENDER}</sender>\
         <sent>2026-12-01T05:10:00+07:00</sent><status>Actual</status><msgType>Cancel</msgType><scope>Public</scope>\
         <references>{SENDER},A,2026-11-30T22:00:00-00:00 {SENDER},A,2026-12-01T05:00:01+07:00 other@x,A,2026-12-01T05:00:00+07:00</references></alert>"
    );
    run(&mut l, &[a]);
    assert!(l.is_live(&key));
    let b = cap::check(utc_ref.as_bytes(), &TrustStore::new()).alert.unwrap();
    let decision = cap::plan(&b, Some(&stations()), &CapConfig::default(), now());
    let actions = l.apply(&b, decision);
    assert_eq!(
        actions.iter().filter(|a| matches!(a, LedgerAction::Cancel { .. })).count(),
        1,
        "{actions:?}"
    );
    assert!(!l.is_live(&key));
}

#[test]
fn an_update_that_arrives_first_supersedes_its_original() {
    let mut l = AlertLedger::new();
    let out = run(
        &mut l,
        &[
            Doc { sent: "05:10:00", msg_type: "Update", refs: &[("A", "05:00:00")], ..doc("B") },
            doc("A"),
        ],
    );
    assert_eq!(
        out,
        [
            "make B emergency [xa-an-binh]",
            "ignore A: already superseded by canhbao@angiang.gov.vn,B,2026-11-30T22:10:00-00:00"
        ]
    );
}

#[test]
fn an_update_that_no_longer_concerns_our_stations_still_ends_the_old_bulletin() {
    let mut l = AlertLedger::new();
    let out = run(
        &mut l,
        &[
            doc("A"),
            Doc {
                sent: "05:10:00",
                msg_type: "Update",
                refs: &[("A", "05:00:00")],
                polygon: HA_NOI,
                ..doc("B")
            },
        ],
    );
    assert_eq!(
        out,
        ["make A emergency [xa-an-binh]", "cancel A by B", "none B: no station is inside its area"]
    );
}

#[test]
fn cancelling_an_unknown_alert_does_nothing() {
    let mut l = AlertLedger::new();
    let out = run(&mut l, &[Doc { msg_type: "Cancel", refs: &[("X", "04:00:00")], ..doc("C") }]);
    assert_eq!(out, ["none C: msgType Cancel: ends the bulletins of the alerts it references"]);
}

#[test]
fn tests_and_real_alerts_do_not_end_each_other() {
    let mut l = AlertLedger::new();
    let out = run(
        &mut l,
        &[
            doc("A"),
            Doc { status: "Exercise", ..doc("T") },
            Doc {
                sent: "05:10:00",
                status: "Exercise",
                msg_type: "Cancel",
                refs: &[("A", "05:00:00")],
                ..doc("X")
            },
            Doc {
                sent: "05:20:00",
                status: "Test",
                msg_type: "Cancel",
                refs: &[("T", "05:00:00")],
                ..doc("Y")
            },
        ],
    );
    assert_eq!(
        out,
        [
            "make A emergency [xa-an-binh]",
            "make T test [xa-an-binh]",
            "ignore A: canhbao@angiang.gov.vn,X,2026-11-30T22:10:00-00:00 is a test and may not end the real bulletin of canhbao@angiang.gov.vn,A,2026-11-30T22:00:00-00:00",
            "none X: msgType Cancel: ends the bulletins of the alerts it references",
            "cancel T by Y",
            "none Y: msgType Cancel: ends the bulletins of the alerts it references",
        ]
    );
}

#[test]
fn drafts_and_system_messages_end_nothing() {
    let mut l = AlertLedger::new();
    let out = run(
        &mut l,
        &[
            doc("A"),
            Doc {
                sent: "05:10:00",
                status: "Draft",
                msg_type: "Update",
                refs: &[("A", "05:00:00")],
                ..doc("D")
            },
            Doc {
                sent: "05:11:00",
                status: "System",
                msg_type: "Cancel",
                refs: &[("A", "05:00:00")],
                ..doc("S")
            },
        ],
    );
    assert_eq!(
        out,
        [
            "make A emergency [xa-an-binh]",
            "none D: status Draft: drafts are ignored",
            "none S: status System: a message between systems, logged, never aired",
        ]
    );
}

#[test]
fn prune_forgets_expired_bulletins_and_old_alerts() {
    let mut l = AlertLedger::new();
    run(&mut l, &[doc("A")]);
    let key = cap::check(doc("A").xml().as_bytes(), &TrustStore::new()).alert.unwrap().key();
    l.prune(now(), now() - chrono::Duration::days(30));
    assert!(l.is_live(&key));
    let after_expiry = DateTime::parse_from_rfc3339("2026-12-01T18:00:01+07:00").unwrap().to_utc();
    l.prune(after_expiry, now() - chrono::Duration::days(30));
    assert!(!l.is_live(&key));
    // Still remembered as seen until forgotten.
    assert!(run(&mut l, &[doc("A")])[0].starts_with("ignore"));
    l.prune(after_expiry, after_expiry);
    assert!(run(&mut l, &[doc("A")])[0].starts_with("make"), "forgotten alerts are new again");
}
