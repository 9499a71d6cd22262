//! XML signatures on CAP alerts, against documents signed by xmlsec1 (an implementation
//! independent of loa's; `tests/cap_documents/signed/make.sh` made them): trusted, not trusted,
//! refused, and every one-byte change to the signed content refused.

use std::path::Path;

use loa::cap::{self, SignatureOutcome, TrustStore};

fn signed(name: &str) -> Vec<u8> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cap_documents/signed").join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn trust(files: &[&str]) -> TrustStore {
    let mut t = TrustStore::new();
    for f in files {
        let pem = String::from_utf8(signed(f)).unwrap();
        t.add_pem(f, &pem).unwrap();
    }
    t
}

fn outcomes(doc: &[u8], t: &TrustStore) -> Vec<SignatureOutcome> {
    cap::check(doc, t).signature.checks.into_iter().map(|c| c.outcome).collect()
}

fn errors(doc: &[u8], t: &TrustStore) -> Vec<String> {
    cap::check(doc, t).diagnostics.iter().filter(|d| d.is_error()).map(|d| d.to_string()).collect()
}

const DOCS: [(&str, &str); 3] = [
    ("rsa-sha256-exclusive.xml", "rsa-signer.pem"),
    ("rsa-sha1-inclusive.xml", "rsa-signer.pem"),
    ("ecdsa-sha256.xml", "ecdsa-signer.pem"),
];

#[test]
fn each_signed_document_is_trusted_with_its_signer_and_not_trusted_without() {
    for (doc, signer) in DOCS {
        let bytes = signed(doc);
        let with = cap::check(&bytes, &trust(&[signer]));
        assert!(with.alert.is_some(), "{doc}: {:?}", with.diagnostics);
        assert!(with.signature.trusted(), "{doc}: {:?}", with.signature);
        assert!(with.diagnostics.is_empty(), "{doc}: {:?}", with.diagnostics);

        for t in [TrustStore::new(), trust(&["other-signer.pem"])] {
            let without = cap::check(&bytes, &t);
            assert!(
                without.alert.is_some(),
                "{doc}: a valid signature by an unknown key is not an error"
            );
            assert!(!without.signature.trusted() && !without.signature.refused());
            assert!(
                matches!(outcomes(&bytes, &t)[..], [SignatureOutcome::NotTrusted { .. }]),
                "{doc}"
            );
            let warning =
                without.diagnostics.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("\n");
            assert!(warning.contains("Signature[0]: signature valid but not trusted"), "{warning}");
        }
    }
    // A bare public key is as good as the certificate that holds it.
    let t = trust(&["rsa-signer.pubkey.pem"]);
    assert!(cap::check(&signed("rsa-sha1-inclusive.xml"), &t).signature.trusted());
    assert!(cap::check(&signed("rsa-sha256-exclusive.xml"), &t).signature.trusted());
}

#[test]
fn a_short_rsa_key_is_refused() {
    let e = errors(&signed("rsa1024-sha256.xml"), &TrustStore::new());
    assert_eq!(
        e,
        [
            "Signature[0]: signature refused: the signature value does not verify with the key in KeyInfo (an RSA key of 1024 bits: loa accepts 2048 bits or more)"
        ]
    );
}

/// Byte ranges of the text of each element named, outside the signature.
fn text_ranges(doc: &str, names: &[&str]) -> Vec<(usize, usize)> {
    let sig_at = doc.find("Signature").expect("signed");
    names
        .iter()
        .map(|n| {
            let open = format!("<{n}>");
            let start = doc.find(&open).unwrap_or_else(|| panic!("no {open}")) + open.len();
            let end = start + doc[start..].find('<').unwrap();
            assert!(end < sig_at);
            (start, end)
        })
        .collect()
}

#[test]
fn every_one_byte_change_to_signed_content_is_refused() {
    let elements = [
        "identifier",
        "sender",
        "sent",
        "status",
        "msgType",
        "event",
        "headline",
        "areaDesc",
        "polygon",
        "circle",
        "value",
        "expires",
    ];
    let mut tried = 0;
    for (doc, signer) in DOCS {
        let bytes = signed(doc);
        let text = String::from_utf8(bytes.clone()).unwrap();
        let present: Vec<&str> =
            elements.iter().copied().filter(|n| text.contains(&format!("<{n}>"))).collect();
        let t = trust(&[signer]);
        for (start, end) in text_ranges(&text, &present) {
            for i in start..end {
                let b = bytes[i];
                if !b.is_ascii_alphanumeric() {
                    continue;
                }
                let mut changed = bytes.clone();
                changed[i] = if b == b'7' {
                    b'8'
                } else if b.is_ascii_digit() {
                    b'7'
                } else if b == b'x' {
                    b'y'
                } else {
                    b'x'
                };
                let e = errors(&changed, &t);
                assert!(
                    e.iter().any(|m| m == "Signature[0]: signature refused: the alert's digest does not match the signed one: the alert was changed after it was signed"),
                    "{doc}: byte {i} changed, not refused: {e:?}"
                );
                tried += 1;
            }
        }
    }
    assert!(tried > 300, "only {tried} changes tried");
}

#[test]
fn comments_are_not_signed_but_everything_else_is() {
    let text = String::from_utf8(signed("rsa-sha256-exclusive.xml")).unwrap();
    let t = trust(&["rsa-signer.pem"]);
    let comment = text.replace("comments are not signed", "comments are not signed!!");
    assert!(cap::check(comment.as_bytes(), &t).signature.trusted());
    // The CDATA section and the character reference are content.
    let cdata = text.replace(
        "<![CDATA[Mực nước > báo động 3 & còn lên.]]>",
        "Mực nước &gt; báo động 3 &amp; còn lên.",
    );
    assert!(cap::check(cdata.as_bytes(), &t).signature.trusted(), "CDATA is text once parsed");
    assert!(text.contains("Sơ tạn"), "xmlsec1 wrote the character itself");
    let charref = text.replace("Sơ tạn", "S&#x1A1; t&#x1EA1;n");
    assert!(cap::check(charref.as_bytes(), &t).signature.trusted(), "a reference is its character");
    let changed = text.replace("Sơ tạn", "Sơ t&#x1EA0;n");
    assert!(cap::check(changed.as_bytes(), &t).signature.refused());
    // The processing instruction before the root is in the canonical form.
    let pi = text.replace("href=\"cap.xsl\"", "href=\"other.xsl\"");
    assert!(cap::check(pi.as_bytes(), &t).signature.refused());
}

#[test]
fn damaged_signatures_say_why() {
    let text = String::from_utf8(signed("rsa-sha256-exclusive.xml")).unwrap();
    let t = trust(&["rsa-signer.pem"]);
    let refused = |doc: String| -> String {
        let e = errors(doc.as_bytes(), &t);
        assert_eq!(e.len(), 1, "{e:?}");
        e[0].clone()
    };
    // The signature value itself.
    let at = text.find("<ds:SignatureValue>").unwrap() + "<ds:SignatureValue>".len() + 10;
    let mut v = text.clone().into_bytes();
    v[at] = if v[at] == b'A' { b'B' } else { b'A' };
    assert!(
        refused(String::from_utf8(v).unwrap()).contains("does not verify with the key in KeyInfo")
    );
    // The digest.
    let at = text.find("<ds:DigestValue>").unwrap() + "<ds:DigestValue>".len() + 3;
    let mut v = text.clone().into_bytes();
    v[at] = if v[at] == b'A' { b'B' } else { b'A' };
    assert!(refused(String::from_utf8(v).unwrap()).contains("digest does not match"));
    // A reference to part of the document.
    assert!(refused(text.replace("URI=\"\"", "URI=\"#part\"")).contains("not to the whole alert"));
    // No enveloped-signature transform.
    let no_env = text.replace(
        "<ds:Transform Algorithm=\"http://www.w3.org/2000/09/xmldsig#enveloped-signature\"/>",
        "",
    );
    assert!(refused(no_env).contains("no enveloped-signature transform"));
    // An algorithm loa does not support.
    let md5 = text.replace(
        "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256",
        "http://www.w3.org/2001/04/xmldsig-more#rsa-md5",
    );
    assert!(refused(md5).contains(
        "signature method http://www.w3.org/2001/04/xmldsig-more#rsa-md5 is not supported"
    ));
    // Two references.
    let start = text.find("<ds:Reference").unwrap();
    let end = text.find("</ds:Reference>").unwrap() + "</ds:Reference>".len();
    let two = format!("{}{}{}", &text[..end], &text[start..end], &text[end..]);
    assert!(refused(two).contains("2 references"));
}

#[test]
fn without_key_info_the_trusted_keys_are_tried() {
    let text = String::from_utf8(signed("rsa-sha1-inclusive.xml")).unwrap();
    let start = text.find("<KeyInfo>").unwrap();
    let end = text.find("</KeyInfo>").unwrap() + "</KeyInfo>".len();
    let bare = format!("{}{}", &text[..start], &text[end..]);
    let t = trust(&["other-signer.pem", "rsa-signer.pem"]);
    let ok = cap::check(bare.as_bytes(), &t);
    assert_eq!(ok.signature.trusted_signers(), ["O=loa tests,CN=loa test signer (RSA)"]);
    let e = errors(bare.as_bytes(), &TrustStore::new());
    assert_eq!(
        e,
        [
            "Signature[0]: signature refused: the signature names no key (no KeyInfo) and no trusted signer was given"
        ]
    );
    let e = errors(bare.as_bytes(), &trust(&["other-signer.pem"]));
    assert!(e[0].contains("does not verify with any trusted key"), "{e:?}");
}

#[test]
fn at_most_four_signatures_are_verified() {
    let text = String::from_utf8(signed("rsa-sha256-exclusive.xml")).unwrap();
    let start = text.find("<ds:Signature").unwrap();
    let end = text.find("</ds:Signature>").unwrap() + "</ds:Signature>".len();
    let sig = &text[start..end];
    let with = |n: usize| format!("{}{}{}", &text[..start], sig.repeat(n), &text[end..]);
    // Four copies of one signature: each covers the alert without all of them.
    let four = cap::check(with(4).as_bytes(), &trust(&["rsa-signer.pem"]));
    assert_eq!(four.signature.checks.len(), 4);
    assert!(four.signature.trusted(), "{:?}", four.diagnostics);
    let five = errors(with(5).as_bytes(), &TrustStore::new());
    assert_eq!(five, ["Signature[4]: signature refused: more than 4 signatures on one alert"]);
}

#[test]
fn trusted_signer_files_are_checked() {
    let mut t = TrustStore::new();
    assert!(
        t.add_pem("x.pem", "no pem here").unwrap_err().contains("no PEM certificate or public key")
    );
    let key = "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n";
    assert!(t.add_pem("k.pem", key).unwrap_err().contains("PRIVATE KEY block"));
    let two = format!(
        "{}{}",
        String::from_utf8(signed("rsa-signer.pem")).unwrap(),
        String::from_utf8(signed("ecdsa-signer.pem")).unwrap()
    );
    assert_eq!(t.add_pem("both.pem", &two), Ok(2));
}
