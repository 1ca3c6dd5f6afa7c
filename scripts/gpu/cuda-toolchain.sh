#!/usr/bin/env bash
# Prepares CUDA 13.0 for building `--features cuda` on a machine with no GPU and no CUDA
# install: nvcc, headers and libraries come from NVIDIA's PyPI wheels; the driver library
# (never on a registry) is a link-only stub whose real counterpart the GPU machine loads.
# Idempotent; prints the CUDA root. See ../shared/TOOLCHAIN.md for the background.
set -euo pipefail
CUDA=${CUDA:-$HOME/.cache/k2-tutor/cuda-13.0}
if [ -x "$CUDA/bin/nvcc" ] && [ -f "$CUDA/stubs/libcuda.so" ]; then echo "$CUDA"; exit 0; fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.11 \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 -d "$work/wheels" \
  nvidia-cuda-nvcc==13.0.88 nvidia-nvvm==13.0.88 nvidia-cuda-crt==13.0.88 \
  nvidia-cuda-runtime==13.0.96 nvidia-cuda-cccl==13.0.85 nvidia-cuda-nvrtc==13.0.88 \
  nvidia-curand==10.4.0.35 nvidia-cublas==13.0.2.14 >&2
for w in "$work"/wheels/*.whl; do unzip -q -o "$w" -d "$work/x"; done
rm -rf "$CUDA"; mkdir -p "$(dirname "$CUDA")"
cp -a "$work/x/nvidia/cu13" "$CUDA"
ln -sfn lib "$CUDA/lib64"
(cd "$CUDA/lib" && for f in libcudart.so.13 libnvrtc.so.13 libcublas.so.13 libcublasLt.so.13 libcurand.so.10; do
  ln -sf "$f" "${f%%.so*}.so"; done)
# Link-only libcuda: every cu* entry point cudarc declares, each failing if ever called.
sys=$(ls -d "$HOME"/.cargo/registry/src/*/cudarc-*/src/driver/sys | sort -V | tail -1)
mkdir -p "$CUDA/stubs"
grep -rhoE '\bcu[A-Z][A-Za-z0-9_]*\s*\(' "$sys" | sed -E 's/\s*\($//' | sort -u \
  | awk '{print "int " $1 "(void){return 999;}"}' > "$work/stub.c"
gcc -shared -fPIC -Wl,-soname,libcuda.so.1 -o "$CUDA/stubs/libcuda.so" "$work/stub.c"
ln -sf libcuda.so "$CUDA/stubs/libcuda.so.1"
echo "$CUDA"
