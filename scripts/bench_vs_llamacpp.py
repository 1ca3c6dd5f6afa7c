#!/usr/bin/env python3
"""Prefill and decode speed of `k2` against llama.cpp on the same GGUF files, same thread
count and the same prompt token ids, measured in one run and reported as ratios.

    python3 scripts/bench_vs_llamacpp.py [--threads 2] [--prompt-tokens 128] [--gen-tokens 64]
        [--rounds 2] [--k2 PATH] [MODEL_FILE ...]

Each round runs llama.cpp (scripts/llamacpp_bench.py, llama-cpp-python) and then `k2 bench`
on the same prompt ids, alternating, and keeps each engine's best; machines are noisy, so
only the ratio measured side by side means anything. Prints a Markdown table (paste it into
BENCHMARKS.md with the command line).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_MODELS = [
    "smollm2-135m-instruct-q4_1.gguf",
    "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
]


def models_dir() -> Path:
    if os.environ.get("K2_MODELS_DIR"):
        return Path(os.environ["K2_MODELS_DIR"])
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local/share")
    return Path(data) / "k2-tutor/models"


def run_json(cmd: list[str]) -> dict:
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def bench_model(path: Path, args: argparse.Namespace) -> dict:
    best = {"llama": {}, "k2": {}}
    with tempfile.TemporaryDirectory() as tmp:
        ids_file = Path(tmp) / "ids.json"
        for _ in range(args.rounds):
            ref = run_json([
                sys.executable, str(ROOT / "scripts/llamacpp_bench.py"), "--model", str(path),
                "--threads", str(args.threads), "--prompt-tokens", str(args.prompt_tokens),
                "--gen-tokens", str(args.gen_tokens), "--prompt-ids-out", str(ids_file),
            ])
            ours = run_json([
                args.k2, "bench", "--model", str(path), "--device", "cpu",
                "--threads", str(args.threads), "--prompt-ids", str(ids_file),
                "--gen-tokens", str(args.gen_tokens),
            ])
            for engine, r in (("llama", ref), ("k2", ours)):
                for key in ("prefill_tokens_per_s", "decode_tokens_per_s"):
                    best[engine][key] = max(best[engine].get(key, 0.0), r[key])
            best["k2"]["ceiling"] = ours.get("decode_ceiling_tokens_per_s")
            best["k2"]["bandwidth"] = ours.get("read_bandwidth_gb_s")
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="*", default=DEFAULT_MODELS)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--rounds", type=int, default=2)
    target = os.environ.get("CARGO_TARGET_DIR", str(ROOT / "target"))
    ap.add_argument("--k2", default=str(Path(target) / "release/k2"))
    args = ap.parse_args()

    print(f"| model | prefill llama.cpp | prefill k2 | ratio | decode llama.cpp | decode k2 | ratio | k2 decode / bandwidth ceiling |")
    print("|---|---|---|---|---|---|---|---|")
    for name in args.models:
        path = Path(name) if Path(name).exists() else models_dir() / name
        b = bench_model(path, args)
        lp, kp = b["llama"]["prefill_tokens_per_s"], b["k2"]["prefill_tokens_per_s"]
        ld, kd = b["llama"]["decode_tokens_per_s"], b["k2"]["decode_tokens_per_s"]
        ceiling = b["k2"]["ceiling"]
        frac = f"{kd / ceiling:.0%} of {ceiling:.0f} tok/s ({b['k2']['bandwidth']:.0f} GB/s)" if ceiling else "n/a"
        print(f"| {path.name} | {lp:.1f} | {kp:.1f} | **{kp / lp:.2f}x** | {ld:.1f} | {kd:.1f} | **{kd / ld:.2f}x** | {frac} |", flush=True)


if __name__ == "__main__":
    main()
