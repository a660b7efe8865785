# SPDX-License-Identifier: MIT
# The weight encodings of Hugging Face folders, each as an encoder (float32 weights -> the
# tensors a publisher writes) and this generator's own decoder (those tensors -> the exact
# float32 values they encode). Everything is numpy, deterministic and rounds to nearest.
#
# Linear weights are [out, in] float32 (PyTorch's nn.Linear layout). The encoders return
# {suffix: (safetensors dtype, numpy array)} for the module "prefix" whose weight they
# replace ("weight", "weight_scale_inv", "qweight", ...); the decoders take the same dict.
#
#   fp8-block   weight F8_E4M3 [out, in] + weight_scale_inv [ceil(out/128), ceil(in/128)]:
#               w = e4m3(weight) x scale of its 128 x 128 block (DeepSeek-V3, Qwen3-FP8).
#   fp8-channel weight F8_E4M3 [out, in] + weight_scale [out, 1] (compressed-tensors).
#   fp8-tensor  weight F8_E4M3 [out, in] + weight_scale [1] (compressed-tensors).
#   awq         qweight I32 [in, out/8], qzeros I32 [in/g, out/8], scales F16 [in/g, out]:
#               w[o, i] = (q[i, o] - z[i/g, o]) x s[i/g, o]; eight 4-bit values per int32
#               along out, nibble k (bits 4k..4k+3) holding column 8c + [0,2,4,6,1,3,5,7][k].
#   gptq        qweight I32 [in/8, out], qzeros I32 [n_groups, out/8], scales F16
#               [n_groups, out], g_idx I32 [in]: w[o, i] = (q[i, o] - (z[g, o] + 1)) x
#               s[g, o] with g = g_idx[i]; qweight packs eight rows per int32 (nibble k =
#               row 8r + k), qzeros eight columns (nibble k = column 8c + k); the stored
#               zero is the real one minus 1 (checkpoint_format "gptq", v1).
#   mxfp4       blocks U8 [..., cols/32, 16] + scales U8 [..., cols/32]: 32 values share
#               2^(scale - 127); byte k of a block holds value 2k (low nibble) and 2k + 1
#               (high nibble) as E2M1 (sign, 2-bit exponent, 1-bit mantissa).
import numpy as np

# ---- 16-bit floats ----


def bf16_bits(x):
    """float32 -> bfloat16 bit patterns (uint16), rounding to nearest even."""
    b = np.ascontiguousarray(x, dtype=np.float32).view(np.uint32)
    return ((b + (((b >> 16) & 1) + 0x7FFF)) >> 16).astype(np.uint16)


def bf16_to_f32(bits):
    return (np.asarray(bits, dtype=np.uint32) << 16).view(np.float32)


def round_to(x, dtype):
    """x rounded to a safetensors float dtype (F32, F16, BF16), returned as float32 values."""
    x = np.asarray(x, dtype=np.float32)
    if dtype == "F32":
        return x.copy()
    if dtype == "F16":
        return x.astype(np.float16).astype(np.float32)
    if dtype == "BF16":
        return bf16_to_f32(bf16_bits(x))
    raise ValueError(f"dtype {dtype}: F32, F16 or BF16")


def to_storage(x, dtype):
    """float32 values -> the array stored for a safetensors float dtype."""
    if dtype == "F32":
        return np.asarray(x, dtype=np.float32)
    if dtype == "F16":
        return np.asarray(x, dtype=np.float32).astype(np.float16)
    if dtype == "BF16":
        return bf16_bits(x)
    raise ValueError(f"dtype {dtype}: F32, F16 or BF16")


def from_storage(arr, dtype):
    """The array stored for a safetensors float dtype -> float32 values."""
    if dtype == "BF16":
        return bf16_to_f32(arr)
    return np.asarray(arr).astype(np.float32)


# ---- FP8 E4M3 (the "fn" variant: no infinities, 0x7F and 0xFF are NaN, max 448) ----

E4M3_MAX = 448.0


def e4m3_values():
    """The value of each of the 256 codes (NaN for 0x7F and 0xFF), as float32."""
    codes = np.arange(256)
    sign = np.where(codes & 0x80, -1.0, 1.0)
    exp, man = (codes >> 3) & 0xF, codes & 0x7
    mag = np.where(exp == 0, man / 8.0 * 2.0 ** -6, (1 + man / 8.0) * 2.0 ** (exp - 7.0))
    vals = sign * mag
    vals[(codes & 0x7F) == 0x7F] = np.nan
    return vals.astype(np.float32)


_E4M3 = e4m3_values()
_E4M3_POS = _E4M3[:0x7F].astype(np.float64)  # codes 0..126, increasing


def e4m3_encode(x):
    """float32 values in [-448, 448] -> E4M3 codes (uint8), to nearest, ties to the even
    code."""
    x = np.asarray(x, dtype=np.float32)
    a = np.abs(x).astype(np.float64).reshape(-1)
    if np.any(a > E4M3_MAX) or np.any(np.isnan(a)):
        raise ValueError("e4m3_encode: value outside [-448, 448]")
    hi = np.searchsorted(_E4M3_POS, a, side="left").clip(0, 0x7E)
    lo = (hi - 1).clip(0, 0x7E)
    d_lo, d_hi = a - _E4M3_POS[lo], _E4M3_POS[hi] - a
    pick_hi = (d_hi < d_lo) | ((d_hi == d_lo) & (hi % 2 == 0))
    code = np.where(pick_hi, hi, lo).astype(np.uint8)
    code |= np.where(np.signbit(x.reshape(-1)), 0x80, 0).astype(np.uint8)
    return code.reshape(x.shape)


def e4m3_decode(codes):
    return _E4M3[np.asarray(codes, dtype=np.uint8)]


def _fp8_scale(amax, scale_dtype):
    """The scale amax / 448 (1 where amax is 0), rounded to the scale's dtype."""
    s = np.where(amax > 0, amax.astype(np.float32) / np.float32(E4M3_MAX), np.float32(1))
    return round_to(s.astype(np.float32), scale_dtype)


def _blocks_expand(s, shape, block):
    return np.repeat(np.repeat(s, block, axis=0), block, axis=1)[:shape[0], :shape[1]]


def fp8_block_encode(w, block=128, scale_dtype="F32"):
    out, inn = w.shape
    nb_o, nb_i = -(-out // block), -(-inn // block)
    padded = np.zeros((nb_o * block, nb_i * block), dtype=np.float32)
    padded[:out, :inn] = np.abs(w)
    amax = padded.reshape(nb_o, block, nb_i, block).max(axis=(1, 3))
    s = _fp8_scale(amax, scale_dtype)
    q = e4m3_encode(np.clip(w / _blocks_expand(s, w.shape, block), -E4M3_MAX, E4M3_MAX))
    return {"weight": ("F8_E4M3", q), "weight_scale_inv": (scale_dtype, to_storage(s, scale_dtype))}


def fp8_block_decode(t, block=128):
    q = t["weight"][1]
    dtype, s = t["weight_scale_inv"]
    return e4m3_decode(q) * _blocks_expand(from_storage(s, dtype), q.shape, block)


def fp8_scaled_encode(w, per_channel, scale_dtype):
    amax = np.abs(w).max(axis=1, keepdims=True) if per_channel else np.abs(w).max().reshape(1)
    s = _fp8_scale(amax, scale_dtype)
    q = e4m3_encode(np.clip(w / (s if per_channel else s[0]), -E4M3_MAX, E4M3_MAX))
    return {"weight": ("F8_E4M3", q), "weight_scale": (scale_dtype, to_storage(s, scale_dtype))}


def fp8_scaled_decode(t):
    q = t["weight"][1]
    dtype, s = t["weight_scale"]
    s = from_storage(s, dtype)
    return e4m3_decode(q) * (s if s.ndim == 2 else s.reshape(()))


# ---- 4-bit integers ----

AWQ_ORDER = (0, 2, 4, 6, 1, 3, 5, 7)  # the column held by nibble k of an AWQ int32
SEQ_ORDER = tuple(range(8))


def pack_cols(q, order):
    """uint values < 16, [R, C] -> int32 [R, C/8]: nibble k of word c holds column
    8c + order[k]."""
    q = np.asarray(q, dtype=np.uint32)
    r, c = q.shape
    packed = np.zeros((r, c // 8), dtype=np.uint32)
    for k in range(8):
        packed |= q[:, order[k]::8] << np.uint32(4 * k)
    return packed.view(np.int32)


def unpack_cols(packed, order):
    p = np.asarray(packed).view(np.uint32)
    out = np.zeros((p.shape[0], p.shape[1] * 8), dtype=np.uint32)
    for k in range(8):
        out[:, order[k]::8] = (p >> np.uint32(4 * k)) & 0xF
    return out


def pack_rows(q):
    """uint values < 16, [R, C] -> int32 [R/8, C]: nibble k of word r holds row 8r + k."""
    q = np.asarray(q, dtype=np.uint32)
    packed = np.zeros((q.shape[0] // 8, q.shape[1]), dtype=np.uint32)
    for k in range(8):
        packed |= q[k::8, :] << np.uint32(4 * k)
    return packed.view(np.int32)


def unpack_rows(packed):
    p = np.asarray(packed).view(np.uint32)
    out = np.zeros((p.shape[0] * 8, p.shape[1]), dtype=np.uint32)
    for k in range(8):
        out[k::8, :] = (p >> np.uint32(4 * k)) & 0xF
    return out


def awq_encode(w, group):
    """AutoAWQ's asymmetric 4-bit groups along in (GEMM layout)."""
    out, inn = w.shape
    wg = w.T.reshape(inn // group, group, out)
    mx, mn = wg.max(axis=1), wg.min(axis=1)
    s = round_to(np.maximum(mx - mn, np.float32(1e-5)) / np.float32(15), "F16")
    z = np.clip(np.rint(-mn / s), 0, 15)
    q = np.clip(np.rint(wg / s[:, None, :]) + z[:, None, :], 0, 15).reshape(inn, out)
    return {"qweight": ("I32", pack_cols(q, AWQ_ORDER)),
            "qzeros": ("I32", pack_cols(z, AWQ_ORDER)),
            "scales": ("F16", s.astype(np.float16))}


def awq_decode(t, group):
    q = unpack_cols(t["qweight"][1], AWQ_ORDER).astype(np.float32)  # [in, out]
    z = unpack_cols(t["qzeros"][1], AWQ_ORDER).astype(np.float32)  # [in/g, out]
    s = t["scales"][1].astype(np.float32)
    g = np.arange(q.shape[0]) // group
    return ((q - z[g]) * s[g]).T


def gptq_encode(w, group, sym, act_order):
    """GPTQ's 4-bit groups along in, by round to nearest (no Hessian update), in the v1
    checkpoint format. With act_order the groups follow the input channels sorted by their
    squared norm, largest first (desc_act's order, with the norm standing in for the
    Hessian's diagonal), and g_idx says which group each channel is in."""
    out, inn = w.shape
    wt = w.T  # [in, out]
    if act_order:
        perm = np.argsort(-(wt.astype(np.float64) ** 2).sum(axis=1), kind="stable")
    else:
        perm = np.arange(inn)
    g_idx = np.empty(inn, dtype=np.int32)
    g_idx[perm] = np.arange(inn) // group
    n_groups = inn // group
    q = np.zeros((inn, out), dtype=np.uint32)
    scales = np.zeros((n_groups, out), dtype=np.float32)
    zeros = np.zeros((n_groups, out), dtype=np.uint32)
    for g in range(n_groups):
        rows = perm[g * group:(g + 1) * group]
        x = wt[rows]
        xmin = np.minimum(x.min(axis=0), 0)
        xmax = np.maximum(x.max(axis=0), 0)
        if sym:
            xmax = np.maximum(np.abs(xmin), xmax)
            xmin = np.where(xmin < 0, -xmax, xmin)
        flat = (xmin == 0) & (xmax == 0)
        xmin, xmax = np.where(flat, -1, xmin), np.where(flat, 1, xmax)
        s = round_to((xmax - xmin) / np.float32(15), "F16")
        # v1 stores zero - 1 in four bits, so a zero of 0 cannot be written: clamp to 1.
        z = np.full(out, 8.0, dtype=np.float32) if sym else np.clip(np.rint(-xmin / s), 1, 15)
        q[rows] = np.clip(np.rint(x / s) + z, 0, 15).astype(np.uint32)
        scales[g], zeros[g] = s, z.astype(np.uint32)
    return {"qweight": ("I32", pack_rows(q)),
            "qzeros": ("I32", pack_cols((zeros - 1) & 0xF, SEQ_ORDER)),
            "scales": ("F16", scales.astype(np.float16)),
            "g_idx": ("I32", g_idx)}


def gptq_decode(t):
    q = unpack_rows(t["qweight"][1]).astype(np.float32)  # [in, out]
    z = unpack_cols(t["qzeros"][1], SEQ_ORDER).astype(np.float32) + 1  # [groups, out]
    s = t["scales"][1].astype(np.float32)
    g = np.asarray(t["g_idx"][1], dtype=np.int64)
    return ((q - z[g]) * s[g]).T


# ---- MXFP4 (OCP microscaling, E2M1 values with an E8M0 scale per 32) ----

E2M1 = np.array([0, 0.5, 1, 1.5, 2, 3, 4, 6, -0.0, -0.5, -1, -1.5, -2, -3, -4, -6],
                dtype=np.float32)
_E2M1_MID = np.array([0.25, 0.75, 1.25, 1.75, 2.5, 3.5, 5.0])


def mxfp4_encode(x):
    """float32 [..., cols] (cols a multiple of 32) -> (blocks U8 [..., cols/32, 16],
    scales U8 [..., cols/32]). The scale is floor(log2(amax)) - 2 (amax / 2^scale in
    [4, 8), the largest values clipped to 6), as the OCP spec and ggml choose it."""
    x = np.asarray(x, dtype=np.float32)
    xb = x.reshape(*x.shape[:-1], x.shape[-1] // 32, 32)
    amax = np.abs(xb).max(axis=-1).astype(np.float64)
    with np.errstate(divide="ignore"):
        e = np.where(amax > 0, np.floor(np.log2(np.where(amax > 0, amax, 1))) - 2 + 127, 0)
    e = np.clip(e, 0, 254).astype(np.int32)
    d = np.ldexp(np.ones(e.shape, dtype=np.float32), e - 127).astype(np.float32)
    v = xb / d[..., None]
    idx = np.searchsorted(_E2M1_MID, np.abs(v).astype(np.float64), side="left")
    code = (idx + np.where(np.signbit(v), 8, 0)).astype(np.uint8)
    blocks = (code[..., 0::2] | (code[..., 1::2] << 4)).astype(np.uint8)
    return blocks, e.astype(np.uint8)


def mxfp4_decode(blocks, scales):
    lo, hi = E2M1[blocks & 0x0F], E2M1[blocks >> 4]
    vals = np.stack([lo, hi], axis=-1).reshape(*blocks.shape[:-1], 32)
    d = np.ldexp(np.ones(scales.shape, dtype=np.float32), scales.astype(np.int32) - 127)
    out = vals * d.astype(np.float32)[..., None]
    return out.reshape(*blocks.shape[:-2], blocks.shape[-2] * 32).astype(np.float32)
