//! Alerts, each fired once and cleared once: an in-process central (its real store, hub
//! and HTTP routes) looked at by `alerts::Watcher::tick` at instants the test chooses,
//! sending to a fake webhook (which fails its first request, so the retry is seen) and
//! to a small SMTP receiver speaking implicit TLS with a test CA (lettre on rustls, with
//! authentication). Problems are made through the store and the API as stations would
//! make them: heartbeats (clock off, cache short, output failed, then silence), playlog
//! records (a broken hash chain, a silent item), an emergency bulletin not aired. Central
//! is restarted in the middle: an open alert is not raised again, and still clears once.

mod field_support;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Utc};
use loa::central::alerts::notify::WebhookBody;
use loa::central::alerts::{AlertsConfig, SmtpTls, Watcher};
use loa::central::{self, CentralConfig};
use loa::clock::SharedClock;
use loa::protocol::{
    BulletinPriority, DeliveryReport, DeliveryState, Entry, GENESIS, Heartbeat, Levels, Outcome,
    OutputFailure, PushBulletinRequest, PushBulletinResponse, Record, Target, chain_hash,
};
use loa::schedule::{Layer, Priority};
use loa::store::{Station, StoredHeartbeat};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

/// What the fake webhook received (successfully), and how many requests it failed.
#[derive(Default)]
struct Hook {
    bodies: Vec<WebhookBody>,
    failed: usize,
}

async fn webhook() -> (SocketAddr, Arc<Mutex<Hook>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let hook = Arc::new(Mutex::new(Hook::default()));
    let seen = hook.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut tcp, _)) = listener.accept().await else { return };
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Headers, then content-length bytes of body.
                let body = loop {
                    let n = tcp.read(&mut chunk).await.unwrap_or(0);
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let length = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + length {
                            break buf[end + 4..end + 4 + length].to_vec();
                        }
                    }
                };
                let first = {
                    let mut hook = seen.lock().unwrap();
                    let first = hook.failed == 0;
                    if first {
                        hook.failed += 1;
                    } else {
                        hook.bodies.push(serde_json::from_slice(&body).expect("webhook json"));
                    }
                    first
                };
                let status = if first { "500 Internal Server Error" } else { "200 OK" };
                let _ = tcp
                    .write_all(
                        format!(
                            "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                        )
                        .as_bytes(),
                    )
                    .await;
            });
        }
    });
    (addr, hook)
}

/// A small SMTP receiver, implicit TLS, AUTH PLAIN/LOGIN accepted: each message's
/// (authenticated user, subject).
async fn smtp(
    acceptor: tokio_rustls::TlsAcceptor,
) -> (SocketAddr, Arc<Mutex<Vec<(String, String)>>>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let mail = Arc::new(Mutex::new(Vec::new()));
    let got = mail.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else { return };
            let acceptor = acceptor.clone();
            let got = got.clone();
            tokio::spawn(async move {
                let Ok(tls) = acceptor.accept(tcp).await else { return };
                let (read, mut write) = tokio::io::split(tls);
                let mut lines = BufReader::new(read).lines();
                let _ = write.write_all(b"220 localhost ESMTP loa-test\r\n").await;
                let (mut user, mut subject, mut in_data) = (String::new(), String::new(), false);
                while let Ok(Some(line)) = lines.next_line().await {
                    if in_data {
                        if line == "." {
                            in_data = false;
                            got.lock().unwrap().push((user.clone(), std::mem::take(&mut subject)));
                            let _ = write.write_all(b"250 2.0.0 queued\r\n").await;
                        } else if let Some(s) = line.strip_prefix("Subject: ") {
                            subject = s.to_string();
                        }
                        continue;
                    }
                    let upper = line.to_ascii_uppercase();
                    let answer: &[u8] = if upper.starts_with("EHLO") {
                        b"250-localhost\r\n250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n"
                    } else if let Some(plain) = line.strip_prefix("AUTH PLAIN ") {
                        use base64::Engine;
                        let decoded = base64::engine::general_purpose::STANDARD
                            .decode(plain.trim())
                            .unwrap_or_default();
                        user = String::from_utf8_lossy(&decoded)
                            .split('\0')
                            .nth(1)
                            .unwrap_or_default()
                            .to_string();
                        b"235 2.7.0 ok\r\n"
                    } else if upper.starts_with("MAIL FROM") || upper.starts_with("RCPT TO") {
                        b"250 2.1.0 ok\r\n"
                    } else if upper == "DATA" {
                        in_data = true;
                        b"354 go ahead\r\n"
                    } else if upper == "QUIT" {
                        let _ = write.write_all(b"221 bye\r\n").await;
                        return;
                    } else {
                        b"250 ok\r\n"
                    };
                    let _ = write.write_all(answer).await;
                }
            });
        }
    });
    (addr, mail)
}

fn beat(at: DateTime<Utc>) -> Heartbeat {
    Heartbeat {
        manifest_version: Some(1),
        clock_offset_ms: Some(20),
        ready_until: Some(at + Duration::days(2)),
        missing_bytes: 0,
        disk_free_bytes: Some(1 << 30),
        now_playing: None,
        sink_health: "ok".into(),
        sent_at: at,
        clock_step: None,
        clock_synchronized: Some(true),
        central_time: false,
        output_failed: None,
    }
}

fn entry(item: &str, planned: DateTime<Utc>, silent: bool) -> Entry {
    Entry {
        item_id: item.into(),
        title: item.into(),
        layer: Layer::Provincial,
        priority: Priority::Normal,
        planned,
        outcome: Outcome::Played,
        started: Some(planned),
        ended: Some(planned + Duration::seconds(10)),
        delay_ms: Some(0),
        played_secs: Some(10.0),
        reason: None,
        audio_sha256: None,
        levels: Some(Levels {
            peak_dbfs: if silent { -90.0 } else { -3.0 },
            rms_dbfs: -20.0,
            silent,
        }),
        reason_code: None,
        relay: None,
    }
}

/// Records `seq` from `from` on, chained from `prev` (a wrong `prev` breaks the chain).
fn records(station: &str, from: u64, prev: &str, entries: Vec<Entry>) -> Vec<Record> {
    let mut prev = prev.to_string();
    let mut out = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let seq = from + i as u64;
        let hash = chain_hash(&prev, station, seq, &entry);
        out.push(Record {
            station: station.into(),
            seq,
            entry,
            prev_hash: prev.clone(),
            hash: hash.clone(),
            acked: false,
        });
        prev = hash;
    }
    out
}

/// (kind:station → events) seen by the webhook, and the e-mail subjects.
fn events(hook: &Arc<Mutex<Hook>>) -> BTreeMap<String, Vec<String>> {
    let mut out: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for b in &hook.lock().unwrap().bodies {
        out.entry(b.key.clone()).or_default().push(b.event.clone());
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_alert_fires_once_and_clears_once_by_webhook_and_email_across_a_restart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("central");
    let init = central::init(&data).expect("init");
    // The mail server's certificate, from a CA of its own.
    let mail_tls = dir.path().join("mail");
    let issued = central::tls::issue(&mail_tls, &["localhost".to_string()], Utc::now().timestamp())
        .expect("mail tls");
    let acceptor = central::tls::acceptor(&issued.cert, &issued.key).expect("acceptor");
    let (hook_addr, hook) = webhook().await;
    let (smtp_addr, mail) = smtp(acceptor).await;

    let config = CentralConfig {
        data_dir: data.clone(),
        alerts: AlertsConfig {
            retry_secs: 1,
            webhook_url: Some(format!("http://{hook_addr}/hook")),
            smtp_host: Some("localhost".into()),
            smtp_port: Some(smtp_addr.port()),
            smtp_tls: SmtpTls::Implicit,
            smtp_username: Some("loa-alerts".into()),
            smtp_password: Some("secret".into()),
            smtp_ca_cert: Some(issued.ca_cert.clone()),
            email_from: Some("loa <loa@example.vn>".into()),
            email_to: vec!["it@example.vn".into()],
            ..AlertsConfig::default()
        },
        ..CentralConfig::default()
    };
    config.alerts.check().expect("valid alerts config");
    let clock: SharedClock = Arc::new(loa::clock::SystemClock);
    let state = central::open(config.clone(), clock.clone()).expect("open");
    let station =
        Station { id: "tri-ton".into(), name: "Tri Tôn".into(), district: "Tri Tôn".into() };
    let station_token = central::add_station(state.store.as_ref(), &station).expect("station");
    let t0 = Utc::now();
    let at = |secs: i64| t0 + Duration::seconds(secs);
    let put = |state: &Arc<central::AppState>, received: DateTime<Utc>, h: Heartbeat| {
        state
            .store
            .put_heartbeat(&StoredHeartbeat {
                station_id: "tri-ton".into(),
                received_at: received,
                heartbeat: h,
            })
            .expect("heartbeat");
    };

    // Healthy: nothing.
    put(&state, at(0), beat(at(0)));
    let watcher = Watcher::new(state.clone());
    assert_eq!(watcher.tick(at(0)).await.expect("tick"), (0, 0));

    // Clock 1.5 s off, cache short of the next 24 h, sound output failed: three alerts,
    // once each however often central looks.
    let mut sick = beat(at(1));
    sick.clock_offset_ms = Some(1500);
    sick.ready_until = Some(at(3600));
    sick.missing_bytes = 5_000_000;
    sick.output_failed = Some(OutputFailure::new(at(-30), "snd_pcm_writei: I/O error"));
    put(&state, at(1), sick);
    assert_eq!(watcher.tick(at(1)).await.expect("tick"), (3, 0));
    assert_eq!(watcher.tick(at(2)).await.expect("tick"), (0, 0));
    assert_eq!(watcher.tick(at(3)).await.expect("tick"), (0, 0));

    // `loa status --problems` sees them (GET /api/v1/alerts over the real routes).
    let listener = central::bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(central::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    let out = tokio::task::spawn_blocking({
        let (url, admin) = (url.clone(), init.admin_token.clone());
        move || {
            std::process::Command::new(env!("CARGO_BIN_EXE_loa"))
                .args(["status", "--problems", "--central", &url, "--token", &admin])
                .env("HOME", "/nonexistent")
                .output()
                .expect("loa status --problems")
        }
    })
    .await
    .unwrap();
    let table = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    for kind in ["clock", "cache", "output"] {
        assert!(table.contains(kind), "{table}");
    }
    assert!(table.contains("I/O error"), "{table}");

    // Well again: each clears once.
    put(&state, at(4), beat(at(4)));
    assert_eq!(watcher.tick(at(4)).await.expect("tick"), (0, 3));
    assert_eq!(watcher.tick(at(5)).await.expect("tick"), (0, 0));

    // Silent for 20 minutes: offline.
    assert_eq!(watcher.tick(at(20 * 60)).await.expect("tick"), (1, 0));

    // Central restarts: the open alert is not raised again, and clears once.
    stop.send(()).ok();
    let _ = server.await;
    drop(watcher);
    drop(state);
    let state = central::open(config.clone(), clock.clone()).expect("reopen");
    let watcher = Watcher::new(state.clone());
    assert_eq!(watcher.tick(at(21 * 60)).await.expect("tick"), (0, 0));
    put(&state, at(22 * 60), beat(at(22 * 60)));
    assert_eq!(watcher.tick(at(22 * 60)).await.expect("tick"), (0, 1));

    // The playlog: a silent item, then a record whose link is wrong (a chain break).
    let first = records("tri-ton", 1, GENESIS, vec![entry("ban-tin-sang", at(-3600), true)]);
    state.store.ingest_playlog("tri-ton", &first, at(22 * 60)).expect("ingest");
    assert_eq!(watcher.tick(at(22 * 60 + 1)).await.expect("tick"), (1, 0), "silent");
    let wrong_link =
        records("tri-ton", 2, &"0".repeat(64), vec![entry("ban-tin-chieu", at(-60), false)]);
    state.store.ingest_playlog("tri-ton", &wrong_link, at(22 * 60 + 2)).expect("ingest");
    // The later item aired with sound: silence clears; the break is raised.
    assert_eq!(watcher.tick(at(22 * 60 + 3)).await.expect("tick"), (1, 1), "chain up, silent down");

    // An emergency bulletin pushed through the API, not aired at its target within the
    // grace (10 min): raised; the station's `started` report clears it.
    let listener = central::bind("127.0.0.1:0".parse().unwrap()).await.expect("bind");
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(central::serve(listener, state.clone(), async {
        let _ = stopped.await;
    }));
    let http = reqwest::Client::new();
    let audio = loa::testing::wav_bytes(1.0, 440.0, 0.3);
    let uploaded: serde_json::Value = http
        .put(format!("{url}/api/v1/audio?title=canh-bao"))
        .bearer_auth(&init.admin_token)
        .body(audio)
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("upload json");
    let sha = uploaded["sha256"].as_str().expect("sha256").to_string();
    let pushed: PushBulletinResponse = http
        .post(format!("{url}/api/v1/bulletins"))
        .bearer_auth(&init.admin_token)
        .json(&PushBulletinRequest {
            title: Some("Cảnh báo lũ".into()),
            audio_sha256: Some(sha),
            text: None,
            voice: None,
            to: Target::Stations(vec!["tri-ton".into()]),
            priority: BulletinPriority::Emergency,
            repeat: 0,
            interval_secs: 0,
            expires_secs: 7200,
            tone: false,
        })
        .send()
        .await
        .expect("push")
        .json()
        .await
        .expect("push json");
    let pushed_at = pushed.issued_at;
    put(&state, pushed_at + Duration::minutes(11), beat(pushed_at + Duration::minutes(11)));
    assert_eq!(
        watcher.tick(pushed_at + Duration::minutes(5)).await.expect("tick"),
        (0, 0),
        "within the grace"
    );
    assert_eq!(
        watcher.tick(pushed_at + Duration::minutes(11)).await.expect("tick"),
        (1, 0),
        "emergency"
    );
    let report = DeliveryReport {
        bulletin_id: pushed.id.clone(),
        state: DeliveryState::Started,
        at: pushed_at + Duration::minutes(12),
        latency_ms: Some(720_000),
        reason: None,
        reason_code: None,
    };
    let answer = http
        .post(format!("{url}/api/v1/station/bulletins/delivery"))
        .bearer_auth(&station_token)
        .json(&report)
        .send()
        .await
        .expect("delivery");
    assert!(answer.status().is_success(), "{}", answer.status());
    let mut cleared = (0, 0);
    for i in 0..50 {
        cleared = watcher
            .tick(pushed_at + Duration::minutes(12) + Duration::seconds(i))
            .await
            .expect("tick");
        if cleared.1 == 1 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(cleared, (0, 1), "the emergency clears once it aired");
    stop.send(()).ok();
    let _ = server.await;

    // Everything is sent, the webhook's failed first try included (retried 1 s later).
    let end = pushed_at + Duration::hours(1);
    for i in 0..10 {
        watcher.deliver(end + Duration::seconds(i)).await.expect("deliver");
    }
    let emergency = format!("emergency:{}:tri-ton", pushed.id);
    let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for key in [
        "clock:tri-ton",
        "cache:tri-ton",
        "output:tri-ton",
        "offline:tri-ton",
        "silent:tri-ton",
        emergency.as_str(),
    ] {
        expected.insert(key.to_string(), vec!["raised".into(), "cleared".into()]);
    }
    expected.insert("chain:tri-ton".into(), vec!["raised".into()]);
    assert_eq!(events(&hook), expected, "webhook events");
    assert_eq!(hook.lock().unwrap().failed, 1);
    let bodies = hook.lock().unwrap().bodies.clone();
    let offline = bodies.iter().find(|b| b.key == "offline:tri-ton").expect("offline");
    assert!(offline.text.starts_with("[loa] RAISED offline:tri-ton"), "{}", offline.text);
    assert_eq!(offline.station.as_deref(), Some("tri-ton"));

    let mail = mail.lock().unwrap().clone();
    assert_eq!(mail.len(), 13, "{mail:#?}");
    assert!(mail.iter().all(|(user, _)| user == "loa-alerts"), "{mail:?}");
    for (key, events) in &expected {
        for event in events {
            let subject = format!("[loa] {} {key}", event.to_uppercase());
            let n = mail.iter().filter(|(_, s)| s.starts_with(&subject)).count();
            assert_eq!(n, 1, "e-mails {subject:?}: {mail:#?}");
        }
    }
}
