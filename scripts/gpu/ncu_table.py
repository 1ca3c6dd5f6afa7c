#!/usr/bin/env python3
"""Prints per-kernel time and DRAM bytes from an `ncu --csv` log (scripts/gpu/run.sh's
profile step): where a decoding step's time goes, kernel by kernel."""
import csv
import sys

UNITS = {"ns": 1e-3, "us": 1.0, "ms": 1e3, "s": 1e6, "nsecond": 1e-3, "usecond": 1.0, "msecond": 1e3}
BYTES = {"byte": 1, "Kbyte": 1e3, "Mbyte": 1e6, "Gbyte": 1e9}

rows = list(csv.reader(line for line in open(sys.argv[1]) if line.startswith('"')))
header, data = rows[0], rows[1:]
col = {name: header.index(name) for name in
       ("ID", "Kernel Name", "Metric Name", "Metric Unit", "Metric Value")}
kernels = {}
for r in data:
    k = kernels.setdefault(int(r[col["ID"]]), {"name": r[col["Kernel Name"]][:70]})
    value = float(r[col["Metric Value"]].replace(",", ""))
    unit = r[col["Metric Unit"]]
    if r[col["Metric Name"]] == "gpu__time_duration.sum":
        k["us"] = value * UNITS[unit]
    else:
        k["bytes"] = value * BYTES[unit]
total = 0.0
for _, k in sorted(kernels.items()):
    us, b = k.get("us", 0.0), k.get("bytes", 0.0)
    total += us
    print(f"{us:9.2f} us {b / 1e6:9.2f} MB {b / us / 1e6 if us else 0:5.2f} TB/s  {k['name']}")
print(f"{total:9.2f} us in {len(kernels)} kernels")
# Grouped by kernel: over many layers, which kinds of kernel the step's time goes to.
groups = {}
for k in kernels.values():
    g = groups.setdefault(k["name"], [0, 0.0, 0.0])
    g[0] += 1
    g[1] += k.get("us", 0.0)
    g[2] += k.get("bytes", 0.0)
print("\nby kernel: launches, total time, share, bytes")
for name, (count, us, b) in sorted(groups.items(), key=lambda item: -item[1][1]):
    print(f"{count:5d} {us:9.2f} us {100 * us / total if total else 0:5.1f}% {b / 1e6:9.2f} MB  {name}")
