#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The CUDA forward pass against the CPU's, end to end: for every shared model
# ($SHARED/models/*.gguf) and a few synthesized ones (gemma3 with sliding windows and GELU,
# qwen3 with q/k norms, phi3 with a fused QKV, llama with Q8_0, FP8 and F32 caches), runs
# `garlic run --dump-logits` (one batch over the whole prompt: the prompt kernels) with
# --device cpu and with --device cuda --gpu-layers 99, and compares every position's logits
# relative to that row's largest |logit|, plus each row's argmax where its top-2 gap is wide.
# Tolerances: 1e-3 for F32/F16/BF16 weights (both sides round the inputs alike; only the
# order of float sums differs). 6e-2 for quantized ones, the shared reference's tolerance of
# those families: the CPU multiplies them with Q8_0/Q8_K activations and the GPU with float
# or F16 ones, and ../shared/reference/README.md measures that difference (float64 against
# Q8 activations) at 1.9e-2 to 3.5e-2 on these random models, so the issue's 2e-2 would fail
# by construction. Then the greedy text of 16 generated tokens (the decode kernels) must be
# identical for F32 weights (no fragile step in the reference's greedy_fragility.tsv); for
# the others a difference is printed, not counted (their top-2 gaps are often below the
# tolerance at the first steps). A model the backend refuses is skipped with the refusal.
# Exits non-zero on any failure.
#   GARLIC=build/cuda/garlic SHARED=../shared tests/cuda/forward.sh
set -euo pipefail

GARLIC=${GARLIC:-build/cuda/garlic}
SHARED=${SHARED:-../shared}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
PROMPT_IDS="1 450 300 301 302 303 100 200 250 260 270 280 290 310 320 330" # (below 512: every vocabulary here has 512 tokens or more)
passed=0 failed=0 skipped=0

if ! "$GARLIC" run --help 2>&1 | grep -q -- '--device'; then
    echo "forward.sh: $GARLIC has no --device option (the forward pass over backend.h is not" \
         "in this build): cannot compare the CUDA forward pass" >&2
    exit 1
fi

# compare FILE_CPU FILE_GPU TOL: prints the worst row's relative difference and fails if it is
# over TOL, or if a row's argmax differs where the CPU's top-2 gap exceeds 2 TOL max|logit|
# (only a closer pair may swap within the tolerance).
compare() {
    awk -v tol="$3" '
        NR == FNR { for (i = 1; i <= NF; i++) cpu[FNR, i] = $i; n[FNR] = NF; rows = FNR; next }
        {
            if (NF != n[FNR]) { printf "row %d: %d values vs %d; ", FNR, NF, n[FNR]; bad = 1; next }
            max = 0; diff = 0; at = 0; top1 = -1e30; top2 = -1e30; arg_c = 0; arg_g = 0; best_g = -1e30
            for (i = 1; i <= NF; i++) {
                a = cpu[FNR, i] + 0; b = $i + 0
                if (a > top1) { top2 = top1; top1 = a; arg_c = i } else if (a > top2) top2 = a
                if (b > best_g) { best_g = b; arg_g = i }
                m = a < 0 ? -a : a
                if (m > max) max = m
                d = a - b; if (d < 0) d = -d
                if (d > diff) { diff = d; at = i }
            }
            rel = max > 0 ? diff / max : diff
            if (rel > worst) { worst = rel; wrow = FNR; wcol = at; wa = cpu[FNR, at]; wb = $at }
            if (arg_c != arg_g && top1 - top2 > 2 * tol * max) {
                printf "row %d: argmax %d (cpu) vs %d (cuda) with a gap of %g; ", FNR, arg_c - 1, arg_g - 1, top1 - top2
                bad = 1
            }
            seen++
        }
        END {
            if (seen != rows) { printf "%d rows vs %d; ", seen, rows; bad = 1 }
            if (worst == 0) printf "identical (%d rows), tolerance %g", rows, tol
            else printf "worst %.3g (row %d, logit %d: cpu %s, cuda %s), tolerance %g", worst, wrow, wcol - 1, wa, wb, tol
            exit (bad || worst > tol) ? 1 : 0
        }' "$1" "$2"
}

# check LABEL MODEL KV_TYPE
check() {
    local label=$1 model=$2 kv=$3 tol=6e-2 exact_text=0
    case "$label" in
    *Q[0-9]* | *IQ* | *MXFP4*) ;; # any quantized matrix: the quantized tolerance
    *BF16* | *F16*) tol=1e-3 ;;
    *F32*) tol=1e-3 exact_text=1 ;;
    esac
    local common=(run "$model" --prompt-ids "$PROMPT_IDS" -n 16 --temp 0 -t 4 --kv-type "$kv")
    if ! "$GARLIC" "${common[@]}" --device cpu --dump-logits "$WORK/cpu.txt" >/dev/null 2>"$WORK/cpu.err" ||
        ! "$GARLIC" "${common[@]}" --device cpu >"$WORK/cpu.out" 2>>"$WORK/cpu.err"; then
        echo "FAIL $label: the CPU run failed: $(tail -n 3 "$WORK/cpu.err")"
        failed=$((failed + 1))
        return
    fi
    local gpu=(--device cuda --gpu-layers 99)
    if ! "$GARLIC" "${common[@]}" "${gpu[@]}" --dump-logits "$WORK/gpu.txt" >/dev/null 2>"$WORK/gpu.err"; then
        if grep -qiE "cuda.*(does not run|cannot multiply|no kernel)" "$WORK/gpu.err"; then
            echo "SKIP $label: $(grep -iE 'cuda' "$WORK/gpu.err" | head -n 1)"
            skipped=$((skipped + 1))
        else
            echo "FAIL $label: the CUDA run failed: $(tail -n 3 "$WORK/gpu.err")"
            failed=$((failed + 1))
        fi
        return
    fi
    "$GARLIC" "${common[@]}" "${gpu[@]}" >"$WORK/gpu.out" 2>>"$WORK/gpu.err" || true
    local logits_ok=1 result
    result=$(compare "$WORK/cpu.txt" "$WORK/gpu.txt" "$tol") || logits_ok=0
    local text="same greedy text"
    if ! cmp -s "$WORK/cpu.out" "$WORK/gpu.out"; then
        text="greedy text differs: cpu $(head -c 80 "$WORK/cpu.out" | tr '\n' ' ') | cuda $(head -c 80 "$WORK/gpu.out" | tr '\n' ' ')"
        [ $exact_text = 1 ] && logits_ok=0
    fi
    if [ $logits_ok = 1 ]; then
        echo "ok   $label: logits $result; $text"
        passed=$((passed + 1))
    else
        echo "FAIL $label: logits $result; $text"
        failed=$((failed + 1))
    fi
}

for model in "$SHARED"/models/*.gguf; do
    [ -e "$model" ] || continue
    # The label carries the widest weight type (garlic show's "weight types" line), which
    # picks the tolerance.
    types=$("$GARLIC" show "$model" 2>/dev/null | sed -n 's/^ *weight types *//p' | head -n 1)
    check "$(basename "$model" .gguf) [${types%% (*}]" "$model" f16
done

# Synthesized: architectures and features the shared files lack.
synth() { # NAME ARGS...
    local name=$1
    shift
    "$GARLIC" synth "$WORK/$name.gguf" "$@" >/dev/null 2>"$WORK/synth.err" ||
        { echo "FAIL synth $name: $(tail -n 2 "$WORK/synth.err")"; failed=$((failed + 1)); return 1; }
}
synth gemma3-F16 --arch gemma3 --dim 256 --heads 4 --kv-heads 2 --layers 6 --ffn 512 --type F16 \
    --sliding-window 8 && check "gemma3 F16 (sliding windows, GELU)" "$WORK/gemma3-F16.gguf" f16
synth qwen3-Q4_K_M --arch qwen3 --dim 256 --heads 8 --kv-heads 2 --layers 2 --ffn 768 \
    --type Q4_K_M && check "qwen3 Q4_K_M (q/k norms)" "$WORK/qwen3-Q4_K_M.gguf" f16
synth phi3-Q8_0 --arch phi3 --dim 256 --heads 8 --kv-heads 8 --layers 2 --ffn 512 --type Q8_0 &&
    check "phi3 Q8_0 (fused QKV and up)" "$WORK/phi3-Q8_0.gguf" f16
synth llama-F32 --dim 256 --layers 2 --type F32 && {
    check "llama F32, KV q8_0" "$WORK/llama-F32.gguf" q8_0
    check "llama F32, KV fp8" "$WORK/llama-F32.gguf" fp8
    check "llama F32, KV f32" "$WORK/llama-F32.gguf" f32
}

echo "forward.sh: $passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
