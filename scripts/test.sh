#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite.
# Benchmarks are compiled (so they cannot rot) but only run by scripts/bench.sh. The
# Debian package is built (scripts/package.sh) when the machine can install it.
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
# The Debian package, built once (a release build: minutes, most of this script's extra
# time) where this machine can install it (root and dpkg), for tests/field/deb.rs.
# LOA_SKIP_DEB=1 skips it; the test then says it was skipped.
if [ "${LOA_SKIP_DEB:-}" != 1 ] && [ "$(id -u)" = 0 ] && command -v dpkg >/dev/null; then
    started=$(date +%s)
    LOA_DEB="$PWD/$(./scripts/package.sh | tail -1)"
    export LOA_DEB
    echo "built $LOA_DEB in $(($(date +%s) - started)) s"
else
    echo "not building the .deb (needs root and dpkg, and LOA_SKIP_DEB unset): tests/field/deb.rs is skipped"
fi
# PostgreSQL for the store contract and the replica tests: the server
# LOA_TEST_DATABASE_URL names, else a throwaway one (scripts/pg-test.sh), stopped at
# the end whatever happens.
if [ -z "${LOA_TEST_DATABASE_URL:-}" ]; then
    LOA_TEST_DATABASE_URL=$(./scripts/pg-test.sh start)
    export LOA_TEST_DATABASE_URL
    trap './scripts/pg-test.sh stop' EXIT
fi
cargo test --locked "$@"
