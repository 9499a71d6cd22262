//! Running the real `loa` binary: one-shot commands (local, or against a central through
//! `LOA_CENTRAL`/`LOA_TOKEN`), long-running children killed on drop with their stderr
//! lines collected, a province made with `loa central init --format json`, and `loa
//! central` started on `127.0.0.1:0` with its port read back.
//!
//! Every command starts from a clean environment for the variables `loa` reads, and
//! `HOME` points nowhere, so a developer's own settings never leak into a test.
//!
//! Central is never handed a port chosen here: a "free" port picked by the test races
//! with every other process on the machine (another test binary, another checkout's
//! tests, any outgoing connection given that port as its ephemeral one). The first start
//! asks for port 0 and reads the port the system gave from central's `loa central
//! listening on URL` line; a restart must keep its port (stations are configured with
//! it), so it retries while that port is still taken.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;

use super::wait;

pub const LOA: &str = env!("CARGO_BIN_EXE_loa");

/// How long a child may take to say it is up (a loaded CI machine builds in parallel).
pub const STARTUP: Duration = Duration::from_secs(60);
/// How long a restart keeps trying to get its port back.
const REBIND_FOR: Duration = Duration::from_secs(30);
/// What central prints on stderr once it has bound its port.
pub const LISTENING: &str = "loa central listening on ";
/// What a `loa station` logs once its ledger is open and it runs.
pub const STATION_STARTED: &str = "station starting";

/// The repository (README.md, schedules/, audio/, tests/).
pub fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A file of the TLS fixture (`tests/fixtures/tls`: `ca.pem` signed `cert.pem` for
/// 127.0.0.1 and localhost; `other-ca.pem`, another CA).
pub fn tls_fixture(name: &str) -> PathBuf {
    root().join("tests/fixtures/tls").join(name)
}

/// `loa` with none of the remote settings, text logs, and `HOME` nowhere.
pub fn command() -> Command {
    let mut c = Command::new(LOA);
    c.env_remove("LOA_CENTRAL")
        .env_remove("LOA_TOKEN")
        .env_remove("LOA_CA_CERT")
        .env_remove("LOA_CLIENT_CONFIG")
        .env_remove("LOA_DATABASE_CA")
        .env_remove("LOA_LOG_FORMAT")
        .env("HOME", "/nonexistent");
    c
}

/// `loa ARGS`, run to completion.
pub fn loa(args: &[&str]) -> Output {
    command().args(args).output().expect("run loa")
}

/// `loa ARGS` with `stdin` written to its standard input, run as the terminal user
/// `tester` (what an audit line names).
pub fn loa_with_input(args: &[&str], stdin: &str) -> Output {
    use std::io::Write;
    let mut child = command()
        .args(args)
        .env("USER", "tester")
        .env_remove("SUDO_USER")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn loa");
    child.stdin.take().expect("piped stdin").write_all(stdin.as_bytes()).expect("write stdin");
    child.wait_with_output().expect("wait for loa")
}

/// `loa ARGS` in `dir` (relative paths in `ARGS` and in the output).
pub fn loa_in(dir: &Path, args: &[&str]) -> Output {
    command().current_dir(dir).args(args).output().expect("run loa")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

pub fn stdout(out: &Output) -> String {
    text(&out.stdout)
}

pub fn stderr(out: &Output) -> String {
    text(&out.stderr)
}

/// The CLI against a running central.
#[derive(Clone)]
pub struct Remote {
    pub url: String,
    pub token: String,
    ca_cert: Option<PathBuf>,
}

/// `loa ARGS` against the central at `url` with `token`.
pub fn remote(url: &str, token: &str, args: &[&str]) -> Output {
    Remote::new(url, token).run(args)
}

impl Remote {
    pub fn new(url: &str, token: &str) -> Self {
        Self { url: url.to_string(), token: token.to_string(), ca_cert: None }
    }

    /// Trusting `ca` for central's HTTPS certificate (`LOA_CA_CERT`).
    pub fn trusting(mut self, ca: &Path) -> Self {
        self.ca_cert = Some(ca.to_path_buf());
        self
    }

    pub fn run(&self, args: &[&str]) -> Output {
        let mut c = command();
        c.args(args).env("LOA_CENTRAL", &self.url).env("LOA_TOKEN", &self.token);
        if let Some(ca) = &self.ca_cert {
            c.env("LOA_CA_CERT", ca);
        }
        c.output().expect("run loa")
    }

    /// `loa ARGS` (asking for JSON) parsed; `None` while it fails or prints something else.
    pub fn json<T: DeserializeOwned>(&self, args: &[&str]) -> Option<T> {
        let out = self.run(args);
        if !out.status.success() {
            return None;
        }
        serde_json::from_slice(&out.stdout).ok()
    }

    /// `loa ARGS` (asking for JSON), which must succeed, parsed.
    #[track_caller]
    pub fn expect_json<T: DeserializeOwned>(&self, args: &[&str]) -> T {
        let out = self.run(args);
        assert!(out.status.success(), "loa {args:?}: {}", text(&out.stderr));
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("loa {args:?} printed no JSON ({e}): {}", text(&out.stdout)))
    }

    /// `loa bulletin show ID --format json`, which must succeed.
    #[track_caller]
    pub fn bulletin(&self, id: &str) -> loa::protocol::BulletinInfo {
        self.expect_json(&["bulletin", "show", id, "--format", "json"])
    }

    /// `loa bulletin push ARGS`, which must succeed; the bulletin's id (the last line it
    /// prints).
    #[track_caller]
    pub fn push_bulletin(&self, args: &[&str]) -> String {
        let all = [&["bulletin", "push"][..], args].concat();
        let out = self.run(&all);
        assert!(out.status.success(), "loa {all:?}: {}{}", text(&out.stdout), text(&out.stderr));
        text(&out.stdout).lines().last().expect("a bulletin id").trim().to_string()
    }

    /// `loa status --format json`; `None` while it fails.
    pub fn fleet(&self) -> Option<loa::protocol::FleetStatus> {
        self.json(&["status", "--format", "json"])
    }
}

/// A station's own ledger as `loa log --data-dir DATA --format json` prints it; empty
/// while there is none.
pub fn station_log(data: &Path) -> Vec<serde_json::Value> {
    let out = loa(&["log", "--data-dir", data.to_str().expect("utf-8 path"), "--format", "json"]);
    if !out.status.success() {
        return Vec::new();
    }
    serde_json::from_slice(&out.stdout).unwrap_or_default()
}

/// The ledger of the station configured by `config` (whose `data_dir` is `data`, beside
/// it, as [`StationToml`] writes it), opened read-only; `None` until it exists.
pub fn station_ledger(config: &Path) -> Option<loa::station::ledger::Ledger> {
    let path = config.parent()?.join("data/ledger.sqlite3");
    loa::station::ledger::Ledger::open_existing(&path).ok()
}

/// A field of a printed ledger record: its own, else its entry's.
pub fn field<'a>(record: &'a serde_json::Value, name: &str) -> Option<&'a serde_json::Value> {
    record.get(name).or_else(|| record.get("entry").and_then(|e| e.get(name)))
}

/// [`field`] as text.
pub fn field_str<'a>(record: &'a serde_json::Value, name: &str) -> Option<&'a str> {
    field(record, name).and_then(|v| v.as_str())
}

/// A child `loa` process killed on drop, with its stderr lines collected (and appended to
/// a log file when asked).
pub struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
    /// Set when stderr closed: the process has exited.
    ended: Arc<AtomicBool>,
}

impl Proc {
    /// `loa ARGS` in the background.
    pub fn spawn(args: &[&str]) -> Self {
        Self::start(command().args(args))
    }

    /// `loa station --config CONFIG`.
    pub fn station(config: &Path) -> Self {
        Self::start(command().arg("station").arg("--config").arg(config))
    }

    /// Runs `command` (a `loa` command line, or one that becomes `loa`, e.g. through a
    /// shell that sets a limit first), logging at `info` unless it says otherwise.
    pub fn start(command: &mut Command) -> Self {
        Self::start_logging(command, None)
    }

    /// [`Proc::start`], every stderr line also appended to `log`.
    pub fn start_logged(command: &mut Command, log: &Path) -> Self {
        Self::start_logging(command, Some(log))
    }

    fn start_logging(command: &mut Command, log: Option<&Path>) -> Self {
        if !command.get_envs().any(|(k, _)| k == "RUST_LOG") {
            command.env("RUST_LOG", "info");
        }
        let mut child =
            command.stderr(Stdio::piped()).stdout(Stdio::null()).spawn().expect("spawn loa");
        let stderr = child.stderr.take().expect("stderr");
        let mut file = log.map(|path| {
            std::fs::OpenOptions::new().create(true).append(true).open(path).expect("open the log")
        });
        let lines = Arc::new(Mutex::new(Vec::new()));
        let ended = Arc::new(AtomicBool::new(false));
        let (sink, done) = (lines.clone(), ended.clone());
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(f) = &mut file {
                    let _ = writeln!(f, "{line}");
                }
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
            done.store(true, Ordering::SeqCst);
        });
        Self { child, lines, ended }
    }

    /// Every line logged so far.
    pub fn log(&self) -> String {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).join("\n")
    }

    /// The first line containing every one of `what`.
    pub fn find(&self, what: &[&str]) -> Option<String> {
        let lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        lines.iter().find(|l| what.iter().all(|w| l.contains(w))).cloned()
    }

    /// Whether the process has exited (its stderr is closed).
    pub fn ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// Waits (bounded by `within`) for a line containing every one of `what`; fails with
    /// the whole log, at once if the process exits first.
    #[track_caller]
    pub fn wait_for(&self, what: &[&str], within: Duration) -> String {
        wait::until(format!("a line with {what:?}"), within, || match self.find(what) {
            Some(line) => Ok(line),
            None if self.ended() => {
                panic!("the process exited before logging {what:?}; log:\n{}", self.log())
            }
            None => Err(format!("log so far:\n{}", self.log())),
        })
    }

    /// Waits until a `loa station` has opened its ledger and runs. A test reads the
    /// ledger only after this: opening a ledger brings its schema up to date, and two
    /// processes doing that at the same moment can fail the station's start.
    #[track_caller]
    pub fn wait_station_started(&self) {
        self.wait_for(&[STATION_STARTED], STARTUP);
    }

    /// Waits for central's `loa central listening on URL` line; the URL.
    #[track_caller]
    pub fn listening_url(&self, within: Duration) -> String {
        let line = self.wait_for(&[LISTENING], within);
        listening_url(&line).expect("a URL after `listening on`")
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILL: no fade-out, no shutdown record, nothing flushed.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits (bounded) for the exit: a daemon fades out and records. How
    /// it exited.
    #[track_caller]
    pub fn terminate(mut self, within: Duration) -> std::process::ExitStatus {
        // SAFETY: kill(2) on the child we spawned and have not reaped.
        unsafe {
            libc::kill(self.child.id() as i32, libc::SIGTERM);
        }
        wait::until("the process to stop after SIGTERM", within, || {
            self.child.try_wait().ok().flatten()
        })
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The URL in a line `… loa central listening on URL`.
pub fn listening_url(line: &str) -> Option<String> {
    let (_, url) = line.split_once(LISTENING)?;
    Some(url.trim().to_string())
}

/// The port of such a URL.
pub fn port_of(url: &str) -> Option<u16> {
    url.trim().rsplit(':').next()?.parse().ok()
}

/// A `loa central` process on 127.0.0.1, started again on the same port after a stop.
pub struct CentralProc {
    command: Box<dyn Fn() -> Command + Send>,
    log: Option<PathBuf>,
    /// 0 until the first start, which lets the system pick it.
    pub port: u16,
    /// `http://` or `https://127.0.0.1:PORT` as central printed it.
    pub url: String,
    proc: Option<Proc>,
}

impl CentralProc {
    /// Not started yet. `command` gives a `loa central …` command line (or one that becomes
    /// it), without `--listen`.
    pub fn new(command: impl Fn() -> Command + Send + 'static) -> Self {
        Self { command: Box::new(command), log: None, port: 0, url: String::new(), proc: None }
    }

    /// `loa central ARGS`.
    pub fn with_args(args: &[&str]) -> Self {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        Self::new(move || {
            let mut c = command();
            c.args(&args);
            c
        })
    }

    /// Everything central writes to stderr is also appended to `log`.
    pub fn logging_to(mut self, log: &Path) -> Self {
        self.log = Some(log.to_path_buf());
        self
    }

    /// Starts central and returns once it listens: on a port the system picks the first
    /// time, then on that same port (retrying while it is still taken). Panics with its
    /// output if central exits for any other reason or never says where it listens.
    #[track_caller]
    pub fn start(&mut self) -> &mut Self {
        assert!(self.proc.is_none(), "central is already running");
        let rebind_until = Instant::now() + REBIND_FOR;
        loop {
            let mut command = (self.command)();
            command.args(["--listen", &format!("127.0.0.1:{}", self.port)]);
            let proc = match &self.log {
                Some(log) => Proc::start_logged(&mut command, log),
                None => Proc::start(&mut command),
            };
            let bound = wait::until("central to say where it listens", STARTUP, || {
                match proc.find(&[LISTENING]) {
                    Some(line) => Some(Ok(listening_url(&line).expect("a URL"))),
                    None if proc.ended() => Some(Err(proc.log())),
                    None => None,
                }
            });
            match bound {
                Ok(url) => {
                    self.port = port_of(&url).expect("a port in central's URL");
                    self.url = url;
                    self.proc = Some(proc);
                    return self;
                }
                Err(said) => {
                    let in_use = said.contains("is already in use");
                    if in_use && self.port != 0 && Instant::now() < rebind_until {
                        // The old process's port is not free yet: try again shortly.
                        std::thread::sleep(Duration::from_millis(100));
                        continue;
                    }
                    panic!("loa central exited before listening:\n{said}");
                }
            }
        }
    }

    /// The running process (its log).
    pub fn proc(&self) -> &Proc {
        self.proc.as_ref().expect("central is running")
    }

    /// SIGKILL (nothing flushed); [`CentralProc::start`] brings it back on its port.
    pub fn kill(&mut self) {
        if let Some(proc) = self.proc.take() {
            proc.kill();
        }
    }

    pub fn running(&self) -> bool {
        self.proc.is_some()
    }
}

/// A province made by `loa central init --format json`: its data directory, the public
/// key stations pin and the first admin token.
pub struct Province {
    pub data: PathBuf,
    pub key: String,
    pub admin: String,
}

/// `loa central init --data-dir DATA --format json`.
#[track_caller]
pub fn central_init(data: &Path) -> Province {
    central_init_with(data, &[])
}

/// [`central_init`] with `extra` arguments (`--host NAME`: central's own CA and HTTPS).
#[track_caller]
pub fn central_init_with(data: &Path, extra: &[&str]) -> Province {
    let args = ["central", "init", "--data-dir", utf8(data), "--format", "json"];
    let out = loa(&[&args[..], extra].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let init: loa::cli::central::Initialised = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("init printed no JSON ({e}): {}", text(&out.stdout)));
    Province { data: data.to_path_buf(), key: init.public_key, admin: init.admin_token }
}

impl Province {
    /// `loa central station add ID --name NAME --district DISTRICT --format json`; the
    /// station's token.
    #[track_caller]
    pub fn add_station(&self, id: &str, name: &str, district: &str) -> String {
        self.add_station_with(id, name, district, &[]).token
    }

    /// [`Province::add_station`] with `extra` arguments (`--lat`, `--geocode`, …); all it
    /// printed (the enrolment code and the token).
    #[track_caller]
    pub fn add_station_with(
        &self,
        id: &str,
        name: &str,
        district: &str,
        extra: &[&str],
    ) -> loa::cli::central::StationAdded {
        add_station(&self.data, id, name, district, extra)
    }

    /// Writes `central.toml` beside the data directory: `data_dir`, then `extra`.
    pub fn config(&self, extra: &str) -> PathBuf {
        let path = self.data.with_file_name("central.toml");
        std::fs::write(&path, format!("data_dir = {:?}\n{extra}", utf8(&self.data)))
            .expect("write central.toml");
        path
    }

    /// `loa central --config CONFIG` (see [`Province::config`]), listening.
    #[track_caller]
    pub fn serve(&self, extra: &str) -> CentralProc {
        let config = self.config(extra);
        let mut central = CentralProc::with_args(&["central", "--config", utf8(&config)]);
        central.start();
        central
    }

    /// The CLI against `central` as the admin.
    pub fn admin(&self, central: &CentralProc) -> Remote {
        Remote::new(&central.url, &self.admin)
    }
}

/// `loa central station add ID --name NAME --district DISTRICT EXTRA… --format json` on
/// the province in `data`: the code and the token it printed.
#[track_caller]
pub fn add_station(
    data: &Path,
    id: &str,
    name: &str,
    district: &str,
    extra: &[&str],
) -> loa::cli::central::StationAdded {
    let args = ["central", "station", "add", id, "--name", name, "--district", district];
    let out = loa(&[&args[..], extra, &["--data-dir", utf8(data), "--format", "json"]].concat());
    assert!(out.status.success(), "{}", text(&out.stderr));
    let added: loa::cli::central::StationAdded = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("station add printed no JSON ({e}): {}", text(&out.stdout)));
    assert_eq!(added.station, id);
    added
}

/// The settings every test's `station.toml` has (`data_dir = "data"`, beside it), then
/// `extra` top-level lines and the `[audio]` table's lines. A `central_url` that starts
/// with `[` is written as it is (a TOML list of addresses), any other quoted.
pub struct StationToml<'a> {
    pub id: &'a str,
    pub central_url: &'a str,
    pub token: &'a str,
    pub key: &'a str,
    pub extra: &'a str,
    pub audio: &'a str,
}

impl StationToml<'_> {
    /// Writes `dir/station.toml` (making `dir`); its path.
    pub fn write(&self, dir: &Path) -> PathBuf {
        std::fs::create_dir_all(dir).expect("station dir");
        let path = dir.join("station.toml");
        let Self { id, central_url, token, key, extra, audio } = self;
        let central_url = if central_url.starts_with('[') {
            central_url.to_string()
        } else {
            format!("\"{central_url}\"")
        };
        std::fs::write(
            &path,
            format!(
                "station_id = \"{id}\"\ncentral_url = {central_url}\ntoken = \"{token}\"\nprovince_key = \"{key}\"\ndata_dir = \"data\"\n{extra}[audio]\n{audio}"
            ),
        )
        .expect("write station.toml");
        path
    }
}

/// A path as the `&str` a command line takes.
pub fn utf8(path: &Path) -> &str {
    path.to_str().expect("utf-8 path")
}

/// `loa central init --data-dir DATA --format json` with central's tables in the
/// PostgreSQL database at `database_url` (as `LOA_DATABASE_URL`): the first replica.
#[track_caller]
pub fn central_init_on(data: &Path, database_url: &str) -> Province {
    let out = command()
        .env("LOA_DATABASE_URL", database_url)
        .args(["central", "init", "--data-dir", utf8(data), "--format", "json"])
        .output()
        .expect("run loa");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let init: loa::cli::central::Initialised = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("init printed no JSON ({e}): {}", text(&out.stdout)));
    Province { data: data.to_path_buf(), key: init.public_key, admin: init.admin_token }
}

/// [`add_station`] on a province whose tables are in the database at `database_url`;
/// the station's token.
#[track_caller]
pub fn add_station_on(data: &Path, database_url: &str, id: &str, district: &str) -> String {
    let args = ["central", "station", "add", id, "--name", id, "--district", district];
    let out = command()
        .env("LOA_DATABASE_URL", database_url)
        .args([&args[..], &["--data-dir", utf8(data), "--format", "json"]].concat())
        .output()
        .expect("run loa");
    assert!(out.status.success(), "{}", text(&out.stderr));
    let added: loa::cli::central::StationAdded = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("station add printed no JSON ({e}): {}", text(&out.stdout)));
    added.token
}

/// A `loa central` replica serving the province's tables in the database at
/// `database_url` from its own data directory `data` (made, with a copy of the
/// province's key file, when it is not the province's own), listening.
#[track_caller]
pub fn central_replica(province: &Province, data: &Path, database_url: &str) -> CentralProc {
    let key = loa::central::KEY_FILE;
    if !data.join(key).exists() {
        std::fs::create_dir_all(data).expect("replica data directory");
        std::fs::copy(province.data.join(key), data.join(key)).expect("copy the province key");
    }
    let config = data.with_extension("toml");
    std::fs::write(
        &config,
        format!("data_dir = {:?}\ndatabase_url = {database_url:?}\n", utf8(data)),
    )
    .expect("write the replica's central.toml");
    let mut central = CentralProc::with_args(&["central", "--config", utf8(&config)]);
    central.start();
    central
}
