//! `loa demo` cleans up after Ctrl-C: once its stations are running, SIGINT to the demo
//! (and only the demo: its children are in their own process groups) must stop every
//! child process and remove the demo's directory, and say it was interrupted.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Processes whose command line mentions `needle` (the demo's directory: every station's
/// config and central's data directory are inside it).
fn processes_mentioning(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    let Ok(entries) = std::fs::read_dir("/proc") else { return found };
    for entry in entries.flatten() {
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(needle) {
            found.push(format!("{}: {cmdline}", entry.file_name().to_string_lossy()));
        }
    }
    found
}

#[test]
fn ctrl_c_stops_every_child_and_removes_the_directory() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("province");
    let mut demo = Command::new(env!("CARGO_BIN_EXE_loa"))
        .args(["demo", "--stations", "2", "--minutes", "1", "--dir"])
        .arg(&dir)
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start loa demo");
    let stdout = demo.stdout.take().expect("stdout");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // Wait until the stations run.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut seen = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                let ready = line.contains("station(s) running");
                seen.push(line);
                if ready {
                    break;
                }
            }
            Err(_) => {
                let _ = demo.kill();
                panic!("the stations did not come up; output so far:\n{}", seen.join("\n"));
            }
        }
    }
    let needle = dir.display().to_string();
    assert!(
        processes_mentioning(&needle).len() >= 3,
        "central and two stations run: {:?}",
        processes_mentioning(&needle)
    );

    // SAFETY: kill(2) on the child we spawned and have not reaped.
    unsafe {
        libc::kill(demo.id() as i32, libc::SIGINT);
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = demo.try_wait().expect("wait") {
            break status;
        }
        assert!(Instant::now() < deadline, "the demo did not stop within 30 s of Ctrl-C");
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut e) = demo.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(!status.success(), "an interrupted demo does not report success");
    assert!(stderr.contains("interrupted"), "it says it was interrupted: {stderr}");
    // Every child is gone (they were stopped before the demo exited).
    assert_eq!(processes_mentioning(&needle), Vec::<String>::new(), "no child outlives the demo");
    assert!(!dir.exists(), "the demo's directory is removed without --keep");
}
