//! Turning a verified manifest's schedules into files the station can load as it loads
//! any schedule: each `audio = "path"` rewritten in place to `audio = "sha256:<hex>"`,
//! so items name their audio by content and the player opens it from the cache.
//!
//! Only the audio values change, each on its own line, so every diagnostic the station
//! reports still points at the line staff wrote.

use std::path::{Path, PathBuf};

use crate::protocol::ManifestSchedule;
pub use crate::protocol::manifest::{ManifestError, resolved_source, schedules};
use crate::schedule;

/// Why a manifest schedule could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error(transparent)]
    Manifest(#[from] ManifestError),
    #[error("schedule name {0:?} is not a plain file name")]
    BadName(String),
    #[error("cannot write {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// Writes each schedule's resolved text to `dir/<layer>/<origin>` (atomically: temp
/// file, fsync, rename) and removes files there that the manifest no longer lists.
/// Returns the paths written.
pub fn write_schedules(
    schedules: &[ManifestSchedule],
    dir: &Path,
) -> Result<Vec<PathBuf>, ExportError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| ExportError::Io { path, source }
    };
    let mut written = Vec::new();
    for layer in ["provincial", "local"] {
        std::fs::create_dir_all(dir.join(layer)).map_err(io(&dir.join(layer)))?;
    }
    for schedule in schedules {
        let name = &schedule.origin;
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(ExportError::BadName(name.clone()));
        }
        let layer = match schedule.layer {
            schedule::Layer::Provincial => "provincial",
            schedule::Layer::Local => "local",
        };
        let text = resolved_source(schedule)?;
        let path = dir.join(layer).join(name);
        let temp = dir.join(layer).join(format!(".{name}.tmp"));
        {
            use std::io::Write;
            let mut file = std::fs::File::create(&temp).map_err(io(&temp))?;
            file.write_all(text.as_bytes()).and_then(|()| file.sync_all()).map_err(io(&temp))?;
        }
        std::fs::rename(&temp, &path).map_err(io(&path))?;
        written.push(path);
    }
    for layer in ["provincial", "local"] {
        let sub = dir.join(layer);
        for entry in std::fs::read_dir(&sub).map_err(io(&sub))?.flatten() {
            if !written.contains(&entry.path()) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
        // The renames above are durable only once the directory itself is on disk.
        std::fs::File::open(&sub).and_then(|d| d.sync_all()).map_err(io(&sub))?;
    }
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::Manifest;
    use crate::schedule::{AudioRef, Layer};
    use std::collections::BTreeMap;

    const SOURCE: &str = r#"layer = "provincial"
# comment with "quotes"
[[item]]
id = "a"
title = "Bản tin"
audio = "../audio/bản tin.mp3"   # trailing comment
cron = "30 5 * * *"

[[item]]
id = "b"
title = "b"
audio = 'lit\eral.wav'
cron = "0 17 * * *"

[[item]]
id = "c"
title = "c"
audio = "sha256:cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc"
cron = "0 18 * * *"
"#;

    fn schedule(audio: &[(&str, &str)]) -> ManifestSchedule {
        ManifestSchedule {
            origin: "p.toml".into(),
            layer: Layer::Provincial,
            source: SOURCE.into(),
            audio: audio
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect::<BTreeMap<_, _>>(),
        }
    }

    #[test]
    fn paths_become_content_addresses_and_lines_stay_put() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let s = schedule(&[("../audio/bản tin.mp3", &a), ("lit\\eral.wav", &b)]);
        let text = resolved_source(&s).unwrap();
        assert_eq!(text.lines().count(), SOURCE.lines().count());
        assert!(text.contains(&format!("audio = \"sha256:{a}\"   # trailing comment")), "{text}");
        let parsed = schedule::parse(&text, "p.toml", Path::new(""));
        let audio: Vec<_> = parsed.schedule.unwrap().items.into_iter().map(|i| i.audio).collect();
        assert_eq!(
            audio,
            [AudioRef::Sha256(a), AudioRef::Sha256(b), AudioRef::Sha256("c".repeat(64))]
        );
    }

    #[test]
    fn parsed_schedules_carry_central_gain() {
        let (a, b) = ("a".repeat(64), "b".repeat(64));
        let s = schedule(&[("../audio/bản tin.mp3", &a), ("lit\\eral.wav", &b)]);
        let audio = |sha: &str, gain_db| crate::protocol::ManifestAudio {
            sha256: sha.into(),
            size: 1,
            gain_db,
            earliest_needed: None,
        };
        let t = chrono::Utc::now();
        let manifest = Manifest {
            station_id: "x".into(),
            version: 1,
            issued_at: t,
            valid_until: t,
            schedules: vec![s],
            audio: vec![audio(&a, 3.5), audio(&b, -2.0)],
        };
        let got = schedules(&manifest).unwrap();
        let gains: Vec<f32> = got[0].items.iter().map(|i| i.gain_db).collect();
        assert_eq!(gains, [3.5, -2.0, 0.0]);
    }

    #[test]
    fn an_unresolved_path_is_an_error_with_its_place() {
        let s = schedule(&[("../audio/bản tin.mp3", &"a".repeat(64))]);
        let err = resolved_source(&s).unwrap_err().to_string();
        assert!(err.starts_with("p.toml:12:9:"), "{err}");
    }

    #[test]
    fn files_are_written_per_layer_and_stale_ones_removed() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("local")).unwrap();
        std::fs::write(dir.path().join("local/old.toml"), "stale").unwrap();
        let s = schedule(&[
            ("../audio/bản tin.mp3", &"a".repeat(64)),
            ("lit\\eral.wav", &"b".repeat(64)),
        ]);
        let written = write_schedules(&[s], dir.path()).unwrap();
        assert_eq!(written, [dir.path().join("provincial/p.toml")]);
        assert!(!dir.path().join("local/old.toml").exists());
        let mut bad = schedule(&[]);
        bad.origin = "../x.toml".into();
        assert!(matches!(write_schedules(&[bad], dir.path()), Err(ExportError::BadName(_))));
    }
}
