# SPDX-License-Identifier: MIT
# Broken Hugging Face folders for the loader's error paths. Each kind writes a valid folder
# with the generator (in the encoding and sharding the fault needs) and then breaks one
# thing. write() returns a JSON line naming the file and the field (tensor, key or entry)
# that a correct loader's message should name, e.g.
#   {"kind": "offsets-past-end", "file": "model.safetensors",
#    "field": "model.norm.weight", "what": "data_offsets end past the end of the file"}
import json
import os
import struct

from . import generate


class HostileError(Exception):
    pass


# ---- helpers ----

def _read(path):
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    return json.loads(buf[8:8 + n]), buf[8 + n:]


def _write(path, header, data, pad=True):
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    if pad:
        text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + data)


def _tensors(header):
    return [k for k in header if k != "__metadata__"]


def _last(header):
    """The tensor whose data ends last."""
    return max(_tensors(header), key=lambda k: header[k]["data_offsets"][1])


def _drop(header, data, name):
    """Removes a tensor and its bytes, moving the later tensors down (no gap is left)."""
    b, e = header.pop(name)["data_offsets"]
    for k in _tensors(header):
        ob, oe = header[k]["data_offsets"]
        if ob >= e:
            header[k]["data_offsets"] = [ob - (e - b), oe - (e - b)]
    return data[:b] + data[e:]


def _find(header, suffix):
    for k in _tensors(header):
        if k.endswith(suffix):
            return k
    raise HostileError(f"no tensor ending in {suffix}")


def _index(out):
    with open(os.path.join(out, "model.safetensors.index.json")) as f:
        return json.load(f)


def _write_index(out, index):
    with open(os.path.join(out, "model.safetensors.index.json"), "w") as f:
        json.dump(index, f, indent=2)


def _config(out):
    with open(os.path.join(out, "config.json")) as f:
        return json.load(f)


def _write_config(out, cfg):
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(cfg, f, indent=2)


def _text_config(cfg):
    return cfg.get("text_config", cfg)


ST = "model.safetensors"


# ---- the kinds: (encoding, shards, break function) ----

def missing_config(out):
    os.remove(os.path.join(out, "config.json"))
    return "config.json", "config.json", "the folder has no config.json"


def missing_shard(out):
    name = sorted(set(_index(out)["weight_map"].values()))[-1]
    os.remove(os.path.join(out, name))
    return "model.safetensors.index.json", name, "a shard named by the index does not exist"


def index_wrong_shard(out):
    """A tensor listed in the index under a shard that does not hold it."""
    index = _index(out)
    names = sorted(set(index["weight_map"].values()))
    moved = next(k for k, v in sorted(index["weight_map"].items()) if v == names[-1])
    index["weight_map"][moved] = names[0]
    _write_index(out, index)
    return names[0], moved, "the index lists the tensor in a shard that does not hold it"


def index_unknown_tensor(out):
    index = _index(out)
    name = sorted(set(index["weight_map"].values()))[0]
    index["weight_map"]["model.layers.0.self_attn.extra_proj.weight"] = name
    _write_index(out, index)
    return name, "model.layers.0.self_attn.extra_proj.weight", \
        "the index lists a tensor that no shard holds"


def index_path_escape(out):
    index = _index(out)
    key = sorted(index["weight_map"])[0]
    index["weight_map"][key] = "../outside.safetensors"
    _write_index(out, index)
    return "model.safetensors.index.json", "../outside.safetensors", \
        "a shard name that leaves the folder"


def offsets_past_end(out):
    path = os.path.join(out, ST)
    header, data = _read(path)
    last = _last(header)
    b, e = header[last]["data_offsets"]
    header[last]["data_offsets"] = [b + 64, e + 64]
    header[last]["shape"] = header[last]["shape"]  # same size: only the range moves
    _write(path, header, data)
    return ST, last, "data_offsets end past the end of the file"


def truncated_data(out):
    path = os.path.join(out, ST)
    header, data = _read(path)
    with open(path, "r+b") as f:
        f.truncate(os.path.getsize(path) - 100)
    return ST, _last(header), "the file ends before the last tensor's data"


def truncated_header(out):
    path = os.path.join(out, ST)
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    with open(path, "wb") as f:
        f.write(buf[:8 + n // 2])
    return ST, "header", "the file ends inside the JSON header"


def header_length_huge(out):
    path = os.path.join(out, ST)
    with open(path, "r+b") as f:
        f.write(struct.pack("<Q", (1 << 62) + 8))
    return ST, "header", "the header length is larger than the file"


def bad_json(out):
    path = os.path.join(out, ST)
    with open(path, "r+b") as f:
        f.seek(8)
        f.write(b"{\"x\":[")
    return ST, "header", "the header is not valid JSON"


def dtype_mismatch(out):
    """F16 declared for bytes sized as F32: shape x dtype != end - begin."""
    path = os.path.join(out, ST)
    header, data = _read(path)
    name = _find(header, "self_attn.q_proj.weight")
    header[name]["dtype"] = "F16"
    _write(path, header, data)
    return ST, name, "shape x dtype size differs from data_offsets"


def unknown_dtype(out):
    path = os.path.join(out, ST)
    header, data = _read(path)
    name = _find(header, "input_layernorm.weight")
    header[name]["dtype"] = "F12"
    _write(path, header, data)
    return ST, name, "an unknown dtype"


def overlapping_offsets(out):
    path = os.path.join(out, ST)
    header, data = _read(path)
    a = _find(header, "layers.0.input_layernorm.weight")
    b = _find(header, "layers.0.post_attention_layernorm.weight")
    header[b]["data_offsets"] = list(header[a]["data_offsets"])
    _write(path, header, data)
    return ST, b, "two tensors share data"


def shape_mismatch(out):
    """q_proj with half the rows the config implies (the file itself is consistent)."""
    path = os.path.join(out, ST)
    header, data = _read(path)
    name = _find(header, "layers.0.self_attn.q_proj.weight")
    rows, cols = header[name]["shape"]
    header[name]["shape"] = [rows // 2, cols * 2]
    _write(path, header, data)
    return ST, name, "the shape contradicts config.json (num_attention_heads x head_dim rows)"


def layers_missing(out):
    cfg = _config(out)
    _text_config(cfg)["num_hidden_layers"] += 1
    _write_config(out, cfg)
    n = _text_config(cfg)["num_hidden_layers"] - 1
    return "config.json", f"model.layers.{n}", \
        "num_hidden_layers is larger than the layers in the weights"


def config_bad_type(out):
    cfg = _config(out)
    _text_config(cfg)["hidden_size"] = "128"
    _write_config(out, cfg)
    return "config.json", "hidden_size", "hidden_size is a string"


def fp8_missing_scale(out):
    path = os.path.join(out, ST)
    header, data = _read(path)
    name = _find(header, "layers.0.self_attn.q_proj.weight_scale_inv")
    _write(path, header, _drop(header, data, name))
    return ST, name[:-len("_scale_inv")], "an F8_E4M3 weight without its weight_scale_inv"


def awq_qzeros_shape(out):
    path = os.path.join(out, ST)
    header, data = _read(path)
    name = _find(header, "layers.0.self_attn.q_proj.qzeros")
    groups, cols = header[name]["shape"]
    header[name]["shape"] = [groups * 2, cols // 2] if cols % 2 == 0 else [groups, cols]
    _write(path, header, data)
    return ST, name, "qzeros is not [in / group_size, out / 8]"


def gptq_g_idx_range(out):
    path = os.path.join(out, ST)
    header, data = _read(path)
    name = _find(header, "layers.0.self_attn.q_proj.g_idx")
    b, _ = header[name]["data_offsets"]
    data = bytearray(data)
    data[b:b + 4] = struct.pack("<i", 1 << 20)
    _write(path, header, bytes(data))
    return ST, name, "g_idx names a group past the scales' rows"


KINDS = {
    "missing-config": ("f32", 1, missing_config),
    "missing-shard": ("f32", 2, missing_shard),
    "index-wrong-shard": ("f32", 2, index_wrong_shard),
    "index-unknown-tensor": ("f32", 2, index_unknown_tensor),
    "index-path-escape": ("f32", 2, index_path_escape),
    "offsets-past-end": ("f32", 1, offsets_past_end),
    "truncated-data": ("f32", 1, truncated_data),
    "truncated-header": ("f32", 1, truncated_header),
    "header-length-huge": ("f32", 1, header_length_huge),
    "bad-json": ("f32", 1, bad_json),
    "dtype-mismatch": ("f32", 1, dtype_mismatch),
    "unknown-dtype": ("f32", 1, unknown_dtype),
    "overlapping-offsets": ("f32", 1, overlapping_offsets),
    "shape-mismatch": ("f32", 1, shape_mismatch),
    "layers-missing": ("f32", 1, layers_missing),
    "config-bad-type": ("f32", 1, config_bad_type),
    "fp8-missing-scale": ("fp8-block", 1, fp8_missing_scale),
    "awq-qzeros-shape": ("awq", 1, awq_qzeros_shape),
    "gptq-g-idx-range": ("gptq-actorder", 1, gptq_g_idx_range),
}


def write(model, out, kind, opts):
    """Writes the broken folder; returns the JSON line saying what a loader should name."""
    if kind not in KINDS:
        raise HostileError(f"--hostile {kind}: one of {', '.join(sorted(KINDS))}")
    encoding, shards, fault = KINDS[kind]
    base = generate.Options(encoding, shards, None, opts.variant, opts.dense_dtype,
                            opts.scale_dtype, opts.group_size, opts.sym)
    generate.generate(model, out, base)
    file, field, what = fault(out)
    return json.dumps({"kind": kind, "file": file, "field": field, "what": what})
