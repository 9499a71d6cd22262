//! `loa` — scheduled and urgent playout for a provincial network of grassroots radio
//! stations.
//!
//! # Layout
//! - [`schedule`]: TOML schedule files → model + diagnostics; cron expansion. Pure, no IO.
//! - [`protocol`]: the contract between stations, central and the CLI — every type that
//!   crosses a process, the API's paths, the bounds, reasons, the hash chain. Pure.
//! - [`signing`]: Ed25519 signatures over [`protocol`] documents (`verify_strict`).
//! - [`audio`]: decoding (symphonia), sinks (cpal, wav, null, clocked), the player thread.
//! - [`clock`]: the one notion of "now" shared by the scheduler and the clocked sink, so
//!   tests drive time instead of waiting for it.
//! - [`station`]: the station daemon — config, scheduler, player control, ledger, sync,
//!   bulletin receiver, uplink.
//! - [`central`]: the provincial server — HTTP API, manifests, bulletins, playlog, reports.
//! - [`store`]: central's persistence behind the `Store` trait (SQLite).
//! - [`cap`]: CAP 1.2 warnings from the disaster authorities → bulletin plans. Pure, no IO.
//! - [`service`]: running under systemd — `sd_notify` by hand (ready, status, watchdog
//!   fed only while every watched loop shows signs of life).
//! - [`demo`]: the sample schedules shifted to play within seconds, for `loa demo`.
//! - [`cli`]: one module per subcommand; the binary in `main.rs` only dispatches.
//! - `testing`: helpers for tests and benchmarks (a fault-injecting proxy, tones).
//!
//! Arrows run one way: `central` and `station` meet only in [`protocol`] (and the
//! pure [`schedule`], [`signing`]); `protocol` depends on nothing but `schedule`. A test
//! (`arrows`, below) checks every `crate::` path against that list. See ARCHITECTURE.md
//! for the invariants each module keeps.

pub mod audio;
pub mod cap;
pub mod central;
pub mod cli;
pub mod clock;
pub mod demo;
pub mod protocol;
pub mod schedule;
pub mod service;
pub mod signing;
pub mod station;
pub mod store;
#[doc(hidden)]
pub mod testing;

/// The one-way arrows between modules, checked on the source: a module may name (as
/// `crate::…`, outside comments) only the modules listed for it. `cli` and `demo` sit at
/// the edge and may use anything; `testing` may be used by any test.
#[cfg(test)]
mod arrows {
    use std::path::Path;

    const ALLOWED: &[(&str, &[&str])] = &[
        ("protocol", &["schedule"]),
        ("schedule", &[]),
        ("clock", &[]),
        ("audio", &["clock"]),
        ("signing", &["protocol"]),
        ("cap", &["schedule"]),
        ("store", &["protocol", "schedule"]),
        ("service", &[]),
        (
            "central",
            &["protocol", "schedule", "store", "signing", "audio", "clock", "cap", "service"],
        ),
        ("station", &["protocol", "schedule", "signing", "audio", "clock", "service"]),
    ];

    fn files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                files(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }

    #[test]
    fn each_module_names_only_the_modules_it_may_depend_on() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut broken = Vec::new();
        for (module, allowed) in ALLOWED {
            let mut paths = Vec::new();
            files(&src.join(module), &mut paths);
            paths.push(src.join(format!("{module}.rs")));
            let mut seen = 0;
            for path in paths.iter().filter(|p| p.is_file()) {
                seen += 1;
                let text = std::fs::read_to_string(path).unwrap();
                for (n, line) in text.lines().enumerate() {
                    let code = line.split("//").next().unwrap_or("");
                    for (at, _) in code.match_indices("crate::") {
                        let name: String = code[at + 7..]
                            .chars()
                            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                            .collect();
                        if name != *module && name != "testing" && !allowed.contains(&name.as_str())
                        {
                            let shown = path.strip_prefix(&src).unwrap_or(path).display();
                            broken.push(format!(
                                "src/{shown}:{}: {module} names crate::{name}",
                                n + 1
                            ));
                        }
                    }
                }
            }
            assert!(seen > 0, "no source found for module {module}");
        }
        assert!(broken.is_empty(), "arrows that must not exist:\n{}", broken.join("\n"));
    }
}
