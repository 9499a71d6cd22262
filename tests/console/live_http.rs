//! Speaking live from the console, over real HTTP against a real central (in process):
//! who may start a broadcast and to where (the API's own rules: a district account only
//! its area, a viewer never), the CSRF token on every POST, only the person who started
//! a broadcast feeds or stops it (nor may an operator token send its audio), and the
//! start and end in the audit trail with the person's name.

use std::time::Duration;

use super::web::{Browser, Central, central};
use crate::support::wait;

/// 200 ms of a 600 Hz tone as the page sends it: 16-bit little-endian mono at 48 kHz.
fn pcm_200ms() -> Vec<u8> {
    (0..9600)
        .flat_map(|i| {
            let x = (i as f32 * 600.0 * std::f32::consts::TAU / 48_000.0).sin();
            ((x * 12_000.0) as i16).to_le_bytes()
        })
        .collect()
}

/// A POST as the page's script sends it: the session cookie, `csrf` (if any) in
/// `x-csrf-token`, `body` as is.
async fn script_post(b: &Browser, path: &str, csrf: Option<&str>, body: Vec<u8>) -> (u16, String) {
    let mut r = b.http.post(format!("{}{path}", b.base)).body(body);
    if let Some(cookie) = b.cookie() {
        r = r.header("cookie", cookie);
    }
    if let Some(token) = csrf {
        r = r.header("x-csrf-token", token);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

async fn start(b: &mut Browser, csrf: &str, to: &str) -> super::web::Answer {
    b.post(
        "/live/start",
        &[("csrf", csrf), ("title", "Thông báo"), ("to", to), ("priority", "emergency")],
    )
    .await
}

fn audit(c: &Central, action: &str, subject: &str) -> Option<loa::protocol::AuditEntry> {
    let log = c.state.store.audit_log(100).unwrap();
    log.into_iter().find(|e| e.action == action && e.subject == subject)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_district_account_speaks_live_only_to_its_own_area_and_only_it_feeds_its_broadcast() {
    let c = central(|_| {}).await;
    // Without a session every route sends the browser to sign in, and nothing starts.
    let mut nobody = Browser::new(&c.url);
    assert_eq!(nobody.get("/live").await.location.as_deref(), Some("/login"));
    let a = nobody.post("/live/start", &[("to", "all"), ("priority", "emergency")]).await;
    assert_eq!(a.location.as_deref(), Some("/login"));
    for path in ["/live/x/audio?seq=0", "/live/x/stop"] {
        let r = nobody.http.post(format!("{}{path}", c.url)).body(pcm_200ms()).send().await;
        assert_eq!(r.unwrap().status(), 303, "{path}");
    }
    let mut chi = Browser::new(&c.url);
    chi.login("chi").await;
    let csrf = chi.csrf().await;

    // The page: a link from the bulletins page, its own area's targets only.
    assert!(chi.get("/bulletins").await.body.contains("href=\"/live\""));
    let page = chi.get("/live").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("value=\"tri-ton\""), "{}", page.body);
    assert!(
        !page.body.contains("co-to") && !page.body.contains("Tịnh Biên"),
        "no other area on the page: {}",
        page.body
    );
    assert!(!page.body.contains("value=\"all\""), "a district cannot speak to all");

    // Another area, however it is named, is refused as the API refuses it; nothing starts.
    for to in ["co-to", "district:Tịnh Biên", "all", "tri-ton,co-to"] {
        let a = start(&mut chi, &csrf, to).await;
        assert!(a.status == 403 || a.status == 404, "{to}: {} {}", a.status, a.body);
        assert!(
            a.body.starts_with("Tài khoản này không được phép")
                || a.body.starts_with("Không tìm thấy"),
            "Vietnamese first: {}",
            a.body
        );
    }
    // Without the CSRF token: refused before anything is looked at.
    let a = chi
        .post("/live/start", &[("title", "x"), ("to", "tri-ton"), ("priority", "emergency")])
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(c.state.store.live_list(10).unwrap().is_empty(), "nothing started");

    // Its own station: on air.
    let a = start(&mut chi, &csrf, "tri-ton").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let started: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!(started["stations"], 1);
    let audio = format!("/live/{id}/audio");
    // One at a time per person.
    let again = start(&mut chi, &csrf, "tri-ton").await;
    assert_eq!(again.status, 409, "{}", again.body);

    // Audio: the CSRF header is needed; another person (an admin even) gets 404; the
    // province's operator token may not send audio to it either.
    let (status, _) = script_post(&chi, &format!("{audio}?seq=0"), None, pcm_200ms()).await;
    assert_eq!(status, 403);
    let mut an = Browser::new(&c.url);
    an.login("an").await;
    let an_csrf = an.csrf().await;
    let (status, body) =
        script_post(&an, &format!("{audio}?seq=0"), Some(&an_csrf), pcm_200ms()).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = script_post(&an, &format!("/live/{id}/stop"), Some(&an_csrf), vec![]).await;
    assert_eq!(status, 404, "nor stop it");
    let put = reqwest::Client::new()
        .put(format!("{}/api/v1/live/{id}/audio", c.url))
        .bearer_auth(&c.admin_token)
        .body(vec![0u8; 8])
        .send()
        .await
        .unwrap();
    assert!(put.status() == 403 || put.status() == 409, "{}", put.status());

    for seq in 0..5 {
        let (status, body) =
            script_post(&chi, &format!("{audio}?seq={seq}"), Some(&csrf), pcm_200ms()).await;
        assert_eq!(status, 200, "{seq}: {body}");
    }
    // One byte past a POST's bound: refused, and the broadcast ends with why.
    let big = vec![0u8; loa::central::live::pcm::MAX_PCM_BYTES + 2];
    let (status, body) = script_post(&chi, &format!("{audio}?seq=5"), Some(&csrf), big).await;
    assert_eq!(status, 410, "{body}");
    assert!(
        body.starts_with("Trung tâm đã ngắt buổi phát: quá giới hạn của buổi phát"),
        "why, Vietnamese first: {body}"
    );

    // Stopped (again: it has ended already) and in the audit trail as chi.
    let (status, body) = script_post(&chi, &format!("/live/{id}/stop"), Some(&csrf), vec![]).await;
    assert!(status == 200 || status == 404 || status == 410, "{status} {body}");
    let start_line = audit(&c, "live.start", &id).expect("live.start in the audit trail");
    assert_eq!(start_line.who, "chi (district:Tri Tôn)");
    assert!(start_line.detail.starts_with("emergency to 1 station(s)"), "{start_line:?}");
    let end_line = wait::until_async("live.end", Duration::from_secs(10), || async {
        audit(&c, "live.end", &id)
    })
    .await;
    assert_eq!(end_line.who, "chi (district:Tri Tôn)");
    let row = c.state.store.live_list(10).unwrap().into_iter().find(|r| r.id == id).unwrap();
    assert_eq!(row.started_by, "chi (district:Tri Tôn)");
    assert_eq!(row.chunks, 10, "the five good POSTs, 200 ms each: {row:?}");
    assert!(row.end_reason.as_deref().unwrap_or("").contains("limit of 96000 bytes"), "{row:?}");

    // A viewer has no page and may not start one.
    let mut dung = Browser::new(&c.url);
    dung.login("dung").await;
    assert_eq!(dung.get("/live").await.status, 403);
    let dung_csrf = dung.csrf().await;
    assert_eq!(start(&mut dung, &dung_csrf, "tri-ton").await.status, 403);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_stop_button_ends_a_console_broadcast_cleanly_with_what_aired() {
    let c = central(|_| {}).await;
    let mut an = Browser::new(&c.url);
    an.login("an").await;
    let csrf = an.csrf().await;
    let a = start(&mut an, &csrf, "all").await;
    assert_eq!(a.status, 200, "{}", a.body);
    let started: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    let id = started["id"].as_str().unwrap().to_string();
    assert_eq!(started["stations"], 3);
    for seq in 0..3 {
        let (status, body) =
            script_post(&an, &format!("/live/{id}/audio?seq={seq}"), Some(&csrf), pcm_200ms())
                .await;
        assert_eq!(status, 200, "{body}");
    }
    // A retry of the last POST changes nothing; a gap is refused.
    let (status, _) =
        script_post(&an, &format!("/live/{id}/audio?seq=2"), Some(&csrf), pcm_200ms()).await;
    assert_eq!(status, 200);
    let (status, body) = script_post(&an, &format!("/live/{id}/stop"), Some(&csrf), vec![]).await;
    assert_eq!(status, 200, "{body}");
    let end: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(end["end"], "upload ended");
    assert_eq!(end["chunks"], 6);
    assert!((end["audio_secs"].as_f64().unwrap() - 0.6).abs() < 1e-9, "{end}");
    let line = audit(&c, "live.end", &id).expect("live.end");
    assert_eq!(line.who, "an (admin)");
    assert!(line.detail.starts_with("upload ended: 6 chunks, 0.6 s"), "{line:?}");
    // The recording holds what was sent.
    let row = c.state.store.live_list(10).unwrap().into_iter().find(|r| r.id == id).unwrap();
    let recording = c.state.config.data_dir.join(&row.recording);
    assert!(std::fs::metadata(&recording).unwrap().len() > 6 * 100, "{}", recording.display());
    // After its end the broadcast is gone for its audio too.
    let (status, _) =
        script_post(&an, &format!("/live/{id}/audio?seq=3"), Some(&csrf), pcm_200ms()).await;
    assert_eq!(status, 404);
}
