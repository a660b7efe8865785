// SPDX-License-Identifier: MIT
// The registry in-process: naming and lookup, loading on first use, the statistics its
// engines' hooks feed (tokens, time to first token, requests done and cancelled, KV counts
// kept across an unload), and draining (new work refused, running work finished within the
// grace time, cancelled after it), and a model file that changes while it is served. The engine's own behaviour is tests/engine's; the models'
// lifecycle under a memory budget is test_lifecycle.c's.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "model/synth.h"
#include "registry/registry.h"
#include "util.h"

static char model_path[600];

static int setup(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    p.context = 2048;
    snprintf(model_path, sizeof model_path, "%s", test_temp_path("registry-model.gguf"));
    garlic_error err;
    return model_synth_write(&p, model_path, &err) ? -1 : 0;
}

static registry *new_registry(uint32_t max_queue)
{
    registry_config cfg = {.n_ctx = 2048,
                           .max_queue = max_queue,
                           .n_threads = 1,
                           .kv_type = KV_TYPE_F16,
                           .parallel = 1};
    garlic_error err = {0};
    registry *reg = registry_new(&cfg, &err);
    assert_non_null(reg);
    assert_int_equal(registry_add(reg, model_path, "m", &err), GARLIC_OK);
    return reg;
}

// The model "m" of reg, loaded.
static registry_model *acquire(registry *reg)
{
    registry_model *m = registry_find(reg, "m");
    double seconds;
    garlic_error err = {0};
    assert_int_equal(registry_model_acquire(m, &seconds, &err), GARLIC_OK);
    return m;
}

static void test_names_and_loading(void **state)
{
    (void)state;
    registry *reg = new_registry(4);
    garlic_error err = {0};
    assert_int_equal(registry_add(reg, model_path, NULL, &err), GARLIC_OK);
    assert_non_null(registry_find(reg, "registry-model"));
    assert_int_equal(registry_add(reg, model_path, "m", &err), GARLIC_EINVAL);
    assert_non_null(strstr(err.message, "exists already"));
    assert_int_equal(registry_add(reg, "/nonexistent.gguf", NULL, &err), GARLIC_EIO);
    registry_model *m = registry_find(reg, "m");
    assert_false(registry_model_loaded(m));
    double seconds;
    assert_int_equal(registry_model_acquire(m, &seconds, &err), GARLIC_OK);
    assert_true(registry_model_loaded(m));
    assert_int_equal(registry_model_n_ctx(m), 2048);
    assert_null(registry_model_template(m, NULL, NULL, NULL));
    registry_stats st;
    registry_stats_get(reg, &st);
    assert_int_equal(st.models_loaded, 1);
    registry_free(reg);
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// Models come and go while the registry serves: a removed model is neither found nor
// listed, a loaded one is unloaded once idle, the name can be added again (the same entry
// comes back for the same model), and registry_put replaces a store model of that name but
// never one added without a store name.
static void test_add_remove_put(void **state)
{
    (void)state;
    registry *reg = new_registry(4);
    garlic_error err = {0};
    registry_extras x = {.system = "be brief", .store_name = "registry.ollama.ai/library/s:latest"};
    assert_int_equal(registry_add_with(reg, model_path, "s:latest", &x, &err), GARLIC_OK);
    registry_model *s = registry_find(reg, "s:latest");
    assert_non_null(s);
    assert_string_equal(registry_model_extras(s)->system, "be brief");
    assert_null(registry_model_extras(s)->params_json);
    size_t n = registry_count(reg);

    double seconds;
    assert_int_equal(registry_model_acquire(s, &seconds, &err), GARLIC_OK);
    assert_int_equal(registry_remove(reg, "s:latest", &err), GARLIC_OK);
    assert_null(registry_find(reg, "s:latest"));
    assert_null(registry_model_at(reg, n - 1));
    assert_true(registry_model_loaded(s)); // in use: it stays until released
    registry_model_release(s, 300);
    for (int i = 0; i < 500 && registry_model_loaded(s); i++) // the reaper unloads it soon,
        sleep_ms(10);                                         // whatever keep_alive says
    assert_false(registry_model_loaded(s));
    assert_int_equal(registry_remove(reg, "s:latest", &err), GARLIC_ENOTFOUND);

    // The same model again: the old entry comes back, no new one is made.
    assert_int_equal(registry_add_with(reg, model_path, "s:latest", &x, &err), GARLIC_OK);
    assert_ptr_equal(registry_find(reg, "s:latest"), s);
    assert_int_equal(registry_count(reg), n);

    // put: nothing for the same, a replacement for a changed store model.
    assert_int_equal(registry_put(reg, model_path, "s:latest", &x, &err), GARLIC_OK);
    assert_ptr_equal(registry_find(reg, "s:latest"), s);
    registry_extras y = x;
    y.params_json = "{\"temperature\":0}";
    assert_int_equal(registry_put(reg, model_path, "s:latest", &y, &err), GARLIC_OK);
    registry_model *s2 = registry_find(reg, "s:latest");
    assert_ptr_not_equal(s2, s);
    assert_string_equal(registry_model_extras(s2)->params_json, "{\"temperature\":0}");
    assert_int_equal(registry_count(reg), n + 1);
    // "m" came from -m (no store name): put may not replace it.
    assert_int_equal(registry_put(reg, model_path, "m", &y, &err), GARLIC_EINVAL);
    assert_null(registry_model_extras(registry_find(reg, "m"))->params_json);
    registry_free(reg);
}

// The registry's statistics once requests_done reached want (a request released before its
// end is counted when its scheduler drops it, a step or so later).
static void stats_after(registry *reg, uint64_t want, registry_stats *st)
{
    for (int i = 0; i < 1000; i++) {
        registry_stats_get(reg, st);
        if (st->requests_done >= want)
            return;
        sleep_ms(2);
    }
    fail_msg("%llu requests counted, %llu expected", (unsigned long long)st->requests_done,
             (unsigned long long)want);
}

// The hooks count every token (the first of each choice as its time to first token),
// prompts, requests done and cancelled; the KV counts are the engine's, and its counters
// (peak running) outlive an unload while its gauges go to zero.
static void test_stats(void **state)
{
    (void)state;
    registry_config cfg = {
        .n_ctx = 2048, .n_threads = 1, .parallel = 2, .keep_alive = 300, .keep_alive_set = true};
    garlic_error err = {0};
    registry *reg = registry_new(&cfg, &err);
    assert_non_null(reg);
    assert_int_equal(registry_add(reg, model_path, "m", &err), GARLIC_OK);
    registry_model *m = acquire(reg);
    engine_request *r = test_request_new(6, 3);
    assert_int_equal(registry_submit(m, r, &err), GARLIC_OK);
    engine_chunk c;
    test_request_finish(r, 60, &c);
    engine_request_release(r);
    registry_stats st;
    stats_after(reg, 1, &st);
    assert_int_equal(st.generated_tokens, 3 * 6);
    assert_int_equal(st.ttft.count, 3);
    assert_int_equal(st.token_latency.count, 3 * 5);
    assert_int_equal(st.prompt_tokens, 4);
    assert_int_equal(st.requests_cancelled, 0);
    assert_int_equal(st.models_loaded, 1);
    assert_int_equal(st.loads, 1);
    assert_int_equal(st.memory_bytes, registry_model_bytes(m));
    assert_int_equal(st.kv.kv_blocks, 2 * 2048 / 16); // --parallel 2: two whole contexts
    assert_int_equal(st.kv.parallel, 2);
    assert_int_equal(st.kv.peak_running, 2);

    // A client that goes away: its request is counted cancelled.
    r = test_request_new(1500, 1);
    assert_int_equal(registry_submit(m, r, &err), GARLIC_OK);
    size_t text = 0;
    while (text < 10)
        if (engine_request_next(r, &c, 1000))
            text += c.len;
    engine_request_release(r);
    stats_after(reg, 2, &st);
    assert_int_equal(st.requests_cancelled, 1);
    assert_int_equal(st.prompt_tokens, 8);

    // Unloaded: the gauges end with the engine, the counters stay.
    registry_model_release(m, 0);
    for (int i = 0; i < 1000 && (registry_model_loaded(m) || registry_reserved(reg)); i++)
        sleep_ms(5);
    assert_false(registry_model_loaded(m));
    engine_counters k;
    registry_model_stats_get(m, &k);
    assert_int_equal(k.kv_blocks, 0);
    assert_int_equal(k.running, 0);
    assert_int_equal(k.peak_running, 2);
    registry_stats_get(reg, &st);
    assert_int_equal(st.models_loaded, 0);
    assert_int_equal(st.unloads, 1);
    assert_int_equal(st.requests_done, 2);
    registry_free(reg);
}

// Reads r (submitted) to its end, its text into buf (cap bytes, NUL-ended, cut to fit).
static void read_text(engine_request *r, char *buf, size_t cap)
{
    size_t n = 0;
    engine_chunk c;
    double deadline = garlic_now() + 60;
    do {
        if (garlic_now() > deadline)
            fail_msg("the request did not end within 60 s");
        if (!engine_request_next(r, &c, 100))
            continue;
        if (c.error != GARLIC_OK)
            fail_msg("the request failed: %s", c.error_message);
        size_t take = c.len < cap - 1 - n ? c.len : cap - 1 - n;
        memcpy(buf + n, c.text, take);
        n += take;
    } while (!c.all_done);
    buf[n] = '\0';
}

// Sleep: a model unused for sleep_after seconds frees its engine (its pools, a device's
// copies of its weights) but stays loaded with its budget; the next acquire wakes it and it
// generates the same text as before. A model in use never sleeps.
static void test_sleep_and_wake(void **state)
{
    (void)state;
    garlic_error err = {0};
    registry_config cfg = {.n_ctx = 2048,
                           .n_threads = 1,
                           .parallel = 1,
                           .keep_alive = 300,
                           .keep_alive_set = true,
                           .sleep_after = 0.3};
    registry *reg = registry_new(&cfg, &err);
    assert_non_null(reg);
    assert_int_equal(registry_add(reg, model_path, "m", &err), GARLIC_OK);
    registry_model *m = acquire(reg);
    uint64_t reserved = registry_reserved(reg);
    engine_request *r = test_request_new(8, 1);
    assert_int_equal(registry_submit(m, r, &err), GARLIC_OK);
    char first[256] = {0};
    read_text(r, first, sizeof first);
    engine_request_release(r);
    sleep_ms(600); // in use: no sleep
    registry_model_ps ps;
    registry_model_ps_get(m, &ps);
    assert_false(ps.asleep);
    assert_non_null(registry_model_engine(m));
    registry_model_release(m, NAN);
    // (marked asleep first, then its engine stops)
    for (int i = 0; i < 300 && (!ps.asleep || registry_model_engine(m)); i++) {
        sleep_ms(10);
        registry_model_ps_get(m, &ps);
    }
    assert_true(ps.asleep);
    assert_true(ps.loaded);
    assert_true(registry_model_loaded(m));
    assert_null(registry_model_engine(m));
    assert_int_equal(registry_reserved(reg), reserved); // the budget stays held for the wake
    double seconds = -1;
    assert_int_equal(registry_model_acquire(m, &seconds, &err), GARLIC_OK);
    assert_true(seconds >= 0);
    registry_model_ps_get(m, &ps);
    assert_false(ps.asleep);
    assert_non_null(registry_model_engine(m));
    r = test_request_new(8, 1);
    assert_int_equal(registry_submit(m, r, &err), GARLIC_OK);
    char second[256] = {0};
    read_text(r, second, sizeof second);
    engine_request_release(r);
    assert_true(first[0] != '\0');
    assert_string_equal(first, second);
    registry_model_release(m, NAN);
    registry_free(reg);
}

// Reads r to its end and returns how its only choice finished.
static engine_finish finish_of(engine_request *r, uint32_t *output_tokens)
{
    engine_chunk c;
    test_request_finish(r, 60, &c);
    *output_tokens = c.output_tokens;
    return c.finish;
}

// The registry's max_queue bounds each model's queue. A drain refuses new requests at once
// and cancels what runs or waits when the grace time is over (0: at once); work that ends
// within the grace time ends as it would have.
static void test_queue_limit_and_drain(void **state)
{
    (void)state;
    registry *reg = new_registry(1);
    registry_model *m = acquire(reg);
    garlic_error err = {0};
    engine_request *running = test_request_new(1500, 1), *queued = test_request_new(1500, 1);
    engine_request *refused = test_request_new(4, 1);
    assert_int_equal(registry_submit(m, running, &err), GARLIC_OK);
    for (int i = 0; i < 100 && registry_model_queue_length(m) > 0; i++)
        sleep_ms(10);
    assert_int_equal(registry_submit(m, queued, &err), GARLIC_OK);
    assert_int_equal(registry_submit(m, refused, &err), GARLIC_EFULL);
    assert_non_null(strstr(err.message, "try again later"));
    registry_drain(reg, 0);
    uint32_t produced;
    assert_int_equal(finish_of(running, &produced), ENGINE_FINISH_CANCEL);
    assert_true(produced < 1500);
    assert_int_equal(finish_of(queued, &produced), ENGINE_FINISH_CANCEL);
    assert_int_equal(produced, 0);
    assert_int_equal(registry_submit(m, refused, &err), GARLIC_ESTOPPED);
    assert_non_null(strstr(err.message, "shutting down"));
    engine_request_release(running);
    engine_request_release(queued);
    registry_free(reg);

    reg = new_registry(4);
    m = acquire(reg);
    engine_request *r = test_request_new(8, 1);
    assert_int_equal(registry_submit(m, r, &err), GARLIC_OK);
    registry_drain(reg, 60);
    assert_int_equal(registry_submit(m, refused, &err), GARLIC_ESTOPPED);
    assert_int_equal(finish_of(r, &produced), ENGINE_FINISH_LENGTH);
    assert_int_equal(produced, 8);
    engine_request_release(r);
    engine_request_release(refused);
    registry_free(reg);
}

// Reads r until its stream ends (within 30 s); returns the last chunk's error code, with its
// message in message (cap bytes).
static int error_of(engine_request *r, char *message, size_t cap)
{
    engine_chunk c;
    for (int i = 0; i < 300; i++) {
        if (!engine_request_next(r, &c, 100))
            continue;
        if (c.all_done) {
            snprintf(message, cap, "%s", c.error_message ? c.error_message : "");
            return c.error;
        }
    }
    fail_msg("the request did not end within 30 s");
    return GARLIC_OK;
}

// A model file truncated while a request generates from it: the process survives (the pages
// past the new end read as zeros), the request fails naming the model and the change but not
// the file's directory, the model shows as failed and is unloaded once released, a load of the
// truncated file fails saying why, another model keeps serving, and once the file is whole
// again the next acquire loads it.
static void test_file_truncated_while_generating(void **state)
{
    (void)state;
    size_t size;
    void *bytes = test_read_file(model_path, &size);
    assert_non_null(bytes);
    char path[600], dir[600];
    snprintf(path, sizeof path, "%s", test_temp_path("changing.gguf"));
    snprintf(dir, sizeof dir, "%.*s", (int)(strrchr(path, '/') - path), path);
    assert_int_equal(test_write_file(path, bytes, size), 0);
    registry *reg = new_registry(4);
    garlic_error err = {0};
    assert_int_equal(registry_add(reg, path, "c", &err), GARLIC_OK);
    registry_model *c = registry_find(reg, "c");
    double seconds;
    assert_int_equal(registry_model_acquire(c, &seconds, &err), GARLIC_OK);
    engine_request *r = test_request_new(2000, 1);
    assert_int_equal(registry_submit(c, r, &err), GARLIC_OK);
    engine_chunk chunk;
    for (int i = 0; i < 300 && !(engine_request_next(r, &chunk, 100) && chunk.len); i++)
        ;
    assert_true(chunk.len > 0 && !chunk.all_done); // generating now
    assert_int_equal(truncate(path, (off_t)size / 2), 0);
    char message[600];
    assert_int_equal(error_of(r, message, sizeof message), GARLIC_EIO);
    assert_non_null(strstr(message, "model 'c' failed: its file changed on disk"));
    assert_non_null(strstr(message, "changing.gguf"));
    assert_null(strstr(message, dir));
    engine_request_release(r);
    registry_model_ps ps;
    registry_model_ps_get(c, &ps);
    assert_non_null(strstr(ps.failure, "changed on disk"));
    // Another model of the registry serves meanwhile.
    registry_model *m = acquire(reg);
    r = test_request_new(8, 1);
    assert_int_equal(registry_submit(m, r, &err), GARLIC_OK);
    assert_true(test_request_finish(r, 30, &chunk) > 0);
    engine_request_release(r);
    registry_model_release(m, NAN);
    // Released, the failed model goes.
    registry_model_release(c, NAN);
    for (int i = 0; i < 500 && registry_model_loaded(c); i++)
        sleep_ms(10);
    assert_false(registry_model_loaded(c));
    registry_model_ps_get(c, &ps);
    assert_non_null(strstr(ps.failure, "changed on disk")); // kept until a load succeeds
    // Loading the truncated file fails, saying so without the directory.
    assert_int_not_equal(registry_model_acquire(c, &seconds, &err), GARLIC_OK);
    assert_non_null(strstr(err.message, "its file changed on disk"));
    assert_non_null(strstr(err.message, "changing.gguf"));
    assert_null(strstr(err.message, dir));
    // Whole again: loaded anew, and it generates.
    assert_int_equal(test_write_file(path, bytes, size), 0);
    assert_int_equal(registry_model_acquire(c, &seconds, &err), GARLIC_OK);
    registry_model_ps_get(c, &ps);
    assert_string_equal(ps.failure, "");
    r = test_request_new(8, 1);
    assert_int_equal(registry_submit(c, r, &err), GARLIC_OK);
    assert_true(test_request_finish(r, 30, &chunk) > 0);
    engine_request_release(r);
    // Rewritten in place while loaded (same bytes, new times): the next acquire loads it anew.
    assert_int_equal(test_write_file(path, bytes, size), 0);
    registry_model_release(c, NAN);
    assert_int_equal(registry_model_acquire(c, &seconds, &err), GARLIC_OK);
    registry_model_ps_get(c, &ps);
    assert_string_equal(ps.failure, "");
    r = test_request_new(8, 1);
    assert_int_equal(registry_submit(c, r, &err), GARLIC_OK);
    assert_true(test_request_finish(r, 30, &chunk) > 0);
    engine_request_release(r);
    registry_model_release(c, NAN);
    registry_free(reg);
    free(bytes);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_and_loading),
        cmocka_unit_test(test_add_remove_put),
        cmocka_unit_test(test_stats),
        cmocka_unit_test(test_sleep_and_wake),
        cmocka_unit_test(test_queue_limit_and_drain),
        cmocka_unit_test(test_file_truncated_while_generating),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
