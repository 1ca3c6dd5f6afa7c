#!/usr/bin/env python3
"""One line per mode of `k2 eval` reports: problems graded, accuracy, and how many candidates
ran to the token limit (the sign of degenerate decoding). Usage: eval_summary.py REPORT.json..."""
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
