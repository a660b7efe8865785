# SPDX-License-Identifier: MIT
# Writes a Hugging Face folder from a GGUF model in one of the published weight encodings
# (see encodings.py), and optionally the same folder with every quantized tensor replaced by
# its decoded float32 values. The layouts (names, shapes, transformations, config.json) are
# layouts.py's; the tokenizer files tokenizer.py's.
import json
import os

import numpy as np

from . import encodings as enc
from . import layouts
from . import safetensors as st
from . import tokenizer
from .gguf import GGUF

ENCODINGS = ("f32", "f16", "bf16", "fp8-block", "fp8-channel", "fp8-tensor", "awq", "gptq",
             "gptq-actorder", "mxfp4")
# The dense dtype each encoding's publishers use for what is not quantized.
DENSE_DEFAULT = {"f32": "F32", "f16": "F16", "bf16": "BF16", "fp8-block": "BF16",
                 "fp8-channel": "BF16", "fp8-tensor": "BF16", "awq": "F16", "gptq": "F16",
                 "gptq-actorder": "F16", "mxfp4": "BF16"}
# Scale dtypes: DeepSeek-V3's weight_scale_inv is F32 (Qwen3's dense FP8 models use BF16);
# llm-compressor's per-channel weight_scale follows the model's dtype; per-tensor is F32.
SCALE_DEFAULT = {"fp8-block": "F32", "fp8-channel": "BF16", "fp8-tensor": "F32"}
TORCH_DTYPE = {"F32": "float32", "F16": "float16", "BF16": "bfloat16"}


class GenerateError(Exception):
    pass


class Options:
    def __init__(self, encoding="f32", shards=1, decoded=None, variant=None, dense_dtype=None,
                 scale_dtype=None, group_size=None, sym=True):
        self.encoding, self.shards, self.decoded = encoding, shards, decoded
        self.variant, self.dense_dtype, self.scale_dtype = variant, dense_dtype, scale_dtype
        self.group_size, self.sym = group_size, sym


def quantized_linears(tensors, encoding):
    return [t for t in tensors if t.role == layouts.LINEAR] if encoding in (
        "fp8-block", "fp8-channel", "fp8-tensor", "awq", "gptq", "gptq-actorder") else []


def pick_group(linears, requested):
    """The AWQ/GPTQ group size: the requested one, or the largest of 128, 64, 32 that
    divides the input width of every quantized matrix."""
    widths = {t.values.shape[1] for t in linears}
    choices = [requested] if requested else [128, 64, 32]
    for g in choices:
        if all(w % g == 0 for w in widths):
            return g
    raise GenerateError(f"no group size of {choices} divides every input width {sorted(widths)}")


def check_int4_shapes(linears, encoding):
    for t in linears:
        out, inn = t.values.shape
        if out % 8 or (encoding != "awq" and inn % 8):
            raise GenerateError(f"{t.name} [{out}, {inn}]: {encoding} packs eight 4-bit values "
                                "per int32 (rows of out, and of in for GPTQ, by 8)")


def quant_config(opts, group, tensors):
    e = opts.encoding
    if e == "fp8-block":
        return {"activation_scheme": "dynamic", "fmt": "e4m3", "quant_method": "fp8",
                "weight_block_size": [128, 128]}
    if e in ("fp8-channel", "fp8-tensor"):
        # Linear modules left in the dense dtype: the LM head and the routers.
        ignore = [t.module for t in tensors if t.role == layouts.DENSE and t.values.ndim == 2
                  and t.name.endswith(("gate.weight", "router.weight", "lm_head.weight"))]
        return {"config_groups": {"group_0": {
            "input_activations": {"actorder": None, "block_structure": None, "dynamic": True,
                                  "group_size": None, "num_bits": 8, "observer": None,
                                  "observer_kwargs": {}, "strategy": "token",
                                  "symmetric": True, "type": "float"},
            "output_activations": None, "targets": ["Linear"],
            "weights": {"actorder": None, "block_structure": None, "dynamic": False,
                        "group_size": None, "num_bits": 8, "observer": "minmax",
                        "observer_kwargs": {},
                        "strategy": "channel" if e == "fp8-channel" else "tensor",
                        "symmetric": True, "type": "float"}}},
            "format": "float-quantized", "global_compression_ratio": None, "ignore": ignore,
            "kv_cache_scheme": None, "quant_method": "compressed-tensors",
            "quantization_status": "compressed"}
    if e == "awq":
        return {"bits": 4, "group_size": group, "modules_to_not_convert": None,
                "quant_method": "awq", "version": "gemm", "zero_point": True}
    if e in ("gptq", "gptq-actorder"):
        return {"bits": 4, "checkpoint_format": "gptq", "damp_percent": 0.01,
                "desc_act": e == "gptq-actorder", "group_size": group,
                "model_file_base_name": None, "model_name_or_path": None,
                "quant_method": "gptq", "static_groups": False, "sym": opts.sym,
                "true_sequential": True}
    if e == "mxfp4":
        return {"modules_to_not_convert": ["model.layers.*.self_attn",
                                           "model.layers.*.mlp.router", "model.embed_tokens",
                                           "lm_head"], "quant_method": "mxfp4"}
    return None


def encode_linear(t, opts, group, scale_dtype):
    """{suffix: (dtype, storage array)} for a linear weight, and its decoded float32."""
    w, e = t.values, opts.encoding
    if e == "fp8-block":
        parts = enc.fp8_block_encode(w, 128, scale_dtype)
        return parts, enc.fp8_block_decode(parts, 128)
    if e in ("fp8-channel", "fp8-tensor"):
        parts = enc.fp8_scaled_encode(w, e == "fp8-channel", scale_dtype)
        return parts, enc.fp8_scaled_decode(parts)
    if e == "awq":
        parts = enc.awq_encode(w, group)
        return parts, enc.awq_decode(parts, group)
    parts = enc.gptq_encode(w, group, opts.sym, e == "gptq-actorder")
    return parts, enc.gptq_decode(parts)


def encode_experts(t):
    """gpt-oss's packed experts in MXFP4: the parameter [E, in, out] is stored transposed,
    [E, out, in / 32, 16] blocks and [E, out, in / 32] scales."""
    rows = t.values.transpose(0, 2, 1)
    if rows.shape[-1] % 32:
        raise GenerateError(f"{t.name}: rows of {rows.shape[-1]} values, MXFP4 needs a "
                            "multiple of 32")
    blocks, scales = enc.mxfp4_encode(rows)
    decoded = enc.mxfp4_decode(blocks, scales).transpose(0, 2, 1)
    return {"_blocks": ("U8", blocks), "_scales": ("U8", scales)}, decoded


def encode(tensors, opts):
    """The folder's tensors [(name, dtype, storage)], the decoded folder's [(name, "F32",
    values)] and the quantization_config (None for a float encoding)."""
    e = opts.encoding
    dense = opts.dense_dtype or DENSE_DEFAULT[e]
    scale_dtype = opts.scale_dtype or SCALE_DEFAULT.get(e)
    linears = quantized_linears(tensors, e)
    group = None
    if e in ("awq", "gptq", "gptq-actorder"):
        check_int4_shapes(linears, e)
        group = pick_group(linears, opts.group_size)
    if e == "mxfp4" and not any(t.role == layouts.EXPERTS for t in tensors):
        raise GenerateError("mxfp4 quantizes gpt-oss's experts only; this model has none")
    quantized = {id(t) for t in linears}
    out, decoded = [], []
    for t in tensors:
        if id(t) in quantized:
            parts, dec = encode_linear(t, opts, group, scale_dtype)
            for suffix, (dtype, arr) in parts.items():
                out.append((f"{t.module}.{suffix}", dtype, arr))
            decoded.append((t.name, "F32", dec.astype(np.float32)))
        elif t.role == layouts.EXPERTS and e == "mxfp4":
            parts, dec = encode_experts(t)
            for suffix, (dtype, arr) in parts.items():
                out.append((t.name + suffix, dtype, arr))
            decoded.append((t.name, "F32", dec.astype(np.float32)))
        else:
            dtype = "F32" if t.role == layouts.F32 else dense
            out.append((t.name, dtype, enc.to_storage(t.values, dtype)))
            decoded.append((t.name, "F32", enc.round_to(t.values, dtype)))
    return out, decoded, quant_config(opts, group, tensors), dense


def write_json(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False)
        f.write("\n")


def finish_config(cfg, g, dtype_name, qc):
    """Adds the token ids, torch_dtype, transformers_version and quantization_config."""
    cfg = dict(cfg)
    target = cfg.get("text_config", cfg)
    target.update(tokenizer.config_token_ids(g))
    cfg["torch_dtype"] = dtype_name
    if "text_config" in cfg:
        cfg["text_config"]["torch_dtype"] = dtype_name
    cfg["transformers_version"] = "4.51.0"
    if qc is not None:
        cfg["quantization_config"] = qc
    return dict(sorted(cfg.items()))


def write_model_folder(out_dir, g, cfg, tensors, shards, dtype_name, qc):
    os.makedirs(out_dir, exist_ok=True)
    st.write_folder(out_dir, tensors, shards)
    write_json(os.path.join(out_dir, "config.json"), finish_config(cfg, g, dtype_name, qc))
    return tokenizer.write(g, out_dir, cfg.get("max_position_embeddings",
                                               cfg.get("text_config", {}).get(
                                                   "max_position_embeddings", 0)))


def generate(gguf_path, out_dir, opts):
    """Writes the folder (and opts.decoded's); returns notes for the user."""
    if opts.encoding not in ENCODINGS:
        raise GenerateError(f"--encoding {opts.encoding}: one of {', '.join(ENCODINGS)}")
    g = GGUF(gguf_path)
    cfg, tensors = layouts.build(g, opts)
    out, decoded, qc, dense = encode(tensors, opts)
    notes = write_model_folder(out_dir, g, cfg, out, opts.shards, TORCH_DTYPE[dense], qc)
    if opts.decoded:
        write_model_folder(opts.decoded, g, cfg, decoded, opts.shards, "float32", None)
    return notes


# The largest error each encoding may leave, relative to the largest magnitude of the
# tensor (f32: none). 4-bit groups and FP8 scales are per block, so the bound per tensor is
# that of the worst block: half a step plus clipping at the top of the range.
TOLERANCE = {"f32": 0.0, "f16": 1e-3, "bf16": 4e-3, "fp8-block": 0.07, "fp8-channel": 0.07,
             "fp8-tensor": 0.07, "awq": 0.1, "gptq": 0.1, "gptq-actorder": 0.1, "mxfp4": 0.26}


def check_decoded(gguf_path, decoded_dir, opts):
    """Compares a --decoded folder with the GGUF's values in the HF layout: every tensor
    present with its shape, within the encoding's TOLERANCE (dense tensors within their
    dense dtype's). Returns (passed, failures)."""
    g = GGUF(gguf_path)
    _, tensors = layouts.build(g, opts)
    got = st.read_folder(decoded_dir)
    dense = opts.dense_dtype or DENSE_DEFAULT[opts.encoding]
    quantized = {id(t) for t in quantized_linears(tensors, opts.encoding)}
    if opts.encoding == "mxfp4":
        quantized |= {id(t) for t in tensors if t.role == layouts.EXPERTS}
    passed, failures = 0, []
    for t in tensors:
        if t.name not in got:
            failures.append(f"{t.name}: missing from {decoded_dir}")
            continue
        dtype, arr = got[t.name]
        if dtype != "F32" or list(arr.shape) != list(t.values.shape):
            failures.append(f"{t.name}: {dtype} {list(arr.shape)}, expected F32 "
                            f"{list(t.values.shape)}")
            continue
        if id(t) in quantized:
            tol = TOLERANCE[opts.encoding]
        else:
            tol = TOLERANCE[{"F32": "f32", "F16": "f16", "BF16": "bf16"}[
                "F32" if t.role == layouts.F32 else dense]]
        scale = float(np.abs(t.values).max()) or 1.0
        err = float(np.abs(arr.astype(np.float64) - t.values).max()) / scale
        if err > tol or (tol == 0 and not np.array_equal(arr, t.values)):
            failures.append(f"{t.name}: error {err:.3g} of its largest value, over {tol}")
        else:
            passed += 1
    for name in got:
        if name not in {t.name for t in tensors}:
            failures.append(f"{name}: in {decoded_dir}, not in the layout")
    return passed, failures
