// SPDX-License-Identifier: MIT
// The compute pool: n threads (the caller plus n - 1 workers) that run one parallel job at
// a time. A job is a function called once per share with (ith, nth): nth shares, each run
// exactly once, by whichever thread claims it first (the caller included), so that a worker
// descheduled by another process does not hold the job back. Between jobs of one forward
// pass the workers poll briefly for the next job (a forward pass issues hundreds of short
// jobs), then sleep: an idle pool uses no CPU. Now and then the pool measures whether its
// workers pay (the wall time of jobs run in parallel against jobs the caller runs alone,
// drawn at random) and runs jobs on the caller alone for a while when they do not: a
// machine shared with other busy processes.
#ifndef GARLIC_BASE_THREADPOOL_H
#define GARLIC_BASE_THREADPOOL_H

#include "base/error.h"

typedef struct thread_pool thread_pool;

typedef void (*thread_pool_fn)(void *ctx, int ith, int nth);

// Starts n_threads - 1 workers (n_threads >= 1). Returns NULL and fills err on failure.
thread_pool *thread_pool_new(int n_threads, garlic_error *err);

// Stops and joins the workers; thread_pool_free(NULL) is a no-op.
void thread_pool_free(thread_pool *pool);

// Runs fn(ctx, ith, nth) for every share ith in 0..nth - 1 (nth = the pool's size) and
// returns when all have finished. A thread may run several shares one after another, never
// two at once, so scratch indexed by ith is safe; work split statically by ith is still
// taken up by others when a thread is late, but splitting by an atomic counter inside the
// job balances better. Only one thread may call this at a time for a given pool.
void thread_pool_run(thread_pool *pool, thread_pool_fn fn, void *ctx);

int thread_pool_size(const thread_pool *pool);

// The threads worth starting: cpu_threads_available() (the physical cores this process may
// run on, at most its cgroup's CPU quota rounded up), at least 1.
int thread_pool_default_threads(void);

#endif
