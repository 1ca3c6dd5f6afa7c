#!/usr/bin/env bash
# Builds, for the GPU machine (H100/H200, sm_90), the CUDA device benchmark
# (engine/examples/device_bench.rs), the batching probe (batching_probe.rs), the speculation
# benchmark (bench_spec_bon.rs) and the Qwen3.5 check (hybrid_check.rs), these two
# xz-compressed, and, with `--cli`, the `k2` command line; copies them stripped into .device/
# (git-ignored) for the device tool's `carry`.
# Usage: scripts/gpu/build.sh [--cli]
set -euo pipefail
cd "$(dirname "$0")/../.."
CUDA=$(scripts/gpu/cuda-toolchain.sh)
export CUDA_HOME=$CUDA CUDA_PATH=$CUDA CUDA_ROOT=$CUDA PATH=$CUDA/bin:$PATH
export LIBRARY_PATH=$CUDA/stubs:$CUDA/lib${LIBRARY_PATH:+:$LIBRARY_PATH}
export CUDA_COMPUTE_CAP=90 CUDARC_CUDA_VERSION=13000
# The GPU machine's CPU is not this one: AVX2 (x86-64-v3) runs on both.
export RUSTFLAGS="-C target-cpu=x86-64-v3"
export CARGO_TARGET_DIR=${CUDA_TARGET_DIR:-$HOME/.cache/k2-tutor/target-cuda}
cargo build --release --features cuda -p k2-engine --example device_bench --example batching_probe \
    --example bench_spec_bon --example hybrid_check
mkdir -p .device
for example in device_bench batching_probe; do
    strip -o ".device/$example" "$CARGO_TARGET_DIR/release/examples/$example"
done
# Compressed: they travel beside a model part or other files.
for example in bench_spec_bon hybrid_check; do
    strip -o ".device/$example" "$CARGO_TARGET_DIR/release/examples/$example"
    xz -f -T2 ".device/$example"
done
if [ "${1:-}" = "--cli" ]; then
    cargo build --release --features cuda -p k2
    strip -o .device/k2 "$CARGO_TARGET_DIR/release/k2"
    xz -f -T2 .device/k2
fi
ls -l .device/
