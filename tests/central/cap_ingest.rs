//! CAP alerts at central, in process (a real central on loopback, a manual clock at
//! 2026-12-01 07:00 +07:00): `POST /api/v1/cap` → the decision → what the stations'
//! event stream carries, signed. Waiting for approval, approval, auto-air with a trusted
//! signature, a failing signature refused and recorded, Update and Cancel, duplicates,
//! expiry before approval, a restart, and feeds polled from a local HTTP server.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::support::cap::Alert;
use crate::support::central::{Central, t0};
use loa::cap::config::AutoAirRule;
use loa::cap::{CapConfig, PlanPriority};
use loa::protocol::{
    AlertRecord, ApprovalState, AuditEntry, BulletinCancelDoc, BulletinDoc, BulletinEvents,
    BulletinInfo, BulletinPriority, CapAnswer, CapDecision, DocumentKind, ErrorBody,
};
use loa::store::{Role, StationPlace};

const SIGNED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cap_documents/signed");

/// A polygon around the Hậu river: xa-an-binh (10.40, 105.40) only.
const RIVER: &str =
    "<polygon>10.30,105.30 10.30,105.50 10.60,105.50 10.60,105.30 10.30,105.30</polygon>";
/// A geocode: xa-an-binh and xa-vinh-hoa carry 30280.
const CODE: &str = "<geocode><valueName>MaDVHC</valueName><value>30280</value></geocode>";

/// A central with three placed stations and a cap-source token.
struct Fleet {
    central: Central,
    cap_source: String,
    /// Station id → its token.
    stations: HashMap<&'static str, String>,
}

impl Fleet {
    async fn start(cap: CapConfig) -> Self {
        let central = Central::start_with(|c| c.cap = cap).await;
        let cap_source = central.add_operator(Role::CapSource);
        let mut stations = HashMap::new();
        for (id, lat, lon, code) in [
            ("xa-an-binh", Some(10.40), Some(105.40), "30280"),
            ("xa-tri-ton", Some(10.42), Some(105.00), "30421"),
            ("xa-vinh-hoa", None, None, "30280"),
        ] {
            stations.insert(id, central.add_station(id, "An Phú"));
            let place =
                StationPlace { station_id: id.into(), lat, lon, geocodes: vec![code.into()] };
            assert!(central.state.store.set_station_place(&place).unwrap());
        }
        Fleet { central, cap_source, stations }
    }

    async fn post(&self, token: &str, body: impl Into<reqwest::Body>) -> reqwest::Response {
        reqwest::Client::new()
            .post(format!("{}/api/v1/cap", self.central.url))
            .bearer_auth(token)
            .header("content-type", "application/cap+xml")
            .body(body)
            .send()
            .await
            .unwrap()
    }

    /// Posts as the cap-source; expects 201 and returns the answer.
    async fn decide(&self, xml: impl Into<reqwest::Body>) -> CapAnswer {
        let response = self.post(&self.cap_source, xml).await;
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 201, "{text}");
        serde_json::from_str(&text).unwrap()
    }

    /// Every signed event station `id` is sent, verified with the province's key.
    async fn events(&self, id: &str) -> Vec<Event> {
        let response = reqwest::Client::new()
            .get(format!("{}/api/v1/station/events/poll?after=0", self.central.url))
            .bearer_auth(&self.stations[id])
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let events: BulletinEvents = response.json().await.unwrap();
        let key = self.central.public_key();
        events
            .events
            .iter()
            .map(|e| {
                let payload = key.verify_envelope(e.envelope.kind, &e.envelope).expect("signed");
                match e.envelope.kind {
                    DocumentKind::Bulletin => {
                        Event::Bulletin(serde_json::from_slice(&payload).unwrap())
                    }
                    DocumentKind::BulletinCancel => {
                        Event::Cancel(serde_json::from_slice(&payload).unwrap())
                    }
                    other => panic!("unexpected {other:?}"),
                }
            })
            .collect()
    }

    async fn get<T: serde::de::DeserializeOwned>(&self, path: &str, token: &str) -> T {
        let response = reqwest::Client::new()
            .get(format!("{}{path}", self.central.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        assert_eq!(status, 200, "{path}: {text}");
        serde_json::from_str(&text).unwrap()
    }

    async fn approve(&self, id: &str, token: &str) -> (u16, String) {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/bulletins/{id}/approve", self.central.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn alerts(&self) -> Vec<AlertRecord> {
        self.get("/api/v1/cap", &self.central.admin).await
    }

    async fn audit(&self) -> Vec<AuditEntry> {
        self.get("/api/v1/audit", &self.central.admin).await
    }
}

#[derive(Debug, Clone, PartialEq)]
enum Event {
    Bulletin(BulletinDoc),
    Cancel(BulletinCancelDoc),
}

fn bulletin_ids(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Bulletin(d) => Some(d.id.clone()),
            Event::Cancel(_) => None,
        })
        .collect()
}

fn cancelled_ids(events: &[Event]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            Event::Cancel(c) => Some(c.id.clone()),
            Event::Bulletin(_) => None,
        })
        .collect()
}

/// Air every emergency from the province's sender without a signature (the tests that
/// are not about signatures).
fn auto_air_unsigned() -> CapConfig {
    CapConfig {
        auto_air: vec![AutoAirRule {
            senders: vec!["canhbao@angiang.gov.vn".into()],
            priority: vec![PlanPriority::Emergency],
            trusted_signature: false,
        }],
        ..CapConfig::default()
    }
}

#[tokio::test]
async fn an_alert_waits_for_approval_then_airs_when_an_admin_approves_it() {
    let fleet = Fleet::start(CapConfig::default()).await;
    let answer = fleet.decide(Alert::new(RIVER, "VN-AG-1").xml()).await;
    assert_eq!(
        answer.alert.as_deref(),
        Some("canhbao@angiang.gov.vn,VN-AG-1,2026-11-30T23:30:00-00:00")
    );
    let [waiting] = answer.outcomes.as_slice() else { panic!("{answer:?}") };
    assert_eq!(waiting.decision, CapDecision::Waiting, "{waiting:?}");
    assert_eq!(waiting.priority, Some(BulletinPriority::Emergency));
    assert_eq!(waiting.stations, 1, "the polygon holds xa-an-binh only");
    assert!(
        waiting.reason.contains("Severe/Immediate/Observed: rule 1")
            && waiting.reason.contains("no auto_air rule matches")
            && waiting.reason.contains("loa bulletin approve"),
        "{}",
        waiting.reason
    );
    let id = waiting.bulletin_id.clone().unwrap();

    // Nothing signed, nothing sent: the station hears of nothing.
    assert!(fleet.events("xa-an-binh").await.is_empty());
    let list: Vec<BulletinInfo> = fleet.get("/api/v1/bulletins", &fleet.central.admin).await;
    let shown = list.iter().find(|b| b.doc.id == id).expect("listed");
    let approval = shown.approval.as_ref().unwrap();
    assert_eq!(approval.state, ApprovalState::WaitingApproval);
    assert_eq!(shown.headline_state(t0()), "waiting-approval");
    assert_eq!(approval.requested_by, "cap:canhbao@angiang.gov.vn");
    assert_eq!(shown.doc.targets, ["xa-an-binh"]);
    assert_eq!(shown.doc.title, "Cảnh báo lũ VN-AG-1");
    assert!(shown.doc.tone, "a CAP bulletin comes with the attention tone");

    // Only an admin approves.
    for who in [
        fleet.central.add_operator(Role::Viewer),
        fleet.central.add_operator(Role::District("An Phú".into())),
        fleet.cap_source.clone(),
    ] {
        let (status, body) = fleet.approve(&id, &who).await;
        assert_eq!(status, 403, "{body}");
    }
    assert!(fleet.events("xa-an-binh").await.is_empty());

    fleet.central.clock.advance(Duration::from_secs(60));
    let (status, body) = fleet.approve(&id, &fleet.central.admin).await;
    assert_eq!(status, 200, "{body}");
    let approved: BulletinInfo = serde_json::from_str(&body).unwrap();
    assert_eq!(approved.approval.as_ref().unwrap().state, ApprovalState::Approved);
    assert_eq!(approved.approval.as_ref().unwrap().decided_by.as_deref(), Some("admin"));
    assert_eq!(approved.issued_by, "cap:canhbao@angiang.gov.vn, approved by admin");
    let events = fleet.events("xa-an-binh").await;
    let [Event::Bulletin(doc)] = events.as_slice() else { panic!("{events:?}") };
    assert_eq!(doc.id, id);
    assert_eq!(doc.priority, BulletinPriority::Emergency);
    assert_eq!(doc.issued_at, t0() + chrono::Duration::seconds(60), "issued when approved");
    assert_eq!(doc.expires_at.to_rfc3339(), "2026-12-01T05:00:00+00:00", "the alert's expiry");
    assert!(fleet.events("xa-tri-ton").await.is_empty(), "outside the area");

    // Once only.
    let (status, body) = fleet.approve(&id, &fleet.central.admin).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("is approved"), "{body}");

    // The record and the audit trail say what happened, and who.
    let alerts = fleet.alerts().await;
    assert_eq!(alerts[0].outcome.decision, CapDecision::Waiting);
    assert_eq!(alerts[0].identifier, "VN-AG-1");
    assert_eq!(alerts[0].status, "Actual");
    assert!(
        alerts[0].source.starts_with("POST by cap-source from 127.0.0.1:"),
        "{}",
        alerts[0].source
    );
    let audit = fleet.audit().await;
    let actions: Vec<&str> = audit.iter().rev().map(|a| a.action.as_str()).collect();
    assert_eq!(actions, ["bulletin.hold", "cap.waiting", "bulletin.push", "bulletin.approve"]);
    let approve = &audit[0];
    assert_eq!((approve.who.as_str(), approve.subject.as_str()), ("admin", id.as_str()));
    assert!(approve.from.starts_with("127.0.0.1:"), "{approve:?}");
}

#[tokio::test]
async fn test_and_priority_alerts_and_the_areas_that_select_stations() {
    let fleet = Fleet::start(auto_air_unsigned()).await;
    // A test alert is sent at once as a test bulletin (never aired): no approval needed.
    let test = Alert { status: "Test", area: CODE, ..Alert::new(RIVER, "VN-AG-T1") };
    let answer = fleet.decide(test.xml()).await;
    let [outcome] = answer.outcomes.as_slice() else { panic!("{answer:?}") };
    assert_eq!(
        (outcome.decision, outcome.priority),
        (CapDecision::Test, Some(BulletinPriority::Test))
    );
    assert_eq!(outcome.stations, 2, "the geocode holds xa-an-binh and xa-vinh-hoa");
    for station in ["xa-an-binh", "xa-vinh-hoa"] {
        let events = fleet.events(station).await;
        let [Event::Bulletin(doc)] = events.as_slice() else { panic!("{events:?}") };
        assert_eq!(doc.priority, BulletinPriority::Test);
        assert!(!doc.tone, "a test plays no tone");
    }
    assert!(fleet.events("xa-tri-ton").await.is_empty());

    // Moderate: no rule matches, the default is `priority`; the auto_air rule is for
    // emergencies only, so it waits.
    let moderate = Alert { severity: "Moderate", ..Alert::new(RIVER, "VN-AG-M1") };
    let answer = fleet.decide(moderate.xml()).await;
    let [outcome] = answer.outcomes.as_slice() else { panic!("{answer:?}") };
    assert_eq!(outcome.decision, CapDecision::Waiting);
    assert_eq!(outcome.priority, Some(BulletinPriority::Priority));
    let (status, body) =
        fleet.approve(outcome.bulletin_id.as_deref().unwrap(), &fleet.central.admin).await;
    assert_eq!(status, 200, "{body}");
    let events = fleet.events("xa-an-binh").await;
    let Some(Event::Bulletin(doc)) = events.last() else { panic!("{events:?}") };
    assert_eq!(doc.priority, BulletinPriority::Priority, "signed at priority level");

    // Nowhere near a station, a Draft, a System message: no bulletin, each recorded.
    let far = Alert { area: "<circle>21.0,105.8 5</circle>", ..Alert::new(RIVER, "VN-HN-1") };
    let answer = fleet.decide(far.xml()).await;
    assert_eq!(answer.outcomes[0].decision, CapDecision::NoBulletin);
    assert_eq!(answer.outcomes[0].reason, "no station is inside its area");
    let draft = fleet.decide(Alert { status: "Draft", ..Alert::new(RIVER, "VN-AG-D") }.xml()).await;
    assert_eq!(draft.outcomes[0].decision, CapDecision::Ignored);
    let system =
        fleet.decide(Alert { status: "System", ..Alert::new(RIVER, "VN-AG-S") }.xml()).await;
    assert_eq!(system.outcomes[0].decision, CapDecision::NoBulletin);
    assert!(system.outcomes[0].reason.contains("logged, never aired"));
    let decisions: Vec<CapDecision> =
        fleet.alerts().await.iter().map(|a| a.outcome.decision).collect();
    use CapDecision::*;
    assert_eq!(decisions, [NoBulletin, Ignored, NoBulletin, Waiting, Test]);
}

#[tokio::test]
async fn a_trusted_signed_emergency_airs_by_itself_and_a_failing_signature_is_refused() {
    let cap = CapConfig {
        trusted_signers: vec![format!("{SIGNED}/rsa-signer.pem").into()],
        auto_air: vec![AutoAirRule {
            senders: vec!["canhbao@angiang.gov.vn".into()],
            priority: vec![PlanPriority::Emergency],
            trusted_signature: true,
        }],
        ..CapConfig::default()
    };
    let fleet = Fleet::start(cap).await;
    let signed = std::fs::read(format!("{SIGNED}/rsa-sha256-exclusive.xml")).unwrap();

    // One byte of the signed text changed: refused (422 with why), recorded as refused,
    // nothing made.
    let text = String::from_utf8(signed.clone()).unwrap();
    let forged = text.replacen("Cảnh báo lũ", "Cảnh báo lở", 1);
    assert_ne!(forged, text);
    let response = fleet.post(&fleet.cap_source, forged).await;
    assert_eq!(response.status(), 422);
    let body: ErrorBody = response.json().await.unwrap();
    assert!(body.error.contains("signature does not verify"), "{body:?}");
    assert!(body.diagnostics.iter().any(|d| d.contains("signature refused")), "{body:?}");
    let alerts = fleet.alerts().await;
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].outcome.decision, CapDecision::Refused);
    assert_eq!(alerts[0].identifier, "VN-AG-2026-S101", "the refused alert is named");
    assert!(alerts[0].signature.starts_with("refused:"), "{:?}", alerts[0].signature);
    assert!(fleet.events("xa-an-binh").await.is_empty());
    let list: Vec<BulletinInfo> = fleet.get("/api/v1/bulletins", &fleet.central.admin).await;
    assert!(list.is_empty(), "a refused alert makes no bulletin");
    assert_eq!(fleet.audit().await[0].action, "cap.refused");

    // The genuine document, signed by a trusted signer: it airs without a person.
    let answer = fleet.decide(signed.clone()).await;
    let [aired] = answer.outcomes.as_slice() else { panic!("{answer:?}") };
    assert_eq!(aired.decision, CapDecision::Aired, "{aired:?}");
    assert!(aired.reason.contains("auto_air rule 1 matched"), "{}", aired.reason);
    let events = fleet.events("xa-an-binh").await;
    assert_eq!(bulletin_ids(&events), [aired.bulletin_id.clone().unwrap()]);
    let alerts = fleet.alerts().await;
    assert!(alerts[0].signature.starts_with("trusted ("), "{:?}", alerts[0].signature);

    // The same signed alert again (a feed repeats it): ignored, nothing new.
    let again = fleet.decide(signed).await;
    assert_eq!(again.outcomes[0].decision, CapDecision::Ignored);
    assert!(again.outcomes[0].reason.contains("already received"), "{again:?}");
    assert_eq!(fleet.events("xa-an-binh").await.len(), 1);

    // Signed and valid, but by a key central does not trust: taken (a test alert here),
    // with a warning, and recorded as not trusted.
    let untrusted = std::fs::read(format!("{SIGNED}/ecdsa-sha256.xml")).unwrap();
    let answer = fleet.decide(untrusted).await;
    assert!(answer.warnings.iter().any(|w| w.contains("not trusted")), "{answer:?}");
    assert_eq!(answer.outcomes[0].decision, CapDecision::Test, "{answer:?}");
    assert!(fleet.alerts().await[0].signature.starts_with("not trusted ("));
}

#[tokio::test]
async fn an_update_replaces_a_cancel_ends_and_a_waiting_bulletin_is_withdrawn() {
    let fleet = Fleet::start(auto_air_unsigned()).await;
    let first = Alert::new(RIVER, "VN-AG-U1");
    let a = fleet.decide(first.xml()).await;
    assert_eq!(a.outcomes[0].decision, CapDecision::Aired);
    let first_id = a.outcomes[0].bulletin_id.clone().unwrap();

    // The Update cancels the first bulletin (signed) and makes its own.
    let update = Alert {
        msg_type: "Update",
        references: Some(first.key()),
        sent: "2026-12-01T06:45:00+07:00".into(),
        ..Alert::new(RIVER, "VN-AG-U2")
    };
    let u = fleet.decide(update.xml()).await;
    let decisions: Vec<CapDecision> = u.outcomes.iter().map(|o| o.decision).collect();
    assert_eq!(decisions, [CapDecision::Cancelled, CapDecision::Aired], "{u:?}");
    assert_eq!(u.outcomes[0].bulletin_id.as_deref(), Some(first_id.as_str()));
    let second_id = u.outcomes[1].bulletin_id.clone().unwrap();
    let events = fleet.events("xa-an-binh").await;
    assert_eq!(bulletin_ids(&events), [first_id.clone(), second_id.clone()]);
    assert_eq!(cancelled_ids(&events), std::slice::from_ref(&first_id));

    // The first alert arriving late again changes nothing.
    let late = fleet.decide(first.xml()).await;
    assert_eq!(late.outcomes[0].decision, CapDecision::Ignored);

    // A Cancel of the update ends its bulletin.
    let cancel = Alert {
        msg_type: "Cancel",
        references: Some(update.key()),
        sent: "2026-12-01T06:50:00+07:00".into(),
        ..Alert::new(RIVER, "VN-AG-U3")
    };
    let c = fleet.decide(cancel.xml()).await;
    assert_eq!(c.outcomes[0].decision, CapDecision::Cancelled, "{c:?}");
    assert_eq!(c.outcomes[0].bulletin_id.as_deref(), Some(second_id.as_str()));
    assert_eq!(cancelled_ids(&fleet.events("xa-an-binh").await), [first_id, second_id]);

    // A bulletin still waiting for approval is withdrawn by a Cancel: never sent.
    let moderate = Alert { severity: "Moderate", ..Alert::new(RIVER, "VN-AG-W1") };
    let w = fleet.decide(moderate.xml()).await;
    assert_eq!(w.outcomes[0].decision, CapDecision::Waiting);
    let waiting_id = w.outcomes[0].bulletin_id.clone().unwrap();
    let withdraw = Alert {
        msg_type: "Cancel",
        references: Some(moderate.key()),
        sent: "2026-12-01T06:55:00+07:00".into(),
        ..Alert::new(RIVER, "VN-AG-W2")
    };
    let x = fleet.decide(withdraw.xml()).await;
    assert_eq!(x.outcomes[0].decision, CapDecision::Cancelled);
    assert!(x.outcomes[0].reason.contains("withdrawn before approval"), "{x:?}");
    let (status, body) = fleet.approve(&waiting_id, &fleet.central.admin).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("is withdrawn"), "{body}");
    let info: BulletinInfo =
        fleet.get(&format!("/api/v1/bulletins/{waiting_id}"), &fleet.central.admin).await;
    assert_eq!(info.headline_state(t0()), "withdrawn");
    assert_eq!(bulletin_ids(&fleet.events("xa-an-binh").await).len(), 2, "never sent");
}

#[tokio::test]
async fn a_waiting_bulletin_expires_unapproved_and_the_ledger_survives_a_restart() {
    let fleet = Fleet::start(CapConfig::default()).await;
    let short =
        Alert { expires: "2026-12-01T07:30:00+07:00".into(), ..Alert::new(RIVER, "VN-AG-E1") };
    let w = fleet.decide(short.xml()).await;
    let id = w.outcomes[0].bulletin_id.clone().unwrap();
    let long = Alert::new(RIVER, "VN-AG-E2");
    let l = fleet.decide(long.xml()).await;
    let long_id = l.outcomes[0].bulletin_id.clone().unwrap();

    // Stopped and started again: the ledger and the waiting bulletins are in the store.
    let Fleet { central, cap_source, stations } = fleet;
    let central = Central::restart(central.stop().await).await;
    let fleet = Fleet { central, cap_source, stations };
    assert_eq!(fleet.decide(long.xml()).await.outcomes[0].decision, CapDecision::Ignored);

    fleet.central.clock.advance(Duration::from_secs(31 * 60));
    let list: Vec<BulletinInfo> = fleet.get("/api/v1/bulletins", &fleet.central.admin).await;
    let shown = list.iter().find(|b| b.doc.id == id).unwrap();
    assert_eq!(
        shown.headline_state(loa::clock::Clock::now(fleet.central.clock.as_ref())),
        "expired"
    );
    let (status, body) = fleet.approve(&id, &fleet.central.admin).await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("before it was approved: nothing was sent"), "{body}");
    let info: BulletinInfo =
        fleet.get(&format!("/api/v1/bulletins/{id}"), &fleet.central.admin).await;
    assert_eq!(info.approval.unwrap().state, ApprovalState::Expired);
    // The other still waits, and is approved after the restart.
    let (status, body) = fleet.approve(&long_id, &fleet.central.admin).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(bulletin_ids(&fleet.events("xa-an-binh").await), [long_id]);
}

#[tokio::test]
async fn invalid_documents_and_wrong_callers_are_refused_with_what_to_do() {
    let fleet = Fleet::start(CapConfig::default()).await;
    let cases: Vec<(&str, String, &str)> = vec![
        ("not XML", "this is not xml".into(), "xml"),
        (
            "DOCTYPE",
            Alert::new(RIVER, "X").xml().replacen(
                "<alert",
                "<!DOCTYPE alert [<!ENTITY x \"y\">]><alert",
                1,
            ),
            "DOCTYPE",
        ),
        (
            "no sender",
            Alert::new(RIVER, "X").xml().replace("<sender>canhbao@angiang.gov.vn</sender>", ""),
            "sender",
        ),
        (
            "bad polygon",
            Alert { area: "<polygon>1,2 3,4 1,2</polygon>", ..Alert::new(RIVER, "X") }.xml(),
            "polygon",
        ),
    ];
    for (name, body, expect) in cases {
        let response = fleet.post(&fleet.cap_source, body).await;
        assert_eq!(response.status(), 422, "{name}");
        let body: ErrorBody = response.json().await.unwrap();
        assert!(body.error.contains("not a valid CAP 1.2 alert"), "{name}: {body:?}");
        assert!(body.diagnostics.iter().any(|d| d.contains(expect)), "{name}: {body:?}");
    }
    let refused = fleet.alerts().await;
    assert_eq!(refused.len(), 4);
    assert!(refused.iter().all(|r| r.outcome.decision == CapDecision::Refused));
    // A cap-source token may post alerts and nothing else.
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/status", fleet.central.url))
        .bearer_auth(&fleet.cap_source)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("may only post CAP alerts"));
    // Other roles may not post.
    let viewer = fleet.central.add_operator(Role::Viewer);
    let response = fleet.post(&viewer, Alert::new(RIVER, "X").xml()).await;
    assert_eq!(response.status(), 403);
    assert!(response.text().await.unwrap().contains("--role cap-source"));
}

/// Path → (status, body) a local feed serves.
type Files = HashMap<String, (u16, Vec<u8>)>;

/// A local feed: an Atom index and the documents, counting every request.
#[derive(Clone, Default)]
struct Feed {
    files: Arc<Mutex<Files>>,
    hits: Arc<Mutex<HashMap<String, usize>>>,
}

impl Feed {
    fn put(&self, path: &str, status: u16, body: impl Into<Vec<u8>>) {
        self.files.lock().unwrap().insert(path.to_string(), (status, body.into()));
    }

    fn hits(&self, path: &str) -> usize {
        self.hits.lock().unwrap().get(path).copied().unwrap_or(0)
    }

    async fn serve(&self) -> String {
        let feed = self.clone();
        let app = axum::Router::new().fallback(move |uri: axum::http::Uri| {
            let feed = feed.clone();
            async move {
                let path = uri.path().to_string();
                *feed.hits.lock().unwrap().entry(path.clone()).or_default() += 1;
                let found = feed.files.lock().unwrap().get(&path).cloned();
                match found {
                    Some((status, body)) => {
                        (axum::http::StatusCode::from_u16(status).unwrap(), body)
                    }
                    None => (axum::http::StatusCode::NOT_FOUND, Vec::new()),
                }
            }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }
}

fn atom(links: &[&str]) -> String {
    let entries: String = links
        .iter()
        .map(|l| {
            format!(
                "<entry><title>x</title><link rel=\"alternate\" type=\"application/cap+xml\" href=\"{l}\"/></entry>"
            )
        })
        .collect();
    format!(
        "<?xml version=\"1.0\"?><feed xmlns=\"http://www.w3.org/2005/Atom\"><title>Cảnh báo</title>{entries}</feed>"
    )
}

#[tokio::test]
async fn central_polls_an_atom_feed_and_takes_each_document_once() {
    let feed = Feed::default();
    let base = feed.serve().await;
    feed.put("/cap.atom", 200, atom(&["/t1.xml", "/broken.xml"]));
    feed.put("/t1.xml", 200, Alert { status: "Test", ..Alert::new(RIVER, "VN-AG-F1") }.xml());
    feed.put("/broken.xml", 200, "<alert/>");
    let cap =
        CapConfig { feeds: vec![format!("{base}/cap.atom")], poll_secs: 5, ..CapConfig::default() };
    let fleet = Fleet::start(cap).await;
    // The first poll runs at start: the test alert is sent, the broken one refused.
    let store = fleet.central.state.store.clone();
    loa::testing::wait_until(Duration::from_secs(30), || store.alerts(10).unwrap().len() >= 2)
        .await;
    let alerts = store.alerts(10).unwrap();
    let by_source: HashMap<String, CapDecision> =
        alerts.iter().map(|a| (a.source.clone(), a.outcome.decision)).collect();
    assert_eq!(by_source[&format!("feed {base}/t1.xml")], CapDecision::Test);
    assert_eq!(by_source[&format!("feed {base}/broken.xml")], CapDecision::Refused);
    assert_eq!(bulletin_ids(&fleet.events("xa-an-binh").await).len(), 1);
    // The next poll (5 s later) fetches the index again, and neither document.
    loa::testing::wait_until(Duration::from_secs(30), || feed.hits("/cap.atom") >= 2).await;
    assert_eq!((feed.hits("/t1.xml"), feed.hits("/broken.xml")), (1, 1));
}

#[tokio::test]
async fn a_feed_poll_is_bounded_and_what_failed_is_tried_again() {
    let fleet = Fleet::start(CapConfig { max_documents_per_poll: 2, ..CapConfig::default() }).await;
    let state = fleet.central.state.clone();
    let feed = Feed::default();
    let base = feed.serve().await;
    let index = format!("{base}/cap.atom");
    let client = loa::central::cap::feed::client(&state).unwrap();
    let poll =
        |done| loa::central::cap::feed::poll(state.clone(), client.clone(), index.clone(), done);

    // Not a feed at all, or missing: an error for this poll, nothing taken.
    feed.put("/cap.atom", 200, "<html><body>Trang chủ</body></html>");
    let (done, result) = poll(Default::default()).await;
    assert!(result.unwrap_err().contains("not an Atom <feed> or an RSS <rss>"));
    assert!(done.is_empty());

    // Three new documents, two per poll: one missing (404), one over 5 MiB, one good.
    feed.put("/cap.atom", 200, atom(&["gone.xml", "huge.xml", "t2.xml"]));
    let huge = vec![b' '; loa::central::cap::feed::MAX_FETCH_BYTES + 1];
    feed.put("/huge.xml", 200, huge);
    feed.put("/t2.xml", 200, Alert { status: "Exercise", ..Alert::new(RIVER, "VN-AG-F2") }.xml());
    let (done, polled) = poll(Default::default()).await;
    let polled = polled.unwrap();
    assert_eq!((polled.listed, polled.taken, polled.failed, polled.left), (3, 0, 2, 1));
    assert!(done.is_empty());
    // The next poll tries the failures again, and then the third.
    feed.put("/gone.xml", 200, Alert { status: "Test", ..Alert::new(RIVER, "VN-AG-F3") }.xml());
    let (done, polled) = poll(done).await;
    assert_eq!(polled.unwrap().taken, 1, "gone.xml now served; huge.xml still too large");
    let (done, polled) = poll(done).await;
    let polled = polled.unwrap();
    assert_eq!((polled.taken, polled.failed), (1, 1), "t2.xml taken, huge.xml failing again");
    assert_eq!(done.len(), 2);
    assert_eq!(feed.hits("/gone.xml"), 2);
    assert_eq!(feed.hits("/t2.xml"), 1);
    // What the index no longer lists is forgotten: the set never outgrows the index.
    feed.put("/cap.atom", 200, atom(&["t2.xml"]));
    let (done, _) = poll(done).await;
    assert_eq!(done.len(), 1);
    assert_eq!(feed.hits("/t2.xml"), 1, "taken once");
}
