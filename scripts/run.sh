#!/usr/bin/env bash
# Quick start: fetch the default model (first time only), build `k2`, and solve a problem,
# streaming the solution. Pass your own problem as the first argument.
set -euo pipefail
cd "$(dirname "$0")/.."

PROBLEM="${1:-Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. How many clips did Natalia sell altogether in April and May?}"
MODEL="${K2_MODEL:-qwen2.5-coder-1.5b-instruct-q4_k_m}"

scripts/fetch-test-models.sh qwen-1.5b
cargo build --release -p k2
target_dir="${CARGO_TARGET_DIR:-target}"
"$target_dir/release/k2" solve "$PROBLEM" --model "$MODEL"
