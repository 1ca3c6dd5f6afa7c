#!/usr/bin/env bash
# Installs what building and testing the wasm UI needs on these machines (Debian, no rustup
# wasm target): Debian's Rust with the standard library's source (compiled for wasm32 with
# -Z build-std), wasm-ld, and wasm-bindgen-cli at the version ui/Cargo.lock pins.
# Idempotent. On a machine whose rustup has the wasm32 target, only wasm-bindgen-cli is needed.
set -euo pipefail
cd "$(dirname "$0")/.."
need_apt=()
[ -x /usr/bin/rustc ] || need_apt+=(rustc-web cargo-web rust-web-src)
[ -x /usr/lib/llvm-19/bin/wasm-ld ] || need_apt+=(lld-19)
if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
version=$(awk '/^name = "wasm-bindgen"$/ {getline; gsub(/[^0-9.]/, "", $0); print; exit}' ui/Cargo.lock)
if [ "$(wasm-bindgen --version 2>/dev/null | awk '{print $2}')" != "$version" ]; then
    cargo install -q wasm-bindgen-cli --version "$version"
fi
