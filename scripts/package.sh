#!/usr/bin/env bash
# Builds the classroom install: a .deb of the desktop app (Tauri's bundler) that also carries
# `k2` (for `k2 serve` on the lab's server) and an example of the machine-wide configuration.
# Portable: built for x86-64-v3 (AVX2, 2013 and later), not this machine's CPU, in its own
# target folder. Prints the package's path last. Usage: scripts/package.sh
#
#   K2_PACKAGE_BUILT=TARGET_DIR   bundles the `k2` and `k2-tutor` already built there (release)
#                                 instead: no compiling, for that build's CPU (the tests' check
#                                 of the install does this with their own build)
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/desktop-toolchain.sh
scripts/build-ui.sh
# The bundler: Tauri's published prebuilt CLI, pinned in scripts/tauri-cli (seconds), not
# `cargo install tauri-cli` (minutes of compiling on a fresh machine).
# Installed without a lock file: the registry here serves only the Linux builds its optional
# dependencies name, which a lock written here would lack for others; the version is exact.
npm install --prefix scripts/tauri-cli --no-package-lock --no-audit --no-fund --silent
tauri="$PWD/scripts/tauri-cli/node_modules/.bin/tauri"
cargo_args=()
if [ -n "${K2_PACKAGE_BUILT:-}" ]; then
    export CARGO_TARGET_DIR="$K2_PACKAGE_BUILT"
    for bin in k2 k2-tutor; do
        if [ ! -x "$CARGO_TARGET_DIR/release/$bin" ]; then
            echo "K2_PACKAGE_BUILT: no release build of $bin in $CARGO_TARGET_DIR" >&2
            exit 1
        fi
    done
    tauri_args=(bundle --bundles deb)
else
    export CARGO_TARGET_DIR="$HOME/.cache/k2-tutor/target-package"
    export RUSTFLAGS="-C target-cpu=x86-64-v3"
    cargo build --release --locked -p k2
    tauri_args=(build --bundles deb)
    cargo_args=(-- --locked)
fi
files="{\"bundle\":{\"linux\":{\"deb\":{\"files\":{\"/usr/bin/k2\":\"$CARGO_TARGET_DIR/release/k2\"}}}}}"
(cd src-tauri && "$tauri" "${tauri_args[@]}" --config "$files" "${cargo_args[@]}")
ls -t "$CARGO_TARGET_DIR"/release/bundle/deb/*.deb | head -1
