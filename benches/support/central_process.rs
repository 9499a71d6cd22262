//! `loa central` as a process of its own, for the benchmarks whose clients must not
//! share central's process (the stations' work would count as central's, and the
//! other way round).

use std::io::BufRead;
use std::path::Path;

/// A running `loa central`; killed on drop.
pub struct CentralProcess {
    child: std::process::Child,
    pub url: String,
}

impl CentralProcess {
    /// The process id, to read its CPU time.
    #[allow(dead_code)] // each benchmark compiles this file; not every one reads its CPU
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for CentralProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Writes `dir/NAME.toml` (`data_dir`, loopback on a free port, `database_url` when
/// given), starts central on it and returns once it listens.
pub fn start(
    dir: &Path,
    name: &str,
    data_dir: &Path,
    database_url: Option<&str>,
) -> CentralProcess {
    let config = dir.join(format!("{name}.toml"));
    let mut toml =
        format!("data_dir = {:?}\nlisten = \"127.0.0.1:0\"\n", data_dir.display().to_string());
    if let Some(url) = database_url {
        toml.push_str(&format!("database_url = {url:?}\n"));
    }
    std::fs::write(&config, toml).expect("central config");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_loa"))
        .args(["central", "--config"])
        .arg(&config)
        .env("RUST_LOG", "warn")
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start loa central");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = std::io::BufReader::new(stderr).lines();
    let url = loop {
        let line = lines.next().expect("central exited before listening").expect("stderr");
        if let Some((_, url)) = line.split_once("listening on ") {
            break url.trim().to_string();
        }
    };
    // Keep draining its log so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    CentralProcess { child, url }
}
