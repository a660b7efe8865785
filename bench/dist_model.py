#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The performance model of docs/distributed.md ("Performance model: 70B over two kinds of
links"): predicted decode tokens/s and prompt time of Llama-3-70B split 8 ways, by tensor
parallelism (TP=8: two all-reduces a layer) or pipeline parallelism (PP=8: one send a stage
boundary), over NVLink, 400 Gb/s and 100 Gb/s InfiniBand/RoCE and 100 GbE TCP. Compute time
is the bytes each rank reads over its memory bandwidth (decode) or its FLOPs over its peak
(prompts); a transfer costs alpha + bytes/beta a message. First it checks that alpha-beta form
against the transfers measured on this machine with bench/bench_dist (the medians below).
Standard library only; every input is a named constant or a flag. Prints Markdown tables."""

import argparse
import math

# Llama-3-70B (config.json of meta-llama/Meta-Llama-3-70B).
MODEL = dict(n_layer=80, dim=8192, n_head=64, n_head_kv=8, ffn=28672, n_vocab=128256)

# Bits per weight: BF16; FP8 (per-channel scales are negligible); Q4 as GGUF Q4_0 (18 bytes a
# block of 32, 4.5 bits; the K-quant mixtures are 4.5-4.9).
WEIGHT_BITS = {"BF16": 16.0, "FP8": 8.0, "Q4": 4.5}

# One H100 SXM: HBM3 3.35 TB/s, of which decoding reaches about 75 % (the 70-80 % that
# memory-bound GEMV kernels report); dense tensor-core peaks 989 TFLOPS BF16, 1979 FP8, of
# which a long prompt reaches about 60 %. Q4 weights are dequantized to BF16 for prompts.
GPU = dict(name="H100 SXM", mem_bw=3.35e12, mem_eff=0.75, mfu=0.60,
           peak={"BF16": 989e12, "FP8": 1979e12, "Q4": 989e12}, mem=80e9)

# Links: beta (bytes/s one way, as achieved) and h (seconds a message step: software, NIC,
# switch). NVLink 4 through NVSwitch: 450 GB/s a direction a GPU, 80 % achieved; a few us a
# step (NCCL or a custom all-reduce). InfiniBand/RoCE with GPUDirect RDMA: 90 % of the line
# rate, 5 us a step (1-2 us of wire and switch, the rest NIC, PCIe and the library's proxy).
# 100 GbE without RDMA (Open MPI's tcp transport, what garlic's ranks use today): 70 % of
# the line rate through the kernel's TCP stack, and a step's latency of this machine's
# measured loopback TCP half round trip (below) plus 5 us of wire, NIC and switch.
# --ib-hop-us replaces the 5 us of InfiniBand/RoCE (NCCL's small all-reduces across nodes are
# often reported slower than this).
TCP_HALF_ROUND_TRIP = 7.5e-6  # bench_dist send over --mca btl self,tcp: 4-byte round trip 15.0 us


def make_links(ib_hop):
    """The links of the tables, with ib_hop seconds a message step on InfiniBand/RoCE."""
    return {
        "NVLink (one node)": dict(beta=0.80 * 450e9, h=3e-6),
        "IB/RoCE 400 Gb/s": dict(beta=0.90 * 400e9 / 8, h=ib_hop),
        "IB/RoCE 100 Gb/s": dict(beta=0.90 * 100e9 / 8, h=ib_hop),
        "TCP 100 GbE": dict(beta=0.70 * 100e9 / 8, h=TCP_HALF_ROUND_TRIP + 5e-6),
    }

# Measured on this machine (2 vCPUs shared, Open MPI 4.1.4, 2 ranks): bench_dist's medians in
# seconds by message bytes, the median of four rounds (docs/distributed.md has the commands
# and the ranges). Used only to check the alpha-beta form of a transfer.
MEASURED = {
    "all-reduce, shared memory (vader)": {
        32768: 19.3e-6, 131072: 55.2e-6, 524288: 184.9e-6, 2097152: 567.5e-6,
        4194304: 4928.6e-6, 16777216: 18876.2e-6},
    "send, shared memory (vader)": {
        32768: 4.6e-6, 131072: 11.4e-6, 524288: 30.2e-6, 2097152: 117.5e-6,
        4194304: 231.1e-6, 16777216: 1545.5e-6},
    "all-reduce, loopback TCP": {
        32768: 25.1e-6, 131072: 107.6e-6, 524288: 283.4e-6, 2097152: 726.7e-6,
        4194304: 9709.5e-6, 16777216: 57250.8e-6},
    "send, loopback TCP": {
        32768: 30.4e-6, 131072: 81.3e-6, 524288: 264.5e-6, 2097152: 1043.0e-6,
        4194304: 7239.0e-6, 16777216: 27835.3e-6},
}


def layer_params(m):
    """Weights of one layer's matrices: Q, O (dim x dim), K, V (dim x kv_dim), gate, up, down."""
    kv_dim = m["dim"] // m["n_head"] * m["n_head_kv"]
    return 2 * m["dim"] * m["dim"] + 2 * m["dim"] * kv_dim + 3 * m["dim"] * m["ffn"]


def kv_bytes_per_position(m, kv_bytes):
    """Bytes of K and V one position keeps in one layer."""
    return 2 * m["dim"] // m["n_head"] * m["n_head_kv"] * kv_bytes


def send_time(link, nbytes):
    """One message: h + bytes / beta."""
    return link["h"] + nbytes / link["beta"]


def all_reduce_time(link, nbytes, t):
    """An all-reduce of nbytes on t ranks: the faster of a ring (2(t-1) steps, each 1/t of the
    data: every rank sends 2(t-1)/t of it) and recursive doubling (log2 t steps of all of it),
    as MPI libraries and NCCL choose by size."""
    if t == 1:
        return 0.0
    ring = 2 * (t - 1) * (link["h"] + nbytes / t / link["beta"])
    doubling = math.ceil(math.log2(t)) * (link["h"] + nbytes / link["beta"])
    return min(ring, doubling)


def decode_compute(a, wtype, batch, layers, share, output_share):
    """Seconds of one decode step of `batch` sequences on one rank holding `layers` layers'
    weights and KV cut `share` ways (TP: 1/8 of every layer; PP: all of 10 layers) and
    `output_share` of the output layer: the larger of the bytes read over the memory
    bandwidth and the FLOPs over the peak."""
    m = MODEL
    wbytes = (layer_params(m) * layers
              + m["n_vocab"] * m["dim"] * output_share) * WEIGHT_BITS[wtype] / 8 / share
    kv = kv_bytes_per_position(m, a.kv_bytes) * layers * a.context * batch / share
    mem = (wbytes + kv) / (GPU["mem_bw"] * GPU["mem_eff"])
    flops = 2 * (layer_params(m) * layers + m["n_vocab"] * m["dim"] * output_share) * batch
    flops += 4 * m["dim"] * a.context * layers * batch  # attention: q.k and p.v at each position
    return max(mem, flops / share / (GPU["peak"][wtype] * GPU["mfu"]))


def tp_decode(a, wtype, link, batch):
    """Tokens/s of TP=T decoding `batch` sequences: every rank reads 1/T of every layer, then
    2 all-reduces a layer of batch x dim activations and the gather of the logits."""
    m, t = MODEL, a.ranks
    step = decode_compute(a, wtype, batch, m["n_layer"], t, 1.0)
    act = batch * m["dim"] * a.act_bytes
    step += 2 * m["n_layer"] * all_reduce_time(link, act, t)
    logits = batch * m["n_vocab"] * 4 * (t - 1) / t  # gathered in floats
    step += math.ceil(math.log2(t)) * link["h"] + logits / link["beta"]
    return batch / step


def pp_stage(a, wtype, link, micro):
    """Seconds of one stage's turn with a micro-batch of `micro` sequences: its layers, then the
    send of micro x dim activations to the next stage (blocking, as garlic's)."""
    m, p = MODEL, a.ranks
    # The output layer sits on the last stage; the planner balances stages by bytes, so it is
    # spread evenly here.
    return (decode_compute(a, wtype, micro, m["n_layer"] / p, 1, 1.0 / p)
            + send_time(link, micro * m["dim"] * a.act_bytes))


def pp_decode(a, wtype, link, batch, overlap=True):
    """Tokens/s of PP=P decoding `batch` sequences split into min(batch, P) micro-batches that
    fill the pipeline (one sequence: every stage waits for the others, P turns a token). A
    cycle is P stage turns, and the sampled tokens go back to stage 0 (one small message).
    Without overlap (garlic's pipeline today) the whole batch is one micro-batch."""
    p = a.ranks
    n_micro = min(batch, p) if overlap else 1
    micro = batch / n_micro
    cycle = p * pp_stage(a, wtype, link, micro) + send_time(link, 4 * micro)
    return batch / cycle


def prompt_flops(n):
    """FLOPs of an n-token prompt: 2 a weight a token and the causal attention."""
    m = MODEL
    return 2 * layer_params(m) * m["n_layer"] * n + 2 * n * n * m["dim"] * m["n_layer"]


def tp_prompt(a, wtype, link):
    """Seconds for one prompt under TP=T: 1/T of the FLOPs, then 2 all-reduces a layer of the
    prompt's n x dim activations (not overlapped with compute)."""
    m, t, n = MODEL, a.ranks, a.prompt
    compute = prompt_flops(n) / t / (GPU["peak"][wtype] * GPU["mfu"])
    return compute + 2 * m["n_layer"] * all_reduce_time(link, n * m["dim"] * a.act_bytes, t)


def pp_prompt(a, wtype, link, chunks):
    """Seconds for one prompt under PP=P cut into `chunks` chunks that follow each other
    through the stages: chunks + P - 1 stage turns, each 1/P of a chunk's FLOPs and one send
    (the attention's growth from chunk to chunk is averaged)."""
    m, p, n = MODEL, a.ranks, a.prompt
    turn = prompt_flops(n) / p / chunks / (GPU["peak"][wtype] * GPU["mfu"])
    turn += send_time(link, n / chunks * m["dim"] * a.act_bytes)
    return (chunks + p - 1) * turn


def check_measured():
    """Fits h and beta of each measured series on its 32 KiB and 2 MiB medians and prints how
    far the other sizes fall from the fitted line."""
    print("Alpha-beta check on this machine's medians (2 ranks): fitted on 32 KiB and 2 MiB\n")
    print("| series | h (us) | beta (GB/s) | measured / fitted: 128 KiB, 512 KiB, 4 MiB, 16 MiB |")
    print("|---|---|---|---|")
    for name, points in MEASURED.items():
        small, large = 32768, 2097152
        beta = (large - small) / (points[large] - points[small])
        h = points[small] - small / beta
        ratios = ", ".join(f"{points[b] / (h + b / beta):.2f}"
                           for b in (131072, 524288, 4194304, 16777216))
        print(f"| {name} | {h * 1e6:.1f} | {beta / 1e9:.1f} | {ratios} |")
    print()


def per_token_traffic(a):
    """Bytes and messages a decoded token sends under each layout."""
    m, t = MODEL, a.ranks
    act = m["dim"] * a.act_bytes
    ar_bytes = 2 * (t - 1) / t * act
    print(f"Per decoded token ({a.act_bytes}-byte activations, {t} ranks):\n")
    print("| layout | messages | bytes sent by each rank | bytes crossing the slowest link |")
    print("|---|---|---|---|")
    print(f"| TP={t} | {2 * m['n_layer']} all-reduces of {act / 1024:.0f} KiB + a logit gather "
          f"| {2 * m['n_layer'] * ar_bytes / 1e6:.2f} MB + {m['n_vocab'] * 4 / t / 1e3:.0f} kB "
          f"of logits | the same, on every link of the ring |")
    print(f"| PP={t} | {t - 1} sends of {act / 1024:.0f} KiB + the token back "
          f"| {act / 1024:.0f} KiB from each stage but the last | {act / 1024:.0f} KiB |\n")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ranks", type=int, default=8, help="T of TP and P of PP (default 8)")
    ap.add_argument("--context", type=int, default=2048,
                    help="positions each sequence's decode step attends (default 2048)")
    ap.add_argument("--prompt", type=int, default=2048, help="prompt tokens (default 2048)")
    ap.add_argument("--act-bytes", type=int, default=2,
                    help="bytes an activation on the wire: 2 (BF16, vLLM/SGLang), 4 (garlic)")
    ap.add_argument("--kv-bytes", type=int, default=2, help="bytes a KV value (default 2)")
    ap.add_argument("--batches", default="1,32,256", help="decode batches (default 1,32,256)")
    ap.add_argument("--chunks", type=int, default=8, help="PP prompt chunks (default 8)")
    ap.add_argument("--ib-hop-us", type=float, default=5.0,
                    help="InfiniBand/RoCE microseconds a message step (default 5)")
    ap.add_argument("--mem-bw", type=float, default=GPU["mem_bw"] / 1e12,
                    help="a rank's memory bandwidth, TB/s (default the H100's 3.35)")
    ap.add_argument("--peak-tflops", type=float, default=0,
                    help="a rank's peak TFLOPS for every weight type (default the H100's)")
    a = ap.parse_args()
    batches = [int(b) for b in a.batches.split(",")]
    GPU["mem_bw"] = a.mem_bw * 1e12
    if a.peak_tflops > 0:
        GPU["name"] = f"a rank of {a.mem_bw:g} TB/s, {a.peak_tflops:g} TFLOPS"
        GPU["peak"] = {w: a.peak_tflops * 1e12 for w in WEIGHT_BITS}

    check_measured()
    per_token_traffic(a)
    m = MODEL
    n_params = layer_params(m) * m["n_layer"] + 2 * m["n_vocab"] * m["dim"]
    print(f"Llama-3-70B: {n_params / 1e9:.1f} B parameters; {GPU['name']}: "
          f"{GPU['mem_bw'] / 1e12:.2f} TB/s x {GPU['mem_eff']:.0%}, {GPU['mfu']:.0%} of peak "
          f"for prompts; context {a.context}, prompt {a.prompt}, activations "
          f"{a.act_bytes} bytes\n")
    head = " | ".join(f"decode B={b} tok/s" for b in batches)
    print(f"| weights | layout | link | {head} | prompt {a.prompt} s |")
    print("|---|---|---|" + "---|" * len(batches) + "---|")
    for wtype in WEIGHT_BITS:
        for layout in ("TP", "PP"):
            for link_name, link in make_links(a.ib_hop_us * 1e-6).items():
                if layout == "TP":
                    rates = [tp_decode(a, wtype, link, b) for b in batches]
                    prompt = tp_prompt(a, wtype, link)
                else:
                    rates = [pp_decode(a, wtype, link, b) for b in batches]
                    prompt = pp_prompt(a, wtype, link, a.chunks)
                cells = " | ".join(f"{r:.0f}" if r >= 10 else f"{r:.1f}" for r in rates)
                print(f"| {wtype} | {layout}={a.ranks} | {link_name} | {cells} | {prompt:.3f} |")
    print()
    print(f"PP={a.ranks} without overlapping decode steps (the whole batch walks the stages "
          "in turn, as garlic's pipeline does today), BF16:\n")
    print(f"| link | {head} |")
    print("|---|" + "---|" * len(batches))
    for link_name, link in make_links(a.ib_hop_us * 1e-6).items():
        rates = [pp_decode(a, "BF16", link, b, overlap=False) for b in batches]
        print(f"| {link_name} | " + " | ".join(f"{r:.0f}" for r in rates) + " |")
    print()
    # One GPU holding everything, where it fits: the yardstick for a split's gain.
    print(f"One rank ({GPU['name']}) alone, where the weights fit in {GPU['mem'] / 1e9:.0f} GB:\n")
    print("| weights | weights GB | decode B=1 tok/s | prompt s |")
    print("|---|---|---|---|")
    for wtype, bits in WEIGHT_BITS.items():
        gb = n_params * bits / 8 / 1e9
        if gb > GPU["mem"] * 0.9:
            print(f"| {wtype} | {gb:.0f} | does not fit | |")
            continue
        one = decode_compute(a, wtype, 1, m["n_layer"], 1, 1.0)
        prompt = prompt_flops(a.prompt) / (GPU["peak"][wtype] * GPU["mfu"])
        print(f"| {wtype} | {gb:.0f} | {1 / one:.0f} | {prompt:.3f} |")


if __name__ == "__main__":
    main()
