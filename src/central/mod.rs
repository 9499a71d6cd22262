//! The provincial server: identities, the audio library, schedule assignment and signed
//! per-station manifests, served over HTTP (axum).
//!
//! Central never plays anything and never trusts a client's claim about who it is: every
//! request carries a bearer token whose sha256 the store knows. The entry points are
//! [`init`] (data directory + signing key + first admin token), [`add_station`],
//! [`add_operator`], [`open`] and [`serve`].

pub mod alerts;
mod api;
pub mod audio_files;
pub mod auth;
pub mod body;
pub mod bulletins;
pub mod cap;
pub mod config;
pub mod console;
pub mod enrol;
pub mod gains;
pub mod hot_audio;
pub mod ingest;
pub mod library;
pub mod live;
pub mod manifest;
pub mod manifest_news;
pub mod metrics;
pub mod people;
pub mod playlog;
pub mod relay_hosts;
pub mod report;
pub mod server;
pub mod streams;
pub mod supervise;
pub mod tls;
pub mod token_check;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

pub use api::{route_list, router};
pub use config::CentralConfig;
pub use supervise::supervise;

use crate::clock::SharedClock;
use crate::protocol::ErrorBody;
use crate::signing::{ProvinceKey, SigningError};
use crate::store::blobs::AudioBlobs;
use crate::store::{self, Role, SqliteStore, Station, Store, StoreError};

/// File names inside the data directory.
pub const DB_FILE: &str = "central.sqlite";
pub const KEY_FILE: &str = "province.key";
pub const AUDIO_DIR: &str = "audio";
pub const TMP_DIR: &str = "tmp";

/// Why a central operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CentralError {
    #[error("cannot create {path}: {source}")]
    CreateDir { path: String, source: std::io::Error },
    #[error(
        "{0} is not a central data directory (no {KEY_FILE}): run `loa central init --data-dir {0}` first"
    )]
    NotInitialised(String),
    #[error(transparent)]
    Signing(#[from] SigningError),
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("station id {0:?} is not valid: use 1-64 lowercase letters, digits, '-' or '_'")]
    BadStationId(String),
    #[error("no station {0:?}: see `loa status` for the list")]
    NoSuchStation(String),
    #[error("area {0}")]
    BadArea(String),
    #[error(
        "an operator label is needed to revoke tokens (the one given to `loa central token add --label`)"
    )]
    EmptyLabel,
    #[error("cannot move the old key {path} aside: {source}")]
    KeyAside { path: String, source: std::io::Error },
    /// Not `#[source]`: the message already says what the OS said, once, with what to do.
    #[error("{}", bind_message(.addr, .error))]
    Bind { addr: String, error: std::io::Error },
    #[error("server failed: {0}")]
    Serve(std::io::Error),
    #[error(transparent)]
    Bulletins(#[from] bulletins::BulletinError),
    #[error("tls: {path}: {message}")]
    Tls { path: String, message: String },
    #[error("[cap]: {0}")]
    Cap(String),
    #[error("cannot start a thread (the system is out of resources?): {0}")]
    Thread(std::io::Error),
}

/// Why central cannot listen on `addr`, and what to do about it.
fn bind_message(addr: &str, error: &std::io::Error) -> String {
    const CHOOSE: &str = "choose another with --listen ADDR or `listen` in central.toml";
    match error.kind() {
        std::io::ErrorKind::AddrInUse => format!(
            "address {addr} is already in use: another program (perhaps another loa central) \
             listens there; stop it, or {CHOOSE}"
        ),
        std::io::ErrorKind::PermissionDenied => format!(
            "not allowed to listen on {addr} ({error}): ports below 1024 need root or \
             CAP_NET_BIND_SERVICE; {CHOOSE}"
        ),
        std::io::ErrorKind::AddrNotAvailable => format!(
            "cannot listen on {addr}: it is not an address of this machine ({error}); use \
             0.0.0.0 for all of them, or {CHOOSE}"
        ),
        _ => format!("cannot listen on {addr}: {error}; {CHOOSE}"),
    }
}

/// Connections the kernel may hold for central before it accepts them.
///
/// A province-wide bulletin makes every station open a download connection within the
/// same few milliseconds, and every station reconnects at once when the provincial link
/// comes back. With the usual backlog (1,024, tokio's default) the queue overflowed at
/// 1,000 stations: the kernel dropped the handshakes and each station waited for its
/// 1 s SYN retransmit — the whole fleet's bulletin a second late (measured with
/// `nstat`'s ListenOverflows during `cargo bench --bench bulletin`). Linux caps this at
/// `net.core.somaxconn` (4,096 on current kernels).
pub const LISTEN_BACKLOG: u32 = 8192;

/// Binds central's listening socket with [`LISTEN_BACKLOG`]. Port 0 lets the system pick
/// a free port; the listener's `local_addr` says which.
pub async fn bind(addr: std::net::SocketAddr) -> Result<tokio::net::TcpListener, CentralError> {
    let fail = |error| CentralError::Bind { addr: addr.to_string(), error };
    let socket = match addr {
        std::net::SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        std::net::SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(fail)?;
    // As std's and tokio's own `bind` do on Unix: a restarted central must not wait for
    // the old connections' TIME_WAIT to end.
    socket.set_reuseaddr(true).map_err(fail)?;
    socket.bind(addr).map_err(fail)?;
    socket.listen(LISTEN_BACKLOG).map_err(fail)
}

/// What `loa central init` prints.
#[derive(Debug, Clone)]
pub struct Initialised {
    pub public_key: String,
    pub admin_token: String,
}

/// Creates the data directory, the province's signing key (0600) and a first admin
/// token. Refuses to replace an existing key.
pub fn init(data_dir: &Path) -> Result<Initialised, CentralError> {
    init_with(data_dir, None, None)
}

/// [`init`] with central's tables in the PostgreSQL database at `database_url` (`None`:
/// the embedded SQLite file; `database_ca`: see [`open_store`]). Other replicas on the
/// same database get a copy of the key file, not an init of their own.
pub fn init_with(
    data_dir: &Path,
    database_url: Option<&str>,
    database_ca: Option<&Path>,
) -> Result<Initialised, CentralError> {
    for dir in [data_dir.to_path_buf(), data_dir.join(AUDIO_DIR), data_dir.join(TMP_DIR)] {
        std::fs::create_dir_all(&dir).map_err(|source| CentralError::CreateDir {
            path: dir.display().to_string(),
            source,
        })?;
    }
    let key = ProvinceKey::generate();
    key.create_file(&data_dir.join(KEY_FILE))?;
    let store = open_store(data_dir, database_url, database_ca)?;
    let admin_token = store::new_token();
    store.add_operator(&store::hash_token(&admin_token), &Role::Admin, "created by init")?;
    Ok(Initialised { public_key: key.public_hex(), admin_token })
}

/// Central's store: PostgreSQL at `database_url`, else the SQLite file in `data_dir`.
/// `database_ca`: the CA file (`database_ca_file`) that, besides the system's roots, may
/// have issued the database server's certificate, for a URL with `sslmode=require`.
pub fn open_store(
    data_dir: &Path,
    database_url: Option<&str>,
    database_ca: Option<&Path>,
) -> Result<Arc<dyn Store>, CentralError> {
    Ok(open_stores(data_dir, database_url, database_ca)?.0)
}

/// Central's store, and where the audio library's bytes are kept besides the data
/// directory (`None`: nowhere else).
pub type Stores = (Arc<dyn Store>, Option<Arc<dyn AudioBlobs>>);

/// [`open_store`], and the database that holds the audio library's bytes (PostgreSQL
/// only: on SQLite the library is the files in `data_dir/audio`).
pub fn open_stores(
    data_dir: &Path,
    database_url: Option<&str>,
    database_ca: Option<&Path>,
) -> Result<Stores, CentralError> {
    Ok(match database_url {
        Some(url) => {
            let pg = Arc::new(store::PgStore::connect_with_ca(url, database_ca)?);
            (pg.clone(), Some(pg))
        }
        None => (Arc::new(SqliteStore::open(&data_dir.join(DB_FILE))?), None),
    })
}

/// A station id is used in URLs, file names and logs: keep it plain.
pub fn valid_station_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'_')
}

/// Registers a station and returns its token (shown once; only its hash is kept).
pub fn add_station(store: &dyn Store, station: &Station) -> Result<String, CentralError> {
    if !valid_station_id(&station.id) {
        return Err(CentralError::BadStationId(station.id.clone()));
    }
    let area = crate::protocol::area::normalise(&station.district)
        .map_err(|why| CentralError::BadArea(format!("{:?}: {why}", station.district)))?;
    let station = Station { district: area, ..station.clone() };
    let token = store::new_token();
    store.add_station(&station, &store::hash_token(&token))?;
    Ok(token)
}

/// Creates an operator token with `role` and returns it (shown once).
pub fn add_operator(store: &dyn Store, role: &Role, label: &str) -> Result<String, CentralError> {
    let token = store::new_token();
    store.add_operator(&store::hash_token(&token), role, label)?;
    Ok(token)
}

/// Gives a station a new token and returns it (shown once). The old token is refused
/// from now on: use it when a station box is lost, stolen or its config leaked.
pub fn rotate_station_token(store: &dyn Store, id: &str) -> Result<String, CentralError> {
    let token = store::new_token();
    if !store.set_station_token(id, &store::hash_token(&token))? {
        return Err(CentralError::NoSuchStation(id.to_string()));
    }
    Ok(token)
}

/// Revokes every operator token created with `label`; returns how many.
pub fn revoke_operators(store: &dyn Store, label: &str) -> Result<usize, CentralError> {
    if label.trim().is_empty() {
        return Err(CentralError::EmptyLabel);
    }
    Ok(store.revoke_operators(label)?)
}

/// Replaces the province's signing key: the old seed is kept beside it as
/// `province.key.old-<unix seconds>` (never deleted), a new one is written (0600), and
/// its public key returned. Central must be stopped while this runs; once restarted it
/// re-signs every station's manifest under the new key on the next request (see
/// `manifest::current`). Stations refuse the new signatures until their `province_key`
/// is changed to the new public key — they keep playing their last good schedule.
pub fn rotate_key(data_dir: &Path, now_unix: i64) -> Result<String, CentralError> {
    let path = data_dir.join(KEY_FILE);
    if !path.exists() {
        return Err(CentralError::NotInitialised(data_dir.display().to_string()));
    }
    // Prove the current key is readable before moving it.
    ProvinceKey::load_file(&path)?;
    let aside = data_dir.join(format!("{KEY_FILE}.old-{now_unix}"));
    if aside.exists() {
        return Err(CentralError::KeyAside {
            path: aside.display().to_string(),
            source: std::io::Error::from(std::io::ErrorKind::AlreadyExists),
        });
    }
    std::fs::rename(&path, &aside)
        .map_err(|source| CentralError::KeyAside { path: path.display().to_string(), source })?;
    let key = ProvinceKey::generate();
    key.create_file(&path)?;
    std::fs::File::open(data_dir).and_then(|d| d.sync_all()).map_err(|source| {
        CentralError::KeyAside { path: data_dir.display().to_string(), source }
    })?;
    Ok(key.public_hex())
}

/// The public halves of keys [`rotate_key`] retired (`province.key.old-*`): manifests
/// central signed before a rotation are still its own, and reports read them.
pub fn retired_keys(data_dir: &Path) -> Vec<crate::signing::PublicKey> {
    let Ok(entries) = std::fs::read_dir(data_dir) else { return Vec::new() };
    entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(&format!("{KEY_FILE}.old-")))
        .filter_map(|e| ProvinceKey::load_file(&e.path()).ok())
        .map(|k| k.public())
        .collect()
}

/// Everything request handlers share.
pub struct AppState {
    pub store: Arc<dyn Store>,
    /// Where the library's bytes are: this disk, and the database with replicas.
    pub audio: audio_files::AudioFiles,
    pub key: ProvinceKey,
    pub clock: SharedClock,
    pub config: CentralConfig,
    /// Per station, the latest manifest version issued, here or by another replica: a
    /// long-poll waits on its own station's channel only, so loading a schedule for
    /// 10,000 stations wakes each waiting station once.
    manifests: Arc<manifest_news::ManifestWatch>,
    /// The one read of station tokens every open stream's periodic check shares.
    pub tokens: token_check::TokenCheck,
    /// Serialises manifest issuing so versions never collide.
    pub issue_lock: tokio::sync::Mutex<()>,
    /// Urgent bulletins: events, streams, delivery states.
    pub bulletins: bulletins::Hub,
    /// Live bulletins' audio, served from memory.
    pub hot_audio: hot_audio::HotAudio,
    /// Live broadcasts on air (`loa live`).
    pub live: live::LiveHub,
    /// Open event streams and long-polls, capped per station and in all.
    pub streams: Arc<streams::Streams>,
    /// CAP alerts: the trusted signers, and the lock that takes alerts one at a time.
    pub cap: cap::CapState,
    /// Failed enrolment attempts per address.
    pub enrol_limit: enrol::Limiter,
    /// Request and ingest counters for `/metrics`.
    pub metrics: metrics::Counters,
}

impl AppState {
    pub fn audio_dir(&self) -> PathBuf {
        self.config.data_dir.join(AUDIO_DIR)
    }

    pub fn tmp_dir(&self) -> PathBuf {
        self.config.data_dir.join(TMP_DIR)
    }

    /// A receiver that changes whenever a newer manifest is issued for `station_id`.
    pub fn watch_station(&self, station_id: &str) -> tokio::sync::watch::Receiver<u64> {
        self.manifests.watch(station_id)
    }

    pub(crate) fn announce(&self, station_id: &str, version: u64) {
        self.manifests.announce(station_id, version);
    }
}

/// Opens an initialised data directory: its store and signing key.
pub fn open(config: CentralConfig, clock: SharedClock) -> Result<Arc<AppState>, CentralError> {
    let dir = &config.data_dir;
    let key_path = dir.join(KEY_FILE);
    if !key_path.exists() {
        return Err(CentralError::NotInitialised(dir.display().to_string()));
    }
    let key = ProvinceKey::load_file(&key_path)?;
    for sub in [dir.join(AUDIO_DIR), dir.join(TMP_DIR)] {
        std::fs::create_dir_all(&sub).map_err(|source| CentralError::CreateDir {
            path: sub.display().to_string(),
            source,
        })?;
    }
    let (store, audio_db) =
        open_stores(dir, config.database_url().as_deref(), config.database_ca_file().as_deref())?;
    let audio = audio_files::AudioFiles::for_config(&config, audio_db);
    let bulletins = bulletins::Hub::open(store.clone())?;
    let manifests = manifest_news::ManifestWatch::open(&*store).map_err(CentralError::Thread)?;
    let cap = cap::CapState::load(&config.cap).map_err(CentralError::Cap)?;
    Ok(Arc::new(AppState {
        cap,
        bulletins,
        hot_audio: hot_audio::HotAudio::default(),
        live: live::LiveHub::default(),
        streams: Arc::new(streams::Streams::default()),
        store,
        audio,
        key,
        clock,
        config,
        manifests,
        tokens: token_check::TokenCheck::default(),
        issue_lock: tokio::sync::Mutex::new(()),
        enrol_limit: enrol::Limiter::default(),
        metrics: metrics::Counters::default(),
    }))
}

/// Serves the API on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), CentralError> {
    serve_with(listener, None, state, shutdown).await
}

/// Serves the API over HTTPS on `listener` until `shutdown` resolves.
pub async fn serve_tls(
    listener: tokio::net::TcpListener,
    acceptor: tokio_rustls::TlsAcceptor,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), CentralError> {
    serve_with(listener, Some(acceptor), state, shutdown).await
}

/// [`server::run`] with the connection cap derived from the configuration and the
/// open-file limit (raised first), and a quarter of it kept from long-lived requests.
async fn serve_with(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), CentralError> {
    let files = server::raise_open_files_limit();
    let cap = server::connection_cap(state.config.max_connections, files);
    if cap < state.config.max_connections {
        tracing::warn!(
            files,
            cap,
            "the open-file limit allows {cap} connections, fewer than max_connections = {}: raise LimitNOFILE (systemd) or `ulimit -n`",
            state.config.max_connections
        );
    }
    state.streams.set_global_cap(cap - cap / 4);
    if tls.is_none() {
        let addr = listener.local_addr().map_err(CentralError::Serve)?;
        if !addr.ip().to_canonical().is_loopback() {
            if state.config.allow_plain_http {
                tracing::warn!(%addr, "serving plain HTTP to the network (allow_plain_http = true): tokens cross it in clear; configure TLS with `loa central init --host NAME`");
            } else {
                tracing::warn!(%addr, "serving plain HTTP: requests from other machines are refused until TLS is configured (`loa central tls --host NAME`) or allow_plain_http = true");
            }
        }
    }
    let limits = server::Limits {
        max_connections: cap,
        header_timeout: std::time::Duration::from_secs(state.config.header_timeout_secs),
    };
    // The CAP feeds are polled while central serves, and stop with it.
    let feeds =
        (!state.config.cap.feeds.is_empty()).then(|| tokio::spawn(cap::feed::run(state.clone())));
    // Bulletins other replicas push get their audio hot here too.
    let warm = tokio::spawn(bulletins::warm(state.clone()));
    let served = server::run(listener, tls, router(state), limits, shutdown).await;
    if let Some(feeds) = feeds {
        feeds.abort();
    }
    warm.abort();
    served.map_err(CentralError::Serve)
}

/// Serves the console alone on `listener` (`console_listen`), over TLS when `tls` is
/// given, until `shutdown` resolves; the main listener then serves no console page.
pub async fn serve_console(
    listener: tokio::net::TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    state: Arc<AppState>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), CentralError> {
    let files = server::raise_open_files_limit();
    let limits = server::Limits {
        max_connections: server::connection_cap(1024, files),
        header_timeout: std::time::Duration::from_secs(state.config.header_timeout_secs),
    };
    server::run(listener, tls, console::router(state), limits, shutdown)
        .await
        .map_err(CentralError::Serve)
}

/// An HTTP error: a status and a message that says what to do next. Every refusal is
/// logged, so an attack leaves a trace at central.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("missing or unknown bearer token: use the token printed by `loa central`")]
    Unauthorized,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("schedule has errors")]
    Schedule(Vec<String>),
    /// A document that is not valid (a CAP alert): 422 with its diagnostics.
    #[error("{message}")]
    Invalid { message: String, diagnostics: Vec<String> },
    #[error(
        "upload is larger than the limit of {limit} bytes: raise upload_limit_mb in central.toml"
    )]
    TooLarge { limit: u64 },
    #[error("{0}")]
    PayloadTooLarge(String),
    #[error("{0}")]
    Timeout(String),
    #[error("{0}")]
    Busy(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    Gone(String),
    /// Faster than the route allows (a live upload ahead of real time): 429.
    #[error("{0}")]
    TooFast(String),
    #[error("requested range is not satisfiable: file has {size} bytes")]
    Range { size: u64 },
    #[error("internal error: {0}")]
    Internal(String),
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        if let StoreError::Unavailable(why) = &e {
            // 503 + Retry-After: a station keeps its records and sends them again.
            return ApiError::Busy(format!("database unavailable, try again later: {why}"));
        }
        if let StoreError::Busy(why) = e {
            return ApiError::Busy(why);
        }
        ApiError::Internal(e.to_string())
    }
}

impl From<SigningError> for ApiError {
    fn from(e: SigningError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl From<std::io::Error> for ApiError {
    fn from(e: std::io::Error) -> Self {
        ApiError::Internal(e.to_string())
    }
}

impl ApiError {
    /// The HTTP status this refusal is answered with (JSON for the API, a page for the
    /// console).
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden(_) => StatusCode::FORBIDDEN,
            ApiError::NotFound(_) => StatusCode::NOT_FOUND,
            ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::Schedule(_) | ApiError::Invalid { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::TooLarge { .. } | ApiError::PayloadTooLarge(_) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            ApiError::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
            ApiError::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Conflict(_) => StatusCode::CONFLICT,
            ApiError::Gone(_) => StatusCode::GONE,
            ApiError::TooFast(_) => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Range { .. } => StatusCode::RANGE_NOT_SATISFIABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(%status, "{self}");
        } else {
            tracing::warn!(%status, "refused: {self}");
        }
        let diagnostics = match &self {
            ApiError::Schedule(d) | ApiError::Invalid { diagnostics: d, .. } => d.clone(),
            _ => Vec::new(),
        };
        let busy = matches!(self, ApiError::Busy(_));
        let mut response = (status, axum::Json(ErrorBody { error: self.to_string(), diagnostics }))
            .into_response();
        if busy {
            response
                .headers_mut()
                .insert(axum::http::header::RETRY_AFTER, axum::http::HeaderValue::from_static("5"));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_store_that_is_busy_or_unreachable_answers_503_with_retry_after() {
        for e in [StoreError::Busy("wait".into()), StoreError::Unavailable("down".into())] {
            let response = ApiError::from(e).into_response();
            assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
            assert!(response.headers().contains_key(axum::http::header::RETRY_AFTER));
        }
    }

    #[test]
    fn station_ids_are_plain() {
        assert!(valid_station_id("tri-ton_01"));
        for bad in ["", "../etc", "A", "a/b", "a b", &"x".repeat(65)] {
            assert!(!valid_station_id(bad), "{bad:?}");
        }
    }

    #[test]
    fn init_refuses_to_replace_the_key_and_open_needs_init() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("central");
        let clock: SharedClock = Arc::new(crate::clock::SystemClock);
        let config = CentralConfig { data_dir: data.clone(), ..CentralConfig::default() };
        assert!(matches!(
            open(config.clone(), clock.clone()),
            Err(CentralError::NotInitialised(_))
        ));
        let first = init(&data).unwrap();
        assert_eq!(first.public_key.len(), 64);
        assert!(matches!(init(&data), Err(CentralError::Signing(SigningError::KeyExists { .. }))));
        let state = open(config, clock).unwrap();
        assert_eq!(state.key.public_hex(), first.public_key);
        assert_eq!(
            state.store.operator_by_token(&store::hash_token(&first.admin_token)).unwrap(),
            Some(Role::Admin)
        );
    }
}
