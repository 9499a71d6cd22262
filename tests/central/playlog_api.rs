//! Central's playlog over HTTP: batches stored once and acknowledged correctly, refusals
//! with clear errors, chain breaks flagged where operators look (`loa status`), and
//! district tokens confined to their own stations.

use crate::support::central::{Central, t0};
use crate::support::playlog;
use chrono::Duration;
use loa::protocol::{ErrorBody, FleetStatus, PlaylogAck, PlaylogBatch};
use loa::schedule::{Layer, Priority};
use loa::station::ledger::{Entry, GENESIS, Outcome, Record};
use loa::store::Role;

fn chain(station: &str, n: u64) -> Vec<Record> {
    let entries = (1..=n)
        .map(|seq| {
            let mut entry = Entry::missed(
                &format!("item-{seq}"),
                "Bản tin",
                Layer::Provincial,
                Priority::Normal,
                t0() + Duration::minutes(seq as i64),
                loa::protocol::Reason::from_stored(None, "station was not running"),
            );
            if seq == 2 {
                entry.outcome = Outcome::Played;
                entry.reason = None;
            }
            entry
        })
        .collect();
    playlog::chain(station, 1, GENESIS, entries)
}

async fn post(c: &Central, token: &str, body: Vec<u8>) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{}/api/v1/station/playlog", c.url))
        .bearer_auth(token)
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap()
}

async fn batch(c: &Central, token: &str, records: &[Record]) -> PlaylogAck {
    let body = serde_json::to_vec(&PlaylogBatch { records: records.to_vec() }).unwrap();
    let response = post(c, token, body).await;
    assert!(response.status().is_success(), "{}", response.text().await.unwrap());
    response.json().await.unwrap()
}

async fn get<T: serde::de::DeserializeOwned>(
    c: &Central,
    token: &str,
    path: &str,
) -> (u16, String, Option<T>) {
    let response = reqwest::Client::new()
        .get(format!("{}{path}", c.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    let parsed = serde_json::from_str(&text).ok();
    (status, text, parsed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_are_idempotent_refusals_are_clear_and_breaks_are_flagged() {
    let c = Central::start().await;
    let a = c.add_station("tri-ton", "Tri Tôn");
    let b = c.add_station("ba-chuc", "Tịnh Biên");
    let records = chain("tri-ton", 6);

    // The same batch twice: stored once, the same acknowledgement.
    let first = batch(&c, &a, &records[..4]).await;
    assert_eq!(first, PlaylogAck { acked_through: 4, stored: 4, duplicates: 0 });
    let again = batch(&c, &a, &records[..4]).await;
    assert_eq!(again, PlaylogAck { acked_through: 4, stored: 0, duplicates: 4 });
    // Overlapping resend after a lost answer: only the new ones are stored.
    let overlap = batch(&c, &a, &records[2..]).await;
    assert_eq!(overlap, PlaylogAck { acked_through: 6, stored: 2, duplicates: 2 });

    // Refusals.
    let json = serde_json::to_vec(&PlaylogBatch { records: chain("tri-ton", 1) }).unwrap();
    let r = post(&c, "loa_wrong", json.clone()).await;
    assert_eq!(r.status().as_u16(), 401);
    let r = post(&c, &b, json).await;
    assert_eq!(r.status().as_u16(), 400);
    let body: ErrorBody = r.json().await.unwrap();
    assert!(body.error.contains("this token belongs to \"ba-chuc\""), "{}", body.error);
    let r = post(&c, &a, b"{\"records\": [".to_vec()).await;
    assert_eq!(r.status().as_u16(), 400);
    let body: ErrorBody = r.json().await.unwrap();
    assert!(body.error.contains("playlog batch is not valid JSON"), "{}", body.error);

    // A sequence past i64::MAX would wrap where it is stored: refused.
    let mut huge = chain("ba-chuc", 1);
    huge[0].seq = 1 << 63;
    let r = post(&c, &b, serde_json::to_vec(&PlaylogBatch { records: huge }).unwrap()).await;
    assert_eq!(r.status().as_u16(), 400);
    let body: ErrorBody = r.json().await.unwrap();
    assert!(body.error.contains("sequence 9223372036854775808 is out of range"), "{}", body.error);

    // A station whose record 2 was altered after hashing: flagged, visible in status.
    let mut tampered = chain("ba-chuc", 3);
    tampered[1].entry.outcome = Outcome::Missed;
    let ack = batch(&c, &b, &tampered).await;
    assert_eq!(ack.acked_through, 3);
    let (status, text, fleet) = get::<FleetStatus>(&c, &c.admin, "/api/v1/status").await;
    assert_eq!(status, 200, "{text}");
    let fleet = fleet.unwrap();
    let ba = fleet.stations.iter().find(|s| s.id == "ba-chuc").unwrap();
    assert_eq!(ba.playlog.issues.len(), 1, "{:?}", ba.playlog.issues);
    assert_eq!((ba.playlog.issues[0].seq, ba.playlog.issues[0].kind.as_str()), (2, "break"));
    let tri = fleet.stations.iter().find(|s| s.id == "tri-ton").unwrap();
    assert_eq!((tri.playlog.acked_through, tri.playlog.records), (6, 6));
    assert!(tri.playlog.issues.is_empty());
    let table = loa::cli::status::table(&fleet, chrono_tz::Asia::Ho_Chi_Minh);
    let line = table.lines().find(|l| l.starts_with("ba-chuc")).unwrap();
    assert!(line.contains("3 records, BREAK at #2"), "{table}");

    // Reading the playlog: filters, and a district token sees only its district.
    let (_, _, all) = get::<Vec<Record>>(&c, &c.admin, "/api/v1/playlog").await;
    let all = all.unwrap();
    assert_eq!(all.len(), 9);
    // Pages: a full page names where the next one starts; the pages add up to the whole.
    let mut paged: Vec<Record> = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..10 {
        let mut query = vec![("limit", "4".to_string())];
        query.extend(after.clone().map(|a| ("after", a)));
        let r = reqwest::Client::new()
            .get(format!("{}/api/v1/playlog", c.url))
            .query(&query)
            .bearer_auth(&c.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
        let next = r
            .headers()
            .get(loa::protocol::PLAYLOG_NEXT_HEADER)
            .map(|v| v.to_str().unwrap().to_string());
        let page: Vec<Record> = r.json().await.unwrap();
        assert!(page.len() <= 4);
        paged.extend(page);
        match next {
            Some(n) => after = Some(n),
            None => break,
        }
    }
    assert_eq!(paged, all);
    // No page of everything: a size past the maximum (or zero) is refused, not a 500.
    for limit in ["0", "10001", "18446744073709551615"] {
        let (status, text, _) =
            get::<serde_json::Value>(&c, &c.admin, &format!("/api/v1/playlog?limit={limit}")).await;
        assert_eq!(status, 400, "limit {limit}: {text}");
    }
    let (status, text, _) =
        get::<serde_json::Value>(&c, &c.admin, "/api/v1/playlog?after=garbage").await;
    assert_eq!(status, 400, "{text}");
    let (_, _, played) = get::<Vec<Record>>(&c, &c.admin, "/api/v1/playlog?outcome=played").await;
    assert_eq!(played.unwrap().len(), 1, "ba-chuc's record 2 now says missed");
    let (_, _, item) =
        get::<Vec<Record>>(&c, &c.admin, "/api/v1/playlog?item=item-3&station=tri-ton").await;
    assert_eq!(item.unwrap().iter().map(|r| r.seq).collect::<Vec<_>>(), [3]);
    let district = c.add_operator(Role::District("Tri Tôn".into()));
    let (_, _, mine) = get::<Vec<Record>>(&c, &district, "/api/v1/playlog").await;
    assert!(mine.unwrap().iter().all(|r| r.station == "tri-ton"));
    let (status, text, _) =
        get::<serde_json::Value>(&c, &district, "/api/v1/playlog?station=ba-chuc").await;
    assert_eq!(status, 404, "{text}");
    let (status, text, _) =
        get::<serde_json::Value>(&c, &c.admin, "/api/v1/playlog?outcome=lost").await;
    assert_eq!(status, 400);
    assert!(text.contains("unknown outcome \\\"lost\\\""), "{text}");
    let (status, text, _) =
        get::<serde_json::Value>(&c, &c.admin, "/api/v1/report?date=01-12-2026").await;
    assert_eq!(status, 400);
    assert!(text.contains("not YYYY-MM-DD"), "{text}");
}
