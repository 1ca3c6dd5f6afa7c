#!/usr/bin/env bash
# Runs on the GPU machine (device tool), from the repository root: `k2 serve` under a classroom's
# load against llama.cpp's own server built with CUDA, same GGUF, same clients, same run
# (scripts/bench_serve.py; BENCHMARKS.md, "k2 serve on the GPU under a classroom's load").
#
#   scripts/gpu/serve.sh prepare
#       First call of the lease. Carries .mpart/llama-cpp-src.tar.xz (llama-cpp-python 0.3.36's
#       vendored llama.cpp, docs/models/tests left out), .mpart/qwen25-tokenizer.gguf (a
#       tensor-less GGUF with Qwen2.5's tokenizer and chat template), .device/k2.xz
#       (scripts/gpu/build.sh --cli) and .mpart/gsm8k-dev.jsonl, kept in /root/k2. In the background (it goes
#       on while later calls carry the model parts): builds llama-server, llama-quantize and
#       llama-bench for sm_90, then writes the Qwen2.5-7B-shaped random Q4_K_M model with them
#       (scripts/fixtures/random_shape_model.py). Log: /root/k2/prepare.log.
#   scripts/gpu/serve.sh run MODEL.gguf NAME [bench_serve.py options...]
#       Both servers on MODEL in turn; the table and JSON go to $OUT/serve-NAME.{md,json}.
set -uo pipefail
OUT=${OUT:-/tmp/k2-gpu-out}
K=/root/k2
LLAMA=/root/llama.cpp
mkdir -p "$OUT" "$K"
case "${1:-}" in
prepare)
    rm -rf "$LLAMA" && mkdir -p "$LLAMA" && tar xJf .mpart/llama-cpp-src.tar.xz -C /root || exit 1
    cp .mpart/qwen25-tokenizer.gguf .mpart/gsm8k-dev.jsonl scripts/fixtures/random_shape_model.py \
        "$K/" && xz -dc .device/k2.xz >"$K/k2" && chmod +x "$K/k2" || exit 1
    setsid bash -c "
        set -x
        cd $LLAMA &&
        cmake -B build -DGGML_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 -DGGML_NATIVE=ON \
            -DLLAMA_BUILD_TESTS=OFF -DLLAMA_BUILD_EXAMPLES=OFF -DLLAMA_BUILD_SERVER=ON \
            -DLLAMA_BUILD_APP=OFF -DLLAMA_CURL=OFF -DLLAMA_USE_PREBUILT_UI=OFF \
            -DLLAMA_BUILD_UI=OFF -DCMAKE_BUILD_TYPE=Release &&
        cmake --build build -j 16 --target llama-server llama-quantize llama-bench &&
        echo BUILT &&
        PYTHONPATH=$LLAMA/gguf-py python3 $K/random_shape_model.py qwen2.5-7b $K \
            $K/qwen25-tokenizer.gguf $LLAMA/build/bin/llama-quantize &&
        echo PREPARED
    " >"$K/prepare.log" 2>&1 </dev/null &
    echo "prepare started in the background: $K/prepare.log"
    ;;
run)
    model=$2
    name=$3
    shift 3
    tail -3 "$K/prepare.log"
    [ -x "$LLAMA/build/bin/llama-server" ] || { echo "llama-server not built"; exit 1; }
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$OUT/gpu.txt"
    PYTHONUNBUFFERED=1 python3 scripts/bench_serve.py --k2 "$K/k2" --model "$model" \
        --llama-server "$LLAMA/build/bin/llama-server" --data "$K/gsm8k-dev.jsonl" \
        --threads 8 --server-logs "$OUT" --out "$OUT/serve-$name.json" "$@" 2>"$OUT/serve-$name.log" \
        | tee "$OUT/serve-$name.md"
    ;;
*)
    echo "usage: scripts/gpu/serve.sh prepare | run MODEL.gguf NAME [bench_serve.py options]"
    exit 2
    ;;
esac
