//! The push every bulletin benchmark times: an emergency to every station, with audio
//! already in the library, through central's API as an admin.

use loa::protocol::{BulletinPriority, PushBulletinRequest, PushBulletinResponse, Target};

/// `POST {url}/api/v1/bulletins`: audio `sha256`, emergency, to all, valid an hour.
pub async fn emergency_to_all(
    http: &reqwest::Client,
    url: &str,
    admin: &str,
    sha256: &str,
) -> PushBulletinResponse {
    let request = PushBulletinRequest {
        title: Some("bench".into()),
        audio_sha256: Some(sha256.to_string()),
        text: None,
        voice: None,
        to: Target::All,
        priority: BulletinPriority::Emergency,
        repeat: 0,
        interval_secs: 0,
        expires_secs: 3600,
        tone: false,
    };
    http.post(format!("{url}/api/v1/bulletins"))
        .bearer_auth(admin)
        .json(&request)
        .send()
        .await
        .expect("push")
        .json()
        .await
        .expect("push answer")
}
