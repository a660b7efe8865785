// SPDX-License-Identifier: MIT
// Monotonic time for durations (load, prompt and generation times, deadlines, spin limits),
// and deadlines for timed waits on condition variables, on the same clock: a change of the
// wall clock never shortens or stretches a wait.
#ifndef GARLIC_BASE_CLOCK_H
#define GARLIC_BASE_CLOCK_H

#include <pthread.h>
#include <time.h>

// Seconds on the monotonic clock (an arbitrary origin; only differences mean anything).
double garlic_now(void);

// Initializes a condition variable whose timed waits use the monotonic clock, as
// garlic_deadline's deadlines need. Returns 0 or an errno value, like pthread_cond_init.
int garlic_cond_init(pthread_cond_t *cv);

// The monotonic instant seconds from now (negative counts as 0), for pthread_cond_timedwait
// on a condition variable made by garlic_cond_init.
struct timespec garlic_deadline(double seconds);

// Waits on cv (made by garlic_cond_init, mu held) at most seconds; returns 0 when signalled
// (or woken spuriously), ETIMEDOUT when the time ran out.
int garlic_cond_wait_for(pthread_cond_t *cv, pthread_mutex_t *mu, double seconds);

#endif
