# SPDX-License-Identifier: MIT
# A small GGUF reader for the Hugging Face folder generator (tools/gen_hf_folder.py): the
# header, every metadata key and the tensor infos, and the data of F32, F16, BF16, Q8_0 and
# MXFP4 tensors decoded to float32 (the types `garlic synth` writes for test models).
#
# On-disk layout (little-endian): "GGUF" | u32 version (2 or 3) | u64 n_tensors | u64 n_kv |
# n_kv x (string key | u32 value type | value) | n_tensors x (string name | u32 n_dims |
# n_dims x u64 ne | u32 ggml type | u64 offset) | padding to general.alignment (default 32) |
# tensor data, each at its offset from the data start. A string is u64 length + bytes; an
# array is u32 element type + u64 count + elements. ne[0] is the fastest-varying dimension,
# so a tensor of ne (n0, n1, n2) is the numpy array of shape (n2, n1, n0).
import mmap
import struct

import numpy as np

# GGUF metadata value types.
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q",
            11: "<q", 12: "<d"}
_NUMPY = {0: np.uint8, 1: np.int8, 2: np.uint16, 3: np.int16, 4: np.uint32, 5: np.int32,
          6: np.float32, 7: np.bool_, 10: np.uint64, 11: np.int64, 12: np.float64}
TYPE_STRING, TYPE_ARRAY = 8, 9

# ggml tensor types this reader decodes: name, values per block, bytes per block.
GGML_F32, GGML_F16, GGML_Q8_0, GGML_BF16, GGML_MXFP4 = 0, 1, 8, 30, 39
_TENSOR_TYPES = {GGML_F32: ("F32", 1, 4), GGML_F16: ("F16", 1, 2), GGML_Q8_0: ("Q8_0", 32, 34),
                 GGML_BF16: ("BF16", 1, 2), GGML_MXFP4: ("MXFP4", 32, 17)}

# MXFP4's E2M1 values as ggml doubles them (kvalues_mxfp4); the scale byte is 2^(e - 128).
_MXFP4_VALUES = np.array([0, 1, 2, 3, 4, 6, 8, 12, 0, -1, -2, -3, -4, -6, -8, -12],
                         dtype=np.float32)


class GGUFError(Exception):
    pass


class Tensor:
    """One tensor of the file: its name, ggml type, ne (fastest first) and raw bytes."""

    def __init__(self, name, ggml_type, ne, raw):
        self.name, self.ggml_type, self.ne, self.raw = name, ggml_type, ne, raw

    @property
    def type_name(self):
        return _TENSOR_TYPES[self.ggml_type][0]

    @property
    def shape(self):
        """The numpy shape: ne reversed."""
        return tuple(reversed(self.ne))

    def to_f32(self):
        """The values as a float32 array of self.shape."""
        n = int(np.prod(self.ne, dtype=np.uint64))
        raw = np.frombuffer(self.raw, dtype=np.uint8)
        if self.ggml_type == GGML_F32:
            out = raw.view("<f4").astype(np.float32)
        elif self.ggml_type == GGML_F16:
            out = raw.view("<f2").astype(np.float32)
        elif self.ggml_type == GGML_BF16:
            out = (raw.view("<u2").astype(np.uint32) << 16).view(np.float32)
        elif self.ggml_type == GGML_Q8_0:
            blocks = raw.reshape(-1, 34)
            d = blocks[:, :2].copy().view("<f2").astype(np.float32)
            q = blocks[:, 2:].view(np.int8).astype(np.float32)
            out = (q * d).reshape(-1)
        elif self.ggml_type == GGML_MXFP4:
            blocks = raw.reshape(-1, 17)
            # 2^(e - 128), exactly (subnormal for e < 2).
            e = blocks[:, 0].astype(np.int32)
            d = np.ldexp(np.ones(e.shape, dtype=np.float32), e - 128).astype(np.float32)
            qs = blocks[:, 1:]
            vals = np.concatenate([_MXFP4_VALUES[qs & 0x0F], _MXFP4_VALUES[qs >> 4]], axis=1)
            out = (vals * d[:, None]).reshape(-1)
        else:
            raise GGUFError(f"tensor '{self.name}': type {self.ggml_type} is not decoded")
        if out.size != n:
            raise GGUFError(f"tensor '{self.name}': {out.size} values, expected {n}")
        return out.reshape(self.shape)


class GGUF:
    """A parsed GGUF file: kv (key -> value; arrays as lists, numeric ones as numpy arrays)
    and tensors (name -> Tensor, in file order)."""

    def __init__(self, path):
        self.path = path
        with open(path, "rb") as f:  # mapped: each tensor is copied out when it is read
            self._buf = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ)
        self._pos = 0
        self.kv = {}
        self.tensors = {}
        self._parse()

    # ---- primitive reads ----
    def _take(self, n):
        if self._pos + n > len(self._buf):
            raise GGUFError(f"{self.path}: truncated at byte {self._pos}")
        b = self._buf[self._pos:self._pos + n]
        self._pos += n
        return b

    def _scalar(self, fmt):
        return struct.unpack(fmt, self._take(struct.calcsize(fmt)))[0]

    def _string(self):
        n = self._scalar("<Q")
        return self._take(n).decode("utf-8", errors="surrogateescape")

    def _value(self, vtype):
        if vtype in _SCALARS:
            return self._scalar(_SCALARS[vtype])
        if vtype == TYPE_STRING:
            return self._string()
        if vtype == TYPE_ARRAY:
            etype, count = self._scalar("<I"), self._scalar("<Q")
            if etype in _NUMPY:
                size = np.dtype(_NUMPY[etype]).itemsize
                arr = np.frombuffer(self._take(size * count),
                                    dtype=np.dtype(_NUMPY[etype]).newbyteorder("<"))
                return arr.copy()
            return [self._value(etype) for _ in range(count)]
        raise GGUFError(f"{self.path}: unknown metadata type {vtype} at byte {self._pos}")

    def _parse(self):
        if self._take(4) != b"GGUF":
            raise GGUFError(f"{self.path}: not a GGUF file")
        version = self._scalar("<I")
        if version not in (2, 3):
            raise GGUFError(f"{self.path}: GGUF version {version}")
        n_tensors, n_kv = self._scalar("<Q"), self._scalar("<Q")
        for _ in range(n_kv):
            key = self._string()
            self.kv[key] = self._value(self._scalar("<I"))
        infos = []
        for _ in range(n_tensors):
            name = self._string()
            n_dims = self._scalar("<I")
            ne = [self._scalar("<Q") for _ in range(n_dims)]
            infos.append((name, ne, self._scalar("<I"), self._scalar("<Q")))
        align = int(self.kv.get("general.alignment", 32))
        data = (self._pos + align - 1) // align * align
        for name, ne, ggml_type, offset in infos:
            if ggml_type not in _TENSOR_TYPES:
                raise GGUFError(f"{self.path}: tensor '{name}': ggml type {ggml_type} is not "
                                "read (F32, F16, BF16, Q8_0, MXFP4)")
            _, block, block_bytes = _TENSOR_TYPES[ggml_type]
            n = int(np.prod(ne, dtype=np.uint64))
            if ne[0] % block:
                raise GGUFError(f"{self.path}: tensor '{name}': row of {ne[0]} values")
            size = n // block * block_bytes
            begin = data + offset
            if begin + size > len(self._buf):
                raise GGUFError(f"{self.path}: tensor '{name}' ends past the file")
            self.tensors[name] = Tensor(name, ggml_type, ne, self._buf[begin:begin + size])

    # ---- conveniences ----
    def arch(self):
        return self.kv["general.architecture"]

    def get(self, key, default=None):
        """A metadata value by its key without the "<arch>." prefix, or default."""
        return self.kv.get(f"{self.arch()}.{key}", default)

    def f32(self, name):
        return self.tensors[name].to_f32()

    def has(self, name):
        return name in self.tensors
