//! Signed documents as they travel: the exact JSON bytes the province signed and the
//! signature, so the verifier checks the very bytes it then parses and no
//! canonicalisation can differ between signer and verifier.

use serde::{Deserialize, Serialize};

/// What a signature covers: the signed message is `kind`, a zero byte, then the payload
/// bytes. A manifest signature can therefore never be replayed as a bulletin's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DocumentKind {
    Manifest,
    Bulletin,
    /// The province's order to stop a bulletin (its own tag: a bulletin's signature can
    /// never pass as a cancel's, nor the other way round).
    BulletinCancel,
    /// A live broadcast's start: the stream header ([`super::live::LiveDoc`]).
    Live,
    /// A live broadcast's running hash ([`super::live::LiveCheckpoint`]).
    LiveCheckpoint,
}

impl DocumentKind {
    /// The domain-separation tag placed before the payload when signing.
    pub fn tag(self) -> &'static str {
        match self {
            DocumentKind::Manifest => "loa-manifest-v1",
            DocumentKind::Bulletin => "loa-bulletin-v1",
            DocumentKind::BulletinCancel => "loa-bulletin-cancel-v1",
            DocumentKind::Live => "loa-live-v1",
            DocumentKind::LiveCheckpoint => "loa-live-checkpoint-v1",
        }
    }
}

/// A signed document as it travels: payload bytes (base64 of the exact JSON that was
/// signed) and an Ed25519 signature (hex) over `kind.tag() || 0x00 || payload`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedEnvelope {
    pub kind: DocumentKind,
    /// Standard base64 of the signed JSON bytes.
    pub payload: String,
    /// Hex of the 64-byte Ed25519 signature.
    pub signature: String,
}
