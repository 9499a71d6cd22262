//! The checks every bulletin and cancel passes before anything else happens: the
//! province's signature, the bounds of every field, the target list, the expiry, and the
//! event number signed inside it (where the stream resumes).

use chrono::{DateTime, Utc};

use super::BulletinError;
use crate::protocol::{BulletinDoc, DocumentKind, SignedEnvelope};
use crate::signing::PublicKey;

/// Checks a bulletin envelope against everything but the seen-set and the issue
/// high-water mark (see the module docs): the signature, the bounds of every field, the
/// target list, the expiry.
pub fn verify_bulletin(
    key: &PublicKey,
    envelope: &SignedEnvelope,
    station: &str,
    now: DateTime<Utc>,
) -> Result<BulletinDoc, BulletinError> {
    let doc = signed_bulletin(key, envelope)?;
    check_bulletin(doc, station, now)
}

/// The signed bulletin in `envelope`, with only its signature and shape checked.
pub(super) fn signed_bulletin(
    key: &PublicKey,
    envelope: &SignedEnvelope,
) -> Result<BulletinDoc, BulletinError> {
    let payload = key.verify_envelope(DocumentKind::Bulletin, envelope)?;
    serde_json::from_slice(&payload)
        .map_err(|e| BulletinError::Malformed(format!("signed bulletin: {e}")))
}

/// The checks of [`verify_bulletin`] after the signature.
pub(super) fn check_bulletin(
    doc: BulletinDoc,
    station: &str,
    now: DateTime<Utc>,
) -> Result<BulletinDoc, BulletinError> {
    doc.check_bounds().map_err(|why| BulletinError::OutOfRange(format!("{}: {why}", doc.id)))?;
    if !doc.is_for(station) {
        return Err(BulletinError::NotForUs { id: doc.id, station: station.to_string() });
    }
    if now > doc.expires_at {
        return Err(BulletinError::Expired { id: doc.id, expires_at: doc.expires_at, now });
    }
    Ok(doc)
}

/// The event number to resume after once this event is handled: the number the province
/// signed into the document, which must be the number the event came with. A document
/// from an older central carries none; then the event's own number stands (central
/// treats a number beyond its newest event as a fresh start, so a forged one costs a
/// resend, not silence).
pub(super) fn resume_after(event_seq: u64, signed: Option<u64>) -> Result<u64, BulletinError> {
    match signed {
        Some(signed) if signed != event_seq => {
            Err(BulletinError::Renumbered { got: event_seq, signed })
        }
        _ if event_seq > crate::protocol::bounds::MAX_EVENT_SEQ => {
            Err(BulletinError::OutOfRange(format!(
                "event number {event_seq} is beyond {}",
                crate::protocol::bounds::MAX_EVENT_SEQ
            )))
        }
        _ => Ok(event_seq),
    }
}
