#!/usr/bin/env python3
"""Classroom load on an OpenAI-compatible server: C concurrent streaming clients for a fixed
time each, for several C, against `k2 serve` and llama.cpp's server (llama-cpp-python's, or
llama.cpp's own `llama-server` binary with --llama-server, e.g. built with CUDA on the GPU
machine) with the same GGUF on the same machine, in one run.

Each client asks GSM8K problems one after another (streaming, temperature 0.7, max_tokens
--max-tokens). Tokens are counted in a window of --seconds after a --warmup (steady state:
every client's first prompt is in), and every client hangs up at the window's end. Reported per level: aggregate tokens/s (streamed content
chunks, one per token on both servers), mean per-client tokens/s, p50/p99 time to first token,
completed requests and errors; and aggregate throughput at each level vs 1 client.

    python3 scripts/bench_serve.py --k2 target/release/k2 --model qwen2.5-coder-0.5b \
        --clients 1 4 16 32 --seconds 40 [--skip-llama]

Needs the venv of scripts/python-env.sh for the llama.cpp server (run with its python).
"""

import argparse
import http.client
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TOKEN = "bench-token-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_up(url, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError as e:
            if e.code != 503:  # 503: llama-server still loading the model
                return
            time.sleep(0.5)
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"{url} did not come up")


def model_path(name):
    models = Path(os.environ.get("K2_MODELS_DIR", Path.home() / ".local/share/k2-tutor/models"))
    if Path(name).exists():
        return Path(name)
    matches = sorted(models.glob(f"{name}*.gguf"))
    if not matches:
        raise SystemExit(f"model {name} not found in {models}")
    return matches[0]


def one_request(port, problem, max_tokens, seed, headers, window=(0.0, float("inf"))):
    """Streams one completion; returns (time to first token, tokens inside `window`, error).
    At the window's end the client hangs up (the server must free the request's rows)."""
    body = json.dumps({
        "messages": [{"role": "user", "content": problem}],
        "stream": True, "max_tokens": max_tokens, "temperature": 0.7, "seed": seed,
    })
    started = time.perf_counter()
    first = None
    tokens = 0
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request("POST", "/v1/chat/completions", body=body, headers=headers)
        response = conn.getresponse()
        if response.status != 200:
            return None, 0, f"HTTP {response.status}"
        for raw in response:
            line = raw.decode("utf-8", "replace").strip()
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                break
            chunk = json.loads(data)
            now = time.perf_counter()
            if now >= window[1]:
                return first, tokens, "cut"
            for choice in chunk.get("choices", []):
                if (choice.get("delta") or {}).get("content"):
                    tokens += window[0] <= now
                    if first is None:
                        first = now - started
        if first is None:
            return None, tokens, "empty answer"
        return first, tokens, None
    except Exception as e:  # noqa: BLE001 - every failure counts as an error
        return None, tokens, str(e)
    finally:
        conn.close()


def load_level(port, clients, seconds, warmup, problems, max_tokens, headers):
    begin = time.perf_counter()
    # Tokens count from the end of the warm-up (every client has had its first prompt
    # processed) to the deadline, where every client hangs up: steady state only.
    window = (begin + warmup, begin + warmup + seconds)
    deadline = window[1]
    lock = threading.Lock()
    ttfts, per_client, errors = [], [0] * clients, []
    completed = [0]

    def client(i):
        rng = random.Random(i)
        while time.perf_counter() < deadline:
            first, tokens, error = one_request(
                port, rng.choice(problems), max_tokens, rng.randrange(1 << 30), headers, window
            )
            with lock:
                per_client[i] += tokens
                if error == "cut":
                    break
                if error:
                    errors.append(error)
                else:
                    completed[0] += 1
                    if first is not None:
                        ttfts.append(first)

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = seconds
    ttfts.sort()

    def pct(p):
        return ttfts[min(len(ttfts) - 1, int(p * len(ttfts)))] if ttfts else float("nan")

    return {
        "clients": clients,
        "seconds": elapsed,
        "warmup": warmup,
        "aggregate_tok_s": sum(per_client) / elapsed,
        "per_client_tok_s": statistics.mean(per_client) / elapsed,
        "ttft_p50_s": pct(0.50),
        "ttft_p95_s": pct(0.95),
        "ttft_p99_s": pct(0.99),
        "completed": completed[0],
        "errors": len(errors),
        "error_kinds": sorted(set(errors))[:3],
    }


def run_server(name, args, port, health, log_dir=None, env=None):
    """Starts a server; with `log_dir`, its output goes to LOG_DIR/NAME.log (else nowhere)."""
    log = open(Path(log_dir) / f"{name.replace(' ', '-')}.log", "w") if log_dir else None
    proc = subprocess.Popen(args, stdout=log or subprocess.DEVNULL,
                            stderr=subprocess.STDOUT if log else subprocess.DEVNULL,
                            env={**os.environ, **(env or {})})
    try:
        wait_up(f"http://127.0.0.1:{port}{health}")
    except Exception:
        proc.kill()
        raise
    print(f"[bench] {name} up on port {port}", file=sys.stderr)
    return proc


def bench(name, proc, port, levels, seconds, warmup, problems, max_tokens, headers, rounds=1):
    """Runs the levels `rounds` times, alternating (the machine's speed drifts over minutes),
    and keeps each level's median round by aggregate throughput."""
    try:
        # Warm-up: first-request costs (page-in, allocation) are not part of any level.
        one_request(port, problems[0], 16, 0, headers)
        runs = {clients: [] for clients in levels}
        for _ in range(rounds):
            for clients in levels:
                row = load_level(port, clients, seconds, warmup, problems, max_tokens, headers)
                # Let the server notice the hang-ups before the next level starts.
                time.sleep(2)
                row["server"] = name
                runs[clients].append(row)
                print(f"[bench] {name} {json.dumps(row)}", file=sys.stderr)
        rows = []
        for clients in levels:
            ordered = sorted(runs[clients], key=lambda r: r["aggregate_tok_s"])
            median = dict(ordered[len(ordered) // 2])
            median["rounds"] = [round(r["aggregate_tok_s"], 1) for r in runs[clients]]
            rows.append(median)
        return rows
    finally:
        proc.kill()
        proc.wait()


def table(rows):
    base = {r["server"]: r["aggregate_tok_s"] for r in rows if r["clients"] == 1}
    lines = [
        "| server | clients | aggregate tok/s | per-client tok/s | TTFT p50 | TTFT p95 | TTFT p99 | requests | errors | vs 1 client | rounds (tok/s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        ratio = (f"{r['aggregate_tok_s'] / base[r['server']]:.2f}x" if base.get(r["server"])
                 else "-")
        lines.append(
            f"| {r['server']} | {r['clients']} | {r['aggregate_tok_s']:.1f} | "
            f"{r['per_client_tok_s']:.1f} | {r['ttft_p50_s']:.2f} s | "
            f"{r.get('ttft_p95_s', float('nan')):.2f} s | {r['ttft_p99_s']:.2f} s | "
            f"{r['completed']} | {r['errors']} | {ratio} | "
            f"{', '.join(str(x) for x in r.get('rounds', []))} |"
        )
    return "\n".join(lines)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--k2", default=str(ROOT / "target/release/k2"))
    ap.add_argument("--model", default="qwen2.5-coder-0.5b")
    ap.add_argument("--clients", type=int, nargs="+", default=[1, 4, 16, 32])
    ap.add_argument("--seconds", type=float, default=40, help="measured time per level")
    ap.add_argument("--warmup", type=float, default=10, help="unmeasured time before it")
    ap.add_argument("--max-tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=os.cpu_count())
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/gsm8k-dev.jsonl"))
    ap.add_argument("--skip-llama", action="store_true")
    ap.add_argument("--llama-server", metavar="BIN",
                    help="llama.cpp's own server binary instead of llama-cpp-python's "
                         "(all layers on the GPU, one slot per client of the largest level)")
    ap.add_argument("--context-per-slot", type=int, default=2048,
                    help="llama-server's context per slot (--llama-server)")
    ap.add_argument("--rounds", type=int, default=1,
                    help="repeat the levels, alternating, and report each level's median")
    ap.add_argument("--k2-flag", action="append", default=[],
                    help="extra flag for k2 serve (repeatable), e.g. --k2-flag=--no-prefix-cache")
    ap.add_argument("--out", help="write the rows as JSON here")
    ap.add_argument("--server-logs", metavar="DIR",
                    help="keep each server's output here; k2 serve's then holds its scheduler's "
                         "step times (forward, sampling, rows) every 100 steps")
    args = ap.parse_args()

    problems = [json.loads(l)["problem"] for l in open(args.data, encoding="utf-8")][:200]
    gguf = model_path(args.model)
    max_rows = max(args.clients)
    rows = []

    port = free_port()
    proc = run_server(
        "k2 serve",
        [args.k2, "serve", "--model", str(gguf), "--port", str(port), "--token", TOKEN,
         "--max-rows", str(max_rows), "--max-waiting", str(4 * max_rows), *args.k2_flag],
        port, "/health", args.server_logs, {"RUST_LOG": "warn,k2_engine::serving=debug"},
    )
    rows += bench("k2 serve", proc, port, args.clients, args.seconds, args.warmup, problems,
                  args.max_tokens, {"Authorization": f"Bearer {TOKEN}",
                                    "Content-Type": "application/json"}, args.rounds)

    if args.llama_server and not args.skip_llama:
        port = free_port()
        proc = run_server(
            "llama-server",
            [args.llama_server, "--model", str(gguf), "--port", str(port), "--host", "127.0.0.1",
             "--n-gpu-layers", "999", "--parallel", str(max_rows),
             "--ctx-size", str(args.context_per_slot * max_rows), "--threads", str(args.threads),
             "--no-webui"],
            port, "/health", args.server_logs,
        )
        rows += bench("llama-server", proc, port, args.clients, args.seconds, args.warmup,
                      problems, args.max_tokens, {"Content-Type": "application/json"},
                      args.rounds)
    elif not args.skip_llama:
        port = free_port()
        proc = run_server(
            "llama-cpp-python",
            [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf), "--port", str(port),
             "--host", "127.0.0.1", "--n_ctx", "4096", "--n_threads", str(args.threads),
             # By default a new request interrupts the one being answered (its client gets
             # an empty answer); queueing is what a classroom needs.
             "--interrupt_requests", "false", "--verbose", "false"],
            port, "/v1/models",
        )
        rows += bench("llama-cpp-python", proc, port, args.clients, args.seconds, args.warmup,
                      problems, args.max_tokens, {"Content-Type": "application/json"},
                      args.rounds)

    print(table(rows))
    if args.out:
        Path(args.out).write_text(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
