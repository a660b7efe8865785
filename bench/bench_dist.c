// SPDX-License-Identifier: MIT
// What a transfer between ranks costs, through src/dist's own calls: the median time of an
// all-reduce (tensor parallelism's two a layer) and of a stage-to-stage send (pipeline
// parallelism's one a stage boundary) for messages from one token's activations of a
// Llama-70B-sized model (8192 floats, 32 KiB) to a 512-token prompt step (16 MiB). Run it
// under mpirun with 2 ranks: `bench_dist reduce` (layout T=2) or `bench_dist send` (layout
// P=2). The figures feed docs/distributed.md's performance model (bench/dist_model.py).
// Reported, never asserted.
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/alloc.h"
#include "base/clock.h"
#include "dist/dist.h"

// Message sizes in floats: 32 KiB (a 70B token's activations) to 16 MiB (512 of them).
static const size_t sizes[] = {8192, 32768, 131072, 524288, 1048576, 4194304};
enum { N_SIZES = sizeof sizes / sizeof sizes[0] };

// Repetitions for n floats: many for small messages, at least 20 for the largest.
static uint32_t reps_for(size_t n)
{
    size_t reps = ((size_t)64 << 20) / (n * sizeof(float));
    return reps > 1000 ? 1000 : reps < 20 ? 20 : (uint32_t)reps;
}

static int compare_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

// The median seconds of reps round trips on a 2-stage layout: stage 0 sends n floats to
// stage 1, which answers with one float (the broadcast from the last stage), so stage 0's
// clock covers the transfer and a 4-byte reply. Every rank returns the same median (stage 1
// times its side too, but only rank 0 prints). 0 without memory.
static double time_stage_round_trip(size_t n, uint32_t reps)
{
    float *x = garlic_calloc(n, sizeof *x);
    double *secs = garlic_calloc(reps, sizeof *secs);
    if (!x || !secs) {
        garlic_free(x), garlic_free(secs);
        return 0;
    }
    bool first = dist_layout().stage == 0;
    for (uint32_t i = 0; i <= reps; i++) { // round 0 is the warm-up
        float ack = 1;
        double t0 = garlic_now();
        if (first)
            dist_stage_send(x, n);
        else
            dist_stage_recv(x, n);
        dist_stage_broadcast_last(&ack, 1);
        if (i > 0)
            secs[i - 1] = garlic_now() - t0;
    }
    qsort(secs, reps, sizeof *secs, compare_double);
    double median = secs[reps / 2];
    garlic_free(x), garlic_free(secs);
    return median;
}

static void print_reduce(void)
{
    if (dist_rank() == 0) {
        printf("all-reduce (sum) of n floats, %u ranks: median over reps\n", dist_size());
        printf("| %10s | %10s | %6s | %12s | %12s |\n", "floats", "bytes", "reps", "median us",
               "bytes/s");
    }
    for (int i = 0; i < N_SIZES; i++) {
        double s = dist_time_all_reduce(sizes[i], reps_for(sizes[i]));
        double bytes = (double)sizes[i] * sizeof(float);
        if (dist_rank() == 0)
            printf("| %10zu | %10.0f | %6u | %12.1f | %10.2f G |\n", sizes[i], bytes,
                   reps_for(sizes[i]), s * 1e6, s > 0 ? bytes / s / 1e9 : 0.0);
    }
}

static void print_send(void)
{
    double base = time_stage_round_trip(1, 1000);
    if (dist_rank() == 0) {
        printf("stage send of n floats and a 4-byte reply, 2 stages: median over reps; "
               "one way = round trip - (4-byte round trip %.1f us) / 2\n",
               base * 1e6);
        printf("| %10s | %10s | %6s | %14s | %12s | %12s |\n", "floats", "bytes", "reps",
               "round trip us", "one way us", "bytes/s");
    }
    for (int i = 0; i < N_SIZES; i++) {
        double s = time_stage_round_trip(sizes[i], reps_for(sizes[i]));
        double one_way = s - base / 2;
        double bytes = (double)sizes[i] * sizeof(float);
        if (dist_rank() == 0)
            printf("| %10zu | %10.0f | %6u | %14.1f | %12.1f | %10.2f G |\n", sizes[i], bytes,
                   reps_for(sizes[i]), s * 1e6, one_way * 1e6,
                   one_way > 0 ? bytes / one_way / 1e9 : 0.0);
    }
}

int main(int argc, char **argv)
{
    garlic_error err = {0};
    if (dist_init(&argc, &argv, &err) != GARLIC_OK) {
        fprintf(stderr, "bench_dist: %s\n", err.message);
        return 1;
    }
    bool send = argc > 1 && strcmp(argv[1], "send") == 0;
    if (argc < 2 || (!send && strcmp(argv[1], "reduce") != 0) || dist_size() != 2) {
        if (dist_rank() == 0)
            fprintf(stderr,
                    "usage: mpirun -np 2 bench_dist reduce|send (a world of 2 ranks: "
                    "%u here; garlic built with MPI: %s)\n",
                    dist_size(), dist_built_with_mpi() ? "yes" : "no");
        dist_finalize();
        return 0; // reported, never asserted: `make bench` may build it without mpirun
    }
    dist_tp_layout layout;
    if (dist_tp_layout_make(send ? 1 : 2, send ? 2 : 1, &layout, &err) != GARLIC_OK) {
        fprintf(stderr, "bench_dist: %s\n", err.message);
        dist_finalize();
        return 1;
    }
    if (send)
        print_send();
    else
        print_reduce();
    dist_finalize();
    return 0;
}
