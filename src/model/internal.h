// SPDX-License-Identifier: MIT
// What the files of the forward pass share: the run state and the helpers that the
// attention (forward.c) and the experts (moe.c) both use. Not for callers outside model/.
#ifndef GARLIC_MODEL_INTERNAL_H
#define GARLIC_MODEL_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "backend/backend.h"
#include "model/model.h"

// The activation buffers one backend computes layers in (its memory: host for the CPU,
// device for a device backend), each sized as the state's (model_state).
typedef struct model_exec {
    backend *be;
    float *x, *xb, *q, *k, *v, *hb, *hb2;
    float *logits; // (logit_rows, n_vocab): the device's when it computes the output
} model_exec;

// One product of a batch of products over the matrices of 3-D weights (experts, heads):
// y (n_act rows, ldy floats apart) = matrix `mat` of w times n_act converted activation rows
// (contiguous, kernel_act_row_size(w) bytes each).
typedef struct model_mat_item {
    const model_tensor *w;
    uint32_t mat;
    const uint8_t *act;
    uint32_t n_act;
    float *y;
    uint64_t ldy;
} model_mat_item;

// The experts' scratch (see moe.c): S = max_batch * n_expert_used routing slots.
typedef struct model_moe_scratch {
    float *logits;         // (max_batch, n_expert) router logits, then scores
    float *sel;            // (n_expert) one token's selection scores
    uint32_t *chosen;      // (S) expert of each (token, k)
    float *weight;         // (S) its weight
    uint32_t *slot_of;     // (S) the expert-ordered slot of each (token, k)
    uint32_t *token;       // (S) the token of each expert-ordered slot
    uint32_t *first;       // (n_expert + 1) each expert's first slot
    uint8_t *act_gate;     // (S, act stride) the slots' inputs converted for the gate
    uint8_t *act_up;       // (S, act stride) ... for the up matrix, when its format differs
    float *gate, *up;      // (S, ffn_exp)
    uint8_t *act_down;     // (S, act stride) the activations converted for the down matrix
    float *down;           // (S, dim)
    model_mat_item *items; // (2 * n_expert) matrix products of one phase
} model_moe_scratch;

enum { MAX_GROUP = 3 }; // matrices that share one input (q, k, v)
// Multiply-adds below which a job runs on the calling thread alone: waking the pool and
// waiting at its barrier costs a few microseconds, as much as this much work.
enum { INLINE_WORK = 1 << 17 };
// Attention (forward.c's attention_worker): K and V rows are converted and multiplied
// ATT_ROWS positions at a time, the online softmax goes over chunks of ATT_CHUNK positions,
// and a work item takes up to ATT_TILE query rows (a run of tokens times a group's heads).
// An F16 cache's V rows are read as they lie by runs of fewer than ATT_CONVERT_RUN tokens and
// converted to floats once for longer ones.
enum { ATT_ROWS = 16, ATT_CHUNK = 64, ATT_TILE = 128, ATT_CONVERT_RUN = 4 };

// One thread's attention tile: its query rows (floats; the float path), one chunk's scores
// (then weights) per row, the rows' outputs so far, running maxima and sums.
typedef struct att_tile {
    float *q;     // (rows, head_dim_k)
    float *score; // (rows, ATT_CHUNK)
    float *o;     // (rows, head_dim_v)
    float *max;   // (rows)
    float *sum;   // (rows)
} att_tile;

// Weight rows a chunk is a multiple of (every kernel's register tile divides it), and the
// chunks a thread takes on average. Threads take chunks in turn, so one that finishes early
// (its core was not preempted, its rows were in cache) does the work another has not reached
// instead of waiting for it at the barrier. A decoding step takes DECODE_CHUNKS a thread; a
// batch of many rows, whose kernels prepare the activations again for every call, only
// BATCH_CHUNKS.
enum { CHUNK_ALIGN = 16, DECODE_CHUNKS = 8, BATCH_CHUNKS = 2, DECODE_ROWS = 8 };

struct model_state {
    const model *m;
    uint32_t n_ctx, max_batch, logit_rows;
    thread_pool *pool;
    bool own_pool;  // started here (else borrowed)
    uint64_t bytes; // the scratch allocated below
    // Scratch, one block of memory carved as listed in scratch_layout.
    void *scratch;
    float *x;   // (max_batch, dim) the residual stream
    float *xb;  // (max_batch, max(dim, n_head * head_dim_v, MLA's below)) normed input /
                // attention out
    float *q;   // (max_batch, n_head * head_dim_k)
    float *k;   // (max_batch, n_head_kv * head_dim_k)
    float *v;   // (max_batch, n_head_kv * head_dim_v); none under MLA (values in the K row)
    float *hb;  // (max_batch, max(ffn, dim)) gate / attention projection
    float *hb2; // (max_batch, ffn) up
    // Multi-head latent attention (mla.c; empty otherwise). Its per-head products convert
    // their inputs into buffers free at that point: xb (the queries' no-RoPE parts, which is
    // why xb is at least n_head * (head_dim_k_mla - n_rot) wide) and q (the latent outputs,
    // which fit: a converted row never exceeds its floats).
    float *q_lora;              // (max_batch, q_lora_rank) the queries' low-rank step
    float *q_head;              // (max_batch, n_head * max(head_dim_k_mla, head_dim_v_mla))
                                // the heads' queries, then their values
    model_mat_item *head_items; // (n_head) one product per head
    float *logits;              // (logit_rows, n_vocab)
    float *att;                 // (n_threads, an att_tile) attention tiles
    float *kv_row;              // (n_threads, ATT_CHUNK, max K/V row) cache rows as floats
    uint8_t *att_q;             // (n_threads, tile rows, head_dim_k / 32 Q8_0 blocks) queries
                                // converted for a Q8_0 cache's int8 product
    uint32_t *att_runs;         // (max_batch + 1) the first token of each run of attention
    float *gather;              // (n_threads, gather_stride) an input row in a matrix's column
                                // order (model_tensor.perm)
    uint64_t gather_stride;
    float *tp_parts;            // (max_batch, max(hp.tp_gather_width, dim)) tensor
                                // parallelism: the ranks' parts of a product split by output
                                // rows, part after part (model_tp_split), or NULL
    uint8_t *act[MAX_GROUP];    // (max_batch, act row bytes) converted activations
    size_t act_stride;          // bytes of the widest activation row (act[] holds max_batch)
    float *rope_cos, *rope_sin; // (rope tables, max_batch, n_rot / 2): the model's RoPE, and
                                // the sliding layers' own when hp.swa_rope
    uint32_t *pos;              // (max_batch) positions (model_forward's batch)
    uint32_t *seq;              // (max_batch) sequence indices, all 0 (model_forward's batch)
    uint32_t *out;              // (max_batch) logit rows (model_forward's batch)
    const float *rope_freqs;    // (n_rot / 2) the divisors of this state's context: the
                                // model's rope_freqs, or LongRoPE's long or short ones; or NULL
    uint8_t *moe_base;          // the experts' scratch, carved into moe
    model_moe_scratch moe;      // the experts' buffers (moe.c); empty for dense models
    // The batch being computed (set for the duration of a forward call) and the arrays of
    // the flat batch model_flatten_batch builds (grown when a batch's tables need more).
    const model_flat_batch *fb;
    kv_cache *kv;
    uint32_t *flat;    // n_pos, table starts, tables: a scratch slot, or a buffer of its own
    size_t flat_cap;   // uint32_t entries in flat
    bool flat_owned;   // flat was allocated for a batch that outgrew the slot
    uint64_t flat_max; // entries of flat the state may grow to (bounded by n_ctx and batch)
    // Backends: the CPU's (over the buffers above) and the device's, which runs layers
    // [0, device_layers) (and the output when it runs them all) in its own buffers.
    backend *cpu_be;
    model_exec host, dev;
    backend *device;
    uint32_t device_layers;
    bool device_output;
    backend_batch bb; // the call's positions, as the backends read them
};

// The CPU backend over a state's buffers and pool (backend/cpu.c).
backend *model_cpu_backend_new(model_state *s, garlic_error *err);

// Binds a stand-in (backend_cpu_standin_new) to the state whose device it becomes; false
// for any other backend, or one bound already.
bool model_cpu_backend_bind(backend *be, model_state *s);

// The CPU's attention of layer a->layer over the running batch: stores (kv_store) or
// attends (attention) as backend.h says, reading tables from s->fb.
void model_cpu_kv_store(model_state *s, const backend_attention *a, const float *k, const float *v);
void model_cpu_attention(model_state *s, const backend_attention *a, const float *q, float *out);

// RoPE of table `table` over n_heads heads of head_dim values of each of the batch's rows.
void model_cpu_rope(model_state *s, float *x, uint32_t n_heads, uint32_t head_dim, uint32_t n_rot,
                    bool neox, uint32_t table);

// y = w * in (+ bias): n_tok rows of in (in_stride floats apart) into rows of y (ldy apart),
// on the state's pool.
void model_matmul(model_state *s, const model_tensor *w, const float *in, uint64_t in_stride,
                  uint32_t n_tok, float *y, uint64_t ldy);

// One matrix product of a group: y (rows of ldy floats) = w * input, + bias when present.
typedef struct model_matmul_item {
    const model_tensor *w;
    float *y;
    uint64_t ldy;
    const float *bias; // (w->n_out) or NULL
} model_matmul_item;

// Computes y_i = w_i * in (+ bias_i) for up to MAX_GROUP matrices sharing the input rows.
// Matrices whose weight types convert activations the same way share one conversion.
void model_matmul_group(model_state *s, const float *in, uint64_t in_stride, uint32_t n_tok,
                        const model_matmul_item *items, int n_items);

// Runs the products of items (inputs already converted) on the pool, inline when small, in
// chunks of rows across the matrices; decode: few activation rows a matrix (smaller chunks).
void model_matmul_mats(model_state *s, const model_mat_item *items, int n_items, bool decode);

// Rotates the first n_rot values of each of n_heads heads (head_stride apart) of one token by
// the angles of cos_t, sin_t (n_rot / 2 each): pairs (x[i], x[i + n_rot/2]) when neox, else
// adjacent pairs.
void model_rope_apply(float *x, uint32_t n_heads, uint32_t head_stride, uint32_t n_rot, bool neox,
                      const float *cos_t, const float *sin_t);

// out = x / sqrt(mean(x^2) + eps) * weight, over n values (sum in double).
void model_rmsnorm(float *out, const float *x, const float *weight, uint64_t n, float eps);

// model_rmsnorm of each of rows rows of dim values (out may be x), and x[i] += y[i] for
// i < n: on the state's pool when the batch is large.
void model_cpu_rmsnorm(model_state *s, float *out, const float *x, const float *weight,
                       uint32_t rows, uint32_t dim, float eps);
void model_cpu_add(model_state *s, float *x, const float *y, size_t n);

// out = (x - mean(x)) / sqrt(var(x) + eps) * weight + bias over n values (sums in double, as
// ggml's norm): the encoders' LayerNorm. out may be x.
void model_layernorm(float *out, const float *x, const float *weight, const float *bias, uint64_t n,
                     float eps);

// The gated feed-forward network over the batch's normed rows in xb, into xb:
// down * (act(gate * xb) * (up * xb)), through hb and hb2 (gate->n_out wide).
void model_gated_ffn(model_state *s, const model_tensor *gate, const model_tensor *up,
                     const model_tensor *down, uint32_t n_tok);

// gate[i] = act(gate[i]) * up[i] for i < n, on the state's pool when n is large; up NULL:
// gate[i] = GELU(gate[i]) (an ungated FFN).
void model_gated_act(model_state *s, model_act act, float *gate, const float *up, size_t n);

// Scratch bytes the experts need for cfg (0 for a dense model), and the carving of them
// from p into moe (both NULL: sizes only). Returns the bytes.
uint64_t model_moe_scratch_layout(const model_hparams *hp, uint32_t max_batch, size_t act_stride,
                                  model_moe_scratch *moe, uint8_t *p);

// Multi-head latent attention, layer l, before the attention proper: s->xb holds the normed
// input rows. Leaves in s->q each head's absorbed query (its no-RoPE part through attn_k_b
// into the latent, then its RoPE part) and in s->k the K row (normed latent, RoPE key).
void model_mla_qk(model_state *s, uint32_t l, uint32_t n_tok);

// After the attention proper: s->xb holds each head's output in the latent; each goes
// through its attn_v_b into s->q_head (n_tok rows of n_head * head_dim_v_mla), wo's input.
void model_mla_values(model_state *s, uint32_t l, uint32_t n_tok);

// The experts of layer l over the batch: s->xb holds the normed input rows, and then the
// weighted sum of the chosen experts (and the shared expert): under tensor parallelism the
// rank's part of it (its part of each expert's width).
void model_moe_block(model_state *s, uint32_t l, uint32_t n_tok);

#endif
