//! `loa demo`: the whole network on one machine. Creates a temporary province (central
//! with its embedded SQLite and signing key, N stations, each a real `loa station`
//! process of this very executable with its own data directory and WAV air-check),
//! plays a shifted copy of the sample schedules, pushes an emergency bulletin in the
//! middle, takes one station offline and back, and prints the log.
//!
//! Every child runs in its own process group (a terminal's Ctrl-C reaches only the demo,
//! which then stops them in order) and, on Linux, dies with the demo if the demo is
//! killed. `Demo`'s `Drop` stops whatever is still running and removes the directory
//! unless `--keep`: on success, on error and on Ctrl-C alike.

use std::fmt::Display;
use std::fs;
use std::io::Write;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail};
use chrono::{DateTime, Utc};
use clap::Args;

use crate::demo::{self, DemoBulletin, DemoOffline, DemoStation, DemoTimeline, PlannedItem};
use crate::schedule::Layer;
use crate::station::ledger::Record;

/// Run central and several stations on this machine, sound to WAV files.
#[derive(Debug, Args)]
pub struct DemoArgs {
    /// How many stations (each a `loa station` process).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..=12))]
    pub stations: u32,
    /// Where the stations' sound goes: `wav` (air-check files) or `default` (the sound card).
    #[arg(long, default_value = "wav", value_parser = ["wav", "default"])]
    pub sink: String,
    /// About how long the demo runs, in minutes (the programme is cut to fit).
    #[arg(long, default_value_t = 1.5)]
    pub minutes: f64,
    /// Keep the demo's directory (configs, ledgers, air-checks, logs) afterwards.
    #[arg(long)]
    pub keep: bool,
    /// Create the province here (must not exist yet) instead of a new temporary directory.
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// The directory holding the sample schedules (`provincial.toml`, `district.toml`).
    #[arg(long)]
    pub samples: Option<PathBuf>,
}

/// Set by the signal watcher; every wait in the demo checks it.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// A late start beyond this is recorded missed (the shifted items are seconds apart).
const MAX_DELAY: Duration = Duration::from_secs(5);
/// Silence between two items of the shifted programme.
const GAP: Duration = Duration::from_secs(3);
const TZ: chrono_tz::Tz = chrono_tz::Asia::Ho_Chi_Minh;

const STATIONS: [(&str, &str, &str); 6] = [
    ("tri-ton", "Đài Tri Tôn", "Tri Tôn"),
    ("ba-chuc", "Đài Ba Chúc", "Tri Tôn"),
    ("an-phu", "Đài An Phú", "An Phú"),
    ("tinh-bien", "Đài Tịnh Biên", "Tịnh Biên"),
    ("chau-doc", "Đài Châu Đốc", "Châu Đốc"),
    ("long-xuyen", "Đài Long Xuyên", "Long Xuyên"),
];

pub fn run(args: DemoArgs) -> ExitCode {
    watch_signals();
    match run_demo(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(1)
        }
    }
}

/// A child process the demo started; stopped (SIGTERM, then SIGKILL after a grace
/// period) when dropped.
struct Proc {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Proc {
    /// SIGTERM, wait up to `grace` for the process to finish its shutdown (a station fades
    /// out and records what was playing), then SIGKILL.
    fn stop(&mut self, grace: Duration) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
        terminate(self.child.id());
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Fails with the end of its log when the process has exited.
    fn check_running(&mut self) -> Result<()> {
        if let Ok(Some(status)) = self.child.try_wait() {
            bail!(
                "{} exited ({status}); the end of its log ({}):\n{}",
                self.name,
                self.log.display(),
                tail(&self.log, 15)
            );
        }
        Ok(())
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

#[cfg(unix)]
fn terminate(pid: u32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill(2) with a pid the demo spawned and has not yet reaped.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
    }
}

#[cfg(not(unix))]
fn terminate(_pid: u32) {}

struct RunningStation {
    info: DemoStation,
    proc: Option<Proc>,
}

/// The demo's state. Dropping it stops the stations, then central, then removes the
/// directory unless it is kept.
struct Demo {
    started: Instant,
    exe: PathBuf,
    dir: PathBuf,
    keep: bool,
    central: Option<Proc>,
    central_url: String,
    admin_token: String,
    stations: Vec<RunningStation>,
    timeline: DemoTimeline,
}

impl Drop for Demo {
    fn drop(&mut self) {
        for s in &mut self.stations {
            if let Some(mut p) = s.proc.take() {
                p.stop(Duration::from_secs(5));
            }
        }
        if let Some(mut c) = self.central.take() {
            c.stop(Duration::from_secs(5));
        }
        if !self.keep {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}

impl Demo {
    /// One progress line: elapsed seconds, then what happened.
    fn step(&self, what: impl Display) {
        println!("[{:>6.1}s] {what}", self.started.elapsed().as_secs_f64());
        let _ = std::io::stdout().flush();
    }

    /// A command line running this executable, in its own process group, with central's
    /// address and the admin token in the environment once known.
    fn loa<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut c = Command::new(&self.exe);
        c.args(args).env("NO_COLOR", "1").stdin(Stdio::null());
        if !self.central_url.is_empty() {
            c.env("LOA_CENTRAL", &self.central_url).env("LOA_TOKEN", &self.admin_token);
        }
        isolate(&mut c);
        c
    }

    /// Runs `loa ARGS` to completion; its stdout, or an error with its stderr.
    fn run_loa(&self, args: &[&str]) -> Result<String> {
        check_interrupted()?;
        let out = self
            .loa(args)
            .output()
            .with_context(|| format!("cannot run {}", self.exe.display()))?;
        if !out.status.success() {
            bail!(
                "`loa {}` failed ({}): {}",
                args.join(" "),
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Starts `loa ARGS` in the background, stdout and stderr to `log`.
    fn spawn(&self, name: &str, args: &[&str], log: &Path) -> Result<Proc> {
        let file = fs::File::create(log)
            .with_context(|| format!("cannot create the log file {}", log.display()))?;
        let err = file.try_clone().context("cannot share the log file")?;
        let child = self
            .loa(args)
            .stdout(file)
            .stderr(err)
            .spawn()
            .with_context(|| format!("cannot start {name} ({})", self.exe.display()))?;
        Ok(Proc { name: name.to_string(), child, log: log.to_path_buf() })
    }

    fn save_timeline(&self) -> Result<()> {
        let path = self.dir.join(demo::TIMELINE_FILE);
        let text = serde_json::to_string_pretty(&self.timeline)?;
        fs::write(&path, text).with_context(|| format!("cannot write {}", path.display()))
    }

    fn check_children(&mut self) -> Result<()> {
        if let Some(c) = &mut self.central {
            c.check_running()?;
        }
        for s in &mut self.stations {
            if let Some(p) = &mut s.proc {
                p.check_running()?;
            }
        }
        Ok(())
    }

    /// Waits until `t`, watching for Ctrl-C and for children that die.
    fn wait_until(&mut self, t: DateTime<Utc>) -> Result<()> {
        loop {
            check_interrupted()?;
            self.check_children()?;
            let left = (t - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            if left.is_zero() {
                return Ok(());
            }
            std::thread::sleep(left.min(Duration::from_millis(50)));
        }
    }

    fn start_station(&mut self, index: usize, wav: Option<PathBuf>, args: &DemoArgs) -> Result<()> {
        let station = &self.stations[index];
        let id = station.info.id.clone();
        let config = station.info.config.clone();
        if let Some(wav) = &wav {
            let text = fs::read_to_string(&config)?;
            let text = rewrite_wav_path(&text, wav);
            fs::write(&config, text)?;
            self.stations[index].info.wav_files.push(wav.clone());
        }
        let _ = args;
        let n = self.stations[index].info.wav_files.len().max(1);
        let log = station_dir(&self.dir, &id).join(format!("station-{n}.log"));
        let config_arg = config.display().to_string();
        let proc =
            self.spawn(&format!("station {id}"), &["station", "--config", &config_arg], &log)?;
        self.stations[index].proc = Some(proc);
        Ok(())
    }

    /// Waits until every running station has logged that it started.
    fn wait_for_stations(&mut self, deadline: Duration) -> Result<()> {
        let until = Instant::now() + deadline;
        loop {
            check_interrupted()?;
            self.check_children()?;
            let ready = self.stations.iter().all(|s| match &s.proc {
                Some(p) => fs::read_to_string(&p.log)
                    .map(|t| t.contains("station starting"))
                    .unwrap_or(false),
                None => true,
            });
            if ready {
                return Ok(());
            }
            if Instant::now() > until {
                bail!(
                    "the stations did not start within {} s (see their logs in {})",
                    deadline.as_secs(),
                    self.dir.display()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The emergency bulletin: spoken by espeak-ng at central when it can, else a recording.
const BULLETIN_TEXT: &str = "Thông báo khẩn cấp. Nước sông Hậu đang lên nhanh. \
    Đề nghị bà con vùng trũng di chuyển người và tài sản lên nơi cao ngay.";
const BULLETIN_TITLE: &str = "Cảnh báo lũ khẩn cấp";

impl Demo {
    /// Waits until every running station reports (heartbeat) the manifest central last
    /// issued to it and no audio left to download. Returns the highest version.
    fn wait_for_delivery(&mut self, until: DateTime<Utc>) -> Result<u64> {
        loop {
            let out = self.run_loa(&["status", "--format", "json"])?;
            let fleet: crate::protocol::FleetStatus = serde_json::from_str(&out)
                .context("`loa status --format json` printed something unexpected")?;
            let running: Vec<&str> = self
                .stations
                .iter()
                .filter(|s| s.proc.is_some())
                .map(|s| s.info.id.as_str())
                .collect();
            let ready =
                fleet.stations.iter().filter(|s| running.contains(&s.id.as_str())).all(|s| {
                    s.heartbeat.as_ref().is_some_and(|h| {
                        h.manifest_version.is_some()
                            && h.manifest_version == s.issued_version
                            && h.missing_bytes == 0
                    })
                });
            if ready {
                return Ok(fleet
                    .stations
                    .iter()
                    .filter_map(|s| s.issued_version)
                    .max()
                    .unwrap_or(0));
            }
            if Utc::now() >= until {
                bail!("stations still syncing (see `loa status`)");
            }
            self.wait_until(Utc::now() + chrono::Duration::milliseconds(300))?;
        }
    }

    /// `loa bulletin push` to every station: spoken text when central can render it,
    /// else the sample jingle.
    fn push_bulletin(&mut self, audio_dir: &Path) -> Result<()> {
        let pushed_from = Utc::now();
        let spoken = self.run_loa(&[
            "bulletin",
            "push",
            "--text",
            BULLETIN_TEXT,
            "--title",
            BULLETIN_TITLE,
            "--to",
            "all",
            "--expires",
            "10m",
        ]);
        let (id, what, audio) = match spoken {
            Ok(id) => (id, "spoken by espeak-ng at central", None),
            Err(e) => {
                let jingle = audio_dir.join("nhac-hieu.ogg");
                let arg = jingle.display().to_string();
                self.step(format!("text bulletin refused ({e:#}); pushing a recording instead"));
                let id = self.run_loa(&[
                    "bulletin",
                    "push",
                    "--audio",
                    &arg,
                    "--title",
                    BULLETIN_TITLE,
                    "--to",
                    "all",
                    "--expires",
                    "10m",
                ])?;
                (id, "recording", Some(jingle))
            }
        };
        let pushed_until = Utc::now();
        self.timeline.bulletin = Some(DemoBulletin {
            id: id.trim().to_string(),
            audio_path: audio,
            pushed_from,
            pushed_until,
        });
        self.save_timeline()?;
        self.step(format!(
            "EMERGENCY bulletin {} «{BULLETIN_TITLE}» ({what}) pushed to all stations in {:.1} s: it interrupts what is playing",
            id.trim(),
            (pushed_until - pushed_from).num_milliseconds() as f64 / 1000.0
        ));
        Ok(())
    }
}

fn station_dir(dir: &Path, id: &str) -> PathBuf {
    dir.join("stations").join(id)
}

fn rewrite_wav_path(config: &str, wav: &Path) -> String {
    config
        .lines()
        .map(|l| {
            if l.starts_with("wav_path") {
                format!("wav_path = {}", toml_str(&wav.display().to_string()))
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
        + "\n"
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// Own process group (Ctrl-C in the terminal reaches only the demo, which stops the
/// children in order); on Linux, SIGTERM when the demo dies, so nothing is left behind
/// even after a kill -9.
fn isolate(c: &mut Command) {
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        c.process_group(0);
        #[cfg(target_os = "linux")]
        // SAFETY: prctl is async-signal-safe and touches only the child's own state.
        unsafe {
            c.pre_exec(|| {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM);
                Ok(())
            });
        }
    }
}

fn watch_signals() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async {
            #[cfg(unix)]
            {
                use tokio::signal::unix::{SignalKind, signal};
                if let Ok(mut term) = signal(SignalKind::terminate()) {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                    return;
                }
            }
            let _ = tokio::signal::ctrl_c().await;
        });
        INTERRUPTED.store(true, Ordering::SeqCst);
    });
}

fn check_interrupted() -> Result<()> {
    if INTERRUPTED.load(Ordering::SeqCst) {
        bail!("interrupted: stopped the stations and central");
    }
    Ok(())
}

fn tail(path: &Path, lines: usize) -> String {
    let text = fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

fn local(t: DateTime<Utc>) -> String {
    t.with_timezone(&TZ).format("%H:%M:%S").to_string()
}

/// The value after `label` on the line of `text` that starts with it.
fn field<'a>(text: &'a str, label: &str) -> Option<&'a str> {
    text.lines().find_map(|l| l.strip_prefix(label)).map(str::trim)
}

fn find_samples(given: Option<PathBuf>) -> Result<PathBuf> {
    if let Some(dir) = given {
        return Ok(dir);
    }
    let here = PathBuf::from("schedules");
    if here.join("provincial.toml").is_file() {
        return Ok(here);
    }
    let built = Path::new(env!("CARGO_MANIFEST_DIR")).join("schedules");
    if built.join("provincial.toml").is_file() {
        return Ok(built);
    }
    bail!("cannot find the sample schedules: run from the loa repository, or pass --samples DIR")
}

fn run_demo(args: DemoArgs) -> Result<()> {
    if !(args.minutes.is_finite() && args.minutes >= 0.5 && args.minutes <= 30.0) {
        bail!("--minutes must be between 0.5 and 30 (got {})", args.minutes);
    }
    let exe =
        std::env::current_exe().context("cannot find this executable to start the stations")?;
    let dir = match &args.dir {
        Some(d) => {
            if d.exists() {
                bail!("{} already exists: give --dir a new directory", d.display());
            }
            d.clone()
        }
        None => std::env::temp_dir().join(format!(
            "loa-demo-{}-{}",
            std::process::id(),
            Utc::now().format("%H%M%S")
        )),
    };
    fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let dir = dir.canonicalize().unwrap_or(dir);
    let mut d = Demo {
        started: Instant::now(),
        exe,
        dir: dir.clone(),
        keep: args.keep,
        central: None,
        central_url: String::new(),
        admin_token: String::new(),
        stations: Vec::new(),
        timeline: DemoTimeline {
            items: Vec::new(),
            stations: Vec::new(),
            bulletin: None,
            offline: None,
            central_url: String::new(),
        },
    };
    d.step(format!("demo province in {}", dir.display()));

    // Samples → a shifted programme (planned later, once everything is up).
    let samples_dir = find_samples(args.samples.clone())?;
    let samples = demo::read_samples(&samples_dir)?;

    // Central: key, stations, serve.
    let central_dir = dir.join("central");
    let central_arg = central_dir.display().to_string();
    let init = d.run_loa(&["central", "init", "--data-dir", &central_arg])?;
    let public_key = field(&init, "public key (pin it in every station config):")
        .ok_or_else(|| anyhow!("`loa central init` printed no public key:\n{init}"))?
        .to_string();
    let admin_token = field(&init, "admin token (shown once, keep it safe):")
        .ok_or_else(|| anyhow!("`loa central init` printed no admin token"))?
        .to_string();
    d.step(format!(
        "central initialised: signing key {}…",
        public_key.chars().take(12).collect::<String>()
    ));

    let mut tokens = Vec::new();
    for i in 0..args.stations as usize {
        let (id, name, district) = match STATIONS.get(i) {
            Some(&(id, name, district)) => (id.to_string(), name.to_string(), district.to_string()),
            None => (format!("xa-{}", i + 1), format!("Đài xã {}", i + 1), "Tri Tôn".to_string()),
        };
        let out = d.run_loa(&[
            "central",
            "station",
            "add",
            &id,
            "--name",
            &name,
            "--district",
            &district,
            "--data-dir",
            &central_arg,
        ])?;
        let token = out
            .lines()
            .map(str::trim)
            .find(|l| l.starts_with("loa_"))
            .filter(|t| !t.is_empty())
            .ok_or_else(|| anyhow!("`loa central station add` printed no token:\n{out}"))?
            .to_string();
        tokens.push((id, name, token));
    }
    d.step(format!(
        "registered {} station(s): {}",
        tokens.len(),
        tokens.iter().map(|t| t.0.as_str()).collect::<Vec<_>>().join(", ")
    ));

    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .context("cannot find a free loopback port for central")?
        .port();
    let listen = format!("127.0.0.1:{port}");
    let central = d.spawn(
        "central",
        &["central", "--data-dir", &central_arg, "--listen", &listen],
        &dir.join("central.log"),
    )?;
    d.central = Some(central);
    let until = Instant::now() + Duration::from_secs(20);
    while TcpStream::connect(&listen).is_err() {
        check_interrupted()?;
        d.check_children()?;
        if Instant::now() > until {
            bail!(
                "central did not listen on {listen} within 20 s (see {})",
                dir.join("central.log").display()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    d.central_url = format!("http://{listen}");
    d.admin_token = admin_token;
    d.timeline.central_url = d.central_url.clone();
    d.step(format!("central listening on {} (SQLite in {})", d.central_url, central_dir.display()));

    // The demo's own copy of the sample audio, measured and already in central's library
    // (uploading decodes and measures each file: done now, not in the programme's lead).
    let audio_dir = dir.join("audio");
    fs::create_dir_all(&audio_dir)?;
    let mut lengths = std::collections::HashMap::new();
    for sample in &samples {
        for item in &sample.schedule.items {
            let crate::schedule::AudioRef::Path(p) = &item.audio else { continue };
            let path = sample.dir.join(p);
            if lengths.contains_key(&path) {
                continue;
            }
            let length = crate::audio::probe(&path).map(|r| r.duration).map_err(|e| {
                demo::DemoError::Audio { path: path.display().to_string(), detail: e.to_string() }
            })?;
            let name =
                path.file_name().ok_or_else(|| anyhow!("{} has no file name", path.display()))?;
            let copy = audio_dir.join(name);
            fs::copy(&path, &copy).with_context(|| format!("cannot copy {}", path.display()))?;
            let copy_arg = copy.display().to_string();
            d.run_loa(&["audio", "add", &copy_arg, "--title", &item.title])?;
            lengths.insert(path, length);
        }
    }
    d.step(format!(
        "sample audio added to central's library ({} files, loudness measured)",
        lengths.len()
    ));

    // Stations: standalone of any provincial file, central delivers it.
    let n = args.stations as usize;
    let local_dir = dir.join("local");
    fs::create_dir_all(&local_dir)?;
    for (id, name, token) in &tokens {
        let sdir = station_dir(&dir, id);
        fs::create_dir_all(&sdir)?;
        let config = sdir.join("station.toml");
        let sink = if args.sink == "wav" {
            format!(
                "sink = \"wav\"\nwav_path = {}\n",
                toml_str(&sdir.join("air-check.wav").display().to_string())
            )
        } else {
            "sink = \"default\"\n".to_string()
        };
        let text = format!(
            "# {name} — written by loa demo\n\
             station_id = {}\n\
             central_url = {}\n\
             token = {}\n\
             province_key = {}\n\
             heartbeat_secs = 2\n\
             data_dir = \"data\"\n\
             local_schedules = {}\n\
             [audio]\n{sink}",
            toml_str(id),
            toml_str(&d.central_url),
            toml_str(token),
            toml_str(&public_key),
            toml_str(&local_dir.display().to_string()),
        );
        fs::write(&config, text)?;
        d.stations.push(RunningStation {
            info: DemoStation {
                id: id.clone(),
                config,
                data_dir: sdir.join("data"),
                wav_files: Vec::new(),
            },
            proc: None,
        });
    }
    for i in 0..n {
        let wav = (args.sink == "wav")
            .then(|| station_dir(&dir, &d.stations[i].info.id).join("air-check.wav"));
        d.start_station(i, wav, &args)?;
    }
    d.wait_for_stations(Duration::from_secs(20))?;
    d.timeline.stations = d.stations.iter().map(|s| s.info.clone()).collect();
    d.save_timeline()?;
    d.step(format!(
        "{n} station(s) running (`loa station`, sink {}), connected to central",
        args.sink
    ));

    // The shifted programme, a few seconds from now: enough to sign and deliver it.
    let lead = Duration::from_millis(7000 + 500 * n as u64);
    let budget = Duration::from_secs_f64((args.minutes * 60.0 - 25.0).max(10.0));
    let mut items = demo::plan(&samples, Utc::now() + lead, budget, GAP, |p| {
        lengths.get(p).copied().ok_or_else(|| demo::DemoError::Audio {
            path: p.display().to_string(),
            detail: "not measured".to_string(),
        })
    })?;
    for item in &mut items {
        let name = item
            .audio_path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        item.audio = format!("../audio/{name}");
        item.audio_path = audio_dir.join(&name);
    }
    let sched_dir = dir.join("schedules");
    fs::create_dir_all(&sched_dir)?;
    let header = |name: &str| {
        format!(
            "loa demo: a shifted copy of schedules/{name}. Same ids, titles and audio;\n\
             each item is a one-off `at` a few seconds after the one before."
        )
    };
    let provincial = sched_dir.join("provincial.toml");
    fs::write(
        &provincial,
        demo::render(Layer::Provincial, TZ, &items, MAX_DELAY, &header("provincial.toml")),
    )?;
    d.timeline.items = items.clone();
    d.save_timeline()?;
    d.step(format!(
        "sample schedules shifted to start now (times only; ids, titles and audio kept): {} items from {} to {} ({}), in {}",
        items.len(),
        local(items[0].planned),
        local(items[items.len() - 1].end()),
        TZ.name(),
        sched_dir.display()
    ));
    let provincial_arg = provincial.display().to_string();
    let loaded = d.run_loa(&["schedule", "load", &provincial_arg, "--to", "all"])?;
    d.step(format!(
        "`loa schedule load provincial.toml --to all`: {}",
        loaded.lines().next().unwrap_or("").trim()
    ));
    // The district's own programmes go straight into the stations' local directory.
    fs::write(
        local_dir.join("district.toml"),
        demo::render(Layer::Local, TZ, &items, MAX_DELAY, &header("district.toml")),
    )?;
    d.step("district schedule copied into the stations' local schedule directory");
    match d.wait_for_delivery(items[0].planned - chrono::Duration::milliseconds(500)) {
        Ok(version) => d.step(format!(
            "every station verified the signed manifest v{version} and cached its audio"
        )),
        Err(e) => d.step(format!("not every station is ready for the first item: {e:#}")),
    }

    // The programme: items, the bulletin, the offline station, in time order.
    let offline = offline_plan(&items, n);
    let mut events: Vec<(DateTime<Utc>, Event)> = Vec::new();
    for (i, item) in items.iter().enumerate() {
        events.push((item.planned, Event::Item(i)));
    }
    let bulletin_at = items[0].planned
        + chrono::Duration::milliseconds(((items[0].length_secs / 2.0).min(8.0) * 1000.0) as i64);
    events.push((bulletin_at, Event::Bulletin));
    if let Some((k, stop, restart)) = offline {
        events.push((stop, Event::Stop(k)));
        events.push((restart, Event::Restart));
    }
    events.sort_by_key(|e| e.0);
    let offline_index = n - 1;
    for (at, event) in events {
        d.wait_until(at)?;
        match event {
            Event::Item(i) => {
                let it = &items[i];
                d.step(format!(
                    "{} due: {} «{}» ({}, {}, {:.1} s of {})",
                    local(it.planned),
                    it.id,
                    it.title,
                    layer_name(it.layer),
                    priority_name(it.priority),
                    it.length_secs,
                    it.audio.trim_start_matches("../")
                ));
            }
            Event::Bulletin => d.push_bulletin(&audio_dir)?,
            Event::Stop(k) => {
                let id = d.stations[offline_index].info.id.clone();
                if let Some(mut p) = d.stations[offline_index].proc.take() {
                    p.stop(Duration::from_secs(5));
                }
                d.timeline.offline = Some(DemoOffline {
                    station: id.clone(),
                    stopped: Utc::now(),
                    restarted: Utc::now(),
                });
                d.save_timeline()?;
                d.step(format!(
                    "station {id} taken offline (process stopped) before {}: it will miss it",
                    items[k].id
                ));
            }
            Event::Restart => {
                let id = d.stations[offline_index].info.id.clone();
                let wav =
                    (args.sink == "wav").then(|| station_dir(&dir, &id).join("air-check-2.wav"));
                d.start_station(offline_index, wav, &args)?;
                d.wait_for_stations(Duration::from_secs(20))?;
                if let Some(o) = &mut d.timeline.offline {
                    o.restarted = Utc::now();
                }
                d.timeline.stations = d.stations.iter().map(|s| s.info.clone()).collect();
                d.save_timeline()?;
                d.step(format!(
                    "station {id} back online: it records what it missed while off and reports it"
                ));
            }
        }
    }

    // Wait for the last item to end and central to hold every station's record of it.
    let last_end = items.iter().map(PlannedItem::end).max().unwrap_or_else(Utc::now);
    d.wait_until(last_end + chrono::Duration::milliseconds(500))?;
    let until = Instant::now() + Duration::from_secs(30);
    loop {
        let out = d.run_loa(&["log", "--format", "json"])?;
        let records: Vec<Record> = serde_json::from_str(&out)
            .context("`loa log --format json` printed something that is not a list of records")?;
        let complete = d.stations.iter().all(|s| {
            items.iter().all(|it| {
                records.iter().any(|r| {
                    r.station == s.info.id
                        && r.entry.item_id == it.id
                        && r.entry.planned == it.planned
                })
            })
        });
        if complete {
            break;
        }
        if Instant::now() > until {
            bail!(
                "central did not receive every station's record of every item within 30 s (see the logs in {})",
                dir.display()
            );
        }
        d.wait_until(Utc::now() + chrono::Duration::milliseconds(300))?;
    }
    d.step("programme over: central holds every station's record of every item");

    // The log and the day's report, as an operator at the province sees them.
    let today = Utc::now().with_timezone(&TZ).format("%Y-%m-%d").to_string();
    println!("\n$ loa log");
    print!("{}", d.run_loa(&["log"])?);
    println!("\n$ loa report {today}");
    print!("{}", d.run_loa(&["report", &today])?);
    println!();

    // Stop the stations (they fade out and close their air-checks), then central.
    for s in &mut d.stations {
        if let Some(mut p) = s.proc.take() {
            p.stop(Duration::from_secs(5));
        }
    }
    d.step("stations stopped");
    if args.sink == "wav" {
        if args.keep {
            println!("air-checks (what each station played, silence included, 16-bit WAV):");
        } else {
            println!("air-checks (removed with the directory: pass --keep to listen to them):");
        }
        for s in &d.stations {
            for w in &s.info.wav_files {
                println!("  {}", w.display());
            }
        }
    }
    d.timeline.stations = d.stations.iter().map(|s| s.info.clone()).collect();
    d.save_timeline()?;
    if args.keep {
        println!(
            "kept: {} (timeline in {})",
            dir.display(),
            dir.join(demo::TIMELINE_FILE).display()
        );
    } else {
        println!("removing {} (pass --keep to look at it afterwards)", dir.display());
    }
    Ok(())
}

enum Event {
    Item(usize),
    Bulletin,
    Stop(usize),
    Restart,
}

fn priority_name(p: crate::schedule::Priority) -> &'static str {
    match p {
        crate::schedule::Priority::Normal => "normal",
        crate::schedule::Priority::Priority => "priority",
        crate::schedule::Priority::Emergency => "emergency",
    }
}

fn layer_name(layer: Layer) -> &'static str {
    match layer {
        Layer::Provincial => "provincial",
        Layer::Local => "local",
    }
}

/// Which item the last station misses while offline, when it stops and when it comes
/// back: the second item, so the first plays everywhere. The station stops in the gap
/// before it and returns once the item's `max_delay` has passed. None with one station
/// or one item.
fn offline_plan(
    items: &[PlannedItem],
    stations: usize,
) -> Option<(usize, DateTime<Utc>, DateTime<Utc>)> {
    if stations < 2 || items.len() < 2 {
        return None;
    }
    let k = 1;
    let stop = (items[k].planned - chrono::Duration::milliseconds(2500))
        .max(items[k - 1].end() + chrono::Duration::milliseconds(300));
    let max_delay = chrono::Duration::from_std(MAX_DELAY).unwrap_or(chrono::Duration::seconds(5));
    let restart = items[k].planned + max_delay + chrono::Duration::seconds(1);
    Some((k, stop, restart))
}
