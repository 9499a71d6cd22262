//! `loa station` and `loa log` as users meet them: the shipped example, and errors that
//! say where and what to do.

use crate::support::process::loa;

#[test]
fn print_config_is_the_valid_commented_example() {
    let out = loa(&["station", "--print-config"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert!(text.starts_with("# loa station configuration"));
    let parsed = loa::station::config::parse(&text, "example", std::path::Path::new("/etc/loa"));
    assert!(parsed.is_ok(), "{parsed:?}");
}

/// The example's central is where `loa central` listens by default, over HTTPS as
/// `loa central init --host` sets it up, with the CA file it needs: uncommented with
/// what `init` printed, it is a working config.
#[test]
fn the_example_central_url_is_centrals_default_https_port_with_its_ca() {
    let out = loa(&["station", "--print-config"]);
    let example = String::from_utf8(out.stdout).expect("utf-8");
    assert!(
        example.contains("\n# central_url = \"https://central.example.vn:8480\"\n"),
        "{example}"
    );
    assert!(example.contains("\n# ca_cert = \"central-ca.pem\"\n"), "{example}");
    let central = loa(&["central", "example-config"]);
    let central = String::from_utf8(central.stdout).expect("utf-8");
    let central = loa::central::config::CentralConfig::parse(&central, "central.toml")
        .expect("central's example parses");
    assert_eq!(central.listen.port(), 8480);

    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("central");
    let out = loa(&[
        "central",
        "init",
        "--data-dir",
        data.to_str().expect("utf-8 path"),
        "--host",
        "central.example.vn",
        "--format",
        "json",
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let init: loa::cli::central::Initialised =
        serde_json::from_slice(&out.stdout).expect("init --format json");
    let key = init.public_key;
    let ca = init.tls.expect("--host made the CA").ca_cert;
    assert_eq!(ca, data.join("tls/ca.pem"));
    std::fs::copy(&ca, dir.path().join("central-ca.pem")).expect("ca.pem");
    let config = example
        .replace("# central_url = ", "central_url = ")
        .replace("# ca_cert = ", "ca_cert = ")
        .replace("# token = \"...\"", "token = \"loa_station_token\"")
        .replace("# province_key = \"…\"", &format!("province_key = \"{key}\""));
    let parsed = loa::station::config::parse(&config, "station.toml", dir.path())
        .unwrap_or_else(|e| panic!("{e}\n{config}"));
    let url = parsed.central_url.as_deref().expect("central_url");
    assert_eq!(url, format!("https://central.example.vn:{}", central.listen.port()));
    assert!(parsed.ca_cert.is_some());
}

#[test]
fn a_bad_config_stops_the_start_with_file_line_column() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("station.toml");
    std::fs::write(&path, "station_id = \"xa\"\n[audio]\nsink = \"loa-to\"\n").expect("write");
    let out = loa(&["station", "--config", path.to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains(&format!("{}:3:1: error: unknown sink \"loa-to\"", path.display())),
        "{err}"
    );

    let out = loa(&["station", "--config", "/nonexistent/station.toml"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read /nonexistent/station.toml"));
}

#[test]
fn log_without_a_ledger_says_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = loa(&["log", "--data-dir", dir.path().to_str().expect("utf-8 path")]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no ledger at") && err.contains("has `loa station` run"), "{err}");

    let out = loa(&["log"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--data-dir DIR or --config"));

    let out = loa(&["log", "--data-dir", ".", "--outcome", "lost"]);
    assert_eq!(out.status.code(), Some(2), "clap rejects an unknown outcome");
    assert!(String::from_utf8_lossy(&out.stderr).contains("choose one of played"));
}

#[test]
fn log_prints_table_and_csv_of_a_ledger() {
    use chrono::TimeZone;
    use loa::schedule::{Layer, Priority};
    use loa::station::ledger::{Entry, Ledger};
    let dir = tempfile::tempdir().expect("tempdir");
    let planned = chrono::Utc.with_ymd_and_hms(2026, 11, 30, 22, 30, 0).single().expect("time");
    {
        let mut l = Ledger::open(&dir.path().join("ledger.sqlite3"), "xa-a").expect("ledger");
        l.append(Entry::missed(
            "ban-tin",
            "Bản tin, sáng",
            Layer::Provincial,
            Priority::Priority,
            planned,
            loa::protocol::Reason::from_stored(None, "station was not running"),
        ))
        .expect("append");
    }
    let d = dir.path().to_str().expect("utf-8 path");
    let out = loa(&["log", "--data-dir", d]);
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(
        table.contains("2026-12-01 05:30:00")
            && table.contains("missed")
            && table.contains("station was not running"),
        "{table}"
    );
    let out = loa(&[
        "log",
        "--data-dir",
        d,
        "--format",
        "csv",
        "--since",
        "2026-12-01",
        "--until",
        "2026-12-02",
    ]);
    let csv = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines.len(), 2, "{csv}");
    assert!(lines[1].starts_with("xa-a,1,ban-tin,\"Bản tin, sáng\",provincial,priority,"), "{csv}");
    let out = loa(&["log", "--data-dir", d, "--since", "2026-12-02"]);
    assert!(String::from_utf8_lossy(&out.stdout).contains("no records match"));
}
