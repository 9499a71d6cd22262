//! Helpers for the relay and live tests: an HTTP stream server inside the test that
//! serves an encoded file at real-time pace (as an Icecast mount does) and can be cut,
//! fixtures made with sox, and reading an air-check WAV back as tones and their onsets.

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A sine of `freq` Hz, `seconds` long, 48 kHz stereo, encoded by sox as `path`'s
/// extension says (`.mp3` through libsox-fmt-mp3, `.ogg` Vorbis). Panics with sox's own
/// words if sox is missing (scripts/deps.sh installs it).
pub fn sox_tone(path: &Path, seconds: f64, freq: f64, volume: f64) -> Vec<u8> {
    let out = Command::new("sox")
        .args(["-n", "-r", "48000", "-c", "2"])
        .arg(path)
        .args([
            "synth",
            &seconds.to_string(),
            "sine",
            &freq.to_string(),
            "vol",
            &volume.to_string(),
        ])
        .output()
        .expect("run sox (scripts/deps.sh installs it)");
    assert!(out.status.success(), "sox: {}", String::from_utf8_lossy(&out.stderr));
    std::fs::read(path).expect("read the sox output")
}

struct Shared {
    /// Until this instant every connection is closed and new ones answer 503.
    cut_until: Option<Instant>,
}

/// A stream server on 127.0.0.1: `GET /live` sends the file from its start, paced to
/// `seconds` of audio (half a second's burst first, like Icecast's burst-on-connect);
/// `GET /silent` is accepted and never answered; anything else is 404.
pub struct StreamServer {
    pub port: u16,
    shared: Arc<Mutex<Shared>>,
    /// Connections to `/live` so far.
    connections: Arc<AtomicU32>,
}

impl StreamServer {
    pub fn start(body: Vec<u8>, seconds: f64, content_type: &'static str) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the stream server");
        let port = listener.local_addr().expect("address").port();
        let shared = Arc::new(Mutex::new(Shared { cut_until: None }));
        let connections = Arc::new(AtomicU32::new(0));
        let body = Arc::new(body);
        let byte_rate = body.len() as f64 / seconds;
        {
            let (shared, connections) = (shared.clone(), connections.clone());
            std::thread::spawn(move || {
                for conn in listener.incoming().map_while(Result::ok) {
                    let (shared, connections, body) =
                        (shared.clone(), connections.clone(), body.clone());
                    std::thread::spawn(move || {
                        serve(conn, &shared, &connections, &body, byte_rate, content_type)
                    });
                }
            });
        }
        Self { port, shared, connections }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Cuts the stream for `d`: open connections close, new ones are refused (503).
    pub fn cut(&self, d: Duration) {
        self.shared.lock().unwrap().cut_until = Some(Instant::now() + d);
    }

    pub fn connections(&self) -> u32 {
        self.connections.load(Ordering::SeqCst)
    }
}

fn is_cut(shared: &Mutex<Shared>) -> bool {
    shared.lock().unwrap().cut_until.is_some_and(|until| Instant::now() < until)
}

fn serve(
    mut conn: TcpStream,
    shared: &Mutex<Shared>,
    connections: &AtomicU32,
    body: &[u8],
    byte_rate: f64,
    content_type: &str,
) {
    let _ = conn.set_read_timeout(Some(Duration::from_secs(5)));
    let mut request = Vec::new();
    let mut buf = [0u8; 1024];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 16 * 1024 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let line = String::from_utf8_lossy(&request);
    let path = line.split_whitespace().nth(1).unwrap_or("").to_string();
    match path.as_str() {
        "/silent" => {
            std::thread::sleep(Duration::from_secs(30));
            return;
        }
        "/live" => {}
        _ => {
            let _ = conn.write_all(
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
            );
            return;
        }
    }
    if is_cut(shared) {
        let _ = conn.write_all(
            b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
        );
        return;
    }
    connections.fetch_add(1, Ordering::SeqCst);
    let head = format!("HTTP/1.0 200 OK\r\nContent-Type: {content_type}\r\nicy-name: test\r\n\r\n");
    if conn.write_all(head.as_bytes()).is_err() {
        return;
    }
    let started = Instant::now();
    let burst = byte_rate * 0.5;
    let mut sent = 0usize;
    while sent < body.len() {
        if is_cut(shared) {
            return;
        }
        let allowed =
            ((burst + started.elapsed().as_secs_f64() * byte_rate) as usize).min(body.len());
        if allowed > sent {
            if conn.write_all(&body[sent..allowed]).is_err() {
                return;
            }
            sent = allowed;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// An air-check read back: channel 0 as samples, and its rate.
pub struct AirCheck {
    pub rate: u32,
    pub samples: Vec<i16>,
}

impl AirCheck {
    pub fn read(path: &Path) -> Self {
        let reader = hound::WavReader::open(path).expect("open the air-check");
        let spec = reader.spec();
        let channels = spec.channels as usize;
        let samples: Vec<i16> = reader
            .into_samples::<i16>()
            .map_while(Result::ok)
            .enumerate()
            .filter(|(i, _)| i % channels == 0)
            .map(|(_, s)| s)
            .collect();
        Self { rate: spec.sample_rate, samples }
    }

    pub fn seconds(&self, frame: usize) -> f64 {
        frame as f64 / f64::from(self.rate)
    }

    /// The dominant tone of each 10 ms window: 0 for silence, else its frequency from
    /// the zero crossings (±50 Hz).
    pub fn tones(&self) -> Vec<u32> {
        let window = (self.rate / 100) as usize;
        self.samples
            .chunks(window)
            .map(|w| {
                let loud = w.iter().map(|&s| i32::from(s).abs()).max().unwrap_or(0);
                if loud < 1000 {
                    return 0;
                }
                let crossings = w.windows(2).filter(|p| (p[0] < 0) != (p[1] < 0)).count();
                (crossings as u32) * 100 / 2
            })
            .collect()
    }

    /// The first frame at or after `from` whose sample is louder than `level`.
    pub fn onset(&self, from: usize, level: i16) -> Option<usize> {
        self.samples[from.min(self.samples.len())..]
            .iter()
            .position(|s| s.saturating_abs() > level)
            .map(|i| i + from)
    }

    /// Runs of the same tone class in `tones()`: (class, first window, windows).
    /// `class` maps a frequency to a name (or `None` to merge with its neighbours).
    pub fn runs(&self, class: impl Fn(u32) -> &'static str) -> Vec<(&'static str, usize, usize)> {
        let mut runs: Vec<(&'static str, usize, usize)> = Vec::new();
        for (i, t) in self.tones().into_iter().enumerate() {
            let c = class(t);
            match runs.last_mut() {
                Some(last) if last.0 == c => last.2 += 1,
                _ => runs.push((c, i, 1)),
            }
        }
        runs
    }
}

/// A real `loa central` (its `relay_hosts` allowing 127.0.0.1) and one real `loa station`
/// ("tri-ton") writing the WAV air-check `tri-ton/air.wav`, connected to each other.
pub struct Rig {
    pub central: super::loa_proc::Proc,
    pub url: String,
    pub admin: String,
    pub station: super::loa_proc::Proc,
    /// The station's directory (station.toml, air.wav, data/).
    pub root: std::path::PathBuf,
}

impl Rig {
    pub fn start(work: &Path) -> Self {
        Self::start_with(work, &[])
    }

    /// As [`Rig::start`], central running with `env` set (debug-build test hooks).
    pub fn start_with(work: &Path, env: &[(&str, &str)]) -> Self {
        use super::loa_proc::{Proc, Province, add_station, central_init};
        let data = work.join("central");
        let data_s = data.to_str().expect("utf-8 path");
        let Province { key, admin } = central_init(&data);
        let token = add_station(&data, "tri-ton", "Tri Tôn", "Tri Tôn");
        let config = work.join("central.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\ndata_dir = {data_s:?}\nrelay_hosts = [\"127.0.0.1\"]\n"
            ),
        )
        .expect("central.toml");
        let mut command = Command::new(super::loa_proc::LOA);
        command.args(["central", "--config", config.to_str().expect("utf-8")]);
        for (k, v) in env {
            command.env(k, v);
        }
        let central = Proc::spawn_command(&mut command);
        let line = central.wait_for(&["loa central listening on "], Duration::from_secs(60));
        let url = line.split("loa central listening on ").nth(1).expect("url").trim().to_string();

        let root = work.join("tri-ton");
        std::fs::create_dir_all(root.join("local")).expect("station dir");
        let station_toml = root.join("station.toml");
        std::fs::write(
            &station_toml,
            format!(
                "station_id = \"tri-ton\"\ncentral_url = \"{url}\"\ntoken = \"{token}\"\nprovince_key = \"{key}\"\ndata_dir = \"data\"\nlocal_schedules = \"local\"\nheartbeat_secs = 1\n[audio]\nsink = \"wav\"\nwav_path = \"air.wav\"\n"
            ),
        )
        .expect("station.toml");
        let station = Proc::spawn(&["station", "--config", station_toml.to_str().expect("utf-8")]);
        station.wait_for(&["bulletin stream connected"], Duration::from_secs(60));
        Self { central, url, admin, station, root }
    }

    /// The station's ledger as `loa log --data-dir … --format json` prints it.
    pub fn ledger(&self) -> Vec<loa::protocol::Record> {
        let data = self.root.join("data");
        let out = super::loa_proc::loa(&[
            "log",
            "--data-dir",
            data.to_str().expect("utf-8"),
            "--format",
            "json",
        ]);
        if !out.status.success() {
            return Vec::new();
        }
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// The air-check once it holds `secs` past its first sample louder than 2000.
    pub fn air_check_until(&self, secs: f64) -> AirCheck {
        super::loa_proc::eventually(Duration::from_secs(30), "the air-check", || {
            let air = AirCheck::read(&self.root.join("air.wav"));
            let first = air.onset(0, 2000)?;
            let need = first + (secs * f64::from(air.rate)) as usize;
            (air.samples.len() > need).then_some(air)
        })
    }
}
