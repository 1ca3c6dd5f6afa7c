#!/usr/bin/env bash
# The Python environment of the peer tests and load benchmarks: llama-cpp-python's
# OpenAI-compatible server and the official openai client, in a venv kept in the cache
# (reinstalled only when tests/python/requirements.txt changes). Prints the venv's python.
set -euo pipefail
cd "$(dirname "$0")/.."

CACHE_ROOT="${K2_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/k2-tutor}"
VENV="$CACHE_ROOT/pyenv"
REQUIREMENTS=tests/python/requirements.txt
STAMP="$VENV/.requirements.sha256"
WANT="$(sha256sum "$REQUIREMENTS" | cut -d' ' -f1)"

if [[ ! -x "$VENV/bin/python" || "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]]; then
    echo "[python-env] installing $REQUIREMENTS into $VENV (first time: several minutes)" >&2
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --upgrade pip >&2
    CMAKE_BUILD_PARALLEL_LEVEL="$(nproc)" "$VENV/bin/pip" install -q -r "$REQUIREMENTS" >&2
    echo "$WANT" > "$STAMP"
fi
echo "$VENV/bin/python"
