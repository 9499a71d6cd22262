//! `loa cap check`: exit codes as `loa schedule check` (0 ok, 1 any error, 2 bad command
//! line or option file), areas without `--stations`, trusted signers, `[cap]` settings.

use std::process::Output;

use crate::support::process::{self, root, stderr, stdout};

const NOW: &str = "2026-12-01T06:00:00+07:00";

/// `loa ARGS` in the repository (the documents' paths are relative to it).
fn loa(args: &[&str]) -> Output {
    process::loa_in(root(), args)
}

#[test]
fn any_error_in_any_file_exits_1_and_every_file_is_reported() {
    let o = loa(&[
        "cap",
        "check",
        "tests/cap_documents/valid/flood-vi.xml",
        "tests/cap_documents/invalid/polygon-too-few.xml",
        "tests/cap_documents/valid/draft.xml",
        "--now",
        NOW,
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains(
            "tests/cap_documents/valid/flood-vi.xml: bulletin: emergency, expires 2026-12-01 17:00:00 +07:00"
        ),
        "{out}"
    );
    assert!(out.contains("tests/cap_documents/invalid/polygon-too-few.xml: error: info[0]/area[0]/polygon[0]: fewer than 4 points"), "{out}");
    assert!(
        out.contains(
            "tests/cap_documents/valid/draft.xml: no bulletin: status Draft: drafts are ignored"
        ),
        "{out}"
    );
    assert!(
        out.ends_with("checked 3 files: 1 bulletin, 1 without a bulletin, 1 refused\n"),
        "{out}"
    );

    let missing = loa(&["cap", "check", "tests/cap_documents/valid/nothing-here.xml"]);
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        stdout(&missing).starts_with(
            "tests/cap_documents/valid/nothing-here.xml: error: cannot read this file: "
        )
    );
}

#[test]
fn without_stations_the_areas_are_shown() {
    let o = loa(&["cap", "check", "tests/cap_documents/valid/flood-vi.xml", "--now", NOW]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(
        out.contains("  targets    no --stations given: the stations inside these areas\n"),
        "{out}"
    );
    assert!(out.contains(
        "  area       info[1]/area[0] \"Ven sông Hậu, huyện An Phú và Châu Phú\"\n             polygon of 5 points within lat 10.3..10.6, lon 105.3..105.5\n"
    ), "{out}");
    assert!(out.contains("  language   vi-VN (voice vi)\n"), "{out}");
}

#[test]
fn bad_command_lines_and_option_files_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let bad_stations = write("stations.toml", "[[station]]\nid = \"a\"\nlat = 10.0\n");
    let bad_pem = write("x.pem", "not a certificate");
    let no_cap = write("central.toml", "listen = \"0.0.0.0:8480\"\n");
    let bad_cap = write("bad.toml", "[cap]\nmax_expiry = \"200h\"\n");
    let doc = "tests/cap_documents/valid/flood-vi.xml";
    for (args, says) in [
        (vec!["cap", "check"], "required"),
        (vec!["cap", "check", doc, "--now", "tomorrow"], "RFC 3339"),
        (vec!["cap", "check", doc, "--stations", "no/such.toml"], "cannot read no/such.toml"),
        (vec!["cap", "check", doc, "--stations", &bad_stations], "give both lat and lon"),
        (vec!["cap", "check", doc, "--trust", &bad_pem], "no PEM certificate or public key"),
        (vec!["cap", "check", doc, "--config", &no_cap], "has no [cap] table"),
        (vec!["cap", "check", doc, "--config", &bad_cap], "longer than a week"),
    ] {
        let o = loa(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains(says), "{args:?}: {}", stderr(&o));
        assert!(o.stdout.is_empty(), "{args:?}");
    }
}

#[test]
fn a_file_over_5_mib_is_refused_unread() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("big.xml");
    std::fs::write(&p, vec![b' '; 5 * 1024 * 1024 + 1]).unwrap();
    let o = loa(&["cap", "check", p.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains(": error: document: larger than the 5242880 bytes (5 MiB) a CAP document may have: refused unread"), "{}", stdout(&o));
}

#[test]
fn trusted_signers_come_from_trust_or_the_config() {
    let doc = "tests/cap_documents/signed/rsa-sha256-exclusive.xml";
    let untrusted = loa(&["cap", "check", doc, "--now", NOW]);
    assert_eq!(untrusted.status.code(), Some(0));
    assert!(stdout(&untrusted).contains(": warning: Signature[0]: signature valid but not trusted: signed by certificate O=loa tests,CN=loa test signer (RSA)"), "{}", stdout(&untrusted));

    let trusted = loa(&[
        "cap",
        "check",
        doc,
        "--now",
        NOW,
        "--trust",
        "tests/cap_documents/signed/rsa-signer.pem",
    ]);
    assert_eq!(trusted.status.code(), Some(0));
    let out = stdout(&trusted);
    assert!(!out.contains("warning"), "{out}");
    assert!(out.contains("  signature  Signature[0]: valid, trusted signer O=loa tests,CN=loa test signer (RSA)\n"), "{out}");

    // trusted_signers in [cap], relative to the config file.
    let dir = tempfile::tempdir().unwrap();
    let root = root();
    std::fs::copy(
        root.join("tests/cap_documents/signed/rsa-signer.pem"),
        dir.path().join("signer.pem"),
    )
    .unwrap();
    let config = dir.path().join("central.toml");
    std::fs::write(&config, "listen = \"x\"\n[cap]\ntrusted_signers = [\"signer.pem\"]\n").unwrap();
    let o = loa(&["cap", "check", doc, "--now", NOW, "--config", config.to_str().unwrap()]);
    assert!(stdout(&o).contains("valid, trusted signer"), "{}", stdout(&o));

    let tampered = dir.path().join("tampered.xml");
    let text =
        std::fs::read_to_string(root.join(doc)).unwrap().replace("10.60,105.50", "10.70,105.50");
    std::fs::write(&tampered, text).unwrap();
    let o = loa(&[
        "cap",
        "check",
        tampered.to_str().unwrap(),
        "--trust",
        "tests/cap_documents/signed/rsa-signer.pem",
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stdout(&o).contains(": error: Signature[0]: signature refused: the alert's digest does not match the signed one"), "{}", stdout(&o));
}

#[test]
fn cap_settings_change_language_priority_and_expiry() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("cap.toml");
    std::fs::write(
        &config,
        "[cap]\nlanguages = [\"en\"]\ndefault_expiry = \"1h\"\n[[cap.priority_rule]]\nseverity = [\"Moderate\"]\npriority = \"emergency\"\n",
    )
    .unwrap();
    let c = config.to_str().unwrap();
    let flood = stdout(&loa(&[
        "cap",
        "check",
        "tests/cap_documents/valid/flood-vi.xml",
        "--now",
        NOW,
        "--config",
        c,
    ]));
    assert!(
        flood.contains(
            "  language   en-US (voice en)\n  title      Flood warning on the Hau river\n"
        ),
        "{flood}"
    );
    assert!(
        flood.contains("priority (Severe/Immediate/Observed: no rule matched, the default)"),
        "{flood}"
    );
    let outside = stdout(&loa(&[
        "cap",
        "check",
        "tests/cap_documents/valid/outside.xml",
        "--now",
        NOW,
        "--config",
        c,
    ]));
    assert!(
        outside.contains("bulletin: emergency, expires 2026-12-01 07:00:00 +07:00"),
        "{outside}"
    );
    assert!(outside.contains("  note       no info block in en: using vi\n  note       no expires given: 1 h from now\n"), "{outside}");
}

#[test]
fn now_sent_judges_each_alert_at_its_own_time() {
    let late = stdout(&loa(&[
        "cap",
        "check",
        "tests/cap_documents/valid/flood-vi.xml",
        "--now",
        "2026-12-02T00:00:00+07:00",
    ]));
    assert!(late.contains("no bulletin: expired at 2026-12-01T10:00:00+00:00"), "{late}");
    let sent =
        stdout(&loa(&["cap", "check", "tests/cap_documents/valid/flood-vi.xml", "--now", "sent"]));
    assert!(sent.contains("bulletin: emergency"), "{sent}");
}
