//! What operators do with bulletins — push, cancel, approve, list, show — whichever door
//! they come in by: the API's routes ([`super::routes`]) and the console's forms call the
//! same functions with the same [`Caller`], so a role is scoped the same way in both.

use std::collections::{BTreeMap, HashMap, HashSet};

use chrono::{DateTime, Utc};

use super::issue::{self, Draft};
use super::lock;
use crate::central::auth::Caller;
use crate::central::{ApiError, AppState};
use crate::protocol::{
    ApprovalState, BulletinInfo, DeliveryReport, DeliveryState, PushBulletinRequest,
    PushBulletinResponse, StationDelivery, Target,
};
use crate::store::{PendingBulletin, Role, Station, StoredBulletin};

/// The stations a push may reach under `role` (see the module docs).
pub fn resolve_targets(
    stations: Vec<Station>,
    role: &Role,
    to: &Target,
) -> Result<Vec<String>, ApiError> {
    match role {
        Role::Admin => {}
        Role::Viewer | Role::CapSource => {
            return Err(ApiError::Forbidden(format!("{role} tokens cannot push bulletins")));
        }
        Role::District(own) => {
            if matches!(to, Target::All) {
                return Err(ApiError::Forbidden(format!(
                    "district tokens cannot push to all stations: use --to district:{own}"
                )));
            }
            if let Target::District(name) = to
                && !crate::protocol::area::within(name, own)
            {
                return Err(ApiError::Forbidden(format!(
                    "this token may push only to district {own:?}"
                )));
            }
        }
    }
    // A district token is answered as if its district were the whole province: the
    // same refusal for a station elsewhere as for one that does not exist, so nothing
    // about other districts' stations can be learnt from it.
    let visible: Vec<Station> = match role {
        Role::District(_) => stations.into_iter().filter(|s| role.sees(s)).collect(),
        _ => stations,
    };
    let chosen: Vec<Station> = match to {
        Target::All => visible,
        Target::District(name) => {
            let chosen: Vec<Station> = visible
                .into_iter()
                .filter(|s| crate::protocol::area::within(&s.district, name))
                .collect();
            if chosen.is_empty() {
                return Err(ApiError::NotFound(format!("no stations in district {name:?}")));
            }
            chosen
        }
        Target::Stations(ids) => {
            let mut chosen = Vec::new();
            for id in ids.iter().collect::<std::collections::BTreeSet<_>>() {
                let s = visible.iter().find(|s| &s.id == id).cloned().ok_or_else(|| {
                    let id = crate::protocol::text::printable(&crate::protocol::bounds::clip(id));
                    match role {
                        Role::District(own) => ApiError::Forbidden(format!(
                            "station {id:?} is not one of district {own:?}'s stations: this token may push only to them"
                        )),
                        _ => ApiError::NotFound(format!(
                            "no station {id:?}: see `loa status` for the list"
                        )),
                    }
                })?;
                chosen.push(s);
            }
            chosen
        }
    };
    if chosen.is_empty() {
        return Err(ApiError::NotFound(
            "no stations to push to: add one with `loa central station add`".into(),
        ));
    }
    Ok(chosen.into_iter().map(|s| s.id).collect())
}

/// Longest text a `--text` bulletin may have, in characters: about five minutes of
/// speech. A longer text is a mistake (or an attack: 52 KB of text made a 124 MB WAV
/// that every station then downloaded).
pub const MAX_TEXT_CHARS: usize = 4000;

/// The title of a bulletin pushed without one: the first words of its text.
pub fn title_from_text(text: &str) -> String {
    const WORDS: usize = 8;
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut title = words.iter().take(WORDS).copied().collect::<Vec<_>>().join(" ");
    if title.chars().count() > 60 {
        title = title.chars().take(60).collect::<String>().trim_end().to_string();
    }
    if words.len() > WORDS || title.chars().count() < words.join(" ").chars().count() {
        title.push('…');
    }
    title
}

/// Checks the numbers of a push request before anything is rendered or signed (the
/// console also checks them before its confirmation speaks the text).
pub fn check_request(request: &PushBulletinRequest) -> Result<(), ApiError> {
    use crate::protocol::bounds::{
        MAX_BULLETIN_REPEAT, MAX_BULLETIN_VALIDITY_SECS, MAX_TITLE_CHARS, check_text,
    };
    if request.expires_secs == 0 || request.expires_secs > MAX_BULLETIN_VALIDITY_SECS {
        return Err(ApiError::BadRequest(format!(
            "expiry of {} s is out of range: give --expires between 1s and 7d",
            request.expires_secs
        )));
    }
    if request.repeat > MAX_BULLETIN_REPEAT {
        return Err(ApiError::BadRequest(format!(
            "--repeat {} is more than {MAX_BULLETIN_REPEAT}",
            request.repeat
        )));
    }
    if request.interval_secs > request.expires_secs {
        return Err(ApiError::BadRequest(format!(
            "--interval of {} s is longer than the bulletin is valid (--expires, {} s): \
             give an interval shorter than the expiry",
            request.interval_secs, request.expires_secs
        )));
    }
    if let Some(title) = &request.title {
        check_text("--title", title, MAX_TITLE_CHARS).map_err(ApiError::BadRequest)?;
    }
    if let Some(text) = &request.text {
        let chars = text.chars().count();
        if chars > MAX_TEXT_CHARS {
            return Err(ApiError::BadRequest(format!(
                "--text has {chars} characters: a spoken bulletin takes at most {MAX_TEXT_CHARS} \
                 (about five minutes); record a longer one and push it with --audio FILE"
            )));
        }
    }
    if let Some(voice) = &request.voice {
        let plain = voice.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_+".contains(&b));
        if voice.is_empty() || voice.len() > 40 || !plain {
            return Err(ApiError::BadRequest(format!(
                "voice {:?} is not an espeak-ng voice name (e.g. vi, en, km)",
                crate::protocol::bounds::clip(voice)
            )));
        }
    }
    Ok(())
}

/// The stations of `role`'s district, or `None` for a role that sees every station.
fn own_stations(state: &AppState, role: &Role) -> Result<Option<HashSet<String>>, ApiError> {
    match role {
        Role::District(_) => Ok(Some(
            state.store.stations()?.into_iter().filter(|s| role.sees(s)).map(|s| s.id).collect(),
        )),
        Role::Admin | Role::Viewer => Ok(None),
        Role::CapSource => Ok(Some(HashSet::new())),
    }
}

/// A bulletin `role` may see: a district token sees only bulletins that reach one of
/// its stations (and only those stations' rows); to it, any other does not exist.
pub fn visible_info(state: &AppState, role: &Role, id: &str) -> Result<BulletinInfo, ApiError> {
    let mut info = info(state, id)?;
    if let Some(own) = own_stations(state, role)? {
        if !info.doc.targets.iter().any(|t| own.contains(t)) {
            return Err(no_bulletin(id));
        }
        info.stations.retain(|s| own.contains(&s.station_id));
        info.doc.targets.retain(|t| own.contains(t));
    }
    Ok(info)
}

fn no_bulletin(id: &str) -> ApiError {
    let id = crate::protocol::text::printable(&crate::protocol::bounds::clip(id));
    ApiError::NotFound(format!("no bulletin {id:?}: `loa bulletin list`"))
}

/// Whether `role` may cancel a bulletin sent to `targets`.
fn may_touch(state: &AppState, role: &Role, targets: &[String]) -> Result<(), ApiError> {
    match role {
        Role::Admin => Ok(()),
        Role::Viewer | Role::CapSource => {
            Err(ApiError::Forbidden(format!("{role} tokens cannot cancel bulletins")))
        }
        Role::District(own) => {
            let mine = own_stations(state, role)?.unwrap_or_default();
            if targets.iter().all(|t| mine.contains(t)) {
                Ok(())
            } else {
                Err(ApiError::Forbidden(format!(
                    "this bulletin also reaches stations outside district {own:?}: only an admin may cancel it"
                )))
            }
        }
    }
}

/// A bulletin with every target station's state; one that needed approval with where
/// that stands (and, while it is not signed, no station state at all).
fn info(state: &AppState, id: &str) -> Result<BulletinInfo, ApiError> {
    let approval = state.store.pending(id)?;
    let Some(StoredBulletin { doc, issued_by, cancelled_at }) = state.bulletins.bulletin(id)?
    else {
        let pending = approval.ok_or_else(|| no_bulletin(id))?;
        return Ok(unsigned_info(pending));
    };
    let approval = approval.map(|p| p.approval);
    let mut per: BTreeMap<String, Vec<DeliveryReport>> = BTreeMap::new();
    for (station, report) in state.bulletins.deliveries(id)? {
        per.entry(station).or_default().push(report);
    }
    let beats: HashMap<String, DateTime<Utc>> =
        state.store.heartbeats()?.into_iter().map(|h| (h.station_id, h.received_at)).collect();
    let connected = lock(&state.bulletins.connected).clone();
    let contact = lock(&state.bulletins.contact).clone();
    let stations = doc
        .targets
        .iter()
        .map(|sid| {
            let reports = per.remove(sid).unwrap_or_default();
            let failed = reports.iter().find(|r| r.state == DeliveryState::Failed);
            let furthest = failed.or_else(|| reports.iter().max_by_key(|r| r.state));
            let latency_ms = reports
                .iter()
                .find(|r| r.state == DeliveryState::Started)
                .and_then(|r| r.latency_ms);
            let last_seen = match (beats.get(sid), contact.get(sid)) {
                (Some(a), Some(b)) => Some(*a.max(b)),
                (a, b) => a.or(b).copied(),
            };
            StationDelivery {
                station_id: sid.clone(),
                state: furthest.map(|r| r.state),
                at: furthest.map(|r| r.at),
                latency_ms,
                reason: furthest.and_then(|r| r.reason.clone()),
                connected: connected.contains_key(sid),
                last_seen,
            }
        })
        .collect();
    Ok(BulletinInfo { doc, cancelled_at, issued_by, stations, approval })
}

/// A bulletin not signed (waiting, or never approved): its targets, none reached.
fn unsigned_info(pending: PendingBulletin) -> BulletinInfo {
    let stations = pending
        .doc
        .targets
        .iter()
        .map(|sid| StationDelivery {
            station_id: sid.clone(),
            state: None,
            at: None,
            latency_ms: None,
            reason: None,
            connected: false,
            last_seen: None,
        })
        .collect();
    BulletinInfo {
        issued_by: pending.approval.requested_by.clone(),
        doc: pending.doc,
        cancelled_at: None,
        stations,
        approval: Some(pending.approval),
    }
}

/// What a push came to: signed and sent, or held for a second admin.
#[derive(Debug, Clone)]
pub struct Pushed {
    pub response: PushBulletinResponse,
    /// The document (signed, or waiting for approval).
    pub doc: crate::protocol::BulletinDoc,
}

/// How many areas `targets` lie in (each station's area path counted once): the
/// two-person rule's measure of a mistake's reach.
pub fn areas_of(stations: &[Station], targets: &[String]) -> usize {
    let wanted: HashSet<&String> = targets.iter().collect();
    stations
        .iter()
        .filter(|s| wanted.contains(&s.id))
        .map(|s| crate::protocol::area::segments(&s.district).collect::<Vec<_>>().join("/"))
        .collect::<HashSet<_>>()
        .len()
}

/// Pushes a bulletin for `caller`, whichever door they came in by (`POST
/// /api/v1/bulletins`, the console's form): the same checks, targets, speech, bounds and
/// signature. Under `two_person_rule`, an emergency to more than one area is held for a
/// second admin instead of being signed (test bulletins never are).
pub async fn push(
    state: &AppState,
    caller: &Caller,
    request: &PushBulletinRequest,
) -> Result<Pushed, ApiError> {
    let role = &caller.role;
    let actor = caller.actor();
    check_request(request)?;
    let stations = state.store.stations()?;
    let targets = resolve_targets(stations.clone(), role, &request.to)?;
    let title = match (&request.title, &request.text) {
        (Some(title), _) => title.clone(),
        (None, Some(text)) => title_from_text(text),
        (None, None) => "bulletin".to_string(),
    };
    let audio = match (&request.audio_sha256, &request.text) {
        (Some(sha), None) => state.store.audio(sha)?.ok_or_else(|| {
            ApiError::BadRequest(format!(
                "audio sha256:{} is not in the library: upload it with `loa audio add`",
                crate::protocol::bounds::clip(sha)
            ))
        })?,
        (None, Some(text)) if !text.trim().is_empty() => {
            let voice = request.voice.as_deref().unwrap_or("vi");
            issue::speak(state, text, voice, &title).await?
        }
        _ => {
            return Err(ApiError::BadRequest(
                "give exactly one of --audio FILE or --text TEXT (not empty)".into(),
            ));
        }
    };
    let now = state.clock.now();
    let draft = Draft {
        title,
        audio,
        targets: targets.clone(),
        to_all: request.to == Target::All,
        priority: request.priority,
        repeat: request.repeat,
        interval_secs: request.interval_secs,
        tone: request.tone,
        expires_at: now + chrono::Duration::seconds(request.expires_secs as i64),
    };
    let doc = draft.doc(now)?;
    let areas = areas_of(&stations, &targets);
    let held = state.config.two_person_rule
        && request.priority == crate::protocol::BulletinPriority::Emergency
        && areas > 1;
    if held {
        // Held whole, targets resolved: what a second admin approves is exactly this.
        let mut pending = doc.clone();
        pending.targets = targets.clone();
        let reason = format!(
            "two-person rule: an emergency to {} stations in {areas} areas waits for a second admin",
            targets.len()
        );
        issue::hold(state, &pending, &caller.who, &reason, &actor, Some(&caller.person))?;
    } else {
        issue::issue(state, &doc, &targets, &caller.who, &actor).await?;
    }
    let response = PushBulletinResponse {
        id: doc.id.clone(),
        targets,
        audio_sha256: doc.audio_sha256.clone(),
        issued_at: doc.issued_at,
        expires_at: doc.expires_at,
        waiting_approval: held,
    };
    Ok(Pushed { response, doc })
}

/// Cancels bulletin `id` for `caller` (a waiting one is withdrawn): a district sees and
/// cancels only what reaches nothing but its own stations. Returns the bulletin after.
pub fn cancel(state: &AppState, caller: &Caller, id: &str) -> Result<BulletinInfo, ApiError> {
    let role = &caller.role;
    // A district token learns nothing of a bulletin that reaches none of its stations.
    let before = visible_info(state, role, id)?;
    let (targets, cancelled) = match state.bulletins.bulletin(id)? {
        Some(b) => (b.doc.targets, b.cancelled_at),
        None => (before.doc.targets.clone(), None),
    };
    may_touch(state, role, &targets)?;
    if let Some(at) = cancelled {
        return Err(ApiError::BadRequest(format!("bulletin {id} was already cancelled at {at}")));
    }
    if let Some(a) = &before.approval
        && a.state != ApprovalState::WaitingApproval
        && a.state != ApprovalState::Approved
    {
        return Err(ApiError::BadRequest(format!(
            "bulletin {id} was never sent ({}): there is nothing to cancel",
            a.state.as_str()
        )));
    }
    issue::cancel(state, id, &caller.actor(), "cancelled by an operator")?;
    visible_info(state, role, id)
}

/// Approves bulletin `id` for `caller`: only an admin, and (under the two-person rule)
/// not the person who asked for it.
pub async fn approve(
    state: &AppState,
    caller: &Caller,
    id: &str,
) -> Result<BulletinInfo, ApiError> {
    if caller.role != Role::Admin {
        return Err(ApiError::Forbidden(format!(
            "only an admin may approve a bulletin; this is a {} token",
            caller.role
        )));
    }
    issue::approve(state, id, &caller.actor()).await?;
    visible_info(state, &caller.role, id)
}

/// Bulletins `loa bulletin list` shows when it does not say, newest first.
pub const LIST_DEFAULT: usize = 100;
/// Most bulletins one list may ask for.
pub const LIST_MAX: usize = 1000;

/// The newest `limit` bulletins `role` may see, signed or not, newest first.
pub fn list(state: &AppState, role: &Role, limit: usize) -> Result<Vec<BulletinInfo>, ApiError> {
    if limit == 0 || limit > LIST_MAX {
        return Err(ApiError::BadRequest(format!(
            "limit {limit} is out of range: list 1 to {LIST_MAX} bulletins"
        )));
    }
    // Signed bulletins newest first, and those never signed (waiting for approval, or
    // never approved) in their place by the time they were made.
    let unsigned: Vec<PendingBulletin> = state
        .store
        .pending_list(limit)?
        .into_iter()
        .filter(|p| p.approval.state != ApprovalState::Approved)
        .collect();
    let mut out: Vec<BulletinInfo> = Vec::new();
    for id in state.bulletins.bulletin_ids()?.iter().chain(unsigned.iter().map(|p| &p.doc.id)) {
        if out.len() == 2 * limit {
            break;
        }
        match visible_info(state, role, id) {
            Ok(info) => out.push(info),
            Err(ApiError::NotFound(_)) => {}
            Err(e) => return Err(e),
        }
    }
    out.sort_by_key(|b| std::cmp::Reverse(b.doc.issued_at));
    out.truncate(limit);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn st(id: &str, district: &str) -> Station {
        Station { id: id.into(), name: id.into(), district: district.into() }
    }

    #[test]
    fn district_tokens_reach_only_their_own_stations() {
        let all = || vec![st("a", "tri-ton"), st("b", "tri-ton"), st("c", "tinh-bien")];
        let admin = resolve_targets(all(), &Role::Admin, &Target::All).unwrap();
        assert_eq!(admin, vec!["a", "b", "c"]);
        let own = Role::District("tri-ton".into());
        assert_eq!(
            resolve_targets(all(), &own, &Target::District("tri-ton".into())).unwrap(),
            vec!["a", "b"]
        );
        assert!(matches!(resolve_targets(all(), &own, &Target::All), Err(ApiError::Forbidden(_))));
        assert!(matches!(
            resolve_targets(all(), &own, &Target::Stations(vec!["c".into()])),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            resolve_targets(all(), &Role::Viewer, &Target::All),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            resolve_targets(all(), &Role::Admin, &Target::Stations(vec!["zz".into()])),
            Err(ApiError::NotFound(_))
        ));
    }

    #[test]
    fn areas_are_counted_by_path() {
        let all =
            vec![st("a", "Tri Tôn/Ba Chúc"), st("b", " Tri Tôn / Ba Chúc"), st("c", "Tri Tôn")];
        assert_eq!(areas_of(&all, &["a".into(), "b".into()]), 1);
        assert_eq!(areas_of(&all, &["a".into(), "c".into()]), 2);
        assert_eq!(areas_of(&all, &[]), 0);
    }
}
