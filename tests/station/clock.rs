//! The wall clock stepped under a running daemon (ManualClock::step: the monotonic clock
//! untouched, as NTP or a person setting the date does): forward a day, forward 56 years
//! (1970 → 2026), back an hour, back a day, and in the middle of an item. Each test
//! checks what aired (the clocked sink's recording), the ledger's records and reasons,
//! that the work is bounded (records written), and that the next item due after the step
//! starts on its exact frame.

use crate::support::station::{Fixture, first_sound, local};
use chrono::{DateTime, Duration, TimeZone, Utc};
use loa::clock::Clock;
use loa::station::daemon::SUMMARY_ITEM;
use loa::station::ledger::{Outcome, Record};

/// A provincial file with one item (`id`, `cron`, a tone of `secs`).
fn schedule(fx: &Fixture, id: &str, cron: &str, secs: f64, max_delay: &str) {
    fx.tone(&format!("{id}.wav"), secs);
    fx.schedule(
        "schedules/provincial.toml",
        &format!(
            "layer = \"provincial\"\n[[item]]\nid = \"{id}\"\ntitle = \"Mục {id}\"\n\
             audio = \"../audio/{id}.wav\"\ncron = \"{cron}\"\nmax_delay = \"{max_delay}\"\n"
        ),
    );
}

fn with_reason<'a>(records: &'a [Record], prefix: &str) -> Vec<&'a Record> {
    records
        .iter()
        .filter(|r| r.entry.reason.as_deref().is_some_and(|x| x.starts_with(prefix)))
        .collect()
}

fn find(records: &[Record], planned: DateTime<Utc>) -> Vec<&Record> {
    records.iter().filter(|r| r.entry.planned == planned).collect()
}

/// The first sound the recording holds after the wall instant `after`, as a wall instant.
fn first_sound_after(fx: &Fixture, after: DateTime<Utc>) -> DateTime<Utc> {
    let rec = fx.recording.clone().expect("recording");
    let from = rec.frame_at(after).max(0.0) as u64;
    let frame = first_sound(&rec, from).expect("something aired");
    rec.time_of_frame(frame)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_forward_records_the_skipped_plays_as_a_clock_problem_and_plays_on() {
    let mut fx = Fixture::new(local(9, 59, 50));
    schedule(&fx, "moi-phut", "* * * * *", 2.0, "30s");
    fx.start();
    fx.run_until(local(10, 0, 5)).await;
    fx.step(Duration::days(1)).await;
    let status = fx.status().await;
    let step = status.clock_step.expect("the step shows in the status");
    assert_eq!(step.by_ms, 86_400_000);

    let next_day = |h, m, s| local(h, m, s) + Duration::days(1);
    fx.run_until(next_day(10, 1, 5)).await;
    let records = fx.wait_records(1 + 1439 + 2).await;
    let stepped = with_reason(&records, "clock stepped forward by 1d 0h 0m 0s");
    // 10:01 on the first day to 09:59 on the next: every one once, nothing else.
    assert_eq!(stepped.len(), 1439, "one record per skipped play");
    assert!(stepped.iter().all(|r| r.entry.outcome == Outcome::Missed));
    assert_eq!(stepped[0].entry.planned, local(10, 1, 0));
    assert_eq!(stepped[1438].entry.planned, next_day(9, 59, 0));
    assert!(with_reason(&records, "could not start").is_empty(), "no operator-looking misses");
    assert_eq!(records.len(), 1 + 1439 + 2, "bounded: nothing but those records written");
    // 10:00 on the new day is within its 30 s: it starts at once, late.
    let late = find(&records, next_day(10, 0, 0));
    assert_eq!(late.len(), 1);
    assert_eq!(late[0].entry.outcome, Outcome::Late);
    // The next one due after the step starts on its exact frame.
    let on_time = find(&records, next_day(10, 1, 0));
    assert_eq!(on_time[0].entry.outcome, Outcome::Played);
    assert_eq!(on_time[0].entry.started, Some(next_day(10, 1, 0)));
    assert_eq!(first_sound_after(&fx, next_day(10, 0, 30)), next_day(10, 1, 0));
    assert_eq!(fx.ledger().verify().expect("verify").first_break, None);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_six_years_forward_is_one_week_of_records_and_one_summary() {
    let start = Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap();
    let mut fx = Fixture::new(start);
    schedule(&fx, "moi-phut", "* * * * *", 2.0, "30s");
    fx.start();
    fx.run_until(start + Duration::seconds(70)).await;
    let target = local(10, 0, 10);
    let by = target - fx.clock.now();
    let began = std::time::Instant::now();
    fx.step(by).await;
    let took = began.elapsed();
    fx.run_until(local(10, 1, 5)).await;
    let records = fx.wait_records(10_000).await;

    // The week before the new now, one record each (7 × 1440 less today's 10:00, which
    // may still start), plus the 1970 plays the daemon had in hand (00:02 to the end of
    // its look-ahead, 01:00).
    let stepped = with_reason(&records, "clock stepped forward by 20788d");
    let in_1970 = stepped.iter().filter(|r| r.entry.planned < start + Duration::days(1)).count();
    assert!((58..=59).contains(&in_1970), "{in_1970}");
    assert_eq!(stepped.len(), 7 * 1440 - 1 + in_1970);
    // Everything between: one summary record that counts the plays and names the span,
    // so that every play from 00:02 in 1970 to a week ago is counted exactly once.
    let summary: Vec<_> = records.iter().filter(|r| r.entry.item_id == SUMMARY_ITEM).collect();
    assert_eq!(summary.len(), 1);
    let detail = summary[0].entry.reason.clone().unwrap_or_default();
    let counted: i64 = detail.split(' ').next().and_then(|n| n.parse().ok()).expect("a count");
    let week_ago = local(10, 0, 0) - Duration::days(7);
    // Less the hour that happened twice when Vietnam moved from UTC+8 to UTC+7 in 1975:
    // a wall-clock time in an overlap plays once.
    let every = (week_ago - (start + Duration::minutes(2))).num_minutes() + 1 - 60;
    assert_eq!(counted + in_1970 as i64, every, "{detail}");
    assert!(
        detail.contains(" plays between 1970-01-01T01:00:00Z and 2026-11-24T03:00:10Z"),
        "{detail}"
    );
    assert!(
        detail.contains("not recorded one by one: clock stepped forward by 20788d"),
        "{detail}"
    );
    // Bounded: about ten thousand records, not 29 million, in a few seconds.
    assert!(records.len() < 10_200, "{} records", records.len());
    assert!(took < std::time::Duration::from_secs(60), "the step took {took:?}");
    // The next play due after the step starts on its exact frame.
    let on_time = find(&records, local(10, 1, 0));
    assert_eq!(on_time[0].entry.outcome, Outcome::Played);
    assert_eq!(on_time[0].entry.started, Some(local(10, 1, 0)));
    assert_eq!(first_sound_after(&fx, local(10, 0, 30)), local(10, 1, 0));
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_hour_back_plans_again_from_the_corrected_time_and_never_airs_twice() {
    // The clock was an hour fast: it read 11:00 at 10:00.
    let mut fx = Fixture::new(local(10, 59, 50));
    schedule(&fx, "muoi-phut", "*/10 * * * *", 2.0, "30s");
    fx.start();
    fx.run_until(local(11, 0, 5)).await;
    assert_eq!(fx.wait_records(1).await[0].entry.outcome, Outcome::Played);
    fx.step(-Duration::hours(1)).await;
    assert_eq!(fx.status().await.clock_step.map(|s| s.by_ms), Some(-3_600_000));

    // 10:10 was never planned (the clock had passed it): it airs at the corrected time.
    fx.jump_to(local(10, 9, 50)).await;
    fx.run_until(local(10, 10, 5)).await;
    let records = fx.wait_records(2).await;
    let ten = find(&records, local(10, 10, 0));
    assert_eq!(ten[0].entry.outcome, Outcome::Played);
    assert_eq!(ten[0].entry.started, Some(local(10, 10, 0)));
    assert_eq!(first_sound_after(&fx, local(10, 9, 55)), local(10, 10, 0));

    // 11:00 already has its record: it does not air again when the hour comes round.
    fx.jump_to(local(10, 59, 50)).await;
    fx.run_until(local(11, 10, 5)).await;
    let records = fx.wait_records(7).await;
    assert_eq!(find(&records, local(11, 0, 0)).len(), 1, "one record per planned instant");
    let rec = fx.recording.clone().expect("recording");
    let quiet_from = rec.frame_at(local(10, 59, 55)) as u64;
    let next = first_sound(&rec, quiet_from).map(|f| rec.time_of_frame(f));
    assert_eq!(next, Some(local(11, 10, 0)), "11:00 did not air twice; 11:10 on time");
    assert!(with_reason(&records, "clock stepped").is_empty(), "a step back skips nothing");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_day_back_keeps_every_record_single_and_the_next_item_on_time() {
    let next_day = |h, m, s| local(h, m, s) + Duration::days(1);
    let mut fx = Fixture::new(next_day(10, 59, 50));
    schedule(&fx, "muoi-phut", "*/10 * * * *", 2.0, "30s");
    fx.start();
    fx.run_until(next_day(11, 0, 5)).await;
    fx.step(-Duration::days(1)).await;
    assert_eq!(fx.status().await.clock_step.map(|s| s.by_ms), Some(-86_400_000));
    fx.jump_to(local(11, 9, 50)).await;
    fx.run_until(local(11, 10, 5)).await;
    let records = fx.wait_records(2).await;
    assert_eq!(records.len(), 2, "a step back writes nothing by itself");
    let first = find(&records, local(11, 10, 0));
    assert_eq!(first[0].entry.started, Some(local(11, 10, 0)));
    assert_eq!(first_sound_after(&fx, local(11, 9, 55)), local(11, 10, 0));
    // A day later the instant already recorded is not recorded (nor aired) again.
    fx.jump_to(next_day(10, 59, 50)).await;
    fx.run_until(next_day(11, 0, 5)).await;
    let records = fx.records();
    assert_eq!(find(&records, next_day(11, 0, 0)).len(), 1);
    let mut keys: Vec<_> = records.iter().map(|r| (&r.entry.item_id, r.entry.planned)).collect();
    keys.sort();
    keys.dedup();
    assert_eq!(keys.len(), records.len(), "never two records for one planned instant");
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_step_in_the_middle_of_an_item_lets_it_finish_and_plans_the_rest_anew() {
    let mut fx = Fixture::new(local(9, 59, 50));
    schedule(&fx, "muoi-phut", "*/10 * * * *", 20.0, "30s");
    fx.start();
    fx.run_until(local(10, 0, 10)).await;
    fx.step(Duration::hours(1)).await;
    fx.run_until(local(11, 10, 25)).await;
    let records = fx.wait_records(8).await;
    let first = &find(&records, local(10, 0, 0))[0].entry;
    // It kept sounding through the step, to its end: 20 s heard.
    assert_eq!(first.outcome, Outcome::Played);
    assert_eq!(first.played_secs, Some(20.0));
    let stepped = with_reason(&records, "clock stepped forward by 1h 0m 0s");
    let planned: Vec<_> = stepped.iter().map(|r| r.entry.planned).collect();
    assert_eq!(planned, (1..6).map(|m| local(10, m * 10, 0)).collect::<Vec<_>>());
    // 11:00 came due (in new time) while the first item still sounded: late, once it ended.
    let eleven = &find(&records, local(11, 0, 0))[0].entry;
    assert_eq!(eleven.outcome, Outcome::Late);
    let started = eleven.started.expect("started");
    assert!(
        started >= local(11, 0, 20) && started < local(11, 0, 21),
        "starts as the first item ends (11:00:20 in new time): {started}"
    );
    let next = &find(&records, local(11, 10, 0))[0].entry;
    assert_eq!(next.started, Some(local(11, 10, 0)));
    assert_eq!(first_sound_after(&fx, local(11, 5, 0)), local(11, 10, 0));
    assert_eq!(records.len(), 8);
    fx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_ledger_written_by_a_far_future_or_past_clock_is_bounded() {
    // The previous run's clock was 56 years behind (1970): its horizon is far in the past.
    let mut fx = Fixture::new(Utc.with_ymd_and_hms(1970, 1, 1, 0, 0, 0).unwrap());
    schedule(&fx, "moi-phut", "* * * * *", 2.0, "30s");
    fx.start();
    fx.run_until(Utc.with_ymd_and_hms(1970, 1, 1, 0, 1, 5).unwrap()).await;
    fx.kill().await;
    fx.clock.set(local(10, 0, 10));
    fx.start();
    fx.run_until(local(10, 1, 5)).await;
    let records = fx.wait_records(10_000).await;
    assert!(records.len() < 10_200, "{} records", records.len());
    let summary: Vec<_> = records.iter().filter(|r| r.entry.item_id == SUMMARY_ITEM).collect();
    assert_eq!(summary.len(), 1);
    let detail = summary[0].entry.reason.clone().unwrap_or_default();
    assert!(detail.ends_with("not recorded one by one: station was not running"), "{detail}");
    assert_eq!(find(&records, local(10, 1, 0))[0].entry.started, Some(local(10, 1, 0)));
    fx.stop().await;

    // Then the clock goes back to 1970 again (no battery): the ledger is in its future.
    // Nothing is accounted, nothing is scanned, and the next play is on time.
    let before = fx.records().len();
    let mut fx2 = Fixture::new(Utc.with_ymd_and_hms(1970, 1, 1, 0, 10, 50).unwrap());
    fx2.config = fx.config.clone();
    fx2.start();
    fx2.run_until(Utc.with_ymd_and_hms(1970, 1, 1, 0, 11, 5).unwrap()).await;
    let records = fx2.wait_records(before + 1).await;
    assert_eq!(records.len(), before + 1, "only the 00:11 play of this run");
    let eleven = Utc.with_ymd_and_hms(1970, 1, 1, 0, 11, 0).unwrap();
    assert_eq!(find(&records, eleven)[0].entry.started, Some(eleven));
    fx2.stop().await;
}
