#!/usr/bin/env python3
"""Benchmark llama.cpp (via llama-cpp-python) prefill and decode speed on a GGUF model.

The reference numbers for the K2 engine's own benchmark: same model file, same
thread count, same prompt token ids.

    python3 scripts/llamacpp_bench.py --model PATH --threads 2 \
        --prompt-tokens 128 --gen-tokens 64 [--repeats 3] [--prompt-ids-out ids.json]

Method:
- The model is loaded with n_threads = n_threads_batch = --threads, n_batch = 512.
- The prompt is a fixed English/math/code text, repeated as needed, tokenized with
  special=False and the model's add_bos (the BOS, if any, counts as one of the
  prompt tokens) and truncated to exactly --prompt-tokens ids.
- Prefill: reset the context, then time one eval() of the whole prompt.
- Decode: after the prompt, time --gen-tokens greedy single-token evals (argmax of
  the last logits; EOS does not stop it).
- One untimed warm-up run, then --repeats timed runs; the best rate of each is reported.

Prints one JSON line:
  {"engine":"llama.cpp","model":...,"threads":...,"prompt_tokens":...,
   "prefill_tokens_per_s":...,"decode_tokens_per_s":...,"gen_tokens":..., ...}
--prompt-ids-out FILE writes {"model","add_bos","prompt_tokens","ids"} as JSON so the
engine can be benchmarked on exactly the same ids.

Needs llama-cpp-python (tested with 0.3.36; see tests/golden/make_goldens.py for the install).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import llama_cpp
from llama_cpp import Llama

BENCH_TEXT = """\
Chapter 3. Linear equations in one variable.

An equation is a statement that two expressions are equal. To solve 3x + 7 = 22 we \
subtract 7 from both sides, which gives 3x = 15, and divide by 3, so x = 5. Checking \
the answer is always worth the few seconds it takes: 3 * 5 + 7 = 22, as required.

Word problems follow the same pattern once the unknown is named. A cinema sells adult \
tickets for $12 and child tickets for $8. One evening it sold 150 tickets for $1,560 \
in total. If a is the number of adult tickets, then 12a + 8(150 - a) = 1560, so \
4a = 360 and a = 90: ninety adults and sixty children.

In LaTeX the solution reads $12a + 8(150 - a) = 1560 \\Rightarrow a = \\frac{360}{4} = 90$, \
and the final answer is written $\\boxed{90}$.

A short program can check many such problems at once:

def solve_linear(a, b, c):
    \"\"\"Solve a*x + b = c for x.\"\"\"
    if a == 0:
        raise ValueError("no unique solution")
    return (c - b) / a

for a, b, c in [(3, 7, 22), (4, 0, 360), (2.5, -1, 9)]:
    print(a, b, c, solve_linear(a, b, c))

Exercises. (1) Solve 5x - 9 = 2x + 12. (2) A rectangle's perimeter is 46 cm and its \
length is 5 cm more than its width; find its area. (3) Two trains leave towns 300 km \
apart at the same time and travel towards each other at 70 km/h and 80 km/h. When do \
they meet, and how far from the first town?
"""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description="llama.cpp prefill/decode benchmark")
    ap.add_argument("--model", required=True, type=Path, help="path to a .gguf file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt-tokens", type=int, default=128)
    ap.add_argument("--gen-tokens", type=int, default=64)
    ap.add_argument("--repeats", type=int, default=3, help="timed runs after one warm-up")
    ap.add_argument("--n-batch", type=int, default=512)
    ap.add_argument("--prompt-ids-out", type=Path, help="write the prompt token ids as JSON")
    args = ap.parse_args(argv)
    if args.prompt_tokens < 1 or args.gen_tokens < 1 or args.repeats < 1:
        ap.error("--prompt-tokens, --gen-tokens and --repeats must be >= 1")
    return args


def load_model(path: Path, threads: int, n_ctx: int, n_batch: int) -> Llama:
    return Llama(
        model_path=str(path),
        n_ctx=n_ctx,
        n_batch=n_batch,
        n_threads=threads,
        n_threads_batch=threads,
        seed=0,
        verbose=False,
    )


def model_add_bos(llm: Llama) -> bool:
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    return bool(llama_cpp.llama_vocab_get_add_bos(vocab))


def last_logits(llm: Llama) -> np.ndarray:
    """Logits of the last evaluated token, read from the llama.cpp context.

    (Without logits_all, llama-cpp-python 0.3.x no longer copies logits into
    llm.scores, so they are read with llama_get_logits_ith(ctx, -1).)
    """
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))


def build_prompt(llm: Llama, n_tokens: int) -> list[int]:
    """Exactly n_tokens ids of the fixed text (repeated as needed), with the model's BOS."""
    add_bos = model_add_bos(llm)
    text = BENCH_TEXT
    while True:
        ids = llm.tokenize(text.encode("utf-8"), add_bos=add_bos, special=False)
        if len(ids) >= n_tokens:
            return ids[:n_tokens]
        text += "\n" + BENCH_TEXT


def run_once(llm: Llama, prompt: list[int], gen_tokens: int) -> tuple[float, float]:
    """Returns (prefill seconds, decode seconds) of one prompt + greedy generation."""
    llm.reset()
    t0 = time.perf_counter()
    llm.eval(prompt)
    t1 = time.perf_counter()
    for _ in range(gen_tokens):
        tok = int(np.argmax(last_logits(llm)))
        llm.eval([tok])
    t2 = time.perf_counter()
    return t1 - t0, t2 - t1


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    if not args.model.is_file():
        sys.exit(f"model not found: {args.model}")
    n_ctx = args.prompt_tokens + args.gen_tokens + 8
    llm = load_model(args.model, args.threads, n_ctx, args.n_batch)
    prompt = build_prompt(llm, args.prompt_tokens)

    if args.prompt_ids_out:
        args.prompt_ids_out.write_text(
            json.dumps(
                {
                    "model": args.model.name,
                    "add_bos": model_add_bos(llm),
                    "prompt_tokens": len(prompt),
                    "ids": prompt,
                }
            )
            + "\n"
        )

    run_once(llm, prompt, args.gen_tokens)  # warm-up
    prefill_s, decode_s = [], []
    for _ in range(args.repeats):
        p, d = run_once(llm, prompt, args.gen_tokens)
        prefill_s.append(p)
        decode_s.append(d)

    result = {
        "engine": "llama.cpp",
        "model": args.model.name,
        "threads": args.threads,
        "prompt_tokens": len(prompt),
        "prefill_tokens_per_s": round(len(prompt) / min(prefill_s), 2),
        "decode_tokens_per_s": round(args.gen_tokens / min(decode_s), 2),
        "gen_tokens": args.gen_tokens,
        "repeats": args.repeats,
        "n_batch": args.n_batch,
        "llama_cpp_python": llama_cpp.__version__,
    }
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
