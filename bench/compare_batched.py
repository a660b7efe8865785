#!/usr/bin/env python3
# Prints garlic/peer ratios of batched decode rates: garlic's figures (`garlic bench --streams
# ... --json`, a JSON list) against llama-batched-bench's (`--output-format jsonl` lines),
# matched by the number of parallel streams (pl). (No line here may read like a Python
# source-encoding declaration, which the interpreter would try to honour.)
# Each argument may list several files, one a round (comma-separated): every figure is then
# the median over the rounds (the ratio is of those medians).
# usage: bench/compare_batched.py GARLIC.json[,...] PEER.jsonl[,...]
import json
import statistics
import sys


def medians(rounds):
    """{pl: {field: median over the rounds}} for the fields compared."""
    out = {}
    for pl in set.intersection(*(set(r) for r in rounds)):
        out[pl] = {f: statistics.median(r[pl][f] for r in rounds) for f in ("speed_tg", "speed_pp")}
    return out


def peer_round(path):
    rows = {}
    for line in open(path):
        line = line.strip()
        if line.startswith("{"):
            r = json.loads(line)
            rows[r["pl"]] = r
    return rows


ours = medians([{r["pl"]: r for r in json.load(open(f))} for f in sys.argv[1].split(",") if f])
peer = medians([peer_round(f) for f in sys.argv[2].split(",") if f])
base_g = ours[min(ours)]["speed_tg"]
base_p = peer[min(peer)]["speed_tg"] if peer else None
print(f"{'streams':>7} | {'garlic TG t/s':>13} {'x 1st':>6} | {'peer TG t/s':>11} {'x 1st':>6} | {'ratio':>5}"
      f" | {'garlic PP t/s':>13} {'peer PP t/s':>11}")
for pl in sorted(ours):
    g = ours[pl]
    p = peer.get(pl)
    if p is None:
        continue
    print(f"{pl:>7} | {g['speed_tg']:13.2f} {g['speed_tg'] / base_g:6.2f} | {p['speed_tg']:11.2f} "
          f"{p['speed_tg'] / base_p:6.2f} | {g['speed_tg'] / p['speed_tg']:5.2f} | "
          f"{g['speed_pp']:13.2f} {p['speed_pp']:11.2f}")
