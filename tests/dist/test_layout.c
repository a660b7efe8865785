// SPDX-License-Identifier: MIT
// The planner per rank (src/planner's layouts, `garlic estimate --tensor-parallel T
// --pipeline-parallel P --budget SIZE`): a rank's weights must be its share of every tensor
// as model/shard.c splits them, recomputed here from the GGUF file's own tensor records
// (rows, columns or values divided by T, the output by vocabulary when T divides it, an
// output bias on rank 0 alone, every expert's width in whole blocks of its down matrix's
// type or whole experts, a narrow shared expert on rank 0, latent attention's per-head
// matrices by heads, everything else whole); its KV the share's KV heads (latent
// attention's one latent whole on every rank); pipeline
// stages contiguous, every layer once, the embedding on the first and the output on the
// last, and no other split of the layers with a smaller largest rank; the smallest layout
// the one a budget admits; the same figures from a real sharded load as from the estimate's.
// No MPI is needed: these are plans.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#include "base/alloc.h"
#include "gguf/gguf.h"
#include "model/model.h"
#include "model/synth.h"
#include "planner/planner.h"
#include "tensor/types.h"

// Whether name (a gguf_string) ends with suffix.
static bool ends_with(const gguf_string *name, const char *suffix)
{
    size_t n = strlen(suffix);
    return name->len >= n && memcmp(name->data + name->len - n, suffix, n) == 0;
}

// Whether name (a gguf_string) is exactly text.
static bool named(const gguf_string *name, const char *text)
{
    return name->len == strlen(text) && memcmp(name->data, text, name->len) == 0;
}

// The first of rank r's part of n split between t ranks (n / t each, the later ranks one
// more where t does not divide n), and the part's size.
static uint64_t first_of(uint64_t n, uint32_t r, uint32_t t) { return n * r / t; }
static uint64_t part_of(uint64_t n, uint32_t r, uint32_t t)
{
    return first_of(n, r + 1, t) - first_of(n, r, t);
}

// Whether attn_output or ffn_down (tt) is split by input columns between t ranks: every
// rank's columns (its part of ne[0]) start and end at whole blocks of its type; else it is
// split by its output rows.
static bool by_input(const gguf_tensor *tt, uint32_t t)
{
    uint32_t block = tensor_type_get(tt->type)->block_size;
    for (uint32_t r = 0; r < t; r++)
        if (first_of(tt->ne[0], r, t) % block || part_of(tt->ne[0], r, t) % block)
            return false;
    return true;
}

// The heads of a file (its architecture's head counts).
typedef struct heads {
    uint32_t n_head, n_head_kv;
} heads;

// The width of the file's experts (ne[0] of the down matrices named `down`:
// "ffn_down_exps.weight" or the shared expert's "ffn_down_shexp.weight"; 0: none) and the
// unit tensor parallelism splits it in: the largest block of those matrices' types over the
// layers, so that every rank's columns of each are whole blocks.
static uint64_t expert_width(const gguf_file *f, const char *down, uint64_t *unit)
{
    uint64_t width = 0;
    *unit = 1;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *tt = &f->tensors[i];
        if (!ends_with(&tt->name, down))
            continue;
        width = tt->ne[0];
        uint64_t block = tensor_type_get(tt->type)->block_size;
        *unit = block > *unit ? block : *unit;
    }
    return width;
}

// The experts of the file's layers (ne[2] of their down matrices), 0 without.
static uint64_t n_experts(const gguf_file *f)
{
    for (uint64_t i = 0; i < f->n_tensors; i++)
        if (ends_with(&f->tensors[i].name, "ffn_down_exps.weight"))
            return f->tensors[i].ne[2];
    return 0;
}

// Whether t ranks take whole experts of the file (rank r part r of them) rather than a part
// of every expert's width: where that width's blocks do not split evenly between them and
// the experts do, or where the blocks are fewer than the ranks and the experts are not.
static bool by_expert(const gguf_file *f, uint32_t t)
{
    uint64_t unit, width = expert_width(f, "ffn_down_exps.weight", &unit);
    uint64_t experts = n_experts(f), blocks = width / unit;
    if (!experts || t == 1 || blocks % t == 0)
        return false;
    return experts % t == 0 || (blocks < t && experts >= t);
}

// Whether t ranks leave the file's shared expert whole to rank 0 alone: where its width has
// fewer whole blocks than ranks.
static bool shared_on_rank0(const gguf_file *f, uint32_t t)
{
    uint64_t unit, width = expert_width(f, "ffn_down_shexp.weight", &unit);
    return width && width / unit < t;
}

// Rank r of t's part of an expert width of the file (expert_width's), in values; the whole
// width where the ranks take whole experts, or where rank 0 alone keeps the shared expert
// (0 on the others). 0 where there are none.
static uint64_t expert_part(const gguf_file *f, const char *down, uint32_t r, uint32_t t)
{
    uint64_t unit, width = expert_width(f, down, &unit);
    bool shared = !strcmp(down, "ffn_down_shexp.weight");
    if (!shared && by_expert(f, t))
        return width;
    if (shared && shared_on_rank0(f, t))
        return r == 0 ? width : 0;
    return part_of(width / unit, r, t) * unit;
}

// What rank `rank` of t keeps of tensor tt (of file f), from its record alone: Q's rows and
// the sinks divided by t; K's and V's by t, or by the KV heads where t is a multiple of them
// (each rank keeps one KV head); gate/up rows by rank's part of them; attn_output and
// ffn_down by rank's part of their columns where split by input columns (the bias then on
// rank 0 alone), else
// rank's part of their rows (and of the bias); the output by rank's part of the vocabulary
// rows; the rest whole.
static uint64_t share_of(const gguf_tensor *tt, uint32_t rank, uint32_t t, bool tied, heads h,
                         const gguf_file *f)
{
    if (t == 1)
        return tt->nbytes;
    uint32_t kv_split = h.n_head_kv >= t ? t : h.n_head_kv;
    uint64_t row = tt->ne[1] ? tt->nbytes / tt->ne[1] : 0;
    static const char *const by_t[] = {".attn_q.weight",  ".attn_q.bias",     ".attn_sinks.weight",
                                       ".attn_sinks",     ".attn_q_b.weight", ".attn_k_b.weight",
                                       ".attn_v_b.weight"}; // (the last 3: latent attention)
    static const char *const by_kv[] = {".attn_k.weight", ".attn_v.weight", ".attn_k.bias",
                                        ".attn_v.bias"};
    for (size_t i = 0; i < sizeof by_t / sizeof by_t[0]; i++)
        if (ends_with(&tt->name, by_t[i])) {
            assert_int_equal(tt->nbytes % t, 0);
            return tt->nbytes / t;
        }
    for (size_t i = 0; i < sizeof by_kv / sizeof by_kv[0]; i++)
        if (ends_with(&tt->name, by_kv[i])) {
            assert_int_equal(tt->nbytes % kv_split, 0);
            return tt->nbytes / kv_split;
        }
    if (ends_with(&tt->name, ".attn_qkv.weight")) { // Q's rows, then K's and V's
        uint64_t q = tt->ne[1] * h.n_head / (h.n_head + 2 * h.n_head_kv), kv = (tt->ne[1] - q) / 2;
        return row * (q / t + 2 * (kv / kv_split));
    }
    if (ends_with(&tt->name, ".ffn_gate.weight") || ends_with(&tt->name, ".ffn_up.weight")) {
        bool fused = !gguf_find_tensor(f, "blk.0.ffn_gate.weight"); // phi3: gate then up rows
        if (fused)
            return row * 2 * part_of(tt->ne[1] / 2, rank, t);
        return row * part_of(tt->ne[1], rank, t);
    }
    if (ends_with(&tt->name, ".attn_output.weight") || ends_with(&tt->name, ".ffn_down.weight"))
        return by_input(tt, t) ? tt->nbytes * part_of(tt->ne[0], rank, t) / tt->ne[0]
                               : row * part_of(tt->ne[1], rank, t);
    if (ends_with(&tt->name, ".attn_output.bias")) {
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)tt->name.len - 4, tt->name.data);
        strcat(name, "weight");
        const gguf_tensor *w = gguf_find_tensor(f, name);
        assert_non_null(w);
        if (by_input(w, t))
            return rank == 0 ? tt->nbytes : 0;
        return tt->nbytes / tt->ne[0] * part_of(tt->ne[0], rank, t);
    }
    // Experts: rank's part of every expert's width (gate and up rows, their biases' values,
    // down columns), the down biases on rank 0 alone; the shared expert's likewise.
    static const char *const by_width[] = {".ffn_gate_exps.weight", ".ffn_up_exps.weight",
                                           ".ffn_gate_exps.bias", ".ffn_up_exps.bias",
                                           ".ffn_down_exps.weight"};
    // Whole experts: rank's part of them, matrices and bias rows.
    uint64_t experts = n_experts(f), held = part_of(experts, rank, t);
    bool whole_experts = by_expert(f, t);
    for (size_t i = 0; i < sizeof by_width / sizeof by_width[0]; i++)
        if (ends_with(&tt->name, by_width[i])) {
            uint64_t width = i < 2 ? tt->ne[1] : tt->ne[0];
            if (whole_experts)
                return tt->nbytes / experts * held;
            return tt->nbytes / width * expert_part(f, "ffn_down_exps.weight", rank, t);
        }
    if (ends_with(&tt->name, ".ffn_down_exps.bias"))
        return whole_experts ? tt->nbytes / experts * held : rank == 0 ? tt->nbytes : 0;
    if (ends_with(&tt->name, ".ffn_gate_shexp.weight") ||
        ends_with(&tt->name, ".ffn_up_shexp.weight"))
        return row * expert_part(f, "ffn_down_shexp.weight", rank, t);
    if (ends_with(&tt->name, ".ffn_gate_inp_shexp.weight")) // its gate: whole, or rank 0's
        return shared_on_rank0(f, t) && rank != 0 ? 0 : tt->nbytes;
    if (ends_with(&tt->name, ".ffn_down_shexp.weight"))
        return tt->nbytes / tt->ne[0] * expert_part(f, "ffn_down_shexp.weight", rank, t);
    if (named(&tt->name, "output.weight") && !tied)
        return row * part_of(tt->ne[1], rank, t);
    return tt->nbytes;
}

// A rank's expected weights, by layer and in all (layer[] of n_layer; first: token_*, last:
// output*, every: the rest outside the layers), from the file's records.
typedef struct expected {
    uint64_t layer[64];
    uint64_t first, last, every, total, mapping;
} expected;

static void expect_share(const char *path, uint32_t rank, uint32_t t, expected *e)
{
    memset(e, 0, sizeof *e);
    garlic_error err = {0};
    gguf_file *f = gguf_open(path, &err);
    if (!f)
        fail_msg("%s", err.message);
    bool tied = gguf_find_tensor(f, "output.weight") == NULL;
    gguf_string arch;
    char key[96];
    heads h = {0};
    assert_int_equal(gguf_get_str(f, "general.architecture", &arch), 0);
    snprintf(key, sizeof key, "%.*s.attention.head_count", (int)arch.len, arch.data);
    assert_int_equal(gguf_get_u32(f, key, &h.n_head), 0);
    strcat(key, "_kv");
    assert_int_equal(gguf_get_u32(f, key, &h.n_head_kv), 0);
    uint64_t all = 0;
    for (uint64_t i = 0; i < f->n_tensors; i++) {
        const gguf_tensor *tt = &f->tensors[i];
        uint64_t bytes = share_of(tt, rank, t, tied, h, f);
        char name[96];
        snprintf(name, sizeof name, "%.*s", (int)tt->name.len, tt->name.data);
        unsigned l;
        if (sscanf(name, "blk.%u.", &l) == 1) {
            assert_true(l < 64);
            e->layer[l] += bytes;
        } else if (strncmp(name, "token_", 6) == 0) {
            e->first += bytes;
        } else if (strncmp(name, "output", 6) == 0) {
            e->last += bytes;
        } else {
            e->every += bytes;
        }
        e->total += bytes, all += tt->nbytes;
    }
    e->mapping = f->size - all;
    gguf_close(f);
}

// A layout case: a synthesized model of shape A but for what the case sets (0: shape A's).
typedef struct layout_case {
    const char *arch;
    uint32_t type;
    bool tied;
    uint32_t n_head_kv; // 0: 4 (2 and 4 ranks divide them)
    uint32_t ffn, vocab;
    const char *name;
    // Experts (0: a dense FFN): n_expert of them (0: 4), 2 used, each ffn_exp wide, in
    // expert_type (0: type), a shared expert ffn_shexp wide (0: none).
    uint32_t ffn_exp, expert_type, ffn_shexp, n_expert;
} layout_case;

static const char *synth_case(const layout_case *c, uint32_t n_layer, const char *name)
{
    model_synth_params p;
    model_synth_params_default(&p);
    p.arch = c->arch, p.type = (uint32_t)c->type, p.tied = c->tied, p.n_layer = n_layer;
    p.n_head_kv = c->n_head_kv ? c->n_head_kv : 4;
    p.ffn = c->ffn ? c->ffn : p.ffn, p.vocab = c->vocab ? c->vocab : p.vocab;
    if (c->ffn_exp) {
        p.n_expert = c->n_expert ? c->n_expert : 4, p.n_expert_used = 2;
        p.ffn_exp = c->ffn_exp, p.ffn_shexp = c->ffn_shexp;
        p.expert_type = c->expert_type ? (int32_t)c->expert_type : -1;
        if (!strcmp(p.arch, "gpt-oss")) // (its experts' width is the FFN's)
            p.ffn = c->ffn_exp;
    }
    if (!strcmp(p.arch, "deepseek2")) { // latent attention: a head's value 24 wide
        p.rope_dims = 16, p.kv_lora_rank = 64, p.q_lora_rank = 128, p.v_head_dim = 24;
        p.n_dense_lead = 1;
    }
    const char *path = test_temp_path(name);
    garlic_error err = {0};
    if (model_synth_write(&p, path, &err))
        fail_msg("%s", err.message);
    return path;
}

static const char *synth(const char *arch, uint32_t type, bool tied, uint32_t n_layer,
                         const char *name)
{
    model_synth_params p;
    model_synth_params_default(&p);
    p.arch = arch, p.type = type, p.tied = tied, p.n_head_kv = 4, p.n_layer = n_layer;
    const char *path = test_temp_path(name);
    garlic_error err = {0};
    if (model_synth_write(&p, path, &err))
        fail_msg("%s", err.message);
    return path;
}

static planner_config config(uint64_t budget)
{
    planner_config c;
    planner_config_default(&c);
    c.ctx = 256, c.parallel = 2, c.n_threads = 2, c.budget = budget;
    return c;
}

static const layout_case CASES[] = {
    {.arch = "llama", .type = TENSOR_TYPE_F32, .name = "layout-llama-f32.gguf"},
    // embedding rows
    {.arch = "llama",
     .type = TENSOR_TYPE_Q4_0,
     .tied = true,
     .name = "layout-llama-q4_0-tied.gguf"},
    {.arch = "qwen2", .type = TENSOR_TYPE_Q8_0, .name = "layout-qwen2-q8_0.gguf"}, // Q/K/V biases
    {.arch = "phi3", .type = TENSOR_TYPE_Q8_0, .name = "layout-phi3-q8_0.gguf"},   // fused qkv, up
    {.arch = "gemma3", .type = TENSOR_TYPE_F16, .name = "layout-gemma3-f16.gguf"}, // windows
    // K-quants: a rank's 128 or 64 columns of attn_output and 384 or 192 of ffn_down are not
    // whole blocks of 256: both split by output rows.
    {.arch = "llama", .type = TENSOR_TYPE_Q4_K, .name = "layout-llama-q4_k.gguf"},
    // ffn_down's 400 or 200 columns are not whole blocks of 32 (by output rows), attn_output's
    // are (by input columns); 2 KV heads, one a rank at 4 ranks; 510 vocabulary rows.
    {.arch = "llama",
     .type = TENSOR_TYPE_Q8_0,
     .n_head_kv = 2,
     .ffn = 800,
     .vocab = 510,
     .name = "layout-llama-q8_0-mixed.gguf"},
    // Uneven parts of the FFN (770 rows: 192 or 193 a rank at 4) and of the vocabulary.
    {.arch = "llama",
     .type = TENSOR_TYPE_F32,
     .ffn = 770,
     .vocab = 510,
     .name = "layout-llama-f32-uneven.gguf"},
    // Experts: 256 wide in Q8_0 (8 blocks of 32); in MXFP4 with biases (gpt-oss); F32 with a
    // shared expert (qwen2moe).
    {.arch = "qwen3moe",
     .type = TENSOR_TYPE_Q8_0,
     .name = "layout-qwen3moe-q8_0.gguf",
     .ffn_exp = 256},
    {.arch = "gpt-oss",
     .type = TENSOR_TYPE_Q8_0,
     .name = "layout-gpt-oss.gguf",
     .ffn_exp = 256,
     .expert_type = TENSOR_TYPE_MXFP4},
    {.arch = "qwen2moe",
     .type = TENSOR_TYPE_F32,
     .name = "layout-qwen2moe-f32.gguf",
     .ffn_exp = 128,
     .ffn_shexp = 256},
    // Q4_K: experts 512 wide (2 blocks of 256: by width at 2 ranks, whole experts at 4) and a
    // shared expert of 256 (1 block), which rank 0 keeps whole.
    {.arch = "qwen2moe",
     .type = TENSOR_TYPE_Q4_K,
     .name = "layout-qwen2moe-q4_k.gguf",
     .ffn_exp = 512,
     .ffn_shexp = 256},
    // 1280 wide in Q4_K (5 blocks of 256), 6 experts: 2 ranks take 3 whole experts each, as
    // the blocks do not split evenly; 4 ranks, which do not divide the experts, 1, 1, 1 and 2
    // blocks of each.
    {.arch = "qwen3moe",
     .type = TENSOR_TYPE_Q4_K,
     .name = "layout-qwen3moe-q4_k.gguf",
     .ffn_exp = 1280,
     .n_expert = 6},
    // Q4_K experts of one block, 6 of them (gpt-oss, with biases): 3 whole experts a rank at
    // 2 ranks, 1, 2, 1 and 2 at 4 (the blocks fewer than the ranks, the experts not).
    {.arch = "gpt-oss",
     .type = TENSOR_TYPE_Q8_0,
     .name = "layout-gpt-oss-uneven-experts.gguf",
     .ffn_exp = 256,
     .expert_type = TENSOR_TYPE_Q4_K,
     .n_expert = 6},
    // 3 blocks of 32 in MXFP4: whole experts and their bias rows at 2 and 4 ranks.
    {.arch = "gpt-oss",
     .type = TENSOR_TYPE_Q8_0,
     .name = "layout-gpt-oss-experts.gguf",
     .ffn_exp = 96,
     .expert_type = TENSOR_TYPE_MXFP4},
    // Latent attention (deepseek2: one latent KV head, whole on every rank; attn_q_b rows and
    // attn_k_b/attn_v_b matrices by heads; attn_output's 192 columns by input columns at 2
    // ranks, by output rows at 4, whose 48 are not whole blocks of 32), a dense first layer,
    // experts and a shared expert.
    {.arch = "deepseek2",
     .type = TENSOR_TYPE_Q8_0,
     .n_head_kv = 1,
     .name = "layout-deepseek2.gguf",
     .ffn_exp = 256,
     .ffn_shexp = 256},
};

// Checks the layout of rank r of t's share of path (shapes) against the file: each layer's
// attn_output and ffn_down split as by_input says, with the rows or columns of rank's part.
static void check_splits(const char *path, uint32_t r, uint32_t t)
{
    garlic_error err = {0};
    model_load_options o = {.meta_only = true, .tp_rank = r, .tp_size = t};
    model *m = model_load_with(path, &o, &err);
    assert_non_null(m);
    gguf_file *f = gguf_open(path, &err);
    assert_non_null(f);
    for (uint32_t l = 0; l < m->hp.n_layer; l++) {
        const model_layer *L = &m->layers[l];
        uint64_t exp = expert_part(f, "ffn_down_exps.weight", r, t),
                 sh = expert_part(f, "ffn_down_shexp.weight", r, t);
        if (L->exp_down.data) { // every expert's rows of gate and up, columns of down
            assert_int_equal(L->exp_gate.n_out, exp);
            assert_int_equal(L->exp_up.n_out, exp);
            assert_int_equal(L->exp_down.n_in, exp);
            assert_int_equal(L->exp_down.n_out, m->hp.dim);
            assert_int_equal(L->router.n_out, m->hp.n_expert); // (whole)
            assert_int_equal(m->hp.ffn_exp, exp);
            // whole experts: rank r's part of them
            bool whole = by_expert(f, t);
            uint64_t held = whole ? part_of(m->hp.n_expert, r, t) : 0;
            assert_int_equal(m->tp_n_expert, held);
            assert_int_equal(m->tp_expert0, whole ? first_of(m->hp.n_expert, r, t) : 0);
            assert_int_equal(L->exp_down.n_mat, whole ? held : m->hp.n_expert);
        }
        if (L->sh_down.data) {
            assert_int_equal(L->sh_gate.n_out, sh);
            assert_int_equal(L->sh_down.n_in, sh);
        } else if (L->exp_down.data && gguf_find_tensor(f, "blk.0.ffn_down_shexp.weight")) {
            assert_int_equal(sh, 0); // (another rank keeps the shared expert whole)
            assert_null(L->sh_router.data);
        }
        if (L->exp_down.data)
            continue; // (no dense ffn_down)
        const char *names[] = {"attn_output", "ffn_down"};
        const model_tensor *ws[] = {&m->layers[l].wo, &m->layers[l].w_down};
        uint8_t splits[] = {m->layers[l].tp_wo, m->layers[l].tp_down};
        for (int i = 0; i < 2; i++) {
            char name[64];
            snprintf(name, sizeof name, "blk.%u.%s.weight", l, names[i]);
            const gguf_tensor *tt = gguf_find_tensor(f, name);
            assert_non_null(tt);
            bool input = by_input(tt, t);
            assert_int_equal(splits[i], input ? MODEL_TP_BY_INPUT : MODEL_TP_BY_OUTPUT);
            assert_int_equal(ws[i]->n_in, input ? part_of(tt->ne[0], r, t) : tt->ne[0]);
            assert_int_equal(ws[i]->n_out, input ? tt->ne[1] : part_of(tt->ne[1], r, t));
        }
    }
    gguf_close(f);
    model_free(m);
}

// Each rank's share of T = 1, 2, 4 is the file's tensors divided as shard.c divides them,
// by layer and in all; its KV rows are its KV heads'; and a real sharded load (what the
// server plans with) gives the same figures as the shape-only one (the estimate's).
static void test_share_weights(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        const char *path = synth_case(&CASES[c], 4, CASES[c].name);
        planner_input *in = garlic_malloc(sizeof *in), *real = garlic_malloc(sizeof *real);
        assert_non_null(in), assert_non_null(real);
        garlic_error err = {0};
        planner_config cfg = config(0);
        planner_plan whole, plan;
        assert_int_equal(planner_from_model_share(path, NULL, 0, 1, in, &err), GARLIC_OK);
        assert_int_equal(planner_plan_make(in, &cfg, &whole, &err), GARLIC_OK);
        for (uint32_t t = 1; t <= 4; t *= 2)
            for (uint32_t r = 0; r < t; r++) {
                expected e;
                expect_share(path, r, t, &e);
                if (planner_from_model_share(path, NULL, r, t, in, &err))
                    fail_msg("%s, rank %u of %u: %s", CASES[c].name, r, t, err.message);
                assert_true(in->layers_known);
                assert_int_equal(in->tp_size, t);
                assert_int_equal(in->tp_rank, r);
                assert_int_equal(in->weights.tensor_bytes, e.total);
                assert_int_equal(in->weights.mapping_bytes, e.mapping);
                for (uint32_t l = 0; l < in->hp.n_layer; l++)
                    assert_int_equal(in->layer_bytes[l], e.layer[l]);
                assert_int_equal(in->first_bytes, e.first);
                assert_int_equal(in->last_bytes, e.last);
                assert_int_equal(in->every_bytes, e.every);
                uint64_t by_type = 0; // the table by type adds up to the share too
                for (uint32_t k = 0; k < in->weights.n_types; k++)
                    by_type += in->weights.types[k].bytes;
                assert_int_equal(by_type, e.total);
                assert_int_equal(planner_plan_make(in, &cfg, &plan, &err), GARLIC_OK);
                assert_int_equal(plan.weight_bytes, e.total + e.mapping);
                // the KV heads divided by t, or one a rank where t is a multiple of them
                uint32_t kv = CASES[c].n_head_kv ? CASES[c].n_head_kv : 4;
                assert_int_equal(plan.kv_bytes_per_token * (kv >= t ? t : kv),
                                 whole.kv_bytes_per_token);
                check_splits(path, r, t);
                print_message("%s, rank %u of %u: weights %llu of %llu bytes\n", CASES[c].name, r,
                              t, (unsigned long long)e.total,
                              (unsigned long long)whole.weight_bytes);
                // The server's plan: from the model loaded and split for real.
                model_load_options o = {.tp_rank = r, .tp_size = t};
                model *m = model_load_with(path, &o, &err);
                assert_non_null(m);
                assert_int_equal(planner_from_model(m, path, real, &err), GARLIC_OK);
                model_free(m);
                assert_int_equal(real->weights.tensor_bytes, in->weights.tensor_bytes);
                assert_memory_equal(real->layer_bytes, in->layer_bytes,
                                    in->hp.n_layer * sizeof in->layer_bytes[0]);
                assert_int_equal(real->hp.n_head_kv, in->hp.n_head_kv);
            }
        garlic_free(in), garlic_free(real);
    }
}

// The largest total of the stages first[]/count[] of share.
static uint64_t largest(const planner_input *share, const uint32_t *first, const uint32_t *count,
                        uint32_t p, const planner_config *cfg)
{
    uint64_t most = 0;
    garlic_error err = {0};
    for (uint32_t s = 0; s < p; s++) {
        planner_plan plan;
        assert_int_equal(planner_stage_plan(share, first[s], count[s], cfg, &plan, &err),
                         GARLIC_OK);
        most = plan.total_bytes > most ? plan.total_bytes : most;
    }
    return most;
}

// Every way of cutting n layers into p contiguous stages (cuts between layers, as a bit mask
// over the n - 1 gaps with p - 1 bits set): the smallest largest-stage total.
static uint64_t best_split(const planner_input *share, uint32_t n, uint32_t p,
                           const planner_config *cfg)
{
    uint64_t best = UINT64_MAX;
    for (uint32_t mask = 0; mask < 1u << (n - 1); mask++) {
        if ((uint32_t)__builtin_popcount(mask) != p - 1)
            continue;
        uint32_t first[16], count[16], s = 0;
        first[0] = 0;
        for (uint32_t l = 1; l < n; l++)
            if (mask >> (l - 1) & 1) {
                count[s] = l - first[s];
                first[++s] = l;
            }
        count[s] = n - first[s];
        uint64_t most = largest(share, first, count, p, cfg);
        best = most < best ? most : best;
    }
    return best;
}

// Layouts T x P over a 6-layer model: each rank's layers and weights (its share of its
// layers, the embedding on stage 0, the output on the last, the file's header), and no split
// of the layers whose largest rank is smaller than the planner's.
static void test_pipeline_stages(void **state)
{
    (void)state;
    const uint32_t n = 6;
    for (size_t c = 0; c < sizeof CASES / sizeof CASES[0]; c++) {
        char name[80];
        snprintf(name, sizeof name, "stages-%s", CASES[c].name);
        const char *path = synth_case(&CASES[c], n, name);
        planner_config cfg = config(0);
        planner_input *share = garlic_malloc(sizeof *share);
        assert_non_null(share);
        for (uint32_t t = 1; t <= 2; t++)
            for (uint32_t p = 1; p <= 4; p++) {
                planner_rank ranks[8];
                garlic_error err = {0};
                if (planner_layout_make(path, NULL, t, p, &cfg, ranks, &err))
                    fail_msg("%s, %u x %u: %s", name, t, p, err.message);
                for (uint32_t r = 0; r < t; r++) {
                    expected e;
                    expect_share(path, r, t, &e);
                    uint32_t next = 0;
                    uint32_t first[4], count[4];
                    for (uint32_t s = 0; s < p; s++) {
                        const planner_rank *k = &ranks[r + t * s];
                        assert_int_equal(k->tp_rank, r);
                        assert_int_equal(k->stage, s);
                        assert_int_equal(k->first_layer, next); // contiguous, in order
                        assert_true(k->n_layers >= 1);
                        first[s] = k->first_layer, count[s] = k->n_layers;
                        next += k->n_layers;
                        uint64_t want = e.mapping + e.every + (s == 0 ? e.first : 0) +
                            (s + 1 == p ? e.last : 0);
                        for (uint32_t l = k->first_layer; l < next; l++)
                            want += e.layer[l];
                        assert_int_equal(k->plan.weight_bytes, want);
                    }
                    assert_int_equal(next, n); // every layer once
                    assert_int_equal(planner_from_model_share(path, NULL, r, t, share, &err), 0);
                    uint64_t got = largest(share, first, count, p, &cfg);
                    uint64_t best = best_split(share, n, p, &cfg);
                    if (got > best)
                        fail_msg("%s, %u x %u: the largest stage holds %llu bytes; a split with "
                                 "%llu exists",
                                 name, t, p, (unsigned long long)got, (unsigned long long)best);
                }
            }
        garlic_free(share);
    }
}

// The smallest layout: with a budget of exactly the largest rank of 2 x 1 (which one process
// exceeds), 2 x 1; a byte less, something larger (also where the largest is the last rank);
// T that does not divide the heads and P beyond the layers are refused naming them.
static void test_smallest_layout(void **state)
{
    (void)state;
    const char *path = synth("llama", TENSOR_TYPE_F32, false, 4, "smallest.gguf");
    planner_config cfg = config(0);
    planner_rank one[1], two[2], big[16];
    garlic_error err = {0};
    assert_int_equal(planner_layout_make(path, NULL, 1, 1, &cfg, one, &err), GARLIC_OK);
    assert_int_equal(planner_layout_make(path, NULL, 2, 1, &cfg, two, &err), GARLIC_OK);
    uint64_t need = two[0].plan.total_bytes > two[1].plan.total_bytes ? two[0].plan.total_bytes
                                                                      : two[1].plan.total_bytes;
    assert_true(one[0].plan.total_bytes > need);
    cfg.budget = need;
    uint32_t t = 0, p = 0;
    assert_int_equal(planner_layout_smallest(path, NULL, &cfg, 64, &t, &p, &err), GARLIC_OK);
    assert_int_equal(t, 2);
    assert_int_equal(p, 1);
    cfg.budget = need - 1;
    assert_int_equal(planner_layout_smallest(path, NULL, &cfg, 64, &t, &p, &err), GARLIC_OK);
    assert_true(t * p > 2);
    // ... and that layout's every rank fits, as planner_layout_make plans it.
    assert_int_equal(planner_layout_make(path, NULL, t, p, &cfg, big, &err), GARLIC_OK);
    for (uint32_t r = 0; r < t * p; r++)
        assert_true(big[r].plan.fits && big[r].plan.total_bytes <= cfg.budget);
    // Uneven parts (an FFN of 771, 511 vocabulary rows): the last rank holds the most, so a
    // budget of rank 0's total does not admit 2 x 1.
    const layout_case uneven = {.arch = "llama", .type = TENSOR_TYPE_F32, .ffn = 771, .vocab = 511};
    const char *odd = synth_case(&uneven, 4, "smallest-uneven.gguf");
    cfg.budget = 0;
    assert_int_equal(planner_layout_make(odd, NULL, 2, 1, &cfg, two, &err), GARLIC_OK);
    assert_true(two[1].plan.total_bytes > two[0].plan.total_bytes);
    cfg.budget = two[1].plan.total_bytes;
    assert_int_equal(planner_layout_smallest(odd, NULL, &cfg, 64, &t, &p, &err), GARLIC_OK);
    assert_true(t == 2 && p == 1);
    cfg.budget = two[0].plan.total_bytes;
    assert_int_equal(planner_layout_smallest(odd, NULL, &cfg, 64, &t, &p, &err), GARLIC_OK);
    assert_true(t * p > 2);
    cfg.budget = 1000; // nothing fits a kilobyte
    assert_int_equal(planner_layout_smallest(path, NULL, &cfg, 16, &t, &p, &err), GARLIC_ENOTFOUND);
    assert_non_null(strstr(err.message, "no layout of up to 16 ranks fits 1000 bytes"));
    cfg.budget = 0;
    assert_int_equal(planner_layout_make(path, NULL, 3, 1, &cfg, big, &err), GARLIC_EUNSUPPORTED);
    assert_non_null(strstr(err.message, "--tensor-parallel 3 must divide the 8 attention heads"));
    assert_int_equal(planner_layout_make(path, NULL, 1, 5, &cfg, big, &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "--pipeline-parallel 5: must be 1 to the 4 layers"));
}

// `garlic estimate --json --tensor-parallel 2 --pipeline-parallel 2 --budget` prints each
// rank's weights as computed here from the file, says the stages are the ones run, and
// names the smallest layout.
static void test_estimate_command(void **state)
{
    (void)state;
    const char *path = synth("qwen2", TENSOR_TYPE_Q8_0, false, 4, "estimate.gguf");
    char *out, *err;
    int rc = test_run(&out, &err,
                      "%s estimate '%s' --json --ctx 256 --parallel 2 --tensor-parallel 2 "
                      "--pipeline-parallel 2 --budget 1GB",
                      test_garlic(), path);
    if (rc != 0)
        fail_msg("garlic estimate: exit %d: %s", rc, err);
    planner_config cfg = config(0);
    planner_rank ranks[4];
    garlic_error e = {0};
    assert_int_equal(planner_layout_make(path, NULL, 2, 2, &cfg, ranks, &e), GARLIC_OK);
    for (uint32_t r = 0; r < 4; r++) {
        expected x;
        expect_share(path, r % 2, 2, &x);
        uint64_t want = x.mapping + x.every + (r < 2 ? x.first : x.last);
        for (uint32_t l = ranks[r].first_layer; l < ranks[r].first_layer + ranks[r].n_layers; l++)
            want += x.layer[l];
        char field[80];
        snprintf(field, sizeof field, "\"weight_bytes\":\t%llu,", (unsigned long long)want);
        if (!strstr(out, field))
            fail_msg("rank %u: no %s in %s", r, field, out);
    }
    assert_non_null(strstr(out, "\"pipeline_runs\":\ttrue"));
    assert_non_null(strstr(out, "\"smallest\":\t{"));
    free(out), free(err);
    rc = test_run(&out, &err, "%s estimate '%s' --tensor-parallel 2 --pipeline-parallel 2",
                  test_garlic(), path);
    assert_int_equal(rc, 0);
    assert_non_null(strstr(out, "the stages --pipeline-parallel runs"));
    free(out), free(err);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_share_weights),
        cmocka_unit_test(test_pipeline_stages),
        cmocka_unit_test(test_smallest_layout),
        cmocka_unit_test(test_estimate_command),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
