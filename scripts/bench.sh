#!/usr/bin/env bash
# Runs every benchmark (release) and prints their figures; BENCHMARKS.md records the
# latest ones. Name benchmarks to run only those: ./scripts/bench.sh station sync
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
benches=("$@")
if ((${#benches[@]} == 0)); then
  benches=(schedule audio station sync ingest bulletin cap console)
fi
echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), load $(cut -d' ' -f1-3 /proc/loadavg), $(date -u +%Y-%m-%dT%H:%MZ)"
for b in "${benches[@]}"; do
  echo
  echo "== cargo bench --bench $b"
  cargo bench --locked --bench "$b"
done
