//! Pure decisions: what to download and in which order, how ready the station is, how
//! long to back off, what the clock offset is. No IO, so every rule is unit-tested.

use std::collections::HashSet;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::protocol::Manifest;

/// One audio file to fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Download {
    pub sha256: String,
    pub size: u64,
    pub earliest_needed: Option<DateTime<Utc>>,
}

/// The audio `manifest` needs that `cached` lacks, earliest-needed first; files with no
/// play inside central's horizon come last. Ties break on sha256 so the order is stable.
pub fn plan(manifest: &Manifest, cached: &HashSet<String>) -> Vec<Download> {
    let mut seen = HashSet::new();
    let mut downloads: Vec<Download> = manifest
        .audio
        .iter()
        .filter(|a| !cached.contains(&a.sha256) && seen.insert(a.sha256.clone()))
        .map(|a| Download {
            sha256: a.sha256.clone(),
            size: a.size,
            earliest_needed: a.earliest_needed,
        })
        .collect();
    downloads.sort_by(|a, b| {
        let key = |d: &Download| (d.earliest_needed.is_none(), d.earliest_needed);
        key(a).cmp(&key(b)).then_with(|| a.sha256.cmp(&b.sha256))
    });
    downloads
}

/// How far ahead the station can play with what it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Readiness {
    /// Everything needed before this instant is cached: the first missing file's first
    /// play, or the manifest's validity end when nothing needed in the horizon is missing.
    pub ready_until: DateTime<Utc>,
    pub missing_files: usize,
    pub missing_bytes: u64,
}

/// Readiness of `cached` against `manifest`.
pub fn readiness(manifest: &Manifest, cached: &HashSet<String>) -> Readiness {
    let missing = plan(manifest, cached);
    let ready_until = missing
        .iter()
        .filter_map(|d| d.earliest_needed)
        .min()
        .unwrap_or(manifest.valid_until)
        .min(manifest.valid_until);
    Readiness {
        ready_until,
        missing_files: missing.len(),
        missing_bytes: missing.iter().map(|d| d.size).sum(),
    }
}

/// Exponential backoff with jitter: attempt n waits a random time in
/// `[d/2, d]` where `d = min(base * 2^n, max)`, so a fleet that lost central at the same
/// moment does not return in lockstep.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self { base: Duration::from_millis(500), max: Duration::from_secs(60) }
    }
}

impl Backoff {
    /// The wait before retry number `attempt` (0-based); `unit` in `[0, 1)` is the jitter.
    pub fn delay(&self, attempt: u32, unit: f64) -> Duration {
        let factor = 2f64.powi(attempt.min(30) as i32);
        let full = (self.base.as_secs_f64() * factor).min(self.max.as_secs_f64());
        Duration::from_secs_f64(full * (0.5 + 0.5 * unit.clamp(0.0, 1.0)))
    }
}

/// Station clock minus central clock, in milliseconds, NTP-style: the request left at
/// `sent` and the answer arrived at `received` (station clock); central stamped `server`
/// somewhere in between, assumed to be the midpoint.
pub fn clock_offset_ms(sent: DateTime<Utc>, server: DateTime<Utc>, received: DateTime<Utc>) -> i64 {
    let midpoint = sent + (received - sent) / 2;
    (midpoint - server).num_milliseconds()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::ManifestAudio;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
    }

    fn audio(sha: &str, size: u64, earliest: Option<DateTime<Utc>>) -> ManifestAudio {
        ManifestAudio { sha256: sha.into(), size, gain_db: 0.0, earliest_needed: earliest }
    }

    fn manifest(audio: Vec<ManifestAudio>) -> Manifest {
        Manifest {
            station_id: "a".into(),
            version: 1,
            issued_at: t(0),
            valid_until: t(20),
            schedules: vec![],
            audio,
        }
    }

    #[test]
    fn plan_is_missing_audio_earliest_needed_first_unneeded_last() {
        let m = manifest(vec![
            audio("c", 3, None),
            audio("b", 2, Some(t(9))),
            audio("a", 1, Some(t(5))),
            audio("d", 4, Some(t(1))),
        ]);
        let cached: HashSet<String> = ["d".to_string()].into();
        let order: Vec<_> = plan(&m, &cached).into_iter().map(|d| d.sha256).collect();
        assert_eq!(order, ["a", "b", "c"]);
    }

    #[test]
    fn readiness_stops_at_the_first_missing_play() {
        let m = manifest(vec![audio("a", 1, Some(t(5))), audio("b", 2, Some(t(9)))]);
        let none = HashSet::new();
        let r = readiness(&m, &none);
        assert_eq!((r.ready_until, r.missing_files, r.missing_bytes), (t(5), 2, 3));
        let r = readiness(&m, &["a".to_string()].into());
        assert_eq!(r.ready_until, t(9));
        let r = readiness(&m, &["a".to_string(), "b".to_string()].into());
        assert_eq!((r.ready_until, r.missing_files), (t(20), 0));
    }

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let b = Backoff { base: Duration::from_secs(1), max: Duration::from_secs(10) };
        assert_eq!(b.delay(0, 1.0), Duration::from_secs(1));
        assert_eq!(b.delay(0, 0.0), Duration::from_millis(500));
        assert_eq!(b.delay(3, 1.0), Duration::from_secs(8));
        assert_eq!(b.delay(20, 1.0), Duration::from_secs(10));
        assert_eq!(b.delay(u32::MAX, 0.0), Duration::from_secs(5));
    }

    #[test]
    fn clock_offset_uses_the_midpoint() {
        let sent = t(5);
        let received = sent + chrono::Duration::milliseconds(200);
        // Central's clock is 3 s behind the station's.
        let server = sent + chrono::Duration::milliseconds(100) - chrono::Duration::seconds(3);
        assert_eq!(clock_offset_ms(sent, server, received), 3000);
    }
}
