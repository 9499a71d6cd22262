//! The README cannot rot: every command it shows is run here, in order, in a prepared
//! environment, by the real binary.
//!
//! - In ```` ```sh ```` blocks, every line starting with `loa ` is run (through bash, so
//!   quotes, redirections and `# comments` mean what they say) and must exit 0; an
//!   `export` line sets the environment of the lines after it. `loa station --config …`
//!   and `loa central --config …` are daemons: each must still be running 3 s after it
//!   started (central must answer on its port), and is stopped at the end.
//! - In ```` ```console ```` blocks, each `$ loa …` line is run and its output must be
//!   the lines shown under it, exactly.
//! - ```` ```shell ```` and ```` ```text ```` blocks are shown, never run (a synopsis; a
//!   play at a fixed future instant).
//!
//! The environment: a temporary working directory holding copies of `schedules/`,
//! `audio/` and `tests/cap_documents/`, `HOME` inside it, ALSA's default device a file tap (no
//! sound card needed), and these substitutions: `/var/lib/loa` → a directory inside it,
//! `central.example.vn` → `127.0.0.1`, port `8480` → the port central bound (it is
//! started on `127.0.0.1:0`, so the system picks a free port and no other process can
//! take it between choosing and binding; central's `listening on` line names it),
//! `loa_…` → the admin
//! token `loa central init` printed, any bulletin id (`b-<14 digits>-<16 hex>`) → the
//! id the first `loa bulletin push` printed.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::support::process::{self, LISTENING, listening_url, port_of};
use crate::support::wait;

#[derive(Debug, PartialEq)]
enum Block {
    Sh,
    Console,
}

/// (block kind, README line number, text) for every line of a runnable block.
fn runnable_lines(readme: &str) -> Vec<(Block, usize, String)> {
    let mut out = Vec::new();
    let mut current: Option<Block> = None;
    let mut inside = false;
    for (i, line) in readme.lines().enumerate() {
        if let Some(fence) = line.strip_prefix("```") {
            if inside {
                inside = false;
                current = None;
            } else {
                inside = true;
                current = match fence.trim() {
                    "sh" => Some(Block::Sh),
                    "console" => Some(Block::Console),
                    _ => None,
                };
            }
            continue;
        }
        if let Some(kind) = &current {
            let kind = if *kind == Block::Sh { Block::Sh } else { Block::Console };
            out.push((kind, i + 1, line.to_string()));
        }
    }
    out
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).expect("mkdir");
    for entry in std::fs::read_dir(from).expect("read dir") {
        let entry = entry.expect("entry");
        let target = to.join(entry.file_name());
        if entry.file_type().expect("type").is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).expect("copy");
        }
    }
}

struct Session {
    dir: PathBuf,
    path: String,
    alsa: PathBuf,
    env: Vec<(String, String)>,
    subs: Vec<(String, String)>,
    daemons: Vec<(String, Child)>,
    /// The id the first `loa bulletin push` printed.
    bulletin: Option<String>,
}

/// The first `b-<14 digits>-<16 hex>` in `line`, as a byte range.
fn find_bulletin_id(line: &str) -> Option<(usize, usize)> {
    let bytes = line.as_bytes();
    (0..bytes.len()).find_map(|i| {
        let rest = bytes.get(i..i + 33)?;
        let ok = rest[0] == b'b'
            && rest[1] == b'-'
            && rest[2..16].iter().all(u8::is_ascii_digit)
            && rest[16] == b'-'
            && rest[17..33].iter().all(|c| c.is_ascii_hexdigit());
        ok.then_some((i, i + 33))
    })
}

impl Drop for Session {
    fn drop(&mut self) {
        for (_, child) in &mut self.daemons {
            // SIGTERM: the daemons shut down cleanly; then make sure.
            unsafe {
                libc::kill(child.id() as i32, libc::SIGTERM);
            }
            let _ =
                wait::within(Duration::from_secs(5), || matches!(child.try_wait(), Ok(Some(_))));
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Session {
    fn substitute(&self, line: &str) -> String {
        let mut line =
            self.subs.iter().fold(line.to_string(), |l, (from, to)| l.replace(from.as_str(), to));
        // Lines show at most one bulletin id.
        if let (Some(id), Some((start, end))) = (&self.bulletin, find_bulletin_id(&line)) {
            line.replace_range(start..end, id);
        }
        line
    }

    fn bash(&self, command: &str) -> Command {
        let mut c = Command::new("bash");
        c.arg("-c")
            .arg(command)
            .current_dir(&self.dir)
            .env("PATH", &self.path)
            .env("HOME", self.dir.join("home"))
            .env("ALSA_CONFIG_PATH", &self.alsa)
            .env("EDITOR", "true")
            .env("NO_COLOR", "1")
            .env_remove("LOA_CENTRAL")
            .env_remove("LOA_TOKEN")
            .env_remove("LOA_CLIENT_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null());
        c
    }
}

/// The port in central's `loa central listening on http://127.0.0.1:PORT` line.
fn bound_port(log: &str) -> Option<u16> {
    let line = log.lines().find(|l| l.starts_with(LISTENING))?;
    port_of(&listening_url(line)?)
}

#[test]
fn every_command_in_the_readme_runs_as_written() {
    let root = process::root();
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README.md");
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().to_path_buf();
    copy_dir(&root.join("schedules"), &dir.join("schedules"));
    copy_dir(&root.join("audio"), &dir.join("audio"));
    copy_dir(&root.join("tests/cap_documents"), &dir.join("tests/cap_documents"));
    std::fs::create_dir_all(dir.join("home")).unwrap();
    let alsa = dir.join("alsa.conf");
    let template = std::fs::read_to_string(root.join("tests/alsa/file-tap.conf.in")).unwrap();
    std::fs::write(&alsa, template.replace("@OUT@", &dir.join("tap.raw").display().to_string()))
        .unwrap();
    let bin = Path::new(process::LOA).parent().unwrap().to_path_buf();
    let mut port: Option<u16> = None;
    let mut s = Session {
        path: format!("{}:{}", bin.display(), std::env::var("PATH").unwrap_or_default()),
        alsa,
        env: Vec::new(),
        subs: vec![
            ("/var/lib/loa".into(), dir.join("var/lib/loa").display().to_string()),
            ("central.example.vn".into(), "127.0.0.1".into()),
            // `:8480` → the bound port is added once central has bound it.
            ("0.0.0.0:8480".into(), "127.0.0.1:0".into()),
        ],
        daemons: Vec::new(),
        bulletin: None,
        dir,
    };

    let lines = runnable_lines(&readme);
    let mut ran = 0;
    let mut i = 0;
    while i < lines.len() {
        let (kind, number, text) = &lines[i];
        i += 1;
        match kind {
            Block::Sh => {
                let line = s.substitute(text.trim());
                assert!(
                    port.is_some() || !line.contains(":8480"),
                    "README.md:{number}: `{line}` uses port 8480 before `loa central` runs"
                );
                if let Some(vars) = line.strip_prefix("export ") {
                    for pair in vars.split_whitespace() {
                        if let Some((k, v)) = pair.split_once('=') {
                            s.env.push((k.to_string(), v.to_string()));
                        }
                    }
                    continue;
                }
                if !line.starts_with("loa ") {
                    continue;
                }
                ran += 1;
                let daemon = line.starts_with("loa station --config")
                    || line.starts_with("loa central --config");
                if daemon {
                    let log = s.dir.join(format!("daemon-{number}.log"));
                    let file = std::fs::File::create(&log).unwrap();
                    let child = s
                        .bash(&format!("exec {line}"))
                        .stdout(file.try_clone().unwrap())
                        .stderr(file)
                        .spawn()
                        .expect("start daemon");
                    s.daemons.push((line.clone(), child));
                    // Still running 3 s after it started.
                    let (_, child) = s.daemons.last_mut().unwrap();
                    let exited =
                        wait::within(Duration::from_secs(3), || child.try_wait().ok().flatten());
                    if let Some(status) = exited {
                        panic!(
                            "README.md:{number}: `{line}` exited ({status}):\n{}",
                            std::fs::read_to_string(&log).unwrap_or_default()
                        );
                    }
                    if line.starts_with("loa central") {
                        let what = format!("README.md:{number}: central to say where it listens");
                        let bound = wait::until(what, Duration::from_secs(30), || {
                            let text = std::fs::read_to_string(&log).unwrap_or_default();
                            bound_port(&text).ok_or(text)
                        });
                        assert!(
                            std::net::TcpStream::connect(("127.0.0.1", bound)).is_ok(),
                            "README.md:{number}: central answers on its port {bound}"
                        );
                        assert!(port.is_none(), "README.md:{number}: a second central");
                        port = Some(bound);
                        s.subs.push((":8480".into(), format!(":{bound}")));
                    }
                    continue;
                }
                let out = s.bash(&line).output().expect("run bash");
                assert!(
                    out.status.success(),
                    "README.md:{number}: `{line}` failed ({}):\nstdout:\n{}\nstderr:\n{}",
                    out.status,
                    String::from_utf8_lossy(&out.stdout),
                    String::from_utf8_lossy(&out.stderr)
                );
                // The admin token, for the `export LOA_TOKEN=loa_…` line.
                let stdout = String::from_utf8_lossy(&out.stdout);
                if line.starts_with("loa bulletin push") && s.bulletin.is_none() {
                    s.bulletin = Some(stdout.trim().to_string());
                }
                if let Some(token) = stdout
                    .lines()
                    .find_map(|l| l.strip_prefix("admin token (shown once, keep it safe): "))
                {
                    s.subs.push(("loa_…".into(), token.trim().to_string()));
                }
            }
            Block::Console => {
                let Some(command) = text.strip_prefix("$ ") else { continue };
                if !command.starts_with("loa ") {
                    continue;
                }
                let mut expected = Vec::new();
                while i < lines.len()
                    && lines[i].0 == Block::Console
                    && !lines[i].2.starts_with("$ ")
                    && lines[i].1 == number + expected.len() + 1
                {
                    expected.push(lines[i].2.clone());
                    i += 1;
                }
                ran += 1;
                let mut child = s
                    .bash(&format!("{} 2>&1", s.substitute(command)))
                    .stdout(Stdio::piped())
                    .spawn()
                    .expect("run bash");
                let mut output = String::new();
                child.stdout.take().unwrap().read_to_string(&mut output).unwrap();
                child.wait().unwrap();
                let got: Vec<&str> = output.lines().map(str::trim_end).collect();
                let want: Vec<&str> = expected.iter().map(|l| l.trim_end()).collect();
                assert_eq!(got, want, "README.md:{number}: output of `{command}`");
            }
        }
    }
    assert!(ran >= 20, "ran {ran} README commands: the parser still finds them");
}
