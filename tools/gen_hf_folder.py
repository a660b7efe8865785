#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes a Hugging Face model folder (config.json, safetensors weights, tokenizer files) from
# a GGUF model, as the real publishers lay them out, for testing garlic's folder loader
# against the same model in GGUF. Python 3 and numpy only (Debian's python3-numpy).
#
#   python3 tools/gen_hf_folder.py MODEL.gguf OUT_DIR [--encoding ENC] [--shards N]
#           [--decoded DIR] [--variant V] [--dense-dtype T] [--scale-dtype T]
#           [--group-size G] [--asym]
#   python3 tools/gen_hf_folder.py MODEL.gguf OUT_DIR --hostile KIND
#   python3 tools/gen_hf_folder.py MODEL.gguf --describe [--encoding ENC]
#   python3 tools/gen_hf_folder.py MODEL.gguf --check DECODED_DIR [--encoding ENC]
#
# MODEL.gguf holds F32, F16, BF16, Q8_0 or MXFP4 tensors (`garlic synth --type F32` or BF16)
# of an architecture garlic runs: llama (Mixtral with experts), qwen2, qwen3, qwen3moe,
# qwen2moe, gemma3, phi3, gpt-oss, deepseek2. ENC is one of
#   f32, f16, bf16      every tensor in that dtype (rounded to nearest even)
#   fp8-block           linears F8_E4M3 + weight_scale_inv F32 per 128x128 block (DeepSeek-V3)
#   fp8-channel         linears F8_E4M3 + weight_scale BF16 [out, 1] (compressed-tensors)
#   fp8-tensor          linears F8_E4M3 + weight_scale F32 [1] (compressed-tensors)
#   awq                 linears 4-bit, AutoAWQ GEMM (qweight/qzeros/scales), zero points
#   gptq                linears 4-bit, GPTQ v1 (qweight/qzeros/scales/g_idx), no act-order
#   gptq-actorder       the same with desc_act (groups follow a channel permutation)
#   mxfp4               gpt-oss's experts as _blocks/_scales (the rest BF16)
# "Linears" are the decoder layers' projections (attention, MLP, experts, shared experts,
# MLA's q_a/q_b/kv_a/kv_b); embeddings, norms, biases, routers, sinks and lm_head stay in the
# dense dtype (BF16 for fp8 and mxfp4, F16 for awq and gptq; --dense-dtype to change it), and
# DeepSeek's e_score_correction_bias in F32. --decoded DIR also writes the same folder with
# every tensor as F32, quantized ones replaced by their exact decoded values, and no
# quantization_config. --shards N splits the weights into N files with
# model.safetensors.index.json. --variant: llama "mistral" (MistralForCausalLM), gemma3
# "conditional" (Gemma3ForConditionalGeneration, text_config nesting). --asym: GPTQ with
# zero points (sym false). The output depends only on the input and the options: no random
# numbers are used. docs/hf-layouts.md lists the names, shapes and transformations;
# --describe prints them for one file. --check compares a --decoded folder with the GGUF's
# values (exactly for f32, else within the encoding's error). --hostile KIND writes a broken
# folder and prints, as JSON, the file and field a loader's error should name (the kinds are
# listed in hf_folder/hostile.py).
import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from hf_folder import generate, hostile, layouts  # noqa: E402
from hf_folder.gguf import GGUF, GGUFError  # noqa: E402
from hf_folder.tokenizer import TokenizerError  # noqa: E402


def describe(path, opts):
    """Markdown table of the folder's tensors for path: HF name, dtype, shape, source."""
    g = GGUF(path)
    cfg, tensors = layouts.build(g, opts)
    out, _, qc, _ = generate.encode(tensors, opts)
    shapes = {name: (dtype, list(arr.shape)) for name, dtype, arr in out}
    print(f"| HF tensor ({opts.encoding}) | dtype | shape | from GGUF |")
    print("|---|---|---|---|")
    parts = ("weight", "weight_scale_inv", "weight_scale", "qweight", "qzeros", "scales",
             "g_idx")
    for t in tensors:
        names = [t.name] if t.name in shapes else []
        if t.role == layouts.LINEAR:
            names += [f"{t.module}.{p}" for p in parts if f"{t.module}.{p}" in shapes and
                      f"{t.module}.{p}" != t.name]
        names += [t.name + s for s in ("_blocks", "_scales") if t.name + s in shapes]
        for n in names:
            dtype, shape = shapes[n]
            src = t.source if n == t.name else f"(encodes {t.name} of {t.source})"
            print(f"| `{n}` | {dtype} | {shape} | {src} |")
    print()
    print("config.json keys: " + ", ".join(sorted(generate.finish_config(
        cfg, g, "?", qc))))


def main(argv):
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("model")
    ap.add_argument("out", nargs="?")
    ap.add_argument("--encoding", default="f32", choices=generate.ENCODINGS)
    ap.add_argument("--shards", type=int, default=1)
    ap.add_argument("--decoded")
    ap.add_argument("--variant", choices=("mistral", "conditional"))
    ap.add_argument("--dense-dtype", choices=("F32", "F16", "BF16"))
    ap.add_argument("--scale-dtype", choices=("F32", "F16", "BF16"))
    ap.add_argument("--group-size", type=int, choices=(32, 64, 128))
    ap.add_argument("--asym", action="store_true", help="GPTQ: sym false (zero points)")
    ap.add_argument("--hostile", choices=sorted(hostile.KINDS))
    ap.add_argument("--describe", action="store_true")
    ap.add_argument("--check", metavar="DECODED_DIR",
                    help="compare a --decoded folder with MODEL.gguf's values")
    a = ap.parse_args(argv)
    opts = generate.Options(a.encoding, a.shards, a.decoded, a.variant, a.dense_dtype,
                            a.scale_dtype, a.group_size, not a.asym)
    try:
        if a.describe:
            describe(a.model, opts)
            return 0
        if a.check:
            passed, failures = generate.check_decoded(a.model, a.check, opts)
            for f in failures:
                print(f"FAIL {f}")
            print(f"{passed} passed, {len(failures)} failed")
            return 1 if failures else 0
        if not a.out:
            ap.error("OUT_DIR is needed")
        if a.hostile:
            print(hostile.write(a.model, a.out, a.hostile, opts))
            return 0
        for note in generate.generate(a.model, a.out, opts):
            print(f"gen_hf_folder: note: {note}", file=sys.stderr)
    except (GGUFError, layouts.LayoutError, generate.GenerateError, TokenizerError,
            hostile.HostileError, OSError, ValueError) as e:
        print(f"gen_hf_folder: {e}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
