#!/usr/bin/env bash
# Runs on the GPU machine (device tool), from the repository root, with the binary that
# scripts/gpu/build.sh put in .device/. Steps, any subset, in order:
#   check            CUDA vs CPU logits and the CUDA decoding paths (small geometries)
#   arch             tests/fixtures/arch/ on CUDA against their transformers/llama.cpp logits
#   q4_k_m q8_0 bf16 the K2-Think 32B geometry with random weights in that format
#                    (GEOMETRY=qwen2.5-1.5b: the published 1.5B solver's, 28 layers)
#   transformers     the same geometry in bf16 through PyTorch transformers (baseline)
#   profile-FORMAT   one op-by-op decoding step (PROFILE_LAYERS layers, default 1; 64 cached
#                    positions) under Nsight Compute: each kernel's time and bytes
#                    (scripts/gpu/ncu_table.py); GEOMETRY as above
# Logs and JSON go to $OUT (the device tool brings them back).
set -uo pipefail
OUT=${OUT:-/tmp/k2-gpu-out}
mkdir -p "$OUT"
BIN=${DEVICE_BENCH:-.device/device_bench}
geometry=(${GEOMETRY:+--geometry "$GEOMETRY"})
tag=${GEOMETRY:+$GEOMETRY-}
status=0
nvidia-smi --query-gpu=name,memory.total,driver_version,clocks.max.sm --format=csv,noheader \
    | tee -a "$OUT/gpu.txt"
for step in "$@"; do
    echo "== $step"
    case "$step" in
        check) "$BIN" check --out "$OUT/check.json" 2>&1 | tee "$OUT/check.log" ;;
        arch) "$BIN" arch --out "$OUT/arch.json" 2>&1 | tee "$OUT/arch.log" ;;
        profile-*) /usr/local/cuda/bin/ncu --profile-from-start off --clock-control none \
                --metrics gpu__time_duration.sum,dram__bytes_read.sum --csv \
                --log-file "$OUT/ncu-$tag${step#profile-}.csv" \
                "$BIN" profile "${geometry[@]}" --format "${step#profile-}" \
                --layers "${PROFILE_LAYERS:-1}" --context 64 >/dev/null \
            && python3 scripts/gpu/ncu_table.py "$OUT/ncu-$tag${step#profile-}.csv" \
                | tee "$OUT/profile-$tag${step#profile-}.txt" ;;
        transformers) PYTHONUNBUFFERED=1 python3 scripts/gpu/transformers_baseline.py \
            --out "$OUT/transformers.json" 2>&1 | tee "$OUT/transformers.log" ;;
        *) "$BIN" bench "${geometry[@]}" --format "$step" --out "$OUT/bench-$tag$step.json" 2>&1 \
            | tee "$OUT/bench-$tag$step.log" ;;
    esac
    [ "${PIPESTATUS[0]}" -eq 0 ] || status=1
done
exit $status
