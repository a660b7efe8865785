#!/usr/bin/env python3
# Prints garlic/peer throughput ratios from two JSON files in llama-bench's format (a list
# of objects with n_prompt, n_gen, avg_ts, stddev_ts), matching tests by (n_prompt, n_gen).
# usage: bench/compare.py GARLIC.json PEER.json LABEL
import json
import sys

garlic, peer, label = sys.argv[1], sys.argv[2], sys.argv[3]
ours = {(r["n_prompt"], r["n_gen"]): r for r in json.load(open(garlic))}
for r in json.load(open(peer)):
    key = (r["n_prompt"], r["n_gen"])
    if key not in ours:
        continue
    test = f"pp{key[0]}" if key[0] else f"tg{key[1]}"
    g = ours[key]
    print(f"{label:12} {test:7} garlic {g['avg_ts']:9.2f} +- {g['stddev_ts']:6.2f}   "
          f"peer {r['avg_ts']:9.2f} +- {r['stddev_ts']:6.2f}   ratio {g['avg_ts'] / r['avg_ts']:.2f}")
