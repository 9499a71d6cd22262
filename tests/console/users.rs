//! `loa central user …` and `loa central audit` on the real binary: people are added
//! with a hashed password read from stdin, bad names, roles and passwords are refused
//! with a clear error and change nothing, and every change lands in the audit trail.

use super::people::{add_user, said as text};
use crate::support::process::{central_init, loa_with_input};

fn loa(args: &[&str]) -> std::process::Output {
    loa_with_input(args, "")
}

#[test]
fn people_are_added_changed_listed_and_audited() {
    let root = tempfile::tempdir().unwrap();
    let dir = root.path().join("central");
    central_init(&dir);
    let d = dir.to_str().unwrap();
    add_user(&dir, "an", "admin", "một mật khẩu dài");
    add_user(&dir, "binh", "district:Tri Tôn/Ba Chúc", "mật khẩu của bình");

    // The password is stored hashed (argon2id), never as given.
    let db = std::fs::read(dir.join("central.sqlite")).unwrap();
    let db = String::from_utf8_lossy(&db);
    assert!(db.contains("$argon2id$v=19$"));
    assert!(!db.contains("một mật khẩu dài"));

    // Refusals: a taken name, a bad name, a machine role, a short and a long password,
    // and no terminal without --password-stdin. Each says what to do and changes nothing.
    let refused = |args: &[&str], input: &str, says: &str| {
        let mut all = vec!["central", "--data-dir", d, "user"];
        all.extend_from_slice(args);
        let o = loa_with_input(&all, input);
        assert!(!o.status.success(), "{args:?} was accepted");
        assert!(text(&o).contains(says), "{args:?}: {}", text(&o));
    };
    refused(
        &["add", "an", "--role", "viewer", "--password-stdin"],
        "long enough pw\n",
        "exists already",
    );
    refused(
        &["add", "An Nguyễn", "--role", "viewer", "--password-stdin"],
        "long enough pw\n",
        "cannot name a person",
    );
    refused(
        &["add", "feed", "--role", "cap-source", "--password-stdin"],
        "long enough pw\n",
        "for machines",
    );
    refused(
        &["add", "chi", "--role", "mayor", "--password-stdin"],
        "long enough pw\n",
        "unknown role",
    );
    refused(&["add", "chi", "--role", "viewer", "--password-stdin"], "123456789\n", "too short");
    refused(
        &["add", "chi", "--role", "viewer", "--password-stdin"],
        &format!("{}\n", "x".repeat(257)),
        "too long",
    );
    refused(&["add", "chi", "--role", "viewer"], "", "--password-stdin");
    refused(&["passwd", "nobody", "--password-stdin"], "long enough pw\n", "no person named");
    refused(&["disable", "nobody"], "", "no person named");
    // Exactly the bound is accepted.
    add_user(&dir, "chi", "viewer", &"x".repeat(256));

    let o = loa_with_input(
        &["central", "--data-dir", d, "user", "passwd", "an", "--password-stdin"],
        "mật khẩu mới dài\n",
    );
    assert!(o.status.success(), "{}", text(&o));
    let o = loa(&["central", "--data-dir", d, "user", "disable", "binh"]);
    assert!(o.status.success(), "{}", text(&o));

    let o = loa(&["central", "--data-dir", d, "user", "list"]);
    let list = text(&o);
    assert!(o.status.success(), "{list}");
    let row = |name: &str| {
        list.lines().find(|l| l.starts_with(&format!("{name} "))).unwrap_or_default().to_string()
    };
    assert!(row("an").contains("admin") && row("an").contains("active"), "{list}");
    assert!(
        row("binh").contains("district:Tri Tôn/Ba Chúc") && row("binh").contains("disabled"),
        "{list}"
    );
    assert!(row("chi").contains("viewer"), "{list}");
    assert_eq!(list.lines().count(), 4, "a header and three people: {list}");

    let o = loa(&["central", "--data-dir", d, "audit", "--limit", "10"]);
    let audit = text(&o);
    assert!(o.status.success(), "{audit}");
    let lines: Vec<&str> = audit.lines().skip(1).collect();
    assert_eq!(lines.len(), 5, "{audit}");
    assert!(lines[0].contains("user.disable") && lines[0].contains("user binh"), "{audit}");
    assert!(lines[1].contains("user.passwd") && lines[1].contains("user an"), "{audit}");
    assert!(lines.iter().all(|l| l.contains("terminal (tester)")), "{audit}");
    let o = loa(&["central", "--data-dir", d, "audit", "--limit", "10001"]);
    assert!(!o.status.success() && text(&o).contains("out of range"), "{}", text(&o));
}
