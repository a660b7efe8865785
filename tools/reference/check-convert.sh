#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Checks `garlic convert` against llama.cpp (built outside this repository): for each case a
# model is synthesized with a real vocabulary from ../shared/tokenizer, written as a Hugging
# Face folder by tools/gen_hf_folder.py, converted with `garlic convert`, and the converted file
# is run by llama.cpp (tools/reference/driver.cpp: its own tokenization of the prompts, its
# logits). garlic then runs the same ids on the folder itself and on the converted file, and
# the differences are printed. Nothing is written into the repository.
#
#     LLAMA_DIR=/tmp/llama.cpp tools/reference/check-convert.sh
# (from the repository root, after make; needs ../shared, python3 with numpy, and llama.cpp
# built with CMake into $LLAMA_DIR/build with shared libraries.)
set -euo pipefail
LLAMA_DIR=${LLAMA_DIR:-/tmp/llama.cpp}
SHARED=${SHARED:-../shared}
PY=${PYTHON:-python3}
$PY -c 'import numpy' 2>/dev/null || PY=/usr/bin/python3
BUILD=build/reference
mkdir -p "$BUILD"
link=()
for dir in "$LLAMA_DIR/build/bin" "$LLAMA_DIR/build/src" "$LLAMA_DIR/build/ggml/src"; do
  [ -d "$dir" ] && link+=("-L$dir" "-Wl,-rpath,$dir")
done
g++ -std=c++17 -O2 -I"$LLAMA_DIR/include" -I"$LLAMA_DIR/ggml/include" -o "$BUILD/driver" \
  tools/reference/driver.cpp "${link[@]}" -lllama -lggml -lggml-base
cc -std=c17 -O2 -D_GNU_SOURCE -Isrc -o "$BUILD/compare_logits" tools/reference/compare_logits.c \
  build/libgarlic.a -lcjson -lpcre2-8 -lm -lpthread
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
prompts=("Hello there, how are you today?" "The quick brown fox jumps over the lazy dog.")
small="--dim 64 --heads 4 --kv-heads 2 --ffn 128 --layers 2"
# name | synth arguments | vocabulary | encoding | convert --type ("" for the default)
cases=(

  "llama-spm|--arch llama $small|llama-spm|f32|"
  "llama-bpe|--arch llama $small --head-dim 32|llama-bpe|bf16|"
  "qwen3|--arch qwen3 $small|gpt-2|f32|"
  "qwen2|--arch qwen2 $small|starcoder|f16|"
  "qwen3moe|--arch qwen3moe $small --experts 4 --experts-used 2 --expert-ffn 64|gpt-2|f32|"
  "qwen2moe|--arch qwen2moe $small --experts 4 --experts-used 2 --expert-ffn 64 --shared-ffn 128|gpt-2|f32|"
  "mixtral|--arch llama $small --experts 4 --experts-used 2|llama-spm|f32|"
  "gemma3|--arch gemma3 $small --layers 6 --sliding-window 4|llama-spm|f32|"
  "phi3|--arch phi3 $small --sliding-window 16|phi-3|f32|"
  "gpt-oss|--arch gpt-oss --dim 64 --heads 4 --kv-heads 2 --ffn 64 --layers 2 --experts 4 --experts-used 2|gpt-2|mxfp4|"
  "deepseek2|--arch deepseek2 --dim 128 --heads 4 --kv-heads 2 --ffn 128 --layers 2 --experts 4 --experts-used 2 --kv-lora-rank 32 --rope-dims 16 --q-lora-rank 48 --shared-experts 1 --dense-layers 1|deepseek-coder|f32|"
  "qwen3-fp8|--arch qwen3 --dim 128 --heads 4 --kv-heads 2 --ffn 256 --layers 2|gpt-2|fp8-block|"
  "llama-gptq|--arch llama --dim 128 --heads 4 --kv-heads 2 --ffn 256 --layers 2|llama-spm|gptq-actorder|"
  "qwen3-q4km|--arch qwen3 --dim 256 --heads 4 --kv-heads 2 --ffn 512 --layers 2|gpt-2|f32|Q4_K_M"
)
for c in "${cases[@]}"; do
  IFS='|' read -r name args vocab enc type <<< "$c"
  echo "== $name: synth $args, vocabulary $vocab, $enc${type:+, convert --type $type}"
  read -r -a synth_args <<< "$args"
  ./garlic synth "$tmp/$name.gguf" "${synth_args[@]}" --tokenizer "$SHARED/tokenizer/ggml-vocab-$vocab.gguf" >/dev/null
  $PY tools/gen_hf_folder.py "$tmp/$name.gguf" "$tmp/$name" --encoding "$enc" >/dev/null 2>&1
  ./garlic convert "$tmp/$name" "$tmp/$name.out.gguf" ${type:+--type $type} >/dev/null
  mkdir -p "$tmp/$name.ref"
  "$BUILD/driver" "$tmp/$name.out.gguf" "$tmp/$name.ref" "${prompts[@]}" 2>/dev/null | grep -v '^system' || true
  for i in 1 2; do
    ids=$tmp/$name.ref/P$i.ids
    mine=$(./garlic tokenize "$tmp/$name" "${prompts[$((i - 1))]}" --ids)
    if [ "$mine" = "$(cat "$ids")" ]; then echo "  tokens    the same ids as llama.cpp's"
    else echo "  tokens    DIFFER: garlic $mine, llama.cpp $(cat "$ids")"; fi
    [ -n "$type" ] || echo "  folder    $("$BUILD/compare_logits" "$tmp/$name" "$ids" "$tmp/$name.ref/P$i.logits")"
    echo "  converted $("$BUILD/compare_logits" "$tmp/$name.out.gguf" "$ids" "$tmp/$name.ref/P$i.logits")"
  done
done
