//! Text bulletins: the text spoken by espeak-ng at central, bounded in time and size,
//! and stored in the library by the same path as an upload.

use std::path::Path;
use std::time::Duration;

use super::BulletinError;
use crate::central::library::{self, Incoming, TempFile};
use crate::central::{ApiError, AppState};

/// The text-to-speech program central runs for `--text`.
pub const ESPEAK: &str = "espeak-ng";

/// Longest espeak-ng may take to render a bulletin's text (at most [`MAX_TEXT_CHARS`]:
/// a few seconds of work); a voice that hangs is killed.
pub const SPEECH_TIMEOUT: Duration = Duration::from_secs(60);

/// Renders `text` to a WAV file with espeak-ng (`voice`, e.g. `vi`). The program is killed
/// after [`SPEECH_TIMEOUT`], and a result larger than a bulletin's audio may be
/// ([`crate::protocol::bounds::MAX_BULLETIN_AUDIO_BYTES`]) is refused.
pub async fn render_speech(
    program: &str,
    text: &str,
    voice: &str,
    out: &Path,
) -> Result<(), BulletinError> {
    let child = tokio::process::Command::new(program)
        .arg("-v")
        .arg(voice)
        .arg("-w")
        .arg(out)
        .arg("--")
        .arg(text)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let speech_error =
        |detail: String| BulletinError::Speech { program: program.to_string(), detail };
    let child = match child {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BulletinError::NoSpeech { program: program.to_string() });
        }
        Err(e) => return Err(speech_error(e.to_string())),
        Ok(child) => child,
    };
    // Dropping the wait on timeout kills the child (`kill_on_drop`).
    let output = match tokio::time::timeout(SPEECH_TIMEOUT, child.wait_with_output()).await {
        Err(_) => {
            return Err(speech_error(format!(
                "it did not finish within {} s and was stopped",
                SPEECH_TIMEOUT.as_secs()
            )));
        }
        Ok(Err(e)) => return Err(speech_error(e.to_string())),
        Ok(Ok(output)) => output,
    };
    if !output.status.success() {
        return Err(speech_error(format!(
            "{} ({}); is the voice {voice:?} installed? `espeak-ng --voices` lists them",
            crate::protocol::text::printable(String::from_utf8_lossy(&output.stderr).trim()),
            output.status
        )));
    }
    let size = tokio::fs::metadata(out).await.map(|m| m.len()).unwrap_or(0);
    let limit = crate::protocol::bounds::MAX_BULLETIN_AUDIO_BYTES;
    if size > limit {
        return Err(speech_error(format!(
            "the speech is {size} bytes, more than a bulletin's audio may be ({limit})"
        )));
    }
    Ok(())
}

/// Renders `text`, measures it like an upload and stores it in the library.
pub(super) async fn speech_audio(
    state: &AppState,
    text: &str,
    voice: &str,
    title: &str,
) -> Result<crate::protocol::AudioInfo, ApiError> {
    let temp = TempFile::new(state, "speech");
    render_speech(ESPEAK, text, voice, &temp.0).await?;
    let path = temp.0.clone();
    let (sha256, size) = tokio::task::spawn_blocking(move || sha256_of(&path))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))??;
    let incoming = Incoming {
        temp,
        sha256,
        size,
        // Named as what it is: the operator never sees central's temporary path.
        shown: "speech.wav".into(),
        title: title.to_string(),
        accept_damaged: false,
        refused: "rendered speech is not playable",
    };
    library::store(state, incoming).await
}

/// The sha256 (hex) and size of the file at `path`, read a block at a time.
fn sha256_of(path: &Path) -> std::io::Result<(String, u64)> {
    use sha2::Digest;
    use std::io::Read;
    let mut file = std::fs::File::open(path)?;
    let mut hasher = sha2::Sha256::new();
    let mut buffer = vec![0u8; 64 * 1024];
    let mut size = 0u64;
    loop {
        let n = file.read(&mut buffer)?;
        if n == 0 {
            return Ok((hex::encode(hasher.finalize()), size));
        }
        size += n as u64;
        hasher.update(&buffer[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn missing_espeak_says_how_to_install_it() {
        let dir = tempfile::tempdir().unwrap();
        let err = render_speech("espeak-ng-not-here", "xin chào", "vi", &dir.path().join("o.wav"))
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(text.contains("apt-get install espeak-ng"), "{text}");
    }
}
