//! End to end: `loa demo` runs the real binary — central, two `loa station` processes on
//! WAV sinks — and its air-checks are then read back and matched against the decoded
//! sample audio.
//!
//! Each file's timeline is anchored on the first item it heard (its first loud 10 ms
//! window, refined to the sample by waveform correlation), then every other item must
//! be found — waveform correlation above 0.95, which only the same audio reaches — within
//! 5 ms of where the schedule (and the ledger) put it. The comparison is gain-invariant
//! and uses the same decoder and resampler the station used, so it is exact, not lucky.

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use loa::audio::AudioFormat;
use loa::demo::{DemoTimeline, TIMELINE_FILE};
use loa::station::ledger::{Outcome, Record};

use crate::support::{audio, process};

/// The demo's sinks run at 48 kHz.
const RATE: i64 = 48_000;
/// Coarse resolution (RMS windows) for finding the first sound of a file.
const WINDOW: usize = 480;
/// Waveform compared per item, and how far around the expected position it is sought.
const COMPARE: usize = 9_600;
const SEARCH: i64 = 2_880;
/// Allowed distance from the expected position: 5 ms.
const TOLERANCE: i64 = 240;

fn loa() -> Command {
    let mut c = process::command();
    c.env("NO_COLOR", "1");
    c
}

/// The air-check, channels averaged.
fn read_wav(path: &Path) -> Vec<f32> {
    let mut reader = hound::WavReader::open(path)
        .unwrap_or_else(|e| panic!("{} is a readable WAV: {e}", path.display()));
    let spec = reader.spec();
    assert_eq!((spec.bits_per_sample, spec.sample_rate as i64), (16, RATE), "16-bit, 48 kHz");
    let samples: Vec<f32> =
        reader.samples::<i16>().map(|s| f32::from(s.expect("sample")) / 32768.0).collect();
    let ch = spec.channels as usize;
    samples.chunks(ch).map(|f| f.iter().sum::<f32>() / ch as f32).collect()
}

/// The sample audio through loa's own decoder and resampler, mono at 48 kHz.
fn decode(path: &Path) -> Vec<f32> {
    let format = AudioFormat { rate: RATE as u32, channels: 1 };
    audio::decode_all(path, format, 0.0)
}

/// Index of the first sample of the first 10 ms window louder than -40 dBFS RMS.
fn first_sound(samples: &[f32]) -> Option<usize> {
    samples
        .chunks(WINDOW)
        .position(|w| (w.iter().map(|s| s * s).sum::<f32>() / w.len() as f32).sqrt() > 0.01)
        .map(|i| i * WINDOW)
}

/// Normalised correlation of `reference` with `signal[offset..]`; 0 out of range.
fn correlation(signal: &[f32], reference: &[f32], offset: i64) -> f64 {
    if offset < 0 || offset as usize + reference.len() > signal.len() {
        return 0.0;
    }
    let s = &signal[offset as usize..offset as usize + reference.len()];
    let (mut num, mut va, mut vb) = (0.0f64, 0.0f64, 0.0f64);
    for (a, b) in reference.iter().zip(s) {
        num += f64::from(a * b);
        va += f64::from(a * a);
        vb += f64::from(b * b);
    }
    if va <= 0.0 || vb <= 0.0 { 0.0 } else { num / (va * vb).sqrt() }
}

/// The best offset within `around ± SEARCH`, and its correlation.
fn best_offset(signal: &[f32], reference: &[f32], around: i64) -> (i64, f64) {
    (around - SEARCH..=around + SEARCH)
        .map(|o| (o, correlation(signal, reference, o)))
        .fold((around, f64::MIN), |best, c| if c.1 > best.1 { c } else { best })
}

/// The part of an item compared: from its first sound, at most `COMPARE` samples, within
/// what was played (a pre-empted item fades out).
fn excerpt(source: &[f32], played_secs: f64) -> (usize, Vec<f32>) {
    let start = first_sound(source).unwrap_or(0);
    let played = ((played_secs - 0.4).max(0.1) * RATE as f64) as usize;
    let end = (start + COMPARE).min(source.len()).min(played.max(start + 1));
    (start, source[start..end].to_vec())
}

fn samples_between(a: DateTime<Utc>, b: DateTime<Utc>) -> i64 {
    (b - a).num_microseconds().unwrap_or(0) * RATE / 1_000_000
}

fn ledger(config: &Path) -> Vec<Record> {
    let out = loa()
        .args(["log", "--config"])
        .arg(config)
        .args(["--format", "json"])
        .output()
        .expect("run loa log");
    assert!(out.status.success(), "loa log: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).expect("loa log prints JSON records")
}

fn decoded(cache: &mut Vec<(PathBuf, Vec<f32>)>, path: &Path) -> Vec<f32> {
    if let Some((_, s)) = cache.iter().find(|(p, _)| p == path) {
        return s.clone();
    }
    let s = decode(path);
    cache.push((path.to_path_buf(), s.clone()));
    s
}

#[test]
fn the_demo_plays_every_item_on_time_and_its_air_checks_prove_it() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("province");
    let out = loa()
        .args(["demo", "--stations", "2", "--minutes", "1.2", "--keep", "--dir"])
        .arg(&dir)
        .output()
        .expect("run loa demo");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "loa demo failed\nstdout:\n{stdout}\nstderr:\n{stderr}");

    // What the newcomer sees: progress, the shifted times said out loud, the log, the files.
    for expected in
        ["central listening on", "shifted", "taken offline", "back online", "air-checks"]
    {
        assert!(stdout.contains(expected), "the demo's output mentions {expected:?}:\n{stdout}");
    }
    assert!(stdout.contains("station was not running"), "the log shows the missed item:\n{stdout}");

    let timeline: DemoTimeline = serde_json::from_str(
        &std::fs::read_to_string(dir.join(TIMELINE_FILE)).expect("demo.json is kept"),
    )
    .expect("demo.json parses");
    assert!(timeline.items.len() >= 2, "at least two items fit in a minute");
    assert_eq!(timeline.stations.len(), 2);
    let offline = timeline.offline.clone().expect("one station went offline");
    let bulletin = timeline.bulletin.as_ref();
    assert!(bulletin.is_some(), "the demo pushed a bulletin");
    let mut bulletins_heard = 0;
    let mut gaps_checked = 0;
    let mut plays = 0;

    let mut cache = Vec::new();
    let mut checked = 0;
    for station in &timeline.stations {
        let records = ledger(&station.config);
        // Exactly one record per planned item.
        for item in &timeline.items {
            let n = records
                .iter()
                .filter(|r| r.entry.item_id == item.id && r.entry.planned == item.planned)
                .count();
            assert_eq!(n, 1, "{}: one record for {}", station.id, item.id);
        }
        plays += records.iter().filter(|r| r.entry.started.is_some()).count();
        let was_offline = station.id == offline.station;
        assert_eq!(station.wav_files.len(), if was_offline { 2 } else { 1 });

        for (file_index, wav) in station.wav_files.iter().enumerate() {
            let air = read_wav(wav);
            // The plays this file heard (items and the bulletin): the whole run, or
            // before / after the restart.
            let mut heard: Vec<(&Record, PathBuf, Option<&loa::demo::PlannedItem>)> = records
                .iter()
                .filter(|r| r.entry.started.is_some())
                .filter(|r| match (was_offline, file_index) {
                    (false, _) => true,
                    (true, 0) => r.entry.started < Some(offline.stopped),
                    (true, _) => r.entry.started > Some(offline.stopped),
                })
                .filter_map(|r| {
                    if let Some(item) = timeline
                        .items
                        .iter()
                        .find(|i| i.id == r.entry.item_id && i.planned == r.entry.planned)
                    {
                        return Some((r, item.audio_path.clone(), Some(item)));
                    }
                    let b = bulletin.filter(|b| b.id == r.entry.item_id)?;
                    let audio = b.audio_path.clone().unwrap_or_else(|| {
                        station.data_dir.join("audio").join(
                            r.entry.audio_sha256.as_deref().expect("the bulletin's audio sha256"),
                        )
                    });
                    Some((r, audio, None))
                })
                .collect();
            heard.sort_by_key(|h| h.0.entry.started);
            let Some((first, first_audio, first_item)) = heard.first().cloned() else { continue };
            assert!(first_item.is_some(), "a scheduled item is heard first");

            // Anchor: the file's first sound is the first item's first sound.
            let source = decoded(&mut cache, &first_audio);
            let (lead, reference) = excerpt(&source, first.entry.played_secs.unwrap_or(0.0));
            let coarse = first_sound(&air).expect("the air-check is not silent") as i64;
            let (anchor, corr) = best_offset(&air, &reference, coarse);
            assert!(
                corr > 0.95,
                "{}: {} is the first sound of {} (correlation {corr:.3})",
                station.id,
                first.entry.item_id,
                wav.display()
            );
            // Where the first item's first sample is in the file.
            let origin = anchor - lead as i64;
            let first_started = first.entry.started.expect("started");

            for (record, audio, item) in &heard {
                let started = record.entry.started.expect("started");
                let source = decoded(&mut cache, audio);
                let (lead, reference) = excerpt(&source, record.entry.played_secs.unwrap_or(0.0));
                // Where the ledger says it started…
                let expected = origin + samples_between(first_started, started) + lead as i64;
                let (found, corr) = best_offset(&air, &reference, expected);
                assert!(
                    corr > 0.95 && (found - expected).abs() <= TOLERANCE,
                    "{}: {} expected at {:.3} s of {}, best match at {:.3} s (correlation {corr:.3})",
                    station.id,
                    record.entry.item_id,
                    expected as f64 / RATE as f64,
                    wav.display(),
                    found as f64 / RATE as f64,
                );
                match item {
                    // …and, when it started on time, where the schedule put it.
                    Some(item) if record.entry.outcome != Outcome::Late => {
                        let scheduled =
                            origin + samples_between(first_started, item.planned) + lead as i64;
                        assert!(
                            (found - scheduled).abs() <= TOLERANCE,
                            "{}: {} at {:.3} s, scheduled at {:.3} s",
                            station.id,
                            item.id,
                            found as f64 / RATE as f64,
                            scheduled as f64 / RATE as f64
                        );
                    }
                    Some(_) => {}
                    // …and the bulletin right after it was pushed.
                    None => {
                        let b = bulletin.expect("bulletin");
                        assert!(
                            started >= b.pushed_from
                                && started <= b.pushed_until + chrono::Duration::seconds(10),
                            "{}: bulletin aired at {started}, pushed {} – {}",
                            station.id,
                            b.pushed_from,
                            b.pushed_until
                        );
                        bulletins_heard += 1;
                    }
                }
                checked += 1;
            }
            // Between plays there is silence: the half second before each play that
            // starts at least 0.6 s after the previous one ended.
            for pair in heard.windows(2) {
                let (prev, next) = (pair[0].0, pair[1].0);
                let (Some(ended), Some(start)) = (prev.entry.ended, next.entry.started) else {
                    continue;
                };
                if (start - ended).num_milliseconds() < 600 {
                    continue;
                }
                let at = origin + samples_between(first_started, start);
                let quiet = &air[(at - RATE / 2).max(0) as usize..(at - RATE / 20).max(0) as usize];
                let loudest = quiet.iter().fold(0.0f32, |m, s| m.max(s.abs()));
                assert!(loudest < 0.01, "{}: silence before {}", station.id, next.entry.item_id);
                gaps_checked += 1;
            }
        }

        if was_offline {
            assert!(
                records.iter().any(|r| r.entry.outcome == Outcome::Missed
                    && r.entry.reason.as_deref() == Some("station was not running")),
                "{}: the item due while it was off is missed, station was not running",
                station.id
            );
        }
    }
    assert_eq!(checked, plays, "every play the ledgers record is found in the air-checks");
    assert!(checked >= timeline.items.len() + 2, "checked {checked} plays in the air-checks");
    assert!(gaps_checked >= 1, "silence checked between plays");
    assert_eq!(bulletins_heard, 2, "both stations aired the bulletin where it was pushed");
}
