// SPDX-License-Identifier: MIT
// Monotonic time for durations (load, prompt and generation times, deadlines, spin limits).
#ifndef GARLIC_BASE_CLOCK_H
#define GARLIC_BASE_CLOCK_H

// Seconds on the monotonic clock (an arbitrary origin; only differences mean anything).
double garlic_now(void);

#endif
