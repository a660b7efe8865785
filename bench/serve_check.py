#!/usr/bin/env python3
# Server-level measurements for the memory issue, against a real `garlic serve` process:
#   memory  the planner's total (what /api/ps reports, the figure `garlic estimate` prints for
#           the same flags) against the server's RSS at full KV occupancy, over a grid of
#           context sizes, pool sizes and KV types;
#   idle    CPU time the server uses over N seconds with a model loaded and no requests;
#   fair    aggregate decode rate of two models served at once, each against its solo rate;
#   ttft    time to first token from process start, cold (first run of a file) and warm.
# Figures are printed, never asserted. usage:
#   bench/serve_check.py memory|idle|fair|ttft [--garlic ./garlic] MODEL [MODEL2]
import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, garlic, models, *flags):
        self.port = free_port()
        args = [garlic, "serve", "--port", str(self.port)]
        for m in models:
            args += ["-m", m]
        args += [str(f) for f in flags]
        self.t_start = time.monotonic()
        self.proc = subprocess.Popen(args, stderr=subprocess.PIPE, text=True)
        for line in self.proc.stderr:
            if "listening on" in line:
                break
        threading.Thread(target=lambda: [None for _ in self.proc.stderr], daemon=True).start()

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def get(self, path):
        with urllib.request.urlopen(self.url(path), timeout=600) as r:
            return json.loads(r.read())

    def post(self, path, body):
        req = urllib.request.Request(self.url(path), json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=3600) as r:
            return json.loads(r.read())

    def stream(self, body):
        """Streams a completion; returns (seconds to first token, tokens, seconds total)."""
        body = dict(body, stream=True)
        req = urllib.request.Request(self.url("/v1/completions"), json.dumps(body).encode(),
                                     {"Content-Type": "application/json"})
        t0 = time.monotonic()
        first, n = None, 0
        with urllib.request.urlopen(req, timeout=3600) as r:
            for line in r:
                if line.startswith(b"data: {"):
                    if first is None:
                        first = time.monotonic() - t0
                    n += 1
        return first, n, time.monotonic() - t0

    def rss(self):
        with open(f"/proc/{self.proc.pid}/status") as f:
            text = f.read()
        return {k: int(re.search(rf"{k}:\s+(\d+) kB", text).group(1)) * 1024
                for k in ("VmRSS", "VmHWM")}

    def mapped(self, path):
        """Anonymous resident bytes, and resident bytes of the mapping of path."""
        anon = file_rss = 0
        current = None
        with open(f"/proc/{self.proc.pid}/smaps") as f:
            for line in f:
                head = line.split()
                if re.match(r"^[0-9a-f]+-[0-9a-f]+ ", line):
                    current = head[5] if len(head) > 5 else ""
                elif head[0] == "Rss:" and current == os.path.abspath(path):
                    file_rss += int(head[1]) * 1024
                elif head[0] == "Anonymous:":
                    anon += int(head[1]) * 1024
        return anon, file_rss

    def cpu_seconds(self):
        with open(f"/proc/{self.proc.pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=30)


def name_of(path):
    return os.path.basename(path)[:-5] if path.endswith(".gguf") else os.path.basename(path)


def memory(a):
    """Plan against RSS at full KV occupancy. The file part is compared on its own: on a
    machine whose kernel reclaims cold pages (DAMON), never-read embedding rows of the
    mapping may be paged out after the prefault, which lowers RSS below the file size."""
    grid = [(ctx, seqs, kv) for ctx in (512, 2048) for seqs in (1, 4) for kv in ("f16", "q8_0", "fp8")]
    print("| ctx | pool (contexts) | kv | planned MiB | RSS MiB | RSS / planned | planned besides the file MiB | anonymous RSS MiB | ratio | file resident / size |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    size = os.path.getsize(a.model)
    for ctx, seqs, kv in grid:
        srv = Server(a.garlic, [a.model], "--ctx", ctx, "--kv-tokens", ctx * seqs, "--kv-type", kv,
                     "--parallel", seqs, "--threads", a.threads)
        try:
            name = name_of(a.model)
            vocab = 250
            # Fill the pool: `seqs` requests whose prompts take the whole context but one
            # position, each generating one token. Distinct prompts: nothing is shared.
            errors = []

            def fill(i):
                ids = [1] + [3 + (i * 7919 + j * 31) % vocab for j in range(ctx - 2)]
                try:
                    srv.post("/v1/completions", {"model": name, "prompt": ids, "max_tokens": 1,
                                                 "temperature": 0})
                except urllib.error.HTTPError as e:
                    errors.append(json.loads(e.read()).get("error", {}).get("message", str(e)))
            threads = [threading.Thread(target=fill, args=(i,)) for i in range(seqs)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            if errors:
                print(f"| {ctx} | {seqs} | {kv} | not served: {errors[0]} |", flush=True)
                continue
            planned = srv.get("/api/ps")["models"][0]["size"]
            mem = srv.rss()
            anon, file_rss = srv.mapped(a.model)
            # Anonymous memory also holds what the process had before any model (its heap and
            # stacks, part of the planned process overhead): it is compared as it is.
            print(f"| {ctx} | {seqs} | {kv} | {planned / 2**20:.1f} | {mem['VmRSS'] / 2**20:.1f} | "
                  f"{mem['VmRSS'] / planned:.3f} | {(planned - size) / 2**20:.1f} | "
                  f"{anon / 2**20:.1f} | {anon / (planned - size):.3f} | {file_rss / size:.3f} |",
                  flush=True)
        finally:
            srv.stop()


def idle(a):
    srv = Server(a.garlic, [a.model], "--threads", a.threads, "--keep-alive", "-1")
    try:
        srv.post("/v1/completions", {"model": name_of(a.model), "prompt": "Once", "max_tokens": 8})
        time.sleep(1)
        c0, t0 = srv.cpu_seconds(), time.monotonic()
        time.sleep(a.seconds)
        c1, t1 = srv.cpu_seconds(), time.monotonic()
        print(f"idle: {c1 - c0:.3f} s of CPU over {t1 - t0:.1f} s = {100 * (c1 - c0) / (t1 - t0):.3f} % "
              f"of one core (a model loaded, no requests)")
    finally:
        srv.stop()


def fair(a):
    models = [a.model, a.model2 or a.model]
    names = [name_of(models[0]), name_of(models[1])]
    if names[0] == names[1]:
        models[1] = models[1] + "=second"
        names[1] = "second"
    srv = Server(a.garlic, models, "--threads", a.threads, "--keep-alive", "-1")
    body = {"prompt": "Once upon a time", "max_tokens": a.tokens, "temperature": 0,
            "logit_bias": {"2": -100}}
    try:
        for n in names:  # load both
            srv.post("/v1/completions", dict(body, model=n, max_tokens=2))
        solo = []
        for n in names:
            _, k, sec = srv.stream(dict(body, model=n))
            solo.append(k / sec)
        both = [None, None]

        def run(i):
            _, k, sec = srv.stream(dict(body, model=names[i]))
            both[i] = k / sec
        ts = [threading.Thread(target=run, args=(i,)) for i in range(2)]
        for t in ts:
            t.start()
        for t in ts:
            t.join()
        for i in range(2):
            print(f"{names[i]}: solo {solo[i]:.1f} t/s, with the other model busy {both[i]:.1f} t/s "
                  f"= {100 * both[i] / solo[i]:.0f} % of solo")
    finally:
        srv.stop()


def ttft(a):
    name = name_of(a.model)
    for label in ("first start", "second start (file in the page cache)"):
        t0 = time.monotonic()
        srv = Server(a.garlic, [a.model], "--threads", a.threads)
        try:
            first, _, _ = srv.stream({"model": name, "prompt": "Once upon a time", "max_tokens": 4})
            total = time.monotonic() - t0
            print(f"{label}: first token {total * 1e3:.0f} ms after the process started "
                  f"({first * 1e3:.0f} ms after the request)")
        finally:
            srv.stop()


def main():
    p = argparse.ArgumentParser()
    p.add_argument("what", choices=["memory", "idle", "fair", "ttft"])
    p.add_argument("model")
    p.add_argument("model2", nargs="?")
    p.add_argument("--garlic", default="./garlic")
    p.add_argument("--threads", default="2")
    p.add_argument("--seconds", type=float, default=30)
    p.add_argument("--tokens", type=int, default=128)
    a = p.parse_args()
    {"memory": memory, "idle": idle, "fair": fair, "ttft": ttft}[a.what](a)


if __name__ == "__main__":
    sys.exit(main())
