#!/usr/bin/env bash
# Builds the Debian package: a release build of `loa`, the default configs it prints,
# then cargo-deb (installed the first time, from crates.io). The .deb lands in
# target/debian/; its path is the last line printed.
#   scripts/package.sh            # build it
#   sudo apt-get install ./target/debian/loa_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/deps.sh
if ! cargo deb --version >/dev/null 2>&1; then
    echo "installing cargo-deb (once; a few minutes)" >&2
    cargo install cargo-deb --locked --version '^3'
fi
cargo build --release --locked --bin loa
# The commented defaults shipped in /etc/loa, printed by the binary being packaged.
mkdir -p target/deb-assets
target/release/loa central example-config > target/deb-assets/central.toml
target/release/loa station --print-config > target/deb-assets/station.toml.example
cargo deb --no-build --locked --strip --output target/debian/ >&2
ls -t target/debian/loa_*.deb | head -1
