//! Telling central where each bulletin is at this station: delivered and verified at
//! the hand-off, started (with the latency to the first sound) and finished as the
//! daemon reports, failed with the reason. Reports are posted off the bulletin's path and
//! retried a few times; the ledger, not these, is the record that counts.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::Tracked;
use super::store::{Seen, Stage, play_end};
use crate::clock::SharedClock;
use crate::protocol::{DeliveryReport, DeliveryState};
use crate::station::core::PlayingNow;
use crate::station::daemon::StationStatus;

/// Posts delivery reports without holding up the bulletin path.
#[derive(Clone)]
pub(super) struct Reporter {
    pub(super) http: reqwest::Client,
    pub(super) central: std::sync::Arc<crate::station::central_addrs::CentralAddrs>,
    pub(super) token: String,
}

impl Reporter {
    pub(super) fn send(&self, report: DeliveryReport) {
        self.send_all(vec![report]);
    }

    /// Posts `reports` in one request (a JSON array when there are several).
    pub(super) fn send_all(&self, reports: Vec<DeliveryReport>) {
        let Some(first) = reports.first() else { return };
        let (id, state) = (first.bulletin_id.clone(), first.state.as_str());
        let body = match reports.as_slice() {
            [one] => serde_json::to_vec(one),
            many => serde_json::to_vec(many),
        };
        let body = match body {
            Ok(body) => body,
            Err(e) => {
                tracing::error!(%id, "delivery report: {e}");
                return;
            }
        };
        let me = self.clone();
        tokio::spawn(async move {
            for attempt in 0..6u32 {
                // Each try at the address chosen then: a report sent twice (the first
                // answer lost) sets the same state again, as a retry here always could.
                let pick = me.central.choose();
                let request = me
                    .http
                    .post(pick.url(crate::protocol::api::station::DELIVERY))
                    .bearer_auth(&me.token)
                    .header(reqwest::header::CONTENT_TYPE, "application/json")
                    .body(body.clone());
                let patience = crate::station::central_addrs::ANSWER_TIMEOUT;
                let sent = me.central.send(&pick, request, patience).await;
                match sent {
                    Ok(r) if r.status().is_success() => return,
                    Ok(r) if r.status().is_client_error() => {
                        tracing::warn!(%id, status = %r.status(), "central refused a delivery report");
                        return;
                    }
                    _ => tokio::time::sleep(Duration::from_millis(500 << attempt)).await,
                }
            }
            tracing::warn!(%id, state, "delivery report not sent");
        });
    }
}

/// Counts each emergency play the daemon recorded into its bulletin's progress.
pub(super) async fn progress(
    mut records: tokio::sync::mpsc::UnboundedReceiver<crate::station::ledger::Entry>,
    seen: Arc<Seen>,
    clock: SharedClock,
) {
    while let Some(entry) = records.recv().await {
        let Some(end) = play_end(&entry) else { continue };
        let (seen, now) = (seen.clone(), clock.now());
        let ended_at = entry.ended.unwrap_or(entry.planned);
        let written = tokio::task::spawn_blocking(move || {
            seen.play_ended(&entry.item_id, &end, ended_at, now)
        });
        match written.await {
            Ok(Ok(Some(stage))) if stage != Stage::Accepted => {
                tracing::info!(stage = stage.as_str(), "bulletin progress closed");
            }
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::error!("{e}"),
            Err(e) => tracing::error!("replay store: {e}"),
        }
    }
}

/// Watches the daemon's status and reports `started` (with the latency from push to the
/// first sound) and `finished` (after the last play) for each tracked bulletin.
pub(super) async fn track(
    mut status: tokio::sync::watch::Receiver<StationStatus>,
    tracked: Arc<Mutex<HashMap<String, Tracked>>>,
    reporter: Reporter,
    clock: SharedClock,
) {
    loop {
        let playing = status.borrow_and_update().playing.clone();
        let reports = match tracked.lock() {
            Ok(mut map) => observe(&playing, &mut map, clock.now()),
            Err(_) => Vec::new(),
        };
        if !reports.is_empty() {
            reporter.send_all(reports);
        }
        if status.changed().await.is_err() {
            return;
        }
    }
}

/// What the daemon's now-playing list means for the tracked bulletins; the finished ones
/// leave `map`. `started` is reported once, at the first sound of the bulletin at the
/// loudspeaker: its attention tone (`<id>:tone`) when it has one, since that is what
/// people hear first and what the latency from the push is about. `finished` follows
/// the end of its last play (the tone is not a play).
pub(super) fn observe(
    playing: &[PlayingNow],
    map: &mut HashMap<String, Tracked>,
    now: DateTime<Utc>,
) -> Vec<DeliveryReport> {
    let mut reports = Vec::new();
    let mut done = Vec::new();
    for (id, t) in map.iter_mut() {
        let tone = format!("{id}:tone");
        let first_sound = playing
            .iter()
            .filter(|p| p.item_id == *id || p.item_id == tone)
            .map(|p| p.started)
            .min();
        if let Some(at) = first_sound
            && !t.start_reported
        {
            t.start_reported = true;
            reports.push(DeliveryReport {
                bulletin_id: id.clone(),
                state: DeliveryState::Started,
                at,
                latency_ms: Some((at - t.issued_at).num_milliseconds()),
                reason: None,
                reason_code: None,
            });
        }
        match playing.iter().find(|p| &p.item_id == id) {
            Some(p) => {
                if !t.started.contains(&p.planned) {
                    t.started.push(p.planned);
                }
                t.sounding = true;
            }
            None if t.sounding => {
                t.sounding = false;
                if t.started.len() as u32 >= t.plays {
                    reports.push(DeliveryReport {
                        bulletin_id: id.clone(),
                        state: DeliveryState::Finished,
                        at: now,
                        latency_ms: None,
                        reason: None,
                        reason_code: None,
                    });
                    done.push(id.clone());
                }
            }
            None => {}
        }
    }
    for id in done {
        map.remove(&id);
    }
    reports
}
