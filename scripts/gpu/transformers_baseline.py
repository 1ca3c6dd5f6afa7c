#!/usr/bin/env python3
"""The common baseline for the GPU benchmark: Hugging Face transformers running the same
K2-Think (Qwen2.5-32B) geometry in bf16 with random weights, on the device machine's
PyTorch. Measures what device_bench measures for our engine: copy bandwidth, decode
tokens/s at several batch sizes (greedy, KV cache, 64-token prompts) and prefill tokens/s.

Usage (on the GPU machine): transformers_baseline.py [--layers 64] [--batches 1,3,16]
                                                      [--steps 32] [--out FILE]
"""
import argparse
import json
import statistics
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM


def synced_ms(fn, reps):
    fn()
    torch.cuda.synchronize()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def copy_bandwidth():
    src = torch.rand(1 << 29, device="cuda")
    ms = synced_ms(lambda: src.clone(), 20)
    return 2 * src.numel() * 4 / (ms / 1e3) / 1e9


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=64)
    ap.add_argument("--batches", default="1,3,16")
    ap.add_argument("--steps", type=int, default=32)
    ap.add_argument("--out")
    args = ap.parse_args()

    bandwidth = copy_bandwidth()
    print(f"copy bandwidth (read + write): {bandwidth:.0f} GB/s", flush=True)

    config = Qwen2Config(
        vocab_size=152064, hidden_size=5120, intermediate_size=27648,
        num_hidden_layers=args.layers, num_attention_heads=40, num_key_value_heads=8,
        max_position_embeddings=4096, rope_theta=1e6, rms_norm_eps=1e-5,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    start = time.perf_counter()
    torch.set_default_dtype(torch.bfloat16)
    with torch.device("cuda"):
        model = Qwen2ForCausalLM(config)
    model.eval()
    torch.cuda.synchronize()
    build_s = time.perf_counter() - start
    weight_bytes = sum(
        p.numel() * p.element_size()
        for name, p in model.named_parameters()
        if "embed_tokens" not in name
    )
    floor_ms = weight_bytes / (bandwidth * 1e9) * 1e3
    print(f"{args.layers} layers bf16: {weight_bytes / 1e9:.1f} GB read per step "
          f"(built in {build_s:.0f} s); floor {floor_ms:.2f} ms per step", flush=True)

    decode = []
    batch1 = None
    with torch.inference_mode():
        for rows in [int(b) for b in args.batches.split(",")]:
            ids = torch.randint(0, config.vocab_size, (rows, 64), device="cuda")
            out = model(ids, use_cache=True, logits_to_keep=1)
            state = {"past": out.past_key_values,
                     "next": out.logits[:, -1].argmax(-1, keepdim=True)}

            def step():
                out = model(state["next"], past_key_values=state["past"], use_cache=True)
                state["past"] = out.past_key_values
                state["next"] = out.logits[:, -1].argmax(-1, keepdim=True)
                state["next"].cpu()

            step_ms = synced_ms(step, args.steps)
            batch1 = batch1 or step_ms
            tps = rows / (step_ms / 1e3)
            print(f"decode batch {rows:>2}: {step_ms:8.2f} ms/step {tps:9.1f} tok/s  "
                  f"floor fraction {floor_ms / step_ms:.2f}  step time {step_ms / batch1:.2f}x batch 1",
                  flush=True)
            decode.append({"rows": rows, "step_ms": step_ms, "tokens_per_s": tps,
                           "floor_fraction": floor_ms / step_ms,
                           "step_vs_batch1": step_ms / batch1})
            del state, out

        prompt = torch.randint(0, config.vocab_size, (1, 512), device="cuda")
        prefill_ms = synced_ms(lambda: model(prompt, use_cache=True, logits_to_keep=1), 3)
    prefill_tps = 512 / (prefill_ms / 1e3)
    print(f"prefill 512 tokens: {prefill_ms:.1f} ms, {prefill_tps:.0f} tok/s", flush=True)

    report = {
        "engine": "transformers", "torch": torch.__version__,
        "gpu": torch.cuda.get_device_name(0), "format": "bf16", "layers": args.layers,
        "copy_bandwidth_gb_s": bandwidth, "weight_bytes_per_step": weight_bytes,
        "floor_ms_per_step": floor_ms, "build_s": build_s, "decode": decode,
        "prefill_tokens": 512, "prefill_ms": prefill_ms, "prefill_tokens_per_s": prefill_tps,
    }
    if args.out:
        with open(args.out, "w") as f:
            json.dump(report, f, indent=2)


if __name__ == "__main__":
    main()
