//! An open stream (a station's bulletin event stream, its live listener) re-checks every
//! [`REAUTH_EVERY`] that the token it was opened with is still its station's, so a
//! rotated token or a removed station loses its streams within seconds. Asked one stream
//! at a time, that was a store read per open stream every few seconds: 2,000 a second at
//! 10,000 stations, idle or not, each holding an async worker while it ran. Here every
//! stream's check shares one read of all station tokens, made at most once per [`FRESH`]:
//! a rotation is seen within `REAUTH_EVERY + FRESH`.
//!
//! A store that cannot be read fails every check for [`FRESH`] (the streams close, as
//! they did when each asked alone; stations reconnect and are answered `503` until the
//! database is back) without each stream waiting on the store in turn.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::store::Store;

/// How often an open stream checks its token.
pub const REAUTH_EVERY: Duration = Duration::from_secs(4);

/// How long one read of the tokens answers every stream's check.
pub const FRESH: Duration = Duration::from_secs(1);

/// The tokens as last read, shared by every stream of this central.
#[derive(Default)]
pub struct TokenCheck {
    last: tokio::sync::Mutex<Option<Read>>,
}

struct Read {
    at: Instant,
    /// Token hash → station id; `None`: the store could not be read.
    tokens: Option<HashMap<String, String>>,
}

impl TokenCheck {
    /// Whether `token_hash` is still `station`'s token, reading the store only when
    /// the last read is older than [`FRESH`] (concurrent checks wait for that one read).
    pub async fn still_valid(
        &self,
        store: &Arc<dyn Store>,
        token_hash: &str,
        station: &str,
    ) -> bool {
        let mut last = self.last.lock().await;
        if last.as_ref().is_none_or(|r| r.at.elapsed() >= FRESH) {
            let store = store.clone();
            let read = tokio::task::spawn_blocking(move || store.station_token_hashes()).await;
            let tokens = match read {
                Ok(Ok(rows)) => Some(rows.into_iter().collect()),
                Ok(Err(e)) => {
                    tracing::warn!("cannot read the station tokens to check open streams: {e}");
                    None
                }
                Err(e) => {
                    tracing::warn!("cannot read the station tokens to check open streams: {e}");
                    None
                }
            };
            *last = Some(Read { at: Instant::now(), tokens });
        }
        last.as_ref()
            .and_then(|r| r.tokens.as_ref())
            .and_then(|tokens| tokens.get(token_hash))
            .is_some_and(|id| id == station)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{SqliteStore, Station, hash_token};

    fn store_with(stations: &[(&str, &str)]) -> (tempfile::TempDir, Arc<dyn Store>) {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("central.sqlite")).unwrap();
        for (id, token) in stations {
            let station =
                Station { id: id.to_string(), name: id.to_string(), district: "d".into() };
            store.add_station(&station, &hash_token(token)).unwrap();
        }
        (dir, Arc::new(store))
    }

    /// A token is valid for its own station only; a rotation is seen once the shared read
    /// is older than FRESH, and not before (every check within it shares one read).
    #[tokio::test(start_paused = true)]
    async fn a_rotated_token_fails_its_check_once_the_shared_read_is_stale() {
        let (_dir, store) = store_with(&[("xa-a", "token-a"), ("xa-b", "token-b")]);
        let check = TokenCheck::default();
        let (a, b) = (hash_token("token-a"), hash_token("token-b"));
        assert!(check.still_valid(&store, &a, "xa-a").await);
        assert!(!check.still_valid(&store, &a, "xa-b").await, "another station's token");
        assert!(!check.still_valid(&store, &hash_token("nope"), "xa-a").await);

        assert!(store.set_station_token("xa-a", &hash_token("token-a2")).unwrap());
        tokio::time::advance(FRESH - Duration::from_millis(1)).await;
        assert!(check.still_valid(&store, &a, "xa-a").await, "within FRESH: the same read");
        tokio::time::advance(Duration::from_millis(1)).await;
        assert!(!check.still_valid(&store, &a, "xa-a").await, "rotated: seen after FRESH");
        assert!(check.still_valid(&store, &hash_token("token-a2"), "xa-a").await);
        assert!(check.still_valid(&store, &b, "xa-b").await);
    }

    /// A rotation is seen within the bound the streams promise.
    #[test]
    fn a_rotation_is_seen_within_five_seconds() {
        assert!(REAUTH_EVERY + FRESH <= Duration::from_secs(5));
    }
}
