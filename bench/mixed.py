#!/usr/bin/env python3
# Mixed traffic (issue 21): does a stream that is decoding keep its pace while new prompts
# arrive? A server (garlic serve, then llama-server when --llama-server names one, in turn,
# round after round) first decodes one stream alone (the solo inter-token times), then
# --streams streams at once while a new prompt of --prompt-tokens random token ids arrives
# every --every seconds for --seconds seconds (each asks for one token, so it is all
# prefill). Every streamed token's arrival time is recorded per stream (SSE events of a
# streamed /v1/completions, one per token); an inter-token time is the gap between a stream's
# consecutive tokens (its first token excluded; tokens that arrive in one event are apart by 0). Printed: solo and mixed p50 and p99 and the
# mixed / solo ratios, per server and per --step-tokens value (garlic serve --step-tokens N,
# llama-server -b N -ub N), medians over --rounds. Figures are printed, never asserted.
# Decoding streams ask for ignore_eos (llama-server) and a -100 bias on EOS (garlic, which
# rejects fields it does not know).
# usage: bench/mixed.py [--garlic ./garlic] [--llama-server PATH] [--steps 512,16] MODEL.gguf
import argparse
import http.client
import json
import os
import random
import signal
import socket
import statistics
import subprocess
import threading
import time


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def vocab(garlic, model):
    """(the EOS token id, the vocabulary size) from garlic show."""
    out = subprocess.run([garlic, "show", model, "--json"], capture_output=True, text=True,
                         check=True).stdout
    tok = json.loads(out)["tokenizer"]
    return tok["special_tokens"]["eos"]["id"], tok["vocab_size"]


# Random prompt tokens are drawn from [FIRST_ID, vocabulary size - FIRST_ID) (past the
# special and byte tokens).
FIRST_ID = 100


class Server:
    """A garlic serve or llama-server process on a free port, ready to answer."""

    def __init__(self, kind, binary, model, step, args):
        self.kind, self.port = kind, free_port()
        self.name = os.path.basename(model)[:-5]
        n_seq = args.streams + 1
        if kind == "garlic":
            cmd = [binary, "serve", "--port", str(self.port), "-m", model, "--keep-alive", "-1",
                   "-t", str(args.threads), "--parallel", str(n_seq), "--step-tokens",
                   str(step), "--ctx", str(args.ctx), "--quiet"]
        else:
            cmd = [binary, "-m", model, "--port", str(self.port), "-t", str(args.threads),
                   "--parallel", str(n_seq), "-c", str(n_seq * args.ctx), "-b", str(step),
                   "-ub", str(step), "--no-webui"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 120
        while time.time() < deadline:
            try:
                self.complete([1, 2, 3], 1, stream=False)  # loads the model (garlic)
                return
            except (OSError, RuntimeError, http.client.HTTPException):
                time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"{kind} did not answer on port {self.port}")

    def body(self, prompt, max_tokens, stream, eos=None):
        b = {"model": self.name, "prompt": prompt, "max_tokens": max_tokens, "temperature": 0,
             "stream": stream}
        if self.kind == "garlic":
            # garlic may send several tokens in one event when the client falls behind; the
            # event's logprobs list them. llama-server sends an event a token.
            b["logprobs"] = 0
            if eos is not None:
                b["logit_bias"] = {str(eos): -100}
        else:
            b["ignore_eos"] = True
        return json.dumps(b).encode()

    def complete(self, prompt, max_tokens, stream, eos=None, on_event=None, stop=None):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        try:
            conn.request("POST", "/v1/completions", self.body(prompt, max_tokens, stream, eos),
                         {"Content-Type": "application/json"})
            r = conn.getresponse()
            if r.status != 200:
                raise RuntimeError(f"{self.kind}: status {r.status}: {r.read()[:200]!r}")
            if not stream:
                r.read()
                return
            for line in r:
                line = line.strip()
                if not line.startswith(b"data:") or line == b"data: [DONE]":
                    continue
                now = time.perf_counter()
                ch = json.loads(line[5:]).get("choices") or []
                # A token's event has text; a last event with only finish_reason is none.
                if ch and (ch[0].get("text") or ch[0].get("finish_reason") is None) and on_event:
                    lp = ch[0].get("logprobs") or {}
                    for _ in range(max(1, len(lp.get("tokens") or []))):
                        on_event(now)
                if stop is not None and stop.is_set():
                    break
        finally:
            conn.close()

    def stop(self):
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def percentile(xs, q):
    xs = sorted(xs)
    if not xs:
        return float("nan")
    k = (len(xs) - 1) * q
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def gaps(times):
    return [b - a for a, b in zip(times[1:], times[2:])]  # the first token is prefill


def run_streams(srv, n, eos, n_vocab, stop, max_tokens):
    """n streamed decodes of 16-token prompts, in threads; returns their event times (lists
    that fill as tokens arrive) and the threads. A stream ends at its next token after
    `stop` is set, or after max_tokens."""
    times = [[] for _ in range(n)]
    rng = random.Random(7)
    threads = []
    for i in range(n):
        prompt = [rng.randrange(FIRST_ID, n_vocab - FIRST_ID) for _ in range(16)]
        t = threading.Thread(target=lambda i=i, p=prompt: _report(
            srv.complete, p, max_tokens, True, eos, on_event=times[i].append, stop=stop),
            daemon=True)
        t.start()
        threads.append(t)
    return times, threads


def measure(srv, args, eos, n_vocab):
    # Solo: one stream, args.solo_tokens tokens.
    stop = threading.Event()
    solo, th = run_streams(srv, 1, eos, n_vocab, stop, max_tokens=args.solo_tokens)
    th[0].join()
    solo_gaps = gaps(solo[0])
    # Mixed: args.streams streams; once each has its first token, prompts arrive.
    stop = threading.Event()
    # Each stream may fill its context: it outlasts the measurement at any rate seen here.
    times, th = run_streams(srv, args.streams, eos, n_vocab, stop, args.ctx - 32)
    deadline = time.time() + 120
    while any(a.is_alive() and len(t) < 2 for a, t in zip(th, times)) and \
            time.time() < deadline:
        time.sleep(0.01)
    t0 = time.perf_counter()
    rng = random.Random(11)
    arrivals = []
    for k in range(int(args.seconds / args.every)):
        prompt = [rng.randrange(FIRST_ID, n_vocab - FIRST_ID) for _ in range(args.prompt_tokens)]
        a = threading.Thread(target=lambda p=prompt: _quiet(srv.complete, p, 1, False),
                             daemon=True)
        a.start()
        arrivals.append(a)
        time.sleep(max(0.0, t0 + (k + 1) * args.every - time.perf_counter()))
    t1 = time.perf_counter()
    # Wait for every stream's next token (a stall that spans t1 counts), then let go.
    deadline = time.time() + 120
    while any(a.is_alive() and (not t or t[-1] <= t1) for a, t in zip(th, times)) and \
            time.time() < deadline:
        time.sleep(0.01)
    stop.set()
    mixed_gaps, per_stream = [], []
    for t in times:
        inside = [x for x in t if t0 <= x <= t1]
        g = [b - a for a, b in zip(inside, inside[1:])]
        # The gap that spans t1 counts too: a stream stalled to the end has no later token.
        later = [x for x in t if x > t1]
        if inside and later:
            g.append(later[0] - inside[-1])
        mixed_gaps += g
        per_stream.append(len(inside))
    done = sum(1 for a in arrivals if not a.is_alive())
    return solo_gaps, mixed_gaps, per_stream, done, len(arrivals)


def _report(f, *a, **kw):
    try:
        f(*a, **kw)
    except Exception as e:  # a stream that fails leaves a short list; say why
        print(f"  stream failed: {e}", flush=True)


def _quiet(f, *a):
    try:
        f(*a)
    except Exception:
        pass


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--garlic", default="./garlic")
    ap.add_argument("--llama-server", default="")
    ap.add_argument("--steps", default="512,16")
    ap.add_argument("--streams", type=int, default=4)
    ap.add_argument("--prompt-tokens", type=int, default=512)
    ap.add_argument("--every", type=float, default=1.0)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--solo-tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--ctx", type=int, default=2048)
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("model")
    args = ap.parse_args()
    eos, n_vocab = vocab(args.garlic, args.model)
    servers = [("garlic", args.garlic)]
    if args.llama_server and os.access(args.llama_server, os.X_OK):
        servers.append(("llama-server", args.llama_server))
    steps = [int(s) for s in args.steps.split(",")]
    print(f"mixed traffic: {args.streams} streams decoding, a {args.prompt_tokens}-token prompt "
          f"every {args.every} s for {args.seconds} s, {args.threads} threads, "
          f"{args.rounds} round(s); times in ms")
    results = {}
    for rnd in range(args.rounds):
        for step in steps:
            for kind, binary in servers:
                try:
                    srv = Server(kind, binary, args.model, step, args)
                except RuntimeError as e:  # (llama-server does not start with -b 4)
                    print(f"  round {rnd + 1} {kind} step {step}: {e}", flush=True)
                    continue
                try:
                    r = measure(srv, args, eos if kind == "garlic" else None, n_vocab)
                finally:
                    srv.stop()
                results.setdefault((kind, step), []).append(r)
                solo, mixed, per_stream, done, sent = r
                print(f"  round {rnd + 1} {kind} step {step}: solo p50 {1e3 * percentile(solo, .5):.1f} "
                      f"p99 {1e3 * percentile(solo, .99):.1f}; mixed p50 "
                      f"{1e3 * percentile(mixed, .5):.1f} p99 {1e3 * percentile(mixed, .99):.1f} "
                      f"max {1e3 * max(mixed, default=float('nan')):.1f}; tokens per stream "
                      f"{per_stream}; prompts answered {done}/{sent}", flush=True)
    print(f"{'server':<13} {'step':>5} {'solo p50':>9} {'solo p99':>9} {'mix p50':>9} "
          f"{'mix p99':>9} {'p50 x':>7} {'p99 x':>7}")
    for (kind, step), rs in results.items():
        med = lambda f: statistics.median(f(r) for r in rs)
        s50, s99 = med(lambda r: percentile(r[0], .5)), med(lambda r: percentile(r[0], .99))
        m50, m99 = med(lambda r: percentile(r[1], .5)), med(lambda r: percentile(r[1], .99))
        ratio = lambda a, b: a / b if b > 0 else float("nan")
        print(f"{kind:<13} {step:>5} {1e3 * s50:>9.1f} {1e3 * s99:>9.1f} {1e3 * m50:>9.1f} "
              f"{1e3 * m99:>9.1f} {ratio(m50, s50):>7.2f} {ratio(m99, s99):>7.2f}")


if __name__ == "__main__":
    main()
