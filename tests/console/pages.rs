//! The console's read pages over real HTTP: `/playlog` (filters, CSV, a district kept to
//! its area), `/stations/{id}` (ledger and heartbeats; another area's station answered as
//! missing), and the audit lines of the API's schedule load and audio upload.

use super::web::{Browser, central};
use chrono::Duration;
use loa::protocol::{LoadScheduleRequest, Target};
use loa::schedule::{Layer, Priority};
use loa::station::ledger::{Entry, GENESIS, Outcome, Record};

fn records(station: &str, at: chrono::DateTime<chrono::Utc>) -> Vec<Record> {
    let entries = (1..=3u64).map(|seq| {
        let mut entry = Entry::missed(
            &format!("ban-tin-{seq}"),
            "Bản tin, sáng",
            Layer::Provincial,
            Priority::Normal,
            at + Duration::minutes(seq as i64),
            loa::protocol::Reason::from_stored(None, "station was not running"),
        );
        if seq == 2 {
            entry.outcome = Outcome::Played;
            entry.reason = None;
        }
        entry
    });
    Record::chain(station, 1, GENESIS, entries)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn playlog_and_station_pages_show_what_the_role_may_see() {
    let c = central(|_| {}).await;
    // Noon in the province tomorrow (the clock only moves forward): the records are
    // from this morning, so they count as today's.
    let tomorrow = (loa::clock::Clock::now(c.clock.as_ref()) + Duration::days(1)).date_naive();
    c.clock.set(tomorrow.and_hms_opt(5, 0, 0).unwrap().and_utc());
    let now = loa::clock::Clock::now(c.clock.as_ref());
    let at = now - Duration::hours(2);
    for id in ["tri-ton", "co-to"] {
        c.state.store.ingest_playlog(id, &records(id, at), now).unwrap();
    }
    let mut an = Browser::new(&c.url);
    an.login("an").await;
    // The fleet counts each station's missed records of today (2 of 3 each here).
    let fleet = an.get("/").await.body;
    assert_eq!(fleet.matches("<td class=\"missed\">2</td>").count(), 2, "{fleet}");
    assert!(fleet.contains("bỏ lỡ 2 mục hôm nay"), "{fleet}");
    let all = an.get("/playlog").await.body;
    assert_eq!(all.matches("data-outcome=").count(), 6, "{all}");
    let missed = an.get("/playlog?outcome=missed&station=tri-ton").await.body;
    assert_eq!(missed.matches("data-outcome=\"missed\"").count(), 2, "{missed}");
    assert!(!missed.contains("data-outcome=\"played\""));
    let bad = an.get("/playlog?from=yesterday").await;
    assert_eq!(bad.status, 400);
    assert!(bad.body.contains("YYYY-MM-DD"), "{}", bad.body);
    let csv = an.get("/playlog?format=csv&station=co-to").await;
    assert_eq!(csv.status, 200);
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 4, "{}", csv.body);
    assert!(lines[0].starts_with("station,seq,planned"));
    assert!(
        lines[1].contains("\"Bản tin, sáng\"") && lines[1].contains("station was not running"),
        "{}",
        lines[1]
    );

    // A district sees its own area's records only, and another area's station is missing.
    let mut chi = Browser::new(&c.url);
    chi.login("chi").await;
    let theirs = chi.get("/playlog").await.body;
    assert_eq!(theirs.matches("data-outcome=").count(), 3, "{theirs}");
    assert!(!theirs.contains("co-to"));
    assert_eq!(chi.get("/playlog?station=co-to").await.status, 404);
    assert_eq!(chi.get("/playlog?format=csv&station=co-to").await.status, 404);
    let page = chi.get("/stations/tri-ton").await;
    assert_eq!(page.status, 200);
    assert_eq!(page.body.matches("data-outcome=").count(), 3, "{}", page.body);
    let other = chi.get("/stations/co-to").await;
    assert_eq!(other.status, 404);
    assert_eq!(other.body, chi.get("/stations/khong-co").await.body.replace("khong-co", "co-to"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_api_upload_and_schedule_load_are_audited_with_who_and_where_from() {
    let c = central(|_| {}).await;
    let http = reqwest::Client::new();
    let wav = loa::testing::wav_bytes(1.0, 440.0, 0.3);
    let r = http
        .put(format!("{}/api/v1/audio?name=chuong.wav&title=Chu%C3%B4ng", c.url))
        .bearer_auth(&c.admin_token)
        .body(wav)
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let info: loa::protocol::AudioInfo = r.json().await.unwrap();
    let source = "layer = \"provincial\"\n[[item]]\nid = \"chuong\"\ntitle = \"Chuông\"\naudio = \"chuong.wav\"\ncron = \"30 5 * * 1-6\"\n";
    let r = http
        .post(format!("{}/api/v1/schedules", c.url))
        .bearer_auth(&c.admin_token)
        .json(&LoadScheduleRequest {
            origin: "provincial.toml".into(),
            source: source.into(),
            audio: [("chuong.wav".to_string(), info.sha256.clone())].into(),
            to: Target::All,
        })
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    let lines = c.state.store.audit_log(50).unwrap();
    let upload = lines.iter().find(|e| e.action == "audio.upload").expect("an upload line");
    assert_eq!(upload.who, "admin");
    assert!(upload.from.starts_with("127.0.0.1:"), "{upload:?}");
    assert!(
        upload.subject.contains(&info.sha256) && upload.detail.contains("chuong.wav"),
        "{upload:?}"
    );
    let load = lines.iter().find(|e| e.action == "schedule.load").expect("a load line");
    assert!(
        load.detail.contains("provincial.toml") && load.detail.contains("3 station(s)"),
        "{load:?}"
    );
    assert!(load.from.starts_with("127.0.0.1:"), "{load:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_schedule_is_checked_at_its_lines_then_loaded_where_the_role_may_load_it() {
    let c = central(|_| {}).await;
    let http = reqwest::Client::new();
    let r = http
        .put(format!("{}/api/v1/audio?name=ban-tin.wav&title=ban-tin", c.url))
        .bearer_auth(&c.admin_token)
        .body(loa::testing::wav_bytes(1.0, 440.0, 0.3))
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success());
    let mut an = Browser::new(&c.url);
    an.login("an").await;
    let csrf = an.csrf().await;
    let bad = "layer = \"provincial\"\n\n[[item]]\nid = \"sang\"\ntitle = \"Bản tin sáng\"\naudio = \"ban-tin.wav\"\ncron = \"30 25 * * 1-6\"\n";
    let a = an
        .post(
            "/schedules",
            &[
                ("csrf", &csrf),
                ("origin", "tinh.toml"),
                ("source", bad),
                ("to", "all"),
                ("action", "load"),
            ],
        )
        .await;
    assert_eq!(a.status, 200);
    assert!(a.body.contains("id=\"diagnostics\""), "{}", a.body);
    assert!(
        a.body.contains("class=\"problem\" id=\"line-7\""),
        "the error is shown at line 7: {}",
        a.body
    );
    assert!(a.body.contains("tinh.toml:7:"), "{}", a.body);
    assert!(c.state.store.schedule_loads(10).unwrap().is_empty(), "nothing loaded");

    let good = bad.replace("30 25", "30 5");
    // Checked only: the week grid, Monday to Saturday at 05:30, no Sunday.
    let a = an
        .post(
            "/schedules",
            &[
                ("csrf", &csrf),
                ("origin", "tinh.toml"),
                ("source", &good),
                ("to", "all"),
                ("action", "check"),
            ],
        )
        .await;
    assert!(a.body.contains("id=\"checked\"") && a.body.contains("id=\"week\""), "{}", a.body);
    assert_eq!(a.body.matches("<td data-day=\"").count(), 7, "{}", a.body);
    assert_eq!(a.body.matches(">05:30</td>").count(), 6, "{}", a.body);
    assert!(a.body.contains("<td data-day=\"6\"></td>"), "no play on Sunday: {}", a.body);
    assert!(c.state.store.schedule_loads(10).unwrap().is_empty(), "a check loads nothing");
    let a = an
        .post(
            "/schedules",
            &[
                ("csrf", &csrf),
                ("origin", "tinh.toml"),
                ("source", &good),
                ("to", "all"),
                ("action", "load"),
            ],
        )
        .await;
    assert!(a.body.contains("id=\"loaded\""), "{}", a.body);
    assert!(a.body.contains("3 trạm"), "{}", a.body);
    assert!(a.body.contains("<td>tinh.toml</td>"), "the history lists it: {}", a.body);
    let lines = c.state.store.audit_log(20).unwrap();
    assert!(
        lines.iter().any(|e| e.action == "schedule.load" && e.who == "an (admin)"),
        "{lines:?}"
    );

    // A district may load only local schedules, only for its own area.
    let mut chi = Browser::new(&c.url);
    chi.login("chi").await;
    let csrf = chi.csrf().await;
    let a = chi
        .post(
            "/schedules",
            &[
                ("csrf", &csrf),
                ("origin", "tinh.toml"),
                ("source", &good),
                ("to", "district:Tri Tôn"),
                ("action", "load"),
            ],
        )
        .await;
    assert!(a.body.contains("id=\"refused\"") && a.body.contains("local"), "{}", a.body);
    let local = good.replace("provincial", "local");
    let a = chi
        .post(
            "/schedules",
            &[
                ("csrf", &csrf),
                ("origin", "xa.toml"),
                ("source", &local),
                ("to", "co-to"),
                ("action", "load"),
            ],
        )
        .await;
    assert!(a.body.contains("id=\"refused\""), "{}", a.body);
    let a = chi
        .post(
            "/schedules",
            &[
                ("csrf", &csrf),
                ("origin", "xa.toml"),
                ("source", &local),
                ("to", "district:Tri Tôn"),
                ("action", "load"),
            ],
        )
        .await;
    assert!(a.body.contains("id=\"loaded\"") && a.body.contains("2 trạm"), "{}", a.body);
    assert_eq!(c.state.store.schedule_loads(10).unwrap().len(), 2);
    // The body bound: one byte past is refused whole.
    let big = "x".repeat(loa::central::body::CONSOLE_SCHEDULE_LIMIT);
    let a = chi.post("/schedules", &[("csrf", &csrf), ("source", &big)]).await;
    assert_eq!(a.status, 413);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn audio_is_uploaded_from_the_console_listed_and_played_back() {
    let c = central(|_| {}).await;
    let mut an = Browser::new(&c.url);
    an.login("an").await;
    let csrf = an.csrf().await;
    let wav = loa::testing::wav_bytes(2.0, 440.0, 0.3);
    let put = |token: Option<&str>, cookie: &str| {
        let mut r = reqwest::Client::new()
            .put(format!("{}/audio/upload?name=C%3A%5Cnhac%5Cchuong.wav&title=Chu%C3%B4ng", c.url))
            .header("cookie", cookie)
            .body(wav.clone());
        if let Some(t) = token {
            r = r.header("x-csrf-token", t);
        }
        r.send()
    };
    let cookie = an.cookie().unwrap();
    let r = put(None, &cookie).await.unwrap();
    assert_eq!(r.status(), 403, "no CSRF token");
    assert!(c.state.store.library(10).unwrap().is_empty());
    let r = put(Some(&csrf), &cookie).await.unwrap();
    assert_eq!(r.status(), 200);
    let said = r.text().await.unwrap();
    assert!(said.starts_with("Chuông: 2.0 s"), "{said}");
    let page = an.get("/audio").await.body;
    let sha = c.state.store.library(10).unwrap()[0].info.sha256.clone();
    assert!(page.contains(&format!("data-sha256=\"{sha}\"")) && page.contains("dBTP"), "{page}");
    let audit = c.state.store.audit_log(10).unwrap();
    let line = audit.iter().find(|e| e.action == "audio.upload").unwrap();
    assert_eq!(line.who, "an (admin)");
    assert!(line.detail.starts_with("chuong.wav"), "the name without its folders: {line:?}");
    // Played back with Range, only to a session.
    let r = reqwest::Client::new()
        .get(format!("{}/audio/{sha}/file", c.url))
        .header("cookie", &cookie)
        .header("range", "bytes=0-43")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 206);
    assert_eq!(r.bytes().await.unwrap().len(), 44);
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/audio/{sha}/file", c.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303, "no session: to /login");
    // The bulletin form offers it, and a push of it sends that file.
    let form = an.get("/bulletins").await.body;
    assert!(form.contains(&format!("<option value=\"{sha}\">Chuông (2,0 s)</option>")), "{form}");
    let a = an
        .post(
            "/bulletins",
            &[
                ("csrf", &csrf),
                ("audio", &sha),
                ("to", "tri-ton"),
                ("priority", "test"),
                ("expires_mins", "5"),
            ],
        )
        .await;
    assert!(a.body.contains(&format!("name=\"audio\" value=\"{sha}\"")), "{}", a.body);
    let a = an
        .post(
            "/bulletins",
            &[
                ("csrf", &csrf),
                ("audio", &sha),
                ("to", "tri-ton"),
                ("priority", "test"),
                ("expires_mins", "5"),
                ("confirmed", "1"),
            ],
        )
        .await;
    assert_eq!(a.status, 303, "{}", a.body);
    let pushed =
        loa::central::bulletins::operate::list(&c.state, &loa::store::Role::Admin, 10).unwrap();
    assert_eq!(pushed[0].doc.audio_sha256, sha);
    // A viewer lists and listens but does not upload.
    let mut dung = Browser::new(&c.url);
    dung.login("dung").await;
    assert!(!dung.get("/audio").await.body.contains("id=\"upload\""));
    let csrf = dung.csrf().await;
    let r = put(Some(&csrf), &dung.cookie().unwrap()).await.unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daily_report_shows_each_area_and_what_did_not_air() {
    let c = central(|_| {}).await;
    // Tomorrow (the clock only moves forward), 08:00 in the province: an hourly
    // provincial item loaded for every station.
    let now = loa::clock::Clock::now(c.clock.as_ref());
    let day = (now + Duration::days(1)).date_naive();
    let at = |hour: u32| day.and_hms_opt(hour, 0, 0).unwrap().and_utc();
    c.clock.set(at(1));
    let http = reqwest::Client::new();
    let source = "layer = \"provincial\"\n[[item]]\nid = \"gio\"\ntitle = \"Bản tin, giờ\"\naudio = \"sha256:PLACEHOLDER\"\ncron = \"0 * * * *\"\n";
    let r = http
        .put(format!("{}/api/v1/audio?name=gio.wav&title=gio", c.url))
        .bearer_auth(&c.admin_token)
        .body(loa::testing::wav_bytes(1.0, 440.0, 0.3))
        .send()
        .await
        .unwrap();
    let sha = r.json::<loa::protocol::AudioInfo>().await.unwrap().sha256;
    let r = http
        .post(format!("{}/api/v1/schedules", c.url))
        .bearer_auth(&c.admin_token)
        .json(&LoadScheduleRequest {
            origin: "gio.toml".into(),
            source: source.replace("PLACEHOLDER", &sha),
            audio: Default::default(),
            to: Target::All,
        })
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());
    // 11:00: the 08:00 (issued that very second), 09:00 and 10:00 plays were never
    // reported by any station; the 11:00 one is not due yet.
    c.clock.set(at(4));
    let date = day.format("%Y-%m-%d").to_string();
    let mut an = Browser::new(&c.url);
    an.login("an").await;
    let page = an.get(&format!("/reports?date={date}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for area in ["Tri Tôn", "Tri Tôn/Ba Chúc", "Tịnh Biên"] {
        assert!(page.body.contains(&format!("data-area=\"{area}\"")), "{area}: {}", page.body);
    }
    assert_eq!(page.body.matches("data-status=\"not-reported\"").count(), 9, "{}", page.body);
    assert!(page.body.contains("<svg class=\"bar\""), "{}", page.body);
    let csv = an.get(&format!("/reports?date={date}&format=csv")).await.body;
    assert!(csv.starts_with("station,area,item_id"));
    assert!(csv.contains("\"Bản tin, giờ\""), "{csv}");
    assert_eq!(an.get("/reports?date=mai").await.status, 400);
    // The station page lists its next plays from the manifest central signed: hourly,
    // the first 20 of the next 24 h.
    let station = an.get("/stations/co-to").await.body;
    assert_eq!(station.matches("data-item=\"gio\"").count(), 20, "{station}");
    // A district: its own areas only.
    let mut chi = Browser::new(&c.url);
    chi.login("chi").await;
    let theirs = chi.get(&format!("/reports?date={date}")).await.body;
    assert!(!theirs.contains("Tịnh Biên") && !theirs.contains("co-to"), "{theirs}");
    assert_eq!(theirs.matches("data-status=\"not-reported\"").count(), 6, "{theirs}");
    assert_eq!(
        chi.get(&format!("/reports?date={date}&area=T%E1%BB%8Bnh%20Bi%C3%AAn")).await.status,
        404
    );
}
