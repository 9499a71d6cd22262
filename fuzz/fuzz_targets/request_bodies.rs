//! The JSON bodies stations and operators send to central (heartbeat, playlog batch,
//! schedule load, bulletin push, delivery report),
//! decoded and checked as central does before anything is stored.
#![no_main]

use libfuzzer_sys::fuzz_target;
use loa::protocol::{
    DeliveryReport, Heartbeat, LoadScheduleRequest, PlaylogBatch, PushBulletinRequest,
};

fuzz_target!(|data: &[u8]| {
    let _ = serde_json::from_slice::<Heartbeat>(data);
    let _ = serde_json::from_slice::<DeliveryReport>(data);
    if let Ok(batch) = serde_json::from_slice::<PlaylogBatch>(data) {
        // Central recomputes every record's hash and checks its link.
        for record in &batch.records {
            let hash = loa::station::ledger::chain_hash(
                &record.prev_hash,
                &record.station,
                record.seq,
                &record.entry,
            );
            assert_eq!(hash.len(), 64);
        }
    }
    let _ = serde_json::from_slice::<PushBulletinRequest>(data);
    if let Ok(request) = serde_json::from_slice::<LoadScheduleRequest>(data) {
        if let Ok(schedule) = loa::central::manifest::check_schedule(&request.source, &request.origin)
        {
            let _ = loa::central::manifest::resolve_audio(&schedule, &request.audio);
        }
    }
});
