//! Central's listener: what a connection may cost before and while it is served.
//!
//! `axum::serve` sets no header read timeout and no connection cap, so a few hundred
//! idle sockets that send half a request line held central's descriptors for ever and
//! locked every station and operator out. Here:
//! - at most `max_connections` connections are open (derived from the open-file limit,
//!   which is raised at start: [`raise_open_files_limit`]); when they are all taken, the
//!   oldest connection that has not yet sent a whole request is closed to make room,
//!   so sockets that open and then dribble or say nothing cannot keep a station or an
//!   operator out; only when every connection is serving a request does a new one wait
//!   in the kernel's backlog;
//! - a TLS handshake must finish within [`HANDSHAKE_TIMEOUT`];
//! - a request's headers must arrive within [`HEADER_TIMEOUT`] of the connection opening
//!   or of the previous response (hyper's header timer, which also ends idle keep-alive
//!   connections);
//! - bodies are read by the handlers after authentication, with a size limit per route
//!   and a stall timeout ([`super::body`]);
//! - every request learns its [`Connection`] (peer address, TLS or not), so central can
//!   refuse operator and station routes over plain HTTP from another machine.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

/// How long a client may take to complete the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a client may take to send a request's headers, counted from the
/// connection's start or the end of the previous response (`header_timeout_secs` in
/// central.toml). Stations close their idle pooled connections sooner
/// (`sync::POOL_IDLE`), so central never closes one under a request a station is about
/// to send.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(20);

/// What one connection may hold.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_connections: usize,
    pub header_timeout: Duration,
}
/// How long central waits for open requests to finish when it stops.
pub const STOP_GRACE: Duration = Duration::from_secs(5);
/// Descriptors kept back from connections: the databases, the audio files being
/// served, espeak-ng, the log.
pub const RESERVED_FILES: u64 = 128;

/// The connection a request arrived on (a request extension).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Connection {
    pub peer: SocketAddr,
    pub tls: bool,
}

impl Connection {
    /// Whether the peer is this machine (IPv4 or IPv6 loopback, also IPv4-mapped).
    pub fn is_local(&self) -> bool {
        self.peer.ip().to_canonical().is_loopback()
    }
}

/// Raises the soft open-file limit to the hard one and returns it: 1,000 stations hold
/// 2,000 connections (an event stream and a long-poll each), more than the usual soft
/// limit of 1,024.
pub fn raise_open_files_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit write to and read from the struct passed, nothing else.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit { rlim_cur: limit.rlim_max, rlim_max: limit.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    limit.rlim_cur
}

/// The connection cap for `wanted` connections under an open-file limit of `files`.
pub fn connection_cap(wanted: usize, files: u64) -> usize {
    let room = files.saturating_sub(RESERVED_FILES).max(16);
    wanted.min(usize::try_from(room).unwrap_or(usize::MAX)).max(1)
}

/// Connections that have not yet sent a whole request, oldest first: the ones closed to
/// make room when every connection is taken.
#[derive(Default)]
struct Unproven {
    queue: Mutex<VecDeque<(Arc<AtomicBool>, tokio::sync::oneshot::Sender<()>)>>,
}

impl Unproven {
    /// Registers a new connection; the flag is set once it sends a request, the
    /// receiver fires when it is to be closed.
    fn register(&self) -> (Arc<AtomicBool>, tokio::sync::oneshot::Receiver<()>) {
        let proven = Arc::new(AtomicBool::new(false));
        let (tx, rx) = tokio::sync::oneshot::channel();
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        // Forget the ones that proved themselves or ended since.
        queue.retain(|(proven, tx)| !proven.load(Ordering::Relaxed) && !tx.is_closed());
        queue.push_back((proven.clone(), tx));
        (proven, rx)
    }

    /// Closes the oldest connection still without a request; false when there is none.
    fn evict_oldest(&self) -> bool {
        let mut queue = self.queue.lock().unwrap_or_else(|p| p.into_inner());
        while let Some((proven, tx)) = queue.pop_front() {
            if !proven.load(Ordering::Relaxed) && tx.send(()).is_ok() {
                return true;
            }
        }
        false
    }
}

/// Serves `router` on `listener` (TLS when `tls` is given) with at most
/// `max_connections` open, until `shutdown` resolves; then lets open requests finish for
/// [`STOP_GRACE`] and closes the rest.
pub async fn run(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: Limits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let permits = Arc::new(Semaphore::new(limits.max_connections));
    let unproven = Arc::new(Unproven::default());
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    // Out of descriptors (EMFILE) or a connection reset before accept:
                    // wait a moment rather than spin.
                    tracing::warn!("accept failed: {e}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // A place for it: free, or made by closing the oldest connection that has not
        // sent a request yet; else it waits for one to end (the rest wait in the
        // kernel's backlog meanwhile).
        let permit = match permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                if unproven.evict_oldest() {
                    tracing::debug!("every connection taken: closed the oldest without a request");
                }
                tokio::select! {
                    permit = permits.clone().acquire_owned() => match permit {
                        Ok(permit) => permit,
                        Err(_) => break,
                    },
                    () = &mut shutdown => break,
                }
            }
        };
        let (tls, router, stopping) = (tls.clone(), router.clone(), stopping.clone());
        let (proven, evicted) = unproven.register();
        connections.spawn(async move {
            tokio::select! {
                () = serve_connection(stream, peer, tls, router, limits, proven, stopping) => {}
                Ok(()) = evicted => tracing::debug!(%peer, "closed: no request while central was full"),
            }
            drop(permit);
        });
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(STOP_GRACE, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::info!(open = connections.len(), "closing the connections still open");
        connections.abort_all();
    }
    Ok(())
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    router: Router,
    limits: Limits,
    proven: Arc<AtomicBool>,
    stopping: tokio::sync::watch::Receiver<bool>,
) {
    let _ = stream.set_nodelay(true);
    match tls {
        None => {
            let info = Connection { peer, tls: false };
            http(TokioIo::new(stream), info, router, limits, proven, stopping).await;
        }
        Some(acceptor) => {
            let handshake = HANDSHAKE_TIMEOUT.min(limits.header_timeout);
            match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => {
                    let info = Connection { peer, tls: true };
                    http(TokioIo::new(stream), info, router, limits, proven, stopping).await;
                }
                Ok(Err(e)) => tracing::warn!(%peer, "tls handshake failed: {e}"),
                Err(_) => tracing::warn!(%peer, "tls handshake timed out"),
            }
        }
    }
}

async fn http<I>(
    io: TokioIo<I>,
    info: Connection,
    router: Router,
    limits: Limits,
    proven: Arc<AtomicBool>,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        proven.store(true, Ordering::Relaxed);
        request.extensions_mut().insert(info);
        let router = router.clone();
        async move { Ok::<_, Infallible>(router.oneshot(request).await.unwrap_or_else(|e| match e {})) }
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .keep_alive(true)
        .serve_connection(io, service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(e) = result {
                tracing::debug!(peer = %info.peer, "connection ended: {e}");
            }
        }
        () = async { let _ = stopping.wait_for(|stop| *stop).await; } => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_leaves_room_for_files_and_never_falls_to_zero() {
        assert_eq!(connection_cap(16_384, 1024), 896);
        assert_eq!(connection_cap(500, 1_048_576), 500);
        assert_eq!(connection_cap(500, 10), 16);
        assert_eq!(connection_cap(0, 1024), 1);
    }

    #[test]
    fn the_oldest_connection_without_a_request_is_the_one_closed() {
        let unproven = Unproven::default();
        let (first, mut first_closed) = unproven.register();
        let (_second, mut second_closed) = unproven.register();
        let (_third, mut third_closed) = unproven.register();
        // The first sent a request: it is never closed to make room.
        first.store(true, Ordering::Relaxed);
        assert!(unproven.evict_oldest());
        assert!(first_closed.try_recv().is_err());
        assert!(second_closed.try_recv().is_ok());
        assert!(third_closed.try_recv().is_err());
        assert!(unproven.evict_oldest());
        assert!(third_closed.try_recv().is_ok());
        assert!(!unproven.evict_oldest(), "nobody left to close");
    }

    #[test]
    fn loopback_peers_are_local_also_when_mapped_into_ipv6() {
        let at = |text: &str| Connection { peer: text.parse().unwrap(), tls: false };
        assert!(at("127.0.0.1:1").is_local());
        assert!(at("[::1]:1").is_local());
        assert!(at("[::ffff:127.0.0.1]:1").is_local());
        assert!(!at("10.0.0.5:1").is_local());
        assert!(!at("[::ffff:10.0.0.5]:1").is_local());
    }
}
