//! Test and benchmark helpers that need no hardware: a fault-injecting TCP proxy that
//! cuts connections mid-transfer and delays them, and generated WAV audio. Compiled into
//! the library so integration tests and `benches/` share them; production code never
//! calls them.
//!
//! [`database`]: a fresh PostgreSQL database per test (the store contract on PostgreSQL).

pub mod database;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// A mono 16-bit 16 kHz WAV file of a sine tone, `seconds` long, as bytes.
pub fn wav_bytes(seconds: f64, frequency: f64, amplitude: f64) -> Vec<u8> {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 16_000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut cursor = std::io::Cursor::new(Vec::new());
    // Writing to memory cannot fail for IO reasons; hound only errors on bad specs,
    // and this spec is fixed.
    if let Ok(mut writer) = hound::WavWriter::new(&mut cursor, spec) {
        let frames = (seconds * 16_000.0) as usize;
        for n in 0..frames {
            let t = n as f64 / 16_000.0;
            let v = (t * frequency * std::f64::consts::TAU).sin() * amplitude;
            let _ = writer.write_sample((v * f64::from(i16::MAX)) as i16);
        }
        let _ = writer.finalize();
    }
    cursor.into_inner()
}

/// Waits until `ready` holds, looking every 20 ms; panics after `within`. For state a
/// test cannot be told about (a count in a registry), never for a fixed sleep.
pub async fn wait_until(within: Duration, mut ready: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + within;
    while !ready() {
        assert!(tokio::time::Instant::now() < deadline, "condition not met within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// How the proxy misbehaves.
#[derive(Debug, Clone)]
pub struct Faults {
    /// Cut each of the first `cuts` connections after it has carried this many bytes
    /// from the server to the client.
    pub cut_after_bytes: u64,
    pub cuts: u64,
    /// Pause this long before forwarding each chunk from the server.
    pub delay: Duration,
}

/// A TCP proxy on 127.0.0.1 between a client and `upstream`, counting every byte it
/// forwards from server to client.
pub struct FaultyProxy {
    pub addr: SocketAddr,
    downstream_bytes: Arc<AtomicU64>,
    cuts_done: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl FaultyProxy {
    /// Starts the proxy; it runs until dropped.
    pub async fn start(upstream: SocketAddr, faults: Faults) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let downstream_bytes = Arc::new(AtomicU64::new(0));
        let cuts_done = Arc::new(AtomicU64::new(0));
        let (bytes, cuts) = (downstream_bytes.clone(), cuts_done.clone());
        let task = tokio::spawn(async move {
            let mut connections: u64 = 0;
            while let Ok((client, _)) = listener.accept().await {
                let cut = connections < faults.cuts;
                connections += 1;
                let (bytes, cuts, faults) = (bytes.clone(), cuts.clone(), faults.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(upstream).await else { return };
                    let limit = cut.then_some(faults.cut_after_bytes);
                    if pump(client, server, limit, faults.delay, &bytes).await {
                        cuts.fetch_add(1, Ordering::SeqCst);
                    }
                });
            }
        });
        Ok(Self { addr, downstream_bytes, cuts_done, task })
    }

    /// Bytes forwarded from the server to clients so far (headers included).
    pub fn downstream_bytes(&self) -> u64 {
        self.downstream_bytes.load(Ordering::SeqCst)
    }

    /// How many connections the proxy cut mid-transfer.
    pub fn cuts_done(&self) -> u64 {
        self.cuts_done.load(Ordering::SeqCst)
    }
}

impl Drop for FaultyProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Forwards both ways; returns true if it cut the connection at `limit`.
async fn pump(
    client: TcpStream,
    server: TcpStream,
    limit: Option<u64>,
    delay: Duration,
    counter: &AtomicU64,
) -> bool {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let upstream = tokio::spawn(async move {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    });
    let mut sent: u64 = 0;
    let mut buffer = vec![0u8; 16 * 1024];
    let mut was_cut = false;
    while let Ok(n) = server_read.read(&mut buffer).await {
        if n == 0 {
            break;
        }
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        let mut chunk = &buffer[..n];
        if let Some(limit) = limit
            && sent + n as u64 >= limit
        {
            chunk = &buffer[..(limit.saturating_sub(sent)) as usize];
            was_cut = true;
        }
        if client_write.write_all(chunk).await.is_err() {
            break;
        }
        sent += chunk.len() as u64;
        counter.fetch_add(chunk.len() as u64, Ordering::SeqCst);
        if was_cut {
            break;
        }
    }
    upstream.abort();
    let _ = client_write.shutdown().await;
    was_cut
}

/// The bulletin receiver's [`Airwaves`](crate::station::bulletins::Airwaves) as a
/// channel: each bulletin the real receiver would put on air arrives here, so tests and
/// the benchmark watch the production path without a daemon.
pub struct ChannelAirwaves(
    pub tokio::sync::mpsc::UnboundedSender<crate::station::bulletins::Ready>,
);

impl crate::station::bulletins::Airwaves for ChannelAirwaves {
    fn air(&self, airing: crate::station::bulletins::Airing) -> bool {
        self.0.send(airing.ready).is_ok()
    }

    fn cancel(&self, _id: &str) -> bool {
        true
    }

    fn record(&self, _entry: crate::protocol::Entry) -> bool {
        true
    }
}
