//! Urgent bulletins' audio held in memory at central while the bulletin is live.
//!
//! A province-wide push makes every station ask for the same file within a second. Served
//! from disk, each request opens the file and reads it in chunks on the blocking pool;
//! served from here, it is one reference-counted buffer sliced per request. The audio is
//! read and its sha256 checked once, at push time, so a file damaged on central's disk
//! is refused here (and served the slow way, where the station's own check refuses it)
//! rather than copied to the whole province. Entries leave when their bulletin expires,
//! or, past the memory budget, oldest expiry first.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;

use axum::body::Bytes;
use chrono::{DateTime, Utc};
use sha2::{Digest, Sha256};

/// Memory the hot set may hold. A spoken bulletin is a few hundred KB to a few MB; this
/// holds dozens of live ones and stays small beside central's other memory.
pub const BUDGET_BYTES: usize = 256 * 1024 * 1024;

struct Entry {
    bytes: Bytes,
    until: DateTime<Utc>,
}

/// Why audio could not be made hot (central then serves it from disk).
#[derive(Debug, thiserror::Error)]
pub enum HotAudioError {
    #[error("reading {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error(
        "{path} does not match its name (sha256 {actual}): the file on central's disk is damaged; upload the audio again"
    )]
    Damaged { path: String, actual: String },
    #[error("{size} bytes is more than the hot-audio budget of {budget} bytes")]
    TooLarge { size: usize, budget: usize },
}

/// The in-memory set, shared by the push and download handlers.
#[derive(Default)]
pub struct HotAudio {
    entries: Mutex<HashMap<String, Entry>>,
}

impl HotAudio {
    /// The audio named `sha256`, if it is hot.
    pub fn get(&self, sha256: &str) -> Option<Bytes> {
        self.lock().get(sha256).map(|e| e.bytes.clone())
    }

    /// Reads `path` (named by `sha256`), checks it, and keeps it until `until` (a later
    /// bulletin with the same audio extends it). Runs file reading and hashing on the
    /// blocking pool.
    pub async fn load(
        &self,
        sha256: &str,
        path: &Path,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), HotAudioError> {
        if let Some(entry) = self.lock().get_mut(sha256) {
            entry.until = entry.until.max(until);
            return Ok(());
        }
        let (name, path) = (sha256.to_string(), path.to_path_buf());
        let bytes = tokio::task::spawn_blocking(move || read_checked(&name, &path))
            .await
            .map_err(|e| HotAudioError::Read {
                path: sha256.to_string(),
                source: std::io::Error::other(e.to_string()),
            })??;
        self.insert(sha256, bytes, until, now)
    }

    fn insert(
        &self,
        sha256: &str,
        bytes: Bytes,
        until: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Result<(), HotAudioError> {
        if bytes.len() > BUDGET_BYTES {
            return Err(HotAudioError::TooLarge { size: bytes.len(), budget: BUDGET_BYTES });
        }
        let mut entries = self.lock();
        entries.retain(|_, e| e.until > now);
        let mut held: usize = entries.values().map(|e| e.bytes.len()).sum();
        while held + bytes.len() > BUDGET_BYTES {
            let Some(first) = entries.iter().min_by_key(|(_, e)| e.until).map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(gone) = entries.remove(&first) {
                held -= gone.bytes.len();
            }
        }
        entries.insert(sha256.to_string(), Entry { bytes, until });
        Ok(())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Entry>> {
        self.entries.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

fn read_checked(sha256: &str, path: &Path) -> Result<Bytes, HotAudioError> {
    let shown = || path.display().to_string();
    let data =
        std::fs::read(path).map_err(|source| HotAudioError::Read { path: shown(), source })?;
    let actual = hex::encode(Sha256::digest(&data));
    if actual != sha256 {
        return Err(HotAudioError::Damaged { path: shown(), actual });
    }
    Ok(Bytes::from(data))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(minute: i64) -> DateTime<Utc> {
        DateTime::<Utc>::UNIX_EPOCH + chrono::Duration::minutes(minute)
    }

    fn named(data: &[u8]) -> String {
        hex::encode(Sha256::digest(data))
    }

    #[tokio::test]
    async fn checked_audio_is_served_until_its_bulletin_expires() {
        let dir = tempfile::tempdir().unwrap();
        let data = b"RIFF bulletin audio".to_vec();
        let sha = named(&data);
        let path = dir.path().join(&sha);
        std::fs::write(&path, &data).unwrap();
        let hot = HotAudio::default();
        hot.load(&sha, &path, at(10), at(0)).await.unwrap();
        assert_eq!(hot.get(&sha).as_deref(), Some(&data[..]));
        // Another file arriving after the first's expiry sweeps it out.
        let other = b"other".to_vec();
        let other_sha = named(&other);
        std::fs::write(dir.path().join(&other_sha), &other).unwrap();
        hot.load(&other_sha, &dir.path().join(&other_sha), at(30), at(11)).await.unwrap();
        assert!(hot.get(&sha).is_none());
        assert!(hot.get(&other_sha).is_some());
    }

    #[tokio::test]
    async fn a_damaged_file_is_not_made_hot() {
        let dir = tempfile::tempdir().unwrap();
        let sha = named(b"what was uploaded");
        let path = dir.path().join(&sha);
        std::fs::write(&path, b"what the disk holds now").unwrap();
        let hot = HotAudio::default();
        let err = hot.load(&sha, &path, at(10), at(0)).await.unwrap_err();
        assert!(matches!(err, HotAudioError::Damaged { .. }), "{err}");
        assert!(err.to_string().contains("upload the audio again"));
        assert!(hot.get(&sha).is_none());
    }

    #[test]
    fn past_the_budget_the_soonest_to_expire_leaves_first() {
        let hot = HotAudio::default();
        let big = Bytes::from(vec![0u8; BUDGET_BYTES / 2]);
        hot.insert("a", big.clone(), at(20), at(0)).unwrap();
        hot.insert("b", big.clone(), at(10), at(0)).unwrap();
        hot.insert("c", big, at(30), at(0)).unwrap();
        assert!(hot.get("a").is_some());
        assert!(hot.get("b").is_none(), "b expires first, so it made room");
        assert!(hot.get("c").is_some());
        let too_big = Bytes::from(vec![0u8; BUDGET_BYTES + 1]);
        assert!(matches!(
            hot.insert("d", too_big, at(40), at(0)),
            Err(HotAudioError::TooLarge { .. })
        ));
        assert!(hot.get("a").is_some() && hot.get("c").is_some(), "a refused entry evicts nothing");
    }
}
