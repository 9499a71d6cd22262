//! A live broadcast started but never spoken (the operator's link died after the start):
//! a real `loa central` ends it by itself after `UPLOAD_WAIT` (30 s), lists it with why,
//! and writes its start (by the admin, from the caller's address) and its end (by
//! `central`) to the audit trail.

use std::time::Duration;

use loa::central::live::UPLOAD_WAIT;
use loa::protocol::live::{LiveRecord, StartLiveRequest, StartLiveResponse};
use loa::protocol::{AuditEntry, BulletinPriority, Target};

use super::rig::Rig;
use crate::support::wait;

fn get<T: serde::de::DeserializeOwned>(rig: &Rig, path: &str) -> Option<T> {
    let runtime = tokio::runtime::Runtime::new().ok()?;
    runtime.block_on(async {
        reqwest::Client::new()
            .get(format!("{}{path}", rig.url))
            .bearer_auth(&rig.admin)
            .send()
            .await
            .ok()?
            .json::<T>()
            .await
            .ok()
    })
}

#[test]
fn a_broadcast_never_spoken_is_ended_by_central_and_both_ends_are_audited() {
    let dir = tempfile::tempdir().unwrap();
    let rig = Rig::start(dir.path());
    let request = StartLiveRequest {
        title: "Không ai nói".into(),
        to: Target::All,
        priority: BulletinPriority::Priority,
    };
    let started: StartLiveResponse = tokio::runtime::Runtime::new().unwrap().block_on(async {
        let answer = reqwest::Client::new()
            .post(format!("{}{}", rig.url, loa::protocol::api::operator::LIVE))
            .bearer_auth(&rig.admin)
            .json(&request)
            .send()
            .await
            .unwrap();
        assert!(answer.status().is_success(), "{}", answer.status());
        answer.json().await.unwrap()
    });
    let id = started.id;

    let list: Vec<LiveRecord> =
        wait::until("the end for want of audio", UPLOAD_WAIT + Duration::from_secs(20), || {
            get::<Vec<LiveRecord>>(&rig, loa::protocol::api::operator::LIVE)
                .filter(|l| l.iter().any(|r| r.id == id && r.end_reason.is_some()))
        });
    let row = list.iter().find(|r| r.id == id).unwrap();
    assert_eq!(row.end_reason.as_deref(), Some("no audio arrived"), "{row:?}");
    assert_eq!(row.chunks, 0);

    let audit: Vec<AuditEntry> = get(&rig, "/api/v1/audit").expect("the audit trail");
    let of = |action: &str| -> Vec<&AuditEntry> {
        audit.iter().filter(|a| a.action == action && a.subject == id).collect()
    };
    let (start, end) = (of("live.start"), of("live.end"));
    assert_eq!((start.len(), end.len()), (1, 1), "{audit:?}");
    assert_eq!(start[0].who, "admin");
    assert!(start[0].from.starts_with("127.0.0.1:"), "{:?}", start[0]);
    assert!(start[0].detail.starts_with("priority to 1 station(s) (all)"), "{:?}", start[0]);
    assert_eq!(end[0].who, "central");
    assert_eq!(end[0].detail, format!("no audio arrived within {} s", UPLOAD_WAIT.as_secs()));
    let waited = end[0].at - start[0].at;
    assert!(waited >= chrono::Duration::from_std(UPLOAD_WAIT).unwrap(), "{waited}");
}
