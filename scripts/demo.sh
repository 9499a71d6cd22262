#!/usr/bin/env bash
# Installs what is missing, then shows loa at work on the sample schedules.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
cargo run --release --locked -- schedule next schedules/provincial.toml schedules/district.toml --count 12 "$@"
