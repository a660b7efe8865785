#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Writes the llama.cpp reference logits of tests/data/arch/ that tests/model/test_arch.c
# compares garlic's forward pass with. It builds tools/reference/driver.cpp against a built
# llama.cpp checkout (outside this repository), then, for each row of
# tests/data/arch/models.tsv (or only the stems named), synthesizes the model with
# `./garlic synth` into a temporary folder and runs the driver over the prompts of
# tests/data/arch/prompts.txt (one per line), writing tests/data/arch/<stem>/P<i>.{ids,logits}
# and <stem>/source.txt, and then tests/data/arch/README.md from every stem's source.txt.
#
# With KIND=embed (what tools/reference/make-embed-references.sh sets) it writes the reference
# embeddings of tests/data/embed/ instead, with tools/reference/embed_driver.cpp
# (<stem>/P<i>.{ids,embd}), for tests/model/test_embed.c.
#
# Command (from the repository root, after `make`; llama.cpp built with CMake into
# $LLAMA_DIR/build with shared libraries, a CPU build):
#     LLAMA_DIR=/tmp/llama.cpp tools/reference/make-references.sh [STEM...]
# The committed data was written with llama.cpp commit d32676d77 (unslothai's tree of
# ggml-org/llama.cpp, 2026-08-18; CPU build with GGML_NATIVE on an AVX-512 machine). The README
# it writes records the commit and date of each stem.
set -euo pipefail

LLAMA_DIR=${LLAMA_DIR:-/tmp/llama.cpp}
GARLIC=${GARLIC:-./garlic}
BUILD=${BUILD:-build}/reference
KIND=${KIND:-logits}
case "$KIND" in
  logits) DATA=tests/data/arch SCRIPT=make-references.sh DRIVER=driver EXT=logits ;;
  embed) DATA=tests/data/embed SCRIPT=make-embed-references.sh DRIVER=embed_driver EXT=embd ;;
  *) echo "make-references.sh: KIND=$KIND: not logits or embed" >&2; exit 1 ;;
esac

die() { echo "make-references.sh: $*" >&2; exit 1; }

[ -f "$DATA/models.tsv" ] || die "$DATA/models.tsv: not found (run from the repository root)"
[ -x "$GARLIC" ] || die "$GARLIC: not found (run make first)"
[ -f "$LLAMA_DIR/include/llama.h" ] || die "$LLAMA_DIR/include/llama.h: not found (set LLAMA_DIR)"

# The folders of the built shared libraries (build/bin, or build/src and build/ggml/src).
lib_dirs=()
for lib in libllama.so libggml.so libggml-base.so; do
  found=""
  for dir in "$LLAMA_DIR/build/bin" "$LLAMA_DIR/build/src" "$LLAMA_DIR/build/ggml/src"; do
    if [ -e "$dir/$lib" ]; then found=$dir; break; fi
  done
  [ -n "$found" ] || die "$lib: not found under $LLAMA_DIR/build/{bin,src,ggml/src} (build llama.cpp)"
  case " ${lib_dirs[*]-} " in *" $found "*) ;; *) lib_dirs+=("$found") ;; esac
done
link=()
for dir in "${lib_dirs[@]}"; do link+=("-L$dir" "-Wl,-rpath,$dir"); done

commit=$(git -C "$LLAMA_DIR" log -1 --format=%h)
commit_line=$(git -C "$LLAMA_DIR" log -1 --format='%h "%s" (%cs)')
mkdir -p "$BUILD"
driver=$BUILD/$DRIVER
g++ -std=c++17 -O2 -Wall -Wextra -Werror -I"$LLAMA_DIR/include" -I"$LLAMA_DIR/ggml/include" \
  -o "$driver" "tools/reference/$DRIVER.cpp" "${link[@]}" -lllama -lggml -lggml-base

# Every stem asked for must be a row (a typo must not pass as "nothing to do").
for want in "$@"; do
  cut -f1 "$DATA/models.tsv" | grep -qxF -- "$want" || die "$DATA/models.tsv: no row '$want'"
done

mapfile -t prompts < "$DATA/prompts.txt"
[ "${#prompts[@]}" -eq 3 ] || die "$DATA/prompts.txt: ${#prompts[@]} lines, 3 expected"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Rows: stem, relative tolerance, then the garlic synth arguments (tab-separated columns, the
# arguments space-separated in the third). Lines starting with # are comments.
while IFS=$'\t' read -r stem tol args; do
  case "$stem" in ''|'#'*) continue ;; esac
  if [ $# -gt 0 ]; then
    wanted=0
    for s in "$@"; do [ "$s" = "$stem" ] && wanted=1; done
    [ "$wanted" -eq 1 ] || continue
  fi
  if [ -z "$tol" ] || [ -z "$args" ]; then die "$DATA/models.tsv: row '$stem' needs 3 columns"; fi
  echo "== $stem (tolerance $tol): garlic synth $args"
  read -r -a synth_args <<< "$args"
  "$GARLIC" synth "$tmp/$stem.gguf" "${synth_args[@]}"
  mkdir -p "$DATA/$stem"
  rm -f "$DATA/$stem"/P*.ids "$DATA/$stem"/P*."$EXT"
  "$driver" "$tmp/$stem.gguf" "$DATA/$stem" "${prompts[@]}" | tee "$tmp/$stem.log"
  {
    echo "stem: $stem"
    echo "tolerance: $tol"
    echo "synth: garlic synth MODEL.gguf $args"
    echo "llama.cpp: $commit_line"
    grep '^system: ' "$tmp/$stem.log" | sed 's/[ |]*$//'
    echo "date: $(date -u +%Y-%m-%d)"
  } > "$DATA/$stem/source.txt"
done < "$DATA/models.tsv"

# The README: what the files are, the settings, and each stem's source.
{
  if [ "$KIND" = logits ]; then
  cat <<EOF
# Architecture references (written by tools/reference/make-references.sh)

Reference logits from llama.cpp for small random-weight models that \`garlic synth\` writes, one
folder per row of \`models.tsv\`. \`tests/model/test_arch.c\` synthesizes the same models and
compares garlic's forward pass with these files. Do not edit them by hand: regenerate with

    LLAMA_DIR=/path/to/llama.cpp tools/reference/make-references.sh [STEM...]

(from the repository root, after \`make\`; without stems every row is regenerated). Last run
with llama.cpp commit $commit.

Settings (those of ../shared/reference/README.md): tokenized by llama_tokenize with
add_special=true (BOS first) and parse_special=false; the whole prompt in one llama_decode
batch with logits for every position; 1 thread (n_threads = n_threads_batch = 1); F32 K and V
cache; flash attention off; n_ctx = n_batch = n_ubatch = 512; CPU only.

Files per stem: \`P<i>.ids\` (prompt line i of \`prompts.txt\`, ids space-separated on one line),
\`P<i>.logits\` (raw little-endian float32, one row of n_vocab values per prompt position, in
position order), \`source.txt\` (what wrote them).

EOF
  else
  cat <<EOF
# Embedding references (written by tools/reference/make-embed-references.sh)

Reference embeddings from llama.cpp for small random-weight models that \`garlic synth\` writes
(BERT and nomic-bert encoders with the built-in WordPiece vocabulary, a Qwen3 decoder with
last-token pooling), one folder per row of \`models.tsv\`. \`tests/model/test_embed.c\`
synthesizes the same models and compares garlic's pooled, normalized embeddings with these
files. Do not edit them by hand: regenerate with

    LLAMA_DIR=/path/to/llama.cpp tools/reference/make-embed-references.sh [STEM...]

(from the repository root, after \`make\`; without stems every row is regenerated). Last run
with llama.cpp commit $commit.

Settings: tokenized by llama_tokenize with add_special=true ([CLS] ... [SEP] for WordPiece, BOS
for SentencePiece) and parse_special=false; the whole prompt in one llama_decode batch in a
fresh context with embeddings on and the model's pooling_type; 1 thread; F32 K and V cache;
flash attention off; n_ctx = n_batch = n_ubatch = 512; CPU only. The pooled vector is divided
by its Euclidean norm (llama.cpp's embedding example's default, --embd-normalize 2).

Files per stem: \`P<i>.ids\` (prompt line i of \`prompts.txt\`, counted from 0, ids
space-separated on one line), \`P<i>.embd\` (raw little-endian float32, n_embd values),
\`source.txt\` (what wrote them). Tolerance: max |garlic - reference| / max |reference| over the
vector.

EOF
  fi
  cat <<EOF
| stem | tolerance | llama.cpp | date | garlic synth arguments |
|---|---|---|---|---|
EOF
  while IFS=$'\t' read -r stem tol args; do
    case "$stem" in ''|'#'*) continue ;; esac
    src="$DATA/$stem/source.txt"
    if [ -f "$src" ]; then
      c=$(sed -n 's/^llama.cpp: \([0-9a-f]*\) .*/\1/p' "$src")
      d=$(sed -n 's/^date: //p' "$src")
      echo "| $stem | $tol | $c | $d | \`$args\` |"
    else
      echo "| $stem | $tol | (not generated) | | \`$args\` |"
    fi
  done < "$DATA/models.tsv"
} > "$DATA/README.md"
echo "wrote $DATA/README.md"
