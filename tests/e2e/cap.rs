//! CAP alerts end to end with real processes: `loa central` (with a `[cap]` table and an
//! auto-air rule), two `loa station` daemons placed with `loa central station add …
//! --lat --lon --geocode` (paced `clocked` sink), a cap-source token made by `loa central
//! token add`, and the `loa bulletin` CLI. Alerts are POSTed as a disaster authority's
//! system would:
//! - a Test alert becomes a test bulletin that reaches both stations as `test-ok`;
//! - a Moderate alert waits for approval, is listed `waiting-approval`, and airs at both
//!   once `loa bulletin approve` is run;
//! - a signed alert altered after signing is refused and listed as refused;
//! - an Extreme/Immediate alert matches the auto-air rule and airs at once, and its
//!   Cancel stops it where it plays.

use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};
use loa::protocol::{BulletinInfo, CapAnswer, CapDecision, DeliveryState};

use crate::support::cap::{Alert, SENDER};
use crate::support::process::{
    Proc, central_init, field_str as field, loa, remote, station_log as records, text,
};
use crate::support::wait;

/// A CAP alert around the two stations (a circle of 20 km), sent a minute ago.
fn alert(
    id: &'static str,
    status: &'static str,
    msg_type: &'static str,
    severity: &'static str,
    refs: &str,
    text: &str,
) -> String {
    let now = Utc::now();
    let at = |t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S-00:00").to_string();
    Alert {
        status,
        msg_type,
        severity,
        references: (!refs.is_empty()).then(|| refs.to_string()),
        sent: at(now - chrono::Duration::minutes(1)),
        expires: at(now + chrono::Duration::hours(1)),
        description: text.into(),
        ..Alert::new("<circle>10.40,105.40 20</circle>", id)
    }
    .xml()
}

/// `sender,identifier,sent` of an alert made by [`alert`].
fn key_of(xml: &str) -> String {
    let between =
        |a: &str, b: &str| xml.split(a).nth(1).unwrap().split(b).next().unwrap().to_string();
    format!(
        "{SENDER},{},{}",
        between("<identifier>", "</identifier>"),
        between("<sent>", "</sent>")
    )
}

fn post(rt: &tokio::runtime::Runtime, url: &str, token: &str, body: String) -> (u16, String) {
    rt.block_on(async {
        let response = reqwest::Client::new()
            .post(format!("{url}/api/v1/cap"))
            .bearer_auth(token)
            .body(body)
            .send()
            .await
            .expect("central answers");
        (response.status().as_u16(), response.text().await.unwrap_or_default())
    })
}

fn decide(rt: &tokio::runtime::Runtime, url: &str, token: &str, body: String) -> CapAnswer {
    let (status, text) = post(rt, url, token, body);
    assert_eq!(status, 201, "{text}");
    serde_json::from_str(&text).unwrap()
}

fn show(url: &str, admin: &str, id: &str) -> BulletinInfo {
    let out = remote(url, admin, &["bulletin", "show", id, "--format", "json"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Waits until every target of bulletin `id` is in one of `states`.
fn wait_all(
    url: &str,
    admin: &str,
    id: &str,
    states: &[DeliveryState],
    what: &str,
) -> BulletinInfo {
    wait::until(what, Duration::from_secs(60), || {
        let info = show(url, admin, id);
        let all = info.stations.len() == 2
            && info.stations.iter().all(|s| s.state.is_some_and(|st| states.contains(&st)));
        all.then_some(info)
    })
}

#[test]
fn cap_alerts_reach_two_stations_as_tests_approved_bulletins_and_auto_aired_emergencies() {
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("central");
    let data_s = data.to_str().unwrap();
    let province = central_init(&data);
    let (key, admin) = (province.key.clone(), province.admin.clone());
    // Two stations inside the alerts' circle, placed by coordinates and by code.
    let mut tokens = Vec::new();
    for (id, lat, lon, code) in
        [("xa-an-binh", "10.40", "105.40", "30280"), ("xa-binh-my", "10.50", "105.30", "30300")]
    {
        let place = ["--lat", lat, "--lon", lon, "--geocode", code];
        tokens.push(province.add_station_with(id, id, "An Phú", &place).token);
    }
    let out = loa(&[
        "central",
        "token",
        "add",
        "--role",
        "cap-source",
        "--label",
        "kttv",
        "--data-dir",
        data_s,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let cap_source = text(&out.stdout).lines().last().unwrap().trim().to_string();
    let signers =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cap_documents/signed/rsa-signer.pem");
    let config = dir.path().join("central.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {data_s:?}\n[cap]\ntone = false\ntrusted_signers = [{:?}]\n\
             [[cap.auto_air]]\nsenders = [\"{SENDER}\"]\npriority = [\"emergency\"]\ntrusted_signature = false\n",
            signers.to_str().unwrap()
        ),
    )
    .unwrap();
    let central = Proc::spawn(&["central", "--config", config.to_str().unwrap()]);
    let url = central.listening_url(Duration::from_secs(60));

    let mut stations = Vec::new();
    let mut data_dirs = Vec::new();
    for (i, id) in ["xa-an-binh", "xa-binh-my"].iter().enumerate() {
        let root = dir.path().join(id);
        std::fs::create_dir_all(root.join("local")).unwrap();
        let station_toml = root.join("station.toml");
        std::fs::write(
            &station_toml,
            format!(
                "station_id = \"{id}\"\ncentral_url = \"{url}\"\ntoken = \"{}\"\nprovince_key = \"{key}\"\ndata_dir = \"data\"\nlocal_schedules = \"local\"\n[audio]\nsink = \"clocked\"\nfade_ms = 300\n",
                tokens[i]
            ),
        )
        .unwrap();
        stations.push(Proc::spawn(&["station", "--config", station_toml.to_str().unwrap()]));
        data_dirs.push(root.join("data"));
    }
    for s in &stations {
        s.wait_for(&["bulletin stream connected"], Duration::from_secs(60));
    }

    // 1. A Test alert: a test bulletin, test-ok at both stations, never aired.
    let answer =
        decide(&rt, &url, &cap_source, alert("E2E-T", "Test", "Alert", "Severe", "", "Kiểm tra."));
    assert_eq!(answer.outcomes[0].decision, CapDecision::Test, "{answer:?}");
    assert_eq!(answer.outcomes[0].stations, 2);
    let test_id = answer.outcomes[0].bulletin_id.clone().unwrap();
    wait_all(&url, &admin, &test_id, &[DeliveryState::TestOk], "test-ok at both stations");

    // 2. A Moderate alert waits for a person; `loa bulletin approve` airs it at both.
    let answer = decide(
        &rt,
        &url,
        &cap_source,
        alert("E2E-M", "Actual", "Alert", "Moderate", "", "Mưa lớn."),
    );
    assert_eq!(answer.outcomes[0].decision, CapDecision::Waiting, "{answer:?}");
    let waiting_id = answer.outcomes[0].bulletin_id.clone().unwrap();
    let list = text(&remote(&url, &admin, &["bulletin", "list"]).stdout);
    let row = list.lines().find(|l| l.starts_with(&waiting_id)).unwrap_or_else(|| panic!("{list}"));
    assert!(row.contains("waiting-approval"), "{list}");
    assert!(list.contains("waits: priority"), "the reason is listed: {list}");
    assert!(show(&url, &admin, &waiting_id).stations.iter().all(|s| s.state.is_none()));
    let out = remote(&url, &admin, &["bulletin", "approve", &waiting_id]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        text(&out.stdout).starts_with(&format!("approved {waiting_id}: priority to 2 station(s)"))
    );
    wait_all(&url, &admin, &waiting_id, &[DeliveryState::Finished], "the approved bulletin aired");
    for data in &data_dirs {
        let recs = records(data);
        let played = recs.iter().find(|r| field(r, "item_id") == Some(waiting_id.as_str()));
        let played = played.unwrap_or_else(|| panic!("{recs:?}"));
        assert_eq!(field(played, "outcome"), Some("played"), "{played}");
        assert_eq!(field(played, "priority"), Some("priority"), "{played}");
    }

    // 3. A signed alert altered after signing: refused, and listed as refused.
    let signed = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/cap_documents/signed/rsa-sha256-exclusive.xml"),
    )
    .unwrap();
    let (status, body) = post(&rt, &url, &cap_source, signed.replacen("sông Hậu", "sông Tiền", 1));
    assert_eq!(status, 422, "{body}");
    let list = text(&remote(&url, &admin, &["bulletin", "list"]).stdout);
    let refused = list
        .lines()
        .find(|l| l.contains("VN-AG-2026-S101"))
        .unwrap_or_else(|| panic!("the refused alert is listed: {list}"));
    assert!(refused.contains("refused") && refused.contains("signature refused"), "{refused}");

    // 4. Extreme + Immediate from the province's sender: the auto-air rule airs it now,
    // at emergency level; its Cancel stops it where it plays.
    let long =
        "Nước sông Hậu đang lên rất nhanh. Người dân vùng trũng di chuyển ngay đến nơi cao. "
            .repeat(6);
    let emergency = alert("E2E-X", "Actual", "Alert", "Extreme", "", &long);
    let answer = decide(&rt, &url, &cap_source, emergency.clone());
    assert_eq!(answer.outcomes[0].decision, CapDecision::Aired, "{answer:?}");
    let aired_id = answer.outcomes[0].bulletin_id.clone().unwrap();
    let info =
        wait_all(&url, &admin, &aired_id, &[DeliveryState::Started], "the emergency started");
    assert!(info.stations.iter().all(|s| s.latency_ms.is_some_and(|l| (0..10_000).contains(&l))));
    let cancel = alert("E2E-C", "Actual", "Cancel", "Extreme", &key_of(&emergency), "Hủy.");
    let answer = decide(&rt, &url, &cap_source, cancel);
    assert_eq!(answer.outcomes[0].decision, CapDecision::Cancelled, "{answer:?}");
    assert_eq!(answer.outcomes[0].bulletin_id.as_deref(), Some(aired_id.as_str()));
    for data in &data_dirs {
        let rec = wait::until("the cancelled play's record", Duration::from_secs(30), || {
            records(data).into_iter().find(|r| field(r, "item_id") == Some(aired_id.as_str()))
        });
        assert_eq!(field(&rec, "outcome"), Some("preempted"), "{rec}");
        assert_eq!(field(&rec, "reason"), Some("cancelled by the province"), "{rec}");
        assert_eq!(field(&rec, "priority"), Some("emergency"), "{rec}");
    }
    assert!(show(&url, &admin, &aired_id).cancelled_at.is_some());

    // Every decision is listed with its alert.
    let alerts = text(&remote(&url, &admin, &["bulletin", "list", "--alerts"]).stdout);
    for (decision, alert_id) in [
        ("test", "E2E-T"),
        ("waiting", "E2E-M"),
        ("refused", "VN-AG-2026-S101"),
        ("aired", "E2E-X"),
        ("cancelled", "E2E-C"),
    ] {
        assert!(
            alerts.lines().any(|l| l.contains(decision) && l.contains(alert_id)),
            "{decision} {alert_id}: {alerts}"
        );
    }
    drop(stations);
    drop(central);
}
