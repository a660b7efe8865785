#!/usr/bin/env python3
# Prints garlic/peer ratios of batched decode rates: garlic's figures (`garlic bench --streams
# ... --json`, a JSON list) against llama-batched-bench's (`--output-format jsonl` lines),
# matched by the number of parallel streams (pl). (No line here may read like a Python
# source-encoding declaration, which the interpreter would try to honour.)
# usage: bench/compare_batched.py GARLIC.json PEER.jsonl
import json
import sys

ours = {r["pl"]: r for r in json.load(open(sys.argv[1]))}
peer = {}
for line in open(sys.argv[2]):
    line = line.strip()
    if line.startswith("{"):
        r = json.loads(line)
        peer[r["pl"]] = r
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
