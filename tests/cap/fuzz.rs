//! Property test with a fixed seed: random mutations of our CAP documents (valid,
//! invalid and signed) never panic the reader, the signature check or the planner, and
//! the invariants hold: an alert exactly when there is no error, every diagnostic names
//! a path, every plan expires within the bulletin maximum and targets given stations.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::Path;

use chrono::{DateTime, Utc};
use loa::cap::{self, CapConfig, Decision, TrustStore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

const SNIPPETS: &[&str] = &[
    "<",
    ">",
    "&",
    "&amp;",
    "&#x0;",
    "&#xFFFF;",
    "&#55296;",
    "&lt;",
    "<![CDATA[",
    "]]>",
    "<!--",
    "-->",
    "<?x y?>",
    "<?xml version=\"1.0\"?>",
    "\"",
    "'",
    "<info>",
    "</info>",
    "<area>",
    "</area>",
    "<polygon>1,2 3,4 5,6 1,2</polygon>",
    "<circle>1,2 3</circle>",
    "xmlns=\"\"",
    "xmlns:ds=\"x\"",
    "\u{0}",
    "\u{FFFF}",
    "<!DOCTYPE a>",
    "ds:",
    "<references>a,b,2026-12-01T05:00:00+07:00</references>",
    "<msgType>Cancel</msgType>",
    "<status>Test</status>",
    "\r",
    "\t",
    "é",
    "Ệ",
    " ",
    "0",
    "-00:00",
];

fn inputs() -> Vec<Vec<u8>> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cap_documents");
    let mut out = Vec::new();
    for dir in ["valid", "invalid", "signed"] {
        let mut names: Vec<_> = std::fs::read_dir(root.join(dir))
            .unwrap()
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .collect();
        names.sort();
        for p in names.into_iter().filter(|p| p.extension().is_some_and(|e| e == "xml")) {
            out.push(std::fs::read(p).unwrap());
        }
    }
    out
}

fn mutate(rng: &mut StdRng, doc: &[u8]) -> Vec<u8> {
    let mut d = doc.to_vec();
    for _ in 0..rng.random_range(1..=2) {
        if d.is_empty() {
            break;
        }
        let at = rng.random_range(0..d.len());
        match rng.random_range(0..9) {
            0 | 5 => d[at] = rng.random(),
            1 => {
                let end = (at + rng.random_range(1..40)).min(d.len());
                d.drain(at..end);
            }
            2 | 6 | 7 => {
                let s = SNIPPETS[rng.random_range(0..SNIPPETS.len())];
                d.splice(at..at, s.bytes());
            }
            3 | 8 => {
                let end = (at + rng.random_range(1..200)).min(d.len());
                let copy = d[at..end].to_vec();
                d.splice(at..at, copy);
            }
            _ => d.truncate(at),
        }
    }
    d
}

#[test]
fn mutated_documents_never_panic_and_keep_the_invariants() {
    let now: DateTime<Utc> =
        DateTime::parse_from_rfc3339("2026-12-01T06:00:00+07:00").unwrap().to_utc();
    let stations_text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cap_documents/stations.toml"),
    )
    .unwrap();
    let stations = cap::stations_from_toml(&stations_text).unwrap();
    let ids: Vec<&str> = stations.iter().map(|s| s.id.as_str()).collect();
    let mut trust = TrustStore::new();
    let pem = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/cap_documents/signed/rsa-signer.pem"),
    )
    .unwrap();
    trust.add_pem("rsa", &pem).unwrap();
    let config = CapConfig::default();
    let docs = inputs();
    let mut rng = StdRng::seed_from_u64(20261201);
    let (mut valid, mut total) = (0, 0);
    for _ in 0..5000 {
        let doc = &docs[rng.random_range(0..docs.len())];
        let input = mutate(&mut rng, doc);
        let result = catch_unwind(AssertUnwindSafe(|| {
            let c = cap::check(&input, &trust);
            assert_eq!(c.alert.is_some(), !c.has_errors(), "alert iff no error");
            for d in &c.diagnostics {
                assert!(!d.path.is_empty() && !d.path.contains(' '), "bad path {d}");
                assert!(!d.message.is_empty() && !d.message.ends_with('.'), "bad message {d}");
            }
            if let Some(alert) = &c.alert {
                for s in [None, Some(stations.as_slice())] {
                    if let Decision::Bulletin(p) = cap::plan(alert, s, &config, now) {
                        assert!(
                            p.expires_at > now && p.expires_at <= now + chrono::Duration::days(7)
                        );
                        assert!(p.targets.iter().all(|t| ids.contains(&t.as_str())));
                        assert!(!p.text.is_empty() && !p.title.is_empty());
                    }
                }
            }
            c.alert.is_some()
        }));
        match result {
            Ok(ok) => valid += usize::from(ok),
            Err(_) => panic!("panicked on input:\n{}", String::from_utf8_lossy(&input)),
        }
        total += 1;
    }
    // The mutations reach both sides: some documents stay valid, most do not.
    assert!(valid > 50 && valid < total / 2, "{valid} of {total} valid");
}
