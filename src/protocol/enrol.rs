//! Enrolling a station with a one-time code read over the phone, without trusting the
//! network it comes over.
//!
//! The code (`XXXX-XXXX-XXXX`, 12 characters of Crockford base32: no I, L, O or U, 60
//! random bits) is stretched (PBKDF2-HMAC-SHA256, [`ITERATIONS`]) into three values:
//! - `lookup`: finds the code's row at central; it is all that crosses an unverified
//!   connection;
//! - `mac_key`: central signs its answer with it — an HMAC over the station id, the
//!   province's public key and central's CA certificate — so a server that does not know
//!   the code cannot make an answer the station accepts;
//! - `claim`: sent only once the station trusts central's CA (a second connection that
//!   trusts that CA alone), it gets the station's token.
//!
//! Central keeps `lookup`, `mac_key` and sha256(`claim`): never the code. Pure: no IO; the
//! caller supplies randomness.

use serde::{Deserialize, Serialize};

/// The code's alphabet: Crockford's base32 (no I, L, O, U).
pub const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/// Characters in a code (without the dashes).
pub const CODE_LEN: usize = 12;
/// The longest text accepted as a code (spaces and dashes included).
pub const MAX_CODE_INPUT: usize = 64;
/// PBKDF2 rounds: guessing the code from a `lookup` seen on the wire costs 2⁶⁰ of these.
pub const ITERATIONS: u32 = 20_000;
/// How long a code is valid.
pub const VALID_FOR_HOURS: i64 = 24;
/// Wrong claims for one code before it is burnt.
pub const MAX_CLAIM_FAILURES: u32 = 5;
/// The largest enrolment request body.
pub const BODY_LIMIT: usize = 1024;
/// The largest answer a station reads (a CA certificate chain and a few fields).
pub const ANSWER_LIMIT: usize = 64 * 1024;

/// Paths (no bearer token: the code is the credential).
pub const OFFER_PATH: &str = "/api/v1/enrol/offer";
pub const CLAIM_PATH: &str = "/api/v1/enrol/claim";

/// Station → central, over a connection not yet trusted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferRequest {
    /// 64 lowercase hex digits.
    pub lookup: String,
}

/// Central → station: who it is, bound to the code by `proof`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Offer {
    pub station_id: String,
    /// The province's Ed25519 public key, 64 hex digits.
    pub province_key: String,
    /// PEM of the CA that signed central's HTTPS certificate.
    pub ca_cert: String,
    /// HMAC-SHA256 under `mac_key` of [`offer_message`], hex.
    pub proof: String,
}

/// Station → central, over a connection that trusts only the offered CA.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClaimRequest {
    pub lookup: String,
    pub claim: String,
}

/// Central → station: its token (a new one; any earlier token is refused from now on).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Grant {
    pub station_id: String,
    pub token: String,
}

/// Why a code was refused before anything was sent.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CodeError {
    #[error(
        "the enrolment code has {0} characters; it has 12 (e.g. 7K3M-Q9TX-2HPD): read it again from `loa central station add`"
    )]
    Length(usize),
    #[error(
        "the enrolment code has {0:?}, which is not in a code (letters and digits only, no U); read it again"
    )]
    Character(char),
    #[error("the enrolment code is too long ({0} characters)")]
    TooLong(usize),
}

/// The three values a code stretches into.
#[derive(Clone, PartialEq, Eq)]
pub struct Derived {
    pub lookup: String,
    pub mac_key: [u8; 32],
    pub claim: String,
}

impl std::fmt::Debug for Derived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Derived").field("lookup", &self.lookup).finish_non_exhaustive()
    }
}

/// A code from 60 random bits (the low 60 of `random`), as people read it.
pub fn code_from_random(random: u64) -> String {
    let mut out = String::with_capacity(CODE_LEN + 2);
    for i in 0..CODE_LEN {
        if i > 0 && i % 4 == 0 {
            out.push('-');
        }
        let index = (random >> (5 * (CODE_LEN - 1 - i))) & 31;
        out.push(ALPHABET[index as usize] as char);
    }
    out
}

/// The code as typed → its 12 canonical characters: case, spaces and dashes do not
/// matter; O reads as 0, I and L as 1 (Crockford).
pub fn normalise(typed: &str) -> Result<String, CodeError> {
    if typed.chars().count() > MAX_CODE_INPUT {
        return Err(CodeError::TooLong(typed.chars().count()));
    }
    let mut out = String::new();
    for c in typed.chars() {
        let c = match c.to_ascii_uppercase() {
            ' ' | '-' | '\t' => continue,
            'O' => '0',
            'I' | 'L' => '1',
            c => c,
        };
        if !c.is_ascii() || !ALPHABET.contains(&(c as u8)) {
            return Err(CodeError::Character(c));
        }
        out.push(c);
    }
    if out.len() != CODE_LEN {
        return Err(CodeError::Length(out.len()));
    }
    Ok(out)
}

/// Stretches a (normalised) code.
pub fn derive(code: &str) -> Derived {
    let mut secret = [0u8; 32];
    ring::pbkdf2::derive(
        ring::pbkdf2::PBKDF2_HMAC_SHA256,
        std::num::NonZeroU32::new(ITERATIONS).unwrap_or(std::num::NonZeroU32::MIN),
        b"loa-enrol-v1",
        code.as_bytes(),
        &mut secret,
    );
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &secret);
    let part = |label: &[u8]| ring::hmac::sign(&key, label);
    let mut mac_key = [0u8; 32];
    mac_key.copy_from_slice(part(b"mac").as_ref());
    Derived {
        lookup: hex::encode(part(b"lookup").as_ref()),
        mac_key,
        claim: hex::encode(part(b"claim").as_ref()),
    }
}

/// What `proof` covers: every field of the offer, separated by zero bytes.
pub fn offer_message(station_id: &str, province_key: &str, ca_cert: &str) -> Vec<u8> {
    let mut m = b"loa-enrol-offer-v1\0".to_vec();
    for part in [station_id, province_key, ca_cert] {
        m.extend_from_slice(part.as_bytes());
        m.push(0);
    }
    m
}

/// Central's side: the proof for an offer.
pub fn prove(mac_key: &[u8], station_id: &str, province_key: &str, ca_cert: &str) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, mac_key);
    hex::encode(ring::hmac::sign(&key, &offer_message(station_id, province_key, ca_cert)).as_ref())
}

/// The station's side: does the offer carry the proof of the code's central? Constant
/// time.
pub fn verify(mac_key: &[u8], offer: &Offer) -> bool {
    let Ok(tag) = hex::decode(&offer.proof) else { return false };
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, mac_key);
    let message = offer_message(&offer.station_id, &offer.province_key, &offer.ca_cert);
    ring::hmac::verify(&key, &message, &tag).is_ok()
}

/// 64 lowercase hex digits (a `lookup` or a `claim`).
pub fn valid_hex64(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_read_back_whatever_the_case_dashes_and_look_alikes() {
        let code = code_from_random(0x0123_4567_89ab_cdef);
        assert_eq!(code.len(), 14);
        assert_eq!(code.matches('-').count(), 2);
        let plain = code.replace('-', "");
        assert_eq!(normalise(&code).unwrap(), plain);
        assert_eq!(normalise(&format!(" {} ", code.to_lowercase())).unwrap(), plain);
        assert_eq!(normalise("0000-1111-2222").unwrap(), normalise("oooo-iiii-2222").unwrap());
        assert_eq!(normalise("0000-LLLL-2222").unwrap(), "000011112222");
        assert_eq!(normalise("0000-1111-222"), Err(CodeError::Length(11)));
        assert_eq!(normalise("0000-1111-22222"), Err(CodeError::Length(13)));
        assert_eq!(normalise("0000-1111-222U"), Err(CodeError::Character('U')));
        assert_eq!(normalise("0000-1111-222đ"), Err(CodeError::Character('đ')));
        let long = "-".repeat(MAX_CODE_INPUT + 1);
        assert_eq!(normalise(&long), Err(CodeError::TooLong(MAX_CODE_INPUT + 1)));
        assert!(normalise(&"-".repeat(MAX_CODE_INPUT)).is_err());
    }

    #[test]
    fn the_proof_binds_every_field_and_only_the_code_makes_it() {
        let d = derive("7K3MQ9TX2HPD");
        assert_eq!(d, derive("7K3MQ9TX2HPD"));
        assert!(valid_hex64(&d.lookup) && valid_hex64(&d.claim));
        assert_ne!(d.lookup, d.claim);
        let mut offer = Offer {
            station_id: "xa-an-binh".into(),
            province_key: "ab".repeat(32),
            ca_cert: "-----BEGIN CERTIFICATE-----".into(),
            proof: String::new(),
        };
        offer.proof = prove(&d.mac_key, &offer.station_id, &offer.province_key, &offer.ca_cert);
        assert!(verify(&d.mac_key, &offer));
        let other = derive("7K3MQ9TX2HPE");
        assert!(!verify(&other.mac_key, &offer), "another code's key");
        for change in 0..3 {
            let mut forged = offer.clone();
            match change {
                0 => forged.station_id.push('x'),
                1 => forged.province_key = "cd".repeat(32),
                _ => forged.ca_cert.push('\n'),
            }
            assert!(!verify(&d.mac_key, &forged), "field {change} changed");
        }
        offer.proof = "zz".into();
        assert!(!verify(&d.mac_key, &offer));
    }
}
