//! Chaos on loopback: a real central and three real stations (separate `loa` processes,
//! wav sinks, SQLite on disk) play a provincial schedule of one-off items a few seconds
//! apart, distributed and signed by central, while the test — from a seeded random
//! generator — SIGKILLs stations and central and restarts them, routes every station
//! through a proxy that cuts and delays its connections, corrupts cached audio files and
//! pushes an emergency bulletin. Afterwards it checks the invariants:
//! - every planned item has exactly one ledger record at its station, and central holds
//!   the very same records (nothing acknowledged lost, nothing extra);
//! - both hash chains are intact;
//! - no bulletin aired in full twice at a station, and a play of it cut by a kill airs
//!   again after the restart;
//! - nothing aired whose bytes were not the audio the schedule named.
//!
//! Short by default (CI); `LOA_CHAOS_SECONDS=600` runs ten minutes of chaos,
//! `LOA_CHAOS_SEED=N` picks another seed.

#[path = "support/mod.rs"]
mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::future::ready;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use loa::protocol::Reason;
use loa::protocol::{
    AudioInfo, BulletinPriority, LoadScheduleRequest, PushBulletinRequest, PushBulletinResponse,
    Target,
};
use loa::station::ledger::{Filter, Ledger, Outcome, Record};
use loa::testing::{Faults, FaultyProxy};
use rand::{Rng, SeedableRng};

use support::process::{CentralProc, Proc, central_init, command};
use support::wait;

const STATIONS: [&str; 3] = ["xa-a", "xa-b", "xa-c"];
/// Seconds between planned items.
const SPACING: i64 = 3;

/// Central for the chaos: the first start takes a port from the system; restarts get
/// the same one back (stations' proxies point at it).
fn central(data: PathBuf, log: PathBuf) -> CentralProc {
    CentralProc::new(move || {
        let mut c = command();
        c.args(["central", "--data-dir"]).arg(&data).env("RUST_LOG", "warn");
        c
    })
    .logging_to(&log)
}

/// Starts central (or brings it back on its port); returns once it listens.
fn start_central(central: &mut CentralProc) {
    // Waiting for the child blocks: let the proxies keep running meanwhile.
    tokio::task::block_in_place(|| central.start());
}

/// A failing assertion must not leave daemons running: a `Proc` is killed on drop.
struct StationProc {
    id: &'static str,
    dir: PathBuf,
    proc: Option<Proc>,
    _proxy: FaultyProxy,
}

impl StationProc {
    fn start(&mut self) {
        let config = self.dir.join("station.toml");
        self.proc = Some(Proc::start_logged(
            command().args(["station", "--config"]).arg(config),
            &self.dir.join("station.log"),
        ));
    }

    fn kill(&mut self) {
        if let Some(proc) = self.proc.take() {
            proc.kill();
        }
    }

    fn ledger_path(&self) -> PathBuf {
        self.dir.join("data/ledger.sqlite3")
    }

    fn records(&self) -> Vec<Record> {
        Ledger::open_existing(&self.ledger_path())
            .and_then(|l| l.query(&Filter::default()))
            .unwrap_or_default()
    }
}

async fn central_records(
    client: &reqwest::Client,
    url: &str,
    admin: &str,
    id: &str,
) -> Vec<Record> {
    let response = client
        .get(format!("{url}/api/v1/playlog?station={id}&limit=10000"))
        .bearer_auth(admin)
        .send()
        .await;
    match response {
        Ok(r) if r.status() == 200 => r.json().await.unwrap_or_default(),
        _ => Vec::new(),
    }
}

fn at(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stations_and_central_survive_kills_cuts_and_corruption() {
    let chaos_secs: u64 =
        std::env::var("LOA_CHAOS_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(24);
    let seed: u64 =
        std::env::var("LOA_CHAOS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(20261201);
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut tmp = tempfile::tempdir().expect("tempdir");
    // LOA_CHAOS_KEEP=1 keeps the directories and logs for a post-mortem.
    tmp.disable_cleanup(std::env::var_os("LOA_CHAOS_KEEP").is_some());
    let root = tmp.path();
    let client = reqwest::Client::new();

    // Central: init, stations, start.
    let data = root.join("central");
    let province = central_init(&data);
    let (public_key, admin) = (province.key.clone(), province.admin.clone());
    let mut tokens = BTreeMap::new();
    for id in STATIONS {
        tokens.insert(id, province.add_station(id, id, "Tri Tôn"));
    }
    let mut central = central(data.clone(), root.join("central.log"));
    start_central(&mut central);
    let url = central.url.clone();
    let port = central.port;
    wait::until_async("central up", Duration::from_secs(30), || {
        ready(std::net::TcpStream::connect(("127.0.0.1", port)).ok())
    })
    .await;

    // Audio and a schedule of one-off items, from 10 s from now to the end of the chaos.
    let mut shas = Vec::new();
    for (i, freq) in [440.0, 660.0].into_iter().enumerate() {
        let response = client
            .put(format!("{url}/api/v1/audio?title=tone{i}"))
            .bearer_auth(&admin)
            .body(loa::testing::wav_bytes(1.0, freq, 0.3))
            .send()
            .await
            .expect("upload");
        assert_eq!(response.status(), 200);
        let info: AudioInfo = response.json().await.expect("audio info");
        shas.push(info.sha256);
    }
    let t0 = Utc::now().trunc_subsecs(0) + chrono::Duration::seconds(10);
    let count = (chaos_secs as i64 / SPACING).max(4);
    let mut planned: BTreeMap<(String, DateTime<Utc>), String> = BTreeMap::new();
    let mut toml = String::from("layer = \"provincial\"\n");
    for k in 0..count {
        let id = format!("muc-{k:03}");
        let when = t0 + chrono::Duration::seconds(k * SPACING);
        let file = if k % 2 == 0 { "audio/a.wav" } else { "audio/b.wav" };
        toml.push_str(&format!(
            "[[item]]\nid = \"{id}\"\ntitle = \"Mục {k}\"\naudio = \"{file}\"\nat = {}\nmax_delay = \"1s\"\n",
            at(when)
        ));
        planned.insert((id, when), shas[(k % 2) as usize].clone());
    }
    let last_planned = t0 + chrono::Duration::seconds((count - 1) * SPACING);
    let request = LoadScheduleRequest {
        origin: "provincial.toml".into(),
        source: toml,
        audio: [
            ("audio/a.wav".to_string(), shas[0].clone()),
            ("audio/b.wav".to_string(), shas[1].clone()),
        ]
        .into_iter()
        .collect(),
        to: Target::All,
    };
    let response = client
        .post(format!("{url}/api/v1/schedules"))
        .bearer_auth(&admin)
        .json(&request)
        .send()
        .await
        .expect("load");
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap_or_default());

    // Stations, each behind its own faulty proxy: every connection is cut after a
    // seeded number of bytes and every chunk delayed a little. The cut stays above the
    // largest single response (the long run's manifest, ~40 kB): a manifest does not
    // resume, so a link that always dies below its size could never deliver it.
    let upstream: std::net::SocketAddr =
        format!("127.0.0.1:{}", central.port).parse().expect("addr");
    let mut stations = Vec::new();
    for id in STATIONS {
        let faults = Faults {
            cut_after_bytes: rng.random_range(60_000..200_000),
            cuts: u64::MAX,
            delay: Duration::from_millis(rng.random_range(0..15)),
        };
        let proxy = FaultyProxy::start(upstream, faults).await.expect("proxy");
        let dir = root.join(id);
        std::fs::create_dir_all(&dir).expect("station dir");
        std::fs::write(
            dir.join("station.toml"),
            format!(
                "station_id = \"{id}\"\ndata_dir = \"data\"\ncentral_url = \"http://{}\"\n\
                 token = \"{}\"\nprovince_key = \"{public_key}\"\nheartbeat_secs = 2\n\
                 [audio]\nsink = \"wav\"\nwav_path = \"air.wav\"\n",
                proxy.addr, tokens[id]
            ),
        )
        .expect("station config");
        let mut station = StationProc { id, dir, proc: None, _proxy: proxy };
        station.start();
        stations.push(station);
    }

    // Chaos until the last item is due.
    let mut kills_station = 0;
    let mut kills_central = 0;
    let mut corruptions = 0;
    let mut bulletin: Option<String> = None;
    let chaos_end = last_planned;
    let mut down_until: Vec<Option<Instant>> = vec![None; stations.len()];
    let mut central_down_until: Option<Instant> = None;
    while Utc::now() < chaos_end {
        tokio::time::sleep(Duration::from_millis(rng.random_range(300..1500))).await;
        // Restarts that are due.
        for (i, station) in stations.iter_mut().enumerate() {
            if down_until[i].is_some_and(|t| Instant::now() >= t) {
                station.start();
                down_until[i] = None;
            }
        }
        if central_down_until.is_some_and(|t| Instant::now() >= t) {
            start_central(&mut central);
            central_down_until = None;
        }
        match rng.random_range(0..10) {
            0..=3 => {
                let i = rng.random_range(0..stations.len());
                if down_until[i].is_none() {
                    stations[i].kill();
                    kills_station += 1;
                    down_until[i] =
                        Some(Instant::now() + Duration::from_millis(rng.random_range(200..5000)));
                }
            }
            4 | 5 if central_down_until.is_none() => {
                central.kill();
                kills_central += 1;
                central_down_until =
                    Some(Instant::now() + Duration::from_millis(rng.random_range(200..4000)));
            }
            6 | 7 => {
                // Flip one byte of a cached file (same length, still decodes).
                let station = &stations[rng.random_range(0..stations.len())];
                let sha = &shas[rng.random_range(0..shas.len())];
                let path = station.dir.join("data/audio").join(sha);
                if let Ok(mut bytes) = std::fs::read(&path) {
                    let at = rng.random_range(100..bytes.len());
                    bytes[at] ^= 0x5a;
                    if std::fs::write(&path, &bytes).is_ok() {
                        corruptions += 1;
                    }
                }
            }
            8 if bulletin.is_none() && central_down_until.is_none() => {
                let push = PushBulletinRequest {
                    title: Some("Lũ khẩn cấp".into()),
                    audio_sha256: Some(shas[0].clone()),
                    text: None,
                    voice: None,
                    to: Target::All,
                    priority: BulletinPriority::Emergency,
                    repeat: 0,
                    interval_secs: 0,
                    expires_secs: 600,
                    tone: false,
                };
                if let Ok(r) = client
                    .post(format!("{url}/api/v1/bulletins"))
                    .bearer_auth(&admin)
                    .json(&push)
                    .send()
                    .await
                    && r.status() == 200
                    && let Ok(pushed) = r.json::<PushBulletinResponse>().await
                {
                    bulletin = Some(pushed.id);
                }
            }
            _ => {}
        }
    }

    // Everyone back up; wait until every item is decided and central holds everything.
    for (i, station) in stations.iter_mut().enumerate() {
        if down_until[i].take().is_some() {
            station.start();
        }
    }
    // The ledgers are read from here on: only once each station has opened its own.
    for station in &stations {
        let proc = station.proc.as_ref().expect("every station runs");
        tokio::task::block_in_place(|| proc.wait_station_started());
    }
    if central_down_until.take().is_some() {
        start_central(&mut central);
    }
    let settle = last_planned + chrono::Duration::seconds(4);
    wait::until_async("the last item to be decided", Duration::from_secs(60), || {
        ready(Utc::now() > settle)
    })
    .await;
    // Settled: every planned item decided at every station, no bulletin play left cut,
    // and central holding every record, acknowledged. What central holds, per station.
    let (stations_ref, planned_ref, bulletin_ref) = (&stations, &planned, &bulletin);
    let (client_ref, url_ref, admin_ref) = (&client, &url, &admin);
    let settled = wait::within_async(Duration::from_secs(90), || async move {
        let mut done = true;
        let mut at_central: BTreeMap<&str, Vec<Record>> = BTreeMap::new();
        for station in stations_ref {
            let local = station.records();
            let theirs = central_records(client_ref, url_ref, admin_ref, station.id).await;
            let complete = planned_ref.keys().all(|(id, when)| {
                local.iter().any(|r| &r.entry.item_id == id && r.entry.planned == *when)
            });
            // A bulletin play cut by a kill airs again after the restart.
            let cut_last = bulletin_ref.as_deref().is_some_and(|b| {
                local
                    .iter()
                    .filter(|r| r.entry.item_id == b)
                    .max_by_key(|r| r.seq)
                    .is_some_and(|r| r.entry.reason() == Some(Reason::Interrupted))
            });
            if !complete
                || cut_last
                || theirs.len() != local.len()
                || local.iter().any(|r| !r.acked)
            {
                done = false;
            }
            at_central.insert(station.id, theirs);
        }
        done.then_some(at_central)
    })
    .await;
    let at_central = match settled {
        Some(at_central) => at_central,
        None => {
            let mut at_central: BTreeMap<&str, Vec<Record>> = BTreeMap::new();
            for station in &stations {
                at_central
                    .insert(station.id, central_records(&client, &url, &admin, station.id).await);
            }
            let summary: Vec<String> = stations
                .iter()
                .map(|s| {
                    let local = s.records();
                    format!(
                        "{}: {} local ({} acked), {} at central",
                        s.id,
                        local.len(),
                        local.iter().filter(|r| r.acked).count(),
                        at_central.get(s.id).map_or(0, Vec::len)
                    )
                })
                .collect();
            // The last words of each station's log, so a failure explains itself.
            let tails: Vec<String> = stations
                .iter()
                .map(|s| {
                    let log =
                        std::fs::read_to_string(s.dir.join("station.log")).unwrap_or_default();
                    let lines: Vec<&str> = log
                        .lines()
                        .filter(|l| l.contains("ERROR") || l.contains("error"))
                        .collect();
                    let tail = lines[lines.len().saturating_sub(5)..].join("\n");
                    format!("--- {} ---\n{tail}", s.id)
                })
                .collect();
            panic!(
                "not settled after 90 s (seed {seed}): {summary:?}; logs in {}\n{}",
                root.display(),
                tails.join("\n")
            );
        }
    };
    for station in &mut stations {
        station.kill();
    }
    central.kill();

    // The invariants.
    let mut records = 0;
    let mut losses = 0;
    let mut corrupt_refused = 0;
    let mut bulletin_cuts = 0;
    let mut problems = Vec::new();
    for station in &stations {
        let local = station.records();
        records += local.len();
        let id = station.id;
        // Exactly one record per planned item.
        let mut per_item: BTreeMap<(String, DateTime<Utc>), usize> = BTreeMap::new();
        for r in &local {
            *per_item.entry((r.entry.item_id.clone(), r.entry.planned)).or_default() += 1;
        }
        for key in planned.keys() {
            let n = per_item.get(key).copied().unwrap_or(0);
            if n != 1 {
                problems.push(format!("{id}: {} at {} has {n} records", key.0, key.1));
            }
        }
        for (key, n) in &per_item {
            let is_bulletin = bulletin.as_deref().is_some_and(|b| key.0.starts_with(b));
            if !planned.contains_key(key) && !is_bulletin {
                problems.push(format!("{id}: unplanned record {} at {} (x{n})", key.0, key.1));
            }
        }
        // Chains.
        match Ledger::open_existing(&station.ledger_path()).and_then(|l| l.verify()) {
            Ok(report) if report.first_break.is_none() => {}
            Ok(report) => {
                problems.push(format!("{id}: station chain breaks at {:?}", report.first_break))
            }
            Err(e) => problems.push(format!("{id}: cannot verify the station chain: {e}")),
        }
        let theirs = at_central.get(id).cloned().unwrap_or_default();
        let mine: BTreeSet<(u64, String)> = local.iter().map(|r| (r.seq, r.hash.clone())).collect();
        let held: BTreeSet<(u64, String)> =
            theirs.iter().map(|r| (r.seq, r.hash.clone())).collect();
        let lost = mine.difference(&held).count();
        losses += lost;
        if lost > 0 || held.len() != mine.len() {
            problems.push(format!(
                "{id}: central holds {} records, station {} ({lost} missing)",
                held.len(),
                mine.len()
            ));
        }
        let mut sorted = theirs.clone();
        sorted.sort_by_key(|r| r.seq);
        for (i, r) in sorted.iter().enumerate() {
            let prev = if i == 0 { None } else { Some(&sorted[i - 1]) };
            let linked = match prev {
                None => r.seq == 1,
                Some(p) => r.seq == p.seq + 1 && r.prev_hash == p.hash,
            };
            if !linked {
                problems.push(format!("{id}: central's chain breaks at seq {}", r.seq));
                break;
            }
        }
        // No bulletin aired twice, and none with other bytes than its audio's.
        if let Some(b) = &bulletin {
            for r in local.iter().filter(|r| &r.entry.item_id == b && r.entry.started.is_some()) {
                if r.entry.audio_sha256.as_deref() != Some(shas[0].as_str()) {
                    problems.push(format!("{id}: bulletin aired audio {:?}", r.entry.audio_sha256));
                }
            }
            // A play cut by a kill is recorded failed ("interrupted: station stopped")
            // and airs again from the start after the restart; what must not happen is
            // the bulletin airing in full twice, or a play starting that is neither
            // complete nor accounted for as cut.
            let plays: Vec<&Record> = local
                .iter()
                .filter(|r| &r.entry.item_id == b && r.entry.started.is_some())
                .collect();
            let complete = plays
                .iter()
                .filter(|r| matches!(r.entry.outcome, Outcome::Played | Outcome::Late))
                .count();
            let cut =
                plays.iter().filter(|r| r.entry.reason() == Some(Reason::Interrupted)).count();
            bulletin_cuts += cut;
            if complete > 1 || plays.len() > complete + cut {
                let outcomes: Vec<String> = plays
                    .iter()
                    .map(|r| format!("{:?} {:?}", r.entry.outcome, r.entry.reason))
                    .collect();
                problems.push(format!(
                    "{id}: bulletin {b} aired in full {complete} times ({})",
                    outcomes.join("; ")
                ));
            }
            // Its last record, whatever it says (a long run may see it expire after
            // the cut: then a `missed` record closes it).
            if let Some(last) = local.iter().filter(|r| &r.entry.item_id == b).max_by_key(|r| r.seq)
                && last.entry.reason() == Some(Reason::Interrupted)
            {
                problems
                    .push(format!("{id}: bulletin {b} was cut by a kill and never aired again"));
            }
        }
        // Nothing aired but the named bytes.
        for r in &local {
            let key = (r.entry.item_id.clone(), r.entry.planned);
            if let Some(expected) = planned.get(&key) {
                if r.entry.started.is_some()
                    && r.entry.audio_sha256.as_deref() != Some(expected.as_str())
                {
                    problems.push(format!(
                        "{id}: {} aired audio {:?}, expected {expected}",
                        key.0, r.entry.audio_sha256
                    ));
                }
                if r.entry.reason.as_deref().is_some_and(|s| s.starts_with("audio corrupt")) {
                    corrupt_refused += 1;
                }
            }
        }
    }
    let cuts: u64 = stations.iter().map(|s| s._proxy.cuts_done()).sum();
    println!(
        "chaos (seed {seed}, {chaos_secs} s): {} stations, {} planned items each, kills: {kills_station} station + {kills_central} central, \
         cuts: {cuts}, corruptions: {corruptions} (refused at play: {corrupt_refused}), bulletin: {}, records: {records}, losses: {losses}",
        stations.len(),
        planned.len(),
        if bulletin.is_some() {
            format!("pushed ({bulletin_cuts} plays cut by kills)")
        } else {
            "none".into()
        },
    );
    assert!(
        problems.is_empty(),
        "seed {seed}:\n{}\nlogs in {}",
        problems.join("\n"),
        root.display()
    );
    assert_eq!(losses, 0);
    assert!(kills_station + kills_central > 0, "the chaos did something");
    assert!(records >= planned.len() * stations.len());
}
