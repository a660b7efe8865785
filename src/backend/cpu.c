// SPDX-License-Identifier: MIT
// The CPU backend: the operations table over a run state's own buffers, compute pool and KV
// pool. Its kernels are kernels/'s (through model/forward.c's matrix products and attention,
// which share the state's scratch); memory is the host's, so copies are memcpy and weights
// are read where they lie (the mapping, or the kernels' packed rows).
#include <string.h>

#include "base/alloc.h"
#include "model/internal.h"

typedef struct cpu_backend {
    backend base;
    model_state *s;
} cpu_backend;

static model_state *state_of(backend *be) { return ((cpu_backend *)be)->s; }

static void cpu_free(backend *be) { garlic_free(be); }

static void cpu_info(backend *be, backend_device_info *out)
{
    (void)be;
    *out = (backend_device_info){.index = -1};
    strcpy(out->name, "cpu");
}

static void *cpu_alloc(backend *be, size_t bytes, garlic_error *err)
{
    (void)be;
    void *p = garlic_calloc(1, bytes ? bytes : 1);
    if (!p)
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory (%zu bytes)", bytes);
    return p;
}

static void cpu_release(backend *be, void *p)
{
    (void)be;
    garlic_free(p);
}

static int cpu_copy(backend *be, void *dst, const void *src, size_t bytes, garlic_error *err)
{
    (void)be, (void)err;
    memmove(dst, src, bytes);
    return GARLIC_OK;
}

static int cpu_upload(backend *be, const model_tensor *t, garlic_error *err)
{
    (void)be, (void)t, (void)err;
    return GARLIC_OK;
}

static void cpu_drop(backend *be, const model_tensor *t) { (void)be, (void)t; }

static bool cpu_supports(backend *be, const model *m, uint32_t l, garlic_error *err)
{
    (void)be, (void)m, (void)l, (void)err;
    return true;
}

static int cpu_kv_bind(backend *be, kv_cache *kv, uint32_t first, uint32_t n, garlic_error *err)
{
    (void)be, (void)kv, (void)first, (void)n, (void)err;
    return GARLIC_OK;
}

static int cpu_begin(backend *be, const backend_batch *b, garlic_error *err)
{
    (void)be, (void)b, (void)err; // the state's flat batch is read where it lies
    return GARLIC_OK;
}

static void cpu_rmsnorm(backend *be, float *out, const float *x, const model_tensor *w,
                        uint32_t rows, uint32_t dim, float eps)
{
    model_cpu_rmsnorm(state_of(be), out, x, w->data, rows, dim, eps);
}

static void cpu_matmul(backend *be, const float *in, uint64_t in_stride, uint32_t n_tok,
                       const backend_matmul *items, int n_items)
{
    model_matmul_item m[MAX_GROUP];
    for (int i = 0; i < n_items; i++)
        m[i] = (model_matmul_item){.w = items[i].w,
                                   .y = items[i].y,
                                   .ldy = items[i].ldy,
                                   .bias = items[i].bias ? items[i].bias->data : NULL};
    model_matmul_group(state_of(be), in, in_stride, n_tok, m, n_items);
}

static void cpu_rope(backend *be, float *x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot,
                     bool neox, uint32_t table)
{
    model_cpu_rope(state_of(be), x, n_heads, head_dim, n_rot, neox, table);
}

static void cpu_kv_store(backend *be, const backend_attention *a, const float *k, const float *v)
{
    model_cpu_kv_store(state_of(be), a, k, v);
}

static void cpu_attention(backend *be, const backend_attention *a, const float *q, float *out)
{
    model_cpu_attention(state_of(be), a, q, out);
}

static void cpu_gated_act(backend *be, model_act act, float *gate, const float *up, size_t n)
{
    model_gated_act(state_of(be), act, gate, up, n);
}

static void cpu_gather_rows(backend *be, float *dst, const float *src, uint32_t dim)
{
    const model_flat_batch *fb = state_of(be)->fb;
    for (uint32_t i = 0; i < fb->n_out; i++)
        memmove(dst + (size_t)i * dim, src + (size_t)fb->out[i] * dim, dim * sizeof(float));
}

static void cpu_add(backend *be, float *x, const float *y, size_t n)
{
    model_cpu_add(state_of(be), x, y, n);
}

static int cpu_done(backend *be, garlic_error *err)
{
    (void)be, (void)err;
    return GARLIC_OK;
}

static const backend_ops cpu_ops = {.name = "cpu",
                                    .free = cpu_free,
                                    .info = cpu_info,
                                    .alloc = cpu_alloc,
                                    .release = cpu_release,
                                    .to_device = cpu_copy,
                                    .to_host = cpu_copy,
                                    .upload = cpu_upload,
                                    .drop = cpu_drop,
                                    .supports = cpu_supports,
                                    .kv_bind = cpu_kv_bind,
                                    .begin = cpu_begin,
                                    .rmsnorm = cpu_rmsnorm,
                                    .matmul = cpu_matmul,
                                    .rope = cpu_rope,
                                    .kv_store = cpu_kv_store,
                                    .attention = cpu_attention,
                                    .gated_act = cpu_gated_act,
                                    .gather_rows = cpu_gather_rows,
                                    .add = cpu_add,
                                    .finish = cpu_done,
                                    .sleep = cpu_done,
                                    .wake = cpu_done};

backend *backend_cpu_standin_new(garlic_error *err) { return model_cpu_backend_new(NULL, err); }

bool model_cpu_backend_bind(backend *be, model_state *s)
{
    if (be->ops != &cpu_ops || ((cpu_backend *)be)->s)
        return false;
    ((cpu_backend *)be)->s = s;
    return true;
}

backend *model_cpu_backend_new(model_state *s, garlic_error *err)
{
    cpu_backend *c = garlic_calloc(1, sizeof *c);
    if (!c) {
        garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        return NULL;
    }
    c->base.ops = &cpu_ops, c->s = s;
    return &c->base;
}
