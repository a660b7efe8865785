#!/usr/bin/env python3
# Sharing the CPU (issue 22): garlic's default thread count against --threads 1 when the
# machine is idle, when a busy loop holds one core, and when two garlic processes are under
# load at once. Two workloads: many short requests to a served tiny model (requests/s,
# clients on keep-alive connections), and `garlic bench` pp/tg on a larger model (tokens/s).
# Each figure is the median of --rounds rounds, the variants interleaved round by round so a
# slow stretch of a shared machine falls on all of them; a ratio is the ratio of the medians.
# A round of requests starts fresh servers and counts after --warmup seconds of load (a
# long-running server's steady state; the pool's first verdicts on whether its workers pay
# fall in the warm-up). `garlic bench` counts after its own warm-up run. Figures are
# printed, never asserted.
# usage: bench/cpu_share.py [--garlic ./garlic] [--rounds N] [--seconds S] [--only requests|tokens]
#                           [--conditions idle,busy,two] TINY.gguf LARGE.gguf
import argparse
import http.client
import json
import os
import signal
import socket
import statistics
import subprocess
import threading
import time

PROMPT = "Once upon a time"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, garlic, model, threads, max_tokens):
        self.port = free_port()
        args = [garlic, "serve", "--port", str(self.port), "-m", model, "--keep-alive", "-1"]
        if threads:
            args += ["--threads", str(threads)]
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
        for line in self.proc.stderr:
            if "listening on" in line:
                break
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()
        self.name = os.path.basename(model)[:-5]
        self.body = json.dumps({"model": self.name, "prompt": PROMPT, "max_tokens": max_tokens,
                                "temperature": 0}).encode()
        self.request(http.client.HTTPConnection("127.0.0.1", self.port, timeout=60))  # loads it

    def request(self, conn):
        conn.request("POST", "/v1/completions", self.body, {"Content-Type": "application/json"})
        r = conn.getresponse()
        r.read()
        if r.status != 200:
            raise RuntimeError(f"status {r.status}")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def load(servers, clients, seconds):
    """Requests/s of each server with `clients` keep-alive clients each for `seconds`."""
    counts = [0] * len(servers)
    start = time.monotonic()
    stop_at = start + seconds

    def client(i):
        conn = http.client.HTTPConnection("127.0.0.1", servers[i].port, timeout=60)
        while time.monotonic() < stop_at:
            servers[i].request(conn)
            counts[i] += 1
        conn.close()

    threads = [threading.Thread(target=client, args=(i,)) for i in range(len(servers))
               for _ in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    return [c / elapsed for c in counts]


class Spinner:
    """A busy loop pinned to the last CPU this process may use (or none)."""

    def __init__(self, on):
        self.proc = None
        if on:
            cpu = max(os.sched_getaffinity(0))
            self.proc = subprocess.Popen(["taskset", "-c", str(cpu), "sh", "-c",
                                          "while :; do :; done"])

    def __enter__(self):
        time.sleep(0.2)
        return self

    def __exit__(self, *exc):
        if self.proc:
            self.proc.kill()
            self.proc.wait()


def requests_round(a, threads, spin, two):
    servers = [Server(a.garlic, a.tiny, threads, a.max_tokens) for _ in range(2 if two else 1)]
    try:
        with Spinner(spin):
            load(servers, a.clients, a.warmup)  # not counted: a server's first second
            rates = load(servers, a.clients, a.seconds)
    finally:
        for s in servers:
            s.stop()
    return sum(rates)


def bench_round(a, threads, spin, two):
    """pp and tg tokens/s of `garlic bench` (summed over both processes when two)."""
    args = [a.garlic, "bench", a.large, "-p", str(a.pp), "-n", str(a.tg), "-r", "1", "--json"]
    if threads:
        args += ["-t", str(threads)]
    with Spinner(spin):
        procs = [subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
                 for _ in range(2 if two else 1)]
        outs = [json.loads(p.communicate()[0]) for p in procs]
    pp = tg = 0.0
    for out in outs:
        for row in out:
            if row["n_prompt"] > 0:
                pp += row["avg_ts"]
            else:
                tg += row["avg_ts"]
    return pp, tg


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--garlic", default="./garlic")
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--seconds", type=float, default=5)
    p.add_argument("--clients", type=int, default=4, help="clients per server")
    p.add_argument("--warmup", type=float, default=1,
                   help="seconds of load on fresh servers before counting")
    p.add_argument("--max-tokens", type=int, default=64, help="tokens a request generates")
    p.add_argument("--pp", type=int, default=128)
    p.add_argument("--tg", type=int, default=32)
    p.add_argument("--only", choices=["requests", "tokens"])
    p.add_argument("--conditions", default="idle,busy,two",
                   help="which of idle, busy (a busy loop on one core), two (two processes)")
    p.add_argument("tiny")
    p.add_argument("large")
    a = p.parse_args()
    conditions = [c for key, c in (("idle", ("idle", False, False)),
                                   ("busy", ("busy loop on one core", True, False)),
                                   ("two", ("two processes at once", False, True)))
                  if key in a.conditions.split(",")]
    variants = [("default threads", 0), ("--threads 1", 1)]
    probe = subprocess.run([a.garlic, "bench", a.large, "-p", "8", "-n", "2", "-r", "1", "--json"],
                           stdout=subprocess.PIPE, text=True, check=True)
    print(f"garlic's default threads: {json.loads(probe.stdout)[0]['n_threads']} "
          f"({os.cpu_count()} CPUs, {len(os.sched_getaffinity(0))} in this process's affinity); "
          f"load average {os.getloadavg()[0]:.1f} before; medians of {a.rounds} rounds "
          "(a shared machine: expect noise)")
    if a.only != "tokens":
        print(f"\n{os.path.basename(a.tiny)}: requests/s, {a.clients} clients a server, "
              f"'{PROMPT}' + {a.max_tokens} tokens, {a.seconds:g} s a round after "
              f"{a.warmup:g} s of warm-up load")
        print("| condition | default threads | --threads 1 | default / 1 |")
        print("|---|---|---|---|")
        for label, spin, two in conditions:
            got = {v: [] for v, _ in variants}
            for _ in range(a.rounds):
                for v, t in variants:
                    got[v].append(requests_round(a, t, spin, two))
            d, o = statistics.median(got["default threads"]), statistics.median(got["--threads 1"])
            print(f"| {label} | {d:.1f} | {o:.1f} | {d / o:.2f} |", flush=True)
    if a.only != "requests":
        print(f"\n{os.path.basename(a.large)}: garlic bench pp{a.pp} / tg{a.tg} tokens/s "
              "(two processes: the sum)")
        print("| condition | pp default | pp --threads 1 | ratio | tg default | tg --threads 1 | ratio |")
        print("|---|---|---|---|---|---|---|")
        for label, spin, two in conditions:
            got = {v: [] for v, _ in variants}
            for _ in range(a.rounds):
                for v, t in variants:
                    got[v].append(bench_round(a, t, spin, two))
            pd = statistics.median(x[0] for x in got["default threads"])
            po = statistics.median(x[0] for x in got["--threads 1"])
            td = statistics.median(x[1] for x in got["default threads"])
            to = statistics.median(x[1] for x in got["--threads 1"])
            print(f"| {label} | {pd:.1f} | {po:.1f} | {pd / po:.2f} | {td:.1f} | {to:.1f} | "
                  f"{td / to:.2f} |", flush=True)


if __name__ == "__main__":
    main()
