//! Starting a real `loa central` process on a port nobody else can take.
//!
//! Choosing a "free" port in the test and handing it to the child races with every other
//! process on the machine (another test binary, another checkout's tests, any outgoing
//! connection given that port as its ephemeral one): the child then fails to bind. So the
//! first start asks for port 0 and reads the port the system gave from central's
//! `loa central listening on URL` line; a restart must keep its port (stations are
//! configured with it), so it retries while that port is still taken.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a restart keeps trying to get its port back.
const REBIND_FOR: Duration = Duration::from_secs(30);

/// A central that has bound its port and said so.
pub struct Started {
    pub child: Child,
    pub port: u16,
}

/// Runs `command` (a `loa central …` command line, without `--listen`) on `127.0.0.1`:
/// on a port the system picks when `port` is `None`, else on `port`, retrying while it
/// is in use. Everything central writes to stderr is appended to `log`. Panics with that
/// output if central exits for any other reason or never says where it listens.
pub fn start(mut command: impl FnMut() -> Command, log: &Path, port: Option<u16>) -> Started {
    let deadline = Instant::now() + REBIND_FOR;
    loop {
        let mut child = command()
            .args(["--listen", &format!("127.0.0.1:{}", port.unwrap_or(0))])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn loa central");
        let stderr = child.stderr.take().expect("piped stderr");
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .expect("open the central log");
        let (tx, rx) = std::sync::mpsc::channel::<Result<u16, String>>();
        std::thread::spawn(move || {
            let mut said = String::new();
            let mut sent = false;
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = writeln!(file, "{line}");
                if !sent {
                    said.push_str(&line);
                    said.push('\n');
                    let bound = line
                        .strip_prefix("loa central listening on ")
                        .and_then(|url| url.trim().rsplit(':').next()?.parse::<u16>().ok());
                    if let Some(p) = bound {
                        sent = tx.send(Ok(p)).is_ok();
                    }
                }
            }
            // End of stderr: central exited (or was killed after it bound).
            if !sent {
                let _ = tx.send(Err(said));
            }
        });
        match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(bound)) => return Started { child, port: bound },
            Ok(Err(said)) => {
                let status = child.wait().expect("wait for central");
                let in_use = said.contains("is already in use");
                if in_use && port.is_some() && Instant::now() < deadline {
                    std::thread::sleep(Duration::from_millis(100));
                    continue;
                }
                panic!("loa central exited ({status}) before listening:\n{said}");
            }
            Err(e) => {
                let _ = child.kill();
                panic!("loa central did not say where it listens within 60 s ({e})");
            }
        }
    }
}
