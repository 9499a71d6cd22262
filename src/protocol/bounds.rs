//! The bounds every value in a bulletin or a cancel order keeps, stated once for
//! central (which refuses to sign outside them) and stations (which refuse a signed
//! document outside them).

use chrono::{DateTime, Utc};

/// Longest a bulletin may be valid: 7 days.
pub const MAX_BULLETIN_VALIDITY_SECS: u64 = 7 * 24 * 3600;
/// Most extra plays after the first.
pub const MAX_BULLETIN_REPEAT: u32 = 100;
/// Longest title, in characters.
pub const MAX_TITLE_CHARS: usize = 200;
/// Longest bulletin id, in bytes (ids are plain ASCII).
pub const MAX_ID_LEN: usize = 100;
/// Most target stations listed in one signed document (a province-wide push is
/// signed `to_all`, without a list).
pub const MAX_TARGETS: usize = 20_000;
/// Largest bulletin audio: a station fetches it whole into memory, ahead of
/// everything else (64 MiB is over an hour of MP3 speech).
pub const MAX_BULLETIN_AUDIO_BYTES: u64 = 64 * 1024 * 1024;
/// The gain range a schedule item may ask for; a bulletin's gain stays inside it.
pub const MIN_GAIN_DB: f32 = -40.0;
pub const MAX_GAIN_DB: f32 = 20.0;
/// Largest event number a station accepts (SQLite keeps integers as i64).
pub const MAX_EVENT_SEQ: u64 = i64::MAX as u64;

/// Whether `text` is 64 lowercase hex digits: audio is named by its sha256 and the
/// name becomes a file name in every cache.
pub fn is_sha256(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// A bulletin id: 1 to [`MAX_ID_LEN`] ASCII letters, digits, `-` or `_` (it becomes
/// a ledger item id and a log field).
pub fn check_id(id: &str) -> Result<(), String> {
    let plain = id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if id.is_empty() || id.len() > MAX_ID_LEN || !plain {
        return Err(format!(
            "bulletin id {:?} is not 1 to {MAX_ID_LEN} letters, digits, '-' or '_'",
            clip(id)
        ));
    }
    Ok(())
}

/// A human text of at most `max` characters with no control characters.
pub fn check_text(what: &str, text: &str, max: usize) -> Result<(), String> {
    let chars = text.chars().count();
    if chars > max {
        return Err(format!("{what} has {chars} characters: at most {max}"));
    }
    if text.chars().any(char::is_control) {
        return Err(format!("{what} {:?} holds control characters", clip(text)));
    }
    Ok(())
}

pub fn check_targets(targets: &[String]) -> Result<(), String> {
    if targets.len() > MAX_TARGETS {
        return Err(format!("{} target stations: at most {MAX_TARGETS}", targets.len()));
    }
    Ok(())
}

/// `expires_at` after `issued_at` by at most [`MAX_BULLETIN_VALIDITY_SECS`]; returns
/// the validity in seconds.
pub fn check_validity(issued_at: DateTime<Utc>, expires_at: DateTime<Utc>) -> Result<u64, String> {
    let secs = (expires_at - issued_at).num_seconds();
    if secs <= 0 || secs as u64 > MAX_BULLETIN_VALIDITY_SECS {
        return Err(format!(
            "valid from {issued_at} to {expires_at}: a bulletin is valid for 1 s to 7 days"
        ));
    }
    Ok(secs as u64)
}

/// Longest free text a station reports (a reason, a sink error, what is playing).
pub const MAX_REASON_CHARS: usize = 1000;

/// A free text from a station, made safe to store and show: control characters
/// replaced ([`crate::protocol::text::printable`]), cut at [`MAX_REASON_CHARS`].
pub fn sanitise(field: &mut Option<String>) {
    crate::protocol::text::clean(field);
    if let Some(text) = field.as_mut()
        && text.chars().count() > MAX_REASON_CHARS
    {
        *text = text.chars().take(MAX_REASON_CHARS).collect();
    }
}

/// The first 40 characters of `text`, for an error message.
pub fn clip(text: &str) -> String {
    text.chars().take(40).collect()
}
