//! Helpers for the console's tests: running the real `loa` binary, a central data
//! directory with people in it, and a real `loa central` process.

#![allow(dead_code)]

pub mod browser;
pub mod web;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

pub const LOA: &str = env!("CARGO_BIN_EXE_loa");

/// `loa ARGS…` with `stdin` written to its standard input.
pub fn loa_with_input(args: &[&str], stdin: &str) -> Output {
    let mut child = Command::new(LOA)
        .args(args)
        .env_remove("LOA_CENTRAL")
        .env_remove("LOA_TOKEN")
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

pub fn loa(args: &[&str]) -> Output {
    loa_with_input(args, "")
}

pub fn text(o: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr))
}

/// A central data directory made by `loa central init`; its admin token.
pub fn init(dir: &Path) -> String {
    let o = loa(&["central", "--data-dir", dir.to_str().unwrap(), "init"]);
    assert!(o.status.success(), "{}", text(&o));
    String::from_utf8_lossy(&o.stdout)
        .lines()
        .find_map(|l| l.strip_prefix("admin token (shown once, keep it safe): "))
        .expect("init prints the admin token")
        .trim()
        .to_string()
}

/// `loa central user add NAME --role ROLE --password-stdin` with `password`.
pub fn add_user(dir: &Path, name: &str, role: &str, password: &str) {
    let o = loa_with_input(
        &[
            "central",
            "--data-dir",
            dir.to_str().unwrap(),
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    assert!(o.status.success(), "user add {name}: {}", text(&o));
}

/// `loa central station add ID --name ID --district AREA`.
pub fn add_station(dir: &Path, id: &str, area: &str) -> String {
    let o = loa(&[
        "central",
        "--data-dir",
        dir.to_str().unwrap(),
        "station",
        "add",
        id,
        "--name",
        id,
        "--district",
        area,
    ]);
    assert!(o.status.success(), "station add {id}: {}", text(&o));
    String::from_utf8_lossy(&o.stdout).lines().last().unwrap_or_default().trim().to_string()
}

pub fn data_dir(root: &Path) -> PathBuf {
    root.join("central")
}
