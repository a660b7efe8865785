#!/usr/bin/env bash
# Runs every test binary given as an argument, sums cmocka's counts and prints one closing
# line "N passed, N failed, N skipped". Exits non-zero if any test failed or a binary
# crashed (a crash counts as one failure, named).
set -u
# The tests see an empty model store of their own (garlic serve serves the store's models),
# never the user's; tests that need a store make one.
store=$(mktemp -d)
trap 'rm -rf "$store"' EXIT
export GARLIC_MODELS="$store"
passed=0 failed=0 skipped=0 crashed=""
for bin in "$@"; do
  echo "== $bin"
  log=$(mktemp)
  "$bin" 2>&1 | tee "$log"
  rc=${PIPESTATUS[0]}
  p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | tail -1)
  passed=$((passed + ${p:-0})); failed=$((failed + ${f:-0})); skipped=$((skipped + ${s:-0}))
  if [ "$rc" -ne 0 ] && [ -z "$f" ]; then
    crashed="$crashed $bin"; failed=$((failed + 1))
  fi
  rm -f "$log"
done
[ -n "$crashed" ] && echo "binaries that exited abnormally:$crashed"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
