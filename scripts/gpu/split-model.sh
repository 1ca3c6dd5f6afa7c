#!/usr/bin/env bash
# Splits a model file into parts that fit the device tool's 64 MiB per call, in .mpart/
# (git-ignored through .git/info/exclude). Each part then travels in its own call
# (`carry: [".mpart/qN"]`, command `cp .mpart/qN /root/k2/`), one right after another so the
# machine stays warm, and the last call joins them, checks the SHA-256 and runs
#   /root/k2/device_bench real --model /root/k2/MODEL.gguf
# (device_bench itself travels first, in .device/, and is copied to /root/k2 the same way).
# Usage: scripts/gpu/split-model.sh MODEL.gguf
set -euo pipefail
cd "$(dirname "$0")/../.."
model=$1
exclude=$(git rev-parse --git-common-dir)/info/exclude
mkdir -p "$(dirname "$exclude")"
grep -qx "/.mpart/" "$exclude" 2>/dev/null || echo "/.mpart/" >> "$exclude"
rm -rf .mpart && mkdir .mpart
split -b 60000000 -d -a 1 "$model" .mpart/q
sha256sum "$model"
ls -l .mpart
