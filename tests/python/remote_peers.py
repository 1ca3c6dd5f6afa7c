"""Real OpenAI-compatible peers, both directions.

1. The official `openai` Python client against `k2 serve`: model list, whole and streamed
   completions (they agree when greedy), n choices, usage and time_info, and the errors a
   client gets for a wrong token or an over-limit request.
2. `k2 solve --backend` against llama-cpp-python's OpenAI-compatible server serving the same
   GGUF: streamed and whole answers, and the whole scaffold (planner and judge there too).
3. Prometheus's own text-format parser (`prometheus_client`) reading `k2 serve`'s `/metrics`
   before and after a completion.

Run by scripts/test.sh with the venv of scripts/python-env.sh. Prints `N passed, N failed`.
"""

import json
import os
import socket
import subprocess
import sys
import time
import traceback
import urllib.request
from pathlib import Path

import openai
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parents[2]
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
K2 = Path(os.environ.get("K2_BIN", TARGET / "release" / "k2"))
MODELS = Path(
    os.environ.get(
        "K2_MODELS_DIR",
        Path(os.environ.get("XDG_DATA_HOME", Path.home() / ".local/share")) / "k2-tutor/models",
    )
)
SMOLLM = MODELS / "smollm2-135m-instruct-q4_1.gguf"
TOKEN = "python-peer-token-42"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url, timeout=90):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            urllib.request.urlopen(url, timeout=2)
            return
        except urllib.error.HTTPError:
            return  # it answers, if only to say no
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"{url} did not come up")


class Process:
    def __init__(self, args, ready_url):
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            wait_http(ready_url)
        except Exception:
            self.stop()
            raise

    def stop(self):
        self.proc.kill()
        self.proc.wait()


def k2_serve():
    port = free_port()
    server = Process(
        [str(K2), "serve", "--model", str(SMOLLM), "--port", str(port), "--token", TOKEN,
         "--max-tokens-limit", "512"],
        f"http://127.0.0.1:{port}/health",
    )
    return server, f"http://127.0.0.1:{port}"


def llama_cpp_server():
    port = free_port()
    server = Process(
        [sys.executable, "-m", "llama_cpp.server", "--model", str(SMOLLM), "--port", str(port),
         "--host", "127.0.0.1", "--n_ctx", "4096", "--n_threads", "2", "--verbose", "false"],
        f"http://127.0.0.1:{port}/v1/models",
    )
    return server, f"http://127.0.0.1:{port}"


def solve(url, *extra, problem="What is 9 + 10?"):
    """k2 solve against a remote backend; returns the protocol events."""
    out = subprocess.run(
        [str(K2), "solve", problem, "--backend", url, "--format", "jsonl", "--no-store", *extra],
        capture_output=True, text=True, timeout=600,
    )
    assert out.returncode == 0, out.stderr
    events = []
    for line in out.stdout.splitlines():
        value = json.loads(line)
        if "type" in value:
            events.append(value)
    return events


def candidate_texts(events):
    texts = {}
    for e in events:
        if e["type"] == "candidate_delta":
            texts[e["candidate"]] = texts.get(e["candidate"], "") + e["text"]
    return texts


# --- the openai client against k2 serve -------------------------------------------------


def test_openai_client_against_k2_serve():
    server, url = k2_serve()
    try:
        client = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
        models = client.models.list()
        model = models.data[0].id
        assert model == "smollm2-135m-instruct-q4_1", model

        messages = [{"role": "user", "content": "What is 6 times 7?"}]
        whole = client.chat.completions.create(
            model=model, messages=messages, max_tokens=40, temperature=0
        )
        text = whole.choices[0].message.content
        assert text, "an answer"
        assert whole.choices[0].finish_reason in ("stop", "length")
        assert whole.usage.completion_tokens > 0 and whole.usage.prompt_tokens > 0
        time_info = whole.model_extra["time_info"]
        assert time_info["total_time"] >= time_info["completion_time"] >= 0

        stream = client.chat.completions.create(
            model=model, messages=messages, max_tokens=40, temperature=0, stream=True,
            stream_options={"include_usage": True},
        )
        pieces, usage = [], None
        for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                pieces.append(chunk.choices[0].delta.content)
            if chunk.usage:
                usage = chunk.usage
        assert "".join(pieces) == text, ("".join(pieces), text)
        assert usage and usage.completion_tokens == whole.usage.completion_tokens

        several = client.chat.completions.create(
            model=model, messages=messages, max_tokens=10, n=3, seed=7
        )
        assert sorted(c.index for c in several.choices) == [0, 1, 2]

        bad = openai.OpenAI(base_url=f"{url}/v1", api_key="wrong-token", max_retries=0)
        try:
            bad.models.list()
            raise AssertionError("a wrong token was accepted")
        except openai.AuthenticationError:
            pass
        try:
            client.chat.completions.create(model=model, messages=messages, max_tokens=100000)
            raise AssertionError("an over-limit max_tokens was accepted")
        except openai.BadRequestError as e:
            assert "limit" in str(e)
    finally:
        server.stop()


# --- Prometheus's parser against k2 serve's /metrics ---------------------------------------


def scrape(url):
    request = urllib.request.Request(
        f"{url}/metrics", headers={"Authorization": f"Bearer {TOKEN}"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:
        assert response.headers["Content-Type"].startswith("text/plain; version=0.0.4"), (
            response.headers["Content-Type"]
        )
        text = response.read().decode()
    # The parser raises on anything that is not the text format.
    return {family.name: family for family in text_string_to_metric_families(text)}


def samples(families, family, suffix=""):
    return [s for s in families[family].samples if s.name == family + suffix]


def one(families, family, suffix="", **labels):
    found = [s.value for s in samples(families, family, suffix) if s.labels == labels]
    assert len(found) == 1, (family, suffix, labels, families[family].samples)
    return found[0]


def test_prometheus_parser_reads_k2_serve_metrics():
    server, url = k2_serve()
    try:
        try:
            urllib.request.urlopen(f"{url}/metrics", timeout=10)
            raise AssertionError("/metrics answered without a token")
        except urllib.error.HTTPError as e:
            assert e.code == 401, e.code
        before = scrape(url)
        kinds = {
            "k2_queue_waiting": "gauge",
            "k2_active_requests": "gauge",
            "k2_active_rows": "gauge",
            "k2_prompt_tokens": "counter",
            "k2_generated_tokens": "counter",
            "k2_decode_seconds": "counter",
            "k2_time_to_first_token_seconds": "histogram",
            "k2_http_requests": "counter",
            "k2_rejections": "counter",
            "k2_open_connections": "gauge",
        }
        for name, kind in kinds.items():
            assert before[name].type == kind, (name, before[name].type)
        reasons = {s.labels["reason"] for s in samples(before, "k2_rejections", "_total")}
        assert {"rate", "runs_per_client", "queue_full", "header_timeout"} <= reasons, reasons

        client = openai.OpenAI(base_url=f"{url}/v1", api_key=TOKEN, max_retries=0)
        answer = client.chat.completions.create(
            model="smollm2-135m-instruct-q4_1",
            messages=[{"role": "user", "content": "What is 6 times 7?"}],
            max_tokens=16,
            temperature=0,
        )
        # The answer can arrive before the scheduler publishes the step that finished it.
        deadline = time.time() + 30
        while json.load(urllib.request.urlopen(f"{url}/health", timeout=10))["active_rows"]:
            assert time.time() < deadline, "the batch never became idle"
            time.sleep(0.05)
        after = scrape(url)

        generated = one(after, "k2_generated_tokens", "_total") - one(
            before, "k2_generated_tokens", "_total"
        )
        # The row's stop token may be sampled without being part of the answer.
        assert answer.usage.completion_tokens <= generated <= answer.usage.completion_tokens + 1
        prompt = one(after, "k2_prompt_tokens", "_total") - one(before, "k2_prompt_tokens", "_total")
        assert prompt == answer.usage.prompt_tokens, (prompt, answer.usage.prompt_tokens)
        assert one(after, "k2_decode_seconds", "_total") > one(before, "k2_decode_seconds", "_total")

        ttft = "k2_time_to_first_token_seconds"
        assert one(after, ttft, "_count") == one(before, ttft, "_count") + 1
        buckets = [(float(s.labels["le"]), s.value) for s in samples(after, ttft, "_bucket")]
        assert buckets == sorted(buckets), "bounds rise and counts are cumulative"
        assert buckets[-1] == (float("inf"), one(after, ttft, "_count")), buckets[-1]

        route = {"route": "/v1/chat/completions", "method": "POST", "status": "200"}
        assert one(after, "k2_http_requests", "_total", **route) == 1
        assert one(after, "k2_http_requests", "_total", route="/metrics", method="GET",
                   status="401") == 1
        assert one(after, "k2_active_rows") == 0
    finally:
        server.stop()


# --- k2's remote backend against llama-cpp-python's server ------------------------------


def test_remote_backend_against_llama_cpp_server():
    server, url = llama_cpp_server()
    try:
        greedy = ["-n", "1", "--no-plan", "--planner", "solver", "--temperature", "0",
                  "--max-tokens", "48"]
        streamed = solve(url, *greedy)
        assert streamed[-1]["type"] == "stats", streamed[-1]
        text = candidate_texts(streamed)[0]
        assert text.strip(), "streamed text"

        whole = solve(url, *greedy, "--backend-no-stream")
        assert whole[-1]["type"] == "stats"
        assert candidate_texts(whole)[0] == text, "greedy whole answer equals the stream"

        # The whole scaffold: plan, three sampled candidates, judge, all on the peer.
        full = solve(url, "-n", "3", "--planner-backend", url, "--select", "judge",
                     "--max-tokens", "48", problem="What is 3 * 14?")
        kinds = [e["type"] for e in full]
        assert kinds[0] == "started" and kinds[-1] == "stats", kinds[-3:]
        assert kinds.count("candidate_finished") == 3
        assert "plan_finished" in kinds and "final_answer" in kinds
    finally:
        server.stop()


def main():
    tests = [(name, fn) for name, fn in globals().items() if name.startswith("test_")]
    passed = failed = 0
    for name, fn in tests:
        started = time.time()
        try:
            fn()
            passed += 1
            print(f"ok     {name} ({time.time() - started:.1f} s)")
        except Exception:
            failed += 1
            print(f"FAILED {name}")
            traceback.print_exc()
    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
