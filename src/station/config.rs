//! The station's configuration file (`station.toml`): parsed, validated and resolved
//! once at start-up, so the daemon never meets a half-valid setting at 05:30.
//!
//! Errors carry `file:line:column` (from the TOML span) and say what to change.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono_tz::Tz;
use serde::Deserialize;

/// The commented example shipped in the binary (`loa station --print-config`).
pub const EXAMPLE: &str = include_str!("station.example.toml");

/// A configuration problem. `Display` is the full message users see.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source} (check the path given to --config)")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{origin}:{line}:{column}: error: {message}")]
    Invalid { origin: String, line: usize, column: usize, message: String },
}

/// The resolved configuration the daemon runs with. Paths are absolute or relative to
/// the process's directory (already joined with the config file's directory).
#[derive(Debug, Clone, PartialEq)]
pub struct StationConfig {
    pub station_id: String,
    /// Central's (preferred) address: `central_url`, or the first of its list.
    pub central_url: Option<String>,
    /// Central's other addresses, in the order `central_url` lists them after the
    /// first: where the station goes when one fails (`station::central_addrs`).
    pub central_others: Vec<String>,
    pub token: Option<String>,
    pub data_dir: PathBuf,
    pub timezone: Tz,
    /// The province's Ed25519 public key bytes.
    pub province_key: Option<[u8; 32]>,
    pub provincial_schedule: Option<PathBuf>,
    pub local_schedules: Option<PathBuf>,
    pub sink: String,
    pub wav_path: Option<PathBuf>,
    pub fade: Duration,
    pub preroll: Duration,
    /// A relayed stream's stated delay: how much of it is buffered before it plays
    /// (`relay_buffer_ms`). The station connects `preroll + relay_buffer + 1 s` early.
    pub relay_buffer: Duration,
    pub silence_threshold_dbfs: f32,
    /// How often the station sends central a heartbeat (with central).
    pub heartbeat: Duration,
    /// Plan by central's time while the station's own clock is more than 5 s off it.
    pub trust_central_time: bool,
    /// The CA that signed central's certificate (`ca_cert`): the only root the
    /// station's HTTPS clients trust. Read and checked at start-up.
    pub ca_cert: Option<CaCert>,
}

/// A CA certificate read from `ca_cert` and checked to be usable as a trust anchor.
#[derive(Clone, PartialEq)]
pub struct CaCert {
    /// The file it came from (resolved against the config file's directory).
    pub path: PathBuf,
    /// Its PEM text, as handed to the HTTP clients.
    pub pem: Vec<u8>,
}

impl std::fmt::Debug for CaCert {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaCert")
            .field("path", &self.path)
            .field("pem_bytes", &self.pem.len())
            .finish()
    }
}

impl CaCert {
    /// Reads `path` and checks that it holds at least one PEM certificate rustls accepts
    /// as a root, so a wrong file fails at start-up rather than at every connection.
    pub fn load(path: &Path) -> Result<Self, String> {
        use tokio_rustls::rustls::RootCertStore;
        use tokio_rustls::rustls::pki_types::CertificateDer;
        use tokio_rustls::rustls::pki_types::pem::PemObject;
        let shown = path.display();
        let pem = std::fs::read(path).map_err(|e| {
            format!(
                "cannot read ca_cert {shown}: {e} (give the PEM file of the CA that signed central's certificate; a relative path is read from this file's directory)"
            )
        })?;
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&pem)
            .collect::<Result<_, _>>()
            .map_err(|e| format!("ca_cert {shown} is not valid PEM: {e}"))?;
        if certs.is_empty() {
            return Err(format!(
                "ca_cert {shown} holds no certificate (expected `-----BEGIN CERTIFICATE-----`): give the CA certificate central's operator sent, not a key"
            ));
        }
        let mut roots = RootCertStore::empty();
        for (i, cert) in certs.into_iter().enumerate() {
            roots.add(cert).map_err(|e| {
                format!("ca_cert {shown}: certificate {} cannot be used as a CA: {e}", i + 1)
            })?;
        }
        Ok(Self { path: path.to_path_buf(), pem })
    }
}

impl StationConfig {
    /// A standalone configuration with every default, for tests and `loa demo`.
    pub fn standalone(station_id: &str, data_dir: PathBuf) -> Self {
        Self {
            station_id: station_id.to_string(),
            central_url: None,
            central_others: Vec::new(),
            token: None,
            data_dir,
            timezone: chrono_tz::Asia::Ho_Chi_Minh,
            province_key: None,
            provincial_schedule: None,
            local_schedules: None,
            sink: "null".to_string(),
            wav_path: None,
            fade: Duration::from_millis(DEFAULT_FADE_MS),
            preroll: Duration::from_millis(DEFAULT_PREROLL_MS),
            relay_buffer: Duration::from_millis(DEFAULT_RELAY_BUFFER_MS),
            silence_threshold_dbfs: DEFAULT_SILENCE_DBFS,
            heartbeat: Duration::from_secs(DEFAULT_HEARTBEAT_SECS),
            trust_central_time: true,
            ca_cert: None,
        }
    }

    /// Every address of central, the preferred first (empty for a standalone station).
    pub fn central_urls(&self) -> Vec<String> {
        self.central_url.iter().chain(&self.central_others).cloned().collect()
    }

    /// The ledger's file inside the data directory.
    pub fn ledger_path(&self) -> PathBuf {
        self.data_dir.join("ledger.sqlite3")
    }

    /// Where central's sync drops the verified provincial schedule. When present it
    /// replaces `provincial_schedule`.
    pub fn synced_provincial_path(&self) -> PathBuf {
        self.data_dir.join("provincial.toml")
    }
}

const DEFAULT_FADE_MS: u64 = 300;
const DEFAULT_PREROLL_MS: u64 = 2000;
/// A relayed stream's stated delay, milliseconds.
pub const DEFAULT_RELAY_BUFFER_MS: u64 = 2000;
const DEFAULT_SILENCE_DBFS: f32 = -60.0;
const DEFAULT_HEARTBEAT_SECS: u64 = 60;

/// `central_url` as written: one address, or a list of them in order of preference.
#[derive(Debug)]
struct CentralUrls(Vec<String>);

impl<'de> Deserialize<'de> for CentralUrls {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = CentralUrls;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str(
                    "central's URL as a string, or a list of URLs (e.g. [\"https://a:8480\", \"https://b:8480\"])",
                )
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<CentralUrls, E> {
                Ok(CentralUrls(vec![v.to_string()]))
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<CentralUrls, A::Error> {
                let mut urls = Vec::new();
                // Read one past the bound at most: the length check names it.
                while let Some(url) = seq.next_element::<String>()? {
                    urls.push(url);
                    if urls.len() > MAX_CENTRAL_URLS {
                        break;
                    }
                }
                Ok(CentralUrls(urls))
            }
        }
        deserializer.deserialize_any(Visit)
    }
}

/// Most addresses `central_url` may list.
pub const MAX_CENTRAL_URLS: usize = crate::station::central_addrs::MAX_ADDRESSES;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    station_id: String,
    central_url: Option<CentralUrls>,
    token: Option<String>,
    #[serde(default = "default_data_dir")]
    data_dir: PathBuf,
    #[serde(default = "default_timezone")]
    timezone: String,
    province_key: Option<String>,
    ca_cert: Option<PathBuf>,
    #[serde(default = "default_heartbeat")]
    heartbeat_secs: u64,
    #[serde(default = "default_true")]
    trust_central_time: bool,
    provincial_schedule: Option<PathBuf>,
    local_schedules: Option<PathBuf>,
    #[serde(default)]
    audio: RawAudio,
    #[serde(default)]
    silence: RawSilence,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawAudio {
    #[serde(default = "default_sink")]
    sink: String,
    wav_path: Option<PathBuf>,
    #[serde(default = "default_fade")]
    fade_ms: u64,
    #[serde(default = "default_preroll")]
    preroll_ms: u64,
    #[serde(default = "default_relay_buffer")]
    relay_buffer_ms: u64,
}

impl Default for RawAudio {
    fn default() -> Self {
        Self {
            sink: default_sink(),
            wav_path: None,
            fade_ms: DEFAULT_FADE_MS,
            preroll_ms: DEFAULT_PREROLL_MS,
            relay_buffer_ms: DEFAULT_RELAY_BUFFER_MS,
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSilence {
    #[serde(default = "default_silence")]
    threshold_dbfs: f32,
}

impl Default for RawSilence {
    fn default() -> Self {
        Self { threshold_dbfs: DEFAULT_SILENCE_DBFS }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("data")
}
fn default_true() -> bool {
    true
}

fn default_heartbeat() -> u64 {
    DEFAULT_HEARTBEAT_SECS
}
fn default_timezone() -> String {
    "Asia/Ho_Chi_Minh".to_string()
}
fn default_sink() -> String {
    "default".to_string()
}
fn default_fade() -> u64 {
    DEFAULT_FADE_MS
}
fn default_preroll() -> u64 {
    DEFAULT_PREROLL_MS
}
fn default_relay_buffer() -> u64 {
    DEFAULT_RELAY_BUFFER_MS
}
fn default_silence() -> f32 {
    DEFAULT_SILENCE_DBFS
}

/// Reads and validates a configuration file.
pub fn load(path: &Path) -> Result<StationConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|source| ConfigError::Read { path: path.display().to_string(), source })?;
    let base = path.parent().unwrap_or(Path::new("."));
    parse(&text, &path.display().to_string(), base)
}

/// Parses configuration text. `origin` names it in errors; relative paths are joined
/// to `base_dir`.
pub fn parse(text: &str, origin: &str, base_dir: &Path) -> Result<StationConfig, ConfigError> {
    let raw: RawConfig = toml::from_str(text).map_err(|e| {
        let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((1, 1));
        ConfigError::Invalid {
            origin: origin.to_string(),
            line,
            column,
            message: e.message().trim().to_string(),
        }
    })?;
    let at = |key: &str, message: String| {
        let (line, column) = find_key(text, key);
        ConfigError::Invalid { origin: origin.to_string(), line, column, message }
    };

    let id_ok = !raw.station_id.is_empty()
        && raw.station_id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if !id_ok {
        return Err(at(
            "station_id",
            format!(
                "station_id {:?} must be non-empty letters, digits, '-' or '_' (e.g. \"xa-an-binh\")",
                raw.station_id
            ),
        ));
    }
    let timezone: Tz = raw.timezone.parse().map_err(|_| {
        at(
            "timezone",
            format!(
                "unknown time zone {:?}: use an IANA name such as \"Asia/Ho_Chi_Minh\"",
                raw.timezone
            ),
        )
    })?;
    let province_key = match &raw.province_key {
        None => None,
        Some(text) => Some(parse_key(text).map_err(|m| at("province_key", m))?),
    };
    let central_urls = match &raw.central_url {
        None => Vec::new(),
        Some(CentralUrls(urls)) => check_central_urls(urls).map_err(|m| at("central_url", m))?,
    };
    if let Some(url) =
        central_urls.iter().find(|u| u.starts_with("https://")).or(central_urls.first())
    {
        if province_key.is_none() {
            return Err(at(
                "central_url",
                "a station that talks to central needs province_key (the province's public key) to verify what it receives".to_string(),
            ));
        }
        if raw.token.is_none() {
            return Err(at(
                "central_url",
                "a station that talks to central needs the token central issued to it".to_string(),
            ));
        }
        // Stations trust no built-in web roots (see ca_cert): say so now, not at every
        // failed connection.
        if url.starts_with("https://") && raw.ca_cert.is_none() {
            return Err(at(
                "central_url",
                format!(
                    "central_url {url:?} is https but ca_cert is not set: add ca_cert = \"central-ca.pem\" (the PEM of the CA that signed central's certificate; stations trust no other)"
                ),
            ));
        }
    }
    const SINKS: [&str; 5] = ["default", "alsa", "wav", "null", "clocked"];
    if !SINKS.contains(&raw.audio.sink.as_str()) {
        return Err(at(
            "sink",
            format!("unknown sink {:?}: choose one of {}", raw.audio.sink, SINKS.join(", ")),
        ));
    }
    if raw.audio.sink == "wav" && raw.audio.wav_path.is_none() {
        return Err(at("sink", "sink = \"wav\" needs wav_path = \"FILE.wav\"".to_string()));
    }
    if !(1..=3600).contains(&raw.heartbeat_secs) {
        return Err(at("heartbeat_secs", "heartbeat_secs must be between 1 and 3600".to_string()));
    }
    if raw.audio.fade_ms > 10_000 {
        return Err(at("fade_ms", "fade_ms must be at most 10000 (10 s)".to_string()));
    }
    if raw.audio.preroll_ms > 60_000 {
        return Err(at("preroll_ms", "preroll_ms must be at most 60000 (1 min)".to_string()));
    }
    if !(100..=30_000).contains(&raw.audio.relay_buffer_ms) {
        return Err(at(
            "relay_buffer_ms",
            "relay_buffer_ms must be between 100 and 30000 (30 s)".to_string(),
        ));
    }
    if !(raw.silence.threshold_dbfs.is_finite() && raw.silence.threshold_dbfs < 0.0) {
        return Err(at(
            "threshold_dbfs",
            "threshold_dbfs must be a negative number of dBFS, e.g. -60.0".to_string(),
        ));
    }

    let resolve = |p: PathBuf| if p.is_absolute() { p } else { base_dir.join(p) };
    let ca_cert = match raw.ca_cert {
        None => None,
        Some(path) => Some(CaCert::load(&resolve(path)).map_err(|m| at("ca_cert", m))?),
    };
    let mut central_urls = central_urls.into_iter();
    Ok(StationConfig {
        station_id: raw.station_id,
        central_url: central_urls.next(),
        central_others: central_urls.collect(),
        token: raw.token,
        data_dir: resolve(raw.data_dir),
        timezone,
        province_key,
        provincial_schedule: raw.provincial_schedule.map(resolve),
        local_schedules: raw.local_schedules.map(resolve),
        sink: raw.audio.sink,
        wav_path: raw.audio.wav_path.map(resolve),
        fade: Duration::from_millis(raw.audio.fade_ms),
        preroll: Duration::from_millis(raw.audio.preroll_ms),
        relay_buffer: Duration::from_millis(raw.audio.relay_buffer_ms),
        silence_threshold_dbfs: raw.silence.threshold_dbfs,
        heartbeat: Duration::from_secs(raw.heartbeat_secs),
        trust_central_time: raw.trust_central_time,
        ca_cert,
    })
}

/// Checks `central_url`'s addresses: one to [`MAX_CENTRAL_URLS`], each an http(s) URL with
/// a host, none twice.
fn check_central_urls(urls: &[String]) -> Result<Vec<String>, String> {
    if urls.is_empty() {
        return Err("central_url is an empty list: give central's address (or leave central_url out to run standalone)".to_string());
    }
    if urls.len() > MAX_CENTRAL_URLS {
        return Err(format!(
            "central_url lists more than {MAX_CENTRAL_URLS} addresses: give at most {MAX_CENTRAL_URLS}, the preferred first"
        ));
    }
    let mut out: Vec<String> = Vec::new();
    for url in urls {
        let shown = crate::protocol::text::printable(url);
        let parsed = reqwest::Url::parse(url).map_err(|e| {
            format!("central_url {shown:?} is not a URL ({e}): write it like \"https://central.example.vn:8480\"")
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(format!("central_url {shown:?} must start with http:// or https://"));
        }
        if parsed.host_str().is_none_or(str::is_empty) {
            return Err(format!("central_url {shown:?} names no host"));
        }
        let url = url.trim_end_matches('/').to_string();
        if out.contains(&url) {
            return Err(format!("central_url lists {shown:?} twice"));
        }
        out.push(url);
    }
    Ok(out)
}

/// Accepts a 32-byte key as 64 hex digits or base64 (standard, padded or not).
pub fn parse_key(text: &str) -> Result<[u8; 32], String> {
    use base64::Engine as _;
    let text = text.trim();
    let bytes = if text.len() == 64 && text.chars().all(|c| c.is_ascii_hexdigit()) {
        hex::decode(text).map_err(|e| format!("province_key is not valid hex: {e}"))?
    } else {
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(text))
            .map_err(|_| {
                "province_key must be 64 hex digits or base64 of 32 bytes (ask the province for its public key)".to_string()
            })?
    };
    <[u8; 32]>::try_from(bytes.as_slice()).map_err(|_| {
        format!("province_key decodes to {} bytes; an Ed25519 public key has 32", bytes.len())
    })
}

/// 1-based line and column of a byte offset.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|s| s.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

/// Locates `key = …` (first uncommented occurrence) for errors found after parsing.
fn find_key(text: &str, key: &str) -> (usize, usize) {
    for (i, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            continue;
        }
        if let Some(rest) = trimmed.strip_prefix(key)
            && rest.trim_start().starts_with('=')
        {
            let column = line.len() - trimmed.len() + 1;
            return (i + 1, column);
        }
    }
    (1, 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_with_documented_defaults() {
        let c = parse(EXAMPLE, "station.toml", Path::new("/etc/loa")).expect("example is valid");
        assert_eq!(c.station_id, "xa-an-binh");
        assert_eq!(c.central_url, None);
        assert_eq!(c.data_dir, PathBuf::from("/etc/loa/data"));
        assert_eq!(c.timezone, chrono_tz::Asia::Ho_Chi_Minh);
        assert_eq!(c.local_schedules, Some(PathBuf::from("/etc/loa/schedules/local")));
        assert_eq!(c.sink, "default");
        assert_eq!(c.fade, Duration::from_millis(300));
        assert_eq!(c.preroll, Duration::from_secs(2));
        assert_eq!(c.silence_threshold_dbfs, -60.0);
    }

    #[test]
    fn minimal_config_gets_defaults() {
        let c = parse("station_id = \"a\"\n", "s.toml", Path::new("")).expect("valid");
        assert_eq!(c.sink, "default");
        assert_eq!(c.data_dir, PathBuf::from("data"));
    }

    #[test]
    fn unknown_key_is_located() {
        let text = "station_id = \"a\"\n[audio]\nsinc = \"wav\"\n";
        let err = parse(text, "s.toml", Path::new("")).expect_err("typo");
        let msg = err.to_string();
        assert!(msg.starts_with("s.toml:3:1: error: unknown field `sinc`"), "{msg}");
    }

    #[test]
    fn bad_values_say_where_and_what_to_do() {
        let err = parse("station_id = \"a\"\ntimezone = \"Hanoi\"\n", "s.toml", Path::new(""))
            .expect_err("bad tz");
        assert!(err.to_string().starts_with("s.toml:2:1: error: unknown time zone"), "{err}");

        let err = parse("station_id = \"a\"\n[audio]\nsink = \"wav\"\n", "s.toml", Path::new(""))
            .expect_err("wav without path");
        assert!(err.to_string().contains("s.toml:3:1: error: sink = \"wav\" needs wav_path"));

        let err = parse("station_id = \"a b\"\n", "s.toml", Path::new("")).expect_err("bad id");
        assert!(err.to_string().contains("s.toml:1:1"), "{err}");

        let text = "station_id = \"a\"\ncentral_url = \"http://c:1\"\ntoken = \"t\"\n";
        let err = parse(text, "s.toml", Path::new("")).expect_err("no key");
        assert!(err.to_string().contains("needs province_key"), "{err}");

        let err = parse("station_id = 5\n", "s.toml", Path::new("")).expect_err("type");
        assert!(err.to_string().starts_with("s.toml:1:14: error:"), "{err}");
    }

    fn with_central(extra: &str) -> String {
        format!(
            "station_id = \"a\"\ncentral_url = \"https://central.example:8480\"\ntoken = \"t\"\nprovince_key = \"{}\"\n{extra}",
            "11".repeat(32)
        )
    }

    #[test]
    fn ca_cert_is_read_relative_to_the_config_file() {
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
        let text = with_central("ca_cert = \"tls/ca.pem\"\n");
        let c = parse(&text, "s.toml", &fixtures).expect("valid");
        let ca = c.ca_cert.expect("ca_cert kept");
        assert_eq!(ca.path, fixtures.join("tls/ca.pem"));
        assert!(ca.pem.starts_with(b"-----BEGIN CERTIFICATE-----"));
    }

    #[test]
    fn https_without_ca_cert_says_to_set_it() {
        let err = parse(&with_central(""), "s.toml", Path::new("")).expect_err("no ca");
        let msg = err.to_string();
        assert!(msg.starts_with("s.toml:2:1: error: central_url"), "{msg}");
        assert!(msg.contains("add ca_cert = "), "{msg}");
        // Plain HTTP needs none.
        let text = with_central("").replace("https://", "http://");
        assert_eq!(parse(&text, "s.toml", Path::new("")).expect("http").ca_cert, None);
    }

    #[test]
    fn a_bad_ca_cert_names_the_file_and_what_to_give() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tls");
        std::fs::write(dir.path().join("notes.pem"), "not a certificate\n").expect("write");
        std::fs::copy(fixtures.join("key.pem"), dir.path().join("key.pem")).expect("copy");
        let garbled = "-----BEGIN CERTIFICATE-----\nAAAAAAAA\n-----END CERTIFICATE-----\n";
        std::fs::write(dir.path().join("garbled.pem"), garbled).expect("write");
        let cases = [
            ("garbled.pem", "certificate 1 cannot be used as a CA"),
            ("missing.pem", "cannot read ca_cert"),
            ("notes.pem", "holds no certificate"),
            ("key.pem", "holds no certificate"),
        ];
        for (file, expected) in cases {
            let text = with_central(&format!("ca_cert = {file:?}\n"));
            let err = parse(&text, "s.toml", dir.path()).expect_err(file);
            let msg = err.to_string();
            assert!(msg.starts_with("s.toml:5:1: error: "), "{msg}");
            assert!(msg.contains(expected), "{file}: {msg}");
            assert!(msg.contains(&dir.path().join(file).display().to_string()), "{msg}");
        }
    }

    fn with_centrals(list: &str) -> String {
        format!(
            "station_id = \"a\"\ncentral_url = {list}\ntoken = \"t\"\nprovince_key = \"{}\"\n",
            "11".repeat(32)
        )
    }

    #[test]
    fn central_url_may_list_addresses_in_order_of_preference() {
        let c = parse(&with_centrals("\"http://a:8480/\""), "s.toml", Path::new("")).expect("one");
        assert_eq!(c.central_url.as_deref(), Some("http://a:8480"));
        assert!(c.central_others.is_empty());
        let c = parse(
            &with_centrals("[\"http://a:8480\", \"http://b:8480\"]"),
            "s.toml",
            Path::new(""),
        )
        .expect("list");
        assert_eq!(c.central_url.as_deref(), Some("http://a:8480"));
        assert_eq!(c.central_others, ["http://b:8480"]);
        assert_eq!(c.central_urls(), ["http://a:8480", "http://b:8480"]);
    }

    #[test]
    fn central_url_lists_are_bounded_and_each_address_checked() {
        let list = |n: usize| {
            let urls: Vec<String> = (0..n).map(|i| format!("\"http://c{i}:8480\"")).collect();
            with_centrals(&format!("[{}]", urls.join(", ")))
        };
        let c = parse(&list(MAX_CENTRAL_URLS), "s.toml", Path::new("")).expect("at the bound");
        assert_eq!(c.central_urls().len(), MAX_CENTRAL_URLS);
        let err =
            parse(&list(MAX_CENTRAL_URLS + 1), "s.toml", Path::new("")).expect_err("one past");
        let msg = err.to_string();
        assert!(msg.starts_with("s.toml:2:1: error: central_url lists more than 8"), "{msg}");
        let cases = [
            ("[]", "central_url is an empty list"),
            ("[\"ftp://c:21\"]", "must start with http:// or https://"),
            ("[\"http://a:1\", \"central\"]", "\"central\" is not a URL"),
            ("[\"http://a:1\", \"http://a:1/\"]", "lists \"http://a:1/\" twice"),
            (
                "[\"http://a:1\", \"https://b:1\"]",
                "\"https://b:1\" is https but ca_cert is not set",
            ),
            ("5", "a list of URLs"),
        ];
        for (value, expected) in cases {
            let err = parse(&with_centrals(value), "s.toml", Path::new("")).expect_err(value);
            let msg = err.to_string();
            assert!(msg.starts_with("s.toml:2:"), "{value}: {msg}");
            assert!(msg.contains(expected), "{value}: {msg}");
        }
    }

    #[test]
    fn keys_accept_hex_and_base64_and_reject_wrong_lengths() {
        let hex_key = "11".repeat(32);
        assert_eq!(parse_key(&hex_key), Ok([0x11; 32]));
        use base64::Engine as _;
        let b64 = base64::engine::general_purpose::STANDARD.encode([7u8; 32]);
        assert_eq!(parse_key(&b64), Ok([7; 32]));
        assert!(parse_key("AAAA").expect_err("short").contains("3 bytes"));
        assert!(parse_key("not a key!").is_err());
    }
}
