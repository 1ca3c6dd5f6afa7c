#!/usr/bin/env bash
# Times the README's test command as a fresh machine would run it (issue 28, finding 9), on a
# machine that has already built everything: a clean clone of this repository's HEAD under an
# empty HOME, so an empty cargo home, target folders, Python environment, wheels and models are
# fetched and built again, with only rustup's toolchain proxies on PATH from the old cargo home
# (no tauri-driver, wasm-bindgen or tauri-cli). The machine's environment (its CA certificates
# for the registries) and npm settings are kept. System packages (Chromium, Node.js,
# WebKitGTK, Xvfb) stay installed: removing them is left to a real fresh machine.
#
#   scripts/bench/fresh-machine-test.sh [FOLDER]    (default /tmp/k2-fresh; emptied first)
#
# Prints the seconds `.ci/run` took last. Needs ~10 GB of disk and ../shared beside the repo.
set -u
repo="$(cd "$(dirname "$0")/../.." && pwd)"
F="${1:-/tmp/k2-fresh}"
rustup_bin="$(command -v rustup)" || { echo "rustup is needed" >&2; exit 2; }
rm -rf "$F"
mkdir -p "$F/home/.cargo/bin"
for b in cargo cargo-clippy cargo-fmt clippy-driver rustc rustdoc rustfmt rustup; do
    ln -s "$rustup_bin" "$F/home/.cargo/bin/$b"
done
git clone -q "$repo" "$F/repo"
# The shared data folder sits beside the repository, as ../shared does on every machine.
ln -s "$(cd "$repo/../shared" && pwd)" "$F/shared"
[ -f "$HOME/.npmrc" ] && cp "$HOME/.npmrc" "$F/home/.npmrc"
path="$F/home/.cargo/bin"
[ -n "${PYENV_ROOT:-}" ] && path="$path:$PYENV_ROOT/shims:$PYENV_ROOT/bin"
path="$path:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
cd "$F/repo"
git log --oneline -1
[ -n "${DRY_RUN:-}" ] && exit 0
start=$(date +%s)
env PATH="$path" HOME="$F/home" RUSTUP_HOME="${RUSTUP_HOME:-$HOME/.rustup}" \
    CARGO_HOME="$F/home/.cargo" CARGO_TARGET_DIR= .ci/run
rc=$?
echo "fresh .ci/run: rc=$rc in $(( $(date +%s) - start )) s"
exit $rc
