//! Ed25519 signatures over manifests and bulletins, and the key files that hold them.
//!
//! Central signs with the province's private key; stations verify with a pinned public
//! key using `verify_strict` (plain `verify` accepts an all-zero key and signature).
//! [`verify_manifest`] is the one gate a manifest passes before anything acts on it:
//! signature, station, expiry and rollback are all checked here.

use std::io::Write;
use std::path::Path;

use base64::Engine;
use chrono::{DateTime, Utc};
use ed25519_dalek::{Signature, Signer, SigningKey, VerifyingKey};
use serde::Serialize;

use crate::protocol::{DocumentKind, Manifest, SignedEnvelope};

/// Why a key file or a signed document was refused.
#[derive(Debug, thiserror::Error)]
pub enum SigningError {
    #[error("cannot read key file {path}: {source}")]
    ReadKey { path: String, source: std::io::Error },
    #[error("cannot write key file {path}: {source}")]
    WriteKey { path: String, source: std::io::Error },
    #[error("key file {path} already exists: refusing to overwrite the province's signing key")]
    KeyExists { path: String },
    #[error("key file {path} is not 64 hex digits (an Ed25519 seed)")]
    BadKeyFile { path: String },
    #[error(
        "public key {0:?} is not valid: expected 64 hex digits as printed by `loa central init`"
    )]
    BadPublicKey(String),
    #[error("public key is weak (all-zero or small order): refusing to trust it")]
    WeakPublicKey,
    #[error("cannot encode document: {0}")]
    Encode(serde_json::Error),
    #[error("signed document is a {found:?}, expected a {expected:?}")]
    WrongKind { expected: DocumentKind, found: DocumentKind },
    #[error("signed document payload is not valid base64: {0}")]
    PayloadEncoding(base64::DecodeError),
    #[error("signature is not 128 hex digits")]
    SignatureEncoding,
    #[error("signature is all zeros: refused")]
    ZeroSignature,
    #[error(
        "signature does not verify against the pinned public key (tampered, or signed by another key)"
    )]
    BadSignature,
    #[error("signed payload is not a valid {kind:?}: {source}")]
    Payload { kind: DocumentKind, source: serde_json::Error },
    #[error("manifest is for station {found:?}, this station is {expected:?}")]
    WrongStation { expected: String, found: String },
    #[error(
        "manifest version {found} is older than the accepted version {accepted}: refused as a rollback"
    )]
    Rollback { accepted: u64, found: u64 },
    #[error("manifest version {version} expired at {valid_until} (now {now}): refused")]
    Expired { version: u64, valid_until: DateTime<Utc>, now: DateTime<Utc> },
}

/// The province's private signing key.
pub struct ProvinceKey {
    key: SigningKey,
}

impl std::fmt::Debug for ProvinceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProvinceKey").field("public", &self.public_hex()).finish()
    }
}

impl ProvinceKey {
    /// A fresh key from the operating system's random source.
    pub fn generate() -> Self {
        let seed: [u8; 32] = rand::random();
        Self { key: SigningKey::from_bytes(&seed) }
    }

    /// From a 32-byte seed (tests use fixed seeds).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        Self { key: SigningKey::from_bytes(&seed) }
    }

    /// Writes the seed as hex to a new file readable only by its owner (0600). Refuses
    /// to overwrite an existing key: losing it would strand every station.
    pub fn create_file(&self, path: &Path) -> Result<(), SigningError> {
        let shown = path.display().to_string();
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path).map_err(|source| {
            if source.kind() == std::io::ErrorKind::AlreadyExists {
                SigningError::KeyExists { path: shown.clone() }
            } else {
                SigningError::WriteKey { path: shown.clone(), source }
            }
        })?;
        let text = format!("{}\n", hex::encode(self.key.to_bytes()));
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|source| SigningError::WriteKey { path: shown, source })
    }

    /// Reads a key written by [`ProvinceKey::create_file`].
    pub fn load_file(path: &Path) -> Result<Self, SigningError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path)
            .map_err(|source| SigningError::ReadKey { path: shown.clone(), source })?;
        let bytes = hex::decode(text.trim())
            .map_err(|_| SigningError::BadKeyFile { path: shown.clone() })?;
        let seed: [u8; 32] =
            bytes.try_into().map_err(|_| SigningError::BadKeyFile { path: shown })?;
        Ok(Self::from_seed(seed))
    }

    /// The public half, to pin in station configurations.
    pub fn public(&self) -> PublicKey {
        PublicKey { key: self.key.verifying_key() }
    }

    /// The public key as 64 hex digits.
    pub fn public_hex(&self) -> String {
        self.public().to_hex()
    }

    /// Serialises `document` once and signs exactly those bytes.
    pub fn sign<T: Serialize>(
        &self,
        kind: DocumentKind,
        document: &T,
    ) -> Result<SignedEnvelope, SigningError> {
        let payload = serde_json::to_vec(document).map_err(SigningError::Encode)?;
        let signature = self.key.sign(&signed_message(kind, &payload));
        Ok(SignedEnvelope {
            kind,
            payload: base64::engine::general_purpose::STANDARD.encode(&payload),
            signature: hex::encode(signature.to_bytes()),
        })
    }
}

/// A pinned public key, as configured at every station.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    key: VerifyingKey,
}

impl PublicKey {
    /// Parses 64 hex digits, refusing weak keys (all-zero, small order).
    pub fn from_hex(text: &str) -> Result<Self, SigningError> {
        let bad = || SigningError::BadPublicKey(text.to_string());
        let bytes = hex::decode(text.trim()).map_err(|_| bad())?;
        let bytes: [u8; 32] = bytes.try_into().map_err(|_| bad())?;
        let key = VerifyingKey::from_bytes(&bytes).map_err(|_| bad())?;
        if key.is_weak() {
            return Err(SigningError::WeakPublicKey);
        }
        Ok(Self { key })
    }

    /// From raw key bytes (e.g. a station config's `province_key`), refusing weak keys.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, SigningError> {
        Self::from_hex(&hex::encode(bytes))
    }

    pub fn to_hex(&self) -> String {
        hex::encode(self.key.to_bytes())
    }

    /// Checks the signature over the envelope's payload with `verify_strict` and returns
    /// the payload bytes that were signed.
    pub fn verify_envelope(
        &self,
        expected: DocumentKind,
        envelope: &SignedEnvelope,
    ) -> Result<Vec<u8>, SigningError> {
        if envelope.kind != expected {
            return Err(SigningError::WrongKind { expected, found: envelope.kind });
        }
        if self.key.is_weak() {
            return Err(SigningError::WeakPublicKey);
        }
        let payload = base64::engine::general_purpose::STANDARD
            .decode(envelope.payload.as_bytes())
            .map_err(SigningError::PayloadEncoding)?;
        let sig_bytes =
            hex::decode(envelope.signature.trim()).map_err(|_| SigningError::SignatureEncoding)?;
        let sig_bytes: [u8; 64] =
            sig_bytes.try_into().map_err(|_| SigningError::SignatureEncoding)?;
        if sig_bytes.iter().all(|b| *b == 0) {
            return Err(SigningError::ZeroSignature);
        }
        let signature = Signature::from_bytes(&sig_bytes);
        self.key
            .verify_strict(&signed_message(envelope.kind, &payload), &signature)
            .map_err(|_| SigningError::BadSignature)?;
        Ok(payload)
    }
}

/// A manifest that passed every check in [`verify_manifest`]. Only this type, never a
/// bare [`Manifest`] from the network, should reach the scheduler.
#[derive(Debug, Clone, PartialEq)]
pub struct VerifiedManifest {
    pub manifest: Manifest,
    /// The envelope it came in, to store and re-verify after a restart.
    pub envelope: SignedEnvelope,
}

/// Verifies a manifest envelope for `station_id` at instant `now`: signature by the
/// pinned key (`verify_strict`), right station, not expired, and a version no lower than
/// `accepted` (the last version this station accepted, if any). An equal version is
/// accepted: it is the same document fetched again.
pub fn verify_manifest(
    key: &PublicKey,
    envelope: &SignedEnvelope,
    station_id: &str,
    accepted: Option<u64>,
    now: DateTime<Utc>,
) -> Result<VerifiedManifest, SigningError> {
    let payload = key.verify_envelope(DocumentKind::Manifest, envelope)?;
    let manifest: Manifest = serde_json::from_slice(&payload)
        .map_err(|source| SigningError::Payload { kind: DocumentKind::Manifest, source })?;
    if manifest.station_id != station_id {
        return Err(SigningError::WrongStation {
            expected: station_id.to_string(),
            found: manifest.station_id,
        });
    }
    if let Some(accepted) = accepted
        && manifest.version < accepted
    {
        return Err(SigningError::Rollback { accepted, found: manifest.version });
    }
    if now > manifest.valid_until {
        return Err(SigningError::Expired {
            version: manifest.version,
            valid_until: manifest.valid_until,
            now,
        });
    }
    Ok(VerifiedManifest { manifest, envelope: envelope.clone() })
}

/// Re-verifies a manifest this station accepted earlier and stored (e.g. after a
/// restart): signature and station only. Expiry is not checked: a station with no
/// network keeps playing its last good schedule.
pub fn verify_stored_manifest(
    key: &PublicKey,
    envelope: &SignedEnvelope,
    station_id: &str,
) -> Result<VerifiedManifest, SigningError> {
    let payload = key.verify_envelope(DocumentKind::Manifest, envelope)?;
    let manifest: Manifest = serde_json::from_slice(&payload)
        .map_err(|source| SigningError::Payload { kind: DocumentKind::Manifest, source })?;
    if manifest.station_id != station_id {
        return Err(SigningError::WrongStation {
            expected: station_id.to_string(),
            found: manifest.station_id,
        });
    }
    Ok(VerifiedManifest { manifest, envelope: envelope.clone() })
}

fn signed_message(kind: DocumentKind, payload: &[u8]) -> Vec<u8> {
    let tag = kind.tag().as_bytes();
    let mut message = Vec::with_capacity(tag.len() + 1 + payload.len());
    message.extend_from_slice(tag);
    message.push(0);
    message.extend_from_slice(payload);
    message
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 12, 1, h, 0, 0).unwrap()
    }

    fn manifest(version: u64) -> Manifest {
        Manifest {
            station_id: "tri-ton".into(),
            version,
            issued_at: t(1),
            valid_until: t(10),
            schedules: vec![],
            audio: vec![],
        }
    }

    fn key() -> ProvinceKey {
        ProvinceKey::from_seed([7; 32])
    }

    #[test]
    fn good_manifest_verifies() {
        let k = key();
        let env = k.sign(DocumentKind::Manifest, &manifest(3)).unwrap();
        let v = verify_manifest(&k.public(), &env, "tri-ton", Some(2), t(2)).unwrap();
        assert_eq!(v.manifest.version, 3);
        // The same version again is the same document, not a rollback.
        assert!(verify_manifest(&k.public(), &env, "tri-ton", Some(3), t(2)).is_ok());
    }

    #[test]
    fn tampered_payload_is_refused() {
        let k = key();
        let mut env = k.sign(DocumentKind::Manifest, &manifest(3)).unwrap();
        let json = String::from_utf8(
            base64::engine::general_purpose::STANDARD.decode(&env.payload).unwrap(),
        )
        .unwrap()
        .replace("\"version\":3", "\"version\":4");
        env.payload = base64::engine::general_purpose::STANDARD.encode(json);
        let err = verify_manifest(&k.public(), &env, "tri-ton", None, t(2)).unwrap_err();
        assert!(matches!(err, SigningError::BadSignature), "{err}");
    }

    #[test]
    fn other_key_is_refused() {
        let env = ProvinceKey::from_seed([9; 32]).sign(DocumentKind::Manifest, &manifest(1));
        let err =
            verify_manifest(&key().public(), &env.unwrap(), "tri-ton", None, t(2)).unwrap_err();
        assert!(matches!(err, SigningError::BadSignature), "{err}");
    }

    #[test]
    fn all_zero_key_and_signature_are_refused() {
        assert!(matches!(
            PublicKey::from_hex(&"00".repeat(32)),
            Err(SigningError::WeakPublicKey | SigningError::BadPublicKey(_))
        ));
        let mut env = key().sign(DocumentKind::Manifest, &manifest(1)).unwrap();
        env.signature = "00".repeat(64);
        let err = verify_manifest(&key().public(), &env, "tri-ton", None, t(2)).unwrap_err();
        assert!(matches!(err, SigningError::ZeroSignature), "{err}");
    }

    #[test]
    fn rollback_expiry_station_and_kind_are_refused() {
        let k = key();
        let env = k.sign(DocumentKind::Manifest, &manifest(3)).unwrap();
        let err = verify_manifest(&k.public(), &env, "tri-ton", Some(4), t(2)).unwrap_err();
        assert!(matches!(err, SigningError::Rollback { accepted: 4, found: 3 }), "{err}");
        let err = verify_manifest(&k.public(), &env, "tri-ton", None, t(11)).unwrap_err();
        assert!(matches!(err, SigningError::Expired { .. }), "{err}");
        let err = verify_manifest(&k.public(), &env, "ba-chuc", None, t(2)).unwrap_err();
        assert!(matches!(err, SigningError::WrongStation { .. }), "{err}");
        let mut as_bulletin = env.clone();
        as_bulletin.kind = DocumentKind::Bulletin;
        let err = verify_manifest(&k.public(), &as_bulletin, "tri-ton", None, t(2)).unwrap_err();
        assert!(matches!(err, SigningError::WrongKind { .. }), "{err}");
    }

    #[test]
    fn malformed_envelopes_give_clear_errors() {
        let k = key();
        let mut env = k.sign(DocumentKind::Manifest, &manifest(3)).unwrap();
        env.signature = "zz".into();
        let err = verify_manifest(&k.public(), &env, "tri-ton", None, t(2)).unwrap_err();
        assert!(matches!(err, SigningError::SignatureEncoding));
        let mut env = k.sign(DocumentKind::Manifest, &manifest(3)).unwrap();
        env.payload = "!!!".into();
        let err = verify_manifest(&k.public(), &env, "tri-ton", None, t(2)).unwrap_err();
        assert!(matches!(err, SigningError::PayloadEncoding(_)));
        // Validly signed but not a manifest.
        let env = k.sign(DocumentKind::Manifest, &serde_json::json!({"x": 1})).unwrap();
        let err = verify_manifest(&k.public(), &env, "tri-ton", None, t(2)).unwrap_err();
        assert!(matches!(err, SigningError::Payload { .. }), "{err}");
    }

    #[test]
    fn random_envelopes_never_panic_and_never_verify() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand::rngs::StdRng::seed_from_u64(5);
        let k = key();
        let good = k.sign(DocumentKind::Manifest, &manifest(3)).unwrap();
        for _ in 0..200 {
            let mut env = good.clone();
            let mut payload =
                base64::engine::general_purpose::STANDARD.decode(&env.payload).unwrap();
            match rng.random_range(0..3) {
                0 => {
                    let i = rng.random_range(0..payload.len());
                    payload[i] ^= rng.random_range(1..=255u8);
                    env.payload = base64::engine::general_purpose::STANDARD.encode(&payload);
                }
                1 => {
                    let len = rng.random_range(0..200);
                    env.signature =
                        (0..len).map(|_| rng.random_range(b'0'..=b'z') as char).collect();
                }
                _ => {
                    let len = rng.random_range(0..300);
                    let bytes: Vec<u8> = (0..len).map(|_| rng.random()).collect();
                    env.payload = base64::engine::general_purpose::STANDARD.encode(bytes);
                }
            }
            assert!(verify_manifest(&k.public(), &env, "tri-ton", None, t(2)).is_err());
        }
    }

    #[test]
    fn key_file_round_trips_with_owner_only_permissions_and_is_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("province.key");
        let k = ProvinceKey::generate();
        k.create_file(&path).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
        let loaded = ProvinceKey::load_file(&path).unwrap();
        assert_eq!(loaded.public_hex(), k.public_hex());
        assert!(matches!(k.create_file(&path), Err(SigningError::KeyExists { .. })));
        std::fs::write(&path, "not a key").unwrap();
        assert!(matches!(ProvinceKey::load_file(&path), Err(SigningError::BadKeyFile { .. })));
        assert_eq!(PublicKey::from_hex(&k.public_hex()).unwrap(), k.public());
    }
}
