//! Audio entering the library, by one path whether an operator uploaded it or central
//! spoke a text bulletin: measured (loudness, true peak), refused when damaged unless the
//! operator accepts it, given its gain towards the province's target, made durable
//! (fsync, rename, fsync of the directory) and only then listed — a power cut can leave
//! an unlisted file, never a listed missing one.

use std::path::{Path, PathBuf};

use axum::body::Bytes;
use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;

use super::auth::Caller;
use super::{ApiError, AppState, ingest};
use crate::protocol::AudioInfo;
use crate::store::Role;

/// An upload as the operator named it.
#[derive(Debug, Clone)]
pub struct Upload {
    /// The file's name on the operator's machine (printable, no folders): what answers
    /// call it.
    pub name: String,
    /// The library title; `None`: the start of its sha256.
    pub title: Option<String>,
    /// Store a truncated or partly corrupt file anyway (`--accept-damaged`).
    pub accept_damaged: bool,
}

/// Receives an upload for `caller` (`PUT /api/v1/audio`, the console's upload form)
/// chunk by chunk into a temporary file — at most `limit` bytes, a stall of
/// [`super::body::READ_TIMEOUT`] refused — then [`store`]s it and writes an audit line.
pub async fn receive<S>(
    state: &AppState,
    caller: &Caller,
    upload: Upload,
    stream: &mut S,
    limit: u64,
) -> Result<AudioInfo, ApiError>
where
    S: futures_util::Stream<Item = Result<Bytes, axum::Error>> + Unpin,
{
    if caller.role == Role::Viewer {
        return Err(ApiError::Forbidden("viewer tokens cannot upload audio".into()));
    }
    let temp = TempFile::new(state, "upload");
    let mut file = tokio::fs::File::create(&temp.0).await?;
    let mut hasher = Sha256::new();
    let mut size: u64 = 0;
    while let Some(chunk) = super::body::next_chunk(stream).await? {
        size += chunk.len() as u64;
        if size > limit {
            return Err(ApiError::TooLarge { limit });
        }
        hasher.update(&chunk);
        file.write_all(&chunk).await?;
    }
    // tokio writes on its blocking pool: a write still in flight when the file is
    // dropped lands later, and the measurement below would read a truncated file and
    // refuse a good upload as damaged. Flush first (seen once in the chaos test: 400).
    file.flush().await?;
    drop(file);
    if size == 0 {
        return Err(ApiError::BadRequest("upload is empty: send the audio file's bytes".into()));
    }
    let sha256 = hex::encode(hasher.finalize());
    let title = upload.title.unwrap_or_else(|| sha256[..12].to_string());
    let incoming = Incoming {
        temp,
        sha256,
        size,
        shown: upload.name.clone().into(),
        title,
        accept_damaged: upload.accept_damaged,
        refused: "upload refused",
    };
    let stored = store(state, incoming).await?;
    super::bulletins::issue::audit(
        state,
        &caller.actor(),
        "audio.upload",
        &format!("sha256:{}", stored.sha256),
        format!(
            "{} as {:?}: {} bytes, {:.1} s, {:.1} LUFS{}",
            upload.name,
            stored.title,
            stored.size,
            stored.duration_ms as f64 / 1000.0,
            stored.loudness_lufs,
            stored.damage.as_ref().map(|d| format!(" ({d}, accepted)")).unwrap_or_default()
        ),
    );
    Ok(stored)
}

/// A temporary file in central's `tmp/`, removed however the request ends unless it
/// became a library file.
pub struct TempFile(pub PathBuf);

impl TempFile {
    /// A new name in `state`'s temporary folder (`prefix-<random>`).
    pub fn new(state: &AppState, prefix: &str) -> Self {
        let nonce: u64 = rand::random();
        Self(state.tmp_dir().join(format!("{prefix}-{nonce:016x}")))
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// A complete file waiting in `temp` to enter the library.
pub struct Incoming {
    pub temp: TempFile,
    pub sha256: String,
    pub size: u64,
    /// What errors call it: the name the client sent, never central's temporary path.
    pub shown: PathBuf,
    pub title: String,
    /// Store a truncated or corrupt file anyway (its damage stays on the record).
    pub accept_damaged: bool,
    /// How a refusal begins (`upload refused`, `rendered speech is not playable`).
    pub refused: &'static str,
}

/// Measures `incoming`, refuses it when it does not decode or is damaged (unless
/// accepted), and puts it in the library. Returns the library record.
pub async fn store(state: &AppState, incoming: Incoming) -> Result<AudioInfo, ApiError> {
    let Incoming { temp, sha256, size, shown, title, accept_damaged, refused } = incoming;
    let (path, named) = (temp.0.clone(), shown.clone());
    let (measured, stats) = tokio::task::spawn_blocking(move || ingest::measure_as(&path, &named))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(|e| ApiError::BadRequest(format!("{refused}: {e}")))?;
    // A half-copied programme would air as a fragment and be logged `played`: damage is
    // refused unless the operator says to keep it, and then it stays on the record.
    if let Some(why) = stats.damage_explained()
        && !accept_damaged
    {
        return Err(ApiError::BadRequest(format!(
            "{refused}: {}: {why}; upload the whole file, or pass --accept-damaged to \
             `loa audio add` to store it anyway",
            shown.display()
        )));
    }
    let info = AudioInfo {
        sha256: sha256.clone(),
        title,
        size,
        duration_ms: measured.duration_ms,
        loudness_lufs: measured.loudness_lufs,
        gain_db: ingest::gain_towards(state.config.loudness_target_lufs, &measured),
        damage: stats.damage(),
    };
    tokio::fs::File::open(&temp.0).await?.sync_all().await?;
    tokio::fs::rename(&temp.0, state.audio.path(&sha256)).await?;
    sync_dir(&state.audio_dir()).await?;
    // Into the database (replicas) before the record that lists it.
    state.audio.stored(&sha256).await?;
    state.store.put_audio(&info, measured.true_peak_dbtp)?;
    let stored = state.store.audio(&sha256)?.unwrap_or(info);
    tracing::info!(sha256, size, lufs = stored.loudness_lufs, damage = ?stored.damage, "audio stored");
    Ok(stored)
}

async fn sync_dir(dir: &Path) -> std::io::Result<()> {
    tokio::fs::File::open(dir).await?.sync_all().await
}
