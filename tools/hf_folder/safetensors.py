# SPDX-License-Identifier: MIT
# safetensors files written and read with numpy alone, and the sharded folder's index.
#
# Layout: u64 little-endian N | N bytes of JSON header | data. The header is an object:
# "__metadata__" (an object of strings; {"format": "pt"} as PyTorch's writer puts it) and,
# per tensor, "name": {"dtype": "BF16", "shape": [...], "data_offsets": [begin, end]}, the
# offsets relative to the data start. As the reference writer does, the JSON is padded with
# spaces so the data starts at a multiple of 8, and tensors are laid out by dtype size
# (largest first) then name, back to back with no gaps.
import json
import os
import struct

import numpy as np

DTYPES = {  # safetensors dtype -> (numpy storage dtype, bytes per value)
    "F64": ("<f8", 8), "F32": ("<f4", 4), "F16": ("<f2", 2), "BF16": ("<u2", 2),
    "I64": ("<i8", 8), "I32": ("<i4", 4), "I16": ("<i2", 2), "I8": ("i1", 1),
    "U8": ("u1", 1), "U16": ("<u2", 2), "U32": ("<u4", 4), "U64": ("<u8", 8),
    "BOOL": ("?", 1), "F8_E4M3": ("u1", 1), "F8_E5M2": ("u1", 1), "F8_E8M0": ("u1", 1),
}


def tensor_bytes(dtype, arr):
    return int(np.prod(arr.shape, dtype=np.int64)) * DTYPES[dtype][1]


def write_file(path, tensors, metadata=None):
    """tensors: [(name, dtype, array)], arrays already in the dtype's storage form.
    Returns the bytes of tensor data written."""
    order = sorted(tensors, key=lambda t: (-DTYPES[t[1]][1], t[0]))
    header = {"__metadata__": metadata if metadata is not None else {"format": "pt"}}
    offset = 0
    blobs = []
    for name, dtype, arr in order:
        np_dtype, _ = DTYPES[dtype]
        data = np.ascontiguousarray(arr).astype(np_dtype, copy=False).tobytes()
        if len(data) != tensor_bytes(dtype, arr):
            raise ValueError(f"{name}: {len(data)} bytes for {dtype} {list(arr.shape)}")
        header[name] = {"dtype": dtype, "shape": [int(x) for x in arr.shape],
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode("utf-8")
    text += b" " * ((8 - (8 + len(text)) % 8) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)))
        f.write(text)
        for data in blobs:
            f.write(data)
    return offset


def read_file(path):
    """{name: (dtype, array)} of a safetensors file (arrays in storage form)."""
    with open(path, "rb") as f:
        buf = f.read()
    (n,) = struct.unpack("<Q", buf[:8])
    header = json.loads(buf[8:8 + n])
    base = 8 + n
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        np_dtype, _ = DTYPES[info["dtype"]]
        arr = np.frombuffer(buf[base + begin:base + end], dtype=np_dtype)
        out[name] = (info["dtype"], arr.reshape(info["shape"]))
    return out


def shard_names(n):
    if n == 1:
        return ["model.safetensors"]
    return [f"model-{i + 1:05d}-of-{n:05d}.safetensors" for i in range(n)]


def split(tensors, n):
    """Assigns tensors (in order) to n shards of about equal bytes, each shard non-empty;
    returns a list of n lists."""
    if n < 1 or n > len(tensors):
        raise ValueError(f"--shards {n}: between 1 and the {len(tensors)} tensors")
    sizes = [tensor_bytes(d, a) for _, d, a in tensors]
    total = max(sum(sizes), 1)
    shards = [[] for _ in range(n)]
    before = 0
    for t, size in zip(tensors, sizes):
        shards[min(n - 1, before * n // total)].append(t)
        before += size
    if any(not s for s in shards):  # one large tensor spans several shares: split by count
        shards = [tensors[i * len(tensors) // n:(i + 1) * len(tensors) // n] for i in range(n)]
    return shards


def write_folder(out_dir, tensors, n_shards):
    """Writes model.safetensors, or n shards and model.safetensors.index.json."""
    names = shard_names(n_shards)
    for old in os.listdir(out_dir):  # weights of an earlier run
        if old.startswith("model") and (old.endswith(".safetensors") or
                                        old == "model.safetensors.index.json"):
            os.remove(os.path.join(out_dir, old))
    total = 0
    weight_map = {}
    for name, shard in zip(names, split(tensors, n_shards)):
        total += write_file(os.path.join(out_dir, name), shard)
        for t in shard:
            weight_map[t[0]] = name
    if n_shards > 1:
        index = {"metadata": {"total_size": total},
                 "weight_map": dict(sorted(weight_map.items()))}
        with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
            json.dump(index, f, indent=2)
            f.write("\n")
    return weight_map


def read_folder(folder):
    """{name: (dtype, array)} of every tensor of a folder (index or single file)."""
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    out = {}
    for name in files:
        out.update(read_file(os.path.join(folder, name)))
    return out
