#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
# Writes tests/data/mxfp4_reference.bin, the MXFP4 reference that tests/tensor/test_types.c
# checks garlic's quantizer (byte for byte) and dequantizer (bit for bit) against. A fixed
# pseudo-random float array is quantized with gguf-py's MXFP4 quantizer and the blocks are
# dequantized with gguf-py's dequantizer. Produced by (from the repository root):
#
#   PYTHONPATH=/tmp/llama.cpp/gguf-py /usr/bin/python3 tools/gen_mxfp4_reference.py
#
# with gguf-py from llama.cpp commit d32676d77426 and numpy 1.24.2. The output only depends
# on numpy's PCG64 stream for the seed below and on gguf-py, so a rerun must give the same
# bytes (the script prints the SHA-256).
#
# File layout (little-endian): 8 bytes "MXFP4REF", uint32 n (values, a multiple of 32),
# n float32 inputs, n / 32 blocks of 17 bytes (gguf.quants.quantize), n float32 values
# (gguf.quants.dequantize of those blocks).
import hashlib
import os
import struct
import sys

import numpy as np

from gguf.constants import GGMLQuantizationType
from gguf.quants import dequantize, quantize

SEED = 20260839
N_BLOCKS = 24
OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "data",
                   "mxfp4_reference.bin")


def make_input(rng: np.random.Generator) -> np.ndarray:
    """Blocks of 32 values of different kinds, each one a case the quantizer must match."""
    blocks = []
    # Normal values at scales from tiny to large (one block each).
    for scale in (1.0, 0.02, 0.001, 7.5, 300.0, 1e-6, 4e4, 1e-30):
        blocks.append(rng.standard_normal(32) * scale)
    # All zero, and zeros of both signs with one small value.
    blocks.append(np.zeros(32))
    signed_zeros = np.zeros(32)
    signed_zeros[1::2] = -0.0
    signed_zeros[5] = 0.3
    blocks.append(signed_zeros)
    # Ties: amax 4 gives the scale 0.5, so the E2M1 grid is 0, 0.5, 1, 1.5, 2, 3, 4, 6 (and
    # negatives); values halfway between neighbours must take the first index of the table.
    ties = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 4.0, 0.0], dtype=np.float64)
    blocks.append(np.concatenate([ties, -ties, ties * 0.5, -ties * 0.5]))
    # amax just below a power of two (log2 rounds up to the integer) and exactly at one.
    for power in (8.0, 0.125, 1024.0):
        b = rng.uniform(-1.0, 1.0, 32) * power * 0.5
        b[3] = np.nextafter(np.float32(power), np.float32(0), dtype=np.float32)
        b[4] = -np.float32(power) * 0.75
        blocks.append(b)
    at_power = rng.uniform(-1.0, 1.0, 32)
    at_power[0] = -2.0
    blocks.append(at_power)
    # Values past the largest E2M1 step (6 x scale clips them): amax in (1.5, 2) x 2^k.
    clip = rng.uniform(-1.9, 1.9, 32)
    clip[7] = 1.95
    blocks.append(clip)
    # The rest: uniform values and heavy-tailed ones.
    while len(blocks) < N_BLOCKS - 2:
        blocks.append(rng.uniform(-3.0, 3.0, 32))
    blocks.append(rng.standard_cauchy(32))
    blocks.append(rng.standard_normal(32) * np.where(rng.uniform(size=32) < 0.1, 50.0, 1.0))
    x = np.concatenate(blocks).astype(np.float32)
    assert x.size == 32 * N_BLOCKS and np.all(np.isfinite(x))
    return x


def main() -> int:
    x = make_input(np.random.default_rng(SEED))
    q = quantize(x, GGMLQuantizationType.MXFP4)
    assert q.dtype == np.uint8 and q.size == x.size // 32 * 17
    y = dequantize(q, GGMLQuantizationType.MXFP4).astype(np.float32)
    assert y.size == x.size
    data = b"MXFP4REF" + struct.pack("<I", x.size) + x.astype("<f4").tobytes() + \
        q.tobytes() + y.astype("<f4").tobytes()
    os.makedirs(os.path.dirname(OUT), exist_ok=True)
    with open(OUT, "wb") as f:
        f.write(data)
    print(f"{os.path.normpath(OUT)}: {len(data)} bytes, {x.size} values, "
          f"sha256 {hashlib.sha256(data).hexdigest()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
