#!/usr/bin/env python3
# The long-context lines of `make bench` (issue 21): garlic's pp and tg rates at each depth
# (`garlic bench -d N --json`) beside llama-bench's variants on the same file and KV type
# (`llama-bench -d N -fa 0` and `-fa 1`, or only `-fa 1` for a quantized V cache), and the
# ratio of garlic to the faster variant. Each argument after the KV type is one run's files,
# comma-separated, one a round (run.sh runs garlic and the peers in turn, round after round):
# the rates printed are medians over the rounds, the ratio is the median of the rounds' ratios
# (each against that round's faster variant), with the rounds' lowest and highest.
# usage: bench/report_depth.py LABEL KV GARLIC.json[,...] [NAME=PEER.json[,...] ...]
import json
import statistics
import sys


def rounds(arg):
    """Each round's rates by test: [{(n_prompt, n_gen, n_depth): tokens/s}, ...]."""
    out = []
    for f in arg.split(","):
        if not f:
            continue
        try:
            rows = json.load(open(f))
        except (OSError, ValueError) as e:  # a peer that failed (e.g. out of memory)
            print(f"  ({f}: {e})")
            continue
        out.append({(r["n_prompt"], r["n_gen"], r.get("n_depth", 0)): r["avg_ts"] for r in rows})
    return out


label, kv = sys.argv[1], sys.argv[2]
ours = rounds(sys.argv[3])
peers = []
for arg in sys.argv[4:]:
    name, _, files = arg.partition("=")
    peers.append((name, rounds(files)))
if not ours:
    sys.exit(f"{label}: no garlic figures")
for key in sorted(ours[0], key=lambda k: (k[2], k[0] == 0, k)):
    test = (f"pp{key[0]}" if key[0] else f"tg{key[1]}") + (f" @ d{key[2]}" if key[2] else "")
    mine = [r[key] for r in ours if key in r]
    line = (f"{label:8} kv {kv:5} {test:15} garlic {statistics.median(mine):8.2f} "
            f"({min(mine):.1f}-{max(mine):.1f})")
    ratios = []
    for i, g in enumerate(ours):
        best = max((p[i][key] for _, p in peers if i < len(p) and key in p[i]), default=0)
        if key in g and best > 0:
            ratios.append(g[key] / best)
    for name, p in peers:
        theirs = [r[key] for r in p if key in r]
        if theirs:
            line += f"   {name} {statistics.median(theirs):8.2f}"
    if ratios:
        line += (f"   ratio to the faster {statistics.median(ratios):.2f} "
                 f"({min(ratios):.2f}-{max(ratios):.2f} over {len(ratios)} rounds)")
    print(line)
