//! Running the real `loa` binary from tests: one-shot commands (local, or against a
//! central through `LOA_CENTRAL`/`LOA_TOKEN`) and long-running children (`loa central`,
//! `loa station`) whose log lines a test waits for.
//!
//! Every command starts from a clean environment for the variables `loa` reads, and
//! `HOME` points nowhere, so a developer's own settings never leak into a test.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const LOA: &str = env!("CARGO_BIN_EXE_loa");

/// `loa ARGS` with none of the remote settings.
pub fn loa(args: &[&str]) -> Output {
    Command::new(LOA)
        .args(args)
        .env_remove("LOA_CENTRAL")
        .env_remove("LOA_TOKEN")
        .env_remove("LOA_CA_CERT")
        .env("HOME", "/nonexistent")
        .output()
        .expect("run loa")
}

/// `loa ARGS` against the central at `url` with `token`.
pub fn remote(url: &str, token: &str, args: &[&str]) -> Output {
    Command::new(LOA)
        .args(args)
        .env("LOA_CENTRAL", url)
        .env("LOA_TOKEN", token)
        .env_remove("LOA_CA_CERT")
        .env("HOME", "/nonexistent")
        .output()
        .expect("run loa")
}

pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A child `loa` process killed on drop, with its stderr lines collected.
pub struct Proc {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Proc {
    pub fn spawn(args: &[&str]) -> Self {
        Self::spawn_command(Command::new(LOA).args(args))
    }

    /// Runs `command` (a `loa` command line, or one that becomes `loa`, e.g. through a
    /// shell that sets a limit first).
    pub fn spawn_command(command: &mut Command) -> Self {
        let mut child = command
            .env("RUST_LOG", "info")
            .env_remove("LOA_CA_CERT")
            .stderr(Stdio::piped())
            .stdout(Stdio::null())
            .spawn()
            .expect("spawn loa");
        let stderr = child.stderr.take().expect("stderr");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                sink.lock().unwrap_or_else(|p| p.into_inner()).push(line);
            }
        });
        Self { child, lines }
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

    /// Waits (polling, bounded by `within`) for a line containing every one of `what`;
    /// fails with the whole log.
    pub fn wait_for(&self, what: &[&str], within: Duration) -> String {
        let deadline = Instant::now() + within;
        loop {
            if let Some(line) = self.find(what) {
                return line;
            }
            assert!(
                Instant::now() < deadline,
                "no line with {what:?} within {within:?}; log:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGKILL: no fade-out, no shutdown record, nothing flushed.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `f` every 100 ms until it returns `Some`, or fails after `within`.
pub fn eventually<T>(within: Duration, what: &str, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// What `loa central init` printed: the province's public key and the first admin token.
pub struct Province {
    pub key: String,
    pub admin: String,
}

/// `loa central init --data-dir DATA`.
pub fn central_init(data: &std::path::Path) -> Province {
    let out = loa(&["central", "init", "--data-dir", data.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let line = |prefix: &str| {
        printed
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap_or_else(|| panic!("no {prefix:?} in:\n{printed}"))
            .to_string()
    };
    Province {
        key: line("public key (pin it in every station config): "),
        admin: line("admin token (shown once, keep it safe): "),
    }
}

/// `loa central station add ID --name NAME --district DISTRICT --data-dir DATA`; returns
/// the station's token.
pub fn add_station(data: &std::path::Path, id: &str, name: &str, district: &str) -> String {
    let data = data.to_str().expect("utf-8 path");
    let out = loa(&[
        "central",
        "station",
        "add",
        id,
        "--name",
        name,
        "--district",
        district,
        "--data-dir",
        data,
    ]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    text(&out.stdout).lines().last().expect("a token").trim().to_string()
}
