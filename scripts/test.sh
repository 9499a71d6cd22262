#!/usr/bin/env bash
# Installs what is missing, then runs the whole test suite.
# Benchmarks are compiled (so they cannot rot) but only run by scripts/bench.sh.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo build --locked --benches
cargo test --locked "$@"
