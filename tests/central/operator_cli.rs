//! What a new operator meets following the README, through the real `loa` binary: a
//! damaged file refused at `loa audio add` (and kept, flagged, when they insist), errors
//! that name their file and never central's directories, progress that ends its line,
//! and a spoken bulletin with its attention tone from `loa bulletin push` to `loa
//! report` at a real station: titled by its words, its latency ending at the tone, its
//! play recorded `played`, every time shown local to the second.

use std::time::Duration;

use chrono::{DateTime, FixedOffset, Utc};
use loa::protocol::{BulletinInfo, DailyReport, DeliveryState};

use crate::support::process::{LOA, Proc, StationToml, central_init, remote, root, text};
use crate::support::wait;

/// A human-facing instant: local time to the second with its offset, never RFC 3339
/// with nanoseconds. Returns it parsed.
fn local_instant(shown: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_str(shown, "%Y-%m-%d %H:%M:%S %:z")
        .unwrap_or_else(|e| panic!("{shown:?} is not `YYYY-MM-DD HH:MM:SS +07:00`: {e}"))
}

/// The `len` characters after `marker` in `text`.
fn after<'a>(text: &'a str, marker: &str, len: usize) -> &'a str {
    let start =
        text.find(marker).unwrap_or_else(|| panic!("no {marker:?} in:\n{text}")) + marker.len();
    &text[start..start + len]
}

#[test]
fn audio_add_refuses_damage_names_files_as_sent_and_ends_its_progress_lines() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("central");
    let province = central_init(&data);
    let central = province.serve("");
    let (url, admin) = (&central.url, &province.admin);
    let add = |args: &[&str]| {
        let mut all = vec!["audio", "add"];
        all.extend_from_slice(args);
        remote(url, admin, &all)
    };
    let root = root();
    let data_shown = data.display().to_string();

    // An Ogg file cut to half its length: refused, with the reason and what to do.
    let ogg = std::fs::read(root.join("tests/audio_fixtures/tone-440.ogg")).expect("ogg");
    let cut = dir.path().join("ban-tin-cat.ogg");
    std::fs::write(&cut, &ogg[..ogg.len() / 2]).expect("cut");
    let cut_s = cut.to_str().expect("utf-8 path");
    let out = add(&[cut_s]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains(
            "ban-tin-cat.ogg: truncated (the file ends early); upload the whole file, or pass \
             --accept-damaged to `loa audio add` to store it anyway"
        ),
        "{err}"
    );
    assert!(text(&out.stdout).is_empty(), "nothing stored: {}", text(&out.stdout));

    // An MP3 with 2,000 bytes overwritten a third of the way in: refused too.
    let mut mp3 = std::fs::read(root.join("audio/ban-tin.mp3")).expect("mp3");
    let middle = mp3.len() / 3;
    let mut x: u32 = 20261201;
    for byte in &mut mp3[middle..middle + 2000] {
        x = x.wrapping_mul(1_103_515_245).wrapping_add(12_345);
        *byte = (x >> 16) as u8;
    }
    let bad = dir.path().join("ban-tin-hong.mp3");
    std::fs::write(&bad, &mp3).expect("bad mp3");
    let out = add(&[bad.to_str().expect("utf-8 path")]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("ban-tin-hong.mp3: "), "{err}");
    assert!(err.contains("1 corrupt packets skipped (parts of it do not decode)"), "{err}");
    assert!(err.contains("pass --accept-damaged"), "{err}");

    // A text file named .mp3: named as the operator named it, not by central's paths.
    let notes = dir.path().join("ghi-chu.mp3");
    std::fs::write(&notes, "không phải âm thanh\n").expect("notes");
    let out = add(&[notes.to_str().expect("utf-8 path")]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("ghi-chu.mp3: not a recognised audio file"), "{err}");
    for leak in [data_shown.as_str(), "tmp/upload-", "upload-"] {
        assert!(!err.contains(leak), "central's layout ({leak}) in: {err}");
    }

    // Insisting stores it, and the library keeps saying what is wrong with it.
    let out = add(&[cut_s, "--accept-damaged"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let line = text(&out.stdout);
    assert!(line.trim_end().ends_with("(truncated)"), "{line}");
    let out = add(&[cut_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stderr).contains("ban-tin-cat.ogg: already in central's library"));
    assert_eq!(text(&out.stdout), line, "the library's entry carries the flag");

    // A sound file has no note. Not on a terminal, progress is one line per file,
    // with no carriage return: what follows starts on its own line.
    let good = dir.path().join("nhac.wav");
    std::fs::write(&good, loa::testing::wav_bytes(2.0, 440.0, 0.3)).expect("wav");
    let good_s = good.to_str().expect("utf-8 path");
    let out = add(&[good_s]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let stdout = text(&out.stdout);
    assert!(stdout.trim_end().ends_with(" dB"), "no damage note: {stdout}");
    let err = text(&out.stderr);
    assert!(!err.contains('\r'), "{err:?}");
    let size = std::fs::metadata(&good).expect("size").len().div_ceil(1024);
    assert_eq!(err, format!("{good_s}: uploading {size} KB\n"));

    // On a terminal the counter moves on one line, and that line is ended before anything
    // else is printed (`script` gives the command a pseudo-terminal; both streams go to it).
    let other = dir.path().join("nhac-2.wav");
    std::fs::write(&other, loa::testing::wav_bytes(1.0, 550.0, 0.3)).expect("wav");
    let out = std::process::Command::new("script")
        .args(["-qec", &format!("{LOA} audio add {}", other.display()), "/dev/null"])
        .env("LOA_CENTRAL", url)
        .env("LOA_TOKEN", admin)
        .env_remove("LOA_CA_CERT")
        .env("HOME", "/nonexistent")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("run script (util-linux)");
    let screen = text(&out.stdout);
    assert!(out.status.success(), "{screen}");
    let ended = after(&screen, &format!("\r{}: 100%", other.display()), 2);
    assert_eq!(ended, "\r\n", "the counter's line is ended: {screen:?}");
    let last = screen.lines().last().expect("a line").trim_end();
    assert!(last.contains("nhac-2  1.0 s") && !last.contains('%'), "{screen:?}");
}

#[test]
fn a_text_bulletin_with_its_tone_is_titled_by_its_words_and_timed_from_the_tone() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("central");
    let province = central_init(&data);
    let token = province.add_station("tri-ton", "Đài Tri Tôn", "Tri Tôn");
    let central = province.serve("");
    let (url, admin) = (central.url.clone(), province.admin.clone());
    let station_toml = StationToml {
        id: "tri-ton",
        central_url: &url,
        token: &token,
        key: &province.key,
        extra: "",
        audio: "sink = \"clocked\"\n",
    }
    .write(&dir.path().join("tri-ton"));
    let station = Proc::station(&station_toml);
    station.wait_for(&["bulletin stream connected"], Duration::from_secs(60));

    let words = "Cảnh báo lũ trên sông Hậu: người dân vùng trũng đi đến nơi cao";
    let title = "Cảnh báo lũ trên sông Hậu: người dân…";
    let out = remote(
        &url,
        &admin,
        &["bulletin", "push", "--text", words, "--to", "tri-ton", "--tone", "--expires", "2h"],
    );
    let err = text(&out.stderr);
    assert!(out.status.success(), "{err}");
    let id = text(&out.stdout).trim().to_string();
    // `pushed to 1 station(s), expires 2026-12-06 20:17:43 +07:00; follow it with …`
    let expires = local_instant(after(&err, "pushed to 1 station(s), expires ", 26));
    assert!(err.contains(&format!("; follow it with `loa bulletin show {id}`")), "{err}");
    let show_json = |url: &str| -> BulletinInfo {
        let out = remote(url, &admin, &["bulletin", "show", &id, "--format", "json"]);
        assert!(out.status.success(), "{}", text(&out.stderr));
        serde_json::from_slice(&out.stdout).expect("bulletin json")
    };
    let info = show_json(&url);
    assert_eq!(info.doc.title, title);
    assert_eq!(expires.timestamp(), info.doc.expires_at.timestamp());
    assert_eq!(expires.offset().local_minus_utc(), 7 * 3600, "Asia/Ho_Chi_Minh by default");

    // `list`: titled by its words, issued in local time to the second.
    let list = text(&remote(&url, &admin, &["bulletin", "list"]).stdout);
    let row = list.lines().find(|l| l.starts_with(&id)).unwrap_or_else(|| panic!("{list}"));
    assert!(row.ends_with(title), "{row}");
    let issued = local_instant(row[35..61].trim_end());
    assert_eq!(issued.timestamp(), info.doc.issued_at.timestamp(), "{row}");

    // It airs: the tone, then the words.
    let info = wait::until("the bulletin finished", Duration::from_secs(60), || {
        let info = show_json(&url);
        (info.stations[0].state == Some(DeliveryState::Finished)).then_some(info)
    });
    let issued_at = info.doc.issued_at;
    let records = wait::until("both records at central", Duration::from_secs(30), || {
        let out = remote(&url, &admin, &["log", "--format", "json"]);
        let records: Vec<loa::protocol::Record> = serde_json::from_slice(&out.stdout).ok()?;
        let tone = records.iter().find(|r| r.entry.item_id == format!("{id}:tone"))?.clone();
        let play = records.iter().find(|r| r.entry.item_id == id)?.clone();
        Some((tone, play))
    });
    let (tone, play) = records;
    let tone_started = tone.entry.started.expect("the tone started");
    let latency = (tone_started - issued_at).num_milliseconds();
    // The latency is from the push to the tone, the first sound people hear, not to
    // the words after it.
    let shown = wait::until("the latency", Duration::from_secs(10), || {
        show_json(&url).stations[0].latency_ms
    });
    assert!((shown - latency).abs() <= 1, "show says {shown} ms, the tone's record {latency} ms");
    let words_started = play.entry.started.expect("the words started");
    let to_words = (words_started - issued_at).num_milliseconds();
    assert!(to_words - shown >= 1_900, "the 2 s tone is not counted: {shown} vs {to_words} ms");
    assert!(words_started >= tone.entry.ended.expect("tone ended"), "{play:?}");
    // The words follow their own tone exactly as planned: played, not late.
    assert_eq!(play.entry.outcome, loa::protocol::Outcome::Played, "{play:?}");
    assert!(play.entry.delay_ms.is_some_and(|d| (0..1_000).contains(&d)), "{play:?}");
    assert_eq!(play.entry.title, title, "the ledger's title");

    // `show`: local times to the second, the latency to the tone.
    let table = text(&remote(&url, &admin, &["bulletin", "show", &id]).stdout);
    let first = table.lines().next().expect("first line");
    assert!(first.contains(&format!("{title:?}")), "{table}");
    let issued_shown = local_instant(after(first, "  issued ", 26));
    assert_eq!(issued_shown.timestamp(), issued_at.timestamp());
    local_instant(after(first, "  expires ", 26));
    let row = table.lines().find(|l| l.starts_with("tri-ton")).expect("station row");
    assert!(row.contains(&format!("{:.3} s", shown as f64 / 1000.0)), "{row}");
    let at = local_instant(after(row, "  at ", 26));
    assert!(at.with_timezone(&Utc) >= words_started - chrono::Duration::seconds(1), "{row}");

    // `log` and the report say the same: its title, played, the latency to the tone.
    let csv = text(&remote(&url, &admin, &["log", "--format", "csv"]).stdout);
    let line = csv.lines().find(|l| l.contains(&format!(",{id},"))).expect("log line");
    assert!(line.contains(&format!(",{title},")) && line.contains(",played,"), "{line}");
    let day = issued_at.with_timezone(&chrono_tz::Asia::Ho_Chi_Minh).date_naive().to_string();
    let out = remote(&url, &admin, &["report", &day, "--format", "json"]);
    let report: DailyReport = serde_json::from_slice(&out.stdout).expect("report");
    let row = report.bulletins.iter().find(|r| r.bulletin_id == id).expect("report row");
    assert_eq!((row.title.as_str(), row.plays_aired), (title, 1), "{row:?}");
    assert!(row.latency_ms.is_some_and(|l| (l - latency).abs() <= 1), "{row:?}");
    let csv = text(&remote(&url, &admin, &["report", &day, "--format", "csv"]).stdout);
    assert!(csv.lines().any(|l| l.contains(&format!(",{id},{title},"))), "{csv}");
    let table = text(&remote(&url, &admin, &["report", &day]).stdout);
    assert!(table.contains(&format!("{:.3}s", latency as f64 / 1000.0)), "{table}");
}
