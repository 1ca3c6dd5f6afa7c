#!/usr/bin/env bash
# The classroom install, for real: builds the .deb (scripts/package.sh), checks what it holds,
# installs it with dpkg on this machine (its dependencies resolved by apt), launches the
# installed app in a real window under Xvfb, runs the installed `k2`, and removes the package.
# Usage: scripts/test-package.sh
#
# What is checked is the packaging and the install, so the package bundles the binaries the
# tests built (`cargo build --release --workspace --bins`, for this machine's CPU) instead of
# compiling everything again for x86-64-v3 as the shipped one is (issue 28, finding 9).
set -euo pipefail
cd "$(dirname "$0")/.."
deb="$(K2_PACKAGE_BUILT="${CARGO_TARGET_DIR:-$PWD/target}" scripts/package.sh | tail -1)"
echo "package: $deb ($(du -h "$deb" | cut -f1))"
name="$(dpkg-deb -f "$deb" Package)"
contents="$(dpkg-deb -c "$deb")"
for path in usr/bin/k2-tutor usr/bin/k2 usr/share/k2-tutor/config.toml.example \
            "usr/share/applications/K2 Tutor.desktop" usr/share/icons/hicolor/256x256/apps/k2-tutor.png; do
  grep -q " $path\$" <<<"$contents" || { echo "FAIL: the package lacks $path"; exit 1; }
done
grep -q "libwebkit2gtk-4.1" <<<"$(dpkg-deb -f "$deb" Depends)" \
  || { echo "FAIL: the package does not depend on WebKitGTK"; exit 1; }
# Installed as a lab administrator would: apt resolves what it depends on.
apt-get install -y -qq "$(realpath "$deb")" >/dev/null
trap 'apt-get remove -y -qq "$name" >/dev/null' EXIT
/usr/bin/k2 --version
K2_E2E_ONLY=launch K2_MODEL="$(K2_MODELS_DIR= /usr/bin/k2 models --format jsonl | python3 -c \
    'import json,sys; print(next(json.loads(l)["path"] for l in sys.stdin if "smollm2" in l))')" \
    K2_DB="$(mktemp -d)/package.db" \
    xvfb-run -a -s "-screen 0 1280x800x24 -nolisten tcp" \
    node tests/desktop/app_e2e.mjs /usr/bin/k2-tutor
