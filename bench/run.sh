#!/usr/bin/env bash
# make bench: the kernel and dequantization micro-benchmarks, then `garlic bench` on
# synthesized TinyLlama-1.1B-shaped models (F16, Q8_0, Q4_0, Q4_K_M; made once and kept in
# $BUILD/bench/models) with 2 threads. Figures are reported, never asserted; quote the
# machine line with them. BENCH_TYPES, BENCH_THREADS and BENCH_ROUNDS override the defaults.
# The read bandwidth (bench_bandwidth, measured again before each round) gives each model's
# decoding bound, and bench/report.py prints the fraction reached. When LLAMA_BENCH names a llama-bench binary (a peer built outside
# this repository), it runs on the same file in turn with garlic, round after round, and the
# ratios are printed (needs python3); stories260K from ../shared is the overhead-bound case. bench_peak's float
# multiply-add peak gives float models' prompt-processing bound, printed as a fraction too. Then batched
# decoding through the server's scheduler (`garlic bench --streams`, 1 to 16 streams of a
# 128-token prompt and 64 generated tokens) and the prefix cache's time to first token on the
# Q4_0 model; LLAMA_BATCHED_BENCH names llama-batched-bench for the same run side by side.
# Last, sharing the CPU (bench/cpu_share.py): the default thread count against --threads 1
# idle, beside a busy loop on one core, and as two processes at once, in requests/s of a
# server of stories260K and in pp/tg tokens/s of a synthesized 125M-parameter Q8_0 model.
# BENCH_ONLY=share runs that part alone (`make bench BENCH_ONLY=share`); BENCH_SHARE_ROUNDS
# (default 5) and BENCH_SHARE_SECONDS (default 4, per round of requests) size it.
# Long context (issue 21, BENCH_ONLY=depth alone; part of the full run): pp512 and tg128 after
# 4096 and 16384 tokens already in the KV cache (`garlic bench -d`, `llama-bench -d`) on
# TinyLlama-shaped models with a context of the deepest depth + 512, F16 and Q8_0 KV, against
# llama-bench with flash attention off and on (F16 KV) and on (Q8_0 KV: llama.cpp needs it for
# a quantized V cache); bench/report_depth.py prints the ratio to the faster variant.
# BENCH_DEPTH_TYPES (default Q4_0 Q8_0 Q4_K_M), BENCH_DEPTHS (default 4096,16384),
# BENCH_DEPTH_KV (default f16 q8_0) and BENCH_DEPTH_ROUNDS (default 1) size it: each depth is
# computed once per process (garlic's warm-up, llama-bench's first depth run): 16384 tokens of
# the 1.1B model take over 10 minutes a process on two threads (docs/performance.md).
# bench_dist (the all-reduce and stage-send times of 2 ranks, docs/distributed.md) runs under
# mpirun in shared memory when mpirun is installed.
set -eu
build=${BUILD:-build}
types=${BENCH_TYPES:-F16 Q8_0 Q4_0 Q4_K_M}
threads=${BENCH_THREADS:-2}
rounds=${BENCH_ROUNDS:-5}
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'), $(nproc) cores; $(./garlic version)"
share_bench() {
  mkdir -p "$build/bench/models"
  local model=$build/bench/models/share-125M-Q8_0.gguf
  if [ ! -f "$model" ]; then
    echo "== synthesizing $model"
    ./garlic synth "$model.tmp" --dim 768 --layers 12 --heads 12 --kv-heads 4 --ffn 2048 \
      --vocab 32000 --ctx 2048 --type Q8_0 && mv "$model.tmp" "$model"
  fi
  echo "== sharing the CPU: default threads against --threads 1 (bench/cpu_share.py)"
  bench/cpu_share.py --rounds "${BENCH_SHARE_ROUNDS:-5}" --seconds "${BENCH_SHARE_SECONDS:-4}" \
    --pp 256 --tg 64 "${SHARED:-../shared}/models/stories260K.gguf" "$model"
}
depth_bench() {
  mkdir -p "$build/bench/models"
  local depths=${BENCH_DEPTHS:-4096,16384} deepest=0 d
  for d in ${depths//,/ }; do [ "$d" -gt "$deepest" ] && deepest=$d; done
  local ctx=$((deepest + 512))
  echo "== long context: garlic bench -d $depths -p 512 -n 128 -t $threads, ${BENCH_DEPTH_ROUNDS:-1} round(s), models of context $ctx"
  for t in ${BENCH_DEPTH_TYPES:-Q4_0 Q8_0 Q4_K_M}; do
    local model=$build/bench/models/tinyllama-ctx$ctx-$t.gguf
    if [ ! -f "$model" ]; then
      echo "== synthesizing $model"
      ./garlic synth "$model.tmp" --preset tinyllama --ctx "$ctx" --type "$t" && mv "$model.tmp" "$model"
    fi
    for kv in ${BENCH_DEPTH_KV:-f16 q8_0}; do
      local ours="" fa0="" fa1="" i out
      for i in $(seq "${BENCH_DEPTH_ROUNDS:-1}"); do
        out=$build/bench/depth-$t-$kv
        ./garlic bench "$model" -d "$depths" -p 512 -n 128 -r 1 -t "$threads" --kv-type "$kv" --json > "$out.garlic.$i.json"
        ours=$ours,$out.garlic.$i.json
        if [ -n "${LLAMA_BENCH:-}" ] && [ -x "$LLAMA_BENCH" ]; then
          if [ "$kv" = f16 ]; then
            "$LLAMA_BENCH" -m "$model" -d "$depths" -p 512 -n 128 -r 1 -t "$threads" -fa 0 -o json > "$out.fa0.$i.json" 2>/dev/null || true
            fa0=$fa0,$out.fa0.$i.json
            "$LLAMA_BENCH" -m "$model" -d "$depths" -p 512 -n 128 -r 1 -t "$threads" -fa 1 -o json > "$out.fa1.$i.json" 2>/dev/null || true
          else
            "$LLAMA_BENCH" -m "$model" -d "$depths" -p 512 -n 128 -r 1 -t "$threads" -fa 1 -ctk "$kv" -ctv "$kv" -o json > "$out.fa1.$i.json" 2>/dev/null || true
          fi
          fa1=$fa1,$out.fa1.$i.json
        fi
      done
      local peers=()
      [ -n "$fa0" ] && peers+=("llama-fa0=${fa0#,}")
      [ -n "$fa1" ] && peers+=("llama-fa1=${fa1#,}")
      bench/report_depth.py "$t" "$kv" "${ours#,}" ${peers[@]+"${peers[@]}"}
    done
  done
}
# Mixed traffic (issue 21, BENCH_ONLY=mixed alone; part of the full run): bench/mixed.py on
# the TinyLlama-shaped Q4_0 model: 4 streams decoding while a 512-token prompt arrives every
# second, the 50th and 99th percentile inter-token times against one stream alone, per
# --step-tokens value (BENCH_MIXED_STEPS, default 512,16), and llama-server (LLAMA_SERVER) in
# turn with -b/-ub of the same size; BENCH_MIXED_ROUNDS (default 1) rounds.
mixed_bench() {
  local model=$build/bench/models/tinyllama-Q4_0.gguf
  if [ ! -f "$model" ]; then
    mkdir -p "$build/bench/models"
    echo "== synthesizing $model"
    ./garlic synth "$model.tmp" --preset tinyllama --type Q4_0 && mv "$model.tmp" "$model"
  fi
  echo "== mixed traffic (bench/mixed.py)"
  bench/mixed.py --garlic ./garlic --llama-server "${LLAMA_SERVER:-}" --threads "$threads" \
    --steps "${BENCH_MIXED_STEPS:-512,16}" --rounds "${BENCH_MIXED_ROUNDS:-1}" "$model"
}
# Cold start (issue 21, BENCH_ONLY=cold alone; part of the full run): bench/cold.py on a
# TinyLlama-shaped Q4_0 file of its own (no other process may map it, or its pages stay
# cached): `garlic run FILE "Hello" -n 1` to the first token with the file dropped from the
# page cache, against `cat FILE` cold; BENCH_COLD_ROUNDS (default 3) rounds.
cold_bench() {
  mkdir -p "$build/bench/models"
  local model=$build/bench/models/cold-tinyllama-Q4_0.gguf
  if [ ! -f "$model" ]; then
    echo "== synthesizing $model"
    ./garlic synth "$model.tmp" --preset tinyllama --type Q4_0 && mv "$model.tmp" "$model"
  fi
  echo "== cold start (bench/cold.py)"
  bench/cold.py --garlic ./garlic --rounds "${BENCH_COLD_ROUNDS:-3}" "$model"
}
if [ "${BENCH_ONLY:-}" = mixed ]; then
  mixed_bench
  exit 0
fi
if [ "${BENCH_ONLY:-}" = cold ]; then
  cold_bench
  exit 0
fi
if [ "${BENCH_ONLY:-}" = share ]; then
  share_bench
  exit 0
fi
if [ "${BENCH_ONLY:-}" = depth ]; then
  depth_bench
  exit 0
fi
float_peak=0
for b in "$build"/bench/bench_*; do
  [ -x "$b" ] || continue
  echo "== ${b##*/}"
  if [ "${b##*/}" = bench_bandwidth ]; then
    BENCH_THREADS=$threads "$b"
  elif [ "${b##*/}" = bench_dist ]; then
    # all-reduce and stage-send times of 2 ranks in shared memory (docs/distributed.md)
    if command -v mpirun >/dev/null 2>&1; then
      for mode in reduce send; do
        mpirun --allow-run-as-root --oversubscribe -np 2 --mca btl self,vader "$b" "$mode"
      done
    else
      echo "mpirun not found: skipped"
    fi
  elif [ "${b##*/}" = bench_peak ]; then
    out=$(BENCH_THREADS=$threads "$b"); echo "$out"
    float_peak=$(echo "$out" | sed -n 's/^float peak: \([0-9.]*\) GFLOP.*/\1/p')
  else
    "$b"
  fi
done
mkdir -p "$build/bench/models"
# bench_model LABEL FILE ROUNDS BOUND: garlic's pp512/tg128 (and the peer's) on one file, in
# ROUNDS rounds of one repetition each, garlic then the peer, so that a stretch of a slow
# machine falls on both; report.py prints medians and the rounds' spread of the ratio. With
# BOUND=yes each round measures the read bandwidth first (it moves with the machine, by up
# to 2x over an hour here) and tg's fraction of the bound is taken round by round.
bench_model() {
  ./garlic show "$2" --json --tensors > "$build/bench/show.json"
  ours="" peers="" bws=""
  for i in $(seq "$3"); do
    if [ "$4" = yes ] && [ -x "$build/bench/bench_bandwidth" ]; then
      bws=$bws,$(BENCH_THREADS=$threads "$build/bench/bench_bandwidth" | sed -n 's/^read bandwidth: \([0-9.]*\) GB.*/\1/p')
    fi
    ./garlic bench "$2" -p 512 -n 128 -r 1 -t "$threads" --json > "$build/bench/garlic.$i.json"
    ours=$ours,$build/bench/garlic.$i.json
    if [ -n "${LLAMA_BENCH:-}" ] && [ -x "$LLAMA_BENCH" ]; then
      "$LLAMA_BENCH" -m "$2" -p 512 -n 128 -r 1 -t "$threads" -o json > "$build/bench/peer.$i.json" 2>/dev/null
      peers=$peers,$build/bench/peer.$i.json
    fi
  done
  bench/report.py "$1" "${ours#,}" "$build/bench/show.json" "${bws#,}" "${peers#,}" "${float_peak:-0}"
}
echo "== garlic bench -p 512 -n 128, $rounds rounds of one, -t $threads (tg vs the bandwidth bound measured before each round)"
for t in $types; do
  model=$build/bench/models/tinyllama-$t.gguf
  if [ ! -f "$model" ]; then
    echo "== synthesizing $model"
    ./garlic synth "$model.tmp" --preset tinyllama --type "$t" && mv "$model.tmp" "$model"
  fi
  bench_model "$t" "$model" "$rounds" yes
done
# Mixture-of-experts models scaled to this machine: a Qwen3-30B-A3B shape (its dim, heads,
# 128-wide heads and 768-wide experts, top 8; 64 experts and 8 layers instead of 128 and 48)
# in Q4_K_M, and a gpt-oss-20b shape (dim 2880, 32 experts top 4 in MXFP4, sliding windows of
# 128, its YaRN; 4 layers instead of 24) with Q8_0 elsewhere. The bound counts the active experts only.
moe_models="qwen3moe-Q4_K_M:--arch qwen3moe --dim 2048 --layers 8 --heads 32 --kv-heads 4 --head-dim 128 --ffn 6144 --experts 64 --experts-used 8 --expert-ffn 768 --vocab 32000 --ctx 4096 --type Q4_K_M --rope-theta 1000000 --rms-eps 1e-6"
if ./garlic synth --help 2>&1 | grep -q gpt-oss; then
  moe_models="$moe_models|gptoss-MXFP4:--arch gpt-oss --dim 2880 --layers 4 --heads 64 --kv-heads 8 --head-dim 64 --ffn 2880 --experts 32 --experts-used 4 --expert-ffn 2880 --vocab 32000 --ctx 4096 --type Q8_0 --expert-type MXFP4 --sliding-window 128 --rope-theta 150000 --rope-yarn 32 --rope-orig-ctx 4096"
fi
IFS='|' read -ra moe_list <<< "$moe_models"
for entry in "${moe_list[@]}"; do
  name=${entry%%:*} args=${entry#*:}
  model=$build/bench/models/$name.gguf
  if [ ! -f "$model" ]; then
    echo "== synthesizing $model"
    # shellcheck disable=SC2086
    ./garlic synth "$model.tmp" $args && mv "$model.tmp" "$model"
  fi
  bench_model "$name" "$model" "$rounds" yes
done
# An overhead-bound model: stories260K (292K parameters) decodes in microseconds a token.
tiny=${SHARED:-../shared}/models/stories260K.gguf
[ -f "$tiny" ] && bench_model stories "$tiny" "$rounds" no

model=$build/bench/models/tinyllama-Q4_0.gguf
if [ -f "$model" ]; then
  echo "== garlic bench $model --streams 1,2,4,8,16 -p 128 -n 64 -t $threads --prefix 1000"
  ./garlic bench "$model" --streams 1,2,4,8,16 -p 128 -n 64 -t "$threads" --prefix 1000
  if [ -n "${LLAMA_BATCHED_BENCH:-}" ] && [ -x "$LLAMA_BATCHED_BENCH" ]; then
    # Three rounds, garlic then the peer; compare_batched.py prints the medians.
    ours="" peers=""
    for i in 1 2 3; do
      ./garlic bench "$model" --streams 1,2,4,8,16 -p 128 -n 64 -t "$threads" --json > "$build/bench/garlic-batched.$i.json"
      "$LLAMA_BATCHED_BENCH" -m "$model" -c 4096 -b 2048 -ub 512 -npp 128 -ntg 64 -npl 1,2,4,8,16 \
        -t "$threads" --output-format jsonl > "$build/bench/peer-batched.$i.jsonl" 2>/dev/null
      ours=$ours,$build/bench/garlic-batched.$i.json peers=$peers,$build/bench/peer-batched.$i.jsonl
    done
    bench/compare_batched.py "${ours#,}" "${peers#,}"
  fi
fi
depth_bench
mixed_bench
cold_bench
share_bench
