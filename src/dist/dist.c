// SPDX-License-Identifier: MIT
// The ranks and collectives of dist.h. With GARLIC_MPI defined (the Makefile found Open
// MPI's mpi.h) they are MPI calls over MPI_COMM_WORLD; without it the world is one process,
// the collectives are the identity and asking for more ranks is refused.
#include "dist/dist.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"

#ifdef GARLIC_MPI
#include <mpi.h>
#endif

// The world as dist_init found it (main thread; read-only afterwards).
static uint32_t world_rank = 0, world_size = 1;
static bool mpi_started = false;

// Whether an MPI launcher started this process (Open MPI's mpirun, or a PMI/PMIx launcher
// such as Slurm's srun).
static bool launched_by_mpi(uint32_t *size)
{
    const char *names[] = {"OMPI_COMM_WORLD_SIZE", "PMI_SIZE", "PMIX_SIZE"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v && *v) {
            long n = strtol(v, NULL, 10);
            *size = n > 0 && n < INT_MAX ? (uint32_t)n : 1;
            return true;
        }
    }
    if (getenv("PMIX_RANK")) {
        *size = 0; // unknown until MPI says
        return true;
    }
    return false;
}

bool dist_built_with_mpi(void)
{
#ifdef GARLIC_MPI
    return true;
#else
    return false;
#endif
}

int dist_init(int *argc, char ***argv, garlic_error *err)
{
    uint32_t size = 1;
    if (!launched_by_mpi(&size))
        return GARLIC_OK;
#ifdef GARLIC_MPI
    int provided = 0;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_SERIALIZED, &provided) != MPI_SUCCESS)
        return garlic_error_set(err, GARLIC_EIO, "MPI_Init_thread failed");
    mpi_started = true;
    if (provided < MPI_THREAD_SERIALIZED)
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "the MPI library gives thread level %d; garlic needs "
                                "MPI_THREAD_SERIALIZED (%d): its scheduler thread calls MPI",
                                provided, MPI_THREAD_SERIALIZED);
    int r = 0, n = 1;
    MPI_Comm_rank(MPI_COMM_WORLD, &r);
    MPI_Comm_size(MPI_COMM_WORLD, &n);
    world_rank = (uint32_t)r, world_size = (uint32_t)n;
    return GARLIC_OK;
#else
    (void)argc, (void)argv;
    if (size == 1)
        return GARLIC_OK; // a launcher's world of one: nothing to share
    return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                            "launched as %u ranks, but garlic was built without MPI (install "
                            "libopenmpi-dev and rebuild)",
                            size);
#endif
}

void dist_finalize(void)
{
#ifdef GARLIC_MPI
    if (mpi_started)
        MPI_Finalize();
#endif
    mpi_started = false;
}

uint32_t dist_rank(void) { return world_rank; }

uint32_t dist_size(void) { return world_size; }

int dist_tp_layout_make(uint32_t t, dist_tp_layout *out, garlic_error *err)
{
    *out = (dist_tp_layout){.rank = 0, .size = 1};
    if (t <= 1 && world_size == 1)
        return GARLIC_OK;
    if (t > 1 && !dist_built_with_mpi())
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "--tensor-parallel %u: garlic was built without MPI (install "
                                "libopenmpi-dev and rebuild)",
                                t);
    if (t <= 1)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "%u ranks are running: give --tensor-parallel %u to split each "
                                "layer between them",
                                world_size, world_size);
    if (t != world_size)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "--tensor-parallel %u, but %u rank%s running (start it with "
                                "mpirun -np %u)",
                                t, world_size, world_size == 1 ? " is" : "s are", t);
    *out = (dist_tp_layout){.rank = world_rank, .size = world_size};
    return GARLIC_OK;
}

#ifdef GARLIC_MPI
// MPI counts are ints: larger transfers go in pieces of at most this many elements.
enum { MPI_PIECE = 1 << 30 };
#endif

void dist_all_reduce_sum(float *x, size_t n)
{
#ifdef GARLIC_MPI
    for (size_t at = 0; world_size > 1 && at < n; at += MPI_PIECE) {
        int count = n - at < MPI_PIECE ? (int)(n - at) : MPI_PIECE;
        MPI_Allreduce(MPI_IN_PLACE, x + at, count, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
    }
#else
    (void)x, (void)n;
#endif
}

void dist_all_gather(const float *mine, float *all, size_t n)
{
#ifdef GARLIC_MPI
    if (world_size > 1) {
        // (counts are ints: a row of logits is far below)
        const void *send = mine == all + (size_t)world_rank * n ? MPI_IN_PLACE : mine;
        MPI_Allgather(send, (int)n, MPI_FLOAT, all, (int)n, MPI_FLOAT, MPI_COMM_WORLD);
        return;
    }
#endif
    if (all != mine)
        memmove(all, mine, n * sizeof(float));
}

void dist_broadcast(void *buf, size_t n)
{
#ifdef GARLIC_MPI
    for (size_t at = 0; world_size > 1 && at < n; at += MPI_PIECE) {
        int count = n - at < MPI_PIECE ? (int)(n - at) : MPI_PIECE;
        MPI_Bcast((char *)buf + at, count, MPI_BYTE, 0, MPI_COMM_WORLD);
    }
#else
    (void)buf, (void)n;
#endif
}

int dist_check_same(const void *bytes, size_t n, const char *what, garlic_error *err)
{
    if (world_size == 1)
        return GARLIC_OK;
#ifdef GARLIC_MPI
    // Every rank learns the size first, so that a rank with another size is refused rather
    // than mismatching the broadcast.
    unsigned long long sizes[2] = {n, n}; // the smallest and the largest
    MPI_Allreduce(MPI_IN_PLACE, &sizes[0], 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &sizes[1], 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, MPI_COMM_WORLD);
    int differ = sizes[0] != sizes[1];
    if (!differ) {
        uint8_t *copy = garlic_malloc(n ? n : 1);
        if (copy && world_rank == 0)
            memcpy(copy, bytes, n);
        if (copy)
            dist_broadcast(copy, n);
        else
            MPI_Abort(MPI_COMM_WORLD, 1); // the others wait in the broadcast
        differ = memcmp(copy, bytes, n) != 0;
        garlic_free(copy);
    }
    int count = differ, first = differ ? (int)world_rank : INT_MAX;
    MPI_Allreduce(MPI_IN_PLACE, &count, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, MPI_COMM_WORLD);
    if (count == 0)
        return GARLIC_OK;
    return garlic_error_set(err, GARLIC_EINVAL, "rank %d%s has %s that differs from rank 0's",
                            first, count > 1 ? " (and others)" : "", what);
#else
    (void)bytes, (void)n, (void)what, (void)err;
    return GARLIC_OK;
#endif
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

double dist_time_all_reduce(size_t n, uint32_t reps)
{
    if (world_size == 1 || reps == 0)
        return 0;
    float *x = garlic_calloc(n ? n : 1, sizeof *x);
    double *secs = garlic_calloc(reps, sizeof *secs);
    if (!x || !secs) {
        garlic_free(x), garlic_free(secs);
        return 0; // (every rank allocates the same, so all return here together)
    }
    dist_all_reduce_sum(x, n); // warm-up: connections, buffers
    for (uint32_t i = 0; i < reps; i++) {
        double t0 = garlic_now();
        dist_all_reduce_sum(x, n);
        secs[i] = garlic_now() - t0;
    }
    qsort(secs, reps, sizeof *secs, compare_double);
    double median = secs[reps / 2];
    garlic_free(x), garlic_free(secs);
    return median;
}
