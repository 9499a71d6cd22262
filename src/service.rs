//! Running under systemd: the `sd_notify` protocol written by hand (one datagram per
//! message on the Unix socket named by `NOTIFY_SOCKET`, `@name` for the abstract
//! namespace; no libsystemd), and a watchdog that pings only while every part it watches
//! shows signs of life.
//!
//! Each watched part owns a [`Beat`]: a counter it bumps whenever it goes round its loop
//! (the station's scheduler each turn, the audio thread each block or idle wait, central's
//! runtime each tick). The [`watchdog`] task sends `WATCHDOG=1` only while every beat has
//! moved within [`Watchdog::stale`]; a frozen audio thread therefore stops the pings and
//! systemd restarts the service after `WatchdogSec=`. Without `NOTIFY_SOCKET` every call
//! here is a no-op, so the daemons behave exactly as when started by hand.
//!
//! Knows nothing of stations or central: it is handed beats and a status text.

use std::os::unix::net::UnixDatagram;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// The longest message sent (systemd reads up to a page; a status line is far shorter).
pub const MAX_MESSAGE: usize = 4096;
/// The longest `STATUS=` text, in bytes (cut at a character boundary).
pub const MAX_STATUS: usize = 200;

/// A proof of life: bumped by the part it belongs to, read by the watchdog.
#[derive(Debug, Clone, Default)]
pub struct Beat(Arc<AtomicU64>);

impl Beat {
    pub fn new() -> Self {
        Self::default()
    }

    /// Called by the watched part each time round its loop.
    pub fn bump(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    /// How often it has been bumped.
    pub fn count(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

impl From<Arc<AtomicU64>> for Beat {
    fn from(counter: Arc<AtomicU64>) -> Self {
        Self(counter)
    }
}

/// Where `sd_notify` messages go: the socket named by `NOTIFY_SOCKET`, or nowhere.
#[derive(Debug)]
pub struct Notifier {
    target: Option<(UnixDatagram, Target)>,
}

#[derive(Debug, Clone)]
enum Target {
    Path(PathBuf),
    Abstract(Vec<u8>),
}

impl Notifier {
    /// From the environment (`NOTIFY_SOCKET`). A missing or unusable variable gives a
    /// notifier that sends nothing (logged once when it was set but unusable).
    pub fn from_env() -> Self {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(name) => Self::to(&name.to_string_lossy()),
            None => Self { target: None },
        }
    }

    /// To the socket `name` (`/run/…` or `@abstract`).
    pub fn to(name: &str) -> Self {
        let target = if let Some(abstract_name) = name.strip_prefix('@') {
            Target::Abstract(abstract_name.as_bytes().to_vec())
        } else if name.starts_with('/') {
            Target::Path(PathBuf::from(name))
        } else {
            tracing::warn!(
                "NOTIFY_SOCKET={name:?} is neither a path nor an @abstract name: not notifying systemd"
            );
            return Self { target: None };
        };
        match UnixDatagram::unbound() {
            Ok(socket) => Self { target: Some((socket, target)) },
            Err(e) => {
                tracing::warn!("cannot make a socket to notify systemd: {e}");
                Self { target: None }
            }
        }
    }

    /// Whether messages go anywhere.
    pub fn enabled(&self) -> bool {
        self.target.is_some()
    }

    /// Sends one message (`READY=1`, `STATUS=…`, newline-separated assignments).
    /// Failures are logged at debug level: systemd gone is not the daemon's problem.
    pub fn send(&self, message: &str) {
        let Some((socket, target)) = &self.target else { return };
        let bytes = &message.as_bytes()[..message.len().min(MAX_MESSAGE)];
        let sent = match target {
            Target::Path(path) => socket.send_to(bytes, path),
            Target::Abstract(name) => send_abstract(socket, name, bytes),
        };
        if let Err(e) = sent {
            tracing::debug!("sd_notify {message:?}: {e}");
        }
    }

    /// `READY=1` with a status line.
    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={}", status_text(status)));
    }

    /// `STATUS=…` (one line, at most [`MAX_STATUS`] bytes).
    pub fn status(&self, status: &str) {
        self.send(&format!("STATUS={}", status_text(status)));
    }

    /// `STOPPING=1`.
    pub fn stopping(&self) {
        self.send("STOPPING=1\nSTATUS=stopping");
    }
}

fn send_abstract(socket: &UnixDatagram, name: &[u8], bytes: &[u8]) -> std::io::Result<usize> {
    use std::os::linux::net::SocketAddrExt;
    let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
    socket.send_to_addr(bytes, &addr)
}

/// A status text systemd can show: one line, printable, at most [`MAX_STATUS`] bytes.
pub fn status_text(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        let c = if c.is_control() { ' ' } else { c };
        if out.len() + c.len_utf8() > MAX_STATUS {
            break;
        }
        out.push(c);
    }
    out
}

/// The watchdog's timing, from `WATCHDOG_USEC` (and `WATCHDOG_PID`, which must be ours
/// when set).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Watchdog {
    /// systemd's `WatchdogSec=`.
    pub interval: Duration,
}

/// The shortest watchdog interval honoured: shorter ones are raised to it (the station's
/// scheduler turns at least once a second, so a beat can be a second old when healthy;
/// half of this is the staleness limit).
pub const MIN_INTERVAL: Duration = Duration::from_secs(4);

impl Watchdog {
    /// From the environment; `None` when systemd asked for no watchdog (or for another
    /// process's).
    pub fn from_env() -> Option<Self> {
        let usec = std::env::var("WATCHDOG_USEC").ok()?;
        if let Ok(pid) = std::env::var("WATCHDOG_PID")
            && pid.trim() != std::process::id().to_string()
        {
            return None;
        }
        Self::from_usec(&usec)
    }

    /// From a `WATCHDOG_USEC` value: a positive number of microseconds.
    pub fn from_usec(usec: &str) -> Option<Self> {
        let usec: u64 = usec.trim().parse().ok().filter(|u| *u > 0)?;
        Some(Self { interval: Duration::from_micros(usec).max(MIN_INTERVAL) })
    }

    /// How often the beats are looked at (and, while all live, a ping sent).
    pub fn tick(&self) -> Duration {
        self.interval / 4
    }

    /// A beat that has not moved for this long counts as stuck: half the interval, so
    /// systemd still sees one ping in time while everything lives.
    pub fn stale(&self) -> Duration {
        self.interval / 2
    }
}

/// Watches `beats` (each with the name logged when it stops) and pings systemd while all
/// of them move; every tick, sends the `status()` text when it changed. Runs until the
/// task is dropped.
pub async fn watchdog(
    notifier: Arc<Notifier>,
    timing: Option<Watchdog>,
    beats: Vec<(&'static str, Beat)>,
    status: impl Fn() -> String + Send + 'static,
) {
    let tick = timing.map_or(Duration::from_secs(5), |w| w.tick());
    let mut seen: Vec<(u64, Instant)> =
        beats.iter().map(|(_, b)| (b.count(), Instant::now())).collect();
    let mut last_status = String::new();
    let mut stuck_logged = false;
    let mut interval = tokio::time::interval(tick);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let now = Instant::now();
        let mut stuck = Vec::new();
        for ((name, beat), (count, moved)) in beats.iter().zip(seen.iter_mut()) {
            let c = beat.count();
            if c != *count {
                *count = c;
                *moved = now;
            }
            if let Some(w) = timing
                && now.duration_since(*moved) > w.stale()
            {
                stuck.push(*name);
            }
        }
        if timing.is_some() {
            if stuck.is_empty() {
                notifier.send("WATCHDOG=1");
                stuck_logged = false;
            } else if !stuck_logged {
                tracing::error!(
                    stuck = %stuck.join(", "),
                    "no sign of life: systemd's watchdog is no longer fed and will restart the service"
                );
                stuck_logged = true;
            }
        }
        let text = status_text(&status());
        if text != last_status {
            notifier.status(&text);
            last_status = text;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn watchdog_usec_is_read_and_bounded() {
        assert_eq!(
            Watchdog::from_usec("30000000").map(|w| w.interval),
            Some(Duration::from_secs(30))
        );
        assert_eq!(Watchdog::from_usec("1000").map(|w| w.interval), Some(MIN_INTERVAL));
        for bad in ["", "0", "-5", "abc", "18446744073709551616"] {
            assert_eq!(Watchdog::from_usec(bad), None, "{bad:?}");
        }
        let w = Watchdog { interval: Duration::from_secs(20) };
        assert_eq!((w.tick(), w.stale()), (Duration::from_secs(5), Duration::from_secs(10)));
    }

    #[test]
    fn status_text_is_one_bounded_printable_line() {
        assert_eq!(status_text("playing a\nnext b"), "playing a next b");
        let long = "ă".repeat(300);
        let cut = status_text(&long);
        assert!(cut.len() <= MAX_STATUS && cut.len() >= MAX_STATUS - 1, "{}", cut.len());
    }

    #[test]
    fn messages_reach_path_and_abstract_sockets() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        Notifier::to(path.to_str().unwrap()).ready("up");
        let mut buf = [0u8; 256];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=up");

        use std::os::linux::net::SocketAddrExt;
        let name = format!("loa-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        Notifier::to(&format!("@{name}")).send("WATCHDOG=1");
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
        assert!(!Notifier::to("relative").enabled());
    }
}
