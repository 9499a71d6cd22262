//! Central on a PostgreSQL server that takes only TLS connections, with real `loa central`
//! processes: with `sslmode=require` and the CA that issued the server's certificate,
//! central initialises and serves, and every connection it holds (the pool's and the
//! bulletin listener's) is encrypted, and `loa central migrate --to` copies into it; a
//! certificate from an unknown CA or for another host, a plain URL, and a CA file that
//! is not one are each refused with a message that says what to change.

use std::path::Path;
use std::process::Output;
use std::time::Duration;

use crate::support::pg::PgServer;
use crate::support::process::{LISTENING, Proc, Province, command, stderr, utf8};
use crate::support::wait;

/// Long enough for the connection pool to give up (three seconds) and central to exit.
const GIVES_UP: Duration = Duration::from_secs(30);

/// The TLS server's own database, by address (the certificate names 127.0.0.1).
fn url(server: &PgServer, sslmode: Option<&str>) -> String {
    let base = format!("postgres://postgres@127.0.0.1:{}/postgres", server.port);
    match sslmode {
        Some(mode) => format!("{base}?sslmode={mode}"),
        None => base,
    }
}

/// `loa ARGS` with the database at `url`, trusting `ca` (as `LOA_DATABASE_URL` and
/// `LOA_DATABASE_CA`).
fn loa_on(url: &str, ca: Option<&Path>, args: &[&str]) -> Output {
    let mut c = command();
    c.env("LOA_DATABASE_URL", url);
    if let Some(ca) = ca {
        c.env("LOA_DATABASE_CA", ca);
    }
    c.args(args).output().expect("run loa")
}

/// `loa central init` into the database at `url`.
fn init(data: &Path, url: &str, ca: Option<&Path>) -> Output {
    loa_on(url, ca, &["central", "init", "--data-dir", utf8(data), "--format", "json"])
}

/// `loa central` with central.toml's `extra` lines, until it exits (it must: the
/// database refuses it); all it logged, which must not include listening.
fn serve_refused(data: &Path, extra: &str) -> String {
    let config = data.with_file_name("central.toml");
    std::fs::write(&config, format!("data_dir = {:?}\n{extra}", utf8(data))).unwrap();
    let central = Proc::start(command().args([
        "central",
        "--config",
        utf8(&config),
        "--listen",
        "127.0.0.1:0",
    ]));
    wait::until("central to give up on the database", GIVES_UP, || central.ended());
    let log = central.log();
    assert!(!log.contains(LISTENING), "central served without its database:\n{log}");
    log
}

/// Asserts that every one of `words` is in `message`.
#[track_caller]
fn says(message: &str, words: &[&str]) {
    for word in words {
        assert!(message.contains(word), "{word:?} missing from:\n{message}");
    }
}

#[test]
fn central_with_the_servers_ca_initialises_and_serves_over_tls_only() {
    let server = PgServer::start_tls(&["localhost", "127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("central");
    let url = url(&server, Some("require"));
    let ca = server.ca_file();

    let out = init(&data, &url, Some(&ca));
    assert!(out.status.success(), "{}", stderr(&out));
    let init: loa::cli::central::Initialised = serde_json::from_slice(&out.stdout).unwrap();
    let province = Province { data: data.clone(), key: init.public_key, admin: init.admin_token };
    let args = ["central", "station", "add", "tri-ton", "--name", "Tri Tôn"];
    let args = [&args[..], &["--district", "Tri Tôn", "--data-dir", utf8(&data)]].concat();
    let out = loa_on(&url, Some(&ca), &args);
    assert!(out.status.success(), "{}", stderr(&out));

    // central.toml's database_ca_file, this time.
    let central =
        province.serve(&format!("database_url = {url:?}\ndatabase_ca_file = {:?}\n", utf8(&ca)));
    let fleet = province.admin(&central).fleet().expect("loa status");
    let ids: Vec<&str> = fleet.stations.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(ids, ["tri-ton"]);

    // The server's view: central's connections, the bulletin listener's among them, are
    // all encrypted.
    let mut client = loa::store::Connector::new(&url, Some(&ca)).unwrap().client().unwrap();
    let connections = wait::until("central's listener to connect", GIVES_UP, || {
        let rows = client
            .query(
                "SELECT s.ssl, a.query FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid) \
                 WHERE a.application_name = 'loa central'",
                &[],
            )
            .unwrap();
        let rows: Vec<(bool, String)> = rows.iter().map(|r| (r.get(0), r.get(1))).collect();
        rows.iter().any(|(_, query)| query.starts_with("LISTEN")).then_some(rows)
    });
    assert!(connections.len() >= 2, "{connections:?}");
    assert!(connections.iter().all(|(ssl, _)| *ssl), "{connections:?}");
}

#[test]
fn a_certificate_from_an_unknown_ca_is_refused_and_nothing_is_served() {
    let server = PgServer::start_tls(&["localhost", "127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("central");
    let url = url(&server, Some("require"));

    let out = init(&data, &url, None);
    assert!(!out.status.success());
    says(&stderr(&out), &["127.0.0.1", "not trusted", "database_ca_file", "LOA_DATABASE_CA"]);

    // A province made with the CA, then served without it.
    let out = init(&data.with_file_name("other"), &url, Some(&server.ca_file()));
    assert!(out.status.success(), "{}", stderr(&out));
    let log = serve_refused(&data.with_file_name("other"), &format!("database_url = {url:?}\n"));
    says(&log, &["127.0.0.1", "not trusted", "database_ca_file"]);
}

#[test]
fn a_certificate_for_another_host_is_refused() {
    let server = PgServer::start_tls(&["db.example.vn"]);
    let dir = tempfile::tempdir().unwrap();
    let out =
        init(&dir.path().join("central"), &url(&server, Some("require")), Some(&server.ca_file()));
    assert!(!out.status.success());
    says(&stderr(&out), &["not trusted for 127.0.0.1", "does not name 127.0.0.1"]);
}

#[test]
fn a_plain_url_to_a_server_that_takes_only_tls_is_told_to_require_it() {
    let server = PgServer::start_tls(&["127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    for mode in [None, Some("prefer")] {
        let data = dir.path().join(format!("central-{mode:?}"));
        let out = init(&data, &url(&server, mode), Some(&server.ca_file()));
        assert!(!out.status.success(), "{mode:?}");
        says(&stderr(&out), &["refuses unencrypted connections", "sslmode=require"]);
    }
}

#[test]
fn a_ca_file_that_is_not_one_is_named() {
    let server = PgServer::start_tls(&["127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("db-ca.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let out = init(&dir.path().join("central"), &url(&server, Some("require")), Some(&garbage));
    assert!(!out.status.success());
    says(&stderr(&out), &[utf8(&garbage), "holds no certificate"]);

    let missing = dir.path().join("missing.pem");
    let out = init(&dir.path().join("central-2"), &url(&server, Some("require")), Some(&missing));
    assert!(!out.status.success());
    says(&stderr(&out), &[utf8(&missing), "cannot read"]);
}

#[test]
fn a_sqlite_central_moves_into_a_database_that_takes_only_tls() {
    let server = PgServer::start_tls(&["127.0.0.1"]);
    let dir = tempfile::tempdir().unwrap();
    let province = crate::support::process::central_init(&dir.path().join("central"));
    province.add_station("tri-ton", "Tri Tôn", "Tri Tôn");
    let url = url(&server, Some("require"));
    let migrate = ["central", "migrate", "--to", &url, "--data-dir", utf8(&province.data)];

    let out = command().args(migrate).output().unwrap();
    assert!(!out.status.success());
    says(&stderr(&out), &["not trusted", "LOA_DATABASE_CA"]);

    let out = command().env("LOA_DATABASE_CA", server.ca_file()).args(migrate).output().unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let mut client =
        loa::store::Connector::new(&url, Some(&server.ca_file())).unwrap().client().unwrap();
    let row = client.query_one("SELECT id FROM stations", &[]).unwrap();
    assert_eq!(row.get::<_, String>(0), "tri-ton");
}
