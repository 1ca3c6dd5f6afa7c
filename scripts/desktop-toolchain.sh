#!/usr/bin/env bash
# Installs what building and testing the desktop app needs (idempotent): WebKitGTK's
# development files for Tauri, and for the window tests Xvfb, WebKitWebDriver and tauri-driver.
# Usage: scripts/desktop-toolchain.sh [--build-only]
set -euo pipefail
need_apt=()
pkg-config --exists webkit2gtk-4.1 2>/dev/null || need_apt+=(libwebkit2gtk-4.1-dev)
if [ "${1:-}" != "--build-only" ]; then
    command -v WebKitWebDriver >/dev/null 2>&1 || need_apt+=(webkit2gtk-driver)
    command -v xvfb-run >/dev/null 2>&1 || need_apt+=(xvfb xauth)
fi
if [ ${#need_apt[@]} -gt 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}"
fi
[ "${1:-}" = "--build-only" ] && exit 0
if ! cargo install --list | grep -q '^tauri-driver v2.1.0:'; then
    cargo install -q tauri-driver --version 2.1.0 --locked
fi
