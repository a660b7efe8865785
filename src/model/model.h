// SPDX-License-Identifier: MIT
// A loaded transformer: hyper-parameters, weights (pointers into the GGUF mapping, never
// copied) and the forward pass over a batch of tokens. The architecture specifics (RoPE
// style, optional biases and norms) come from one table in arch.c; the forward pass reads
// them as data. The run state holds every scratch buffer, sized once at creation, so decoding
// allocates nothing per token; keys and values live in a paged KV pool (kvcache/) that the
// caller owns (the engine's, for generation).
#ifndef GARLIC_MODEL_H
#define GARLIC_MODEL_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "base/threadpool.h"
#include "gguf/gguf.h"
#include "kvcache/kvcache.h"

// How a mixture-of-experts layer turns its router's logits into experts and weights.
typedef enum model_router {
    MODEL_ROUTER_SOFTMAX,      // softmax over every expert, then the top k (Mixtral, Qwen)
    MODEL_ROUTER_TOPK_SOFTMAX, // the top k logits, then softmax over those (gpt-oss)
    MODEL_ROUTER_SIGMOID,      // sigmoid scores; the expert bias steers the choice only, and
                               // groups of experts are chosen first (DeepSeek-V3)
    MODEL_ROUTER_COUNT
} model_router;

// The gated activation of the feed-forward networks: act(gate) * up.
typedef enum model_act {
    MODEL_ACT_SILU,       // SwiGLU: silu(gate) * up
    MODEL_ACT_GELU,       // GeGLU, GELU with the tanh approximation, in F16 steps as ggml
                          // computes it (Gemma)
    MODEL_ACT_SWIGLU_OAI, // gpt-oss: gate clamped above at 7, up to [-7, 7],
                          // gate * sigmoid(1.702 gate) * (up + 1)
    MODEL_ACT_COUNT
} model_act;

// What differs between architectures. One row per architecture in arch.c; the loader and
// the forward pass read these as data.
typedef struct model_arch {
    const char *name; // general.architecture
    bool rope_neox;   // rotate (x[i], x[i + n_rot/2]) instead of adjacent pairs
    bool qkv_bias;    // attn_{q,k,v}.bias are expected (loaded when present in any case)
    bool qk_norm;     // per-head RMSNorm of Q and K (attn_{q,k}_norm) before RoPE
    model_act act;    // the FFN's (and the experts') activation
    // Mixture of experts, in layers that have a router (ffn_gate_inp).
    model_router router;
    bool expert_norm;   // renormalize the chosen experts' weights to sum 1, unless the file's
                        // expert_weights_norm says otherwise
    bool shared_gate;   // the shared expert's output is scaled by sigmoid(ffn_gate_inp_shexp . x)
    bool expert_biases; // ffn_{gate,up,down}_exps.bias are expected
    // Multi-head latent attention (DeepSeek-V2/V3, Kimi-K2): the queries come from attn_q or
    // the low-rank attn_q_a -> attn_q_a_norm -> attn_q_b; attn_kv_a_mqa gives one latent row
    // and one RoPE key per position, which is all the cache holds; each head reads the
    // latent through its attn_k_b (absorbed into its query) and attn_v_b (after attention).
    bool mla;
    bool yarn_attn_scale; // the attention scale is mscale^2 / sqrt(key head), mscale being
                          // YaRN's magnitude with rope.scaling.yarn_log_multiplier (DeepSeek)
    // Gemma.
    bool embd_scale; // the token embedding is multiplied by sqrt(dim)
    bool post_norms; // each block's output is RMS-normed (post_attention_norm, post_ffw_norm)
                     // before it is added to the residual stream
    uint32_t wide_query_layers; // a model of exactly this many layers scales its queries by
                                // 1 / sqrt(dim / n_head) instead of 1 / sqrt(head_dim)
                                // (Gemma 3 27B's query_pre_attn_scalar; 0: none)
    // Sliding-window attention (hparams.n_swa, from attention.sliding_window).
    bool sliding_window; // the file's window applies, to the layers swa_period picks
    uint32_t swa_period; // layer l slides unless l % period == period - 1 (Gemma 3: 6, five
                         // sliding layers then a global one); 0: every layer slides. The
                         // file's attention.sliding_window_pattern overrides it
    bool swa_rope;       // sliding layers rotate with rope.freq_base_swa (default 10000) and
                         // no scaling; global layers with the model's RoPE
    // How the converter lays out tensors (the loader takes attn_qkv or attn_q/k/v for any
    // architecture; fused_qkv says which one garlic synth writes).
    bool fused_qkv; // attn_qkv: the Q, K and V rows in one matrix (Phi-3)
    bool fused_up;  // ffn_up holds the gate rows then the up rows (2 x ffn), no ffn_gate (Phi-3)
    // gpt-oss (each tensor is loaded when present in any architecture).
    bool o_bias;            // attn_output.bias is expected
    bool attn_sinks;        // attn_sinks (n_head) is expected: one learned logit per head that
                            // joins every softmax's denominator (and attends to nothing)
    bool router_logit_bias; // ffn_gate_inp.bias is expected: added to the router's logits
                            // before the choice and the weights (unlike exp_probs_b)
    const char *ffn_norm;   // the FFN's input norm, when not "ffn_norm.weight"
    // Encoders (BERT family): the embedding sums token_embd, token_types' row 0 (and
    // position_embd when pos_embd) and is LayerNormed by token_embd_norm; each block is
    // post-norm (x = LayerNorm(x + attention(x)) by attn_output_norm, then x = LayerNorm(x +
    // ffn(x)) by layer_output_norm), attention sees every position of the input (not
    // causal), and there is no output norm or output matrix: the model makes embeddings only.
    bool encoder;
    bool pos_embd;    // learned absolute positions (position_embd) and no RoPE (BERT)
    bool ffn_ungated; // the FFN is down * act(up * x + b_up) + b_down (BERT's GELU), no gate
} model_arch;

// How an embedding is pooled from the hidden states of an input's tokens: the GGUF key
// <arch>.pooling_type's codes.
typedef enum model_pooling {
    MODEL_POOLING_NONE = 0, // one vector per token (garlic pools none: refused for requests)
    MODEL_POOLING_MEAN = 1, // the mean of every token's final hidden state
    MODEL_POOLING_CLS = 2,  // the first token's ([CLS])
    MODEL_POOLING_LAST = 3, // the last token's (decoder embedding models, Qwen3-Embedding)
    MODEL_POOLING_RANK = 4, // a reranker's classifier head (not supported)
    MODEL_POOLING_COUNT
} model_pooling;

// The pooling's name ("mean", "cls", ...), for messages and `garlic show`.
const char *model_pooling_name(model_pooling p);

// Whether layer l slides (has a window) under a sliding-window period (model_arch.swa_period):
// period 0 slides every layer, else every period-th layer (l % period == period - 1) is
// global, the others slide.
static inline bool model_layer_slides(uint64_t period, uint64_t l)
{
    return period == 0 || l % period < period - 1;
}

// The architecture row for name, or NULL.
const model_arch *model_arch_find(const char *name);

// The names of every architecture garlic runs, ", "-separated, for messages.
const char *model_arch_names(void);

enum {
    MODEL_MAX_EXPERTS = 1024,   // experts of one layer
    MODEL_MAX_EXPERTS_USED = 64 // experts one token runs
};

typedef enum model_rope_scaling {
    MODEL_ROPE_SCALING_NONE,
    MODEL_ROPE_SCALING_LINEAR,
    MODEL_ROPE_SCALING_YARN,
    MODEL_ROPE_SCALING_COUNT
} model_rope_scaling;

typedef struct model_hparams {
    uint32_t n_vocab;
    uint32_t n_ctx_train; // trained context length
    uint32_t dim;         // embedding length
    uint32_t n_layer;
    uint32_t n_head;
    uint32_t n_head_kv;
    uint32_t head_dim_k; // attention.key_length (default dim / n_head)
    uint32_t head_dim_v; // attention.value_length
    uint32_t ffn;        // feed-forward width
    uint32_t n_rot;      // rope.dimension_count (default head_dim_k)
    float rope_base;     // rope.freq_base
    model_rope_scaling rope_scaling;
    float rope_factor;       // rope.scaling.factor (1 when none)
    uint32_t rope_ctx_orig;  // rope.scaling.original_context_length (default n_ctx_train): YaRN's
                             // original context; LongRoPE's long factors apply beyond it
    uint32_t n_swa;          // attention.sliding_window: the window of the layers that have
                             // one (which ones is the architecture's pattern), 0: none
    uint32_t swa_period;     // the sliding layers' pattern (model_arch.swa_period)
    bool swa_rope;           // the sliding layers rotate with a RoPE of their own (a second
                             // table: base rope_base_swa, unscaled)
    float rope_base_swa;     // rope.freq_base_swa: the sliding layers' base when the
                             // architecture gives them their own RoPE (default 10000)
    float rope_attn_factor;  // rope.scaling.attn_factor (default 1): scales cos and sin, so
                             // attention logits by its square (YaRN, LongRoPE)
    float rope_yarn_log_mul; // rope.scaling.yarn_log_multiplier / 0.1 (DeepSeek's
                             // mscale_all_dim), 0 when absent
    float rope_mscale;       // the magnitude the model's RoPE table carries in cos and sin:
                             // rope_attn_factor, times YaRN's correction (see load.c)
    float attn_scale;        // the factor of q . k before the softmax: attention.scale, else
                             // 1 / sqrt(the key head: head_dim_k, head_dim_k_mla under MLA)
                             // or the architecture's (Gemma 3 27B, DeepSeek's YaRN mscale^2)
    float final_softcap;     // final_logit_softcapping: logits = c * tanh(logits / c), 0: none
    float rms_eps;
    float norm_eps; // attention.layer_norm_epsilon: the LayerNorms' epsilon (encoders)
    // Embeddings.
    bool causal;            // attention.causal (default: true unless the architecture is an
                            // encoder): a token attends to positions up to its own only
    model_pooling pooling;  // pooling_type, or the default when the file has none (encoders:
                            // mean; decoders: last, the only pooling a causal model's last
                            // state summarizes)
    bool pooling_in_file;   // the file gave pooling_type
    uint32_t n_token_types; // rows of token_types (encoders; 0: none)
    // Multi-head latent attention (arch->mla; kv_lora_rank 0 otherwise). The cache holds
    // one KV head of head_dim_k = kv_lora_rank + n_rot values a position (the normed latent,
    // then the RoPE key) and no V rows: the values are the latent, head_dim_v = kv_lora_rank.
    uint32_t q_lora_rank;    // attention.q_lora_rank: the queries' low rank (0: attn_q)
    uint32_t kv_lora_rank;   // attention.kv_lora_rank: the latent's width
    uint32_t head_dim_k_mla; // attention.key_length_mla: a head's query, no-RoPE part first
    uint32_t head_dim_v_mla; // attention.value_length_mla: a head's value after attn_v_b
    // Mixture of experts (n_expert 0: every layer is dense).
    uint32_t n_expert;        // expert_count
    uint32_t n_expert_used;   // expert_used_count: experts each token runs
    uint32_t ffn_exp;         // expert_feed_forward_length (default ffn / n_expert_used)
    uint32_t ffn_shexp;       // the shared expert's width (0: none)
    uint32_t n_dense_lead;    // leading_dense_block_count: first layers without experts
    uint32_t n_expert_groups; // expert_group_count (DeepSeek-V3; 0 or 1: no groups)
    uint32_t n_group_used;    // expert_group_used_count
    bool expert_norm;         // renormalize the chosen weights
    float expert_scale;       // expert_weights_scale (1 when absent)
    model_router router;
    // Tensor parallelism (shard.c; 0 in a whole model): the widest whole input a product
    // split by output rows gathers (the whole model's n_head * head_dim_v or ffn), which
    // the scratch buffers then hold.
    uint32_t tp_gather_width;
} model_hparams;

typedef struct model_tensor {
    const void *data;    // rows of n_in values, contiguous, inside the mapping (or packed)
    uint32_t type;       // tensor_type
    uint64_t n_in;       // ne[0]: values per row
    uint64_t n_out;      // ne[1]: rows
    uint64_t n_mat;      // ne[2]: matrices (experts) one after another; 1 for a plain matrix
    uint64_t mat_bytes;  // bytes of one matrix (n_out rows)
    bool packed;         // data is in the kernels' packed layout (kernel_pack_rows)
    const int32_t *perm; // (n_in) column j of the rows holds input perm[j] (a folder's
                         // act-order GPTQ matrices, "<name>.perm"), or NULL: in order
    const void *src;     // packed: the rows in the file's layout (in the mapping), which a
                         // device backend uploads; else NULL (data is that layout)
} model_tensor;

// How tensor parallelism splits a matrix that reads the ranks' parts of a vector (the
// attention output of their heads, their part of the FFN's width): wo and w_down (shard.c).
typedef enum model_tp_split {
    // By input columns (each rank the columns of its part, whole quant blocks): each rank's
    // product is a partial sum of the whole output, which the ranks add (an all-reduce).
    MODEL_TP_BY_INPUT,
    // By output rows (rank r rows [r * n_out / T, (r + 1) * n_out / T)), where a rank's
    // columns would not be whole blocks: the ranks' parts of the input are gathered whole on
    // every rank, each computes its rows, and the rows are gathered (one process's numbers).
    MODEL_TP_BY_OUTPUT,
    MODEL_TP_SPLIT_COUNT
} model_tp_split;

typedef struct model_layer {
    uint32_t window;        // sliding-window attention over this many positions, 0: all
    uint32_t rope;          // the RoPE table of its queries and keys: 0 the model's, 1 the
                            // sliding layers' own (model_arch.swa_rope)
    uint8_t tp_wo, tp_down; // model_tp_split of wo and w_down under tensor parallelism
    model_tensor attn_norm; // (dim) F32
    // Multi-head latent attention (arch->mla): the queries come from wq (dim -> n_head *
    // head_dim_k_mla; V2-Lite) or from these three; wk, wv and the biases are absent, and wo
    // reads n_head * head_dim_v_mla values.
    model_tensor wq_a;      // (dim -> q_lora_rank) attn_q_a
    model_tensor q_a_norm;  // (q_lora_rank) attn_q_a_norm
    model_tensor wq_b;      // (q_lora_rank -> n_head * head_dim_k_mla) attn_q_b
    model_tensor wkv_a;     // (dim -> kv_lora_rank + n_rot) attn_kv_a_mqa: latent, RoPE key
    model_tensor kv_a_norm; // (kv_lora_rank) attn_kv_a_norm of the latent
    model_tensor wk_b;      // n_head matrices (head_dim_k_mla - n_rot -> kv_lora_rank): a head's
                            // no-RoPE query into the latent (attn_k_b)
    model_tensor wv_b;      // n_head matrices (kv_lora_rank -> head_dim_v_mla): a head's value
                            // out of the latent (attn_v_b)
    // A fused attn_qkv is bound as three views of its rows (Q, then K, then V), so every
    // step reads wq, wk and wv alike.
    model_tensor wq, wk, wv,
        wo;                  // (dim -> n_head*hd_k), (dim -> n_kv*hd_k), ..., (n_head*hd_v -> dim)
    model_tensor bq, bk, bv; // optional biases; data NULL when absent
    model_tensor bo;         // (dim) attn_output.bias, or absent
    model_tensor sinks;      // (n_head) attn_sinks: each head's extra softmax logit, or absent
    model_tensor q_norm, k_norm;       // optional (head_dim_k) per-head norms
    model_tensor attn_post_norm;       // (dim) the attention output's norm (post_norms), or absent
    model_tensor ffn_norm;             // (dim) ffn_norm (gpt-oss: post_attention_norm)
    model_tensor w_gate, w_up, w_down; // (dim -> ffn), (dim -> ffn), (ffn -> dim); dense layers
                                       // (a fused ffn_up is bound as two views: gate, up)
    model_tensor ffn_post_norm;        // (dim) the feed-forward output's norm, or absent
    // Encoders' post-norms (LayerNorm: weight and bias) and FFN biases (absent otherwise).
    model_tensor attn_out_norm, attn_out_norm_b;   // (dim) attn_output_norm
    model_tensor layer_out_norm, layer_out_norm_b; // (dim) layer_output_norm
    model_tensor b_up, b_down;                     // (ffn), (dim) ffn_up.bias, ffn_down.bias
    // Mixture of experts (router.data NULL in dense layers).
    model_tensor router;                           // ffn_gate_inp (dim -> n_expert)
    model_tensor router_bias;                      // exp_probs_b (n_expert), steers the choice
    model_tensor router_logit_bias;                // ffn_gate_inp.bias (n_expert), or absent
    model_tensor exp_gate, exp_up, exp_down;       // n_expert matrices each, as w_gate...
    model_tensor exp_gate_b, exp_up_b, exp_down_b; // (ffn_exp or dim, n_expert) or absent
    model_tensor sh_gate, sh_up, sh_down;          // the shared expert, or absent
    model_tensor sh_router;                        // ffn_gate_inp_shexp (dim), or absent
} model_layer;

// The addresses of every weight matrix a layer may have (absent ones have data NULL), as an
// initializer: `model_tensor *ws[] = MODEL_LAYER_MATRICES(L);` for the walks over them (packing,
// activation sizes), so that a new matrix is added in one place.
#define MODEL_LAYER_MATRICES(L)                                                                    \
    {                                                                                              \
        &(L)->wq, &(L)->wk, &(L)->wv, &(L)->wo, &(L)->wq_a, &(L)->wq_b, &(L)->wkv_a, &(L)->wk_b,   \
            &(L)->wv_b, &(L)->w_gate, &(L)->w_up, &(L)->w_down, &(L)->router, &(L)->exp_gate,      \
            &(L)->exp_up, &(L)->exp_down, &(L)->sh_gate, &(L)->sh_up, &(L)->sh_down                \
    }

// A part of a tensor that a rank's share leaves to the other ranks (shard.c): the planner
// counts a rank's weights as the file's less its cuts.
typedef struct model_shard_cut {
    uint32_t layer;  // the layer; n_layer: the output matrix
    uint32_t type;   // tensor_type
    uint64_t values; // values left out
    uint64_t bytes;  // bytes left out
} model_shard_cut;

typedef struct model {
    gguf_file *file; // owns the mapping every tensor points into
    const model_arch *arch;
    model_hparams hp;
    model_tensor token_embd;  // (dim x n_vocab)
    model_tensor output_norm; // (dim)
    model_tensor output;      // (dim x n_vocab); token_embd when tied; absent (data NULL)
                              // in an encoder
    // Encoders (absent otherwise).
    model_tensor token_types; // (dim x n_token_types) token_types: row 0 is added
    model_tensor pos_embd;    // (dim x n_ctx_train) position_embd (arch->pos_embd)
    model_tensor embd_norm;   // (dim) token_embd_norm.weight
    model_tensor embd_norm_b; // (dim) token_embd_norm.bias
    const float *rope_freqs;  // (n_rot / 2) per-pair divisors, or NULL
    const float *rope_long;   // (n_rot / 2) LongRoPE divisors for a context beyond
                              // rope_ctx_orig (rope_factors_long), or NULL
    const float *rope_short;  // (n_rot / 2) ... within it (rope_factors_short), or NULL
    model_layer *layers;      // (n_layer)
    void *packed;             // the packed copies of weights (model_prefault), or NULL
    size_t packed_bytes;
    // Tensor parallelism (shard.c): this process holds rank tp_rank's share of tp_size (1:
    // the whole model). hp's n_head, n_head_kv and ffn are then the share's, and the forward
    // pass adds the ranks' partial attention and FFN outputs together, or gathers them where
    // a layer's product is split by output rows (dist/).
    uint32_t tp_rank, tp_size;
    void *tp_copy; // the rank's input columns of attn_output and ffn_down (those split by
                   // input columns), or NULL
    size_t tp_copy_bytes;
    model_shard_cut *tp_cuts; // (n_tp_cuts) what the share leaves to the other ranks, for the
                              // planner; NULL for a whole model
    uint32_t n_tp_cuts;
    // Under tensor parallelism by whole experts (shard.c, where the experts' width does not
    // split evenly): this rank holds experts [tp_expert0, tp_expert0 + tp_n_expert), the
    // others' slots are skipped. tp_n_expert 0: every expert (whole, or each split by width).
    uint32_t tp_expert0, tp_n_expert;
    // Layers (from the first) a device computes with (model_set_device_layers): their
    // matrices are neither made resident nor packed by model_prefault, nor is the output
    // matrix when the device runs every layer.
    uint32_t device_layers;
    bool device_keeps_host; // the device's layers stay resident on the host (a fast wake)
    // Pipeline parallelism: this process computes layers [layer_first, layer_end) (all of them
    // without stages): it receives the residual stream from the previous stage and sends it on
    // (dist/), the first stage embeds and the last computes the logits, which every stage
    // receives. Only these layers are made resident and packed.
    uint32_t layer_first, layer_end;
    bool *used; // (file's tensors) which ones are bound; during model_load only
} model;

// Whether the model's attention is multi-head latent attention (its cache has no V rows).
static inline bool model_hparams_mla(const model_hparams *hp) { return hp->kv_lora_rank > 0; }

// Whether layer l of m runs experts (it has a router) rather than a dense FFN.
static inline bool model_layer_has_experts(const model *m, uint32_t l)
{
    return m->hp.n_expert > 0 && l >= m->hp.n_dense_lead;
}

// Whether m computes embeddings only (an encoder, or a model whose attention is not causal):
// it has no logits to sample from, and an input must be computed in one step.
static inline bool model_embeddings_only(const model *m)
{
    return m->arch->encoder || !m->hp.causal;
}

// Opens and validates a model: the architecture is known, every required tensor exists with
// the shape the hyper-parameters imply and a type garlic can compute with. Errors name the
// file and the key or tensor at fault.
model *model_load(const char *path, garlic_error *err);

// How model_load_with opens a model.
typedef struct model_load_options {
    // A mixture ("Q8_0", "Q4_K_M", as garlic quantize names them) the 16- and 32-bit matrices
    // of a Hugging Face folder are quantized to at load, with llama-quantize's per-tensor
    // choices (FP8, AWQ, GPTQ and MXFP4 weights keep their own); NULL: as stored.
    // A GGUF file is refused with it (garlic quantize requantizes files).
    const char *quantize;
    // Shapes and types only: tensors a folder would make point at a placeholder, never to be
    // read (for planning a load without doing it).
    bool meta_only;
    // Tensor parallelism: keep rank tp_rank's share of tp_size ranks (model_shard); 0 or 1:
    // the whole model. With meta_only the shapes alone are cut (model_shard_shape).
    uint32_t tp_rank, tp_size;
    // Pipeline parallelism: this process's stage computes n_layers layers from first_layer
    // (n_layers 0: every layer).
    uint32_t first_layer, n_layers;
} model_load_options;

// model_load with options (o may be NULL).
model *model_load_with(const char *path, const model_load_options *o, garlic_error *err);

// model_load over a file already open (or parsed from memory): takes f in every case (closed
// with the model, or at once on failure).
model *model_load_file(gguf_file *f, garlic_error *err);
void model_free(model *m);

// Whether m can be split between size ranks by tensor parallelism: a decoder (dense or
// with experts, with latent attention or not; not an embeddings-only model) whose heads size
// divides, and whose KV heads it divides or is a multiple of (the FFN width and the
// vocabulary may split unevenly; attn_output and ffn_down split by output rows where their
// columns would not be whole blocks), and whose experts' width holds at least size whole
// blocks of their down matrices' type or whose experts number at least size (a narrower
// shared expert stays on rank 0). GARLIC_EUNSUPPORTED otherwise, naming the file and what
// does not divide.
int model_shard_check(const model *m, uint32_t size, garlic_error *err);

// Cuts m (just loaded, not yet prefaulted) down to rank's share of size ranks (see
// shard.c): views of its rows of Q/K/V and gate/up, copies of its input columns of
// attn_output and ffn_down or views of their rows (model_layer.tp_wo, tp_down say which),
// copies of its part of every expert's width or views of its whole experts, views of its
// heads' latent attention matrices; hp then describes the share. size <= 1 changes nothing. Errors
// as model_shard_check's, or GARLIC_ENOMEM; m is unchanged on failure.
int model_shard(model *m, uint32_t rank, uint32_t size, garlic_error *err);

// model_shard's cuts made to the shapes alone (hp, every tensor's n_in, n_out and mat_bytes,
// m->tp_cuts, the layers' tp_wo and tp_down), no data copied or dropped: the columns of
// attn_output and ffn_down split by input columns then point at the whole rows. For planning a rank's memory (model_load_with's meta_only), not for
// computing.
int model_shard_shape(model *m, uint32_t rank, uint32_t size, garlic_error *err);

// Whether the files the weights were read from are unchanged since the load
// (gguf_check_files): GARLIC_OK, or GARLIC_EIO naming the file by its base name and saying
// what changed. One fstat per file; safe from any thread while m is loaded.
int model_files_check(const model *m, garlic_error *err);

// Reads one byte of every page of the model's mapping (after MADV_WILLNEED), so the weights
// are resident before the first request and a load's memory is what it will stay. Then the
// matrices whose type the kernels read faster packed (kernel_packs) are packed, one at a
// time, into memory of the model's own, and their pages of the mapping are dropped: each
// weight is held once, and the total stays the file's size. (Without memory for the copy,
// the weights stay as they are.) progress (may be NULL) gets the percentage done every 5 %.
// Returns the seconds it took.
double model_prefault(model *m, void (*progress)(void *ctx, int percent), void *ctx);

// Says that a device computes layers [0, n) (and the output when n >= n_layer), before
// model_prefault: the host then packs only what it computes with, and touches only that
// unless keep_host (a server that puts idle models to sleep keeps the device's weights
// resident for a fast wake; model_release_host_rows then keeps them too).
void model_set_device_layers(model *m, uint32_t n, bool keep_host);

// Gives back the host pages of t's rows in the file's mapping once a device holds its copy
// (MADV_DONTNEED: read again from the file if the host ever needs them). Does nothing for rows
// that are not in a GGUF file's mapping (a folder's converted tensors, packed copies).
void model_release_host_rows(const model *m, const model_tensor *t);

typedef struct model_state model_state;

typedef struct model_state_config {
    uint32_t n_ctx;             // longest sequence (positions) attention may read
    uint32_t max_batch;         // tokens one forward call may take
    uint32_t logit_rows;        // logits rows one call may return: 1, or up to max_batch (each
                                // row is n_vocab floats)
    int n_threads;              // compute pool size (the caller included)
    thread_pool *pool;          // a compute pool to borrow (n_threads is then its size), or NULL
                                // to start one; a borrowed pool must not run two calls at once
    uint64_t act_row_bytes;     // the widest converted activation row of the model's matrices
                                // (model_act_row_bytes); 0: the F32 worst case. model_state_new
                                // fills it from the model.
    uint64_t moe_act_row_bytes; // the same over the experts' matrices alone
                                // (model_moe_act_row_bytes), which size the experts' slots
    struct backend *device;     // a device backend (backend/) that runs the first
                                // device_layers layers, or NULL: the CPU runs them all. The
                                // state uploads those layers' weights and frees them with it;
                                // the device stays the caller's.
    uint32_t device_layers;     // layers on the device; n_layer or more: every layer and
                                // the output too
    // Called as the device's weights are uploaded (percent done, every 5 %); NULL: quiet.
    void (*upload_progress)(void *ctx, int percent);
    void *upload_progress_ctx;
} model_state_config;

// How many of m's first layers device d can run (0 for encoders, latent attention, tensor
// parallelism; up to the first layer with experts or a type it lacks).
uint32_t model_device_runs(const model *m, struct backend *d);

// Bytes of the weights a device backend keeps for layer l (l == n_layer: the output norm
// and matrix), in the file's layout: what model_state_new uploads for it.
uint64_t model_device_layer_bytes(const model *m, uint32_t l);

// Bytes of the widest converted activation row any matrix of m reads (the activation
// format follows the weight type: Q8_0, Q8_K, F16... are narrower than F32).
uint64_t model_act_row_bytes(const model *m);

// The widest converted activation row the experts' matrices read (0 for a dense model).
uint64_t model_moe_act_row_bytes(const model *m);

// Bytes model_state_new allocates for cfg: scratch for cfg->max_batch
// tokens, cfg->logit_rows rows of logits, attention rows of cfg->n_ctx positions per thread.
// GARLIC_EINVAL on impossible sizes (overflow).
int model_scratch_bytes(const model_hparams *hp, const model_state_config *cfg, uint64_t *bytes,
                        garlic_error *err);

// The KV pool configuration a model needs for n_blocks blocks of block_tokens positions.
kv_cache_config model_kv_config(const model *m, kv_type type, uint32_t block_tokens,
                                uint32_t n_blocks);

// The same from the hyper-parameters alone (the planner's): n_head_kv heads of head_dim_k
// and head_dim_v values, or for multi-head latent attention K rows of the latent and the
// RoPE key and no V rows (head_dim_v 0).
kv_cache_config model_hparams_kv_config(const model_hparams *hp, kv_type type,
                                        uint32_t block_tokens, uint32_t n_blocks);

// The run state: scratch for cfg->max_batch tokens and a compute pool. A model with LongRoPE
// factors rotates with the long ones in a state whose cfg->n_ctx exceeds hp.rope_ctx_orig,
// with the short ones otherwise. Fails with a message for impossible sizes or out of memory.
model_state *model_state_new(const model *m, const model_state_config *cfg, garlic_error *err);
void model_state_free(model_state *s);

// Bytes the state allocated (its scratch), for reports.
uint64_t model_state_bytes(const model_state *s);
uint32_t model_state_n_ctx(const model_state *s);
uint32_t model_state_max_batch(const model_state *s);
uint32_t model_state_logit_rows(const model_state *s);
const model *model_state_model(const model_state *s);

// A batch of tokens from many sequences of one KV pool. Token i belongs to sequence
// seqs[seq[i]] and sits at position pos[i] < that sequence's n_tokens (reserved with
// kv_seq_append); its K and V are written there and its attention reads positions
// 0..pos[i] of the sequence (earlier ones written by previous calls or earlier in the batch).
typedef struct model_batch {
    uint32_t n_tokens;
    const int32_t *tokens;     // (n_tokens)
    const uint32_t *pos;       // (n_tokens)
    const uint32_t *seq;       // (n_tokens) index into seqs
    const kv_seq *const *seqs; // (n_seqs)
    uint32_t n_seqs;
    const uint32_t *out; // (n_out) batch indices whose logits are returned, in order
    uint32_t n_out;      // 0..logit_rows (0 for an encoder, which has no logits)
    bool hidden;         // keep every token's final hidden state (model_state_hidden)
} model_batch;

// The final hidden states of the last batch that asked for them (model_batch.hidden):
// n_tokens rows of dim floats, after the output norm (an encoder's: its last layer's), in
// batch order. Valid until the next forward call.
const float *model_state_hidden(const model_state *s);

// Runs a batch through the model over the pool kv (whose configuration must be
// model_kv_config's for this model). In a model whose attention is not causal, a token
// attends to every position its sequence holds: the batch must hold the whole input.
// *logits gets n_out rows of n_vocab floats (valid until the next call). GARLIC_EINVAL for a
// bad batch (sizes, ids, positions, pool shape), with nothing written. Allocates only when a
// batch's block tables outgrow every earlier one's (model_flatten_batch).
int model_forward_batch(model_state *s, kv_cache *kv, const model_batch *b, const float **logits,
                        garlic_error *err);

// A forward call as positions and block tables, with no kv_seq: what model_forward_batch
// derives from its sequences, and what a tensor-parallel follower rank receives from the
// rank that runs the scheduler. Sequence i's table for full layers starts at
// tables[table_start[2 i]], for window layers at tables[table_start[2 i + 1]]; entry j names
// the block of positions [j * block_tokens, (j + 1) * block_tokens) (KV_NO_BLOCK where the
// sequence no longer holds it). Token t attends positions [0, n_pos[t]) of its sequence (a
// sliding window reads fewer) and stores its K and V at its position.
typedef struct model_flat_batch {
    uint32_t n_tokens, n_seqs, n_out, n_tables;
    const int32_t *tokens;       // (n_tokens)
    const uint32_t *pos;         // (n_tokens)
    const uint32_t *seq;         // (n_tokens) < n_seqs
    const uint32_t *n_pos;       // (n_tokens)
    const uint32_t *table_start; // (2 n_seqs)
    const uint32_t *tables;      // (n_tables)
    const uint32_t *out;         // (n_out) batch indices whose logits are returned
    bool hidden;                 // as model_batch.hidden
} model_flat_batch;

// Checks b against the state and the pool (as model_forward_batch does) and flattens it into
// *out, whose arrays live in s until the next call.
int model_flatten_batch(model_state *s, kv_cache *kv, const model_batch *b, model_flat_batch *out,
                        garlic_error *err);

// Runs a flat batch over the pool kv used as storage alone: the tables name its blocks. Every
// index is checked against the state and the pool first (GARLIC_EINVAL, nothing written).
int model_forward_flat(model_state *s, kv_cache *kv, const model_flat_batch *fb,
                       const float **logits, garlic_error *err);

// A pool for one sequence of n_ctx positions (one block more, so that rewinding into a
// published block can always get its private copy): for model_forward's callers. NULL and err
// filled on bad sizes (a q8_0 cache with head dimensions that are not multiples of 32) or no
// memory.
kv_cache *model_kv_new_single(const model *m, kv_type type, uint32_t n_ctx, garlic_error *err);

// One sequence through model_forward_batch (tests and the fidelity tools; generation goes
// through the engine): runs tokens[0..n) at positions pos0.. of seq in the pool kv, replacing
// positions from pos0 on (pos0 may not exceed the positions seq holds), and commits them.
// *logits gets n_vocab floats for the last token, or n x n_vocab (a row per token) when
// all_logits (valid until the next call). GARLIC_EINVAL when n is 0 or above max_batch,
// all_logits with n above logit_rows, pos0 + n exceeds n_ctx, pos0 leaves a gap, or a token
// id is out of range. Allocates nothing.
int model_forward(model_state *s, kv_cache *kv, kv_seq *seq, const int32_t *tokens, uint32_t n,
                  uint32_t pos0, bool all_logits, const float **logits, garlic_error *err);

// One whole input through the model for its hidden states (embeddings; tests and the
// fidelity tools, the engine batches its inputs itself): runs tokens[0..n) at positions 0..
// of seq (emptied first) and sets *hidden to n rows of dim floats (model_state_hidden),
// valid until the next call. Errors as model_forward's.
int model_forward_hidden(model_state *s, kv_cache *kv, kv_seq *seq, const int32_t *tokens,
                         uint32_t n, const float **hidden, garlic_error *err);

// ---- Pooling (embed.c) ----

// Adds to acc (dim floats, zeroed before an input's first chunk) what pooling p takes from
// the hidden states of one chunk of an input: n rows (stride floats apart) at positions
// pos0.. of an input of n_total tokens. Mean sums every row, CLS copies position 0's, last
// copies position n_total - 1's; none and rank take nothing.
void model_pool_rows(model_pooling p, const float *rows, uint64_t stride, uint32_t n, uint32_t pos0,
                     uint32_t n_total, uint32_t dim, float *acc);

// Finishes a pooled vector after the input's last chunk: mean divides by n_total.
void model_pool_finish(model_pooling p, float *acc, uint32_t n_total, uint32_t dim);

// Scales v (n floats) to Euclidean norm 1 (the sum of squares in double, as llama.cpp's
// embedding example); a zero vector stays zero.
void model_embed_normalize(float *v, uint32_t n);

#endif
