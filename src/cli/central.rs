//! `loa central …`: set up and run the provincial server.
//!
//! - `loa central init [--data-dir D] [--host NAME]... [--format text|json]`: data
//!   directory, signing key (0600), first admin token; prints the public key to pin in
//!   every station config; with --host, the province CA and central's HTTPS certificate
//!   (`central::tls`). `--format json` prints the same fields as one [`Initialised`].
//! - `loa central tls --host NAME...`: (re)issue central's certificate.
//! - `loa central station add ID --name N --district D [--lat --lon] [--geocode CODE]…
//!   [--format text|json]`: prints the station's enrolment code and its token once (as a
//!   [`StationAdded`] with `--format json`); `station place ID …` sets where a station is
//!   (for the areas of CAP alerts).
//! - `loa central token add --role admin|district:NAME|viewer|cap-source`: prints the
//!   token once.
//! - `loa central user add|passwd|disable|enable|list`, `loa central audit`: people of
//!   the console and the audit trail (`super::user`).
//! - `loa central example-config`: the commented configuration with its defaults.
//! - `loa central [--config FILE] [--listen ADDR]`: serve.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde::{Deserialize, Serialize};

use super::remote;
use crate::central::{self, CentralConfig, config::EXAMPLE};
use crate::clock::{SharedClock, SystemClock};
use crate::store::{Role, Station};

#[derive(Debug, Args)]
pub struct CentralArgs {
    #[command(subcommand)]
    pub command: Option<CentralCommand>,
    /// Configuration file (TOML; see `loa central example-config`).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Data directory (overrides `data_dir` in the config).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Address to listen on (overrides `listen` in the config).
    #[arg(long)]
    pub listen: Option<SocketAddr>,
}

#[derive(Debug, Subcommand)]
pub enum CentralCommand {
    /// Create the data directory, the province's signing key and a first admin token;
    /// with --host, also the province CA and central's HTTPS certificate.
    Init {
        /// A name or address stations reach central by (repeat for each): central then
        /// serves HTTPS with a certificate for them, signed by a new province CA.
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
        /// `json`: one object with the fields the text lists (for scripts and tests).
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// (Re)issue central's HTTPS certificate for these names, signed by the province CA
    /// (made now if there is none). Restart central to use it.
    Tls {
        #[arg(long = "host", value_name = "NAME", required = true)]
        hosts: Vec<String>,
    },
    /// Manage stations.
    Station {
        #[command(subcommand)]
        command: StationCommand,
    },
    /// Manage operator tokens.
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// Manage people who log in to the console.
    User {
        #[command(subcommand)]
        command: super::user::UserCommand,
    },
    /// Show the audit trail (every operator action, newest first).
    Audit {
        /// How many lines (1 to 10000).
        #[arg(long, default_value_t = 100)]
        limit: usize,
    },
    /// Replace the province's signing key (central stopped; see SECURITY.md).
    RotateKey,
    /// Copy this central's SQLite data (stations, tokens, people, library with its audio,
    /// schedules, manifests, bulletins, playlog, …) into an empty PostgreSQL database and
    /// check the copy (row counts, playlog chains). Stop central first; afterwards set
    /// `database_url` in central.toml (or LOA_DATABASE_URL) and start it again.
    Migrate {
        /// The PostgreSQL database: `postgres://USER:PASSWORD@HOST:PORT/DBNAME`
        /// (`?sslmode=require` for TLS, checked against the system's roots and
        /// `database_ca_file`/LOA_DATABASE_CA).
        #[arg(long, value_name = "URL")]
        to: String,
    },
    /// Print the commented example configuration (all defaults).
    ExampleConfig,
}

#[derive(Debug, Subcommand)]
pub enum StationCommand {
    /// Register a station and print its token (shown once).
    Add {
        /// Station id: lowercase letters, digits, '-' or '_'.
        id: String,
        #[arg(long)]
        name: String,
        /// The station's area: a district (`"Tri Tôn"`) or a path down to its commune
        /// (`"Tri Tôn/Ba Chúc"`); district roles and targets cover every area under them.
        #[arg(long, visible_alias = "area")]
        district: String,
        #[command(flatten)]
        place: PlaceArgs,
        /// `json`: `{"station": ID, "code": CODE, "token": TOKEN}`.
        #[arg(long, value_enum, default_value_t = Format::Text)]
        format: Format,
    },
    /// Set where a station is, for CAP alerts' areas: coordinates (a polygon or circle
    /// selects the stations inside it) and admin-unit codes (a geocode selects by code).
    Place {
        /// Station id.
        id: String,
        #[command(flatten)]
        place: PlaceArgs,
    },
    /// Issue a new one-time enrolment code for a station (valid 24 h) and print it.
    Code {
        /// Station id.
        id: String,
    },
    /// Give a station a new token (the old one is refused at once) and print it.
    RotateToken {
        /// Station id.
        id: String,
    },
}

/// Where a station is (WGS 84 degrees; admin-unit codes).
#[derive(Debug, Clone, Args)]
pub struct PlaceArgs {
    /// Latitude in degrees, -90 to 90 (with --lon).
    #[arg(long, requires = "lon", allow_negative_numbers = true)]
    pub lat: Option<f64>,
    /// Longitude in degrees, -180 to 180 (with --lat).
    #[arg(long, requires = "lat", allow_negative_numbers = true)]
    pub lon: Option<f64>,
    /// An administrative-unit code a CAP geocode may name (the commune's, …); repeat
    /// for several.
    #[arg(long = "geocode", value_name = "CODE")]
    pub geocodes: Vec<String>,
}

impl PlaceArgs {
    fn place(&self, id: &str) -> anyhow::Result<crate::store::StationPlace> {
        if let Some(lat) = self.lat
            && !(lat.is_finite() && (-90.0..=90.0).contains(&lat))
        {
            anyhow::bail!("--lat {lat} is not a latitude: give -90 to 90 degrees (WGS 84)");
        }
        if let Some(lon) = self.lon
            && !(lon.is_finite() && (-180.0..=180.0).contains(&lon))
        {
            anyhow::bail!("--lon {lon} is not a longitude: give -180 to 180 degrees (WGS 84)");
        }
        for code in &self.geocodes {
            let plain = !code.is_empty()
                && code.len() <= 64
                && code.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
            if !plain {
                anyhow::bail!(
                    "--geocode {code:?}: give 1-64 letters, digits, '-', '_' or '.' (e.g. 30280)"
                );
            }
        }
        Ok(crate::store::StationPlace {
            station_id: id.to_string(),
            lat: self.lat,
            lon: self.lon,
            geocodes: self.geocodes.clone(),
        })
    }

    fn is_empty(&self) -> bool {
        self.lat.is_none() && self.lon.is_none() && self.geocodes.is_empty()
    }

    fn describe(&self) -> String {
        let mut parts = Vec::new();
        if let (Some(lat), Some(lon)) = (self.lat, self.lon) {
            parts.push(format!("at {lat},{lon}"));
        }
        if !self.geocodes.is_empty() {
            parts.push(format!("codes {}", self.geocodes.join(", ")));
        }
        if parts.is_empty() {
            "no place (CAP areas never select it)".into()
        } else {
            parts.join(", ")
        }
    }
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an operator token and print it (shown once).
    Add {
        /// admin, district:NAME, viewer, or cap-source (may only post CAP alerts).
        #[arg(long, value_parser = |s: &str| s.parse::<Role>())]
        role: Role,
        /// A note saying whose token this is.
        #[arg(long, default_value = "")]
        label: String,
    },
    /// Revoke every operator token created with this label.
    Revoke {
        #[arg(long)]
        label: String,
    },
}

/// How `init` and `station add` print what they made.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Text,
    Json,
}

/// What `loa central init --format json` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Initialised {
    pub data_dir: PathBuf,
    /// The province's public key (hex): `province_key` in every station config.
    pub public_key: String,
    /// The first admin token, shown once.
    pub admin_token: String,
    /// The CA and certificate made for `--host`; none without it (plain HTTP, loopback).
    pub tls: Option<TlsIssued>,
}

/// The HTTPS files `init --host` made.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TlsIssued {
    pub new_ca: bool,
    pub ca_cert: PathBuf,
    pub ca_fingerprint: String,
    pub hosts: Vec<String>,
    pub cert: PathBuf,
}

impl From<&central::tls::Issued> for TlsIssued {
    fn from(issued: &central::tls::Issued) -> Self {
        Self {
            new_ca: issued.new_ca,
            ca_cert: issued.ca_cert.clone(),
            ca_fingerprint: issued.ca_fingerprint.clone(),
            hosts: issued.hosts.clone(),
            cert: issued.cert.clone(),
        }
    }
}

/// What `loa central station add --format json` prints.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StationAdded {
    pub station: String,
    /// The one-time enrolment code (24 h) for `loa station enroll`.
    pub code: String,
    /// The station's token, shown once.
    pub token: String,
}

fn print_json(value: &impl Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

pub fn run(args: CentralArgs) -> ExitCode {
    match run_inner(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => remote::report(&e),
    }
}

fn config(args: &CentralArgs) -> anyhow::Result<CentralConfig> {
    let mut config = match &args.config {
        Some(path) => CentralConfig::load(path)?,
        None => CentralConfig::default(),
    };
    if let Some(dir) = &args.data_dir {
        config.data_dir = dir.clone();
    }
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    Ok(config)
}

fn run_inner(args: CentralArgs) -> anyhow::Result<()> {
    let config = config(&args)?;
    let store = || {
        if !config.data_dir.join(central::KEY_FILE).exists() {
            return Err(central::CentralError::NotInitialised(
                config.data_dir.display().to_string(),
            )
            .into());
        }
        central::open_store(
            &config.data_dir,
            config.database_url().as_deref(),
            config.database_ca_file().as_deref(),
        )
        .map_err(anyhow::Error::from)
    };
    match args.command {
        Some(CentralCommand::Init { hosts, format }) => {
            let done = central::init_with(
                &config.data_dir,
                config.database_url().as_deref(),
                config.database_ca_file().as_deref(),
            )?;
            if format == Format::Json {
                let tls = if hosts.is_empty() {
                    None
                } else {
                    let issued = central::tls::issue(
                        &config.data_dir,
                        &hosts,
                        chrono::Utc::now().timestamp(),
                    )?;
                    Some(TlsIssued::from(&issued))
                };
                return print_json(&Initialised {
                    data_dir: config.data_dir.clone(),
                    public_key: done.public_key,
                    admin_token: done.admin_token,
                    tls,
                });
            }
            println!("data directory: {}", config.data_dir.display());
            println!("public key (pin it in every station config): {}", done.public_key);
            println!("admin token (shown once, keep it safe): {}", done.admin_token);
            if hosts.is_empty() {
                println!(
                    "no --host given: central serves plain HTTP, to this machine only; before stations \
                     connect over the network run `loa central tls --host NAME` (the name or address they use)"
                );
            } else {
                print_tls(&central::tls::issue(
                    &config.data_dir,
                    &hosts,
                    chrono::Utc::now().timestamp(),
                )?);
            }
            Ok(())
        }
        Some(CentralCommand::Tls { hosts }) => {
            if !config.data_dir.join(central::KEY_FILE).exists() {
                return Err(central::CentralError::NotInitialised(
                    config.data_dir.display().to_string(),
                )
                .into());
            }
            print_tls(&central::tls::issue(
                &config.data_dir,
                &hosts,
                chrono::Utc::now().timestamp(),
            )?);
            println!("restart central to serve the new certificate");
            Ok(())
        }
        Some(CentralCommand::Station {
            command: StationCommand::Add { id, name, district, place, format },
        }) => {
            let where_ = place.place(&id)?;
            let station = Station { id: id.clone(), name, district };
            let store = store()?;
            let token = central::add_station(&*store, &station)?;
            if !place.is_empty() {
                store.set_station_place(&where_)?;
            }
            let code = central::enrol::issue_code(&*store, &id, chrono::Utc::now())?;
            if format == Format::Json {
                return print_json(&StationAdded { station: id, code, token });
            }
            println!("station {id} added");
            print_code(&code);
            println!(
                "its token (shown once; for a station.toml written by hand — `loa station enroll` fetches a new one):"
            );
            println!("{token}");
            Ok(())
        }
        Some(CentralCommand::Station { command: StationCommand::Code { id } }) => {
            let code = central::enrol::issue_code(&*store()?, &id, chrono::Utc::now())?;
            print_code(&code);
            Ok(())
        }
        Some(CentralCommand::Station { command: StationCommand::Place { id, place } }) => {
            let where_ = place.place(&id)?;
            if !store()?.set_station_place(&where_)? {
                return Err(central::CentralError::NoSuchStation(id).into());
            }
            println!("station {id}: {}", place.describe());
            Ok(())
        }
        Some(CentralCommand::Token { command: TokenCommand::Add { role, label } }) => {
            let token = central::add_operator(&*store()?, &role, &label)?;
            println!("{role} token (shown once):");
            println!("{token}");
            Ok(())
        }
        Some(CentralCommand::Station { command: StationCommand::RotateToken { id } }) => {
            let token = central::rotate_station_token(&*store()?, &id)?;
            println!("station {id}: old token refused from now on; new token (shown once):");
            println!("{token}");
            Ok(())
        }
        Some(CentralCommand::Token { command: TokenCommand::Revoke { label } }) => {
            let n = central::revoke_operators(&*store()?, &label)?;
            if n == 0 {
                anyhow::bail!("no operator token has the label {label:?}: nothing revoked");
            }
            println!("revoked {n} token(s) labelled {label:?}");
            Ok(())
        }
        Some(CentralCommand::User { command }) => super::user::run(&*store()?, command),
        Some(CentralCommand::Audit { limit }) => super::user::audit(&*store()?, limit),
        Some(CentralCommand::Migrate { to }) => {
            if !config.data_dir.join(central::KEY_FILE).exists() {
                return Err(central::CentralError::NotInitialised(
                    config.data_dir.display().to_string(),
                )
                .into());
            }
            let pg =
                crate::store::PgStore::connect_with_ca(&to, config.database_ca_file().as_deref())?;
            let copied = crate::store::copy::sqlite_to_postgres(
                &config.data_dir.join(central::DB_FILE),
                &config.data_dir.join(central::AUDIO_DIR),
                &pg,
            )?;
            for (table, rows) in &copied.rows {
                println!("{table:<24} {rows:>10} rows");
            }
            println!(
                "copied and checked: {} library files, {} playlog chains intact",
                copied.audio_files, copied.playlog_chains
            );
            println!(
                "next: set database_url = \"{}\" in central.toml (or LOA_DATABASE_URL) and \
                 start central; keep {} as a backup",
                pg.shown_url(),
                config.data_dir.join(central::DB_FILE).display()
            );
            Ok(())
        }
        Some(CentralCommand::RotateKey) => {
            let public = central::rotate_key(&config.data_dir, chrono::Utc::now().timestamp())?;
            println!("new public key (set province_key to it in every station config): {public}");
            println!(
                "the old key is kept beside it as {}.old-*; restart central now",
                central::KEY_FILE
            );
            Ok(())
        }
        Some(CentralCommand::ExampleConfig) => {
            print!("{EXAMPLE}");
            Ok(())
        }
        None => serve(config),
    }
}

/// An enrolment code and how to use it.
fn print_code(code: &str) {
    println!(
        "enrolment code (once, within 24 h; at the station: loa station enroll --central https://… --code {code}): {code}"
    );
}

/// What `init --host` and `tls` made, and what to do with it.
fn print_tls(issued: &central::tls::Issued) {
    if issued.new_ca {
        println!("province CA made: {}", issued.ca_cert.display());
    }
    println!(
        "CA certificate (copy it to every station as ca_cert, and give it to the CLI as --ca-cert): {}",
        issued.ca_cert.display()
    );
    println!("CA fingerprint (SHA-256): {}", issued.ca_fingerprint);
    println!(
        "central serves HTTPS for: {} (certificate {})",
        issued.hosts.join(", "),
        issued.cert.display()
    );
}

fn serve(config: CentralConfig) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let clock: SharedClock = Arc::new(SystemClock);
        let listen = config.listen;
        let state = central::open(config, clock)?;
        // Off the async workers and not awaited: a large library decoding again after
        // an upgrade must not hold up the stations (see `central::gains`).
        let checked = state.clone();
        tokio::task::spawn_blocking(move || {
            central::gains::refresh_logged(
                checked.store.as_ref(),
                &checked.audio_dir(),
                checked.config.loudness_target_lufs,
            )
        });
        let listener = central::bind(listen).await?;
        let addr = listener.local_addr()?;
        let tls = match state.config.tls_files() {
            Some((cert, key)) => Some(central::tls::acceptor(&cert, &key)?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        eprintln!("loa central listening on {scheme}://{addr}");
        eprintln!("public key: {}", state.key.public_hex());
        // Under systemd (Type=notify): READY=1 now that it serves, STATUS= the fleet in
        // one line, WATCHDOG=1 while the runtime turns and the store answers.
        let _watch = central::supervise(state.clone(), format!("{scheme}://{addr}"));
        // Alerts: raised and cleared every check_secs, sent by webhook and e-mail.
        let channels = state.config.alerts.channels();
        tracing::info!(
            channels = %if channels.is_empty() { "none (loa status --problems only)".to_string() } else { channels.join(", ") },
            "watching the fleet for problems every {} s",
            state.config.alerts.check_secs
        );
        tokio::spawn(central::alerts::Watcher::new(state.clone()).run());
        if let Some(metrics_addr) = state.config.metrics_listen {
            let listener = central::bind(metrics_addr).await?;
            eprintln!("loa central metrics on http://{}/metrics", listener.local_addr()?);
            let router = central::metrics::open_router(state.clone());
            tokio::spawn(async move {
                if let Err(e) = axum::serve(listener, router).await {
                    tracing::error!("metrics listener: {e}");
                }
            });
        }
        if let Some(console_addr) = state.config.console_listen {
            let listener = central::bind(console_addr).await?;
            eprintln!("loa central console on {scheme}://{}/", listener.local_addr()?);
            let (state, tls) = (state.clone(), tls.clone());
            tokio::spawn(async move {
                if let Err(e) =
                    central::serve_console(listener, tls, state, super::shutdown_signal()).await
                {
                    tracing::error!("console listener: {e}");
                }
            });
        }
        match tls {
            Some(acceptor) => {
                central::serve_tls(listener, acceptor, state, super::shutdown_signal()).await?
            }
            None => central::serve(listener, state, super::shutdown_signal()).await?,
        }
        eprintln!("loa central stopped");
        Ok(())
    })
}
