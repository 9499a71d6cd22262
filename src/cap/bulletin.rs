//! Alert → the bulletin it would make ([`CapBulletinPlan`]), or why none
//! ([`NoBulletin`]). Pure: the stations, the settings and "now" are given.
//!
//! - status: Actual → a bulletin; Test, Exercise → a `test` bulletin (travels the chain,
//!   never airs); Draft → ignored; System → none (logged by the caller).
//! - msgType: Alert → a bulletin; Update → a bulletin that replaces the referenced
//!   alerts' bulletins (which end even when the update itself makes none); Cancel → ends
//!   them and makes none; Ack, Error → none.
//! - scope: only Public alerts are broadcast.
//! - info: the blocks in the first preferred language present (`vi` first), else the
//!   first block's language; their areas select the stations, the highest priority of
//!   them wins, their texts are spoken one after the other.
//! - expiry: the latest `expires` of those blocks, at most `max_expiry` from now;
//!   without one, `default_expiry`; already past → none.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::area::{self, CapStation};
use super::config::CapConfig;
use super::model::*;

/// Longest spoken text, in characters (about five minutes of speech); longer is cut at
/// a word and the plan says so.
pub const MAX_SPOKEN_CHARS: usize = 4000;
/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;

/// A plan's priority; central signs it as the bulletin priority of the same name
/// (`priority`: ahead of normal programmes, behind emergencies).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PlanPriority {
    Emergency,
    Priority,
    Test,
}

impl PlanPriority {
    fn rank(self) -> u8 {
        match self {
            PlanPriority::Test => 0,
            PlanPriority::Priority => 1,
            PlanPriority::Emergency => 2,
        }
    }
}

impl fmt::Display for PlanPriority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PlanPriority::Emergency => "emergency",
            PlanPriority::Priority => "priority",
            PlanPriority::Test => "test",
        })
    }
}

/// One area of the chosen info blocks, described for people.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AreaSummary {
    /// `info[0]/area[1]`.
    pub path: String,
    pub desc: String,
    /// One line per polygon, circle and geocode.
    pub shapes: Vec<String>,
}

/// The bulletin an alert would make.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapBulletinPlan {
    /// The alert it comes from.
    pub key: AlertKey,
    /// Station ids, in the order the stations were given; empty when no stations were
    /// given (then `areas` says what would select them).
    pub targets: Vec<String>,
    pub areas: Vec<AreaSummary>,
    pub priority: PlanPriority,
    /// Why this priority: `Severe/Immediate/Observed: rule 1`, `status Test`.
    pub priority_reason: String,
    pub title: String,
    /// Headline, description and instruction of each chosen block, to be spoken.
    pub text: String,
    /// The chosen blocks' language (`vi`, `en-US`).
    pub language: String,
    /// espeak-ng voice for it (the primary language subtag: `vi`, `en`).
    pub voice: String,
    pub expires_at: DateTime<Utc>,
    /// Earlier alerts whose bulletins this one replaces (an Update's references).
    pub replaces: Vec<AlertKey>,
    /// Earlier alerts whose bulletins end with no successor (empty for a plan; a Cancel
    /// makes no plan, see [`Decision::NoBulletin`]).
    pub cancels: Vec<AlertKey>,
    /// Things worth knowing: expiry capped or defaulted, text cut, language fallback.
    pub notes: Vec<String>,
}

/// Why an alert makes no bulletin.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "reason", rename_all = "snake_case")]
pub enum NoBulletin {
    Draft,
    System,
    NotPublic { scope: Scope },
    Cancel,
    Acknowledgement { msg_type: MsgType },
    NoInfo,
    NoArea,
    NoStations,
    Expired { at: DateTime<Utc> },
}

impl fmt::Display for NoBulletin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NoBulletin::Draft => f.write_str("status Draft: drafts are ignored"),
            NoBulletin::System => {
                f.write_str("status System: a message between systems, logged, never aired")
            }
            NoBulletin::NotPublic { scope } => write!(f, "scope {scope}: not for public broadcast"),
            NoBulletin::Cancel => {
                f.write_str("msgType Cancel: ends the bulletins of the alerts it references")
            }
            NoBulletin::Acknowledgement { msg_type } => {
                write!(f, "msgType {msg_type}: a reply between systems, nothing to air")
            }
            NoBulletin::NoInfo => f.write_str("no info block: nothing to say"),
            NoBulletin::NoArea => f.write_str(
                "no area in the chosen info blocks: loa airs an alert only where its area says",
            ),
            NoBulletin::NoStations => f.write_str("no station is inside its area"),
            NoBulletin::Expired { at } => write!(f, "expired at {}", at.to_rfc3339()),
        }
    }
}

/// What an alert asks for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum Decision {
    /// Make this bulletin (after ending `plan.replaces`' bulletins).
    Bulletin(Box<CapBulletinPlan>),
    /// Make none, for `reason`; end the bulletins of `cancels` (a Cancel's references,
    /// or an Update's that makes no bulletin here: the update still supersedes them).
    NoBulletin { key: AlertKey, reason: NoBulletin, cancels: Vec<AlertKey> },
}

impl Decision {
    pub fn key(&self) -> &AlertKey {
        match self {
            Decision::Bulletin(p) => &p.key,
            Decision::NoBulletin { key, .. } => key,
        }
    }
    /// Earlier alerts whose bulletins end because of this one.
    pub fn ends(&self) -> &[AlertKey] {
        match self {
            Decision::Bulletin(p) => &p.replaces,
            Decision::NoBulletin { cancels, .. } => cancels,
        }
    }
}

/// The bulletin `alert` makes for `stations` (all of them when `None`: then `targets`
/// stays empty and `areas` says what would select stations), as of `now`.
pub fn plan(
    alert: &Alert,
    stations: Option<&[CapStation]>,
    config: &CapConfig,
    now: DateTime<Utc>,
) -> Decision {
    let key = alert.key();
    let none = |reason, cancels| Decision::NoBulletin { key: key.clone(), reason, cancels };
    match alert.status {
        Status::Draft => return none(NoBulletin::Draft, vec![]),
        Status::System => return none(NoBulletin::System, vec![]),
        Status::Actual | Status::Test | Status::Exercise => {}
    }
    if alert.scope != Scope::Public {
        return none(NoBulletin::NotPublic { scope: alert.scope }, vec![]);
    }
    let replaces = match alert.msg_type {
        MsgType::Alert => vec![],
        MsgType::Update => alert.references.clone(),
        MsgType::Cancel => return none(NoBulletin::Cancel, alert.references.clone()),
        MsgType::Ack | MsgType::Error => {
            return none(NoBulletin::Acknowledgement { msg_type: alert.msg_type }, vec![]);
        }
    };
    if alert.infos.is_empty() {
        return none(NoBulletin::NoInfo, replaces);
    }

    let mut notes = Vec::new();
    let (language, chosen) = choose_language(&alert.infos, &config.languages);
    if !config.languages.is_empty()
        && !config.languages.iter().any(|l| language_matches(&language, l))
    {
        notes.push(format!("no info block in {}: using {language}", config.languages.join(", ")));
    }

    let mut areas = Vec::new();
    for &(i, info) in &chosen {
        for (j, a) in info.areas.iter().enumerate() {
            areas.push(AreaSummary {
                path: format!("info[{i}]/area[{j}]"),
                desc: tidy(&a.desc),
                shapes: area::describe(a),
            });
        }
    }
    if areas.is_empty() {
        return none(NoBulletin::NoArea, replaces);
    }
    let targets = match stations {
        None => Vec::new(),
        Some(stations) => {
            let all = chosen.iter().flat_map(|(_, info)| info.areas.iter());
            let targets: Vec<String> = stations
                .iter()
                .filter(|s| all.clone().any(|a| area::area_selects(a, s, &config.geocode_names)))
                .map(|s| s.id.clone())
                .collect();
            if targets.is_empty() {
                return none(NoBulletin::NoStations, replaces);
            }
            targets
        }
    };

    let latest = chosen.iter().filter_map(|(_, i)| i.expires).map(|e| e.to_utc()).max();
    let max = chrono::Duration::from_std(config.max_expiry).unwrap_or(chrono::Duration::days(7));
    let expires_at = match latest {
        Some(at) if at <= now => return none(NoBulletin::Expired { at }, replaces),
        Some(at) if at > now + max => {
            notes.push(format!(
                "expires {} capped to {} from now (the longest a bulletin lives)",
                at.to_rfc3339(),
                human(config.max_expiry)
            ));
            now + max
        }
        Some(at) => at,
        None => {
            notes.push(format!("no expires given: {} from now", human(config.default_expiry)));
            now + chrono::Duration::from_std(config.default_expiry)
                .unwrap_or(chrono::Duration::hours(6))
        }
    };

    let (priority, priority_reason) = match alert.status {
        Status::Test | Status::Exercise => {
            (PlanPriority::Test, format!("status {}: a test bulletin, never aired", alert.status))
        }
        _ => {
            let mut best: Option<(PlanPriority, String)> = None;
            for (_, info) in &chosen {
                let (p, rule) = config.priority_for(info.urgency, info.severity, info.certainty);
                let why = format!(
                    "{}/{}/{}: {}",
                    info.severity,
                    info.urgency,
                    info.certainty,
                    rule.map_or("no rule matched, the default".to_string(), |r| format!(
                        "rule {r}"
                    ))
                );
                if best.as_ref().is_none_or(|(b, _)| p.rank() > b.rank()) {
                    best = Some((p, why));
                }
            }
            best.unwrap_or((config.default_priority, "the default".to_string()))
        }
    };

    let first = chosen[0].1;
    let title =
        tidy(first.headline.as_deref().filter(|h| !h.trim().is_empty()).unwrap_or(&first.event));
    let title = clip_chars(&title, MAX_TITLE_CHARS);
    let mut blocks: Vec<String> = Vec::new();
    for (_, info) in &chosen {
        let mut parts: Vec<String> = Vec::new();
        for t in [&info.headline, &info.description, &info.instruction].into_iter().flatten() {
            let t = tidy(t);
            if !t.is_empty() && !parts.contains(&t) {
                parts.push(t);
            }
        }
        if parts.is_empty() {
            parts.push(tidy(&info.event));
        }
        let block = parts.join("\n");
        if !blocks.contains(&block) {
            blocks.push(block);
        }
    }
    let mut text = blocks.join("\n\n");
    if text.chars().count() > MAX_SPOKEN_CHARS {
        text = clip_chars(&text, MAX_SPOKEN_CHARS);
        notes.push(format!("text cut to {MAX_SPOKEN_CHARS} characters"));
    }
    let voice = language.split('-').next().unwrap_or("vi").to_ascii_lowercase();

    Decision::Bulletin(Box::new(CapBulletinPlan {
        key,
        targets,
        areas,
        priority,
        priority_reason,
        title,
        text,
        language,
        voice,
        expires_at,
        replaces,
        cancels: vec![],
        notes,
    }))
}

/// Text as written for print → text to speak and show: the whitespace of a pretty-printed
/// document (line breaks and indentation inside a paragraph) becomes one space; a blank
/// line between paragraphs becomes one line break.
pub fn tidy(s: &str) -> String {
    let mut paragraphs: Vec<String> = Vec::new();
    let mut current = String::new();
    for line in s.lines() {
        if line.trim().is_empty() {
            if !current.is_empty() {
                paragraphs.push(std::mem::take(&mut current));
            }
            continue;
        }
        for word in line.split_whitespace() {
            if !current.is_empty() {
                current.push(' ');
            }
            current.push_str(word);
        }
    }
    if !current.is_empty() {
        paragraphs.push(current);
    }
    paragraphs.join("\n")
}

/// `vi` matches `vi` and `vi-VN`, case-insensitively.
fn language_matches(language: &str, wanted: &str) -> bool {
    let (l, w) = (language.to_ascii_lowercase(), wanted.to_ascii_lowercase());
    l == w || l.strip_prefix(&w).is_some_and(|rest| rest.starts_with('-'))
}

/// The chosen language and its info blocks (with their indexes).
fn choose_language<'a>(
    infos: &'a [Info],
    preferred: &[String],
) -> (String, Vec<(usize, &'a Info)>) {
    for want in preferred {
        let chosen: Vec<(usize, &Info)> =
            infos.iter().enumerate().filter(|(_, i)| language_matches(&i.language, want)).collect();
        if let Some((_, first)) = chosen.first() {
            return (first.language.clone(), chosen);
        }
    }
    let language = infos[0].language.clone();
    let chosen = infos.iter().enumerate().filter(|(_, i)| i.language == language).collect();
    (language, chosen)
}

fn clip_chars(s: &str, max: usize) -> String {
    if s.chars().count() <= max {
        return s.to_string();
    }
    let cut: String = s.chars().take(max).collect();
    match cut.rfind(char::is_whitespace) {
        Some(i) if i > 0 => format!("{}…", cut[..i].trim_end()),
        _ => format!("{cut}…"),
    }
}

fn human(d: std::time::Duration) -> String {
    let h = d.as_secs() / 3600;
    if d.as_secs().is_multiple_of(3600) {
        if h.is_multiple_of(24) { format!("{} days", h / 24) } else { format!("{h} h") }
    } else {
        format!("{} min", d.as_secs() / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cap::config::AutoAirRule;
    use crate::cap::signature::{SignatureCheck, SignatureOutcome, SignatureReport};
    use crate::cap::{TrustStore, check};

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-12-01T06:00:00+07:00").unwrap().to_utc()
    }

    fn info(lang: &str, severity: &str, extra: &str) -> String {
        format!(
            "<info><language>{lang}</language><category>Met</category><event>Lũ {lang}</event>\
             <urgency>Immediate</urgency><severity>{severity}</severity><certainty>Observed</certainty>{extra}\
             <area><areaDesc>A</areaDesc><circle>10.4,105.4 5</circle></area></info>"
        )
    }

    fn alert_with(head: &str, infos: &str) -> Alert {
        let doc = format!(
            "<alert xmlns=\"urn:oasis:names:tc:emergency:cap:1.2\"><identifier>X</identifier>\
             <sender>s@x</sender><sent>2026-12-01T05:00:00+07:00</sent>{head}{infos}</alert>"
        );
        let c = check(doc.as_bytes(), &TrustStore::new());
        c.alert.unwrap_or_else(|| panic!("{:?}", c.diagnostics))
    }

    const ACTUAL: &str = "<status>Actual</status><msgType>Alert</msgType><scope>Public</scope>";

    fn bulletin(a: &Alert, config: &CapConfig) -> CapBulletinPlan {
        match plan(a, None, config, now()) {
            Decision::Bulletin(p) => *p,
            other => panic!("{other:?}"),
        }
    }

    fn why(a: &Alert) -> (NoBulletin, Vec<AlertKey>) {
        match plan(a, None, &CapConfig::default(), now()) {
            Decision::NoBulletin { reason, cancels, .. } => (reason, cancels),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn vietnamese_first_then_the_configured_order_then_the_first_block() {
        let a = alert_with(
            ACTUAL,
            &(info("en-US", "Minor", "") + &info("vi-VN", "Severe", "") + &info("km", "Minor", "")),
        );
        let p = bulletin(&a, &CapConfig::default());
        assert_eq!(
            (p.language.as_str(), p.voice.as_str(), p.title.as_str()),
            ("vi-VN", "vi", "Lũ vi-VN")
        );
        assert_eq!(p.areas[0].path, "info[1]/area[0]");
        assert_eq!(p.notes, ["no expires given: 6 h from now"]);
        let khmer = CapConfig { languages: vec!["km".into(), "vi".into()], ..CapConfig::default() };
        assert_eq!(bulletin(&a, &khmer).voice, "km");
        let none = CapConfig { languages: vec!["fr".into()], ..CapConfig::default() };
        let p = bulletin(&a, &none);
        assert_eq!(p.language, "en-US");
        assert_eq!(p.notes[0], "no info block in fr: using en-US");
    }

    #[test]
    fn blocks_of_one_language_together_the_highest_priority_wins() {
        let a = alert_with(
            ACTUAL,
            &(info("vi", "Minor", "<headline>Một</headline>")
                + &info("vi", "Extreme", "<headline>Hai</headline>")),
        );
        let p = bulletin(&a, &CapConfig::default());
        assert_eq!(p.priority, PlanPriority::Emergency);
        assert_eq!(p.priority_reason, "Extreme/Immediate/Observed: rule 1");
        assert_eq!(p.text, "Một\n\nHai");
        assert_eq!(p.areas.len(), 2);
        let test = alert_with(
            "<status>Test</status><msgType>Alert</msgType><scope>Public</scope>",
            &info("vi", "Extreme", ""),
        );
        let p = bulletin(&test, &CapConfig::default());
        assert_eq!(
            (p.priority, p.priority_reason.as_str()),
            (PlanPriority::Test, "status Test: a test bulletin, never aired")
        );
    }

    #[test]
    fn text_is_tidied_deduplicated_and_bounded() {
        let extra = "<headline>Cảnh báo</headline><description>  Cảnh báo  </description>\
                     <instruction>Dòng một\n        tiếp tục.\n\n        Đoạn hai.</instruction>";
        let p = bulletin(&alert_with(ACTUAL, &info("vi", "Severe", extra)), &CapConfig::default());
        assert_eq!(p.text, "Cảnh báo\nDòng một tiếp tục.\nĐoạn hai.");
        let p = bulletin(&alert_with(ACTUAL, &info("vi", "Severe", "")), &CapConfig::default());
        assert_eq!(
            (p.title.as_str(), p.text.as_str()),
            ("Lũ vi", "Lũ vi"),
            "the event when nothing else is said"
        );
        let long = format!("<description>{}</description>", "mưa lớn ".repeat(1000));
        let p = bulletin(&alert_with(ACTUAL, &info("vi", "Severe", &long)), &CapConfig::default());
        assert!(
            p.text.chars().count() <= MAX_SPOKEN_CHARS + 1 && p.text.ends_with("lớn…"),
            "{}",
            p.text.len()
        );
        assert!(p.notes.contains(&format!("text cut to {MAX_SPOKEN_CHARS} characters")));
    }

    #[test]
    fn expiry_from_expires_capped_defaulted_or_past() {
        let at = |t: &str| info("vi", "Severe", &format!("<expires>{t}</expires>"));
        let p =
            bulletin(&alert_with(ACTUAL, &at("2026-12-01T09:00:00+07:00")), &CapConfig::default());
        assert_eq!(p.expires_at.to_rfc3339(), "2026-12-01T02:00:00+00:00");
        let p =
            bulletin(&alert_with(ACTUAL, &at("2027-01-01T09:00:00+07:00")), &CapConfig::default());
        assert_eq!(p.expires_at, now() + chrono::Duration::days(7));
        let p = bulletin(&alert_with(ACTUAL, &info("vi", "Severe", "")), &CapConfig::default());
        assert_eq!(p.expires_at, now() + chrono::Duration::hours(6));
        let (reason, _) = why(&alert_with(ACTUAL, &at("2026-12-01T05:30:00+07:00")));
        assert_eq!(reason.to_string(), "expired at 2026-11-30T22:30:00+00:00");
    }

    #[test]
    fn reasons_for_no_bulletin() {
        let restricted = alert_with(
            "<status>Actual</status><msgType>Alert</msgType><scope>Restricted</scope><restriction>x</restriction>",
            &info("vi", "Severe", ""),
        );
        assert_eq!(why(&restricted).0, NoBulletin::NotPublic { scope: Scope::Restricted });
        let ack = alert_with(
            "<status>Actual</status><msgType>Ack</msgType><scope>Public</scope><references>a,b,2026-12-01T04:00:00+07:00</references>",
            "",
        );
        assert_eq!(why(&ack), (NoBulletin::Acknowledgement { msg_type: MsgType::Ack }, vec![]));
        assert_eq!(why(&alert_with(ACTUAL, "")).0, NoBulletin::NoInfo);
        let no_area = "<info><category>Met</category><event>E</event><urgency>Immediate</urgency>\
                       <severity>Severe</severity><certainty>Observed</certainty></info>";
        assert_eq!(why(&alert_with(ACTUAL, no_area)).0, NoBulletin::NoArea);
        // An Update that makes no bulletin still ends the one it updates.
        let update = alert_with(
            "<status>Actual</status><msgType>Update</msgType><scope>Public</scope><references>s@x,W,2026-12-01T04:00:00+07:00</references>",
            no_area,
        );
        let (reason, cancels) = why(&update);
        assert_eq!(reason, NoBulletin::NoArea);
        assert_eq!(cancels.len(), 1);
        assert_eq!(cancels[0].identifier, "W");
    }

    #[test]
    fn auto_air_needs_a_rule_and_never_takes_a_refused_signature() {
        let p = bulletin(&alert_with(ACTUAL, &info("vi", "Severe", "")), &CapConfig::default());
        let report = |o: SignatureOutcome| SignatureReport {
            checks: vec![SignatureCheck { path: "Signature[0]".into(), outcome: o }],
        };
        let trusted = report(SignatureOutcome::Trusted { signer: "kttv".into() });
        let untrusted = report(SignatureOutcome::NotTrusted { signer: "?".into() });
        let refused = report(SignatureOutcome::Refused { reason: "x".into() });
        let unsigned = SignatureReport::default();
        assert!(!CapConfig::default().auto_air(&p, &trusted), "no rule: a person approves");
        let rule = |trusted_signature| CapConfig {
            auto_air: vec![AutoAirRule {
                senders: vec!["s@x".into()],
                priority: vec![PlanPriority::Emergency],
                trusted_signature,
            }],
            ..CapConfig::default()
        };
        assert!(rule(true).auto_air(&p, &trusted));
        assert!(!rule(true).auto_air(&p, &untrusted));
        assert!(!rule(true).auto_air(&p, &unsigned));
        assert!(rule(false).auto_air(&p, &unsigned));
        assert!(!rule(false).auto_air(&p, &refused));
        let other = CapConfig {
            auto_air: vec![AutoAirRule {
                senders: vec!["other@x".into()],
                priority: vec![],
                trusted_signature: false,
            }],
            ..CapConfig::default()
        };
        assert!(!other.auto_air(&p, &unsigned));
    }
}
