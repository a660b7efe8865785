// SPDX-License-Identifier: MIT
// The CUDA backend: backend.h's operations table on one device and one stream. This file
// owns the device state (context, stream, cuBLAS handle, uploaded weights, the KV rows of
// the layers it holds, the batch of the current forward call and scratch) and turns each
// operation into launches of the kernels in elementwise.cu, matmul.cu and attention.cu, or
// into cuBLAS products (F32, F16 and BF16 weights directly; quantized weights, for more than
// CUDA_MATVEC_MAX_TOK tokens, dequantized to F16 a tile of rows at a time). Operations that
// return nothing record the first error, which finish reports. One thread at a time drives a
// backend (the model's scheduler thread); nothing here locks.
#include <assert.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/backend.h"
#include "backend/cuda/cuda.h"
#include "backend/cuda/internal.h"
#include "base/alloc.h"
#include "tensor/types.h"

static_assert(CUDA_KV_F16 == (int)KV_TYPE_F16 && CUDA_KV_Q8_0 == (int)KV_TYPE_Q8_0 &&
                  CUDA_KV_FP8 == (int)KV_TYPE_FP8_E4M3 && CUDA_KV_F32 == (int)KV_TYPE_F32,
              "the kernels' KV type codes are kv_type's");
static_assert(CUDA_ACT_SILU == (int)MODEL_ACT_SILU && CUDA_ACT_GELU == (int)MODEL_ACT_GELU &&
                  CUDA_ACT_SWIGLU_OAI == (int)MODEL_ACT_SWIGLU_OAI,
              "the kernels' activation codes are model_act's");

enum {
    STAGE_BYTES = 16 << 20, // each of the two pinned buffers uploads go through
    // F16 values of dequantized weight rows per cuBLAS call: 16 MiB, which the GEMM finds
    // in L2 right after the dequantizer wrote it (H100: 50 MB).
    WTILE_VALUES = 8 << 20,
    BLAS_WORKSPACE = 32 << 20,   // given to cuBLAS at creation, so that it is measured
    ALIGN = 256,                 // of every carved device section
    BANDWIDTH_BYTES = 512 << 20, // copied device to device to measure the bandwidth
    MAX_BINDINGS = 64,           // KV pools bound at once (one per run state)
    MAP_EMPTY = 0,
    MAP_LIVE = 1,
    MAP_DEAD = 2,
};

// An open-addressing map from an address (a model_tensor, or a device allocation) to a
// device copy and its size. Linear probing; removed entries leave tombstones, and the table
// is rebuilt when live plus dead entries pass half of it.
typedef struct map_entry {
    const void *key;
    void *dev;      // device memory (NULL while asleep for weights)
    uint64_t bytes; // its size
    uint32_t type;  // weights: the tensor type
    uint32_t refs;  // weights: uploads not yet dropped
    uint8_t state;  // MAP_EMPTY, MAP_LIVE or MAP_DEAD
} map_entry;

typedef struct ptr_map {
    map_entry *slots;       // (cap), cap a power of two or 0
    size_t cap, live, used; // used: live + dead
} ptr_map;

struct cuda_backend;

// The KV rows of layers [first, first + n) of one pool (a run state's), on the device.
typedef struct kv_binding {
    struct cuda_backend *cb;
    kv_cache *kv; // NULL: a free slot
    uint32_t first, n;
    uint8_t *mem;
    cuda_kv_layer *layers; // (n)
    bool *window;          // (n) the layer's rows are in window blocks
    uint64_t bytes;
} kv_binding;

typedef struct cuda_backend {
    backend base;
    int index;
    cudaStream_t stream;
    cublasHandle_t blas;
    void *blas_workspace;
    backend_device_info info;
    // The first error of the current call (GARLIC_OK if none), reported by finish.
    int err_code;
    char err_msg[400];
    ptr_map weights;                        // model_tensor address -> device copy
    ptr_map allocs;                         // backend_alloc'd pointer -> its bytes
    uint64_t type_bytes[TENSOR_TYPE_COUNT]; // uploaded bytes per tensor type
    void *stage[2];                         // (STAGE_BYTES) pinned, for uploads
    cudaEvent_t staged[2];                  // each stage buffer's copy has been consumed
    // The pools bound (kv_bind), and the current call's (begin: its batch's kv).
    kv_binding bindings[MAX_BINDINGS];
    kv_binding *cur;
    // The current forward call's batch (begin): one pinned host copy, one device copy.
    void *batch_host, *batch_dev;
    size_t batch_host_bytes, batch_dev_bytes;
    cudaEvent_t batch_copied;
    uint32_t *tiles; // (2 * tiles_cap) host: tile firsts, then counts
    uint32_t tiles_cap;
    uint32_t *out; // (out_cap) host: the call's logit rows (gather_rows)
    uint32_t out_cap, n_out;
    cuda_batch batch;
    const float *rope_cos, *rope_sin; // (n_rope, n_tok, half) device
    uint32_t rope_half, n_rope;
    bool tiled; // attention of this call runs the tiled kernel
    // Scratch, grown as needed and kept.
    void *act16, *actbf; // activation rows in F16 / BF16
    size_t act16_bytes, actbf_bytes;
    void *wtile; // (WTILE_VALUES) F16
    size_t wtile_bytes;
    float *partial;
    size_t partial_bytes;
    bool asleep;
} cuda_backend;

static cuda_backend *cuda_of(backend *be) { return (cuda_backend *)be; }

// ---- errors ----

// Records the first error of a call: code and "cuda:N: what: detail".
static void record(cuda_backend *cb, int code, const char *what, const char *detail)
{
    if (cb->err_code)
        return;
    cb->err_code = code;
    snprintf(cb->err_msg, sizeof cb->err_msg, "cuda:%d: %s: %s", cb->index, what, detail);
}

static int code_of(cudaError_t e)
{
    return e == cudaErrorMemoryAllocation ? GARLIC_ENOMEM : GARLIC_EIO;
}

// Whether e is cudaSuccess; records it otherwise.
static bool ok(cuda_backend *cb, cudaError_t e, const char *what)
{
    if (e == cudaSuccess)
        return true;
    record(cb, code_of(e), what, cudaGetErrorString(e));
    return false;
}

static bool blas_ok(cuda_backend *cb, cublasStatus_t s, const char *what)
{
    if (s == CUBLAS_STATUS_SUCCESS)
        return true;
    record(cb, s == CUBLAS_STATUS_ALLOC_FAILED ? GARLIC_ENOMEM : GARLIC_EIO, what,
           cublasGetStatusString(s));
    return false;
}

// Moves the recorded error into err (and clears it); returns its code.
static int take_error(cuda_backend *cb, garlic_error *err)
{
    int code = cb->err_code;
    if (code)
        garlic_error_set(err, code, "%s", cb->err_msg);
    cb->err_code = GARLIC_OK;
    cb->err_msg[0] = 0;
    return code;
}

// Makes the backend's device current for the calling thread.
static bool use_device(cuda_backend *cb)
{
    return ok(cb, cudaSetDevice(cb->index), "cudaSetDevice");
}

// ---- the address map ----

static size_t map_hash(const void *key, size_t mask)
{
    uint64_t h = (uint64_t)(uintptr_t)key;
    h ^= h >> 29;
    h *= UINT64_C(0x9E3779B97F4A7C15);
    return (size_t)(h >> 17) & mask;
}

static map_entry *map_find(const ptr_map *m, const void *key)
{
    if (!m->cap)
        return NULL;
    for (size_t i = map_hash(key, m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        map_entry *e = &m->slots[i];
        if (e->state == MAP_EMPTY)
            return NULL;
        if (e->state == MAP_LIVE && e->key == key)
            return e;
    }
}

// Rebuilds the table with at least 2 * (live + 1) * 2 slots (no tombstones).
static bool map_grow(ptr_map *m)
{
    size_t cap = 16;
    while (cap < 4 * (m->live + 1))
        cap *= 2;
    map_entry *slots = garlic_calloc(cap, sizeof *slots);
    if (!slots)
        return false;
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].state != MAP_LIVE)
            continue;
        size_t j = map_hash(m->slots[i].key, cap - 1);
        while (slots[j].state == MAP_LIVE)
            j = (j + 1) & (cap - 1);
        slots[j] = m->slots[i];
    }
    garlic_free(m->slots);
    m->slots = slots;
    m->cap = cap;
    m->used = m->live;
    return true;
}

// A new live entry for key (which must not be in m), or NULL without memory.
static map_entry *map_insert(ptr_map *m, const void *key)
{
    if (2 * (m->used + 1) > m->cap && !map_grow(m))
        return NULL;
    size_t i = map_hash(key, m->cap - 1);
    while (m->slots[i].state == MAP_LIVE)
        i = (i + 1) & (m->cap - 1);
    if (m->slots[i].state == MAP_EMPTY)
        m->used++;
    m->live++;
    m->slots[i] = (map_entry){.key = key, .state = MAP_LIVE};
    return &m->slots[i];
}

static void map_remove(ptr_map *m, map_entry *e)
{
    e->state = MAP_DEAD;
    m->live--;
}

static void map_deinit(ptr_map *m)
{
    garlic_free(m->slots);
    *m = (ptr_map){0};
}

// ---- device memory ----

// Grows a scratch buffer of the backend to at least bytes (contents not kept).
static bool grow(cuda_backend *cb, void **p, size_t *have, size_t bytes, const char *what)
{
    if (*have >= bytes)
        return true;
    if (*p)
        cudaFree(*p); // (synchronizes the device: nothing queued still reads the old one)
    *p = NULL;
    *have = 0;
    size_t want = bytes + bytes / 4; // some headroom, so that growth is rare
    if (!ok(cb, cudaMalloc(p, want), what))
        return false;
    *have = want;
    return true;
}

static void *op_alloc(backend *be, size_t bytes, garlic_error *err)
{
    cuda_backend *cb = cuda_of(be);
    void *p = NULL;
    if (!use_device(cb) || !ok(cb, cudaMalloc(&p, bytes ? bytes : 1), "cudaMalloc")) {
        take_error(cb, err);
        return NULL;
    }
    map_entry *e = map_insert(&cb->allocs, p);
    if (!e) {
        cudaFree(p);
        garlic_error_set(err, GARLIC_ENOMEM, "cuda:%d: out of host memory", cb->index);
        return NULL;
    }
    e->dev = p;
    e->bytes = bytes;
    cb->info.scratch_bytes += bytes;
    return p;
}

static void op_release(backend *be, void *p)
{
    cuda_backend *cb = cuda_of(be);
    map_entry *e = p ? map_find(&cb->allocs, p) : NULL;
    if (!e)
        return;
    cb->info.scratch_bytes -= e->bytes;
    map_remove(&cb->allocs, e);
    use_device(cb);
    ok(cb, cudaFree(p), "cudaFree");
}

static int op_to_device(backend *be, void *dst, const void *src, size_t bytes, garlic_error *err)
{
    cuda_backend *cb = cuda_of(be);
    if (use_device(cb))
        ok(cb, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyHostToDevice, cb->stream),
           "copy to the device");
    return take_error(cb, err);
}

static int op_to_host(backend *be, void *dst, const void *src, size_t bytes, garlic_error *err)
{
    cuda_backend *cb = cuda_of(be);
    if (use_device(cb) &&
        ok(cb, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cb->stream),
           "copy to the host"))
        ok(cb, cudaStreamSynchronize(cb->stream), "copy to the host");
    return take_error(cb, err);
}

// ---- weights ----

static bool blas_type(uint32_t type)
{
    return type == TENSOR_TYPE_F32 || type == TENSOR_TYPE_F16 || type == TENSOR_TYPE_BF16;
}

static const char *type_name(uint32_t type)
{
    const tensor_type_traits *tr = tensor_type_get(type);
    return tr ? tr->name : "unknown";
}

// Bytes of t's rows in the file's layout (every matrix).
static bool tensor_bytes(const model_tensor *t, uint64_t *bytes)
{
    if (t->mat_bytes)
        return !__builtin_mul_overflow(t->mat_bytes, t->n_mat ? t->n_mat : 1, bytes);
    uint64_t row;
    return tensor_row_size(t->type, t->n_in, &row) &&
        !__builtin_mul_overflow(row, t->n_out ? t->n_out : 1, bytes) &&
        !__builtin_mul_overflow(*bytes, t->n_mat ? t->n_mat : 1, bytes);
}

// Copies bytes from host memory to device memory through the two pinned stage buffers: the
// host copy into one overlaps the DMA of the other. Waits for the last copy.
static bool copy_staged(cuda_backend *cb, void *dst, const void *src, uint64_t bytes)
{
    for (int i = 0; i < 2; i++)
        if (!cb->stage[i] &&
            !ok(cb, cudaHostAlloc(&cb->stage[i], STAGE_BYTES, cudaHostAllocDefault),
                "cudaHostAlloc (upload buffers)"))
            return false;
    int i = 0;
    for (uint64_t off = 0; off < bytes; off += STAGE_BYTES, i ^= 1) {
        size_t n = bytes - off < STAGE_BYTES ? (size_t)(bytes - off) : STAGE_BYTES;
        if (!ok(cb, cudaEventSynchronize(cb->staged[i]), "upload"))
            return false;
        memcpy(cb->stage[i], (const uint8_t *)src + off, n);
        if (!ok(cb,
                cudaMemcpyAsync((uint8_t *)dst + off, cb->stage[i], n, cudaMemcpyHostToDevice,
                                cb->stream),
                "upload") ||
            !ok(cb, cudaEventRecord(cb->staged[i], cb->stream), "upload"))
            return false;
    }
    return ok(cb, cudaStreamSynchronize(cb->stream), "upload");
}

// Allocates e's device copy and fills it from t.
static bool upload_entry(cuda_backend *cb, const model_tensor *t, map_entry *e)
{
    const void *src = t->packed ? t->src : t->data;
    char what[160];
    snprintf(what, sizeof what, "upload of a %s tensor (%llu x %llu x %llu, %llu bytes)",
             type_name(t->type), (unsigned long long)t->n_in, (unsigned long long)t->n_out,
             (unsigned long long)t->n_mat, (unsigned long long)e->bytes);
    if (!src) {
        record(cb, GARLIC_EINVAL, what, "its rows in the file's layout are not at hand");
        return false;
    }
    if (!ok(cb, cudaMalloc(&e->dev, e->bytes ? e->bytes : 1), what))
        return false;
    if (!copy_staged(cb, e->dev, src, e->bytes)) {
        cudaFree(e->dev);
        e->dev = NULL;
        return false;
    }
    cb->type_bytes[t->type] += e->bytes;
    cb->info.weight_bytes += e->bytes;
    return true;
}

static int op_upload(backend *be, const model_tensor *t, garlic_error *err)
{
    cuda_backend *cb = cuda_of(be);
    if (!blas_type(t->type) && !cuda_quant_supported(t->type))
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "cuda:%d: no kernel multiplies %s weights (tensor of %llu x "
                                "%llu)",
                                cb->index, type_name(t->type), (unsigned long long)t->n_in,
                                (unsigned long long)t->n_out);
    if (cb->asleep)
        return garlic_error_set(err, GARLIC_EINVAL, "cuda:%d: upload while asleep (wake first)",
                                cb->index);
    map_entry *e = map_find(&cb->weights, t);
    if (e && e->dev) { // held already (another run state of the model): counted
        e->refs++;
        return GARLIC_OK;
    }
    uint64_t bytes;
    if (!tensor_bytes(t, &bytes))
        return garlic_error_set(
            err, GARLIC_EINVAL, "cuda:%d: a %s tensor of %llu x %llu: size overflows", cb->index,
            type_name(t->type), (unsigned long long)t->n_in, (unsigned long long)t->n_out);
    if (!e && !(e = map_insert(&cb->weights, t)))
        return garlic_error_set(err, GARLIC_ENOMEM, "cuda:%d: out of host memory", cb->index);
    e->bytes = bytes;
    e->type = t->type;
    e->refs = 1;
    if (!use_device(cb) || !upload_entry(cb, t, e)) {
        map_remove(&cb->weights, e);
        return take_error(cb, err);
    }
    return GARLIC_OK;
}

static void free_weight(cuda_backend *cb, map_entry *e)
{
    if (!e->dev)
        return;
    cudaFree(e->dev);
    e->dev = NULL;
    cb->type_bytes[e->type] -= e->bytes;
    cb->info.weight_bytes -= e->bytes;
}

static void op_drop(backend *be, const model_tensor *t)
{
    cuda_backend *cb = cuda_of(be);
    map_entry *e = map_find(&cb->weights, t);
    if (!e || --e->refs > 0)
        return;
    use_device(cb);
    free_weight(cb, e);
    map_remove(&cb->weights, e);
}

// The device copy of an uploaded tensor, or NULL (recording an error naming `what`).
static const void *weight(cuda_backend *cb, const model_tensor *t, const char *what)
{
    map_entry *e = t ? map_find(&cb->weights, t) : NULL;
    if (e && e->dev)
        return e->dev;
    record(cb, GARLIC_EINVAL, what,
           cb->asleep ? "the backend is asleep" : "a tensor it reads was not uploaded");
    return NULL;
}

uint64_t backend_cuda_type_bytes(backend *be, uint32_t type)
{
    return type < TENSOR_TYPE_COUNT ? cuda_of(be)->type_bytes[type] : 0;
}

// ---- what runs here ----

static bool matrix_ok(const model_tensor *t, const char *name, uint32_t l, garlic_error *err)
{
    if (!t->data)
        return true;
    if (!blas_type(t->type) && !cuda_quant_supported(t->type)) {
        garlic_error_set(err, GARLIC_EUNSUPPORTED,
                         "cuda: layer %u: %s is %s, which the CUDA backend cannot multiply", l,
                         name, type_name(t->type));
        return false;
    }
    if (t->perm) {
        garlic_error_set(err, GARLIC_EUNSUPPORTED,
                         "cuda: layer %u: %s has permuted columns (act-order GPTQ), which the "
                         "CUDA backend does not gather",
                         l, name);
        return false;
    }
    if (t->n_in % 32 && !blas_type(t->type)) {
        garlic_error_set(err, GARLIC_EUNSUPPORTED, "cuda: layer %u: %s rows of %llu values", l,
                         name, (unsigned long long)t->n_in);
        return false;
    }
    return true;
}

static bool op_supports(backend *be, const model *m, uint32_t l, garlic_error *err)
{
    (void)be;
    const model_hparams *hp = &m->hp;
    const char *lacks = m->arch->encoder ? "encoders (BERT)"
        : m->arch->mla                   ? "multi-head latent attention"
        : model_layer_has_experts(m, l)  ? "mixture-of-experts layers"
        : m->tp_size > 1                 ? "tensor parallelism"
        : m->arch->ffn_ungated           ? "ungated feed-forward networks"
        : hp->head_dim_k > CUDA_MAX_HEAD || hp->head_dim_v > CUDA_MAX_HEAD ? "heads over 256"
        : !hp->n_head_kv || hp->n_head % hp->n_head_kv ? "this grouping of heads"
                                                       : NULL;
    if (lacks) {
        garlic_error_set(err, GARLIC_EUNSUPPORTED,
                         "cuda: layer %u of %s: the CUDA backend does not run %s", l, m->arch->name,
                         lacks);
        return false;
    }
    const model_layer *L = &m->layers[l];
    const struct {
        const model_tensor *t;
        const char *name;
    } mats[] = {{&L->wq, "attn_q"},      {&L->wk, "attn_k"},       {&L->wv, "attn_v"},
                {&L->wo, "attn_output"}, {&L->w_gate, "ffn_gate"}, {&L->w_up, "ffn_up"},
                {&L->w_down, "ffn_down"}};
    for (size_t i = 0; i < sizeof mats / sizeof mats[0]; i++)
        if (!matrix_ok(mats[i].t, mats[i].name, l, err))
            return false;
    return true;
}

// ---- the KV rows ----

// The device's KV bytes: every binding's.
static void count_kv(cuda_backend *cb)
{
    cb->info.kv_bytes = 0;
    for (int i = 0; i < MAX_BINDINGS; i++)
        cb->info.kv_bytes += cb->bindings[i].bytes;
}

// Frees a binding's device rows and forgets its pool; touch_pool: the pool is alive and its
// mirror is removed (else the pool is being freed: kv_mirror.gone).
static void binding_release(kv_binding *k, bool touch_pool)
{
    cuda_backend *cb = k->cb;
    if (k->kv && touch_pool)
        kv_cache_set_mirror(k->kv, NULL);
    if (k->mem)
        cudaFree(k->mem);
    garlic_free(k->layers);
    garlic_free(k->window);
    if (cb->cur == k)
        cb->cur = NULL;
    *k = (kv_binding){.cb = cb};
    count_kv(cb);
}

// The pool copied the first n_rows rows of block `from` to block `to` in every layer of one
// kind: the device copies its rows the same way (queued on the stream).
static void kv_mirror_copy(void *ctx, bool window, uint32_t to, uint32_t from, uint32_t n_rows)
{
    kv_binding *k = ctx;
    cuda_backend *cb = k->cb;
    if (!k->mem || !use_device(cb))
        return;
    for (uint32_t i = 0; i < k->n; i++) {
        if (k->window[i] != window)
            continue;
        const cuda_kv_layer *L = &k->layers[i];
        uint64_t block = (uint64_t)L->block_tokens;
        ok(cb,
           cudaMemcpyAsync(L->k + to * block * L->k_row_bytes, L->k + from * block * L->k_row_bytes,
                           n_rows * L->k_row_bytes, cudaMemcpyDeviceToDevice, cb->stream),
           "KV copy on write");
        if (L->v)
            ok(cb,
               cudaMemcpyAsync(L->v + to * block * L->v_row_bytes,
                               L->v + from * block * L->v_row_bytes, n_rows * L->v_row_bytes,
                               cudaMemcpyDeviceToDevice, cb->stream),
               "KV copy on write");
    }
}

// The pool is being freed: its rows go with it.
static void kv_mirror_gone(void *ctx, const kv_cache *c)
{
    kv_binding *k = ctx;
    (void)c;
    if (use_device(k->cb))
        ok(k->cb, cudaStreamSynchronize(k->cb->stream), "KV release");
    binding_release(k, false);
}

static uint64_t align_up(uint64_t n) { return (n + ALIGN - 1) / ALIGN * ALIGN; }

// Allocates the device rows of a binding's layers (kv, first, n, window set) and carves them:
// per layer its K rows then its V rows, each (blocks of its kind, block_tokens, row bytes).
static bool kv_allocate(kv_binding *k)
{
    cuda_backend *cb = k->cb;
    const kv_cache_config *cfg = kv_cache_get_config(k->kv);
    uint64_t k_row = kv_cache_k_row_bytes(k->kv), v_row = kv_cache_v_row_bytes(k->kv);
    uint64_t total = 0;
    for (uint32_t i = 0; i < k->n; i++) {
        uint64_t blocks = k->window[i] ? cfg->n_window_blocks : cfg->n_blocks, rows, kb, vb;
        if (__builtin_mul_overflow(blocks, (uint64_t)cfg->block_tokens, &rows) ||
            __builtin_mul_overflow(rows, k_row, &kb) || __builtin_mul_overflow(rows, v_row, &vb) ||
            __builtin_add_overflow(total, align_up(kb) + align_up(vb), &total)) {
            record(cb, GARLIC_EINVAL, "KV rows", "their size overflows");
            return false;
        }
    }
    char what[96];
    snprintf(what, sizeof what, "cudaMalloc of %llu bytes of KV rows", (unsigned long long)total);
    if (!ok(cb, cudaMalloc((void **)&k->mem, total ? total : 1), what))
        return false;
    uint8_t *p = k->mem;
    for (uint32_t i = 0; i < k->n; i++) {
        uint64_t rows = (uint64_t)(k->window[i] ? cfg->n_window_blocks : cfg->n_blocks) *
            cfg->block_tokens;
        cuda_kv_layer *L = &k->layers[i];
        *L = (cuda_kv_layer){.k = p,
                             .k_row_bytes = k_row,
                             .v_row_bytes = v_row,
                             .block_tokens = cfg->block_tokens,
                             .type = (int)cfg->type};
        p += align_up(rows * k_row);
        L->v = v_row ? p : NULL;
        p += align_up(rows * v_row);
    }
    k->bytes = total;
    count_kv(cb);
    return true;
}

// The binding of pool kv, or NULL.
static kv_binding *binding_of(cuda_backend *cb, const kv_cache *kv)
{
    for (int i = 0; kv && i < MAX_BINDINGS; i++)
        if (cb->bindings[i].kv == kv)
            return &cb->bindings[i];
    return NULL;
}

static int op_kv_bind(backend *be, kv_cache *kv, uint32_t first, uint32_t n, garlic_error *err)
{
    cuda_backend *cb = cuda_of(be);
    kv_binding *k = binding_of(cb, kv);
    if (k && k->first == first && k->n == n && (k->mem || n == 0 || cb->asleep))
        return GARLIC_OK; // bound already (the forward pass binds at every call)
    if (!kv)
        return garlic_error_set(err, GARLIC_EINVAL, "cuda:%d: kv_bind of no pool", cb->index);
    if (!use_device(cb))
        return take_error(cb, err);
    ok(cb, cudaStreamSynchronize(cb->stream), "KV bind");
    if (k)
        binding_release(k, true);
    const kv_cache_config *cfg = kv_cache_get_config(kv);
    if (first > cfg->n_layer || n > cfg->n_layer - first)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "cuda:%d: KV layers %u..%u of a cache of %u layers", cb->index,
                                first, first + n - 1, cfg->n_layer);
    if ((unsigned)cfg->type >= KV_TYPE_COUNT)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED, "cuda:%d: KV type %d", cb->index,
                                (int)cfg->type);
    if (!(k = binding_of(cb, NULL)))
        for (int i = 0; i < MAX_BINDINGS && !k; i++)
            k = cb->bindings[i].kv ? NULL : &cb->bindings[i];
    if (!k)
        return garlic_error_set(err, GARLIC_EFULL,
                                "cuda:%d: %d KV pools are bound already (one per loaded model)",
                                cb->index, MAX_BINDINGS);
    *k = (kv_binding){.cb = cb, .kv = kv, .first = first, .n = n};
    k->layers = garlic_calloc(n ? n : 1, sizeof *k->layers);
    k->window = garlic_calloc(n ? n : 1, sizeof *k->window);
    if (!k->layers || !k->window) {
        binding_release(k, false);
        return garlic_error_set(err, GARLIC_ENOMEM, "cuda:%d: out of host memory", cb->index);
    }
    for (uint32_t i = 0; i < n; i++)
        k->window[i] = kv_cache_layer_is_window(kv, first + i);
    if (!cb->asleep && !kv_allocate(k)) {
        binding_release(k, false);
        return take_error(cb, err);
    }
    kv_mirror m = {.copy = kv_mirror_copy, .gone = kv_mirror_gone, .ctx = k};
    kv_cache_set_mirror(kv, &m);
    return GARLIC_OK;
}

int backend_cuda_kv_row(backend *be, const kv_cache *kv, uint32_t layer, uint32_t block,
                        uint32_t offset, bool v, void *dst, size_t bytes, garlic_error *err)
{
    cuda_backend *cb = cuda_of(be);
    const kv_binding *k = binding_of(cb, kv);
    if (!k || !k->mem || layer < k->first || layer - k->first >= k->n)
        return garlic_error_set(err, GARLIC_EINVAL, "cuda:%d: KV layer %u is not on the device",
                                cb->index, layer);
    const kv_cache_config *cfg = kv_cache_get_config(k->kv);
    uint32_t i = layer - k->first;
    const cuda_kv_layer *L = &k->layers[i];
    uint64_t row_bytes = v ? L->v_row_bytes : L->k_row_bytes;
    uint32_t blocks = k->window[i] ? cfg->n_window_blocks : cfg->n_blocks;
    if (block >= blocks || offset >= L->block_tokens || bytes != row_bytes || (v && !L->v))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "cuda:%d: KV row (layer %u, block %u, offset %u, %zu bytes) is "
                                "out of range",
                                cb->index, layer, block, offset, bytes);
    const uint8_t *src = (v ? L->v : L->k) +
        ((uint64_t)block * L->block_tokens + offset) * row_bytes;
    if (use_device(cb) &&
        ok(cb, cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, cb->stream), "KV row"))
        ok(cb, cudaStreamSynchronize(cb->stream), "KV row");
    return take_error(cb, err);
}

// ---- one forward call ----

// Splits the batch into tiles for the prompt kernel: runs of consecutive tokens of one
// sequence, at most CUDA_ATT_TILE_Q each. Returns the count (tiles in cb->tiles).
static uint32_t make_tiles(cuda_backend *cb, const backend_batch *b)
{
    uint32_t n = 0, *first = cb->tiles, *count = cb->tiles + cb->tiles_cap;
    for (uint32_t t = 0; t < b->n_tok; t++) {
        if (n && b->seq[t] == b->seq[first[n - 1]] && count[n - 1] < CUDA_ATT_TILE_Q &&
            first[n - 1] + count[n - 1] == t) {
            count[n - 1]++;
            continue;
        }
        first[n] = t;
        count[n++] = 1;
    }
    return n;
}

// A section of the batch's copy: its offset and bytes.
typedef struct section {
    const void *src;
    size_t bytes, offset;
} section;

static int op_begin(backend *be, const backend_batch *b, garlic_error *err)
{
    cuda_backend *cb = cuda_of(be);
    cb->err_code = GARLIC_OK;
    if (cb->asleep)
        return garlic_error_set(err, GARLIC_EINVAL, "cuda:%d: asleep (wake it first)", cb->index);
    if (!use_device(cb))
        return take_error(cb, err);
    if (b->n_tok > cb->tiles_cap) {
        uint32_t *tiles = garlic_malloc(2 * (size_t)b->n_tok * sizeof *tiles);
        if (!tiles)
            return garlic_error_set(err, GARLIC_ENOMEM, "cuda:%d: out of host memory", cb->index);
        garlic_free(cb->tiles);
        cb->tiles = tiles;
        cb->tiles_cap = b->n_tok;
    }
    uint32_t n_tiles = b->n_tok ? make_tiles(cb, b) : 0;
    // The logit rows, for gather_rows (host: they drive the copies).
    if (b->n_out > cb->out_cap) {
        uint32_t *out = garlic_malloc((size_t)b->n_out * sizeof *out);
        if (!out)
            return garlic_error_set(err, GARLIC_ENOMEM, "cuda:%d: out of host memory", cb->index);
        garlic_free(cb->out);
        cb->out = out, cb->out_cap = b->n_out;
    }
    for (uint32_t i = 0; i < b->n_out; i++)
        if (b->out[i] >= b->n_tok)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "cuda:%d: logit row %u names token %u of %u", cb->index, i,
                                    b->out[i], b->n_tok);
    if (b->n_out)
        memcpy(cb->out, b->out, b->n_out * sizeof *cb->out);
    cb->n_out = b->n_out;
    cb->cur = binding_of(cb, b->kv);
    size_t rope_floats = (size_t)b->n_tok * b->half;
    section s[9] = {
        {b->pos, b->n_tok * sizeof(uint32_t), 0},
        {b->n_pos, b->n_tok * sizeof(uint32_t), 0},
        {b->seq, b->n_tok * sizeof(uint32_t), 0},
        {b->table_start, 2 * (size_t)b->n_seq * sizeof(uint32_t), 0},
        {b->tables, b->n_tables * sizeof(uint32_t), 0},
        {cb->tiles, n_tiles * sizeof(uint32_t), 0},
        {cb->tiles + cb->tiles_cap, n_tiles * sizeof(uint32_t), 0},
        {b->rope_cos, b->n_rope * rope_floats * sizeof(float), 0},
        {b->rope_sin, b->n_rope * rope_floats * sizeof(float), 0},
    };
    size_t total = 0;
    for (int i = 0; i < 9; i++) {
        s[i].offset = total;
        total += align_up(s[i].bytes);
    }
    // The previous call's copy must be done before its host buffer is written again.
    if (!ok(cb, cudaEventSynchronize(cb->batch_copied), "batch copy"))
        return take_error(cb, err);
    if (cb->batch_host_bytes < total) {
        cudaFreeHost(cb->batch_host);
        cb->batch_host = NULL;
        cb->batch_host_bytes = 0;
        if (!ok(cb, cudaHostAlloc(&cb->batch_host, total * 2, cudaHostAllocDefault),
                "cudaHostAlloc (batch)"))
            return take_error(cb, err);
        cb->batch_host_bytes = total * 2;
    }
    if (!grow(cb, &cb->batch_dev, &cb->batch_dev_bytes, total, "cudaMalloc (batch)"))
        return take_error(cb, err);
    uint8_t *host = cb->batch_host;
    for (int i = 0; i < 7; i++)
        if (s[i].bytes)
            memcpy(host + s[i].offset, s[i].src, s[i].bytes);
    // RoPE tables: table t's rows are rope_stride floats apart in the batch, packed here.
    for (uint32_t t = 0; t < b->n_rope; t++) {
        memcpy(host + s[7].offset + t * rope_floats * sizeof(float),
               b->rope_cos + t * b->rope_stride, rope_floats * sizeof(float));
        memcpy(host + s[8].offset + t * rope_floats * sizeof(float),
               b->rope_sin + t * b->rope_stride, rope_floats * sizeof(float));
    }
    if (!ok(cb, cudaMemcpyAsync(cb->batch_dev, host, total, cudaMemcpyHostToDevice, cb->stream),
            "batch copy") ||
        !ok(cb, cudaEventRecord(cb->batch_copied, cb->stream), "batch copy"))
        return take_error(cb, err);
    uint8_t *dev = cb->batch_dev;
    uint32_t max_n_pos = 0;
    for (uint32_t t = 0; t < b->n_tok; t++)
        max_n_pos = b->n_pos[t] > max_n_pos ? b->n_pos[t] : max_n_pos;
    cb->batch = (cuda_batch){
        .n_tok = b->n_tok,
        .n_seq = b->n_seq,
        .pos = (const uint32_t *)(dev + s[0].offset),
        .n_pos = (const uint32_t *)(dev + s[1].offset),
        .seq = (const uint32_t *)(dev + s[2].offset),
        .table_start = (const uint32_t *)(dev + s[3].offset),
        .tables = (const uint32_t *)(dev + s[4].offset),
        .tile_first = (const uint32_t *)(dev + s[5].offset),
        .tile_count = (const uint32_t *)(dev + s[6].offset),
        .n_tiles = n_tiles,
        .max_n_pos = max_n_pos,
    };
    cb->rope_cos = (const float *)(dev + s[7].offset);
    cb->rope_sin = (const float *)(dev + s[8].offset);
    cb->rope_half = b->half;
    cb->n_rope = b->n_rope;
    // Tiles pay off when they hold several queries on average; decode steps of many
    // sequences (one token each) take the split kernel.
    cb->tiled = n_tiles && (uint64_t)n_tiles * 4 <= b->n_tok;
    return GARLIC_OK;
}

bool backend_cuda_attention_tiled(backend *be) { return cuda_of(be)->tiled; }

static void op_rmsnorm(backend *be, float *out, const float *x, const model_tensor *w,
                       uint32_t rows, uint32_t dim, float eps)
{
    cuda_backend *cb = cuda_of(be);
    const float *wd = weight(cb, w, "rmsnorm");
    if (wd)
        ok(cb, cuda_launch_rmsnorm(cb->stream, out, x, wd, rows, dim, eps), "rmsnorm");
}

// y = w . in with cuBLAS: A (rows x n_in, row-major, of type at) times n_tok input rows
// (ldb apart, of type bt) into y (rows of ldy floats). In cuBLAS's column-major terms,
// Y (rows x n_tok, ldc = ldy) = A^T (lda = n_in) . B (ldb).
static bool gemm(cuda_backend *cb, cudaDataType at, const void *a, cudaDataType bt, const void *in,
                 uint64_t ldb, uint64_t n_in, uint64_t rows, uint32_t n_tok, float *y, uint64_t ldy)
{
    if (n_in > INT32_MAX || rows > INT32_MAX || ldb > INT32_MAX || ldy > INT32_MAX) {
        record(cb, GARLIC_EUNSUPPORTED, "matmul", "a dimension over 2^31 - 1");
        return false;
    }
    const float alpha = 1.0f, beta = 0.0f;
    return blas_ok(cb,
                   cublasGemmEx(cb->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)rows, (int)n_tok,
                                (int)n_in, &alpha, a, at, (int)n_in, in, bt, (int)ldb, &beta, y,
                                CUDA_R_32F, (int)ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT),
                   "cublasGemmEx");
}

// The input rows converted to F16 (bf16: BF16) once per group, contiguous rows of n_in.
static const void *converted(cuda_backend *cb, const float *in, uint64_t in_stride, uint32_t n_tok,
                             uint64_t n_in, bool bf16, bool *done)
{
    void **buf = bf16 ? &cb->actbf : &cb->act16;
    size_t *have = bf16 ? &cb->actbf_bytes : &cb->act16_bytes;
    if (*done)
        return *buf;
    if (!grow(cb, buf, have, (size_t)n_tok * n_in * 2, "cudaMalloc (activations)") ||
        !ok(cb, cuda_launch_to_half(cb->stream, in, in_stride, n_tok, n_in, *buf, bf16),
            "activations to half"))
        return NULL;
    *done = true;
    return *buf;
}

// One product of a group.
static void matmul_item(cuda_backend *cb, const float *in, uint64_t in_stride, uint32_t n_tok,
                        const backend_matmul *it, bool *done16, bool *donebf)
{
    const model_tensor *w = it->w;
    const void *wd = weight(cb, w, "matmul");
    if (!wd)
        return;
    if (w->n_mat > 1) {
        record(cb, GARLIC_EUNSUPPORTED, "matmul", "3-D weights (experts)");
        return;
    }
    uint64_t n_in = w->n_in, rows = w->n_out;
    if (w->type == TENSOR_TYPE_F32) {
        gemm(cb, CUDA_R_32F, wd, CUDA_R_32F, in, in_stride, n_in, rows, n_tok, it->y, it->ldy);
    } else if (w->type == TENSOR_TYPE_F16 || w->type == TENSOR_TYPE_BF16) {
        bool bf16 = w->type == TENSOR_TYPE_BF16;
        const void *x = converted(cb, in, in_stride, n_tok, n_in, bf16, bf16 ? donebf : done16);
        cudaDataType t = bf16 ? CUDA_R_16BF : CUDA_R_16F;
        if (x)
            gemm(cb, t, wd, t, x, n_in, n_in, rows, n_tok, it->y, it->ldy);
    } else if (n_tok <= CUDA_MATVEC_MAX_TOK) {
        ok(cb,
           cuda_launch_matvec(cb->stream, w->type, wd, n_in, rows, in, in_stride, n_tok, it->y,
                              it->ldy),
           "matmul (mat-vec)");
    } else {
        const void *x = converted(cb, in, in_stride, n_tok, n_in, false, done16);
        if (!x ||
            !grow(cb, &cb->wtile, &cb->wtile_bytes, (size_t)WTILE_VALUES * 2,
                  "cudaMalloc (weight tile)"))
            return;
        uint64_t row_bytes = 0;
        tensor_row_size(w->type, n_in, &row_bytes);
        uint64_t per_tile = WTILE_VALUES / n_in ? WTILE_VALUES / n_in : 1;
        if (per_tile * n_in > WTILE_VALUES) { // a row wider than the tile
            record(cb, GARLIC_EUNSUPPORTED, "matmul", "rows wider than the weight tile");
            return;
        }
        for (uint64_t r0 = 0; r0 < rows && !cb->err_code; r0 += per_tile) {
            uint64_t n = rows - r0 < per_tile ? rows - r0 : per_tile;
            if (ok(cb,
                   cuda_launch_dequant_f16(cb->stream, w->type,
                                           (const uint8_t *)wd + r0 * row_bytes, n_in, n,
                                           cb->wtile),
                   "matmul (dequantize)"))
                gemm(cb, CUDA_R_16F, cb->wtile, CUDA_R_16F, x, n_in, n_in, n, n_tok, it->y + r0,
                     it->ldy);
        }
    }
    if (it->bias && it->bias->data && !cb->err_code) { // (an absent bias may come as data NULL)
        const float *bd = weight(cb, it->bias, "matmul bias");
        if (bd)
            ok(cb, cuda_launch_add_bias(cb->stream, it->y, it->ldy, bd, (uint32_t)rows, n_tok),
               "matmul bias");
    }
}

static void op_matmul(backend *be, const float *in, uint64_t in_stride, uint32_t n_tok,
                      const backend_matmul *items, int n_items)
{
    cuda_backend *cb = cuda_of(be);
    bool done16 = false, donebf = false;
    for (int i = 0; i < n_items && !cb->err_code && n_tok; i++)
        matmul_item(cb, in, in_stride, n_tok, &items[i], &done16, &donebf);
}

static void op_rope(backend *be, float *x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot,
                    bool neox, uint32_t table)
{
    cuda_backend *cb = cuda_of(be);
    if (table >= cb->n_rope || n_rot / 2 != cb->rope_half || n_rot > head_dim) {
        record(cb, GARLIC_EINVAL, "rope", "no such table, or n_rot does not match it");
        return;
    }
    size_t off = (size_t)table * cb->batch.n_tok * cb->rope_half;
    ok(cb,
       cuda_launch_rope(cb->stream, x, cb->batch.n_tok, n_heads, head_dim, n_rot, neox,
                        cb->rope_cos + off, cb->rope_sin + off),
       "rope");
}

// The bound layer of an attention call, or NULL (recorded).
static const cuda_kv_layer *kv_layer(cuda_backend *cb, const backend_attention *a, const char *op)
{
    const kv_binding *k = cb->cur;
    uint32_t i = k ? a->layer - k->first : 0;
    if (!k || !k->mem || a->layer < k->first || i >= k->n) {
        record(cb, GARLIC_EINVAL, op, "its KV layer is not on the device (kv_bind)");
        return NULL;
    }
    if (k->window[i] != a->window_blocks) {
        record(cb, GARLIC_EINVAL, op, "window_blocks does not match the pool's layer");
        return NULL;
    }
    return &k->layers[i];
}

static void op_kv_store(backend *be, const backend_attention *a, const float *k, const float *v)
{
    cuda_backend *cb = cuda_of(be);
    const cuda_kv_layer *L = kv_layer(cb, a, "kv_store");
    if (L)
        ok(cb,
           cuda_launch_kv_store(cb->stream, &cb->batch, L, a->window_blocks, k,
                                a->n_head_kv * a->head_dim_k, v, a->n_head_kv * a->head_dim_v),
           "kv_store");
}

static void op_attention(backend *be, const backend_attention *a, const float *q, float *out)
{
    cuda_backend *cb = cuda_of(be);
    const cuda_kv_layer *L = kv_layer(cb, a, "attention");
    bool has_sinks = a->sinks && a->sinks->data; // (absent sinks may come as data NULL)
    const float *sinks = has_sinks ? weight(cb, a->sinks, "attention sinks") : NULL;
    if (!L || (has_sinks && !sinks))
        return;
    uint32_t range = a->window && cb->batch.max_n_pos > a->window ? a->window : cb->batch.max_n_pos;
    uint32_t splits = (range + CUDA_SPLIT_POSITIONS - 1) / CUDA_SPLIT_POSITIONS;
    splits = splits < 1 ? 1 : splits > CUDA_MAX_SPLITS ? CUDA_MAX_SPLITS : splits;
    cuda_attention args = {.q = q,
                           .out = out,
                           .kv = *L,
                           .window_table = a->window_blocks,
                           .window = a->window,
                           .n_head = a->n_head,
                           .n_head_kv = a->n_head_kv,
                           .hd_k = a->head_dim_k,
                           .hd_v = a->head_dim_v,
                           .scale = a->scale,
                           .sinks = sinks,
                           .n_splits = splits};
    if (!cb->tiled) {
        size_t bytes = (size_t)cb->batch.n_tok * a->n_head * splits * (a->head_dim_v + 2) * 4;
        if (!grow(cb, (void **)&cb->partial, &cb->partial_bytes, bytes, "cudaMalloc (attention)"))
            return;
        args.partial = cb->partial;
    }
    ok(cb, cuda_launch_attention(cb->stream, &cb->batch, &args, cb->tiled), "attention");
}

static void op_gated_act(backend *be, model_act act, float *gate, const float *up, size_t n)
{
    cuda_backend *cb = cuda_of(be);
    ok(cb, cuda_launch_gated(cb->stream, (int)act, gate, up, n), "gated activation");
}

// Row i of dst = row out[i] of src: one copy for each run of consecutive rows.
static void op_gather_rows(backend *be, float *dst, const float *src, uint32_t dim)
{
    cuda_backend *cb = cuda_of(be);
    for (uint32_t i = 0, n; i < cb->n_out; i += n) {
        for (n = 1; i + n < cb->n_out && cb->out[i + n] == cb->out[i] + n;)
            n++;
        if (dst + (size_t)i * dim == src + (size_t)cb->out[i] * dim)
            continue; // in place already
        ok(cb,
           cudaMemcpyAsync(dst + (size_t)i * dim, src + (size_t)cb->out[i] * dim,
                           (size_t)n * dim * sizeof(float), cudaMemcpyDeviceToDevice, cb->stream),
           "gather_rows");
    }
}

static void op_add(backend *be, float *x, const float *y, size_t n)
{
    cuda_backend *cb = cuda_of(be);
    ok(cb, cuda_launch_add(cb->stream, x, y, n), "add");
}

static int op_finish(backend *be, garlic_error *err)
{
    cuda_backend *cb = cuda_of(be);
    if (use_device(cb))
        ok(cb, cudaStreamSynchronize(cb->stream), "forward call");
    return take_error(cb, err);
}

// ---- sleep ----

static void free_scratch(cuda_backend *cb)
{
    void **bufs[] = {&cb->act16, &cb->actbf, &cb->wtile, (void **)&cb->partial, &cb->batch_dev};
    size_t *sizes[] = {&cb->act16_bytes, &cb->actbf_bytes, &cb->wtile_bytes, &cb->partial_bytes,
                       &cb->batch_dev_bytes};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) {
        if (*bufs[i])
            cudaFree(*bufs[i]);
        *bufs[i] = NULL;
        *sizes[i] = 0;
    }
}

static int op_sleep(backend *be, garlic_error *err)
{
    cuda_backend *cb = cuda_of(be);
    if (cb->asleep)
        return GARLIC_OK;
    if (!use_device(cb) || !ok(cb, cudaStreamSynchronize(cb->stream), "sleep"))
        return take_error(cb, err);
    for (size_t i = 0; i < cb->weights.cap; i++)
        if (cb->weights.slots[i].state == MAP_LIVE)
            free_weight(cb, &cb->weights.slots[i]);
    for (int i = 0; i < MAX_BINDINGS; i++) { // the rows go; the bindings stay for the wake
        kv_binding *k = &cb->bindings[i];
        if (k->mem)
            cudaFree(k->mem);
        k->mem = NULL, k->bytes = 0;
    }
    count_kv(cb);
    free_scratch(cb);
    cb->asleep = true;
    return GARLIC_OK;
}

static int op_wake(backend *be, garlic_error *err)
{
    cuda_backend *cb = cuda_of(be);
    if (!cb->asleep)
        return GARLIC_OK;
    if (!use_device(cb))
        return take_error(cb, err);
    for (size_t i = 0; i < cb->weights.cap && !cb->err_code; i++) {
        map_entry *e = &cb->weights.slots[i];
        if (e->state == MAP_LIVE && !e->dev)
            upload_entry(cb, e->key, e);
    }
    for (int i = 0; i < MAX_BINDINGS && !cb->err_code; i++)
        if (cb->bindings[i].kv && cb->bindings[i].n)
            kv_allocate(&cb->bindings[i]); // the rows come back empty
    if (!cb->err_code)
        cb->asleep = false;
    return take_error(cb, err);
}

// ---- info and lifetime ----

static void op_info(backend *be, backend_device_info *out)
{
    cuda_backend *cb = cuda_of(be);
    size_t free_b = 0, total_b = 0;
    // (A failure leaves the last free count and records nothing: an error pending from the
    // current call stays the one finish reports.)
    if (cudaSetDevice(cb->index) == cudaSuccess && cudaMemGetInfo(&free_b, &total_b) == cudaSuccess)
        cb->info.free_bytes = free_b;
    else
        cudaGetLastError();
    *out = cb->info;
}

static void op_free(backend *be)
{
    cuda_backend *cb = cuda_of(be);
    cudaSetDevice(cb->index);
    if (cb->stream)
        cudaStreamSynchronize(cb->stream);
    for (int i = 0; i < MAX_BINDINGS; i++) // (the pools outlive the backend: mirrors removed)
        if (cb->bindings[i].kv)
            binding_release(&cb->bindings[i], true);
    for (size_t i = 0; i < cb->weights.cap; i++)
        if (cb->weights.slots[i].state == MAP_LIVE && cb->weights.slots[i].dev)
            cudaFree(cb->weights.slots[i].dev);
    for (size_t i = 0; i < cb->allocs.cap; i++)
        if (cb->allocs.slots[i].state == MAP_LIVE)
            cudaFree(cb->allocs.slots[i].dev);
    map_deinit(&cb->weights);
    map_deinit(&cb->allocs);
    free_scratch(cb);
    for (int i = 0; i < 2; i++) {
        if (cb->stage[i])
            cudaFreeHost(cb->stage[i]);
        if (cb->staged[i])
            cudaEventDestroy(cb->staged[i]);
    }
    if (cb->batch_host)
        cudaFreeHost(cb->batch_host);
    if (cb->batch_copied)
        cudaEventDestroy(cb->batch_copied);
    if (cb->blas)
        cublasDestroy(cb->blas);
    if (cb->blas_workspace)
        cudaFree(cb->blas_workspace);
    if (cb->stream)
        cudaStreamDestroy(cb->stream);
    garlic_free(cb->tiles);
    garlic_free(cb->out);
    garlic_free(cb);
}

static const backend_ops cuda_ops = {
    .name = "cuda",
    .free = op_free,
    .info = op_info,
    .alloc = op_alloc,
    .release = op_release,
    .to_device = op_to_device,
    .to_host = op_to_host,
    .upload = op_upload,
    .drop = op_drop,
    .supports = op_supports,
    .kv_bind = op_kv_bind,
    .begin = op_begin,
    .rmsnorm = op_rmsnorm,
    .matmul = op_matmul,
    .rope = op_rope,
    .kv_store = op_kv_store,
    .attention = op_attention,
    .gated_act = op_gated_act,
    .gather_rows = op_gather_rows,
    .add = op_add,
    .finish = op_finish,
    .sleep = op_sleep,
    .wake = op_wake,
};

// The device's memory bandwidth: a device-to-device copy of up to BANDWIDTH_BYTES (halved
// until the allocation succeeds), timed with events after one warm-up copy, counting the bytes
// read and written. 0 when it cannot be measured.
static double measure_bandwidth(cuda_backend *cb)
{
    size_t bytes = BANDWIDTH_BYTES;
    void *a = NULL, *b = NULL;
    while (bytes >= (1u << 20)) {
        if (cudaMalloc(&a, bytes) == cudaSuccess) {
            if (cudaMalloc(&b, bytes) == cudaSuccess)
                break;
            cudaFree(a);
        }
        a = NULL;
        bytes /= 2;
    }
    cudaGetLastError(); // (a failed allocation is not an error here)
    if (!a)
        return 0;
    cudaEvent_t start = NULL, stop = NULL;
    float ms = 0;
    const int rounds = 4;
    bool fine = cudaEventCreate(&start) == cudaSuccess && cudaEventCreate(&stop) == cudaSuccess &&
        cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, cb->stream) == cudaSuccess &&
        cudaEventRecord(start, cb->stream) == cudaSuccess;
    for (int i = 0; fine && i < rounds; i++)
        fine = cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, cb->stream) == cudaSuccess;
    fine = fine && cudaEventRecord(stop, cb->stream) == cudaSuccess &&
        cudaEventSynchronize(stop) == cudaSuccess &&
        cudaEventElapsedTime(&ms, start, stop) == cudaSuccess && ms > 0;
    if (start)
        cudaEventDestroy(start);
    if (stop)
        cudaEventDestroy(stop);
    cudaFree(a);
    cudaFree(b);
    cudaGetLastError();
    return fine ? 2.0 * (double)bytes * rounds / (ms * 1e-3) / 1e9 : 0;
}

int backend_cuda_device_count(void)
{
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        cudaGetLastError();
        return 0;
    }
    return n;
}

// Creates the context, stream, events and cuBLAS handle (with its workspace) of cb, and
// measures what they took.
static bool create_device(cuda_backend *cb)
{
    size_t free0 = 0, free1 = 0, total = 0;
    // cudaFree(0) creates the context; what the device had in use then is the context's (and
    // any other process's) share.
    if (!ok(cb, cudaSetDevice(cb->index), "cudaSetDevice") ||
        !ok(cb, cudaFree(NULL), "creating the context") ||
        !ok(cb, cudaMemGetInfo(&free0, &total), "cudaMemGetInfo"))
        return false;
    if (!ok(cb, cudaStreamCreateWithFlags(&cb->stream, cudaStreamNonBlocking),
            "cudaStreamCreate") ||
        !ok(cb, cudaEventCreateWithFlags(&cb->staged[0], cudaEventDisableTiming),
            "cudaEventCreate") ||
        !ok(cb, cudaEventCreateWithFlags(&cb->staged[1], cudaEventDisableTiming),
            "cudaEventCreate") ||
        !ok(cb, cudaEventCreateWithFlags(&cb->batch_copied, cudaEventDisableTiming),
            "cudaEventCreate") ||
        !blas_ok(cb, cublasCreate(&cb->blas), "cublasCreate") ||
        !blas_ok(cb, cublasSetStream(cb->blas, cb->stream), "cublasSetStream") ||
        !ok(cb, cudaMalloc(&cb->blas_workspace, BLAS_WORKSPACE), "cudaMalloc (cuBLAS workspace)") ||
        !blas_ok(cb, cublasSetWorkspace(cb->blas, cb->blas_workspace, BLAS_WORKSPACE),
                 "cublasSetWorkspace") ||
        !ok(cb, cudaMemGetInfo(&free1, &total), "cudaMemGetInfo"))
        return false;
    struct cudaDeviceProp prop;
    if (!ok(cb, cudaGetDeviceProperties(&prop, cb->index), "cudaGetDeviceProperties"))
        return false;
    backend_device_info *in = &cb->info;
    size_t name_len = strnlen(prop.name, sizeof in->name - 1);
    memcpy(in->name, prop.name, name_len);
    in->name[name_len] = 0;
    in->index = cb->index;
    in->cc_major = prop.major;
    in->cc_minor = prop.minor;
    in->total_bytes = total;
    in->free_bytes = free1;
    in->context_bytes = (total - free0) + (free0 > free1 ? free0 - free1 : 0);
    in->bandwidth_gbs = measure_bandwidth(cb);
    return true;
}

backend *backend_cuda_new(int index, garlic_error *err)
{
    int n = 0;
    cudaError_t e = cudaGetDeviceCount(&n);
    if (e != cudaSuccess) {
        cudaGetLastError();
        garlic_error_set(err, GARLIC_EUNSUPPORTED, "cuda:%d: no CUDA device: %s", index,
                         cudaGetErrorString(e));
        return NULL;
    }
    if (index < 0 || index >= n) {
        garlic_error_set(err, GARLIC_EINVAL, "cuda:%d: no such device (%d CUDA device%s)", index, n,
                         n == 1 ? "" : "s");
        return NULL;
    }
    cuda_backend *cb = garlic_calloc(1, sizeof *cb);
    if (!cb) {
        garlic_error_set(err, GARLIC_ENOMEM, "cuda:%d: out of host memory", index);
        return NULL;
    }
    cb->base.ops = &cuda_ops;
    cb->index = index;
    if (!create_device(cb)) {
        take_error(cb, err);
        op_free(&cb->base);
        return NULL;
    }
    return &cb->base;
}

bool backend_cuda_built(void) { return true; }
