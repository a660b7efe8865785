// SPDX-License-Identifier: MIT
// Long model-management work (a pull, a create) on a thread of its own, reporting as NDJSON
// status lines: the handler streams them to the client (through api_stream, as Ollama streams
// /api/pull), or waits for the last one when the request asked for no stream. The task is
// shared by its thread and its reader and freed by whichever lets go last; a reader that goes
// away (a client that disconnects) cancels it.
#include <pthread.h>
#include <string.h>

#include "api/internal.h"
#include "base/alloc.h"
#include "base/buffer.h"
#include "base/clock.h"

struct api_task {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    garlic_buf lines; // NDJSON not yet handed to the reader
    char *last;       // the last line, without its newline (garlic_malloc'd)
    int status;       // the HTTP status the task ended with (200, or its error's)
    bool done;
    bool cancelled;
    int refs; // the thread and the reader
    api_task_fn fn;
    void *arg;
    void (*arg_free)(void *arg);
};

static void task_unref(api_task *t)
{
    pthread_mutex_lock(&t->mu);
    bool last = --t->refs == 0;
    pthread_mutex_unlock(&t->mu);
    if (!last)
        return;
    if (t->arg_free)
        t->arg_free(t->arg);
    garlic_buf_deinit(&t->lines);
    garlic_free(t->last);
    pthread_mutex_destroy(&t->mu);
    pthread_cond_destroy(&t->cv);
    garlic_free(t);
}

static void *task_main(void *p)
{
    api_task *t = p;
    int status = t->fn(t, t->arg);
    pthread_mutex_lock(&t->mu);
    t->status = status;
    t->done = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    task_unref(t);
    return NULL;
}

api_task *api_task_start(api_task_fn fn, void *arg, void (*arg_free)(void *arg))
{
    api_task *t = garlic_calloc(1, sizeof *t);
    if (!t) {
        if (arg_free)
            arg_free(arg);
        return NULL;
    }
    pthread_mutex_init(&t->mu, NULL);
    garlic_cond_init(&t->cv);
    t->fn = fn, t->arg = arg, t->arg_free = arg_free;
    t->refs = 2;
    pthread_t th;
    pthread_attr_t attr;
    pthread_attr_init(&attr);
    pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
    int rc = pthread_create(&th, &attr, task_main, t);
    pthread_attr_destroy(&attr);
    if (rc != 0) {
        t->refs = 1;
        task_unref(t);
        return NULL;
    }
    return t;
}

void api_task_emit(api_task *t, cJSON *line)
{
    char *text = line ? cJSON_PrintUnformatted(line) : NULL;
    cJSON_Delete(line);
    if (!text)
        return;
    pthread_mutex_lock(&t->mu);
    if (garlic_buf_append_str(&t->lines, text) == GARLIC_OK)
        garlic_buf_append(&t->lines, "\n", 1);
    garlic_free(t->last);
    t->last = garlic_strndup(text, SIZE_MAX);
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    cJSON_free(text);
}

void api_task_emit_status(api_task *t, const char *status)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "status", status);
    api_task_emit(t, o);
}

bool api_task_cancelled(api_task *t)
{
    pthread_mutex_lock(&t->mu);
    bool c = t->cancelled;
    pthread_mutex_unlock(&t->mu);
    return c;
}

void api_task_release(api_task *t)
{
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->cancelled = true;
    pthread_mutex_unlock(&t->mu);
    task_unref(t);
}

int api_task_read(api_task *t, api_stream *s, bool *ended, int *status)
{
    pthread_mutex_lock(&t->mu);
    if (!t->lines.len && !t->done)
        garlic_cond_wait_for(&t->cv, &t->mu, 0.1);
    int rc = api_stream_write(s, t->lines.data, t->lines.len);
    garlic_buf_clear(&t->lines);
    *ended = t->done && rc == GARLIC_OK;
    *status = t->status;
    pthread_mutex_unlock(&t->mu);
    return rc;
}

int api_task_wait(api_task *t, api_alive_fn alive, void *ctx, char **last)
{
    pthread_mutex_lock(&t->mu);
    while (!t->done) {
        pthread_mutex_unlock(&t->mu);
        if (alive && !alive(ctx))
            return 0;
        pthread_mutex_lock(&t->mu);
        if (!t->done)
            garlic_cond_wait_for(&t->cv, &t->mu, 0.1);
    }
    int status = t->status;
    *last = t->last;
    t->last = NULL;
    pthread_mutex_unlock(&t->mu);
    return status;
}
