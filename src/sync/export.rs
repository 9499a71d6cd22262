//! Turning a verified manifest's schedules into files the station can load as it loads
//! any schedule: each `audio = "path"` rewritten in place to `audio = "sha256:<hex>"`,
//! so items name their audio by content and the player opens it from the cache.
//!
//! Only the audio values change, each on its own line, so every diagnostic the station
//! reports still points at the line staff wrote.

use std::path::{Path, PathBuf};

use crate::protocol::{Manifest, ManifestSchedule};
use crate::schedule::{self, AudioRef, Schedule};

/// Why a manifest schedule could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    #[error("{origin}: schedule no longer parses at the station: {first}")]
    Parse { origin: String, first: String },
    #[error("{origin}:{line}:{column}: audio {written:?} has no sha256 in the manifest")]
    Unresolved { origin: String, line: usize, column: usize, written: String },
    #[error("{origin}:{line}:{column}: cannot rewrite this audio value: {why}")]
    Rewrite { origin: String, line: usize, column: usize, why: &'static str },
    #[error("schedule name {0:?} is not a plain file name")]
    BadName(String),
    #[error("cannot write {path}: {source}")]
    Io { path: String, source: std::io::Error },
}

/// The schedule's text with every path-valued `audio` replaced by its `sha256:` form.
pub fn resolved_source(schedule: &ManifestSchedule) -> Result<String, ExportError> {
    let origin = schedule.origin.clone();
    let parsed = schedule::parse(&schedule.source, &origin, Path::new(""));
    if let Some(first) = parsed.diagnostics.iter().find(|d| d.is_error()) {
        return Err(ExportError::Parse { origin, first: first.to_string() });
    }
    let line_starts: Vec<usize> =
        std::iter::once(0).chain(schedule.source.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let mut edits = Vec::new();
    for (audio, pos) in &parsed.audio {
        let AudioRef::Path(path) = audio else { continue };
        let written = path.to_string_lossy().into_owned();
        let sha = schedule.audio_sha256(&written).ok_or_else(|| ExportError::Unresolved {
            origin: origin.clone(),
            line: pos.line,
            column: pos.column,
            written: written.clone(),
        })?;
        let rewrite = |why| ExportError::Rewrite {
            origin: origin.clone(),
            line: pos.line,
            column: pos.column,
            why,
        };
        let line_start =
            *line_starts.get(pos.line.wrapping_sub(1)).ok_or_else(|| rewrite("no such line"))?;
        let line = &schedule.source[line_start..];
        let start = line_start
            + line
                .char_indices()
                .nth(pos.column.saturating_sub(1))
                .map(|(i, _)| i)
                .ok_or_else(|| rewrite("no such column"))?;
        let rest = &schedule.source[start..];
        let end = if rest.starts_with("\"\"\"") || rest.starts_with("'''") {
            return Err(rewrite("multi-line strings are not supported for audio"));
        } else if let Some(body) = rest.strip_prefix('"') {
            let mut escaped = false;
            let close = body
                .char_indices()
                .find(|&(_, c)| {
                    let stop = c == '"' && !escaped;
                    escaped = c == '\\' && !escaped;
                    stop
                })
                .map(|(i, _)| i)
                .ok_or_else(|| rewrite("unterminated string"))?;
            start + 1 + close + 1
        } else if let Some(body) = rest.strip_prefix('\'') {
            start + 1 + body.find('\'').ok_or_else(|| rewrite("unterminated string"))? + 1
        } else {
            return Err(rewrite("not a string"));
        };
        edits.push((start, end, format!("\"sha256:{sha}\"")));
    }
    edits.sort_by_key(|e| std::cmp::Reverse(e.0));
    let mut text = schedule.source.clone();
    for (start, end, replacement) in edits {
        text.replace_range(start..end, &replacement);
    }
    // The rewrite must parse, with every audio now content-addressed.
    let check = schedule::parse(&text, &origin, Path::new(""));
    if check.schedule.is_none() || check.audio.iter().any(|(a, _)| matches!(a, AudioRef::Path(_))) {
        return Err(ExportError::Rewrite {
            origin,
            line: 1,
            column: 1,
            why: "the rewritten file does not parse to content-addressed audio",
        });
    }
    Ok(text)
}

/// Every schedule of a verified manifest, parsed, with audio as `sha256:` references and
/// central's normalising gain added to each item's own `gain_db`. Ready for the station
/// daemon (e.g. `StationCommand::Provincial` for the provincial one).
pub fn schedules(manifest: &Manifest) -> Result<Vec<Schedule>, ExportError> {
    let mut out = Vec::new();
    for s in &manifest.schedules {
        let text = resolved_source(s)?;
        let parsed = schedule::parse(&text, &s.origin, Path::new(""));
        let Some(mut parsed) = parsed.schedule else {
            return Err(ExportError::Parse {
                origin: s.origin.clone(),
                first: "the resolved schedule does not parse".into(),
            });
        };
        for item in &mut parsed.items {
            if let AudioRef::Sha256(hex) = &item.audio
                && let Some(audio) = manifest.audio.iter().find(|a| &a.sha256 == hex)
            {
                item.gain_db += audio.gain_db;
            }
        }
        out.push(parsed);
    }
    Ok(out)
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
    use crate::schedule::Layer;
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
