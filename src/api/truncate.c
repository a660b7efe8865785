// SPDX-License-Identifier: MIT
// A prompt that leaves no position of the context to generate, handled as the request's API
// does, never passed on to produce nonsense. OpenAI requests get a 400 with code
// context_length_exceeded that states the context and the prompt's length. Ollama requests
// are cut to fit, as Ollama does, and a "truncate" line in the log says what was dropped: a
// chat drops its oldest messages, keeping every system message and the latest turns; what
// still does not fit, and a generate prompt, loses tokens from the front (BOS stays), keeping
// the prompt's end. Ollama's "truncate": false asks for the 400 instead.
#include <string.h>

#include "api/internal.h"
#include "base/alloc.h"
#include "base/log.h"

// The 400 for a prompt of n_prompt tokens that does not fit n_ctx positions.
static int too_long(const api_job *job, size_t n_prompt, uint32_t n_ctx, api_error *err)
{
    const char *what = job->in.messages ? "messages" : "prompt";
    api_error_set(err, 400, what,
                  "This model's maximum context length is %u tokens. However, your request has "
                  "%zu prompt tokens, which leaves no room to generate. Please reduce the length "
                  "of the %s.",
                  n_ctx, n_prompt, what);
    err->code = "context_length_exceeded";
    return GARLIC_EINVAL;
}

// The prompt tokens an Ollama prompt is cut to: the context less room to generate, which is
// num_predict when given (at most half the context), else a quarter of the context. garlic
// does not shift the context while generating, so the room is left up front.
static size_t fit_limit(const api_job *job, uint32_t n_ctx)
{
    uint32_t room = job->in.max_tokens ? job->in.max_tokens : n_ctx / 4;
    if (room > n_ctx / 2)
        room = n_ctx / 2;
    return n_ctx - (room ? room : 1);
}

static bool is_system(const cJSON *message)
{
    const cJSON *role = cJSON_GetObjectItemCaseSensitive(message, "role");
    return cJSON_IsString(role) && strcmp(role->valuestring, "system") == 0;
}

// Tokenizes the request's system messages and its other messages from index start on.
static int prompt_from(api_job *job, size_t start, tokenizer_ids *ids, api_error *err)
{
    cJSON *kept = cJSON_CreateArray(); // references: deleting it leaves the messages alone
    size_t i = 0;
    for (cJSON *m = job->in.messages->child; kept && m; m = m->next, i++)
        if ((i >= start || is_system(m)) && !cJSON_AddItemReferenceToArray(kept, m))
            cJSON_Delete(kept), kept = NULL;
    int rc = kept ? api_job_prompt(job, kept, ids, err)
                  : api_error_set(err, 503, NULL, "out of memory");
    cJSON_Delete(kept);
    return rc;
}

// Drops a chat's oldest non-system messages until the prompt fits limit tokens or only the
// last message is left; ids gets that prompt. Fit only grows with start (fewer messages), so
// the smallest start that fits is found by bisection: a few renderings, not one a message.
static int drop_messages(api_job *job, size_t limit, tokenizer_ids *ids, size_t *dropped,
                         api_error *err)
{
    size_t n = (size_t)cJSON_GetArraySize(job->in.messages);
    size_t lo = 0, hi = n - 1; // start lo does not fit (the whole chat), hi is to be seen
    int rc = prompt_from(job, hi, ids, err);
    if (rc == GARLIC_OK && ids->n <= limit) {
        while (rc == GARLIC_OK && hi - lo > 1) {
            size_t mid = lo + (hi - lo) / 2;
            rc = prompt_from(job, mid, ids, err);
            if (rc == GARLIC_OK)
                *(ids->n <= limit ? &hi : &lo) = mid;
        }
        if (rc == GARLIC_OK)
            rc = prompt_from(job, hi, ids, err);
    }
    size_t i = 0;
    *dropped = 0;
    for (const cJSON *m = job->in.messages->child; m && i < hi; m = m->next, i++)
        *dropped += !is_system(m);
    return rc;
}

// Cuts ids to limit tokens, dropping from the front but keeping a leading BOS. With
// keep_prompt the logged prompt becomes the text of what is left.
static void cut_front(api_job *job, tokenizer_ids *ids, size_t limit)
{
    int32_t bos = tokenizer_special_id(job->tok, TOKENIZER_SPECIAL_BOS);
    size_t keep = bos >= 0 && ids->ids[0] == bos ? 1 : 0;
    size_t drop = ids->n - limit;
    memmove(ids->ids + keep, ids->ids + keep + drop, (limit - keep) * sizeof *ids->ids);
    ids->n = limit;
    if (!job->keep_prompt)
        return;
    tokenizer_text text = {0};
    garlic_error gerr = {0};
    garlic_free(job->prompt_text);
    job->prompt_text = NULL;
    if (tokenizer_decode(job->tok, ids->ids, ids->n, TOKENIZER_RENDER_SPECIAL, &text, &gerr) ==
        GARLIC_OK)
        job->prompt_text = garlic_buf_take(&text);
    tokenizer_text_deinit(&text);
}

int api_job_fit(api_job *job, tokenizer_ids *ids, api_error *err)
{
    uint32_t n_ctx = registry_model_n_ctx(job->model);
    size_t n_prompt = ids->n;
    bool ollama = job->in.kind == API_KIND_OLLAMA_GENERATE || job->in.kind == API_KIND_OLLAMA_CHAT;
    if (!ollama || !job->in.truncate)
        return too_long(job, n_prompt, n_ctx, err);
    size_t limit = fit_limit(job, n_ctx), dropped = 0;
    int rc = GARLIC_OK;
    if (job->in.messages && job->in.messages->child && job->in.messages->child->next)
        rc = drop_messages(job, limit, ids, &dropped, err);
    if (rc != GARLIC_OK)
        return rc;
    size_t rendered = ids->n;
    if (ids->n > limit)
        cut_front(job, ids, limit);
    garlic_log_line l;
    garlic_log_begin(&l, "truncate");
    garlic_log_str(&l, "model", job->in.model);
    garlic_log_int(&l, "context", n_ctx);
    garlic_log_int(&l, "prompt_tokens", (int64_t)n_prompt);
    garlic_log_int(&l, "kept_tokens", (int64_t)ids->n);
    if (job->in.messages)
        garlic_log_int(&l, "dropped_messages", (int64_t)dropped);
    garlic_log_int(&l, "cut_tokens", (int64_t)(rendered - ids->n));
    garlic_log_end(&l);
    return GARLIC_OK;
}
