//! An in-process central on 127.0.0.1:0 with a temporary data directory and a manual
//! clock, and a station sync client for it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use loa::central::{self, AppState, CentralConfig};
use loa::clock::{ManualClock, SharedClock};
use loa::protocol::{AudioInfo, LoadScheduleRequest, Target};
use loa::signing::PublicKey;
use loa::station::sync::{Backoff, SyncConfig, Syncer};
use loa::store::{Role, Station};

/// 2026-12-01 07:00 in Hà Nội / Hồ Chí Minh (00:00 UTC).
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap()
}

/// A provincial schedule playing `audio/a.wav` at 05:30 and `audio/b.wav` at 17:00 local.
pub const PROVINCIAL: &str = r#"layer = "provincial"
timezone = "Asia/Ho_Chi_Minh"

[[item]]
id = "ban-tin-sang"
title = "Bản tin sáng"
audio = "audio/a.wav"
cron = "30 5 * * *"

[[item]]
id = "ban-tin-chieu"
title = "Bản tin chiều"
audio = "audio/b.wav"
cron = "0 17 * * *"
"#;

pub const LOCAL: &str = r#"layer = "local"

[[item]]
id = "xa-nha"
title = "Chương trình xã nhà"
audio = "audio/a.wav"
cron = "0 18 * * 1-6"
"#;

pub struct Central {
    pub addr: SocketAddr,
    pub url: String,
    pub state: Arc<AppState>,
    pub admin: String,
    pub clock: Arc<ManualClock>,
    pub dir: tempfile::TempDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Central {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(adjust: impl FnOnce(&mut CentralConfig)) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let data_dir = dir.path().join("central");
        let init = central::init(&data_dir).unwrap();
        let mut config = CentralConfig { data_dir, ..CentralConfig::default() };
        adjust(&mut config);
        let clock = ManualClock::new(t0());
        Self::serve(dir, config, clock, init.admin_token).await
    }

    async fn serve(
        dir: tempfile::TempDir,
        config: CentralConfig,
        clock: Arc<ManualClock>,
        admin: String,
    ) -> Self {
        let shared: SharedClock = clock.clone();
        let state = central::open(config, shared).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn({
            let state = state.clone();
            async move {
                central::serve(listener, state, async {
                    let _ = stopped.await;
                })
                .await
                .unwrap();
            }
        });
        Self {
            addr,
            url: format!("http://{addr}"),
            state,
            admin,
            clock,
            dir,
            stop: Some(stop),
            task: Some(task),
        }
    }

    /// Stops serving (connections are dropped) and returns the data directory, so the
    /// same central can be started again with [`Central::restart`].
    pub async fn stop(mut self) -> (tempfile::TempDir, CentralConfig, Arc<ManualClock>, String) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        let config = self.state.config.clone();
        let dir = std::mem::replace(&mut self.dir, tempfile::tempdir().unwrap());
        (dir, config, self.clock.clone(), self.admin.clone())
    }

    pub async fn restart(
        parts: (tempfile::TempDir, CentralConfig, Arc<ManualClock>, String),
    ) -> Self {
        let (dir, config, clock, admin) = parts;
        Self::serve(dir, config, clock, admin).await
    }

    pub fn public_key(&self) -> PublicKey {
        self.state.key.public()
    }

    pub fn add_station(&self, id: &str, district: &str) -> String {
        let station =
            Station { id: id.into(), name: format!("Đài {id}"), district: district.into() };
        central::add_station(self.state.store.as_ref(), &station).unwrap()
    }

    pub fn add_operator(&self, role: Role) -> String {
        central::add_operator(self.state.store.as_ref(), &role, "test").unwrap()
    }

    /// `GET PATH` (from `/api/v1/…`) as `token`; the answer's JSON.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &str, token: &str) -> T {
        reqwest::Client::new()
            .get(format!("{}{path}", self.url))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    pub async fn upload(&self, token: &str, bytes: Vec<u8>, title: &str) -> reqwest::Response {
        reqwest::Client::new()
            .put(format!("{}/api/v1/audio?title={title}", self.url))
            .bearer_auth(token)
            .body(bytes)
            .send()
            .await
            .unwrap()
    }

    pub async fn upload_ok(&self, bytes: Vec<u8>, title: &str) -> AudioInfo {
        let response = self.upload(&self.admin.clone(), bytes, title).await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        response.json().await.unwrap()
    }

    pub async fn load(
        &self,
        token: &str,
        origin: &str,
        source: &str,
        audio: &[(&str, &str)],
        to: Target,
    ) -> reqwest::Response {
        let request = LoadScheduleRequest {
            origin: origin.into(),
            source: source.into(),
            audio: audio
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
            to,
        };
        reqwest::Client::new()
            .post(format!("{}/api/v1/schedules", self.url))
            .bearer_auth(token)
            .json(&request)
            .send()
            .await
            .unwrap()
    }

    /// Uploads two tones and loads [`PROVINCIAL`] to all stations; returns (a, b).
    pub async fn provincial(&self) -> (AudioInfo, AudioInfo) {
        let a = self.upload_ok(loa::testing::wav_bytes(3.0, 440.0, 0.3), "a").await;
        let b = self.upload_ok(loa::testing::wav_bytes(2.0, 660.0, 0.3), "b").await;
        let response = self
            .load(
                &self.admin.clone(),
                "provincial.toml",
                PROVINCIAL,
                &[("audio/a.wav", &a.sha256), ("audio/b.wav", &b.sha256)],
                Target::All,
            )
            .await;
        assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
        (a, b)
    }

    pub fn syncer(&self, station: &str, token: &str, cache: &std::path::Path) -> Syncer {
        self.syncer_via(&self.url.clone(), station, token, cache)
    }

    pub fn syncer_via(
        &self,
        url: &str,
        station: &str,
        token: &str,
        cache: &std::path::Path,
    ) -> Syncer {
        let mut config =
            SyncConfig::new(url, token, station, self.public_key(), cache.to_path_buf());
        config.backoff = Backoff {
            base: std::time::Duration::from_millis(5),
            max: std::time::Duration::from_millis(50),
        };
        config.long_poll = std::time::Duration::from_secs(5);
        Syncer::new(config, self.clock.clone()).unwrap()
    }
}
