#!/usr/bin/env bash
# Splits a model file into parts that fit the device tool's 64 MiB per call, in .mpart/
# (git-ignored through .git/info/exclude), named NAME00, NAME01... (NAME defaults to q). Each
# part then travels in its own call (`carry: [".mpart/q00"]`, command `cp .mpart/q00 /root/k2/`),
# one right after another so the machine stays warm, and the last call joins them, checks the
# SHA-256 and runs e.g. `/root/k2/device_bench real --model /root/k2/MODEL.gguf` or `k2 eval`
# (the binaries travel first, in .device/, and are copied to /root/k2 the same way).
# Usage: scripts/gpu/split-model.sh MODEL.gguf [NAME]
set -euo pipefail
cd "$(dirname "$0")/../.."
model=$1
name=${2:-q}
exclude=$(git rev-parse --git-common-dir)/info/exclude
mkdir -p "$(dirname "$exclude")"
grep -qx "/.mpart/" "$exclude" 2>/dev/null || echo "/.mpart/" >> "$exclude"
mkdir -p .mpart
rm -f .mpart/"$name"[0-9][0-9]
# A call carries the working tree too (about 24 MB of tracked files) within its 64 MiB.
split -b "${PART_BYTES:-36000000}" -d -a 2 "$model" .mpart/"$name"
sha256sum "$model"
ls -l .mpart/"$name"[0-9][0-9]
