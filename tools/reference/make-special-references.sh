#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Writes tests/data/tokenizer/special/: for every vocabulary in ../shared/tokenizer, strings that
# spell its own special tokens out in text and llama.cpp's ids for them with special-token
# parsing off (NAME.plain.out) and on (NAME.special.out), which tests/tokenizer compares garlic
# with. It builds tools/reference/special_driver.cpp against a built llama.cpp checkout
# (outside this repository; a CPU build with shared libraries in $LLAMA_DIR/build/bin).
#
# Command (from the repository root):
#     LLAMA_DIR=/tmp/llama.cpp tools/reference/make-special-references.sh
# The committed data was written with llama.cpp commit d32676d77 (unslothai's tree of
# ggml-org/llama.cpp, 2026-08-18).
set -euo pipefail

LLAMA_DIR=${LLAMA_DIR:-/tmp/llama.cpp}
SHARED=${SHARED:-../shared/tokenizer}
OUT=tests/data/tokenizer/special
BUILD=${BUILD:-build}/reference
lib=$LLAMA_DIR/build/bin
for so in libllama.so libggml.so libggml-base.so; do
  [ -e "$lib/$so" ] || { echo "make-special-references.sh: $lib/$so: not found (build llama.cpp)" >&2; exit 1; }
done
mkdir -p "$BUILD" "$OUT"
g++ -std=c++17 -O2 -Wall -Wextra -Werror -I"$LLAMA_DIR/include" -I"$LLAMA_DIR/ggml/include" \
  -o "$BUILD/special_driver" tools/reference/special_driver.cpp -L"$lib" -Wl,-rpath,"$lib" \
  -lllama -lggml -lggml-base
for gguf in "$SHARED"/ggml-vocab-*.gguf; do
  name=$(basename "$gguf" .gguf)
  "$BUILD/special_driver" "$gguf" "$OUT" "${name#ggml-vocab-}"
done
echo "llama.cpp $(git -C "$LLAMA_DIR" log -1 --format='%h (%cs)')" > "$OUT/SOURCE"
