//! Library gains follow central's settings across restarts, with the real binary: a file
//! uploaded at one loudness target gets the new target's gain after central restarts
//! with another, and a file stored without its true peak (as an older central left it,
//! with a loudness-only gain) is measured again at start and its gain made safe.

use std::path::Path;
use std::time::Duration;

use crate::support::process::{CentralProc, central_init, remote, text};
use crate::support::wait;

/// `loa audio add FILE` against `url`; the gain it prints for the file, dB.
fn add_and_read_gain(url: &str, token: &str, file: &Path) -> f64 {
    let out = remote(url, token, &["audio", "add", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let printed = text(&out.stdout);
    let gain = printed
        .split("gain ")
        .nth(1)
        .and_then(|rest| rest.split(" dB").next())
        .unwrap_or_else(|| panic!("no gain in {printed:?}"));
    gain.parse().unwrap_or_else(|e| panic!("gain {gain:?}: {e}"))
}

/// `loa central --config CONFIG` on a port the system picks, its log appended to `log`.
fn start(config: &Path, log: &Path) -> CentralProc {
    let mut central =
        CentralProc::with_args(&["central", "--config", config.to_str().unwrap()]).logging_to(log);
    central.start();
    central
}

fn stop(mut central: CentralProc) {
    central.kill();
}

#[test]
fn stored_gains_follow_a_new_target_and_an_old_library_is_measured_again() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("central");
    let province = central_init(&data);
    let config = dir.path().join("central.toml");
    let log = dir.path().join("central.log");
    let write_config = |target: f64| {
        std::fs::write(
            &config,
            format!(
                "data_dir = {:?}\nloudness_target_lufs = {target:.1}\n",
                data.to_str().unwrap()
            ),
        )
        .unwrap();
    };
    // A steady tone: its gain is loudness-bound at both targets (no peak in the way).
    let file = dir.path().join("ban-tin.wav");
    std::fs::write(&file, loa::testing::wav_bytes(2.0, 440.0, 0.1)).unwrap();
    let sha256 = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(std::fs::read(&file).unwrap()));

    write_config(-16.0);
    let central = start(&config, &log);
    let url = central.url.clone();
    let at_16 = add_and_read_gain(&url, &province.admin, &file);
    stop(central);

    // The province lowers its target by 7 dB.
    write_config(-23.0);
    let central = start(&config, &log);
    let url = central.url.clone();
    let at_23 = wait::until("the gain to follow the new target", Duration::from_secs(30), || {
        let gain = add_and_read_gain(&url, &province.admin, &file);
        (gain != at_16).then_some(gain)
    });
    assert!((at_16 - at_23 - 7.0).abs() < 0.11, "{at_16} dB at -16 LUFS, {at_23} dB at -23 LUFS");
    assert!(
        std::fs::read_to_string(&log).unwrap().contains("library gain"),
        "the change is logged"
    );
    stop(central);

    // As an older central stored it: no true peak on record and a gain that ignored it.
    {
        let db = rusqlite::Connection::open(data.join("central.sqlite")).unwrap();
        let changed = db
            .execute(
                "UPDATE audio SET true_peak_dbtp = NULL, gain_db = 19.0 WHERE sha256 = ?1",
                [&sha256],
            )
            .unwrap();
        assert_eq!(changed, 1);
    }
    let central = start(&config, &log);
    let url = central.url.clone();
    let measured_again =
        wait::until("the old file to be measured", Duration::from_secs(30), || {
            let gain = add_and_read_gain(&url, &province.admin, &file);
            (gain != 19.0).then_some(gain)
        });
    assert_eq!(measured_again, at_23, "measured again at the current target");
    let db = rusqlite::Connection::open(data.join("central.sqlite")).unwrap();
    let peak: Option<f64> = db
        .query_row("SELECT true_peak_dbtp FROM audio WHERE sha256 = ?1", [&sha256], |r| r.get(0))
        .unwrap();
    // A 0.1 full-scale sine peaks at -20 dBFS.
    assert!(peak.is_some_and(|p| (p + 20.0).abs() < 0.5), "true peak on record: {peak:?}");
    stop(central);
}
