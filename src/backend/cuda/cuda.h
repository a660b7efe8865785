// SPDX-License-Identifier: MIT
// What the CUDA backend offers beyond backend.h's table, for its tests and benchmarks only
// (built with `make GARLIC_CUDA=1`): reading back one device KV row, the bytes of uploaded
// weights per type, and whether a device is present at all.
#ifndef GARLIC_BACKEND_CUDA_H
#define GARLIC_BACKEND_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"

// The number of CUDA devices (0 when there is none or no driver); never fails.
int backend_cuda_device_count(void);

// Copies the K (v false) or V row of (layer, block, offset) of pool kv's bound layers to dst
// (bytes: the pool's row bytes). GARLIC_EINVAL when the layer is not bound or the row is out
// of range; GARLIC_EIO with the driver's message when the copy fails.
int backend_cuda_kv_row(backend *be, const kv_cache *kv, uint32_t layer, uint32_t block,
                        uint32_t offset, bool v, void *dst, size_t bytes, garlic_error *err);

// Bytes of device memory the uploaded weights of tensor type `type` take now.
uint64_t backend_cuda_type_bytes(backend *be, uint32_t type);

// Whether the next forward call's attention would use the tiled prompt kernel (after begin).
bool backend_cuda_attention_tiled(backend *be);

#endif
