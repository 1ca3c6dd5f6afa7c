#!/usr/bin/env python3
"""One line per mode of `k2 eval` reports: problems graded, accuracy, and how many candidates
ran to the token limit (the sign of degenerate decoding); with `--hints`, the hint ladder's
leaks beside the plan's, and what the leak screen did. Usage: eval_summary.py REPORT.json..."""
import json
import sys

for path in sys.argv[1:]:
    try:
        report = json.load(open(path))
    except (OSError, ValueError) as e:
        print(f"{path}: unreadable ({e})")
        continue
    limit = report.get("settings", {}).get("sampling", {}).get("max_tokens", 1024)
    for mode in report["modes"]:
        candidates = [c for item in mode["items"] for c in item["candidates"]]
        at_limit = sum(c["finish"] == "max_tokens" for c in candidates)
        print(
            f"{path.split('/')[-1]:<16} {mode['mode']:<9} {len(mode['items']):>4} problems "
            f"acc {mode['accuracy']:.3f}  at the {limit}-token limit: {at_limit}/{len(candidates)}"
        )
        ladders = [item["hints"] for item in mode["items"] if "hints" in item]
        if not ladders:
            continue
        rungs = [r for ladder in ladders for r in ladder["rungs"] if not r["bottom_out"]]
        screened = {kind: sum(r.get("screened") == kind for r in rungs) for kind in ("rewritten", "cut")}
        withheld = sum(r["text"].startswith("This hint was withheld") for r in rungs)
        short = sum(len([r for r in ladder["rungs"] if not r["bottom_out"]]) < 3 for ladder in ladders)
        leaked = sum(ladder["leaked"] for ladder in ladders)
        plans = [ladder["plan_leaked"] for ladder in ladders if ladder.get("plan_leaked") is not None]
        tokens = sum(ladder["tokens"] for ladder in ladders) / len(ladders)
        print(
            f"  hints: ladder leaked on {leaked}/{len(ladders)} problems, plan as hints on "
            f"{sum(plans)}/{len(plans)}; {len(rungs)} rungs before the worked solution, "
            f"{screened['rewritten']} rewritten, {screened['cut']} cut ({withheld} withheld whole); "
            f"{short} ladders with fewer than 3 rungs; {tokens:.0f} hint tokens per problem"
        )
