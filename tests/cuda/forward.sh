#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# The CUDA forward pass against the CPU's, end to end: for every shared model
# ($SHARED/models/*.gguf) and a few synthesized ones (gemma3 with sliding windows and GELU,
# qwen3 with q/k norms, phi3 with a fused QKV, qwen2 with biases, a Q8_0 KV cache), runs
# `garlic run --dump-logits` (one batch over the whole prompt: the prompt kernels) with
# --device cpu and with --device cuda --gpu-layers 99, and compares every position's logits
# relative to that row's largest |logit|: at most 1e-3 for F32/F16/BF16 weights, 2e-2 for
# quantized ones (the CPU multiplies quantized weights with Q8 activations, the GPU with float
# or F16 ones). Then compares the greedy text of 16 generated tokens (the decode kernels),
# which must be identical for float weights; for quantized ones a difference is reported and
# counted only when the logits also failed (greedy text of random-weight models flips on near
# ties). A model the backend refuses is skipped with the refusal. Exits non-zero on any failure.
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

# compare FILE_CPU FILE_GPU TOL: prints the worst row's relative difference; fails if over TOL.
compare() {
    awk -v tol="$3" '
        NR == FNR { for (i = 1; i <= NF; i++) cpu[FNR, i] = $i; n[FNR] = NF; rows = FNR; next }
        {
            if (NF != n[FNR]) { printf "row %d: %d values vs %d\n", FNR, NF, n[FNR]; bad = 1; next }
            max = 0; diff = 0; at = 0
            for (i = 1; i <= NF; i++) {
                a = cpu[FNR, i] + 0; b = $i + 0
                if (a < 0) a = -a
                if (a > max) max = a
                d = cpu[FNR, i] - $i; if (d < 0) d = -d
                if (d > diff) { diff = d; at = i }
            }
            rel = max > 0 ? diff / max : diff
            if (rel > worst) { worst = rel; wrow = FNR; wcol = at; wa = cpu[FNR, at]; wb = $at }
            seen++
        }
        END {
            if (seen != rows) { printf "%d rows vs %d\n", seen, rows; bad = 1 }
            if (worst == 0) printf "identical (%d rows), tolerance %g", rows, tol
            else printf "worst %.3g (row %d, logit %d: cpu %s, cuda %s), tolerance %g", worst, wrow, wcol - 1, wa, wb, tol
            exit (bad || worst > tol) ? 1 : 0
        }' "$1" "$2"
}

# check LABEL MODEL KV_TYPE
check() {
    local label=$1 model=$2 kv=$3 tol=2e-2
    case "$label" in *F32* | *F16* | *BF16*) tol=1e-3 ;; esac
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
        [ "$tol" = 1e-3 ] && logits_ok=0
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
    name=$(basename "$model" .gguf)
    check "$name" "$model" f16
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
