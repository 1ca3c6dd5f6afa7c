#!/usr/bin/env bash
# Builds the wasm UI into ui/dist: what `k2 serve` serves at / and the desktop app embeds.
# Installs its toolchain first if missing (scripts/ui-toolchain.sh). Usage: scripts/build-ui.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/ui-toolchain.sh
export CARGO_TARGET_DIR="${K2_UI_TARGET_DIR:-$HOME/.cache/k2-tutor/target-ui}"
# The UI's own settings (ui/.cargo/config.toml) apply inside ui/: Debian's Rust, build-std.
(cd ui && RUSTC_BOOTSTRAP=1 RUSTFLAGS="" /usr/bin/cargo build --release --locked \
    --target wasm32-unknown-unknown)
rm -rf ui/dist && mkdir -p ui/dist
# No name section: it is 85% of the module and only serves debuggers.
wasm-bindgen --target web --no-typescript --remove-name-section --out-dir ui/dist --out-name k2_ui \
    "$CARGO_TARGET_DIR/wasm32-unknown-unknown/release/k2_ui.wasm"
cp ui/index.html ui/style.css ui/static/* ui/dist/
# KaTeX for the page: the very copy katex-rs embeds for exports (same version, no network).
katex=$(ls -d "${CARGO_HOME:-$HOME/.cargo}"/registry/src/*/katex-0.4.*/vendor/katex.min.js | sort -V | tail -1)
cp "$katex" ui/dist/katex.min.js
echo "UI built: ui/dist ($(du -sh ui/dist | cut -f1))"
