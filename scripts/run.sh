#!/usr/bin/env bash
# Quick start. With no argument: fetch the default models (first time only), build the app and
# open it: the desktop window where there is a display, else the same app served by `k2 serve`
# on this machine for a browser. With a problem as argument: solve it in the terminal instead.
set -euo pipefail
cd "$(dirname "$0")/.."

MODEL="${K2_MODEL:-qwen2.5-coder-1.5b-instruct-q4_k_m}"
scripts/fetch-test-models.sh qwen-1.5b qwen-0.5b
target_dir="${CARGO_TARGET_DIR:-target}"

if [ $# -gt 0 ]; then
    cargo build --release -p k2
    exec "$target_dir/release/k2" solve "$1" --model "$MODEL"
fi

scripts/build-ui.sh
if [ -n "${DISPLAY:-}${WAYLAND_DISPLAY:-}" ]; then
    scripts/desktop-toolchain.sh --build-only
    cargo build --release -p k2-desktop
    K2_MODEL="$MODEL" exec "$target_dir/release/k2-tutor"
fi
cargo build --release -p k2
echo "No display here: serving the app on this machine; open the link below in a browser."
exec "$target_dir/release/k2" serve --model "$MODEL" --ui ui/dist
