//! The station's audio cache on disk: verified files named by sha256, partial downloads
//! beside them, and the last manifest the station accepted.
//!
//! Layout under the cache directory: `audio/<sha256>` (complete and verified),
//! `partial/<sha256>.part` (being downloaded, kept across restarts for resume) and
//! `manifest.json` (the last accepted signed envelope).

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::protocol::SignedEnvelope;

/// Why the cache could not be read or written.
#[derive(Debug, thiserror::Error)]
#[error("cache {path}: {source}")]
pub struct CacheError {
    pub path: String,
    pub source: std::io::Error,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> CacheError + '_ {
    move |source| CacheError { path: path.display().to_string(), source }
}

/// Lowercase hex sha256: the only names the cache accepts, so no name can escape it.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The audio cache.
#[derive(Debug, Clone)]
pub struct Cache {
    root: PathBuf,
}

impl Cache {
    /// Opens (creating if needed) the cache under `root`.
    pub fn open(root: &Path) -> Result<Self, CacheError> {
        for dir in [root.join("audio"), root.join("partial")] {
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
        }
        Ok(Self { root: root.to_path_buf() })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The directory of verified files, each named by its sha256 (what the station's
    /// `audio_path(item, cache_dir)` expects as `cache_dir`).
    pub fn audio_dir(&self) -> PathBuf {
        self.root.join("audio")
    }

    /// Where a verified file lives (whether or not it is there yet). The player opens
    /// audio only through this path.
    pub fn audio_path(&self, sha256: &str) -> PathBuf {
        self.root.join("audio").join(sha256)
    }

    pub(crate) fn partial_path(&self, sha256: &str) -> PathBuf {
        self.root.join("partial").join(format!("{sha256}.part"))
    }

    pub fn contains(&self, sha256: &str) -> bool {
        is_sha256(sha256) && self.audio_path(sha256).is_file()
    }

    /// The sha256 of every complete file.
    pub fn cached(&self) -> Result<HashSet<String>, CacheError> {
        let dir = self.root.join("audio");
        let mut out = HashSet::new();
        for entry in std::fs::read_dir(&dir).map_err(io(&dir))? {
            let entry = entry.map_err(io(&dir))?;
            if let Some(name) = entry.file_name().to_str()
                && is_sha256(name)
            {
                out.insert(name.to_string());
            }
        }
        Ok(out)
    }

    /// Moves a verified partial file into the cache durably: fsync the file, rename,
    /// fsync the directory, so a power cut leaves either no file or the whole one.
    pub(crate) fn commit(&self, sha256: &str) -> Result<PathBuf, CacheError> {
        let target = self.commit_whole(sha256)?;
        self.sync_audio_dir()?;
        Ok(target)
    }

    /// The first half of [`Cache::commit`]: fsync the file, rename. From here a power
    /// cut leaves either no file or the whole one (its bytes are on disk before its name
    /// is), but the name itself may still be lost until [`Cache::sync_audio_dir`]. For a
    /// file that is fetched again when it is found missing (bulletin audio), the
    /// directory's fsync can wait until after the file is in use.
    pub(crate) fn commit_whole(&self, sha256: &str) -> Result<PathBuf, CacheError> {
        let partial = self.partial_path(sha256);
        let file = std::fs::OpenOptions::new().write(true).open(&partial).map_err(io(&partial))?;
        file.sync_all().map_err(io(&partial))?;
        drop(file);
        let target = self.audio_path(sha256);
        std::fs::rename(&partial, &target).map_err(io(&target))?;
        Ok(target)
    }

    /// Makes the names of files committed with [`Cache::commit_whole`] durable.
    pub(crate) fn sync_audio_dir(&self) -> Result<(), CacheError> {
        sync_dir(&self.root.join("audio"))
    }

    /// Deletes cached audio that `needed` no longer lists once it has been unneeded for
    /// `grace` (tracked in `unneeded_since`, which the caller keeps between calls).
    /// Returns what was removed.
    pub fn evict(
        &self,
        needed: &HashSet<String>,
        now: DateTime<Utc>,
        grace: Duration,
        unneeded_since: &mut HashMap<String, DateTime<Utc>>,
    ) -> Result<Vec<String>, CacheError> {
        let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        let cached = self.cached()?;
        unneeded_since.retain(|sha, _| cached.contains(sha) && !needed.contains(sha));
        let mut removed = Vec::new();
        for sha in cached.difference(needed) {
            let since = *unneeded_since.entry(sha.clone()).or_insert(now);
            if now - since >= grace {
                let path = self.audio_path(sha);
                std::fs::remove_file(&path).map_err(io(&path))?;
                unneeded_since.remove(sha);
                removed.push(sha.clone());
            }
        }
        // Partial downloads of files no longer needed go at once: they are not playable.
        let partial_dir = self.root.join("partial");
        for entry in std::fs::read_dir(&partial_dir).map_err(io(&partial_dir))?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let sha = name.strip_suffix(".part").unwrap_or(&name);
            if !needed.contains(sha) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        removed.sort();
        Ok(removed)
    }

    /// Stores the last accepted manifest envelope atomically.
    pub fn save_manifest(&self, envelope: &SignedEnvelope) -> Result<(), CacheError> {
        let path = self.root.join("manifest.json");
        let temp = self.root.join("manifest.json.tmp");
        let bytes = serde_json::to_vec_pretty(envelope)
            .map_err(|e| CacheError { path: path.display().to_string(), source: e.into() })?;
        let mut file = std::fs::File::create(&temp).map_err(io(&temp))?;
        file.write_all(&bytes).and_then(|()| file.sync_all()).map_err(io(&temp))?;
        std::fs::rename(&temp, &path).map_err(io(&path))?;
        sync_dir(&self.root)
    }

    /// The last accepted manifest envelope, if one was saved (not yet re-verified).
    pub fn load_manifest(&self) -> Result<Option<SignedEnvelope>, CacheError> {
        let path = self.root.join("manifest.json");
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map(Some)
                .map_err(|e| CacheError { path: path.display().to_string(), source: e.into() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io(&path)(e)),
        }
    }
}

fn sync_dir(dir: &Path) -> Result<(), CacheError> {
    std::fs::File::open(dir).and_then(|d| d.sync_all()).map_err(io(dir))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn eviction_waits_for_the_grace_period_and_spares_needed_audio() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        for sha in [&a, &b] {
            std::fs::write(cache.partial_path(sha), b"x").unwrap();
            cache.commit(sha).unwrap();
        }
        std::fs::write(cache.partial_path(&"c".repeat(64)), b"partial").unwrap();
        std::fs::write(cache.root().join("audio").join("notes.txt"), b"ignored").unwrap();
        assert_eq!(cache.cached().unwrap(), [a.clone(), b.clone()].into());

        let t0 = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).unwrap();
        let needed: HashSet<String> = [a.clone()].into();
        let grace = Duration::from_secs(3600);
        let mut since = HashMap::new();
        assert!(cache.evict(&needed, t0, grace, &mut since).unwrap().is_empty());
        assert!(!cache.partial_path(&"c".repeat(64)).exists(), "unneeded partial kept");
        let later = t0 + chrono::Duration::minutes(59);
        assert!(cache.evict(&needed, later, grace, &mut since).unwrap().is_empty());
        let later = t0 + chrono::Duration::minutes(60);
        assert_eq!(
            cache.evict(&needed, later, grace, &mut since).unwrap(),
            std::slice::from_ref(&b)
        );
        assert!(cache.contains(&a) && !cache.contains(&b));
    }

    #[test]
    fn manifest_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let cache = Cache::open(dir.path()).unwrap();
        assert_eq!(cache.load_manifest().unwrap(), None);
        let env = SignedEnvelope {
            kind: crate::protocol::DocumentKind::Manifest,
            payload: "e30=".into(),
            signature: "00".into(),
        };
        cache.save_manifest(&env).unwrap();
        assert_eq!(cache.load_manifest().unwrap(), Some(env));
    }
}
