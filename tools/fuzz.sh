#!/usr/bin/env bash
# Runs every libFuzzer target in build/fuzz with its committed corpus (fuzz/corpus/<name>)
# plus seeds: the GGUF files under SHARED/models and SHARED/tokenizer when present.
# New inputs go to build/fuzz/corpus-<name>, never into the committed corpus.
# usage: tools/fuzz.sh SHARED_DIR [libFuzzer flags...]
set -u
shared=$1; shift
for bin in build/fuzz/fuzz_*; do
  [ -x "$bin" ] || continue
  case "$bin" in *.a) continue;; esac
  name=${bin##*/fuzz_}
  corpus=fuzz/corpus/$name
  work=build/fuzz/corpus-$name
  mkdir -p "$work"
  seeds=("$corpus")
  if [ "$name" = gguf ] && [ -d "$shared/models" ]; then
    seeds+=("$shared/models" "$shared/tokenizer")
  fi
  log=build/fuzz/$name.log
  echo "== fuzz $name $*"
  # -rss_limit_mb: the reader must never allocate in proportion to a forged count.
  "$bin" -rss_limit_mb=2048 -max_len=65536 -timeout=10 -print_final_stats=1 \
    -artifact_prefix=build/fuzz/ "$@" "$work" "${seeds[@]}" >"$log" 2>&1
  status=$?
  grep -E "^(#[0-9]+ *DONE|Done |stat::number_of_executed_units|stat::peak_rss_mb)" "$log"
  if [ "$status" -ne 0 ]; then
    tail -40 "$log"
    echo "fuzz $name: finding (exit $status); input saved under build/fuzz/"
    exit 1
  fi
done
