//! What the receiver does with each event: a cancel closes its bulletin wherever it is;
//! a bulletin is checked, marked seen and accepted, its audio fetched ahead of everything
//! else and handed to the airwaves ([`super::Airwaves`]); and on start, what a stop left
//! unaired is handed over again with only its remaining plays.

use std::collections::HashSet;
use std::path::Path;

use chrono::{DateTime, Utc};

use super::store::{Progress, Stage, reconcile, unaired};
use super::verify::{check_bulletin, resume_after, signed_bulletin};
use super::{Airing, BulletinError, Ready, Receiver, Tracked};
use crate::protocol::playlog::EXPIRED_WHILE_STOPPED;
use crate::protocol::{
    BulletinCancelDoc, BulletinDoc, BulletinEvent, BulletinPriority, DeliveryReport, DeliveryState,
    DocumentKind, Reason, SignedEnvelope,
};
use crate::station::sync::SyncError;

impl Receiver {
    /// Handles one event; a refusal is logged (and reported), never fatal. The resume
    /// point moves only past an event the province signed, to the number it signed:
    /// one forged event with a huge id must not make the station skip every later one.
    pub async fn handle(&mut self, event: BulletinEvent) {
        let handled = match event.envelope.kind {
            DocumentKind::BulletinCancel => self.cancel(&event.envelope, event.seq),
            DocumentKind::Live => self.live(&event.envelope, event.seq).await,
            _ => self.bulletin(&event.envelope, event.seq).await,
        };
        let Some(seq) = handled else { return };
        let seen = self.seen.clone();
        match tokio::task::spawn_blocking(move || seen.set_last_event(seq)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("{e}"),
            Err(e) => tracing::error!("replay store: {e}"),
        }
    }

    /// The signed cancel order in `envelope`, if the province signed it: `Ok` with the
    /// order when it is for this station and within bounds, `Err(())` (logged) when it
    /// is signed but not to act on.
    pub(super) fn signed_cancel(
        &self,
        envelope: &SignedEnvelope,
    ) -> Option<Result<BulletinCancelDoc, ()>> {
        let checked = self
            .config
            .sync
            .public_key
            .verify_envelope(DocumentKind::BulletinCancel, envelope)
            .map_err(BulletinError::from)
            .and_then(|p| {
                serde_json::from_slice::<BulletinCancelDoc>(&p)
                    .map_err(|e| BulletinError::Malformed(format!("signed cancel: {e}")))
            });
        match checked {
            Ok(o) => match o.check_bounds() {
                Err(why) => {
                    tracing::warn!(id = %o.id, "signed cancel refused: {why}");
                    Some(Err(()))
                }
                Ok(()) if o.is_for(&self.config.sync.station_id) => Some(Ok(o)),
                Ok(()) => {
                    tracing::warn!(id = %o.id, "cancel for other stations: ignored");
                    Some(Err(()))
                }
            },
            Err(e) => {
                tracing::warn!("cancel refused: {e}");
                None
            }
        }
    }

    /// The signed cancel order in `envelope` if it is for this station (else logged).
    pub(super) fn verify_cancel(&self, envelope: &SignedEnvelope) -> Option<BulletinCancelDoc> {
        self.signed_cancel(envelope).and_then(Result::ok)
    }

    /// Handles a cancel event; returns where the stream resumes after it, `None` when
    /// the province did not sign it.
    pub(super) fn cancel(&mut self, envelope: &SignedEnvelope, event_seq: u64) -> Option<u64> {
        let now = self.clock.now();
        let order = match self.signed_cancel(envelope)? {
            Ok(order) => order,
            Err(()) => return self.resume_or_log(event_seq, None),
        };
        let resume = self.resume_or_log(event_seq, order.event_seq)?;
        self.cancel_order(order, now);
        Some(resume)
    }

    /// [`resume_after`], logging a refusal.
    pub(super) fn resume_or_log(&self, event_seq: u64, signed: Option<u64>) -> Option<u64> {
        resume_after(event_seq, signed).inspect_err(|e| tracing::warn!("{e}")).ok()
    }

    pub(super) fn cancel_order(&mut self, order: BulletinCancelDoc, now: DateTime<Utc>) {
        tracing::info!(id = %order.id, "bulletin cancelled by the province");
        // Held to the end: a retry task does not hand the bulletin over in between.
        let handed = self.handed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        // A bulletin not yet received is now "seen": it will never play; one accepted
        // is no longer resumed. Written before the event's id becomes the cursor
        // (`handle`): a stop in between gets the cancel again, which changes nothing.
        let closed = match self.seen.cancel(&order.id, order.expires_at, now) {
            Ok(closed) => closed,
            Err(e) => {
                tracing::error!("{e}");
                None
            }
        };
        if let Ok(mut tracked) = self.tracked.lock() {
            tracked.remove(&order.id);
        }
        let sent = if handed.contains(&order.id) {
            // The daemon stops it where it plays or is queued, and records that.
            self.airwaves.cancel(&order.id)
        } else if let Some(p) = closed {
            // Accepted but its audio had not arrived: the daemon never heard of it, so
            // its ledger record (what the station did with it) is written from here.
            tracing::info!(id = %order.id, "bulletin cancelled before its audio arrived: not aired");
            self.airwaves.record(unaired(&p, Reason::Cancelled, now))
        } else {
            true
        };
        if !sent {
            tracing::error!("{}", BulletinError::DaemonGone);
        }
    }

    /// Handles a bulletin event; returns where the stream resumes after it, `None` when
    /// the province did not sign it (or signed it for another event number).
    pub(super) async fn bulletin(
        &mut self,
        envelope: &SignedEnvelope,
        event_seq: u64,
    ) -> Option<u64> {
        let signed = match signed_bulletin(&self.config.sync.public_key, envelope) {
            Ok(doc) => doc,
            Err(e) => {
                tracing::warn!("{e}");
                return None;
            }
        };
        let resume = self.resume_or_log(event_seq, signed.event_seq)?;
        self.signed_bulletin(signed).await;
        Some(resume)
    }

    /// A bulletin the province signed: checked, then fetched and handed over.
    pub(super) async fn signed_bulletin(&mut self, signed: BulletinDoc) {
        let now = self.clock.now();
        let station = self.config.sync.station_id.clone();
        let doc = match check_bulletin(signed, &station, now) {
            Ok(doc) => doc,
            Err(e) => {
                tracing::warn!("{e}");
                if let BulletinError::Expired { id, expires_at, .. } = &e {
                    self.report(id, DeliveryState::Failed, None, Some(e.reason()));
                    let _ = self.seen.insert(id, *expires_at, now);
                }
                return;
            }
        };
        match self.seen.contains(&doc.id) {
            Ok(false) => {}
            Ok(true) => {
                tracing::warn!("{}", BulletinError::Replay(doc.id.clone()));
                return;
            }
            Err(e) => {
                tracing::error!("{e}");
                return;
            }
        }
        // A station whose clock went back forgets seen ids early (they are kept a day
        // past expiry by its own clock): an old genuine bulletin replayed then would
        // look new. One that had expired before the newest bulletin this station has
        // seen was issued (issued more than its own validity earlier) is stale, whatever
        // the clock says.
        match self.seen.newest_issued() {
            Ok(Some(newest)) if doc.expires_at < newest => {
                let e =
                    BulletinError::Stale { id: doc.id.clone(), issued_at: doc.issued_at, newest };
                tracing::warn!("{e}");
                self.report(&doc.id, DeliveryState::Failed, None, Some(e.reason()));
                return;
            }
            Ok(_) => {}
            Err(e) => tracing::error!("{e}"),
        }
        // Reported after the hand-off: the bulletin's path comes first.
        let delivered_at = now;
        let verified_at = self.clock.now();
        tracing::info!(id = %doc.id, priority = %doc.priority, "bulletin verified; fetching its audio first");
        // Seen before it is handed over: a stop after this never takes it as new again.
        // A bulletin for the daemon is recorded accepted in the same transaction, so a
        // stop before all its plays aired resumes it on start (fetching its audio again
        // if it had not arrived). That one fsync runs off the async workers *while* the
        // audio downloads: on a station's SD card it would otherwise add its whole
        // latency to the warning's.
        let accept = doc.priority != BulletinPriority::Test;
        let (seen, accepted) = (self.seen.clone(), doc.clone());
        let written = tokio::task::spawn_blocking(move || {
            if accept { seen.accept(&accepted, now) } else { seen.insert_doc(&accepted, now) }
        });
        let fetched = self.fetch(&doc, delivered_at, false).await;
        match written.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("{e}"),
            Err(e) => tracing::error!("replay store: {e}"),
        }
        match fetched {
            Ok(ready) => self.hand_off(&doc, ready, delivered_at, verified_at),
            // Retried in a task of its own until it expires: the stream must go on
            // meanwhile — another warning, or the cancel of this one, must not wait
            // behind a download that keeps failing.
            Err(e) if self.clock.now() < doc.expires_at => {
                tracing::warn!(id = %doc.id, "bulletin audio: {e}; retrying while the stream goes on");
                let courier = self.detached();
                tokio::spawn(async move {
                    match courier.fetch(&doc, delivered_at, true).await {
                        Ok(ready) => courier.hand_off(&doc, ready, delivered_at, verified_at),
                        Err(e) => courier.fetch_failed(&doc, accept, e),
                    }
                });
            }
            Err(e) => self.fetch_failed(&doc, accept, e),
        }
    }

    /// A bulletin whose audio did not arrive before it expired: an accepted one is closed
    /// with a ledger record saying why; any other is reported failed.
    pub(super) fn fetch_failed(&self, doc: &BulletinDoc, accept: bool, e: BulletinError) {
        if let BulletinError::Withdrawn(_) = e {
            tracing::info!(id = %doc.id, "bulletin cancelled while its audio was retried: not aired");
            return;
        }
        tracing::error!(id = %doc.id, "bulletin audio: {e}");
        let progress = if accept { self.seen.get(&doc.id).ok().flatten() } else { None };
        match progress {
            // Accepted, never aired: closed with a ledger record saying why.
            Some(mut p) => {
                let reason = Reason::Failure(format!("its audio could not be fetched: {e}"));
                self.give_up(&mut p, reason, self.clock.now());
            }
            None => self.report(&doc.id, DeliveryState::Failed, None, Some(e.reason())),
        }
    }

    /// Hands a bulletin whose audio is in the cache to the daemon (or the channel), then
    /// reports it delivered and verified.
    pub(super) fn hand_off(
        &self,
        doc: &BulletinDoc,
        ready: Ready,
        delivered_at: DateTime<Utc>,
        verified_at: DateTime<Utc>,
    ) {
        // Held until the daemon has it: see `handed`.
        let mut handed = self.handed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.withdrawn(&doc.id) {
            tracing::info!(id = %doc.id, "bulletin audio arrived after its cancel: not aired");
            return;
        }
        if doc.priority == BulletinPriority::Test {
            tracing::info!(id = %doc.id, "test bulletin verified end to end: not aired");
            self.report(&doc.id, DeliveryState::TestOk, None, None);
        }
        if doc.priority != BulletinPriority::Test {
            handed.insert(doc.id.clone());
            if let Ok(mut tracked) = self.tracked.lock() {
                tracked.insert(
                    doc.id.clone(),
                    Tracked {
                        issued_at: doc.issued_at,
                        plays: doc.repeat + 1,
                        started: Vec::new(),
                        sounding: false,
                        start_reported: false,
                    },
                );
            }
            let airing = Airing { ready, repeat: doc.repeat, tone: doc.tone };
            if !self.airwaves.air(airing) {
                self.report(
                    &doc.id,
                    DeliveryState::Failed,
                    None,
                    Some(Reason::Failure("station daemon stopped".into())),
                );
            }
        }
        self.reporter.send_all(
            [(DeliveryState::Delivered, delivered_at), (DeliveryState::Verified, verified_at)]
                .map(|(state, at)| DeliveryReport {
                    bulletin_id: doc.id.clone(),
                    state,
                    at,
                    latency_ms: None,
                    reason: None,
                    reason_code: None,
                })
                .to_vec(),
        );
    }

    /// Hands the daemon again every accepted bulletin a stop left unaired, oldest first,
    /// with only its remaining plays; one that expired meanwhile gets a `missed` ledger
    /// record and a `failed` report saying so.
    ///
    /// A play cut by the stop counts as not aired: it airs again from the start. Airing a
    /// flood warning twice is better than not at all, and nobody can tell which part of
    /// a cut play was heard.
    pub(super) async fn resume(&mut self, ledger: &Path) {
        let seen = self.seen.clone();
        let pending = match tokio::task::spawn_blocking(move || seen.pending()).await {
            Ok(Ok(pending)) => pending,
            Ok(Err(e)) => {
                tracing::error!("cannot read the accepted bulletins, none is resumed: {e}");
                return;
            }
            Err(e) => {
                tracing::error!("replay store: {e}");
                return;
            }
        };
        let cancelled =
            if pending.is_empty() { HashSet::new() } else { self.cancels_waiting().await };
        for mut p in pending {
            if reconcile(&mut p, ledger) {
                // The store lagged the ledger (a stop between the two writes).
                self.close(&p, Stage::Accepted, self.clock.now());
            }
            let id = p.doc.id.clone();
            let now = self.clock.now();
            if p.ended >= p.plays {
                tracing::info!(id = %id, aired = p.aired, "bulletin had ended before the stop");
                self.close(&p, Stage::Finished, now);
                self.report(&id, DeliveryState::Finished, None, None);
                continue;
            }
            if cancelled.contains(&id) {
                // As the core records a queued play a cancel withdrew. The cancel event
                // itself is handled again from the stream: it changes nothing more.
                tracing::info!(id = %id, "bulletin cancelled while the station was stopped: not resumed");
                let entry = unaired(&p, Reason::Cancelled, now);
                if !self.airwaves.record(entry) {
                    tracing::error!("{}", BulletinError::DaemonGone);
                }
                p.reason = Some(Reason::Cancelled.to_string());
                self.close(&p, Stage::Cancelled, now);
                continue;
            }
            if now > p.doc.expires_at {
                let reason = Reason::Expired(Some(format!(
                    "{EXPIRED_WHILE_STOPPED} (expired at {}, {} of {} plays aired)",
                    p.doc.expires_at.to_rfc3339(),
                    p.aired,
                    p.plays
                )));
                self.give_up(&mut p, reason, now);
                continue;
            }
            let ready = match self.recheck(&p.doc, p.accepted_at, false).await {
                Ok(ready) => ready,
                // As for a new bulletin: retried in a task of its own, so the other
                // resumed bulletins and the stream do not wait for it.
                Err(e) if self.clock.now() < p.doc.expires_at => {
                    tracing::warn!(id = %id, "resumed bulletin's audio: {e}; retrying while the stream goes on");
                    let courier = self.detached();
                    tokio::spawn(async move {
                        match courier.recheck(&p.doc, p.accepted_at, true).await {
                            Ok(ready) => {
                                courier.resume_hand_off(&p, ready);
                            }
                            Err(BulletinError::Withdrawn(_)) => {}
                            Err(e) => {
                                let reason = Reason::Failure(format!(
                                    "audio missing after a restart and not fetched: {e}"
                                ));
                                courier.give_up(&mut p, reason, courier.clock.now());
                            }
                        }
                    });
                    continue;
                }
                Err(e) => {
                    let reason = Reason::Failure(format!(
                        "audio missing after a restart and not fetched: {e}"
                    ));
                    self.give_up(&mut p, reason, self.clock.now());
                    continue;
                }
            };
            if !self.resume_hand_off(&p, ready) {
                return;
            }
        }
    }

    /// Hands a resumed bulletin's remaining plays to the daemon; false when it has stopped.
    pub(super) fn resume_hand_off(&self, p: &Progress, ready: Ready) -> bool {
        // Held until the daemon has it: see `handed`.
        let mut handed = self.handed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let id = p.doc.id.clone();
        if self.withdrawn(&id) {
            tracing::info!(id = %id, "resumed bulletin's audio arrived after its cancel: not aired");
            return true;
        }
        handed.insert(id.clone());
        let remaining = p.plays - p.ended;
        tracing::info!(id = %id, remaining, aired = p.aired, "resuming a bulletin the stop left unaired");
        if let Ok(mut tracked) = self.tracked.lock() {
            tracked.insert(
                id.clone(),
                Tracked {
                    issued_at: p.doc.issued_at,
                    plays: remaining,
                    started: Vec::new(),
                    sounding: false,
                    start_reported: p.aired > 0,
                },
            );
        }
        // The tone announces the first play only.
        let tone = p.doc.tone && p.aired == 0;
        let sent = self.airwaves.air(Airing { ready, repeat: remaining - 1, tone });
        if !sent {
            tracing::error!("{}", BulletinError::DaemonGone);
        }
        sent
    }

    /// Ends an accepted bulletin that can no longer air: a `missed` ledger record (what
    /// the ledger says of anything the station was not running for), a `failed` report
    /// with `reason`, and the store closed.
    pub(super) fn give_up(&self, p: &mut Progress, reason: Reason, now: DateTime<Utc>) {
        // Under `handed`'s lock, and only while still accepted: a cancel that came first
        // has already written its ledger record, and a bulletin gets one, not two.
        let _handed = self.handed.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        if self.withdrawn(&p.doc.id) {
            tracing::info!(id = %p.doc.id, "bulletin cancelled before it could air: not aired");
            return;
        }
        tracing::warn!(id = %p.doc.id, "bulletin not aired: {reason}");
        let entry = unaired(p, reason.clone(), now);
        if !self.airwaves.record(entry) {
            tracing::error!("{}", BulletinError::DaemonGone);
        }
        p.reason = Some(reason.to_string());
        self.close(p, Stage::Failed, now);
        self.report(&p.doc.id, DeliveryState::Failed, None, Some(reason));
    }

    /// Writes `p` as `stage` (logged, not fatal: the next start reconciles again).
    pub(super) fn close(&self, p: &Progress, stage: Stage, now: DateTime<Utc>) {
        if let Err(e) = self.seen.update(p, stage, now) {
            tracing::error!("{e}");
        }
    }

    /// The bulletin's audio checked again in the cache: a file whose bytes no longer
    /// match its name is removed, and a missing one fetched again.
    pub(super) async fn recheck(
        &self,
        doc: &BulletinDoc,
        received_at: DateTime<Utc>,
        retry: bool,
    ) -> Result<Ready, BulletinError> {
        let sha = doc.audio_sha256.clone();
        if crate::station::sync::cache::is_sha256(&sha) {
            let path = self.syncer.cache().audio_path(&sha);
            let checked = tokio::task::spawn_blocking(move || {
                match crate::station::daemon::file_sha256(&path) {
                    Ok(actual) if actual != sha => {
                        tracing::warn!(path = %path.display(), "cached bulletin audio corrupt: fetching it again");
                        let _ = std::fs::remove_file(&path);
                    }
                    _ => {}
                }
            });
            let _ = checked.await;
        }
        self.fetch(doc, received_at, retry).await
    }

    /// Downloads the bulletin's audio into the sync cache: one try, or with `retry`
    /// again with the receiver's backoff until the bulletin expires or is cancelled. A
    /// bulletin is small: it is fetched whole into memory, its sha256 checked as it
    /// arrives, then written to the cache's temporary file and committed (fsync, rename)
    /// on the blocking pool, so a whole fleet's worth of disk waits never stalls the
    /// streams; the directory's fsync follows off the warning's path. It never queues
    /// behind the sync's programme downloads.
    pub(super) async fn fetch(
        &self,
        doc: &BulletinDoc,
        received_at: DateTime<Utc>,
        retry: bool,
    ) -> Result<Ready, BulletinError> {
        let sha = doc.audio_sha256.clone();
        if !crate::station::sync::cache::is_sha256(&sha) {
            return Err(SyncError::BadName(sha).into());
        }
        let mut attempt = 0;
        let mut checked_at = self.clock.now();
        while !self.syncer.cache().contains(&sha) {
            match self.syncer.fetch_whole(&doc.audio_sha256, doc.audio_size).await {
                Ok(at) => {
                    checked_at = at;
                    break;
                }
                // Until the bulletin expires: a warning that failed a few quick tries
                // (central restarting, a link dropping) must still air when the link
                // comes back, not be reported failed and forgotten.
                Err(e) if retry && self.clock.now() < doc.expires_at => {
                    if self.withdrawn(&doc.id) {
                        return Err(BulletinError::Withdrawn(doc.id.clone()));
                    }
                    tracing::warn!(id = %doc.id, "bulletin audio, retrying: {e}");
                    let delay = self.config.backoff.delay(attempt, rand::random::<f64>());
                    attempt = attempt.saturating_add(1);
                    tokio::time::sleep(delay).await;
                }
                Err(e) => return Err(e.into()),
            }
        }
        Ok(Ready {
            doc: doc.clone(),
            audio: self.syncer.cache().audio_path(&sha),
            received_at,
            checked_at,
            verified_at: self.clock.now(),
        })
    }
}
