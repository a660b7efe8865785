// SPDX-License-Identifier: MIT
// Random-weight model writer; see synth.h. Tensors are generated and quantized one at a
// time inside the GGUF writer's fill callback (which also reports the progress), so memory
// stays at one tensor even for billion-parameter shapes.
#include "model/synth.h"

#include <math.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/threadpool.h"
#include "gguf/gguf.h"
#include "hf/hf.h"
#include "model/model.h"
#include "tensor/types.h"

typedef enum init_kind {
    INIT_MATRIX,
    INIT_NORM,
    INIT_BIAS,
    INIT_ROPE_SHORT,
    INIT_ROPE_LONG
} init_kind;

typedef struct synth_tensor {
    init_kind init;
    uint32_t type;
    uint64_t ne0, ne1, ne2; // rows are ne1 * ne2
} synth_tensor;

typedef struct synth_state {
    const model_synth_params *p;
    synth_tensor *tensors; // (n_tensors) in writer order
    size_t n_tensors;
    thread_pool *pool; // generates and quantizes rows in parallel
    float *rows;       // (threads, row_cap) one row of floats per thread
    size_t row_cap;
    uint64_t bytes_done; // tensor bytes generated so far, of bytes_total
    uint64_t bytes_total;
} synth_state;

void model_synth_params_default(model_synth_params *p)
{
    *p = (model_synth_params){.arch = "llama",
                              .dim = 256,
                              .n_layer = 2,
                              .n_head = 8,
                              .n_head_kv = 2,
                              .ffn = 768,
                              .context = 512,
                              .vocab = 512,
                              .type = TENSOR_TYPE_F32,
                              .output_type = -1,
                              .more_bits_type = -1,
                              .expert_type = -1,
                              .pooling = -1,
                              .seed = 1};
}

static uint64_t splitmix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

// An approximately normal N(0, 1) value from one 64-bit draw: the sum of four 16-bit
// uniforms (Irwin-Hall), centred and scaled to unit variance. Cheap, and plenty for weights.
static float approx_normal(uint64_t *s)
{
    uint64_t r = splitmix(s);
    float sum = (float)(r & 0xffff) + (float)((r >> 16) & 0xffff) + (float)((r >> 32) & 0xffff) +
        (float)(r >> 48);
    // Each uniform on [0, 65536) has mean 32767.5 and variance 65536^2 / 12.
    return (sum - 4 * 32767.5f) / (65536.0f * 0.57735027f);
}

// The type a matrix of rows of ne0 values gets: the requested one when its block divides
// ne0 and garlic can produce it, else Q8_0, F16, F32 in that order.
static uint32_t pick_type(uint32_t want, uint64_t ne0)
{
    const uint32_t order[] = {want, TENSOR_TYPE_Q8_0, TENSOR_TYPE_F16, TENSOR_TYPE_F32};
    for (size_t i = 0; i < 4; i++) {
        const tensor_type_traits *t = tensor_type_get(order[i]);
        if (t && ne0 % t->block_size == 0 && (t->quantize || order[i] == TENSOR_TYPE_F32))
            return order[i];
    }
    return TENSOR_TYPE_F32;
}

typedef struct fill_job {
    const synth_state *st;
    const synth_tensor *t;
    size_t index;
    uint8_t *dst;
    uint64_t row_bytes;
} fill_job;

// Generates and quantizes this thread's rows (every nth one). Each row has its own seed, so
// the bytes do not depend on the number of threads.
static void fill_rows(void *ctx, int ith, int nth)
{
    const fill_job *job = ctx;
    const synth_tensor *t = job->t;
    const tensor_type_traits *traits = tensor_type_get(t->type);
    float *row = job->st->rows + (size_t)ith * job->st->row_cap;
    for (uint64_t r = (uint64_t)ith; r < t->ne1 * t->ne2; r += (uint64_t)nth) {
        uint64_t seed = (job->st->p->seed * 0x100000001B3ull + job->index) * 0x9E3779B97F4A7C15ull +
            r;
        for (uint64_t i = 0; i < t->ne0; i++) {
            float x = approx_normal(&seed);
            row[i] = t->init == INIT_MATRIX  ? 0.02f * x
                : t->init == INIT_NORM       ? 1.0f + 0.1f * x
                : t->init == INIT_ROPE_SHORT ? 1.0f + 0.25f * fabsf(x)
                : t->init == INIT_ROPE_LONG  ? 1.0f + 4.0f * fabsf(x)
                                             : 0.5f * x;
        }
        uint8_t *out = job->dst + r * job->row_bytes;
        if (t->type == TENSOR_TYPE_F32)
            memcpy(out, row, t->ne0 * sizeof *row);
        else
            traits->quantize(row, out, (int64_t)t->ne0);
    }
}

// The writer's fill callback: generates tensor index into dst and reports the progress.
static int fill_tensor(void *user, size_t index, void *dst, uint64_t nbytes, garlic_error *err)
{
    (void)err;
    synth_state *st = user;
    const synth_tensor *t = &st->tensors[index];
    fill_job job = {
        .st = st, .t = t, .index = index, .dst = dst, .row_bytes = nbytes / (t->ne1 * t->ne2)};
    thread_pool_run(st->pool, fill_rows, &job);
    st->bytes_done += nbytes;
    if (st->p->progress)
        st->p->progress(st->p->progress_user, st->bytes_done, st->bytes_total);
    return GARLIC_OK;
}

static int add3(gguf_writer *w, synth_state *st, const char *name, init_kind init, uint32_t type,
                uint64_t ne0, uint64_t ne1, uint64_t ne2, garlic_error *err)
{
    bool matrix = ne1 > 1 && init == INIT_MATRIX;
    synth_tensor t = {.init = init,
                      .type = matrix ? pick_type(type, ne0) : TENSOR_TYPE_F32,
                      .ne0 = ne0,
                      .ne1 = ne1,
                      .ne2 = ne2};
    uint64_t ne[3] = {ne0, ne1, ne2};
    int rc = gguf_writer_add_tensor(w, name, t.type, ne2 > 1 ? 3 : ne1 > 1 ? 2 : 1, ne, NULL, err);
    if (rc)
        return rc;
    st->tensors[st->n_tensors++] = t;
    return GARLIC_OK;
}

static int add(gguf_writer *w, synth_state *st, const char *name, init_kind init, uint32_t type,
               uint64_t ne0, uint64_t ne1, garlic_error *err)
{
    return add3(w, st, name, init, type, ne0, ne1, 1, err);
}

// Formats "blk.<layer>.<suffix>" into name (96 bytes) and returns it.
static const char *layer_name(char *name, uint32_t layer, const char *suffix)
{
    snprintf(name, 96, "blk.%u.%s", layer, suffix);
    return name;
}

// The type of layer's attn_v and ffn_down: more_bits_type in the layers llama-quantize's
// "_M" mixtures give more bits (layer < n/8, layer >= 7n/8, or (layer - n/8) % 3 == 2).
static uint32_t v_down_type(const model_synth_params *p, uint32_t layer)
{
    uint32_t n = p->n_layer;
    bool more = layer < n / 8 || layer >= 7 * n / 8 || (layer - n / 8) % 3 == 2;
    return more && p->more_bits_type >= 0 ? (uint32_t)p->more_bits_type : p->type;
}

// One tensor of a layer: blk.<l>.<suffix>, written when `when` holds.
typedef struct layer_tensor {
    const char *suffix;
    init_kind init;
    uint32_t type;
    uint64_t ne0, ne1, ne2;
    bool when;
} layer_tensor;

static int add_specs(gguf_writer *w, synth_state *st, uint32_t layer, const layer_tensor *specs,
                     size_t n, garlic_error *err)
{
    char name[96];
    int rc = GARLIC_OK;
    for (size_t i = 0; rc == GARLIC_OK && i < n; i++)
        if (specs[i].when)
            rc = add3(w, st, layer_name(name, layer, specs[i].suffix), specs[i].init, specs[i].type,
                      specs[i].ne0, specs[i].ne1, specs[i].ne2, err);
    return rc;
}

// The attention tensors of a layer: grouped-query attention's q, k, v and output (with the
// architecture's biases and norms), or multi-head latent attention's, as llama.cpp's
// converter writes DeepSeek's (attn_kv_b already split into attn_k_b and attn_v_b).
static int add_attention(gguf_writer *w, synth_state *st, uint32_t layer, garlic_error *err)
{
    const model_synth_params *p = st->p;
    const model_arch *arch = model_arch_find(p->arch);
    uint32_t vd_type = v_down_type(p, layer), t = p->type;
    uint64_t hd = p->head_dim, q_dim = (uint64_t)p->n_head * hd,
             kv_dim = (uint64_t)p->n_head_kv * hd, dim = p->dim;
    if (arch->mla) {
        uint64_t rank = p->q_lora_rank, kv = p->kv_lora_rank, heads = p->n_head;
        uint64_t hv = p->v_head_dim ? p->v_head_dim : hd - p->rope_dims;
        const layer_tensor specs[] = {
            {"attn_norm.weight", INIT_NORM, 0, dim, 1, 1, true},
            {"attn_q_a_norm.weight", INIT_NORM, 0, rank, 1, 1, rank > 0},
            {"attn_kv_a_norm.weight", INIT_NORM, 0, kv, 1, 1, true},
            {"attn_q_a.weight", INIT_MATRIX, t, dim, rank, 1, rank > 0},
            {"attn_q_b.weight", INIT_MATRIX, t, rank, q_dim, 1, rank > 0},
            {"attn_q.weight", INIT_MATRIX, t, dim, q_dim, 1, rank == 0},
            {"attn_kv_a_mqa.weight", INIT_MATRIX, t, dim, kv + p->rope_dims, 1, true},
            {"attn_k_b.weight", INIT_MATRIX, t, hd - p->rope_dims, kv, heads, true},
            {"attn_v_b.weight", INIT_MATRIX, vd_type, kv, hv, heads, true},
            {"attn_output.weight", INIT_MATRIX, t, heads * hv, dim, 1, true},
        };
        return add_specs(w, st, layer, specs, sizeof specs / sizeof specs[0], err);
    }
    bool fused = arch->fused_qkv, split = !fused;
    const layer_tensor specs[] = {
        {"attn_norm.weight", INIT_NORM, 0, dim, 1, 1, true},
        {"attn_q.weight", INIT_MATRIX, t, dim, q_dim, 1, split},
        {"attn_k.weight", INIT_MATRIX, t, dim, kv_dim, 1, split},
        {"attn_v.weight", INIT_MATRIX, vd_type, dim, kv_dim, 1, split},
        {"attn_qkv.weight", INIT_MATRIX, t, dim, q_dim + 2 * kv_dim, 1, fused},
        {"attn_q.bias", INIT_BIAS, 0, q_dim, 1, 1, arch->qkv_bias && split},
        {"attn_k.bias", INIT_BIAS, 0, kv_dim, 1, 1, arch->qkv_bias && split},
        {"attn_v.bias", INIT_BIAS, 0, kv_dim, 1, 1, arch->qkv_bias && split},
        {"attn_qkv.bias", INIT_BIAS, 0, q_dim + 2 * kv_dim, 1, 1, arch->qkv_bias && fused},
        {"attn_q_norm.weight", INIT_NORM, 0, hd, 1, 1, arch->qk_norm},
        {"attn_k_norm.weight", INIT_NORM, 0, hd, 1, 1, arch->qk_norm},
        {"attn_output.weight", INIT_MATRIX, t, q_dim, dim, 1, true},
        {"attn_output.bias", INIT_BIAS, 0, dim, 1, 1, arch->o_bias},
        {"attn_sinks.weight", INIT_BIAS, 0, p->n_head, 1, 1, arch->attn_sinks},
        {"post_attention_norm.weight", INIT_NORM, 0, dim, 1, 1, arch->post_norms},
    };
    return add_specs(w, st, layer, specs, sizeof specs / sizeof specs[0], err);
}

// The shared expert's width: the given one, or n_shared_experts experts' (DeepSeek's).
static uint64_t shared_width(const model_synth_params *p)
{
    if (p->ffn_shexp)
        return p->ffn_shexp;
    return (uint64_t)(p->ffn_exp ? p->ffn_exp : p->ffn) * p->n_shared_experts;
}

// An encoder's layer as llama.cpp's converter writes BERT's and nomic-bert's: Q, K, V (one
// fused matrix for nomic-bert) and the output projection, the post-norms with biases, and the
// FFN (BERT: up and down with biases; nomic-bert: gate, up and down, no biases).
static int add_encoder_layer(gguf_writer *w, synth_state *st, uint32_t layer, garlic_error *err)
{
    const model_synth_params *p = st->p;
    const model_arch *arch = model_arch_find(p->arch);
    uint32_t t = p->type;
    uint64_t dim = p->dim, ffn = p->ffn, q_dim = (uint64_t)p->n_head * p->head_dim;
    uint64_t kv_dim = (uint64_t)p->n_head_kv * p->head_dim;
    bool bert = arch->ffn_ungated, fused = arch->fused_qkv;
    const layer_tensor specs[] = {
        {"attn_qkv.weight", INIT_MATRIX, t, dim, q_dim + 2 * kv_dim, 1, fused},
        {"attn_q.weight", INIT_MATRIX, t, dim, q_dim, 1, !fused},
        {"attn_q.bias", INIT_BIAS, 0, q_dim, 1, 1, !fused},
        {"attn_k.weight", INIT_MATRIX, t, dim, kv_dim, 1, !fused},
        {"attn_k.bias", INIT_BIAS, 0, kv_dim, 1, 1, !fused},
        {"attn_v.weight", INIT_MATRIX, t, dim, kv_dim, 1, !fused},
        {"attn_v.bias", INIT_BIAS, 0, kv_dim, 1, 1, !fused},
        {"attn_output.weight", INIT_MATRIX, t, q_dim, dim, 1, true},
        {"attn_output.bias", INIT_BIAS, 0, dim, 1, 1, bert},
        {"attn_output_norm.weight", INIT_NORM, 0, dim, 1, 1, true},
        {"attn_output_norm.bias", INIT_BIAS, 0, dim, 1, 1, true},
        {"ffn_up.weight", INIT_MATRIX, t, dim, ffn, 1, true},
        {"ffn_up.bias", INIT_BIAS, 0, ffn, 1, 1, bert},
        {"ffn_gate.weight", INIT_MATRIX, t, dim, ffn, 1, !bert},
        {"ffn_down.weight", INIT_MATRIX, t, ffn, dim, 1, true},
        {"ffn_down.bias", INIT_BIAS, 0, dim, 1, 1, bert},
        {"layer_output_norm.weight", INIT_NORM, 0, dim, 1, 1, true},
        {"layer_output_norm.bias", INIT_BIAS, 0, dim, 1, 1, true},
    };
    return add_specs(w, st, layer, specs, sizeof specs / sizeof specs[0], err);
}

static int add_layer(gguf_writer *w, synth_state *st, uint32_t layer, garlic_error *err)
{
    const model_synth_params *p = st->p;
    const model_arch *arch = model_arch_find(p->arch);
    uint32_t vd_type = v_down_type(p, layer), t = p->type;
    uint32_t et = p->expert_type >= 0 ? (uint32_t)p->expert_type : t;
    uint64_t dim = p->dim, ne = p->n_expert, fe = p->ffn_exp ? p->ffn_exp : p->ffn;
    uint64_t fs = shared_width(p);
    bool moe = ne > 0 && layer >= p->n_dense_lead, dense = !moe;
    bool eb = moe && arch->expert_biases;
    bool up2 = dense && arch->fused_up; // one ffn_up of gate rows then up rows
    const layer_tensor specs[] = {
        {arch->ffn_norm ? arch->ffn_norm : "ffn_norm.weight", INIT_NORM, 0, dim, 1, 1, true},
        {"ffn_gate.weight", INIT_MATRIX, t, dim, p->ffn, 1, dense && !up2},
        {"ffn_up.weight", INIT_MATRIX, t, dim, p->ffn, 1, dense && !up2},
        {"ffn_up.weight", INIT_MATRIX, t, dim, 2 * (uint64_t)p->ffn, 1, up2},
        {"ffn_down.weight", INIT_MATRIX, vd_type, p->ffn, dim, 1, dense},
        {"post_ffw_norm.weight", INIT_NORM, 0, dim, 1, 1, arch->post_norms},
        // The router stays F32, as llama-quantize leaves it.
        {"ffn_gate_inp.weight", INIT_MATRIX, TENSOR_TYPE_F32, dim, ne, 1, moe},
        {"ffn_gate_inp.bias", INIT_BIAS, 0, ne, 1, 1, moe && arch->router_logit_bias},
        {"exp_probs_b.bias", INIT_BIAS, 0, ne, 1, 1, moe && p->expert_bias},
        {"ffn_gate_exps.weight", INIT_MATRIX, et, dim, fe, ne, moe},
        {"ffn_up_exps.weight", INIT_MATRIX, et, dim, fe, ne, moe},
        {"ffn_down_exps.weight", INIT_MATRIX, et == t ? vd_type : et, fe, dim, ne, moe},
        {"ffn_gate_exps.bias", INIT_BIAS, 0, fe, ne, 1, eb},
        {"ffn_up_exps.bias", INIT_BIAS, 0, fe, ne, 1, eb},
        {"ffn_down_exps.bias", INIT_BIAS, 0, dim, ne, 1, eb},
        {"ffn_gate_inp_shexp.weight", INIT_MATRIX, TENSOR_TYPE_F32, dim, 1, 1,
         moe && fs && arch->shared_gate},
        {"ffn_gate_shexp.weight", INIT_MATRIX, t, dim, fs, 1, moe && fs},
        {"ffn_up_shexp.weight", INIT_MATRIX, t, dim, fs, 1, moe && fs},
        {"ffn_down_shexp.weight", INIT_MATRIX, vd_type, fs, dim, 1, moe && fs},
    };
    int rc = add_attention(w, st, layer, err);
    return rc ? rc : add_specs(w, st, layer, specs, sizeof specs / sizeof specs[0], err);
}

// A SentencePiece-style vocabulary of n pieces: <unk>, <s>, </s>, the 256 byte tokens, then
// single characters, "▁"-prefixed characters and character pairs until n is reached.
static int write_builtin_vocab(gguf_writer *w, uint32_t n, garlic_error *err)
{
    static const char chars[] =
        "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()";
    const size_t n_chars = sizeof chars - 1;
    if (n < 3 + 256 + n_chars)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "vocab %u is too small for the built-in "
                                "vocabulary (at least %zu)",
                                n, 3 + 256 + n_chars);
    char **pieces = garlic_calloc(n, sizeof *pieces);
    float *scores = garlic_calloc(n, sizeof *scores);
    int32_t *types = garlic_calloc(n, sizeof *types);
    char *text = garlic_calloc(n, 16);
    int rc = GARLIC_OK;
    if (!pieces || !scores || !types || !text) {
        rc = garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < n; i++) {
        char *t = text + (size_t)i * 16;
        pieces[i] = t;
        types[i] = 1; // normal
        scores[i] = -(float)i;
        uint32_t k = i - 259, a, b;
        if (i < 3) {
            strcpy(t, i == 0 ? "<unk>" : i == 1 ? "<s>" : "</s>");
            types[i] = i == 0 ? 2 : 3, scores[i] = 0;
        } else if (i < 259) {
            snprintf(t, 16, "<0x%02X>", i - 3);
            types[i] = 6, scores[i] = 0;
        } else if (k < n_chars) {
            snprintf(t, 16, "%c", chars[k]);
        } else if (k < 2 * n_chars) {
            snprintf(t, 16, "\xe2\x96\x81%c", chars[k - n_chars]);
        } else if ((k -= 2 * n_chars) < n_chars * n_chars) {
            a = k / (uint32_t)n_chars, b = k % (uint32_t)n_chars;
            snprintf(t, 16, "%c%c", chars[a], chars[b]);
        } else {
            k -= (uint32_t)(n_chars * n_chars);
            a = k / (uint32_t)(n_chars * n_chars), b = k % (uint32_t)(n_chars * n_chars);
            snprintf(t, 16, "\xe2\x96\x81%c%c%c", chars[a % n_chars], chars[b / n_chars],
                     chars[b % n_chars]);
        }
    }
    int r = gguf_writer_set_str(w, "tokenizer.ggml.model", "llama");
    r = r ? r : gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)pieces, n);
    r = r ? r : gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, n);
    r = r ? r : gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, n);
    r = r ? r : gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 0);
    r = r ? r : gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 1);
    r = r ? r : gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 2);
    r = r ? r : gguf_writer_set_bool(w, "tokenizer.ggml.add_bos_token", true);
    if (r)
        rc = garlic_error_set(err, r, "out of memory");
done:
    garlic_free(pieces);
    garlic_free(scores);
    garlic_free(types);
    garlic_free(text);
    return rc;
}

// A WordPiece vocabulary of n tokens as llama.cpp's converter writes BERT's (a word's first
// piece carries "▁", a continuation none): [PAD], [UNK], [CLS], [SEP], [MASK], then every
// character as a word and as a continuation, then pairs of lowercase letters likewise until
// n is reached.
static int write_wordpiece_vocab(gguf_writer *w, uint32_t n, garlic_error *err)
{
    static const char chars[] = "abcdefghijklmnopqrstuvwxyz0123456789.,!?'\"-:;()";
    static const char *const specials[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    const uint32_t n_chars = sizeof chars - 1, n_special = 5;
    if (n < n_special + 2 * n_chars || n > n_special + 2 * n_chars + 2 * 26 * 26)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "vocab %u: the built-in WordPiece vocabulary has %u to %u tokens",
                                n, n_special + 2 * n_chars, n_special + 2 * n_chars + 2 * 26 * 26);
    char **pieces = garlic_calloc(n, sizeof *pieces);
    int32_t *types = garlic_calloc(n, sizeof *types);
    float *scores = garlic_calloc(n, sizeof *scores);
    char *text = garlic_calloc(n, 16);
    int rc = GARLIC_OK;
    if (!pieces || !types || !scores || !text) {
        rc = garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        goto done;
    }
    for (uint32_t i = 0; i < n; i++) {
        char *t = text + (size_t)i * 16;
        pieces[i] = t;
        types[i] = 1;
        uint32_t k = i - n_special;
        bool word = k % 2 == 0; // words and continuations alternate
        const char *start = word ? "\xe2\x96\x81" : "";
        if (i < n_special) {
            strcpy(t, specials[i]);
            types[i] = i == 1 ? 2 : 3; // unknown, control
        } else if (k / 2 < n_chars) {
            snprintf(t, 16, "%s%c", start, chars[k / 2]);
        } else {
            uint32_t pair = k / 2 - n_chars;
            snprintf(t, 16, "%s%c%c", start, 'a' + pair / 26, 'a' + pair % 26);
        }
    }
    int r = gguf_writer_set_str(w, "tokenizer.ggml.model", "bert");
    r = r ? r : gguf_writer_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)pieces, n);
    r = r ? r : gguf_writer_set_arr(w, "tokenizer.ggml.scores", GGUF_TYPE_FLOAT32, scores, n);
    r = r ? r : gguf_writer_set_arr(w, "tokenizer.ggml.token_type", GGUF_TYPE_INT32, types, n);
    r = r ? r : gguf_writer_set_u32(w, "tokenizer.ggml.token_type_count", 2);
    r = r ? r : gguf_writer_set_u32(w, "tokenizer.ggml.padding_token_id", 0);
    r = r ? r : gguf_writer_set_u32(w, "tokenizer.ggml.unknown_token_id", 1);
    r = r ? r : gguf_writer_set_u32(w, "tokenizer.ggml.cls_token_id", 2);
    r = r ? r : gguf_writer_set_u32(w, "tokenizer.ggml.seperator_token_id", 3);
    r = r ? r : gguf_writer_set_u32(w, "tokenizer.ggml.mask_token_id", 4);
    // [CLS] and [SEP] also as BOS and EOS: llama.cpp adds those around a WordPiece input
    // (its defaults, 101 and 102, are BERT's own vocabulary's).
    r = r ? r : gguf_writer_set_u32(w, "tokenizer.ggml.bos_token_id", 2);
    r = r ? r : gguf_writer_set_u32(w, "tokenizer.ggml.eos_token_id", 3);
    if (r)
        rc = garlic_error_set(err, r, "out of memory");
done:
    garlic_free(pieces);
    garlic_free(types);
    garlic_free(scores);
    garlic_free(text);
    return rc;
}

// Copies every tokenizer.* key of the GGUF at path and sets *vocab to its token count.
static int copy_tokenizer(gguf_writer *w, const char *path, uint32_t *vocab, garlic_error *err)
{
    struct stat st;
    bool folder = stat(path, &st) == 0 && S_ISDIR(st.st_mode); // a tokenizer.json's folder
    gguf_file *f = folder ? hf_tokenizer_open(path, err) : gguf_open(path, err);
    if (!f)
        return err ? err->code : GARLIC_EIO;
    gguf_value tokens;
    int rc = gguf_get_arr(f, "tokenizer.ggml.tokens", &tokens);
    if (rc != GARLIC_OK || tokens.arr.type != GGUF_TYPE_STRING || tokens.arr.count == 0 ||
        tokens.arr.count > UINT32_MAX) {
        rc = garlic_error_set(err, GARLIC_EFORMAT, "%s: no tokenizer.ggml.tokens string array",
                              path);
        gguf_close(f);
        return rc;
    }
    *vocab = (uint32_t)tokens.arr.count;
    for (uint64_t i = 0; i < f->n_kv && rc == GARLIC_OK; i++) {
        const gguf_kv *kv = &f->kv[i];
        static const char types[] = "tokenizer.ggml.token_type_count"; // encoders write their own
        if (kv->key.len < 10 || memcmp(kv->key.data, "tokenizer.", 10) != 0 ||
            gguf_string_eq(kv->key, types))
            continue;
        char key[256];
        snprintf(key, sizeof key, "%.*s", (int)(kv->key.len < 255 ? kv->key.len : 255),
                 kv->key.data);
        if (gguf_writer_set_value(w, key, &kv->value) != GARLIC_OK)
            rc = garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    }
    gguf_close(f);
    return rc;
}

// Whether synth can write 2-D weights of type: F32, or a GGUF type garlic quantizes to (not
// one of garlic's own in-memory types, which no GGUF file carries).
static bool writable(uint32_t type)
{
    const tensor_type_traits *t = tensor_type_get(type);
    return t && !t->internal && (t->quantize || type == TENSOR_TYPE_F32);
}

// The options only some architectures' files carry, as llama.cpp reads them: a window where
// the architecture has one, gemma3's sliding RoPE base and soft cap, phi3's LongRoPE, an
// original context for phi3 or YaRN, DeepSeek's YaRN log multiplier with YaRN; gpt-oss has
// its own output matrix and no shared expert.
static int check_arch_options(const model_synth_params *p, garlic_error *err)
{
    const model_arch *arch = model_arch_find(p->arch);
    bool gemma3 = strcmp(p->arch, "gemma3") == 0, phi3 = strcmp(p->arch, "phi3") == 0;
    bool yarn = p->rope_yarn > 0;
    if (strcmp(p->arch, "gpt-oss") == 0 && (p->tied || p->ffn_shexp))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "gpt-oss has neither tied embeddings nor a shared expert");
    if (yarn && p->rope_linear > 0)
        return garlic_error_set(err, GARLIC_EINVAL, "RoPE scaling is linear or YaRN, not both");
    if (p->yarn_log_mul != 0 && !yarn)
        return garlic_error_set(err, GARLIC_EINVAL, "the YaRN log multiplier needs YaRN");
    if (p->sliding_window && !arch->sliding_window)
        return garlic_error_set(err, GARLIC_EINVAL, "arch %s has no sliding window", p->arch);
    if (p->rope_theta_swa > 0 && !arch->swa_rope)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "arch %s has no RoPE of its own for sliding layers", p->arch);
    if (p->final_softcap > 0 && !gemma3)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "final logit soft-capping is written for gemma3");
    if ((p->longrope && !phi3) || (p->rope_orig_ctx && !phi3 && !yarn))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "LongRoPE and the original context are written for phi3 (the "
                                "original context also with YaRN)");
    if (p->longrope && (!p->rope_orig_ctx || p->rope_orig_ctx > p->context))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "LongRoPE needs an original context (%u) within the context (%u)",
                                p->rope_orig_ctx, p->context);
    // llama.cpp's Phi-3 takes the head size as dim / heads (its output matrix is dim x dim).
    if (phi3 && p->head_dim && (uint64_t)p->head_dim * p->n_head != p->dim)
        return garlic_error_set(err, GARLIC_EINVAL, "phi3's head dim must be dim / heads");
    return GARLIC_OK;
}

// Multi-head latent attention's shape (deepseek2), and nothing of it for the others.
static int check_mla_params(const model_synth_params *p, garlic_error *err)
{
    const model_arch *arch = model_arch_find(p->arch);
    uint32_t hd = p->head_dim ? p->head_dim : p->dim / p->n_head;
    if (!arch->mla) {
        if (p->q_lora_rank || p->kv_lora_rank || p->v_head_dim)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "q/kv LoRA ranks and value dims are deepseek2's");
        return GARLIC_OK;
    }
    if (!p->kv_lora_rank || !p->rope_dims || p->rope_dims % 2 || p->rope_dims >= hd)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "deepseek2 needs --kv-lora-rank and an even --rope-dims below "
                                "the head dim (%u)",
                                hd);
    return GARLIC_OK;
}

// The experts' counts, groups and routing options, which need experts.
static int check_expert_params(const model_synth_params *p, garlic_error *err)
{
    if (p->n_expert &&
        (p->n_expert > MODEL_MAX_EXPERTS || !p->n_expert_used || p->n_expert_used > p->n_expert ||
         p->n_expert_used > MODEL_MAX_EXPERTS_USED))
        return garlic_error_set(
            err, GARLIC_EINVAL, "experts %u, used %u: need 1 <= used <= experts <= %d, used <= %d",
            p->n_expert, p->n_expert_used, MODEL_MAX_EXPERTS, MODEL_MAX_EXPERTS_USED);
    if (!p->n_expert &&
        (p->n_expert_used || p->ffn_exp || p->ffn_shexp || p->n_shared_experts || p->n_dense_lead ||
         p->n_expert_groups || p->gating_func || p->expert_bias || p->expert_norm ||
         p->expert_scale != 0))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "experts used, expert and shared widths, dense layers, groups, "
                                "router, expert bias, norm and scale need --experts");
    if (p->n_dense_lead >= p->n_layer && p->n_expert)
        return garlic_error_set(err, GARLIC_EINVAL, "dense layers (%u) must leave a layer of %u",
                                p->n_dense_lead, p->n_layer);
    if (p->n_expert_groups &&
        (p->n_expert % p->n_expert_groups || !p->n_group_used ||
         p->n_group_used > p->n_expert_groups || p->n_expert_groups > 64))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "expert groups %u, used %u: the groups (at most 64) must divide "
                                "the %u experts, 1 <= used <= groups",
                                p->n_expert_groups, p->n_group_used, p->n_expert);
    if (!p->n_expert_groups && p->n_group_used)
        return garlic_error_set(err, GARLIC_EINVAL, "groups used needs --expert-groups");
    if (p->gating_func > 2)
        return garlic_error_set(err, GARLIC_EINVAL, "expert gating function %u: 1 or 2",
                                p->gating_func);
    if (strcmp(p->arch, "qwen2moe") == 0 && !p->ffn_shexp)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "qwen2moe needs a shared expert (--shared-ffn)");
    return GARLIC_OK;
}

static int check_params(const model_synth_params *p, garlic_error *err)
{
    const tensor_type_traits *t = tensor_type_get(p->type);
    static const char *const writable_archs[] = {"llama",     "qwen2",  "qwen3",     "qwen3moe",
                                                 "qwen2moe",  "gemma3", "phi3",      "gpt-oss",
                                                 "deepseek2", "bert",   "nomic-bert"};
    bool known = false;
    for (size_t i = 0; i < sizeof writable_archs / sizeof writable_archs[0]; i++)
        known |= strcmp(p->arch, writable_archs[i]) == 0;
    if (!known)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "arch '%s': expected llama, qwen2, qwen3, qwen3moe, qwen2moe, "
                                "gemma3, phi3, gpt-oss, deepseek2, bert or nomic-bert",
                                p->arch);
    int rc = check_arch_options(p, err);
    if (rc)
        return rc;
    bool encoder = model_arch_find(p->arch)->encoder;
    if (p->pooling > MODEL_POOLING_LAST)
        return garlic_error_set(err, GARLIC_EINVAL, "pooling %d: none, mean, cls or last",
                                p->pooling);
    if (encoder &&
        (p->n_expert || p->tied || p->n_head_kv != p->n_head ||
         (p->head_dim && p->head_dim * p->n_head != p->dim)))
        return garlic_error_set(err, GARLIC_EINVAL,
                                "%s has no experts, no output matrix to tie, as many KV heads "
                                "as heads and a head dim of dim / heads",
                                p->arch);
    bool moe_arch = strstr(p->arch, "moe") != NULL || strcmp(p->arch, "gpt-oss") == 0 ||
        strcmp(p->arch, "deepseek2") == 0;
    if (moe_arch && !p->n_expert)
        return garlic_error_set(err, GARLIC_EINVAL, "arch %s needs experts (--experts N)", p->arch);
    rc = check_expert_params(p, err);
    if (rc)
        return rc;
    if (!p->dim || !p->n_layer || !p->n_head || !p->n_head_kv || !p->ffn || !p->context)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "dim, layers, heads, kv heads, ffn and context must be > 0");
    if (p->n_head % p->n_head_kv)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "heads (%u) must be a multiple of kv heads (%u)", p->n_head,
                                p->n_head_kv);
    if (!p->head_dim && p->dim % p->n_head)
        return garlic_error_set(err, GARLIC_EINVAL, "dim (%u) must be a multiple of heads (%u)",
                                p->dim, p->n_head);
    rc = check_mla_params(p, err);
    if (rc)
        return rc;
    uint32_t head_dim = p->head_dim ? p->head_dim : p->dim / p->n_head;
    if (head_dim % 2)
        return garlic_error_set(err, GARLIC_EINVAL, "head dim must be even (RoPE rotates pairs)");
    if (p->rope_dims % 2 || p->rope_dims > head_dim)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "rope dims %u must be even and at most the head dim %u",
                                p->rope_dims, head_dim);
    if (!writable(p->type))
        return garlic_error_set(err, GARLIC_EUNSUPPORTED, "type %s: %s", t ? t->name : "?",
                                t && t->internal ? "garlic's own in-memory type, not a GGUF type"
                                                 : "garlic cannot quantize to it");
    const int32_t others[3] = {p->output_type, p->more_bits_type, p->expert_type};
    static const char *const which[3] = {"output", "more-bits", "expert"};
    for (int i = 0; i < 3; i++)
        if (others[i] >= 0 && !writable((uint32_t)others[i]))
            return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                    "%s type: not a GGUF type garlic quantizes to", which[i]);
    return GARLIC_OK;
}

// The architecture's hyper-parameters under "<arch>.<key>", as llama.cpp's converter names
// and writes them: the key and value lengths only when the head size is not dim / n_head;
// gemma3's sliding RoPE base always and its window when there is one; phi3's window (0 for
// none) and original context always, its LongRoPE attention factor with the factors;
// gpt-oss's window and experts' width always. YaRN writes its factor, original context and,
// as the converter does from a config that has them (gpt-oss, DeepSeek-V3), beta_fast 32 and
// beta_slow 1 (which llama.cpp and garlic take as given), and DeepSeek's log multiplier
// when given. DeepSeek's converter writes one KV head (MLA's latent), a K row of
// kv_lora_rank + RoPE dims and a V row of kv_lora_rank as the key and value lengths, the
// heads' own sizes as the _mla lengths, and always the expert width, shared count and
// leading dense layers. (It leaves out q_lora_rank for V2-Lite, whose 27 layers tell
// llama.cpp; synth writes 0.)
static int write_hparams(gguf_writer *w, const model_synth_params *p, uint32_t head_dim)
{
    const model_arch *arch = model_arch_find(p->arch);
    bool mla = arch->mla, moe = p->n_expert > 0;
    bool own_head = head_dim * p->n_head != p->dim, phi3 = strcmp(p->arch, "phi3") == 0;
    bool gpt_oss = strcmp(p->arch, "gpt-oss") == 0, yarn = p->rope_yarn > 0;
    float rope_factor = yarn ? p->rope_yarn : p->rope_linear;
    uint32_t kv = p->kv_lora_rank, rope = p->rope_dims ? p->rope_dims : head_dim;
    uint32_t orig = p->rope_orig_ctx ? p->rope_orig_ctx : p->context;
    // Phi-3's converter: sqrt(1 + ln(scale) / ln(original context)), scale = context / original.
    double scale = (double)p->context / orig;
    float attn_factor = scale > 1 ? (float)sqrt(1 + log(scale) / log((double)orig)) : 1.0f;
    const struct {
        const char *key;
        uint32_t u32; // written when f32 is 0
        float f32;
        bool skip;
    } keys[] = {
        {"context_length", p->context, 0, false},
        {"embedding_length", p->dim, 0, false},
        {"block_count", p->n_layer, 0, false},
        {"feed_forward_length", p->ffn, 0, false},
        {"attention.head_count", p->n_head, 0, false},
        {"attention.head_count_kv", mla ? 1 : p->n_head_kv, 0, false},
        {"rope.dimension_count", rope, 0, false},
        {"rope.freq_base", 0, p->rope_theta > 0 ? p->rope_theta : 10000.0f, false},
        {"rope.freq_base_swa", 0, p->rope_theta_swa > 0 ? p->rope_theta_swa : 10000.0f,
         !arch->swa_rope},
        {"rope.scaling.factor", 0, rope_factor, !(rope_factor > 0)},
        {"rope.scaling.original_context_length", orig, 0, !phi3 && !yarn},
        {"rope.scaling.yarn_beta_fast", 0, 32.0f, !yarn},
        {"rope.scaling.yarn_beta_slow", 0, 1.0f, !yarn},
        {"rope.scaling.attn_factor", 0, attn_factor, !p->longrope},
        {"rope.scaling.yarn_log_multiplier", 0, p->yarn_log_mul, p->yarn_log_mul == 0},
        {"attention.layer_norm_rms_epsilon", 0, p->rms_eps > 0 ? p->rms_eps : 1e-5f, arch->encoder},
        {"attention.key_length", mla ? kv + rope : head_dim, 0, !own_head && !mla},
        {"attention.value_length", mla ? kv : head_dim, 0, !own_head && !mla},
        {"attention.sliding_window", p->sliding_window, 0, !p->sliding_window && !phi3 && !gpt_oss},
        {"final_logit_softcapping", 0, p->final_softcap, !(p->final_softcap > 0)},
        {"attention.q_lora_rank", p->q_lora_rank, 0, !mla},
        {"attention.kv_lora_rank", kv, 0, !mla},
        {"attention.key_length_mla", head_dim, 0, !mla},
        {"attention.value_length_mla", p->v_head_dim ? p->v_head_dim : head_dim - rope, 0, !mla},
        {"expert_count", p->n_expert, 0, !moe},
        {"expert_used_count", p->n_expert_used, 0, !moe},
        {"expert_feed_forward_length", p->ffn_exp ? p->ffn_exp : p->ffn, 0,
         !moe || (!p->ffn_exp && !mla)},
        {"expert_shared_feed_forward_length", p->ffn_shexp, 0, !p->ffn_shexp},
        {"expert_shared_count", p->n_shared_experts, 0, !p->n_shared_experts && !mla},
        {"leading_dense_block_count", p->n_dense_lead, 0, !p->n_dense_lead && !mla},
        {"expert_group_count", p->n_expert_groups, 0, !p->n_expert_groups},
        {"expert_group_used_count", p->n_group_used, 0, !p->n_expert_groups},
        {"expert_gating_func", p->gating_func, 0, !p->gating_func},
        {"expert_weights_scale", 0, p->expert_scale, p->expert_scale == 0},
    };
    int r = gguf_writer_set_str(w, "general.architecture", p->arch);
    r = r ? r : gguf_writer_set_str(w, "general.name", p->name ? p->name : "garlic-synth");
    for (size_t i = 0; r == 0 && i < sizeof keys / sizeof keys[0]; i++) {
        char key[96];
        snprintf(key, sizeof key, "%s.%s", p->arch, keys[i].key);
        if (!keys[i].skip)
            r = keys[i].f32 != 0 ? gguf_writer_set_f32(w, key, keys[i].f32)
                                 : gguf_writer_set_u32(w, key, keys[i].u32);
    }
    char key[96];
    snprintf(key, sizeof key, "%s.rope.scaling.type", p->arch);
    if (r == 0 && rope_factor > 0)
        r = gguf_writer_set_str(w, key, yarn ? "yarn" : "linear");
    snprintf(key, sizeof key, "%s.expert_weights_norm", p->arch);
    if (r == 0 && p->expert_norm)
        r = gguf_writer_set_bool(w, key, true);
    // Encoders: LayerNorm's epsilon, attention over the whole input, and always a pooling.
    int32_t pooling = p->pooling >= 0 ? p->pooling : arch->encoder ? MODEL_POOLING_MEAN : -1;
    snprintf(key, sizeof key, "%s.pooling_type", p->arch);
    if (r == 0 && pooling >= 0)
        r = gguf_writer_set_u32(w, key, (uint32_t)pooling);
    snprintf(key, sizeof key, "%s.attention.layer_norm_epsilon", p->arch);
    if (r == 0 && arch->encoder)
        r = gguf_writer_set_f32(w, key, p->rms_eps > 0 ? p->rms_eps : 1e-12f);
    snprintf(key, sizeof key, "%s.attention.causal", p->arch);
    if (r == 0 && arch->encoder)
        r = gguf_writer_set_bool(w, key, false);
    return r;
}

int model_synth_write(const model_synth_params *params, const char *path, garlic_error *err)
{
    int rc = check_params(params, err);
    if (rc)
        return rc;
    model_synth_params p = *params;
    if (!p.head_dim)
        p.head_dim = p.dim / p.n_head;
    // gpt-oss's converter always writes the experts' width and the window (llama.cpp needs
    // both): the width is --ffn's unless given, the window gpt-oss's 128.
    if (strcmp(p.arch, "gpt-oss") == 0) {
        p.ffn_exp = p.ffn_exp ? p.ffn_exp : p.ffn;
        p.sliding_window = p.sliding_window ? p.sliding_window : 128;
    }
    gguf_writer *w = gguf_writer_new();
    synth_state st = {.p = &p};
    size_t max_tensors = 5 + (size_t)p.n_layer * 32;
    st.tensors = garlic_calloc(max_tensors, sizeof *st.tensors);
    if (!w || !st.tensors) {
        rc = garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
        goto done;
    }
    rc = write_hparams(w, &p, p.head_dim);
    if (rc) {
        garlic_error_set(err, rc, "out of memory");
        goto done;
    }
    bool encoder = model_arch_find(p.arch)->encoder;
    rc = p.tokenizer_path ? copy_tokenizer(w, p.tokenizer_path, &p.vocab, err)
        : encoder         ? write_wordpiece_vocab(w, p.vocab, err)
                          : write_builtin_vocab(w, p.vocab, err);
    if (rc == GARLIC_OK && encoder && p.tokenizer_path &&
        (rc = gguf_writer_set_u32(w, "tokenizer.ggml.token_type_count", 2)))
        garlic_error_set(err, rc, "out of memory");
    if (rc)
        goto done;
    if (model_arch_find(p.arch)->mla) { // DeepSeek's converter writes the vocabulary's size
        char key[96];
        snprintf(key, sizeof key, "%s.vocab_size", p.arch);
        if ((rc = gguf_writer_set_u32(w, key, p.vocab))) {
            garlic_error_set(err, rc, "out of memory");
            goto done;
        }
    }
    rc = add(w, &st, "token_embd.weight", INIT_MATRIX, p.type, p.dim, p.vocab, err);
    uint32_t half = (p.rope_dims ? p.rope_dims : p.head_dim) / 2;
    if (rc == GARLIC_OK && p.longrope)
        rc = add(w, &st, "rope_factors_long.weight", INIT_ROPE_LONG, 0, half, 1, err);
    if (rc == GARLIC_OK && p.longrope)
        rc = add(w, &st, "rope_factors_short.weight", INIT_ROPE_SHORT, 0, half, 1, err);
    if (encoder) { // token types and learned positions stay F32, as the converter writes them
        rc = rc ? rc : add(w, &st, "token_types.weight", INIT_MATRIX, 0, p.dim, 2, err);
        if (rc == GARLIC_OK && model_arch_find(p.arch)->pos_embd)
            rc = add(w, &st, "position_embd.weight", INIT_MATRIX, 0, p.dim, p.context, err);
        rc = rc ? rc : add(w, &st, "token_embd_norm.weight", INIT_NORM, 0, p.dim, 1, err);
        rc = rc ? rc : add(w, &st, "token_embd_norm.bias", INIT_BIAS, 0, p.dim, 1, err);
    }
    for (uint32_t l = 0; l < p.n_layer && rc == GARLIC_OK; l++)
        rc = encoder ? add_encoder_layer(w, &st, l, err) : add_layer(w, &st, l, err);
    if (rc == GARLIC_OK && !encoder)
        rc = add(w, &st, "output_norm.weight", INIT_NORM, 0, p.dim, 1, err);
    if (rc == GARLIC_OK && !p.tied && !encoder)
        rc = add(w, &st, "output.weight", INIT_MATRIX,
                 p.output_type >= 0 ? (uint32_t)p.output_type : p.type, p.dim, p.vocab, err);
    for (size_t i = 0; i < st.n_tensors; i++) {
        const synth_tensor *t = &st.tensors[i];
        uint64_t row_bytes = 0;
        st.row_cap = t->ne0 > st.row_cap ? t->ne0 : st.row_cap;
        if (tensor_row_size(t->type, t->ne0, &row_bytes))
            st.bytes_total += row_bytes * t->ne1 * t->ne2; // the writer checked these sizes
    }
    // Every online CPU: synthesis is throughput work with nothing else to share the CPU with.
    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int threads = online > 0 && online < 256 ? (int)online : 1;
    if (rc == GARLIC_OK && !(st.pool = thread_pool_new(threads, err)))
        rc = err ? err->code : GARLIC_ENOMEM;
    if (rc == GARLIC_OK && !(st.rows = garlic_calloc((size_t)threads * st.row_cap, sizeof(float))))
        rc = garlic_error_set(err, GARLIC_ENOMEM, "out of memory");
    if (rc == GARLIC_OK)
        rc = gguf_writer_write(w, path, fill_tensor, &st, err);
done:
    thread_pool_free(st.pool);
    garlic_free(st.rows);
    garlic_free(st.tensors);
    gguf_writer_free(w);
    return rc;
}
