//! `loa cap check FILE...`: validate CAP alerts and show the bulletin each would make,
//! or why none. All the meaning lives in [`crate::cap`]; this module reads the files
//! named on the command line and prints.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::{Args, Subcommand};

use crate::cap::bulletin::CapBulletinPlan;
use crate::cap::{self, CapConfig, CapStation, Decision, Diagnostic, SignatureOutcome, TrustStore};
use crate::clock::{Clock, SystemClock};

#[derive(Debug, Subcommand)]
pub enum CapCommand {
    /// Validate CAP 1.2 (or 1.1) alerts; print the bulletin each would make, or why none.
    Check(CheckArgs),
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// CAP documents (XML).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Stations with coordinates and admin-unit codes (TOML, `[[station]]` with id, lat,
    /// lon, codes); without it the areas that would select stations are shown.
    #[arg(long)]
    pub stations: Option<PathBuf>,
    /// A trusted signer: PEM certificate(s) or public key(s). Repeat for several.
    #[arg(long = "trust", value_name = "PEM")]
    pub trust: Vec<PathBuf>,
    /// A TOML file with a [cap] table (e.g. central.toml): priority rules, languages,
    /// expiry, trusted_signers. Default settings without it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// The instant expiry is judged at: RFC 3339, or `sent` for each alert's own sending
    /// time (to look at old alerts). Default: now.
    #[arg(long, value_parser = parse_at)]
    pub now: Option<At>,
    /// Time zone for the times shown.
    #[arg(long, default_value = "Asia/Ho_Chi_Minh")]
    pub tz: Tz,
}

#[derive(Debug, Clone, Copy)]
pub enum At {
    Instant(DateTime<Utc>),
    Sent,
}

fn parse_at(s: &str) -> Result<At, String> {
    if s == "sent" {
        return Ok(At::Sent);
    }
    DateTime::parse_from_rfc3339(s).map(|t| At::Instant(t.to_utc())).map_err(|e| {
        format!("{e}: write an RFC 3339 instant (e.g. 2026-12-01T05:00:00+07:00) or `sent`")
    })
}

pub fn run(command: CapCommand) -> ExitCode {
    match command {
        CapCommand::Check(args) => {
            let setup = match Setup::load(&args) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    return ExitCode::from(2);
                }
            };
            match check(&args, &setup) {
                Ok(code) => code,
                Err(e) => {
                    eprintln!("error: {e:#}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// What the options name, read once.
struct Setup {
    config: CapConfig,
    trust: TrustStore,
    stations: Option<Vec<CapStation>>,
}

impl Setup {
    fn load(args: &CheckArgs) -> anyhow::Result<Setup> {
        let mut config = CapConfig::default();
        let mut trust_files: Vec<PathBuf> = args.trust.clone();
        if let Some(path) = &args.config {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            let table: toml::Table =
                toml::from_str(&text).with_context(|| format!("{} is not TOML", path.display()))?;
            let Some(cap) = table.get("cap") else {
                anyhow::bail!("{} has no [cap] table", path.display());
            };
            config =
                cap.clone().try_into().with_context(|| format!("{}: [cap]", path.display()))?;
            config.check().map_err(|e| anyhow::anyhow!("{}: [cap]: {e}", path.display()))?;
            let base = path.parent().unwrap_or(Path::new(""));
            trust_files.extend(config.trusted_signers.iter().map(|p| base.join(p)));
        }
        let mut trust = TrustStore::new();
        for path in &trust_files {
            let pem = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read trusted signer {}", path.display()))?;
            trust.add_pem(&path.display().to_string(), &pem).map_err(anyhow::Error::msg)?;
        }
        let stations = match &args.stations {
            None => None,
            Some(path) => {
                let text = std::fs::read_to_string(path)
                    .with_context(|| format!("cannot read {}", path.display()))?;
                let list = cap::stations_from_toml(&text)
                    .map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
                Some(list)
            }
        };
        Ok(Setup { config, trust, stations })
    }
}

fn check(args: &CheckArgs, setup: &Setup) -> anyhow::Result<ExitCode> {
    let mut out = std::io::stdout().lock();
    let (mut bulletins, mut without, mut refused) = (0, 0, 0);
    for file in &args.files {
        let shown = file.display().to_string();
        let bytes = match read_bounded(file) {
            Ok(b) => b,
            Err(message) => {
                writeln!(out, "{shown}: error: {message}")?;
                refused += 1;
                continue;
            }
        };
        let checked = cap::check(&bytes, &setup.trust);
        for d in &checked.diagnostics {
            writeln!(out, "{}", line(&shown, d))?;
        }
        let Some(alert) = &checked.alert else {
            refused += 1;
            continue;
        };
        let now = match args.now {
            Some(At::Instant(t)) => t,
            Some(At::Sent) => alert.sent.to_utc(),
            None => SystemClock.now(),
        };
        let decision = cap::plan(alert, setup.stations.as_deref(), &setup.config, now);
        let key = alert.key();
        let about = format!(
            "{key} (CAP {}, {} {}{})",
            alert.version,
            alert.status,
            alert.msg_type,
            alert.infos.first().map_or(String::new(), |i| format!(", event {:?}", i.event))
        );
        let signature = describe_signature(&checked.signature);
        match &decision {
            Decision::Bulletin(plan) => {
                bulletins += 1;
                let whom = if setup.stations.is_some() {
                    format!(" for {} {}", plan.targets.len(), plural(plan.targets.len(), "station"))
                } else {
                    String::new()
                };
                writeln!(
                    out,
                    "{shown}: bulletin: {}{whom}, expires {}",
                    plan.priority,
                    local(plan.expires_at, args.tz)
                )?;
                field(&mut out, "alert", &about)?;
                field(&mut out, "signature", &signature)?;
                write_plan(&mut out, plan, setup.stations.is_some(), args.tz)?;
            }
            Decision::NoBulletin { reason, cancels, .. } => {
                without += 1;
                writeln!(out, "{shown}: no bulletin: {reason}")?;
                field(&mut out, "alert", &about)?;
                field(&mut out, "signature", &signature)?;
                for c in cancels {
                    field(&mut out, "ends", &format!("the bulletin of {c}"))?;
                }
            }
        }
    }
    let n = args.files.len();
    let mut parts = Vec::new();
    if bulletins > 0 {
        parts.push(format!("{bulletins} {}", plural(bulletins, "bulletin")));
    }
    if without > 0 {
        parts.push(format!("{without} without a bulletin"));
    }
    if refused > 0 {
        parts.push(format!("{refused} refused"));
    }
    writeln!(out, "checked {n} {}: {}", plural(n, "file"), parts.join(", "))?;
    Ok(if refused > 0 { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// Reads a file, refusing one larger than a CAP document may be without reading it.
fn read_bounded(path: &Path) -> Result<Vec<u8>, String> {
    use std::io::Read;
    let file = std::fs::File::open(path).map_err(|e| format!("cannot read this file: {e}"))?;
    let limit = cap::xml::MAX_DOCUMENT_BYTES as u64;
    let mut bytes = Vec::new();
    file.take(limit + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| format!("cannot read this file: {e}"))?;
    if bytes.len() as u64 > limit {
        return Err(format!(
            "document: larger than the {limit} bytes (5 MiB) a CAP document may have: refused unread"
        ));
    }
    Ok(bytes)
}

fn line(file: &str, d: &Diagnostic) -> String {
    let level = if d.is_error() { "error" } else { "warning" };
    format!("{file}: {level}: {d}")
}

fn describe_signature(report: &cap::SignatureReport) -> String {
    if !report.is_signed() {
        return "none".to_string();
    }
    report
        .checks
        .iter()
        .map(|c| match &c.outcome {
            SignatureOutcome::Trusted { signer } => {
                format!("{}: valid, trusted signer {signer}", c.path)
            }
            SignatureOutcome::NotTrusted { signer } => {
                format!(
                    "{}: valid, not trusted (signed by {signer}; --trust its certificate)",
                    c.path
                )
            }
            SignatureOutcome::Refused { reason } => format!("{}: refused: {reason}", c.path),
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn write_plan(
    out: &mut impl Write,
    plan: &CapBulletinPlan,
    with_stations: bool,
    tz: Tz,
) -> std::io::Result<()> {
    field(out, "priority", &format!("{} ({})", plan.priority, plan.priority_reason))?;
    if with_stations {
        field(out, "targets", &plan.targets.join(", "))?;
    } else {
        field(out, "targets", "no --stations given: the stations inside these areas")?;
    }
    for a in &plan.areas {
        let mut text = format!("{} {:?}", a.path, a.desc);
        for s in &a.shapes {
            text.push('\n');
            text.push_str(s);
        }
        field(out, "area", &text)?;
    }
    field(out, "language", &format!("{} (voice {})", plan.language, plan.voice))?;
    field(out, "title", &plan.title)?;
    field(out, "text", &plan.text)?;
    field(out, "expires", &local(plan.expires_at, tz))?;
    for r in &plan.replaces {
        field(out, "replaces", &format!("the bulletin of {r}"))?;
    }
    for n in &plan.notes {
        field(out, "note", n)?;
    }
    Ok(())
}

/// `  name       value`, continuation lines indented under the value.
fn field(out: &mut impl Write, name: &str, value: &str) -> std::io::Result<()> {
    let mut lines = value.lines();
    writeln!(out, "  {name:<10} {}", lines.next().unwrap_or(""))?;
    for l in lines {
        writeln!(out, "  {:<10} {l}", "")?;
    }
    Ok(())
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S %:z").to_string()
}

fn plural(n: usize, word: &str) -> String {
    if n == 1 { word.to_string() } else { format!("{word}s") }
}
