//! Who waits for which station's next manifest. A station's long poll (`GET
//! /station/manifest?wait=…`) watches its station's channel here; a manifest issued by
//! this replica is announced here at once, and, when the store is shared by several
//! replicas, one issued by another replica arrives through [`Store::manifest_feed`] and
//! is announced the same way. Without that, a station long-polling one replica would hear
//! of a schedule loaded through another only when its wait ended (up to a minute).
//!
//! Everything here is a cache of the store: a waiter woken for nothing reads the store,
//! finds the version it holds, and waits again.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;

use tokio::sync::watch;

use crate::store::{ManifestNews, Store};

/// How often the follower looks up from the feed to see whether central has stopped.
const FOLLOW_WAKE: Duration = Duration::from_secs(1);

/// One channel per station that anyone waited for or that was announced (so at most one
/// per station), each holding the newest version known here.
#[derive(Default)]
pub struct ManifestWatch {
    stations: Mutex<HashMap<String, watch::Sender<u64>>>,
}

impl ManifestWatch {
    /// The watch for this process, following `store`'s news of other replicas' manifests
    /// when it has any (a thread that ends once the watch is dropped).
    pub fn open(store: &dyn Store) -> std::io::Result<Arc<Self>> {
        let watch = Arc::new(Self::default());
        if let Some(feed) = store.manifest_feed() {
            let weak = Arc::downgrade(&watch);
            std::thread::Builder::new()
                .name("loa-manifest-follow".into())
                .spawn(move || follow(weak, feed))?;
        }
        Ok(watch)
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, watch::Sender<u64>>> {
        self.stations.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// A receiver that changes whenever a newer manifest is announced for `station_id`.
    pub fn watch(&self, station_id: &str) -> watch::Receiver<u64> {
        self.lock().entry(station_id.to_string()).or_insert_with(|| watch::channel(0).0).subscribe()
    }

    /// Wakes `station_id`'s waiters when `version` is newer than any announced before (a
    /// replica hears its own commits too: those it has announced already wake no one).
    pub fn announce(&self, station_id: &str, version: u64) {
        let mut stations = self.lock();
        let sender = stations.entry(station_id.to_string()).or_insert_with(|| watch::channel(0).0);
        sender.send_if_modified(|known| {
            let newer = version > *known;
            if newer {
                *known = version;
            }
            newer
        });
    }

    /// Wakes every waiter: news may have been lost, so each reads the store.
    pub fn wake_all(&self) {
        for sender in self.lock().values() {
            sender.send_modify(|_| {});
        }
    }
}

/// Hands the store's news to `watch` until the watch or the feed is gone.
fn follow(watch: Weak<ManifestWatch>, feed: Receiver<ManifestNews>) {
    loop {
        let heard = feed.recv_timeout(FOLLOW_WAKE);
        let Some(watch) = watch.upgrade() else { return };
        match heard {
            Ok(ManifestNews::Issued { station_id, version }) => {
                watch.announce(&station_id, version)
            }
            Ok(ManifestNews::MaybeMissed) => watch.wake_all(),
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;

    use super::*;

    fn started(watch: &Arc<ManifestWatch>) -> mpsc::Sender<ManifestNews> {
        let (tx, rx) = mpsc::channel();
        let weak = Arc::downgrade(watch);
        std::thread::spawn(move || follow(weak, rx));
        tx
    }

    #[tokio::test]
    async fn news_from_another_replica_wakes_the_station_that_waits_and_no_other() {
        let watch = Arc::new(ManifestWatch::default());
        let mut waiting = watch.watch("xa-a");
        let other = watch.watch("xa-b");
        let news = started(&watch);
        news.send(ManifestNews::Issued { station_id: "xa-a".into(), version: 3 }).unwrap();
        tokio::time::timeout(Duration::from_secs(10), waiting.changed())
            .await
            .expect("the waiter is woken")
            .unwrap();
        assert_eq!(*waiting.borrow_and_update(), 3);
        assert!(!other.has_changed().unwrap(), "another station's waiter sleeps on");
    }

    #[test]
    fn an_older_or_repeated_version_wakes_no_one() {
        let watch = ManifestWatch::default();
        watch.announce("xa-a", 5);
        let mut waiting = watch.watch("xa-a");
        assert_eq!(*waiting.borrow_and_update(), 5);
        watch.announce("xa-a", 5);
        watch.announce("xa-a", 4);
        assert!(!waiting.has_changed().unwrap());
        watch.announce("xa-a", 6);
        assert!(waiting.has_changed().unwrap());
    }

    #[test]
    fn news_that_may_be_lost_wakes_every_waiter() {
        let watch = ManifestWatch::default();
        let (mut a, mut b) = (watch.watch("xa-a"), watch.watch("xa-b"));
        a.borrow_and_update();
        b.borrow_and_update();
        watch.wake_all();
        assert!(a.has_changed().unwrap() && b.has_changed().unwrap());
    }

    #[test]
    fn the_follower_ends_when_central_drops_the_watch() {
        let watch = Arc::new(ManifestWatch::default());
        let (tx, rx) = mpsc::channel();
        let weak = Arc::downgrade(&watch);
        let follower = std::thread::spawn(move || follow(weak, rx));
        drop(watch);
        tx.send(ManifestNews::MaybeMissed).unwrap();
        follower.join().unwrap();
    }
}
