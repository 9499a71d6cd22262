//! The console over real HTTP against a real central (in process, manual clock): sign-in
//! and its growing delay, the session cookie and its idle end, CSRF on every POST, a
//! district account kept to its own area on pages and forms, the audit trail of console
//! and API actions alike, and the two-person rule.

use std::time::Duration;

use super::web::{Browser, central, password};
use loa::central::console::session;
use loa::store::hash_token;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_refuses_wrong_passwords_then_makes_the_name_wait_longer_each_time() {
    let c = central(|_| {}).await;
    let mut b = Browser::new(&c.url);
    // Pages need a session.
    assert_eq!(b.get("/").await.location.as_deref(), Some("/login"));
    assert_eq!(b.get("/bulletins").await.location.as_deref(), Some("/login"));
    for _ in 0..session::FREE_FAILURES {
        let a = b.login_with("an", "not the password").await;
        assert_eq!(a.status, 401, "{}", a.body);
        assert!(a.body.contains("Sai tên đăng nhập hoặc mật khẩu"), "{}", a.body);
    }
    // Now even the right password waits, for the first delay.
    let a = b.login_with("an", &password("an")).await;
    assert_eq!(a.status, 429, "{}", a.body);
    assert!(a.body.contains("thử lại sau"), "{}", a.body);
    c.clock.advance(Duration::from_secs(4));
    assert_eq!(b.login_with("an", &password("an")).await.status, 429, "still within the delay");
    c.clock.advance(Duration::from_secs(2));
    // One more failure doubles the wait: after 6 s it is still locked.
    assert_eq!(b.login_with("an", "wrong again").await.status, 401);
    c.clock.advance(Duration::from_secs(6));
    assert_eq!(b.login_with("an", &password("an")).await.status, 429, "the delay grew to 10 s");
    c.clock.advance(Duration::from_secs(5));
    let a = b.login_with("an", &password("an")).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(a.location.as_deref(), Some("/"));
    // The cookie: HttpOnly, SameSite=Strict, not Secure on plain HTTP.
    let cookie = a.set_cookie.unwrap();
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
    // The store holds the id's sha256, never the id.
    let id = b.cookies["loa_session"].clone();
    assert!(c.state.store.session(&id).unwrap().is_none());
    assert!(c.state.store.session(&hash_token(&id)).unwrap().is_some());
    // A success clears the name's counter only: the address keeps its own.
    assert!(c.state.store.login_failures("user:an").unwrap().is_none());
    assert_eq!(c.state.store.login_failures("addr:127.0.0.1").unwrap().unwrap().failures, 6);
    // An unknown name is answered as a wrong password is, and counts for the address:
    // now every name from here waits (the address is at 7 failures: 20 s).
    let mut other = Browser::new(&c.url);
    let a = other.login_with("nobody", "whatever it is").await;
    assert_eq!(a.status, 401);
    assert!(a.body.contains("Sai tên đăng nhập hoặc mật khẩu"), "{}", a.body);
    assert_eq!(other.login_with("binh", &password("binh")).await.status, 429);
    c.clock.advance(Duration::from_secs(21));
    assert_eq!(other.login_with("binh", &password("binh")).await.status, 303);
    // One past the form's bound is refused before anything is checked.
    let big = "x".repeat(loa::central::body::LOGIN_LIMIT);
    let a = Browser::new(&c.url).login_with("an", &big).await;
    assert_eq!(a.status, 413, "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_after_eight_idle_hours_and_at_sign_out() {
    let c = central(|_| {}).await;
    let mut b = Browser::new(&c.url);
    b.login("an").await;
    assert_eq!(b.get("/").await.status, 200);
    c.clock.advance(Duration::from_secs(8 * 3600 - 60));
    assert_eq!(b.get("/").await.status, 200, "used within 8 h: still open (and touched)");
    c.clock.advance(Duration::from_secs(8 * 3600 - 60));
    assert_eq!(b.get("/").await.status, 200, "8 h after its last use, not after its start");
    c.clock.advance(Duration::from_secs(8 * 3600 + 1));
    assert_eq!(b.get("/").await.location.as_deref(), Some("/login"), "idle past 8 h");
    b.login("an").await;
    let csrf = b.csrf().await;
    let a = b.post("/logout", &[("csrf", &csrf)]).await;
    assert_eq!(a.location.as_deref(), Some("/login"));
    assert!(a.set_cookie.unwrap().contains("Max-Age=0"));
    assert!(!b.cookies.contains_key("loa_session"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_without_its_csrf_token_is_refused_and_changes_nothing() {
    let c = central(|_| {}).await;
    let mut b = Browser::new(&c.url);
    b.login("an").await;
    let push = [
        ("text", "Thử nghiệm"),
        ("to", "all"),
        ("priority", "test"),
        ("expires_mins", "10"),
        ("confirmed", "1"),
    ];
    let a = b.post("/bulletins", &push).await;
    assert_eq!(a.status, 403, "{}", a.body);
    assert!(a.body.contains("CSRF"), "{}", a.body);
    let mut wrong = push.to_vec();
    wrong.push(("csrf", "not-the-token"));
    assert_eq!(b.post("/bulletins", &wrong).await.status, 403);
    // Another session's token does not do either.
    let mut other = Browser::new(&c.url);
    other.login("binh").await;
    let theirs = other.csrf().await;
    let mut stolen = push.to_vec();
    stolen.push(("csrf", &theirs));
    assert_eq!(b.post("/bulletins", &stolen).await.status, 403);
    assert!(
        loa::central::bulletins::operate::list(&c.state, &loa::store::Role::Admin, 10)
            .unwrap()
            .is_empty()
    );
    // With it, the push goes out.
    let mine = b.csrf().await;
    let mut good = push.to_vec();
    good.push(("csrf", &mine));
    let a = b.post("/bulletins", &good).await;
    assert_eq!(a.status, 303, "{}", a.body);
    assert_eq!(
        loa::central::bulletins::operate::list(&c.state, &loa::store::Role::Admin, 10)
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_district_account_sees_and_touches_only_its_own_area() {
    let c = central(|_| {}).await;
    // The province pushes a test bulletin to Tịnh Biên's station only.
    let mut admin = Browser::new(&c.url);
    admin.login("an").await;
    let csrf = admin.csrf().await;
    let a = admin
        .post(
            "/bulletins",
            &[
                ("csrf", &csrf),
                ("text", "Thử"),
                ("to", "co-to"),
                ("priority", "test"),
                ("expires_mins", "10"),
                ("confirmed", "1"),
            ],
        )
        .await;
    let elsewhere = a.location.unwrap();

    let mut chi = Browser::new(&c.url);
    chi.login("chi").await;
    let fleet = chi.get("/").await.body;
    assert!(
        fleet.contains("data-station=\"tri-ton\"") && fleet.contains("data-station=\"ba-chuc\""),
        "{fleet}"
    );
    assert!(!fleet.contains("co-to"), "{fleet}");
    let part = chi.get("/fleet/table").await.body;
    assert!(!part.contains("co-to"), "{part}");
    let page = chi.get("/bulletins").await.body;
    assert!(
        !page.contains("co-to") && !page.contains("Tịnh Biên"),
        "neither in the list nor the form: {page}"
    );
    assert!(!page.contains("value=\"all\""), "a district cannot push to all: {page}");
    assert!(!page.contains("/audit"), "no audit link for a district");
    assert_eq!(chi.get(&elsewhere).await.status, 404);
    assert_eq!(chi.get(&format!("{elsewhere}/board")).await.status, 404);
    let csrf = chi.csrf().await;
    let a = chi.post(&format!("{elsewhere}/cancel"), &[("csrf", &csrf)]).await;
    assert_eq!(a.status, 404, "{}", a.body);
    assert!(a.body.contains("Không tìm thấy (hoặc tài khoản này không được xem)."), "{}", a.body);
    for to in ["co-to", "district:Tịnh Biên", "all"] {
        let a = chi
            .post(
                "/bulletins",
                &[
                    ("csrf", &csrf),
                    ("text", "Thử"),
                    ("to", to),
                    ("priority", "test"),
                    ("expires_mins", "10"),
                ],
            )
            .await;
        assert!(a.status == 403 || a.status == 404, "{to}: {} {}", a.status, a.body);
    }
    assert_eq!(chi.get("/audit").await.status, 403);
    // Its own area: the confirmation names both stations under Tri Tôn.
    let a = chi
        .post(
            "/bulletins",
            &[
                ("csrf", &csrf),
                ("text", "Thử"),
                ("to", "district:Tri Tôn"),
                ("priority", "test"),
                ("expires_mins", "10"),
            ],
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
    assert!(a.body.contains("<strong>2 trạm</strong>"), "{}", a.body);
    // The text was spoken already: the confirmation plays it and pushes that file.
    assert!(a.body.contains("id=\"preview\""), "{}", a.body);
    assert!(a.body.contains("name=\"text\" value=\"\""), "{}", a.body);
    assert!(a.body.contains("name=\"title\" value=\"Thử\""), "{}", a.body);
    // One byte past the form's bound is refused whole.
    let big = "x".repeat(loa::central::body::CONSOLE_PUSH_LIMIT);
    assert_eq!(chi.post("/bulletins", &[("csrf", &csrf), ("text", &big)]).await.status, 413);
    // A viewer has no push form and may not push.
    let mut dung = Browser::new(&c.url);
    dung.login("dung").await;
    assert!(!dung.get("/bulletins").await.body.contains("id=\"push\""));
    let csrf = dung.csrf().await;
    let a = dung
        .post(
            "/bulletins",
            &[
                ("csrf", &csrf),
                ("text", "Thử"),
                ("to", "tri-ton"),
                ("priority", "test"),
                ("expires_mins", "10"),
                ("confirmed", "1"),
            ],
        )
        .await;
    assert_eq!(a.status, 403, "{}", a.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn console_and_api_actions_land_in_the_audit_trail_and_two_people_approve_an_emergency() {
    let c = central(|config| config.two_person_rule = true).await;
    let mut an = Browser::new(&c.url);
    an.login("an").await;
    let csrf = an.csrf().await;
    // An emergency to two areas waits for a second admin.
    let a = an
        .post(
            "/bulletins",
            &[
                ("csrf", &csrf),
                ("title", "Lũ"),
                ("text", "Cảnh báo lũ"),
                ("to", "all"),
                ("priority", "emergency"),
                ("expires_mins", "30"),
            ],
        )
        .await;
    assert!(
        a.body.contains("<strong>3 trạm</strong>") && a.body.contains("3 khu vực"),
        "{}",
        a.body
    );
    let a = an
        .post(
            "/bulletins",
            &[
                ("csrf", &csrf),
                ("title", "Lũ"),
                ("text", "Cảnh báo lũ"),
                ("to", "all"),
                ("priority", "emergency"),
                ("expires_mins", "30"),
                ("confirmed", "1"),
            ],
        )
        .await;
    let page = a.location.unwrap();
    let shown = an.get(&page).await.body;
    assert!(shown.contains("waiting-approval"), "{shown}");
    // The one who asked cannot be the second person.
    let a = an.post(&format!("{page}/approve"), &[("csrf", &csrf)]).await;
    assert!(a.status >= 400, "{}", a.body);
    let mut binh = Browser::new(&c.url);
    binh.login("binh").await;
    let csrf_b = binh.csrf().await;
    assert!(binh.get(&page).await.body.contains("id=\"approve\""));
    let a = binh.post(&format!("{page}/approve"), &[("csrf", &csrf_b)]).await;
    assert_eq!(a.status, 303, "{}", a.body);
    let shown = binh.get(&page).await.body;
    assert!(shown.contains("approved"), "{shown}");
    // Cancelled from the console with htmx's header instead of the field.
    let r = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .post(format!("{}{page}/cancel", c.url))
        .header("cookie", binh.cookie().unwrap())
        .header("x-csrf-token", &csrf_b)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    // And a push through the API with a token.
    let r = reqwest::Client::new()
        .post(format!("{}/api/v1/bulletins", c.url))
        .bearer_auth(&c.admin_token)
        .json(&loa::protocol::PushBulletinRequest {
            title: None,
            audio_sha256: None,
            text: Some("Thử API".into()),
            voice: None,
            to: loa::protocol::Target::All,
            priority: loa::protocol::BulletinPriority::Test,
            repeat: 0,
            interval_secs: 0,
            expires_secs: 600,
            tone: false,
        })
        .send()
        .await
        .unwrap();
    assert!(r.status().is_success(), "{}", r.text().await.unwrap());

    let audit = an.get("/audit").await.body;
    for needle in [
        "data-action=\"user.add\"",
        "data-action=\"user.login\"",
        "data-action=\"bulletin.cancel\"",
        "data-action=\"bulletin.approve\"",
        "an (admin)",
        "binh (admin)",
        "127.0.0.1:",
    ] {
        assert!(audit.contains(needle), "{needle} missing from the audit page: {audit}");
    }
    let lines = c.state.store.audit_log(100).unwrap();
    assert!(
        lines.iter().any(|e| e.action == "bulletin.push" && e.who == "admin"),
        "the API's push: {lines:?}"
    );
    assert!(
        lines.iter().any(|e| e.action.starts_with("bulletin.") && e.who == "an (admin)"),
        "{lines:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_console_listen_the_console_moves_to_its_own_address() {
    let c = central(|config| config.console_listen = Some("127.0.0.1:0".parse().unwrap())).await;
    let listener = loa::central::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let console_url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(loa::central::serve_console(
        listener,
        None,
        c.state.clone(),
        std::future::pending(),
    ));
    // The main listener: the API, no pages.
    let mut main = Browser::new(&c.url);
    assert_eq!(main.get("/login").await.status, 404);
    let r = reqwest::Client::new()
        .get(format!("{}/api/v1/status", c.url))
        .bearer_auth(&c.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // The console's own: pages, no API.
    let mut b = Browser::new(&console_url);
    b.login("an").await;
    assert!(b.get("/").await.body.contains("data-station=\"tri-ton\""));
    let r = reqwest::Client::new()
        .get(format!("{console_url}/api/v1/status"))
        .bearer_auth(&c.admin_token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_tls_the_session_cookie_is_secure() {
    let c = central(|_| {}).await;
    let fixture = |name: &str| {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls").join(name)
    };
    let acceptor = loa::central::tls::acceptor(&fixture("cert.pem"), &fixture("key.pem")).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(loa::central::serve_tls(
        listener,
        acceptor,
        c.state.clone(),
        std::future::pending(),
    ));
    let ca = std::fs::read(fixture("ca.pem")).unwrap();
    let http = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&ca).unwrap())
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let r = http
        .post(format!("https://localhost:{port}/login"))
        .form(&[("username", "an"), ("password", password("an").as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 303);
    let cookie = r.headers().get("set-cookie").unwrap().to_str().unwrap().to_string();
    assert!(
        cookie.ends_with("; Secure")
            && cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pages_are_vietnamese_until_english_is_chosen() {
    let c = central(|_| {}).await;
    let mut b = Browser::new(&c.url);
    assert!(b.get("/login").await.body.contains("Đăng nhập"));
    b.login("an").await;
    let page = b.get("/").await.body;
    assert!(page.contains("<html lang=\"vi\"") && page.contains("Các trạm"), "{page}");
    let csrf = b.csrf().await;
    let a = b.post("/lang", &[("csrf", &csrf), ("lang", "en")]).await;
    assert_eq!(a.status, 303);
    assert!(a.set_cookie.unwrap().starts_with("loa_lang=en"));
    let page = b.get("/").await.body;
    assert!(page.contains("<html lang=\"en\"") && page.contains("<h1>Stations</h1>"), "{page}");
    assert!(b.get("/bulletins").await.body.contains("Push a bulletin"));
    // Without the token the switch is refused like any other form.
    assert_eq!(b.post("/lang", &[("lang", "vi")]).await.status, 403);
    let a = b.post("/lang", &[("csrf", &csrf), ("lang", "vi")]).await;
    assert_eq!(a.status, 303);
    assert!(b.get("/").await.body.contains("Các trạm"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn path_and_query_values_past_their_bounds_are_refused_cleanly() {
    let c = central(|_| {}).await;
    let mut b = Browser::new(&c.url);
    b.login("an").await;
    let csrf = b.csrf().await;
    // A bulletin id: at most 100 plain characters; one past is "not found", never a panic.
    let long = format!("b-{}", "1".repeat(99));
    assert_eq!(long.len(), 101);
    assert_eq!(b.get(&format!("/bulletins/{long}")).await.status, 404);
    assert_eq!(b.get(&format!("/bulletins/{long}/board")).await.status, 404);
    assert_eq!(b.post(&format!("/bulletins/{long}/cancel"), &[("csrf", &csrf)]).await.status, 404);
    assert_eq!(b.post(&format!("/bulletins/{long}/approve"), &[("csrf", &csrf)]).await.status, 404);
    assert_eq!(b.get("/bulletins/b-%0A%1B").await.status, 404);
    // Filters: a page asked for by a cursor that is not one, a repeat count out of range.
    assert_eq!(b.get("/playlog?after=nonsense").await.status, 400);
    assert_eq!(b.get(&format!("/stations/{}", "x".repeat(10_000))).await.status, 404);
    let a = b
        .post(
            "/bulletins",
            &[
                ("csrf", &csrf),
                ("text", "x"),
                ("to", "all"),
                ("priority", "test"),
                ("expires_mins", "10"),
                ("repeat", "4294967296"),
            ],
        )
        .await;
    assert_eq!(a.status, 400, "{}", a.body);
    let a = b
        .post(
            "/bulletins",
            &[
                ("csrf", &csrf),
                ("text", "x"),
                ("to", "all"),
                ("priority", "test"),
                ("expires_mins", "10081"),
            ],
        )
        .await;
    assert_eq!(a.status, 400, "one minute past 7 days, refused before confirming: {}", a.body);
    assert!(
        loa::central::bulletins::operate::list(&c.state, &loa::store::Role::Admin, 10)
            .unwrap()
            .is_empty()
    );
}
