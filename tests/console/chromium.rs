//! Debian's chromium, headless, driven over WebDriver by `chromedriver` (the
//! `chromium-driver` package, installed by `scripts/deps.sh`). The driver is started on a
//! port the system picks (it says which on stdout) in a process group of its own, killed
//! with every chromium it started when dropped.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder};

pub struct Driver {
    child: Child,
    pub url: String,
}

impl Drop for Driver {
    /// Kills chromedriver's whole process group: the chromium it started goes too, even
    /// when a test failed before closing its session.
    fn drop(&mut self) {
        // SAFETY: a signal to the group this child leads (made by `process_group(0)`).
        unsafe {
            libc::kill(-(self.child.id() as i32), libc::SIGKILL);
        }
        let _ = self.child.wait();
    }
}

/// Starts chromedriver; panics with what to install when it is missing.
pub fn driver() -> Driver {
    let mut child = Command::new("chromedriver")
        .arg("--port=0")
        .process_group(0)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver is missing: run scripts/deps.sh (Debian packages chromium and chromium-driver)");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(port) = line
                .split("started successfully on port ")
                .nth(1)
                .and_then(|p| p.trim_end_matches('.').trim().parse::<u16>().ok())
            {
                let _ = tx.send(port);
            }
        }
    });
    let port = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("chromedriver said on which port it listens");
    Driver { child, url: format!("http://127.0.0.1:{port}") }
}

/// A headless chromium `width` CSS pixels wide, its profile in `profile`.
pub async fn browser(driver: &Driver, width: u32, profile: &Path) -> Client {
    browser_with(driver, width, profile, &[]).await
}

/// [`browser`] with `extra` command-line arguments (a fake microphone, for one).
pub async fn browser_with(driver: &Driver, width: u32, profile: &Path, extra: &[String]) -> Client {
    let mut args: Vec<String> = [
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-extensions",
        "--lang=vi",
        "--disable-breakpad",
        "--disable-crash-reporter",
        "--window-size=500,900",
    ]
    .iter()
    .map(|a| a.to_string())
    .collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.extend(extra.iter().cloned());
    let mut caps = fantoccini::wd::Capabilities::new();
    caps.insert(
        "goog:chromeOptions".into(),
        serde_json::json!({
            "binary": "/usr/bin/chromium",
            // Headless windows are at least 500 px wide: a phone's width is emulated.
            "mobileEmulation": { "deviceMetrics": { "width": width, "height": 800, "pixelRatio": 1.0 } },
            "args": args,
        }),
    );
    let connector = hyper_util::client::legacy::connect::HttpConnector::new();
    ClientBuilder::new(connector)
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a chromium session")
}

/// Where screenshots go: the test's output directory.
pub fn shots() -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshot directory");
    dir
}

pub async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    std::fs::write(shots().join(format!("{name}.png")), png).expect("write screenshot");
}
