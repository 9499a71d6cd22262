//! The Debian package on this machine: `dpkg -i` installs the binary, both systemd units,
//! the `loa` user, `/etc/loa` and `/var/lib/loa` with the right owners and modes, and the
//! sample audio; `loa --version` runs from /usr/bin; `systemd-analyze verify` accepts both
//! units (where systemd is installed); installing again (an upgrade) and removing keep
//! data and configs; purging removes them and the user.
//!
//! Needs root, dpkg and the package: `scripts/package.sh` builds it and
//! `./scripts/test.sh` runs it once and passes its path in `LOA_DEB`. Without root or
//! dpkg, or when `loa` is installed here already (a real installation is never touched),
//! the test says so and stops; with `LOA_DEB` set the package must exist.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .env("DEBIAN_FRONTEND", "noninteractive")
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"))
}

fn ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args);
    assert!(
        out.status.success(),
        "{program} {args:?} failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn package() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("LOA_DEB") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "LOA_DEB={} is not a file", path.display());
        return Some(path);
    }
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    let mut debs: Vec<PathBuf> = std::fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "deb"))
        .collect();
    debs.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    debs.pop()
}

fn uid_of(name: &str) -> Option<u32> {
    let out = run("id", &["-u", name]);
    out.status.success().then(|| String::from_utf8_lossy(&out.stdout).trim().parse().ok())?
}

/// Purges the package when the test ends, however it ends.
struct Purge;

impl Drop for Purge {
    fn drop(&mut self) {
        let _ = run("dpkg", &["--purge", "loa"]);
    }
}

#[test]
fn the_package_installs_upgrades_removes_and_purges() {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: installing the .deb needs root (CI runs as root)");
        return;
    }
    if Command::new("dpkg").arg("--version").output().is_err() {
        eprintln!("skipped: no dpkg on this machine (not Debian)");
        return;
    }
    let Some(deb) = package() else {
        eprintln!(
            "skipped: no .deb built; scripts/package.sh builds it (./scripts/test.sh does, and sets LOA_DEB)"
        );
        return;
    };
    let status = run("dpkg-query", &["-W", "-f=${Status}", "loa"]);
    if String::from_utf8_lossy(&status.stdout).contains("installed") {
        eprintln!("skipped: the loa package is installed on this machine already; not touching it");
        return;
    }
    let deb = deb.to_str().expect("utf-8 path").to_string();
    let _purge = Purge;

    // Install.
    ok("dpkg", &["--install", &deb]);
    let version = ok("/usr/bin/loa", &["--version"]);
    assert!(version.starts_with("loa "), "{version}");
    for file in [
        "/lib/systemd/system/loa-station.service",
        "/lib/systemd/system/loa-central.service",
        "/etc/loa/station.toml.example",
        "/usr/share/loa/audio/ban-tin.mp3",
        "/usr/share/loa/audio/chuong-bao.wav",
        "/usr/share/loa/schedules/provincial.toml",
        "/usr/share/loa/grafana-dashboard.json",
    ] {
        assert!(Path::new(file).is_file(), "{file} not installed");
    }
    let loa_uid = uid_of("loa").expect("the loa user exists");
    let groups = ok("id", &["-nG", "loa"]);
    assert!(groups.split_whitespace().any(|g| g == "loa"), "{groups}");
    for dir in ["/var/lib/loa", "/var/lib/loa/station", "/var/lib/loa/central"] {
        let meta = std::fs::metadata(dir).unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert_eq!(meta.uid(), loa_uid, "{dir} owner");
        assert_eq!(meta.permissions().mode() & 0o777, 0o750, "{dir} mode");
    }
    let config = std::fs::metadata("/etc/loa/central.toml").expect("central.toml");
    assert_eq!(config.uid(), 0);
    assert_eq!(config.permissions().mode() & 0o777, 0o640);
    let text = std::fs::read_to_string("/etc/loa/central.toml").expect("central.toml");
    assert_eq!(text, ok("/usr/bin/loa", &["central", "example-config"]), "the shipped default");
    // The shipped central.toml is a valid config.
    assert!(text.contains("data_dir = \"/var/lib/loa/central\""), "{text}");

    // systemd accepts both units.
    if Command::new("systemd-analyze").arg("--version").output().is_ok() {
        for unit in ["loa-station.service", "loa-central.service"] {
            let path = format!("/lib/systemd/system/{unit}");
            let out = run("systemd-analyze", &["verify", &path]);
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(out.status.success(), "systemd-analyze verify {unit}:\n{stderr}");
            assert!(!stderr.contains(&path), "systemd-analyze complains about {unit}:\n{stderr}");
        }
    } else {
        eprintln!("systemd-analyze is not installed: units not verified");
    }

    // Data and a changed config survive an upgrade (installing again) and a removal.
    std::fs::write("/var/lib/loa/central/marker", b"kept").expect("marker");
    let mut changed = text.clone();
    changed.push_str("# changed by the operator\n");
    std::fs::write("/etc/loa/central.toml", &changed).expect("change config");
    ok("dpkg", &["--force-confold", "--install", &deb]);
    assert_eq!(
        std::fs::read("/var/lib/loa/central/marker").expect("marker after upgrade"),
        b"kept"
    );
    assert_eq!(std::fs::read_to_string("/etc/loa/central.toml").expect("config"), changed);
    ok("dpkg", &["--remove", "loa"]);
    assert!(!Path::new("/usr/bin/loa").exists(), "the binary goes with remove");
    assert_eq!(std::fs::read("/var/lib/loa/central/marker").expect("marker after remove"), b"kept");
    assert_eq!(std::fs::read_to_string("/etc/loa/central.toml").expect("config"), changed);

    // Purge removes data, configs and the user.
    ok("dpkg", &["--purge", "loa"]);
    assert!(!Path::new("/var/lib/loa").exists(), "/var/lib/loa after purge");
    assert!(!Path::new("/etc/loa").exists(), "/etc/loa after purge");
    assert!(uid_of("loa").is_none(), "the loa user after purge");
}
