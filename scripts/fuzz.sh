#!/usr/bin/env bash
# Bounded fuzzing of every cargo-fuzz target, one after the other.
#
#   scripts/fuzz.sh            # 60 s per target
#   scripts/fuzz.sh 600        # 10 min per target (the documented longer run)
#   scripts/fuzz.sh 60 schedule_parse   # one target
#
# cargo-fuzz needs nightly compiler features; RUSTC_BOOTSTRAP=1 lets the installed stable
# toolchain provide them. Installs cargo-fuzz from crates.io when it is missing. The
# corpus grows in fuzz/corpus/<target> (seeded from fuzz/seeds and schedules/); a crash
# leaves its input in fuzz/artifacts/<target> and makes this script fail.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
    targets=(schedule_parse signed_envelope request_bodies)
fi

if ! command -v cargo-fuzz >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi
export RUSTC_BOOTSTRAP=1

# Seeds: the sample and broken schedules, plus hand-written envelopes and bodies.
mkdir -p fuzz/corpus/schedule_parse fuzz/corpus/signed_envelope fuzz/corpus/request_bodies
cp -n schedules/*.toml schedules/invalid/*.toml fuzz/corpus/schedule_parse/ 2>/dev/null || true
for t in signed_envelope request_bodies; do
    cp -n fuzz/seeds/"$t"/* fuzz/corpus/"$t"/ 2>/dev/null || true
done

# No sanitizer: the code under test is safe Rust; panics and aborts are what we hunt.
(cd fuzz && cargo fuzz build -s none)
for target in "${targets[@]}"; do
    echo "== $target: ${seconds}s"
    log="fuzz/$target.log"
    (cd fuzz && cargo fuzz run -s none "$target" "corpus/$target" -- \
        -max_total_time="$seconds" -max_len=65536 -timeout=10 -rss_limit_mb=2048) \
        2>&1 | tee "$log" | grep -E "^(#[0-9]+ +DONE|==[0-9]+== ERROR|Done )" || true
    if grep -qE "deadly signal|panicked|ERROR: libFuzzer" "$log"; then
        echo "$target: CRASH, see $log and fuzz/artifacts/$target/" >&2
        exit 1
    fi
    grep -E "^Done [0-9]+ runs" "$log" | tail -1
done
