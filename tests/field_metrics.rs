//! `/metrics` from a real `loa central`: it parses as Prometheus text (every sample in a
//! family with `# TYPE`, label syntax, numbers, histogram buckets that only grow), its
//! figures match `loa status --format json` for the same fleet, it is served to admin and
//! viewer tokens (not to district tokens, nor without one), and on `metrics_listen`
//! without a token — which must be a loopback address.

mod field_support;
mod loa_proc;

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use chrono::{DateTime, Utc};
use field_support::{Daemon, listening_url};
use loa::protocol::{Entry, FleetStatus, GENESIS, Heartbeat, Levels, Outcome, Record, chain_hash};
use loa::schedule::{Layer, Priority};
use loa_proc::{LOA, add_station, central_init, loa, text};

/// One sample: name, labels, value.
type Sample = (String, BTreeMap<String, String>, f64);

/// A strict reader of the text format (what Prometheus' own parser requires of us).
fn parse(body: &str) -> Vec<Sample> {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut out = Vec::new();
    for (n, line) in body.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(["counter", "gauge", "histogram"].contains(&kind), "line {n}: {line}");
            assert!(
                typed.insert(name.to_string(), kind.to_string()).is_none(),
                "TYPE twice: {line}"
            );
            continue;
        }
        if line.starts_with("# HELP ") || line.is_empty() {
            continue;
        }
        assert!(!line.starts_with('#'), "line {n}: unknown comment {line}");
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("line {n}: value {v:?}")),
        };
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let inner = rest.strip_suffix('}').unwrap_or_else(|| panic!("line {n}: {line}"));
                let mut labels = BTreeMap::new();
                for pair in inner.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) =
                        pair.split_once("=\"").unwrap_or_else(|| panic!("line {n}: {pair}"));
                    assert!(k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'), "label {k}");
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name.to_string(), labels)
            }
        };
        assert!(name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'), "{name}");
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s).filter(|f| typed.get(*f).is_some_and(|k| k == "histogram"))
            })
            .unwrap_or(&name)
            .to_string();
        assert!(typed.contains_key(&family), "line {n}: {name} has no # TYPE");
        out.push((name, labels, value));
    }
    out
}

fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|(n, l, _)| {
            n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|(_, _, v)| *v)
}

fn beat(at: DateTime<Utc>, offset_ms: i64, missing: u64) -> Heartbeat {
    Heartbeat {
        manifest_version: Some(1),
        clock_offset_ms: Some(offset_ms),
        ready_until: Some(at + chrono::Duration::hours(2)),
        missing_bytes: missing,
        disk_free_bytes: None,
        now_playing: None,
        sink_health: "ok".into(),
        sent_at: at,
        clock_step: None,
        clock_synchronized: None,
        central_time: false,
        output_failed: None,
    }
}

fn entry(item: &str, outcome: Outcome, planned: DateTime<Utc>) -> Entry {
    Entry {
        item_id: item.into(),
        title: item.into(),
        layer: Layer::Provincial,
        priority: Priority::Normal,
        planned,
        outcome,
        started: None,
        ended: None,
        delay_ms: None,
        played_secs: None,
        reason: None,
        audio_sha256: None,
        levels: Some(Levels { peak_dbfs: -3.0, rms_dbfs: -20.0, silent: false }),
        reason_code: None,
        relay: None,
    }
}

#[test]
fn metrics_parse_and_match_loa_status() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("central");
    let province = central_init(&data);
    let tokens: Vec<(String, String)> = ["an-phu", "tri-ton", "ba-chuc"]
        .iter()
        .map(|id| (id.to_string(), add_station(&data, id, id, "An Giang")))
        .collect();
    let viewer = {
        let out = loa(&[
            "central",
            "token",
            "add",
            "--role",
            "viewer",
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        text(&out.stdout).lines().last().expect("token").trim().to_string()
    };
    let district = {
        let out = loa(&[
            "central",
            "token",
            "add",
            "--role",
            "district:An Giang",
            "--data-dir",
            data.to_str().unwrap(),
        ]);
        text(&out.stdout).lines().last().expect("token").trim().to_string()
    };
    // A metrics listener that is not loopback is refused at start.
    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "metrics_listen = \"0.0.0.0:9480\"\n").expect("config");
    let out =
        loa(&["central", "--config", bad.to_str().unwrap(), "--data-dir", data.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("loopback address"), "{}", text(&out.stderr));

    let config = dir.path().join("central.toml");
    std::fs::write(&config, "listen = \"127.0.0.1:0\"\nmetrics_listen = \"127.0.0.1:0\"\n")
        .expect("config");
    let central = Daemon::spawn(
        Command::new(LOA).args(["central", "--config"]).arg(&config).arg("--data-dir").arg(&data),
    );
    let url =
        listening_url(&central.wait_for(&["loa central listening on "], Duration::from_secs(60)));
    let metrics_line = central.wait_for(&["loa central metrics on "], Duration::from_secs(10));
    let metrics_url =
        metrics_line.split("loa central metrics on ").nth(1).expect("url").trim().to_string();

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let http = reqwest::Client::new();
    let now = Utc::now();
    runtime.block_on(async {
        // Two stations send heartbeats (one clock 1.2 s off, one with audio missing); the
        // third never does. Two send playlog records.
        for (i, (id, token)) in tokens.iter().take(2).enumerate() {
            let h = beat(now, if i == 0 { 1200 } else { -40 }, if i == 1 { 4096 } else { 0 });
            let r = http
                .post(format!("{url}/api/v1/station/heartbeat"))
                .bearer_auth(token)
                .json(&h)
                .send()
                .await
                .expect("heartbeat");
            assert!(r.status().is_success(), "{id}: {}", r.status());
        }
        for (id, token) in tokens.iter().take(2) {
            let entries = vec![
                entry("a", Outcome::Played, now - chrono::Duration::hours(3)),
                entry("b", Outcome::Late, now - chrono::Duration::hours(2)),
                entry("c", Outcome::Missed, now - chrono::Duration::hours(1)),
            ];
            let mut prev = GENESIS.to_string();
            let mut records = Vec::new();
            for (i, e) in entries.into_iter().enumerate() {
                let seq = i as u64 + 1;
                let hash = chain_hash(&prev, id, seq, &e);
                records.push(Record {
                    station: id.clone(),
                    seq,
                    entry: e,
                    prev_hash: prev,
                    hash: hash.clone(),
                    acked: false,
                });
                prev = hash;
            }
            let r = http
                .post(format!("{url}/api/v1/station/playlog"))
                .bearer_auth(token)
                .json(&serde_json::json!({ "records": records }))
                .send()
                .await
                .expect("playlog");
            assert!(r.status().is_success(), "{id}: {}", r.status());
        }
    });

    let get = |url: String, token: Option<&str>| {
        runtime.block_on(async {
            let mut request = http.get(url);
            if let Some(t) = token {
                request = request.bearer_auth(t);
            }
            let r = request.send().await.expect("metrics");
            let status = r.status().as_u16();
            let content_type = r
                .headers()
                .get("content-type")
                .map(|v| v.to_str().unwrap_or_default().to_string())
                .unwrap_or_default();
            (status, content_type, r.text().await.unwrap_or_default())
        })
    };
    let (status, content_type, body) = get(format!("{url}/metrics"), Some(&province.admin));
    assert_eq!(status, 200);
    assert!(content_type.starts_with("text/plain; version=0.0.4"), "{content_type}");
    let samples = parse(&body);
    assert_eq!(get(format!("{url}/metrics"), Some(&viewer)).0, 200);
    assert_eq!(get(format!("{url}/metrics"), Some(&district)).0, 403);
    assert_eq!(get(format!("{url}/metrics"), None).0, 401);
    let (status, _, open) = get(metrics_url.clone(), None);
    assert_eq!(status, 200);
    let open = parse(&open);

    // The same fleet through `loa status --format json`.
    let out = Command::new(LOA)
        .args(["status", "--format", "json", "--central", &url, "--token", &province.admin])
        .env("HOME", "/nonexistent")
        .output()
        .expect("status");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let fleet: FleetStatus = serde_json::from_slice(&out.stdout).expect("status json");
    for view in [&samples, &open] {
        assert_eq!(value(view, "loa_stations", &[]), Some(fleet.stations.len() as f64));
        let online = fleet
            .stations
            .iter()
            .filter(|s| s.last_seen.is_some_and(|t| (fleet.server_time - t).num_seconds() <= 300))
            .count();
        assert_eq!(value(view, "loa_stations_online", &[]), Some(online as f64));
        for s in &fleet.stations {
            let id = s.id.as_str();
            let records: f64 = view
                .iter()
                .filter(|(n, l, _)| {
                    n == "loa_playlog_records" && l.get("station").map(String::as_str) == Some(id)
                })
                .map(|(_, _, v)| v)
                .sum();
            assert_eq!(records, s.playlog.records as f64, "{id} records");
            assert_eq!(
                value(view, "loa_playlog_chain_issues", &[("station", id)]),
                Some(s.playlog.issues.len() as f64)
            );
            match &s.heartbeat {
                None => {
                    assert_eq!(
                        value(view, "loa_station_last_heartbeat_age_seconds", &[("station", id)]),
                        None
                    );
                }
                Some(h) => {
                    let offset = h.clock_offset_ms.map(|ms| ms as f64 / 1000.0);
                    assert_eq!(
                        value(view, "loa_station_clock_offset_seconds", &[("station", id)]),
                        offset
                    );
                    let ready = h.cache_ready(fleet.server_time);
                    assert_eq!(
                        value(view, "loa_station_cache_ready", &[("station", id)]),
                        Some(f64::from(u8::from(ready)))
                    );
                    assert_eq!(
                        value(view, "loa_station_cache_missing_bytes", &[("station", id)]),
                        Some(h.missing_bytes as f64)
                    );
                    let age =
                        value(view, "loa_station_last_heartbeat_age_seconds", &[("station", id)])
                            .expect("age");
                    let status_age = (fleet.server_time - s.last_seen.expect("seen"))
                        .num_milliseconds() as f64
                        / 1000.0;
                    assert!(
                        (age - status_age).abs() < 5.0,
                        "{id}: age {age} vs status {status_age}"
                    );
                }
            }
        }
    }
    // The figures themselves, for this fleet.
    assert_eq!(value(&samples, "loa_stations", &[]), Some(3.0));
    assert_eq!(value(&samples, "loa_stations_online", &[]), Some(2.0));
    assert_eq!(
        value(&samples, "loa_station_clock_offset_seconds", &[("station", "an-phu")]),
        Some(1.2)
    );
    assert_eq!(value(&samples, "loa_station_cache_ready", &[("station", "tri-ton")]), Some(0.0));
    assert_eq!(
        value(&samples, "loa_playlog_records", &[("station", "an-phu"), ("outcome", "late")]),
        Some(1.0)
    );
    assert_eq!(value(&samples, "loa_playlog_ingest_records_total", &[]), Some(6.0));
    assert_eq!(value(&samples, "loa_playlog_ingest_batches_total", &[]), Some(2.0));
    assert_eq!(
        value(
            &samples,
            "loa_http_requests_total",
            &[("route", "/api/v1/station/heartbeat"), ("status", "200")]
        ),
        Some(2.0)
    );
    // Every metric the Grafana dashboard in docs/ queries is one central serves.
    let dashboard = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/grafana-dashboard.json"),
    )
    .expect("docs/grafana-dashboard.json");
    let mut queried = 0;
    for (at, _) in dashboard.match_indices("loa_") {
        let name: String = dashboard[at..]
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect();
        if name == "loa_" || name.starts_with("loa_central") {
            continue;
        }
        queried += 1;
        let family = name.trim_end_matches("_bucket");
        assert!(
            body.contains(&format!("# TYPE {family} ")),
            "the dashboard queries {name}, not served"
        );
    }
    assert!(queried >= 10, "{queried} metrics in the dashboard");
    // Histogram: buckets never decrease, +Inf equals the count.
    let buckets: Vec<f64> = samples
        .iter()
        .filter(|(n, _, _)| n == "loa_bulletin_delivery_latency_seconds_bucket")
        .map(|(_, _, v)| *v)
        .collect();
    assert_eq!(buckets.len(), 11);
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]));
    assert_eq!(
        buckets.last().copied(),
        value(&samples, "loa_bulletin_delivery_latency_seconds_count", &[])
    );
}
