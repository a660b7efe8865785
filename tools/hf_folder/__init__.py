# SPDX-License-Identifier: MIT
# The Hugging Face folder generator's modules (see tools/gen_hf_folder.py): gguf (reader),
# layouts (names, shapes, config.json per architecture), encodings (quantizers and their
# decoders), safetensors (writer and reader), tokenizer (tokenizer files), generate (the
# folder), hostile (broken folders).
