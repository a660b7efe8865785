// SPDX-License-Identifier: MIT
// The registry's models under a memory budget (registry/lifecycle.c), in-process: load on
// demand, least-recently-used unloading when a budget fits one of two models and requests
// alternate between them, keep_alive expiry giving the memory back (RSS within 5 % of the
// figure before the load), keep_alive 0, and the errors of a load that cannot fit.
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "model/synth.h"
#include "registry/registry.h"
#include "util.h"

static char path_a[600], path_b[600];

static int setup(void **state)
{
    (void)state;
    model_synth_params p;
    model_synth_params_default(&p);
    // About 60 MB of F32 weights: large enough that its RSS is plain to see.
    p.dim = 512, p.n_layer = 6, p.n_head = 8, p.n_head_kv = 4, p.ffn = 1536, p.vocab = 4096;
    p.context = 256;
    garlic_error err;
    snprintf(path_a, sizeof path_a, "%s", test_temp_path("life-a.gguf"));
    if (model_synth_write(&p, path_a, &err))
        return -1;
    p.seed = 2;
    snprintf(path_b, sizeof path_b, "%s", test_temp_path("life-b.gguf"));
    return model_synth_write(&p, path_b, &err) ? -1 : 0;
}

static registry *new_registry(uint64_t budget, double keep_alive, double load_wait)
{
    registry_config cfg = {.n_threads = 2,
                           .memory_budget = budget,
                           .keep_alive = keep_alive,
                           .keep_alive_set = true,
                           .load_wait = load_wait};
    garlic_error err = {0};
    registry *reg = registry_new(&cfg, &err);
    assert_non_null(reg);
    assert_int_equal(registry_add(reg, path_a, "a", &err), GARLIC_OK);
    assert_int_equal(registry_add(reg, path_b, "b", &err), GARLIC_OK);
    return reg;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

// Resident bytes of this process.
static uint64_t rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return (uint64_t)resident * (uint64_t)sysconf(_SC_PAGESIZE);
}

// A short greedy generation on m (which the caller holds), read to its end.
static void generate(registry_model *m, uint32_t tokens)
{
    static const int32_t prompt[] = {1, 17, 99, 300, 7};
    engine_request_params p = {.prompt = prompt, .n_prompt = 5, .n_choices = 1};
    p.generation.sampling = sampler_params_default(4096);
    p.generation.sampling.temperature = 0;
    p.generation.max_tokens = tokens;
    p.generation.ignore_eos = true;
    garlic_error err = {0};
    engine_request *r = engine_request_new(&p, &err);
    assert_non_null(r);
    assert_int_equal(registry_submit(m, r, &err), GARLIC_OK);
    uint32_t produced = 0;
    for (;;) {
        engine_chunk c;
        if (!engine_request_next(r, &c, 1000))
            continue;
        assert_int_equal(c.error, GARLIC_OK);
        if (c.choice_done)
            produced = c.output_tokens;
        if (c.all_done)
            break;
    }
    assert_int_equal(produced, tokens);
    engine_request_release(r);
}

// Waits up to ms for m to be (un)loaded as wanted. A model being unloaded reads as not
// loaded at once; its unload is over when its bytes are off the reserved total.
static bool wait_loaded(registry_model *m, bool want, int ms)
{
    for (int i = 0; i < ms / 5; i++) {
        registry_model_ps ps;
        registry_model_ps_get(m, &ps);
        if (registry_model_loaded(m) == want && (want || !ps.unloading))
            break;
        sleep_ms(5);
    }
    return registry_model_loaded(m) == want;
}

// Nothing is loaded until a request names a model; the planned size is reported.
static void test_load_on_demand(void **state)
{
    (void)state;
    registry *reg = new_registry(0, -1, 0);
    registry_model *a = registry_find(reg, "a"), *b = registry_find(reg, "b");
    assert_false(registry_model_loaded(a));
    assert_false(registry_model_loaded(b));
    double seconds;
    garlic_error err = {0};
    assert_int_equal(registry_model_acquire(a, &seconds, &err), GARLIC_OK);
    assert_true(seconds > 0);
    assert_true(registry_model_loaded(a));
    assert_false(registry_model_loaded(b));
    generate(a, 4);
    registry_model_ps ps;
    registry_model_ps_get(a, &ps);
    assert_true(ps.loaded);
    assert_true(ps.bytes > registry_model_file_size(a)); // mapping plus pools and overhead
    assert_true(ps.kv_bytes > 0);
    assert_int_equal(ps.users, 1);
    assert_true(isinf(ps.expires)); // in use
    registry_model_release(a, NAN);
    registry_model_ps_get(a, &ps);
    assert_true(isinf(ps.expires)); // keep_alive -1: forever
    assert_int_equal(registry_reserved(reg), ps.bytes);
    registry_stats st;
    registry_stats_get(reg, &st);
    assert_int_equal(st.models_loaded, 1);
    assert_int_equal(st.loads, 1);
    registry_free(reg);
}

// A budget that holds one model but not two: requests alternating between them are all
// served, each load unloading the other (idle) model first; the reserved total never
// exceeds the budget.
static void test_lru_under_budget(void **state)
{
    (void)state;
    registry *probe = new_registry(0, -1, 0);
    registry_model *pa = registry_find(probe, "a");
    double seconds;
    garlic_error err = {0};
    assert_int_equal(registry_model_acquire(pa, &seconds, &err), GARLIC_OK);
    uint64_t one = registry_model_bytes(pa);
    registry_model_release(pa, NAN);
    registry_free(probe);

    uint64_t budget = one + one / 2;
    registry *reg = new_registry(budget, -1, 2);
    const char *names[] = {"a", "b"};
    for (int i = 0; i < 6; i++) {
        registry_model *m = registry_find(reg, names[i % 2]);
        assert_int_equal(registry_model_acquire(m, &seconds, &err), GARLIC_OK);
        assert_true(registry_reserved(reg) <= budget);
        assert_false(registry_model_loaded(registry_find(reg, names[(i + 1) % 2])));
        generate(m, 3);
        registry_model_release(m, NAN);
    }
    registry_stats st;
    registry_stats_get(reg, &st);
    assert_int_equal(st.loads, 6);
    assert_int_equal(st.unloads, 5);
    assert_true(st.memory_bytes <= budget);
    assert_int_equal(st.memory_budget, budget);

    registry_free(reg);

    // While a holds its pin, b cannot load: it waits load_wait, then fails saying why.
    reg = new_registry(budget, -1, 0.2);
    registry_model *a = registry_find(reg, "a"), *b = registry_find(reg, "b");
    assert_int_equal(registry_model_acquire(a, &seconds, &err), GARLIC_OK);
    assert_int_equal(registry_model_acquire(b, &seconds, &err), GARLIC_EFULL);
    assert_non_null(strstr(err.message, "needs"));
    assert_non_null(strstr(err.message, "free"));
    assert_non_null(strstr(err.message, "busy"));
    assert_false(registry_model_loaded(b));
    assert_true(registry_model_loaded(a));
    registry_model_release(a, NAN);
    // Now a is idle: b's load unloads it.
    assert_int_equal(registry_model_acquire(b, &seconds, &err), GARLIC_OK);
    assert_false(registry_model_loaded(a));
    registry_model_release(b, NAN);
    registry_free(reg);

    // A model larger than the whole budget fails at once, naming the sizes.
    reg = new_registry(one / 2, -1, 5);
    a = registry_find(reg, "a");
    assert_int_equal(registry_model_acquire(a, &seconds, &err), GARLIC_ENOMEM);
    assert_non_null(strstr(err.message, "memory budget"));
    assert_int_equal(registry_reserved(reg), 0);
    registry_free(reg);
}

// keep_alive expiry unloads the model by itself and gives the memory back: the process's
// resident size returns to within 5 % of what it was before the load.
static void test_keep_alive_returns_memory(void **state)
{
    (void)state;
    registry *reg = new_registry(0, 0.3, 0);
    registry_model *a = registry_find(reg, "a");
    // Warm the allocator and the threads once, so the figure before is a steady one.
    double seconds;
    garlic_error err = {0};
    assert_int_equal(registry_model_acquire(a, &seconds, &err), GARLIC_OK);
    generate(a, 2);
    registry_model_release(a, 0);
    assert_true(wait_loaded(a, false, 3000));
    uint64_t before = rss();
    assert_int_equal(registry_model_acquire(a, &seconds, &err), GARLIC_OK);
    generate(a, 8);
    uint64_t loaded = rss();
    registry_model_release(a, NAN); // the registry's default: 0.3 s
    assert_true(registry_model_loaded(a));
    assert_true(wait_loaded(a, false, 5000));
    uint64_t after = rss();
    print_message("RSS before %.1f MB, loaded %.1f MB, after the keep-alive %.1f MB\n",
                  before / 1e6, loaded / 1e6, after / 1e6);
    assert_true(loaded > before + registry_model_file_size(a) / 2);
    assert_true(after <= before + before / 20);
    assert_int_equal(registry_reserved(reg), 0);
    registry_free(reg);
}

// keep_alive 0 unloads as soon as the model is released; -1 keeps it.
static void test_keep_alive_zero_and_forever(void **state)
{
    (void)state;
    registry *reg = new_registry(0, 300, 0);
    registry_model *a = registry_find(reg, "a"), *b = registry_find(reg, "b");
    double seconds;
    garlic_error err = {0};
    assert_int_equal(registry_model_acquire(a, &seconds, &err), GARLIC_OK);
    assert_int_equal(registry_model_acquire(b, &seconds, &err), GARLIC_OK);
    registry_model_release(a, 0);
    registry_model_release(b, -1);
    assert_true(wait_loaded(a, false, 1000));
    sleep_ms(200);
    assert_true(registry_model_loaded(b));
    registry_model_ps ps;
    registry_model_ps_get(b, &ps);
    assert_true(isinf(ps.expires));
    // Two users: the model stays until the last one lets go.
    assert_int_equal(registry_model_acquire(a, &seconds, &err), GARLIC_OK);
    assert_int_equal(registry_model_acquire(a, &seconds, &err), GARLIC_OK);
    registry_model_release(a, 0);
    sleep_ms(100);
    assert_true(registry_model_loaded(a));
    registry_model_release(a, 0);
    assert_true(wait_loaded(a, false, 1000));
    assert_int_equal(registry_model_unload(b), GARLIC_OK);
    assert_false(registry_model_loaded(b));
    assert_int_equal(registry_reserved(reg), 0);
    registry_free(reg);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_load_on_demand),
        cmocka_unit_test(test_lru_under_budget),
        cmocka_unit_test(test_keep_alive_returns_memory),
        cmocka_unit_test(test_keep_alive_zero_and_forever),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
