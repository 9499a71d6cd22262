//! People in a central data directory, made with the real `loa central user add`.

use std::path::Path;

use crate::support::process::loa_with_input;

/// Everything `out` printed, stdout then stderr.
pub fn said(out: &std::process::Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

/// `loa central user add NAME --role ROLE --password-stdin` with `password`.
pub fn add_user(dir: &Path, name: &str, role: &str, password: &str) {
    let o = loa_with_input(
        &[
            "central",
            "--data-dir",
            dir.to_str().unwrap(),
            "user",
            "add",
            name,
            "--role",
            role,
            "--password-stdin",
        ],
        &format!("{password}\n"),
    );
    assert!(o.status.success(), "user add {name}: {}", said(&o));
}
