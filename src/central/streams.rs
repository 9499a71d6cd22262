//! Long-lived requests — a station's event stream, its long-polls — each hold a
//! connection and a task for up to a minute or for ever. One token must not be able to
//! hold many of them, and all of them together must leave room for everyone else:
//! - per station token and kind, at most [`PER_STATION`] are open; a newer one makes the
//!   oldest close (the newest wins: a station that reconnects after its link dropped
//!   must not be locked out by its own half-dead stream);
//! - in all, at most [`Streams::global_cap`]; past it a new one is answered `503` with
//!   `Retry-After`, so short requests (heartbeats, a bulletin push) still get through;
//! - a stream whose token stops being valid (rotated, station removed) is closed by its
//!   own periodic check ([`super::bulletins`]).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::ApiError;

/// Most open requests of one kind per station token.
pub const PER_STATION: usize = 2;

/// What a long-lived request is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// The bulletin event stream (SSE).
    EventStream,
    /// A manifest or event long-poll that waits.
    LongPoll,
    /// A live broadcast's audio (`central::live`).
    Live,
}

/// The registry of open long-lived requests.
#[derive(Debug)]
pub struct Streams {
    inner: Mutex<Inner>,
    global_cap: AtomicUsize,
}

/// One open request: its id and the sender that tells it to close.
type Open = (u64, tokio::sync::watch::Sender<bool>);

#[derive(Debug, Default)]
struct Inner {
    next_id: u64,
    total: usize,
    open: HashMap<(String, Kind), VecDeque<Open>>,
}

/// One open long-lived request; dropping it frees its place.
#[derive(Debug)]
pub struct Slot {
    registry: Arc<Streams>,
    key: (String, Kind),
    id: u64,
    closed: tokio::sync::watch::Receiver<bool>,
}

impl Default for Streams {
    fn default() -> Self {
        Self::new(usize::MAX)
    }
}

impl Streams {
    pub fn new(global_cap: usize) -> Self {
        Self { inner: Mutex::new(Inner::default()), global_cap: AtomicUsize::new(global_cap) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The most long-lived requests open at once, all stations together.
    pub fn global_cap(&self) -> usize {
        self.global_cap.load(Ordering::Relaxed)
    }

    /// Sets [`Streams::global_cap`] (central derives it from its connection cap).
    pub fn set_global_cap(&self, cap: usize) {
        self.global_cap.store(cap, Ordering::Relaxed);
    }

    /// Opens a place for `station`'s request of `kind`, telling its oldest one to close
    /// when it already has [`PER_STATION`]; refused when every place is taken.
    pub fn open(self: &Arc<Self>, station: &str, kind: Kind) -> Result<Slot, ApiError> {
        let mut inner = self.lock();
        let key = (station.to_string(), kind);
        let own = inner.open.get(&key).map_or(0, VecDeque::len);
        if own < PER_STATION && inner.total >= self.global_cap() {
            return Err(ApiError::Busy(format!(
                "central holds its limit of {} open streams and long-polls: try again shortly",
                self.global_cap()
            )));
        }
        inner.next_id += 1;
        let id = inner.next_id;
        let (tx, closed) = tokio::sync::watch::channel(false);
        let list = inner.open.entry(key.clone()).or_default();
        list.push_back((id, tx));
        let mut freed = 0;
        while list.len() > PER_STATION {
            if let Some((old, tx)) = list.pop_front() {
                tracing::info!(
                    station,
                    ?kind,
                    old,
                    "a newer request took this one's place: closing it"
                );
                let _ = tx.send(true);
                freed += 1;
            }
        }
        inner.total = inner.total + 1 - freed;
        Ok(Slot { registry: self.clone(), key, id, closed })
    }

    /// Tells every long-lived request of `station` to close (its token was replaced).
    pub fn close_station(&self, station: &str) {
        let mut inner = self.lock();
        let keys: Vec<_> = inner.open.keys().filter(|(s, _)| s == station).cloned().collect();
        for key in keys {
            if let Some(list) = inner.open.remove(&key) {
                inner.total -= list.len();
                for (_, tx) in list {
                    let _ = tx.send(true);
                }
            }
        }
    }

    /// How many requests of `kind` `station` holds open.
    pub fn open_count(&self, station: &str, kind: Kind) -> usize {
        self.lock().open.get(&(station.to_string(), kind)).map_or(0, VecDeque::len)
    }

    /// How many long-lived requests are open in all.
    pub fn total(&self) -> usize {
        self.lock().total
    }
}

impl Slot {
    /// Resolves when the registry tells this request to close.
    pub async fn closed(&mut self) {
        while !*self.closed.borrow_and_update() {
            if self.closed.changed().await.is_err() {
                return;
            }
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let mut inner = self.registry.lock();
        if let Some(list) = inner.open.get_mut(&self.key) {
            let before = list.len();
            list.retain(|(id, _)| *id != self.id);
            let removed = before - list.len();
            if list.is_empty() {
                inner.open.remove(&self.key);
            }
            inner.total -= removed;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_third_live_listener_of_one_token_closes_the_oldest_and_leaves_its_events_alone() {
        assert_eq!(PER_STATION, crate::protocol::live::MAX_LISTENERS_PER_STATION);
        let streams = Arc::new(Streams::default());
        let events = streams.open("a", Kind::EventStream).unwrap();
        let mut first = streams.open("a", Kind::Live).unwrap();
        let _second = streams.open("a", Kind::Live).unwrap();
        let _third = streams.open("a", Kind::Live).unwrap();
        first.closed().await;
        assert_eq!(streams.open_count("a", Kind::Live), PER_STATION);
        assert_eq!(streams.open_count("a", Kind::EventStream), 1, "{events:?} untouched");
        assert_eq!(streams.total(), PER_STATION + 1);
    }

    #[tokio::test]
    async fn the_newest_wins_per_station_and_the_global_cap_holds() {
        let streams = Arc::new(Streams::new(3));
        let mut first = streams.open("a", Kind::EventStream).unwrap();
        let second = streams.open("a", Kind::EventStream).unwrap();
        assert_eq!(streams.open_count("a", Kind::EventStream), 2);
        // A third from the same token: the oldest is told to close, the count stays 2.
        let third = streams.open("a", Kind::EventStream).unwrap();
        first.closed().await;
        assert_eq!(streams.open_count("a", Kind::EventStream), 2);
        assert_eq!(streams.total(), 2);
        drop(first);
        assert_eq!(streams.total(), 2, "a closed slot dropped late is not counted twice");
        // Another kind and another station share the global cap of 3.
        let poll = streams.open("a", Kind::LongPoll).unwrap();
        assert!(matches!(streams.open("b", Kind::EventStream), Err(ApiError::Busy(_))));
        // A station at its own cap still replaces its oldest, even with the cap reached.
        let fourth = streams.open("a", Kind::EventStream).unwrap();
        assert_eq!(streams.total(), 3);
        drop((second, third, fourth, poll));
        assert_eq!(streams.total(), 0);
        assert!(streams.open("b", Kind::EventStream).is_ok());
    }

    #[tokio::test]
    async fn a_station_whose_token_changed_loses_every_stream() {
        let streams = Arc::new(Streams::default());
        let mut a = streams.open("a", Kind::EventStream).unwrap();
        let mut b = streams.open("a", Kind::LongPoll).unwrap();
        let other = streams.open("c", Kind::EventStream).unwrap();
        streams.close_station("a");
        a.closed().await;
        b.closed().await;
        assert_eq!(streams.total(), 1);
        drop((a, b));
        assert_eq!(streams.total(), 1);
        drop(other);
        assert_eq!(streams.total(), 0);
    }
}
