//! The console in a real browser (Debian's chromium, headless, over WebDriver) against a
//! real `loa central` process and two real `loa station` processes: a wrong password is
//! refused, an admin signs in, the fleet page has no horizontal scroll at 360 px, a test
//! bulletin is pushed from the form and its delivery board fills in to `test-ok` for both
//! stations without a reload, an emergency is pushed and cancelled, an emergency to
//! every area waits for a second admin (`two_person_rule`), a form without its
//! CSRF token is refused, a schedule file with an error shows it at its line, and a
//! district account sees neither the other area's station nor the audit trail. Screenshots land in `target/tmp/console-screenshots/`.

use std::time::Duration;

use super::chromium::{browser, driver, screenshot};
use super::people::add_user;
use crate::support::process::{Proc, central_init};
use fantoccini::{Client, Locator};

fn add_station(data: &std::path::Path, id: &str, name: &str, area: &str) -> String {
    crate::support::process::add_station(data, id, name, area, &[]).token
}

pub(super) async fn sign_in(client: &Client, url: &str, name: &str, password: &str) {
    client.goto(&format!("{url}/login")).await.unwrap();
    client.find(Locator::Css("input[name=username]")).await.unwrap().send_keys(name).await.unwrap();
    client
        .find(Locator::Css("input[name=password]"))
        .await
        .unwrap()
        .send_keys(password)
        .await
        .unwrap();
    client.find(Locator::Css("button[type=submit]")).await.unwrap().click().await.unwrap();
}

pub(super) async fn body_text(client: &Client) -> String {
    client.find(Locator::Css("body")).await.unwrap().text().await.unwrap()
}

/// Whether the page is wider than the window (a horizontal scroll bar).
async fn scrolls_sideways(client: &Client) -> bool {
    let v = client
        .execute("return document.documentElement.scrollWidth > window.innerWidth;", vec![])
        .await
        .unwrap();
    v.as_bool().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_pushes_a_test_bulletin_and_watches_it_reach_both_stations() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("central");
    let province = central_init(&data);
    let tokens = [
        add_station(&data, "tri-ton", "Tri Tôn", "Tri Tôn"),
        add_station(&data, "co-to", "Cô Tô", "Tịnh Biên"),
    ];
    add_user(&data, "an", "admin", "mật khẩu của an");
    add_user(&data, "chi", "district:Tri Tôn", "mật khẩu của chi");
    add_user(&data, "binh", "admin", "mật khẩu của binh");
    let config = dir.path().join("central.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:0\"\ndata_dir = {:?}\ntwo_person_rule = true\n",
            data.to_str().unwrap()
        ),
    )
    .unwrap();
    let central = Proc::spawn(&["central", "--config", config.to_str().unwrap()]);
    let url = central.listening_url(Duration::from_secs(60));
    let mut stations = Vec::new();
    for (id, token) in ["tri-ton", "co-to"].iter().zip(&tokens) {
        let root = dir.path().join(id);
        std::fs::create_dir_all(root.join("local")).unwrap();
        let toml = root.join("station.toml");
        std::fs::write(
            &toml,
            format!(
                "station_id = \"{id}\"\ncentral_url = \"{url}\"\ntoken = \"{token}\"\nprovince_key = \"{}\"\ndata_dir = \"data\"\nlocal_schedules = \"local\"\n[audio]\nsink = \"clocked\"\n",
                province.key
            ),
        )
        .unwrap();
        stations.push(Proc::spawn(&["station", "--config", toml.to_str().unwrap()]));
    }
    for s in &stations {
        s.wait_for(&["bulletin stream connected"], Duration::from_secs(60));
    }

    let driver = driver();
    let client = browser(&driver, 360, &dir.path().join("chromium")).await;

    // A wrong password is refused on the page.
    sign_in(&client, &url, "an", "không phải mật khẩu").await;
    let shown = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("p.error"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(shown.contains("Sai tên đăng nhập hoặc mật khẩu"), "{shown}");
    screenshot(&client, "login-refused").await;

    // The admin signs in and lands on the fleet: both stations, no sideways scroll.
    sign_in(&client, &url, "an", "mật khẩu của an").await;
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("tr[data-station=co-to]"))
        .await
        .unwrap();
    assert!(client.find(Locator::Css("tr[data-station=tri-ton]")).await.is_ok());
    let width = client.execute("return window.innerWidth;", vec![]).await.unwrap();
    assert_eq!(width.as_u64(), Some(360), "the page is laid out 360 px wide");
    assert!(!scrolls_sideways(&client).await, "the fleet page scrolls sideways at 360 px");
    screenshot(&client, "fleet-360px").await;

    // Push a test bulletin to all from the form; the confirmation names 2 stations.
    client.goto(&format!("{url}/bulletins")).await.unwrap();
    client
        .find(Locator::Css("input[name=title]"))
        .await
        .unwrap()
        .send_keys("Thử chuỗi phát")
        .await
        .unwrap();
    client
        .find(Locator::Css("textarea[name=text]"))
        .await
        .unwrap()
        .send_keys("Đây là bản tin thử nghiệm.")
        .await
        .unwrap();
    client
        .find(Locator::Css("select[name=to]"))
        .await
        .unwrap()
        .select_by_value("all")
        .await
        .unwrap();
    client
        .find(Locator::Css("select[name=priority]"))
        .await
        .unwrap()
        .select_by_value("test")
        .await
        .unwrap();
    screenshot(&client, "bulletin-form").await;
    client.find(Locator::Css("#push button[type=submit]")).await.unwrap().click().await.unwrap();
    let confirm = client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("confirm"))
        .await
        .unwrap();
    let said = confirm.text().await.unwrap();
    assert!(said.contains("2 trạm"), "{said}");
    screenshot(&client, "bulletin-confirm").await;
    client.find(Locator::Id("send")).await.unwrap().click().await.unwrap();

    // The board fills in by itself (htmx), station by station, to test-ok.
    let board = client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("board"))
        .await
        .unwrap();
    let bulletin_url = client.current_url().await.unwrap().to_string();
    assert!(bulletin_url.contains("/bulletins/b-"), "{bulletin_url}");
    let _ = board;
    // How long after central knows a station's state the board shows it: the API (what
    // central knows) and the page are watched side by side, every 20 ms.
    let bulletin_id = bulletin_url.rsplit('/').next().unwrap().to_string();
    let api = {
        let (url, admin, id) = (url.clone(), province.admin.clone(), bulletin_id.clone());
        tokio::spawn(async move {
            let http = reqwest::Client::new();
            let mut known = std::collections::HashMap::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(60);
            while known.len() < 2 && std::time::Instant::now() < deadline {
                let info: loa::protocol::BulletinInfo = http
                    .get(format!("{url}/api/v1/bulletins/{id}"))
                    .bearer_auth(&admin)
                    .send()
                    .await
                    .unwrap()
                    .json()
                    .await
                    .unwrap();
                for s in info.stations {
                    if s.state == Some(loa::protocol::DeliveryState::TestOk) {
                        known.entry(s.station_id).or_insert_with(std::time::Instant::now);
                    }
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            known
        })
    };
    let mut shown = std::collections::HashMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while shown.len() < 2 {
        assert!(
            std::time::Instant::now() < deadline,
            "the board never showed test-ok for both stations"
        );
        for id in ["tri-ton", "co-to"] {
            if !shown.contains_key(id)
                && client
                    .find(Locator::Css(&format!("tr[data-station={id}][data-state=test-ok]")))
                    .await
                    .is_ok()
            {
                shown.insert(id, std::time::Instant::now());
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let known = api.await.unwrap();
    for (id, on_page) in &shown {
        let at_central =
            known.get(*id).unwrap_or_else(|| panic!("central never reported {id} test-ok"));
        let lag = on_page.saturating_duration_since(*at_central);
        eprintln!(
            "board lag for {id}: {} ms (central's state seen by the API → the row on the page)",
            lag.as_millis()
        );
        assert!(
            lag <= Duration::from_millis(1500),
            "{id}: the board showed test-ok {lag:?} after central knew it"
        );
    }
    assert_eq!(
        client.current_url().await.unwrap().to_string(),
        bulletin_url,
        "no navigation: the board updated in place"
    );
    screenshot(&client, "bulletin-board").await;
    // An emergency to one station, then cancelled from its page.
    client.goto(&format!("{url}/bulletins")).await.unwrap();
    client
        .find(Locator::Css("input[name=title]"))
        .await
        .unwrap()
        .send_keys("Khẩn cấp Tri Tôn")
        .await
        .unwrap();
    client
        .find(Locator::Css("textarea[name=text]"))
        .await
        .unwrap()
        .send_keys("Cảnh báo lũ khẩn cấp.")
        .await
        .unwrap();
    client
        .find(Locator::Css("select[name=to]"))
        .await
        .unwrap()
        .select_by_value("tri-ton")
        .await
        .unwrap();
    client
        .find(Locator::Css("select[name=priority]"))
        .await
        .unwrap()
        .select_by_value("emergency")
        .await
        .unwrap();
    client.find(Locator::Css("input[name=expires_mins]")).await.unwrap().clear().await.unwrap();
    client
        .find(Locator::Css("input[name=expires_mins]"))
        .await
        .unwrap()
        .send_keys("30")
        .await
        .unwrap();
    client.find(Locator::Css("#push button[type=submit]")).await.unwrap().click().await.unwrap();
    let confirm = client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("confirm"))
        .await
        .unwrap();
    let said = confirm.text().await.unwrap();
    assert!(said.contains("PHÁT") && said.contains("1 trạm"), "{said}");
    assert!(
        client.find(Locator::Id("preview")).await.is_ok(),
        "the spoken text can be heard first"
    );
    client.find(Locator::Id("send")).await.unwrap().click().await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("cancel"))
        .await
        .unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(60))
        .for_element(Locator::Css("tr[data-station=tri-ton][data-state=verified], tr[data-station=tri-ton][data-state=started], tr[data-station=tri-ton][data-state=finished]"))
        .await
        .unwrap();
    screenshot(&client, "emergency-board").await;
    client.find(Locator::Id("cancel")).await.unwrap().click().await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//p[contains(., 'cancelled')]"))
        .await
        .unwrap();
    assert!(client.find(Locator::Id("cancel")).await.is_err(), "no cancel button once cancelled");

    // A form posted without its CSRF token is refused, from the page itself.
    let status = client
        .execute(
            "return fetch('/bulletins', {method: 'POST', headers: {'content-type': 'application/x-www-form-urlencoded'}, body: 'text=x&to=all&priority=test&expires_mins=5&confirmed=1'}).then(r => r.status);",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(status.as_u64(), Some(403));

    // A schedule file with an error, picked from disk: the error is shown at its line.
    let bad = dir.path().join("tinh.toml");
    std::fs::write(&bad, "layer = \"provincial\"\n\n[[item]]\nid = \"sang\"\ntitle = \"Bản tin sáng\"\naudio = \"sha256:0000000000000000000000000000000000000000000000000000000000000000\"\ncron = \"30 25 * * 1-6\"\n").unwrap();
    client.goto(&format!("{url}/schedules")).await.unwrap();
    client
        .find(Locator::Css("input[type=file]"))
        .await
        .unwrap()
        .send_keys(bad.to_str().unwrap())
        .await
        .unwrap();
    // FileReader is asynchronous: wait (bounded) until the page has read the file.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    let picked = loop {
        let v = client
            .execute("return document.getElementById('origin').value + '|' + document.getElementById('source').value;", vec![])
            .await
            .unwrap();
        let v = v.as_str().unwrap_or("").to_string();
        if v.starts_with("tinh.toml|") || std::time::Instant::now() > deadline {
            break v;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        picked.starts_with("tinh.toml|") && picked.contains("30 25"),
        "the file was read into the form: {picked}"
    );
    client.find(Locator::Css("button[value=check]")).await.unwrap().click().await.unwrap();
    let line = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("tr#line-7.problem"))
        .await
        .unwrap();
    assert!(line.text().await.unwrap().contains("30 25"));
    let said = client.find(Locator::Css("tr.diagnostic")).await.unwrap().text().await.unwrap();
    assert!(said.contains("tinh.toml:7:"), "{said}");
    assert!(!scrolls_sideways(&client).await, "the schedules page scrolls sideways at 360 px");
    screenshot(&client, "schedule-error").await;

    // An audio file uploaded from the page: the bar fills, the library lists it.
    let wav = dir.path().join("chuong-bao.wav");
    std::fs::write(&wav, loa::testing::wav_bytes(1.5, 660.0, 0.3)).unwrap();
    client.goto(&format!("{url}/audio")).await.unwrap();
    client.find(Locator::Id("file")).await.unwrap().send_keys(wav.to_str().unwrap()).await.unwrap();
    client.find(Locator::Id("title")).await.unwrap().send_keys("Chuông báo").await.unwrap();
    client.find(Locator::Css("#upload button[type=submit]")).await.unwrap().click().await.unwrap();
    let done = client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Css("#upload-result.notice"))
        .await
        .unwrap();
    let said = done.text().await.unwrap();
    assert!(said.starts_with("Chuông báo: 1.5 s"), "{said}");
    let progress =
        client.execute("return document.getElementById('progress').value;", vec![]).await.unwrap();
    assert_eq!(progress.as_f64(), Some(100.0));
    screenshot(&client, "audio-uploaded").await;
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//table[@id='library']//td[contains(., 'Chuông báo')]"))
        .await
        .unwrap();

    for (page, name) in [
        ("/audio", "audio"),
        ("/playlog", "playlog"),
        ("/stations/tri-ton", "station"),
        ("/bulletins", "bulletins"),
    ] {
        client.goto(&format!("{url}{page}")).await.unwrap();
        assert!(!scrolls_sideways(&client).await, "{page} scrolls sideways at 360 px");
        screenshot(&client, name).await;
    }

    client.goto(&format!("{url}/audit")).await.unwrap();
    let audit = body_text(&client).await;
    assert!(audit.contains("bulletin.push") && audit.contains("an (admin)"), "{audit}");
    assert!(audit.contains("bulletin.cancel"), "{audit}");
    screenshot(&client, "audit").await;

    // The two-person rule: an emergency to both areas waits; its author cannot approve
    // it; a second admin does, and it goes out.
    client.goto(&format!("{url}/bulletins")).await.unwrap();
    client
        .find(Locator::Css("input[name=title]"))
        .await
        .unwrap()
        .send_keys("Bão toàn tỉnh")
        .await
        .unwrap();
    client
        .find(Locator::Css("textarea[name=text]"))
        .await
        .unwrap()
        .send_keys("Bão lớn sắp đổ bộ.")
        .await
        .unwrap();
    client
        .find(Locator::Css("select[name=to]"))
        .await
        .unwrap()
        .select_by_value("all")
        .await
        .unwrap();
    client
        .find(Locator::Css("select[name=priority]"))
        .await
        .unwrap()
        .select_by_value("emergency")
        .await
        .unwrap();
    client.find(Locator::Css("#push button[type=submit]")).await.unwrap().click().await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("send"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(30))
        .for_element(Locator::Id("approve"))
        .await
        .unwrap();
    let held_url = client.current_url().await.unwrap().to_string();
    assert!(body_text(&client).await.contains("waiting-approval"));
    screenshot(&client, "two-person-waiting").await;
    client.find(Locator::Id("approve")).await.unwrap().click().await.unwrap();
    let refused = client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("p.error"))
        .await
        .unwrap();
    let said = refused.text().await.unwrap();
    assert!(
        said.contains("waits for a second admin") && said.contains("cannot approve it too"),
        "{said}"
    );
    client
        .find(Locator::Css("form[action='/logout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("input[name=username]"))
        .await
        .unwrap();
    sign_in(&client, &url, "binh", "mật khẩu của binh").await;
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("tr[data-station]"))
        .await
        .unwrap();
    client.goto(&held_url).await.unwrap();
    client.find(Locator::Id("approve")).await.unwrap().click().await.unwrap();
    for id in ["tri-ton", "co-to"] {
        client
            .wait()
            .at_most(Duration::from_secs(60))
            .for_element(Locator::Css(&format!("tr[data-station={id}]:not([data-state=none])")))
            .await
            .unwrap_or_else(|e| panic!("{id} never heard of the approved emergency: {e}"));
    }
    assert!(body_text(&client).await.contains("approved"));
    screenshot(&client, "two-person-approved").await;
    client.find(Locator::Id("cancel")).await.unwrap().click().await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::XPath("//p[contains(., 'cancelled')]"))
        .await
        .unwrap();

    // Sign out; the district account sees its own station only, and no audit trail.
    client
        .find(Locator::Css("form[action='/logout'] button"))
        .await
        .unwrap()
        .click()
        .await
        .unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("input[name=username]"))
        .await
        .unwrap();
    sign_in(&client, &url, "chi", "mật khẩu của chi").await;
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("tr[data-station=tri-ton]"))
        .await
        .unwrap();
    let fleet = client.source().await.unwrap();
    assert!(!fleet.contains("co-to") && !fleet.contains("Tịnh Biên"), "{fleet}");
    client.goto(&bulletin_url).await.unwrap();
    let board = client.source().await.unwrap();
    assert!(board.contains("data-station=\"tri-ton\"") && !board.contains("co-to"), "{board}");
    screenshot(&client, "district-board").await;
    client.goto(&format!("{url}/audit")).await.unwrap();
    let refused = client.find(Locator::Css("p.error")).await.unwrap().text().await.unwrap();
    assert!(refused.contains("Chỉ quản trị viên"), "{refused}");
    client.close().await.unwrap();
    drop(stations);
}
