//! Signed documents (manifests, bulletins, cancel orders) as they arrive from the
//! network. Two paths:
//! - the fuzz input is an envelope's JSON, verified as a manifest or a bulletin with the
//!   pinned key (nearly always refused: it must be refused without a panic);
//! - the fuzz input is a payload the real key signs (what a buggy or compromised central
//!   could send): signature passes, then decoding the manifest and its schedules must
//!   never panic.
#![no_main]

use chrono::{TimeZone, Utc};
use libfuzzer_sys::fuzz_target;
use loa::protocol::{BulletinCancelDoc, BulletinDoc, DocumentKind, SignedEnvelope};
use loa::signing::{ProvinceKey, verify_manifest, verify_stored_manifest};

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else { return };
    let key = ProvinceKey::from_seed([42; 32]);
    let public = key.public();
    let now = Utc.with_ymd_and_hms(2026, 12, 1, 0, 0, 0).single().unwrap_or_default();
    let envelope: SignedEnvelope = match selector % 4 {
        0 => match serde_json::from_slice(rest) {
            Ok(envelope) => envelope,
            Err(_) => return,
        },
        1 => {
            // The payload is signed by the real key, whatever it is.
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(rest) else { return };
            match key.sign(DocumentKind::Manifest, &value) {
                Ok(envelope) => envelope,
                Err(_) => return,
            }
        }
        2 => {
            // Raw bytes as a bulletin cancel order under the real signature.
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(rest) else { return };
            match key.sign(DocumentKind::BulletinCancel, &value) {
                Ok(envelope) => envelope,
                Err(_) => return,
            }
        }
        _ => {
            // Raw bytes as a bulletin payload under the real signature.
            let Ok(value) = serde_json::from_slice::<serde_json::Value>(rest) else { return };
            match key.sign(DocumentKind::Bulletin, &value) {
                Ok(envelope) => envelope,
                Err(_) => return,
            }
        }
    };
    if selector % 4 == 0 {
        // Forged by the fuzzer: must never verify.
        assert!(public.verify_envelope(DocumentKind::Manifest, &envelope).is_err());
        assert!(public.verify_envelope(DocumentKind::Bulletin, &envelope).is_err());
        assert!(public.verify_envelope(DocumentKind::BulletinCancel, &envelope).is_err());
    }
    if let Ok(payload) = public.verify_envelope(DocumentKind::Bulletin, &envelope) {
        let _ = serde_json::from_slice::<BulletinDoc>(&payload);
    }
    if let Ok(payload) = public.verify_envelope(DocumentKind::BulletinCancel, &envelope) {
        let _ = serde_json::from_slice::<BulletinCancelDoc>(&payload);
    }
    let _ = verify_stored_manifest(&public, &envelope, "tri-ton");
    if let Ok(verified) = verify_manifest(&public, &envelope, "tri-ton", Some(1), now) {
        assert_eq!(verified.manifest.station_id, "tri-ton");
        assert!(verified.manifest.version >= 1);
        let _ = loa::station::sync::schedules(&verified.manifest);
        let _ = loa::station::sync::plan(&verified.manifest, &Default::default());
        for schedule in &verified.manifest.schedules {
            let _ = loa::station::sync::resolved_source(schedule);
        }
    }
});
