//! The schedules a station plays: the provincial file and every `*.toml` in the local
//! directory, re-read when their size or modification time changes (polled: robust on
//! any file system, editor and network share). A file with errors is rejected with its
//! diagnostics in the log and its last good version keeps playing.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::schedule::{self, Layer, Schedule, Timeline};

/// One watched file: what it looked like when last read, and its last good schedule.
#[derive(Debug)]
struct Watched {
    stamp: Option<(SystemTime, u64)>,
    good: Option<Schedule>,
    layer: Layer,
}

/// The outcome of a [`ScheduleSet::poll`].
#[derive(Debug, Default, Clone, PartialEq)]
pub struct PollReport {
    /// Files (re)loaded successfully.
    pub loaded: Vec<PathBuf>,
    /// Files rejected, with their diagnostics as `file:line:column: error: message`.
    pub rejected: Vec<(PathBuf, Vec<String>)>,
    /// Files that disappeared (their items no longer play).
    pub removed: Vec<PathBuf>,
}

impl PollReport {
    /// Whether the timeline changed.
    pub fn changed(&self) -> bool {
        !self.loaded.is_empty() || !self.removed.is_empty()
    }
}

/// The provincial schedule (from central's verified copy, else the configured file) and
/// the local directory.
#[derive(Debug)]
pub struct ScheduleSet {
    provincial: Vec<PathBuf>,
    local_dir: Option<PathBuf>,
    files: BTreeMap<PathBuf, Watched>,
    /// Verified schedules handed over in memory by the sync (central's provincial and
    /// district-assigned ones); while set, they replace the provincial file. The local
    /// directory keeps playing beside them.
    pushed: Option<Vec<Schedule>>,
}

impl ScheduleSet {
    /// `provincial` lists candidate files in order of preference (central's synced copy
    /// first); the first that exists is used.
    pub fn new(provincial: Vec<PathBuf>, local_dir: Option<PathBuf>) -> Self {
        Self { provincial, local_dir, files: BTreeMap::new(), pushed: None }
    }

    /// Every file that should be watched now, with the layer it must declare.
    fn wanted(&self) -> Vec<(PathBuf, Layer)> {
        let mut out = Vec::new();
        if let Some(p) = self.provincial.iter().find(|p| p.exists()) {
            out.push((p.clone(), Layer::Provincial));
        }
        if let Some(dir) = &self.local_dir {
            match std::fs::read_dir(dir) {
                Ok(entries) => {
                    let mut files: Vec<PathBuf> = entries
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "toml") && p.is_file())
                        .collect();
                    files.sort();
                    out.extend(files.into_iter().map(|p| (p, Layer::Local)));
                }
                Err(e) => {
                    tracing::warn!(dir = %dir.display(), "cannot read the local schedule directory: {e}");
                }
            }
        }
        out
    }

    /// Re-reads what changed since the last poll.
    pub fn poll(&mut self) -> PollReport {
        let mut report = PollReport::default();
        let wanted = self.wanted();
        let gone: Vec<PathBuf> =
            self.files.keys().filter(|k| !wanted.iter().any(|(p, _)| p == *k)).cloned().collect();
        for path in gone {
            // A provincial file replaced by central's copy, or a local file deleted.
            if self.files.remove(&path).is_some_and(|w| w.good.is_some()) {
                tracing::info!(file = %path.display(), "schedule removed");
                report.removed.push(path);
            }
        }
        for (path, layer) in wanted {
            let stamp = std::fs::metadata(&path)
                .ok()
                .map(|m| (m.modified().unwrap_or(SystemTime::UNIX_EPOCH), m.len()));
            let watched = self.files.entry(path.clone()).or_insert(Watched {
                stamp: None,
                good: None,
                layer,
            });
            if watched.stamp.is_some() && watched.stamp == stamp {
                continue;
            }
            watched.stamp = stamp;
            watched.layer = layer;
            match load(&path, layer) {
                Ok(schedule) => {
                    tracing::info!(file = %path.display(), items = schedule.items.len(), "schedule loaded");
                    watched.good = Some(schedule);
                    report.loaded.push(path);
                }
                Err(diagnostics) => {
                    for d in &diagnostics {
                        tracing::warn!(file = %path.display(), "rejected schedule: {d}");
                    }
                    if watched.good.is_some() {
                        tracing::warn!(file = %path.display(), "rejected schedule: the last good version keeps running");
                    }
                    report.rejected.push((path, diagnostics));
                }
            }
        }
        report
    }

    /// Replaces the provincial schedule with one already parsed and verified elsewhere.
    /// A schedule whose layer is not provincial is refused (returns false).
    pub fn push_provincial(&mut self, schedule: Schedule) -> bool {
        if schedule.layer != Layer::Provincial {
            tracing::warn!(origin = %schedule.origin, "rejected schedule: a pushed provincial schedule must say layer = \"provincial\"");
            return false;
        }
        self.push_central(vec![schedule]);
        true
    }

    /// Replaces everything central delivered with `schedules` (any layers), already
    /// parsed and verified by the sync. They replace the provincial file; the station's
    /// own local directory keeps playing beside them.
    pub fn push_central(&mut self, schedules: Vec<Schedule>) {
        for s in &schedules {
            tracing::info!(origin = %s.origin, layer = ?s.layer, items = s.items.len(), "schedule received from central");
        }
        self.pushed = Some(schedules);
    }

    /// The merged timeline of every last good schedule.
    pub fn timeline(&self) -> Timeline {
        let files = self
            .files
            .values()
            .filter(|w| self.pushed.is_none() || w.layer == Layer::Local)
            .filter_map(|w| w.good.clone());
        Timeline::new(self.pushed.iter().flatten().cloned().chain(files).collect())
    }
}

/// Reads and parses one file; warnings are logged, errors reject it.
fn load(path: &Path, layer: Layer) -> Result<Schedule, Vec<String>> {
    let origin = path.display().to_string();
    let text = std::fs::read_to_string(path)
        .map_err(|e| vec![format!("{origin}: error: cannot read: {e}")])?;
    let base = path.parent().unwrap_or(Path::new("."));
    let parsed = schedule::parse(&text, &origin, base);
    for d in parsed.diagnostics.iter().filter(|d| !d.is_error()) {
        tracing::warn!("{d}");
    }
    let errors: Vec<String> =
        parsed.diagnostics.iter().filter(|d| d.is_error()).map(ToString::to_string).collect();
    match parsed.schedule {
        Some(s) if errors.is_empty() => {
            if s.layer != layer {
                let want = if layer == Layer::Local { "local" } else { "provincial" };
                return Err(vec![format!(
                    "{origin}:1:1: error: this file must say layer = \"{want}\" (local files cannot claim the provincial layer, and the provincial file cannot be local)"
                )]);
            }
            Ok(s)
        }
        _ if errors.is_empty() => {
            Err(vec![format!("{origin}:1:1: error: no schedule in this file")])
        }
        _ => Err(errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "layer = \"local\"\n[[item]]\nid = \"a\"\ntitle = \"A\"\naudio = \"a.mp3\"\ncron = \"0 6 * * *\"\n";

    #[test]
    fn bad_edit_is_rejected_and_last_good_kept_then_fixed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("xa.toml");
        std::fs::write(&file, GOOD).expect("write");
        let mut set = ScheduleSet::new(vec![], Some(dir.path().to_path_buf()));
        let r = set.poll();
        assert_eq!(r.loaded, vec![file.clone()]);
        assert_eq!(set.poll(), PollReport::default(), "unchanged files are not re-read");

        std::fs::write(&file, "layer = \"local\"\n[[item]]\nid = \"a\"\ncron = \"99 6 * * *\"\n")
            .expect("write");
        let r = set.poll();
        assert!(!r.changed());
        let (path, diags) = &r.rejected[0];
        assert_eq!(path, &file);
        assert!(diags.iter().all(|d| d.starts_with(&format!("{}:", file.display()))), "{diags:?}");
        assert_eq!(set.timeline().schedules().len(), 1, "the last good version keeps running");

        std::fs::write(&file, GOOD.replace("0 6", "30 6")).expect("write");
        assert!(set.poll().changed());
        std::fs::remove_file(&file).expect("rm");
        assert_eq!(set.poll().removed, vec![file]);
        assert!(set.timeline().schedules().is_empty());
    }

    #[test]
    fn a_local_file_cannot_claim_the_provincial_layer() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join("x.toml"), GOOD.replace("local", "provincial")).expect("w");
        let mut set = ScheduleSet::new(vec![], Some(dir.path().to_path_buf()));
        let r = set.poll();
        assert!(r.rejected[0].1[0].contains("must say layer = \"local\""), "{r:?}");
    }

    #[test]
    fn central_copy_replaces_the_configured_provincial_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("provincial.toml");
        let synced = dir.path().join("synced.toml");
        std::fs::write(&conf, GOOD.replace("local", "provincial")).expect("w");
        let mut set = ScheduleSet::new(vec![synced.clone(), conf.clone()], None);
        assert_eq!(set.poll().loaded, vec![conf.clone()]);
        std::fs::write(&synced, GOOD.replace("local", "provincial")).expect("w");
        let r = set.poll();
        assert_eq!((r.loaded, r.removed), (vec![synced], vec![conf]));
    }

    #[test]
    fn a_pushed_provincial_schedule_replaces_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let conf = dir.path().join("provincial.toml");
        let text = GOOD.replace("local", "provincial");
        std::fs::write(&conf, &text).expect("w");
        let mut set = ScheduleSet::new(vec![conf], None);
        set.poll();
        let parsed = schedule::parse(&text.replace("\"a\"", "\"b\""), "central", dir.path());
        assert!(set.push_provincial(parsed.schedule.expect("valid")));
        let ids: Vec<String> = set
            .timeline()
            .schedules()
            .iter()
            .flat_map(|s| s.items.iter().map(|i| i.id.clone()))
            .collect();
        assert_eq!(ids, ["b"]);
        let local = schedule::parse(GOOD, "x", dir.path()).schedule.expect("valid");
        assert!(!set.push_provincial(local));
    }
}
