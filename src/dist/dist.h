// SPDX-License-Identifier: MIT
// Ranks and collectives over MPI (Open MPI): a process launched by mpirun is one rank of the
// world; garlic's tensor parallelism (model/shard.c) gives each rank a share of every layer
// and keeps the ranks in step with the few collectives declared here. MPI stays inside
// dist.c: no other header includes mpi.h. Built without MPI (no mpicc found by the
// Makefile), the world is one rank and asking for more is an error.
//
// Threads: dist_init and dist_finalize run on the main thread; the collectives may be called
// from one other thread at a time (the engine's scheduler thread; garlic serve's rank 0 also
// from the thread that loads the model and from the main thread at its end, when no engine
// runs), never from two at once.
//
// Faults: a collective never returns a failure and never waits forever. The collectives run
// on a duplicate of the world whose MPI errors are returned to garlic, which records and
// prints the rank and the collective that failed (dist_fault) and ends the job (MPI_Abort:
// every rank exits non-zero), after a grace where one is set (dist_set_fault_grace: garlic
// serve's rank 0 tells its clients meanwhile); a watchdog thread does the same when a
// collective has waited longer than the timeout (dist_set_timeout, --dist-timeout: a rank
// that died or hangs). A rank killed outright is noticed by mpirun itself, which ends the
// others at once (docs/distributed.md, "Faults").
#ifndef GARLIC_DIST_DIST_H
#define GARLIC_DIST_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

// Seconds a collective may wait for the other ranks before the job is ended (--dist-timeout).
#define DIST_DEFAULT_TIMEOUT 60.0

// How one model is split between the ranks: pipeline stages of contiguous layers, each split
// between `size` ranks by tensor parallelism; this process is tensor-parallel rank `rank`
// (0 <= rank < size) of stage `stage` (< stages), world rank rank + size * stage.
// {0, 1, 0, 1}: the whole model in one process.
typedef struct dist_tp_layout {
    uint32_t rank;
    uint32_t size;
    uint32_t stage;
    uint32_t stages;
} dist_tp_layout;

// Whether garlic was built with MPI.
bool dist_built_with_mpi(void);

// Starts MPI (MPI_Init_thread, asking for serialized calls from any thread) when the process
// was launched by an MPI launcher (mpirun sets OMPI_COMM_WORLD_SIZE, PMI_SIZE or
// PMIX_RANK); otherwise the world is this process alone and MPI is not started. Called once,
// before anything else, by main. GARLIC_EUNSUPPORTED when the launcher asks for several ranks
// and garlic was built without MPI, or MPI gives less thread support than needed.
int dist_init(int *argc, char ***argv, garlic_error *err);

// Stops MPI if dist_init started it (every rank must call it). A no-op otherwise.
void dist_finalize(void);

// Sets how long a collective may wait for the other ranks before the watchdog ends the job
// (seconds; 0 or less: no limit). DIST_DEFAULT_TIMEOUT until called. Every rank should give
// the same; any thread may call it.
void dist_set_timeout(double seconds);
double dist_timeout(void);

// Seconds garlic serve's rank 0 goes on answering HTTP after a fault before it ends the job.
#define DIST_FAULT_GRACE 2.0

// Sets how long a fault leaves this rank running before it ends the job (seconds; 0, the
// default, ends it at once). The thread that met the fault sleeps that long; the others run
// on. Any thread may call it.
void dist_set_fault_grace(double seconds);

// Whether this rank met a fault (a collective failed or waited past the timeout): the job is
// ending. When it did, buf (cap bytes) gets its message, which names the ranks and the
// collective. Any thread may call it, at any time; false in a world of one.
bool dist_fault(char *buf, size_t cap);

// This process's rank in the world (0 without MPI), and the world's size (1 without MPI).
uint32_t dist_rank(void);
uint32_t dist_size(void);

// The layout of --tensor-parallel T --pipeline-parallel P: T x P must be the world's size (1
// is always allowed in a world of one). Makes the communicators of the layout (the ranks of
// one stage for the collectives below, the ranks of one tensor-parallel position across the
// stages for the stage transfers); every rank calls it once, after dist_init. GARLIC_EINVAL
// otherwise, or GARLIC_EUNSUPPORTED for more than one rank in a build without MPI ("garlic
// was built without MPI").
int dist_tp_layout_make(uint32_t t, uint32_t p, dist_tp_layout *out, garlic_error *err);

// The layout made (dist_tp_layout_make), or the whole model in one process.
dist_tp_layout dist_layout(void);

// x (n floats, in place) = the sum of every rank of this stage's x. Every rank gets the same
// bits.
void dist_all_reduce_sum(float *x, size_t n);

// The first of rank's part when n things (heads, rows, columns) are split between size
// ranks: parts of n / size, the later ranks taking one more where size does not divide n.
static inline uint64_t dist_part_first(uint64_t n, uint32_t rank, uint32_t size)
{
    return n * rank / size;
}

// How many things rank's part of n holds (dist_part_first's split).
static inline uint64_t dist_part_size(uint64_t n, uint32_t rank, uint32_t size)
{
    return dist_part_first(n, rank + 1, size) - dist_part_first(n, rank, size);
}

// An uneven all-gather, in place: all holds n parts' things of `unit` floats each, split
// between this stage's ranks by dist_part_first (rank r's are floats [unit * first(r), unit *
// first(r + 1))); this rank's lie in place, and afterwards every rank holds every rank's.
// unit * n must be below 2^31 (MPI counts are ints).
void dist_all_gather_parts(float *all, size_t n, size_t unit);

// Pipeline parallelism: sends n floats to the rank of this tensor-parallel position in the
// next stage; receives them from the previous stage's. Blocking: a stage that sends waits
// until the next one takes the data, so stages overlap where the sender has other work next
// (the chunks of a long prompt).
void dist_stage_send(const float *x, size_t n);
void dist_stage_recv(float *x, size_t n);

// The n floats of the last stage's rank (of this tensor-parallel position) into buf on every
// stage: the logits, which every rank samples from.
void dist_stage_broadcast_last(float *buf, size_t n);

// The n bytes of rank 0 into every rank's buf.
void dist_broadcast(void *buf, size_t n);

// dist_broadcast for a rank that waits for work (garlic serve's followers between requests):
// the other ranks wait without the watchdog's limit and asleep (a nonblocking broadcast
// tested with growing naps up to 2 ms once it has waited a while), rank 0 as for any
// collective. Every rank must call this one (it does not match dist_broadcast); n < 2^31.
void dist_broadcast_idle(void *buf, size_t n);

// dist_broadcast_idle whose waiting ranks give up after `limit` seconds (0: never): rank 0
// sent nothing for that long, so it died or hangs, and the job ends with that message
// (garlic serve's followers, to which an idle leader sends heartbeats).
void dist_broadcast_idle_within(void *buf, size_t n, double limit);

// A collective of every rank (one word), under the watchdog like a step's: garlic serve's
// idle leader and its followers make one every ENGINE_TP_HEARTBEAT seconds, so that a rank
// that hangs while no request runs is noticed within that plus --dist-timeout.
void dist_heartbeat(void);

// Whether every rank holds the same n bytes as rank 0: GARLIC_OK on every rank when they all
// agree, else GARLIC_EINVAL on every rank (so that all of them stop, none waits), the message
// naming what differs (`what`, e.g. "the model file") and the ranks that differ. A world of
// one always agrees.
int dist_check_same(const void *bytes, size_t n, const char *what, garlic_error *err);

// The median seconds of reps all-reduces of n floats (after a warm-up; a median, because a
// shared machine's scheduling makes a few calls very slow): for `garlic bench`'s report and
// docs/distributed.md. 0 in a world of one (or without memory for the timings).
double dist_time_all_reduce(size_t n, uint32_t reps);

#endif
