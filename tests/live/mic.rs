//! Speaking live into the sound card, with real processes: `loa live --input default`
//! captures through cpal and ALSA, whose default PCM is the `file` plugin reading a raw
//! tone as its microphone (tests/alsa/file-mic.conf.in), uploads to a real `loa central`,
//! which relays it to a real `loa station` writing a WAV air-check. SIGTERM ends it.
//!
//! The tone must be in the air-check for its length, the station's ledger must record the
//! broadcast `relayed`, `loa live` must end cleanly saying why, and central's audit
//! trail must say who started it, when, from where, to whom, and how it ended. `--max-secs` ends another
//! by itself. Against a central that never confirms the end, a second SIGTERM quits. A capture device that
//! does not exist is refused before anything starts, naming the ones that do.

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use loa::protocol::Outcome;

use super::rig::{AirCheck, Rig};
use crate::support::process::{LOA, root, text};
use crate::support::wait;

const MIC_HZ: f64 = 600.0;
const MIC_SECS: f64 = 2.0;
const RATE: f64 = 48_000.0;

/// The "microphone": `secs` of a tone as raw 48 kHz mono S16_LE (what the capture opens
/// the device as; the test checks `loa live` said so), and the ALSA config reading it.
fn microphone(dir: &Path, secs: f64) -> PathBuf {
    let raw = dir.join("mic.raw");
    let n = (secs * RATE) as usize;
    let bytes: Vec<u8> = (0..n)
        .flat_map(|i| {
            let s = 0.4 * (2.0 * std::f64::consts::PI * MIC_HZ * i as f64 / RATE).sin();
            ((s * 32767.0) as i16).to_le_bytes()
        })
        .collect();
    std::fs::write(&raw, bytes).expect("the raw tone");
    let template = std::fs::read_to_string(root().join("tests/alsa/file-mic.conf.in"))
        .expect("tests/alsa/file-mic.conf.in");
    let config = dir.join("alsa-mic.conf");
    std::fs::write(&config, template.replace("@IN@", raw.to_str().expect("utf-8")))
        .expect("alsa config");
    config
}

fn live(rig_url: &str, token: &str, alsa: &Path, extra: &[&str]) -> Command {
    let mut c = Command::new(LOA);
    c.args(["live", "--to", "all", "--priority", "emergency", "--title", "Trực tiếp từ micrô"])
        .args(["--input", "default"])
        .args(extra)
        .env("ALSA_CONFIG_PATH", alsa)
        .env("LOA_CENTRAL", rig_url)
        .env("LOA_TOKEN", token)
        .env("HOME", "/nonexistent")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    c
}

#[test]
fn a_voice_into_the_sound_card_reaches_the_loudspeaker_and_sigterm_ends_it_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path();
    let alsa = microphone(work, MIC_SECS);
    let rig = Rig::start(work);

    let before = chrono::Utc::now();
    let mut child = live(&rig.url, &rig.admin, &alsa, &[]).spawn().unwrap();
    let mut id = String::new();
    std::io::BufReader::new(child.stdout.take().unwrap()).read_line(&mut id).unwrap();
    let id = id.trim().to_string();
    assert!(id.starts_with("live-"), "{id:?}");

    // The tone on air, whole, and silence after it (the microphone went quiet).
    let classes = |hz: u32| match hz {
        0 => "silence",
        500..=700 => "mic",
        _ => "other",
    };
    let heard = wait::within(Duration::from_secs(30), || {
        let air = AirCheck::read(&rig.root.join("air.wav"));
        let runs = air.runs(classes);
        let at = runs.iter().position(|r| r.0 == "mic" && r.2 > 100)?;
        // (The window where the tone stops may read as another frequency.)
        let quiet: usize = runs[at + 1..].iter().filter(|r| r.0 == "silence").map(|r| r.2).sum();
        (quiet > 50).then_some(())
    });
    if heard.is_none() {
        let runs = AirCheck::read(&rig.root.join("air.wav")).runs(classes);
        let _ = child.kill();
        let mut err = String::new();
        let _ = std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err);
        panic!(
            "no tone then silence in the air-check within 30 s: {runs:?}\nloa live: {err}\nstation: {}",
            rig.station.log()
        );
    }

    // SIGTERM: the upload ends, central closes the broadcast with its last checkpoint.
    unsafe {
        libc::kill(child.id() as i32, libc::SIGTERM);
    }
    let status = wait::until("loa live to end after SIGTERM", Duration::from_secs(20), || {
        child.try_wait().ok().flatten()
    });
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(status.success(), "{stderr}");
    assert!(stderr.contains("1 channel(s), i16"), "opened as the test's raw file is: {stderr}");
    assert!(stderr.contains("ended (stopped (Ctrl-C or SIGTERM))"), "{stderr}");
    assert!(!stderr.contains("dropped"), "a paced capture drops nothing: {stderr}");

    let record = wait::until("the broadcast's record", Duration::from_secs(30), || {
        rig.ledger().into_iter().find(|r| r.entry.item_id == id && r.entry.ended.is_some())
    });
    let e = &record.entry;
    assert_eq!(e.outcome, Outcome::Relayed, "{e:?}");
    let facts = e.relay.expect("how long it aired");
    assert!(facts.relayed_secs > MIC_SECS, "the tone and the silence after it: {facts:?}");
    assert_eq!(facts.dropouts, 0, "{facts:?}");

    // The audit trail: who started it, when, from where, to whom, saying what.
    let audit: Vec<loa::protocol::AuditEntry> =
        wait::until("the audit trail", Duration::from_secs(10), || {
            let runtime = tokio::runtime::Runtime::new().ok()?;
            runtime.block_on(async {
                reqwest::Client::new()
                    .get(format!("{}/api/v1/audit", rig.url))
                    .bearer_auth(&rig.admin)
                    .send()
                    .await
                    .ok()?
                    .json::<Vec<loa::protocol::AuditEntry>>()
                    .await
                    .ok()
            })
        });
    let started: Vec<_> = audit.iter().filter(|a| a.action == "live.start").collect();
    assert_eq!(started.len(), 1, "{audit:?}");
    let a = started[0];
    assert_eq!(a.subject, id);
    assert_eq!(a.who, "admin");
    assert!(a.from.starts_with("127.0.0.1:"), "{a:?}");
    assert!(a.at >= before && a.at <= chrono::Utc::now(), "{a:?}");
    assert!(a.detail.starts_with("emergency to 1 station(s) (all), expires "), "{a:?}");
    assert!(a.detail.ends_with(": Trực tiếp từ micrô"), "{a:?}");
    let ended: Vec<_> = audit.iter().filter(|a| a.action == "live.end").collect();
    assert_eq!(ended.len(), 1, "{audit:?}");
    assert_eq!((ended[0].subject.as_str(), ended[0].who.as_str()), (id.as_str(), "admin"));
    assert!(ended[0].detail.starts_with("upload ended: "), "{:?}", ended[0]);
    assert!(ended[0].at >= a.at, "{audit:?}");

    let air = AirCheck::read(&rig.root.join("air.wav"));
    let runs = air.runs(classes);
    let mic: Vec<_> = runs.iter().filter(|r| r.0 == "mic" && r.2 > 10).collect();
    assert_eq!(mic.len(), 1, "the tone once, unbroken: {runs:?}");
    let aired = mic[0].2 as f64 / 100.0;
    assert!((aired - MIC_SECS).abs() < 0.1, "the tone aired {aired:.2} s of {MIC_SECS}");

    // `--max-secs` ends a broadcast by itself: 1 s is exactly 10 chunks, aired as 1 s.
    let out = live(&rig.url, &rig.admin, &alsa, &["--max-secs", "1"]).output().unwrap();
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert!(err.contains("ended (--max-secs reached): 10 chunks (1.0 s) sent"), "{err}");
    let second = text(&out.stdout).trim().to_string();
    let record = wait::until("the second broadcast's record", Duration::from_secs(30), || {
        rig.ledger().into_iter().find(|r| r.entry.item_id == second && r.entry.ended.is_some())
    });
    let facts = record.entry.relay.expect("how long it aired");
    assert_eq!(record.entry.outcome, Outcome::Relayed, "{record:?}");
    assert!((facts.relayed_secs - 1.0).abs() < 0.1, "{facts:?}");
}

#[test]
fn a_capture_device_that_does_not_exist_starts_nothing_and_names_those_that_do() {
    let dir = tempfile::tempdir().unwrap();
    let alsa = microphone(dir.path(), 0.1);
    // Central's address is a closed port: reaching for it would be a connection error.
    let out =
        live("http://127.0.0.1:9", "token", &alsa, &["--device", "khong-co"]).output().unwrap();
    let err = text(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("no capture device named \"khong-co\""), "{err}");
    assert!(err.contains("loamic"), "the device ALSA lists is offered: {err}");
    assert!(!err.contains("cannot reach central"), "nothing started: {err}");
    assert!(text(&out.stdout).is_empty());

    // `loa audio devices` lists it as a microphone.
    let out = crate::support::process::command()
        .args(["audio", "devices"])
        .env("ALSA_CONFIG_PATH", &alsa)
        .output()
        .unwrap();
    let listed = text(&out.stdout);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let microphones = listed.split("microphones (for loa live --device):").nth(1);
    assert!(microphones.is_some_and(|m| m.contains("loamic")), "{listed}");

    // The named device opens; only then is central asked (and here is not there).
    let out = live("http://127.0.0.1:9", "token", &alsa, &["--device", "loamic"]).output().unwrap();
    let err = text(&out.stderr);
    assert!(err.contains("cannot reach central"), "{err}");
}

/// A "central" that starts a broadcast and then takes its audio without ever answering.
fn deaf_central() -> String {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut conn) = conn else { return };
            std::thread::spawn(move || {
                loop {
                    let mut head = Vec::new();
                    let mut byte = [0u8; 1];
                    while !head.ends_with(b"\r\n\r\n") {
                        if conn.read(&mut byte).unwrap_or(0) == 0 {
                            return;
                        }
                        head.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&head).to_lowercase();
                    if !head.starts_with("post") {
                        // The audio: taken, never answered.
                        let mut sink = [0u8; 4096];
                        while conn.read(&mut sink).unwrap_or(0) > 0 {}
                        return;
                    }
                    let len: usize = head
                        .lines()
                        .find_map(|l| l.strip_prefix("content-length:"))
                        .and_then(|v| v.trim().parse().ok())
                        .unwrap_or(0);
                    let mut body = vec![0u8; len];
                    let _ = conn.read_exact(&mut body);
                    let answer = r#"{"id":"live-deaf","upload":"/api/v1/live/live-deaf/audio","stations":1}"#;
                    let _ = write!(
                        conn,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{answer}",
                        answer.len()
                    );
                }
            });
        }
    });
    url
}

#[test]
fn a_second_sigterm_quits_when_central_does_not_confirm_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let alsa = microphone(dir.path(), 0.5);
    let mut child = live(&deaf_central(), "token", &alsa, &[]).spawn().unwrap();
    let stderr = child.stderr.take().unwrap();
    let said = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
    {
        let said = said.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                said.lock().unwrap().push_str(&(line + "\n"));
            }
        });
    }
    let heard = |what: &'static str| {
        let said = said.clone();
        move || said.lock().unwrap().contains(what)
    };
    wait::until("loa live on air", Duration::from_secs(20), heard("on air to 1 stations"));
    let pid = child.id() as i32;
    let term = || unsafe {
        libc::kill(pid, libc::SIGTERM);
    };
    term();
    wait::until("the end asked for", Duration::from_secs(10), heard("ending the broadcast"));
    assert!(child.try_wait().unwrap().is_none(), "central never answered: it cannot have ended");
    term();
    let status = wait::until("loa live to quit", Duration::from_secs(10), || {
        child.try_wait().ok().flatten()
    });
    assert_eq!(status.code(), Some(130), "{}", said.lock().unwrap());
    wait::until("why it quit", Duration::from_secs(5), heard("quit before central confirmed"));
}
