//! A live broadcast announced on the event stream: its start document is checked like a
//! bulletin (the province's signature under its own tag, the signed event number, the
//! bounds, the target, the expiry, not seen before), then handed to the airwaves with
//! what the daemon needs to fetch it.

use crate::protocol::live::{LiveDoc, genesis};
use crate::protocol::{DocumentKind, SignedEnvelope};
use crate::station::live::AirLive;
use crate::station::live::listen::LiveFetch;

use super::Receiver;

impl Receiver {
    /// Handles a live start event; the resume point, as for a bulletin.
    pub(super) async fn live(&mut self, envelope: &SignedEnvelope, event_seq: u64) -> Option<u64> {
        let key = self.config.sync.public_key;
        let doc: LiveDoc = match key
            .verify_envelope(DocumentKind::Live, envelope)
            .map_err(|e| e.to_string())
            .and_then(|p| serde_json::from_slice(&p).map_err(|e| format!("not a live start: {e}")))
        {
            Ok(doc) => doc,
            Err(e) => {
                tracing::warn!("live broadcast refused: {e}");
                return None;
            }
        };
        let resume = self.resume_or_log(event_seq, doc.event_seq)?;
        let station = self.config.sync.station_id.clone();
        let now = self.clock.now();
        let refused = if let Err(why) = doc.check_bounds() {
            Some(why)
        } else if !doc.is_for(&station) {
            Some(format!("it is for other stations, not {station}"))
        } else if now > doc.expires_at {
            Some(format!("it expired at {}", doc.expires_at))
        } else {
            match self.seen.contains(&doc.id) {
                Ok(true) => Some("it was already received (a replay)".to_string()),
                Ok(false) => {
                    self.seen.insert(&doc.id, doc.expires_at, now).err().map(|e| e.to_string())
                }
                Err(e) => Some(e.to_string()),
            }
        };
        if let Some(why) = refused {
            tracing::warn!(id = %crate::protocol::bounds::clip(&doc.id), "live broadcast refused: {why}");
            return Some(resume);
        }
        let fetch = LiveFetch {
            central: self.config.sync.central.clone(),
            path: format!("/api/v1/station/live/{}", doc.id),
            token: self.config.sync.token.clone(),
            http: self.http.clone(),
            key,
            id: doc.id.clone(),
            genesis: genesis(envelope),
        };
        tracing::info!(id = %doc.id, priority = ?doc.priority, "live broadcast verified: on air");
        if !self.airwaves.air_live(AirLive { doc, fetch }) {
            tracing::error!("the station daemon has stopped: the live broadcast cannot air");
        }
        Some(resume)
    }
}
