//! Keeps the library's stored gains true to the current rule and loudness target.
//!
//! A file's gain is worked out once, when it is uploaded, from its measured loudness and
//! true peak ([`super::ingest::gain_towards`]). It goes stale two ways: the province
//! changes `loudness_target_lufs` in central's config, or the file was stored by a
//! version of central that did not keep true peaks (its gain followed loudness alone and
//! could push peaks past full scale). At start central derives every gain again from the
//! stored measurement, decoding again each file that has no true peak on record, and
//! stores what changed. Schedules loaded and bulletins pushed from then on carry the new
//! gain. Manifests already issued keep theirs until their schedule is loaded again: a
//! signed manifest is not rewritten behind the operator's back, and the station's
//! limiter keeps an old gain from clipping meanwhile.
//!
//! A file that cannot be measured again (missing, unreadable) keeps its stored gain and
//! is named in the log; nothing stops central starting.

use std::path::Path;

use super::ingest::{self, Measured};
use crate::store::{AudioLevels, Store, StoreError};

/// One stored gain that changed.
#[derive(Debug, Clone, PartialEq)]
pub struct GainChange {
    pub sha256: String,
    pub from_db: f32,
    pub to_db: f32,
    /// The file was decoded again (it had no true peak on record).
    pub measured_again: bool,
}

/// What a pass over the library did.
#[derive(Debug, Default)]
pub struct Refreshed {
    /// Files whose gain was checked.
    pub checked: usize,
    pub changed: Vec<GainChange>,
    /// Files that could not be measured again, and why; their gain is unchanged.
    pub failed: Vec<(String, String)>,
}

/// Checks every library file's gain against `target_lufs` and the current rule, measuring
/// again from `audio_dir` any file stored without a true peak, and stores what changed.
pub fn refresh(
    store: &dyn Store,
    audio_dir: &Path,
    target_lufs: f64,
) -> Result<Refreshed, StoreError> {
    let mut done = Refreshed::default();
    for stored in store.audio_levels()? {
        done.checked += 1;
        let (measured, measured_again) = match stored.true_peak_dbtp {
            Some(true_peak_dbtp) => (
                Measured { duration_ms: 0, loudness_lufs: stored.loudness_lufs, true_peak_dbtp },
                false,
            ),
            None => match ingest::measure(&audio_dir.join(&stored.sha256)) {
                Ok(measured) => (measured, true),
                Err(e) => {
                    done.failed.push((stored.sha256.clone(), e.to_string()));
                    continue;
                }
            },
        };
        let gain_db = ingest::gain_towards(target_lufs, &measured);
        if gain_db == stored.gain_db && !measured_again {
            continue;
        }
        let levels = AudioLevels {
            sha256: stored.sha256.clone(),
            loudness_lufs: measured.loudness_lufs,
            true_peak_dbtp: Some(measured.true_peak_dbtp),
            gain_db,
        };
        store.set_audio_levels(&levels)?;
        if gain_db != stored.gain_db {
            done.changed.push(GainChange {
                sha256: stored.sha256,
                from_db: stored.gain_db,
                to_db: gain_db,
                measured_again,
            });
        }
    }
    Ok(done)
}

/// [`refresh`], with every change and failure in the log; what `loa central` runs at
/// start, off the async workers.
pub fn refresh_logged(store: &dyn Store, audio_dir: &Path, target_lufs: f64) {
    match refresh(store, audio_dir, target_lufs) {
        Ok(done) => {
            for c in &done.changed {
                tracing::info!(
                    sha256 = %c.sha256,
                    measured_again = c.measured_again,
                    "library gain {:+.1} dB -> {:+.1} dB (target {target_lufs} LUFS, true peak at most {} dBTP); \
                     schedules loaded from now on carry it",
                    c.from_db,
                    c.to_db,
                    crate::audio::PEAK_CEILING_DBFS
                );
            }
            for (sha256, why) in &done.failed {
                tracing::error!(
                    %sha256,
                    "cannot measure library audio again, its stored gain is kept: {why}; upload the file again to fix it"
                );
            }
            if !done.changed.is_empty() || !done.failed.is_empty() {
                tracing::info!(
                    checked = done.checked,
                    changed = done.changed.len(),
                    failed = done.failed.len(),
                    "library gains checked"
                );
            }
        }
        Err(e) => tracing::error!("cannot check the library's gains: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::AudioInfo;
    use crate::store::SqliteStore;

    fn info(sha256: &str, loudness_lufs: f64, gain_db: f32) -> AudioInfo {
        AudioInfo {
            sha256: sha256.into(),
            title: sha256.into(),
            size: 1,
            duration_ms: 1_000,
            loudness_lufs,
            gain_db,
            damage: None,
        }
    }

    #[test]
    fn a_new_target_changes_gains_from_the_stored_measurement_and_a_second_pass_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("central.sqlite")).unwrap();
        // Stored at -16 LUFS: -20 LUFS raised 4 dB; a peaky one held by its peak.
        store.put_audio(&info("quiet", -20.0, 4.0), -12.0).unwrap();
        store.put_audio(&info("peaky", -26.0, 3.0), -4.0).unwrap();
        let done = refresh(&store, dir.path(), -18.0).unwrap();
        assert_eq!(done.checked, 2);
        assert!(done.failed.is_empty());
        // -18 LUFS: the quiet one is raised 2 dB; the peaky one's loudness gain (8 dB)
        // is still over its headroom (3 dB), so it stays.
        assert_eq!(
            done.changed,
            [GainChange {
                sha256: "quiet".into(),
                from_db: 4.0,
                to_db: 2.0,
                measured_again: false
            }]
        );
        assert_eq!(store.audio("quiet").unwrap().unwrap().gain_db, 2.0);
        assert_eq!(store.audio("peaky").unwrap().unwrap().gain_db, 3.0);
        let again = refresh(&store, dir.path(), -18.0).unwrap();
        assert!(again.changed.is_empty() && again.failed.is_empty(), "{again:?}");
    }

    #[test]
    fn a_file_stored_without_its_true_peak_is_measured_again_and_its_gain_no_longer_clips() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("central.sqlite")).unwrap();
        // A quiet tone with a loud burst: loudness alone asked for a big lift.
        let written = dir.path().join("peaky.wav");
        ingest::tests::write_quiet_tone(&written, true);
        let wav = std::fs::read(&written).unwrap();
        let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(&wav));
        std::fs::rename(&written, dir.path().join(&sha256)).unwrap();
        let measured = ingest::measure(&dir.path().join(&sha256)).unwrap();
        let loudness_only = (-16.0 - measured.loudness_lufs) as f32;
        assert!(measured.true_peak_dbtp + f64::from(loudness_only) > 0.0, "the fixture would clip");
        // As an older central stored it: loudness-only gain, no true peak.
        store.put_audio(&info(&sha256, measured.loudness_lufs, loudness_only), -1.0).unwrap();
        let legacy = AudioLevels {
            sha256: sha256.clone(),
            loudness_lufs: measured.loudness_lufs,
            true_peak_dbtp: None,
            gain_db: loudness_only,
        };
        assert!(store.set_audio_levels(&legacy).unwrap());
        // And one whose file is gone: kept, and named.
        store.put_audio(&info("gone", -20.0, 4.0), -12.0).unwrap();
        store
            .set_audio_levels(&AudioLevels { true_peak_dbtp: None, ..levels_of(&store, "gone") })
            .unwrap();

        let done = refresh(&store, dir.path(), -16.0).unwrap();
        assert_eq!(done.changed.len(), 1, "{done:?}");
        let change = &done.changed[0];
        assert!(change.measured_again);
        assert_eq!(change.from_db, loudness_only);
        let stored = store.audio(&sha256).unwrap().unwrap();
        assert!(
            measured.true_peak_dbtp + f64::from(stored.gain_db) <= crate::audio::PEAK_CEILING_DBFS,
            "{measured:?} with {} dB",
            stored.gain_db
        );
        assert_eq!(done.failed.len(), 1);
        assert_eq!(done.failed[0].0, "gone");
        assert_eq!(store.audio("gone").unwrap().unwrap().gain_db, 4.0);
        // Measured once: the next start does not decode it again.
        let levels = levels_of(&store, &sha256);
        assert_eq!(levels.true_peak_dbtp, Some(measured.true_peak_dbtp));
    }

    fn levels_of(store: &SqliteStore, sha256: &str) -> AudioLevels {
        store.audio_levels().unwrap().into_iter().find(|l| l.sha256 == sha256).unwrap()
    }
}
