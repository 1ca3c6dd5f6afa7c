#!/usr/bin/env bash
# Fuzzes the readers of untrusted input with libFuzzer (cargo-fuzz, nightly): each target for
# SECONDS (default 600), one after the other, or only TARGET. Not run in CI: crashers found go
# to fuzz/artifacts/<target>/; commit them under fuzz/regressions/<target>/ and the ordinary
# `cargo test` replays them (engine/fuzzing/tests/regressions.rs).
#
#   scripts/fuzz.sh                 every target, 10 minutes each
#   scripts/fuzz.sh sse 60          one target for a minute
#   FUZZ_JOBS=4 scripts/fuzz.sh     four fuzzing processes per target (libFuzzer's -fork)
#
# Installs what it needs: the nightly toolchain and cargo-fuzz. The executions of each target
# are printed at its end ("stat::number_of_executed_units").
set -euo pipefail
cd "$(dirname "$0")/.."

TARGETS=(gguf hf_config tokenizer chat_template render sse answer store_payload)
ONLY="${1:-}"
SECONDS_EACH="${2:-600}"
JOBS="${FUZZ_JOBS:-1}"

if [ -n "$ONLY" ]; then
    if [[ ! " ${TARGETS[*]} " =~ " $ONLY " ]]; then
        echo "unknown target $ONLY; targets: ${TARGETS[*]}" >&2
        exit 2
    fi
    TARGETS=("$ONLY")
fi

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked

# Overflow checks on (-a): an arithmetic overflow is a panic here, as it would be in a debug
# build, instead of a silently wrong size. No sanitizer: the code is safe Rust; what is
# fuzzed for is panics, aborts, hangs and memory blow-ups, and -s none runs several times
# faster. FUZZ_TARGET_DIR keeps the (large) build elsewhere than fuzz/target.
BUILD=(-a -s none)
[ -n "${FUZZ_TARGET_DIR:-}" ] && BUILD+=(--target-dir "$FUZZ_TARGET_DIR")
cargo +nightly fuzz build "${BUILD[@]}"

# First seeds of the targets that read files: the real ones the tests use.
seed() {
    local target="$1"
    local corpus="fuzz/corpus/$target"
    mkdir -p "$corpus"
    [ -n "$(ls -A "$corpus")" ] && return
    case "$target" in
        gguf)
            cp tests/fixtures/tokenizer/k2-horizon/vocab.gguf "$corpus/vocab.gguf"
            cp tests/fixtures/arch/qwen3-tied/model-q4_0.gguf "$corpus/qwen3-q4_0.gguf" ;;
        hf_config)
            for f in tests/fixtures/arch/*/hf/config.json; do
                cp "$f" "$corpus/$(basename "$(dirname "$(dirname "$f")")").json"
            done ;;
        chat_template)
            # Mode byte 0: the template's source, then BOS and EOS texts, NUL-separated.
            for f in engine/tests/fixtures/chat_templates/*.jinja; do
                { printf '\0'; cat "$f"; printf '\0<s>\0</s>'; } > "$corpus/$(basename "$f")"
            done
            # Odd mode bytes: a real template rendering the conversation that follows.
            printf '\001Hi <|im_end|>\0What is 2+2?\0<think>4</think>\0user' > "$corpus/conversation" ;;
    esac
}

status=0
for target in "${TARGETS[@]}"; do
    seed "$target"
    mkdir -p "fuzz/regressions/$target"
    echo "== $target: $SECONDS_EACH s" >&2
    # A hang is an input that takes over 10 s; an allocation over 2 GiB or a process over
    # 4 GiB is a crash ("out-of-memory"), as either would take a user's machine down.
    fork=()
    [ "$JOBS" -gt 1 ] && fork=(-fork="$JOBS")
    if ! cargo +nightly fuzz run "${BUILD[@]}" "$target" "fuzz/corpus/$target" \
        "fuzz/regressions/$target" -- \
        -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=4096 \
        -malloc_limit_mb=2048 -print_final_stats=1 "${fork[@]}"; then
        echo "== $target found a crasher: see fuzz/artifacts/$target/" >&2
        status=1
    fi
done
exit "$status"
