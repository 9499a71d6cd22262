//! The relay and live tests' rig: a real central and station wired together, and the
//! station's WAV air-check read back as tones and their onsets.

use std::path::Path;
use std::time::Duration;

use crate::support::process::{
    Proc, Province, add_station, central_init, command, loa, remote, text,
};
use crate::support::wait;

/// An air-check read back: channel 0 as samples, and its rate.
pub struct AirCheck {
    pub rate: u32,
    pub samples: Vec<i16>,
}

impl AirCheck {
    pub fn read(path: &Path) -> Self {
        let reader = hound::WavReader::open(path).expect("open the air-check");
        let spec = reader.spec();
        let channels = spec.channels as usize;
        let samples: Vec<i16> = reader
            .into_samples::<i16>()
            .map_while(Result::ok)
            .enumerate()
            .filter(|(i, _)| i % channels == 0)
            .map(|(_, s)| s)
            .collect();
        Self { rate: spec.sample_rate, samples }
    }

    /// The dominant tone of each 10 ms window: 0 for silence, else its frequency from
    /// the zero crossings (±50 Hz).
    pub fn tones(&self) -> Vec<u32> {
        let window = (self.rate / 100) as usize;
        self.samples
            .chunks(window)
            .map(|w| {
                let loud = w.iter().map(|&s| i32::from(s).abs()).max().unwrap_or(0);
                if loud < 1000 {
                    return 0;
                }
                let crossings = w.windows(2).filter(|p| (p[0] < 0) != (p[1] < 0)).count();
                (crossings as u32) * 100 / 2
            })
            .collect()
    }

    /// The first frame at or after `from` whose sample is louder than `level`.
    pub fn onset(&self, from: usize, level: i16) -> Option<usize> {
        self.samples[from.min(self.samples.len())..]
            .iter()
            .position(|s| s.saturating_abs() > level)
            .map(|i| i + from)
    }

    /// Runs of the same tone class in `tones()`: (class, first window, windows).
    /// `class` maps a frequency to a name (or `None` to merge with its neighbours).
    pub fn runs(&self, class: impl Fn(u32) -> &'static str) -> Vec<(&'static str, usize, usize)> {
        let mut runs: Vec<(&'static str, usize, usize)> = Vec::new();
        for (i, t) in self.tones().into_iter().enumerate() {
            let c = class(t);
            match runs.last_mut() {
                Some(last) if last.0 == c => last.2 += 1,
                _ => runs.push((c, i, 1)),
            }
        }
        runs
    }
}

/// A real `loa central` (its `relay_hosts` allowing 127.0.0.1) and one real `loa station`
/// ("tri-ton") writing the WAV air-check `tri-ton/air.wav`, connected to each other.
pub struct Rig {
    /// Held so central stops with the rig.
    _central: Proc,
    pub url: String,
    pub admin: String,
    pub station: Proc,
    /// The station's directory (station.toml, air.wav, data/).
    pub root: std::path::PathBuf,
}

impl Rig {
    pub fn start(work: &Path) -> Self {
        Self::start_with(work, &[])
    }

    /// As [`Rig::start`], central running with `env` set (debug-build test hooks).
    pub fn start_with(work: &Path, env: &[(&str, &str)]) -> Self {
        let data = work.join("central");
        let data_s = data.to_str().expect("utf-8 path");
        let Province { key, admin, .. } = central_init(&data);
        let token = add_station(&data, "tri-ton", "Tri Tôn", "Tri Tôn", &[]).token;
        let config = work.join("central.toml");
        std::fs::write(
            &config,
            format!(
                "listen = \"127.0.0.1:0\"\ndata_dir = {data_s:?}\nrelay_hosts = [\"127.0.0.1\"]\n"
            ),
        )
        .expect("central.toml");
        let mut command = command();
        command.args(["central", "--config", config.to_str().expect("utf-8")]);
        for (k, v) in env {
            command.env(k, v);
        }
        let central = Proc::start(&mut command);
        let url = central.listening_url(Duration::from_secs(60));

        let root = work.join("tri-ton");
        std::fs::create_dir_all(root.join("local")).expect("station dir");
        let station_toml = root.join("station.toml");
        std::fs::write(
            &station_toml,
            format!(
                "station_id = \"tri-ton\"\ncentral_url = \"{url}\"\ntoken = \"{token}\"\nprovince_key = \"{key}\"\ndata_dir = \"data\"\nlocal_schedules = \"local\"\nheartbeat_secs = 1\n[audio]\nsink = \"wav\"\nwav_path = \"air.wav\"\n"
            ),
        )
        .expect("station.toml");
        let station = Proc::spawn(&["station", "--config", station_toml.to_str().expect("utf-8")]);
        station.wait_for(&["bulletin stream connected"], Duration::from_secs(60));
        Self { _central: central, url, admin, station, root }
    }

    /// `loa schedule load SCHEDULE --to all` as the admin; it must succeed.
    #[track_caller]
    pub fn load(&self, schedule: &Path) {
        let out = remote(
            &self.url,
            &self.admin,
            &["schedule", "load", schedule.to_str().expect("utf-8"), "--to", "all"],
        );
        assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    }

    /// The station's ledger as `loa log --data-dir … --format json` prints it.
    pub fn ledger(&self) -> Vec<loa::protocol::Record> {
        let data = self.root.join("data");
        let out = loa(&["log", "--data-dir", data.to_str().expect("utf-8"), "--format", "json"]);
        if !out.status.success() {
            return Vec::new();
        }
        serde_json::from_slice(&out.stdout).unwrap_or_default()
    }

    /// The air-check once it holds `secs` past its first sample louder than 2000.
    pub fn air_check_until(&self, secs: f64) -> AirCheck {
        wait::until("the air-check", Duration::from_secs(30), || {
            let air = AirCheck::read(&self.root.join("air.wav"));
            let first = air.onset(0, 2000)?;
            let need = first + (secs * f64::from(air.rate)) as usize;
            (air.samples.len() > need).then_some(air)
        })
    }
}
