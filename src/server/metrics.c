// SPDX-License-Identifier: MIT
// /metrics in Prometheus' text exposition format: HTTP requests by endpoint and status,
// prompt and generated tokens, time-to-first-token and per-token latency histograms, queue
// length, requests and sequences running and waiting, KV blocks (used, cached, free), prefix
// cache hits, evictions and preemptions, models loaded, loads and unloads, memory in use and
// its budget, and per loaded model its planned bytes, its KV use and each running sequence's
// blocks.
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "base/alloc.h"
#include "base/buffer.h"
#include "server/internal.h"

static const int counted_status[METRICS_STATUS_COUNT - 1] = {200, 204, 400, 401, 404,
                                                             405, 413, 431, 500, 503};

void server_metrics_count(server_metrics *m, size_t endpoint, int status)
{
    size_t s = METRICS_STATUS_COUNT - 1;
    for (size_t i = 0; i < METRICS_STATUS_COUNT - 1; i++)
        if (counted_status[i] == status)
            s = i;
    if (endpoint >= m->n_endpoints)
        endpoint = m->n_endpoints - 1;
    atomic_fetch_add(&m->requests[endpoint][s], 1);
}

// The exposition text; a failed append is remembered and reported once at the end.
typedef struct text_buf {
    garlic_buf buf;
    bool failed;
} text_buf;

static void put(text_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void put(text_buf *b, const char *fmt, ...)
{
    if (b->failed)
        return;
    va_list ap;
    va_start(ap, fmt);
    b->failed = garlic_buf_vprintf(&b->buf, fmt, ap) != GARLIC_OK;
    va_end(ap);
}

static void put_histogram(text_buf *b, const char *name, const char *help,
                          const registry_histogram *h)
{
    put(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    for (size_t i = 0; i < h->n_buckets; i++)
        put(b, "%s_bucket{le=\"%g\"} %llu\n", name, h->bounds[i], (unsigned long long)h->counts[i]);
    put(b, "%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)h->count);
    put(b, "%s_sum %.6f\n%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

// name with the characters a Prometheus label value cannot hold raw escaped, into buf.
static const char *label(const char *name, char *buf, size_t cap)
{
    size_t o = 0;
    for (const char *p = name; *p && o + 3 < cap; p++) {
        if (*p == '"' || *p == '\\')
            buf[o++] = '\\', buf[o++] = *p;
        else if (*p == '\n')
            buf[o++] = '\\', buf[o++] = 'n';
        else
            buf[o++] = *p;
    }
    buf[o] = '\0';
    return buf;
}

// Per loaded model: its planned bytes, KV pool and use, requests; per running sequence:
// the KV blocks it holds, labelled with its response id.
static void put_models(text_buf *b, registry *reg)
{
    char name[1024];
    size_t n = registry_count(reg);
    static const struct {
        const char *metric, *help;
        size_t offset;
    } per_model[] = {
        {"garlic_model_memory_bytes", "Planned bytes of a loaded model.",
         offsetof(registry_model_ps, bytes)},
        {"garlic_model_kv_used_bytes", "KV pool bytes held by a model's sequences.",
         offsetof(registry_model_ps, kv_used_bytes)},
        {"garlic_model_device_bytes",
         "Bytes a model's layers hold on the GPU (weights and KV rows; 0 asleep).",
         offsetof(registry_model_ps, device_bytes)},
    };
    for (size_t k = 0; k < sizeof per_model / sizeof per_model[0]; k++) {
        put(b, "# HELP %s %s\n# TYPE %s gauge\n", per_model[k].metric, per_model[k].help,
            per_model[k].metric);
        for (size_t i = 0; i < n; i++) {
            registry_model *m = registry_model_at(reg, i);
            if (!m)
                continue;
            registry_model_ps ps;
            registry_model_ps_get(m, &ps);
            uint64_t v;
            memcpy(&v, (const char *)&ps + per_model[k].offset, sizeof v);
            if (ps.loaded)
                put(b, "%s{model=\"%s\"} %llu\n", per_model[k].metric,
                    label(registry_model_name(m), name, sizeof name), (unsigned long long)v);
        }
    }
    put(b,
        "# HELP garlic_sequence_kv_blocks KV blocks a running request's choice holds.\n"
        "# TYPE garlic_sequence_kv_blocks gauge\n");
    enum { MAX_SEQS = 256 };
    engine_seq_info *seqs = garlic_calloc(MAX_SEQS, sizeof *seqs);
    for (size_t i = 0; seqs && i < n; i++) {
        registry_model *m = registry_model_at(reg, i);
        size_t k = m ? registry_model_sequences(m, seqs, MAX_SEQS) : 0;
        for (size_t j = 0; j < k; j++)
            put(b, "garlic_sequence_kv_blocks{model=\"%s\",request=\"%s\",choice=\"%u\"} %u\n",
                label(registry_model_name(m), name, sizeof name), seqs[j].label, seqs[j].choice,
                seqs[j].kv_blocks);
    }
    garlic_free(seqs);
}

static void put_value(text_buf *b, const char *name, const char *type, const char *help,
                      double value)
{
    put(b, "# HELP %s %s\n# TYPE %s %s\n%s %.10g\n", name, help, name, type, name, value);
}

char *server_metrics_render(server_metrics *m, registry *reg, size_t *len)
{
    text_buf b = {0};
    put(&b,
        "# HELP garlic_http_requests_total HTTP requests answered, by endpoint and status.\n"
        "# TYPE garlic_http_requests_total counter\n");
    for (size_t e = 0; e < m->n_endpoints; e++) {
        for (size_t s = 0; s < METRICS_STATUS_COUNT; s++) {
            unsigned long n = atomic_load(&m->requests[e][s]);
            if (!n)
                continue;
            char status[16];
            snprintf(status, sizeof status, "%d",
                     s < METRICS_STATUS_COUNT - 1 ? counted_status[s] : 0);
            put(&b, "garlic_http_requests_total{endpoint=\"%s\",status=\"%s\"} %lu\n",
                m->endpoints[e], s < METRICS_STATUS_COUNT - 1 ? status : "other", n);
        }
    }
    registry_stats st;
    registry_stats_get(reg, &st);
    put_value(&b, "garlic_prompt_tokens_total", "counter", "Prompt tokens evaluated.",
              (double)st.prompt_tokens);
    put_value(&b, "garlic_generated_tokens_total", "counter", "Tokens generated.",
              (double)st.generated_tokens);
    put_value(&b, "garlic_generations_total", "counter", "Generation requests finished.",
              (double)st.requests_done);
    put_value(&b, "garlic_generations_cancelled_total", "counter",
              "Generation requests cancelled (client gone or shutdown).",
              (double)st.requests_cancelled);
    put_histogram(&b, "garlic_time_to_first_token_seconds",
                  "Seconds from queueing a request to its first token.", &st.ttft);
    put_histogram(&b, "garlic_token_latency_seconds", "Seconds between consecutive tokens.",
                  &st.token_latency);
    put_value(&b, "garlic_queue_length", "gauge", "Requests waiting for their model.",
              st.queue_length);
    put_value(&b, "garlic_requests_running", "gauge", "Requests being generated.", st.running);
    put_value(&b, "garlic_sequences_running", "gauge", "Sequences (choices) in the running batch.",
              st.kv.running);
    put_value(&b, "garlic_sequences_waiting", "gauge",
              "Sequences and queued requests waiting for KV blocks or a running slot.",
              st.kv.waiting);
    put_value(&b, "garlic_kv_blocks_total", "gauge", "Blocks in the KV pools.", st.kv.kv_blocks);
    put_value(&b, "garlic_kv_blocks_used", "gauge", "KV blocks held by sequences.", st.kv.kv_used);
    put_value(&b, "garlic_kv_blocks_cached", "gauge",
              "KV blocks kept only by the prefix cache (reclaimable).", st.kv.kv_cached);
    put_value(&b, "garlic_kv_blocks_free", "gauge", "KV blocks never used or freed.",
              st.kv.kv_free);
    put_value(&b, "garlic_kv_window_blocks_total", "gauge",
              "Window blocks in the KV pools (sliding-window layers' rows).",
              st.kv.kv_window_blocks);
    put_value(&b, "garlic_kv_window_blocks_used", "gauge", "Window blocks held by sequences.",
              st.kv.kv_window_used);
    put_value(&b, "garlic_kv_block_tokens", "gauge", "Positions per KV block.", st.kv.block_tokens);
    put_value(&b, "garlic_kv_bytes", "gauge", "Bytes of the KV pools.", (double)st.kv.kv_bytes);
    put_value(&b, "garlic_prefix_cache_hits_total", "counter",
              "Full prompt blocks found in the prefix cache (not recomputed).",
              (double)st.kv.prefix_hits);
    put_value(&b, "garlic_prefix_cache_misses_total", "counter",
              "Full prompt blocks looked up in the prefix cache and computed.",
              (double)st.kv.prefix_misses);
    uint64_t looked = st.kv.prefix_hits + st.kv.prefix_misses;
    put_value(&b, "garlic_prefix_cache_hit_rate", "gauge",
              "Prefix cache hits / lookups since start (0 before any lookup).",
              looked ? (double)st.kv.prefix_hits / (double)looked : 0.0);
    put_value(&b, "garlic_kv_evictions_total", "counter", "Cached KV blocks reclaimed for new use.",
              (double)st.kv.evictions);
    put_value(&b, "garlic_preemptions_total", "counter",
              "Sequences preempted (blocks taken back, recomputed later) when the pool ran out.",
              (double)st.kv.preemptions);
    put_value(&b, "garlic_streams_open", "gauge", "Streamed answers being sent.",
              atomic_load(&m->streams));
    put_value(&b, "garlic_models_loaded", "gauge", "Models loaded.", st.models_loaded);
    put_value(&b, "garlic_memory_bytes", "gauge",
              "Planned bytes of loaded models: weight mappings, KV pools, buffers, overhead.",
              (double)st.memory_bytes);
    put_value(&b, "garlic_memory_budget_bytes", "gauge",
              "The memory budget loaded models share (--memory-budget).", (double)st.memory_budget);
    put_value(&b, "garlic_model_loads_total", "counter", "Model loads.", (double)st.loads);
    put_value(&b, "garlic_model_unloads_total", "counter",
              "Model unloads (keep_alive expiry, room for another model, or asked).",
              (double)st.unloads);
    put_models(&b, reg);
    if (b.failed) {
        garlic_buf_deinit(&b.buf);
        return NULL;
    }
    *len = b.buf.len;
    return garlic_buf_take(&b.buf);
}
