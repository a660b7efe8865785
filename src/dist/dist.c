// SPDX-License-Identifier: MIT
// The ranks and collectives of dist.h. With GARLIC_MPI defined (the Makefile found Open
// MPI's mpi.h) they are MPI calls over a duplicate of MPI_COMM_WORLD whose errors are
// returned, not fatal, so that a failure is reported in garlic's words before the job ends;
// a watchdog thread ends the job when a collective waits longer than the timeout (a rank
// that died or hangs). Without MPI the world is one process, the collectives are the
// identity and asking for more ranks is refused.
#include "dist/dist.h"

#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "base/alloc.h"
#include "base/clock.h"

#ifdef GARLIC_MPI
#include <mpi.h>
#endif

// The world as dist_init found it (main thread; read-only afterwards).
static uint32_t world_rank = 0, world_size = 1;
static bool mpi_started = false;

// The collective in flight and how long it may take, for the watchdog. The thread calling
// collectives writes `what` then `since` when one starts and `since` = 0 when it ends; the
// watchdog thread reads them; `timeout` is set by dist_set_timeout from any thread.
static struct {
    _Atomic double timeout;     // seconds; 0: no limit
    _Atomic double since;       // garlic_now() when the collective began; 0: none in flight
    _Atomic(const char *) what; // its name ("MPI_Allreduce"), a static string
    _Atomic size_t bytes;       // its size, for the message
} flight = {.timeout = DIST_DEFAULT_TIMEOUT};

// A fault (a collective that failed or waited past the timeout), for dist_fault: `message`
// is written once, under `lock`, before `failed` is set; any thread reads it. `grace` is how
// long the job goes on after it is recorded (dist_set_fault_grace).
static struct {
    pthread_mutex_t lock;
    atomic_bool failed;
    _Atomic double grace; // seconds
    char message[512];
} fault = {.lock = PTHREAD_MUTEX_INITIALIZER};

// The layout (dist_tp_layout_make; main thread, read-only afterwards).
static dist_tp_layout layout = {.rank = 0, .size = 1, .stage = 0, .stages = 1};

#ifdef GARLIC_MPI
// MPI_COMM_WORLD duplicated with MPI_ERRORS_RETURN (dist_init; main thread), and the
// layout's: the ranks of this stage (the world until a layout splits it) and the ranks of
// this tensor-parallel position across the stages (MPI_COMM_NULL without stages).
static MPI_Comm comm = MPI_COMM_NULL, stage_comm = MPI_COMM_NULL, column_comm = MPI_COMM_NULL;

// The counts and displacements of dist_all_gather_parts' MPI_Allgatherv, one of each per
// tensor-parallel rank (dist_tp_layout_make; the collectives' thread fills them), so that a
// gather allocates nothing.
static int *parts_counts, *parts_displs;

// The watchdog thread: started by dist_init in a world of several ranks, stopped by
// dist_finalize. `stop` is guarded by `lock`; `wake` wakes the thread to stop.
static struct {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    bool running, stop;
} watchdog = {.lock = PTHREAD_MUTEX_INITIALIZER};

// Records the fault (the first one; dist_fault reads it) and prints it.
static void record_fault(const char *message)
{
    pthread_mutex_lock(&fault.lock);
    if (!atomic_load(&fault.failed)) {
        snprintf(fault.message, sizeof fault.message, "%s", message);
        atomic_store(&fault.failed, true);
    }
    pthread_mutex_unlock(&fault.lock);
    fprintf(stderr, "garlic: %s\n", message);
}

// Ends every rank of the job (MPI_Abort on the world): what a collective that failed or
// waited too long leaves. The fault is recorded first, then the job goes on for the grace
// (rank 0 of garlic serve: its HTTP threads tell the clients), since the thread that calls
// this cannot go back to a computation whose ranks are out of step.
static _Noreturn void end_job(const char *message)
{
    record_fault(message);
    double grace = atomic_load(&fault.grace);
    if (grace > 0) {
        fprintf(stderr, "garlic: rank %u: ending the job in %.1f s\n", world_rank, grace);
        struct timespec nap = {.tv_sec = (time_t)grace,
                               .tv_nsec = (long)((grace - (double)(time_t)grace) * 1e9)};
        while (nanosleep(&nap, &nap) != 0)
            ; // (a signal's interruption: the rest of the nap)
    }
    fflush(stdout);
    fflush(stderr);
    MPI_Abort(MPI_COMM_WORLD, 1);
    abort(); // (MPI_Abort does not return)
}

// The ranks this one waits for, in words ("rank 1"; "the other 3 ranks" in a world of four,
// where a blocked collective does not say which one is missing).
static void other_ranks(char *buf, size_t cap)
{
    if (world_size == 2)
        snprintf(buf, cap, "rank %u", 1 - world_rank);
    else
        snprintf(buf, cap, "the other %u ranks", world_size - 1);
}

// Watches the collective in flight: when it has waited longer than the timeout, prints which
// one, on which rank, for how long, and ends the job. Asleep otherwise: it wakes when the
// collective in flight would time out (or a timeout from now when none is), or to stop.
static void *watch(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&watchdog.lock);
    while (!watchdog.stop) {
        double timeout = atomic_load(&flight.timeout), since = atomic_load(&flight.since);
        double now = garlic_now(), wait = timeout > 0 ? timeout : 60;
        if (timeout > 0 && since > 0 && now - since >= timeout) {
            const char *what = atomic_load(&flight.what);
            size_t bytes = atomic_load(&flight.bytes);
            if (atomic_load(&flight.since) == since) { // the same collective, still waiting
                char others[64], message[400];
                other_ranks(others, sizeof others);
                snprintf(message, sizeof message,
                         "rank %u of %u: %s of %zu bytes has waited %.1f s for %s "
                         "(--dist-timeout %g): a rank died or hangs; ending the job",
                         world_rank, world_size, what, bytes, now - since, others, timeout);
                end_job(message);
            }
            continue;
        }
        if (timeout > 0 && since > 0)
            wait = since + timeout - now;
        garlic_cond_wait_for(&watchdog.wake, &watchdog.lock, wait);
    }
    pthread_mutex_unlock(&watchdog.lock);
    return NULL;
}

// Marks the start of collective `what` moving `bytes` (for the watchdog).
static void collective_begin(const char *what, size_t bytes)
{
    atomic_store(&flight.what, what);
    atomic_store(&flight.bytes, bytes);
    atomic_store(&flight.since, garlic_now());
}

// A failure of collective `what` (MPI_ERRORS_RETURN gives it back) is printed, naming the
// rank and the collective, and ends the job: the ranks can no longer be in step.
static void check(int rc, const char *what)
{
    if (rc == MPI_SUCCESS)
        return;
    char text[MPI_MAX_ERROR_STRING] = "";
    int len = 0;
    MPI_Error_string(rc, text, &len);
    char others[64], message[400 + MPI_MAX_ERROR_STRING];
    other_ranks(others, sizeof others);
    snprintf(message, sizeof message, "rank %u of %u: %s with %s failed: %s; ending the job",
             world_rank, world_size, what, others, text);
    end_job(message);
}

// Marks its end, and checks its result.
static void collective_end(int rc)
{
    atomic_store(&flight.since, 0.0);
    check(rc, atomic_load(&flight.what));
}

// Duplicates the world with errors returned and starts the watchdog; a failure is returned.
static int start_world(garlic_error *err)
{
    if (MPI_Comm_dup(MPI_COMM_WORLD, &comm) != MPI_SUCCESS ||
        MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN) != MPI_SUCCESS)
        return garlic_error_set(err, GARLIC_EIO, "rank %u: MPI_Comm_dup failed", world_rank);
    stage_comm = comm; // (until a layout of stages splits it)
    if (world_size == 1)
        return GARLIC_OK;
    if (garlic_cond_init(&watchdog.wake) != 0 ||
        pthread_create(&watchdog.thread, NULL, watch, NULL) != 0)
        return garlic_error_set(err, GARLIC_ENOMEM, "rank %u: cannot start the watchdog thread",
                                world_rank);
    watchdog.running = true;
    return GARLIC_OK;
}
#endif

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
    return start_world(err);
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
    if (watchdog.running) {
        pthread_mutex_lock(&watchdog.lock);
        watchdog.stop = true;
        pthread_cond_signal(&watchdog.wake);
        pthread_mutex_unlock(&watchdog.lock);
        pthread_join(watchdog.thread, NULL);
        pthread_cond_destroy(&watchdog.wake);
        watchdog.running = false;
    }
    if (stage_comm != MPI_COMM_NULL && stage_comm != comm)
        MPI_Comm_free(&stage_comm);
    if (column_comm != MPI_COMM_NULL)
        MPI_Comm_free(&column_comm);
    if (comm != MPI_COMM_NULL)
        MPI_Comm_free(&comm);
    garlic_free(parts_counts), garlic_free(parts_displs);
    parts_counts = parts_displs = NULL;
    if (mpi_started)
        MPI_Finalize();
#endif
    mpi_started = false;
}

void dist_set_timeout(double seconds)
{
    atomic_store(&flight.timeout, seconds > 0 ? seconds : 0);
#ifdef GARLIC_MPI
    if (watchdog.running) { // (a shorter limit may be due before the watchdog's next wake)
        pthread_mutex_lock(&watchdog.lock);
        pthread_cond_signal(&watchdog.wake);
        pthread_mutex_unlock(&watchdog.lock);
    }
#endif
}

double dist_timeout(void) { return atomic_load(&flight.timeout); }

void dist_set_fault_grace(double seconds) { atomic_store(&fault.grace, seconds > 0 ? seconds : 0); }

bool dist_fault(char *buf, size_t cap)
{
    if (!atomic_load(&fault.failed))
        return false;
    pthread_mutex_lock(&fault.lock);
    if (cap)
        snprintf(buf, cap, "%s", fault.message);
    pthread_mutex_unlock(&fault.lock);
    return true;
}

uint32_t dist_rank(void) { return world_rank; }

uint32_t dist_size(void) { return world_size; }

int dist_tp_layout_make(uint32_t t, uint32_t p, dist_tp_layout *out, garlic_error *err)
{
    *out = (dist_tp_layout){.rank = 0, .size = 1, .stage = 0, .stages = 1};
    t = t ? t : 1, p = p ? p : 1;
    if (t * p == 1 && world_size == 1)
        return GARLIC_OK;
    if (t * p > 1 && !dist_built_with_mpi())
        return garlic_error_set(err, GARLIC_EUNSUPPORTED,
                                "--tensor-parallel %u --pipeline-parallel %u: garlic was built "
                                "without MPI (install libopenmpi-dev and rebuild)",
                                t, p);
    if (t * p == 1)
        return garlic_error_set(err, GARLIC_EINVAL,
                                "%u ranks are running: give --tensor-parallel %u (or "
                                "--pipeline-parallel P, with T x P = %u) to split the model "
                                "between them",
                                world_size, world_size, world_size);
    char asked[80];
    if (p == 1)
        snprintf(asked, sizeof asked, "--tensor-parallel %u", t);
    else if (t == 1)
        snprintf(asked, sizeof asked, "--pipeline-parallel %u", p);
    else
        snprintf(asked, sizeof asked, "--tensor-parallel %u x --pipeline-parallel %u", t, p);
    if ((uint64_t)t * p != world_size)
        return garlic_error_set(
            err, GARLIC_EINVAL, "%s, but %u rank%s running (start it with mpirun -np %llu)", asked,
            world_size, world_size == 1 ? " is" : "s are", (unsigned long long)t * p);
    dist_tp_layout l = {.rank = world_rank % t, .size = t, .stage = world_rank / t, .stages = p};
#ifdef GARLIC_MPI
    garlic_free(parts_counts), garlic_free(parts_displs); // (a layout made again)
    parts_counts = garlic_calloc(t, sizeof *parts_counts);
    parts_displs = garlic_calloc(t, sizeof *parts_displs);
    if (!parts_counts || !parts_displs)
        return garlic_error_set(err, GARLIC_ENOMEM, "rank %u: no memory for %u ranks' counts",
                                world_rank, t);
    if (p > 1) {
        MPI_Comm s = MPI_COMM_NULL, c = MPI_COMM_NULL;
        if (MPI_Comm_split(comm, (int)l.stage, (int)l.rank, &s) != MPI_SUCCESS ||
            MPI_Comm_split(comm, (int)l.rank, (int)l.stage, &c) != MPI_SUCCESS ||
            MPI_Comm_set_errhandler(s, MPI_ERRORS_RETURN) != MPI_SUCCESS ||
            MPI_Comm_set_errhandler(c, MPI_ERRORS_RETURN) != MPI_SUCCESS)
            return garlic_error_set(err, GARLIC_EIO, "rank %u: MPI_Comm_split failed", world_rank);
        stage_comm = s, column_comm = c;
    }
#endif
    layout = *out = l;
    return GARLIC_OK;
}

dist_tp_layout dist_layout(void) { return layout; }

#ifdef GARLIC_MPI
// MPI counts are ints: larger transfers go in pieces of at most this many elements.
enum { MPI_PIECE = 1 << 30 };
#endif

void dist_all_reduce_sum(float *x, size_t n)
{
#ifdef GARLIC_MPI
    for (size_t at = 0; layout.size > 1 && at < n; at += MPI_PIECE) {
        int count = n - at < MPI_PIECE ? (int)(n - at) : MPI_PIECE;
        collective_begin("an all-reduce (MPI_Allreduce)", (size_t)count * sizeof *x);
        collective_end(MPI_Allreduce(MPI_IN_PLACE, x + at, count, MPI_FLOAT, MPI_SUM, stage_comm));
    }
#else
    (void)x, (void)n;
#endif
}

void dist_all_gather_parts(float *all, size_t n, size_t unit)
{
#ifdef GARLIC_MPI
    if (layout.size > 1) {
        for (uint32_t r = 0; r < layout.size; r++) {
            parts_displs[r] = (int)(unit * dist_part_first(n, r, layout.size));
            parts_counts[r] = (int)(unit * dist_part_size(n, r, layout.size));
        }
        collective_begin("an uneven all-gather (MPI_Allgatherv)", n * unit * sizeof *all);
        collective_end(MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all, parts_counts,
                                      parts_displs, MPI_FLOAT, stage_comm));
    }
#else
    (void)all, (void)n, (void)unit;
#endif
}

void dist_stage_send(const float *x, size_t n)
{
#ifdef GARLIC_MPI
    for (size_t at = 0; layout.stage + 1 < layout.stages && at < n; at += MPI_PIECE) {
        int count = n - at < MPI_PIECE ? (int)(n - at) : MPI_PIECE;
        collective_begin("a send to the next stage (MPI_Send)", (size_t)count * sizeof *x);
        collective_end(MPI_Send(x + at, count, MPI_FLOAT, (int)layout.stage + 1, 0, column_comm));
    }
#else
    (void)x, (void)n;
#endif
}

void dist_stage_recv(float *x, size_t n)
{
#ifdef GARLIC_MPI
    for (size_t at = 0; layout.stage > 0 && at < n; at += MPI_PIECE) {
        int count = n - at < MPI_PIECE ? (int)(n - at) : MPI_PIECE;
        collective_begin("a receive from the previous stage (MPI_Recv)", (size_t)count * sizeof *x);
        collective_end(MPI_Recv(x + at, count, MPI_FLOAT, (int)layout.stage - 1, 0, column_comm,
                                MPI_STATUS_IGNORE));
    }
#else
    (void)x, (void)n;
#endif
}

void dist_stage_broadcast_last(float *buf, size_t n)
{
#ifdef GARLIC_MPI
    for (size_t at = 0; layout.stages > 1 && at < n; at += MPI_PIECE) {
        int count = n - at < MPI_PIECE ? (int)(n - at) : MPI_PIECE;
        collective_begin("a broadcast from the last stage (MPI_Bcast)",
                         (size_t)count * sizeof *buf);
        collective_end(MPI_Bcast(buf + at, count, MPI_FLOAT, (int)layout.stages - 1, column_comm));
    }
#else
    (void)buf, (void)n;
#endif
}

void dist_broadcast(void *buf, size_t n)
{
#ifdef GARLIC_MPI
    for (size_t at = 0; world_size > 1 && at < n; at += MPI_PIECE) {
        int count = n - at < MPI_PIECE ? (int)(n - at) : MPI_PIECE;
        collective_begin("a broadcast (MPI_Bcast)", (size_t)count);
        collective_end(MPI_Bcast((char *)buf + at, count, MPI_BYTE, 0, comm));
    }
#else
    (void)buf, (void)n;
#endif
}

void dist_broadcast_idle(void *buf, size_t n) { dist_broadcast_idle_within(buf, n, 0); }

void dist_broadcast_idle_within(void *buf, size_t n, double limit)
{
#ifdef GARLIC_MPI
    if (world_size == 1)
        return;
    // A nonblocking broadcast, tested with growing sleeps once it has waited a while (a
    // blocking one would keep a core spinning for as long as the server is idle).
    const char *what = "a broadcast of the next step (MPI_Ibcast)";
    bool timed = world_rank == 0; // (the others wait for work, up to limit)
    if (timed)
        collective_begin(what, n);
    MPI_Request request;
    int rc = MPI_Ibcast(buf, (int)n, MPI_BYTE, 0, comm, &request), done = 0;
    long nap = 50 * 1000; // nanoseconds, doubled up to 2 ms
    double t0 = garlic_now();
    for (unsigned tries = 0; rc == MPI_SUCCESS && !done; tries++) {
        rc = MPI_Test(&request, &done, MPI_STATUS_IGNORE);
        if (done || tries < 2000)
            continue;
        nanosleep(&(struct timespec){.tv_nsec = nap}, NULL);
        nap = nap < 2000 * 1000 ? nap * 2 : nap;
        if (!timed && limit > 0 && garlic_now() - t0 > limit) {
            char message[300];
            snprintf(message, sizeof message,
                     "rank %u of %u: rank 0 sent nothing for %.1f s, though an idle server "
                     "sends a heartbeat every few seconds (--dist-timeout %g): it died or "
                     "hangs; ending the job",
                     world_rank, world_size, garlic_now() - t0, atomic_load(&flight.timeout));
            end_job(message);
        }
    }
    if (timed)
        collective_end(rc);
    else
        check(rc, what);
#else
    (void)buf, (void)n, (void)limit;
#endif
}

void dist_heartbeat(void)
{
#ifdef GARLIC_MPI
    if (world_size == 1)
        return;
    int word = 1;
    collective_begin("a heartbeat (MPI_Allreduce)", sizeof word);
    collective_end(MPI_Allreduce(MPI_IN_PLACE, &word, 1, MPI_INT, MPI_SUM, comm));
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
    collective_begin("a comparison between ranks (MPI_Allreduce)", sizeof sizes);
    collective_end(
        MPI_Allreduce(MPI_IN_PLACE, &sizes[0], 1, MPI_UNSIGNED_LONG_LONG, MPI_MIN, comm));
    collective_begin("a comparison between ranks (MPI_Allreduce)", sizeof sizes);
    collective_end(
        MPI_Allreduce(MPI_IN_PLACE, &sizes[1], 1, MPI_UNSIGNED_LONG_LONG, MPI_MAX, comm));
    int differ = sizes[0] != sizes[1];
    if (!differ) {
        uint8_t *copy = garlic_malloc(n ? n : 1);
        if (copy && world_rank == 0)
            memcpy(copy, bytes, n);
        if (copy)
            dist_broadcast(copy, n);
        else {
            char message[300];
            snprintf(message, sizeof message, "rank %u: out of memory comparing %s; ending the job",
                     world_rank, what);
            end_job(message); // the others wait in the broadcast
        }
        differ = memcmp(copy, bytes, n) != 0;
        garlic_free(copy);
    }
    int count = differ, first = differ ? (int)world_rank : INT_MAX;
    collective_begin("a comparison between ranks (MPI_Allreduce)", sizeof count);
    collective_end(MPI_Allreduce(MPI_IN_PLACE, &count, 1, MPI_INT, MPI_SUM, comm));
    collective_begin("a comparison between ranks (MPI_Allreduce)", sizeof first);
    collective_end(MPI_Allreduce(MPI_IN_PLACE, &first, 1, MPI_INT, MPI_MIN, comm));
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
    if (layout.size == 1 || reps == 0)
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
