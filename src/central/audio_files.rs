//! Where a library file's bytes are, for whoever serves or reads them.
//!
//! On SQLite (one central) the library is the files in `data_dir/audio`, and nothing
//! here changes that. On PostgreSQL (replicas) the database holds every file
//! ([`crate::store::blobs`]) and `data_dir/audio` is this replica's cache of them:
//! a file uploaded here is written to the database before its library record, so no
//! replica ever lists a file it cannot fetch; a file asked for and not on this disk is
//! fetched once (concurrent askers wait for that one fetch), checked against its
//! sha256, and kept; past [`CentralConfig::audio_cache_mb`] the least recently used
//! files leave the disk (never the one just asked for).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::SystemTime;

use sha2::{Digest, Sha256};

use super::ApiError;
use super::config::CentralConfig;
use crate::store::StoreError;
use crate::store::blobs::AudioBlobs;

/// The library's bytes: the data directory's files, and the database's when there is one.
pub struct AudioFiles {
    dir: PathBuf,
    tmp: PathBuf,
    database: Option<Arc<dyn AudioBlobs>>,
    cache_bytes: u64,
    /// One fetch from the database at a time (the fleet asks for the same file at once).
    fetching: tokio::sync::Mutex<()>,
}

impl AudioFiles {
    pub fn new(
        dir: PathBuf,
        tmp: PathBuf,
        database: Option<Arc<dyn AudioBlobs>>,
        cache_mb: u64,
    ) -> Self {
        Self {
            dir,
            tmp,
            database,
            cache_bytes: cache_mb.saturating_mul(1024 * 1024),
            fetching: tokio::sync::Mutex::new(()),
        }
    }

    /// For a config: the data directory's `audio/` and `tmp/`.
    pub fn for_config(config: &CentralConfig, database: Option<Arc<dyn AudioBlobs>>) -> Self {
        Self::new(
            config.data_dir.join(super::AUDIO_DIR),
            config.data_dir.join(super::TMP_DIR),
            database,
            config.audio_cache_mb,
        )
    }

    /// Where `sha256` is (or would be) on this machine's disk.
    pub fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(sha256)
    }

    /// A new library file is at [`Self::path`]: copies it into the database, when there
    /// is one, before anything refers to it.
    pub async fn stored(&self, sha256: &str) -> Result<(), ApiError> {
        let Some(database) = self.database.clone() else { return Ok(()) };
        let (path, sha) = (self.path(sha256), sha256.to_string());
        tokio::task::spawn_blocking(move || {
            let mut file = std::fs::File::open(&path)?;
            database.put_audio_bytes(&sha, &mut file).map_err(ApiError::from)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
    }

    /// The local path of `sha256`, fetched from the database into this replica's cache
    /// when it is not on disk; `None` when no copy exists anywhere.
    pub async fn local(&self, sha256: &str) -> Result<Option<PathBuf>, ApiError> {
        let path = self.path(sha256);
        let Some(database) = self.database.clone() else {
            return Ok(path.exists().then_some(path));
        };
        if touch(&path) {
            return Ok(Some(path));
        }
        let _one_fetch = self.fetching.lock().await;
        if touch(&path) {
            return Ok(Some(path));
        }
        let (tmp, sha, target) = (self.tmp.clone(), sha256.to_string(), path.clone());
        let budget = self.cache_bytes;
        let dir = self.dir.clone();
        tokio::task::spawn_blocking(move || {
            fetch(database.as_ref(), &sha, &tmp, &target, &dir, budget)
        })
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map(|held| held.then_some(path))
    }
}

/// Marks `path` as just used (for the cache's order); false when it is not on disk.
fn touch(path: &Path) -> bool {
    match std::fs::File::options().append(true).open(path) {
        Ok(file) => {
            let _ = file.set_modified(SystemTime::now());
            true
        }
        Err(_) => false,
    }
}

/// A file that hashes what is written to it: the fetched copy is checked as it
/// arrives, never read back whole into memory (a programme can be hundreds of MB).
struct Hashing {
    file: std::fs::File,
    hasher: Sha256,
}

impl std::io::Write for Hashing {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let written = self.file.write(bytes)?;
        self.hasher.update(&bytes[..written]);
        Ok(written)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

/// Copies `sha256` from the database to `target` through a temporary file, checking it;
/// then trims the cache. False when the database does not hold it.
fn fetch(
    database: &dyn AudioBlobs,
    sha256: &str,
    tmp: &Path,
    target: &Path,
    dir: &Path,
    budget: u64,
) -> Result<bool, ApiError> {
    let temp = tmp.join(format!("fetch-{sha256}-{:016x}", rand::random::<u64>()));
    let result = (|| {
        let mut out = Hashing { file: std::fs::File::create(&temp)?, hasher: Sha256::new() };
        if !database.read_audio_bytes(sha256, &mut out)? {
            return Ok(false);
        }
        out.file.sync_all()?;
        let actual = hex::encode(out.hasher.finalize());
        if actual != sha256 {
            return Err(ApiError::from(StoreError::Corrupt(format!(
                "the database's copy of sha256:{sha256} hashes to {actual}: upload the audio again"
            ))));
        }
        std::fs::rename(&temp, target)?;
        Ok(true)
    })();
    let _ = std::fs::remove_file(&temp);
    if matches!(result, Ok(true)) {
        trim(dir, budget, target);
    }
    result
}

/// Deletes the least recently used files in `dir` until their total is within `budget`,
/// keeping `keep`. Files are only copies: the database still holds every one.
fn trim(dir: &Path, budget: u64, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    let mut files: Vec<(SystemTime, u64, PathBuf)> = entries
        .flatten()
        .filter_map(|e| {
            let meta = e.metadata().ok()?;
            meta.is_file()
                .then(|| (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len(), e.path()))
        })
        .collect();
    let mut total: u64 = files.iter().map(|f| f.1).sum();
    files.sort();
    for (_, size, path) in files {
        if total <= budget {
            break;
        }
        if path != keep && std::fs::remove_file(&path).is_ok() {
            total = total.saturating_sub(size);
            tracing::debug!(path = %path.display(), "audio cache: dropped the least recently used file");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::io::{Read, Write};
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// The database's side, in memory; counts reads.
    #[derive(Default)]
    struct Held {
        files: Mutex<HashMap<String, Vec<u8>>>,
        reads: AtomicUsize,
    }

    impl AudioBlobs for Held {
        fn put_audio_bytes(
            &self,
            sha256: &str,
            file: &mut (dyn Read + Send),
        ) -> Result<(), StoreError> {
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes).unwrap();
            self.files.lock().unwrap().insert(sha256.into(), bytes);
            Ok(())
        }
        fn read_audio_bytes(
            &self,
            sha256: &str,
            out: &mut (dyn Write + Send),
        ) -> Result<bool, StoreError> {
            self.reads.fetch_add(1, Ordering::SeqCst);
            match self.files.lock().unwrap().get(sha256) {
                Some(bytes) => {
                    out.write_all(bytes).unwrap();
                    Ok(true)
                }
                None => Ok(false),
            }
        }
        fn holds_audio(&self, sha256: &str) -> Result<bool, StoreError> {
            Ok(self.files.lock().unwrap().contains_key(sha256))
        }
    }

    fn sha(bytes: &[u8]) -> String {
        hex::encode(Sha256::digest(bytes))
    }

    fn files(dir: &Path, held: Arc<Held>, cache_mb: u64) -> AudioFiles {
        for sub in ["audio", "tmp"] {
            std::fs::create_dir_all(dir.join(sub)).unwrap();
        }
        AudioFiles::new(dir.join("audio"), dir.join("tmp"), Some(held), cache_mb)
    }

    #[tokio::test]
    async fn a_file_not_on_this_disk_is_fetched_once_checked_and_kept() {
        let dir = tempfile::tempdir().unwrap();
        let held = Arc::new(Held::default());
        let bytes = vec![7u8; 5000];
        held.files.lock().unwrap().insert(sha(&bytes), bytes.clone());
        let audio = files(dir.path(), held.clone(), 10);
        let name = sha(&bytes);
        let asks = (0..8).map(|_| audio.local(&name));
        for got in futures_util::future::join_all(asks).await {
            assert_eq!(std::fs::read(got.unwrap().unwrap()).unwrap(), bytes);
        }
        assert_eq!(held.reads.load(Ordering::SeqCst), 1, "eight askers, one fetch");
        assert!(audio.local(&"0".repeat(64)).await.unwrap().is_none(), "held nowhere");
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn a_damaged_copy_in_the_database_is_refused_and_not_kept() {
        let dir = tempfile::tempdir().unwrap();
        let held = Arc::new(Held::default());
        let name = sha(b"the real bytes");
        held.files.lock().unwrap().insert(name.clone(), b"other bytes".to_vec());
        let audio = files(dir.path(), held, 10);
        let err = audio.local(&name).await.unwrap_err();
        assert!(err.to_string().contains("upload the audio again"), "{err}");
        assert!(!audio.path(&name).exists());
        assert_eq!(std::fs::read_dir(dir.path().join("tmp")).unwrap().count(), 0);
    }

    #[tokio::test]
    async fn the_cache_keeps_to_its_budget_dropping_the_least_recently_used() {
        let dir = tempfile::tempdir().unwrap();
        let held = Arc::new(Held::default());
        // Three files of 600 KB in a 1 MB cache: at most one stays beside the newest.
        let all: Vec<Vec<u8>> = (0..3u8).map(|i| vec![i; 600 * 1024]).collect();
        for bytes in &all {
            held.files.lock().unwrap().insert(sha(bytes), bytes.clone());
        }
        let audio = files(dir.path(), held, 1);
        for bytes in &all {
            audio.local(&sha(bytes)).await.unwrap().unwrap();
        }
        let on_disk: Vec<bool> = all.iter().map(|b| audio.path(&sha(b)).exists()).collect();
        assert_eq!(on_disk, vec![false, false, true], "only the newest fits");
    }

    #[tokio::test]
    async fn without_a_database_the_library_is_the_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("audio")).unwrap();
        let audio = AudioFiles::new(dir.path().join("audio"), dir.path().join("tmp"), None, 0);
        let name = sha(b"x");
        assert!(audio.local(&name).await.unwrap().is_none());
        std::fs::write(audio.path(&name), b"x").unwrap();
        assert_eq!(audio.local(&name).await.unwrap(), Some(audio.path(&name)));
        audio.stored(&name).await.unwrap(); // nothing to copy to
    }
}
