#!/usr/bin/env bash
# The test suite: formatting, lints, then every test of the workspace in release mode (the
# model tests run real models; debug builds would take hours), real peer servers, and the app
# in real Chromium and in its real desktop window. CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

# What a fresh machine lacks (Chromium, Node.js, unzip, rustfmt, clippy), as scripts/run.sh
# fetches what it needs.
scripts/test-toolchain.sh
scripts/fetch-test-models.sh
# The browser tests drive the system Chromium through playwright-core (no browser download).
npm ci --prefix tests/browser --no-audit --no-fund --silent
# The desktop app needs WebKitGTK to build and the built UI (ui/dist) it embeds.
scripts/desktop-toolchain.sh
scripts/build-ui.sh
# Runs that tests solve are stored; keep them out of the user's own session history.
export K2_DB="${K2_DB:-$(mktemp -d)/sessions.db}"
cargo fmt --all -- --check
rustfmt --edition 2021 --check ui/src/*.rs
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace --no-fail-fast
# The binaries the tests below start: `cargo test` builds only those that integration tests
# name, so on a fresh target directory the desktop app would be missing.
cargo build --release --workspace --bins
BIN="${CARGO_TARGET_DIR:-target}/release"
# Real OpenAI-compatible peers: the openai client against `k2 serve`, and k2's remote backend
# against llama-cpp-python's server.
PYTHON="$(scripts/python-env.sh)"
K2_BIN="$BIN/k2" "$PYTHON" tests/python/remote_peers.py
# The app in real Chromium, served by `k2 serve` with a real model.
node tests/browser/ui_e2e.mjs "$BIN/k2" smollm2-135m-instruct-q4_1 ui/dist
# The desktop app in its real window (WebKitGTK under Xvfb, driven by tauri-driver), with a
# fresh database so a restart must find the run it just stored, an empty models folder to
# import into, its own user and system configuration files, and the 1.5B served by a stand-in
# Hugging Face as a recommended model (the test adds it to the catalogue).
DESKTOP="$(mktemp -d)"
# Its models folder receives a 1.1 GB download each run: leaving it would fill the disk of a
# machine that runs CI repeatedly (it did).
trap 'rm -rf "$DESKTOP"' EXIT
installed() {
  K2_MODELS_DIR= "$BIN/k2" models --format jsonl | python3 -c \
    'import json,sys; print(next(json.loads(l)["path"] for l in sys.stdin if sys.argv[1] in l))' "$1"
}
HUB_PORT=$((20000 + RANDOM % 20000))
K2_MODEL="$(installed smollm2)" K2_IMPORT_MODEL="$(installed qwen2.5-coder-0.5b)" \
    K2_RECOMMENDED_MODEL="$(installed qwen2.5-coder-1.5b)" \
    HF_ENDPOINT="http://127.0.0.1:$HUB_PORT" \
    K2_DB="$DESKTOP/desktop.db" K2_MODELS_DIR="$DESKTOP/models" \
    K2_CONFIG="$DESKTOP/config.toml" K2_SYSTEM_CONFIG="$DESKTOP/system.toml" \
    xvfb-run -a -s "-screen 0 1280x800x24 -nolisten tcp" \
    node tests/desktop/app_e2e.mjs "$BIN/k2-tutor"
# The classroom install: the .deb built by Tauri's bundler, installed with apt, launched.
scripts/test-package.sh
