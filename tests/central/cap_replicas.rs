//! CAP alerts at two real `loa central` replicas on one PostgreSQL database, posted to
//! both at the same instant: the same alert becomes one bulletin (the replica deciding
//! second finds it in the ledger), and two different alerts both stay in the ledger
//! (neither replica's update overwrites the other's).

use chrono::{Duration as Span, FixedOffset, Utc};
use loa::protocol::{CapAnswer, CapDecision};
use loa::testing::database::TestDatabase;

use crate::support::cap::Alert;
use crate::support::process::{central_init_on, central_replica, command, text, utf8};

/// The code station `xa-an-binh` is placed under.
const CODE: &str = "<geocode><valueName>MaDVHC</valueName><value>30280</value></geocode>";

/// A test alert `id` over [`CODE`], sent a minute ago and expiring in three hours (the
/// replicas run on the real clock): it is sent to the station at once, never aired.
fn test_alert(id: &'static str) -> Alert {
    let at = |t: chrono::DateTime<Utc>| {
        let vietnam = FixedOffset::east_opt(7 * 3600).unwrap();
        t.with_timezone(&vietnam).format("%Y-%m-%dT%H:%M:%S%:z").to_string()
    };
    Alert {
        status: "Test",
        sent: at(Utc::now() - Span::minutes(1)),
        expires: at(Utc::now() + Span::hours(3)),
        ..Alert::new(CODE, id)
    }
}

async fn post(url: &str, token: &str, xml: String) -> CapAnswer {
    let response = reqwest::Client::new()
        .post(format!("{url}/api/v1/cap"))
        .bearer_auth(token)
        .header("content-type", "application/cap+xml")
        .body(xml)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let body = response.text().await.unwrap();
    assert_eq!(status, 201, "{body}");
    serde_json::from_str(&body).unwrap()
}

fn decisions(answer: &CapAnswer) -> Vec<CapDecision> {
    answer.outcomes.iter().map(|o| o.decision).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_deciding_at_once_make_one_bulletin_per_alert_and_lose_no_ledger_update() {
    let database = TestDatabase::new();
    let dir = tempfile::tempdir().unwrap();
    let province = central_init_on(&dir.path().join("a"), &database.url);
    let out = command()
        .env("LOA_DATABASE_URL", &database.url)
        .args(["central", "station", "add", "xa-an-binh", "--name", "An Bình"])
        .args(["--district", "An Phú", "--geocode", "30280"])
        .args(["--data-dir", utf8(&province.data), "--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));
    let a = central_replica(&province, &province.data, &database.url);
    let b = central_replica(&province, &dir.path().join("b"), &database.url);
    let admin = &province.admin;
    let store = loa::central::open_store(&province.data, Some(&database.url), None).unwrap();

    // The same alert to both replicas at once: one decides it, the other sees a repeat.
    let same = test_alert("VN-AG-T1");
    let (at_a, at_b) =
        tokio::join!(post(&a.url, admin, same.xml()), post(&b.url, admin, same.xml()));
    let (decided, repeat) = (vec![CapDecision::Test], vec![CapDecision::Ignored]);
    let both = [decisions(&at_a), decisions(&at_b)];
    assert!(
        both == [decided.clone(), repeat.clone()] || both == [repeat, decided],
        "one replica decides, the other ignores a repeat:\n{at_a:?}\n{at_b:?}"
    );
    let events = store.bulletin_events_after(0).unwrap();
    assert_eq!(events.len(), 1, "one bulletin for one alert: {events:?}");

    // Two different alerts, one to each replica at once: both decided, both remembered.
    let (one, two) = (test_alert("VN-AG-T2"), test_alert("VN-AG-T3"));
    let (at_a, at_b) = tokio::join!(post(&a.url, admin, one.xml()), post(&b.url, admin, two.xml()));
    assert_eq!(decisions(&at_a), [CapDecision::Test], "{at_a:?}");
    assert_eq!(decisions(&at_b), [CapDecision::Test], "{at_b:?}");
    // Each sent again to the other replica: the ledger knows both (a lost update would
    // make one of them a new alert, and a second bulletin).
    let (again_one, again_two) =
        tokio::join!(post(&b.url, admin, one.xml()), post(&a.url, admin, two.xml()));
    for again in [&again_one, &again_two] {
        assert_eq!(decisions(again), [CapDecision::Ignored], "{again:?}");
        assert!(again.outcomes[0].reason.contains("already received"), "{again:?}");
    }
    assert_eq!(store.bulletin_events_after(0).unwrap().len(), 3, "one bulletin per alert");
    let ledger = store.cap_ledger().unwrap().expect("a ledger");
    for id in ["VN-AG-T1", "VN-AG-T2", "VN-AG-T3"] {
        assert!(ledger.contains(id), "{id} is not in the ledger: {ledger}");
    }
}
