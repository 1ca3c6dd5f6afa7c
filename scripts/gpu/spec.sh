#!/usr/bin/env bash
# Runs on the GPU machine (device tool), from the repository root: speculative decoding with
# real models on CUDA (BENCHMARKS.md, "Speculation on the GPU with real models").
#
# Before it, in calls one right after another (the machine stays warm 30 s after each):
# each part of `scripts/gpu/split-model.sh TARGET.gguf t` and `... DRAFT.gguf d` carried in
# its own call and copied to /root/k2/ (`mkdir -p /root/k2 && cp .mpart/t00 /root/k2/`).
# This call carries .device/ (bench_spec_bon.xz, built by scripts/gpu/build.sh) and
# the problems file, joins the parts, checks their SHA-256 and runs, each decoder back to back
# on each problem (engine/examples/bench_spec_bon.rs): greedy at batch 1, sampled best-of-3,
# and long greedy traces. Tables and logs go to $OUT.
# Usage: scripts/gpu/spec.sh TARGET_SHA256 DRAFT_SHA256 PROBLEMS.jsonl (DRAFT_SHA256 `-`: no
# draft model carried, the draft decoder left out)
set -uo pipefail
OUT=${OUT:-/tmp/k2-gpu-out}
K=/root/k2
DATA=$3
mkdir -p "$OUT" "$K"
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader \
    | tee "$OUT/gpu.txt"
# The memory floor's bandwidth, measured in the same run (bytes read + written per second).
python3 -c "
import torch, time
a = torch.empty(1 << 30, dtype=torch.uint8, device='cuda'); b = torch.empty_like(a)
for _ in range(3): b.copy_(a)
torch.cuda.synchronize(); t = time.perf_counter()
for _ in range(20): b.copy_(a)
torch.cuda.synchronize(); s = (time.perf_counter() - t) / 20
print(f'copy bandwidth (read + write): {2 * a.numel() / s / 1e9:.0f} GB/s')" | tee "$OUT/bandwidth.txt"
xz -dc .device/bench_spec_bon.xz > "$K/bench_spec_bon" && chmod +x "$K/bench_spec_bon" || exit 1
cat "$K"/t[0-9][0-9] > "$K/target.gguf" && echo "$1  $K/target.gguf" | sha256sum -c || exit 1
decoders=off,suffix,ngram
draft=()
if [ "$2" != - ]; then
    cat "$K"/d[0-9][0-9] > "$K/draft.gguf" && echo "$2  $K/draft.gguf" | sha256sum -c || exit 1
    decoders=$decoders,draft
    draft=(--draft "$K/draft.gguf")
fi
bench() {
    local name=$1
    shift
    "$K/bench_spec_bon" "$K/target.gguf" --device cuda --data "$DATA" "${draft[@]}" \
        --decoders "$decoders" "$@" 2>"$OUT/$name.log" | tee "$OUT/$name.md"
}
status=0
bench greedy-batch1 --problems 10 --n 1 --temperature 0 --max-tokens 256 || status=1
bench sampled-best-of-3 --problems 10 --n 3 --temperature 1.0 --max-tokens 256 || status=1
bench greedy-long --problems 3 --n 1 --temperature 0 --max-tokens 1024 || status=1
exit $status
