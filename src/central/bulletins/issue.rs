//! One path for every bulletin, however it was asked for (`loa bulletin push`, a CAP
//! alert, an approval): the same bounds ([`BulletinDoc::check_bounds`]), the same
//! signature with the event number under it ([`super::Hub::append`]), the same audit
//! line. A bulletin that needs a person's approval is held here, whole (audio rendered,
//! targets resolved) but unsigned, until [`approve`] signs it.

use chrono::{DateTime, Utc};

use super::speech;
use crate::central::{ApiError, AppState};
use crate::protocol::{
    Approval, ApprovalState, AudioInfo, AuditEntry, BulletinCancelDoc, BulletinDoc,
    BulletinPriority, DocumentKind,
};
use crate::store::{EventSubject, PendingBulletin, StoredBulletin};

/// Who asked, for the audit trail.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor {
    /// A role (`admin`, `district:Tri Tôn`, `cap-source`), a person of the console
    /// (`an (admin)`), or `central`.
    pub who: String,
    /// The caller's address, a feed's URL, or `-`.
    pub from: String,
    /// Tells people apart where `who` may not: `user:NAME` for a console session,
    /// `token:LABEL` for an operator token. The two-person rule compares these.
    pub person: String,
}

impl Actor {
    pub fn new(who: impl Into<String>, from: impl Into<String>) -> Self {
        let who = who.into();
        Actor { person: who.clone(), who, from: from.into() }
    }

    /// This actor, known to be `person`.
    pub fn person(mut self, person: impl Into<String>) -> Self {
        self.person = person.into();
        self
    }
}

/// Writes one audit line; a failure is logged, never undoes what was done (the signed
/// bulletin is already on its way).
pub fn audit(state: &AppState, actor: &Actor, action: &str, subject: &str, detail: String) {
    let entry = AuditEntry {
        at: state.clock.now(),
        who: actor.who.clone(),
        action: action.to_string(),
        subject: subject.to_string(),
        from: actor.from.clone(),
        detail,
    };
    if let Err(e) = state.store.audit(&entry) {
        tracing::error!(action, subject, "cannot write the audit trail: {e}");
    }
}

/// A new bulletin id: `b-<issue time>-<16 random hex digits>`.
pub fn new_id(now: DateTime<Utc>) -> String {
    let nonce: [u8; 8] = rand::random();
    format!("b-{}-{}", now.format("%Y%m%d%H%M%S"), hex::encode(nonce))
}

/// What a new bulletin says, before it is signed.
#[derive(Debug, Clone)]
pub struct Draft {
    pub title: String,
    pub audio: AudioInfo,
    /// Resolved station ids (also for `to_all`).
    pub targets: Vec<String>,
    pub to_all: bool,
    pub priority: BulletinPriority,
    pub repeat: u32,
    pub interval_secs: u64,
    pub tone: bool,
    pub expires_at: DateTime<Utc>,
}

impl Draft {
    /// The document, issued now, checked against the bounds every station checks.
    pub fn doc(&self, now: DateTime<Utc>) -> Result<BulletinDoc, ApiError> {
        let doc = BulletinDoc {
            id: new_id(now),
            title: self.title.clone(),
            targets: if self.to_all { Vec::new() } else { self.targets.clone() },
            to_all: self.to_all,
            audio_sha256: self.audio.sha256.clone(),
            audio_size: self.audio.size,
            gain_db: self.audio.gain_db,
            priority: self.priority,
            repeat: self.repeat,
            interval_secs: self.interval_secs,
            tone: self.tone,
            issued_at: now,
            expires_at: self.expires_at,
            event_seq: None,
        };
        doc.check_bounds()
            .map_err(|why| ApiError::BadRequest(format!("bulletin refused: {why}")))?;
        Ok(doc)
    }
}

/// Text spoken by espeak-ng at central (`voice`: `vi`, `en`, …), stored in the library.
pub async fn speak(
    state: &AppState,
    text: &str,
    voice: &str,
    title: &str,
) -> Result<AudioInfo, ApiError> {
    speech::speech_audio(state, text, voice, title).await
}

/// Makes `doc`'s audio hot ([`crate::central::hot_audio`]) until the bulletin expires:
/// every station it reaches asks for it within the same second. A failure only means it
/// is served the slow way.
pub(super) async fn make_hot(state: &AppState, doc: &BulletinDoc) {
    let path = match state.audio.local(&doc.audio_sha256).await {
        Ok(Some(path)) => path,
        _ => state.audio.path(&doc.audio_sha256),
    };
    let now = state.clock.now();
    if let Err(e) = state.hot_audio.load(&doc.audio_sha256, &path, doc.expires_at, now).await {
        tracing::warn!(id = %doc.id, "bulletin audio will be served from disk: {e}");
    }
}

/// Signs `doc` for `targets` (resolved, also for `to_all`) and sends it: its audio made
/// hot, then one event on the stations' stream. Returns the event number.
pub async fn issue(
    state: &AppState,
    doc: &BulletinDoc,
    targets: &[String],
    issued_by: &str,
    actor: &Actor,
) -> Result<u64, ApiError> {
    // The same bounds every station checks: nothing is signed that a station refuses.
    doc.check_bounds().map_err(|why| ApiError::BadRequest(format!("bulletin refused: {why}")))?;
    // Hot before the stations hear of it: the whole fleet asks for it at once.
    make_hot(state, doc).await;
    let sign = |seq| {
        let signed = BulletinDoc { event_seq: Some(seq), ..doc.clone() };
        state.key.sign(DocumentKind::Bulletin, &signed)
    };
    let subject = EventSubject::Issue { doc, issued_by };
    let (seq, _) = state
        .bulletins
        .append(subject, sign, targets, doc.expires_at)?
        .ok_or_else(|| ApiError::Internal(format!("bulletin {} was not appended", doc.id)))?;
    tracing::info!(id = %doc.id, seq, stations = targets.len(), priority = %doc.priority, by = %issued_by, "bulletin pushed");
    audit(
        state,
        actor,
        "bulletin.push",
        &doc.id,
        format!(
            "{} to {} station(s), expires {}: {}",
            doc.priority,
            targets.len(),
            doc.expires_at.to_rfc3339(),
            doc.title
        ),
    );
    Ok(seq)
}

/// Stores `doc` to wait for a person's approval: nothing is signed, no station hears of
/// it until [`approve`].
pub fn hold(
    state: &AppState,
    doc: &BulletinDoc,
    requested_by: &str,
    reason: &str,
    actor: &Actor,
    requester: Option<&str>,
) -> Result<(), ApiError> {
    let pending = PendingBulletin {
        requester: requester.map(str::to_string),
        doc: doc.clone(),
        approval: Approval {
            state: ApprovalState::WaitingApproval,
            reason: reason.to_string(),
            requested_by: requested_by.to_string(),
            decided_by: None,
            decided_at: None,
        },
    };
    state.store.put_pending(&pending)?;
    tracing::info!(id = %doc.id, priority = %doc.priority, stations = doc.targets.len(), "bulletin waits for approval: {reason}");
    audit(
        state,
        actor,
        "bulletin.hold",
        &doc.id,
        format!(
            "{} to {} station(s) waits for approval: {reason}",
            doc.priority,
            doc.targets.len()
        ),
    );
    Ok(())
}

/// Approves bulletin `id`, waiting since a CAP alert made it (or, later, under a
/// two-person rule): it is signed now — issued now, expiring when it was to — and sent.
/// Refused when it is not waiting, or expired before anyone approved it (then it is
/// marked expired and never sent).
pub async fn approve(state: &AppState, id: &str, actor: &Actor) -> Result<BulletinDoc, ApiError> {
    let not_found = || {
        let id = crate::protocol::text::printable(&crate::protocol::bounds::clip(id));
        ApiError::NotFound(format!("no bulletin {id:?} waits for approval: `loa bulletin list`"))
    };
    let pending = state.store.pending(id)?.ok_or_else(not_found)?;
    let now = state.clock.now();
    // The two-person rule: whoever asked for it is not the second person.
    if pending.requester.as_deref() == Some(actor.person.as_str())
        && pending.approval.state == ApprovalState::WaitingApproval
    {
        return Err(ApiError::Forbidden(format!(
            "bulletin {id} waits for a second admin: {} asked for it and cannot approve it too",
            actor.who
        )));
    }
    match pending.approval.state {
        ApprovalState::WaitingApproval => {}
        other => {
            return Err(ApiError::BadRequest(format!(
                "bulletin {id} is {}{}: only a bulletin waiting for approval can be approved",
                other.as_str(),
                pending
                    .approval
                    .decided_by
                    .as_ref()
                    .map(|by| format!(" (by {by})"))
                    .unwrap_or_default()
            )));
        }
    }
    if pending.doc.expires_at <= now {
        state.store.decide_pending(
            id,
            ApprovalState::WaitingApproval,
            ApprovalState::Expired,
            "central",
            now,
        )?;
        audit(state, actor, "bulletin.expired", id, "expired before it was approved".into());
        return Err(ApiError::BadRequest(format!(
            "bulletin {id} expired at {} before it was approved: nothing was sent",
            pending.doc.expires_at.to_rfc3339()
        )));
    }
    let doc = BulletinDoc { issued_at: now, ..pending.doc.clone() };
    doc.check_bounds().map_err(|why| ApiError::BadRequest(format!("bulletin refused: {why}")))?;
    // First the decision (once, whoever else approves at the same moment), then the
    // signature; if signing fails the bulletin waits again.
    if !state.store.decide_pending(
        id,
        ApprovalState::WaitingApproval,
        ApprovalState::Approved,
        &actor.who,
        now,
    )? {
        return Err(ApiError::BadRequest(format!(
            "bulletin {id} was decided by someone else meanwhile: `loa bulletin show {id}`"
        )));
    }
    let targets = doc.targets.clone();
    let issued_by = format!("{}, approved by {}", pending.approval.requested_by, actor.who);
    if let Err(e) = issue(state, &doc, &targets, &issued_by, actor).await {
        let _ = state.store.decide_pending(
            id,
            ApprovalState::Approved,
            ApprovalState::WaitingApproval,
            &actor.who,
            now,
        );
        return Err(e);
    }
    audit(state, actor, "bulletin.approve", id, format!("approved: {}", pending.approval.reason));
    Ok(doc)
}

/// What [`cancel`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cancelled {
    /// A signed cancel order went to the stations.
    Signed,
    /// It was waiting for approval: withdrawn, never sent.
    Withdrawn,
    /// Already cancelled, withdrawn, expired unapproved, or expired: nothing to do.
    AlreadyOver,
}

/// Stops bulletin `id`: a signed one with a signed cancel order (the same for every
/// caller), a waiting one by withdrawing it. Role checks are the caller's.
pub fn cancel(state: &AppState, id: &str, actor: &Actor, why: &str) -> Result<Cancelled, ApiError> {
    let now = state.clock.now();
    if let Some(StoredBulletin { doc, cancelled_at, .. }) = state.bulletins.bulletin(id)? {
        if cancelled_at.is_some() || doc.expires_at <= now {
            return Ok(Cancelled::AlreadyOver);
        }
        let order = BulletinCancelDoc {
            id: doc.id.clone(),
            targets: if doc.to_all { Vec::new() } else { doc.targets.clone() },
            to_all: doc.to_all,
            issued_at: now,
            expires_at: doc.expires_at,
            event_seq: None,
        };
        let sign = |seq| {
            let signed = BulletinCancelDoc { event_seq: Some(seq), ..order.clone() };
            state.key.sign(DocumentKind::BulletinCancel, &signed)
        };
        let subject = EventSubject::Cancel { id: &doc.id, at: now };
        let Some((seq, _)) = state.bulletins.append(subject, sign, &doc.targets, doc.expires_at)?
        else {
            // Another operator, or another central, cancelled it a moment before.
            return Ok(Cancelled::AlreadyOver);
        };
        tracing::info!(id = %doc.id, seq, by = %actor.who, "bulletin cancelled");
        audit(state, actor, "bulletin.cancel", id, why.to_string());
        return Ok(Cancelled::Signed);
    }
    if state.store.pending(id)?.is_some() {
        if state.store.decide_pending(
            id,
            ApprovalState::WaitingApproval,
            ApprovalState::Withdrawn,
            &actor.who,
            now,
        )? {
            tracing::info!(id, by = %actor.who, "bulletin withdrawn before approval");
            audit(state, actor, "bulletin.withdraw", id, why.to_string());
            return Ok(Cancelled::Withdrawn);
        }
        return Ok(Cancelled::AlreadyOver);
    }
    let id = crate::protocol::text::printable(&crate::protocol::bounds::clip(id));
    Err(ApiError::NotFound(format!("no bulletin {id:?}: `loa bulletin list`")))
}
