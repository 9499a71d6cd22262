//! `loa demo` cleans up after Ctrl-C: once its stations are running, SIGINT to the demo
//! (and only the demo: its children are in their own process groups) must stop every
//! child process and remove the demo's directory, and say it was interrupted.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::mpsc;
use std::time::Duration;

use crate::support::{process, wait};

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
    let mut demo = process::command()
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
    let mut seen = Vec::new();
    // Some(false): the output ended (the demo exited) before that line.
    let running = wait::within(Duration::from_secs(90), || {
        loop {
            match rx.try_recv() {
                Ok(line) => {
                    let ready = line.contains("station(s) running");
                    seen.push(line);
                    if ready {
                        return Some(true);
                    }
                }
                Err(mpsc::TryRecvError::Empty) => return None,
                Err(mpsc::TryRecvError::Disconnected) => return Some(false),
            }
        }
    });
    if running != Some(true) {
        let _ = demo.kill();
        panic!("the stations did not come up; output so far:\n{}", seen.join("\n"));
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
    let status = wait::until("the demo to stop after Ctrl-C", Duration::from_secs(30), || {
        demo.try_wait().expect("wait")
    });
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
