//! Enveloped XML signatures (XML-DSig) on CAP alerts: each `Signature` directly inside
//! `<alert>` is verified — the digest of the alert without the signature, then the
//! signature over the canonical `SignedInfo` — and its key matched against the trusted
//! signers the caller gives.
//!
//! What is accepted, and nothing else: one `Reference` with `URI=""` (the whole alert:
//! a signature over part of it could leave the rest open to change), the
//! enveloped-signature transform, inclusive or exclusive C14N (with or without
//! comments), SHA-1/256/384/512 digests, RSA PKCS#1 v1.5 (keys of 2048 bits or more)
//! with SHA-1/256/384/512, and ECDSA P-256/SHA-256 and P-384/SHA-384. The key comes
//! from the signature's `KeyInfo` (an X.509 certificate or an RSA `KeyValue`); when it
//! has none, each trusted key is tried. Trust is by key: a signer is trusted when its
//! public key is one of the trusted ones (pinned, as stations pin the province's key);
//! certificate chains and validity dates are not consulted.
//!
//! Outcomes: *trusted* (verifies, key trusted), *not trusted* (verifies, key unknown) and
//! *refused* (anything that fails). A document with any refused signature is refused.

use base64::Engine;
use ring::digest;
use ring::signature::{self as sig, RsaPublicKeyComponents, UnparsedPublicKey};
use serde::Serialize;
use x509_cert::der::{Decode, Reader, SliceReader, asn1::UintRef};

use super::c14n::{self, C14n, Method};
use super::model::Diagnostic;
use super::parse::NS_DSIG;
use super::xml::{Document, Element};

/// Most signatures verified on one document (each canonicalizes the whole alert).
pub const MAX_SIGNATURES: usize = 4;

const ENVELOPED: &str = "http://www.w3.org/2000/09/xmldsig#enveloped-signature";
const C14N_10: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315";
const C14N_10_COMMENTS: &str = "http://www.w3.org/TR/2001/REC-xml-c14n-20010315#WithComments";
const C14N_11: &str = "http://www.w3.org/2006/12/xml-c14n11";
const C14N_11_COMMENTS: &str = "http://www.w3.org/2006/12/xml-c14n11#WithComments";
const EXC_C14N: &str = "http://www.w3.org/2001/10/xml-exc-c14n#";
const EXC_C14N_COMMENTS: &str = "http://www.w3.org/2001/10/xml-exc-c14n#WithComments";

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_P256: &str = "1.2.840.10045.3.1.7";
const OID_P384: &str = "1.3.132.0.34";

/// A public key, in the form trust is compared in.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PublicKey {
    /// Modulus and exponent, big-endian without leading zeros.
    Rsa {
        n: Vec<u8>,
        e: Vec<u8>,
    },
    Ec {
        curve: Curve,
        point: Vec<u8>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Curve {
    P256,
    P384,
}

impl PublicKey {
    /// First 16 hex digits of the SHA-256 of the key material, to tell keys apart.
    fn fingerprint(&self) -> String {
        let mut ctx = digest::Context::new(&digest::SHA256);
        match self {
            PublicKey::Rsa { n, e } => {
                ctx.update(b"rsa");
                ctx.update(n);
                ctx.update(e);
            }
            PublicKey::Ec { curve, point } => {
                ctx.update(if *curve == Curve::P256 { b"p256" } else { b"p384" });
                ctx.update(point);
            }
        }
        hex::encode(&ctx.finish().as_ref()[..8])
    }

    fn describe(&self) -> String {
        match self {
            PublicKey::Rsa { n, .. } => {
                format!("RSA-{} key {}", bits(n), self.fingerprint())
            }
            PublicKey::Ec { curve, .. } => {
                format!("ECDSA {curve:?} key {}", self.fingerprint())
            }
        }
    }
}

fn bits(n: &[u8]) -> usize {
    match n.first() {
        Some(&b) => n.len() * 8 - b.leading_zeros() as usize,
        None => 0,
    }
}

fn strip_zeros(b: &[u8]) -> Vec<u8> {
    let i = b.iter().position(|&x| x != 0).unwrap_or(b.len());
    b[i..].to_vec()
}

/// One trusted signer: a name for messages and its key.
#[derive(Debug, Clone)]
pub struct TrustedSigner {
    pub name: String,
    key: PublicKey,
}

/// The keys whose signatures are trusted. Built by the caller from PEM files (`loa cap
/// check --trust`, central's `[cap] trusted_signers`); this module reads no file.
#[derive(Debug, Clone, Default)]
pub struct TrustStore {
    signers: Vec<TrustedSigner>,
}

impl TrustStore {
    pub fn new() -> Self {
        TrustStore::default()
    }

    pub fn is_empty(&self) -> bool {
        self.signers.is_empty()
    }

    pub fn signers(&self) -> &[TrustedSigner] {
        &self.signers
    }

    /// Adds every `CERTIFICATE` and `PUBLIC KEY` block of a PEM text; `origin` names
    /// them in messages when a certificate has no subject. Returns how many were added.
    pub fn add_pem(&mut self, origin: &str, pem: &str) -> Result<usize, String> {
        let mut added = 0;
        let mut rest = pem;
        while let Some(start) = rest.find("-----BEGIN ") {
            let block = &rest[start..];
            let Some(end_at) = block.find("-----END ") else {
                return Err(format!("{origin}: a PEM block is not closed with -----END"));
            };
            let after_end = &block[end_at + 9..];
            let Some(close) = after_end.find("-----") else {
                return Err(format!("{origin}: a PEM block's END line is not closed"));
            };
            let len = end_at + 9 + close + 5;
            let text = &block[..len];
            rest = &block[len..];
            let (label, der) = x509_cert::der::pem::decode_vec(text.as_bytes())
                .map_err(|e| format!("{origin}: not a valid PEM block: {e}"))?;
            let (name, key) = match label {
                "CERTIFICATE" => {
                    let (subject, key) =
                        certificate_key(&der).map_err(|e| format!("{origin}: {e}"))?;
                    (subject, key)
                }
                "PUBLIC KEY" => {
                    let spki = x509_cert::spki::SubjectPublicKeyInfoOwned::from_der(&der)
                        .map_err(|e| format!("{origin}: not a public key: {e}"))?;
                    let key = spki_key(&spki).map_err(|e| format!("{origin}: {e}"))?;
                    (format!("{origin} ({})", key.describe()), key)
                }
                other => {
                    return Err(format!(
                        "{origin}: a PEM {other} block: give certificates (CERTIFICATE) or public keys (PUBLIC KEY)"
                    ));
                }
            };
            self.signers.push(TrustedSigner { name, key });
            added += 1;
        }
        if added == 0 {
            return Err(format!("{origin}: no PEM certificate or public key in it"));
        }
        Ok(added)
    }

    fn find(&self, key: &PublicKey) -> Option<&TrustedSigner> {
        self.signers.iter().find(|s| &s.key == key)
    }
}

/// What became of one signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum SignatureOutcome {
    /// Verifies, and its key is a trusted signer's (named).
    Trusted { signer: String },
    /// Verifies, by a key no trusted signer has.
    NotTrusted { signer: String },
    /// Does not verify, or cannot be checked: the document is refused.
    Refused { reason: String },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SignatureCheck {
    /// `Signature[0]`, …, in document order.
    pub path: String,
    pub outcome: SignatureOutcome,
}

/// Every signature of a document, checked.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct SignatureReport {
    pub checks: Vec<SignatureCheck>,
}

impl SignatureReport {
    pub fn is_signed(&self) -> bool {
        !self.checks.is_empty()
    }
    /// Any signature refused: the document must be refused.
    pub fn refused(&self) -> bool {
        self.checks.iter().any(|c| matches!(c.outcome, SignatureOutcome::Refused { .. }))
    }
    /// Signed by a trusted signer, and no signature refused.
    pub fn trusted(&self) -> bool {
        !self.refused()
            && self.checks.iter().any(|c| matches!(c.outcome, SignatureOutcome::Trusted { .. }))
    }
    /// The trusted signers' names.
    pub fn trusted_signers(&self) -> Vec<&str> {
        self.checks
            .iter()
            .filter_map(|c| match &c.outcome {
                SignatureOutcome::Trusted { signer } => Some(signer.as_str()),
                _ => None,
            })
            .collect()
    }
    /// Refusals as errors; a verified signature by an unknown key as a warning.
    pub fn diagnostics(&self) -> Vec<Diagnostic> {
        self.checks
            .iter()
            .filter_map(|c| match &c.outcome {
                SignatureOutcome::Refused { reason } => {
                    Some(Diagnostic::error(&c.path, format!("signature refused: {reason}")))
                }
                SignatureOutcome::NotTrusted { signer } => Some(Diagnostic::warning(
                    &c.path,
                    format!("signature valid but not trusted: signed by {signer}, who is not a trusted signer"),
                )),
                SignatureOutcome::Trusted { .. } => None,
            })
            .collect()
    }
}

fn is_signature(e: &Element) -> bool {
    e.is(NS_DSIG, "Signature")
}

/// Verifies every `Signature` directly inside the root element.
pub fn verify(doc: &Document, trust: &TrustStore) -> SignatureReport {
    let signatures: Vec<&Element> = doc.root.elements().filter(|e| is_signature(e)).collect();
    let mut report = SignatureReport::default();
    if signatures.len() > MAX_SIGNATURES {
        report.checks.push(SignatureCheck {
            path: format!("Signature[{MAX_SIGNATURES}]"),
            outcome: SignatureOutcome::Refused {
                reason: format!("more than {MAX_SIGNATURES} signatures on one alert"),
            },
        });
        return report;
    }
    for (i, s) in signatures.iter().enumerate() {
        let outcome = match verify_one(doc, s, signatures.len() > 1, trust) {
            Ok(o) => o,
            Err(reason) => SignatureOutcome::Refused { reason },
        };
        report.checks.push(SignatureCheck { path: format!("Signature[{i}]"), outcome });
    }
    report
}

fn ds<'a>(e: &'a Element, local: &str) -> Result<&'a Element, String> {
    e.child(NS_DSIG, local).ok_or_else(|| format!("{} has no {local}", e.local))
}

fn algorithm(e: &Element) -> Result<&str, String> {
    e.attr("Algorithm").ok_or_else(|| format!("{} has no Algorithm", e.local))
}

fn base64(text: &str, what: &str) -> Result<Vec<u8>, String> {
    let compact: String = text.chars().filter(|c| !c.is_ascii_whitespace()).collect();
    base64::engine::general_purpose::STANDARD
        .decode(compact)
        .map_err(|e| format!("{what} is not base64: {e}"))
}

/// A canonicalization algorithm by URI, with the InclusiveNamespaces list it may carry.
fn c14n_of(e: &Element, uri: &str) -> Option<C14n> {
    let prefixes = || {
        e.child("http://www.w3.org/2001/10/xml-exc-c14n#", "InclusiveNamespaces")
            .and_then(|i| i.attr("PrefixList"))
            .map(|l| l.split_whitespace().map(str::to_string).collect())
            .unwrap_or_default()
    };
    Some(match uri {
        C14N_10 | C14N_11 => C14n { method: Method::Inclusive, with_comments: false },
        C14N_10_COMMENTS | C14N_11_COMMENTS => {
            C14n { method: Method::Inclusive, with_comments: true }
        }
        EXC_C14N => C14n {
            method: Method::Exclusive { inclusive_prefixes: prefixes() },
            with_comments: false,
        },
        EXC_C14N_COMMENTS => C14n {
            method: Method::Exclusive { inclusive_prefixes: prefixes() },
            with_comments: true,
        },
        _ => return None,
    })
}

fn digest_of(uri: &str) -> Option<&'static digest::Algorithm> {
    Some(match uri {
        "http://www.w3.org/2000/09/xmldsig#sha1" => &digest::SHA1_FOR_LEGACY_USE_ONLY,
        "http://www.w3.org/2001/04/xmlenc#sha256" => &digest::SHA256,
        "http://www.w3.org/2001/04/xmldsig-more#sha384" => &digest::SHA384,
        "http://www.w3.org/2001/04/xmlenc#sha512" => &digest::SHA512,
        _ => return None,
    })
}

#[derive(Clone, Copy)]
enum SigAlg {
    Rsa(&'static sig::RsaParameters),
    Ecdsa(Curve, &'static sig::EcdsaVerificationAlgorithm),
}

fn signature_method(uri: &str) -> Option<SigAlg> {
    Some(match uri {
        "http://www.w3.org/2000/09/xmldsig#rsa-sha1" => {
            SigAlg::Rsa(&sig::RSA_PKCS1_2048_8192_SHA1_FOR_LEGACY_USE_ONLY)
        }
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256" => {
            SigAlg::Rsa(&sig::RSA_PKCS1_2048_8192_SHA256)
        }
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha384" => {
            SigAlg::Rsa(&sig::RSA_PKCS1_2048_8192_SHA384)
        }
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha512" => {
            SigAlg::Rsa(&sig::RSA_PKCS1_2048_8192_SHA512)
        }
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha256" => {
            SigAlg::Ecdsa(Curve::P256, &sig::ECDSA_P256_SHA256_FIXED)
        }
        "http://www.w3.org/2001/04/xmldsig-more#ecdsa-sha384" => {
            SigAlg::Ecdsa(Curve::P384, &sig::ECDSA_P384_SHA384_FIXED)
        }
        _ => return None,
    })
}

fn verify_one(
    doc: &Document,
    signature: &Element,
    several: bool,
    trust: &TrustStore,
) -> Result<SignatureOutcome, String> {
    let signed_info = signature
        .child(NS_DSIG, "SignedInfo")
        .ok_or("it has no SignedInfo (an empty or damaged signature)")?;
    let value = base64(&ds(signature, "SignatureValue")?.text(), "SignatureValue")?;
    let c14n_uri = algorithm(ds(signed_info, "CanonicalizationMethod")?)?;
    let c14n_method = ds(signed_info, "CanonicalizationMethod")?;
    let si_c14n = c14n_of(c14n_method, c14n_uri)
        .ok_or_else(|| format!("canonicalization {c14n_uri} is not supported"))?;
    let method_uri = algorithm(ds(signed_info, "SignatureMethod")?)?;
    let method = signature_method(method_uri)
        .ok_or_else(|| format!("signature method {method_uri} is not supported"))?;

    let references: Vec<&Element> =
        signed_info.elements().filter(|e| e.is(NS_DSIG, "Reference")).collect();
    let [reference] = references.as_slice() else {
        return Err(format!(
            "{} references: loa verifies exactly one, over the whole alert (URI=\"\")",
            references.len()
        ));
    };
    match reference.attr("URI") {
        Some("") => {}
        Some(other) => {
            return Err(format!(
                "the reference is to {other:?}, not to the whole alert (URI=\"\"): a signature over part of an alert is not accepted"
            ));
        }
        None => return Err("the reference has no URI: loa verifies URI=\"\" only".to_string()),
    }
    let mut enveloped = false;
    let mut doc_c14n = C14n { method: Method::Inclusive, with_comments: false };
    if let Some(transforms) = reference.child(NS_DSIG, "Transforms") {
        for t in transforms.elements().filter(|e| e.is(NS_DSIG, "Transform")) {
            let uri = algorithm(t)?;
            if uri == ENVELOPED {
                enveloped = true;
            } else if let Some(c) = c14n_of(t, uri) {
                // A same-document reference (URI="") leaves comments out whatever the
                // canonicalization says (XML-DSig 4.4.3.3).
                doc_c14n = C14n { with_comments: false, ..c };
            } else {
                return Err(format!("transform {uri} is not supported"));
            }
        }
    }
    if !enveloped {
        return Err("the reference has no enveloped-signature transform".to_string());
    }
    let digest_uri = algorithm(ds(reference, "DigestMethod")?)?;
    let digest_alg = digest_of(digest_uri)
        .ok_or_else(|| format!("digest method {digest_uri} is not supported"))?;
    let expected = base64(&ds(reference, "DigestValue")?.text(), "DigestValue")?;

    let this = signature as *const Element;
    let without_this = c14n::document(doc, &doc_c14n, &|e| std::ptr::eq(e, this));
    let mut matches = digest::digest(digest_alg, &without_this).as_ref() == expected.as_slice();
    if !matches && several {
        // Where several authorities sign one alert, each signature may cover the alert
        // without any of them (NAADS, Canada): the other signatures are not CAP content.
        let without_all = c14n::document(doc, &doc_c14n, &|e| {
            is_signature(e) && doc.root.elements().any(|r| std::ptr::eq(r, e))
        });
        matches = digest::digest(digest_alg, &without_all).as_ref() == expected.as_slice();
    }
    if !matches {
        return Err(
            "the alert's digest does not match the signed one: the alert was changed after it was signed"
                .to_string(),
        );
    }

    let signed = c14n::subtree(&[&doc.root, signature, signed_info], &si_c14n);
    let mut candidates: Vec<(PublicKey, String)> = Vec::new();
    if let Some(key_info) = signature.child(NS_DSIG, "KeyInfo") {
        for data in key_info.elements().filter(|e| e.is(NS_DSIG, "X509Data")) {
            for cert in data.elements().filter(|e| e.is(NS_DSIG, "X509Certificate")) {
                let der = base64(&cert.text(), "X509Certificate")?;
                let (subject, key) = certificate_key(&der)?;
                candidates.push((key, format!("certificate {subject}")));
            }
        }
        for kv in key_info.elements().filter(|e| e.is(NS_DSIG, "KeyValue")) {
            if let Some(rsa) = kv.child(NS_DSIG, "RSAKeyValue") {
                let n = base64(&ds(rsa, "Modulus")?.text(), "Modulus")?;
                let e = base64(&ds(rsa, "Exponent")?.text(), "Exponent")?;
                let key = PublicKey::Rsa { n: strip_zeros(&n), e: strip_zeros(&e) };
                let what = format!("the {} given in the signature", key.describe());
                candidates.push((key, what));
            }
        }
    }
    let from_key_info = !candidates.is_empty();
    if !from_key_info {
        for s in trust.signers() {
            candidates.push((s.key.clone(), s.name.clone()));
        }
    }
    if candidates.is_empty() {
        return Err(
            "the signature names no key (no KeyInfo) and no trusted signer was given".to_string()
        );
    }
    let mut last_problem = None;
    for (key, what) in candidates {
        match check(method, &key, &signed, &value) {
            Ok(()) => {
                return Ok(match trust.find(&key) {
                    Some(t) => SignatureOutcome::Trusted { signer: t.name.clone() },
                    None => SignatureOutcome::NotTrusted { signer: what },
                });
            }
            Err(p) => last_problem = Some(p),
        }
    }
    let why = last_problem.unwrap_or_default();
    Err(if from_key_info {
        format!("the signature value does not verify with the key in KeyInfo ({why})")
    } else {
        format!("the signature value does not verify with any trusted key ({why})")
    })
}

fn check(method: SigAlg, key: &PublicKey, message: &[u8], value: &[u8]) -> Result<(), String> {
    match (method, key) {
        (SigAlg::Rsa(params), PublicKey::Rsa { n, e }) => {
            if bits(n) < 2048 {
                return Err(format!(
                    "an RSA key of {} bits: loa accepts 2048 bits or more",
                    bits(n)
                ));
            }
            RsaPublicKeyComponents { n: n.as_slice(), e: e.as_slice() }
                .verify(params, message, value)
                .map_err(|_| "RSA check failed".to_string())
        }
        (SigAlg::Ecdsa(curve, alg), PublicKey::Ec { curve: kc, point }) if curve == *kc => {
            UnparsedPublicKey::new(alg, point)
                .verify(message, value)
                .map_err(|_| "ECDSA check failed".to_string())
        }
        _ => Err("the key does not fit the signature method".to_string()),
    }
}

/// A certificate's subject and public key.
fn certificate_key(der: &[u8]) -> Result<(String, PublicKey), String> {
    let cert = x509_cert::Certificate::from_der(der)
        .map_err(|e| format!("not an X.509 certificate: {e}"))?;
    let key = spki_key(&cert.tbs_certificate.subject_public_key_info)?;
    Ok((cert.tbs_certificate.subject.to_string(), key))
}

fn spki_key(spki: &x509_cert::spki::SubjectPublicKeyInfoOwned) -> Result<PublicKey, String> {
    let bits = spki
        .subject_public_key
        .as_bytes()
        .ok_or("the public key is not a whole number of bytes")?;
    match spki.algorithm.oid.to_string().as_str() {
        OID_RSA => {
            let mut reader = SliceReader::new(bits).map_err(|e| e.to_string())?;
            let (n, e) = reader
                .sequence(|r| Ok((UintRef::decode(r)?, UintRef::decode(r)?)))
                .map_err(|e| format!("a damaged RSA public key: {e}"))?;
            Ok(PublicKey::Rsa { n: strip_zeros(n.as_bytes()), e: strip_zeros(e.as_bytes()) })
        }
        OID_EC => {
            let curve_oid = spki
                .algorithm
                .parameters
                .as_ref()
                .and_then(|p| p.decode_as::<x509_cert::der::asn1::ObjectIdentifier>().ok())
                .map(|o| o.to_string());
            let curve = match curve_oid.as_deref() {
                Some(OID_P256) => Curve::P256,
                Some(OID_P384) => Curve::P384,
                other => {
                    return Err(format!("EC curve {other:?} is not supported (P-256, P-384 are)"));
                }
            };
            Ok(PublicKey::Ec { curve, point: bits.to_vec() })
        }
        other => Err(format!("key algorithm {other} is not supported (RSA, ECDSA are)")),
    }
}
