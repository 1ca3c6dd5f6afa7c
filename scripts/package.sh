#!/usr/bin/env bash
# Builds the classroom install: a .deb of the desktop app (Tauri's bundler) that also carries
# `k2` (for `k2 serve` on the lab's server) and an example of the machine-wide configuration.
# Portable: built for x86-64-v3 (AVX2, 2013 and later), not this machine's CPU, in its own
# target folder. Prints the package's path last. Usage: scripts/package.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/desktop-toolchain.sh
scripts/build-ui.sh
if ! cargo tauri --version 2>/dev/null | grep -q '^tauri-cli 2\.'; then
  echo "installing tauri-cli (the bundler; once, several minutes)" >&2
  cargo install tauri-cli --version "^2" --locked
fi
export CARGO_TARGET_DIR="${K2_PACKAGE_TARGET_DIR:-$HOME/.cache/k2-tutor/target-package}"
export RUSTFLAGS="-C target-cpu=x86-64-v3"
cargo build --release --locked -p k2
files="{\"bundle\":{\"linux\":{\"deb\":{\"files\":{\"/usr/bin/k2\":\"$CARGO_TARGET_DIR/release/k2\"}}}}}"
(cd src-tauri && cargo tauri build --bundles deb --config "$files" -- --locked)
ls -t "$CARGO_TARGET_DIR"/release/bundle/deb/*.deb | head -1
