//! An urgent bulletin across central replicas: push → audio handed to the player at
//! every simulated station, with central in processes of their own (`loa central`),
//! on PostgreSQL with two replicas (half the stations streaming from each, the push
//! through the first: the others hear of it by `LISTEN/NOTIFY`) and, for comparison, on
//! SQLite with one. Each simulated station is a real bulletin receiver in this process
//! (its own HTTP client, event stream, replay store and audio cache), as in the
//! `bulletin` benchmark.
//!
//! Run with `cargo bench --bench replicas`. `LOA_BENCH_STATIONS=N` sets the fleet
//! (default 1,000), `LOA_BENCH_STORE=sqlite|postgres` runs one store,
//! `LOA_BENCH_AUDIO_SECS=S` the bulletin's length (default 7.5: a 16-bit mono WAV of
//! 240 KB, every byte of which each station downloads and checks; a shorter one shows
//! what central's fan-out costs apart from the bytes). PostgreSQL is
//! `LOA_TEST_DATABASE_URL`, else the throwaway server of scripts/pg-test.sh.

use std::sync::Arc;
use std::time::{Duration, Instant};

use loa::central;
use loa::clock::{SharedClock, SystemClock};
use loa::station::bulletins::{Mode, Receiver, ReceiverConfig};
use loa::station::sync::{Backoff, SyncConfig};
use loa::store::Station;

#[path = "support/central_process.rs"]
mod central_process;
#[path = "support/push.rs"]
mod push;

/// The bulletin's length in seconds (`LOA_BENCH_AUDIO_SECS`, default 7.5).
fn audio_secs() -> f64 {
    std::env::var("LOA_BENCH_AUDIO_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .filter(|s: &f64| s.is_finite() && *s > 0.0 && *s <= 600.0)
        .unwrap_or(7.5)
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[idx]
}

/// The event streams open at a replica, from its `/metrics`.
async fn streams_open(http: &reqwest::Client, url: &str, admin: &str) -> usize {
    let Ok(response) = http.get(format!("{url}/metrics")).bearer_auth(admin).send().await else {
        return 0;
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("loa_event_streams_open "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Per replica the stations stream from: latencies from the push to the signed bulletin
/// received, and to the audio handed to the player; each sorted.
type Latencies = Vec<(Vec<Duration>, Vec<Duration>)>;

async fn run(stations: usize, database_url: Option<&str>) -> Latencies {
    let dir = tempfile::tempdir().expect("temp dir");
    let station_disk =
        tempfile::tempdir_in("/dev/shm").unwrap_or_else(|_| tempfile::tempdir().expect("dir"));
    let replicas = if database_url.is_some() { 2 } else { 1 };
    let data: Vec<_> = (0..replicas).map(|r| dir.path().join(format!("replica-{r}"))).collect();
    let init = central::init_with(&data[0], database_url, None).expect("init");
    for other in &data[1..] {
        std::fs::create_dir_all(other).expect("replica dir");
        std::fs::copy(data[0].join(central::KEY_FILE), other.join(central::KEY_FILE)).expect("key");
    }
    let key = loa::signing::ProvinceKey::load_file(&data[0].join(central::KEY_FILE)).expect("key");
    let mut tokens = Vec::with_capacity(stations);
    {
        let store = central::open_store(&data[0], database_url, None).expect("store");
        for n in 0..stations {
            let id = format!("xa-{n:05}");
            let station = Station { id: id.clone(), name: id.clone(), district: "bench".into() };
            tokens.push((id, central::add_station(store.as_ref(), &station).expect("station")));
        }
    }
    let centrals: Vec<_> = data
        .iter()
        .enumerate()
        .map(|(r, d)| central_process::start(dir.path(), &format!("replica-{r}"), d, database_url))
        .collect();
    let http = reqwest::Client::new();
    let audio = loa::testing::wav_bytes(audio_secs(), 440.0, 0.3);
    let uploaded: loa::protocol::AudioInfo = http
        .put(format!("{}/api/v1/audio?title=bao", centrals[0].url))
        .bearer_auth(&init.admin_token)
        .body(audio)
        .send()
        .await
        .expect("upload")
        .json()
        .await
        .expect("upload answer");

    let urls: Vec<String> = centrals.iter().map(|c| c.url.clone()).collect();
    let fleet: Vec<(usize, String, String)> =
        tokens.iter().enumerate().map(|(n, (id, token))| (n, id.clone(), token.clone())).collect();
    let (tx, mut ready) = tokio::sync::mpsc::unbounded_channel::<Arrival>();
    let (quit, _) = tokio::sync::broadcast::channel::<()>(1);
    let mut tasks = Vec::new();
    let mut workers = Vec::new();
    if stations <= PER_PROCESS {
        tasks = spawn_receivers(&fleet, &urls, &key.public_hex(), station_disk.path(), &tx, &quit);
    } else {
        // Past one process's open-file limit: worker processes, each a share of the fleet.
        for (w, share) in fleet.chunks(PER_PROCESS).enumerate() {
            let spec = dir.path().join(format!("worker-{w}.json"));
            let body = (&urls, key.public_hex(), station_disk.path(), share);
            std::fs::write(&spec, serde_json::to_vec(&body).expect("spec")).expect("worker spec");
            workers.push(start_worker(&spec, tx.clone()));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        let mut open = 0;
        for c in &centrals {
            open += streams_open(&http, &c.url, &init.admin_token).await;
        }
        if open >= stations {
            break;
        }
        assert!(Instant::now() < deadline, "only {open} of {stations} streams connected");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let mut pids: Vec<(String, Vec<u32>)> = centrals
        .iter()
        .enumerate()
        .map(|(r, c)| (format!("central replica {r}"), vec![c.pid()]))
        .collect();
    let stations_in: Vec<u32> = if workers.is_empty() {
        vec![std::process::id()]
    } else {
        workers.iter().map(|w| w.0.id()).collect()
    };
    pids.push(("the simulated stations".into(), stations_in));
    let cpu_before = cpu::Usage::now(&pids);
    let pushed =
        push::emergency_to_all(&http, &centrals[0].url, &init.admin_token, &uploaded.sha256).await;
    let since_push = |at: chrono::DateTime<chrono::Utc>| {
        Duration::from_micros((at - pushed.issued_at).num_microseconds().unwrap_or(0).max(0) as u64)
    };
    let mut per_replica: Latencies = vec![(Vec::new(), Vec::new()); replicas];
    for _ in 0..stations {
        let got = tokio::time::timeout(Duration::from_secs(300), ready.recv())
            .await
            .expect("every station verified the bulletin in time")
            .expect("channel open");
        assert_eq!(got.id, pushed.id);
        let (received, handed) = &mut per_replica[got.n % replicas];
        received.push(since_push(got.received_at));
        handed.push(since_push(got.verified_at));
    }
    println!("{}", cpu::Usage::now(&pids).since(&cpu_before));
    let _ = quit.send(());
    for t in tasks {
        let _ = t.await;
    }
    drop(workers);
    for (received, handed) in &mut per_replica {
        received.sort();
        handed.sort();
    }
    per_replica
}

/// Where the CPU went during a fan-out: each process (central replicas, the simulated
/// stations), PostgreSQL's server processes, and the machine as a whole. Tells whether a
/// slow fan-out was the machine's cores being full or something waiting.
mod cpu {
    use std::time::Instant;

    /// CPU seconds (user + system) of process `pid`'s threads so far, from /proc.
    fn process_secs(pid: u32) -> f64 {
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { return 0.0 };
        // The fields after the command name, which is in parentheses and may hold spaces.
        let Some(rest) = stat.rsplit_once(") ").map(|r| r.1) else { return 0.0 };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok()).unwrap_or(0.0);
        (ticks(11) + ticks(12)) / ticks_per_sec()
    }

    fn ticks_per_sec() -> f64 {
        // SAFETY: sysconf reads a constant of the system.
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
        if ticks > 0 { ticks as f64 } else { 100.0 }
    }

    /// CPU seconds of every process whose command is `postgres` (the server and its
    /// backends alive now).
    fn postgres_secs() -> f64 {
        let Ok(entries) = std::fs::read_dir("/proc") else { return 0.0 };
        entries
            .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read_to_string(format!("/proc/{pid}/comm"))
                    .is_ok_and(|c| c.trim() == "postgres")
            })
            .map(process_secs)
            .sum()
    }

    /// The machine's busy and total CPU seconds so far (all cores), from /proc/stat.
    fn machine_secs() -> (f64, f64) {
        let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
        let ticks: Vec<f64> = stat
            .lines()
            .next()
            .unwrap_or_default()
            .split_whitespace()
            .skip(1)
            .filter_map(|t| t.parse().ok())
            .collect();
        let total: f64 = ticks.iter().sum();
        // idle and iowait are the 4th and 5th.
        let idle = ticks.get(3).copied().unwrap_or(0.0) + ticks.get(4).copied().unwrap_or(0.0);
        ((total - idle) / ticks_per_sec(), total / ticks_per_sec())
    }

    pub struct Usage {
        at: Instant,
        processes: Vec<(String, f64)>,
        postgres: f64,
        machine: (f64, f64),
    }

    impl Usage {
        pub fn now(named: &[(String, Vec<u32>)]) -> Self {
            Usage {
                at: Instant::now(),
                processes: named
                    .iter()
                    .map(|(name, pids)| (name.clone(), pids.iter().map(|&p| process_secs(p)).sum()))
                    .collect(),
                postgres: postgres_secs(),
                machine: machine_secs(),
            }
        }

        /// What was used between `before` and this, as one line.
        pub fn since(&self, before: &Usage) -> String {
            let mut parts: Vec<String> = self
                .processes
                .iter()
                .zip(&before.processes)
                .map(|((name, now), (_, then))| format!("{name} {:.1} s", now - then))
                .collect();
            if self.postgres > 0.0 {
                parts.push(format!("PostgreSQL {:.1} s", self.postgres - before.postgres));
            }
            let busy = self.machine.0 - before.machine.0;
            let total = self.machine.1 - before.machine.1;
            format!(
                "  CPU from the push to the last hand-over ({:.1} s): {}; the machine was busy {busy:.1} of {total:.1} CPU-s",
                self.at.duration_since(before.at).as_secs_f64(),
                parts.join(", ")
            )
        }
    }
}

/// Ten thousand simulated stations hold tens of thousands of files and sockets (an
/// event stream, a replay store, downloads) in this one process and their centrals:
/// raise the open-file limit as far as this user may (root: 1 << 20).
fn raise_open_files() {
    // SAFETY: getrlimit/setrlimit only read and write the struct given.
    unsafe {
        let mut limit: libc::rlimit = std::mem::zeroed();
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return;
        }
        let wanted =
            if libc::geteuid() == 0 { limit.rlim_max.max(1 << 20) } else { limit.rlim_max };
        let raised = libc::rlimit { rlim_cur: wanted, rlim_max: wanted };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) != 0 {
            let at_most = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            libc::setrlimit(libc::RLIMIT_NOFILE, &at_most);
        }
    }
}

/// One simulated station's bulletin, handed to its player.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct Arrival {
    /// The station's number (`xa-NNNNN`): which replica it streams from.
    n: usize,
    id: String,
    received_at: chrono::DateTime<chrono::Utc>,
    verified_at: chrono::DateTime<chrono::Utc>,
}

/// Simulated stations per process: each holds about four files and sockets, and this
/// machine allows a process 20,000.
const PER_PROCESS: usize = 3000;

/// Receivers for `fleet` (number, id, token), station `n` on `urls[n % urls.len()]`;
/// each arrival sent to `tx`.
fn spawn_receivers(
    fleet: &[(usize, String, String)],
    urls: &[String],
    key_hex: &str,
    disk: &std::path::Path,
    tx: &tokio::sync::mpsc::UnboundedSender<Arrival>,
    quit: &tokio::sync::broadcast::Sender<()>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let key = loa::signing::PublicKey::from_hex(key_hex).expect("province key");
    let clock: SharedClock = Arc::new(SystemClock);
    let mut tasks = Vec::new();
    for (n, id, token) in fleet {
        let url = &urls[n % urls.len()];
        let sync = SyncConfig::new(url, token, id, key, disk.join(id));
        let config = ReceiverConfig {
            sync,
            mode: Mode::Stream,
            backoff: Backoff { base: Duration::from_millis(100), max: Duration::from_secs(2) },
        };
        let (ready_tx, mut ready_rx) = tokio::sync::mpsc::unbounded_channel();
        let receiver =
            Receiver::new(config, clock.clone(), Arc::new(loa::testing::ChannelAirwaves(ready_tx)))
                .expect("receiver");
        let (tx, n) = (tx.clone(), *n);
        tokio::spawn(async move {
            while let Some(got) = ready_rx.recv().await {
                let arrival = Arrival {
                    n,
                    id: got.doc.id.clone(),
                    received_at: got.received_at,
                    verified_at: got.verified_at,
                };
                if tx.send(arrival).is_err() {
                    return;
                }
            }
        });
        let mut quit = quit.subscribe();
        tasks.push(tokio::spawn(receiver.run(None, async move {
            let _ = quit.recv().await;
        })));
    }
    tasks
}

/// A worker process of this benchmark running a share of the fleet; its arrivals (one
/// JSON line each on its stdout) go to `tx`. Killed on drop.
struct Worker(std::process::Child);

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_worker(spec: &std::path::Path, tx: tokio::sync::mpsc::UnboundedSender<Arrival>) -> Worker {
    use std::io::BufRead;
    let mut child = std::process::Command::new(std::env::current_exe().expect("this benchmark"))
        .arg("--worker")
        .arg(spec)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("start a worker");
    let stdout = child.stdout.take().expect("stdout");
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Ok(arrival) = serde_json::from_str::<Arrival>(&line)
                && tx.send(arrival).is_err()
            {
                return;
            }
        }
    });
    Worker(child)
}

/// `--worker SPEC`: runs the receivers SPEC lists, printing each arrival, until killed.
fn worker(spec: &std::path::Path) {
    type Spec = (Vec<String>, String, std::path::PathBuf, Vec<(usize, String, String)>);
    let (urls, key, disk, fleet): Spec =
        serde_json::from_slice(&std::fs::read(spec).expect("spec")).expect("spec json");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        let (quit, _) = tokio::sync::broadcast::channel::<()>(1);
        let _tasks = spawn_receivers(&fleet, &urls, &key, &disk, &tx, &quit);
        while let Some(arrival) = rx.recv().await {
            println!("{}", serde_json::to_string(&arrival).expect("json"));
        }
    });
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    raise_open_files();
    let args: Vec<String> = std::env::args().collect();
    if let Some(at) = args.iter().position(|a| a == "--worker") {
        worker(std::path::Path::new(&args[at + 1]));
        return;
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let stations: usize = std::env::var("LOA_BENCH_STATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if std::env::args().any(|a| a == "--bench") { 1000 } else { 1 });
    let only = std::env::var("LOA_BENCH_STORE").unwrap_or_default();
    let bytes = loa::testing::wav_bytes(audio_secs(), 440.0, 0.3).len();
    println!(
        "bulletin push → audio handed to the player, central in its own process(es); \
         the bulletin: {} s, {bytes} bytes",
        audio_secs()
    );
    let line = |what: &str, l: &[Duration]| {
        println!(
            "  {what}: p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
            percentile(l, 0.50).as_secs_f64() * 1000.0,
            percentile(l, 0.99).as_secs_f64() * 1000.0,
            l.last().map_or(0.0, |d| d.as_secs_f64() * 1000.0),
        );
    };
    let report = |store: &str, per_replica: Latencies| {
        let mut all: Vec<Duration> = per_replica.iter().flat_map(|r| r.1.clone()).collect();
        all.sort();
        println!("{stations} stations, {store}:");
        line("handed to the player, all stations      ", &all);
        for (r, (received, handed)) in per_replica.iter().enumerate() {
            let via = if r == 0 { "pushed here" } else { "pushed elsewhere" };
            line(&format!("replica {r} ({via:16}) bulletin received"), received);
            line(&format!("replica {r} ({via:16}) handed          "), handed);
        }
    };
    if only != "postgres" {
        report("SQLite, 1 replica", runtime.block_on(run(stations, None)));
    }
    if only != "sqlite" {
        let database = loa::testing::database::TestDatabase::new();
        report("PostgreSQL, 2 replicas", runtime.block_on(run(stations, Some(&database.url))));
    }
}
