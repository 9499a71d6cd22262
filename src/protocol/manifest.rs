//! What a station plays: the signed manifest, and the one step both sides take from it
//! to schedules ([`schedules`]): central to plan reports, stations to play.

use std::collections::BTreeMap;
use std::path::Path;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::schedule::{self, AudioRef, Layer, Schedule};

/// Everything one station needs to play its programmes, signed by the province.
/// Versions grow by one each time central issues a new manifest for this station; a
/// station refuses any version lower than the last one it accepted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub station_id: String,
    pub version: u64,
    pub issued_at: DateTime<Utc>,
    /// A manifest fetched after this instant is refused (it may be a stale replay).
    pub valid_until: DateTime<Utc>,
    pub schedules: Vec<ManifestSchedule>,
    /// Every audio file the schedules need, once each.
    pub audio: Vec<ManifestAudio>,
}

/// One schedule file as staff wrote it: its TOML text, parsed at the station with the
/// same parser central used to check it, so diagnostics point at the original lines.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestSchedule {
    /// The file name it was loaded from (e.g. `provincial.toml`), used in diagnostics.
    pub origin: String,
    pub layer: Layer,
    /// The schedule file's text, unchanged.
    pub source: String,
    /// Each `audio = "..."` value exactly as written in the file → lowercase hex sha256.
    /// `sha256:<hex>` values need no entry.
    pub audio: BTreeMap<String, String>,
}

impl ManifestSchedule {
    /// The content address for an `audio = "..."` value as written in the file.
    pub fn audio_sha256<'a>(&'a self, written: &'a str) -> Option<&'a str> {
        if let Some(hex) = written.strip_prefix("sha256:") {
            return Some(hex);
        }
        self.audio.get(written).map(String::as_str)
    }
}

/// One audio file a station must hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ManifestAudio {
    /// Lowercase hex sha256 of the file's bytes: its name in every cache.
    pub sha256: String,
    pub size: u64,
    /// Gain in dB that brings the file to the province's loudness target.
    pub gain_db: f32,
    /// The first planned play within central's planning horizon, if any: downloads go
    /// earliest-needed first.
    pub earliest_needed: Option<DateTime<Utc>>,
}

/// Why a manifest's schedules could not be turned into schedules to play.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    #[error("{origin}: schedule no longer parses at the station: {first}")]
    Parse { origin: String, first: String },
    #[error("{origin}:{line}:{column}: audio {written:?} has no sha256 in the manifest")]
    Unresolved { origin: String, line: usize, column: usize, written: String },
    #[error("{origin}:{line}:{column}: cannot rewrite this audio value: {why}")]
    Rewrite { origin: String, line: usize, column: usize, why: &'static str },
}

/// The schedule's text with every path-valued `audio` replaced by its `sha256:` form.
pub fn resolved_source(schedule: &ManifestSchedule) -> Result<String, ManifestError> {
    let origin = schedule.origin.clone();
    let parsed = schedule::parse(&schedule.source, &origin, Path::new(""));
    if let Some(first) = parsed.diagnostics.iter().find(|d| d.is_error()) {
        return Err(ManifestError::Parse { origin, first: first.to_string() });
    }
    let line_starts: Vec<usize> =
        std::iter::once(0).chain(schedule.source.match_indices('\n').map(|(i, _)| i + 1)).collect();
    let mut edits = Vec::new();
    for (audio, pos) in &parsed.audio {
        let AudioRef::Path(path) = audio else { continue };
        let written = path.to_string_lossy().into_owned();
        let sha = schedule.audio_sha256(&written).ok_or_else(|| ManifestError::Unresolved {
            origin: origin.clone(),
            line: pos.line,
            column: pos.column,
            written: written.clone(),
        })?;
        let rewrite = |why| ManifestError::Rewrite {
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
        return Err(ManifestError::Rewrite {
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
pub fn schedules(manifest: &Manifest) -> Result<Vec<Schedule>, ManifestError> {
    let mut out = Vec::new();
    for s in &manifest.schedules {
        let text = resolved_source(s)?;
        let parsed = schedule::parse(&text, &s.origin, Path::new(""));
        let Some(mut parsed) = parsed.schedule else {
            return Err(ManifestError::Parse {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn audio_lookup_accepts_content_addresses_and_written_paths() {
        let mut audio = BTreeMap::new();
        audio.insert("../audio/a.mp3".to_string(), "ab".repeat(32));
        let s = ManifestSchedule {
            origin: "p.toml".into(),
            layer: Layer::Provincial,
            source: String::new(),
            audio,
        };
        assert_eq!(s.audio_sha256("../audio/a.mp3"), Some("ab".repeat(32).as_str()));
        assert_eq!(s.audio_sha256("sha256:cd"), Some("cd"));
        assert_eq!(s.audio_sha256("other.mp3"), None);
    }
}
