//! The security matrix: every central API route × every kind of caller, every way a
//! signed document can be faked, and every bad upload — each row a named case, checked
//! against a real central over loopback. A failing row names itself in the message.
//!
//! Callers: no token, an unknown token, a station's own token, another station's token,
//! a viewer, a district operator of the station's district, one of another district, the
//! province's admin, and a disaster authority's cap-source token (CAP alerts only).

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use base64::Engine;
use chrono::{DateTime, Utc};
use loa::protocol::{
    BulletinEvents, BulletinPriority, DailyReport, DeliveryReport, DeliveryState, DocumentKind,
    FleetStatus, Heartbeat, LoadScheduleRequest, PlaylogBatch, PushBulletinRequest,
    PushBulletinResponse, SignedEnvelope, Target,
};
use loa::schedule::{Layer, Priority};
use loa::signing::{ProvinceKey, PublicKey, SigningError, verify_manifest};
use loa::station::ledger::{Entry, Ledger, Record};
use loa::store::Role;
use support::central::{Central, LOCAL, t0};

/// Who sends a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    NoToken,
    UnknownToken,
    Station,
    OtherStation,
    Viewer,
    District,
    OtherDistrict,
    Admin,
    CapSource,
}

const EVERYONE: [Who; 9] = [
    Who::NoToken,
    Who::UnknownToken,
    Who::Station,
    Who::OtherStation,
    Who::Viewer,
    Who::District,
    Who::OtherDistrict,
    Who::Admin,
    Who::CapSource,
];

/// The fleet the matrix runs against: `tri-ton` in district "Tri Tôn" (the station under
/// test), `chau-doc` in "Châu Đốc" (the other one), one token per kind of caller.
struct Fleet {
    central: Central,
    tokens: BTreeMap<&'static str, String>,
    audio_sha: String,
    /// A test bulletin pushed by the admin to tri-ton only.
    bulletin_id: String,
    /// A real ledger record of tri-ton's, as its uplink would send it.
    batch: PlaylogBatch,
    _ledger_dir: tempfile::TempDir,
}

impl Fleet {
    async fn start() -> Self {
        let central = Central::start_with(|c| c.upload_limit_mb = 1).await;
        let mut tokens = BTreeMap::new();
        tokens.insert("station", central.add_station("tri-ton", "Tri Tôn"));
        tokens.insert("other-station", central.add_station("chau-doc", "Châu Đốc"));
        tokens.insert("viewer", central.add_operator(Role::Viewer));
        tokens.insert("district", central.add_operator(Role::District("Tri Tôn".into())));
        tokens.insert("other-district", central.add_operator(Role::District("Châu Đốc".into())));
        tokens.insert("admin", central.admin.clone());
        tokens.insert("cap-source", central.add_operator(Role::CapSource));
        // tri-ton is inside the CAP alerts' area (a circle around it).
        let place = loa::store::StationPlace {
            station_id: "tri-ton".into(),
            lat: Some(10.42),
            lon: Some(105.0),
            geocodes: vec![],
        };
        central.state.store.set_station_place(&place).unwrap();
        let audio = central.upload_ok(loa::testing::wav_bytes(0.5, 440.0, 0.3), "a").await;
        let ledger_dir = tempfile::tempdir().unwrap();
        let mut ledger =
            Ledger::open(&ledger_dir.path().join("ledger.sqlite3"), "tri-ton").unwrap();
        let entry = Entry::missed(
            "ban-tin-sang",
            "Bản tin sáng",
            Layer::Provincial,
            Priority::Priority,
            t0(),
            loa::protocol::Reason::from_stored(None, "station was not running"),
        );
        let record = ledger.append(entry).unwrap().record().clone();
        let mut fleet = Self {
            central,
            tokens,
            audio_sha: audio.sha256,
            bulletin_id: String::new(),
            batch: PlaylogBatch { records: vec![record] },
            _ledger_dir: ledger_dir,
        };
        fleet.bulletin_id = fleet.push_as_admin().await;
        fleet
    }

    fn push_request(&self, to: Target) -> PushBulletinRequest {
        PushBulletinRequest {
            title: Some("Kiểm tra".into()),
            audio_sha256: Some(self.audio_sha.clone()),
            text: None,
            voice: None,
            to,
            priority: BulletinPriority::Test,
            repeat: 0,
            interval_secs: 0,
            expires_secs: 3600,
            tone: false,
        }
    }

    /// Pushes a test bulletin to tri-ton as the admin; returns its id.
    async fn push_as_admin(&self) -> String {
        let response = reqwest::Client::new()
            .post(format!("{}/api/v1/bulletins", self.central.url))
            .bearer_auth(&self.central.admin)
            .json(&self.push_request(Target::Stations(vec!["tri-ton".into()])))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let pushed: PushBulletinResponse = response.json().await.unwrap();
        pushed.id
    }

    fn token(&self, who: Who) -> Option<String> {
        let key = match who {
            Who::NoToken => return None,
            Who::UnknownToken => return Some("loa_0123456789abcdef0123456789abcdef".into()),
            Who::Station => "station",
            Who::OtherStation => "other-station",
            Who::Viewer => "viewer",
            Who::District => "district",
            Who::OtherDistrict => "other-district",
            Who::Admin => "admin",
            Who::CapSource => "cap-source",
        };
        self.tokens.get(key).cloned()
    }
}

/// One route, with a valid request body for it.
#[derive(Debug, Clone, Copy)]
enum Route {
    Manifest,
    Heartbeat,
    AudioBlob,
    LibraryEntry,
    Upload,
    LoadLocalToStation,
    LoadProvincialToAll,
    Status,
    PushToStation,
    PushToAll,
    ListBulletins,
    ShowBulletin,
    CancelBulletin,
    EventStream,
    EventPoll,
    Delivery,
    Playlog,
    ReadPlaylog,
    Report,
    PostCap,
    ListCap,
    ApproveBulletin,
    Audit,
    StartLive,
    ListLive,
    LiveAudio,
    StationLive,
}

impl Route {
    /// The (method, path) the router registers for this row, as `central::route_list`
    /// names it.
    fn endpoint(self) -> (&'static str, &'static str) {
        match self {
            Route::Manifest => ("GET", "/api/v1/station/manifest"),
            Route::Heartbeat => ("POST", "/api/v1/station/heartbeat"),
            Route::AudioBlob => ("GET", "/api/v1/audio/{sha256}"),
            Route::LibraryEntry => ("GET", "/api/v1/library/{sha256}"),
            Route::Upload => ("PUT", "/api/v1/audio"),
            Route::LoadLocalToStation | Route::LoadProvincialToAll => ("POST", "/api/v1/schedules"),
            Route::Status => ("GET", "/api/v1/status"),
            Route::PushToStation | Route::PushToAll => ("POST", "/api/v1/bulletins"),
            Route::ListBulletins => ("GET", "/api/v1/bulletins"),
            Route::ShowBulletin => ("GET", "/api/v1/bulletins/{id}"),
            Route::CancelBulletin => ("POST", "/api/v1/bulletins/{id}/cancel"),
            Route::EventStream => ("GET", "/api/v1/station/events"),
            Route::EventPoll => ("GET", "/api/v1/station/events/poll"),
            Route::Delivery => ("POST", "/api/v1/station/bulletins/delivery"),
            Route::Playlog => ("POST", "/api/v1/station/playlog"),
            Route::ReadPlaylog => ("GET", "/api/v1/playlog"),
            Route::Report => ("GET", "/api/v1/report"),
            Route::PostCap => ("POST", "/api/v1/cap"),
            Route::ListCap => ("GET", "/api/v1/cap"),
            Route::ApproveBulletin => ("POST", "/api/v1/bulletins/{id}/approve"),
            Route::Audit => ("GET", "/api/v1/audit"),
            Route::StartLive => ("POST", "/api/v1/live"),
            Route::ListLive => ("GET", "/api/v1/live"),
            Route::LiveAudio => ("PUT", "/api/v1/live/{id}/audio"),
            Route::StationLive => ("GET", "/api/v1/station/live/{id}"),
        }
    }

    /// What the row sends beyond its endpoint.
    fn case(self) -> &'static str {
        match self {
            Route::LoadLocalToStation => " (local, to tri-ton)",
            Route::LoadProvincialToAll => " (provincial, to all)",
            Route::PushToStation => " (to tri-ton)",
            Route::PushToAll => " (to all)",
            Route::CancelBulletin | Route::Delivery => " (bulletin for tri-ton)",
            Route::EventStream => " (SSE)",
            Route::Playlog => " (tri-ton's record)",
            Route::Report => "?date=2026-12-01",
            Route::ApproveBulletin => " (a CAP bulletin waiting)",
            Route::StartLive => " (to all)",
            Route::LiveAudio | Route::StationLive => " (no broadcast on air)",
            _ => "",
        }
    }

    fn name(self) -> String {
        let (method, path) = self.endpoint();
        format!("{method} {path}{}", self.case())
    }

    /// The expected status for `who`. Station routes answer only station tokens (and
    /// only about the caller's own station); operator routes answer only operator
    /// tokens, by role.
    fn expected(self, who: Who) -> u16 {
        use Who::*;
        match (self, who) {
            (_, NoToken | UnknownToken) => 401,
            // A disaster authority's token posts alerts, and does nothing else.
            (Route::PostCap, CapSource | Admin) => 201,
            (Route::PostCap, Viewer | District | OtherDistrict) => 403,
            (Route::AudioBlob, CapSource) => 403,
            (r, CapSource) if !r.is_station_route() => 403,
            (Route::Manifest | Route::Heartbeat, Station | OtherStation) => 200,
            // A station listens to a broadcast it is targeted by; none is on air here.
            (Route::StationLive, Station | OtherStation) => 404,
            (Route::EventStream | Route::EventPoll, Station | OtherStation) => 200,
            // A station may report only on bulletins sent to it.
            (Route::Delivery, Station) => 204,
            (Route::Delivery, OtherStation) => 404,
            // A station may send only its own records.
            (Route::Playlog, Station) => 200,
            (Route::Playlog, OtherStation) => 400,
            (
                Route::Manifest
                | Route::Heartbeat
                | Route::EventStream
                | Route::EventPoll
                | Route::Delivery
                | Route::Playlog
                | Route::StationLive,
                _,
            ) => 401,
            // Audio bytes: any station (signatures decide what plays) or operator.
            (Route::AudioBlob, _) => 200,
            (_, Station | OtherStation) => 401,
            (Route::LibraryEntry | Route::Status, _) => 200,
            // A district token sees only bulletins reaching its own stations: to it, the
            // bulletin to tri-ton does not exist in another district.
            (Route::ShowBulletin | Route::CancelBulletin, OtherDistrict) => 404,
            (Route::ListBulletins | Route::ShowBulletin, _) => 200,
            (Route::ReadPlaylog | Route::Report, _) => 200,
            (Route::PushToStation | Route::CancelBulletin, Viewer | OtherDistrict) => 403,
            (Route::PushToStation | Route::CancelBulletin, _) => 200,
            (Route::PushToAll, Admin) => 200,
            (Route::PushToAll, _) => 403,
            (Route::Upload, Viewer) => 403,
            (Route::Upload, _) => 200,
            (Route::LoadLocalToStation, Viewer | OtherDistrict) => 403,
            (Route::LoadLocalToStation, _) => 200,
            (Route::LoadProvincialToAll, Admin) => 200,
            (Route::LoadProvincialToAll, _) => 403,
            (Route::ListCap, _) => 200,
            (Route::ApproveBulletin | Route::Audit, Admin) => 200,
            (Route::ApproveBulletin | Route::Audit, _) => 403,
            // Only an admin speaks live (no district role yet).
            (Route::StartLive, Admin) => 200,
            (Route::StartLive, _) => 403,
            // Only the role that started a broadcast sends its audio; none is on air
            // here, so every operator hears that (who may list them anyway).
            (Route::LiveAudio, Admin | Viewer | District | OtherDistrict) => 404,
            (Route::LiveAudio, _) => 403,
            (Route::ListLive, _) => 200,
        }
    }

    fn is_station_route(self) -> bool {
        matches!(
            self,
            Route::Manifest
                | Route::Heartbeat
                | Route::EventStream
                | Route::EventPoll
                | Route::Delivery
                | Route::Playlog
                | Route::StationLive
        )
    }
}

/// A CAP alert for tri-ton's area, a new identifier each time.
fn cap_alert() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        r#"<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><identifier>MATRIX-{n}</identifier>
<sender>matrix@test</sender><sent>2026-12-01T06:00:00+07:00</sent><status>Actual</status>
<msgType>Alert</msgType><scope>Public</scope><info><language>vi</language><category>Met</category>
<event>Lũ</event><urgency>Immediate</urgency><severity>Severe</severity><certainty>Observed</certainty>
<expires>2026-12-01T12:00:00+07:00</expires><headline>Cảnh báo</headline>
<area><areaDesc>Tri Tôn</areaDesc><circle>10.42,105.0 5</circle></area></info></alert>"#
    )
}

const ROUTES: [Route; 27] = [
    Route::Manifest,
    Route::Heartbeat,
    Route::AudioBlob,
    Route::LibraryEntry,
    Route::Upload,
    Route::LoadLocalToStation,
    Route::LoadProvincialToAll,
    Route::Status,
    Route::PushToStation,
    Route::PushToAll,
    Route::ListBulletins,
    Route::ShowBulletin,
    Route::CancelBulletin,
    Route::EventStream,
    Route::EventPoll,
    Route::Delivery,
    Route::Playlog,
    Route::ReadPlaylog,
    Route::Report,
    Route::PostCap,
    Route::ListCap,
    Route::ApproveBulletin,
    Route::Audit,
    Route::StartLive,
    Route::ListLive,
    Route::LiveAudio,
    Route::StationLive,
];

/// Routes whose callers are checked by their own tests instead of a matrix row, and why.
const COVERED_ELSEWHERE: [(&str, &str, &str); 4] = [
    (
        "POST",
        "/api/v1/enrol/offer",
        "no token by design: the enrolment code is the credential (field_enrol)",
    ),
    (
        "POST",
        "/api/v1/enrol/claim",
        "no token by design: the enrolment code is the credential (field_enrol)",
    ),
    ("GET", "/metrics", "admin/viewer 200, district 403, none 401 (field_metrics)"),
    ("GET", "/api/v1/alerts", "operator roles (field_alerts)"),
];

/// The matrix covers every route the router serves, and names none it does not: a new
/// route cannot be forgotten here.
#[test]
fn the_matrix_covers_exactly_the_routers_routes() {
    let served: BTreeSet<(&str, &str)> = loa::central::route_list().into_iter().collect();
    let mut covered: BTreeSet<(&str, &str)> = ROUTES.iter().map(|r| r.endpoint()).collect();
    covered.extend(COVERED_ELSEWHERE.iter().map(|(method, path, _)| (*method, *path)));
    let missing: Vec<_> = served.difference(&covered).collect();
    let unknown: Vec<_> = covered.difference(&served).collect();
    assert!(missing.is_empty(), "routes with no row in the matrix: {missing:?}");
    assert!(unknown.is_empty(), "rows for routes the router does not serve: {unknown:?}");
    assert_eq!(served.len(), loa::central::route_list().len(), "a route registered twice");
}

const PROVINCIAL_ONE: &str = r#"layer = "provincial"

[[item]]
id = "ban-tin"
title = "Bản tin"
audio = "audio/a.wav"
cron = "30 5 * * *"
"#;

fn heartbeat(from: &str) -> Heartbeat {
    Heartbeat {
        manifest_version: None,
        clock_offset_ms: None,
        ready_until: None,
        missing_bytes: 0,
        disk_free_bytes: None,
        now_playing: Some(format!("sent-by-{from}")),
        sink_health: "ok".into(),
        sent_at: t0(),
        clock_step: None,
        clock_synchronized: None,
        central_time: false,
        output_failed: None,
    }
}

async fn send(fleet: &Fleet, route: Route, who: Who) -> (u16, String) {
    let url = &fleet.central.url;
    let client = reqwest::Client::new();
    let sha = &fleet.audio_sha;
    let load = |source: &str, to: Target| LoadScheduleRequest {
        origin: "matrix.toml".into(),
        source: source.into(),
        audio: [("audio/a.wav".to_string(), sha.clone())].into_iter().collect(),
        to,
    };
    let request = match route {
        Route::Manifest => client.get(format!("{url}/api/v1/station/manifest")),
        Route::Heartbeat => client
            .post(format!("{url}/api/v1/station/heartbeat"))
            .json(&heartbeat(&format!("{who:?}"))),
        Route::AudioBlob => client.get(format!("{url}/api/v1/audio/{sha}")),
        Route::LibraryEntry => client.get(format!("{url}/api/v1/library/{sha}")),
        Route::Upload => client
            .put(format!("{url}/api/v1/audio?title=matrix"))
            .body(loa::testing::wav_bytes(0.3, 550.0, 0.3)),
        Route::LoadLocalToStation => client
            .post(format!("{url}/api/v1/schedules"))
            .json(&load(LOCAL, Target::Stations(vec!["tri-ton".into()]))),
        Route::LoadProvincialToAll => {
            client.post(format!("{url}/api/v1/schedules")).json(&load(PROVINCIAL_ONE, Target::All))
        }
        Route::Status => client.get(format!("{url}/api/v1/status")),
        Route::PushToStation => client
            .post(format!("{url}/api/v1/bulletins"))
            .json(&fleet.push_request(Target::Stations(vec!["tri-ton".into()]))),
        Route::PushToAll => {
            client.post(format!("{url}/api/v1/bulletins")).json(&fleet.push_request(Target::All))
        }
        Route::ListBulletins => client.get(format!("{url}/api/v1/bulletins")),
        Route::ShowBulletin => client.get(format!("{url}/api/v1/bulletins/{}", fleet.bulletin_id)),
        Route::CancelBulletin => {
            // A fresh bulletin per row: a cancelled one cannot be cancelled again.
            let id = fleet.push_as_admin().await;
            client.post(format!("{url}/api/v1/bulletins/{id}/cancel"))
        }
        Route::EventStream => client.get(format!("{url}/api/v1/station/events")),
        Route::EventPoll => client.get(format!("{url}/api/v1/station/events/poll?after=0")),
        Route::Delivery => {
            client.post(format!("{url}/api/v1/station/bulletins/delivery")).json(&DeliveryReport {
                bulletin_id: fleet.bulletin_id.clone(),
                state: DeliveryState::Delivered,
                at: t0(),
                latency_ms: None,
                reason: None,
                reason_code: None,
            })
        }
        Route::Playlog => client.post(format!("{url}/api/v1/station/playlog")).json(&fleet.batch),
        Route::ReadPlaylog => client.get(format!("{url}/api/v1/playlog")),
        Route::Report => client.get(format!("{url}/api/v1/report?date=2026-12-01")),
        Route::PostCap => client.post(format!("{url}/api/v1/cap")).body(cap_alert()),
        Route::ListCap => client.get(format!("{url}/api/v1/cap")),
        Route::ApproveBulletin => {
            // A fresh CAP bulletin waiting for approval per row.
            let posted = client
                .post(format!("{url}/api/v1/cap"))
                .bearer_auth(&fleet.central.admin)
                .body(cap_alert())
                .send()
                .await
                .unwrap();
            assert_eq!(posted.status(), 201);
            let answer: loa::protocol::CapAnswer = posted.json().await.unwrap();
            let id = answer.outcomes[0].bulletin_id.clone().expect("a waiting bulletin");
            client.post(format!("{url}/api/v1/bulletins/{id}/approve"))
        }
        Route::Audit => client.get(format!("{url}/api/v1/audit")),
        Route::StartLive => {
            client.post(format!("{url}/api/v1/live")).json(&loa::protocol::live::StartLiveRequest {
                title: "Matrix".into(),
                to: Target::All,
                priority: loa::protocol::BulletinPriority::Emergency,
            })
        }
        Route::ListLive => client.get(format!("{url}/api/v1/live")),
        Route::LiveAudio => {
            client.put(format!("{url}/api/v1/live/matrix/audio")).body(vec![0u8; 16])
        }
        Route::StationLive => client.get(format!("{url}/api/v1/station/live/matrix")),
    };
    let request = match fleet.token(who) {
        Some(token) => request.bearer_auth(token),
        None => request,
    };
    let response = request.send().await.expect("central answers on loopback");
    let status = response.status().as_u16();
    if matches!(route, Route::EventStream) && status == 200 {
        // The stream stays open: its status and content type are the answer.
        let kind = response.headers().get("content-type").cloned();
        return (status, format!("{kind:?}"));
    }
    (status, response.text().await.unwrap_or_default())
}

/// What a successful answer may reveal to `who`, beyond its status.
fn check_body(route: Route, who: Who, body: &str, fleet_bulletin: &str) -> Result<(), String> {
    match (route, who) {
        (Route::Manifest, Who::Station | Who::OtherStation) => {
            let envelope: SignedEnvelope =
                serde_json::from_str(body).map_err(|e| format!("not an envelope: {e}"))?;
            let payload = base64::engine::general_purpose::STANDARD
                .decode(&envelope.payload)
                .map_err(|e| e.to_string())?;
            let json: serde_json::Value =
                serde_json::from_slice(&payload).map_err(|e| e.to_string())?;
            let own = if who == Who::Station { "tri-ton" } else { "chau-doc" };
            if json["station_id"] != own {
                return Err(format!("a {who:?} token got the manifest of {}", json["station_id"]));
            }
        }
        (Route::Status, _) => {
            let fleet: FleetStatus = serde_json::from_str(body).map_err(|e| e.to_string())?;
            let mut ids: Vec<&str> = fleet.stations.iter().map(|s| s.id.as_str()).collect();
            ids.sort();
            let visible: &[&str] = match who {
                Who::District => &["tri-ton"],
                Who::OtherDistrict => &["chau-doc"],
                _ => &["chau-doc", "tri-ton"],
            };
            if ids != visible {
                return Err(format!("{who:?} sees stations {ids:?}, expected {visible:?}"));
            }
        }
        (Route::ReadPlaylog, _) => {
            let records: Vec<Record> = serde_json::from_str(body).map_err(|e| e.to_string())?;
            let stations: Vec<&str> = records.iter().map(|r| r.station.as_str()).collect();
            let expected: &[&str] = if who == Who::OtherDistrict { &[] } else { &["tri-ton"] };
            if stations != expected {
                return Err(format!("{who:?} sees records of {stations:?}, expected {expected:?}"));
            }
        }
        (Route::Report, _) => {
            let report: DailyReport = serde_json::from_str(body).map_err(|e| e.to_string())?;
            let forbidden = match who {
                Who::District => Some("chau-doc"),
                Who::OtherDistrict => Some("tri-ton"),
                _ => None,
            };
            if let Some(row) = report.rows.iter().find(|r| Some(r.station.as_str()) == forbidden) {
                return Err(format!("{who:?} sees a report row of {}", row.station));
            }
            // The day's bulletins (central's clock is on the report's day): the same rule.
            if let Some(row) =
                report.bulletins.iter().find(|r| Some(r.station.as_str()) == forbidden)
            {
                return Err(format!("{who:?} sees a bulletin report row of {}", row.station));
            }
            let shown = report
                .bulletins
                .iter()
                .any(|r| r.bulletin_id == fleet_bulletin && r.station == "tri-ton");
            if shown != (who != Who::OtherDistrict) {
                return Err(format!("{who:?} sees the bulletin to tri-ton in the report: {shown}"));
            }
        }
        (Route::ListBulletins, _) => {
            let list: Vec<loa::protocol::BulletinInfo> =
                serde_json::from_str(body).map_err(|e| e.to_string())?;
            let targets: Vec<&str> = list
                .iter()
                .flat_map(|b| b.stations.iter().map(|s| s.station_id.as_str()))
                .collect();
            let shown = list.iter().any(|b| b.doc.id == fleet_bulletin);
            let fine = match who {
                Who::OtherDistrict => !shown && targets.iter().all(|t| *t == "chau-doc"),
                Who::District => shown && targets.iter().all(|t| *t == "tri-ton"),
                _ => shown,
            };
            if !fine {
                return Err(format!(
                    "{who:?} lists bulletins to {targets:?} (ours shown: {shown})"
                ));
            }
        }
        (Route::PostCap, _) => {
            let answer: loa::protocol::CapAnswer =
                serde_json::from_str(body).map_err(|e| e.to_string())?;
            if answer.outcomes.first().map(|o| o.decision)
                != Some(loa::protocol::CapDecision::Waiting)
            {
                return Err(format!("the alert should wait for approval: {answer:?}"));
            }
        }
        (Route::ListCap, _) => {
            let records: Vec<loa::protocol::AlertRecord> =
                serde_json::from_str(body).map_err(|e| e.to_string())?;
            // Every alert here reaches tri-ton only: another district sees none of them.
            if (who == Who::OtherDistrict) != records.is_empty() {
                return Err(format!("{who:?} sees {} alert records", records.len()));
            }
        }
        (Route::EventStream, _) if !body.contains("text/event-stream") => {
            return Err(format!("not an event stream: {body}"));
        }
        (Route::EventPoll, Who::Station | Who::OtherStation) => {
            let events: BulletinEvents = serde_json::from_str(body).map_err(|e| e.to_string())?;
            // Only bulletins for the caller's own station: tri-ton's own test bulletin
            // never reaches chau-doc.
            let own = if who == Who::Station { "tri-ton" } else { "chau-doc" };
            let mut ids = Vec::new();
            for event in &events.events {
                let json = payload_json(&event.envelope);
                let targets = json["targets"].as_array().cloned().unwrap_or_default();
                // A `--to all` bulletin is signed for every station, without a list.
                let to_all = json["to_all"].as_bool() == Some(true);
                if !to_all && !targets.iter().any(|t| t == own) {
                    return Err(format!("{who:?} received an event for {targets:?}"));
                }
                ids.push(json["id"].as_str().unwrap_or_default().to_string());
            }
            if ids.iter().any(String::is_empty)
                || (who == Who::Station) != ids.contains(&fleet_bulletin.to_string())
            {
                return Err(format!("{who:?} received bulletins {ids:?}"));
            }
        }
        _ => {}
    }
    Ok(())
}

#[tokio::test]
async fn every_route_answers_every_caller_as_its_role_allows() {
    let fleet = Fleet::start().await;
    let mut failures = Vec::new();
    let mut rows = 0;
    for route in ROUTES {
        for who in EVERYONE {
            rows += 1;
            let case = format!("{} as {who:?}", route.name());
            let expected = route.expected(who);
            let (status, body) = send(&fleet, route, who).await;
            if status != expected {
                failures.push(format!("{case}: got {status}, expected {expected}: {body}"));
                continue;
            }
            if status == 200 || status == 201 || status == 204 {
                if let Err(why) = check_body(route, who, &body, &fleet.bulletin_id) {
                    failures.push(format!("{case}: {why}"));
                }
            } else if !body.contains("\"error\"") {
                failures.push(format!("{case}: refusal without a JSON error: {body:?}"));
            }
        }
    }
    assert_eq!(rows, ROUTES.len() * EVERYONE.len());
    assert!(
        failures.is_empty(),
        "{} of {rows} rows failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    // A heartbeat is filed under the token's station, whatever it claims: the other
    // station's beat never lands on tri-ton.
    let (_, body) = send(&fleet, Route::Status, Who::Admin).await;
    let status: FleetStatus = serde_json::from_str(&body).unwrap();
    let playing = |id: &str| {
        status
            .stations
            .iter()
            .find(|s| s.id == id)
            .and_then(|s| s.heartbeat.as_ref())
            .and_then(|h| h.now_playing.clone())
    };
    assert_eq!(playing("tri-ton").as_deref(), Some("sent-by-Station"));
    assert_eq!(playing("chau-doc").as_deref(), Some("sent-by-OtherStation"));
}

#[tokio::test]
async fn malformed_authorization_headers_are_refused() {
    let fleet = Fleet::start().await;
    let station = fleet.token(Who::Station).unwrap();
    let admin = fleet.token(Who::Admin).unwrap();
    let cases: Vec<(&str, String, &str)> = vec![
        ("token without Bearer", station.clone(), "/api/v1/station/manifest"),
        ("basic scheme", format!("Basic {station}"), "/api/v1/station/manifest"),
        ("empty bearer", "Bearer ".into(), "/api/v1/station/manifest"),
        ("token prefix only", format!("Bearer {}", &station[..8]), "/api/v1/station/manifest"),
        ("token with extra byte", format!("Bearer {station}x"), "/api/v1/station/manifest"),
        (
            "sha256 of the token",
            format!("Bearer {}", loa::store::hash_token(&admin)),
            "/api/v1/status",
        ),
        ("admin token without Bearer", admin.clone(), "/api/v1/status"),
    ];
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    for (name, header, path) in &cases {
        let response = client
            .get(format!("{}{path}", fleet.central.url))
            .header("authorization", header)
            .send()
            .await
            .unwrap();
        if response.status() != 401 {
            failures.push(format!("{name}: got {}", response.status()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

// ---------------------------------------------------------------------------------------
// Signatures

fn payload_json(envelope: &SignedEnvelope) -> serde_json::Value {
    let bytes = base64::engine::general_purpose::STANDARD.decode(&envelope.payload).unwrap();
    serde_json::from_slice(&bytes).unwrap()
}

fn with_payload(envelope: &SignedEnvelope, json: &serde_json::Value) -> SignedEnvelope {
    SignedEnvelope {
        payload: base64::engine::general_purpose::STANDARD
            .encode(serde_json::to_vec(json).unwrap()),
        ..envelope.clone()
    }
}

/// What a row expects from [`verify_manifest`].
#[derive(Debug)]
enum Expect {
    Accepted(u64),
    Refused(fn(&SigningError) -> bool),
}

struct SigCase {
    name: &'static str,
    key: PublicKey,
    envelope: SignedEnvelope,
    station: &'static str,
    accepted: Option<u64>,
    now: DateTime<Utc>,
    expect: Expect,
}

async fn fetch_envelope(central: &Central, token: &str) -> SignedEnvelope {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/station/manifest", central.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response.json().await.unwrap()
}

#[tokio::test]
async fn forged_foreign_zero_replayed_expired_and_rolled_back_manifests_are_refused() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let other = central.add_station("chau-doc", "Châu Đốc");
    let v1 = fetch_envelope(&central, &token).await;
    central.provincial().await;
    let v2 = fetch_envelope(&central, &token).await;
    let theirs = fetch_envelope(&central, &other).await;
    let key = central.public_key();
    let now = t0();
    let json = payload_json(&v2);
    assert_eq!(json["version"], 2);
    let valid_until: DateTime<Utc> = serde_json::from_value(json["valid_until"].clone()).unwrap();

    let mut forged_version = json.clone();
    forged_version["version"] = serde_json::json!(1_000_000);
    let mut forged_schedule = json.clone();
    forged_schedule["schedules"][0]["source"] = serde_json::json!("layer = \"provincial\"\n");
    let mut forged_expiry = json.clone();
    forged_expiry["valid_until"] = serde_json::json!("2099-01-01T00:00:00Z");
    let attacker = ProvinceKey::from_seed([7; 32]);
    let mut zero_sig = v2.clone();
    zero_sig.signature = "00".repeat(64);
    let mut short_sig = v2.clone();
    short_sig.signature.truncate(100);
    let mut not_hex = v2.clone();
    not_hex.signature = "zz".repeat(64);
    let mut bad_base64 = v2.clone();
    bad_base64.payload = "%%% not base64 %%%".into();
    let mut relabelled = v2.clone();
    relabelled.kind = DocumentKind::Bulletin;
    // The province's own signature, but over a bulletin: domain separation must refuse it
    // as a manifest.
    let mut cross_kind = attacker.sign(DocumentKind::Bulletin, &json).unwrap();
    cross_kind.kind = DocumentKind::Manifest;
    let signed_nonsense =
        central.state.key.sign(DocumentKind::Manifest, &serde_json::json!({"hello": 1})).unwrap();
    let mut signed_as_bulletin = central.state.key.sign(DocumentKind::Bulletin, &json).unwrap();
    signed_as_bulletin.kind = DocumentKind::Manifest;

    let cases = vec![
        SigCase {
            name: "genuine v2",
            key,
            envelope: v2.clone(),
            station: "tri-ton",
            accepted: Some(1),
            now,
            expect: Expect::Accepted(2),
        },
        SigCase {
            name: "genuine v2 fetched again (same version)",
            key,
            envelope: v2.clone(),
            station: "tri-ton",
            accepted: Some(2),
            now,
            expect: Expect::Accepted(2),
        },
        SigCase {
            name: "forged: version raised, signature kept",
            key,
            envelope: with_payload(&v2, &forged_version),
            station: "tri-ton",
            accepted: None,
            now,
            expect: Expect::Refused(|e| matches!(e, SigningError::BadSignature)),
        },
        SigCase {
            name: "forged: schedule replaced, signature kept",
            key,
            envelope: with_payload(&v2, &forged_schedule),
            station: "tri-ton",
            accepted: None,
            now,
            expect: Expect::Refused(|e| matches!(e, SigningError::BadSignature)),
        },
        SigCase {
            name: "forged: expiry extended, signature kept",
            key,
            envelope: with_payload(&v2, &forged_expiry),
            station: "tri-ton",
            accepted: None,
            now,
            expect: Expect::Refused(|e| matches!(e, SigningError::BadSignature)),
        },
        SigCase {
            name: "wrong key: signed by another key",
            key,
            envelope: attacker.sign(DocumentKind::Manifest, &forged_version).unwrap(),
            station: "tri-ton",
            accepted: None,
            now,
            expect: Expect::Refused(|e| matches!(e, SigningError::BadSignature)),
        },
        SigCase {
            name: "wrong key: station pinned to the attacker's key",
            key: attacker.public(),
            envelope: v2.clone(),
            station: "tri-ton",
            accepted: None,
            now,
            expect: Expect::Refused(|e| matches!(e, SigningError::BadSignature)),
        },
        SigCase {
            name: "all-zero signature",
            key,
            envelope: zero_sig,
            station: "tri-ton",
            accepted: None,
            now,
            expect: Expect::Refused(|e| matches!(e, SigningError::ZeroSignature)),
        },
        SigCase {
            name: "signature too short",
            key,
            envelope: short_sig,
            station: "tri-ton",
            accepted: None,
            now,
            expect: Expect::Refused(|e| matches!(e, SigningError::SignatureEncoding)),
        },
        SigCase {
            name: "signature not hex",
            key,
            envelope: not_hex,
            station: "tri-ton",
            accepted: None,
            now,
            expect: Expect::Refused(|e| matches!(e, SigningError::SignatureEncoding)),
        },
        SigCase {
            name: "payload not base64",
            key,
            envelope: bad_base64,
            station: "tri-ton",
            accepted: None,
            now,
            expect: Expect::Refused(|e| matches!(e, SigningError::PayloadEncoding(_))),
        },
        SigCase {
            name: "manifest relabelled as a bulletin",
            key,
            envelope: relabelled,
            station: "tri-ton",
            accepted: None,
            now,
            expect: Expect::Refused(|e| matches!(e, SigningError::WrongKind { .. })),
        },
        SigCase {
            name: "province's bulletin signature passed off as a manifest",
            key,
            envelope: signed_as_bulletin,
            station: "tri-ton",
            accepted: None,
            now,
            expect: Expect::Refused(|e| matches!(e, SigningError::BadSignature)),
        },
        SigCase {
            name: "attacker's bulletin signature passed off as a manifest",
            key,
            envelope: cross_kind,
            station: "tri-ton",
            accepted: None,
            now,
            expect: Expect::Refused(|e| matches!(e, SigningError::BadSignature)),
        },
        SigCase {
            name: "signed, but not a manifest",
            key,
            envelope: signed_nonsense,
            station: "tri-ton",
            accepted: None,
            now,
            expect: Expect::Refused(|e| matches!(e, SigningError::Payload { .. })),
        },
        SigCase {
            name: "replay: another station's genuine manifest",
            key,
            envelope: theirs,
            station: "tri-ton",
            accepted: None,
            now,
            expect: Expect::Refused(|e| matches!(e, SigningError::WrongStation { .. })),
        },
        SigCase {
            name: "replay/rollback: genuine v1 after v2",
            key,
            envelope: v1.clone(),
            station: "tri-ton",
            accepted: Some(2),
            now,
            expect: Expect::Refused(|e| {
                matches!(e, SigningError::Rollback { accepted: 2, found: 1 })
            }),
        },
        SigCase {
            name: "expired: genuine v2 one second after valid_until",
            key,
            envelope: v2.clone(),
            station: "tri-ton",
            accepted: None,
            now: valid_until + chrono::Duration::seconds(1),
            expect: Expect::Refused(|e| matches!(e, SigningError::Expired { .. })),
        },
    ];
    let mut failures = Vec::new();
    for case in &cases {
        let got = verify_manifest(&case.key, &case.envelope, case.station, case.accepted, case.now);
        let ok = match (&case.expect, &got) {
            (Expect::Accepted(version), Ok(m)) => m.manifest.version == *version,
            (Expect::Refused(matches), Err(e)) => matches(e),
            _ => false,
        };
        if !ok {
            failures.push(format!(
                "{}: expected {:?}, got {:?}",
                case.name,
                case.expect,
                got.map(|m| m.manifest.version)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

#[test]
fn weak_public_keys_are_never_pinned() {
    // All-zero, the identity point and a small-order point: keys under which forged
    // signatures could verify.
    let identity = {
        let mut b = [0u8; 32];
        b[0] = 1;
        b
    };
    let small_order =
        hex::decode("c7176a703d4dd84fba3c0b760d10670f2a2053fa2c39ccc64ec7fd7792ac03fa").unwrap();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("all-zero key", vec![0u8; 32]),
        ("identity point", identity.to_vec()),
        ("small-order point", small_order),
    ];
    for (name, bytes) in cases {
        let bytes: [u8; 32] = bytes.try_into().unwrap();
        let got = PublicKey::from_bytes(&bytes);
        assert!(got.is_err(), "{name}: accepted as a province key");
        let got = PublicKey::from_hex(&hex::encode(bytes));
        assert!(got.is_err(), "{name}: accepted from hex");
    }
}

/// A station whose connection is hijacked (plain HTTP, DNS spoofed, a rogue box on the
/// LAN) gets an impostor "central" that serves a forged manifest: the station refuses it
/// and keeps the genuine one it holds.
#[tokio::test]
async fn an_impostor_central_cannot_make_a_station_accept_a_forged_manifest() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    central.provincial().await;
    let cache = tempfile::tempdir().unwrap();
    let mut genuine = central.syncer("tri-ton", &token, cache.path());
    let held = genuine.fetch_manifest(Duration::ZERO).await.unwrap().unwrap();
    drop(genuine);

    let mut json = payload_json(&held.envelope);
    json["version"] = serde_json::json!(held.manifest.version + 1);
    json["schedules"] = serde_json::json!([]);
    let forged = ProvinceKey::from_seed([9; 32]).sign(DocumentKind::Manifest, &json).unwrap();
    let body = serde_json::to_vec(&forged).unwrap();
    let impostor = axum::Router::new().route(
        "/api/v1/station/manifest",
        axum::routing::get(move || {
            let body = body.clone();
            async move { ([("content-type", "application/json"), ("etag", "\"v99\"")], body) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, impostor).await });

    let mut hijacked =
        central.syncer_via(&format!("http://{addr}"), "tri-ton", &token, cache.path());
    assert_eq!(hijacked.current().unwrap().manifest.version, held.manifest.version);
    let err = hijacked.fetch_manifest(Duration::ZERO).await.unwrap_err();
    assert!(err.to_string().contains("signature"), "{err}");
    assert_eq!(hijacked.current().unwrap().manifest, held.manifest, "the genuine manifest stays");
    // And after a restart the forged one was never stored.
    drop(hijacked);
    let reopened = central.syncer("tri-ton", &token, cache.path());
    assert_eq!(reopened.current().unwrap().manifest, held.manifest);
    server.abort();
}

// ---------------------------------------------------------------------------------------
// Uploads and names

#[tokio::test]
async fn bad_uploads_and_names_change_nothing() {
    let fleet = Fleet::start().await;
    let central = &fleet.central;
    let admin = central.admin.clone();
    let client = reqwest::Client::new();
    let library_before = std::fs::read_dir(central.state.audio_dir()).unwrap().count();
    let mut failures = Vec::new();

    // (name, body, expected status, text the error must contain)
    let mut zip = b"PK\x03\x04".to_vec();
    zip.extend(vec![0u8; 4000]);
    let mut truncated_header = loa::testing::wav_bytes(0.2, 440.0, 0.3);
    truncated_header.truncate(20);
    let uploads: Vec<(&str, Vec<u8>, u16, &str)> = vec![
        ("too large: one byte over 1 MiB", vec![0u8; 1024 * 1024 + 1], 413, "upload_limit_mb"),
        (
            "not audio: plain text",
            b"#!/bin/sh\nrm -rf /\n".to_vec(),
            400,
            "not a supported audio file",
        ),
        ("not audio: zip archive", zip, 400, "upload refused"),
        ("not audio: truncated wav header", truncated_header, 400, "upload refused"),
        ("empty", Vec::new(), 400, "empty"),
    ];
    for (name, body, expected, text) in uploads {
        let response = central.upload(&admin, body, "x").await;
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        if status != expected || !body.contains(text) {
            failures.push(format!(
                "upload {name}: got {status} {body:?}, expected {expected} with {text:?}"
            ));
        }
    }

    // Titles are labels: a path in one goes nowhere near the file system.
    let response = central
        .upload(&admin, loa::testing::wav_bytes(0.2, 300.0, 0.3), "..%2F..%2Fetc%2Fpasswd")
        .await;
    assert_eq!(response.status(), 200, "a title is only a label");
    let info: loa::protocol::AudioInfo = response.json().await.unwrap();
    assert_eq!(info.title, "../../etc/passwd");
    assert!(central.state.audio_dir().join(&info.sha256).is_file());

    // Paths where a sha256 belongs.
    for (name, path) in [
        ("dot-dot encoded", "..%2F..%2Fcentral.sqlite"),
        ("dot-dot-encoded key file", "%2E%2E%2Fprovince.key"),
        ("absolute", "%2Fetc%2Fpasswd"),
        ("uppercase hex", &fleet.audio_sha.to_uppercase()),
        ("sha256 plus suffix", &format!("{}.part", fleet.audio_sha)),
        ("unknown sha256", &"0".repeat(64)),
    ] {
        for route in ["audio", "library"] {
            let response = client
                .get(format!("{}/api/v1/{route}/{path}", central.url))
                .bearer_auth(&admin)
                .send()
                .await
                .unwrap();
            let status = response.status().as_u16();
            if status != 400 && status != 404 {
                failures.push(format!("GET {route}/{name}: got {status}"));
            }
        }
    }

    // Schedule names and audio mappings.
    let sha = fleet.audio_sha.as_str();
    let to = || Target::Stations(vec!["tri-ton".into()]);
    for (name, origin, audio, expected) in [
        ("origin with ../", "../../etc/cron.d/x", sha, 400u16),
        ("origin absolute", "/etc/x.toml", sha, 400),
        ("origin with backslash", "..\\x.toml", sha, 400),
        ("origin with newline", "x\n.toml", sha, 400),
        ("origin is ..", "..", sha, 400),
        ("audio mapped to a path", "x.toml", "../../central.sqlite", 400),
        ("audio not in the library", "x.toml", &"ab".repeat(32), 400),
    ] {
        let response = central.load(&admin, origin, LOCAL, &[("audio/a.wav", audio)], to()).await;
        let status = response.status().as_u16();
        if status != expected {
            let body = response.text().await.unwrap();
            failures.push(format!("load {name}: got {status} {body}, expected {expected}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert_eq!(
        std::fs::read_dir(central.state.tmp_dir()).unwrap().count(),
        0,
        "no temporary files left"
    );
    assert_eq!(
        std::fs::read_dir(central.state.audio_dir()).unwrap().count(),
        library_before + 1,
        "only the one good upload entered the library"
    );
}

// ---------------------------------------------------------------------------------------
// Rotation and revocation

#[tokio::test]
async fn a_rotated_station_token_and_a_revoked_operator_are_refused_at_once() {
    let central = Central::start().await;
    let old = central.add_station("tri-ton", "Tri Tôn");
    let store = central.state.store.as_ref();
    let district =
        loa::central::add_operator(store, &Role::District("Tri Tôn".into()), "cán bộ huyện")
            .unwrap();
    let get = |path: &'static str, token: String| {
        let url = format!("{}{path}", central.url);
        async move { reqwest::Client::new().get(url).bearer_auth(token).send().await.unwrap().status() }
    };
    assert_eq!(get("/api/v1/station/manifest", old.clone()).await, 200);
    let new = loa::central::rotate_station_token(store, "tri-ton").unwrap();
    assert_ne!(new, old);
    assert_eq!(get("/api/v1/station/manifest", old).await, 401, "old station token still works");
    assert_eq!(get("/api/v1/station/manifest", new).await, 200);
    assert!(matches!(
        loa::central::rotate_station_token(store, "no-such"),
        Err(loa::central::CentralError::NoSuchStation(_))
    ));

    assert_eq!(get("/api/v1/status", district.clone()).await, 200);
    assert!(matches!(
        loa::central::revoke_operators(store, " "),
        Err(loa::central::CentralError::EmptyLabel)
    ));
    assert_eq!(loa::central::revoke_operators(store, "cán bộ huyện").unwrap(), 1);
    assert_eq!(get("/api/v1/status", district).await, 401, "revoked operator still works");
    assert_eq!(get("/api/v1/status", central.admin.clone()).await, 200, "others unaffected");
}

#[tokio::test]
async fn after_a_key_rotation_stations_pinned_to_the_new_key_get_a_re_signed_manifest() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    central.provincial().await;
    let old_key = central.public_key();
    let cache = tempfile::tempdir().unwrap();
    let mut station = central.syncer("tri-ton", &token, cache.path());
    let before = station.fetch_manifest(Duration::ZERO).await.unwrap().unwrap();

    let parts = central.stop().await;
    let new_hex = loa::central::rotate_key(&parts.1.data_dir, 1_700_000_000).unwrap();
    assert_ne!(new_hex, old_key.to_hex());
    assert!(parts.1.data_dir.join("province.key.old-1700000000").is_file());
    let central = Central::restart(parts).await;
    assert_eq!(central.public_key().to_hex(), new_hex);

    // A station still pinned to the old key refuses everything and keeps what it has.
    let mut config = loa::station::sync::SyncConfig::new(
        &central.url,
        &token,
        "tri-ton",
        old_key,
        cache.path().to_path_buf(),
    );
    config.long_poll = Duration::from_secs(5);
    let mut pinned_old = loa::station::sync::Syncer::new(config, central.clock.clone()).unwrap();
    let err = pinned_old.fetch_manifest(Duration::ZERO).await.unwrap_err();
    assert!(err.to_string().contains("signature"), "{err}");
    assert_eq!(pinned_old.current().unwrap().manifest, before.manifest);

    // A station re-pinned to the new key accepts a newer, re-signed version.
    let mut repinned = central.syncer("tri-ton", &token, cache.path());
    let got = repinned.fetch_manifest(Duration::ZERO).await.unwrap().expect("re-signed manifest");
    assert!(got.manifest.version > before.manifest.version);
    assert_eq!(got.manifest.schedules, before.manifest.schedules);

    // The daily report still reads the manifests signed before the rotation.
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/report?date=2026-12-01", central.url))
        .bearer_auth(&central.admin)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    let report: DailyReport = serde_json::from_str(&text).unwrap();
    assert!(report.rows.iter().any(|r| r.item_id == "ban-tin-chieu"), "{text}");
}

/// Bulletins and cancel orders as central signs them, taken from the station's event
/// feed, against every forgery at the signature layer. (Replay and expiry of bulletins
/// are judged by the station's event client.)
#[tokio::test]
async fn forged_foreign_zero_and_cross_kind_bulletins_are_refused() {
    let fleet = Fleet::start().await;
    let central = &fleet.central;
    let cancel = reqwest::Client::new()
        .post(format!("{}/api/v1/bulletins/{}/cancel", central.url, fleet.bulletin_id))
        .bearer_auth(&central.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 200);
    let station = fleet.token(Who::Station).unwrap();
    let events: BulletinEvents =
        central.get_json("/api/v1/station/events/poll?after=0", &station).await;
    let find =
        |kind| events.events.iter().map(|e| e.envelope.clone()).find(|e| e.kind == kind).unwrap();
    let bulletin = find(DocumentKind::Bulletin);
    let order = find(DocumentKind::BulletinCancel);
    let key = central.public_key();
    let json = payload_json(&bulletin);
    assert_eq!(json["id"], fleet.bulletin_id.as_str());

    let mut retargeted = json.clone();
    retargeted["targets"] = serde_json::json!(["tri-ton", "chau-doc"]);
    let mut test_to_emergency = json.clone();
    test_to_emergency["priority"] = serde_json::json!("emergency");
    let mut longer = json.clone();
    longer["expires_at"] = serde_json::json!("2099-01-01T00:00:00Z");
    let attacker = ProvinceKey::from_seed([3; 32]);
    let mut zero = bulletin.clone();
    zero.signature = "00".repeat(64);
    let mut as_cancel = bulletin.clone();
    as_cancel.kind = DocumentKind::BulletinCancel;
    let mut order_as_bulletin = order.clone();
    order_as_bulletin.kind = DocumentKind::Bulletin;
    let manifest = central.state.key.sign(DocumentKind::Manifest, &json).unwrap();
    let mut manifest_as_bulletin = manifest.clone();
    manifest_as_bulletin.kind = DocumentKind::Bulletin;

    type Check = fn(&Result<Vec<u8>, SigningError>) -> bool;
    let ok: Check = |r| r.is_ok();
    let bad_sig: Check = |r| matches!(r, Err(SigningError::BadSignature));
    let wrong_kind: Check = |r| matches!(r, Err(SigningError::WrongKind { .. }));
    let cases: Vec<(&str, DocumentKind, SignedEnvelope, Check)> = vec![
        ("genuine bulletin", DocumentKind::Bulletin, bulletin.clone(), ok),
        ("genuine cancel order", DocumentKind::BulletinCancel, order.clone(), ok),
        (
            "forged: more targets",
            DocumentKind::Bulletin,
            with_payload(&bulletin, &retargeted),
            bad_sig,
        ),
        (
            "forged: test turned into emergency",
            DocumentKind::Bulletin,
            with_payload(&bulletin, &test_to_emergency),
            bad_sig,
        ),
        (
            "forged: expiry extended",
            DocumentKind::Bulletin,
            with_payload(&bulletin, &longer),
            bad_sig,
        ),
        (
            "wrong key",
            DocumentKind::Bulletin,
            attacker.sign(DocumentKind::Bulletin, &json).unwrap(),
            bad_sig,
        ),
        ("all-zero signature", DocumentKind::Bulletin, zero, |r| {
            matches!(r, Err(SigningError::ZeroSignature))
        }),
        ("bulletin relabelled as a cancel order", DocumentKind::BulletinCancel, as_cancel, bad_sig),
        (
            "cancel order relabelled as a bulletin",
            DocumentKind::Bulletin,
            order_as_bulletin,
            bad_sig,
        ),
        (
            "manifest signature relabelled as a bulletin",
            DocumentKind::Bulletin,
            manifest_as_bulletin,
            bad_sig,
        ),
        ("a manifest where a bulletin is expected", DocumentKind::Bulletin, manifest, wrong_kind),
        (
            "a bulletin where a cancel is expected",
            DocumentKind::BulletinCancel,
            bulletin.clone(),
            wrong_kind,
        ),
    ];
    let mut failures = Vec::new();
    for (name, kind, envelope, check) in &cases {
        let got = key.verify_envelope(*kind, envelope);
        if !check(&got) {
            failures.push(format!("{name}: got {:?}", got.map(|p| p.len())));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} rows failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );
}

/// The rotation commands as an administrator types them.
#[test]
fn rotation_commands_print_what_to_do_next() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("central");
    let data = data.to_str().unwrap();
    let loa = |args: &[&str]| {
        let out = support::process::command()
            .args(["central", "--data-dir", data])
            .args(args)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    };
    let (ok, init) = loa(&["init"]);
    assert!(ok, "{init}");
    let (ok, added) =
        loa(&["station", "add", "tri-ton", "--name", "Tri Tôn", "--district", "Tri Tôn"]);
    assert!(ok, "{added}");
    let (ok, text) = loa(&["station", "rotate-token", "tri-ton"]);
    assert!(ok && text.contains("old token refused"), "{text}");
    let new_token = text.lines().last().unwrap().trim();
    assert!(new_token.starts_with("loa_") && !added.contains(new_token), "{text}");
    let (ok, text) = loa(&["station", "rotate-token", "no-such"]);
    assert!(!ok && text.contains("no station \"no-such\""), "{text}");

    let (ok, text) = loa(&["token", "add", "--role", "viewer", "--label", "kiểm toán"]);
    assert!(ok, "{text}");
    let (ok, text) = loa(&["token", "revoke", "--label", "kiểm toán"]);
    assert!(ok && text.contains("revoked 1 token"), "{text}");
    let (ok, text) = loa(&["token", "revoke", "--label", "kiểm toán"]);
    assert!(!ok && text.contains("nothing revoked"), "{text}");

    let (ok, text) = loa(&["rotate-key"]);
    assert!(ok && text.contains("set province_key"), "{text}");
    let old_public = init.lines().find(|l| l.contains("public key")).unwrap();
    let new_public = text.lines().find(|l| l.contains("new public key")).unwrap();
    let hex_of = |line: &str| line.rsplit(' ').next().unwrap().trim().to_string();
    assert_ne!(hex_of(old_public), hex_of(new_public));
    assert_eq!(hex_of(new_public).len(), 64);
}

// ---------------------------------------------------------------------------------------
// Resources: what one request, one connection and one token may hold

use loa::central::body;

/// The routes that read a body, with the largest body each accepts and a valid body for
/// it (from a caller allowed to send it).
fn body_routes(fleet: &Fleet) -> Vec<(Route, usize, String, String)> {
    let station = fleet.token(Who::Station).unwrap();
    let admin = fleet.token(Who::Admin).unwrap();
    let load = LoadScheduleRequest {
        origin: "matrix.toml".into(),
        source: LOCAL.into(),
        audio: [("audio/a.wav".to_string(), fleet.audio_sha.clone())].into_iter().collect(),
        to: Target::Stations(vec!["tri-ton".into()]),
    };
    let delivery = DeliveryReport {
        bulletin_id: fleet.bulletin_id.clone(),
        state: DeliveryState::Delivered,
        at: t0(),
        latency_ms: None,
        reason: None,
        reason_code: None,
    };
    let json = |v: serde_json::Result<String>| v.unwrap();
    vec![
        (
            Route::Heartbeat,
            body::HEARTBEAT_LIMIT,
            station.clone(),
            json(serde_json::to_string(&heartbeat("limit"))),
        ),
        (
            Route::Delivery,
            body::DELIVERY_LIMIT,
            station.clone(),
            json(serde_json::to_string(&delivery)),
        ),
        (Route::Playlog, body::PLAYLOG_LIMIT, station, json(serde_json::to_string(&fleet.batch))),
        (
            Route::LoadLocalToStation,
            body::SCHEDULE_LIMIT,
            admin.clone(),
            json(serde_json::to_string(&load)),
        ),
        (
            Route::PushToStation,
            body::PUSH_LIMIT,
            admin,
            json(serde_json::to_string(
                &fleet.push_request(Target::Stations(vec!["tri-ton".into()])),
            )),
        ),
        // A CAP document padded with spaces after its root element (XML allows them).
        (Route::PostCap, body::CAP_LIMIT, fleet.token(Who::CapSource).unwrap(), cap_alert()),
    ]
}

#[tokio::test]
async fn every_route_takes_a_body_up_to_its_limit_and_refuses_one_byte_more() {
    let fleet = Fleet::start().await;
    let client = reqwest::Client::new();
    let mut failures = Vec::new();
    for (route, limit, token, valid) in body_routes(&fleet) {
        let url = format!("{}{}", fleet.central.url, route.endpoint().1);
        for (size, expect_413) in [(limit, false), (limit + 1, true)] {
            // The valid body padded with spaces (JSON allows them) to exactly `size`.
            let mut padded = valid.clone().into_bytes();
            padded.resize(size, b' ');
            let response = client.post(&url).bearer_auth(&token).body(padded).send().await.unwrap();
            let status = response.status().as_u16();
            let ok = if expect_413 { status == 413 } else { status < 300 };
            if !ok {
                let body = response.text().await.unwrap_or_default();
                failures.push(format!(
                    "{} with {size} bytes (limit {limit}): {status} {body}",
                    route.name()
                ));
            }
        }
    }
    // The upload's limit is central.toml's upload_limit_mb (1 MiB here).
    let response =
        fleet.central.upload(&fleet.central.admin, vec![0u8; 1024 * 1024 + 1], "x").await;
    if response.status() != 413 {
        failures.push(format!(
            "{} one byte over 1 MiB: {}",
            Route::Upload.name(),
            response.status()
        ));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[tokio::test]
async fn a_caller_without_a_valid_token_is_refused_before_central_reads_its_body() {
    let fleet = Fleet::start().await;
    let addr = fleet.central.addr;
    let mut routes: Vec<(&str, String)> = body_routes(&fleet)
        .into_iter()
        .map(|(r, ..)| {
            let (method, path) = r.endpoint();
            (method, path.to_string())
        })
        .collect();
    routes.push(("PUT", "/api/v1/audio".into()));
    for (method, path) in routes {
        for auth in ["", "Authorization: Bearer loa_00112233\r\n"] {
            // Two megabytes announced, none sent: central must answer at once.
            let head = format!(
                "{method} {path} HTTP/1.1\r\nHost: central\r\n{auth}Content-Type: application/json\r\nContent-Length: 2097152\r\n\r\n"
            );
            let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
            use tokio::io::{AsyncReadExt, AsyncWriteExt};
            stream.write_all(head.as_bytes()).await.unwrap();
            let mut answer = vec![0u8; 64];
            let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
                .await
                .unwrap_or_else(|_| panic!("{method} {path} ({auth:?}) waited for the body"))
                .unwrap();
            let line = String::from_utf8_lossy(&answer[..n]).to_string();
            assert!(line.starts_with("HTTP/1.1 401"), "{method} {path}: {line}");
        }
    }
}

#[tokio::test]
async fn an_idle_or_half_sent_connection_is_closed_after_the_header_timeout() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let central = Central::start_with(|c| c.header_timeout_secs = 2).await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    // How long central keeps `stream` open after `since` (when it last heard from it).
    let kept_for = |mut stream: tokio::net::TcpStream, since: std::time::Instant| async move {
        let mut sink = Vec::new();
        let read =
            tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut sink)).await;
        assert!(read.is_ok(), "still open after 10 s");
        since.elapsed()
    };
    // Nothing sent at all.
    let silent =
        (tokio::net::TcpStream::connect(central.addr).await.unwrap(), std::time::Instant::now());
    // Half a request.
    let mut half = tokio::net::TcpStream::connect(central.addr).await.unwrap();
    let half_at = std::time::Instant::now();
    half.write_all(b"GET /api/v1/status HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    // One whole request answered, then silence on the kept-alive connection.
    let mut after = tokio::net::TcpStream::connect(central.addr).await.unwrap();
    let request = format!(
        "GET /api/v1/station/manifest HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n"
    );
    after.write_all(request.as_bytes()).await.unwrap();
    let mut first = [0u8; 12];
    after.read_exact(&mut first).await.unwrap();
    let after_at = std::time::Instant::now();
    assert_eq!(&first, b"HTTP/1.1 200");
    let cases = [
        ("silent", silent),
        ("half a request", (half, half_at)),
        ("idle after a request", (after, after_at)),
    ];
    let kept = futures_util::future::join_all(
        cases.map(|(name, (stream, since))| async move { (name, kept_for(stream, since).await) }),
    )
    .await;
    for (name, kept) in kept {
        assert!(
            kept >= Duration::from_millis(1500) && kept <= Duration::from_secs(6),
            "{name}: kept {kept:?} with header_timeout_secs = 2"
        );
    }
}

async fn open_stream(central: &Central, token: &str) -> reqwest::Response {
    let response = reqwest::Client::new()
        .get(format!("{}/api/v1/station/events", central.url))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    response
}

/// Reads `response` until it ends; fails after `within`.
async fn ends_within(mut response: reqwest::Response, within: Duration) {
    let ended =
        tokio::time::timeout(within, async { while let Ok(Some(_)) = response.chunk().await {} })
            .await;
    assert!(ended.is_ok(), "the stream was still open after {within:?}");
}

#[tokio::test]
async fn one_token_holds_at_most_two_event_streams_and_the_newest_wins() {
    use loa::central::streams::Kind;
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let first = open_stream(&central, &token).await;
    let _second = open_stream(&central, &token).await;
    let _third = open_stream(&central, &token).await;
    ends_within(first, Duration::from_secs(5)).await;
    assert_eq!(central.state.streams.open_count("tri-ton", Kind::EventStream), 2);
    // A waiting long-poll counts too, by its own kind.
    let poll = |wait: u64| {
        reqwest::Client::new()
            .get(format!("{}/api/v1/station/manifest?wait={wait}", central.url))
            .bearer_auth(&token)
            .header("if-none-match", "\"v1\"")
            .send()
    };
    let (a, b) = (tokio::spawn(poll(30)), tokio::spawn(poll(30)));
    loa::testing::wait_until(Duration::from_secs(5), || {
        central.state.streams.open_count("tri-ton", Kind::LongPoll) == 2
    })
    .await;
    let c = tokio::spawn(poll(30));
    // The oldest of the three is answered at once (304), long before its 30 s.
    let done = tokio::time::timeout(Duration::from_secs(5), async {
        tokio::select! { r = a => r, r = b => r }
    })
    .await
    .expect("a newer long-poll ended an older one");
    assert_eq!(done.unwrap().unwrap().status(), 304);
    c.abort();
}

#[tokio::test]
async fn past_the_global_cap_a_stream_is_told_to_come_back_later() {
    // 8 connections: 6 long-lived requests at most, 2 kept for everything else.
    let central = Central::start_with(|c| c.max_connections = 8).await;
    let tokens: Vec<String> =
        (0..3).map(|n| central.add_station(&format!("xa-{n}"), "Tri Tôn")).collect();
    let mut open = Vec::new();
    for token in &tokens {
        open.push(open_stream(&central, token).await);
        open.push(open_stream(&central, token).await);
    }
    let fourth = central.add_station("xa-3", "Tri Tôn");
    let refused = reqwest::Client::new()
        .get(format!("{}/api/v1/station/events", central.url))
        .bearer_auth(&fourth)
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(refused.headers()["retry-after"], "5");
    // Short requests still get through.
    let status = reqwest::Client::new()
        .get(format!("{}/api/v1/status", central.url))
        .bearer_auth(&central.admin)
        .send()
        .await
        .unwrap()
        .status();
    assert_eq!(status, 200);
    drop(open);
}

#[tokio::test]
async fn a_rotated_token_closes_the_stations_open_stream() {
    let central = Central::start().await;
    let token = central.add_station("tri-ton", "Tri Tôn");
    let stream = open_stream(&central, &token).await;
    loa::central::rotate_station_token(central.state.store.as_ref(), "tri-ton").unwrap();
    ends_within(stream, loa::central::bulletins::REAUTH_EVERY + Duration::from_secs(3)).await;
}

#[tokio::test]
async fn plain_http_from_another_machine_is_refused_unless_allowed() {
    use loa::central::server::Connection;
    use tower::ServiceExt;
    let central = Central::start().await;
    let request = |peer: &str, tls: bool| {
        let mut request = axum::http::Request::get("/api/v1/status")
            .header("authorization", format!("Bearer {}", central.admin))
            .body(axum::body::Body::empty())
            .unwrap();
        request.extensions_mut().insert(Connection { peer: peer.parse().unwrap(), tls });
        request
    };
    let status = |request: axum::http::Request<axum::body::Body>| async {
        let response = loa::central::router(central.state.clone()).oneshot(request).await;
        response.map(|r| r.status().as_u16()).unwrap_or_else(|e| match e {})
    };
    assert_eq!(status(request("10.0.0.5:40000", false)).await, 403, "plain HTTP from the LAN");
    assert_eq!(status(request("10.0.0.5:40000", true)).await, 200, "HTTPS from the LAN");
    assert_eq!(
        status(request("127.0.0.1:40000", false)).await,
        200,
        "plain HTTP from this machine"
    );
    assert_eq!(status(request("[::ffff:127.0.0.1]:40000", false)).await, 200);
    let allowed = Central::start_with(|c| c.allow_plain_http = true).await;
    let mut request = axum::http::Request::get("/api/v1/status")
        .header("authorization", format!("Bearer {}", allowed.admin))
        .body(axum::body::Body::empty())
        .unwrap();
    request.extensions_mut().insert(Connection { peer: "10.0.0.5:1".parse().unwrap(), tls: false });
    let response = loa::central::router(allowed.state.clone()).oneshot(request).await;
    let status = response.map(|r| r.status()).unwrap_or_else(|e| match e {});
    assert_eq!(status, 200, "allow_plain_http = true");
}

#[tokio::test]
async fn costly_or_out_of_range_requests_are_refused_with_what_to_change() {
    let fleet = Fleet::start().await;
    let client = reqwest::Client::new();
    let url = format!("{}/api/v1/bulletins", fleet.central.url);
    let to = || Target::Stations(vec!["tri-ton".into()]);
    let mut cases: Vec<(&str, PushBulletinRequest, &str)> = Vec::new();
    let text = |chars: usize| PushBulletinRequest {
        audio_sha256: None,
        text: Some("lũ ".repeat(chars / 3 + 1).chars().take(chars).collect()),
        ..fleet.push_request(to())
    };
    cases.push(("text of 4001 characters", text(4001), "--text has 4001 characters"));
    cases.push((
        "interval 1e13 s",
        PushBulletinRequest {
            repeat: 1,
            interval_secs: 10_000_000_000_000,
            ..fleet.push_request(to())
        },
        "--interval of 10000000000000 s is longer than the bulletin is valid",
    ));
    cases.push((
        "expiry of 7 days and a second",
        PushBulletinRequest { expires_secs: 7 * 86_400 + 1, ..fleet.push_request(to()) },
        "give --expires between 1s and 7d",
    ));
    cases.push((
        "title of 201 characters",
        PushBulletinRequest { title: Some("x".repeat(201)), ..fleet.push_request(to()) },
        "--title has 201 characters",
    ));
    cases.push((
        "title with an escape sequence",
        PushBulletinRequest { title: Some("lũ\u{1b}[2J".into()), ..fleet.push_request(to()) },
        "control characters",
    ));
    let mut failures = Vec::new();
    for (name, request, expected) in cases {
        let response = client
            .post(&url)
            .bearer_auth(&fleet.central.admin)
            .json(&request)
            .send()
            .await
            .unwrap();
        let status = response.status().as_u16();
        let body = response.text().await.unwrap();
        if status != 400 || !body.contains(expected) {
            failures.push(format!("{name}: {status} {body}"));
        }
    }
    // The schedule that once took central to a gigabyte: one play a second, refused at
    // its line and column before anything is planned.
    let bomb = "layer = \"local\"\n[[item]]\nid = \"bom\"\ntitle = \"x\"\naudio = \"audio/a.wav\"\ncron = \"* * * * * *\"\n";
    let district = fleet.token(Who::District).unwrap();
    let response = fleet
        .central
        .load(
            &district,
            "bom.toml",
            bomb,
            &[("audio/a.wav", &fleet.audio_sha)],
            Target::Stations(vec!["tri-ton".into()]),
        )
        .await;
    let status = response.status().as_u16();
    let body: loa::protocol::ErrorBody = response.json().await.unwrap();
    if status != 422
        || body.diagnostics
            != [
                "bom.toml:6:8: error: cron \"* * * * * *\" plays 86400 times a day: an item plays at most 4320 times a day (every 20 seconds)",
            ]
    {
        failures.push(format!("schedule bomb: {status} {body:?}"));
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
