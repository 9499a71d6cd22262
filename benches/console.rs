//! The console's fleet page for 1,000 stations, each with a heartbeat: time to answer
//! `GET /` (rendered by central for an admin's session, over loopback HTTP) and the
//! weight of a first load (the page, htmx, the stylesheet and the script).
//! Run with `cargo bench --bench console`; `LOA_BENCH_STATIONS=N` changes the fleet.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loa::central::{self, CentralConfig};
use loa::clock::{SharedClock, SystemClock};
use loa::protocol::Heartbeat;
use loa::store::{Station, StoredHeartbeat};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let stations: usize =
        std::env::var("LOA_BENCH_STATIONS").ok().and_then(|n| n.parse().ok()).unwrap_or(1000);
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("central");
    central::init(&data).expect("init");
    let clock: SharedClock = Arc::new(SystemClock);
    let state = central::open(CentralConfig { data_dir: data, ..CentralConfig::default() }, clock)
        .expect("open");
    let now = chrono::Utc::now();
    for i in 0..stations {
        let id = format!("xa-{i:05}");
        let area = format!("Huyện {}/Xã {}", i % 11, i % 150);
        let s = Station { id: id.clone(), name: format!("Đài xã {i}"), district: area };
        central::add_station(state.store.as_ref(), &s).expect("station");
        state
            .store
            .put_heartbeat(&StoredHeartbeat {
                station_id: id,
                received_at: now,
                heartbeat: Heartbeat {
                    manifest_version: Some(3),
                    clock_offset_ms: Some((i % 7) as i64 * 300),
                    ready_until: Some(
                        now + chrono::Duration::hours(if i % 9 == 0 { 2 } else { 30 }),
                    ),
                    missing_bytes: 0,
                    disk_free_bytes: Some(1 << 30),
                    now_playing: (i % 3 == 0).then(|| "ban-tin-sang".to_string()),
                    sink_health: if i % 50 == 0 { "failed".into() } else { "ok".into() },
                    sent_at: now,
                    clock_step: None,
                    clock_synchronized: Some(true),
                    central_time: false,
                    output_failed: None,
                },
            })
            .expect("heartbeat");
    }
    let by = central::people::Changer { who: "bench".into(), from: "bench".into() };
    let hash = central::people::hash_password("mật khẩu đo đạc").expect("hash");
    central::people::add(state.store.as_ref(), &by, "an", &loa::store::Role::Admin, hash, now)
        .expect("person");
    let listener = central::bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(central::serve(listener, state.clone(), std::future::pending()));
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let login = http
        .post(format!("{url}/login"))
        .form(&[("username", "an"), ("password", "mật khẩu đo đạc")])
        .send()
        .await
        .expect("login");
    let cookie = login
        .headers()
        .get("set-cookie")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .expect("a session cookie")
        .to_string();
    let mut times = Vec::new();
    let mut page = 0usize;
    for _ in 0..60 {
        let start = Instant::now();
        let body = http
            .get(format!("{url}/"))
            .header("cookie", &cookie)
            .send()
            .await
            .expect("fleet")
            .bytes()
            .await
            .expect("body");
        times.push(start.elapsed());
        page = body.len();
    }
    times.drain(..10); // warm-up
    times.sort();
    // What travels: gzip, as every browser asks for it.
    let page_gz = http
        .get(format!("{url}/"))
        .header("cookie", &cookie)
        .header("accept-encoding", "gzip")
        .send()
        .await
        .expect("fleet")
        .bytes()
        .await
        .expect("body")
        .len();
    let mut assets_gz = 0usize;
    for path in [
        central::console::layout::HTMX_PATH,
        central::console::layout::CSS_PATH,
        central::console::layout::JS_PATH,
    ] {
        let r = http
            .get(format!("{url}{path}"))
            .header("accept-encoding", "gzip")
            .send()
            .await
            .expect("asset");
        assets_gz += r.bytes().await.expect("asset").len();
    }
    let mut assets = 0usize;
    for path in [
        central::console::layout::HTMX_PATH,
        central::console::layout::CSS_PATH,
        central::console::layout::JS_PATH,
    ] {
        assets += http
            .get(format!("{url}{path}"))
            .send()
            .await
            .expect("asset")
            .bytes()
            .await
            .expect("asset")
            .len();
    }
    println!(
        "fleet page, {stations} stations: p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms (GET / over loopback, {} runs)",
        percentile(&times, 0.5).as_secs_f64() * 1000.0,
        percentile(&times, 0.99).as_secs_f64() * 1000.0,
        times.last().unwrap().as_secs_f64() * 1000.0,
        times.len()
    );
    println!(
        "first load: page {} KB + htmx, CSS and script {} KB = {} KB (uncompressed)",
        page / 1024,
        assets / 1024,
        (page + assets) / 1024
    );
    println!(
        "first load gzipped (what travels): page {} KB + assets {} KB = {} KB",
        page_gz / 1024,
        assets_gz / 1024,
        (page_gz + assets_gz) / 1024
    );
    let login_page = http
        .get(format!("{url}/login"))
        .send()
        .await
        .expect("login page")
        .bytes()
        .await
        .expect("body")
        .len();
    println!("login page: {login_page} bytes (no script)");
}
