// SPDX-License-Identifier: MIT
// When models are loaded and unloaded, under one memory budget. A model is loaded when a
// request names it (registry_model_acquire) and pinned while requests use it; when its last
// user releases it, it stays loaded for its keep_alive, then the reaper thread unloads it.
// Before a load, the model's planned bytes (mapping, KV pool, scratch, overhead: exactly
// what the load allocates) are reserved against the budget; idle models are unloaded least
// recently used first to make room, and when busy models hold the rest the load waits for
// one to go idle, then fails with a message saying what is needed and what is free.
//
// Locks: life_mu guards users, keep-alive times, the reserved total and the loaded flags;
// a model's load_mu is held while it loads or unloads. Order: load_mu, then life_mu (life_mu
// is never held while waiting for a load_mu).
#include <malloc.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/units.h"
#include "registry/internal.h"

enum { DEFAULT_KEEP_ALIVE = 300 };

static double default_keep_alive(const registry *reg)
{
    return reg->cfg.keep_alive_set ? reg->cfg.keep_alive : DEFAULT_KEEP_ALIVE;
}

static void tell(registry_model *m, int event)
{
    if (m->reg->cfg.event)
        m->reg->cfg.event(m->reg->cfg.event_ctx, m, event);
}

// Unloads m (whose loaded flag is already cleared, under life_mu): stops its scheduler, frees
// its pools and unmaps its file, gives the memory back to the system and the budget.
static void unload_now(registry_model *m, const char *why)
{
    registry *reg = m->reg;
    if (reg->cfg.log) {
        garlic_log_line l;
        garlic_log_begin(&l, "unload");
        garlic_log_str(&l, "model", m->name);
        garlic_log_str(&l, "reason", why);
        garlic_log_end(&l);
    }
    pthread_mutex_lock(&m->load_mu);
    registry_model_unload_parts(m);
    tell(m, REGISTRY_UNLOADED);
    pthread_mutex_unlock(&m->load_mu);
    malloc_trim(0); // freed arenas back to the system, so RSS falls with the unload
    pthread_mutex_lock(&reg->life_mu);
    reg->reserved -= m->cost;
    m->cost = 0;
    m->unloading = false;
    reg->unloads++;
    pthread_cond_broadcast(&reg->life_cv);
    pthread_mutex_unlock(&reg->life_mu);
}

// The least recently used loaded model nobody uses (under life_mu), or NULL.
static registry_model *idle_victim(registry *reg, const registry_model *except)
{
    registry_model *best = NULL;
    for (size_t i = 0; i < reg->n_models; i++) {
        registry_model *m = reg->models[i];
        if (m == except || !atomic_load(&m->loaded) || m->users || m->unloading)
            continue;
        if (!best || m->last_used < best->last_used)
            best = m;
    }
    return best;
}

// Reserves cost bytes for m against the budget (m->load_mu held, life_mu not), unloading
// idle models least recently used first, waiting up to load_wait seconds for busy ones.
static int reserve(registry_model *m, uint64_t cost, garlic_error *err)
{
    registry *reg = m->reg;
    uint64_t budget = reg->budget;
    if (cost > budget) {
        garlic_bytes_texts t = garlic_bytes_apart(2, (const uint64_t[]){cost, budget});
        return garlic_error_set(err, GARLIC_ENOMEM,
                                "%s needs %s (weights, KV cache and "
                                "buffers) but the memory budget is %s; lower --ctx or "
                                "--kv-tokens, or raise --memory-budget",
                                m->name, t.text[0], t.text[1]);
    }
    double deadline = garlic_now() + (reg->cfg.load_wait > 0 ? reg->cfg.load_wait : 0);
    pthread_mutex_lock(&reg->life_mu);
    for (;;) {
        if (reg->reserved + cost <= budget) {
            reg->reserved += cost;
            m->cost = cost;
            pthread_mutex_unlock(&reg->life_mu);
            return GARLIC_OK;
        }
        registry_model *victim = idle_victim(reg, m);
        if (victim) {
            atomic_store(&victim->loaded, false);
            victim->unloading = true;
            pthread_mutex_unlock(&reg->life_mu);
            unload_now(victim, "to make room in the memory budget");
            pthread_mutex_lock(&reg->life_mu);
            continue;
        }
        double now = garlic_now();
        if (now >= deadline || atomic_load(&reg->stopped)) {
            uint64_t free_bytes = budget > reg->reserved ? budget - reg->reserved : 0;
            pthread_mutex_unlock(&reg->life_mu);
            garlic_bytes_texts t = garlic_bytes_apart(3,
                                                      (const uint64_t[]){cost, free_bytes, budget});
            return garlic_error_set(err, GARLIC_EFULL,
                                    "%s needs %s; %s of the %s memory "
                                    "budget are free and the other models are busy; try "
                                    "again later",
                                    m->name, t.text[0], t.text[1], t.text[2]);
        }
        garlic_cond_wait_for(&reg->life_cv, &reg->life_mu,
                             deadline - now < 0.5 ? deadline - now : 0.5);
    }
}

// Waits out an unload of m under way, and unloads m when it is loaded but failed (its file
// changed) and nobody uses it, waiting up to REGISTRY_FAILED_WAIT seconds for its users to
// go; then pins m (users++). GARLIC_EFULL when users keep a failed m past the wait.
static int pin(registry_model *m, garlic_error *err)
{
    registry *reg = m->reg;
    double deadline = garlic_now() + REGISTRY_FAILED_WAIT;
    pthread_mutex_lock(&reg->life_mu);
    for (;;) {
        if (m->unloading) { // a load now would race the unload for load_mu
            pthread_cond_wait(&reg->life_cv, &reg->life_mu);
            continue;
        }
        if (!atomic_load(&m->loaded) || !m->failed)
            break;
        if (m->users == 0) {
            atomic_store(&m->loaded, false);
            m->unloading = true;
            pthread_mutex_unlock(&reg->life_mu);
            unload_now(m, "its file changed on disk");
            pthread_mutex_lock(&reg->life_mu);
            continue;
        }
        double now = garlic_now();
        if (now >= deadline) {
            uint32_t users = m->users;
            pthread_mutex_unlock(&reg->life_mu);
            return garlic_error_set(err, GARLIC_EFULL,
                                    "model '%s' failed (its file changed on disk) and is loaded "
                                    "anew once its %u running requests end; try again later",
                                    m->name, users);
        }
        garlic_cond_wait_for(&reg->life_cv, &reg->life_mu,
                             deadline - now < 0.5 ? deadline - now : 0.5);
    }
    m->users++; // pins m: it is not unloaded while used or loading
    m->last_used = garlic_now();
    pthread_mutex_unlock(&reg->life_mu);
    return GARLIC_OK;
}

// Drops a pin of pin()'s, without touching the keep-alive, from a model found failed (why:
// the engine's message). The failure is marked here too: the engine's hook may still be on
// its way from the scheduler thread that saw it first.
static void unpin_failed(registry_model *m, const char *why)
{
    registry *reg = m->reg;
    pthread_mutex_lock(&reg->life_mu);
    m->failed = true;
    if (!m->failure[0])
        snprintf(m->failure, sizeof m->failure, "%s", why);
    m->users--;
    pthread_cond_broadcast(&reg->life_cv);
    pthread_mutex_unlock(&reg->life_mu);
}

// Removes the directory of m's path from a message for a client ("/srv/models/x.gguf: bad
// magic" reads "x.gguf: bad magic"; a folder's shards keep the folder's name).
static void strip_dir(const registry_model *m, garlic_error *err)
{
    size_t end = strlen(m->path);
    while (end > 1 && m->path[end - 1] == '/')
        end--;
    if (end > 12 && memcmp(m->path + end - 12, "/config.json", 12) == 0)
        end -= 12;
    while (end > 0 && m->path[end - 1] != '/')
        end--;
    if (end <= 1)
        return; // a bare name, or a file at the root: nothing to strip
    char *at;
    while ((at = memmem(err->message, strlen(err->message), m->path, end)))
        memmove(at, at + end, strlen(at + end) + 1);
}

// Loads m (m->load_mu held, m pinned): the parts, the budget, the scheduler; logs the load or
// its failure. after_change: m was loaded before and its file changed (the error says so).
static int load(registry_model *m, bool after_change, double *load_seconds, garlic_error *err)
{
    registry *reg = m->reg;
    double t0 = garlic_now();
    uint64_t cost = 0;
    int rc = registry_model_load_parts(m, &cost, err);
    if (rc == GARLIC_OK) {
        // The pools are sized but nothing big is allocated yet: reserve, then allocate.
        rc = reserve(m, cost, err);
        if (rc == GARLIC_OK) {
            rc = registry_model_start(m, err);
            if (rc != GARLIC_OK) {
                pthread_mutex_lock(&reg->life_mu);
                reg->reserved -= m->cost;
                m->cost = 0;
                pthread_mutex_unlock(&reg->life_mu);
            }
        }
    }
    if (rc != GARLIC_OK) {
        registry_model_unload_parts(m);
        if (reg->cfg.log) {
            garlic_log_line l;
            garlic_log_begin(&l, "load_failed");
            garlic_log_str(&l, "model", m->name);
            garlic_log_str(&l, "error", err->message);
            garlic_log_end(&l);
        }
        strip_dir(m, err);
        if (after_change) {
            char why[sizeof err->message];
            snprintf(why, sizeof why, "%s", err->message);
            garlic_error_set(
                err, rc,
                "its file changed on disk while it was served, and it cannot be loaded as it is now: %s",
                why);
        }
        return rc;
    }
    *load_seconds = garlic_now() - t0;
    if (reg->cfg.log) {
        garlic_log_line l;
        garlic_log_begin(&l, "load");
        garlic_log_str(&l, "model", m->name);
        garlic_log_num(&l, "load_ms", *load_seconds * 1e3);
        garlic_log_int(&l, "planned_bytes", (int64_t)m->cost);
        garlic_log_int(&l, "context", m->n_ctx);
        garlic_log_int(&l, "parallel", m->parallel);
        garlic_log_end(&l);
    }
    tell(m, REGISTRY_LOADED);
    pthread_mutex_lock(&reg->life_mu);
    m->failed = false;
    m->failure[0] = '\0';
    m->asleep = false;
    atomic_store_explicit(&m->loaded, true, memory_order_release);
    reg->loads++;
    pthread_mutex_unlock(&reg->life_mu);
    return GARLIC_OK;
}

// Wakes m, pinned and loaded but asleep: starts its engine again (the device's copies of its
// weights, its pools), which the budget still holds. (A sleep the reaper chose but has not
// done yet is called off: the engine is still there.)
static int wake(registry_model *m, double *seconds, garlic_error *err)
{
    registry *reg = m->reg;
    double t0 = garlic_now();
    int rc = GARLIC_OK;
    pthread_mutex_lock(&m->load_mu);
    bool started = !m->engine;
    if (started)
        rc = registry_model_start(m, err);
    if (started && rc == GARLIC_OK)
        tell(m, REGISTRY_WOKE);
    pthread_mutex_lock(&reg->life_mu);
    if (rc == GARLIC_OK)
        m->asleep = false;
    pthread_mutex_unlock(&reg->life_mu);
    pthread_mutex_unlock(&m->load_mu);
    *seconds = garlic_now() - t0;
    if (started && reg->cfg.log) {
        garlic_log_line l;
        garlic_log_begin(&l, rc ? "wake_failed" : "wake");
        garlic_log_str(&l, "model", m->name);
        garlic_log_num(&l, "wake_ms", *seconds * 1e3);
        if (rc)
            garlic_log_str(&l, "error", err->message);
        garlic_log_end(&l);
    }
    return rc;
}

// Puts m to sleep (chosen by the reaper, marked asleep, unused): frees its engine unless a
// request came for it meanwhile.
static void sleep_now(registry_model *m)
{
    registry *reg = m->reg;
    pthread_mutex_lock(&m->load_mu);
    pthread_mutex_lock(&reg->life_mu);
    bool still = m->asleep && m->users == 0 && atomic_load(&m->loaded);
    pthread_mutex_unlock(&reg->life_mu);
    if (still && m->engine) {
        registry_model_stop_engine(m);
        tell(m, REGISTRY_SLEPT);
        malloc_trim(0);
        if (reg->cfg.log) {
            garlic_log_line l;
            garlic_log_begin(&l, "sleep");
            garlic_log_str(&l, "model", m->name);
            garlic_log_num(&l, "idle_s", reg->cfg.sleep_after);
            garlic_log_end(&l);
        }
    }
    pthread_mutex_unlock(&m->load_mu);
}

void registry_model_suspend(registry_model *m)
{
    pthread_mutex_lock(&m->load_mu);
    registry_model_stop_engine(m);
    pthread_mutex_unlock(&m->load_mu);
    malloc_trim(0);
}

int registry_model_resume(registry_model *m, garlic_error *err)
{
    pthread_mutex_lock(&m->load_mu);
    int rc = m->engine ? GARLIC_OK : registry_model_start(m, err);
    pthread_mutex_unlock(&m->load_mu);
    return rc;
}

int registry_model_acquire(registry_model *m, double *load_seconds, garlic_error *err)
{
    registry *reg = m->reg;
    *load_seconds = 0;
    int rc = pin(m, err);
    if (rc)
        return rc;
    pthread_mutex_lock(&reg->life_mu);
    bool asleep = m->asleep && atomic_load(&m->loaded);
    pthread_mutex_unlock(&reg->life_mu);
    if (asleep && (rc = wake(m, load_seconds, err))) {
        registry_model_release(m, NAN);
        return rc;
    }
    if (atomic_load_explicit(&m->loaded, memory_order_acquire)) {
        garlic_error why = {0};
        if (engine_check_files(m->engine, &why) == GARLIC_OK)
            return GARLIC_OK;
        // Its file changed: marked failed, pinned again, which unloads it once its other
        // requests are gone (this one's load follows).
        unpin_failed(m, why.message);
        if ((rc = pin(m, err)))
            return rc;
    }
    pthread_mutex_lock(&m->load_mu);
    if (!atomic_load(&m->loaded)) {
        pthread_mutex_lock(&reg->life_mu);
        bool after_change = m->failure[0] != '\0';
        pthread_mutex_unlock(&reg->life_mu);
        rc = load(m, after_change, load_seconds, err);
    }
    pthread_mutex_unlock(&m->load_mu);
    if (rc != GARLIC_OK)
        registry_model_release(m, NAN);
    return rc;
}

void registry_model_failed(void *model_entry, const char *message)
{
    registry_model *m = model_entry;
    registry *reg = m->reg;
    garlic_log_line l; // logged whatever --log says: the operator must hear of it
    garlic_log_begin(&l, "model_failed");
    garlic_log_str(&l, "model", m->name);
    garlic_log_str(&l, "path", m->path);
    garlic_log_str(&l, "reason", message);
    garlic_log_end(&l);
    pthread_mutex_lock(&reg->life_mu);
    m->failed = true;
    snprintf(m->failure, sizeof m->failure, "%s", message);
    if (m->users > 0)
        m->unload_asked = true; // the last release unloads it
    else
        m->expires = garlic_now(); // the reaper unloads it
    pthread_cond_broadcast(&reg->life_cv);
    pthread_mutex_unlock(&reg->life_mu);
}

void registry_model_release(registry_model *m, double keep_alive)
{
    registry *reg = m->reg;
    pthread_mutex_lock(&reg->life_mu);
    if (m->users > 0)
        m->users--;
    double now = garlic_now();
    m->last_used = now;
    double keep = isnan(keep_alive) ? default_keep_alive(reg) : keep_alive;
    if (m->unload_asked && m->users == 0) // a keep_alive 0 request came while it was used
        keep = 0, m->unload_asked = false;
    if (atomic_load(&m->removed)) // deleted from the list: nobody new can reach it
        keep = 0;
    m->expires = keep < 0 ? INFINITY : now + keep;
    pthread_cond_broadcast(&reg->life_cv); // the reaper and loads waiting for memory
    pthread_mutex_unlock(&reg->life_mu);
}

// The reaper: sleeps until the earliest keep-alive expiry of an unused loaded model (or until
// a release or shutdown changes it), then unloads what expired.
static void *reaper_main(void *arg)
{
    registry *reg = arg;
    pthread_mutex_lock(&reg->life_mu);
    while (!reg->reaper_stop) {
        double now = garlic_now(), next = INFINITY;
        registry_model *expired = NULL, *sleepy = NULL;
        for (size_t i = 0; i < reg->n_models && !expired; i++) {
            registry_model *m = reg->models[i];
            if (!atomic_load(&m->loaded) || m->users || m->unloading)
                continue;
            // Asleep after sleep_after seconds unused, unless it is unloaded by then.
            double sleeps = reg->cfg.sleep_after > 0 && !m->asleep
                ? m->last_used + reg->cfg.sleep_after
                : INFINITY;
            if (m->expires <= now)
                expired = m;
            else if (sleeps <= now && sleeps < m->expires && !sleepy)
                sleepy = m;
            next = m->expires < next ? m->expires : next;
            next = sleeps > now && sleeps < next ? sleeps : next;
        }
        if (!expired && sleepy) {
            sleepy->asleep = true;
            pthread_mutex_unlock(&reg->life_mu);
            sleep_now(sleepy);
            pthread_mutex_lock(&reg->life_mu);
            continue;
        }
        if (expired) {
            atomic_store(&expired->loaded, false);
            expired->unloading = true;
            pthread_mutex_unlock(&reg->life_mu);
            unload_now(expired, "keep_alive expired");
            pthread_mutex_lock(&reg->life_mu);
            continue;
        }
        if (isinf(next)) {
            pthread_cond_wait(&reg->life_cv, &reg->life_mu);
        } else {
            garlic_cond_wait_for(&reg->life_cv, &reg->life_mu, next - now + 0.001);
        }
    }
    pthread_mutex_unlock(&reg->life_mu);
    return NULL;
}

// Physical memory, or the cgroup's limit when that is lower.
static uint64_t memory_limit(void)
{
    uint64_t phys = (uint64_t)sysconf(_SC_PHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
    FILE *f = fopen("/sys/fs/cgroup/memory.max", "r");
    unsigned long long limit;
    if (f && fscanf(f, "%llu", &limit) == 1 && limit < phys)
        phys = limit;
    if (f)
        fclose(f);
    return phys;
}

int registry_lifecycle_start(registry *reg, garlic_error *err)
{
    reg->budget = reg->cfg.memory_budget ? reg->cfg.memory_budget
                                         : memory_limit() / 100 * REGISTRY_DEFAULT_BUDGET_PERCENT;
    if (pthread_create(&reg->reaper, NULL, reaper_main, reg) != 0)
        return garlic_error_set(err, GARLIC_ENOMEM, "cannot start the model reaper thread");
    reg->reaper_started = true;
    return GARLIC_OK;
}

void registry_lifecycle_stop(registry *reg)
{
    if (!reg->reaper_started)
        return;
    pthread_mutex_lock(&reg->life_mu);
    reg->reaper_stop = true;
    pthread_cond_broadcast(&reg->life_cv);
    pthread_mutex_unlock(&reg->life_mu);
    pthread_join(reg->reaper, NULL);
    reg->reaper_started = false;
}

int registry_model_unload(registry_model *m)
{
    registry *reg = m->reg;
    pthread_mutex_lock(&reg->life_mu);
    bool can = atomic_load(&m->loaded) && m->users == 0 && !m->unloading;
    if (can) {
        atomic_store(&m->loaded, false);
        m->unloading = true;
    }
    pthread_mutex_unlock(&reg->life_mu);
    if (can)
        unload_now(m, "asked");
    return can ? GARLIC_OK : GARLIC_EINVAL;
}

void registry_model_unload_when_idle(registry_model *m)
{
    registry *reg = m->reg;
    pthread_mutex_lock(&reg->life_mu);
    bool now = atomic_load(&m->loaded) && m->users == 0 && !m->unloading;
    if (now) {
        atomic_store(&m->loaded, false);
        m->unloading = true;
    } else if (m->users > 0) {
        m->unload_asked = true; // the last release unloads it
    }
    pthread_mutex_unlock(&reg->life_mu);
    if (now)
        unload_now(m, "asked (keep_alive 0)");
}

// ---- fair turns on the shared compute pool ----
//
// Models take the pool one step at a time. Each model with work (active) has a virtual time:
// the compute seconds its steps used. A model may start a step only when no active model is
// behind it in virtual time, so two busy models each get about half of the machine's time even
// when one's steps are longer (alternating steps would give the slower model more). A model
// that becomes active after a pause starts from the smallest virtual time of the active ones,
// so it cannot claim the time it did not use. A model with nothing to do leaves the active set
// (registry_compute_idle) so that nobody waits for it.

// Whether m must let another active model go first (under compute_mu).
static bool behind_someone(const registry *reg, const registry_model *m)
{
    for (size_t i = 0; i < reg->n_models; i++) {
        const registry_model *o = reg->models[i];
        if (o != m && o->compute_active && o->compute_vtime < m->compute_vtime)
            return true;
    }
    return false;
}

void registry_compute_begin(void *model_entry)
{
    registry_model *m = model_entry;
    registry *reg = m->reg;
    pthread_mutex_lock(&reg->compute_mu);
    if (!m->compute_active) {
        double floor_time = INFINITY;
        for (size_t i = 0; i < reg->n_models; i++) {
            registry_model *o = reg->models[i];
            if (o != m && o->compute_active && o->compute_vtime < floor_time)
                floor_time = o->compute_vtime;
        }
        if (isfinite(floor_time) && m->compute_vtime < floor_time)
            m->compute_vtime = floor_time;
        m->compute_active = true;
    }
    while (reg->compute_owner || behind_someone(reg, m))
        pthread_cond_wait(&reg->compute_cv, &reg->compute_mu);
    reg->compute_owner = m;
    m->compute_start = garlic_now();
    pthread_mutex_unlock(&reg->compute_mu);
}

void registry_compute_end(void *model_entry)
{
    registry_model *m = model_entry;
    registry *reg = m->reg;
    pthread_mutex_lock(&reg->compute_mu);
    m->compute_vtime += garlic_now() - m->compute_start;
    reg->compute_owner = NULL;
    pthread_cond_broadcast(&reg->compute_cv);
    pthread_mutex_unlock(&reg->compute_mu);
}

void registry_compute_idle(void *model_entry)
{
    registry_model *m = model_entry;
    registry *reg = m->reg;
    pthread_mutex_lock(&reg->compute_mu);
    if (m->compute_active) {
        m->compute_active = false;
        pthread_cond_broadcast(&reg->compute_cv);
    }
    pthread_mutex_unlock(&reg->compute_mu);
}
