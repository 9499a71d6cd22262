//! News between replicas sharing one database. A commit that others wait for is
//! announced with `pg_notify` in its own transaction (so the news goes out at the commit,
//! and never for a rollback); each store keeps one dedicated connection, on a thread of
//! its own, that `LISTEN`s and hands the news to whoever subscribed in this process:
//!
//! - [`BULLETIN_CHANNEL`]: an urgent bulletin event was appended (payload: its number),
//!   so every replica's event streams carry it at once
//!   ([`crate::store::Store::bulletin_feed`]);
//! - [`MANIFEST_CHANNEL`]: a station's manifest was issued (payload: `"VERSION STATION"`),
//!   so a station long-polling another replica gets it at once rather than when its wait
//!   ends ([`crate::store::Store::manifest_feed`]).
//!
//! A notification sent while the connection was down is lost, so every (re)connection is
//! announced too: subscribers then read the store to be sure.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Once, mpsc};
use std::time::Duration;

use postgres::Client;

use super::Connector;
use crate::store::ManifestNews;

/// The channel a bulletin event's append notifies at its commit, with its number.
pub(super) const BULLETIN_CHANNEL: &str = "loa_bulletin_events";

/// The channel a manifest's insert notifies at its commit: `"VERSION STATION"`.
pub(super) const MANIFEST_CHANNEL: &str = "loa_manifests";

/// How often the listening thread looks up from its connection to see whether the store
/// was dropped.
const LISTEN_WAKE: Duration = Duration::from_millis(500);

/// Longest wait before connecting the listener again after a failure.
const LISTEN_BACKOFF_MAX: Duration = Duration::from_secs(5);

/// The payload [`MANIFEST_CHANNEL`] carries for `version` of `station_id`'s manifest.
pub(super) fn manifest_payload(station_id: &str, version: u64) -> String {
    format!("{version} {station_id}")
}

/// Reads a [`MANIFEST_CHANNEL`] payload. Anything else than what
/// [`manifest_payload`] writes is [`ManifestNews::MaybeMissed`]: the subscriber reads the
/// store rather than trusting a malformed notice.
fn manifest_news(payload: &str) -> ManifestNews {
    match payload.split_once(' ') {
        Some((version, station_id)) if !station_id.is_empty() => match version.parse() {
            Ok(version) => ManifestNews::Issued { station_id: station_id.to_string(), version },
            Err(_) => ManifestNews::MaybeMissed,
        },
        _ => ManifestNews::MaybeMissed,
    }
}

/// The store's listening connection and this process's subscribers. Started by the first
/// subscriber; ends (within [`LISTEN_WAKE`]) once the store is dropped.
pub(super) struct Feed {
    connector: Connector,
    subscribers: Mutex<Subscribers>,
    started: Once,
    stopped: AtomicBool,
}

#[derive(Default)]
struct Subscribers {
    bulletins: Vec<mpsc::Sender<u64>>,
    manifests: Vec<mpsc::Sender<ManifestNews>>,
    /// Whether the connection is listening now.
    listening: bool,
}

impl Feed {
    pub(super) fn new(connector: Connector) -> Arc<Self> {
        Arc::new(Self {
            connector,
            subscribers: Mutex::new(Subscribers::default()),
            started: Once::new(),
            stopped: AtomicBool::new(false),
        })
    }

    /// A new receiver of bulletin events. Its first message, `0`, comes once the store
    /// listens: every append committed after that is announced by its number.
    pub(super) fn bulletins(self: &Arc<Self>) -> mpsc::Receiver<u64> {
        let (tx, rx) = mpsc::channel();
        {
            let mut subscribers = self.lock();
            if subscribers.listening {
                let _ = tx.send(0);
            }
            subscribers.bulletins.push(tx);
        }
        self.start();
        rx
    }

    /// A new receiver of issued manifests. Its first message,
    /// [`ManifestNews::MaybeMissed`], comes once the store listens.
    pub(super) fn manifests(self: &Arc<Self>) -> mpsc::Receiver<ManifestNews> {
        let (tx, rx) = mpsc::channel();
        {
            let mut subscribers = self.lock();
            if subscribers.listening {
                let _ = tx.send(ManifestNews::MaybeMissed);
            }
            subscribers.manifests.push(tx);
        }
        self.start();
        rx
    }

    fn start(self: &Arc<Self>) {
        self.started.call_once(|| {
            let feed = self.clone();
            let spawned = std::thread::Builder::new()
                .name("loa-store-listen".into())
                .spawn(move || feed.listen());
            if let Err(e) = spawned {
                tracing::error!("cannot start the store's listener: {e}; polling only");
            }
        });
    }

    /// Ends the listening thread (the store is being dropped).
    pub(super) fn stop(&self) {
        self.stopped.store(true, Ordering::Relaxed);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Subscribers> {
        self.subscribers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Tells every subscriber still there that the connection listens (again): what was
    /// committed meanwhile went unannounced.
    fn connected(&self) {
        let mut subscribers = self.lock();
        subscribers.listening = true;
        subscribers.bulletins.retain(|s| s.send(0).is_ok());
        subscribers.manifests.retain(|s| s.send(ManifestNews::MaybeMissed).is_ok());
    }

    /// Hands one notification to the subscribers of its channel.
    fn publish(&self, channel: &str, payload: &str) {
        let mut subscribers = self.lock();
        match channel {
            BULLETIN_CHANNEL => {
                let seq = payload.parse().unwrap_or(0);
                subscribers.bulletins.retain(|s| s.send(seq).is_ok());
            }
            MANIFEST_CHANNEL => {
                let news = manifest_news(payload);
                subscribers.manifests.retain(|s| s.send(news.clone()).is_ok());
            }
            _ => {}
        }
    }

    /// Connects, listens and relays until the store is dropped, connecting again (with
    /// backoff) whenever the connection fails.
    fn listen(self: Arc<Self>) {
        let mut backoff = Duration::from_millis(100);
        while !self.stopped.load(Ordering::Relaxed) {
            let connected = self.connector.client().and_then(|mut client| {
                client.batch_execute(&format!(
                    "LISTEN {BULLETIN_CHANNEL}; LISTEN {MANIFEST_CHANNEL}"
                ))?;
                Ok(client)
            });
            match connected {
                Ok(mut client) => {
                    backoff = Duration::from_millis(100);
                    self.connected();
                    if let Err(e) = self.relay(&mut client) {
                        tracing::warn!("store listener: {e}; connecting again");
                    }
                    self.lock().listening = false;
                }
                Err(e) => {
                    tracing::warn!("store listener cannot connect: {e}; trying again");
                    std::thread::sleep(backoff);
                    backoff = (backoff * 2).min(LISTEN_BACKOFF_MAX);
                }
            }
        }
    }

    /// Hands on notifications until the connection closes or the store is dropped.
    fn relay(&self, client: &mut Client) -> Result<(), postgres::Error> {
        use postgres::fallible_iterator::FallibleIterator;
        while !self.stopped.load(Ordering::Relaxed) {
            {
                let mut notifications = client.notifications();
                let mut waiting = notifications.timeout_iter(LISTEN_WAKE);
                while let Some(note) = waiting.next()? {
                    self.publish(note.channel(), note.payload());
                }
            }
            if client.is_closed() {
                return Ok(());
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_manifest_notice_reads_back_and_a_malformed_one_asks_for_a_look() {
        let payload = manifest_payload("xa-an-binh", 42);
        assert_eq!(
            manifest_news(&payload),
            ManifestNews::Issued { station_id: "xa-an-binh".into(), version: 42 }
        );
        for bad in ["", "42", "42 ", "x xa-an-binh", "-1 xa", "18446744073709551616 xa"] {
            assert_eq!(manifest_news(bad), ManifestNews::MaybeMissed, "{bad:?}");
        }
    }
}
