//! Speaking live, with real processes: `loa live --input FILE` uploads to a real
//! `loa central`, which announces the broadcast on the signed event stream and relays the
//! chained, checkpointed Opus chunks to a real `loa station` writing a WAV air-check.
//!
//! The voice (a 600 Hz tone for 4 s) must be in the air-check whole, the station's ledger
//! must record the broadcast `relayed` with the seconds that aired, central must list it,
//! and the delay from the first chunk leaving `loa live` to its first sample in the
//! air-check is measured against a marker item planned at a known instant.

use std::io::BufRead;
use std::process::{Command, Stdio};
use std::time::Duration;

use loa::protocol::Outcome;
use loa::protocol::live::LiveRecord;

use super::rig::Rig;
use crate::support::process::{LOA, text};
use crate::support::wait;

const MARKER_HZ: f64 = 250.0;
const VOICE_HZ: f64 = 600.0;
const VOICE_SECS: f64 = 4.0;

#[test]
fn a_live_voice_reaches_the_loudspeaker_whole_and_is_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let rig = Rig::start(work);

    // A marker file item at a known instant: the air-check's clock.
    let tz = chrono_tz::Asia::Ho_Chi_Minh;
    let marker_at = (chrono::Utc::now() + chrono::Duration::seconds(10)).with_timezone(&tz);
    let marker_at =
        marker_at - chrono::Duration::nanoseconds(i64::from(marker_at.timestamp_subsec_nanos()));
    std::fs::write(work.join("moc.wav"), loa::testing::wav_bytes(1.0, MARKER_HZ, 0.3)).unwrap();
    let schedule = work.join("moc.toml");
    std::fs::write(
        &schedule,
        format!(
            "layer = \"provincial\"\n\n[[item]]\nid = \"moc\"\ntitle = \"Mốc\"\naudio = \"moc.wav\"\nat = {}\n",
            marker_at.format("%Y-%m-%dT%H:%M:%S")
        ),
    )
    .unwrap();
    rig.load(&schedule);
    let marker = wait::until("the marker played", Duration::from_secs(40), || {
        rig.ledger().into_iter().find(|r| r.entry.item_id == "moc" && r.entry.ended.is_some())
    });
    assert!(marker.entry.delay_ms.is_some_and(|d| d.abs() < 50), "{marker:?}");

    // Speak.
    let voice = work.join("giong-noi.wav");
    std::fs::write(&voice, loa::testing::wav_bytes(VOICE_SECS, VOICE_HZ, 0.4)).unwrap();
    let mut live = Command::new(LOA)
        .args(["live", "--to", "all", "--priority", "emergency", "--title", "Cảnh báo lũ khẩn cấp"])
        .args(["--input", voice.to_str().unwrap()])
        .env("LOA_CENTRAL", &rig.url)
        .env("LOA_TOKEN", &rig.admin)
        .env("HOME", "/nonexistent")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut id = String::new();
    std::io::BufReader::new(live.stdout.take().unwrap()).read_line(&mut id).unwrap();
    // The encoder starts sending the moment the id is printed.
    let first_chunk_sent = chrono::Utc::now();
    let id = id.trim().to_string();
    assert!(id.starts_with("live-"), "{id:?}");
    let out = live.wait_with_output().unwrap();
    assert!(out.status.success(), "{}", text(&out.stderr));

    let record = wait::until("the broadcast's record", Duration::from_secs(30), || {
        rig.ledger().into_iter().find(|r| r.entry.item_id == id)
    });
    let e = &record.entry;
    assert_eq!(e.outcome, Outcome::Relayed, "{e:?}");
    let facts = e.relay.expect("how long it aired");
    assert!((facts.relayed_secs - VOICE_SECS).abs() < 0.15, "{facts:?}");
    assert_eq!(facts.dropouts, 0, "{facts:?}");

    // The air-check: the voice, whole, after the marker.
    let air = wait::until("the voice in the air-check", Duration::from_secs(10), || {
        let a = super::rig::AirCheck::read(&rig.root.join("air.wav"));
        let runs = a.runs(|hz| match hz {
            0 => "silence",
            150..=350 => "marker",
            500..=700 => "voice",
            _ => "other",
        });
        let voice = *runs.iter().find(|r| r.0 == "voice" && r.2 > 100)?;
        (a.samples.len() > (voice.1 + voice.2 + 50) * a.rate as usize / 100).then_some((a, voice))
    });
    let (air, voice_run) = air;
    let rate = f64::from(air.rate);
    let marker_onset = air.onset(0, 2000).expect("the marker");
    let voice_onset = air.onset(voice_run.1 * air.rate as usize / 100, 2000).unwrap();
    let aired = voice_run.2 as f64 / 100.0;
    assert!((aired - VOICE_SECS).abs() < 0.1, "the voice aired {aired:.2} s of {VOICE_SECS}");
    let marker_started = marker.entry.started.expect("marker start");
    let voice_on_air = marker_started
        + chrono::Duration::microseconds(((voice_onset - marker_onset) as f64 / rate * 1e6) as i64);
    let delay = (voice_on_air - first_chunk_sent).num_milliseconds();
    eprintln!(
        "mouth-to-speaker delay (first chunk sent → first sample in the air-check): {delay} ms"
    );
    assert!((1500..5000).contains(&delay), "{delay} ms");

    // Central lists the broadcast, ended, with its audio.
    let list: Vec<LiveRecord> = wait::until("central's list", Duration::from_secs(10), || {
        let runtime = tokio::runtime::Runtime::new().ok()?;
        runtime.block_on(async {
            reqwest::Client::new()
                .get(format!("{}{}", rig.url, loa::protocol::api::operator::LIVE))
                .bearer_auth(&rig.admin)
                .send()
                .await
                .ok()?
                .json::<Vec<LiveRecord>>()
                .await
                .ok()
        })
    });
    let row = list.iter().find(|r| r.id == id).expect("listed");
    assert_eq!(row.end_reason.as_deref(), Some("upload ended"), "{row:?}");
    assert_eq!(row.stations, 1);
    assert!((row.audio_secs - VOICE_SECS).abs() < 0.15, "{row:?}");
    let recording = work.join("central").join(&row.recording);
    assert!(std::fs::metadata(&recording).unwrap().len() > 4000, "{}", recording.display());
}
