//! Speaking live from the console in a real browser: Debian's chromium (headless, over
//! WebDriver) with a fake microphone that plays a 600 Hz tone (chromium's
//! `--use-file-for-fake-audio-capture`), a real `loa central` and a real `loa station`
//! writing a WAV air-check (the live tests' rig). An admin signs in, goes from the
//! bulletins page to "Nói trực tiếp", starts a broadcast to the station, the tone
//! reaches the station's air-check, "Dừng" ends it, the station records it `relayed`,
//! and the audit trail holds its start and end by that person.

use std::time::Duration;

use fantoccini::{Client, Locator};
use loa::protocol::{AuditEntry, Outcome};

use super::browser::sign_in;
use super::chromium::{browser_with, driver, screenshot};
use super::people::add_user;
use super::rig::{AirCheck, Rig};
use crate::support::audio::tone_wav;
use crate::support::wait;

const TONE_HZ: f32 = 600.0;
/// Seconds of the tone the air-check must hold before the broadcast is stopped.
const SPOKEN_SECS: usize = 3;

async fn state_of(client: &Client) -> (String, String) {
    let el = client.find(Locator::Css("#live-state")).await.unwrap();
    let class = el.attr("class").await.unwrap().unwrap_or_default();
    (class, el.text().await.unwrap())
}

/// The longest run of the tone in the air-check, in 10 ms windows.
fn tone_run(air: &AirCheck) -> usize {
    air.runs(|hz| if (550..=650).contains(&hz) { "tone" } else { "other" })
        .iter()
        .filter(|r| r.0 == "tone")
        .map(|r| r.2)
        .max()
        .unwrap_or(0)
}

async fn audit_log(url: &str, admin: &str) -> Vec<AuditEntry> {
    let r = reqwest::Client::new()
        .get(format!("{url}/api/v1/audit?limit=100"))
        .bearer_auth(admin)
        .send()
        .await
        .unwrap();
    r.json().await.unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_speaks_live_from_the_console_and_the_station_airs_it() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let rig = Rig::start(work);
    add_user(&work.join("central"), "an", "admin", "mật khẩu của an");
    // The microphone: a tone, looped by chromium for as long as it records.
    let mic = work.join("micro.wav");
    tone_wav(&mic, 48_000, 1, 2.0, TONE_HZ, 0.5);
    let driver = driver();
    let args = [
        "--use-fake-ui-for-media-stream".to_string(),
        "--use-fake-device-for-media-stream".to_string(),
        format!("--use-file-for-fake-audio-capture={}", mic.display()),
        "--autoplay-policy=no-user-gesture-required".to_string(),
    ];
    let client = browser_with(&driver, 412, &work.join("chromium"), &args).await;

    sign_in(&client, &rig.url, "an", "mật khẩu của an").await;
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("tr[data-station=tri-ton]"))
        .await
        .unwrap();
    // From the bulletins page to "Nói trực tiếp".
    client.goto(&format!("{}/bulletins", rig.url)).await.unwrap();
    client.find(Locator::Css("a#speak-live")).await.unwrap().click().await.unwrap();
    client
        .wait()
        .at_most(Duration::from_secs(10))
        .for_element(Locator::Css("form[data-live]"))
        .await
        .unwrap();
    client
        .find(Locator::Css("select[name=to]"))
        .await
        .unwrap()
        .select_by_value("tri-ton")
        .await
        .unwrap();
    let (class, shown) = state_of(&client).await;
    assert!(shown.contains("Chưa phát"), "{class}: {shown}");
    let clicked_at = std::time::Instant::now();
    let (c, r) = (&client, &rig);
    client.find(Locator::Css("#live-start")).await.unwrap().click().await.unwrap();

    // On air: said on the page, with the elapsed time.
    let on_air = wait::until_async("the page on air", Duration::from_secs(20), || async move {
        let (class, text) = state_of(c).await;
        let error = c.find(Locator::Css("#live-error")).await.unwrap().text().await.unwrap();
        if !error.is_empty() {
            panic!("the page shows an error: {error}");
        }
        if class == "on-air" { Ok(text) } else { Err(format!("{class}: {text}")) }
    })
    .await;
    assert!(on_air.contains("ĐANG PHÁT TRỰC TIẾP") && on_air.contains("1 trạm"), "{on_air}");
    let id = client
        .find(Locator::Css("form[data-live]"))
        .await
        .unwrap()
        .attr("data-live-id")
        .await
        .unwrap()
        .expect("the broadcast's id on the form");
    assert!(id.starts_with("live-"), "{id}");
    screenshot(&client, "live-on-air").await;

    // The tone reaches the station's loudspeaker (its air-check), unbroken.
    let air = work.join("tri-ton").join("air.wav");
    let air_path = &air;
    let reached =
        wait::until_async("the tone in the air-check", Duration::from_secs(30), || async move {
            let run = tone_run(&AirCheck::read(air_path));
            if run >= SPOKEN_SECS * 100 {
                Ok(run)
            } else {
                Err(format!("{run} windows of the tone"))
            }
        })
        .await;
    // The air-check is written at the sink's own real-time pace: the tone began about
    // its length before now.
    let clicked = clicked_at.elapsed().as_secs_f64();
    let held = reached as f64 / 100.0;
    eprintln!(
        "{held:.1} s of the tone in the air-check {clicked:.2} s after the start was clicked: \
         its first sample aired about {:.1} s after the click",
        clicked - held
    );
    let (_, ticking) = state_of(&client).await;
    assert!(ticking.starts_with("ĐANG PHÁT TRỰC TIẾP · 00:"), "the elapsed time: {ticking}");

    // Stop: the page says it ended and how much aired.
    client.find(Locator::Css("#live-stop")).await.unwrap().click().await.unwrap();
    let ended = wait::until_async("the page ended", Duration::from_secs(20), || async move {
        let (class, text) = state_of(c).await;
        if class == "ended" { Ok(text) } else { Err(format!("{class}: {text}")) }
    })
    .await;
    assert!(ended.contains("Đã kết thúc"), "{ended}");
    screenshot(&client, "live-ended").await;

    // The station recorded it relayed, for about as long as it was spoken.
    let record = wait::until_async("the station's record", Duration::from_secs(30), || async {
        r.ledger().into_iter().find(|rec| rec.entry.item_id == id)
    })
    .await;
    assert_eq!(record.entry.outcome, Outcome::Relayed, "{:?}", record.entry);
    let aired = record.entry.relay.expect("how long it aired").relayed_secs;
    assert!(aired >= SPOKEN_SECS as f64, "{aired} s aired");
    let run = tone_run(&AirCheck::read(&air));
    assert!(run as f64 / 100.0 >= SPOKEN_SECS as f64, "{run}");

    // The audit trail: started and ended by an, from the console.
    let log = audit_log(&rig.url, &rig.admin).await;
    let line = |action: &str| log.iter().find(|e| e.action == action && e.subject == id).cloned();
    let start = line("live.start").expect("live.start");
    assert_eq!(start.who, "an (admin)");
    assert!(start.detail.starts_with("emergency to 1 station(s)"), "{start:?}");
    let end = line("live.end").expect("live.end");
    assert_eq!(end.who, "an (admin)");
    assert!(end.detail.starts_with("upload ended"), "{end:?}");

    // A second broadcast, cut from outside: the person is disabled, so the next POST
    // finds no session. The page says so and closes the microphone; central ends the
    // broadcast when no audio comes, still in the person's name.
    client.find(Locator::Css("#live-start")).await.unwrap().click().await.unwrap();
    wait::until_async("the page on air again", Duration::from_secs(20), || async move {
        let (class, text) = state_of(c).await;
        if class == "on-air" { Ok(()) } else { Err(format!("{class}: {text}")) }
    })
    .await;
    let second = client
        .find(Locator::Css("form[data-live]"))
        .await
        .unwrap()
        .attr("data-live-id")
        .await
        .unwrap()
        .unwrap();
    assert_ne!(second, id);
    let data = work.join("central");
    let out = crate::support::process::loa(&[
        "central",
        "--data-dir",
        data.to_str().unwrap(),
        "user",
        "disable",
        "an",
    ]);
    assert!(out.status.success(), "{}", super::people::said(&out));
    let cut = wait::until_async("the page cut", Duration::from_secs(20), || async move {
        let (class, text) = state_of(c).await;
        if class == "cut" { Ok(text) } else { Err(format!("{class}: {text}")) }
    })
    .await;
    assert!(cut.starts_with("Trung tâm đã ngắt buổi phát"), "{cut}");
    let why = client.find(Locator::Css("#live-error")).await.unwrap().text().await.unwrap();
    assert!(why.contains("Phiên đăng nhập đã hết"), "{why}");
    screenshot(&client, "live-cut").await;
    let (url, admin) = (&rig.url, &rig.admin);
    let end = wait::until_async("the second broadcast's end", Duration::from_secs(30), || {
        let second = second.clone();
        async move {
            audit_log(url, admin)
                .await
                .into_iter()
                .find(|e| e.action == "live.end" && e.subject == second)
        }
    })
    .await;
    assert_eq!(end.who, "an (admin)");
    assert!(end.detail.starts_with("no audio for 10 s"), "{end:?}");
    client.close().await.unwrap();
}
