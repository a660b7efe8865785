#!/bin/bash
# SPDX-License-Identifier: MIT
# Self-test of tools/gen_hf_folder.py: for each F32 model of tests/data/arch/models.tsv (one
# per architecture and shape garlic runs) plus gpt-oss with MXFP4 experts and two byte-level
# BPE vocabularies, writes the folder in every encoding that applies (sharded every other
# time) with --decoded, then checks it with the second reader (tools/check_hf_folder.mjs:
# safetensors structure, index, tokenizer.json, every tensor decoded independently and equal
# to the decoded folder) and compares the decoded folder with the GGUF (--check: exact for
# f32, else within the encoding's error). Usage (from the repository root, after make):
#   tests/tools/test_gen_hf_folder.sh [STEM...]
# Needs python3 with numpy and node; prints "N passed, N failed".
set -u
GARLIC=${GARLIC:-./garlic}
PY=${PYTHON:-}
if [ -z "$PY" ]; then # the first python3 with numpy (Debian's python3-numpy)
    for p in python3 /usr/bin/python3; do
        "$p" -c 'import numpy' 2> /dev/null && { PY=$p; break; }
    done
fi
if [ -z "$PY" ] || ! command -v node > /dev/null; then
    echo "test_gen_hf_folder: needs python3 with numpy, and node: skipped"
    echo "0 passed, 0 failed, 1 skipped"
    exit 0
fi
TMP=$(mktemp -d /tmp/gen_hf_folder.XXXXXX)
trap 'rm -rf "$TMP"' EXIT
passed=0 failed=0
ok() { passed=$((passed + 1)); }
bad() { failed=$((failed + 1)); echo "FAIL $*"; }

run_case() { # stem gguf encoding shards [extra args]
    local stem=$1 gguf=$2 enc=$3 shards=$4; shift 4
    local out="$TMP/$stem-$enc" dec="$TMP/$stem-$enc-dec"
    if ! "$PY" tools/gen_hf_folder.py "$gguf" "$out" --encoding "$enc" --shards "$shards" \
        --decoded "$dec" "$@" 2> "$TMP/err"; then
        bad "$stem $enc: $(tail -1 "$TMP/err")"; return
    fi
    if node tools/check_hf_folder.mjs "$out" "$dec" > "$TMP/node" 2>&1; then ok
    else bad "$stem $enc: check_hf_folder.mjs: $(grep -m1 FAIL "$TMP/node")"; fi
    if "$PY" tools/gen_hf_folder.py "$gguf" --check "$dec" --encoding "$enc" "$@" \
        > "$TMP/check" 2>&1; then ok
    else bad "$stem $enc: --check: $(grep -m1 -e FAIL -e gen_hf "$TMP/check")"; fi
    rm -rf "$out" "$dec"
}

encodings_for() { # arch -> the encodings that apply
    case "$1" in
    gpt-oss) echo "f32 bf16 fp8-block awq gptq mxfp4" ;;
    *) echo "f32 f16 bf16 fp8-block fp8-channel fp8-tensor awq gptq gptq-actorder" ;;
    esac
}

want() { [ $# -eq 0 ] && return 0; local s; for s in "${WANT[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
WANT=("$@")
n=0
while IFS=$'\t' read -r stem _ args; do
    case "$stem" in \#* | *-Q* | "") continue ;; esac
    [ ${#WANT[@]} -gt 0 ] && ! want "$stem" && continue
    # shellcheck disable=SC2086
    "$GARLIC" synth "$TMP/$stem.gguf" $args > /dev/null || { bad "$stem: synth"; continue; }
    arch=$(echo "$args" | sed -E 's/.*--arch ([^ ]+).*/\1/')
    for enc in $(encodings_for "$arch"); do
        n=$((n + 1))
        run_case "$stem" "$TMP/$stem.gguf" "$enc" $((n % 2 ? 1 : 3))
    done
    [ "$stem" = gemma3-F32 ] && run_case "$stem" "$TMP/$stem.gguf" bf16 2 --variant conditional
    [ "$stem" = llama-F32 ] && run_case "$stem" "$TMP/$stem.gguf" awq 1 --group-size 32
    [ "$stem" = qwen3-F32 ] && run_case "$stem" "$TMP/$stem.gguf" gptq-actorder 2 --asym
    rm -f "$TMP/$stem.gguf"
done < tests/data/arch/models.tsv

extra() { # stem synth-args... : models beyond models.tsv
    local stem=$1; shift
    [ ${#WANT[@]} -gt 0 ] && ! want "$stem" && return
    "$GARLIC" synth "$TMP/$stem.gguf" "$@" > /dev/null || { bad "$stem: synth"; return; }
    for enc in $ENCS; do run_case "$stem" "$TMP/$stem.gguf" "$enc" 2; done
}
# gpt-oss with MXFP4 experts: the mxfp4 folder holds the GGUF's blocks exactly.
ENCS="f32 mxfp4" extra gptoss-mxfp4 --arch gpt-oss --dim 128 --layers 2 --heads 4 \
    --kv-heads 2 --head-dim 64 --ffn 128 --experts 4 --experts-used 2 --vocab 512 --seed 43 \
    --rope-theta 150000 --sliding-window 16 --expert-type MXFP4
# Byte-level BPE vocabularies (tokenizer.json with Split regexes, merges, added tokens).
ENCS="bf16" extra gptoss-o200k --arch gpt-oss --dim 64 --layers 2 --heads 2 --kv-heads 1 \
    --head-dim 32 --ffn 64 --experts 4 --experts-used 2 --seed 44 \
    --tokenizer tests/data/tokenizer/gpt-4o.gguf
ENCS="fp8-block" extra deepseek-v3-vocab --arch deepseek2 --dim 64 --layers 2 --heads 2 \
    --head-dim 48 --rope-dim 16 --q-lora-rank 32 --kv-lora-rank 32 --ffn 128 --dense-layers 1 \
    --experts 4 --experts-used 2 --expert-ffn 32 --shared-experts 1 --router sigmoid \
    --expert-bias --seed 45 --tokenizer tests/data/tokenizer/deepseek-v3.gguf

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
