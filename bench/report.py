#!/usr/bin/env python3
# One model's lines of `make bench`: garlic's pp and tg rates (llama-bench JSON from `garlic
# bench --json`), the fraction of the memory-bandwidth bound that tg reaches, and, when the
# peer's llama-bench JSON is given, the ratios; for float weights (F16, BF16, F32) also the
# fraction of the compute bound that pp reaches.
#   GARLIC and PEER are comma-separated lists of files, one a round: bench/run.sh runs garlic
#   and the peer in turn, round after round, so a machine that slows down for a while slows
#   both. Each rate printed is the median over the rounds, the ratio is the median of the
#   rounds' ratios, and the rounds' lowest and highest ratios follow it.
#   bytes per token = every tensor's bytes except the token embedding's (decoding reads one
#   row of it; a tied embedding is read whole as the output matrix), from `garlic show
#   --json --tensors`, counting of the experts' tensors (names with "_exps") only the
#   experts a token runs (used / count of their bytes); bound = bandwidth / bytes per token. BANDWIDTHS has one figure a
#   round (measured right before it; empty: no bound), and the fraction printed is the
#   median of the rounds' fractions.
#   compute bound = the cores' float multiply-add peak (bench_peak) / (2 x the parameters of
#   the matrices a token multiplies, token embedding excluded): float weights are multiplied
#   as floats, so prompt processing cannot beat it.
# usage: bench/report.py LABEL GARLIC.json[,...] SHOW.json BANDWIDTHS_GBS[,...] [PEER.json[,...]]
#                        [FLOAT_PEAK_GFLOPS]
import json
import statistics
import sys


def rounds(arg):
    """Each round's rates by test: [{(n_prompt, n_gen): tokens/s}, ...]."""
    return [{(r["n_prompt"], r["n_gen"]): r["avg_ts"] for r in json.load(open(f))}
            for f in arg.split(",") if f]


label = sys.argv[1]
bandwidths = [float(b) for b in sys.argv[4].split(",") if b]
ours = rounds(sys.argv[2])
peer = rounds(sys.argv[5]) if len(sys.argv) > 5 else []
float_peak = float(sys.argv[6]) if len(sys.argv) > 6 else 0
show = json.load(open(sys.argv[3]))
tensors = show["tensors"]
names = {t["name"] for t in tensors}
experts = show.get("experts")
active = experts["used"] / experts["count"] if experts else 1.0
per_token = sum(t["bytes"] * (active if "_exps" in t["name"] else 1.0) for t in tensors
                if t["name"] != "token_embd.weight" or "output.weight" not in names)
matrices = [t for t in tensors if len(t["shape"]) == 2 and t["shape"][1] > 1
            and (t["name"] != "token_embd.weight" or "output.weight" not in names)]
float_weights = all(t["type"] in ("F16", "BF16", "F32") for t in matrices)
flops = 2 * sum(t["shape"][0] * t["shape"][1] for t in matrices)
compute_bound = float_peak * 1e9 / flops if float_peak > 0 and flops and float_weights else 0
for key in sorted(ours[0], key=lambda k: (k[0] == 0, k)):
    test = f"pp{key[0]}" if key[0] else f"tg{key[1]}"
    mine = [r[key] for r in ours if key in r]
    rate = statistics.median(mine)
    line = f"{label:8} {test:6} garlic {rate:9.2f} ({min(mine):.1f}-{max(mine):.1f}) t/s"
    if not key[0] and bandwidths:
        if len(bandwidths) != len(ours):  # a round's figure missing: the median for every round
            bandwidths = [statistics.median(bandwidths)] * len(ours)
        bounds = [b * 1e9 / per_token for b in bandwidths]
        fractions = [r[key] / b for r, b in zip(ours, bounds) if key in r]
        line += (f"   bandwidth bound {statistics.median(bounds):7.2f} t/s ({min(bandwidths):.1f}-"
                 f"{max(bandwidths):.1f} GB/s, {per_token / 1e6:.0f} MB/token): "
                 f"{100 * statistics.median(fractions):5.1f} %")
    if key[0] and compute_bound:
        line += f"   float compute bound {compute_bound:7.2f} t/s: {100 * rate / compute_bound:5.1f} %"
    pairs = [(g[key], p[key]) for g, p in zip(ours, peer) if key in g and key in p]
    if pairs:
        ratios = [g / p for g, p in pairs]
        line += (f"   peer {statistics.median(p for _, p in pairs):9.2f}   ratio "
                 f"{statistics.median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f} "
                 f"over {len(ratios)} rounds)")
    print(line)
