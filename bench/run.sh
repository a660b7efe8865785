#!/usr/bin/env bash
# make bench: runs every benchmark binary and prints its table. Figures are reported, never
# asserted; state the machine (printed first) with any figure you quote.
set -eu
build=${BUILD:-build}
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; garlic: $(./garlic version)"
for b in "$build"/bench/bench_*; do
  [ -x "$b" ] || continue
  echo "== ${b##*/}"
  "$b"
done
