// SPDX-License-Identifier: MIT
// Streamed answers: the server's HTTP thread reads a stream piece by piece; the stream waits
// for the next chunk from the registry (asking the server every 100 ms whether the client is
// still there), has its flavour's formatter turn it into SSE events or NDJSON lines, and
// hands the bytes out. When the client goes away the request is cancelled at once; when the
// distributed job fails (api_fault) the stream ends with an error event at once.
#include <stdio.h>
#include <string.h>

#include "api/internal.h"
#include "base/alloc.h"
#include "base/buffer.h"
#include "base/clock.h"
#include "engine/engine.h"

api_stream *api_stream_new(api_job *job, const api_stream_ops *ops)
{
    api_stream *s = garlic_calloc(1, sizeof *s);
    if (!s)
        return NULL;
    s->job = *job;
    s->job.usage = NULL; // the server asks the stream at its end (api_stream_usage)
    memset(job, 0, sizeof *job);
    s->ops = ops;
    return s;
}

api_stream *api_stream_of_task(api_task *t)
{
    api_stream *s = garlic_calloc(1, sizeof *s);
    if (!s) {
        api_task_release(t);
        return NULL;
    }
    s->task = t;
    return s;
}

void api_stream_usage(api_stream *s, api_usage *usage) { api_job_usage(&s->job, usage); }

void api_stream_free(api_stream *s)
{
    if (!s)
        return;
    api_task_release(s->task);
    api_job_deinit(&s->job);
    garlic_buf_deinit(&s->call_args);
    garlic_free(s->out);
    garlic_free(s);
}

int api_stream_write(api_stream *s, const char *data, size_t len)
{
    if (len == 0)
        return GARLIC_OK;
    if (s->out_pos == s->out_len)
        s->out_pos = s->out_len = 0;
    if (garlic_grow(&s->out, &s->out_cap, s->out_len + len, 1))
        return GARLIC_ENOMEM;
    memcpy(s->out + s->out_len, data, len);
    s->out_len += len;
    return GARLIC_OK;
}

int api_stream_write_json(api_stream *s, const char *prefix, cJSON *root, const char *suffix)
{
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    cJSON_Delete(root);
    if (!text)
        return GARLIC_ENOMEM;
    int rc = api_stream_write(s, prefix, strlen(prefix));
    if (rc == GARLIC_OK)
        rc = api_stream_write(s, text, strlen(text));
    if (rc == GARLIC_OK)
        rc = api_stream_write(s, suffix, strlen(suffix));
    cJSON_free(text);
    return rc;
}

// Waits for the next chunk and formats it; 0 when something was written or the stream
// ended, -1 when the client is gone or formatting ran out of memory.
static int advance(api_stream *s, api_alive_fn alive, void *ctx)
{
    for (;;) {
        if (alive && !alive(ctx))
            return -1;
        if (s->task) {
            int status = 0;
            if (api_task_read(s->task, s, &s->ended, &status) != GARLIC_OK)
                return -1;
            garlic_error err = {0};
            if (s->ended && s->sync_reg) // the model it made is served before "success" is read
                api_store_sync(s->sync_reg, s->sync_root, &err);
            static const char success[] = "{\"status\":\"success\"}\n";
            if (s->ended && status == 200 && api_stream_write(s, success, sizeof success - 1))
                return -1;
            if (s->ended || s->out_len > s->out_pos)
                return 0;
            continue;
        }
        // Cancelled by the server (the stream itself cancels only when its client is gone,
        // and then reads no more): the text still buffered is dropped and the client told
        // at once, so a shutdown's flush does not wait for it.
        if (engine_request_cancelled(s->job.req)) {
            s->ended = true;
            return s->ops->fail(s, api_cut_message, "generation_cut") == GARLIC_OK ? 0 : -1;
        }
        // The distributed job failed: the engine's thread is stuck in a collective and will
        // send nothing more, so the client is told here, before the job ends.
        api_error fault = {0};
        if (api_fault(&fault)) {
            s->ended = true;
            return s->ops->fail(s, fault.message, fault.code) == GARLIC_OK ? 0 : -1;
        }
        engine_chunk c;
        if (!engine_request_next(s->job.req, &c, 100))
            continue;
        if (s->job.t_first == 0 && (c.len || c.n_tokens))
            s->job.t_first = garlic_now();
        if (c.choice_done) {
            s->job.generated += c.output_tokens;
            s->completion_tokens += c.output_tokens;
            s->last_stats = c.stats;
            s->last_finish = c.finish;
        }
        // Cut by the server (or failed) after the status line went out: an error event, never
        // a normal end that would read as a finished answer.
        if (c.error || (c.choice_done && c.finish == ENGINE_FINISH_CANCEL)) {
            char message[600];
            if (c.error)
                snprintf(message, sizeof message, "generation failed: %s",
                         c.error_message ? c.error_message : "error");
            else
                snprintf(message, sizeof message, "%s", api_cut_message);
            s->ended = true;
            return s->ops->fail(s, message, "generation_cut") == GARLIC_OK ? 0 : -1;
        }
        if (s->ops->chunk(s, &c) != GARLIC_OK)
            return -1;
        if (c.all_done) {
            s->ended = true;
            return s->ops->end(s) == GARLIC_OK ? 0 : -1;
        }
        if (s->out_len > s->out_pos)
            return 0;
    }
}

ssize_t api_stream_read(api_stream *s, char *buf, size_t max, api_alive_fn alive, void *ctx)
{
    while (s->out_len == s->out_pos) {
        if (s->ended)
            return 0;
        if (advance(s, alive, ctx) != 0) {
            if (s->job.req)
                engine_request_cancel(s->job.req);
            return -1;
        }
    }
    size_t n = s->out_len - s->out_pos;
    if (n > max)
        n = max;
    memcpy(buf, s->out + s->out_pos, n);
    s->out_pos += n;
    return (ssize_t)n;
}
