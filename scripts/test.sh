#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite.
# Benchmarks are compiled (so they cannot rot) but only run by scripts/bench.sh.
# Formatting and lints are checked first when the toolchain has rustfmt and clippy
# (a minimal toolchain may not; then they are skipped, and said so).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
if cargo fmt --version >/dev/null 2>&1; then
    cargo fmt --all --check
else
    echo "rustfmt is not installed: formatting not checked (rustup component add rustfmt)"
fi
if cargo clippy --version >/dev/null 2>&1; then
    cargo clippy --locked --all-targets -- -D warnings
else
    echo "clippy is not installed: lints not checked (rustup component add clippy)"
fi
cargo build --locked --benches
cargo test --locked "$@"
