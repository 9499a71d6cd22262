//! Stations over HTTPS, with real processes: `loa central` serving TLS with the fixture
//! certificate (tests/fixtures/tls: `ca.pem` signed `cert.pem`), and two `loa station`
//! daemons. The one whose `ca_cert` is that CA syncs a schedule, sends heartbeats, plays
//! the item and confirms it into central's playlog, and airs a pushed bulletin — every
//! exchange over HTTPS. The one whose `ca_cert` is another CA (`other-ca.pem`, made with
//! `openssl req -x509 -newkey ec … -subj "/CN=loa other province CA"`) says in its log
//! that central's certificate is not signed by it, and receives and plays nothing.
//! An https central_url without ca_cert, or a ca_cert that is not a certificate, stops
//! `loa station` at start-up with a message that says what to set.

use std::path::{Path, PathBuf};
use std::process::Output;
use std::time::Duration;

use chrono::Utc;
use loa::protocol::{BulletinInfo, DeliveryState, FleetStatus};

use crate::support::process::{
    Proc, Remote, StationToml, central_init, field_str as field, loa, station_log as ledger, text,
    tls_fixture as fixture,
};
use crate::support::wait;

/// The CLI against the HTTPS central, trusting the fixture CA.
fn cli(url: &str, token: &str) -> Remote {
    Remote::new(url, token).trusting(&fixture("ca.pem"))
}

fn remote(url: &str, token: &str, args: &[&str]) -> Output {
    cli(url, token).run(args)
}

fn fleet(url: &str, admin: &str) -> Option<FleetStatus> {
    cli(url, admin).fleet()
}

fn show(url: &str, admin: &str, id: &str) -> Option<BulletinInfo> {
    cli(url, admin).json(&["bulletin", "show", id, "--format", "json"])
}

/// Writes `<dir>/<id>/station.toml` with `ca_cert = "central-ca.pem"` (a copy of `ca`
/// beside it, so the relative path is resolved against the config file's directory).
fn station_config(dir: &Path, id: &str, url: &str, token: &str, key: &str, ca: &Path) -> PathBuf {
    let root = dir.join(id);
    std::fs::create_dir_all(&root).expect("station dir");
    std::fs::copy(ca, root.join("central-ca.pem")).expect("copy ca");
    StationToml {
        id,
        central_url: url,
        token,
        key,
        extra: "ca_cert = \"central-ca.pem\"\nheartbeat_secs = 1\n",
        audio: "sink = \"clocked\"\n",
    }
    .write(&root)
}

#[test]
fn a_station_trusting_central_ca_works_over_https_and_one_with_another_ca_gets_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let province = central_init(&dir.path().join("central"));
    let (key, admin) = (province.key.clone(), province.admin.clone());
    let tokens: Vec<String> =
        ["tri-ton", "ba-chuc"].iter().map(|id| province.add_station(id, id, "Tri Tôn")).collect();
    let central = province.serve(&format!(
        "tls_cert = {:?}\ntls_key = {:?}\n",
        fixture("cert.pem").to_str().expect("utf-8"),
        fixture("key.pem").to_str().expect("utf-8")
    ));
    let url = central.url.clone();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    // A provincial item a little ahead, loaded before the stations start.
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).expect("work dir");
    std::fs::write(work.join("tone.wav"), loa::testing::wav_bytes(1.5, 440.0, 0.5)).expect("tone");
    let at = (Utc::now() + chrono::Duration::seconds(15))
        .with_timezone(&chrono_tz::Asia::Ho_Chi_Minh)
        .format("%Y-%m-%dT%H:%M:%S");
    let schedule = work.join("provincial.toml");
    std::fs::write(
        &schedule,
        format!(
            "layer = \"provincial\"\n\n[[item]]\nid = \"ban-tin\"\ntitle = \"Bản tin\"\naudio = \"tone.wav\"\nat = {at}\n"
        ),
    )
    .expect("schedule");
    let out = remote(
        &url,
        &admin,
        &["schedule", "load", schedule.to_str().expect("utf-8"), "--to", "all"],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));

    let good_toml =
        station_config(dir.path(), "tri-ton", &url, &tokens[0], &key, &fixture("ca.pem"));
    let bad_toml =
        station_config(dir.path(), "ba-chuc", &url, &tokens[1], &key, &fixture("other-ca.pem"));
    let good = Proc::station(&good_toml);
    let bad = Proc::station(&bad_toml);

    // Sync and heartbeat over HTTPS: central sees the manifest and its audio in place.
    wait::until("tri-ton's heartbeat with the manifest", Duration::from_secs(30), || {
        let fleet = fleet(&url, &admin)?;
        let s = fleet.stations.iter().find(|s| s.id == "tri-ton")?;
        let h = s.heartbeat.as_ref()?;
        (h.manifest_version.is_some()
            && h.manifest_version == s.issued_version
            && h.missing_bytes == 0)
            .then_some(())
    });
    good.wait_for(&["bulletin stream connected"], Duration::from_secs(30));

    // The wrong CA: a clear error in the log, from the sync and from the bulletin stream.
    let refused = bad.wait_for(
        &["ERROR", "sync:", "central's certificate is not signed by the trusted CA"],
        Duration::from_secs(30),
    );
    assert!(refused.contains("set ca_cert"), "{refused}");
    bad.wait_for(
        &["ERROR", "bulletin stream", "central's certificate is not signed by the trusted CA"],
        Duration::from_secs(30),
    );

    // A bulletin pushed to both: the trusting station airs it, the other never hears of it.
    let bulletin = work.join("canh-bao.wav");
    std::fs::write(&bulletin, loa::testing::wav_bytes(1.0, 880.0, 0.4)).expect("bulletin");
    let id = cli(&url, &admin).push_bulletin(&[
        "--audio",
        bulletin.to_str().expect("utf-8"),
        "--to",
        "all",
    ]);
    let info = wait::until("tri-ton finished the bulletin", Duration::from_secs(30), || {
        let info = show(&url, &admin, &id)?;
        let s = info.stations.iter().find(|s| s.station_id == "tri-ton")?;
        (s.state == Some(DeliveryState::Finished)).then_some(info)
    });
    let tri_ton = info.stations.iter().find(|s| s.station_id == "tri-ton").expect("tri-ton");
    assert!(tri_ton.latency_ms.is_some_and(|l| (0..10_000).contains(&l)), "{tri_ton:?}");

    // The scheduled item plays at tri-ton and its record reaches central's playlog.
    let data_good = good_toml.parent().expect("dir").join("data");
    wait::until("ban-tin in central's playlog", Duration::from_secs(45), || {
        let out = remote(&url, &admin, &["log", "--station", "tri-ton", "--format", "json"]);
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).ok()?;
        let found = |item: &str| {
            rows.iter().any(|r| {
                field(r, "item_id") == Some(item)
                    && matches!(field(r, "outcome"), Some("played" | "late"))
            })
        };
        (found("ban-tin") && found(&id)).then_some(())
    });
    let good_records = ledger(&data_good);
    assert!(
        good_records.iter().any(|r| field(r, "item_id") == Some("ban-tin")),
        "{good_records:?}"
    );

    // ba-chuc: past the item's start and after the bulletin, nothing was received, so
    // nothing played; central never heard from it.
    let data_bad = bad_toml.parent().expect("dir").join("data");
    let bad_records = ledger(&data_bad);
    assert!(bad_records.is_empty(), "ba-chuc played unverified content: {bad_records:?}");
    let cached = std::fs::read_dir(data_bad.join("audio")).map(|d| d.count()).unwrap_or(0);
    assert_eq!(cached, 0, "ba-chuc cached audio through an untrusted connection");
    assert!(bad.find(&["manifest accepted"]).is_none(), "{}", bad.log());
    assert!(bad.find(&["bulletin verified"]).is_none(), "{}", bad.log());
    let fleet = fleet(&url, &admin).expect("status");
    let ba_chuc = fleet.stations.iter().find(|s| s.id == "ba-chuc").expect("ba-chuc");
    assert!(ba_chuc.heartbeat.is_none() && ba_chuc.last_seen.is_none(), "{ba_chuc:?}");
    let info = show(&url, &admin, &id).expect("bulletin show");
    let ba_chuc = info.stations.iter().find(|s| s.station_id == "ba-chuc").expect("ba-chuc");
    assert!(
        !matches!(ba_chuc.state, Some(DeliveryState::Started | DeliveryState::Finished)),
        "{ba_chuc:?}"
    );
    drop(bad);
    drop(good);
    drop(central);
}

#[test]
fn https_without_ca_cert_or_with_a_bad_one_stops_the_station_at_start_up() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = "11".repeat(32);
    let config = |extra: &str| {
        format!(
            "station_id = \"tri-ton\"\ncentral_url = \"https://127.0.0.1:9\"\ntoken = \"t\"\nprovince_key = \"{key}\"\ndata_dir = \"data\"\n{extra}[audio]\nsink = \"null\"\n"
        )
    };
    let run = |name: &str, contents: String| {
        let path = dir.path().join(name);
        std::fs::write(&path, contents).expect("write config");
        let out = loa(&["station", "--config", path.to_str().expect("utf-8")]);
        let err = text(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        (path, err)
    };

    let (path, err) = run("no-ca.toml", config(""));
    assert!(err.contains(&format!("{}:2:1: error: central_url", path.display())), "{err}");
    assert!(err.contains("is https but ca_cert is not set"), "{err}");

    std::fs::write(dir.path().join("key.pem"), std::fs::read(fixture("key.pem")).expect("key"))
        .expect("copy key");
    let (path, err) = run("key-as-ca.toml", config("ca_cert = \"key.pem\"\n"));
    assert!(err.contains(&format!("{}:", path.display())), "{err}");
    assert!(err.contains("holds no certificate"), "{err}");
    assert!(err.contains(&dir.path().join("key.pem").display().to_string()), "{err}");

    let (_, err) = run("missing-ca.toml", config("ca_cert = \"nowhere.pem\"\n"));
    assert!(err.contains("cannot read ca_cert"), "{err}");
    assert!(!dir.path().join("data").exists(), "a refused config must change nothing");
}
