#!/usr/bin/env bash
# The test suite: formatting, lints, then every test of the workspace in release mode (the
# model tests run real models; debug builds would take hours). CI runs exactly this.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/fetch-test-models.sh
# The browser tests drive the system Chromium through playwright-core (no browser download).
npm ci --prefix tests/browser --no-audit --no-fund --silent
# Runs that tests solve are stored; keep them out of the user's own session history.
export K2_DB="${K2_DB:-$(mktemp -d)/sessions.db}"
cargo fmt --all -- --check
rustfmt --edition 2021 --check ui/src/*.rs
cargo clippy --release --workspace --all-targets -- -D warnings
cargo test --release --workspace --no-fail-fast
# Real OpenAI-compatible peers: the openai client against `k2 serve`, and k2's remote backend
# against llama-cpp-python's server.
PYTHON="$(scripts/python-env.sh)"
K2_BIN="${CARGO_TARGET_DIR:-target}/release/k2" "$PYTHON" tests/python/remote_peers.py
# The app in real Chromium against a real model: the wasm UI is built first (its toolchain is
# installed the first time), then served by `k2 serve`.
scripts/build-ui.sh
node tests/browser/ui_e2e.mjs "${CARGO_TARGET_DIR:-target}/release/k2" smollm2-135m-instruct-q4_1 ui/dist
