//! A stream to relay: an HTTP server inside the test (or bench) that serves an encoded
//! file at real-time pace, as an Icecast mount does, and can be cut; the file made with
//! sox. Depends on nothing else in `support`, so a bench can include it alone.

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
