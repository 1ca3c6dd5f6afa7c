#!/usr/bin/env bash
# Installs what the test suite needs beyond Rust and Python (idempotent, only what is missing):
# rustfmt and clippy, unzip for the model wheels, Chromium and Node.js for the browser tests.
# The desktop window's own pieces come from scripts/desktop-toolchain.sh.
# Usage: scripts/test-toolchain.sh
set -euo pipefail
if ! cargo fmt --version >/dev/null 2>&1 || ! cargo clippy --version >/dev/null 2>&1; then
    rustup component add rustfmt clippy
fi
need_apt=()
command -v unzip >/dev/null 2>&1 || need_apt+=(unzip)
command -v chromium >/dev/null 2>&1 || need_apt+=(chromium)
# Only when missing: machines that come with their own Node.js conflict with Debian's nodejs.
command -v npm >/dev/null 2>&1 || need_apt+=(nodejs npm)
if [ ${#need_apt[@]} -gt 0 ]; then
    if [ "$(id -u)" -ne 0 ] && ! command -v sudo >/dev/null 2>&1; then
        echo "the tests need ${need_apt[*]}: install them (apt-get install ${need_apt[*]})" >&2
        exit 1
    fi
    sudo_=(); [ "$(id -u)" -ne 0 ] && sudo_=(sudo)
    "${sudo_[@]}" apt-get update -qq
    DEBIAN_FRONTEND=noninteractive "${sudo_[@]}" apt-get install -y -qq "${need_apt[@]}"
fi
