// SPDX-License-Identifier: MIT
// `garlic run MODEL [PROMPT] [flags]`: streams the continuation of a prompt to standard
// output (diagnostics and statistics go to standard error), or, without a prompt, chats
// interactively with the model's own chat template. Both go through the engine that serves
// requests (cli/local.h), with the prompt built as the server builds it (chat/chat.h), so a
// model answers the same here and over HTTP. For fidelity work, --prompt-ids feeds token ids
// and --dump-logits writes the logits of every prompt position (the prompt evaluated as one
// batch).
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "chat/chat.h"
#include "cli/cli.h"
#include "cli/local.h"
#include "dist/dist.h"
#include "engine/engine.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

enum { MAX_STOPS = 16 };

typedef struct run_options {
    const char *model_path;
    const char *prompt;         // NULL: interactive
    const char *prompt_ids;     // token ids instead of text
    const char *dump_logits;    // file for the prompt's logits
    const char *system;         // chat: a system message
    const char *template_file;  // a chat template instead of the model's
    uint32_t n_predict;         // -n (0: until the context is full)
    uint32_t n_ctx;             // -c (0: min(trained, 4096))
    uint32_t batch;             // -b
    int threads;                // -t
    uint32_t tensor_parallel;   // --tensor-parallel: ranks (mpirun -np) sharing each layer
    uint32_t pipeline_parallel; // --pipeline-parallel: stages of contiguous layers
    float dist_timeout;         // --dist-timeout: seconds a collective may wait (0: no limit)
    const char *device;         // --device: cpu, cuda, cuda:N
    const char *gpu_layers;     // --gpu-layers: N or auto
    kv_type kv_type;
    const char *quantize; // --quantize: a folder's 16/32-bit matrices at load
    bool verbose;
    sampler_params sampling; // n_vocab filled after loading
    const char *stops[MAX_STOPS];
    size_t n_stops;
} run_options;

static const cli_command run_command = {
    .name = "run",
    .usage = "MODEL.gguf [PROMPT] [options]",
    .about = "Streams the continuation of PROMPT to stdout. Without PROMPT, chats: each line on "
             "stdin is a\nuser message, rendered with the model's own chat template as the "
             "server renders it\n(end with Ctrl-D). Both go through the engine that serves "
             "requests.",
    .notes = "--verbose prints each rendered prompt and the timings to stderr.",
};

// Parses the arguments into o; CLI_CONTINUE, or the status to exit with.
static int parse_run_options(run_options *o, int argc, char **argv)
{
    memset(o, 0, sizeof *o);
    o->sampling = sampler_params_default(1);
    o->kv_type = KV_TYPE_F16;
    o->threads = thread_pool_default_threads();
    o->dist_timeout = (float)DIST_DEFAULT_TIMEOUT;
    sampler_params *sp = &o->sampling;
    cli_list stops = {.items = o->stops, .max = MAX_STOPS};
    const cli_option options[] = {
        cli_arg("MODEL.gguf", "the model: a GGUF file, a folder or a stored name", &o->model_path),
        cli_optional_arg("PROMPT", "the text to continue (none: chat)", &o->prompt),
        cli_uint("-n|--num-predict", "N",
                 "tokens to generate at most (0: until the context is "
                 "full)",
                 &o->n_predict, 0, UINT32_MAX),
        cli_float("--temp", "X", "sampling temperature (0: greedy)", &sp->temperature, 0, 100),
        cli_int("--top-k", "N", "keep the N most likely tokens (0: all)", &sp->top_k, 0, INT32_MAX),
        cli_float("--top-p", "X", "keep the most likely tokens up to probability X", &sp->top_p,
                  0.0001f, 1),
        cli_float("--min-p", "X", "drop tokens below X times the most likely one's probability",
                  &sp->min_p, 0, 1),
        cli_float("--repeat-penalty", "X", "penalty for repeated tokens (1: none)",
                  &sp->repeat_penalty, 0.0001f, 100),
        cli_u64("--seed", "N", "sampling seed (default: drawn)", &sp->seed),
        cli_uint("-c|--ctx", "N", "context positions (default: trained, at most 4096)", &o->n_ctx,
                 1, 1u << 24),
        cli_int("-t|--threads", "N", "compute threads (default: physical cores)", &o->threads, 1,
                1024),
        cli_uint("-b|--batch", "N", "prompt tokens per forward pass (default 512)", &o->batch, 1,
                 65536),
        CLI_DIST_OPTIONS(o),
        cli_kv_type("--kv-type", "KV cache type: f16 (default), q8_0, fp8 or f32", &o->kv_type),
        CLI_DEVICE_OPTIONS(o),
        cli_string("--quantize", "TYPE",
                   "quantize a Hugging Face folder's 16/32-bit weights at load (Q8_0, Q4_K_M...)",
                   &o->quantize),
        cli_strings("--stop", "S", "stop before S (repeatable)", &stops),
        cli_string("--system", "S", "chat: a system message first", &o->system),
        cli_string("--chat-template-file", "FILE", "a Jinja chat template instead of the model's",
                   &o->template_file),
        cli_flag("--verbose", "the rendered prompts and the timings on stderr", &o->verbose),
        cli_string("--prompt-ids", "IDS", "token ids (\"1 450 4996\") instead of PROMPT",
                   &o->prompt_ids),
        cli_string("--dump-logits", "FILE", "write every prompt position's logits to FILE",
                   &o->dump_logits),
        {0},
    };
    int status = cli_parse(&run_command, options, argc, argv);
    o->n_stops = stops.n;
    return status;
}

// Appends ids to prompt (growing it); false on allocation failure.
static bool ids_append(tokenizer_ids *prompt, const int32_t *ids, size_t n)
{
    if (garlic_grow(&prompt->ids, &prompt->cap, prompt->n + n, sizeof *prompt->ids))
        return false;
    memcpy(prompt->ids + prompt->n, ids, n * sizeof *ids);
    prompt->n += n;
    return true;
}

// Parses "1 450 4996" (spaces or commas) into ids; -1 on a bad or out-of-range id.
static int parse_ids(const char *text, uint32_t n_vocab, tokenizer_ids *out)
{
    for (const char *p = text; *p;) {
        while (*p == ' ' || *p == ',' || *p == '\t' || *p == '\n')
            p++;
        if (!*p)
            break;
        char *end;
        errno = 0;
        long v = strtol(p, &end, 10);
        if (end == p || errno || v < 0 || v >= (long)n_vocab) {
            fprintf(stderr, "garlic run: --prompt-ids: '%.20s' is not a token id below %u\n", p,
                    n_vocab);
            return -1;
        }
        int32_t id = (int32_t)v;
        if (!ids_append(out, &id, 1))
            return -1;
        p = end;
    }
    return 0;
}

// Writes the logits of every prompt position, evaluated as one batch over a one-sequence
// pool of its own: one line per position, values as %.7g separated by spaces.
static int dump_logits(const model *m, const run_options *o, const cli_local *l,
                       const tokenizer_ids *ids)
{
    garlic_error err = {0};
    uint32_t n = (uint32_t)ids->n;
    model_state_config cfg = {.n_ctx = n,
                              .max_batch = n,
                              .logit_rows = n,
                              .n_threads = o->threads,
                              .device = l->device,
                              .device_layers = registry_model_device_layers(l->m)};
    model_state *s = model_state_new(m, &cfg, &err);
    kv_cache *kv = s ? model_kv_new_single(m, o->kv_type, n, &err) : NULL;
    kv_seq seq;
    kv_seq_init(&seq);
    const float *logits;
    // Under tensor parallelism every rank computes (the collectives need them all) and rank
    // 0 writes.
    FILE *f = kv && cli_local_prints() ? fopen(o->dump_logits, "w") : NULL;
    bool open_failed = kv && cli_local_prints() && !f;
    int rc = kv && !open_failed ? model_forward(s, kv, &seq, ids->ids, n, 0, true, &logits, &err)
                                : 1;
    if (open_failed)
        fprintf(stderr, "garlic run: %s: %s\n", o->dump_logits, strerror(errno));
    else if (rc)
        fprintf(stderr, "garlic run: %s\n", err.message);
    for (uint32_t p = 0; f && rc == 0 && p < n; p++)
        for (uint32_t v = 0; v < m->hp.n_vocab; v++)
            fprintf(f, "%.7g%c", logits[(size_t)p * m->hp.n_vocab + v],
                    v + 1 == m->hp.n_vocab ? '\n' : ' ');
    if (f && fclose(f) != 0 && rc == 0) {
        fprintf(stderr, "garlic run: %s: write failed\n", o->dump_logits);
        rc = 1;
    }
    if (kv)
        kv_seq_deinit(kv, &seq);
    model_state_free(s); // (before its pool: a device's binding ends with the pool)
    kv_cache_free(kv);
    return rc ? 1 : 0;
}

// Writes generated text to stdout (rank 0 only: the other ranks generate the same text in
// step, silently); user, when not NULL, is a uint64_t FNV-1a hash of the text so far, which
// the ranks compare at the end.
static int emit_stdout(void *user, const char *text, size_t len)
{
    uint64_t *hash = user;
    for (size_t i = 0; hash && i < len; i++)
        *hash = (*hash ^ (uint8_t)text[i]) * 0x100000001b3ull;
    if (!cli_local_prints())
        return 0;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
    return 0;
}

static void print_stats(const engine_stats *st, double load_seconds)
{
    if (!cli_local_prints())
        return;
    fprintf(stderr, "\n");
    if (load_seconds > 0)
        fprintf(stderr, "load time:        %8.2f ms\n", load_seconds * 1e3);
    fprintf(stderr, "prompt eval:      %8u tokens %10.2f ms %9.2f tokens/s\n", st->n_prompt,
            st->prompt_seconds * 1e3,
            st->n_prompt / (st->prompt_seconds > 0 ? st->prompt_seconds : 1e-9));
    fprintf(stderr, "generation:       %8u tokens %10.2f ms %9.2f tokens/s\n", st->n_generated,
            st->generate_seconds * 1e3,
            st->n_generated / (st->generate_seconds > 0 ? st->generate_seconds : 1e-9));
}

// The request for a prompt with the command line's sampling, limit and stop strings.
static engine_request_params request_for(const run_options *o, const cli_local *l,
                                         const tokenizer_ids *ids)
{
    engine_request_params p = {.prompt = ids->ids, .n_prompt = ids->n, .n_choices = 1};
    p.generation.sampling = o->sampling;
    p.generation.sampling.n_vocab = (int32_t)tokenizer_vocab_size(registry_model_tokenizer(l->m));
    p.generation.max_tokens = o->n_predict;
    p.generation.stops = o->stops;
    p.generation.n_stops = o->n_stops;
    return p;
}

// Receives a chat reply: to the terminal and into the reply kept for the next turn.
static int emit_reply(void *user, const char *text, size_t len)
{
    emit_stdout(NULL, text, len);
    return garlic_buf_append(user, text, len) == GARLIC_OK ? 0 : 1;
}

// Adds {"role": role, "content": text} to the conversation; false without memory.
static bool add_message(cJSON *messages, const char *role, const char *text)
{
    cJSON *m = cJSON_CreateObject();
    if (!m || !cJSON_AddItemToArray(messages, m))
        return cJSON_Delete(m), false;
    return cJSON_AddStringToObject(m, "role", role) && cJSON_AddStringToObject(m, "content", text);
}

// The prompt of the conversation so far, rendered with the model's template (as the server
// renders /v1/chat/completions) and tokenized. While it leaves no room to answer in the
// context, the oldest exchange after the system message is dropped.
static int chat_prompt(const run_options *o, cli_local *l, cJSON *messages, tokenizer_ids *ids,
                       garlic_error *err)
{
    const tokenizer *t = registry_model_tokenizer(l->m);
    uint32_t n_ctx = registry_model_n_ctx(l->m);
    size_t first = o->system ? 1 : 0;
    for (;;) {
        chat_vars vars = {.messages = messages, .add_generation_prompt = true};
        char *text = NULL;
        size_t len = 0;
        ids->n = 0;
        int rc = chat_prompt_render(registry_model_template(l->m, NULL, NULL, NULL), t, &vars,
                                    &text, &len, err);
        if (rc == GARLIC_OK)
            rc = chat_prompt_tokenize(t, text, len, true, ids, err);
        if (rc == GARLIC_OK && o->verbose)
            fprintf(stderr, "--- prompt (%zu tokens) ---\n%s\n--- end of prompt ---\n", ids->n,
                    text);
        garlic_free(text);
        if (rc || ids->n + 16 <= n_ctx)
            return rc;
        if ((size_t)cJSON_GetArraySize(messages) <= first + 1)
            return garlic_error_set(err, GARLIC_EINVAL,
                                    "the message needs %zu tokens; the "
                                    "context holds %u",
                                    ids->n, n_ctx);
        cJSON_DeleteItemFromArray(messages, (int)first); // the oldest user message...
        if ((size_t)cJSON_GetArraySize(messages) > first + 1)
            cJSON_DeleteItemFromArray(messages, (int)first); // ...and its answer
        fprintf(stderr, "(context full: the oldest exchange is dropped)\n");
    }
}

// Interactive chat: each line is a user message; the conversation is rendered with the
// model's chat template every turn and sent to the engine whole, whose prefix cache keeps the
// earlier turns computed, so each turn computes only its new tokens.
static int chat(const run_options *o, cli_local *l)
{
    cJSON *messages = cJSON_CreateArray();
    if (!messages || (o->system && !add_message(messages, "system", o->system))) {
        cJSON_Delete(messages);
        fprintf(stderr, "garlic run: out of memory\n");
        return 1;
    }
    char *line = NULL;
    size_t line_cap = 0;
    tokenizer_ids ids = {0};
    garlic_buf reply = {0};
    bool tty = isatty(STDIN_FILENO);
    fprintf(stderr, "chatting with %s (context %u); end with Ctrl-D\n", o->model_path,
            registry_model_n_ctx(l->m));
    int status = 0;
    for (;;) {
        if (tty)
            fprintf(stderr, ">>> ");
        ssize_t len = getline(&line, &line_cap, stdin);
        if (len < 0)
            break;
        while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
            line[--len] = '\0';
        if (len == 0)
            continue;
        garlic_error err = {0};
        engine_chunk end;
        garlic_buf_clear(&reply);
        int rc = add_message(messages, "user", line)
            ? GARLIC_OK
            : garlic_error_set(&err, GARLIC_ENOMEM, "out of memory");
        if (rc == GARLIC_OK)
            rc = chat_prompt(o, l, messages, &ids, &err);
        if (rc == GARLIC_OK) {
            engine_request_params p = request_for(o, l, &ids);
            rc = cli_local_generate(l, &p, emit_reply, &reply, &end, &err);
        }
        if (rc == GARLIC_OK && !add_message(messages, "assistant", reply.data ? reply.data : ""))
            rc = garlic_error_set(&err, GARLIC_ENOMEM, "out of memory");
        if (rc != GARLIC_OK) {
            fprintf(stderr, "garlic run: %s\n", err.message);
            status = 1;
            cJSON_DeleteItemFromArray(messages, cJSON_GetArraySize(messages) - 1);
            continue;
        }
        printf("\n");
        if (o->verbose)
            print_stats(&end.stats, 0);
    }
    free(line);
    tokenizer_ids_deinit(&ids);
    garlic_buf_deinit(&reply);
    cJSON_Delete(messages);
    return status;
}

// Builds the prompt: --prompt-ids as given, else the text tokenized as a raw prompt (as
// /v1/completions does: BOS if the vocabulary adds it, special-token text not parsed); ""
// gives BOS alone.
static int build_prompt(const run_options *o, const tokenizer *t, tokenizer_ids *ids)
{
    garlic_error err = {0};
    if (o->prompt_ids)
        return parse_ids(o->prompt_ids, tokenizer_vocab_size(t), ids) ? 1 : 0;
    if (chat_prompt_tokenize(t, o->prompt, strlen(o->prompt), false, ids, &err)) {
        fprintf(stderr, "garlic run: %s\n", err.message);
        return 1;
    }
    return 0;
}

int cli_run(int argc, char **argv)
{
    run_options o;
    int status = parse_run_options(&o, argc, argv);
    if (status != CLI_CONTINUE)
        return status;
    if (!o.prompt && !o.prompt_ids && (o.tensor_parallel > 1 || o.pipeline_parallel > 1))
        return cli_usage_error(&run_command,
                               "--tensor-parallel needs a PROMPT (or "
                               "--prompt-ids): the chat runs in one process");
    status = 0;
    garlic_error err = {0};
    registry_config cfg = {.n_ctx = o.n_ctx,
                           .parallel = 1,
                           .step_tokens = o.batch,
                           .n_threads = o.threads,
                           .kv_type = o.kv_type,
                           .quantize = o.quantize,
                           .chat_template_file = o.template_file};
    cli_local l;
    if (cli_local_tensor_parallel(o.tensor_parallel, o.pipeline_parallel, o.dist_timeout, argc,
                                  argv, &cfg, &err) != GARLIC_OK ||
        cli_local_device(o.device, o.gpu_layers, &cfg, &err) != GARLIC_OK ||
        cli_local_open(&l, o.model_path, &cfg, &err) != GARLIC_OK) {
        fprintf(stderr, "garlic run: %s\n", err.message);
        return 1;
    }
    o.sampling.seed = cli_local_shared_seed(o.sampling.seed);
    if (!o.prompt && !o.prompt_ids) {
        status = chat(&o, &l);
        cli_local_close(&l);
        return status;
    }
    tokenizer_ids ids = {0};
    status = build_prompt(&o, registry_model_tokenizer(l.m), &ids);
    if (status == 0 && o.dump_logits)
        status = dump_logits(registry_model_weights(l.m), &o, &l, &ids);
    if (status == 0) {
        engine_request_params p = request_for(&o, &l, &ids);
        engine_chunk end;
        uint64_t hash = 0xcbf29ce484222325ull;
        int rc = cli_local_generate(&l, &p, emit_stdout, &hash, &end, &err);
        // Ranks in step generate the same text; one that did not is a fault, not a result.
        if (rc == GARLIC_OK)
            rc = dist_check_same(&hash, sizeof hash, "generated text (out of step)", &err);
        if (rc != GARLIC_OK) {
            fprintf(stderr, "garlic run: %s\n", err.message);
            status = 1;
        } else if (o.verbose) {
            print_stats(&end.stats, l.load_seconds);
        }
    }
    tokenizer_ids_deinit(&ids);
    cli_local_close(&l);
    return status;
}
