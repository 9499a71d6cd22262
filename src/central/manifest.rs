//! Building and signing a station's manifest from what the store says it is assigned.
//!
//! Versions are issued under one lock, so they grow by exactly one per station and two
//! requests can never sign different documents under the same version.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{ApiError, AppState};
use crate::protocol::{DocumentKind, Manifest, ManifestAudio, ManifestSchedule};
use crate::schedule::{self, AudioRef, Schedule};
use crate::store::{StoreError, StoredManifest, StoredSchedule};

/// The key a schedule's `audio = "..."` value has in [`ManifestSchedule::audio`]: the
/// path the parser yields with an empty base directory (i.e. as written), or `None` for
/// a `sha256:` reference.
pub fn audio_key(audio: &AudioRef) -> Option<String> {
    match audio {
        AudioRef::Path(path) => Some(path.to_string_lossy().into_owned()),
        AudioRef::Sha256(_) => None,
        AudioRef::Stream(s) => s.fallback.as_deref().and_then(audio_key),
    }
}

/// Parses schedule text the way stations will (empty base directory). Errors come back
/// as `file:line:column: error: message` lines.
pub fn check_schedule(source: &str, origin: &str) -> Result<Schedule, Vec<String>> {
    let parsed = schedule::parse(source, origin, Path::new(""));
    match parsed.schedule {
        Some(schedule) => Ok(schedule),
        None => Err(parsed
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(ToString::to_string)
            .collect()),
    }
}

/// The sha256 every item of `schedule` plays, using `audio` for written paths (a
/// relayed stream: its fallback's; none without one).
pub fn resolve_audio(
    schedule: &Schedule,
    audio: &BTreeMap<String, String>,
) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    for item in &schedule.items {
        if item.audio.file().is_none() {
            continue;
        }
        let sha = sha_of(&item.audio, audio).ok_or_else(|| {
            format!(
                "{}:{}:{}: error: audio {:?} of item {:?} was not uploaded: run `loa schedule load` \
                 from the schedule's folder so it can upload it",
                schedule.origin,
                item.audio_pos.line,
                item.audio_pos.column,
                audio_key(&item.audio).unwrap_or_default(),
                item.id
            )
        })?;
        out.push(sha);
    }
    Ok(out)
}

fn sha_of(audio: &AudioRef, map: &BTreeMap<String, String>) -> Option<String> {
    match audio {
        AudioRef::Sha256(hex) => Some(hex.to_lowercase()),
        AudioRef::Path(_) => audio_key(audio).and_then(|k| map.get(&k).cloned()),
        AudioRef::Stream(s) => s.fallback.as_deref().and_then(|f| sha_of(f, map)),
    }
}

/// What to do when another replica stored the version this one was about to issue.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Taken {
    /// Issue the next one: this issue must reflect what just changed (a schedule load),
    /// and the other replica may have built its version before the change.
    IssueNext,
    /// Serve theirs: any fresh version will do (a renewal), and one per version is
    /// enough however many replicas noticed it was due.
    ServeTheirs,
}

/// Replicas that collide on one station's version at once are few; past this many
/// tries in a row something else is wrong.
const MAX_TRIES: u32 = 5;

/// Builds, signs and stores the next manifest version for `station_id`.
pub async fn issue(state: &Arc<AppState>, station_id: &str) -> Result<StoredManifest, ApiError> {
    let _serial = state.issue_lock.lock().await;
    issue_blocking(state, station_id, Taken::IssueNext).await
}

/// [`issue_locked`] on the blocking pool: parsing and planning a station's schedules is
/// CPU work (bounded by the schedule limits), and the store commits with an fsync; the
/// async workers keep serving streams meanwhile.
async fn issue_blocking(
    state: &Arc<AppState>,
    station_id: &str,
    taken: Taken,
) -> Result<StoredManifest, ApiError> {
    let (state, id) = (state.clone(), station_id.to_string());
    tokio::task::spawn_blocking(move || issue_once_per_version(&state, &id, taken))
        .await
        .map_err(|e| ApiError::Internal(format!("manifest task: {e}")))?
}

/// [`issue_locked`], settling a collision with another replica (the store refuses a
/// version already taken, so two replicas never sign two documents under one number).
fn issue_once_per_version(
    state: &AppState,
    station_id: &str,
    taken: Taken,
) -> Result<StoredManifest, ApiError> {
    for _ in 0..MAX_TRIES {
        match issue_locked(state, station_id)? {
            Some(issued) => return Ok(issued),
            None => {
                if taken == Taken::ServeTheirs
                    && let Some(theirs) = state.store.latest_manifest(station_id)?
                {
                    state.announce(station_id, theirs.version);
                    return Ok(theirs);
                }
            }
        }
    }
    Err(ApiError::Busy(format!(
        "station {station_id}'s manifest: other replicas issued {MAX_TRIES} versions in a row \
         while this one tried; try again"
    )))
}

/// Builds, signs and stores the next version; `None` when another replica stored that
/// version first.
fn issue_locked(state: &AppState, station_id: &str) -> Result<Option<StoredManifest>, ApiError> {
    let now = state.clock.now();
    let stored = state.store.schedules_for(station_id)?;
    let previous = state.store.latest_manifest(station_id)?;
    let version = previous.as_ref().map(|m| m.version + 1).unwrap_or(1);
    let horizon = now + chrono::Duration::hours(i64::from(state.config.planning_horizon_hours));
    let (schedules, audio) = contents(state, &stored, now, horizon)?;
    let manifest = Manifest {
        station_id: station_id.to_string(),
        version,
        issued_at: now,
        valid_until: now + chrono::Duration::hours(i64::from(state.config.manifest_valid_hours)),
        schedules,
        audio,
    };
    let envelope = state.key.sign(DocumentKind::Manifest, &manifest)?;
    let stored = StoredManifest {
        station_id: station_id.to_string(),
        version,
        issued_at: manifest.issued_at,
        valid_until: manifest.valid_until,
        envelope,
    };
    match state.store.put_manifest(&stored) {
        Err(StoreError::VersionTaken { .. }) => return Ok(None),
        other => other?,
    }
    tracing::info!(station = station_id, version, "issued manifest");
    state.announce(station_id, version);
    Ok(Some(stored))
}

/// The manifest a station should hold now: the latest, or a fresh version when there is
/// none yet or the latest is past half its validity.
pub async fn current(state: &Arc<AppState>, station_id: &str) -> Result<StoredManifest, ApiError> {
    if let Some(latest) = fresh(state, station_id)? {
        return Ok(latest);
    }
    let _serial = state.issue_lock.lock().await;
    // Another request may have re-issued while this one waited for the lock.
    if let Some(latest) = fresh(state, station_id)? {
        return Ok(latest);
    }
    issue_blocking(state, station_id, Taken::ServeTheirs).await
}

/// The latest manifest if it is still worth serving: before half its validity, and
/// signed by the key central holds now (after a key rotation every station gets a
/// re-signed version rather than one its new pinned key refuses).
fn fresh(state: &AppState, station_id: &str) -> Result<Option<StoredManifest>, ApiError> {
    let public = state.key.public();
    Ok(state.store.latest_manifest(station_id)?.filter(|latest| {
        let half = (latest.valid_until - latest.issued_at) / 2;
        state.clock.now() < latest.issued_at + half
            && public.verify_envelope(DocumentKind::Manifest, &latest.envelope).is_ok()
    }))
}

fn contents(
    state: &AppState,
    stored: &[StoredSchedule],
    now: DateTime<Utc>,
    horizon: DateTime<Utc>,
) -> Result<(Vec<ManifestSchedule>, Vec<ManifestAudio>), ApiError> {
    let mut earliest: BTreeMap<String, Option<DateTime<Utc>>> = BTreeMap::new();
    let mut schedules = Vec::new();
    for s in stored {
        let schedule = check_schedule(&s.source, &s.origin).map_err(|d| {
            ApiError::Internal(format!(
                "stored schedule {} no longer parses: {}",
                s.id,
                d.join("; ")
            ))
        })?;
        for sha in resolve_audio(&schedule, &s.audio).map_err(ApiError::Internal)? {
            earliest.entry(sha).or_insert(None);
        }
        // Each item's first play only: the earliest an audio file is needed is the
        // earliest of its items' first plays. Expanding every play of the horizon cost
        // memory in proportion to what a file asked for (one play a second for 48 h).
        for item in &schedule.items {
            let Some(first) = schedule::first_play(item, schedule.timezone, Some(now)) else {
                continue;
            };
            if first >= horizon {
                continue;
            }
            if let Some(sha) = sha_of(&item.audio, &s.audio) {
                let slot = earliest.entry(sha).or_insert(None);
                if slot.is_none_or(|t| first < t) {
                    *slot = Some(first);
                }
            }
        }
        schedules.push(ManifestSchedule {
            origin: s.origin.clone(),
            layer: s.layer,
            source: s.source.clone(),
            audio: s.audio.clone(),
        });
    }
    let mut audio = Vec::new();
    for (sha, earliest_needed) in earliest {
        let info = state.store.audio(&sha)?.ok_or_else(|| {
            ApiError::Internal(format!("audio sha256:{sha} is assigned but not in the library"))
        })?;
        audio.push(ManifestAudio {
            sha256: sha,
            size: info.size,
            gain_db: info.gain_db,
            earliest_needed,
        });
    }
    Ok((schedules, audio))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_relay_needs_audio_only_for_its_fallback() {
        let text = |fallback: &str| {
            format!(
                "layer = \"provincial\"\n[[item]]\nid = \"vov\"\ntitle = \"VOV1\"\nstream = \"https://r.vn/a.mp3\"\nduration = \"1h\"\ncron = \"0 5 * * *\"\n{fallback}"
            )
        };
        let none = check_schedule(&text(""), "p.toml").unwrap();
        assert_eq!(resolve_audio(&none, &BTreeMap::new()), Ok(vec![]));
        let with = check_schedule(&text("fallback = \"cho.mp3\"\n"), "p.toml").unwrap();
        let e = resolve_audio(&with, &BTreeMap::new()).unwrap_err();
        assert!(e.contains("audio \"cho.mp3\" of item \"vov\" was not uploaded"), "{e}");
        let map = BTreeMap::from([("cho.mp3".to_string(), "ab".repeat(32))]);
        assert_eq!(resolve_audio(&with, &map), Ok(vec!["ab".repeat(32)]));
    }
}
