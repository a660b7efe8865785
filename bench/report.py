#!/usr/bin/env python3
# One model's line of `make bench`: garlic's pp and tg rates (llama-bench JSON from `garlic
# bench --json`), the fraction of the memory-bandwidth bound that tg reaches, and, when a
# peer's llama-bench JSON is given, the ratios; for float weights (F16, BF16, F32) also the
# fraction of the compute bound that pp reaches.
#   bytes per token = every tensor's bytes except the token embedding's (decoding reads one
#   row of it; a tied embedding is read whole as the output matrix), from `garlic show
#   --json --tensors`; bound = bandwidth / bytes per token.
#   compute bound = the cores' float multiply-add peak (bench_peak) / (2 x the parameters of
#   the matrices a token multiplies, token embedding excluded): float weights are multiplied
#   as floats, so prompt processing cannot beat it.
# usage: bench/report.py LABEL GARLIC.json SHOW.json BANDWIDTH_GBS [PEER.json] [FLOAT_PEAK_GFLOPS]
import json
import sys

label, garlic, show, bandwidth = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4])
peer = json.load(open(sys.argv[5])) if len(sys.argv) > 5 and sys.argv[5] else []
float_peak = float(sys.argv[6]) if len(sys.argv) > 6 else 0
tensors = json.load(open(show))["tensors"]
names = {t["name"] for t in tensors}
per_token = sum(t["bytes"] for t in tensors
                if t["name"] != "token_embd.weight" or "output.weight" not in names)
bound = bandwidth * 1e9 / per_token if bandwidth > 0 else 0
matrices = [t for t in tensors if len(t["shape"]) == 2 and t["shape"][1] > 1
            and (t["name"] != "token_embd.weight" or "output.weight" not in names)]
float_weights = all(t["type"] in ("F16", "BF16", "F32") for t in matrices)
flops = 2 * sum(t["shape"][0] * t["shape"][1] for t in matrices)
compute_bound = float_peak * 1e9 / flops if float_peak > 0 and flops and float_weights else 0
peers = {(r["n_prompt"], r["n_gen"]): r for r in peer}
for r in json.load(open(garlic)):
    key = (r["n_prompt"], r["n_gen"])
    test = f"pp{key[0]}" if key[0] else f"tg{key[1]}"
    line = f"{label:8} {test:6} garlic {r['avg_ts']:9.2f} +- {r['stddev_ts']:6.2f} t/s"
    if not key[0] and bound:
        line += f"   bandwidth bound {bound:7.2f} t/s ({per_token / 1e6:.0f} MB/token): {100 * r['avg_ts'] / bound:5.1f} %"
    if key[0] and compute_bound:
        line += f"   float compute bound {compute_bound:7.2f} t/s: {100 * r['avg_ts'] / compute_bound:5.1f} %"
    p = peers.get(key)
    if p:
        line += f"   peer {p['avg_ts']:9.2f} +- {p['stddev_ts']:6.2f}   ratio {r['avg_ts'] / p['avg_ts']:.2f}"
    print(line)
