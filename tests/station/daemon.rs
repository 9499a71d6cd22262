//! The station daemon end to end on a ManualClock and a clocked sink: real player,
//! real decoding, real SQLite ledger; no sound card and no waiting for the wall clock.

use crate::support::station::{Fixture, RATE, first_sound, local};
use chrono::Duration;
use loa::station::StationCommand;
use loa::station::daemon::file_sha256;
use loa::station::ledger::Outcome;

fn item(id: &str, audio: &str, when: &str, extra: &str) -> String {
    format!(
        "[[item]]\nid = \"{id}\"\ntitle = \"Mục {id}\"\naudio = \"../audio/{audio}\"\n{when}\n{extra}\n"
    )
}

fn local_item(id: &str, audio: &str, when: &str, extra: &str) -> String {
    format!(
        "[[item]]\nid = \"{id}\"\ntitle = \"Mục {id}\"\naudio = \"../../audio/{audio}\"\n{when}\n{extra}\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_realistic_day_plays_in_order_with_exact_starts() {
    let mut fx = Fixture::new(local(5, 29, 50));
    let tone = fx.tone("ban-tin.wav", 3.0);
    fx.tone("chuong.wav", 1.0);
    fx.schedule(
        "schedules/provincial.toml",
        &format!(
            "layer = \"provincial\"\n{}{}",
            item(
                "tiep-song-sang",
                "ban-tin.wav",
                "cron = \"30 5 * * 1-6\"",
                "priority = \"priority\""
            ),
            item("tiep-song-chieu", "ban-tin.wav", "cron = \"0 17 * * 1-6\"", "")
        ),
    );
    fx.schedule(
        "schedules/local/huyen.toml",
        &format!(
            "layer = \"local\"\n{}{}{}",
            local_item("chuong-bao", "chuong.wav", "cron = \"45 5 * * 1-6\"", ""),
            local_item("thoi-su-huyen", "ban-tin.wav", "cron = \"46 5 * * 1-6\"", ""),
            local_item("nhac-chieu", "chuong.wav", "cron = \"30 17 * * 1-6\"", "")
        ),
    );
    fx.start();
    fx.run_until(local(5, 30, 5)).await;
    // The first sample of the first item lands on the exact frame of 05:30:00.
    let rec = fx.recording.clone().expect("recording");
    let frame = first_sound(&rec, 0).expect("something played");
    assert_eq!(rec.time_of_frame(frame), local(5, 30, 0), "frame {frame} at {RATE} Hz");

    for (from, to) in
        [((5, 44, 55), (5, 46, 5)), ((16, 59, 55), (17, 0, 5)), ((17, 29, 55), (17, 30, 5))]
    {
        fx.jump_to(local(from.0, from.1, from.2)).await;
        fx.run_until(local(to.0, to.1, to.2)).await;
    }
    let records = fx.wait_records(5).await;
    let got: Vec<_> = records
        .iter()
        .map(|r| (r.entry.item_id.as_str(), r.entry.outcome, r.entry.started))
        .collect();
    assert_eq!(
        got,
        vec![
            ("tiep-song-sang", Outcome::Played, Some(local(5, 30, 0))),
            ("chuong-bao", Outcome::Played, Some(local(5, 45, 0))),
            ("thoi-su-huyen", Outcome::Played, Some(local(5, 46, 0))),
            ("tiep-song-chieu", Outcome::Played, Some(local(17, 0, 0))),
            ("nhac-chieu", Outcome::Played, Some(local(17, 30, 0))),
        ]
    );
    let first = &records[0].entry;
    assert_eq!(first.played_secs, Some(3.0));
    assert_eq!(first.audio_sha256.as_deref(), Some(file_sha256(&tone).expect("sha").as_str()));
    let levels = first.levels.expect("proof of play");
    assert!((levels.peak_dbfs + 6.02).abs() < 0.2, "peak {}", levels.peak_dbfs);
    assert!(!levels.silent);
    assert_eq!(fx.ledger().verify().expect("verify").first_break, None);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn priority_preempts_normal_and_local_yields_to_provincial() {
    let mut fx = Fixture::new(local(9, 59, 50));
    fx.tone("dai.wav", 10.0);
    fx.tone("ngan.wav", 3.0);
    fx.schedule(
        "schedules/provincial.toml",
        &format!(
            "layer = \"provincial\"\n{}{}",
            item("canh-bao", "ngan.wav", "at = 2026-12-01T10:00:05", "priority = \"priority\""),
            item("tinh", "ngan.wav", "at = 2026-12-01T10:00:20", "")
        ),
    );
    fx.schedule(
        "schedules/local/xa.toml",
        &format!(
            "layer = \"local\"\n{}{}{}",
            local_item("nhac", "dai.wav", "at = 2026-12-01T10:00:00", ""),
            // Due while `tinh` plays; may wait a minute: starts late when it ends.
            local_item("thong-bao", "ngan.wav", "at = 2026-12-01T10:00:21", "max_delay = \"1m\""),
            // Due while `tinh` plays; may wait one second only.
            local_item("quang-cao", "ngan.wav", "at = 2026-12-01T10:00:21", "max_delay = \"1s\"")
        ),
    );
    fx.start();
    fx.run_until(local(10, 0, 30)).await;
    let records = fx.wait_records(5).await;
    let by_id = |id: &str| records.iter().find(|r| r.entry.item_id == id).expect(id).entry.clone();

    let nhac = by_id("nhac");
    assert_eq!(nhac.outcome, Outcome::Preempted);
    assert_eq!(nhac.reason.as_deref(), Some("pre-empted by canh-bao"));
    let played = nhac.played_secs.expect("played");
    assert!((4.3..=5.0).contains(&played), "faded out just before 10:00:05, played {played}");

    let canh_bao = by_id("canh-bao");
    assert_eq!((canh_bao.outcome, canh_bao.started), (Outcome::Played, Some(local(10, 0, 5))));
    let tinh = by_id("tinh");
    assert_eq!((tinh.outcome, tinh.started), (Outcome::Played, Some(local(10, 0, 20))));

    let thong_bao = by_id("thong-bao");
    assert_eq!(thong_bao.outcome, Outcome::Late);
    let started = thong_bao.started.expect("started");
    // Decoded while `tinh` plays, it starts on the block after it ends (128 ms at 8 kHz).
    assert!(
        started >= local(10, 0, 23) && started < local(10, 0, 23) + Duration::milliseconds(400),
        "{started}"
    );

    let quang_cao = by_id("quang-cao");
    assert_eq!(quang_cao.outcome, Outcome::Missed);
    assert_eq!(quang_cao.reason.as_deref(), Some("yielded to tinh"));
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_or_missing_audio_fails_and_the_next_item_still_plays() {
    let mut fx = Fixture::new(local(9, 59, 50));
    fx.tone("tot.wav", 2.0);
    std::fs::write(fx.path("audio/hong.mp3"), b"this is not audio at all, just text")
        .expect("write");
    fx.schedule(
        "schedules/provincial.toml",
        &format!(
            "layer = \"provincial\"\n{}{}{}",
            item("hong", "hong.mp3", "at = 2026-12-01T10:00:00", ""),
            item("mat", "khong-co.mp3", "at = 2026-12-01T10:00:05", ""),
            item("tot", "tot.wav", "at = 2026-12-01T10:00:10", "")
        ),
    );
    fx.start();
    fx.run_until(local(10, 0, 15)).await;
    let records = fx.wait_records(3).await;
    let summary: Vec<_> =
        records.iter().map(|r| (r.entry.item_id.as_str(), r.entry.outcome)).collect();
    assert_eq!(
        summary,
        vec![("hong", Outcome::Failed), ("mat", Outcome::Failed), ("tot", Outcome::Played)]
    );
    let hong = records[0].entry.reason.clone().unwrap_or_default();
    assert!(hong.starts_with("audio unreadable"), "{hong}");
    let mat = records[1].entry.reason.clone().unwrap_or_default();
    assert!(mat.starts_with("audio missing:") && mat.contains("khong-co.mp3"), "{mat}");
    assert_eq!(records[2].entry.started, Some(local(10, 0, 10)));
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_takes_effect_and_a_bad_edit_is_rejected_without_restart() {
    let mut fx = Fixture::new(local(9, 59, 50));
    fx.tone("a.wav", 1.0);
    let good = |at: &str| {
        format!(
            "layer = \"local\"\n{}",
            local_item("loa-xa", "a.wav", &format!("at = 2026-12-01T{at}"), "")
        )
    };
    fx.schedule("schedules/local/xa.toml", &good("10:00:30"));
    fx.start();
    fx.run_until(local(10, 0, 0)).await;

    // Staff move the item earlier: it plays at the new time, not the old one.
    fx.schedule("schedules/local/xa.toml", &good("10:00:10"));
    fx.run_until(local(10, 0, 40)).await;
    let records = fx.wait_records(1).await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].entry.outcome, records[0].entry.started),
        (Outcome::Played, Some(local(10, 0, 10)))
    );

    // Then make a mistake: the file is rejected and the last good version keeps running.
    fx.schedule(
        "schedules/local/xa.toml",
        &format!("{}cron = \"61 10 * * *\"\n", good("10:01:00")),
    );
    fx.run_until(local(10, 0, 50)).await;
    // Fix the old item's time to 10:01:00 through another, valid file... no: the bad file
    // means its last good version (10:00:10, already played) stays; a new valid file plays.
    fx.schedule(
        "schedules/local/them.toml",
        &format!(
            "layer = \"local\"\n{}",
            local_item("them", "a.wav", "at = 2026-12-01T10:01:00", "")
        ),
    );
    fx.run_until(local(10, 1, 5)).await;
    let records = fx.wait_records(2).await;
    let summary: Vec<_> =
        records.iter().map(|r| (r.entry.item_id.as_str(), r.entry.started)).collect();
    assert_eq!(summary, vec![("loa-xa", Some(local(10, 0, 10))), ("them", Some(local(10, 1, 0)))]);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_edit_keeps_the_old_version_playing() {
    let mut fx = Fixture::new(local(9, 59, 50));
    fx.tone("a.wav", 1.0);
    let text =
        format!("layer = \"local\"\n{}", local_item("cu", "a.wav", "at = 2026-12-01T10:00:20", ""));
    fx.schedule("schedules/local/xa.toml", &text);
    fx.start();
    fx.run_until(local(10, 0, 0)).await;
    // A typo that moves the item to 10:00:10 but breaks the file.
    let broken = text.replace("10:00:20", "10:00:10").replace("title", "titel");
    fx.schedule("schedules/local/xa.toml", &broken);
    fx.run_until(local(10, 0, 25)).await;
    let records = fx.wait_records(1).await;
    assert_eq!(records.len(), 1);
    assert_eq!(
        (records[0].entry.item_id.as_str(), records[0].entry.started),
        ("cu", Some(local(10, 0, 20)))
    );
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_emergency_preempts_and_shutdown_fades_and_records() {
    let mut fx = Fixture::new(local(9, 59, 50));
    fx.tone("dai.wav", 30.0);
    let bao = fx.tone("bao.wav", 2.0);
    fx.schedule(
        "schedules/provincial.toml",
        &format!(
            "layer = \"provincial\"\n{}",
            item("uu-tien", "dai.wav", "at = 2026-12-01T10:00:00", "priority = \"priority\"")
        ),
    );
    fx.start();
    fx.run_until(local(10, 0, 3)).await;
    let sent = fx.handle.as_ref().expect("handle").send(StationCommand::Emergency {
        id: "bao-lu".into(),
        title: "Cảnh báo lũ".into(),
        audio: bao,
        repeat: 1,
        expires: None,
        gain_db: 0.0,
        interval: std::time::Duration::ZERO,
        tone: None,
    });
    assert!(sent);
    fx.run_until(local(10, 0, 10)).await;
    let records = fx.wait_records(3).await;
    let summary: Vec<_> = records
        .iter()
        .map(|r| (r.entry.item_id.as_str(), r.entry.outcome, r.entry.reason.clone()))
        .collect();
    assert_eq!(summary[0], ("uu-tien", Outcome::Preempted, Some("pre-empted by bao-lu".into())));
    assert_eq!((summary[1].0, summary[2].0), ("bao-lu", "bao-lu"), "played twice: {summary:?}");
    assert!(records[1].entry.started < records[2].entry.started);

    // Something long is playing when the station is told to stop.
    fx.handle.as_ref().expect("handle").send(StationCommand::Emergency {
        id: "dai".into(),
        title: "Dài".into(),
        audio: fx.path("audio/dai.wav"),
        repeat: 0,
        expires: None,
        gain_db: 0.0,
        interval: std::time::Duration::ZERO,
        tone: None,
    });
    fx.run_until(local(10, 0, 12)).await;
    fx.stop().await;
    let records = fx.records();
    let last = &records.last().expect("records").entry;
    assert_eq!((last.item_id.as_str(), last.outcome), ("dai", Outcome::Preempted));
    assert_eq!(last.reason.as_deref(), Some("station shutdown"));
    assert_eq!(fx.ledger().state("playing").expect("state"), None, "nothing left half-played");
    assert_eq!(fx.ledger().verify().expect("verify").first_break, None);
}

/// A bulletin with its attention tone, on the real player: the tone sounds the moment
/// it is pushed, the bulletin right after it, and that is its plan: `played`, planned at
/// the tone's end, not `late` by the tone's length.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bulletin_behind_its_own_tone_is_recorded_played_at_the_tones_end() {
    let mut fx = Fixture::new(local(10, 0, 0));
    let tone = fx.tone("chuong.wav", 2.0);
    let bao = fx.tone("bao.wav", 1.0);
    fx.schedule("schedules/provincial.toml", "layer = \"provincial\"\n");
    fx.start();
    fx.run_until(local(10, 0, 1)).await;
    let pushed = local(10, 0, 1);
    let sent = fx.handle.as_ref().expect("handle").send(StationCommand::Emergency {
        id: "bao-lu".into(),
        title: "Cảnh báo lũ".into(),
        audio: bao,
        repeat: 0,
        expires: None,
        gain_db: 0.0,
        interval: std::time::Duration::ZERO,
        tone: Some(tone),
    });
    assert!(sent);
    fx.run_until(local(10, 0, 6)).await;
    let records = fx.wait_records(2).await;
    let tone = &records[0].entry;
    let play = &records[1].entry;
    assert_eq!((tone.item_id.as_str(), tone.outcome), ("bao-lu:tone", Outcome::Played));
    assert_eq!((play.item_id.as_str(), play.outcome), ("bao-lu", Outcome::Played), "{play:?}");
    let tone_started = tone.started.expect("the tone started");
    assert!(tone_started - pushed < Duration::milliseconds(200), "tone at {tone_started}");
    // Planned when the tone ended: the player reports the end as its last samples go to
    // the sink, a buffer (~20 ms here) before they are heard.
    let tone_ended = tone.ended.expect("the tone ended");
    assert!(play.planned <= tone_ended, "{} after {tone_ended}", play.planned);
    assert!(tone_ended - play.planned < Duration::milliseconds(100), "{}", play.planned);
    assert!(play.started >= Some(tone_ended), "the whole tone is heard first: {play:?}");
    let delay = play.delay_ms.expect("delay");
    assert!((0..200).contains(&delay), "starts right after the tone: {delay} ms");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn schedules_pushed_by_the_sync_play_content_addressed_audio_beside_local_files() {
    let mut fx = Fixture::new(local(9, 59, 50));
    let tone = fx.tone("tinh.wav", 1.0);
    let sha = file_sha256(&tone).expect("sha");
    // The sync keeps verified audio in <data_dir>/audio/<sha256>.
    std::fs::create_dir_all(fx.config.data_dir.join("audio")).expect("cache dir");
    std::fs::copy(&tone, fx.config.data_dir.join("audio").join(&sha)).expect("cache");
    fx.tone("xa.wav", 1.0);
    // The provincial file says one thing; central's pushed copy replaces it.
    fx.schedule(
        "schedules/provincial.toml",
        &format!(
            "layer = \"provincial\"\n{}",
            item("cu", "tinh.wav", "at = 2026-12-01T10:00:05", "")
        ),
    );
    fx.schedule(
        "schedules/local/xa.toml",
        &format!(
            "layer = \"local\"\n{}",
            local_item("xa", "xa.wav", "at = 2026-12-01T10:00:20", "")
        ),
    );
    fx.start();
    let text = format!(
        "layer = \"provincial\"\n[[item]]\nid = \"tu-trung-uong\"\ntitle = \"Từ tỉnh\"\naudio = \"sha256:{sha}\"\nat = 2026-12-01T10:00:10\n"
    );
    let parsed = loa::schedule::parse(&text, "central", std::path::Path::new(""));
    let schedule = parsed.schedule.expect("valid schedule");
    assert!(fx.handle.as_ref().expect("handle").send(StationCommand::Central(vec![schedule])));
    fx.run_until(local(10, 0, 25)).await;
    let records = fx.wait_records(2).await;
    let got: Vec<_> = records
        .iter()
        .map(|r| (r.entry.item_id.as_str(), r.entry.outcome, r.entry.started))
        .collect();
    assert_eq!(
        got,
        vec![
            ("tu-trung-uong", Outcome::Played, Some(local(10, 0, 10))),
            ("xa", Outcome::Played, Some(local(10, 0, 20))),
        ]
    );
    assert_eq!(records[0].entry.audio_sha256.as_deref(), Some(sha.as_str()));
    fx.stop().await;
}

/// Found by the ten-minute chaos run: a station killed, started again and killed again
/// before central's schedules reached the daemon (they come through the uplink, after
/// start-up) left a play of central's with no record at all — the middle run, knowing
/// none of central's items, had written a horizon past it. A run now keeps the previous
/// horizon until central's schedules arrive.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_stopped_before_centrals_schedules_arrive_leaves_their_plays_to_the_next_start() {
    let mut fx = Fixture::new(local(9, 59, 50));
    fx.config.central_url = Some("http://central.invalid:8480".into());
    let tone = fx.tone("tinh.wav", 1.0);
    let sha = file_sha256(&tone).expect("sha");
    std::fs::create_dir_all(fx.config.data_dir.join("audio")).expect("cache dir");
    std::fs::copy(&tone, fx.config.data_dir.join("audio").join(&sha)).expect("cache");
    let text = format!(
        "layer = \"provincial\"\n[[item]]\nid = \"tu-tinh\"\ntitle = \"Từ tỉnh\"\naudio = \"sha256:{sha}\"\nat = 2026-12-01T10:00:30\nmax_delay = \"1s\"\n"
    );
    let central = || {
        let parsed = loa::schedule::parse(&text, "central", std::path::Path::new(""));
        StationCommand::Central(vec![parsed.schedule.expect("valid schedule")])
    };
    // First run: central's schedule arrives, then the station is killed before 10:00:30.
    fx.start();
    assert!(fx.handle.as_ref().expect("handle").send(central()));
    fx.run_until(local(10, 0, 5)).await;
    fx.kill().await;
    // Second run, from 10:00:20 to 10:00:40: central's schedule never reaches it.
    fx.clock.set(local(10, 0, 20));
    fx.start();
    fx.run_until(local(10, 0, 40)).await;
    fx.kill().await;
    // Third run: central's schedule arrives, and the play of 10:00:30 gets its record.
    fx.clock.set(local(10, 1, 0));
    fx.start();
    assert!(fx.handle.as_ref().expect("handle").send(central()));
    fx.run_until(local(10, 1, 5)).await;
    let records = fx.wait_records(1).await;
    let got: Vec<_> = records
        .iter()
        .map(|r| (r.entry.item_id.as_str(), r.entry.planned, r.entry.outcome))
        .collect();
    assert_eq!(got, [("tu-tinh", local(10, 0, 30), Outcome::Missed)]);
    fx.stop().await;
}
