#!/usr/bin/env bash
# SPDX-License-Identifier: MIT
# Writes the llama.cpp reference embeddings of tests/data/embed/ that tests/model/test_embed.c
# compares garlic's embeddings with: tools/reference/make-references.sh with KIND=embed (see
# there), which builds tools/reference/embed_driver.cpp against a llama.cpp checkout.
#     LLAMA_DIR=/tmp/llama.cpp tools/reference/make-embed-references.sh [STEM...]
KIND=embed exec "$(dirname "$0")/make-references.sh" "$@"
