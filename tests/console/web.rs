//! A real central (in this process, on a real TCP port, with a manual clock) and a
//! browser-like HTTP client for the console: cookies kept by hand, redirects not
//! followed (so each 303 is seen), forms posted url-encoded.

use std::sync::Arc;

use loa::central::{self, AppState, CentralConfig};
use loa::clock::{ManualClock, SharedClock};
use loa::store::Station;

pub struct Central {
    pub state: Arc<AppState>,
    pub url: String,
    pub clock: Arc<ManualClock>,
    pub admin_token: String,
    _dir: tempfile::TempDir,
}

/// Central with stations `tri-ton` (Tri Tôn), `ba-chuc` (Tri Tôn/Ba Chúc) and `co-to`
/// (Tịnh Biên), and people `an` (admin), `binh` (admin), `chi` (district Tri Tôn) and
/// `dung` (viewer), each with the password `mật khẩu của NAME`.
pub async fn central(configure: impl FnOnce(&mut CentralConfig)) -> Central {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().join("central");
    let init = central::init(&data_dir).unwrap();
    let mut config = CentralConfig { data_dir, ..CentralConfig::default() };
    configure(&mut config);
    let clock = ManualClock::new(chrono::Utc::now());
    let shared: SharedClock = clock.clone();
    let state = central::open(config, shared).unwrap();
    for (id, area) in
        [("tri-ton", "Tri Tôn"), ("ba-chuc", "Tri Tôn/Ba Chúc"), ("co-to", "Tịnh Biên")]
    {
        let s = Station { id: id.into(), name: id.into(), district: area.into() };
        central::add_station(state.store.as_ref(), &s).unwrap();
    }
    let by = central::people::Changer { who: "test".into(), from: "test".into() };
    for (name, role) in
        [("an", "admin"), ("binh", "admin"), ("chi", "district:Tri Tôn"), ("dung", "viewer")]
    {
        let hash = central::people::hash_password(&password(name)).unwrap();
        central::people::add(
            state.store.as_ref(),
            &by,
            name,
            &role.parse().unwrap(),
            hash,
            loa::clock::Clock::now(clock.as_ref()),
        )
        .unwrap();
    }
    let listener = central::bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(central::serve(listener, state.clone(), std::future::pending()));
    Central { state, url, clock, admin_token: init.admin_token, _dir: dir }
}

pub fn password(name: &str) -> String {
    format!("mật khẩu của {name}")
}

/// One browser: its cookies (the session's, the language's).
pub struct Browser {
    pub http: reqwest::Client,
    pub base: String,
    pub cookies: std::collections::BTreeMap<String, String>,
}

pub struct Answer {
    pub status: u16,
    pub location: Option<String>,
    pub set_cookie: Option<String>,
    pub body: String,
}

impl Browser {
    pub fn new(base: &str) -> Self {
        let http =
            reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
        Browser { http, base: base.to_string(), cookies: Default::default() }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Answer {
        let request = match self.cookie() {
            Some(c) => request.header("cookie", c),
            None => request,
        };
        let r = request.send().await.unwrap();
        let header =
            |name: &str| r.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (status, location, set_cookie) =
            (r.status().as_u16(), header("location"), header("set-cookie"));
        if let Some(sc) = &set_cookie {
            let pair = sc.split(';').next().unwrap_or_default();
            if let Some((name, value)) = pair.split_once('=') {
                if value.is_empty() {
                    self.cookies.remove(name);
                } else {
                    self.cookies.insert(name.to_string(), value.to_string());
                }
            }
        }
        Answer { status, location, set_cookie, body: r.text().await.unwrap() }
    }

    /// The `Cookie` header this browser sends, if it holds any cookie.
    pub fn cookie(&self) -> Option<String> {
        (!self.cookies.is_empty()).then(|| {
            self.cookies.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("; ")
        })
    }

    pub async fn get(&mut self, path: &str) -> Answer {
        let r = self.http.get(format!("{}{path}", self.base));
        self.send(r).await
    }

    pub async fn post(&mut self, path: &str, form: &[(&str, &str)]) -> Answer {
        let r = self.http.post(format!("{}{path}", self.base)).form(form);
        self.send(r).await
    }

    /// Signs in as `name` with `password`.
    pub async fn login_with(&mut self, name: &str, password: &str) -> Answer {
        self.post("/login", &[("username", name), ("password", password)]).await
    }

    /// Signs in as `name` with the right password; panics unless it worked.
    pub async fn login(&mut self, name: &str) -> Answer {
        let a = self.login_with(name, &password(name)).await;
        assert_eq!(a.status, 303, "login as {name}: {}", a.body);
        a
    }

    /// The CSRF token of the current session (from any page's forms).
    pub async fn csrf(&mut self) -> String {
        let page = self.get("/bulletins").await;
        let at = page.body.find("name=\"csrf\" value=\"").expect("a form with a CSRF token") + 19;
        page.body[at..].split('"').next().unwrap().to_string()
    }
}
