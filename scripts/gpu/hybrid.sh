#!/usr/bin/env bash
# Runs on the GPU machine (device tool), from the repository root: Qwen3.5 (the hybrid) on
# CUDA (BENCHMARKS.md, "Qwen3.5 on CUDA"). Carries .device/hybrid_check.xz
# (scripts/gpu/build.sh), .mpart/llama-cpp-src.tar.xz and .mpart/qwen25-tokenizer.gguf (see
# serve.sh). In order:
# 1. hybrid_check on CUDA: tests/fixtures/qwen35 against transformers' and llama.cpp's logits,
#    and a rewound speculative pass against never having fed its dropped tokens;
# 2. the Qwen3.5-4B-shaped random Q4_K_M (scripts/fixtures/random_shape_model.py) with
#    llama.cpp's quantizer (carried as .device/llama-quantize, or built here for the CPU),
#    kept in /root/k2 for later calls;
# 3. hybrid_check bench on that file: prefill, batch-1 decoding and its fraction of the
#    memory floor (copy bandwidth measured in the same process); then, once serve.sh prepare
#    has built it, llama.cpp's llama-bench with CUDA on the same file (prefill 512, decoding
#    256 tokens), the baseline in the same call.
# Logs and JSON go to $OUT.
set -uo pipefail
OUT=${OUT:-/tmp/k2-gpu-out}
K=/root/k2
LLAMA=/root/llama.cpp
MODEL=$K/qwen3.5-4b-shape-random-q4_k_m.gguf
mkdir -p "$OUT" "$K"
status=0
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
xz -dc .device/hybrid_check.xz >"$K/hybrid_check" && chmod +x "$K/hybrid_check" || exit 1
"$K/hybrid_check" cuda tests/fixtures/qwen35 2>&1 | tee "$OUT/hybrid-check.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
if [ ! -s "$MODEL" ]; then
    # A carried quantizer (built on the CPU machine, static, x86-64-v3) saves its build here.
    QUANTIZE=.device/llama-quantize
    export LD_LIBRARY_PATH=$PWD/.device${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}  # its libgomp
    if ! "$QUANTIZE" 2>&1 | grep -qi usage; then
        [ -d "$LLAMA" ] || tar xJf .mpart/llama-cpp-src.tar.xz -C /root || exit 1
        (cd "$LLAMA" &&
            cmake -B build-cpu -DGGML_CUDA=OFF -DGGML_NATIVE=ON -DLLAMA_BUILD_TESTS=OFF \
                -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=OFF -DLLAMA_BUILD_APP=OFF \
                -DLLAMA_CURL=OFF -DLLAMA_BUILD_UI=OFF -DCMAKE_BUILD_TYPE=Release &&
            cmake --build build-cpu -j 16 --target llama-quantize) >"$OUT/quantize-build.log" 2>&1 \
            || { tail -20 "$OUT/quantize-build.log"; exit 1; }
        QUANTIZE=$LLAMA/build-cpu/bin/llama-quantize
    fi
    mkdir -p /root/gguf-py && tar xJf .mpart/llama-cpp-src.tar.xz -C /root/gguf-py llama.cpp/gguf-py \
        || exit 1
    PYTHONPATH=/root/gguf-py/llama.cpp/gguf-py python3 scripts/fixtures/random_shape_model.py \
        qwen3.5-4b "$K" .mpart/qwen25-tokenizer.gguf "$QUANTIZE" >"$OUT/model.log" 2>&1 \
        || { tail -20 "$OUT/model.log"; exit 1; }
fi
"$K/hybrid_check" bench cuda "$MODEL" --out "$OUT/bench-qwen35-4b.json" 2>&1 \
    | tee "$OUT/bench-qwen35-4b.log"
[ "${PIPESTATUS[0]}" -eq 0 ] || status=1
if [ -x "$LLAMA/build/bin/llama-bench" ]; then
    "$LLAMA/build/bin/llama-bench" -m "$MODEL" -ngl 99 -p 512 -n 256 -r 3 -o md 2>&1 \
        | tee "$OUT/llama-bench-qwen35-4b.md"
fi
exit $status
