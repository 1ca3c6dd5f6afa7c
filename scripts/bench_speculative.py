#!/usr/bin/env python3
"""Speculative decoding benchmark: k2 plain, k2 with the 0.5B drafting (with and without prompt
lookup first), k2 with prompt lookup alone, and llama.cpp plain, with the 0.5B drafting and with
prompt lookup, on the same GSM8K problems in one run.

    python3 scripts/bench_speculative.py --k2 target/release/k2 --threads 2 \
        --data ../shared/data/gsm8k-dev.jsonl --problems 10 --max-tokens 128 \
        --llama-bin path/to/llama.cpp/build/bin

llama.cpp's own tools, built from the llama.cpp sources vendored in llama-cpp-python 0.3.36's
sdist (cmake -DGGML_NATIVE=ON; targets llama-speculative-simple, llama-lookup, llama-bench).
llama.cpp plain decoding is llama-bench's tg test (max-tokens tokens from an empty context:
llama-speculative-simple with drafting disabled still runs its draft model, and llama-simple
cannot set its thread count). Without --llama-bin, llama-cpp-python is timed instead (its
per-token Python overhead dominates: not a fair baseline).

Greedy, chat template, the same files. Rates are generated tokens per second of decode time
(after the prompt's prefill) summed over all problems. k2 reports its own decode time; for
llama.cpp the decode time is the wall time of generation minus a separately timed prefill.
Prints a Markdown table with ratios to k2 plain and to llama.cpp plain.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

MODELS = Path(os.environ.get("K2_MODELS_DIR", Path.home() / ".local/share/k2-tutor/models"))
TARGET = "qwen2.5-coder-1.5b-instruct-q4_k_m"
DRAFT = "qwen2.5-coder-0.5b-instruct-q4_k_m"


def rate(runs):
    return sum(r["tokens"] for r in runs) / sum(r["seconds"] for r in runs)


def k2_run(k2: str, problem: str, spec: str, max_tokens: int) -> dict:
    cmd = [k2, "generate", "-m", TARGET, "-p", problem, "--max-tokens", str(max_tokens),
           "--format", "jsonl"]
    if spec == "draft":
        cmd += ["--spec", "draft", "--draft", DRAFT]
    elif spec == "draft+lookup":
        cmd += ["--spec", "draft", "--draft", DRAFT, "--lookup-first"]
    else:
        cmd += ["--spec", spec]
    # k2 computes on every core it may use: run the script under `taskset` to give it fewer.
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    last = json.loads(out.strip().splitlines()[-1])
    return {"tokens": last["stats"]["generated_tokens"], "seconds": last["stats"]["decode_seconds"],
            "drafted": last["stats"]["drafted_tokens"], "accepted": last["stats"]["accepted_draft_tokens"],
            "ids": last["token_ids"]}


def llama_runs(problems: list[str], max_tokens: int, threads: int, lookup: bool) -> list[dict]:
    from llama_cpp import Llama
    from llama_cpp.llama_speculative import LlamaPromptLookupDecoding

    kwargs = dict(n_threads=threads, n_threads_batch=threads, n_ctx=4096, verbose=False)
    if lookup:
        kwargs["draft_model"] = LlamaPromptLookupDecoding(num_pred_tokens=8)
    llm = Llama(str(MODELS / f"{TARGET}.gguf"), **kwargs)
    results = []
    for problem in problems:
        messages = [{"role": "user", "content": problem}]
        # Prefill alone, timed: a 1-token completion of the same chat prompt.
        llm.reset()
        start = time.perf_counter()
        llm.create_chat_completion(messages, max_tokens=1, temperature=0.0)
        prefill = time.perf_counter() - start
        llm.reset()
        start = time.perf_counter()
        out = llm.create_chat_completion(messages, max_tokens=max_tokens, temperature=0.0)
        total = time.perf_counter() - start
        tokens = out["usage"]["completion_tokens"]
        results.append({"tokens": tokens, "seconds": max(total - prefill, 1e-9)})
    return results


# Qwen2.5's chat template with its default system message, as k2 renders it from the GGUF.
CHATML = ("<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
          "<|im_end|>\n<|im_start|>user\n{}<|im_end|>\n<|im_start|>assistant\n")


def llama_tool_runs(bin_dir: str, problems: list[str], max_tokens: int, threads: int, mode: str) -> list[dict]:
    import re
    if mode == "plain":
        out = subprocess.run([f"{bin_dir}/llama-bench", "-m", str(MODELS / f"{TARGET}.gguf"), "-t", str(threads),
                              "-p", "0", "-n", str(max_tokens), "-r", "3", "-o", "json"],
                             capture_output=True, text=True, check=True)
        tps = json.loads(out.stdout)[0]["avg_ts"]
        return [{"tokens": max_tokens, "seconds": max_tokens / tps}]
    results = []
    for problem in problems:
        common = ["-m", str(MODELS / f"{TARGET}.gguf"), "-p", CHATML.format(problem), "-n", str(max_tokens),
                  "-t", str(threads), "-tb", str(threads), "--temp", "0", "-c", "4096"]
        if mode == "lookup":
            cmd = [f"{bin_dir}/llama-lookup", *common]
        else:
            cmd = [f"{bin_dir}/llama-speculative-simple", *common, "-md", str(MODELS / f"{DRAFT}.gguf"),
                   "--spec-type", "draft-simple", "-td", str(threads), "-tbd", str(threads)]
        out = subprocess.run(cmd, capture_output=True, text=True)
        log = out.stdout + out.stderr
        m = re.search(r"decoded\s+(\d+) tokens in\s+([\d.]+) seconds", log)
        if not m:
            raise SystemExit(f"{cmd[0]} failed:\n{log[-2000:]}")
        drafted = re.search(r"n_drafted\s*=\s*(\d+)", log)
        accepted = re.search(r"n_accept\s*=\s*(\d+)", log)
        results.append({"tokens": int(m.group(1)), "seconds": float(m.group(2)),
                        "drafted": int(drafted.group(1)) if drafted else 0,
                        "accepted": int(accepted.group(1)) if accepted else 0})
    return results


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--k2", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--problems", type=int, default=10)
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2, help="llama.cpp threads (match k2's cores)")
    ap.add_argument("--skip-llama", action="store_true")
    ap.add_argument("--llama-bin", help="folder with llama-speculative-simple and llama-lookup")
    args = ap.parse_args()

    problems = [json.loads(l)["problem"] for l in Path(args.data).read_text().splitlines()[: args.problems]]
    rows = {}
    for spec in ["off", "draft", "draft+lookup", "ngram"]:
        runs = [k2_run(args.k2, p, spec, args.max_tokens) for p in problems]
        rows[f"k2 {spec}"] = runs
    print("k2 rows done", {k: rate(v) for k, v in rows.items()}, file=sys.stderr, flush=True)
    identical = all(a["ids"] == b["ids"] for name in rows for a, b in zip(rows["k2 off"], rows[name]))
    if args.llama_bin:
        for mode in ["plain", "draft", "lookup"]:
            rows[f"llama.cpp {mode}"] = llama_tool_runs(args.llama_bin, problems, args.max_tokens, args.threads, mode)
    elif not args.skip_llama:
        rows["llama.cpp plain"] = llama_runs(problems, args.max_tokens, args.threads, lookup=False)
        rows["llama.cpp prompt lookup"] = llama_runs(problems, args.max_tokens, args.threads, lookup=True)

    base = rate(rows["k2 off"])
    llama_base = rate(rows["llama.cpp plain"]) if "llama.cpp plain" in rows else None
    print(f"{len(problems)} problems, {args.max_tokens} tokens max, greedy, {args.threads} threads; "
          f"k2 speculative output identical to plain: {identical}")
    print("| decoder | decode tok/s | acceptance | vs k2 plain | vs llama.cpp plain |")
    print("|---|---|---|---|---|")
    for name, runs in rows.items():
        drafted = sum(r.get("drafted", 0) for r in runs)
        accepted = sum(r.get("accepted", 0) for r in runs)
        acc = f"{accepted / drafted:.0%} of {drafted}" if drafted else "-"
        vs_llama = f"{rate(runs) / llama_base:.2f}x" if llama_base else "-"
        print(f"| {name} | {rate(runs):.1f} | {acc} | {rate(runs) / base:.2f}x | {vs_llama} |")


if __name__ == "__main__":
    main()
