//! A live broadcast with one tampered chunk, with real processes: central (a debug build)
//! alters the last byte of chunk 35 on its way out, as a man in the middle would, while
//! its recording keeps the true one. The station must cut the broadcast at the next
//! chunk — before the altered audio reaches the loudspeaker (it sits 2 s deep in the
//! buffer) — and record it failed with why.

use std::time::Duration;

use loa::protocol::Outcome;

use super::rig::{AirCheck, Rig};
use crate::support::process::{remote, text};
use crate::support::wait;

const VOICE_HZ: f64 = 600.0;
const VOICE_SECS: f64 = 6.0;
/// Chunks are 100 ms: chunk 35 carries 3.4–3.5 s of the voice.
const TAMPERED: u64 = 35;

#[test]
fn a_tampered_chunk_is_cut_at_the_station_before_it_airs() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let rig = Rig::start_with(work, &[("LOA_TEST_TAMPER_LIVE_CHUNK", &TAMPERED.to_string())]);

    let voice = work.join("giong-noi.wav");
    std::fs::write(&voice, loa::testing::wav_bytes(VOICE_SECS, VOICE_HZ, 0.4)).unwrap();
    let out = remote(
        &rig.url,
        &rig.admin,
        &["live", "--to", "all", "--input", voice.to_str().unwrap(), "--title", "Khẩn cấp"],
    );
    // Central carried the whole upload: the tampering happened after it, on the path.
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).trim().to_string();

    let record = wait::until("the broadcast's record", Duration::from_secs(30), || {
        rig.ledger().into_iter().find(|r| r.entry.item_id == id)
    });
    let e = &record.entry;
    assert_eq!(e.outcome, Outcome::Failed, "{e:?}");
    let reason = e.reason.clone().unwrap_or_default();
    assert!(
        reason.contains(&format!("chunk {} does not follow chunk {TAMPERED}", TAMPERED + 1)),
        "{reason}"
    );
    rig.station.wait_for(&["live broadcast cut"], Duration::from_secs(5));

    // The air-check: the voice up to the cut (what had been verified and buffered less
    // the buffer cleared at the cut), never the altered chunk nor anything after it.
    let air = wait::until("the air-check after the cut", Duration::from_secs(10), || {
        let a = AirCheck::read(&rig.root.join("air.wav"));
        let first = a.onset(0, 2000)?;
        (a.samples.len() > first + 6 * a.rate as usize).then_some(a)
    });
    let runs: Vec<(&str, usize, usize)> = air
        .runs(|hz| match hz {
            0 => "silence",
            500..=700 => "voice",
            _ => "other",
        })
        .into_iter()
        .filter(|r| r.0 == "voice" && r.2 > 5)
        .collect();
    assert_eq!(runs.len(), 1, "{runs:?}");
    let aired = runs[0].2 as f64 / 100.0;
    let tampered_from = (TAMPERED - 1) as f64 / 10.0;
    assert!(
        aired > 0.5 && aired < tampered_from,
        "aired {aired:.2} s; the altered chunk starts at {tampered_from} s"
    );
    eprintln!(
        "aired {aired:.2} s of the voice before the cut; the altered chunk would have aired at {tampered_from:.1} s"
    );
}
