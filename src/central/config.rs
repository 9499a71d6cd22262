//! `central.toml`: where central listens and keeps its data. Every key has a default, so
//! an empty file (or none) is a valid configuration.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::cap::CapConfig;

/// The commented example shipped with the program (`loa central --print-config`).
pub const EXAMPLE: &str = r#"# central.toml — the provincial server. Every key is optional; defaults shown.

# Address and port to listen on. Stations dial out to this.
listen = "0.0.0.0:8480"

# Where the database, the signing key and the audio library live.
data_dir = "/var/lib/loa/central"

# Largest audio upload accepted, in megabytes.
upload_limit_mb = 200

# Loudness every file is normalised towards (EBU R128 integrated, LUFS).
loudness_target_lufs = -16.0

# A manifest is valid this long after it is issued; central re-issues it at half-life,
# so a station that polls never holds an expiring one.
manifest_valid_hours = 168

# How far ahead central looks when ordering downloads (earliest needed first).
planning_horizon_hours = 48

# HTTPS: set both to serve TLS (rustls) instead of plain HTTP. PEM files; the chain
# starts with central's own certificate. Stations and the CLI then need the CA that
# signed it (station `ca_cert`, CLI `--ca-cert`). Signatures protect what plays either way.
# `loa central init --host NAME` (or `loa central tls --host NAME`) makes both in
# data_dir/tls/, and central uses them from there when these are not set.
# tls_cert = "/etc/loa/central-cert.pem"
# tls_key = "/etc/loa/central-key.pem"

# Plain HTTP from other machines is refused (tokens would cross the network in clear):
# only this machine may use plain HTTP. Set to true to accept it anyway (a warning is
# logged at start).
allow_plain_http = false

# Most connections open at once; more wait until one closes. Capped further by the
# open-file limit (`ulimit -n`, systemd LimitNOFILE), less 128 kept for files.
max_connections = 16384

# Seconds a client may take to send a request's headers (from connecting, or after the
# previous answer on the same connection); idle connections are closed after it.
header_timeout_secs = 20

# The stream servers a schedule may relay (`stream = "https://…"` items), by host name;
# a schedule naming any other host is refused when it is loaded. Empty: no relays.
relay_hosts = []

# /metrics (Prometheus text) is served on the main listener to admin and viewer tokens.
# To let a Prometheus on this machine scrape it without a token, give a second,
# loopback-only listener:
# metrics_listen = "127.0.0.1:9480"

# The operators' console (web pages: fleet, schedules, audio, bulletins, logs) is served
# on the main listener. To serve it on its own address instead (same TLS), set:
# console_listen = "0.0.0.0:8443"
# People log in with accounts made by `loa central user add`.

# Two-person rule: an emergency bulletin to more than one area waits until a second
# admin approves it (console, or `loa bulletin approve ID`). Test bulletins never wait.
two_person_rule = false

# Central's tables live in data_dir/central.sqlite. To run several central replicas on
# one PostgreSQL database instead (README "Scaling out"), name it here or in the
# environment (LOA_DATABASE_URL, which wins):
# database_url = "postgres://loa:PASSWORD@db.internal:5432/loa"
# Without sslmode the connection is plain TCP: keep the database on a private network.
# Over any other network, use TLS: add ?sslmode=require to the URL. The server's
# certificate is then verified (stricter than libpq's require) against the system's
# roots and this CA file (or LOA_DATABASE_CA), e.g. the province's own CA:
# database_ca_file = "/etc/loa/db-ca.pem"
# With a database_url, the audio library is in the database too and data_dir/audio is
# this replica's cache of it, at most this many MB (least recently used files leave):
# audio_cache_mb = 4096

# The province's time zone (IANA): the console shows times in it.
timezone = "Asia/Ho_Chi_Minh"

# Warnings from the disaster authorities (CAP 1.2), posted to POST /api/v1/cap by a
# `cap-source` token (or an admin) or polled from feeds. Each alert becomes a bulletin
# that waits for a person's approval (`loa bulletin approve ID`) unless an auto_air rule
# below matches it. Relative paths are relative to this file.
[cap]
# Info blocks in this order of preference ("vi" also takes "vi-VN"); none matching:
# the first block's language. The text is spoken by espeak-ng in that language.
languages = ["vi"]
# Priority when no priority_rule matches: "priority" (ahead of normal programmes,
# yields to emergencies) or "emergency".
default_priority = "priority"
# Expiry of an alert without <expires>, and the longest any CAP bulletin lives.
default_expiry = "6h"
max_expiry = "168h"
# Geocode valueNames that carry administrative-unit codes ([] = any). Stations get
# their codes and coordinates with `loa central station add … --lat --lon --geocode`.
geocode_names = []
# PEM files of the certificates or public keys whose XML signatures are trusted. A
# signed alert whose signature fails is refused whatever this says.
trusted_signers = []
# Play the attention tone before a CAP bulletin.
tone = true
# Atom or RSS indexes of CAP documents that central polls every poll_secs; at most
# max_documents_per_poll documents from each per poll. An https:// feed must be signed
# by an authority in feed_ca (a PEM bundle; central trusts no other roots).
feeds = []
poll_secs = 60
max_documents_per_poll = 20
feed_ca = "/etc/ssl/certs/ca-certificates.crt"

# urgency/severity/certainty -> priority: the first rule that matches wins; a missing
# list matches any value. Writing a rule replaces this default one.
[[cap.priority_rule]]
severity = ["Extreme", "Severe"]
urgency = ["Immediate", "Expected"]
priority = "emergency"

# Which CAP bulletins air without a person approving them (none by default). Each list
# missing = any value; trusted_signature (default true) also asks for a signature by a
# trusted_signers key.
# [[cap.auto_air]]
# senders = ["canhbao@kttv.gov.vn"]
# priority = ["emergency"]
# trusted_signature = true

# Alerts: what central watches, and where it tells a person. Each problem goes out once
# when it starts and once when it clears (`loa status --problems` lists the open ones).
[alerts]
check_secs = 30               # how often central looks
offline_after_mins = 10       # no heartbeat for this long: offline
clock_off_secs = 1.0          # a station's clock further off than this
cache_horizon_hours = 24      # the audio for this long ahead must be cached
emergency_grace_mins = 10     # an emergency not started at a target this long after the push
retry_secs = 30               # a failed notification is tried again after this, doubling (8 tries)
# webhook_url = "https://chat.example.vn/hooks/loa"   # JSON POST per event
# webhook_timeout_secs = 10
# E-mail over SMTP with TLS: "implicit" (port 465) or "starttls" (port 587).
# smtp_host = "mail.example.vn"
# smtp_port = 465
# smtp_tls = "implicit"
# smtp_username = "loa@example.vn"
# smtp_password = "…"
# smtp_ca_cert = "/etc/loa/mail-ca.pem"   # a CA to trust besides the system's
# email_from = "loa@example.vn"
# email_to = ["it@example.vn"]
"#;

/// Central's configuration.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CentralConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    pub upload_limit_mb: u64,
    pub loudness_target_lufs: f64,
    pub manifest_valid_hours: u32,
    pub planning_horizon_hours: u32,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    pub allow_plain_http: bool,
    pub max_connections: usize,
    pub header_timeout_secs: u64,
    /// CAP alerts: priority table, trusted signers, auto-air rules, feeds.
    pub cap: CapConfig,
    /// A second listener serving `/metrics` without a token; loopback addresses only.
    pub metrics_listen: Option<SocketAddr>,
    /// What is watched, and where alerts go (`central::alerts`).
    pub alerts: super::alerts::AlertsConfig,
    /// The hosts a schedule's `stream = "…"` items may relay from (`central::relay_hosts`).
    pub relay_hosts: Vec<String>,
    /// The operators' console on its own address (HTTP or HTTPS as the main listener);
    /// unset: on the main listener.
    pub console_listen: Option<SocketAddr>,
    /// An emergency to more than one area waits for a second admin's approval.
    pub two_person_rule: bool,
    /// The province's time zone: the console shows times in it.
    pub timezone: chrono_tz::Tz,
    /// PostgreSQL instead of the embedded SQLite file (`None`); see [`Self::database_url`].
    pub database_url: Option<String>,
    /// With `database_url` and `sslmode=require`: the CA certificate (PEM) that issued the
    /// database server's certificate, besides the system's roots; see
    /// [`Self::database_ca_file`].
    pub database_ca_file: Option<PathBuf>,
    /// With `database_url`: the most this replica keeps of the library on its own disk
    /// (a cache; the database holds every file).
    pub audio_cache_mb: u64,
}

impl Default for CentralConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([0, 0, 0, 0], 8480)),
            data_dir: PathBuf::from("/var/lib/loa/central"),
            upload_limit_mb: 200,
            loudness_target_lufs: -16.0,
            manifest_valid_hours: 168,
            planning_horizon_hours: 48,
            tls_cert: None,
            tls_key: None,
            allow_plain_http: false,
            max_connections: 16_384,
            header_timeout_secs: 20,
            cap: CapConfig::default(),
            metrics_listen: None,
            alerts: super::alerts::AlertsConfig::default(),
            relay_hosts: Vec::new(),
            console_listen: None,
            two_person_rule: false,
            timezone: crate::schedule::DEFAULT_TIMEZONE,
            database_url: None,
            database_ca_file: None,
            audio_cache_mb: 4096,
        }
    }
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read {path}: {source}")]
    Read { path: String, source: std::io::Error },
    #[error("{path}: {message}")]
    Parse { path: String, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
}

impl CentralConfig {
    /// The PostgreSQL URL central's tables are in: `LOA_DATABASE_URL` when set (so a
    /// password need not be written into central.toml), else `database_url`; `None`:
    /// the embedded SQLite file in `data_dir`.
    pub fn database_url(&self) -> Option<String> {
        std::env::var("LOA_DATABASE_URL")
            .ok()
            .filter(|url| !url.trim().is_empty())
            .or_else(|| self.database_url.clone())
    }

    /// The CA file the database server's certificate is checked against (with the
    /// system's roots): `LOA_DATABASE_CA` when set, as `LOA_DATABASE_URL` overrides
    /// `database_url`, else `database_ca_file`.
    pub fn database_ca_file(&self) -> Option<PathBuf> {
        std::env::var_os("LOA_DATABASE_CA")
            .filter(|path| !path.is_empty())
            .map(PathBuf::from)
            .or_else(|| self.database_ca_file.clone())
    }

    /// Reads a config file; a relative `data_dir` (and every other path in it) is taken
    /// relative to the file.
    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| ConfigError::Read { path: shown.clone(), source })?;
        let mut config = Self::parse(&text, &shown)?;
        if let Some(dir) = path.parent() {
            let paths = [
                Some(&mut config.data_dir),
                config.tls_cert.as_mut(),
                config.tls_key.as_mut(),
                config.alerts.smtp_ca_cert.as_mut(),
                config.database_ca_file.as_mut(),
            ]
            .into_iter()
            .flatten()
            .chain(config.cap.trusted_signers.iter_mut())
            .chain(std::iter::once(&mut config.cap.feed_ca));
            for p in paths {
                if p.is_relative() {
                    *p = dir.join(&*p);
                }
            }
        }
        Ok(config)
    }

    /// Parses config text; `origin` names it in errors (with line and column).
    pub fn parse(text: &str, origin: &str) -> Result<Self, ConfigError> {
        let config: Self = toml::from_str(text).map_err(|e| {
            let (line, column) =
                e.span().map(|span| line_column(text, span.start)).unwrap_or((1, 1));
            ConfigError::Parse {
                path: format!("{origin}:{line}:{column}"),
                message: e.message().to_string(),
            }
        })?;
        let invalid = |message: &str| ConfigError::Invalid {
            path: origin.to_string(),
            message: message.to_string(),
        };
        if config.upload_limit_mb == 0 {
            return Err(invalid("upload_limit_mb must be at least 1"));
        }
        if config.manifest_valid_hours == 0 {
            return Err(invalid("manifest_valid_hours must be at least 1"));
        }
        if !(-70.0..=0.0).contains(&config.loudness_target_lufs) {
            return Err(invalid("loudness_target_lufs must be between -70 and 0"));
        }
        if config.tls_cert.is_some() != config.tls_key.is_some() {
            return Err(invalid("set both tls_cert and tls_key for HTTPS, or neither"));
        }
        if config.max_connections == 0 {
            return Err(invalid("max_connections must be at least 1"));
        }
        if !(1..=300).contains(&config.header_timeout_secs) {
            return Err(invalid("header_timeout_secs must be between 1 and 300"));
        }
        config.cap.check().map_err(|e| invalid(&format!("[cap]: {e}")))?;
        if config.metrics_listen.is_some_and(|a| !a.ip().is_loopback()) {
            return Err(invalid(
                "metrics_listen serves /metrics without a token: give a loopback address (127.0.0.1:9480), or read /metrics on the main listener with an admin or viewer token",
            ));
        }
        config.alerts.check().map_err(|m| invalid(&m))?;
        super::relay_hosts::check_list(&config.relay_hosts).map_err(|m| invalid(&m))?;
        Ok(config)
    }

    /// The certificate and key central serves HTTPS with: `tls_cert`/`tls_key`, else
    /// the pair `loa central init --host` made in the data directory, else none.
    pub fn tls_files(&self) -> Option<(PathBuf, PathBuf)> {
        if let (Some(cert), Some(key)) = (&self.tls_cert, &self.tls_key) {
            return Some((cert.clone(), key.clone()));
        }
        let dir = self.data_dir.join(super::tls::TLS_DIR);
        let (cert, key) = (dir.join(super::tls::CERT_FILE), dir.join(super::tls::KEY_FILE));
        (cert.is_file() && key.is_file()).then_some((cert, key))
    }

    pub fn upload_limit_bytes(&self) -> u64 {
        self.upload_limit_mb.saturating_mul(1024 * 1024)
    }
}

fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let before = text.get(..offset.min(text.len())).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map(|l| l.chars().count()).unwrap_or(0) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn example_parses_to_the_defaults() {
        assert_eq!(CentralConfig::parse(EXAMPLE, "example").unwrap(), CentralConfig::default());
        assert_eq!(CentralConfig::parse("", "empty").unwrap(), CentralConfig::default());
    }

    #[test]
    fn errors_name_the_place() {
        let err = CentralConfig::parse("listen = \"x\"\n", "c.toml").unwrap_err().to_string();
        assert!(err.starts_with("c.toml:1:10"), "{err}");
        let err = CentralConfig::parse("\nlisen = 1\n", "c.toml").unwrap_err().to_string();
        assert!(err.starts_with("c.toml:2:1") && err.contains("lisen"), "{err}");
        let err = CentralConfig::parse("tls_cert = \"a\"\n", "c.toml").unwrap_err().to_string();
        assert!(err.contains("set both tls_cert and tls_key"), "{err}");
        let err = CentralConfig::parse("[cap]\npoll_secs = 1\n", "c.toml").unwrap_err().to_string();
        assert!(err.starts_with("c.toml: [cap]: poll_secs must be"), "{err}");
    }

    #[test]
    fn cap_paths_are_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.toml");
        std::fs::write(&path, "[cap]\ntrusted_signers = [\"signers.pem\", \"/etc/x.pem\"]\n")
            .unwrap();
        let config = CentralConfig::load(&path).unwrap();
        assert_eq!(
            config.cap.trusted_signers,
            [dir.path().join("signers.pem"), PathBuf::from("/etc/x.pem")]
        );
        assert_eq!(config.cap.feed_ca, PathBuf::from("/etc/ssl/certs/ca-certificates.crt"));
    }

    #[test]
    fn the_database_ca_file_is_relative_to_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("central.toml");
        std::fs::write(&path, "database_ca_file = \"db-ca.pem\"\n").unwrap();
        let config = CentralConfig::load(&path).unwrap();
        assert_eq!(config.database_ca_file, Some(dir.path().join("db-ca.pem")));
    }
}
