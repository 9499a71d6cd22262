//! `loa bulletin push|cancel|approve|list|show`: urgent bulletins from the province (and
//! those CAP alerts made), and where each one got to at every target station.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, anyhow, bail};
use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use clap::{Args, Subcommand, ValueEnum};

use super::local_time;
use super::remote::{self, Remote, RemoteArgs, Retry};
use crate::protocol::{
    AlertRecord, ApprovalState, BulletinInfo, BulletinPriority, DeliveryState, PushBulletinRequest,
    PushBulletinResponse, StationDelivery, Target,
};

/// A station not heard from for this long is shown "offline since …".
const OFFLINE_AFTER: chrono::Duration = chrono::Duration::minutes(3);

#[derive(Debug, Subcommand)]
pub enum BulletinCommand {
    /// Push an urgent bulletin: it airs now at every target station (prints its id).
    Push(PushArgs),
    /// Stop a bulletin wherever it plays or waits; no later repeat airs. A bulletin
    /// waiting for approval is withdrawn (never sent).
    Cancel(IdArgs),
    /// Approve a bulletin waiting for approval (a CAP alert's): it is signed and sent now
    /// (admin).
    Approve(IdArgs),
    /// Every bulletin, newest first, with how many stations started it; then the CAP
    /// alerts central received and what it decided for each.
    List(ListArgs),
    /// One bulletin, per target station: state, latency from push to first sample.
    Show(IdArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum PriorityArg {
    /// Interrupts everything but another emergency.
    Emergency,
    /// Ahead of normal programmes, behind emergencies (stations must be upgraded first).
    Priority,
    /// Travels the whole chain, never aired.
    Test,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// A recorded bulletin (mp3, ogg, flac, wav); uploaded first if central lacks it.
    #[arg(long, conflicts_with = "text", required_unless_present = "text")]
    pub audio: Option<PathBuf>,
    /// Text spoken by espeak-ng at central.
    #[arg(long)]
    pub text: Option<String>,
    /// espeak-ng voice for --text.
    #[arg(long, default_value = "vi", requires = "text")]
    pub voice: String,
    /// `all`, station ids `ID,ID`, or `district:NAME`.
    #[arg(long)]
    pub to: Target,
    #[arg(long, value_enum, default_value_t = PriorityArg::Emergency)]
    pub priority: PriorityArg,
    /// Extra plays after the first.
    #[arg(long, default_value_t = 0)]
    pub repeat: u32,
    /// Pause between the end of one play and the next (e.g. 10m).
    #[arg(long, default_value = "0s", value_parser = duration)]
    pub interval: std::time::Duration,
    /// Never start a play after this long from now (e.g. 2h).
    #[arg(long, default_value = "1h", value_parser = duration)]
    pub expires: std::time::Duration,
    /// Play the attention tone before the first play.
    #[arg(long)]
    pub tone: bool,
    /// Title recorded in logs (default: the file name, or the first words of --text).
    #[arg(long)]
    pub title: Option<String>,
    /// Time zone of the times shown.
    #[arg(long, default_value = "Asia/Ho_Chi_Minh")]
    pub tz: Tz,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub struct IdArgs {
    /// The bulletin id printed by `loa bulletin push`.
    pub id: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Time zone of the times shown (JSON keeps UTC, full precision).
    #[arg(long, default_value = "Asia/Ho_Chi_Minh")]
    pub tz: Tz,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// JSON: the bulletins (`BulletinInfo`), or with --alerts the alert records.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Only the CAP alerts received and what was decided for each (refusals included).
    #[arg(long)]
    pub alerts: bool,
    /// Time zone of the times shown (JSON keeps UTC, full precision).
    #[arg(long, default_value = "Asia/Ho_Chi_Minh")]
    pub tz: Tz,
    #[command(flatten)]
    pub remote: RemoteArgs,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Json,
}

/// `30s`, `10m`, `2h`, `1h30m`, or `1d`.
fn duration(text: &str) -> Result<std::time::Duration, String> {
    if let Some(days) = text.trim().strip_suffix('d') {
        let days: u64 = days.parse().map_err(|_| format!("{text:?}: write e.g. 1d, 2h, 30m"))?;
        return Ok(std::time::Duration::from_secs(days * 86_400));
    }
    crate::schedule::parse_duration(text).map_err(|e| format!("{text:?}: {e} (e.g. 2h, 30m, 1d)"))
}

pub fn run(command: BulletinCommand) -> ExitCode {
    let result = match command {
        BulletinCommand::Push(args) => push(args),
        BulletinCommand::Cancel(args) => cancel(args),
        BulletinCommand::Approve(args) => approve(args),
        BulletinCommand::List(args) => list(args),
        BulletinCommand::Show(args) => show(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => remote::report(&e),
    }
}

/// `build`'s request for central's address (see [`Remote::send`] for `retry`), its JSON
/// answer decoded.
async fn send<T: serde::de::DeserializeOwned>(
    remote: &Remote,
    what: &str,
    retry: Retry,
    build: impl FnMut(&str) -> reqwest::RequestBuilder,
) -> anyhow::Result<T> {
    let response = remote.send(retry, build).await?;
    if !response.status().is_success() {
        return Err(remote.fail(what, response).await);
    }
    response.json().await.with_context(|| format!("central's answer to {what} is not valid JSON"))
}

fn push(args: PushArgs) -> anyhow::Result<()> {
    let remote = args.remote.resolve()?;
    remote::runtime()?.block_on(async {
        let (audio_sha256, text, title) = match (&args.audio, &args.text) {
            (Some(file), None) => {
                let info =
                    super::audio_add::ensure_uploaded(&remote, file, args.title.as_deref(), false)
                        .await?;
                (Some(info.sha256), None, args.title.clone().or(Some(info.title)))
            }
            (None, Some(text)) => {
                if text.trim().is_empty() {
                    bail!("--text is empty: give the words to speak");
                }
                (None, Some(text.clone()), args.title.clone())
            }
            _ => bail!("give exactly one of --audio FILE or --text TEXT"),
        };
        let request = PushBulletinRequest {
            title,
            audio_sha256,
            text,
            voice: Some(args.voice.clone()),
            to: args.to.clone(),
            priority: match args.priority {
                PriorityArg::Emergency => BulletinPriority::Emergency,
                PriorityArg::Priority => BulletinPriority::Priority,
                PriorityArg::Test => BulletinPriority::Test,
            },
            repeat: args.repeat,
            interval_secs: args.interval.as_secs(),
            expires_secs: args.expires.as_secs(),
            tone: args.tone,
        };
        let pushed: PushBulletinResponse =
            send(&remote, "bulletin push", Retry::Once(remote::WORK_TIMEOUT), |base| {
                remote.http.post(format!("{base}/api/v1/bulletins")).json(&request)
            })
            .await?;
        if pushed.waiting_approval {
            eprintln!(
                "held for a second admin (two-person rule): nothing is sent to the {} station(s) \
                 until another admin runs `loa bulletin approve {}` or approves it on the console",
                pushed.targets.len(),
                pushed.id
            );
        } else {
            eprintln!(
                "pushed to {} station(s), expires {}; follow it with `loa bulletin show {}`",
                pushed.targets.len(),
                local_time(pushed.expires_at, args.tz),
                pushed.id
            );
        }
        println!("{}", pushed.id);
        Ok(())
    })
}

fn valid_id(id: &str) -> anyhow::Result<()> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-') {
        return Err(anyhow!("{id:?} is not a bulletin id: see `loa bulletin list`"));
    }
    Ok(())
}

fn cancel(args: IdArgs) -> anyhow::Result<()> {
    valid_id(&args.id)?;
    let remote = args.remote.resolve()?;
    let info: BulletinInfo = remote::runtime()?.block_on(send(
        &remote,
        "bulletin cancel",
        Retry::Once(remote::WORK_TIMEOUT),
        |base| remote.http.post(format!("{base}/api/v1/bulletins/{}/cancel", args.id)),
    ))?;
    match &info.approval {
        Some(a) if a.state == ApprovalState::Withdrawn => println!(
            "withdrew {} before approval at {}: it was never sent",
            info.doc.id,
            a.decided_at.map(|t| local_time(t, args.tz)).unwrap_or_default()
        ),
        _ => println!(
            "cancelled {} at {}",
            info.doc.id,
            info.cancelled_at.map(|t| local_time(t, args.tz)).unwrap_or_default()
        ),
    }
    Ok(())
}

fn approve(args: IdArgs) -> anyhow::Result<()> {
    valid_id(&args.id)?;
    let remote = args.remote.resolve()?;
    let info: BulletinInfo = remote::runtime()?.block_on(send(
        &remote,
        "bulletin approve",
        Retry::Once(remote::WORK_TIMEOUT),
        |base| {
            remote
                .http
                .post(format!("{base}{}", crate::protocol::api::bulletin_approve_path(&args.id)))
        },
    ))?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    println!(
        "approved {}: {} to {} station(s), sent {}, expires {}; follow it with `loa bulletin show {}`",
        info.doc.id,
        info.doc.priority,
        info.stations.len(),
        local_time(info.doc.issued_at, args.tz),
        local_time(info.doc.expires_at, args.tz),
        info.doc.id
    );
    Ok(())
}

fn list(args: ListArgs) -> anyhow::Result<()> {
    let remote = args.remote.resolve()?;
    let runtime = remote::runtime()?;
    if args.alerts {
        let alerts: Vec<AlertRecord> =
            runtime.block_on(send(&remote, "alert list", Retry::Idempotent, |base| {
                remote.http.get(format!("{base}{}", crate::protocol::api::operator::CAP))
            }))?;
        if args.format == Format::Json {
            println!("{}", serde_json::to_string_pretty(&alerts)?);
        } else {
            print!("{}", alerts_table(&alerts, args.tz));
        }
        return Ok(());
    }
    let all: Vec<BulletinInfo> =
        runtime.block_on(send(&remote, "bulletin list", Retry::Idempotent, |base| {
            remote.http.get(format!("{base}/api/v1/bulletins"))
        }))?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&all)?);
        return Ok(());
    }
    print!("{}", list_table(&all, Utc::now(), args.tz));
    // The CAP alerts, when central has received any (an older central has no such route).
    let alerts: anyhow::Result<Vec<AlertRecord>> =
        runtime.block_on(send(&remote, "alert list", Retry::Idempotent, |base| {
            remote.http.get(format!("{base}{}?limit=20", crate::protocol::api::operator::CAP))
        }));
    if let Ok(alerts) = alerts
        && !alerts.is_empty()
    {
        println!();
        println!("CAP alerts received (newest first; `loa bulletin list --alerts` for more)");
        print!("{}", alerts_table(&alerts, args.tz));
    }
    Ok(())
}

/// The `list` table: one line per bulletin, its state first (waiting-approval, expired,
/// withdrawn, cancelled, or its priority), then why it waits when it does.
pub fn list_table(all: &[BulletinInfo], now: DateTime<Utc>, tz: Tz) -> String {
    let mut out = format!(
        "{:<34} {:<26} {:<16} {:>8} {:>8}  title\n",
        "id", "issued", "state", "started", "targets"
    );
    for b in all {
        let started = b
            .stations
            .iter()
            .filter(|s| matches!(s.state, Some(DeliveryState::Started | DeliveryState::Finished)))
            .count();
        out.push_str(&format!(
            "{:<34} {:<26} {:<16} {:>8} {:>8}  {}\n",
            b.doc.id,
            local_time(b.doc.issued_at, tz),
            b.headline_state(now),
            started,
            b.stations.len(),
            crate::protocol::text::printable(&b.doc.title)
        ));
        if let Some(a) = &b.approval
            && a.state == ApprovalState::WaitingApproval
            && b.doc.expires_at > now
        {
            out.push_str(&format!(
                "{:<34} waits: {}\n",
                "",
                crate::protocol::text::printable(&a.reason)
            ));
        }
    }
    out
}

/// The alert records: when, which alert, what was decided and why.
pub fn alerts_table(alerts: &[AlertRecord], tz: Tz) -> String {
    let mut out = format!(
        "{:<26} {:<12} {:<34} {:<60}  reason\n",
        "received", "decision", "bulletin", "alert (sender,identifier,sent)"
    );
    for a in alerts {
        let key = if a.sent.is_some() { a.key_text() } else { "(unreadable)".to_string() };
        let kind = if a.status.is_empty() {
            String::new()
        } else {
            format!(" {} {}", a.status, a.msg_type)
        };
        out.push_str(&format!(
            "{:<26} {:<12} {:<34} {:<60}  {}\n",
            local_time(a.received_at, tz),
            a.outcome.decision.as_str(),
            a.outcome.bulletin_id.as_deref().unwrap_or("-"),
            crate::protocol::text::printable(&format!("{key}{kind}")),
            crate::protocol::text::printable(&a.outcome.reason)
        ));
    }
    out
}

fn show(args: IdArgs) -> anyhow::Result<()> {
    valid_id(&args.id)?;
    let remote = args.remote.resolve()?;
    let info: BulletinInfo =
        remote::runtime()?.block_on(send(&remote, "bulletin show", Retry::Idempotent, |base| {
            remote.http.get(format!("{base}/api/v1/bulletins/{}", args.id))
        }))?;
    if args.format == Format::Json {
        println!("{}", serde_json::to_string_pretty(&info)?);
        return Ok(());
    }
    print!("{}", table(&info, Utc::now(), args.tz));
    Ok(())
}

/// The `show` table: one line per target station, times local to `tz`.
pub fn table(info: &BulletinInfo, now: DateTime<Utc>, tz: Tz) -> String {
    let d = &info.doc;
    let mut out = format!(
        "bulletin {}  {:?}  {}  issued {}  expires {}  repeat {}  interval {} s{}\n",
        d.id,
        crate::protocol::text::printable(&d.title),
        d.priority,
        local_time(d.issued_at, tz),
        local_time(d.expires_at, tz),
        d.repeat,
        d.interval_secs,
        if d.tone { "  tone" } else { "" }
    );
    if let Some(at) = info.cancelled_at {
        out.push_str(&format!("cancelled at {}\n", local_time(at, tz)));
    }
    if let Some(a) = &info.approval {
        let state = match a.state {
            ApprovalState::WaitingApproval if d.expires_at <= now => ApprovalState::Expired,
            other => other,
        };
        let decided = match (&a.decided_by, a.decided_at) {
            (Some(by), Some(at)) => format!(" by {by} at {}", local_time(at, tz)),
            _ => String::new(),
        };
        out.push_str(&format!(
            "{}{decided}  (requested by {}: {})\n",
            state.as_str(),
            crate::protocol::text::printable(&a.requested_by),
            crate::protocol::text::printable(&a.reason)
        ));
    }
    out.push_str(&format!("{:<20} {:<12} {:>11}  detail\n", "station", "state", "latency"));
    for s in &info.stations {
        let latency = s.latency_ms.map(|ms| format!("{:.3} s", ms as f64 / 1000.0));
        out.push_str(&format!(
            "{:<20} {:<12} {:>11}  {}\n",
            s.station_id,
            s.state.map_or("-", DeliveryState::as_str),
            latency.unwrap_or_else(|| "-".into()),
            crate::protocol::text::printable(&match &info.approval {
                Some(a) if a.state != ApprovalState::Approved => "not sent".to_string(),
                _ => detail(s, now, tz),
            })
        ));
    }
    out
}

fn detail(s: &StationDelivery, now: DateTime<Utc>, tz: Tz) -> String {
    if let Some(reason) = &s.reason {
        return reason.clone();
    }
    match (s.state, s.connected, s.last_seen) {
        (None, true, _) => "not reached yet (connected)".into(),
        (None, false, Some(seen)) if now - seen > OFFLINE_AFTER => {
            format!("not reached (offline since {})", local_time(seen, tz))
        }
        (None, false, Some(seen)) => {
            format!("not reached (last seen {})", local_time(seen, tz))
        }
        (None, false, None) => "not reached (never seen)".into(),
        (Some(_), _, _) => s.at.map(|t| format!("at {}", local_time(t, tz))).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn show_prints_local_times_to_the_second() {
        use crate::protocol::BulletinDoc;
        let at = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        let issued = at("2026-12-06T11:17:43.841611360Z");
        let station = |id: &str, state, at, last_seen| StationDelivery {
            station_id: id.into(),
            state,
            at,
            latency_ms: state.map(|_| 43),
            reason: None,
            connected: false,
            last_seen,
        };
        let info = BulletinInfo {
            doc: BulletinDoc {
                id: "b-20261206111743-4f2411c461dace97".into(),
                title: "Cảnh báo lũ".into(),
                targets: vec!["tri-ton".into(), "co-to".into()],
                to_all: false,
                audio_sha256: "a".repeat(64),
                audio_size: 1,
                gain_db: 0.0,
                priority: BulletinPriority::Emergency,
                repeat: 0,
                interval_secs: 0,
                tone: true,
                issued_at: issued,
                expires_at: at("2026-12-06T12:17:43.841611360Z"),
                event_seq: None,
            },
            cancelled_at: Some(at("2026-12-06T11:20:00.5Z")),
            issued_by: "admin".into(),
            approval: None,
            stations: vec![
                station(
                    "tri-ton",
                    Some(DeliveryState::Started),
                    Some(at("2026-12-06T11:17:43.884611360Z")),
                    None,
                ),
                station("co-to", None, None, Some(at("2026-12-06T10:12:09.123456789Z"))),
            ],
        };
        let shown = table(&info, at("2026-12-06T11:30:00Z"), chrono_tz::Asia::Ho_Chi_Minh);
        assert_eq!(
            shown,
            "bulletin b-20261206111743-4f2411c461dace97  \"Cảnh báo lũ\"  emergency  \
             issued 2026-12-06 18:17:43 +07:00  expires 2026-12-06 19:17:43 +07:00  repeat 0  \
             interval 0 s  tone\n\
             cancelled at 2026-12-06 18:20:00 +07:00\n\
             station              state            latency  detail\n\
             tri-ton              started          0.043 s  at 2026-12-06 18:17:43 +07:00\n\
             co-to                -                      -  not reached (offline since 2026-12-06 17:12:09 +07:00)\n"
        );
    }

    #[test]
    fn durations_take_days_and_refuse_nonsense() {
        assert_eq!(duration("1d").unwrap().as_secs(), 86_400);
        assert_eq!(duration("1h30m").unwrap().as_secs(), 5_400);
        assert!(duration("soon").is_err());
        assert!(valid_id("b-20261201-ab").is_ok());
        assert!(valid_id("../x").is_err());
    }
}
