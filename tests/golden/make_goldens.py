#!/usr/bin/env python3
"""Regenerate the llama.cpp reference goldens in tests/golden/.

The K2 engine's tokenizer, forward pass and greedy decoding are checked against
llama.cpp (through llama-cpp-python) on the three packaged test models of
shared/MODELS.md. Running llama.cpp in CI would mean building it every time, so
its outputs are committed here as JSON and this script regenerates them.

How to regenerate
-----------------
1. Fetch the models (idempotent):      scripts/fetch-test-models.sh
2. Install the reference (builds llama.cpp from source, several minutes):
       CMAKE_ARGS="-DGGML_NATIVE=ON" python3 -m pip install llama-cpp-python==0.3.36
3. Run:                                python3 tests/golden/make_goldens.py
   Options: --models-dir DIR (default: $K2_MODELS_DIR, else
   ${XDG_DATA_HOME:-~/.local/share}/k2-tutor/models), --out DIR (default: this
   directory), --only tokenizer|greedy|teacher (repeatable).

The committed files were produced with llama-cpp-python 0.3.36 (CPU, 2 threads,
GGML_NATIVE=ON, x86_64). Token ids are exact and must match bit for bit. Logits
depend on the CPU kernels, so compare them with a tolerance (top-5 logits are
rounded to 3 decimals for that purpose).

Files written (every file names its model file, the model's sha256, the
llama-cpp-python version and the settings used):
- tokenizer-qwen.json, tokenizer-smollm.json
    cases[i] = {text, ids_special, ids_plain}:
    ids_special = llm.tokenize(text.encode(), add_bos=False, special=True)
    ids_plain   = the same with special=False (special-token text is plain text).
- greedy-{qwen-0.5b,qwen-1.5b,smollm2}.json
    Raw prompts (no chat template), tokenized with special=False and the model's
    add_bos; then 32 greedy steps (argmax of the last logits; llama.cpp picks the
    first index on ties, like numpy.argmax), decoding ONE token at a time after one
    batched eval of the prompt. Generation does not stop at EOS (the forward pass is
    still well defined); `eos_at` lists the step indices where an EOG token was
    produced and `stopped_at_eos` is always false.
- teacher-forced-{qwen-0.5b,qwen-1.5b,smollm2}.json
    One mixed text (math with LaTeX, prose, code), tokenized with special=False and
    the model's add_bos, truncated to exactly 1024 ids, evaluated once with
    logits_all=True. Position i holds the prediction for token i+1:
    top1[i] (argmax id), top5_ids[i], top5_logits[i] (descending, 3 decimals).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time
from pathlib import Path

import numpy as np
import llama_cpp
from llama_cpp import Llama

HERE = Path(__file__).resolve().parent
SEED = 1234
N_THREADS = 2

MODELS = {
    "qwen-0.5b": "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
    "qwen-1.5b": "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
    "smollm2": "smollm2-135m-instruct-q4_1.gguf",
}
# tokenizer goldens: output name -> model key (0.5B and 1.5B share one tokenizer)
TOKENIZER_FILES = {"tokenizer-qwen.json": "qwen-0.5b", "tokenizer-smollm.json": "smollm2"}

# --------------------------------------------------------------------------------------
# Corpora (hand-written for this project)
# --------------------------------------------------------------------------------------

CHATML_MATH = (
    "<|im_start|>system\nYou are a patient math tutor. Reason step by step and put the "
    "final answer in \\boxed{}.<|im_end|>\n"
    "<|im_start|>user\nA train leaves the station at 3:15 pm and travels 180 km at "
    "72 km/h. At what time does it arrive?<|im_end|>\n"
    "<|im_start|>assistant\n"
)

TOKENIZER_CORPUS: list[str] = [
    # trivial
    "",
    " ",
    "a",
    "Hello world",
    "Hello, world!",
    " leading space",
    "trailing space ",
    # digits and numbers
    "123456789012",
    "3.14159",
    "1,000,000",
    "-42 and +7 and 0.001 and 1e-9 and 6.022e23",
    "In 2024, 17 of 250 students (6.8%) scored 99/100.",
    "x1 x22 x333 v2.0.1 3rd 21st",
    # LaTeX / math
    "\\frac{a}{b}",
    "\\sqrt{2}",
    "$x^2+y^2=z^2$",
    "\\boxed{42}",
    "Let $f(x) = \\int_0^x e^{-t^2}\\,dt$; then $f'(x) = e^{-x^2}$.",
    "\\begin{align} a &= b + c \\\\ d &\\le \\sum_{i=1}^{n} i^2 \\end{align}",
    "αβγ ∑∫√∞ ≤ ≥ ≠ ± × ÷ → x² + y³ = ½",
    # code
    'fn main() {\n    let v: Vec<u32> = (1..=10).collect();\n    println!("{:?}", v);\n}\n',
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "class A:\n\tdef f(self):\n\t\treturn {'k': [1, 2]}\n",
    "for (int i = 0; i < n; ++i) { sum += a[i] * b[i]; }",
    "#include <stdio.h>\nint main(void){printf(\"%d\\n\", 42);return 0;}",
    "SELECT name, COUNT(*) FROM users WHERE age >= 18 GROUP BY name;",
    # scripts
    "中文",
    "我们今天学习二次方程的解法。",
    "日本語",
    "数学の問題を解きましょう。カタカナとひらがな。",
    "한국어를 공부합니다. 안녕하세요!",
    "مرحبا بالعالم، هذا اختبار.",
    "Привет, мир! Ёжик в тумане.",
    "שלום עולם",
    "नमस्ते दुनिया",
    "สวัสดีชาวโลก",
    "Ελληνικά: η εξίσωση έχει δύο λύσεις.",
    # emoji
    "🙂",
    "I love math 😀🎉🚀",
    "👋🏽 hi",
    "Family: 👨‍👩‍👧‍👦 done",
    "Flags 🇫🇷🇯🇵🇺🇸 and 🏳️‍🌈",
    "❤️ vs ❤",
    # whitespace and newlines
    "line1\r\nline2\r\n",
    "a\r\nb\rc\nd\n\n\ne",
    "\n",
    "\n\n",
    "   ",
    "a     b",
    "    indented four",
    "tab\there\t\tand\ttabs",
    " \t \n \t",
    "word\u00a0nbsp and zero\u200bwidth and \ufeffbom",
    # contractions and case
    "don't",
    "I'LL be there, we've seen it, she'S here, they're OK, it'd work",
    "don\u2019t use curly quotes\u2026",
    "ALL CAPS SENTENCE. MiXeD cAsE wOrDs.",
    # punctuation
    "!!!???...",
    "Wait... what?! (really) [yes] {no} <maybe>",
    "----------========~~~~~~~~",
    "a--b__c**d##e@@f",
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
    # special tokens inside text
    "<|im_start|>user\nhi<|im_end|>",
    "<|endoftext|>",
    "before<|endoftext|>after",
    "<|im_start|>",
    " <|im_end|> ",
    "<|im_start|>assistant\n<|im_end|>\n<|endoftext|>",
    "<|im_sta",
    "<|fim_prefix|>def add(a, b):<|fim_suffix|>\n<|fim_middle|>",
    "<think>\nreasoning\n</think>",
    # accented Latin
    "naïve café, crème brûlée, Straße, Ærøskøbing, São Paulo, Łódź",
    "e\u0301 (combining) vs é (precomposed)",
    # URL, JSON, markdown
    "https://example.com/path/to/page?q=1&lang=en#section-2",
    '{"name": "K2", "values": [1, 2.5, -3e10], "ok": true, "nested": {"a": null}}',
    "# Title\n\n- item one\n- item two\n\n| a | b |\n|---|---|\n| 1 | 2 |\n",
    # long paragraph
    (
        "The quadratic formula gives the roots of any quadratic equation, but students "
        "often forget why it works. Completing the square is the key idea: starting from "
        "ax^2 + bx + c = 0, divide by a, move the constant to the right-hand side, and add "
        "the square of half the linear coefficient to both sides. The left-hand side then "
        "becomes a perfect square, and taking square roots finishes the derivation. When "
        "the discriminant b^2 - 4ac is negative, the two roots are complex conjugates; when "
        "it is zero, they coincide. Practising a few examples by hand, say x^2 - 5x + 6 = 0 "
        "or 2x^2 + 3x - 2 = 0, makes the pattern stick far better than memorising it."
    ),
    # chat prompts
    CHATML_MATH,
    "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful "
    "assistant.<|im_end|>\n<|im_start|>user\nWhat is 7 * 8?<|im_end|>\n<|im_start|>assistant\n",
]

GREEDY_PROMPTS: list[str] = [
    "The capital of France is",
    "Tom has 3 boxes with 12 apples each. He gives away 7 apples. How many apples",
    "def fibonacci(n):",
    "Things to pack for a beach trip:\n1. Sunscreen\n2.",
    "By the Pythagorean theorem, $a^2 + b^2 =",
    "Once upon a time, in a small village by the sea, there lived",
    "北京是中国的",
    "Why is the sky blue?",
    '{"name": "Alice", "age": 30, "languages": [',
    "Teacher: What is 12 times 12?\nStudent:",
]

TEACHER_TEXT = r"""Problem. A rectangular garden is 3 metres longer than it is wide, and its area is 70 square metres. Find its dimensions, then check the answer with a short program.

Solution. Let the width be $w$ metres, so the length is $w + 3$. The area condition gives
$$w(w + 3) = 70 \quad\Longrightarrow\quad w^2 + 3w - 70 = 0.$$
We look for two numbers whose product is $-70$ and whose sum is $3$: these are $10$ and $-7$, so
$$w^2 + 3w - 70 = (w + 10)(w - 7) = 0.$$
Hence $w = 7$ or $w = -10$. A width cannot be negative, so $w = 7$ and the length is $10$. The garden is $7\,\text{m} \times 10\,\text{m}$, and indeed $7 \cdot 10 = 70$. The answer is $\boxed{7 \text{ by } 10}$.

We could also have used the quadratic formula,
$$w = \frac{-b \pm \sqrt{b^2 - 4ac}}{2a} = \frac{-3 \pm \sqrt{9 + 280}}{2} = \frac{-3 \pm 17}{2},$$
which gives the same two roots, $7$ and $-10$. Notice that the discriminant $289 = 17^2$ is a perfect square; that is exactly why the equation factors over the integers.

A few words on method. Students often rush to the formula, but it pays to pause and ask what the numbers mean. Here the product of the roots, $c/a = -70$, and their sum, $-b/a = -3$, are visible at a glance (Vieta's formulas), and guessing a factorisation takes seconds. When the numbers are ugly, for example $3x^2 - 7x + 1 = 0$, the formula is the better tool: $x = \frac{7 \pm \sqrt{37}}{6}$, roughly $2.18$ and $0.15$. Always finish by substituting back: an arithmetic slip in the discriminant is the most common mistake, and the check catches it immediately.

Here is a small Python program that solves any quadratic and verifies the garden problem:

```python
import math

def solve_quadratic(a: float, b: float, c: float) -> list[float]:
    # Real roots of a*x**2 + b*x + c = 0, smallest first.
    if a == 0:
        raise ValueError("not a quadratic")
    disc = b * b - 4 * a * c
    if disc < 0:
        return []
    root = math.sqrt(disc)
    return sorted({(-b - root) / (2 * a), (-b + root) / (2 * a)})

roots = solve_quadratic(1, 3, -70)
width = max(roots)
print(f"width = {width}, length = {width + 3}, area = {width * (width + 3)}")
assert width * (width + 3) == 70
```

And the same check in Rust, for the engine's test suite:

```rust
fn solve_quadratic(a: f64, b: f64, c: f64) -> Vec<f64> {
    let disc = b * b - 4.0 * a * c;
    if disc < 0.0 {
        return Vec::new();
    }
    let r = disc.sqrt();
    let mut roots = vec![(-b - r) / (2.0 * a), (-b + r) / (2.0 * a)];
    roots.sort_by(|x, y| x.partial_cmp(y).unwrap());
    roots.dedup();
    roots
}

fn main() {
    let roots = solve_quadratic(1.0, 3.0, -70.0);
    let w = roots.last().copied().unwrap();
    assert_eq!(w * (w + 3.0), 70.0);
    println!("width = {w}, length = {}", w + 3.0);
}
```

A second problem for practice. The sum of the first $n$ positive integers is $\frac{n(n+1)}{2}$. For which $n$ is this sum equal to $210$? Setting $\frac{n(n+1)}{2} = 210$ gives $n^2 + n - 420 = 0$, and since $20 \cdot 21 = 420$ we get $(n - 20)(n + 21) = 0$, so $n = 20$. Check: $1 + 2 + \dots + 20 = 210$. In general, to decide whether a number $T$ is triangular, test whether $8T + 1$ is a perfect square; here $8 \cdot 210 + 1 = 1681 = 41^2$, and $n = (41 - 1)/2 = 20$.

Finally, a word problem with percentages. A jacket costs \$80. It is discounted by 25%, and then a sales tax of 8% is added to the discounted price. What is the final price? The discount leaves $80 \times 0.75 = 60$ dollars, and the tax brings it to $60 \times 1.08 = 64.80$ dollars. Note that applying the tax first gives the same result, $80 \times 1.08 \times 0.75 = 64.80$, because multiplication is commutative; but a discount of 25% followed by a surcharge of 25% does not return to the original price, since $0.75 \times 1.25 = 0.9375$.

Summary table:

| problem | equation | answer |
|---|---|---|
| garden | $w^2 + 3w - 70 = 0$ | $7 \times 10$ |
| triangular | $n^2 + n - 420 = 0$ | $n = 20$ |
| jacket | $80 \cdot 0.75 \cdot 1.08$ | \$64.80 |

Exercises: (1) Solve $x^2 - 5x + 6 = 0$. (2) Show that $x^2 + x + 1 = 0$ has no real roots. (3) A square's side is increased by 2 cm and its area grows by 24 cm²; find the original side. (4) Write a function that returns the vertex $\left(-\frac{b}{2a}, c - \frac{b^2}{4a}\right)$ of a parabola, and test it on $y = x^2 - 4x + 1$, whose vertex is $(2, -3)$.
"""

N_TEACHER = 1024
N_GREEDY = 32

# --------------------------------------------------------------------------------------


def default_models_dir() -> Path:
    env = os.environ.get("K2_MODELS_DIR")
    if env:
        return Path(env)
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "k2-tutor" / "models"


def sha256_of(path: Path) -> str:
    """sha256 of a file, reusing fetch-test-models.sh's "<sha> <size> <mtime>" sidecar."""
    st = path.stat()
    sidecar = path.with_name(path.name + ".sha256")
    if sidecar.exists():
        parts = sidecar.read_text().split()
        if len(parts) == 3 and parts[1] == str(st.st_size):
            try:
                if abs(float(parts[2]) - st.st_mtime_ns / 1e9) < 1e-6:
                    return parts[0]
            except ValueError:
                pass
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json(path: Path, obj: dict) -> None:
    """Compact but readable JSON: one top-level key (or one case) per line."""
    lines = ["{"]
    items = list(obj.items())
    for k, (key, val) in enumerate(items):
        comma = "," if k + 1 < len(items) else ""
        if isinstance(val, list) and val and isinstance(val[0], (dict, list)):
            inner = ",\n".join("  " + json.dumps(v, ensure_ascii=False, separators=(",", ":")) for v in val)
            lines.append(f"{json.dumps(key)}: [\n{inner}\n]{comma}")
        else:
            lines.append(f"{json.dumps(key)}: {json.dumps(val, ensure_ascii=False, separators=(',', ':'))}{comma}")
    lines.append("}")
    text = "\n".join(lines) + "\n"
    json.loads(text)  # sanity: valid JSON
    path.write_text(text, encoding="utf-8")
    print(f"  wrote {path} ({len(text.encode()) / 1024:.0f} KiB)", flush=True)


def model_add_bos(llm: Llama) -> bool:
    """The add-BOS flag llama.cpp itself uses (from tokenizer.ggml.add_bos_token)."""
    return bool(llama_cpp.llama_vocab_get_add_bos(llama_cpp.llama_model_get_vocab(llm.model)))


def last_logits(llm: Llama) -> np.ndarray:
    """Logits of the last evaluated token, read from the llama.cpp context.

    (Without logits_all, llama-cpp-python 0.3.x no longer copies logits into
    llm.scores, so they are read with llama_get_logits_ith(ctx, -1).)
    """
    ptr = llama_cpp.llama_get_logits_ith(llm.ctx, -1)
    return np.ctypeslib.as_array(ptr, shape=(llm.n_vocab(),))


def eog_ids(llm: Llama) -> set[int]:
    vocab = llama_cpp.llama_model_get_vocab(llm.model)
    return {i for i in range(llm.n_vocab()) if llama_cpp.llama_vocab_is_eog(vocab, i)}


def header(path: Path, sha: str, llm: Llama) -> dict:
    md = llm.metadata
    return {
        "model_file": path.name,
        "sha256": sha,
        "llama_cpp_python": llama_cpp.__version__,
        "generator": "tests/golden/make_goldens.py",
        "tokenizer_model": md.get("tokenizer.ggml.model"),
        "tokenizer_pre": md.get("tokenizer.ggml.pre"),
        "add_bos_metadata": md.get("tokenizer.ggml.add_bos_token"),
        "add_bos": model_add_bos(llm),
        "bos_id": llm.token_bos(),
        "eos_id": llm.token_eos(),
        "n_vocab": llm.n_vocab(),
    }


def load(path: Path, **kw) -> Llama:
    return Llama(
        model_path=str(path),
        n_threads=N_THREADS,
        n_threads_batch=N_THREADS,
        seed=SEED,
        verbose=False,
        **kw,
    )


# --------------------------------------------------------------------------------------


def make_tokenizer(models_dir: Path, out: Path) -> None:
    for fname, key in TOKENIZER_FILES.items():
        path = models_dir / MODELS[key]
        print(f"tokenizer: {path.name}", flush=True)
        llm = load(path, vocab_only=True)
        cases = []
        for text in TOKENIZER_CORPUS:
            b = text.encode("utf-8")
            cases.append(
                {
                    "text": text,
                    "ids_special": llm.tokenize(b, add_bos=False, special=True),
                    "ids_plain": llm.tokenize(b, add_bos=False, special=False),
                }
            )
        doc = header(path, sha256_of(path), llm)
        doc["settings"] = (
            "ids_special = llm.tokenize(text.encode(), add_bos=False, special=True); "
            "ids_plain = same with special=False"
        )
        doc["cases"] = cases
        write_json(out / fname, doc)
        del llm


def greedy_key_file(key: str) -> str:
    return f"greedy-{key}.json"


def make_greedy(models_dir: Path, out: Path) -> None:
    n_ctx = 512
    for key, mfile in MODELS.items():
        path = models_dir / mfile
        print(f"greedy: {path.name}", flush=True)
        llm = load(path, n_ctx=n_ctx, n_batch=512)
        add_bos = model_add_bos(llm)
        eog = eog_ids(llm)
        cases = []
        t0 = time.time()
        for prompt in GREEDY_PROMPTS:
            prompt_ids = llm.tokenize(prompt.encode("utf-8"), add_bos=add_bos, special=False)
            llm.reset()
            llm.eval(prompt_ids)
            gen: list[int] = []
            for _ in range(N_GREEDY):
                logits = last_logits(llm)
                tok = int(np.argmax(logits))
                gen.append(tok)
                llm.eval([tok])
            eos_at = [i for i, t in enumerate(gen) if t in eog]
            cases.append(
                {
                    "prompt": prompt,
                    "prompt_ids": prompt_ids,
                    "generated_ids": gen,
                    "generated_text": llm.detokenize(gen).decode("utf-8", errors="replace"),
                    "stopped_at_eos": False,
                    "eos_at": eos_at,
                }
            )
        print(f"  {len(cases)} prompts in {time.time() - t0:.1f}s", flush=True)
        doc = header(path, sha256_of(path), llm)
        doc.update(
            {
                "n_ctx": n_ctx,
                "n_batch": 512,
                "n_threads": N_THREADS,
                "seed": SEED,
                "n_generate": N_GREEDY,
                "settings": (
                    "raw prompt (no chat template), tokenize(special=False, add_bos=model's); "
                    "one eval of the prompt, then greedy argmax of the last logits, one token "
                    "per eval, no penalties; continues past EOS (eos_at = step indices of EOG "
                    "tokens); generated_text = detokenize(generated_ids) (special tokens "
                    "rendered empty, invalid UTF-8 replaced)"
                ),
                "cases": cases,
            }
        )
        write_json(out / greedy_key_file(key), doc)
        del llm


def make_teacher(models_dir: Path, out: Path) -> None:
    for key, mfile in MODELS.items():
        path = models_dir / mfile
        print(f"teacher-forced: {path.name}", flush=True)
        llm = load(path, n_ctx=N_TEACHER, n_batch=512, logits_all=True)
        add_bos = model_add_bos(llm)
        ids = llm.tokenize(TEACHER_TEXT.encode("utf-8"), add_bos=add_bos, special=False)
        if len(ids) < N_TEACHER:
            sys.exit(f"teacher text is only {len(ids)} tokens for {mfile}; need {N_TEACHER}")
        full_len = len(ids)
        ids = ids[:N_TEACHER]
        t0 = time.time()
        llm.reset()
        llm.eval(ids)
        print(f"  eval of {N_TEACHER} tokens in {time.time() - t0:.1f}s", flush=True)
        scores = np.array(llm.scores[:N_TEACHER], dtype=np.float32)
        top1 = scores.argmax(axis=1)
        # top-5 in descending logit order (ties broken by lower id first)
        part = np.argpartition(-scores, 5, axis=1)[:, :5]
        top5_ids, top5_logits = [], []
        for i in range(N_TEACHER):
            cand = sorted(part[i].tolist(), key=lambda t: (-scores[i, t], t))
            assert cand[0] == top1[i] or scores[i, cand[0]] == scores[i, top1[i]]
            top5_ids.append(cand)
            top5_logits.append([round(float(scores[i, t]), 3) for t in cand])
        agree = float(np.mean(top1[:-1] == np.array(ids[1:])))
        print(f"  top1 == next token on {agree:.1%} of positions", flush=True)
        doc = header(path, sha256_of(path), llm)
        doc.update(
            {
                "n_ctx": N_TEACHER,
                "n_batch": 512,
                "n_threads": N_THREADS,
                "settings": (
                    "text tokenized with special=False and the model's add_bos "
                    f"({full_len} ids), truncated to {N_TEACHER}; one eval with logits_all=True; "
                    "position i = logits after ids[0..=i], i.e. predicting ids[i+1]; "
                    "top5 sorted by logit descending; logits rounded to 3 decimals"
                ),
                "text": TEACHER_TEXT,
                "top1_matches_next_token": round(agree, 4),
                "ids": ids,
                "top1": top1.tolist(),
                "top5_ids": top5_ids,
                "top5_logits": top5_logits,
            }
        )
        write_json(out / f"teacher-forced-{key}.json", doc)
        del llm, scores


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models-dir", type=Path, default=default_models_dir())
    ap.add_argument("--out", type=Path, default=HERE)
    ap.add_argument("--only", action="append", choices=["tokenizer", "greedy", "teacher"])
    args = ap.parse_args()
    parts = args.only or ["tokenizer", "greedy", "teacher"]
    missing = [m for m in MODELS.values() if not (args.models_dir / m).exists()]
    if missing:
        sys.exit(f"missing models in {args.models_dir}: {missing}; run scripts/fetch-test-models.sh")
    args.out.mkdir(parents=True, exist_ok=True)
    print(f"llama-cpp-python {llama_cpp.__version__}, models from {args.models_dir}", flush=True)
    if "tokenizer" in parts:
        make_tokenizer(args.models_dir, args.out)
    if "greedy" in parts:
        make_greedy(args.models_dir, args.out)
    if "teacher" in parts:
        make_teacher(args.models_dir, args.out)


if __name__ == "__main__":
    main()
