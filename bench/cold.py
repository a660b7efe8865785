#!/usr/bin/env python3
# Cold start (issue 21): the time from `garlic run FILE "Hello" -n 1` starting to its first
# token when FILE is not in the page cache, against reading the file cold (`cat FILE >
# /dev/null`). Without root: the file's pages are dropped with posix_fadvise(DONTNEED) after a
# sync (which drops only pages no process maps: nothing else may have the file open), and
# mincore over a fresh mapping checks how many stayed resident (printed; a run whose file
# stayed more than 1 % resident is reported as such). Rounds interleave cat and garlic, each
# after its own eviction, and a warm garlic run (file cached) shows the part that is not I/O.
# The first token's time is the wall time of the process's first byte on stdout; the
# process's exit is printed too. Medians over --rounds; figures printed, never asserted.
# usage: bench/cold.py [--garlic ./garlic] [--rounds 3] MODEL.gguf
import argparse
import ctypes
import ctypes.util
import mmap
import os
import statistics
import subprocess
import time

libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
libc.mmap.restype = ctypes.c_void_p
libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int, ctypes.c_int,
                      ctypes.c_long]
libc.munmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
libc.mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]


def resident_fraction(path):
    """The fraction of path's pages in the page cache (mincore over a mapping that touches
    nothing)."""
    size = os.path.getsize(path)
    page = mmap.PAGESIZE
    fd = os.open(path, os.O_RDONLY)
    try:
        addr = libc.mmap(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, 0)
        if addr in (None, ctypes.c_void_p(-1).value):
            raise OSError(ctypes.get_errno(), "mmap")
        n = (size + page - 1) // page
        vec = (ctypes.c_ubyte * n)()
        try:
            if libc.mincore(addr, size, vec) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            libc.munmap(addr, size)
        return sum(v & 1 for v in vec) / n
    finally:
        os.close(fd)


def evict(path):
    os.sync()
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)
    return resident_fraction(path)


def time_cat(path):
    t0 = time.perf_counter()
    with open(path, "rb") as f, open(os.devnull, "wb") as null:
        subprocess.run(["cat"], stdin=f, stdout=null, check=True)
    return time.perf_counter() - t0


def time_run(garlic, path):
    """(seconds to the first byte on stdout, or to exit if the token's text is empty; seconds
    to exit; the load time garlic run --verbose reports, in seconds)."""
    t0 = time.perf_counter()
    p = subprocess.Popen([garlic, "run", path, "Hello", "-n", "1", "--temp", "0", "--verbose"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    p.stdout.read(1)
    t_first = time.perf_counter() - t0
    p.stdout.read()
    err = p.stderr.read().decode(errors="replace")
    p.wait()
    if p.returncode != 0:
        raise RuntimeError(f"garlic run exited {p.returncode}: {err[-300:]}")
    load = [float(x.split()[2]) / 1e3 for x in err.splitlines() if x.startswith("load time:")]
    return t_first, time.perf_counter() - t0, load[0] if load else float("nan")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--garlic", default="./garlic")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("model")
    args = ap.parse_args()
    size = os.path.getsize(args.model)
    print(f"cold start: {args.model} ({size / 1e6:.0f} MB), {args.rounds} rounds")
    cat, cold, cold_exit, warm = [], [], [], []
    for r in range(args.rounds):
        left = evict(args.model)
        cat.append(time_cat(args.model))
        left2 = evict(args.model)
        t_first, t_exit, t_load = time_run(args.garlic, args.model)
        cold.append(t_first)
        cold_exit.append(t_exit)
        warm_first, _, warm_load = time_run(args.garlic, args.model)  # the file is cached now
        warm.append(warm_first)
        note = "" if max(left, left2) <= 0.01 else " (eviction incomplete)"
        print(f"  round {r + 1}: resident after eviction {100 * left:.1f} % / "
              f"{100 * left2:.1f} %{note}; cat {cat[-1]:.2f} s "
              f"({size / 1e9 / cat[-1]:.2f} GB/s), garlic run cold: first token {t_first:.2f} s "
              f"(load {t_load:.2f} s), exit {t_exit:.2f} s; warm: first token {warm[-1]:.2f} s "
              f"(load {warm_load:.2f} s)", flush=True)
    c, g, w = statistics.median(cat), statistics.median(cold), statistics.median(warm)
    print(f"medians: cat cold {c:.2f} s, garlic run cold to first token {g:.2f} s "
          f"(ratio {g / c:.2f}), warm {w:.2f} s")


if __name__ == "__main__":
    main()
