#!/usr/bin/env bash
# Installs what is missing, then runs `loa demo`: central and three stations on this
# machine, the sample schedules shifted to play now, an emergency bulletin, one station
# offline and back, the log and the day's report. Options go to `loa demo`
# (e.g. ./scripts/demo.sh --stations 5 --keep).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo build --release --locked
exec "${CARGO_TARGET_DIR:-target}/release/loa" demo "$@"
