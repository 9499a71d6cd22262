//! The planning half of `loa demo`: turns the sample schedules into a shifted copy whose
//! items play within seconds, one after another, so a newcomer hears the whole day's
//! running order in a minute or two. Also the demo's timeline file (`demo.json`), which
//! says what was planned, when the bulletin was pushed and which station went offline,
//! so a test can check the air-checks against it.
//!
//! The process orchestration (central, stations, CLI calls) lives in `cli::demo`; this
//! module reads the sample files but starts nothing.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::schedule::{self, AudioRef, Layer, Priority, Schedule, Timeline};

/// The file name of the timeline the demo writes into its directory.
pub const TIMELINE_FILE: &str = "demo.json";

/// Why the samples could not be planned.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error(
        "cannot read the sample schedule {path}: {source} (run from the loa repository, or pass --samples DIR)"
    )]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the sample schedule {path} has errors (run `loa schedule check {path}`): {first}")]
    Invalid { path: String, first: String },
    #[error("sample item {id} uses {audio}, which the demo cannot play: only file paths work here")]
    NotAFile { id: String, audio: String },
    #[error("cannot measure {path}: {detail}")]
    Audio { path: String, detail: String },
    #[error(
        "no sample item fits in the demo's time budget of {budget_secs:.0} s: pass a larger --minutes"
    )]
    NothingFits { budget_secs: f64 },
}

/// One sample schedule file as read from disk.
#[derive(Debug, Clone)]
pub struct Sample {
    /// The file's name, e.g. `provincial.toml`.
    pub file_name: String,
    pub schedule: Schedule,
    /// The directory the file sits in (its audio paths are relative to it).
    pub dir: PathBuf,
}

/// Reads and parses `provincial.toml` and `district.toml` from `dir`. Audio paths are
/// kept as written (relative), so the shifted copy can write them unchanged.
pub fn read_samples(dir: &Path) -> Result<Vec<Sample>, DemoError> {
    let mut samples = Vec::new();
    for name in ["provincial.toml", "district.toml"] {
        let path = dir.join(name);
        let text = std::fs::read_to_string(&path)
            .map_err(|source| DemoError::Read { path: path.display().to_string(), source })?;
        let parsed = schedule::parse(&text, &path.display().to_string(), Path::new(""));
        let Some(schedule) = parsed.schedule else {
            let first = parsed.diagnostics.first().map(|d| d.to_string()).unwrap_or_default();
            return Err(DemoError::Invalid { path: path.display().to_string(), first });
        };
        samples.push(Sample { file_name: name.to_string(), schedule, dir: dir.to_path_buf() });
    }
    Ok(samples)
}

/// One item of the shifted programme.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedItem {
    pub layer: Layer,
    pub id: String,
    pub title: String,
    /// The audio reference exactly as the sample wrote it, e.g. `../audio/ban-tin.mp3`.
    pub audio: String,
    /// The sample audio file on disk.
    pub audio_path: PathBuf,
    pub priority: Priority,
    /// When its first sample is due.
    pub planned: DateTime<Utc>,
    /// The decoded length of its audio.
    pub length_secs: f64,
}

impl PlannedItem {
    /// When the item's audio ends if it plays in full.
    pub fn end(&self) -> DateTime<Utc> {
        self.planned + chrono::Duration::milliseconds((self.length_secs * 1000.0).round() as i64)
    }
}

/// Plans the shifted programme: the samples' items in their running order on an
/// ordinary weekday (provincial relay first, then the district's programmes), each once,
/// back to back with `gap` between them, starting at `start` (rounded up to a whole
/// second, since `at` is written to the second). An item that would end after
/// `start + budget` is left out; a shorter one later in the order may still fit.
/// `length_of` gives an audio file's decoded length.
pub fn plan(
    samples: &[Sample],
    start: DateTime<Utc>,
    budget: Duration,
    gap: Duration,
    mut length_of: impl FnMut(&Path) -> Result<Duration, DemoError>,
) -> Result<Vec<PlannedItem>, DemoError> {
    // A Tuesday in the samples' validity: every weekday item plays on it, in order.
    let reference = Utc.with_ymd_and_hms(2026, 11, 30, 17, 0, 0).single().unwrap_or(start);
    let timeline = Timeline::new(samples.iter().map(|s| s.schedule.clone()).collect());
    let mut order: Vec<(Layer, String)> = Vec::new();
    let mut seen = HashSet::new();
    for occ in timeline.next(reference, 200) {
        if seen.insert((occ.layer, occ.item_id.clone())) {
            order.push((occ.layer, occ.item_id));
        }
    }
    // Items that do not play in the next 200 plays (one-offs far ahead) come last.
    for sample in samples {
        for item in &sample.schedule.items {
            if seen.insert((sample.schedule.layer, item.id.clone())) {
                order.push((sample.schedule.layer, item.id.clone()));
            }
        }
    }

    let start = round_up_to_second(start);
    let limit = start + chrono::Duration::from_std(budget).unwrap_or(chrono::Duration::zero());
    let gap = chrono::Duration::from_std(gap).unwrap_or(chrono::Duration::zero());
    let mut at = start;
    let mut planned = Vec::new();
    for (layer, id) in order {
        let Some((sample, item)) = samples.iter().find_map(|s| {
            (s.schedule.layer == layer)
                .then(|| s.schedule.items.iter().find(|i| i.id == id).map(|i| (s, i)))
                .flatten()
        }) else {
            continue;
        };
        let written = match &item.audio {
            AudioRef::Path(p) => p.clone(),
            AudioRef::Sha256(hex) => {
                return Err(DemoError::NotAFile {
                    id: item.id.clone(),
                    audio: format!("sha256:{hex}"),
                });
            }
            AudioRef::Stream(s) => {
                return Err(DemoError::NotAFile { id: item.id.clone(), audio: s.url.clone() });
            }
        };
        let audio_path = sample.dir.join(&written);
        let length = length_of(&audio_path)?;
        let candidate = PlannedItem {
            layer,
            id: item.id.clone(),
            title: item.title.clone(),
            audio: written.display().to_string(),
            audio_path,
            priority: item.priority,
            planned: at,
            length_secs: length.as_secs_f64(),
        };
        if candidate.end() > limit {
            continue;
        }
        // The next start, rounded up to a whole second after this one ends plus the gap.
        at = round_up_to_second(candidate.end() + gap);
        planned.push(candidate);
    }
    if planned.is_empty() {
        return Err(DemoError::NothingFits { budget_secs: budget.as_secs_f64() });
    }
    Ok(planned)
}

fn round_up_to_second(t: DateTime<Utc>) -> DateTime<Utc> {
    let whole = t.timestamp();
    let whole = if t.timestamp_subsec_nanos() > 0 { whole + 1 } else { whole };
    DateTime::from_timestamp(whole, 0).unwrap_or(t)
}

/// The shifted copy of one layer's items as a schedule file: the samples' ids, titles,
/// audio and priorities, each as a one-off `at` in `tz`, with `max_delay` so an item
/// the station could not start on time is recorded missed rather than played over the
/// next one. `header` becomes the opening comment.
pub fn render(
    layer: Layer,
    tz: Tz,
    items: &[PlannedItem],
    max_delay: Duration,
    header: &str,
) -> String {
    let mut out = String::new();
    for line in header.lines() {
        out.push_str(&format!("# {line}\n"));
    }
    let layer_name = match layer {
        Layer::Provincial => "provincial",
        Layer::Local => "local",
    };
    out.push_str(&format!("layer = \"{layer_name}\"\ntimezone = \"{}\"\n", tz.name()));
    for item in items.iter().filter(|i| i.layer == layer) {
        let local = item.planned.with_timezone(&tz).naive_local();
        out.push_str("\n[[item]]\n");
        out.push_str(&format!("id = {}\n", toml_string(&item.id)));
        out.push_str(&format!("title = {}\n", toml_string(&item.title)));
        out.push_str(&format!("audio = {}\n", toml_string(&item.audio)));
        out.push_str(&format!("at = {}\n", local.format("%Y-%m-%dT%H:%M:%S")));
        if item.priority == Priority::Priority {
            out.push_str("priority = \"priority\"\n");
        }
        out.push_str(&format!("max_delay = \"{}s\"\n", max_delay.as_secs().max(1)));
    }
    out
}

fn toml_string(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

/// What the demo did and when, written to `demo.json` in its directory.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoTimeline {
    pub items: Vec<PlannedItem>,
    pub stations: Vec<DemoStation>,
    pub bulletin: Option<DemoBulletin>,
    pub offline: Option<DemoOffline>,
    pub central_url: String,
}

/// One station of the demo province.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoStation {
    pub id: String,
    pub config: PathBuf,
    pub data_dir: PathBuf,
    /// Its air-checks in the order they were written (a restart starts a new file).
    pub wav_files: Vec<PathBuf>,
}

/// The emergency bulletin the demo pushed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoBulletin {
    /// The id `loa bulletin push` printed.
    pub id: String,
    /// The recording pushed; `None` for text central rendered to speech (stations cache
    /// the rendering under its sha256, which their ledger records).
    pub audio_path: Option<PathBuf>,
    /// Just before `loa bulletin push` was started.
    pub pushed_from: DateTime<Utc>,
    /// When `loa bulletin push` returned.
    pub pushed_until: DateTime<Utc>,
}

/// The station the demo took offline, and for how long.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DemoOffline {
    pub station: String,
    pub stopped: DateTime<Utc>,
    pub restarted: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn samples() -> Vec<Sample> {
        read_samples(&Path::new(env!("CARGO_MANIFEST_DIR")).join("schedules")).unwrap()
    }

    fn lengths(p: &Path) -> Result<Duration, DemoError> {
        let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        Ok(Duration::from_millis(match name {
            "ban-tin.mp3" => 25_340,
            "nhac-hieu.ogg" => 2_400,
            _ => 2_000,
        }))
    }

    #[test]
    fn plan_keeps_the_running_order_back_to_back_within_the_budget() {
        let start = Utc.with_ymd_and_hms(2026, 11, 27, 5, 0, 0).unwrap()
            + chrono::Duration::milliseconds(300);
        let items =
            plan(&samples(), start, Duration::from_secs(100), Duration::from_secs(3), lengths)
                .unwrap();
        let ids: Vec<&str> = items.iter().map(|i| i.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "ban-tin-sang",
                "chuong-bao-sang",
                "thoi-su-huyen",
                "ban-tin-chieu",
                "nhac-hieu-chieu"
            ]
        );
        assert_eq!(items[0].planned, Utc.with_ymd_and_hms(2026, 11, 27, 5, 0, 1).unwrap());
        for pair in items.windows(2) {
            let gap = pair[1].planned - pair[0].end();
            assert!(gap >= chrono::Duration::seconds(3) && gap < chrono::Duration::seconds(4));
        }
        assert!(items.last().unwrap().end() <= items[0].planned + chrono::Duration::seconds(100));
    }

    #[test]
    fn the_rendered_copy_parses_with_the_same_ids_titles_and_audio() {
        let start = Utc.with_ymd_and_hms(2026, 11, 27, 5, 0, 0).unwrap();
        let items =
            plan(&samples(), start, Duration::from_secs(60), Duration::from_secs(2), lengths)
                .unwrap();
        let tz = chrono_tz::Asia::Ho_Chi_Minh;
        let text = render(Layer::Local, tz, &items, Duration::from_secs(5), "shifted copy");
        let parsed = schedule::parse(&text, "district.toml", Path::new(""));
        let schedule = parsed.schedule.expect("the shifted copy parses");
        let local: Vec<&PlannedItem> = items.iter().filter(|i| i.layer == Layer::Local).collect();
        assert_eq!(schedule.items.len(), local.len());
        for (item, planned) in schedule.items.iter().zip(local) {
            assert_eq!(item.id, planned.id);
            assert_eq!(item.title, planned.title);
            assert_eq!(item.audio, AudioRef::Path(PathBuf::from(&planned.audio)));
            assert_eq!(
                schedule::first_play(item, tz, Some(start - chrono::Duration::seconds(1))),
                Some(planned.planned),
                "{} plays when planned",
                item.id
            );
        }
    }

    #[test]
    fn a_budget_too_small_for_any_item_is_a_clear_error() {
        let start = Utc.with_ymd_and_hms(2026, 11, 27, 5, 0, 0).unwrap();
        let err = plan(&samples(), start, Duration::from_secs(1), Duration::from_secs(2), lengths)
            .unwrap_err();
        assert!(err.to_string().contains("--minutes"), "{err}");
    }
}
