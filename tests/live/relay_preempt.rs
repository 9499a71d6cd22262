//! An emergency pre-empts a relay, with real processes: a relayed stream (served by an
//! HTTP server inside this test) is on air at a real `loa station` when the province
//! pushes an emergency bulletin through a real `loa central`. The air-check shows the
//! stream, then the bulletin's tone; the relay is recorded `preempted` by the bulletin
//! with the seconds it relayed, and its connection is let go (the server sees no new
//! connection after it).

use std::time::Duration;

use loa::protocol::{Outcome, Reason};

use super::rig::Rig;
use crate::support::process::{remote, text};
use crate::support::stream::{StreamServer, sox_tone};
use crate::support::wait;

const STREAM_HZ: f64 = 1000.0;
const BULLETIN_HZ: f64 = 500.0;

#[test]
fn an_emergency_bulletin_pre_empts_a_relay_on_air() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let stream = sox_tone(&work.join("vov.mp3"), 90.0, STREAM_HZ, 0.5);
    let server = StreamServer::start(stream, 90.0, "audio/mpeg");
    let rig = Rig::start(work);

    let tz = chrono_tz::Asia::Ho_Chi_Minh;
    let start = chrono::Utc::now().with_timezone(&tz) + chrono::Duration::seconds(12);
    let schedule = work.join("tiep-song.toml");
    std::fs::write(
        &schedule,
        format!(
            "layer = \"provincial\"\n\n[[item]]\nid = \"vov\"\ntitle = \"Tiếp sóng VOV1\"\nstream = \"{}\"\nduration = \"30s\"\nat = {}\n",
            server.url("/live"),
            start.format("%Y-%m-%dT%H:%M:%S")
        ),
    )
    .unwrap();
    rig.load(&schedule);
    rig.station.wait_for(&["started", "vov"], Duration::from_secs(40));
    std::thread::sleep(Duration::from_secs(3));

    let bulletin = work.join("canh-bao.wav");
    std::fs::write(&bulletin, loa::testing::wav_bytes(2.0, BULLETIN_HZ, 0.4)).unwrap();
    let out = remote(
        &rig.url,
        &rig.admin,
        &[
            "bulletin",
            "push",
            "--audio",
            bulletin.to_str().unwrap(),
            "--to",
            "all",
            "--title",
            "Cảnh báo lũ",
        ],
    );
    assert!(out.status.success(), "{}", text(&out.stderr));
    let id = text(&out.stdout).lines().last().unwrap().trim().to_string();

    let records =
        wait::until("the relay's and the bulletin's records", Duration::from_secs(40), || {
            let r = rig.ledger();
            let done = r.iter().any(|r| r.entry.item_id == "vov")
                && r.iter().any(|r| r.entry.item_id == id && r.entry.outcome == Outcome::Played);
            done.then_some(r)
        });
    let vov = &records.iter().find(|r| r.entry.item_id == "vov").unwrap().entry;
    assert_eq!(vov.outcome, Outcome::Preempted, "{vov:?}");
    assert_eq!(vov.reason(), Some(Reason::PreemptedBy(id.clone())), "{vov:?}");
    let facts = vov.relay.expect("the relay's facts travel with its pre-emption");
    assert_eq!(facts.dropouts, 0, "{facts:?}");
    let played = vov.played_secs.expect("played seconds");
    assert!((3.0..15.0).contains(&played), "{vov:?}");
    assert!((facts.relayed_secs - played).abs() < 0.1, "{facts:?} vs {played}");
    let connections = server.connections();

    // The air-check: the stream, then the bulletin (its tone may come first), nothing of
    // the stream after it.
    let air = rig.air_check_until(played + 2.5);
    let tones: Vec<(&str, usize)> = air
        .runs(|hz| match hz {
            0 => "silence",
            400..=600 => "bulletin",
            800..=1200 => "stream",
            _ => "other",
        })
        .into_iter()
        .filter(|r| r.2 >= 5 && r.0 != "other")
        .map(|r| (r.0, r.2))
        .collect();
    let stream_runs: Vec<usize> =
        tones.iter().enumerate().filter(|(_, t)| t.0 == "stream").map(|(i, _)| i).collect();
    let bulletin_at = tones.iter().position(|t| t.0 == "bulletin").expect("the bulletin aired");
    assert_eq!(stream_runs.len(), 1, "{tones:?}");
    assert!(stream_runs[0] < bulletin_at, "{tones:?}");
    assert!((tones[stream_runs[0]].1 as f64 / 100.0 - played).abs() < 0.5, "{tones:?}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(server.connections(), connections, "the relay let go of its stream");
}
